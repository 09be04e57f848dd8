// parallax validate: predictions against published measured runs.
#include "commands.h"
#include "format.h"
#include "parallax/cli/options.h"

#include "parallax/model/job_graph.h"
#include "parallax/model/validation_table.h"
#include "parallax/sim/simulate.h"
#include "parallax/traces/io.h"
#include "parallax/traces/json_writer.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

namespace parallax::cli {
namespace {

constexpr const char* kHelp = R"(usage: parallax validate TABLE.tsv [--json] [--only ID[,ID...]] [--max-mape PCT] [--max-pair-error PCT]
                         [--scenarios-dir DIR]

Builds the scenario of every row of TABLE.tsv (the format of validation/public.tsv or
validation/modern.tsv: a header row naming the columns, '#' lines are comments) on the bundled
cluster presets, simulates one training step and prints predicted vs measured iteration time and the
error per row, then the mean absolute percentage error (MAPE). Every row uses the same physical
constants (GPU efficiency tables, link bandwidths and latencies): nothing is fitted per row.

FP8/BF16 pairs (two rows of one run but for the precision, as MR27/MR28) are listed after the MAPE
with the measured and the predicted speed-up of FP8 and the error of that ratio.

A row whose run uses what parallax does not model yet (mixture of experts, a GPU without a preset, a
feature the scenario loader refuses) is reported as "not modelled: <why>"
and left out of the MAPE. Where a row says '?' (the source does not say), the framework's default
is used and printed under the row.

  --json            {"rows": [{"id", "measured_iter_s", "predicted_iter_s", "error_pct", ...}], "mape_pct"}
  --only IDS        only the rows with these ids (comma-separated; each must be in the table)
  --scenarios-dir DIR  write the scenario of each modelled row as DIR/ID.pbtxt (to simulate, inspect or
                    plan one row on its own: parallax simulate DIR/MR27.pbtxt)
  --max-mape PCT    exit 1 when the MAPE exceeds PCT percent or a selected row is not modelled (a CI
                    gate: it passes only on every selected row predicted)
  --max-pair-error PCT  exit 1 when a predicted FP8/BF16 speed-up is off its measured one by more than
                    PCT percent

Exit codes: 0 ok, 1 MAPE over --max-mape or a row not modelled under --max-mape, 2 bad input (a
malformed table, an --only id the table lacks, a row that gave no comparison for another reason than
"not modelled", or no row compared at all).
)";

struct RowResult {
  model::ValidationRow row;
  bool ok = false;
  bool not_modelled = false;  // problem is the feature parallax does not model
  std::string problem;  // why there is no number
  double predicted_s = 0, error_pct = 0, predicted_tflops = 0, mfu = 0, wall_s = 0;
  bool fits = true;
};

}  // namespace

int validate(const std::vector<std::string>& args) {
  std::string table_path;
  std::optional<std::string> only;  // given, even empty: then it must name ids
  bool json = false;
  double max_mape = 0, max_pair_error = 0;
  std::string scenarios_dir;
  if (!Options("parallax validate", kHelp)
           .flag("--json", json)
           .value(
               "--only", [&](const std::string& ids) { only = ids; },
               "row ids, e.g. --only N1,K2")
           .value(
               "--scenarios-dir", [&](const std::string& dir) { scenarios_dir = dir; },
               "a directory, e.g. --scenarios-dir rows")
           .number("--max-mape", max_mape, Options::Sign::kNonNegative,
                   "a percentage, e.g. --max-mape 10")
           .number("--max-pair-error", max_pair_error, Options::Sign::kNonNegative,
                   "a percentage, e.g. --max-pair-error 5")
           .positional(table_path, "table",
                       "no table given; usage: parallax validate TABLE.tsv [--json]")
           .parse(args))
    return kOk;

  auto rows = model::read_validation_table(table_path);
  if (only) rows = model::select_validation_rows(rows, *only, table_path);
  std::vector<RowResult> results;
  for (const auto& row : rows) {
    RowResult res;
    res.row = row;
    try {
      const Scenario sc = model::validation_scenario(row);
      if (!scenarios_dir.empty()) {
        std::filesystem::create_directories(scenarios_dir);
        traces::write_file_atomically(std::filesystem::path(scenarios_dir) / (row.id + ".pbtxt"),
                           "# " + row.model + " (" + table_path + ", row " + row.id + ")\n" + model::validation_row_text(row));
      }
      const model::JobGraph graph = model::build_job_graph(sc);
      // One process per simulation: SimGrid's engine is once per process.
      const auto sim = sim::simulate_in_subprocess(graph);
      res.predicted_s = sim.report.step_time_s();
      res.fits = sim.report.fits();
      res.mfu = sim.report.mfu();
      res.wall_s = sim.report.wall_s();
      // TFLOP/s in the row's convention: Narayanan counts the recompute forward (hw96).
      const double flops = row.flops_convention == "mf72" ? sim.report.model_flops() : sim.report.hardware_flops();
      res.predicted_tflops = flops / sim.report.gpus() / res.predicted_s / 1e12;
      if (!std::isfinite(res.predicted_s) || !(res.predicted_s > 0)) {
        // A step time of 0, NaN or inf is no prediction: it must not enter the MAPE.
        char step[32];
        std::snprintf(step, sizeof step, "%g s", res.predicted_s);
        res.problem = std::string("the simulation gave a step time of ") + step;
      } else if (row.measured_iter_s > 0) {
        res.error_pct = 100.0 * (res.predicted_s - row.measured_iter_s) / row.measured_iter_s;
        res.ok = true;
      } else {
        res.problem = "no measured_iter_s in the table";
      }
      if (!res.fits) {
        res.ok = false;
        res.problem = "does not fit in GPU memory (" + gib(sim.report.peak_memory_bytes()) + " of " +
                      gib(sim.report.memory_capacity_bytes()) + ") though it ran: the memory model is wrong here";
      }
    } catch (const model::RowNotModelled& e) {
      res.not_modelled = true;
      res.problem = std::string("not modelled: ") + e.what();
    } catch (const InputError& e) {
      res.problem = e.what();
    } catch (const std::exception& e) {
      res.problem = std::string("simulation failed: ") + e.what();
    }
    if (!json) {
      if (results.empty())
        std::printf("%-5s %5s %-22s %10s %10s %8s %9s %9s %7s\n", "id", "GPUs", "layout (tp pp dp v)", "measured",
                    "predicted", "error", "TFLOP/s", "measured", "wall");
      const auto& r = res.row;
      char layout[64];
      std::snprintf(layout, sizeof layout, "%d %d %d %d %s%s%s", r.tp, r.pp, r.dp, r.vpp, r.recompute.c_str(),
                    r.sp ? "+sp" : "", r.cp > 1 ? (" cp" + std::to_string(r.cp)).c_str() : "");
      if (res.ok) {
        char measured_tflops[16] = "-";
        if (r.measured_tflops_per_gpu > 0) std::snprintf(measured_tflops, sizeof measured_tflops, "%.0f", r.measured_tflops_per_gpu);
        std::printf("%-5s %5d %-22s %9.2fs %9.2fs %+7.1f%% %9.0f %9s %6.1fs\n", r.id.c_str(), r.gpus(), layout,
                    r.measured_iter_s, res.predicted_s, res.error_pct, res.predicted_tflops, measured_tflops, res.wall_s);
      } else {
        std::printf("%-5s %5d %-22s %s\n", r.id.c_str(), r.gpus(), layout, res.problem.c_str());
      }
      for (const auto& a : r.assumed) std::printf("      assumed: %s\n", a.c_str());
      std::fflush(stdout);
    }
    results.push_back(res);
  }
  double sum = 0;
  int n = 0, not_modelled = 0;
  std::string not_modelled_ids;
  for (const auto& r : results) {
    if (r.ok) {
      sum += std::fabs(r.error_pct);
      ++n;
    }
    if (r.not_modelled) {
      ++not_modelled;
      not_modelled_ids += (not_modelled_ids.empty() ? "" : ", ") + r.row.id;
    }
  }
  const double mape = n ? sum / n : 0;
  // FP8/BF16 pairs, both predicted: the speed-up FP8 gives, measured and predicted.
  struct Pair {
    const RowResult *bf16, *fp8;
    double measured, predicted, error_pct;
  };
  std::vector<Pair> pairs;
  {
    std::vector<model::ValidationRow> selected;
    for (const auto& r : results) selected.push_back(r.row);
    for (const auto& [i, j] : model::precision_pairs(selected)) {
      const RowResult &a = results[i], &b = results[j];
      if (!a.ok || !b.ok) continue;
      const double measured = a.row.measured_iter_s / b.row.measured_iter_s, predicted = a.predicted_s / b.predicted_s;
      pairs.push_back({&a, &b, measured, predicted, 100.0 * (predicted - measured) / measured});
    }
  }
  double worst_pair = 0;
  for (const Pair& p : pairs) worst_pair = std::max(worst_pair, std::fabs(p.error_pct));
  if (json) {
    traces::JsonWriter w;
    w.begin_object();
    w.field("table", table_path);
    w.key("rows").begin_array();
    for (const auto& r : results) {
      w.begin_object();
      w.field("id", r.row.id).field("gpus", r.row.gpus());
      w.field("measured_iter_s", r.row.measured_iter_s);
      if (r.ok) {
        w.field("predicted_iter_s", r.predicted_s).field("error_pct", r.error_pct);
        w.field("predicted_tflops_per_gpu", r.predicted_tflops).field("flops_convention", r.row.flops_convention);
        if (r.row.measured_tflops_per_gpu > 0) w.field("measured_tflops_per_gpu", r.row.measured_tflops_per_gpu);
        w.field("mfu", r.mfu).field("simulation_wall_s", r.wall_s);
      } else if (r.not_modelled) {
        w.field("not_modelled", r.problem.substr(std::string("not modelled: ").size()));
      } else {
        w.field("error", r.problem);
      }
      if (!r.row.assumed.empty()) {
        w.key("assumed").begin_array();
        for (const auto& a : r.row.assumed) w.value(a);
        w.end_array();
      }
      w.end_object();
    }
    w.end_array();
    w.field("rows_compared", n);
    w.field("rows_not_modelled", not_modelled);
    w.field("mape_pct", mape);
    w.key("precision_pairs").begin_array();
    for (const Pair& p : pairs) {
      w.begin_object();
      w.field("bf16", p.bf16->row.id).field("fp8", p.fp8->row.id);
      w.field("measured_speedup", p.measured).field("predicted_speedup", p.predicted).field("error_pct", p.error_pct);
      w.end_object();
    }
    w.end_array();
    w.end_object();
    std::cout << w.str() << "\n";
  } else {
    if (n > 0) std::printf("MAPE %.2f%% over %d of %zu rows", mape, n, results.size());
    else std::printf("MAPE - (no row predicted) over 0 of %zu rows", results.size());
    if (not_modelled > 0) std::printf(" (%d not modelled: %s)", not_modelled, not_modelled_ids.c_str());
    std::printf("\n");
    if (!pairs.empty()) {
      std::printf("FP8/BF16 pairs   measured speed-up  predicted    error\n");
      for (const Pair& p : pairs)
        std::printf("  %s/%s %17.3fx %10.3fx %+7.1f%%\n", p.bf16->row.id.c_str(), p.fp8->row.id.c_str(), p.measured,
                    p.predicted, p.error_pct);
    }
  }
  // Rows that are not modelled are no bad input; a gate, though, holds only on every row predicted.
  if (not_modelled > 0 && max_mape > 0) {
    std::fflush(stdout);
    std::cerr << "parallax validate: --max-mape " << max_mape << "% needs every selected row predicted; not modelled: "
              << not_modelled_ids << "\n";
    return kGateFailed;
  }
  if (n == 0 && not_modelled == static_cast<int>(results.size())) return kOk;
  // A gate passes on evidence: with no row compared there is no MAPE to hold against --max-mape.
  if (n == 0)
    throw InputError("no row of " + table_path + " was compared (" + std::to_string(results.size()) +
                     " selected, none gave a prediction and a measurement; see each row's message above)");
  if (max_mape > 0 && mape > max_mape) {
    std::cerr << "parallax validate: MAPE " << mape << "% exceeds --max-mape " << max_mape << "%\n";
    return kGateFailed;
  }
  if (max_pair_error > 0 && worst_pair > max_pair_error) {
    std::cerr << "parallax validate: an FP8/BF16 speed-up is off by " << worst_pair << "%, over --max-pair-error "
              << max_pair_error << "%\n";
    return kGateFailed;
  }
  return n + not_modelled == static_cast<int>(results.size()) ? kOk : kBadInput;
}

}  // namespace parallax::cli
