// parallax calibrate: fit the cost and network models' hardware constants to a measured timeline.
#include "commands.h"
#include "format.h"
#include "parallax/cli/options.h"

#include "parallax/analysis/calibrate.h"
#include "parallax/traces/io.h"
#include "parallax/traces/json_writer.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

namespace parallax::cli {
namespace {

constexpr const char* kHelp = R"(usage: parallax calibrate MEASURED.pb [-o calibration.pbtxt] [--json]

Fits the hardware constants of the cost and network models to a measured timeline (which embeds the
scenario it ran; the job graph is rebuilt from it), starting from that scenario's cluster:
  gpu.gemm_efficiency          the GEMM table on the same grid, refitted where GEMMs were measured
  gpu.memory_bound_efficiency  from streaming kernels long enough for the overhead not to dominate
  gpu.kernel_overhead_us       from the smallest kernels, when there are enough of them
  intra_node.bandwidth_efficiency, intra_node.latency_us, nic_bandwidth_efficiency, nic_latency_us
                               from sends and ring collectives inside a node and across nodes
Only what the data supports is fitted. The result is a ClusterSpec overlay holding just those fields,
with a comment header saying what was fitted from how many tasks and the mean error of each task
kind's durations before and after; `parallax simulate SCENARIO --calibration FILE` merges it over the
scenario's cluster.

  -o FILE     write the overlay (protobuf text format); without it the overlay goes to stdout
  --json      summary as JSON (keys: scenario, events, tasks, fitted, skipped, errors, notes, output)

Exit codes: 0 ok, 2 bad input.
)";

}  // namespace

int calibrate(const std::vector<std::string>& args) {
  std::string input, output;
  bool json = false;
  if (!Options("parallax calibrate", kHelp)
           .flag("--json", json)
           .output({"-o", "--output"}, output, "a file name, e.g. -o calibration.pbtxt")
           .positional(
               input, "timeline",
               "no timeline given; usage: parallax calibrate MEASURED.pb -o calibration.pbtxt")
           .parse(args))
    return kOk;
  check_files({{"the timeline", input}}, {{"-o", output}});

  Timeline measured;
  traces::read_binary(input, measured);
  analysis::CalibrationSummary summary;
  ClusterSpec overlay;
  try {
    overlay = analysis::calibrate(measured, measured.scenario().cluster(), &summary);
  } catch (const InputError& e) {
    throw InputError(input + ": " + e.what());
  }
  if (measured.source() != Timeline::MEASURED)
    summary.notes.push_back(input + " is a PREDICTED timeline: this fits the models to their own prediction");
  const std::string text = analysis::calibration_text(overlay, summary);
  if (!output.empty()) traces::write_file_atomically(output, text);

  if (json) {
    traces::JsonWriter w;
    w.begin_object();
    w.field("scenario", summary.scenario_name).field("events", summary.events).field("tasks", summary.tasks);
    w.key("fitted").begin_array();
    for (const auto& f : summary.fitted) {
      w.begin_object();
      w.field("field", f.field).field("prior", f.prior).field("fitted", f.fitted).field("samples", f.samples);
      w.field("detail", f.detail);
      w.end_object();
    }
    w.end_array();
    w.key("skipped").begin_array();
    for (const auto& s : summary.skipped) w.value(s);
    w.end_array();
    w.key("errors").begin_array();
    for (const auto& e : summary.errors) {
      w.begin_object();
      w.field("kind", e.kind).field("samples", e.samples);
      w.field("mean_abs_error_before_s", e.mean_abs_error_before_s).field("mean_abs_error_after_s", e.mean_abs_error_after_s);
      w.field("mean_abs_error_before_pct", e.mean_abs_error_before_pct);
      w.field("mean_abs_error_after_pct", e.mean_abs_error_after_pct);
      w.end_object();
    }
    w.end_array();
    w.key("notes").begin_array();
    for (const auto& n : summary.notes) w.value(n);
    w.end_array();
    w.key("output");
    if (output.empty()) w.value(text);
    else w.value(output);
    w.end_object();
    std::cout << w.str() << "\n";
  } else if (output.empty()) {
    std::cout << text;
  } else {
    std::printf("calibrated  %s: %s events of %s tasks\n", summary.scenario_name.c_str(), count(summary.events).c_str(),
                count(summary.tasks).c_str());
    for (const auto& f : summary.fitted)
      std::printf("fitted      %s: %.4g -> %.4g from %s tasks\n", f.field.c_str(), f.prior, f.fitted,
                  count(f.samples).c_str());
    for (const auto& s : summary.skipped) std::printf("not fitted  %s\n", s.c_str());
    for (const auto& e : summary.errors)
      std::printf("error       %s (%s): mean |model - measured| %s (%.1f%%) -> %s (%.1f%%)\n", e.kind.c_str(),
                  count(e.samples).c_str(), duration(e.mean_abs_error_before_s).c_str(), e.mean_abs_error_before_pct,
                  duration(e.mean_abs_error_after_s).c_str(), e.mean_abs_error_after_pct);
    for (const auto& n : summary.notes) std::printf("note        %s\n", n.c_str());
    std::printf("wrote       %s (apply with `parallax simulate SCENARIO --calibration %s`)\n", output.c_str(),
                output.c_str());
  }
  return kOk;
}

}  // namespace parallax::cli
