// The host backend end to end under mpirun: --verify runs of the tiny scenarios on 2 and 4 ranks,
// the measured timeline's completeness and causality, and faults that must end the job with a message
// in bounded time (wrong world size, a corrupted transfer, a rank that dies, a rank that hangs).
#include "parallax/model/job_graph.h"
#include "parallax/model/rank_grid.h"
#include "parallax/model/scenario.h"
#include "parallax/traces/io.h"
#include "parallax/traces/lanes.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <filesystem>
#include <functional>
#include <map>
#include <set>

#include <unistd.h>

namespace parallax {
namespace {

namespace fs = std::filesystem;
using testing::run_command;

std::string mpirun(int np, const std::string& env = "") { return testing::mpirun_command(np, PARALLAX_EXEC, env); }
std::string scenario(const std::string& name) { return (testing::scenarios_dir() / name).string(); }

struct Run {
  testing::CommandResult result;
  double seconds;
};
Run timed(const std::string& command) {
  const auto t0 = std::chrono::steady_clock::now();
  auto r = run_command(command);
  return {r, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()};
}

void check_measured_timeline_of(const std::string& scenario_path, int np) {
  const testing::TempDir dir;
  const auto out = dir / "measured.pb";
  const auto run = timed(mpirun(np) + scenario_path + " --verify --warmup 1 --iterations 2 -o " + out.string());
  ASSERT_EQ(run.result.exit_code, 0) << run.result.out << run.result.err;
  Timeline measured;
  traces::read_binary(out, measured);
  EXPECT_EQ(measured.source(), Timeline::MEASURED);
  EXPECT_EQ(measured.backend(), "host");
  ASSERT_TRUE(measured.has_scenario());
  const model::JobGraph graph = model::build_job_graph(measured.scenario());
  const model::RankGrid grid = model::rank_grid(measured.scenario());
  ASSERT_EQ(static_cast<int>(grid.size()), np);
  // Every task of every rank exactly once.
  std::map<std::pair<std::uint32_t, std::uint32_t>, const TimelineEvent*> by_key;
  for (const auto& e : measured.events()) {
    EXPECT_TRUE(by_key.emplace(std::make_pair(e.rank(), e.task_id()), &e).second) << "task " << e.task_id() << " twice on rank " << e.rank();
    EXPECT_GE(e.end_s(), e.start_s()) << e.name();
    EXPECT_GE(e.start_s(), 0.0);
  }
  std::size_t expected = 0;
  for (std::uint32_t r = 0; r < grid.size(); ++r) {
    for (std::size_t i = 0; i < graph.ranks().size(); ++i)
      if (graph.ranks()[i].pp_stage == grid.stage(r)) {
        expected += graph.rank_tasks(i).size();
        for (auto id : graph.rank_tasks(i)) EXPECT_TRUE(by_key.count({r, id})) << "rank " << r << " lacks " << graph.task_name(id);
      }
  }
  EXPECT_EQ(static_cast<std::size_t>(measured.events_size()), expected);
  // Dependencies respected: a task starts after its local predecessors end (1 us of clock slack).
  for (const auto& [key, e] : by_key) {
    const auto& task = graph.tasks()[e->task_id()];
    for (auto p : graph.predecessors(e->task_id())) {
      if (graph.tasks()[p].rank != task.rank) continue;  // cross-rank: the recv's send, other clock
      const auto it = by_key.find({key.first, p});
      ASSERT_NE(it, by_key.end());
      if (task.kind == RECV) continue;
      EXPECT_LE(it->second->end_s(), e->start_s() + 1e-6) << graph.task_name(p) << " -> " << e->name();
    }
  }
}

void check_measured_timeline(const std::string& scenario_name, int np) {
  check_measured_timeline_of(scenario(scenario_name + ".pbtxt"), np);
}

TEST(ExecHost, TinyOnFourRanksVerified) { check_measured_timeline("tiny-gpt-cpu", 4); }

// Another rank order (pipeline stages adjacent, data-parallel replicas apart: the DP and embedding
// communicators come from the same group table) and an uneven split with an embedding-heavy first
// stage: every rank runs its own stage's tasks, the transfers and collectives match.
TEST(ExecHost, RankOrderAndUnevenStagesVerified) {
  const testing::TempDir dir;
  const auto path = dir / "tiny-uneven.pbtxt";
  std::string text = testing::file_text(testing::scenarios_dir() / "tiny-gpt-cpu.pbtxt");
  const auto at = text.find("schedule: ONE_F_ONE_B");
  ASSERT_NE(at, std::string::npos);
  text.insert(at, "rank_order: \"pp-dp-tp-cp-ep\" stage_layers: [3, 1]\n  ");
  std::ofstream(path) << text;
  check_measured_timeline_of(path.string(), 4);
}
TEST(ExecHost, TensorParallelOnTwoRanksVerified) { check_measured_timeline("tiny-gpt-cpu-tp2", 2); }

// Context parallelism on the host backend: cp 2 on two ranks, each holding half of every sequence,
// the attention's K/V ring as MPI send/recv pairs on the cp communicator. --verify checks every block
// a rank receives is its previous cp rank's; a corrupted send is caught by the rank receiving it.
std::string tiny_cp2_text() {
  return R"(name: "tiny-cp2"
model { num_layers: 2 hidden_size: 256 num_heads: 4 num_query_groups: 2 ffn_hidden_size: 512 seq_length: 256
        vocab_size: 1024 activation: SWIGLU normalization: RMSNORM attention_kernel: FLASH
        position_embedding: ROPE add_bias_linear: false dropout: false tied_embeddings: false precision: FP32 }
cluster { preset: "cpu-laptop" num_nodes: 1 gpus_per_node: 2
          gpu { flash_attention_efficiency { seq: [128] head_dim: [64] forward: [0.5] backward: [0.5] } } }
layout { cp: 2 micro_batch_size: 1 global_batch_size: 2 })";
}

TEST(ExecHost, ContextParallelRingOnTwoRanksVerified) {
  const testing::TempDir dir;
  const auto path = dir / "tiny-cp2.pbtxt";
  std::ofstream(path) << tiny_cp2_text();
  check_measured_timeline_of(path.string(), 2);
}

TEST(ExecHostFaults, VerifyCatchesACorruptedKvBlock) {
  const testing::TempDir dir;
  const auto path = dir / "tiny-cp2.pbtxt";
  std::ofstream(path) << tiny_cp2_text();
  const auto run = timed(mpirun(2, "PARALLAX_EXEC_FAULT=corrupt:0") + path.string() + " --verify -o " +
                         (dir / "never.pb").string());
  EXPECT_NE(run.result.exit_code, 0);
  EXPECT_NE(run.result.err.find("cp_kv_exchange"), std::string::npos) << run.result.err;
  EXPECT_NE(run.result.err.find("expected"), std::string::npos) << run.result.err;
  EXPECT_LT(run.seconds, 60);
}

// Mixture of Experts on the host backend: ep 4 over 4 ranks, the dispatch and combine as
// MPI_Ialltoall on the ep communicator, the experts as grouped GEMMs. --verify checks that every
// block a rank receives is the one its sender addressed to it, both ways (tokens to their experts,
// outputs back), forward and backward; a corrupted dispatch is caught by the rank receiving it.
std::string tiny_moe_text() {
  return R"(name: "tiny-moe"
model { num_layers: 2 hidden_size: 256 num_heads: 4 num_query_groups: 2 ffn_hidden_size: 512 seq_length: 128
        vocab_size: 1024 activation: SWIGLU normalization: RMSNORM attention_kernel: FLASH
        position_embedding: ROPE add_bias_linear: false dropout: false tied_embeddings: false precision: FP32
        num_experts: 8 moe_top_k: 2 moe_ffn_hidden_size: 256 }
cluster { preset: "cpu-laptop" num_nodes: 1 gpus_per_node: 4
          gpu { flash_attention_efficiency { seq: [128] head_dim: [64] forward: [0.5] backward: [0.5] } } }
layout { dp: 4 ep: 4 micro_batch_size: 1 global_batch_size: 4 })";
}

TEST(ExecHost, MixtureOfExpertsDispatchAndCombineOnFourRanksVerified) {
  const testing::TempDir dir;
  const auto path = dir / "tiny-moe.pbtxt";
  std::ofstream(path) << tiny_moe_text();
  check_measured_timeline_of(path.string(), 4);
}

// The all-to-all overlap (layout.moe_a2a_overlap, two micro-batches so that a forward and a backward
// run merged): the overlapped all-to-alls run on the "ep comm" lane's thread, verified.
// The tiny MoE scenario with its layout's batch and extra fields replaced, run on 4 ranks verified.
void check_tiny_moe_replacing(const std::string& name, const std::string& from, const std::string& to) {
  const testing::TempDir dir;
  const auto path = dir / (name + ".pbtxt");
  std::string text = tiny_moe_text();
  text.replace(text.find(from), from.size(), to);
  std::ofstream(path) << text;
  check_measured_timeline_of(path.string(), 4);
}
void check_tiny_moe_with(const std::string& name, const std::string& layout_end) {
  check_tiny_moe_replacing(name, "global_batch_size: 4 }", layout_end);
}

TEST(ExecHost, MixtureOfExpertsOverlappedAllToAllsOnTheirOwnLaneVerified) {
  check_tiny_moe_with("tiny-moe-overlap", "global_batch_size: 8 moe_a2a_overlap: true }");
}

// The all-gather dispatcher (layout.moe_dispatcher ALLGATHER): the dispatch and combine run as an
// all-gather and a reduce-scatter on the ep communicator, verified.
TEST(ExecHost, MixtureOfExpertsAllGatherDispatcherVerified) {
  check_tiny_moe_with("tiny-moe-allgather", "global_batch_size: 4 moe_dispatcher: ALLGATHER }");
}

// Expert tensor parallelism (layout.etp 2 beside ep 2 on 4 ranks): the tokens each rank received
// all-gathered and the partial expert outputs reduce-scattered on the expert-tp communicator, and
// the expert gradients reduced over expert dp, verified.
TEST(ExecHost, MixtureOfExpertsExpertTensorParallelVerified) {
  check_tiny_moe_replacing("tiny-moe-etp", "ep: 4", "ep: 2 etp: 2");
}

// Multi-token prediction (model.mtp_layers 1): the module's lookup, eh_proj, MoE layer and second
// output head run after the main output head on every rank, verified.
TEST(ExecHost, MultiTokenPredictionModuleVerified) {
  check_tiny_moe_replacing("tiny-moe-mtp", "num_experts: 8", "num_experts: 8 mtp_layers: 1");
}

TEST(ExecHostFaults, VerifyCatchesACorruptedDispatch) {
  const testing::TempDir dir;
  const auto path = dir / "tiny-moe.pbtxt";
  std::ofstream(path) << tiny_moe_text();
  const auto run = timed(mpirun(4, "PARALLAX_EXEC_FAULT=corrupt:0") + path.string() + " --verify -o " +
                         (dir / "never.pb").string());
  EXPECT_NE(run.result.exit_code, 0);
  EXPECT_NE(run.result.err.find("moe_dispatch"), std::string::npos) << run.result.err;
  EXPECT_NE(run.result.err.find("expected"), std::string::npos) << run.result.err;
  EXPECT_LT(run.seconds, 60);
}

// One lane table for the executors and the simulator (parallax/traces/lanes.h): the host backend runs
// every task of the tiny scenarios on the lane the simulator records for it, and that is the lane the
// table gives its task.
TEST(ExecHost, TasksRunOnTheLanesTheSimulatorRecords) {
  const auto dir = fs::temp_directory_path() / ("parallax-exec-lanes-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::set<LaneId> lanes_seen;
  for (const auto& [name, np] : {std::pair{"tiny-gpt-cpu", 4}, std::pair{"tiny-gpt-cpu-tp2", 2}}) {
    SCOPED_TRACE(name);
    const auto measured_file = dir / (std::string(name) + ".measured.pb");
    const auto predicted_file = dir / (std::string(name) + ".predicted.pb");
    const auto run =
        run_command(mpirun(np) + scenario(std::string(name) + ".pbtxt") + " --warmup 0 --iterations 1 -o " +
                    measured_file.string());
    ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
    const auto sim = run_command(std::string(PARALLAX_CLI) + " simulate " + scenario(std::string(name) + ".pbtxt") +
                                 " --timeline " + predicted_file.string());
    ASSERT_EQ(sim.exit_code, 0) << sim.err;
    Timeline measured, predicted;
    traces::read_binary(measured_file, measured);
    traces::read_binary(predicted_file, predicted);
    const model::JobGraph graph = model::build_job_graph(measured.scenario());
    std::map<std::uint32_t, LaneId> predicted_lane;
    for (const auto& e : predicted.events()) {
      ASSERT_TRUE(e.has_lane()) << "task " << e.task_id();
      predicted_lane[e.task_id()] = e.lane();
    }
    ASSERT_EQ(predicted_lane.size(), graph.num_tasks());
    for (const auto& e : measured.events()) {
      const model::Task& t = graph.tasks()[e.task_id()];
      ASSERT_TRUE(e.has_lane()) << graph.task_name(e.task_id());
      EXPECT_EQ(e.lane(), predicted_lane.at(e.task_id())) << "rank " << e.rank() << " " << graph.task_name(e.task_id());
      EXPECT_EQ(e.lane(), traces::lane_of(t.stream, t.kind, t.on_host)) << graph.task_name(e.task_id());
      lanes_seen.insert(e.lane());
    }
  }
  EXPECT_EQ(lanes_seen, (std::set<LaneId>{LANE_COMPUTE, LANE_TP_COMM, LANE_DP_COMM, LANE_PP_SEND, LANE_PP_RECV}));
  fs::remove_all(dir);
}

TEST(ExecHost, PlanFileRunsToo) {
  const testing::TempDir dir;
  const auto plan = dir / "plan.pb";
  const auto out = dir / "plan.measured.pb";
  ASSERT_EQ(run_command(std::string(PARALLAX_CLI) + " inspect " + scenario("tiny-gpt-cpu-tp2.pbtxt") + " -o " + plan.string()).exit_code, 0);
  const auto r = run_command(mpirun(2) + plan.string() + " --iterations 1 --warmup 0 -o " + out.string());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(out));
}

// The step-time error `parallax compare` reports (signed, %).
double step_error(const std::string& predicted, const std::string& measured) {
  const auto r = run_command(std::string(PARALLAX_CLI) + " compare " + predicted + " " + measured + " --json");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto at = r.out.find("\"step_time_error_pct\": ");
  if (at == std::string::npos) {
    ADD_FAILURE() << "no step_time_error_pct in " << r.out.substr(0, 400);
    return 1e9;
  }
  return std::stod(r.out.substr(at + 23));
}

TEST(ExecHost, CalibrationFromOneRunImprovesThePredictionOfAnother) {
  // Two different 2-rank scenarios (tensor + sequence parallel; a GPipe pipeline) on a cluster whose
  // prior is deliberately wrong (4x the CPU's FLOP/s and memory bandwidth): calibrating on the
  // measured first must bring the prediction of the second much closer to its measurement.
  const testing::TempDir dir;
  const std::string wrong_prior =
      "cluster { preset: \"cpu-laptop\" num_nodes: 1 gpus_per_node: 2 gpu { peak_fp32_tflops: 0.4 peak_bf16_tflops: 0.4 "
      "peak_fp16_tflops: 0.4 hbm_tb_per_s: 0.08 } }\n";
  auto variant = [&](const std::string& name) {
    std::ifstream in(testing::scenarios_dir() / (name + ".pbtxt"));
    std::stringstream text;
    text << in.rdbuf();
    // Replace the scenario's cluster block (no nested braces in these files) by the wrong prior.
    std::string s = text.str();
    const auto begin = s.find("cluster {");
    const auto end = s.find('}', begin);
    s.replace(begin, end - begin + 1, wrong_prior);
    const auto path = dir / (name + ".pbtxt");
    std::ofstream(path) << s;
    return path.string();
  };
  const auto a = variant("tiny-gpt-cpu-tp2"), b = variant("tiny-gpt-cpu-pp2");
  const auto p = [&](const std::string& f) { return (dir / f).string(); };
  ASSERT_EQ(run_command(mpirun(2) + a + " --warmup 1 --iterations 3 -o " + p("a.measured.pb")).exit_code, 0);
  ASSERT_EQ(run_command(mpirun(2) + b + " --warmup 1 --iterations 3 -o " + p("b.measured.pb")).exit_code, 0);
  const auto cal = run_command(std::string(PARALLAX_CLI) + " calibrate " + p("a.measured.pb") + " -o " + p("cal.pbtxt"));
  ASSERT_EQ(cal.exit_code, 0) << cal.err;
  EXPECT_NE(cal.out.find("gpu.gemm_efficiency"), std::string::npos) << cal.out;
  ASSERT_EQ(run_command(std::string(PARALLAX_CLI) + " simulate " + b + " --timeline " + p("b.prior.pb")).exit_code, 0);
  ASSERT_EQ(run_command(std::string(PARALLAX_CLI) + " simulate " + b + " --calibration " + p("cal.pbtxt") +
                        " --timeline " + p("b.calibrated.pb")).exit_code, 0);
  const double before = step_error(p("b.prior.pb"), p("b.measured.pb"));
  const double after = step_error(p("b.calibrated.pb"), p("b.measured.pb"));
  std::printf("step-time error of the second scenario: %+.1f%% with the prior, %+.1f%% calibrated on the first\n",
              before, after);
  // Measured on 2 cores: about -42% before and -20% to -24% after. What calibration on the TP run
  // cannot learn for the pipeline run stays: the transfer latency (every TP transfer is
  // bandwidth-bound, so it is not fitted) and the tied embedding's all-reduce across the stages. A
  // 0.6 bound holds that gain with room for the machine's noise; 1 would pass without calibration.
  EXPECT_LT(std::fabs(after), 0.6 * std::fabs(before));
  EXPECT_LT(std::fabs(after), 35.0);
}

TEST(ExecHost, CompareMeasuredWithPredicted) {
  const testing::TempDir dir;
  const auto measured = (dir / "measured.pb").string(), predicted = (dir / "predicted.pb").string();
  const auto chrome = (dir / "compare.json").string();
  ASSERT_EQ(run_command(mpirun(4) + scenario("tiny-gpt-cpu.pbtxt") + " --iterations 1 -o " + measured).exit_code, 0);
  ASSERT_EQ(run_command(std::string(PARALLAX_CLI) + " simulate " + scenario("tiny-gpt-cpu.pbtxt") + " --timeline " + predicted).exit_code, 0);
  const auto r = run_command(std::string(PARALLAX_CLI) + " compare " + predicted + " " + measured + " --chrome " + chrome);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* line : {"step time", "gemm", "memory-bound", "send", "critical"})
    EXPECT_NE(r.out.find(line), std::string::npos) << line << "\n" << r.out;
  EXPECT_TRUE(fs::file_size(chrome) > 1000);
}

TEST(ExecHostFaults, WrongWorldSizeIsRejectedByEveryRank) {
  const testing::TempDir dir;
  const auto run = timed(mpirun(3) + scenario("tiny-gpt-cpu.pbtxt") + " -o " + (dir / "never.pb").string());
  EXPECT_NE(run.result.exit_code, 0);
  EXPECT_NE(run.result.err.find("the plan is for 4 ranks (dp 2 x tp 1 x pp 2) but 3 processes were started; launch it with `mpirun -np 4"),
            std::string::npos)
      << run.result.err;
  for (int r = 0; r < 3; ++r) EXPECT_NE(run.result.err.find("rank " + std::to_string(r) + ":"), std::string::npos) << r;
  EXPECT_LT(run.seconds, 60);
}

TEST(ExecHostFaults, VerifyCatchesACorruptedTransfer) {
  const testing::TempDir dir;
  const auto run = timed(mpirun(4, "PARALLAX_EXEC_FAULT=corrupt:0") + scenario("tiny-gpt-cpu.pbtxt") +
                         " --verify -o " + (dir / "never.pb").string());
  EXPECT_NE(run.result.exit_code, 0);
  EXPECT_NE(run.result.err.find("--verify: task"), std::string::npos) << run.result.err;
  EXPECT_NE(run.result.err.find("expected"), std::string::npos);
  EXPECT_LT(run.seconds, 60);
}

TEST(ExecHostFaults, ADyingRankEndsTheJob) {
  const testing::TempDir dir;
  const auto run = timed(mpirun(4, "PARALLAX_EXEC_FAULT=die:1") + scenario("tiny-gpt-cpu.pbtxt") + " --watchdog 10 -o " + (dir / "never.pb").string());
  EXPECT_NE(run.result.exit_code, 0);
  EXPECT_NE(run.result.err.find("rank 1: injected fault: dying"), std::string::npos) << run.result.err;
  EXPECT_LT(run.seconds, 60);
}

TEST(ExecHostFaults, AHangingRankIsCaughtByTheWatchdog) {
  const testing::TempDir dir;
  const auto run = timed(mpirun(4, "PARALLAX_EXEC_FAULT=hang:2") + scenario("tiny-gpt-cpu.pbtxt") + " --watchdog 3 -o " + (dir / "never.pb").string());
  EXPECT_NE(run.result.exit_code, 0);
  EXPECT_NE(run.result.err.find("made no progress for 3 s"), std::string::npos) << run.result.err;
  EXPECT_LT(run.seconds, 60);
}

// A rank that stalls outside an iteration (start-up, a barrier, the step-time all-reduce, the final
// gather) is caught too, and the message names where. Two ranks and a 5 s limit: on a loaded machine
// the ranks' start-up (loading the CUDA libraries, MPI_Init) alone can take 2 to 3 s.
void check_stall_is_caught(const std::string& fault, const std::string& where) {
  const testing::TempDir dir;
  const auto run = timed(mpirun(2, "PARALLAX_EXEC_FAULT=" + fault) + scenario("tiny-gpt-cpu-tp2.pbtxt") +
                         " --warmup 1 --iterations 2 --watchdog 5 -o " + (dir / "never.pb").string());
  EXPECT_EQ(run.result.exit_code, 4) << run.result.err;
  EXPECT_NE(run.result.err.find("injected fault: hanging (" + fault.substr(0, fault.find(':')) + ")"), std::string::npos)
      << run.result.err;
  EXPECT_NE(run.result.err.find("made no progress for 5 s " + where), std::string::npos) << run.result.err;
  EXPECT_NE(run.result.err.find("lower it to catch a hang sooner"), std::string::npos) << run.result.err;
  EXPECT_FALSE(fs::exists(dir / "never.pb"));
  EXPECT_LT(run.seconds, 30);
}

TEST(ExecHostFaults, AStallDuringStartUpIsCaught) {
  check_stall_is_caught("hang-startup:1", "during start-up (making the communicators)");
}
TEST(ExecHostFaults, AStallAtTheBarrierIsCaught) {
  check_stall_is_caught("hang-barrier:1", "at the barrier before iteration 2 of 3");
}
TEST(ExecHostFaults, AStallAtTheStepAllReduceIsCaught) {
  check_stall_is_caught("hang-allreduce:0", "at the step-time all-reduce after iteration 2 of 3");
}
TEST(ExecHostFaults, AStallAtTheFinalGatherIsCaught) { check_stall_is_caught("hang-gather:1", "at the final gather"); }

TEST(ExecHostFaults, WatchdogValueIsAPositiveFiniteNumberOfSecondsUpToAWeek) {
  // Refused before MPI starts, so no mpirun is needed.
  const testing::TempDir dir;
  for (const char* value : {"abc", "-1", "0", "nan", "inf", "1e9", "604801"}) {
    const auto r = run_command(std::string(PARALLAX_EXEC) + " " + scenario("tiny-gpt-cpu.pbtxt") + " --watchdog " +
                               value + " -o " + (dir / "never.pb").string());
    EXPECT_EQ(r.exit_code, 2) << value << ": " << r.err;
    EXPECT_NE(r.err.find("--watchdog needs a positive number of seconds"), std::string::npos) << value << ": " << r.err;
  }
  const auto r = run_command(std::string(PARALLAX_EXEC) + " " + scenario("tiny-gpt-cpu.pbtxt") +
                             " --watchdog 1e9 -o " + (dir / "never.pb").string());
  EXPECT_NE(r.err.find("up to 604800 (a week) (got 1e+09)"), std::string::npos) << r.err;
}

// A plan whose first task of `kind` is changed by `edit`, written next to the scenario's plan.
fs::path edited_plan(const testing::TempDir& dir, TaskKind kind, const std::function<void(parallax::Task&)>& edit) {
  const auto plan = dir / "plan.pb";
  EXPECT_EQ(run_command(std::string(PARALLAX_CLI) + " inspect " + scenario("tiny-gpt-cpu.pbtxt") + " -o " + plan.string()).exit_code, 0);
  parallax::JobGraph proto;
  traces::read_binary(plan, proto);
  for (auto& t : *proto.mutable_tasks())
    if (t.kind() == kind) {
      edit(t);
      break;
    }
  const auto edited = dir / "edited.pb";
  traces::write_binary(edited, proto);
  return edited;
}

// `in_mpi`: refused by the backend after MPI started (every rank names itself, the others point to the
// rank that refused); otherwise refused by every rank before MPI starts, from the plan alone.
void check_plan_too_large(const fs::path& plan, const std::string& message, bool in_mpi = false) {
  const auto run = timed(mpirun(4) + plan.string() + " --warmup 0 --iterations 1 --watchdog 60 -o " +
                         (plan.parent_path() / "never.pb").string());
  EXPECT_EQ(run.result.exit_code, 2) << run.result.err;
  EXPECT_NE(run.result.err.find(message), std::string::npos) << run.result.err;
  EXPECT_EQ(run.result.err.find("internal error"), std::string::npos) << run.result.err;
  // Every rank says so, none waits for the watchdog.
  if (in_mpi) {
    for (int r = 0; r < 4; ++r) EXPECT_NE(run.result.err.find("rank " + std::to_string(r) + ":"), std::string::npos) << r;
  }
  EXPECT_EQ(run.result.err.find("made no progress"), std::string::npos) << run.result.err;
  EXPECT_LT(run.seconds, 40);
}

TEST(ExecHostFaults, AGemmTooLargeForTheMachineIsRefused) {
  const testing::TempDir dir;
  const auto plan = edited_plan(dir, GEMM, [](parallax::Task& t) { t.set_gemm_m(1000000000); });
  check_plan_too_large(plan, "of buffers for gemm_m 1000000000, ");
}

TEST(ExecHostFaults, AMemoryBoundTaskTooLargeForTheMachineIsRefused) {
  const testing::TempDir dir;
  const auto plan = edited_plan(dir, MEMORY_BOUND, [](parallax::Task& t) { t.set_bytes(1ull << 60); });
  check_plan_too_large(plan, "of buffers for bytes 1152921504606846976, more than this host's");
}

TEST(ExecHostFaults, ATransferBeyondAnMpiCountIsRefused) {
  const testing::TempDir dir;
  // 2^31 + 2 floats: within this machine's memory (so the plan alone passes), beyond an MPI count.
  const auto plan = edited_plan(dir, SEND, [](parallax::Task& t) { t.set_bytes((1ull << 33) + 8); });
  check_plan_too_large(plan, "transfers 8589934600 bytes; an MPI count is an int", /*in_mpi=*/true);
}

TEST(ExecHost, CudaBackendWithoutGpuSaysWhatToDo) {
  const testing::TempDir dir;
  const auto r = run_command(mpirun(2) + scenario("tiny-gpt-cpu-tp2.pbtxt") + " --backend cuda -o " + (dir / "never.pb").string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(r.err.find("use --backend host") != std::string::npos || r.err.find("without the CUDA backend") != std::string::npos)
      << r.err;
}

}  // namespace
}  // namespace parallax
