// parallax simulate --chakra and parallax export-chakra.
#include "chakra.h"

#include "commands.h"
#include "format.h"
#include "parallax/cli/options.h"
#include "report_json.h"

#include "parallax/interop/chakra.h"
#include "parallax/model/job_graph.h"
#include "parallax/model/job_size.h"
#include "parallax/model/presets.h"
#include "parallax/model/scenario.h"
#include "parallax/traces/chrome_trace.h"
#include "parallax/traces/io.h"

#include <algorithm>
#include <cstdio>
#include <iostream>

namespace parallax::cli {
namespace {

constexpr const char* kExportHelp = R"(usage: parallax export-chakra SCENARIO -o PREFIX

Writes the job graph of one training step of SCENARIO as MLCommons Chakra execution traces, one file
per rank (PREFIX.0.et, PREFIX.1.et, ...), and the communicators as PREFIX.comm_groups.json
({"pg_name": [ranks]}), so the same job can be given to ASTRA-sim. Every rank is written explicitly
(the graph is built without symmetry). Compute nodes carry num_ops and tensor_size; collectives
comm_type, comm_size and pg_name; pipeline transfers are COMM_SEND/COMM_RECV nodes with comm_dst /
comm_src and a comm_tag. parallax's own task fields ride along as parallax_* attributes, so
`parallax simulate --chakra PREFIX --cluster ...` reads back the same graph.

Environment: PARALLAX_MAX_TASKS=N  refuse (exit 2, before building) a job graph of more than N
             stored tasks (default 20000000, a few GiB); raise it on a machine with the memory.

Exit codes: 0 ok, 2 bad input.
)";

const char* node_type_name(int type) {
  switch (type) {
    case chakra::METADATA_NODE:
      return "METADATA";
    case chakra::MEM_LOAD_NODE:
      return "MEM_LOAD";
    case chakra::MEM_STORE_NODE:
      return "MEM_STORE";
    case chakra::COMP_NODE:
      return "COMP";
    case chakra::COMM_SEND_NODE:
      return "COMM_SEND";
    case chakra::COMM_RECV_NODE:
      return "COMM_RECV";
    case chakra::COMM_COLL_NODE:
      return "COMM_COLL";
    default:
      return "INVALID";
  }
}

void print_chakra_summary(const ChakraSimulateRequest& request, const interop::ChakraImport& imported,
                          const Report& r) {
  const auto& graph = imported.graph;
  const ClusterSpec& cluster = graph.scenario().cluster();
  interop::ChakraRankSummary total;
  for (const auto& s : imported.ranks) {
    for (std::size_t k = 0; k < s.nodes_by_type.size(); ++k)
      total.nodes_by_type[k] += s.nodes_by_type[k];
    total.dependencies += s.dependencies;
    total.dropped_dependencies += s.dropped_dependencies;
    total.bookkeeping_collectives += s.bookkeeping_collectives;
    total.measured += s.measured;
    total.costed += s.costed;
  }
  std::string types;
  for (std::size_t k = 0; k < total.nodes_by_type.size(); ++k)
    if (total.nodes_by_type[k] > 0)
      types += (types.empty() ? "" : ", ") + std::string(node_type_name(static_cast<int>(k))) +
               " " + count(total.nodes_by_type[k]);
  std::printf("trace       %s: %zu ranks, %s nodes (%s)\n", request.prefix.c_str(),
              imported.ranks.size(), count(graph.num_tasks()).c_str(), types.c_str());
  std::printf("cluster     %s: %d nodes x %d GPUs\n", cluster.name().c_str(), cluster.num_nodes(),
              cluster.gpus_per_node());
  std::printf(
      "graph       %s dependencies kept, %s dropped (ids absent from the file); %zu "
      "communicators\n",
      count(total.dependencies).c_str(), count(total.dropped_dependencies).c_str(),
      graph.communicators().size());
  std::printf(
      "compute     %s tasks timed by duration_micros, %s by the cost model from num_ops / "
      "tensor_size; "
      "%s CPU-side collective calls as bookkeeping\n",
      count(total.measured).c_str(), count(total.costed).c_str(),
      count(total.bookkeeping_collectives).c_str());
  std::printf("step time   %s predicted\n", duration(r.step_time_s()).c_str());
  if (r.hardware_flops() > 0)
    std::printf("throughput  %.3g TFLOP/s per GPU (the trace's num_ops), HFU %.1f%%\n",
                r.tflops_per_gpu(), 100 * r.hfu());
  std::printf("breakdown   per GPU, CPU-side ops left out (%% of the step)\n");
  std::printf("            %-26s %8s %8s %8s %8s\n", "", "compute", "exposed", "overlap", "idle");
  const int rows = r.breakdown_size();
  for (int i = 0; i < rows; ++i) {
    if (rows > 8 && i == 3) {
      std::printf("            ...\n");
      i = rows - 3;
    }
    const RankBreakdown& b = r.breakdown(i);
    const double s = r.step_time_s() > 0 ? r.step_time_s() : 1;
    std::printf("            rank %-21u %7.1f%% %7.1f%% %7.1f%% %7.1f%%\n", b.rank(),
                100 * b.compute_s() / s, 100 * b.exposed_comm_s() / s,
                100 * b.overlapped_comm_s() / s, 100 * (b.idle_s() + b.bubble_s()) / s);
  }
  const CriticalPath& cp = r.critical_path();
  std::printf(
      "critical    %s tasks over %d rank switches: compute %s, communication %s, waiting %s\n",
      count(cp.tasks()).c_str(), std::max(0, cp.segments_size() - 1),
      duration(cp.compute_s()).c_str(), duration(cp.comm_s()).c_str(),
      duration(cp.wait_s()).c_str());
  if (r.links_size() > 0) {
    std::printf("links       busiest:");
    for (int i = 0; i < r.links_size() && i < 4; ++i)
      std::printf("%s %s %.0f%%", i ? "," : "", r.links(i).name().c_str(),
                  100 * r.links(i).utilisation());
    std::printf("\n");
  }
  std::string algorithms;
  for (const auto& [name, n] : r.collective_algorithms())
    algorithms += (algorithms.empty() ? "" : ", ") + name + " " + count(n);
  std::printf("simulated   %s flows, %s activities in %s wall; collectives: %s\n",
              count(r.flows()).c_str(), count(r.activities()).c_str(), duration(r.wall_s()).c_str(),
              algorithms.empty() ? "none" : algorithms.c_str());
  for (const auto& note : r.notes()) std::printf("note        %s\n", note.c_str());
}

}  // namespace

int simulate_chakra(const ChakraSimulateRequest& request) {
  if (request.cluster.empty() && request.cluster_file.empty())
    throw InputError(
        "--chakra needs --cluster PRESET (e.g. --cluster dgx-h100) or --cluster-file FILE.pbtxt: a "
        "trace does not say what it ran on");
  if (!request.cluster.empty() && !request.cluster_file.empty())
    throw InputError("give either --cluster PRESET or --cluster-file FILE, not both");
  const ClusterSpec cluster = request.cluster.empty()
                                  ? model::resolve_cluster_file(request.cluster_file)
                                  : model::resolve_cluster(request.cluster);
  interop::ChakraImportOptions options;
  options.comm_groups = request.comm_groups;
  options.strict = request.strict;
  const interop::ChakraImport imported = interop::import_chakra(request.prefix, cluster, options);
  sim::SimulationOptions sim_options = request.options;
  sim_options.name_events = !request.timeline_path.empty() || !request.chrome_path.empty();
  sim::SimulationResult result = sim::simulate(imported.graph, sim_options);
  for (const auto& w : imported.warnings) result.report.add_notes(w);
  result.report.add_notes(
      "imported trace: tasks run when their dependencies are done (no per-stream serialisation "
      "beyond the trace's "
      "edges); compute nodes without duration_micros are costed as a square GEMM of num_ops "
      "operations");
  const Report& r = result.report;
  if (!request.timeline_path.empty()) traces::write_binary(request.timeline_path, result.timeline);
  if (!request.chrome_path.empty())
    traces::write_chrome_trace(request.chrome_path, {&result.timeline});
  if (request.json) {
    std::cout << report_json(r) << "\n";
  } else {
    print_chakra_summary(request, imported, r);
  }
  if (request.max_step > 0 && r.step_time_s() > request.max_step) {
    std::cerr << "parallax simulate: predicted step time " << r.step_time_s()
              << " s exceeds --max-step-time " << request.max_step << " s\n";
    return kGateFailed;
  }
  return kOk;
}

int export_chakra(const std::vector<std::string>& args) {
  std::string scenario_path, prefix;
  if (!Options("parallax export-chakra", kExportHelp)
           .output({"-o", "--output"}, prefix, "a file prefix, e.g. -o traces/job")
           .positional(scenario_path, "scenario",
                       "no scenario given; usage: parallax export-chakra SCENARIO -o PREFIX")
           .parse(args))
    return kOk;
  if (prefix.empty())
    throw InputError("no output prefix: add -o PREFIX (files PREFIX.<rank>.et are written)");
  Scenario sc = model::load_scenario(scenario_path);
  // Chakra has one file per rank: every rank explicit.
  sc.mutable_options()->set_use_symmetry(false);
  model::check_job_size(sc, scenario_path + " (export-chakra writes every rank's tasks)",
                        /*symmetry_optional=*/false);
  const model::JobGraph graph = model::build_job_graph(sc, scenario_path);
  const auto files = interop::write_chakra(interop::export_chakra(graph), prefix);
  std::printf(
      "parallax export-chakra: %s: %s tasks on %zu ranks, %s dependencies -> %s.{0..%zu}.et and "
      "%s\n",
      sc.name().c_str(), count(graph.num_tasks()).c_str(), graph.ranks().size(),
      count(graph.num_edges()).c_str(), prefix.c_str(), graph.ranks().size() - 1,
      files.back().string().c_str());
  return kOk;
}

}  // namespace parallax::cli
