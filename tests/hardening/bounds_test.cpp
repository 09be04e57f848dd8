// Jobs too big to build, and long runs: the job graph's size is known before it is built (and a job
// over the limit refused before any allocation), the memory model's schedule peaks come in closed
// form, a plan's task buffers are checked against the host before they are allocated, and long
// commands say what they cost and how far they are.
#include "parallax/analysis/timeline_analysis.h"
#include "parallax/exec/plan.h"
#include "parallax/model/job_graph.h"
#include "parallax/model/job_size.h"
#include "parallax/model/memory_model.h"
#include "parallax/model/schedule.h"
#include "parallax/planner/estimate.h"
#include "parallax/traces/io.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace parallax {
namespace {

using model::build_job_graph;
using model::estimate_job_size;
using testing::run_command;
using testing::scenario_from_text;
using testing::small_scenario_text;

std::string cli() {
  return PARALLAX_CLI;
}
std::string bundled(const std::string& name) {
  return (testing::scenarios_dir() / name).string();
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// ---- the estimate is the builder's count ----

class JobSizeMatchesBuilder : public ::testing::TestWithParam<std::string> {};

TEST_P(JobSizeMatchesBuilder, TasksExactEdgesBounded) {
  for (const bool symmetry : {true, false}) {
    const std::string extra = symmetry ? "" : "options { use_symmetry: false }\n";
    const Scenario sc = scenario_from_text(small_scenario_text(GetParam(), 1, extra));
    const model::JobSizeEstimate est = estimate_job_size(sc);
    const model::JobGraph g = build_job_graph(sc);
    EXPECT_EQ(est.tasks, g.num_tasks()) << GetParam() << (symmetry ? "" : " without symmetry");
    EXPECT_EQ(est.expanded_tasks, g.expanded_tasks()) << GetParam();
    EXPECT_EQ(est.ranks, g.ranks().size()) << GetParam();
    // Edges: an upper bound (4 per task), and not a loose one.
    EXPECT_LE(g.num_edges(), est.edges) << GetParam();
    EXPECT_GE(static_cast<double>(g.num_edges()), 0.25 * static_cast<double>(est.edges))
        << GetParam();
  }
}

// Every branch of the builder: TP with and without sequence parallelism, each ZeRO stage (with and
// without overlapped parameter gathers), each recompute, each schedule, tied and untied embeddings,
// small gradient buckets, p from 1 to 8.
INSTANTIATE_TEST_SUITE_P(
    Layouts, JobSizeMatchesBuilder,
    ::testing::Values(
        "dp: 8 global_batch_size: 16", "tp: 8 global_batch_size: 4",
        "tp: 4 dp: 2 sequence_parallel: true global_batch_size: 8",
        "tp: 2 pp: 2 dp: 2 global_batch_size: 16 recompute: FULL",
        "tp: 2 pp: 4 global_batch_size: 8 recompute: SELECTIVE sequence_parallel: true",
        "pp: 8 global_batch_size: 16 schedule: GPIPE",
        "pp: 2 dp: 4 global_batch_size: 16 schedule: INTERLEAVED_1F1B virtual_stages: 2",
        "pp: 4 dp: 2 global_batch_size: 16 schedule: INTERLEAVED_1F1B virtual_stages: 2 "
        "zero_stage: 1",
        "dp: 8 global_batch_size: 16 zero_stage: 1 overlap_param_gather: true",
        "pp: 2 dp: 4 global_batch_size: 8 zero_stage: 2",
        "pp: 2 dp: 4 global_batch_size: 8 zero_stage: 2 overlap_param_gather: true grad_bucket_mb: "
        "1",
        "tp: 2 pp: 2 dp: 2 global_batch_size: 8 zero_stage: 3 recompute: FULL",
        "pp: 2 dp: 4 global_batch_size: 8 zero_stage: 3 reshard_after_forward: false recompute: FULL",
        "pp: 4 dp: 2 global_batch_size: 8 zero_stage: 3 schedule: INTERLEAVED_1F1B virtual_stages: "
        "2",
        "dp: 8 global_batch_size: 8 grad_bucket_mb: 0.5 overlap_grad_reduce: false"));

TEST(JobSize, MatchesBuilderOnBundledScenarios) {
  for (const char* name : {"tiny-gpt-cpu.pbtxt", "gpt3-175b-1024gpu.pbtxt"}) {
    const Scenario sc = model::load_scenario(bundled(name));
    const model::JobGraph g = build_job_graph(sc);
    const model::JobSizeEstimate est = estimate_job_size(sc);
    EXPECT_EQ(est.tasks, g.num_tasks()) << name;
    EXPECT_EQ(est.expanded_tasks, g.expanded_tasks()) << name;
    EXPECT_LE(g.num_edges(), est.edges) << name;
  }
}

TEST(JobSize, UnvalidatedFieldsNeverThrowOrOverflow) {
  Scenario sc;  // everything zero
  EXPECT_NO_THROW((void)estimate_job_size(sc));
  sc.mutable_layout()->set_global_batch_size(2147483647);
  sc.mutable_layout()->set_pp(2147483647);
  sc.mutable_layout()->set_dp(2147483647);
  sc.mutable_layout()->set_tp(2147483647);
  sc.mutable_options()->set_use_symmetry(false);
  sc.mutable_model()->set_num_layers(2147483647);
  const auto start = std::chrono::steady_clock::now();
  const model::JobSizeEstimate est = estimate_job_size(sc);
  EXPECT_GT(est.tasks, model::kDefaultMaxTasks);
  EXPECT_LT(seconds_since(start), 0.5);
}

// ---- refusals come first, and fast ----

std::string tiny_with(const std::string& from, const std::string& to) {
  std::ifstream in(bundled("tiny-gpt-cpu.pbtxt"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return text.replace(at, from.size(), to);
}

void expect_refused_fast(const Scenario& sc, const std::string& source) {
  const auto start = std::chrono::steady_clock::now();
  try {
    (void)build_job_graph(sc, source);
    ADD_FAILURE() << source << ": built";
  } catch (const InputError& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind(source + ": the job graph would store ", 0), 0u) << what;
    EXPECT_NE(what.find("over the limit of 20,000,000 tasks"), std::string::npos) << what;
    EXPECT_NE(what.find("PARALLAX_MAX_TASKS"), std::string::npos) << what;
  }
  EXPECT_LT(seconds_since(start), 0.5) << source;
}

TEST(JobSizeLimit, RefusesHugeGlobalBatchesBeforeBuilding) {
  Scenario sc =
      scenario_from_text(tiny_with("global_batch_size: 16", "global_batch_size: 4000000"));
  sc.mutable_layout()->set_micro_batch_size(1);
  expect_refused_fast(sc, "gbs4m.pbtxt");
  expect_refused_fast(
      scenario_from_text(tiny_with("global_batch_size: 16", "global_batch_size: 2147483644")),
      "gbsmax.pbtxt");
}

TEST(JobSizeLimit, RefusesTheBundled175BWithoutSymmetry) {
  Scenario sc = model::load_scenario(bundled("gpt3-175b-1024gpu.pbtxt"));
  sc.mutable_options()->set_use_symmetry(false);
  expect_refused_fast(sc, "nosym.pbtxt");
  try {
    model::check_job_size(sc, "nosym.pbtxt");
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("set options.use_symmetry: true"), std::string::npos)
        << e.what();
  }
}

TEST(JobSizeLimit, TheEnvironmentRaisesOrLowersTheLimitAndIsChecked) {
  const Scenario sc = model::load_scenario(bundled("tiny-gpt-cpu.pbtxt"));
  ::setenv("PARALLAX_MAX_TASKS", "10", 1);
  EXPECT_THROW((void)build_job_graph(sc), InputError);
  ::setenv("PARALLAX_MAX_TASKS", "1e9", 1);
  try {
    (void)build_job_graph(sc);
    ADD_FAILURE() << "1e9 accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("PARALLAX_MAX_TASKS: \"1e9\" is not a whole number"),
              std::string::npos)
        << e.what();
  }
  ::setenv("PARALLAX_MAX_TASKS", "1000000000", 1);
  EXPECT_NO_THROW((void)build_job_graph(sc));
  ::unsetenv("PARALLAX_MAX_TASKS");
}

TEST(JobSizeLimit, AnEmbeddedScenarioIsCheckedBeforeTheGraphIsRebuilt) {
  Timeline timeline;
  *timeline.mutable_scenario() =
      scenario_from_text(tiny_with("global_batch_size: 16", "global_batch_size: 2000000"));
  const auto start = std::chrono::steady_clock::now();
  try {
    (void)analysis::graph_of(timeline, "m-gbs.pb");
    ADD_FAILURE() << "built";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("m-gbs.pb: scenario: the job graph would store ", 0), 0u)
        << e.what();
  }
  EXPECT_LT(seconds_since(start), 0.5);
}

TEST(JobSizeLimit, CommandsExitTwoAtOnce) {
  const testing::TempDir dir;
  const auto huge = dir / "gbs4m.pbtxt";
  std::ofstream(huge) << tiny_with("global_batch_size: 16", "global_batch_size: 4000000");
  for (const std::string command : {"inspect", "simulate"}) {
    const auto start = std::chrono::steady_clock::now();
    const auto r = run_command(cli() + " " + command + " " + huge.string());
    EXPECT_EQ(r.exit_code, 2) << command << ": " << r.err;
    EXPECT_NE(r.err.find(huge.string() + ": the job graph would store "), std::string::npos)
        << r.err;
    EXPECT_LT(seconds_since(start), 5.0) << command;
  }
  // export-chakra builds every rank: the bundled 1,024-GPU scenario is over the limit, and the
  // message does not suggest the symmetry the command cannot use.
  const auto start = std::chrono::steady_clock::now();
  const auto r = run_command(cli() + " export-chakra " + bundled("gpt3-175b-1024gpu.pbtxt") +
                             " -o " + (dir / "g3").string());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("(export-chakra writes every rank's tasks): the job graph would store"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("use_symmetry: true"), std::string::npos) << r.err;
  EXPECT_LT(seconds_since(start), 5.0);
}

// ---- exec: buffers checked against the host before allocation ----

TEST(ExecBuffers, AHugeGemmOrMessageIsRefusedNamingTheTask) {
  const model::JobGraph graph =
      build_job_graph(model::load_scenario(bundled("tiny-gpt-cpu.pbtxt")));
  EXPECT_NO_THROW(
      exec::check_task_buffers(graph, 512, 64u << 20, exec::host_memory_bytes(), "tiny"));
  parallax::JobGraph proto = graph.to_proto();
  int gemm = -1, send = -1;
  for (int i = 0; i < proto.tasks_size(); ++i) {
    if (gemm < 0 && proto.tasks(i).kind() == GEMM) gemm = i;
    if (send < 0 && proto.tasks(i).kind() == SEND) send = i;
  }
  ASSERT_GE(gemm, 0);
  ASSERT_GE(send, 0);
  parallax::JobGraph big_gemm = proto;
  big_gemm.mutable_tasks(gemm)->set_gemm_m(1000000000);
  const model::JobGraph g1 = model::JobGraph::from_proto(big_gemm, "plan-gemm.pb");
  try {
    exec::check_task_buffers(g1, 512, 64u << 20, 64.0 * (1ull << 30), "plan-gemm.pb");
    ADD_FAILURE() << "accepted";
  } catch (const InputError& e) {
    const std::string what = e.what();
    EXPECT_EQ(
        what.rfind("plan-gemm.pb: task " + std::to_string(big_gemm.tasks(gemm).id()) + " (", 0), 0u)
        << what;
    EXPECT_NE(what.find("gemm_m 1000000000"), std::string::npos) << what;
    EXPECT_NE(what.find("more than this host's 64 GiB"), std::string::npos) << what;
  }
  parallax::JobGraph big_send = proto;
  big_send.mutable_tasks(send)->set_bytes(1ull << 60);
  const model::JobGraph g2 = model::JobGraph::from_proto(big_send, "plan-bytes.pb");
  EXPECT_THROW(exec::check_task_buffers(g2, 512, 64u << 20, 64.0 * (1ull << 30), "plan-bytes.pb"),
               InputError);
}

// ---- the memory model's schedule peaks in closed form ----

struct Walked {
  double weight = 0;
  std::int64_t chunks = 0;
};
// What estimate_memory computed before: a walk over the whole materialised order.
Walked walk(const std::vector<model::PipelineStep>& order, const std::vector<double>& w) {
  Walked peak;
  double held = 0;
  std::int64_t chunks = 0;
  for (const auto& s : order) {
    held +=
        s.forward ? w[static_cast<std::size_t>(s.chunk)] : -w[static_cast<std::size_t>(s.chunk)];
    chunks += s.forward ? 1 : -1;
    if (held > peak.weight) {
      peak.weight = held;
      peak.chunks = chunks;
    }
  }
  return peak;
}

TEST(SchedulePeaks, ClosedFormEqualsTheMaterialisedSchedule) {
  int cases = 0;
  for (const auto schedule : {Layout::GPIPE, Layout::ONE_F_ONE_B, Layout::INTERLEAVED_1F1B}) {
    for (int p = 1; p <= 8; ++p) {
      for (int v = 1; v <= 4; ++v) {
        if (schedule != Layout::INTERLEAVED_1F1B && v > 1) continue;
        if (schedule == Layout::INTERLEAVED_1F1B && v < 2) continue;
        for (int m = 1; m <= 40; ++m) {
          if (schedule == Layout::INTERLEAVED_1F1B && m % p != 0)
            continue;  // Megatron's requirement
          for (int stage = 0; stage < p; ++stage) {
            const auto order = model::stage_order(schedule, p, v, m, stage);
            // Integer weights keep every sum exact; chunk 0 and the last chunk heavier, as the
            // embedding and the logits make them.
            std::vector<double> w(
                static_cast<std::size_t>(schedule == Layout::INTERLEAVED_1F1B ? v : 1));
            for (std::size_t c = 0; c < w.size(); ++c)
              w[c] = 8 + (c == 0 ? 3 : 0) + (c + 1 == w.size() ? 5 : 0);
            const Walked expected = walk(order, w);
            const model::HeldPeak got = model::peak_held(schedule, p, v, m, stage, w);
            ASSERT_EQ(got.weight, expected.weight)
                << schedule << " p" << p << " v" << v << " m" << m << " s" << stage;
            ASSERT_EQ(got.chunks, expected.chunks)
                << schedule << " p" << p << " v" << v << " m" << m << " s" << stage;
            ASSERT_EQ(model::peak_chunks_in_flight(schedule, p, v, m, stage),
                      model::max_chunks_in_flight(order));
            ++cases;
          }
        }
      }
    }
  }
  EXPECT_GT(cases, 1000);
}

TEST(SchedulePeaks, MemoryOfAHugeGlobalBatchIsImmediate) {
  Scenario sc = model::load_scenario(bundled("gpt3-175b-1024gpu.pbtxt"));
  sc.mutable_layout()->set_global_batch_size(1073741824);  // 134 M micro-batches per pipeline
  const auto start = std::chrono::steady_clock::now();
  const model::MemoryEstimate memory = model::estimate_memory(sc);
  EXPECT_LT(seconds_since(start), 0.1);
  // 1F1B: stage 0 holds p micro-batches whatever m is, as with the bundled 192.
  const model::MemoryEstimate bundled_memory =
      model::estimate_memory(model::load_scenario(bundled("gpt3-175b-1024gpu.pbtxt")));
  EXPECT_EQ(memory.stages[0].layers_in_flight, bundled_memory.stages[0].layers_in_flight);
}

TEST(PlannerEstimate, PastThousandsOfMicroBatchesItExtrapolatesTheTimedSchedule) {
  // Timed step by step up to 16384 micro-batches, extrapolated beyond: the step time must go on
  // growing by the same time per micro-batch as the timed schedule does at its end.
  for (const char* layout :
       {"pp: 4 dp: 2 micro_batch_size: 1 global_batch_size: ",
        "pp: 2 dp: 4 micro_batch_size: 1 schedule: INTERLEAVED_1F1B virtual_stages: 2 "
        "global_batch_size: "}) {
    const int dp = std::string(layout).find("dp: 2") != std::string::npos ? 2 : 4;
    auto step = [&](long long m) {
      Scenario sc = scenario_from_text(small_scenario_text(std::string(layout) + "16"));
      sc.mutable_layout()->set_global_batch_size(static_cast<std::int32_t>(m * dp));
      return planner::estimate_step(sc).step_s;
    };
    const double per_microbatch = (step(16384) - step(16384 - 64)) / 64;
    const double extrapolated = (step(16384 + 64) - step(16384)) / 64;
    EXPECT_NEAR(extrapolated, per_microbatch, 1e-6 * per_microbatch) << layout;
    const auto start = std::chrono::steady_clock::now();
    const double huge = step(100'000'000);
    EXPECT_LT(seconds_since(start), 2.0) << layout;
    EXPECT_NEAR(huge, step(16384) + (100'000'000 - 16384) * per_microbatch, 1e-4 * huge) << layout;
  }
}

// ---- long runs: quick planner, progress lines, memory first ----

TEST(LongRuns, PlanOnAHugeGlobalBatchFinishes) {
  const auto start = std::chrono::steady_clock::now();
  const auto r = run_command(
      "timeout 300 " + cli() +
      " plan gpt2-1.5b --gpus 8 --cluster dgx-a100-80g --global-batch 1073741824 --top 1");
  EXPECT_NE(r.exit_code, 124) << "timed out; stderr: " << r.err;
  EXPECT_NE(r.exit_code, 70) << r.err;
  EXPECT_LT(seconds_since(start), 120.0) << r.err;
}

TEST(LongRuns, SimulateExitsThreeBeforeSimulatingALayoutThatDoesNotFit) {
  const testing::TempDir dir;
  const auto path = dir / "nofit.pbtxt";
  std::ofstream(path) << "model { num_layers: 96 hidden_size: 12288 num_heads: 96 seq_length: 2048 "
                         "vocab_size: 51200 }\n"
                         "cluster { preset: \"dgx-a100-80g\" num_nodes: 1 }\n"
                         "layout { tp: 8 global_batch_size: 8 }\n";
  const auto r = run_command(cli() + " simulate " + path.string());
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("but the GPU has 80.0 GiB; not simulated"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(LongRuns, SimulatePrintsProgressWhenItTakesLongerThanTheInterval) {
  // 400 micro-batches: about 100,000 tasks, a second or so; stderr through a pipe, not a terminal.
  const testing::TempDir dir;
  const auto path = dir / "longer.pbtxt";
  std::ofstream(path) << tiny_with("global_batch_size: 16", "global_batch_size: 1600");
  const auto r = run_command("PARALLAX_PROGRESS_INTERVAL_S=0.001 " + cli() + " simulate " +
                             path.string() + " 2>&1 >/dev/null | cat");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("simulating: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("% of "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" tasks done, "), std::string::npos) << r.out;
  const auto bad = run_command("PARALLAX_PROGRESS_INTERVAL_S=-1 " + cli() + " simulate " +
                               bundled("tiny-gpt-cpu.pbtxt"));
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("PARALLAX_PROGRESS_INTERVAL_S: \"-1\" is not a number of seconds > 0"),
            std::string::npos)
      << bad.err;
}

}  // namespace
}  // namespace parallax
