// The analysis of a finished step: which job graph a timeline's task ids index, when each task ran,
// the critical path, and where each rank's time went. The simulator's report, compare, calibrate and
// the GUI all call these, so one timeline gives one critical path and one breakdown wherever it is
// shown (docs/architecture.md, "Timeline analysis").
#pragma once

#include "parallax/model/job_graph.h"
#include "parallax/parallax.pb.h"

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace parallax::analysis {

// The job graph the task ids of `timeline` index: the graph it carries (a timeline of an imported
// execution trace, whose scenario has no model to rebuild it from), else the job graph rebuilt from
// its embedded scenario. Both are validated first (as a scenario or plan file is). Throws InputError
// naming `source` (the file, or "the measured timeline") when there is no scenario, or the scenario
// or graph is invalid.
model::JobGraph graph_of(const Timeline& timeline, const std::string& source);

// When each task of a job graph ran, in seconds from the step's start. Indexed by task id; a task
// without an event has NaN start and end, and the analyses below leave it out.
struct TaskTimes {
  std::vector<double> start, end;
  std::vector<std::uint32_t> rank;  // the rank whose event gave the times (a measured event's real rank)
  std::vector<std::int32_t> event;  // index of that event in the timeline; -1: none (or not from a timeline)
  double origin_s = 0;              // the timeline's time of the step's start (its earliest event start)
  double step_s = 0;                // the last end, from the step's start
};

// The times of `graph`'s tasks in `timeline`. A task with events on several ranks (a measured
// timeline under symmetry has one per real rank of the stage) takes the event of the rank of its
// stage that finished last, else the one on the task's own rank, else its first. Throws InputError
// when an event names a task id the graph lacks.
TaskTimes task_times(const model::JobGraph& graph, const Timeline& timeline);

// The critical path: from the task that ends last (the first such task id on a tie), back each time
// to the predecessor that finished last (on a tie within 1e-15 s, the one on the same rank), until a
// task without a timed predecessor. Durations are counted after the previous path task's end (a recv
// spans its send's transfer), and time on the path with no task running, from the step's start on,
// is wait: compute_s + comm_s + wait_s is the end of the last path task.
struct PathSummary {
  std::vector<std::uint32_t> tasks;  // task ids, first to last
  double length_s = 0;               // the last path task's end, from the step's start
  CriticalPath path;                 // tasks, compute_s, comm_s, wait_s, by_op, segments (real ranks)
};
PathSummary critical_path(const model::JobGraph& graph, const TaskTimes& times);

// Where one rank's step went. compute: the time its compute tasks run (overlaps counted once);
// communication under compute is overlapped, the rest of it exposed; a gap with neither, ended by a
// compute task whose binding predecessor (the one that finished last) is a pipeline send or recv, is
// bubble, any other gap (and the time after the rank's last task to the step's end) idle. The five
// parts sum to the step. CPU-side tasks of imported traces are host time, not the GPU's: left out.
struct RankTime {
  double compute_s = 0, exposed_comm_s = 0, overlapped_comm_s = 0, bubble_s = 0, idle_s = 0;
};
// The breakdown of the representative rank `rank_index` (an index into graph.ranks()) from the times
// of its tasks and their predecessors.
RankTime rank_breakdown(const model::JobGraph& graph, std::size_t rank_index, std::span<const double> start,
                        std::span<const double> end, double step_s);
// Every representative rank, in graph.ranks() order.
std::vector<RankTime> breakdown(const model::JobGraph& graph, const TaskTimes& times);

// The representative (index into graph.ranks()) whose task list `rank` runs: itself when stored,
// under symmetry its pipeline stage's representative; -1 when none (a rank outside the job).
std::int64_t rank_index_of(const model::JobGraph& graph, std::uint32_t rank);

}  // namespace parallax::analysis
