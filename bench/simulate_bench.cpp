// How simulation wall time grows with the cluster: GPT-3 175B (tp 8, pp 8, 64 micro-batches per
// pipeline) on 64 to 4096 A100s (dp 1 to 64), plus the bundled 175B / 1024-GPU scenario, and the
// bundled Llama 3.1 405B layout (tp 8, pp 16 x 4 virtual stages, 16 micro-batches per pipeline) from
// 1,024 to 16,384 H100s (dp 8 to 128; the global batch grows with dp, 16 sequences per pipeline).
// Each simulation runs in its own process (SimGrid's engine is once per process); the reported time
// is the simulation's own wall time, activities/s its throughput.
#include "parallax/model/job_graph.h"
#include "parallax/model/scenario.h"
#include "parallax/sim/simulate.h"

#include <benchmark/benchmark.h>

#include <string>

namespace {

using namespace parallax;

Scenario gpt3_on(int gpus) {
  const int dp = gpus / 64;
  return model::parse_scenario(
      "model { num_layers: 96 hidden_size: 12288 num_heads: 96 seq_length: 2048 vocab_size: 51200 }\n"
      "cluster { preset: \"dgx-a100-80g\" num_nodes: " + std::to_string(gpus / 8) + " }\n"
      "layout { tp: 8 pp: 8 dp: " + std::to_string(dp) + " micro_batch_size: 1 global_batch_size: " +
          std::to_string(64 * dp) + " recompute: FULL }\n",
      "gpt3-" + std::to_string(gpus), false, model::data_dir());
}

void run(benchmark::State& state, const Scenario& sc) {
  const model::JobGraph graph = model::build_job_graph(sc);
  for (auto _ : state) {
    const auto result = sim::simulate_in_subprocess(graph);
    const Report& r = result.report;
    state.SetIterationTime(r.wall_s());
    state.counters["activities"] = static_cast<double>(r.activities());
    state.counters["flows"] = static_cast<double>(r.flows());
    state.counters["activities_per_s"] = static_cast<double>(r.activities()) / r.wall_s();
    state.counters["predicted_step_s"] = r.step_time_s();
    state.counters["tasks_stored"] = static_cast<double>(graph.num_tasks());
  }
}

void BM_SimulateGpt3Scaling(benchmark::State& state) { run(state, gpt3_on(static_cast<int>(state.range(0)))); }
BENCHMARK(BM_SimulateGpt3Scaling)->Arg(64)->Arg(256)->Arg(1024)->Arg(4096)->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);

// The 405B scenario at `gpus` GPUs: its model and layout with dp = gpus / 128.
Scenario llama405_on(int gpus) {
  Scenario sc = model::load_scenario(model::data_dir() / "llama3.1-405b-16384gpu-h100.pbtxt");
  const int dp = gpus / 128;
  sc.mutable_cluster()->set_num_nodes(gpus / 8);
  sc.mutable_layout()->set_dp(dp);
  sc.mutable_layout()->set_global_batch_size(16 * dp);
  model::validate_scenario(sc, "llama3.1-405b at " + std::to_string(gpus) + " GPUs");
  return sc;
}

void BM_SimulateLlama405BScaling(benchmark::State& state) { run(state, llama405_on(static_cast<int>(state.range(0)))); }
BENCHMARK(BM_SimulateLlama405BScaling)
    ->Arg(1024)
    ->Arg(2048)
    ->Arg(4096)
    ->Arg(8192)
    ->Arg(16384)
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kSecond);

void BM_SimulateBundled175B(benchmark::State& state) {
  run(state, model::load_scenario(model::data_dir() / "gpt3-175b-1024gpu.pbtxt"));
}
BENCHMARK(BM_SimulateBundled175B)->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);

}  // namespace

BENCHMARK_MAIN();
