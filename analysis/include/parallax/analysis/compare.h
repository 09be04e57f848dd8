// Predicted against measured: a join of two timelines of the same scenario on task id.
//
// Under symmetry a predicted timeline has events for the representative rank of each pipeline stage
// only, while a measured one has an event for every rank, whose task_id is the representative's task
// (every rank runs its stage representative's task list). A measured event (rank r, task t) is
// therefore compared with the predicted event of task t, which sits on the representative of r's
// stage. Without symmetry both sides have the same ranks.
#pragma once

#include "parallax/analysis/timeline_analysis.h"
#include "parallax/model/job_graph.h"
#include "parallax/parallax.pb.h"

#include <cstdint>
#include <string>
#include <vector>

namespace parallax::analysis {

// Tasks of one class: GEMMs by FLOPs ("gemm small" < 1e8, "gemm medium" up to 1e10, "gemm large"),
// "memory-bound", collectives by type and size ("all_reduce <1MiB", "reduce_scatter 1-64MiB",
// "all_gather >64MiB", ...), "send" and "recv".
struct ClassError {
  std::string name;
  std::uint64_t count = 0;     // measured events (every rank counted)
  double measured_s = 0;       // sum of measured durations
  double predicted_s = 0;      // sum of the matching predicted durations (one per measured event)
  double error_pct = 0;        // (predicted - measured) / measured of the totals, in percent
  double median_error_pct = 0; // median over events of (predicted - measured) / measured, in percent
};

struct TaskError {
  std::uint32_t task_id = 0;
  std::uint32_t rank = 0;  // the measured (real) rank
  std::string name;
  TaskKind kind = GEMM;
  double measured_s = 0, predicted_s = 0;
  double error_s = 0;    // predicted - measured
  double error_pct = 0;  // (predicted - measured) / measured, percent (0 when measured is 0)
};

struct CompareResult {
  std::string scenario_name;
  double step_time_predicted_s = 0, step_time_measured_s = 0;  // max end - min start over events
  double step_time_error_pct = 0;                               // (predicted - measured) / measured
  std::uint64_t measured_events = 0;
  std::uint64_t predicted_tasks = 0;  // distinct predicted tasks the measured events matched
  std::vector<ClassError> classes;    // in a fixed order: gemm, memory-bound, collectives, send, recv
  std::vector<TaskError> top_tasks;   // largest |predicted - measured| first
  // Each timeline's critical path (critical_path() over task_times()); the measured one's segments name
  // real ranks.
  PathSummary critical_path_predicted, critical_path_measured;
  std::vector<std::string> notes;
};

struct CompareOptions {
  int top_n = 10;
};

// The largest time, in seconds from the step's start, an event of a timeline read from a file may
// have: a year. One training step of that length is not a measurement but a corrupt number.
inline constexpr double kMaxEventSeconds = 365.25 * 24 * 3600;

// Checks what compare, calibrate and the GUI rely on in a timeline read from a file: an embedded
// scenario that validates as a scenario file does (they rebuild the job graph from it), at least one
// event, every event's times finite, within kMaxEventSeconds of the step's start and ending no
// earlier than they start, and no two events for the same task on the same rank (a timeline is one
// step: the executor writes its median iteration). `name` says which timeline in messages ("the
// measured timeline"). Throws InputError naming the event, its task and rank, and the values.
void validate_timeline(const Timeline& timeline, const std::string& name);

// Checks that the events of `timeline` belong to `graph` (the job graph of its embedded scenario, or
// the one it carries): every task id and rank exists, each event's kind (when recorded) and name (when
// recorded) are the graph task's, and its rank runs that task (under symmetry: is in the task's
// pipeline stage). A timeline whose scenario was edited, or whose events come from another job, would
// otherwise be joined to the wrong tasks. Throws InputError naming `name` and the event.
void check_events_of_graph(const model::JobGraph& graph, const Timeline& timeline, const std::string& name);

// Throws InputError when a timeline has no scenario or fails validate_timeline, when the two scenarios
// differ in the model, the layout, the GPU count or use_symmetry (then the task ids mean different
// tasks), when either timeline's events are not of the job graph (check_events_of_graph), or when a
// measured event names a task the prediction has no event for.
CompareResult compare_timelines(const Timeline& predicted, const Timeline& measured,
                                const CompareOptions& options = {});

}  // namespace parallax::analysis
