// Calibration: fit the hardware constants of the cost and network models to a measured timeline.
//
// The result is a ClusterSpec OVERLAY: only the fields the data supports are set, and merged over
// the scenario's cluster (apply_calibration) they make the models reproduce the measurement:
//  - gpu.kernel_overhead_us: the median, over memory-bound tasks whose streaming time bytes / HBM bw
//    is under 10% of their duration, of the duration less the modelled memory time;
//  - gpu.memory_bound_efficiency: the median of bytes / (HBM bw * (duration - overhead)) over
//    memory-bound tasks limited by memory (not by their elementwise FLOPs) whose overhead is under
//    half their duration (these two are iterated to a fixed point);
//  - gpu.gemm_efficiency: the prior's grid, refitted. Each GEMM that is neither overhead- nor
//    memory-dominated gives an achieved efficiency e = flops / (peak * (duration - overhead)); the grid
//    values x minimise sum_i (sum_j w_ij x_j - e_i)^2 + ridge * sum_j ((x_j - prior_j) / prior_j)^2
//    * mean(prior)^2, with w_ij the cost model's trilinear-in-log2 interpolation weights
//    (gemm_table_weights), with the ridge pulling toward the prior scaled by the median measured/prior
//    ratio, so grid points without data follow the machine's overall ratio; clamped to (0, 1];
//  - intra_node.bandwidth_efficiency / latency_us and nic_bandwidth_efficiency / nic_latency_us: sends
//    and ring collectives whose group is inside one node (intra) or one GPU per node (inter) follow
//    t = steps * latency + wire_bytes / bandwidth (send: 1 step, S bytes; ring all-reduce 2(n-1)
//    steps, 2(n-1)/n S, the nccl-tests bus-bandwidth convention; reduce-scatter / all-gather n-1 steps,
//    (n-1)/n S). A send is timed by the shorter of it and its recv, a collective by its fastest
//    member (the last to arrive; members matched by issue order on the communicator). With sizes
//    spread enough and the latency visible both are fitted by (relative, outlier-trimmed) least
//    squares, else the bandwidth alone, with the prior's latency, as sum(t - latency) / sum(bytes)
//    (the model then gives their measured total time). Efficiency = bandwidth / spec
//    (intra_node.gb_per_s, nic_gbit_per_s); a bandwidth above the spec is capped at efficiency 1 and
//    reported. All-reduces that NCCL would run as a tree (small, n >= 3) are left out.
// Every parameter needs a minimum number of samples (CalibrationOptions); what was fitted from how
// many tasks, what was not and why, and the mean absolute error of each task kind's durations under
// the models before and after, go to CalibrationSummary.
#pragma once

#include "parallax/parallax.pb.h"

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace parallax::analysis {

struct FittedParameter {
  std::string field;     // as in ClusterSpec: "gpu.memory_bound_efficiency", "intra_node.latency_us", ...
  double prior = 0;      // gpu.gemm_efficiency: the mean over the grid points with data
  double fitted = 0;
  std::uint64_t samples = 0;  // tasks (compute: distinct task ids) or events (communication)
  std::string detail;         // how, and whether a value was clamped
};

struct KindError {
  std::string kind;  // "gemm", "memory-bound", "send intra-node", "collective inter-node", ...
  std::uint64_t samples = 0;
  double mean_abs_error_before_s = 0, mean_abs_error_after_s = 0;
  double mean_abs_error_before_pct = 0, mean_abs_error_after_pct = 0;  // of |model - measured| / measured
};

struct CalibrationSummary {
  std::string scenario_name;
  std::uint64_t events = 0;  // measured events read
  std::uint64_t tasks = 0;   // distinct task ids among them
  std::vector<FittedParameter> fitted;
  std::vector<std::string> skipped;  // "field: why it was not fitted"
  std::vector<KindError> errors;
  std::vector<std::string> notes;
  // Per GEMM grid point (the efficiency array's order): the sum of the samples' interpolation weights
  // on it, i.e. how much data pins it (0: it follows the scaled prior).
  std::vector<double> gemm_support;
};

struct CalibrationOptions {
  int min_overhead_samples = 20;
  int min_memory_samples = 10;
  int min_gemm_samples = 8;
  int min_network_samples = 4;  // per domain; twice as many to fit the latency as well
  double gemm_ridge = 1e-2;
};

// Fits the overlay to `measured` (which must embed its scenario: the job graph is rebuilt from it, by
// graph_of);
// `prior` is the full cluster the rates start from (normally measured.scenario().cluster()).
// Throws InputError when the timeline has no scenario (or is of an imported trace, whose scenario has no
// model) or an event names an unknown task or rank.
ClusterSpec calibrate(const Timeline& measured, const ClusterSpec& prior, CalibrationSummary* summary = nullptr,
                      const CalibrationOptions& options = {});

// `base` with `overlay` merged on top; an overlay GEMM table replaces base's (MergeFrom would append
// its repeated fields).
ClusterSpec apply_calibration(const ClusterSpec& base, const ClusterSpec& overlay);

// The scenario with `overlay` merged over its cluster and validated again. Throws InputError naming
// `overlay_name` when the result is not a valid scenario.
Scenario calibrated_scenario(const Scenario& scenario, const ClusterSpec& overlay, const std::string& overlay_name);

// The fields an overlay sets, dotted ("gpu.memory_bound_efficiency", "intra_node.latency_us", ...).
std::vector<std::string> overlay_fields(const ClusterSpec& overlay);

// The overlay as a commented protobuf text file: kOverlayFirstLine, a '#' header saying what was
// fitted from how many tasks and the errors before and after, the fields, and a last line
// kOverlayLastLine + "N fields" (N = overlay_fields().size()), by which a reader tells a whole file
// from one cut short.
inline constexpr const char* kOverlayFirstLine =
    "# parallax calibration overlay (parallax.ClusterSpec, protobuf text format)";
inline constexpr const char* kOverlayLastLine = "# end of overlay: ";
std::string calibration_text(const ClusterSpec& overlay, const CalibrationSummary& summary);

// An overlay file as `parallax simulate --calibration` reads it: text format (or JSON for a .json
// name). When it starts with kOverlayFirstLine (what calibration_text writes) its last line must be
// kOverlayLastLine with its field count, so that a truncated file is refused rather than applied in
// part; an overlay without that first line (written by hand) is read as it is. Throws InputError
// naming the file.
ClusterSpec read_calibration(const std::filesystem::path& path);
// The same from text in protobuf text format; `name` stands for the file in messages.
ClusterSpec parse_calibration(const std::string& text, const std::string& name);

}  // namespace parallax::analysis
