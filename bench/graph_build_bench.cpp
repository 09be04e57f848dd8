// parallax_bench_graph: how long building, serialising and ordering a job graph takes, and how much
// memory it needs, for the 1024-GPU GPT-3 175B scenario against the 40-GPU GPT-2 1.5B baseline.
//
// Counters: tasks_stored / edges_stored (what the graph holds, one representative rank per pipeline
// stage), tasks_expanded (the tasks of every rank in the job) and peak_rss_MiB, the process's
// getrusage(RUSAGE_SELF).ru_maxrss read after the runs. ru_maxrss is a high-water mark of the whole
// process, so it only grows in run order: the baseline is registered first so that its figure is
// its own; run one benchmark alone (--benchmark_filter=...) for an isolated figure of any other.
#include "parallax/model/job_graph.h"
#include "parallax/model/scenario.h"

#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <map>
#include <memory>
#include <string>

namespace {

using parallax::Scenario;
namespace model = parallax::model;

constexpr const char* kGpt2 = "scenarios/gpt2-1.5b-40gpu.pbtxt";
constexpr const char* kGpt3 = "scenarios/gpt3-175b-1024gpu.pbtxt";

// Each scenario is loaded (parsed, presets merged, validated) once, outside any timed region.
const Scenario& scenario(const std::string& relative) {
  static std::map<std::string, Scenario> loaded;
  auto it = loaded.find(relative);
  if (it == loaded.end())
    it = loaded
             .emplace(relative,
                      model::load_scenario(std::string(PARALLAX_SOURCE_DIR) + "/" + relative))
             .first;
  return it->second;
}

// The 175B graph, built once for the serialisation and ordering benchmarks.
const model::JobGraph& gpt3_graph() {
  static const std::unique_ptr<model::JobGraph> graph =
      std::make_unique<model::JobGraph>(model::build_job_graph(scenario(kGpt3)));
  return *graph;
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

void graph_counters(benchmark::State& state, const model::JobGraph& graph) {
  state.counters["tasks_stored"] = static_cast<double>(graph.num_tasks());
  state.counters["edges_stored"] = static_cast<double>(graph.num_edges());
  state.counters["tasks_expanded"] = static_cast<double>(graph.expanded_tasks());
}

void BM_BuildJobGraph(benchmark::State& state, const char* path) {
  const Scenario& sc = scenario(path);
  std::size_t tasks = 0, edges = 0;
  std::uint64_t expanded = 0;
  for (auto _ : state) {
    const model::JobGraph graph = model::build_job_graph(sc);
    tasks = graph.num_tasks();
    edges = graph.num_edges();
    expanded = graph.expanded_tasks();
    benchmark::DoNotOptimize(tasks);
  }
  state.counters["tasks_stored"] = static_cast<double>(tasks);
  state.counters["edges_stored"] = static_cast<double>(edges);
  state.counters["tasks_expanded"] = static_cast<double>(expanded);
  state.counters["peak_rss_MiB"] = peak_rss_mib();
}

// JobGraph::to_proto(): the in-memory graph to a parallax.JobGraph message (what `inspect -o`
// writes).
void BM_ToProto(benchmark::State& state) {
  const model::JobGraph& graph = gpt3_graph();
  std::size_t bytes = 0;
  for (auto _ : state) {
    const parallax::JobGraph proto = graph.to_proto();
    bytes = proto.ByteSizeLong();
    benchmark::DoNotOptimize(bytes);
  }
  graph_counters(state, graph);
  state.counters["plan_MiB"] = static_cast<double>(bytes) / (1024.0 * 1024.0);
  state.counters["peak_rss_MiB"] = peak_rss_mib();
}

// to_proto() plus the binary encoding: the whole cost of producing a plan file's bytes.
void BM_ToProtoSerialized(benchmark::State& state) {
  const model::JobGraph& graph = gpt3_graph();
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string out;
    graph.to_proto().SerializeToString(&out);
    bytes = out.size();
    benchmark::DoNotOptimize(out.data());
  }
  graph_counters(state, graph);
  state.counters["plan_MiB"] = static_cast<double>(bytes) / (1024.0 * 1024.0);
  state.counters["peak_rss_MiB"] = peak_rss_mib();
}

void BM_TopologicalOrder(benchmark::State& state) {
  const model::JobGraph& graph = gpt3_graph();
  for (auto _ : state) {
    auto order = graph.topological_order();
    benchmark::DoNotOptimize(order.data());
  }
  graph_counters(state, graph);
  state.counters["peak_rss_MiB"] = peak_rss_mib();
}

// Registration order is run order (see the note on peak RSS above): baseline first.
BENCHMARK_CAPTURE(BM_BuildJobGraph, gpt2_1_5b_40gpu, kGpt2)->Unit(benchmark::kMillisecond);
// The 175B runs take 0.2-0.7 s an iteration: a longer minimum time gives them several iterations.
BENCHMARK_CAPTURE(BM_BuildJobGraph, gpt3_175b_1024gpu, kGpt3)
    ->Unit(benchmark::kMillisecond)
    ->MinTime(3.0);
BENCHMARK(BM_ToProto)
    ->Name("BM_ToProto/gpt3_175b_1024gpu")
    ->Unit(benchmark::kMillisecond)
    ->MinTime(3.0);
BENCHMARK(BM_ToProtoSerialized)
    ->Name("BM_ToProtoSerialized/gpt3_175b_1024gpu")
    ->Unit(benchmark::kMillisecond)
    ->MinTime(3.0);
BENCHMARK(BM_TopologicalOrder)
    ->Name("BM_TopologicalOrder/gpt3_175b_1024gpu")
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
