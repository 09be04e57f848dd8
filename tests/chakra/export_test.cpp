// Exporting a scenario's job graph as Chakra traces and reading it back: the same tasks, the same
// dependencies, the same communicators, the same simulated step; and the CLI around it.
#include "chakra_test_util.h"

#include "parallax/interop/chakra.h"
#include "parallax/model/presets.h"
#include "parallax/model/rank_grid.h"
#include "parallax/sim/simulate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>

namespace parallax::testing {
namespace {

namespace fs = std::filesystem;

// Every communicator kind (TP with sequence parallelism, DP with ZeRO-1 gathers, pipeline sends and
// recvs, the embedding group of the first and last stage) on one 8-GPU node, every rank explicit.
constexpr const char* kScenario = R"(
name: "chakra-roundtrip"
model { num_layers: 4 hidden_size: 256 num_heads: 4 seq_length: 128 vocab_size: 1024 }
cluster { preset: "dgx-a100-80g" num_nodes: 1 }
layout { tp: 2 pp: 2 dp: 2 micro_batch_size: 1 global_batch_size: 8 sequence_parallel: true zero_stage: 1 }
options { use_symmetry: false }
)";

struct RoundTrip {
  model::JobGraph original;
  interop::ChakraImport imported;
};

RoundTrip round_trip(const fs::path& dir) {
  model::JobGraph original = model::build_job_graph(scenario_from_text(kScenario));
  interop::write_chakra(interop::export_chakra(original), dir / "job");
  interop::ChakraImport imported = interop::import_chakra(dir / "job", original.scenario().cluster());
  return {std::move(original), std::move(imported)};
}

TEST(ChakraRoundTrip, ExportThenImportGivesTheSameGraph) {
  const TempDir scratch;
  const fs::path& dir = scratch.path();
  const auto [a, in] = round_trip(dir);
  const auto& b = in.graph;
  ASSERT_EQ(b.ranks().size(), 8u);
  ASSERT_EQ(b.num_tasks(), a.num_tasks());
  ASSERT_EQ(b.num_edges(), a.num_edges());
  EXPECT_TRUE(fs::is_regular_file(dir / "job.7.et"));
  EXPECT_TRUE(fs::is_regular_file(dir / "job.comm_groups.json"));
  // The exported node id is the original task id.
  std::vector<std::uint32_t> original_of(b.num_tasks());
  for (std::uint32_t v = 0; v < b.num_tasks(); ++v)
    original_of[v] = static_cast<std::uint32_t>(in.node_id[v]);
  const model::RankGrid grid = model::rank_grid(a.scenario());
  std::set<model::Op> ops;
  std::set<CommGroup> groups;
  for (std::size_t i = 0; i < a.ranks().size(); ++i) {
    ASSERT_EQ(b.ranks()[i].rank, a.ranks()[i].rank);
    const auto la = a.rank_tasks(i), lb = b.rank_tasks(i);
    ASSERT_EQ(la.size(), lb.size());
    for (std::size_t k = 0; k < la.size(); ++k) {
      ASSERT_EQ(original_of[lb[k]], la[k]) << "program order";
      const model::Task &x = a.tasks()[la[k]], &y = b.tasks()[lb[k]];
      SCOPED_TRACE(a.task_name(la[k]));
      EXPECT_EQ(y.rank, x.rank);
      EXPECT_EQ(y.kind, x.kind);
      EXPECT_EQ(y.op, x.op);
      EXPECT_EQ(y.role, x.role);
      EXPECT_EQ(y.phase, x.phase);
      EXPECT_EQ(y.stream, x.stream);
      EXPECT_EQ(y.layer, x.layer);
      EXPECT_EQ(y.microbatch, x.microbatch);
      EXPECT_EQ(y.flops, x.flops);
      EXPECT_EQ(y.bytes, x.bytes);
      EXPECT_EQ(y.gemm_m, x.gemm_m);
      EXPECT_EQ(y.gemm_n, x.gemm_n);
      EXPECT_EQ(y.gemm_k, x.gemm_k);
      EXPECT_EQ(y.gemm_batch, x.gemm_batch);
      EXPECT_EQ(y.peer, x.peer);
      EXPECT_LT(y.measured_s, 0);  // costed as the original is
      EXPECT_EQ(b.task_label(lb[k]), a.task_name(la[k]));
      if (x.kind == COLLECTIVE) {
        EXPECT_EQ(y.collective, x.collective);
        ASSERT_GE(y.communicator, 0);
        EXPECT_EQ(b.communicators()[static_cast<std::size_t>(y.communicator)],
                  grid.members(x.group, x.rank));
        groups.insert(x.group);
      }
      ops.insert(x.op);
      // The same dependencies, cross-rank send -> recv included.
      std::set<std::uint32_t> pa, pb;
      for (auto p : a.predecessors(la[k])) pa.insert(p);
      for (auto p : b.predecessors(lb[k])) pb.insert(original_of[p]);
      EXPECT_EQ(pa, pb);
    }
  }
  // The scenario exercised what it should.
  EXPECT_EQ(groups, (std::set<CommGroup>{GROUP_TP, GROUP_DP, GROUP_EMBEDDING}));
  EXPECT_TRUE(ops.contains(model::Op::PpSend) && ops.contains(model::Op::PpRecv));
  EXPECT_TRUE(ops.contains(model::Op::SpAllGather) && ops.contains(model::Op::DpParamAllGather));
}

TEST(ChakraRoundTrip, TheReimportedGraphSimulatesToTheSameStep) {
  const TempDir scratch;
  const fs::path& dir = scratch.path();
  const auto [a, in] = round_trip(dir);
  const auto ra = sim::simulate_in_subprocess(a).report;
  const auto rb = sim::simulate_in_subprocess(in.graph).report;
  EXPECT_GT(ra.step_time_s(), 0);
  EXPECT_NEAR(rb.step_time_s(), ra.step_time_s(), 1e-12 * ra.step_time_s());
  EXPECT_EQ(rb.flows(), ra.flows());
  EXPECT_NEAR(rb.hardware_flops(), ra.hardware_flops(), 1e-9 * ra.hardware_flops());
}

// A Mixture-of-Experts step (ep 8 over two nodes): the dispatch and combine travel as Chakra
// ALL_TO_ALL collectives on the expert-parallel communicators, and the re-imported trace simulates
// to the same step with the same flows.
TEST(ChakraRoundTrip, MoeAllToAllsKeepTheirKindAndCommunicator) {
  const TempDir scratch;
  const model::JobGraph original = model::build_job_graph(scenario_from_text(R"(
      name: "chakra-moe"
      model { num_layers: 2 hidden_size: 512 num_heads: 8 seq_length: 256 vocab_size: 1024 num_experts: 16
              moe_top_k: 2 moe_ffn_hidden_size: 512 activation: SWIGLU normalization: RMSNORM attention_kernel: FLASH
              position_embedding: ROPE add_bias_linear: false dropout: false }
      cluster { preset: "dgx-h100" num_nodes: 2 }
      layout { dp: 16 ep: 8 global_batch_size: 32 }
      options { use_symmetry: false })"));
  interop::write_chakra(interop::export_chakra(original), scratch.path() / "job");
  const interop::ChakraImport imported = interop::import_chakra(scratch.path() / "job", original.scenario().cluster());
  std::size_t a2a = 0;
  for (const model::Task& t : imported.graph.tasks())
    if (t.kind == COLLECTIVE && t.collective == ALL_TO_ALL) {
      ++a2a;
      const auto& members = imported.graph.communicators().at(static_cast<std::size_t>(t.communicator));
      EXPECT_EQ(members.size(), 8u);
    }
  std::size_t expected = 0;
  for (const model::Task& t : original.tasks()) expected += t.collective == ALL_TO_ALL && t.kind == COLLECTIVE;
  EXPECT_EQ(a2a, expected);
  EXPECT_EQ(expected, 16u * 2 /* layers */ * 2 /* micro-batches */ * 4);
  const auto ra = sim::simulate_in_subprocess(original).report;
  const auto rb = sim::simulate_in_subprocess(imported.graph).report;
  EXPECT_NEAR(rb.step_time_s(), ra.step_time_s(), 1e-9 * ra.step_time_s());
  EXPECT_EQ(rb.flows(), ra.flows());
}

TEST(ChakraRoundTrip, RootedCollectivesKeepTypeRootAndSize) {
  // REDUCE, GATHER, SCATTER on [2, 0, 1, 3] (root 2): import, export, import again.
  const auto trace = rooted_collectives_trace(3u << 20);
  const interop::ChakraImport first =
      interop::import_chakra_traces(trace.ranks, {"t.0.et", "t.1.et", "t.2.et", "t.3.et"},
                                  model::resolve_cluster("dgx-h100"), &trace.groups, false, "t");
  const interop::ChakraExport exported = interop::export_chakra(first.graph);
  ASSERT_EQ(exported.ranks.size(), 4u);
  for (const auto& rank : exported.ranks) {
    ASSERT_EQ(rank.nodes.size(), 3u);
    std::vector<std::int64_t> types;
    for (const auto& node : rank.nodes) {
      EXPECT_EQ(node.type(), chakra::COMM_COLL_NODE);
      for (const auto& a : node.attr()) {
        if (a.name() == "comm_type") types.push_back(a.int64_val());
        if (a.name() == "comm_size") {
          // The input tensor: a GATHER's is one member's piece.
          const bool gather = traces::unsigned_attribute(node, "comm_type", "x") ==
                              static_cast<std::uint64_t>(chakra::GATHER);
          EXPECT_EQ(a.uint64_val(), gather ? (3u << 20) / 4 : 3u << 20) << "node " << node.id();
        }
        if (a.name() == "pg_name") {
          EXPECT_EQ(exported.groups.at(a.string_val()), (std::vector<std::uint32_t>{2, 0, 1, 3}));
        }
      }
    }
    EXPECT_EQ(types, (std::vector<std::int64_t>{chakra::REDUCE, chakra::GATHER, chakra::SCATTER}));
  }
  const TempDir scratch;
  const fs::path& dir = scratch.path();
  interop::write_chakra(exported, dir / "job");
  const interop::ChakraImport second =
      interop::import_chakra(dir / "job", model::resolve_cluster("dgx-h100"));
  const auto& a = first.graph;
  const auto& b = second.graph;
  ASSERT_EQ(b.num_tasks(), a.num_tasks());
  ASSERT_EQ(b.num_edges(), a.num_edges());
  for (std::uint32_t v = 0; v < a.num_tasks(); ++v) {
    const model::Task &x = a.tasks()[v], &y = b.tasks()[v];
    EXPECT_EQ(y.rank, x.rank);
    EXPECT_EQ(y.collective, x.collective);
    EXPECT_EQ(y.bytes, x.bytes);
    EXPECT_EQ(b.communicators()[static_cast<std::size_t>(y.communicator)],
              a.communicators()[static_cast<std::size_t>(x.communicator)]);
  }
  const auto ra = sim::simulate_in_subprocess(a).report;
  const auto rb = sim::simulate_in_subprocess(b).report;
  EXPECT_GT(ra.step_time_s(), 0);
  EXPECT_NEAR(rb.step_time_s(), ra.step_time_s(), 1e-12 * ra.step_time_s());
  EXPECT_EQ(rb.flows(), ra.flows());
}

TEST(ChakraExport, WritesWhatOtherToolsRead) {
  const model::JobGraph g = model::build_job_graph(scenario_from_text(kScenario));
  const interop::ChakraExport e = interop::export_chakra(g);
  ASSERT_EQ(e.ranks.size(), 8u);
  std::map<int, int> types;
  for (const auto& n : e.ranks[0].nodes) {
    ++types[n.type()];
    if (n.type() == chakra::COMP_NODE) {
      EXPECT_TRUE(traces::unsigned_attribute(n, "num_ops", "x").has_value());
    }
    if (n.type() == chakra::COMM_COLL_NODE) {
      const auto pg = traces::string_attribute(n, "pg_name");
      ASSERT_TRUE(pg.has_value());
      ASSERT_TRUE(e.groups.contains(*pg));
      const auto& m = e.groups.at(*pg);
      EXPECT_NE(std::find(m.begin(), m.end(), 0u), m.end());
    }
    for (auto d : n.ctrl_deps()) EXPECT_LT(d, g.num_tasks());
  }
  EXPECT_GT(types[chakra::COMP_NODE], 0);
  EXPECT_GT(types[chakra::COMM_COLL_NODE], 0);
  EXPECT_GT(types[chakra::COMM_SEND_NODE], 0);
  EXPECT_GT(types[chakra::COMM_RECV_NODE], 0);
  // The communicators JSON reads back as written.
  const auto groups = interop::parse_comm_groups(interop::comm_groups_json(e.groups), "g.json", 8);
  EXPECT_EQ(groups, e.groups);
}

// comm_size as Chakra's PyTorch converter and the STG generator write it and ASTRA-sim reads it: the
// collective's input tensor, one member's piece for an all-gather, the whole buffer for the others.
// Both ways: the export writes it so, and an importer that knows only Chakra's own attributes (the
// parallax_* ones stripped) reads back parallax's sizes.
TEST(ChakraExport, CommSizeIsTheInputTensor) {
  const model::JobGraph g = model::build_job_graph(scenario_from_text(kScenario));
  const interop::ChakraExport e = interop::export_chakra(g);
  std::map<CollectiveKind, int> checked;
  for (std::size_t r = 0; r < e.ranks.size(); ++r)
    for (const auto& n : e.ranks[r].nodes) {
      if (n.type() != chakra::COMM_COLL_NODE) continue;
      const model::Task& t = g.tasks()[n.id()];
      const auto members = e.groups.at(*traces::string_attribute(n, "pg_name")).size();
      const auto comm_size = *traces::unsigned_attribute(n, "comm_size", "x");
      const auto type = *traces::unsigned_attribute(n, "comm_type", "x");
      if (t.collective == ALL_GATHER) {
        EXPECT_EQ(type, static_cast<std::uint64_t>(chakra::ALL_GATHER));
        EXPECT_EQ(comm_size * members, t.bytes) << g.task_name(n.id());
        EXPECT_GT(members, 1u);
      } else {
        EXPECT_EQ(comm_size, t.bytes) << g.task_name(n.id());
      }
      ++checked[t.collective];
    }
  EXPECT_GT(checked[ALL_GATHER], 0);
  EXPECT_GT(checked[REDUCE_SCATTER] + checked[ALL_REDUCE], 0);

  std::vector<traces::ChakraTrace> chakra_only = e.ranks;
  for (auto& rank : chakra_only)
    for (auto& n : rank.nodes) {
      auto* attrs = n.mutable_attr();
      attrs->erase(std::remove_if(attrs->begin(), attrs->end(),
                                  [](const chakra::AttributeProto& a) { return a.name().starts_with("parallax_"); }),
                   attrs->end());
    }
  std::vector<std::string> sources;
  for (std::size_t r = 0; r < chakra_only.size(); ++r) sources.push_back("job." + std::to_string(r) + ".et");
  const interop::ChakraImport back =
      interop::import_chakra_traces(chakra_only, sources, g.scenario().cluster(), &e.groups, false, "job");
  ASSERT_EQ(back.graph.num_tasks(), g.num_tasks());
  int collectives = 0;
  for (std::uint32_t v = 0; v < g.num_tasks(); ++v) {
    const model::Task& t = g.tasks()[static_cast<std::uint32_t>(back.node_id[v])];
    const model::Task& u = back.graph.tasks()[v];
    if (t.kind != COLLECTIVE) continue;
    ++collectives;
    EXPECT_EQ(u.collective, t.collective);
    EXPECT_EQ(u.bytes, t.bytes) << g.task_name(static_cast<std::uint32_t>(back.node_id[v]));
  }
  EXPECT_GT(collectives, 0);
}

TEST(ChakraExport, RefusesAGraphUnderSymmetry) {
  Scenario sc = scenario_from_text(kScenario);
  sc.mutable_options()->set_use_symmetry(true);
  try {
    interop::export_chakra(model::build_job_graph(sc));
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("use_symmetry: false"), std::string::npos);
  }
}

// ---- the command line ----

std::string cli() {
  return PARALLAX_CLI;
}

TEST(ChakraCli, ExportThenSimulateTheExport) {
  const TempDir scratch;
  const fs::path& dir = scratch.path();
  std::ofstream(dir / "job.pbtxt") << kScenario;
  const auto exported = run_command(cli() + " export-chakra " + (dir / "job.pbtxt").string() +
                                    " -o " + (dir / "out").string());
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  EXPECT_NE(exported.out.find("on 8 ranks"), std::string::npos) << exported.out;
  const auto simulated = run_command(cli() + " simulate --chakra " + (dir / "out").string() +
                                     " --cluster dgx-a100-80g");
  ASSERT_EQ(simulated.exit_code, 0) << simulated.err;
  EXPECT_NE(simulated.out.find("8 ranks"), std::string::npos) << simulated.out;
  EXPECT_NE(simulated.out.find("step time"), std::string::npos) << simulated.out;
  EXPECT_NE(simulated.out.find("communicators from"), std::string::npos) << simulated.out;
  // The same step as simulating the scenario itself (every rank explicit there too).
  const auto a = run_command(cli() + " simulate " + (dir / "job.pbtxt").string() + " --json");
  const auto b = run_command(cli() + " simulate --chakra " + (dir / "out").string() +
                             " --cluster dgx-a100-80g --json");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  auto step = [](const std::string& json) {
    const auto at = json.find("\"step_time_s\"");
    return at == std::string::npos ? -1.0 : std::stod(json.substr(json.find(':', at) + 1));
  };
  EXPECT_GT(step(a.out), 0);
  EXPECT_NEAR(step(b.out), step(a.out), 1e-9 * step(a.out));
}

TEST(ChakraCli, SimulatesASharedTrace) {
  const auto r = run_command(
      cli() + " simulate --chakra " + (chakra_data() / "gpt-stg-dp2-tp2/workload").string() +
      " --comm-groups " + (chakra_data() / "gpt-stg-dp2-tp2/comm_groups.json").string() +
      " --cluster dgx-h100");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("4 ranks, 13,504 nodes (COMP 9,968, COMM_COLL 3,536)"), std::string::npos)
      << r.out;
}

TEST(ChakraCli, BadInputExitsWithTwoAndSaysWhy) {
  const std::string gpt = (chakra_data() / "gpt-stg-dp2-tp2/workload").string();
  auto expect_bad = [](const CommandResult& r, const std::string& needle) {
    EXPECT_EQ(r.exit_code, 2) << r.out;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  };
  expect_bad(run_command(cli() + " simulate --chakra " + gpt), "--chakra needs --cluster PRESET");
  expect_bad(run_command(cli() + " simulate --chakra /nonexistent/job --cluster dgx-h100"),
             "no file /nonexistent/job.0.et");
  expect_bad(run_command(cli() + " simulate --chakra " + gpt + " --cluster nope"),
             "no cluster preset or file \"nope\"");
  expect_bad(run_command(cli() + " simulate --chakra " + gpt +
                         " --cluster dgx-h100 --strict --comm-groups /nonexistent.json"),
             "/nonexistent.json: cannot open");
  expect_bad(
      run_command(cli() + " simulate " + (source_dir() / "scenarios/tiny-gpt-cpu.pbtxt").string() +
                  " --cluster dgx-h100"),
      "go with --chakra");
  expect_bad(run_command(cli() + " export-chakra " +
                         (source_dir() / "scenarios/tiny-gpt-cpu.pbtxt").string()),
             "no output prefix");
  const auto strict = run_command(cli() + " simulate --chakra " +
                                  (chakra_data() / "resnet50-ddp-pytorch/chakra").string() +
                                  " --cluster dgx-h100 --strict");
  expect_bad(strict, "1277 dependencies on node ids absent from the file");
}

}  // namespace
}  // namespace parallax::testing
