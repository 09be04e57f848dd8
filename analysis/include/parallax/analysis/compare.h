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

// Checks what compare and calibrate rely on in a timeline read from a file: an embedded scenario that
// validates as a scenario file does (they rebuild the job graph from it) and finite event times.
// `name` says which timeline in messages ("the measured timeline"). Throws InputError.
void validate_timeline(const Timeline& timeline, const std::string& name);

// Throws InputError when a timeline has no scenario (or one that does not validate, or an event with a
// non-finite time), when the two scenarios differ in the model, the
// layout, the GPU count or use_symmetry (then the task ids mean different tasks), or when a measured
// event names a task id the prediction lacks or a rank outside the job.
CompareResult compare_timelines(const Timeline& predicted, const Timeline& measured,
                                const CompareOptions& options = {});

}  // namespace parallax::analysis
