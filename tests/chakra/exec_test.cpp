// `parallax exec --chakra` under mpirun: imported traces executed for real on the host backend.
// The round trip of a scenario through export-chakra must run the same tasks as the scenario's own
// exec (pipeline transfers and data-parallel collectives checked with --verify); the real traces
// must run every task on its rank, collectives on the trace's communicators (--verify sums over the
// communicator's members), measured durations held; the measured timeline joins the simulated one
// on task id; reduce, gather and scatter verify their data at the root (or the receivers) and a
// corrupted part is caught; bad input is refused with a message.
#include "chakra_test_util.h"
#include "parallax/interop/chakra.h"
#include "parallax/analysis/compare.h"
#include "parallax/traces/io.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <tuple>

namespace parallax {
namespace {

namespace fs = std::filesystem;
using testing::chakra_data;
using testing::run_command;

std::string mpirun(int np, const std::string& env = "") {
  return testing::mpirun_command(np, PARALLAX_CLI " exec", env);
}

// The imported graph as exec sees it (no --cluster: the host cluster).
interop::ChakraImport import(const fs::path& prefix, const fs::path& groups = {}) {
  ClusterSpec host;
  host.set_name("host");
  host.set_gpus_per_node(1);
  interop::ChakraImportOptions options;
  options.comm_groups = groups;
  return interop::import_chakra(prefix, host, options);
}

// Every task of the graph exactly once, on its own rank, with its name; local dependencies kept.
void expect_complete(const model::JobGraph& graph, const Timeline& measured) {
  EXPECT_EQ(measured.source(), Timeline::MEASURED);
  EXPECT_EQ(measured.backend(), "host");
  std::map<std::uint32_t, const TimelineEvent*> by_id;
  for (const auto& e : measured.events()) {
    ASSERT_LT(e.task_id(), graph.num_tasks());
    EXPECT_TRUE(by_id.emplace(e.task_id(), &e).second) << "task " << e.task_id() << " twice";
    EXPECT_EQ(e.rank(), graph.tasks()[e.task_id()].rank) << e.name();
    EXPECT_EQ(e.name(), graph.task_name(e.task_id()));
    EXPECT_GE(e.start_s(), 0.0);
    EXPECT_GE(e.end_s(), e.start_s()) << e.name();
  }
  EXPECT_EQ(by_id.size(), graph.num_tasks());
  for (const auto& [id, e] : by_id)
    for (auto p : graph.predecessors(id)) {
      if (graph.tasks()[p].rank != graph.tasks()[id].rank)
        continue;  // a recv's send: another clock
      // Receives are posted when the iteration starts; their span is the wait for the data.
      if (graph.tasks()[id].kind == RECV) continue;
      ASSERT_TRUE(by_id.count(p));
      EXPECT_GE(e->start_s() + 1e-6, by_id[p]->end_s())
          << e->name() << " started before " << by_id[p]->name() << " ended";
    }
}

Timeline read(const fs::path& file) {
  Timeline t;
  traces::read_binary(file, t);
  return t;
}

// (rank, name, kind) -> count: what ran, independent of task numbering.
std::map<std::tuple<std::uint32_t, std::string, int>, int> census(const Timeline& t) {
  std::map<std::tuple<std::uint32_t, std::string, int>, int> out;
  for (const auto& e : t.events()) {
    // Under symmetry a rank's events carry its stage representative's names, whose transfer peer
    // ("pp_send to 2") is the representative's: compare transfers without the peer.
    std::string name = e.name();
    for (const char* peer : {" to ", " from "})
      if (const auto at = name.rfind(peer);
          at != std::string::npos && (e.kind() == SEND || e.kind() == RECV))
        name.resize(at);
    ++out[{e.rank(), name, static_cast<int>(e.kind())}];
  }
  return out;
}

TEST(ChakraExec, ExportedScenarioRunsTheSameTasksAsItsOwnExec) {
  const testing::TempDir dir;
  // tiny-gpt-cpu: dp 2 x pp 2, 1F1B over 4 micro-batches: pipeline sends/recvs and DP all-reduces.
  const auto prefix = dir / "tiny";
  const auto scenario = (testing::scenarios_dir() / "tiny-gpt-cpu.pbtxt").string();
  const auto exported =
      run_command(PARALLAX_CLI " export-chakra " + scenario + " -o " + prefix.string());
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  const auto out = dir / "tiny.pb", own = dir / "tiny-own.pb";
  const auto run = run_command(mpirun(4) + "--chakra " + prefix.string() +
                               " --verify --warmup 0 --iterations 1 -o " + out.string());
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("0 compute tasks hold their core for their measured duration_micros; 0 "
                         "run a square SGEMM"),
            std::string::npos)
      << run.out;  // the exported tasks keep their GEMM shapes
  const auto imported = import(prefix);
  const Timeline measured = read(out);
  expect_complete(imported.graph, measured);
  // Pipeline transfers and collectives were really there (and --verify checked their data).
  std::set<int> kinds;
  for (const auto& e : measured.events()) kinds.insert(e.kind());
  EXPECT_TRUE(kinds.count(SEND) && kinds.count(RECV) && kinds.count(COLLECTIVE) &&
              kinds.count(GEMM));

  const auto own_run =
      run_command(mpirun(4) + scenario + " --warmup 0 --iterations 1 -o " + own.string());
  ASSERT_EQ(own_run.exit_code, 0) << own_run.err;
  EXPECT_EQ(census(measured), census(read(own)));
}

TEST(ChakraExec, CorruptedTransferOfAnImportedTraceIsCaught) {
  const testing::TempDir dir;
  const auto prefix = dir / "tiny-corrupt";
  const auto exported = run_command(PARALLAX_CLI " export-chakra " +
                                    (testing::scenarios_dir() / "tiny-gpt-cpu.pbtxt").string() +
                                    " -o " + prefix.string());
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  const auto run = run_command(
      mpirun(4, "PARALLAX_EXEC_FAULT=corrupt:0") + "--chakra " + prefix.string() +
      " --verify --warmup 0 --iterations 1 --watchdog 20 -o " + (dir / "corrupt.pb").string());
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.err.find("--verify: task"), std::string::npos) << run.err;
}

TEST(ChakraExec, RootedCollectivesRunAndVerifyOnTheirCommunicator) {
  const testing::TempDir dir;
  // MPI_Ireduce, MPI_Igather, MPI_Iscatter of 1 MiB on [2, 0, 1, 3], root rank 2; --verify checks
  // the root's sum and gathered pieces and every rank's scattered piece.
  const auto prefix = dir / "rooted";
  interop::write_chakra(testing::rooted_collectives_trace(1u << 20), prefix);
  const auto out = dir / "rooted.pb";
  const auto run = run_command(mpirun(4) + "--chakra " + prefix.string() +
                               " --verify --warmup 0 --iterations 2 -o " + out.string());
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  const auto imported = import(prefix);
  const Timeline measured = read(out);
  expect_complete(imported.graph, measured);
  std::map<CollectiveKind, int> kinds;
  for (const auto& e : measured.events()) {
    EXPECT_EQ(e.kind(), COLLECTIVE);
    ++kinds[imported.graph.tasks()[e.task_id()].collective];
  }
  EXPECT_EQ(kinds, (std::map<CollectiveKind, int>{{REDUCE, 4}, {GATHER, 4}, {SCATTER, 4}}));
}

TEST(ChakraExec, CorruptedReduceGatherOrScatterIsCaught) {
  const testing::TempDir dir;
  // One wrong element in rank 1's part of a reduce or a gather reaches the root (rank 2); one in
  // the root's scatter reaches the last member (rank 3).
  for (const auto& [type, faulty] : {std::pair{chakra::REDUCE, 1}, std::pair{chakra::GATHER, 1},
                                     std::pair{chakra::SCATTER, 2}}) {
    SCOPED_TRACE(chakra::CollectiveCommType_Name(type));
    const auto prefix = dir / "rooted-corrupt";
    interop::write_chakra(testing::rooted_collectives_trace(1u << 16, {type}), prefix);
    const auto run = run_command(
        mpirun(4, "PARALLAX_EXEC_FAULT=corrupt:" + std::to_string(faulty)) + "--chakra " +
        prefix.string() + " --verify --warmup 0 --iterations 1 --watchdog 20 -o " +
        (dir / "rooted-corrupt.pb").string());
    EXPECT_NE(run.exit_code, 0);
    EXPECT_NE(run.err.find("--verify: task"), std::string::npos) << run.err;
    EXPECT_NE(run.err.find(type == chakra::SCATTER ? "rank 3:" : "rank 2:"), std::string::npos)
        << run.err;
  }
}

TEST(ChakraExec, GptTraceRunsOnItsCommunicatorsAndJoinsTheSimulation) {
  const testing::TempDir dir;
  // 4 ranks, dp 2 x tp 2: collectives on {0,1}, {2,3}, {0,2}, {1,3}. --verify checks each
  // all-reduce's sum over its communicator's members: on a wrong communicator the job fails.
  const auto prefix = chakra_data() / "gpt-stg-dp2-tp2" / "workload";
  const auto groups = chakra_data() / "gpt-stg-dp2-tp2" / "comm_groups.json";
  const auto out = dir / "gpt.pb", predicted = dir / "gpt-predicted.pb";
  const auto run = run_command(
      mpirun(4) + "--chakra " + prefix.string() + " --comm-groups " + groups.string() +
      " --gemm-cap 16 --bytes-cap 1048576 --verify --warmup 0 --iterations 1 -o " + out.string());
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  // Its compute nodes have num_ops only: GPU-sized GEMMs, all capped.
  EXPECT_NE(run.out.find("0 compute tasks hold their core for their measured duration_micros; 9968 "
                         "run a square SGEMM "
                         "of their num_ops, 9968 of them capped at 16^3"),
            std::string::npos)
      << run.out;
  const auto imported = import(prefix, groups);
  const Timeline measured = read(out);
  expect_complete(imported.graph, measured);
  // Each communicator's collectives completed on each of its members, and only there.
  std::map<std::int32_t, std::set<std::uint32_t>> ran_on;
  for (const auto& e : measured.events()) {
    const auto& t = imported.graph.tasks()[e.task_id()];
    if (t.kind == COLLECTIVE) ran_on[t.communicator].insert(e.rank());
  }
  ASSERT_EQ(ran_on.size(), 4u);
  for (const auto& [c, ranks] : ran_on) {
    const auto& members = imported.graph.communicators()[static_cast<std::size_t>(c)];
    EXPECT_EQ(ranks, std::set<std::uint32_t>(members.begin(), members.end()));
  }

  // The simulated timeline of the same import joins on (task id, rank, name).
  const auto sim =
      run_command(PARALLAX_CLI " simulate --chakra " + prefix.string() + " --comm-groups " +
                  groups.string() + " --cluster dgx-h100 --timeline " + predicted.string());
  ASSERT_EQ(sim.exit_code, 0) << sim.err;
  const Timeline prediction = read(predicted);
  std::map<std::uint32_t, const TimelineEvent*> predicted_by_id;
  for (const auto& e : prediction.events()) predicted_by_id[e.task_id()] = &e;
  ASSERT_EQ(predicted_by_id.size(), static_cast<std::size_t>(measured.events_size()));
  for (const auto& e : measured.events()) {
    const auto it = predicted_by_id.find(e.task_id());
    ASSERT_NE(it, predicted_by_id.end()) << e.name();
    EXPECT_EQ(it->second->rank(), e.rank());
    EXPECT_EQ(it->second->kind(), e.kind());
  }
  // Both timelines carry the imported graph (no model to rebuild it from), so compare joins them:
  // every measured event matched, the critical paths found in the graph.
  ASSERT_TRUE(prediction.has_graph());
  ASSERT_TRUE(measured.has_graph());
  EXPECT_EQ(static_cast<std::size_t>(prediction.graph().tasks_size()), imported.graph.num_tasks());
  const analysis::CompareResult compared = analysis::compare_timelines(prediction, measured);
  EXPECT_EQ(compared.measured_events, imported.graph.num_tasks());
  EXPECT_EQ(compared.predicted_tasks, imported.graph.num_tasks());
  EXPECT_FALSE(compared.critical_path_predicted.path.segments().empty());
  EXPECT_FALSE(compared.critical_path_measured.path.segments().empty());
  const auto cli = run_command(PARALLAX_CLI " compare " + predicted.string() + " " + out.string());
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_NE(cli.out.find("all_reduce"), std::string::npos) << cli.out;
}

TEST(ChakraExec, MeasuredDurationsAreHeldAndCpuOpsGetTheirOwnLane) {
  const testing::TempDir dir;
  // PyTorch FSDP on 2 ranks: every compute node has duration_micros.
  const auto prefix = chakra_data() / "fsdp-mlp-pytorch-2" / "chakra_trace";
  const auto out = dir / "fsdp.pb";
  const auto run = run_command(mpirun(2) + "--chakra " + prefix.string() +
                               " --verify --warmup 0 --iterations 1 -o " + out.string());
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  const auto imported = import(prefix);
  const Timeline measured = read(out);
  expect_complete(imported.graph, measured);
  int host_ops = 0;
  for (const auto& e : measured.events()) {
    const auto& t = imported.graph.tasks()[e.task_id()];
    if (t.is_compute() && t.measured_s >= 0) {
      EXPECT_GE(e.end_s() - e.start_s() + 1e-9, t.measured_s) << e.name();
    }
    host_ops += t.on_host;
  }
  EXPECT_GT(host_ops, 0);
}

TEST(ChakraExecInput, WrongWorldSizeAndConflictingArgumentsAreRefused) {
  const testing::TempDir dir;
  const auto prefix = (chakra_data() / "fsdp-mlp-pytorch-2" / "chakra_trace").string();
  const auto wrong = run_command(mpirun(3) + "--chakra " + prefix + " -o " + (dir / "x.pb").string());
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_NE(wrong.err.find("the plan is for 2 ranks"), std::string::npos) << wrong.err;
  EXPECT_NE(wrong.err.find("mpirun -np 2"), std::string::npos) << wrong.err;

  const auto both = run_command(PARALLAX_CLI " exec " +
                                (testing::scenarios_dir() / "tiny-gpt-cpu.pbtxt").string() +
                                " --chakra " + prefix + " -o " + (dir / "x.pb").string());
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_NE(both.err.find("not both"), std::string::npos) << both.err;

  const auto stray = run_command(PARALLAX_CLI " exec " +
                                 (testing::scenarios_dir() / "tiny-gpt-cpu.pbtxt").string() +
                                 " --comm-groups g.json -o " + (dir / "x.pb").string());
  EXPECT_EQ(stray.exit_code, 2);
  EXPECT_NE(stray.err.find("apply to --chakra PREFIX only"), std::string::npos) << stray.err;

  const auto cap = run_command(PARALLAX_CLI " exec --chakra " + prefix + " --gemm-cap 0 -o " +
                               (dir / "x.pb").string());
  EXPECT_EQ(cap.exit_code, 2);
  EXPECT_NE(cap.err.find("--gemm-cap needs a positive whole number (got \"0\")"), std::string::npos) << cap.err;

  const auto cuda =
      run_command(mpirun(2) + "--chakra " + prefix + " --backend cuda -o " + (dir / "x.pb").string());
  EXPECT_NE(cuda.exit_code, 0);
  EXPECT_NE(cuda.err.find("an imported trace runs on the host backend only"), std::string::npos)
      << cuda.err;
}

}  // namespace
}  // namespace parallax
