// parallax simulate: predicted step time, where the time goes, and why.
#include "chakra.h"
#include "commands.h"
#include "format.h"
#include "model_options.h"
#include "parallax/cli/options.h"
#include "report_json.h"

#include "parallax/analysis/calibrate.h"
#include "parallax/model/job_graph.h"
#include "parallax/model/job_size.h"
#include "parallax/model/memory_model.h"
#include "parallax/model/scenario.h"
#include "parallax/sim/simulate.h"
#include "parallax/traces/chrome_trace.h"
#include "parallax/traces/io.h"

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>

namespace parallax::cli {
namespace {

// Jobs from this many stored tasks (several seconds of simulation) announce their size first.
constexpr std::uint64_t kAnnounceTasks = 1'000'000;

constexpr const char* kHelp = R"(usage: parallax simulate SCENARIO [options]
       parallax simulate --chakra PREFIX --cluster PRESET [--comm-groups FILE.json] [--strict] [options]
       parallax simulate --chakra PREFIX --cluster-file FILE.pbtxt [...]

Simulates one training step of SCENARIO on its cluster with SimGrid and reports the predicted step
time, TFLOP/s per GPU, MFU/HFU, tokens/s, a per-rank breakdown (compute, exposed and overlapped
communication, pipeline bubble, idle), the critical path, the busiest links and memory per GPU.

  --json                 machine-readable report (keys: step_time_s, tflops_per_gpu, mfu, hfu,
                         tokens_per_s, breakdown, critical_path, links, peak_memory_bytes, fits, ...)
  --timeline FILE.pb     save the predicted Timeline (protobuf binary)
  --chrome FILE.json     save the timeline as Chrome Trace Event JSON (open in https://ui.perfetto.dev)
  --max-step-time S      exit 1 when the predicted step time exceeds S seconds (a CI gate)
  --algorithm A          collective algorithm: auto (default, NCCL-style choice), ring, tree,
                         hierarchical
  --calibration FILE     merge a cluster overlay from `parallax calibrate` (ClusterSpec, text or
                         JSON) over the scenario's cluster before simulating
  --chakra PREFIX        simulate MLCommons Chakra execution traces PREFIX.<rank>.et (gzip or not)
                         instead of a scenario; needs --cluster PRESET (a preset name)
  --cluster-file FILE    Chakra: a ClusterSpec file (text or JSON) instead of --cluster PRESET
  --comm-groups FILE     Chakra communicators {"pg_name": [ranks], ...} (default PREFIX.comm_groups.json
                         when it exists, else every collective runs on all ranks)
  --strict               Chakra: a dependency on a node absent from its file is an error (default:
                         dropped and counted in a note)
)";

constexpr const char* kHelpEnd = R"(
A layout that does not fit in GPU memory exits 3 before simulating. A long simulation prints
"simulating: 41% of N tasks done, 12 s elapsed" to stderr every 10 s.

Environment: PARALLAX_MAX_TASKS=N  refuse (exit 2, before building) a job graph of more than N
             stored tasks (default 20000000, a few GiB); raise it on a machine with the memory.
             PARALLAX_PROGRESS_INTERVAL_S=S  seconds between progress lines (default 10).

Exit codes: 0 ok, 1 step time over --max-step-time, 2 bad input, 3 does not fit in memory.
)";

void print_summary(const Scenario& sc, const model::Dims& d, const Report& r) {
  std::printf("scenario    %s: %s on %d GPUs (%s)\n", sc.name().c_str(),
              model_label(sc.model()).c_str(), r.gpus(), sc.cluster().name().c_str());
  std::printf("layout      dp %lld x tp %lld x pp %lld%s%s, %s, %lld micro-batches of %lld, recompute %s, ZeRO %d\n",
              static_cast<long long>(d.d), static_cast<long long>(d.t), static_cast<long long>(d.p),
              d.v > 1 ? (" x v " + std::to_string(d.v)).c_str() : "", d.c > 1 ? (" x cp " + std::to_string(d.c)).c_str() : "", schedule_name(sc.layout().schedule()),
              static_cast<long long>(d.m), static_cast<long long>(d.b), recompute_name(sc.layout().recompute()),
              sc.layout().zero_stage());
  std::printf("step time   %s predicted\n", duration(r.step_time_s()).c_str());
  std::printf("throughput  %.3g TFLOP/s per GPU (hardware FLOPs), MFU %.1f%%, HFU %.1f%%, %s tokens/s\n",
              r.tflops_per_gpu(), 100 * r.mfu(), 100 * r.hfu(), si(r.tokens_per_s(), "").c_str());
  if (r.has_time_to_train_s())
    std::printf("training    %s tokens in %s\n", si(r.token_budget(), "").c_str(), duration(r.time_to_train_s()).c_str());

  std::printf("breakdown   per GPU, one row per pipeline stage (%% of the step)\n");
  std::printf("            %-26s %8s %8s %8s %8s %8s\n", "", "compute", "exposed", "overlap", "bubble", "idle");
  const int rows = r.breakdown_size();
  for (int i = 0; i < rows; ++i) {
    if (rows > 8 && i == 3) {
      std::printf("            ...\n");
      i = rows - 3;
    }
    const RankBreakdown& b = r.breakdown(i);
    char label[64];
    std::snprintf(label, sizeof label, "stage %d (rank %u, x%u)", b.pp_stage(), b.rank(), b.multiplicity());
    const double s = r.step_time_s();
    std::printf("            %-26s %7.1f%% %7.1f%% %7.1f%% %7.1f%% %7.1f%%\n", label, 100 * b.compute_s() / s,
                100 * b.exposed_comm_s() / s, 100 * b.overlapped_comm_s() / s, 100 * b.bubble_s() / s,
                100 * b.idle_s() / s);
  }
  const CriticalPath& cp = r.critical_path();
  std::vector<std::pair<double, std::string>> ops;
  for (const auto& [op, t] : cp.by_op()) ops.push_back({t, op});
  std::sort(ops.rbegin(), ops.rend());
  std::printf("critical    %s tasks over %d rank switches: compute %s, communication %s, waiting %s\n",
              count(cp.tasks()).c_str(), std::max(0, cp.segments_size() - 1), duration(cp.compute_s()).c_str(),
              duration(cp.comm_s()).c_str(), duration(cp.wait_s()).c_str());
  std::string top;
  for (std::size_t i = 0; i < ops.size() && i < 5; ++i)
    top += (i ? ", " : "") + ops[i].second + " " + duration(ops[i].first);
  std::printf("            top: %s\n", top.c_str());
  if (r.links_size() > 0) {
    std::printf("links       busiest:");
    for (int i = 0; i < r.links_size() && i < 4; ++i)
      std::printf("%s %s %.0f%%", i ? "," : "", r.links(i).name().c_str(), 100 * r.links(i).utilisation());
    std::printf("\n");
  }
  std::printf("contention  %s of communication time lost to shared links (summed over transfers)\n",
              r.contention_delay_s() < 1e-9 ? "none" : duration(r.contention_delay_s()).c_str());
  std::printf("memory      peak %s of %s per GPU -> %s\n", gib(r.peak_memory_bytes()).c_str(),
              gib(r.memory_capacity_bytes()).c_str(), r.fits() ? "fits" : "DOES NOT FIT");
  std::string algorithms;
  for (const auto& [name, n] : r.collective_algorithms()) algorithms += (algorithms.empty() ? "" : ", ") + name + " " + count(n);
  std::printf("simulated   %s flows, %s activities in %s wall; collectives: %s\n", count(r.flows()).c_str(),
              count(r.activities()).c_str(), duration(r.wall_s()).c_str(), algorithms.c_str());
  for (const auto& note : r.notes()) std::printf("note        %s\n", note.c_str());
}

}  // namespace

int simulate(const std::vector<std::string>& args) {
  std::string scenario_path, timeline_path, chrome_path, calibration_path;
  ChakraSimulateRequest chakra;
  bool json = false;
  double max_step = 0;
  sim::SimulationOptions options;
  ModelOptions model_options;
  Options parser("parallax simulate", std::string(kHelp) + ModelOptions::help() + kHelpEnd);
  parser.flag("--json", json)
           .output("--timeline", timeline_path, "a file name, e.g. --timeline predicted.pb")
           .output("--chrome", chrome_path, "a file name, e.g. --chrome trace.json")
           .number("--max-step-time", max_step, Options::Sign::kPositive, "a number of seconds",
                   "seconds")
           .text("--calibration", calibration_path,
                 "a calibration file, e.g. --calibration calibration.pbtxt")
           .text("--chakra", chakra.prefix,
                 "a trace prefix, e.g. --chakra traces/workload (for traces/workload.0.et, ...)")
           .text("--cluster", chakra.cluster, "a cluster preset, e.g. --cluster dgx-h100")
           .text("--cluster-file", chakra.cluster_file,
                 "a ClusterSpec file, e.g. --cluster-file my-cluster.pbtxt")
           .text("--comm-groups", chakra.comm_groups,
                 "a JSON file, e.g. --comm-groups comm_groups.json")
           .flag("--strict", chakra.strict)
           .value(
               "--algorithm",
               [&](const std::string& v) { options.algorithm = sim::parse_algorithm(v); },
               "auto, ring, tree or hierarchical")
           .positional(scenario_path, "scenario");
  if (!model_options.declare(parser).parse(args)) return kOk;
  check_files({{"the scenario", scenario_path},
               {"--hf-config", model_options.hf_config},
               {"--calibration", calibration_path},
               {"--cluster", chakra.cluster},
               {"--cluster-file", chakra.cluster_file},
               {"--comm-groups", chakra.comm_groups}},
              {{"--timeline", timeline_path}, {"--chrome", chrome_path}});
  if (!chakra.prefix.empty()) {
    if (!scenario_path.empty() || !calibration_path.empty())
      throw InputError("--chakra replaces the scenario: give either SCENARIO or --chakra PREFIX --cluster PRESET");
    if (!model_options.hf_config.empty() || model_options.seq > 0)
      throw InputError("--hf-config and --seq replace a scenario's model; a Chakra trace (--chakra) has no model "
                       "block to replace");
    chakra.json = json;
    chakra.timeline_path = timeline_path;
    chakra.chrome_path = chrome_path;
    chakra.max_step = max_step;
    chakra.options = options;
    return simulate_chakra(chakra);
  }
  if (!chakra.cluster.empty() || !chakra.cluster_file.empty() || !chakra.comm_groups.empty() ||
      chakra.strict)
    throw InputError(
        "--cluster, --cluster-file, --comm-groups and --strict go with --chakra PREFIX (a scenario "
        "names its own cluster)");
  if (scenario_path.empty()) throw InputError("no scenario given; usage: parallax simulate SCENARIO [--json]");
  options.name_events = !timeline_path.empty() || !chrome_path.empty();

  Scenario sc = load_scenario(scenario_path, model_options.replacement());
  std::string calibrated;
  if (!calibration_path.empty()) {
    // Refuses an overlay `parallax calibrate` wrote that was cut short (it would apply in part).
    const ClusterSpec overlay = analysis::read_calibration(calibration_path);
    sc = analysis::calibrated_scenario(sc, overlay, calibration_path);
    for (const auto& f : analysis::overlay_fields(overlay)) calibrated += (calibrated.empty() ? "" : ", ") + f;
  }
  const model::Dims d = model::dims(sc);
  // Memory first: a layout that does not fit is reported in milliseconds, not after simulating it.
  const model::MemoryEstimate memory = model::estimate_memory(sc);
  if (!memory.fits()) {
    std::cerr << "parallax simulate: " << scenario_path << ": the layout needs "
              << gib(memory.peak().total()) << " per GPU on pipeline stage " << memory.peak().stage
              << " but the GPU has " << gib(memory.capacity)
              << "; not simulated (`parallax inspect` shows the breakdown). Try recompute, more "
                 "pipeline or tensor "
                 "parallelism, a smaller micro_batch_size, or ZeRO\n";
    return kDoesNotFit;
  }
  // The size check comes before any allocation; a big job says what it costs before it starts.
  model::check_job_size(sc, scenario_path);
  if (const model::JobSizeEstimate size = model::estimate_job_size(sc);
      size.tasks >= kAnnounceTasks) {
    std::cerr << "parallax simulate: " << scenario_path << ": simulating " << count(size.tasks)
              << " tasks (" << count(size.expanded_tasks) << " in the whole job); progress every "
              << sim::progress_interval_s() << " s\n";
    std::cerr.flush();
  }
  options.progress = true;
  const model::JobGraph graph = model::build_job_graph(sc, scenario_path);
  sim::SimulationResult result = sim::simulate(graph, options);
  if (!calibration_path.empty())
    result.report.add_notes("calibrated from " + calibration_path + ": " + (calibrated.empty() ? "no fields" : calibrated));
  const Report& r = result.report;

  if (!timeline_path.empty()) traces::write_binary(timeline_path, result.timeline);
  if (!chrome_path.empty()) traces::write_chrome_trace(chrome_path, {&result.timeline});
  if (json) {
    std::cout << report_json(r) << "\n";
  } else {
    print_summary(sc, d, r);
  }
  if (!r.fits()) {  // checked above; kept for a report that disagrees with the memory model
    std::cerr << "parallax simulate: " << scenario_path << ": the layout needs " << gib(r.peak_memory_bytes())
              << " per GPU but the GPU has " << gib(r.memory_capacity_bytes())
              << "; the step time assumes it fits. Try recompute, more pipeline or tensor parallelism, a smaller "
                 "micro_batch_size, or ZeRO\n";
    return kDoesNotFit;
  }
  if (max_step > 0 && r.step_time_s() > max_step) {
    std::cerr << "parallax simulate: predicted step time " << r.step_time_s() << " s exceeds --max-step-time "
              << max_step << " s\n";
    return kGateFailed;
  }
  return kOk;
}

}  // namespace parallax::cli
