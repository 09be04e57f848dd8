#include "parallax/analysis/compare.h"

#include "parallax/model/rank_grid.h"
#include "parallax/model/scenario.h"
#include "parallax/traces/io.h"
#include "statistics.h"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <string>

namespace parallax::analysis {

using model::JobGraph;
using model::RankGrid;
using model::Task;

namespace {

constexpr double kMiB = 1024.0 * 1024.0;

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::int64_t gpus(const Scenario& sc) {
  return static_cast<std::int64_t>(sc.cluster().num_nodes()) * sc.cluster().gpus_per_node();
}

void check_same_job(const Scenario& p, const Scenario& m) {
  using google::protobuf::util::MessageDifferencer;
  auto differ = [](const std::string& what, const std::string& a, const std::string& b) {
    throw InputError("the timelines are of different jobs: the predicted timeline's scenario has " + what + " " + a +
                     " but the measured one's has " + b +
                     "; the task ids only match for the same model, layout and GPU count (simulate the measured "
                     "run's scenario, e.g. from `parallax inspect` of its plan)");
  };
  if (!MessageDifferencer::Equivalent(p.model(), m.model()))
    differ("model", "{" + traces::to_text(p.model()) + "}", "{" + traces::to_text(m.model()) + "}");
  if (!MessageDifferencer::Equivalent(p.layout(), m.layout()))
    differ("layout", "{" + traces::to_text(p.layout()) + "}", "{" + traces::to_text(m.layout()) + "}");
  if (gpus(p) != gpus(m)) differ("GPU count", std::to_string(gpus(p)), std::to_string(gpus(m)));
  if (p.options().use_symmetry() != m.options().use_symmetry())
    differ("use_symmetry", p.options().use_symmetry() ? "true" : "false", m.options().use_symmetry() ? "true" : "false");
}

std::pair<double, double> span(const Timeline& tl) {
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();
  for (const auto& e : tl.events()) {
    lo = std::min(lo, e.start_s());
    hi = std::max(hi, e.end_s());
  }
  if (tl.events_size() == 0) return {0, 0};
  return {lo, hi};
}

double pct(double predicted, double measured) { return measured > 0 ? 100.0 * (predicted - measured) / measured : 0.0; }

// Fixed report order of the classes.
int class_order(const std::string& name) {
  static const std::vector<std::string> prefixes{"gemm small", "gemm medium", "gemm large", "memory-bound",
                                                 "all_reduce", "reduce_scatter", "all_gather", "all_to_all",
                                                 "broadcast", "send", "recv"};
  for (std::size_t i = 0; i < prefixes.size(); ++i)
    if (name.rfind(prefixes[i], 0) == 0) {
      int size = 0;
      if (name.find("1-64MiB") != std::string::npos) size = 1;
      if (name.find(">64MiB") != std::string::npos) size = 2;
      return static_cast<int>(i) * 4 + size;
    }
  return 1000;
}

// The class name of a task (see ClassError).
std::string task_class(const Task& t) {
  switch (t.kind) {
    case GEMM:
      return t.flops < 1e8 ? "gemm small" : t.flops <= 1e10 ? "gemm medium" : "gemm large";
    case MEMORY_BOUND:
      return "memory-bound";
    case COLLECTIVE: {
      const double b = static_cast<double>(t.bytes);
      return lower(CollectiveKind_Name(t.collective)) + (b < kMiB ? " <1MiB" : b <= 64 * kMiB ? " 1-64MiB" : " >64MiB");
    }
    case SEND:
      return "send";
    case RECV:
      return "recv";
  }
  return "other";
}

}  // namespace

// Two timelines of imported graphs (execution traces) are of the same job when their graphs have
// the same tasks (rank, kind, trace label) and dependencies; the clusters may differ (a trace
// predicted on one cluster and measured on another is the point of comparing).
void check_same_imported_job(const JobGraph& p, const JobGraph& m) {
  auto differ = [](const std::string& what) {
    throw InputError(
        "the timelines are of different jobs: " + what +
        "; compare a prediction and a measurement of the same Chakra trace (`parallax simulate "
        "--chakra P --timeline` and `parallax exec --chakra P -o`)");
  };
  if (p.scenario().layout().dp() != m.scenario().layout().dp())
    differ("the predicted graph has " + std::to_string(p.scenario().layout().dp()) +
           " ranks, the measured one " + std::to_string(m.scenario().layout().dp()));
  if (p.num_tasks() != m.num_tasks() || p.num_edges() != m.num_edges())
    differ("the predicted graph has " + std::to_string(p.num_tasks()) + " tasks and " +
           std::to_string(p.num_edges()) + " dependencies, the measured one " +
           std::to_string(m.num_tasks()) + " and " + std::to_string(m.num_edges()));
  for (std::uint32_t t = 0; t < p.num_tasks(); ++t) {
    const Task& a = p.tasks()[t];
    const Task& b = m.tasks()[t];
    if (a.rank != b.rank || a.kind != b.kind || p.task_label(t) != m.task_label(t))
      differ("task " + std::to_string(t) + " is " + p.task_name(t) + " on rank " +
             std::to_string(a.rank) + " in the prediction but " + m.task_name(t) + " on rank " +
             std::to_string(b.rank) + " in the measurement");
  }
}

void validate_timeline(const Timeline& timeline, const std::string& name) {
  // An imported graph's scenario has no model; JobGraph::from_proto checks it with the graph.
  if (timeline.has_scenario() && !timeline.has_graph())
    model::validate_scenario(timeline.scenario(), name + "'s scenario");
  // Nothing measured is nothing to compare or fit: a result over no events would read as a perfect match.
  if (timeline.events_size() == 0)
    throw InputError(name + " has no events: nothing was recorded (write a predicted timeline with `parallax "
                            "simulate S --timeline F.pb`, a measured one with `parallax exec S -o F.pb`)");
  const auto where = [&](int i) {
    const auto& e = timeline.events(i);
    return name + ": event " + std::to_string(i) + " (task " + std::to_string(e.task_id()) + ", rank " +
           std::to_string(e.rank()) + ")";
  };
  const auto num = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    return std::string(buf);
  };
  // One event per (rank, task): the executor writes one iteration (the median one) and the simulator
  // one step, so a repeat is a corrupt or concatenated file, and it would be counted twice.
  std::vector<std::uint64_t> keys;
  keys.reserve(static_cast<std::size_t>(timeline.events_size()));
  for (int i = 0; i < timeline.events_size(); ++i) {
    const auto& e = timeline.events(i);
    if (!std::isfinite(e.start_s()) || !std::isfinite(e.end_s()))
      throw InputError(where(i) + " has a start_s or end_s that is not a finite number");
    // Times are seconds from the step's start: a step of more than a year is not a measurement (a
    // flipped exponent byte gives 1e300).
    if (std::fabs(e.start_s()) > kMaxEventSeconds || std::fabs(e.end_s()) > kMaxEventSeconds)
      throw InputError(where(i) + " has start_s " + num(e.start_s()) + " and end_s " + num(e.end_s()) +
                       ": times are seconds from the step's start and must be within a year (" +
                       num(kMaxEventSeconds) + " s) of it; the file is corrupt");
    if (e.end_s() < e.start_s())
      throw InputError(where(i) + " ends before it starts (start_s " + num(e.start_s()) + ", end_s " +
                       num(e.end_s()) + "); the file is corrupt");
    keys.push_back(static_cast<std::uint64_t>(e.rank()) << 32 | e.task_id());
  }
  std::sort(keys.begin(), keys.end());
  const auto repeat = std::adjacent_find(keys.begin(), keys.end());
  if (repeat != keys.end()) {
    const auto rank = static_cast<std::uint32_t>(*repeat >> 32), task = static_cast<std::uint32_t>(*repeat);
    int first = -1, second = -1;
    for (int i = 0; i < timeline.events_size() && second < 0; ++i)
      if (timeline.events(i).rank() == rank && timeline.events(i).task_id() == task) (first < 0 ? first : second) = i;
    throw InputError(name + ": events " + std::to_string(first) + " and " + std::to_string(second) +
                     " are both task " + std::to_string(task) + " on rank " + std::to_string(rank) +
                     "; a timeline holds one event per task and rank (one step), so the file is corrupt or two "
                     "timelines were joined");
  }
}

void check_events_of_graph(const JobGraph& graph, const Timeline& timeline, const std::string& name) {
  const auto n = static_cast<std::uint32_t>(graph.num_tasks());
  const bool imported = graph.imported();
  const RankGrid grid = imported ? RankGrid{} : model::rank_grid(graph.scenario());
  const bool symmetric = graph.uses_symmetry();
  const auto world = static_cast<std::uint32_t>(imported ? graph.scenario().layout().dp() : grid.size());
  const auto differ = [&](int i, const std::string& what) {
    const auto& e = timeline.events(i);
    throw InputError(name + ": event " + std::to_string(i) + " (task " + std::to_string(e.task_id()) + ", rank " +
                     std::to_string(e.rank()) + ") " + what +
                     ": the events are not of the job graph of the timeline's embedded scenario (was the scenario "
                     "in the file edited, or the events written for another job?)");
  };
  std::vector<bool> named(n, false);
  for (int i = 0; i < timeline.events_size(); ++i) {
    const auto& e = timeline.events(i);
    const std::uint32_t t = e.task_id();
    if (t >= n) differ(i, "names task id " + std::to_string(t) + " but the job graph has " + std::to_string(n) + " tasks");
    if (e.rank() >= world)
      differ(i, "is on rank " + std::to_string(e.rank()) + " but the job has " + std::to_string(world) + " GPUs");
    const Task& task = graph.tasks()[t];
    if (e.has_kind() && e.kind() != task.kind)
      differ(i, "is a " + TaskKind_Name(e.kind()) + " but the graph's task " + std::to_string(t) + " (" +
                    graph.task_name(t) + ") is a " + TaskKind_Name(task.kind));
    // Every rank of a stage runs its representative's task list under symmetry; without it (and in an
    // imported graph, which has no stages) a task runs on its own rank only.
    if (!imported && symmetric ? grid.stage(e.rank()) != grid.stage(task.rank) : e.rank() != task.rank)
      differ(i, "is on rank " + std::to_string(e.rank()) + " but the graph's task " + std::to_string(t) + " (" +
                    graph.task_name(t) + ", of rank " + std::to_string(task.rank) + ") " +
                    (!imported && symmetric ? "is in another pipeline stage" : "is another rank's"));
    // The names, once per task: the executor and the simulator write the graph's own.
    if (!e.name().empty() && !named[t]) {
      named[t] = true;
      const std::string expected = graph.task_name(t);
      if (e.name() != expected)
        differ(i, "is named \"" + e.name() + "\" but the graph's task " + std::to_string(t) + " is \"" + expected +
                      "\"");
    }
  }
}

CompareResult compare_timelines(const Timeline& predicted, const Timeline& measured, const CompareOptions& options) {
  if (!predicted.has_scenario())
    throw InputError("the predicted timeline has no scenario: it cannot be joined to a job graph (write it again with "
                     "this version's `parallax simulate --timeline`)");
  if (!measured.has_scenario())
    throw InputError("the measured timeline has no scenario: it cannot be joined to a job graph (the executor embeds "
                     "the scenario it ran; was the file written by another tool?)");
  if (predicted.has_graph() != measured.has_graph())
    throw InputError(std::string("the ") + (predicted.has_graph() ? "predicted" : "measured") +
                     " timeline is of a graph imported from an execution trace but the " +
                     (predicted.has_graph() ? "measured" : "predicted") +
                     " one is of a scenario; they are different jobs");
  const bool imported = predicted.has_graph();
  // The job graph the task ids index: rebuilt once from the scenario, or carried by an imported
  // trace's timelines (then both must carry the same one).
  if (!imported) {
    // Different jobs first: that is the clearer message when a file of another job was given.
    check_same_job(predicted.scenario(), measured.scenario());
  }
  validate_timeline(predicted, "the predicted timeline");
  validate_timeline(measured, "the measured timeline");
  const JobGraph graph = graph_of(predicted, "the predicted timeline");
  if (imported) check_same_imported_job(graph, graph_of(measured, "the measured timeline"));
  check_events_of_graph(graph, predicted, "the predicted timeline");
  check_events_of_graph(graph, measured, "the measured timeline");
  const auto n = static_cast<std::uint32_t>(graph.num_tasks());

  CompareResult result;
  result.scenario_name = predicted.scenario().name();
  if (predicted.source() != Timeline::PREDICTED)
    result.notes.push_back("the first timeline is marked MEASURED; it is used as the prediction");
  if (measured.source() != Timeline::MEASURED)
    result.notes.push_back("the second timeline is marked PREDICTED; it is used as the measurement");

  // The predicted event of each task: the one on the task's own (representative) rank.
  std::vector<std::int32_t> pred(n, -1);
  for (int i = 0; i < predicted.events_size(); ++i) {
    const auto& e = predicted.events(i);
    if (pred[e.task_id()] < 0 || e.rank() == graph.tasks()[e.task_id()].rank) pred[e.task_id()] = i;
  }

  // Join.
  struct Acc {
    ClassError c;
    std::vector<double> errors;
  };
  std::map<std::string, Acc> classes;
  std::vector<Acc*> acc_of(n, nullptr);  // each task's class (map nodes do not move)
  // The top N so far, as a heap whose front is the smallest error kept (a measured timeline of a big
  // job has tens of millions of events: keep N, not all).
  const std::size_t top_n = static_cast<std::size_t>(std::max(0, options.top_n));
  auto larger = [](const TaskError& a, const TaskError& b) {
    const double x = std::fabs(a.error_s), y = std::fabs(b.error_s);
    return x > y || (x == y && (a.task_id < b.task_id || (a.task_id == b.task_id && a.rank < b.rank)));
  };
  std::vector<TaskError> top;
  std::vector<bool> matched(n, false);
  // Task ids, ranks and stages were checked against the graph above.
  for (const auto& e : measured.events()) {
    const std::uint32_t t = e.task_id();
    if (pred[t] < 0)
      throw InputError("the measured timeline has an event (rank " + std::to_string(e.rank()) + ") for task id " +
                       std::to_string(t) + ", which the prediction has no event for" +
                       "; were the two timelines made from the same plan?");
    const Task& task = graph.tasks()[t];
    matched[t] = true;
    const auto& p = predicted.events(pred[t]);
    TaskError te;  // the name is filled in for the top N only
    te.task_id = t;
    te.rank = e.rank();
    te.kind = task.kind;
    te.measured_s = e.end_s() - e.start_s();
    te.predicted_s = p.end_s() - p.start_s();
    te.error_s = te.predicted_s - te.measured_s;
    te.error_pct = pct(te.predicted_s, te.measured_s);
    if (!acc_of[t]) acc_of[t] = &classes[task_class(task)];
    Acc& acc = *acc_of[t];
    acc.c.count += 1;
    acc.c.measured_s += te.measured_s;
    acc.c.predicted_s += te.predicted_s;
    if (te.measured_s > 0) acc.errors.push_back(te.error_pct);
    if (top.size() < top_n) {
      top.push_back(te);
      std::push_heap(top.begin(), top.end(), larger);
    } else if (top_n > 0 && larger(te, top.front())) {
      std::pop_heap(top.begin(), top.end(), larger);
      top.back() = te;
      std::push_heap(top.begin(), top.end(), larger);
    }
  }
  result.measured_events = static_cast<std::uint64_t>(measured.events_size());
  std::uint64_t unmeasured = 0;
  for (std::uint32_t t = 0; t < n; ++t) {
    if (matched[t]) ++result.predicted_tasks;
    else if (pred[t] >= 0) ++unmeasured;
  }
  if (unmeasured > 0)
    result.notes.push_back(std::to_string(unmeasured) + " predicted tasks have no measured event");

  // Step times.
  const auto [p0, p1] = span(predicted);
  const auto [m0, m1] = span(measured);
  result.step_time_predicted_s = p1 - p0;
  result.step_time_measured_s = m1 - m0;
  result.step_time_error_pct = pct(result.step_time_predicted_s, result.step_time_measured_s);

  for (auto& [name, acc] : classes) {
    acc.c.name = name;
    acc.c.error_pct = pct(acc.c.predicted_s, acc.c.measured_s);
    acc.c.median_error_pct = median(acc.errors);
    result.classes.push_back(acc.c);
  }
  std::stable_sort(result.classes.begin(), result.classes.end(),
                   [](const ClassError& a, const ClassError& b) { return class_order(a.name) < class_order(b.name); });

  // Top tasks by absolute error, largest first.
  std::sort(top.begin(), top.end(), larger);
  for (auto& te : top) {
    const auto& p = predicted.events(pred[te.task_id]);
    te.name = p.name().empty() ? graph.task_name(te.task_id) : p.name();
  }
  result.top_tasks = std::move(top);

  // Critical paths: each timeline's own (a measured one's on the real ranks that finished last).
  result.critical_path_predicted = critical_path(graph, task_times(graph, predicted));
  result.critical_path_measured = critical_path(graph, task_times(graph, measured));
  return result;
}

}  // namespace parallax::analysis
