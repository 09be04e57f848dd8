// The planner's search without SimGrid: enumerate and prune every layout, then estimate every
// survivor, on one core. Issue 5's budget: the whole space of GPT-3 175B on 1024 A100s scored in
// under 10 s. GPT-2 1.5B on 40 GPUs (a small space) is the baseline of the same run.
//
//   cmake --build build --target parallax_bench_planner && ./build/bench/parallax_bench_planner
//
// Each case runs once in a fresh cache state (the estimator caches one-layer costs per model and
// tensor-parallel shape; a second iteration would measure the cache, not the estimator).
#include "parallax/model/presets.h"
#include "parallax/model/scenario.h"
#include "parallax/planner/estimate.h"
#include "parallax/planner/plan.h"

#include <benchmark/benchmark.h>

#include <chrono>
#include <filesystem>

namespace {

using namespace parallax;

planner::PlanRequest request_for(const char* scenario_file, const char* cluster_preset) {
  const Scenario sc = model::load_scenario(std::filesystem::path(PARALLAX_SOURCE_DIR) / "scenarios" / scenario_file);
  planner::PlanRequest request;
  request.model = sc.model();
  request.gpus = sc.cluster().num_nodes() * sc.cluster().gpus_per_node();
  request.cluster = model::resolve_cluster(cluster_preset, request.gpus);
  request.global_batch_size = sc.layout().global_batch_size();
  request.fixed = sc.layout();
  request.options = sc.options();
  return request;
}

void BM_ScoreWholeSpace(benchmark::State& state, const char* scenario_file, const char* cluster_preset) {
  const planner::PlanRequest request = request_for(scenario_file, cluster_preset);
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    planner::PruneStats stats;
    const auto layouts = planner::enumerate_layouts(request, &stats);
    double best = 1e300;
    for (const auto& sc : layouts) best = std::min(best, planner::estimate_step(sc).step_s);
    benchmark::DoNotOptimize(best);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    state.SetIterationTime(seconds);
    state.counters["enumerated"] = static_cast<double>(stats.enumerated);
    state.counters["survivors"] = static_cast<double>(stats.survivors);
    state.counters["enumerate_s"] = stats.seconds;
    state.counters["layouts_per_s"] = static_cast<double>(layouts.size()) / (seconds - stats.seconds);
    state.counters["within_10s_budget"] = seconds < 10.0 ? 1 : 0;
  }
}

}  // namespace

BENCHMARK_CAPTURE(BM_ScoreWholeSpace, gpt2_1_5b_40gpu, "gpt2-1.5b-40gpu.pbtxt", "dgx1-v100")
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ScoreWholeSpace, gpt3_175b_1024gpu, "gpt3-175b-1024gpu.pbtxt", "dgx-a100-80g")
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
