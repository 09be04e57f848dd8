// parallax compare: a predicted timeline against a measured one of the same job.
#include "commands.h"
#include "format.h"
#include "parallax/cli/options.h"
#include "report_json.h"

#include "parallax/analysis/compare.h"
#include "parallax/traces/chrome_trace.h"
#include "parallax/traces/io.h"
#include "parallax/traces/json_writer.h"

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>

namespace parallax::cli {
namespace {

constexpr const char* kHelp = R"(usage: parallax compare PREDICTED.pb MEASURED.pb [options]

Joins a predicted timeline (`parallax simulate --timeline`) with a measured one of the same job (the
executor's) on task id and reports the step time of each and the error, the error per task class
(GEMMs by FLOPs, memory-bound kernels, each collective by type and size, sends, recvs: count,
measured and predicted totals, error of the totals and median per-task error), the tasks with the
largest errors, and the critical path of each timeline. Both timelines embed their scenario; they must
be of the same model, layout and GPU count. Under symmetry every measured rank is compared with its
pipeline stage's representative in the prediction.

  --json             machine-readable (keys: step_time_predicted_s, step_time_measured_s,
                     step_time_error_pct, classes, top_tasks, critical_path {predicted, measured})
  --chrome FILE.json both timelines side by side as Chrome Trace Event JSON (ui.perfetto.dev)
  --top N            how many tasks to list by absolute error (default 10)

Errors are (predicted - measured) / measured: negative means the prediction is too fast.
Exit codes: 0 ok, 2 bad input (unreadable files, timelines of different jobs, unknown task ids).
)";

std::string pct(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%+.1f%%", v);
  return buf;
}

void write_path(traces::JsonWriter& w, const analysis::PathSummary& p) {
  w.begin_object();
  w.field("length_s", p.length_s);
  write_critical_path_fields(w, p.path);
  w.end_object();
}

std::string to_json(const analysis::CompareResult& r) {
  traces::JsonWriter w;
  w.begin_object();
  w.field("scenario", r.scenario_name);
  w.field("step_time_predicted_s", r.step_time_predicted_s);
  w.field("step_time_measured_s", r.step_time_measured_s);
  w.field("step_time_error_pct", r.step_time_error_pct);
  w.field("measured_events", r.measured_events);
  w.field("predicted_tasks", r.predicted_tasks);
  w.key("classes").begin_array();
  for (const auto& c : r.classes) {
    w.begin_object();
    w.field("name", c.name).field("count", c.count).field("measured_s", c.measured_s).field("predicted_s", c.predicted_s);
    w.field("error_pct", c.error_pct).field("median_error_pct", c.median_error_pct);
    w.end_object();
  }
  w.end_array();
  w.key("top_tasks").begin_array();
  for (const auto& t : r.top_tasks) {
    w.begin_object();
    w.field("task_id", t.task_id).field("rank", t.rank).field("name", t.name);
    w.field("measured_s", t.measured_s).field("predicted_s", t.predicted_s);
    w.field("error_s", t.error_s).field("error_pct", t.error_pct);
    w.end_object();
  }
  w.end_array();
  w.key("critical_path").begin_object();
  w.key("predicted");
  write_path(w, r.critical_path_predicted);
  w.key("measured");
  write_path(w, r.critical_path_measured);
  w.end_object();
  w.key("notes").begin_array();
  for (const auto& n : r.notes) w.value(n);
  w.end_array();
  w.end_object();
  return w.str();
}

void print_path(const char* label, const analysis::PathSummary& p) {
  const CriticalPath& cp = p.path;
  std::vector<std::pair<double, std::string>> ops;
  for (const auto& [op, t] : cp.by_op()) ops.push_back({t, op});
  std::sort(ops.rbegin(), ops.rend());
  std::string top;
  for (std::size_t i = 0; i < ops.size() && i < 4; ++i) top += (i ? ", " : "") + ops[i].second + " " + duration(ops[i].first);
  std::printf("  %-10s %s over %s tasks, %d rank switches: compute %s, communication %s, waiting %s\n", label,
              duration(p.length_s).c_str(), count(cp.tasks()).c_str(), std::max(0, cp.segments_size() - 1),
              duration(cp.compute_s()).c_str(), duration(cp.comm_s()).c_str(), duration(cp.wait_s()).c_str());
  if (!top.empty()) std::printf("  %-10s top: %s\n", "", top.c_str());
}

void print_summary(const analysis::CompareResult& r) {
  std::printf("scenario    %s: %s measured events joined to %s predicted tasks\n", r.scenario_name.c_str(),
              count(r.measured_events).c_str(), count(r.predicted_tasks).c_str());
  std::printf("step time   predicted %s, measured %s, error %s\n", duration(r.step_time_predicted_s).c_str(),
              duration(r.step_time_measured_s).c_str(), pct(r.step_time_error_pct).c_str());
  std::printf("by class    %-24s %9s %11s %11s %9s %9s\n", "", "tasks", "measured", "predicted", "error", "median");
  for (const auto& c : r.classes)
    std::printf("            %-24s %9s %11s %11s %9s %9s\n", c.name.c_str(), count(c.count).c_str(),
                duration(c.measured_s).c_str(), duration(c.predicted_s).c_str(), pct(c.error_pct).c_str(),
                pct(c.median_error_pct).c_str());
  if (!r.top_tasks.empty()) {
    std::printf("largest errors\n");
    for (const auto& t : r.top_tasks)
      std::printf("            rank %-5u %-40s measured %10s predicted %10s %9s\n", t.rank, t.name.c_str(),
                  duration(t.measured_s).c_str(), duration(t.predicted_s).c_str(), pct(t.error_pct).c_str());
  }
  std::printf("critical path\n");
  print_path("predicted", r.critical_path_predicted);
  print_path("measured", r.critical_path_measured);
  for (const auto& note : r.notes) std::printf("note        %s\n", note.c_str());
}

}  // namespace

int compare(const std::vector<std::string>& args) {
  std::vector<std::string> files;
  std::string chrome_path;
  bool json = false;
  analysis::CompareOptions options;
  if (!Options("parallax compare", kHelp)
           .flag("--json", json)
           .output("--chrome", chrome_path, "a file name, e.g. --chrome compare.json")
           .whole("--top", options.top_n, 0, "a number of tasks, e.g. --top 20")
           .positionals(files)
           .parse(args))
    return kOk;
  if (files.size() != 2)
    throw InputError("need two timelines, got " + std::to_string(files.size()) +
                     "; usage: parallax compare PREDICTED.pb MEASURED.pb [--json]");
  check_files({{"the predicted timeline", files[0]}, {"the measured timeline", files[1]}},
              {{"--chrome", chrome_path}});
  Timeline predicted, measured;
  traces::read_binary(files[0], predicted);
  traces::read_binary(files[1], measured);
  analysis::CompareResult result;
  try {
    result = analysis::compare_timelines(predicted, measured, options);
  } catch (const InputError& e) {
    throw InputError(files[0] + " vs " + files[1] + ": " + e.what());
  }
  if (!chrome_path.empty()) traces::write_chrome_trace(chrome_path, {&predicted, &measured});
  if (json) {
    std::cout << to_json(result) << "\n";
  } else {
    print_summary(result);
  }
  return kOk;
}

}  // namespace parallax::cli
