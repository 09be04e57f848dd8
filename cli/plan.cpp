// parallax plan: which layout is fastest for this model on these GPUs, does it fit, and why.
#include "commands.h"
#include "format.h"
#include "model_options.h"
#include "parallax/cli/options.h"

#include "parallax/model/presets.h"
#include "parallax/model/scenario.h"
#include "parallax/model/validation_table.h"
#include "parallax/planner/launch_config.h"
#include "parallax/planner/plan.h"
#include "parallax/sim/simulate.h"
#include "parallax/traces/io.h"
#include "parallax/traces/json_writer.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>

namespace parallax::cli {
namespace {

namespace fs = std::filesystem;

constexpr const char* kHelp = R"(usage: parallax plan SCENARIO_OR_MODEL --gpus N --cluster PRESET [options]
       parallax plan --hf-config config.json --gpus N --cluster PRESET --global-batch B [options]

Searches every parallelism layout of a model on N GPUs: tp (within a node unless
--allow-cross-node-tp), pp, dp with tp*pp*dp = N, the schedule (GPipe, 1F1B, interleaved 1F1B with
v = 2..8 virtual stages), micro-batch size, sequence parallelism, recompute (none, selective, full)
and ZeRO stage 0-3. Divisibility constraints and memory prune the space (the count per reason is
reported); a fast estimator ranks every survivor; the best K are simulated in detail with SimGrid
and re-ranked by the simulated step time. Prints the table (layout, step time, TFLOP/s per GPU, MFU,
memory per GPU and headroom, pipeline bubble, exposed communication, the bottleneck in words) and
why the winner beats the runner-up.

SCENARIO_OR_MODEL is a scenario file (its model; its cluster, GPU count, global batch and overlap
settings unless overridden; its own layout is located in the ranking and simulated for comparison)
or a model preset: )";

constexpr const char* kHelpOptions = R"(

  --gpus N                GPUs (a whole number of nodes, or part of one node)
  --cluster PRESET        cluster preset (scenarios/clusters: dgx-a100-80g, dgx-h100, hgx-h200, ...)
  --cluster-file FILE     a ClusterSpec file (text or JSON) instead of a preset
  --global-batch B        global batch size in sequences
  --top K                 layouts simulated in detail (default 10)
  --jobs J                simulations run at once, one process each (default 1)
  --json                  machine-readable output (keys: pruning, estimator, rows, winner, reference)
  --csv FILE              the table as CSV
  --allow-cross-node-tp   let tensor parallelism span nodes
  --max-micro-batch M     largest micro-batch size searched (default 16)
  --max-virtual-stages V  largest interleaving searched (default 8)
  --scratch DIR           under mpirun: where ranks leave their results for rank 0 (default: a
                          directory in /tmp named by the job); must be shared by all ranks, so runs
                          across nodes need a shared filesystem here
  --gather-timeout S      under mpirun: how long rank 0 waits for the other ranks' results
  --table TABLE.tsv       instead of one model: plan every row of a table of published runs
                          (validation/public.tsv) with its model, GPUs, cluster and batch, and report
                          where the published layout ranks and the predicted speed-up of the pick
  --only IDS              with --table: only these rows (comma-separated ids)
  --emit TARGET           print the winner as a launch configuration: megatron (Megatron-LM / NeMo
                          pretrain_gpt.py arguments) or torchtitan (a job TOML); a winner the target
                          cannot express (GPipe, ZeRO-2 in Megatron-LM, ...) is an error naming the
                          layout field (exit 2, after the table)
)";

constexpr const char* kHelpEnd = R"(
With --hf-config and a scenario, the config's model replaces the scenario's; with no scenario it
replaces the model preset (give one or the other, not both).

Scale-out: `mpirun -np P parallax plan ...` spreads the detailed simulations over P processes (each
with --jobs J at a time); every rank enumerates and estimates, rank 0 gathers and prints. No MPI is
used (libsimgrid brings its own MPI symbols); the ranks meet in the --scratch directory.

Exit codes: 0 ok, 2 bad input (no layout satisfies the constraints: the message says what to change;
no layout could be simulated; with --table, a row that could not be planned), 3 nothing fits in GPU
memory.
)";

// A ModelSpec file (num_layers at the top level) or nothing.
std::optional<ModelSpec> as_model_file(const fs::path& path) {
  ModelSpec model;
  try {
    traces::read_text_or_json(path, model);
  } catch (const InputError&) {
    return std::nullopt;
  }
  if (!model.has_num_layers()) return std::nullopt;
  if (!model.has_name()) model.set_name(path.stem().string());
  return model;
}

std::string percent(double f) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100 * f);
  return buf;
}

// On a terminal, a bar redrawn in place; otherwise (a pipe, a log file, CI) a plain line to stderr
// at most every progress_interval_s(), flushed, so a run cut short still says how far it got.
// `heartbeat` is called while waiting on simulations, so a single long one still reports.
class ProgressBar {
 public:
  ProgressBar() : enabled_(::isatty(STDERR_FILENO) == 1), interval_(sim::progress_interval_s()) {}
  void operator()(const planner::Progress& p) {
    if (p.total == 0) return;
    last_ = p;
    const char* what = p.phase == planner::Progress::Phase::Estimate ? "estimating" : "simulating";
    if (!enabled_) {
      // Nothing at all for a plan shorter than the interval.
      if (seconds(Clock::now() - printed_) >= interval_) line();
      return;
    }
    const int width = 30;
    const int filled = static_cast<int>(width * p.done / p.total);
    std::fprintf(stderr, "\r%-10s [%s%s] %zu/%zu ", what, std::string(static_cast<std::size_t>(filled), '#').c_str(),
                 std::string(static_cast<std::size_t>(width - filled), '.').c_str(), p.done, p.total);
    std::fflush(stderr);
    drawn_ = true;
  }
  void heartbeat() {
    if (!enabled_ && last_.total > 0 && seconds(Clock::now() - printed_) >= interval_) line();
  }
  void clear() {
    if (drawn_) std::fprintf(stderr, "\r%70s\r", "");
    drawn_ = false;
  }

 private:
  using Clock = std::chrono::steady_clock;
  static double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
  void line() {
    printed_ = Clock::now();
    const bool estimating = last_.phase == planner::Progress::Phase::Estimate;
    std::fprintf(stderr, "parallax plan: %s: %zu of %zu layouts done, %.0f s elapsed\n",
                 estimating ? "estimating" : "simulating", last_.done, last_.total,
                 seconds(printed_ - start_));
    std::fflush(stderr);
  }

  bool enabled_;
  double interval_;
  bool drawn_ = false;
  planner::Progress last_{planner::Progress::Phase::Estimate, 0, 0};
  Clock::time_point start_ = Clock::now(), printed_ = Clock::now();
};

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

void write_row_json(traces::JsonWriter& w, const planner::PlanRow& r, int rank) {
  const Layout& l = r.scenario.layout();
  w.begin_object();
  if (rank > 0) w.field("rank", rank);
  w.field("estimate_rank", r.estimate_rank);
  w.field("layout", r.layout);
  w.field("tp", l.tp()).field("pp", l.pp()).field("dp", l.dp());
  w.field("virtual_stages", l.schedule() == Layout::INTERLEAVED_1F1B ? l.virtual_stages() : 1);
  w.field("schedule", Layout::Schedule_Name(l.schedule()));
  w.field("micro_batch_size", l.micro_batch_size());
  w.field("sequence_parallel", l.sequence_parallel() && l.tp() > 1);
  w.field("recompute", Layout::Recompute_Name(l.recompute()));
  w.field("zero_stage", l.zero_stage());
  w.field("estimated_step_s", r.estimate.step_s);
  w.field("simulated", r.simulated);
  if (r.simulated) w.field("simulated_step_s", r.report.step_time_s());
  w.field("step_time_s", r.step_s);
  w.field("tflops_per_gpu", r.tflops_per_gpu);
  w.field("mfu", r.mfu);
  w.field("memory_per_gpu_bytes", r.memory_bytes);
  w.field("memory_capacity_bytes", r.capacity_bytes);
  w.field("headroom_bytes", r.headroom_bytes);
  w.field("compute_pct", 100 * r.compute_fraction);
  w.field("bubble_pct", 100 * r.bubble_fraction);
  w.field("exposed_comm_pct", 100 * r.exposed_comm_fraction);
  w.field("idle_pct", 100 * r.idle_fraction);
  w.field("recompute_pct_of_flops", 100 * r.recompute_fraction);
  w.field("bottleneck", r.bottleneck);
  if (r.is_reference) w.field("reference", true);
  if (r.simulated) {
    w.field("estimate_error_pct", -100 * r.disagreement);
    w.field("contention_delay_s", r.report.contention_delay_s());
    w.field("simulation_wall_s", r.report.wall_s());
  }
  if (!r.note.empty()) w.field("note", r.note);
  w.end_object();
}

std::string reference_words(const planner::PlanResult& res) {
  std::ostringstream s;
  s << "the scenario's layout " << res.reference_layout;
  if (res.reference_pruned) {
    s << " is pruned: " << planner::prune_reason_text(*res.reference_pruned);
    return s.str();
  }
  if (res.reference_estimate_rank > 0) {
    s << " ranks #" << res.reference_estimate_rank << " of " << count(res.estimated) << " by estimate";
  } else {
    s << " is outside the searched space";
  }
  if (res.reference && res.reference->simulated && !res.rows.empty() && res.rows[0].simulated) {
    int sim_rank = 0;
    for (std::size_t i = 0; i < res.rows.size(); ++i)
      if (res.rows[i].is_reference) sim_rank = static_cast<int>(i + 1);
    s << ", #" << sim_rank << " of " << res.rows.size() << " simulated (" << duration(res.reference->step_s)
      << " per step)";
    if (sim_rank == 1) {
      s << ": it is parallax's pick";
      if (res.reference_estimate_rank > static_cast<int>(res.rows.size()))
        s << ", though the estimator ranked it low";
    } else {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.3gx", res.reference->step_s / res.rows[0].step_s);
      s << ": parallax's pick " << res.rows[0].layout << " is predicted " << buf << " faster";
    }
  }
  return s.str();
}

// One row of `--table`: the published layout against parallax's pick.
struct TableRow {
  std::string id, model;
  int gpus = 0, gbs = 0;
  planner::PlanResult result;
  std::string error;  // bad row or nothing fits
};

// Exit code as `parallax validate`'s: 2 when a row could not be planned.
int plan_table(const std::string& table_path, const std::optional<std::string>& only,
               const planner::PlanOptions& options, bool json) {
  std::vector<TableRow> rows;
  auto table = model::read_validation_table(table_path);
  if (only) table = model::select_validation_rows(table, *only, table_path);
  for (const auto& vrow : table) {
    TableRow row;
    row.id = vrow.id;
    row.gpus = vrow.gpus();
    row.gbs = vrow.gbs;
    try {
      const Scenario sc = model::validation_scenario(vrow);
      planner::PlanRequest request;
      request.model = sc.model();
      row.model = sc.model().name().empty() ? sc.name() : sc.model().name();
      request.cluster = sc.cluster();
      request.gpus = row.gpus;
      request.global_batch_size = sc.layout().global_batch_size();
      request.fixed = sc.layout();
      request.options = sc.options();
      request.reference = sc.layout();
      if (!json) std::fprintf(stderr, "planning %s (%d GPUs)...\n", row.id.c_str(), row.gpus);
      row.result = planner::plan(request, options);
    } catch (const model::RowNotModelled& e) {
      row.error = std::string("not modelled: ") + e.what();
    } catch (const InputError& e) {
      row.error = e.what();
    }
    rows.push_back(std::move(row));
  }
  std::size_t failed = 0;
  for (const auto& row : rows) failed += row.error.empty() ? 0 : 1;
  const auto exit_code = [&] {
    if (failed == 0) return kOk;
    std::fflush(stdout);
    std::cerr << "parallax plan: " << failed << " of " << rows.size() << " rows of " << table_path
              << " could not be planned (see the row's message)\n";
    return kBadInput;
  };

  // Where the published layout lands, and how much faster parallax's pick is predicted to be.
  const auto speedup = [](const planner::PlanResult& r) -> double {
    if (!r.reference || !r.reference->simulated || r.rows.empty() || !r.rows[0].simulated) return 0;
    return r.reference->step_s / r.rows[0].step_s;
  };
  const auto sim_rank = [](const planner::PlanResult& r) {
    for (std::size_t i = 0; i < r.rows.size(); ++i)
      if (r.rows[i].is_reference) return static_cast<int>(i + 1);
    return 0;
  };
  if (json) {
    traces::JsonWriter w;
    w.begin_object();
    w.field("table", table_path);
    w.key("rows").begin_array();
    for (const auto& row : rows) {
      w.begin_object();
      w.field("id", row.id).field("gpus", row.gpus).field("global_batch_size", row.gbs);
      if (!row.error.empty()) {
        w.field("error", row.error);
        w.end_object();
        continue;
      }
      const auto& r = row.result;
      w.field("survivors", r.pruning.survivors);
      w.field("published_layout", r.reference_layout);
      w.field("published_estimate_rank", r.reference_estimate_rank);
      if (r.reference_pruned) w.field("published_pruned", planner::prune_reason_key(*r.reference_pruned));
      w.field("published_simulated_rank", sim_rank(r));
      if (r.reference && r.reference->simulated) w.field("published_step_s", r.reference->step_s);
      if (!r.rows.empty()) {
        w.field("pick", r.rows[0].layout);
        w.field("pick_step_s", r.rows[0].step_s);
      }
      if (speedup(r) > 0) w.field("speedup_of_pick", speedup(r));
      w.field("simulated", static_cast<std::uint64_t>(r.rows.size()));
      w.field("seconds", r.pruning.seconds + r.estimate_seconds + r.simulate_seconds);
      w.end_object();
    }
    w.end_array();
    w.end_object();
    std::cout << w.str() << "\n";
    return exit_code();
  }
  int wl = 16, wp = 15;
  for (const auto& row : rows)
    if (row.error.empty()) {
      wl = std::max(wl, static_cast<int>(row.result.reference_layout.size()));
      if (!row.result.rows.empty()) wp = std::max(wp, static_cast<int>(row.result.rows[0].layout.size()));
    }
  std::printf("%-4s %5s %6s  %-*s %15s %9s  %-*s %9s %8s\n", "row", "GPUs", "batch", wl, "published layout",
              "est# (of)", "step", wp, "parallax's pick", "step", "speed-up");
  std::vector<double> speedups;
  int picked = 0;
  for (const auto& row : rows) {
    if (!row.error.empty()) {
      std::printf("%-4s %5d %6d  %s\n", row.id.c_str(), row.gpus, row.gbs, row.error.c_str());
      continue;
    }
    const auto& r = row.result;
    std::string rank = r.reference_pruned ? std::string("pruned: ") + std::string(planner::prune_reason_key(*r.reference_pruned))
                       : r.reference_estimate_rank > 0
                           ? "#" + count(static_cast<std::uint64_t>(r.reference_estimate_rank)) + " (" + count(r.pruning.survivors) + ")"
                           : std::string("outside");
    const double up = speedup(r);
    if (up > 0) speedups.push_back(up);
    if (sim_rank(r) == 1) ++picked;
    std::printf("%-4s %5d %6d  %-*s %15s %9s  %-*s %9s %8s\n", row.id.c_str(), row.gpus, row.gbs, wl,
                r.reference_layout.c_str(), rank.c_str(),
                r.reference && r.reference->simulated ? duration(r.reference->step_s).c_str() : "-",
                wp, r.rows.empty() ? "-" : r.rows[0].layout.c_str(), r.rows.empty() ? "-" : duration(r.rows[0].step_s).c_str(),
                up > 0 ? (sim_rank(r) == 1 ? std::string("= pick") : [&] {
                  char buf[16];
                  std::snprintf(buf, sizeof buf, "%.2fx", up);
                  return std::string(buf);
                }()).c_str()
                       : "-");
  }
  if (!speedups.empty()) {
    std::sort(speedups.begin(), speedups.end());
    double log_sum = 0;
    for (double x : speedups) log_sum += std::log(x);
    std::printf("\n%zu rows: the published layout is parallax's pick in %d; predicted speed-up of the pick: median "
                "%.2fx, geometric mean %.2fx, largest %.2fx\n",
                speedups.size(), picked,
                speedups.size() % 2 ? speedups[speedups.size() / 2]
                                    : (speedups[speedups.size() / 2 - 1] + speedups[speedups.size() / 2]) / 2, std::exp(log_sum / static_cast<double>(speedups.size())),
                speedups.back());
  }
  return exit_code();
}

}  // namespace

int plan(const std::vector<std::string>& args) {
  std::string input, cluster_preset, cluster_file, csv_path, scratch, table_path, emit;
  std::optional<std::string> only;  // given, even empty: then it must name ids
  int gpus = 0, gbs = 0, top = 10, jobs = 1, max_mbs = 16, max_v = 8;
  double gather_timeout = 0;
  bool json = false, cross_node_tp = false;
  const auto help = [] {
    std::string names;
    for (const auto& n : model::bundled_presets(model::PresetKind::Model)) names += (names.empty() ? "" : ", ") + n;
    return kHelp + names + " (scenarios/models)." + kHelpOptions + ModelOptions::help() + kHelpEnd;
  };
  ModelOptions model_options;
  Options parser("parallax plan", help);
  parser.flag("--json", json)
           .whole("--gpus", gpus, 1, "a GPU count, e.g. --gpus 64")
           .text("--cluster", cluster_preset, "a cluster preset, e.g. --cluster dgx-a100-80g")
           .text("--cluster-file", cluster_file,
                 "a ClusterSpec file, e.g. --cluster-file my-cluster.pbtxt")
           .whole("--global-batch", gbs, 1, "a batch size in sequences, e.g. --global-batch 512")
           .whole("--top", top, 1, "a number of layouts to simulate, e.g. --top 10")
           .whole({"--jobs", "-j"}, jobs, 1, "a number of concurrent simulations, e.g. --jobs 4")
           .output("--csv", csv_path, "a file name, e.g. --csv plan.csv")
           .flag("--allow-cross-node-tp", cross_node_tp)
           .whole("--max-micro-batch", max_mbs, 1, "a micro-batch size")
           .whole("--max-virtual-stages", max_v, 1, "a number of virtual stages")
           .text("--scratch", scratch, "a directory shared by all ranks")
           .text("--table", table_path,
                 "a table of published runs, e.g. --table validation/public.tsv")
           .value(
               "--only", [&](const std::string& ids) { only = ids; },
               "row ids, e.g. --only N1,K2")
           .number("--gather-timeout", gather_timeout, Options::Sign::kPositive,
                   "a number of seconds", "seconds")
           .text("--emit", emit, "a launch target, e.g. --emit megatron")
           .positional(input, "scenario or model");
  if (!model_options.declare(parser).parse(args)) return kOk;
  std::optional<planner::LaunchTarget> target;
  if (!emit.empty()) target = planner::parse_launch_target(emit);
  if (target && !table_path.empty())
    throw InputError("--emit prints one plan's launch configuration; --table plans many: give one or the other");
  if (only && table_path.empty())
    throw InputError("--only needs --table: it picks rows of a table of published runs (e.g. --table "
                     "validation/public.tsv --only K1); without --table there are no rows to pick");
  check_files({{"the scenario or model", input},
               {"--cluster", cluster_preset},
               {"--cluster-file", cluster_file},
               {"--table", table_path},
               {"--hf-config", model_options.hf_config}},
              {{"--csv", csv_path}});
  if (!table_path.empty()) {
    if (!input.empty()) throw InputError("give either --table TABLE.tsv or a scenario or model, not both");
    if (!model_options.hf_config.empty())
      throw InputError("--hf-config gives one model; --table plans the models of its rows: give one or the other");
    planner::PlanOptions options;
    options.top_k = top;
    options.jobs = jobs;
    options.distribution = planner::detect_distribution(scratch);
    options.distribution.gather_timeout_s = gather_timeout;
    return plan_table(table_path, only, options, json);
  }
  const std::optional<model::ModelReplacement> replacement = model_options.replacement();
  if (input.empty() && !replacement)
    throw InputError("no scenario or model given; usage: parallax plan SCENARIO_OR_MODEL --gpus N --cluster PRESET "
                     "--global-batch B (models: see `parallax plan --help`)");

  if (!cluster_preset.empty() && !cluster_file.empty())
    throw InputError("give either --cluster PRESET or --cluster-file FILE, not both");
  // The one cluster the command line gives, by preset name or by file.
  const bool cluster_given = !cluster_preset.empty() || !cluster_file.empty();
  const auto given_cluster = [&](int n) {
    return cluster_file.empty() ? model::resolve_cluster(cluster_preset, n)
                                : model::resolve_cluster_file(cluster_file, n);
  };
  planner::PlanRequest request;
  request.allow_cross_node_tp = cross_node_tp;
  request.max_micro_batch = max_mbs;
  request.max_virtual_stages = max_v;
  std::optional<ModelSpec> model_file;
  std::error_code ec;
  if (fs::is_regular_file(input, ec)) model_file = as_model_file(input);
  const bool is_scenario = !input.empty() && fs::is_regular_file(input, ec) && !model_file;
  if (replacement && !input.empty() && !is_scenario)
    throw InputError("--hf-config gives the model, and so does the model " + std::string(model_file ? "file" : "preset") +
                     " \"" + input + "\": give one or the other (a scenario with --hf-config keeps its cluster and "
                     "layout and takes the config's model)");
  if (is_scenario) {
    // A scenario: its model, and its cluster, GPUs, batch and software settings unless overridden.
    const Scenario sc = load_scenario(input, replacement);
    const int sc_gpus = sc.cluster().num_nodes() * sc.cluster().gpus_per_node();
    request.model = sc.model();
    if (request.model.name().empty()) request.model.set_name(sc.name());
    request.gpus = gpus ? gpus : sc_gpus;
    request.cluster = cluster_given ? given_cluster(request.gpus)
                                    : model::resize_cluster(sc.cluster(), request.gpus);
    request.global_batch_size = gbs ? gbs : sc.layout().global_batch_size();
    request.fixed = sc.layout();
    request.options = sc.options();
    // The scenario's own layout is the reference whenever it is a layout of this search (same GPUs and
    // batch), also on another cluster preset: then it is that layout on the given cluster.
    if (request.gpus == sc_gpus && request.global_batch_size == sc.layout().global_batch_size())
      request.reference = sc.layout();
  } else {
    request.model = replacement ? model::replaced_model(*replacement)
                    : model_file ? *model_file
                                 : model::load_model(input);
    const std::string what = replacement ? "--hf-config without a scenario" : "a model preset";
    if (!cluster_given)
      throw InputError(what + " needs a cluster: give --cluster PRESET (e.g. --cluster dgx-a100-80g; presets in " +
                       (model::data_dir() / "clusters").string() + ")");
    if (!gpus) throw InputError(what + " needs a GPU count: give --gpus N");
    if (!gbs) throw InputError(what + " needs a global batch size: give --global-batch B (sequences per step)");
    request.gpus = gpus;
    request.cluster = given_cluster(gpus);
    request.global_batch_size = gbs;
  }

  planner::PlanOptions options;
  options.top_k = top;
  options.jobs = jobs;
  options.distribution = planner::detect_distribution(scratch);
  options.distribution.gather_timeout_s = gather_timeout;
  ProgressBar bar;
  if (options.distribution.rank == 0) {
    options.progress = [&](const planner::Progress& p) { bar(p); };
    // Polled while the simulations run: never cancels, keeps the progress lines coming.
    options.cancelled = [&] {
      bar.heartbeat();
      return false;
    };
  }

  planner::PlanResult res;
  try {
    res = planner::plan(request, options);
  } catch (const planner::NothingFits& e) {
    bar.clear();
    std::cerr << "parallax plan: " << e.what() << "\n";
    return kDoesNotFit;
  } catch (...) {
    bar.clear();
    throw;
  }
  bar.clear();
  if (!res.is_root) return kOk;  // rank 0 prints

  const ClusterSpec& cl = request.cluster;
  const auto& pr = res.pruning;
  if (!csv_path.empty()) {
    std::ostringstream out;
    out << "rank,estimate_rank,layout,tp,pp,dp,virtual_stages,schedule,micro_batch_size,sequence_parallel,recompute,"
           "zero_stage,estimated_step_s,simulated_step_s,tflops_per_gpu,mfu,memory_per_gpu_bytes,headroom_bytes,"
           "bubble_pct,exposed_comm_pct,bottleneck,note\n";
    for (std::size_t i = 0; i < res.rows.size(); ++i) {
      const auto& r = res.rows[i];
      const Layout& l = r.scenario.layout();
      out << i + 1 << "," << r.estimate_rank << "," << csv_field(r.layout) << "," << l.tp() << "," << l.pp() << ","
          << l.dp() << "," << (l.schedule() == Layout::INTERLEAVED_1F1B ? l.virtual_stages() : 1) << ","
          << Layout::Schedule_Name(l.schedule()) << "," << l.micro_batch_size() << ","
          << (l.sequence_parallel() && l.tp() > 1 ? 1 : 0) << "," << Layout::Recompute_Name(l.recompute()) << ","
          << l.zero_stage() << "," << r.estimate.step_s << ",";
      if (r.simulated) out << r.report.step_time_s();
      out << "," << r.tflops_per_gpu << "," << r.mfu << "," << r.memory_bytes << "," << r.headroom_bytes << ","
          << 100 * r.bubble_fraction << "," << 100 * r.exposed_comm_fraction << "," << csv_field(r.bottleneck) << ","
          << csv_field(r.note) << "\n";
    }
    traces::write_file_atomically(csv_path, out.str());
  }

  if (json) {
    traces::JsonWriter w;
    w.begin_object();
    w.field("model", request.model.name());
    w.field("cluster", cl.name());
    w.field("gpus", request.gpus);
    w.field("nodes", cl.num_nodes());
    w.field("global_batch_size", request.global_batch_size);
    w.key("pruning").begin_object();
    w.field("enumerated", pr.enumerated);
    w.field("survivors", pr.survivors);
    w.key("pruned").begin_object();
    for (int i = 0; i < planner::kPruneReasons; ++i)
      w.field(planner::prune_reason_key(static_cast<planner::PruneReason>(i)), pr.pruned[static_cast<std::size_t>(i)]);
    w.end_object();
    w.field("seconds", pr.seconds);
    w.end_object();
    w.key("estimator").begin_object();
    w.field("layouts", static_cast<std::uint64_t>(res.estimated));
    w.field("seconds", res.estimate_seconds);
    w.field("layouts_per_s", res.layouts_per_s);
    w.end_object();
    w.key("simulation").begin_object();
    w.field("simulated", static_cast<std::uint64_t>(res.rows.size()));
    w.field("seconds", res.simulate_seconds);
    w.field("jobs", res.jobs);
    w.field("ranks", res.ranks);
    w.end_object();
    w.key("rows").begin_array();
    for (std::size_t i = 0; i < res.rows.size(); ++i) write_row_json(w, res.rows[i], static_cast<int>(i + 1));
    w.end_array();
    if (!res.rows.empty()) {
      w.key("winner").begin_object();
      w.field("layout", res.rows[0].layout);
      w.field("step_time_s", res.rows[0].step_s);
      w.field("explanation", res.explanation);
      w.end_object();
    }
    // The launch text last: a winner the target cannot express throws after the rest is written.
    std::string launch;
    if (target && !res.rows.empty()) launch = planner::launch_config(res.rows[0].scenario, *target);
    if (!launch.empty()) w.key("launch").begin_object().field("target", emit).field("text", launch).end_object();
    if (res.has_reference) {
      w.key("reference").begin_object();
      w.field("layout", res.reference_layout);
      w.field("estimate_rank", res.reference_estimate_rank);
      if (res.reference_pruned) w.field("pruned", planner::prune_reason_key(*res.reference_pruned));
      w.field("outside_search_space", res.reference_outside_space);
      if (res.reference && res.reference->simulated) {
        w.field("simulated_step_s", res.reference->step_s);
        if (!res.rows.empty() && res.rows[0].simulated) w.field("speedup_of_pick", res.reference->step_s / res.rows[0].step_s);
      }
      w.field("summary", reference_words(res));
      w.end_object();
    }
    w.end_object();
    std::cout << w.str() << "\n";
    return kOk;
  }

  std::printf("plan        %s on %d GPUs (%d x %d, %s), global batch %d\n", request.model.name().c_str(), request.gpus,
              cl.num_nodes(), cl.gpus_per_node(), cl.name().c_str(), request.global_batch_size);
  std::printf("search      %s layouts enumerated in %s, %s survive:\n", count(pr.enumerated).c_str(),
              duration(pr.seconds).c_str(), count(pr.survivors).c_str());
  for (int i = 0; i < planner::kPruneReasons; ++i) {
    const auto reason = static_cast<planner::PruneReason>(i);
    std::printf("            %12s pruned: %s\n", count(pr.pruned[static_cast<std::size_t>(i)]).c_str(),
                std::string(planner::prune_reason_text(reason)).c_str());
  }
  std::printf("estimator   %s layouts in %s: %s layouts/s\n", count(res.estimated).c_str(),
              duration(res.estimate_seconds).c_str(), count(static_cast<std::uint64_t>(std::llround(res.layouts_per_s))).c_str());
  std::printf("simulated   top %zu in %s (%d at a time%s)\n", res.rows.size(), duration(res.simulate_seconds).c_str(),
              res.jobs, res.ranks > 1 ? (", on each of " + std::to_string(res.ranks) + " ranks").c_str() : "");
  int width = 6;
  for (const auto& r : res.rows) width = std::max(width, static_cast<int>(r.layout.size()));
  std::printf("\n%4s %5s  %-*s %9s %9s %7s %6s %21s %7s %8s  %s\n", "rank", "est#", width, "layout", "step", "estimate",
              "TFLOP/s", "MFU", "memory/GPU (headroom)", "bubble", "exposed", "bottleneck");
  for (std::size_t i = 0; i < res.rows.size(); ++i) {
    const auto& r = res.rows[i];
    const std::string memory = gib(r.memory_bytes) + " (" + gib(r.headroom_bytes) + ")";
    std::printf("%3zu%c %5d  %-*s %9s %9s %7.0f %6s %21s %7s %8s  %s\n", i + 1, r.is_reference ? '*' : ' ', r.estimate_rank, width, r.layout.c_str(),
                r.simulated ? duration(r.step_s).c_str() : "-", duration(r.estimate.step_s).c_str(), r.tflops_per_gpu,
                percent(r.mfu).c_str(), memory.c_str(), percent(r.bubble_fraction).c_str(),
                percent(r.exposed_comm_fraction).c_str(), r.bottleneck.c_str());
  }
  bool any_note = false;
  for (std::size_t i = 0; i < res.rows.size(); ++i)
    if (!res.rows[i].note.empty()) {
      if (!any_note) std::printf("\nnotes (estimate vs simulation)\n");
      any_note = true;
      std::printf("%4zu  %s\n", i + 1, res.rows[i].note.c_str());
    }
  std::printf("\nwinner      %s\n", res.explanation.c_str());
  if (res.has_reference) std::printf("reference   %s%s\n", res.reference ? "(* in the table) " : "", reference_words(res).c_str());
  if (target && !res.rows.empty()) {
    std::fflush(stdout);
    const std::string launch = planner::launch_config(res.rows[0].scenario, *target);
    std::printf("\nlaunch      the winner as %s:\n%s", emit == "megatron" ? "Megatron-LM arguments" : "a torchtitan job TOML",
                launch.c_str());
  }
  return kOk;
}

}  // namespace parallax::cli
