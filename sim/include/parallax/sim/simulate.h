// Simulating one training step of a job graph on its cluster with SimGrid.
#pragma once

#include "parallax/model/job_graph.h"
#include "parallax/netmodel/collective_cost.h"
#include "parallax/parallax.pb.h"

#include <string>

namespace parallax::sim {

// The collective algorithms are the network cost model's (parallax/netmodel/collective_cost.h).
using netmodel::CollectiveAlgorithm;
using netmodel::algorithm_name;
using netmodel::parse_algorithm;

struct SimulationOptions {
  // Auto picks, per collective, the algorithm with the lowest analytic time for its size and
  // topology, as NCCL's tuner does; the others force one where it applies.
  CollectiveAlgorithm algorithm = CollectiveAlgorithm::Auto;
  // Fill task names into the timeline (for --timeline / --chrome; costs memory on big graphs).
  bool name_events = false;
  // Links listed in the report, busiest first.
  int top_links = 10;
  // Print a progress line to stderr (flushed, terminal or not) every progress_interval_s() of wall
  // time: a long simulation otherwise says nothing until it ends. The CLI's simulate turns it on.
  bool progress = false;
};

// Seconds between progress lines: PARALLAX_PROGRESS_INTERVAL_S if set (a number > 0; anything else
// is an InputError naming the variable), else 10.
double progress_interval_s();

struct SimulationResult {
  Report report;
  Timeline timeline;  // one event per stored task (representative ranks only under symmetry)
};

// Runs the simulation in this process. SimGrid's engine is once per process: call it once, or use
// simulate_in_subprocess for several.
SimulationResult simulate(const model::JobGraph& graph, const SimulationOptions& options = {});

// Runs simulate() in a forked child and returns its result (for sweeps: validate, tests, planner).
SimulationResult simulate_in_subprocess(const model::JobGraph& graph, const SimulationOptions& options = {});

}  // namespace parallax::sim
