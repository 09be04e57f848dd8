// The planner's fast step-time estimate: no SimGrid, no job graph of the whole step. Per-layer costs
// come from the cost model on one layer's tasks; communication from the same analytic collective
// times the simulator's tuner uses; the pipeline schedule is timed stage by stage; data-parallel
// buckets are placed on their stream as they become ready. Without contention it agrees with the
// simulator (tests hold it within 5%); contention is what the simulator adds.
#pragma once

#include "parallax/parallax.pb.h"

#include <string>

namespace parallax::planner {

struct StepEstimate {
  double step_s = 0;
  double compute_s = 0;        // busiest stage's compute
  double bubble_s = 0;         // pipeline bubble on the busiest stage
  double exposed_comm_s = 0;   // communication not hidden behind compute (TP, EP, PP, DP, optimizer gathers)
  double tp_comm_s = 0, pp_comm_s = 0, dp_comm_s = 0;  // totals per stage-0 rank
  double ep_comm_s = 0;        // MoE dispatch and combine all-to-alls on the busiest stage (in compute_s)
  std::string bottleneck;      // the dominant cost, in words
};

// For a validated scenario (model::load_scenario / parse_scenario).
StepEstimate estimate_step(const Scenario& scenario);

}  // namespace parallax::planner
