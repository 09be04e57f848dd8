#include "parallax/analysis/timeline_analysis.h"

#include "parallax/model/rank_grid.h"
#include "parallax/model/scenario.h"
#include "parallax/traces/io.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>

namespace parallax::analysis {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

using Intervals = std::vector<std::pair<double, double>>;

// Sorts `iv` and returns the length of its union; `merged` (if given) gets the disjoint intervals.
double union_length(Intervals& iv, Intervals* merged) {
  std::sort(iv.begin(), iv.end());
  double total = 0, cs = 0, ce = -1;
  bool open = false;
  for (const auto& [s, e] : iv) {
    if (!open || s > ce) {
      if (open) {
        total += ce - cs;
        if (merged) merged->push_back({cs, ce});
      }
      cs = s;
      ce = e;
      open = true;
    } else {
      ce = std::max(ce, e);
    }
  }
  if (open) {
    total += ce - cs;
    if (merged) merged->push_back({cs, ce});
  }
  return total;
}

// Length of the intersection of two sorted, disjoint interval lists.
double overlap(const Intervals& a, const Intervals& b) {
  double sum = 0;
  for (std::size_t i = 0, j = 0; i < a.size() && j < b.size();) {
    const double lo = std::max(a[i].first, b[j].first);
    const double hi = std::min(a[i].second, b[j].second);
    if (hi > lo) sum += hi - lo;
    (a[i].second < b[j].second) ? ++i : ++j;
  }
  return sum;
}

bool timed(double start, double end) { return !std::isnan(start) && !std::isnan(end); }

}  // namespace

model::JobGraph graph_of(const Timeline& timeline, const std::string& source) {
  if (timeline.has_graph()) return model::JobGraph::from_proto(timeline.graph(), source + ": graph");
  if (!timeline.has_scenario())
    throw InputError(source +
                     ": the timeline has no scenario, so its task ids cannot be joined to a job graph (parallax "
                     "simulate --timeline and parallax-exec embed the scenario they ran; was the file written by "
                     "another tool?)");
  model::validate_scenario(timeline.scenario(), source + ": scenario");
  return model::build_job_graph(timeline.scenario(), source + ": scenario");
}

TaskTimes task_times(const model::JobGraph& graph, const Timeline& timeline) {
  const auto n = static_cast<std::uint32_t>(graph.num_tasks());
  const bool symmetric = graph.uses_symmetry();
  TaskTimes times;
  times.start.assign(n, kNaN);
  times.end.assign(n, kNaN);
  times.event.assign(n, -1);
  times.rank.resize(n);
  for (std::uint32_t t = 0; t < n; ++t) times.rank[t] = graph.tasks()[t].rank;
  if (timeline.events_size() == 0) return times;

  double lo = kInf, hi = -kInf;
  std::uint32_t max_rank = 0;
  for (int i = 0; i < timeline.events_size(); ++i) {
    const auto& e = timeline.events(i);
    if (e.task_id() >= n)
      throw InputError("event " + std::to_string(i) + " names task " + std::to_string(e.task_id()) +
                       " but the job graph has " + std::to_string(n) +
                       " tasks (the timeline and its embedded scenario or graph do not belong together)");
    lo = std::min(lo, e.start_s());
    hi = std::max(hi, e.end_s());
    max_rank = std::max(max_rank, e.rank());
  }
  times.origin_s = lo;
  times.step_s = hi - lo;

  // Under symmetry every real rank of a stage runs the representative's tasks: the rank of each
  // stage that finished last stands for it.
  std::vector<std::uint32_t> slowest;
  model::RankGrid grid;
  if (symmetric) {
    grid = model::rank_grid(graph.scenario());
    std::vector<double> rank_end(static_cast<std::size_t>(max_rank) + 1, -kInf);
    for (const auto& e : timeline.events()) rank_end[e.rank()] = std::max(rank_end[e.rank()], e.end_s());
    std::vector<double> stage_end(static_cast<std::size_t>(grid.extent(model::GridDim::Pp)), -kInf);
    slowest.assign(static_cast<std::size_t>(grid.extent(model::GridDim::Pp)), 0);
    for (std::uint32_t r = 0; r <= max_rank && r < grid.size(); ++r) {
      const auto s = static_cast<std::size_t>(grid.stage(r));
      if (rank_end[r] > stage_end[s]) {
        stage_end[s] = rank_end[r];
        slowest[s] = r;
      }
    }
  }
  std::vector<std::int32_t> chosen(n, -1);
  for (int i = 0; i < timeline.events_size(); ++i) {
    const auto& e = timeline.events(i);
    const std::uint32_t t = e.task_id();
    if (chosen[t] < 0) chosen[t] = i;  // the first, unless the wanted rank has one
    const std::uint32_t own = graph.tasks()[t].rank;
    const std::uint32_t want = symmetric ? slowest[static_cast<std::size_t>(grid.stage(own))] : own;
    if (e.rank() == want) chosen[t] = i;
  }
  for (std::uint32_t t = 0; t < n; ++t) {
    if (chosen[t] < 0) continue;
    const auto& e = timeline.events(chosen[t]);
    times.start[t] = e.start_s() - lo;
    times.end[t] = e.end_s() - lo;
    times.rank[t] = e.rank();
    times.event[t] = chosen[t];
  }
  return times;
}

PathSummary critical_path(const model::JobGraph& graph, const TaskTimes& times) {
  PathSummary out;
  const auto n = static_cast<std::uint32_t>(graph.num_tasks());
  const auto& start = times.start;
  const auto& end = times.end;
  std::int64_t last = -1;
  for (std::uint32_t i = 0; i < n; ++i)
    if (timed(start[i], end[i]) && (last < 0 || end[i] > end[static_cast<std::uint32_t>(last)])) last = i;
  if (last < 0) return out;
  std::vector<std::uint32_t>& path = out.tasks;
  auto v = static_cast<std::uint32_t>(last);
  while (true) {
    path.push_back(v);
    double latest = -kInf;
    std::uint32_t next = v;
    for (auto [e, eend] = boost::in_edges(v, graph.graph()); e != eend; ++e) {
      const auto s = static_cast<std::uint32_t>(boost::source(*e, graph.graph()));
      if (!timed(start[s], end[s])) continue;
      // The binding predecessor: the last to finish; on a tie prefer the same rank.
      if (end[s] > latest + 1e-15 || (std::fabs(end[s] - latest) <= 1e-15 && times.rank[s] == times.rank[v])) {
        latest = end[s];
        next = s;
      }
    }
    if (next == v) break;
    v = next;
  }
  std::reverse(path.begin(), path.end());
  CriticalPath& cp = out.path;
  cp.set_tasks(static_cast<std::uint32_t>(path.size()));
  double compute = 0, comm = 0, wait = 0, prev_end = 0;
  CriticalPathSegment* seg = nullptr;
  for (auto t : path) {
    const model::Task& task = graph.tasks()[t];
    // A recv spans its send's transfer: count only the part of each task after its predecessor.
    const double d = std::max(0.0, end[t] - std::max(start[t], prev_end));
    wait += std::max(0.0, start[t] - prev_end);
    prev_end = std::max(prev_end, end[t]);
    (task.is_compute() ? compute : comm) += d;
    (*cp.mutable_by_op())[std::string(model::op_name(task.op))] += d;
    if (!seg || seg->rank() != times.rank[t]) {
      seg = cp.add_segments();
      seg->set_rank(times.rank[t]);
      seg->set_start_s(start[t]);
      seg->set_first_task(graph.task_name(t));
    }
    seg->set_end_s(end[t]);
    seg->set_tasks(seg->tasks() + 1);
    seg->set_last_task(graph.task_name(t));
    if (task.is_compute()) {
      seg->set_compute_s(seg->compute_s() + d);
    } else {
      seg->set_comm_s(seg->comm_s() + d);
    }
  }
  cp.set_compute_s(compute);
  cp.set_comm_s(comm);
  cp.set_wait_s(wait);
  out.length_s = end[path.back()];
  return out;
}

RankTime rank_breakdown(const model::JobGraph& graph, std::size_t rank_index, std::span<const double> start,
                        std::span<const double> end, double step_s) {
  const auto tasks = graph.rank_tasks(rank_index);
  Intervals compute, comm;
  std::vector<double> compute_run;  // per compute interval, the part not under an earlier one
  for (auto v : tasks) {
    const model::Task& t = graph.tasks()[v];
    if (!timed(start[v], end[v]) || end[v] <= start[v]) continue;
    if (t.on_host) continue;  // an imported trace's CPU-side op: host time, not the GPU's
    (t.is_compute() ? compute : comm).push_back({start[v], end[v]});
  }
  // Compute time: each task's duration, less any part already covered by compute that started
  // earlier (concurrent kernels of a measured trace count once). Summed in program order: tasks that
  // do not overlap add exactly their durations.
  {
    std::vector<std::size_t> order(compute.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return compute[a] < compute[b]; });
    compute_run.assign(compute.size(), 0);
    double cursor = -kInf;
    for (auto i : order) {
      compute_run[i] = std::max(0.0, compute[i].second - std::max(compute[i].first, cursor));
      cursor = std::max(cursor, compute[i].second);
    }
  }
  RankTime out;
  for (double d : compute_run) out.compute_s += d;
  Intervals compute_merged, comm_merged, busy_merged;
  union_length(compute, &compute_merged);
  const double comm_total = union_length(comm, &comm_merged);
  out.overlapped_comm_s = overlap(compute_merged, comm_merged);
  out.exposed_comm_s = comm_total - out.overlapped_comm_s;
  Intervals busy = compute_merged;
  busy.insert(busy.end(), comm_merged.begin(), comm_merged.end());
  union_length(busy, &busy_merged);

  // Gaps: waiting for a pipeline neighbour is bubble, anything else idle. The compute task that ends
  // a gap says which: its binding predecessor (the last to finish) is a send or recv.
  std::vector<std::pair<double, std::uint32_t>> compute_starts;
  for (auto v : tasks)
    if (graph.tasks()[v].is_compute() && !std::isnan(start[v])) compute_starts.push_back({start[v], v});
  std::sort(compute_starts.begin(), compute_starts.end());
  double cursor = 0;
  auto classify = [&](double gap_start, double gap_end) {
    if (gap_end <= gap_start) return;
    const auto it = std::lower_bound(compute_starts.begin(), compute_starts.end(), std::make_pair(gap_end - 1e-12, 0u));
    bool pipeline_wait = false;
    if (it != compute_starts.end()) {
      double latest = -1;
      std::uint32_t binding = it->second;
      for (auto [e, eend] = boost::in_edges(it->second, graph.graph()); e != eend; ++e) {
        const auto s = static_cast<std::uint32_t>(boost::source(*e, graph.graph()));
        if (!std::isnan(end[s]) && end[s] > latest) {
          latest = end[s];
          binding = s;
        }
      }
      pipeline_wait = graph.tasks()[binding].kind == RECV || graph.tasks()[binding].kind == SEND;
    }
    (pipeline_wait ? out.bubble_s : out.idle_s) += gap_end - gap_start;
  };
  for (const auto& [s, e] : busy_merged) {
    classify(cursor, s);
    cursor = e;
  }
  out.idle_s += std::max(0.0, step_s - cursor);
  return out;
}

std::vector<RankTime> breakdown(const model::JobGraph& graph, const TaskTimes& times) {
  std::vector<RankTime> out;
  out.reserve(graph.ranks().size());
  for (std::size_t i = 0; i < graph.ranks().size(); ++i)
    out.push_back(rank_breakdown(graph, i, times.start, times.end, times.step_s));
  return out;
}

std::int64_t rank_index_of(const model::JobGraph& graph, std::uint32_t rank) {
  const auto& ranks = graph.ranks();
  for (std::size_t i = 0; i < ranks.size(); ++i)
    if (ranks[i].rank == rank) return static_cast<std::int64_t>(i);
  if (!graph.uses_symmetry()) return -1;
  const model::RankGrid grid = model::rank_grid(graph.scenario());
  if (rank >= grid.size()) return -1;
  const auto stage = static_cast<std::int32_t>(grid.stage(rank));
  for (std::size_t i = 0; i < ranks.size(); ++i)
    if (ranks[i].multiplicity > 1 && ranks[i].pp_stage == stage) return static_cast<std::int64_t>(i);
  return -1;
}

}  // namespace parallax::analysis
