// The executor's own cost per task on the host backend: scheduling (dependency wait, stream
// dispatch) and timing (two clock reads), measured on a chain of empty memory-bound tasks on one rank
// so the work itself is nothing. Must stay under 5 us per task.
#include "parallax/exec/backend.h"
#include "parallax/model/job_graph.h"
#include "parallax/model/scenario.h"

#include <benchmark/benchmark.h>
#include <mpi.h>

namespace {

using namespace parallax;

model::JobGraph empty_chain(std::size_t n) {
  const Scenario sc = model::parse_scenario(
      "model { num_layers: 1 hidden_size: 64 num_heads: 1 seq_length: 8 vocab_size: 64 precision: FP32 }\n"
      "cluster { preset: \"cpu-laptop\" num_nodes: 1 gpus_per_node: 1 }\n"
      "layout { global_batch_size: 1 }\n",
      "bench", false, model::data_dir());
  std::vector<model::Task> tasks(n);
  std::vector<std::pair<std::uint32_t, std::uint32_t>> edges;
  std::vector<std::uint32_t> order(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    tasks[i].kind = MEMORY_BOUND;
    tasks[i].bytes = 0;
    order[i] = i;
    tasks[i].stream = COMPUTE;
    if (i > 0) edges.push_back({i - 1, i});
  }
  return model::JobGraph(sc, {{0u, 1u, 0}}, tasks, {order}, edges);
}

void BM_HostExecutorOverheadPerTask(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const model::JobGraph graph = empty_chain(n);
  const exec::RankPlan plan = exec::plan_for_rank(graph, 0);
  auto backend = exec::make_host_backend();
  exec::ExecOptions options;
  backend->prepare(graph, plan, exec::Communicators{}, options);
  std::atomic<std::uint64_t> progress{0};
  for (auto _ : state) benchmark::DoNotOptimize(backend->run_iteration(progress));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
  // Reported in microseconds per task (the counter's unit label says s: it is scaled by 1e6).
  state.counters["us_per_task"] =
      benchmark::Counter(static_cast<double>(n) * 1e-6, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_HostExecutorOverheadPerTask)->Arg(10'000)->Arg(100'000)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  MPI_Finalize();
  return 0;
}
