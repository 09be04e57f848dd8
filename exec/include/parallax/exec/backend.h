// The contract between the executor core and a backend. The core (MPI setup, communicators,
// watchdog, gathering) is shared; a backend runs one rank's task list for one iteration and returns
// each task's start and end in seconds since the iteration started (its own clock, one per rank).
#pragma once

#include "parallax/exec/environment.h"
#include "parallax/exec/execute.h"
#include "parallax/exec/plan.h"

#include <mpi.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace parallax::exec {

// MPI communicators of this rank, one per communicator kind it belongs to (MPI_COMM_NULL when the
// group has a single member). Members are in rank order (model::RankGrid::members).
struct Communicators {
  MPI_Comm world = MPI_COMM_WORLD;
  std::map<CommGroup, MPI_Comm> groups;  // GROUP_TP, GROUP_DP, GROUP_EMBEDDING (when this rank is in it)
  std::map<CommGroup, std::vector<std::uint32_t>> members;
  // Imported graphs: one communicator per explicit rank list this rank is in (with more than one
  // member), keyed by its index in JobGraph::communicators(); members in communicator rank order.
  std::map<std::int32_t, MPI_Comm> explicit_comms;
  std::map<std::int32_t, std::vector<std::uint32_t>> explicit_members;
};

struct TaskTiming {
  double start = -1, end = -1;  // seconds since the iteration's start, on this rank's clock
  LaneId lane = LANE_COMPUTE;   // the thread or stream it ran on (traces::lane_of's table)
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // Allocates buffers sized by the largest task, creates streams/threads; called once.
  virtual void prepare(const model::JobGraph& graph, const RankPlan& plan, const Communicators& comms,
                       const ExecOptions& options) = 0;
  // Runs every task of plan.tasks once, respecting dependencies and stream order, timing each.
  // `progress` is incremented after each task completes (the watchdog watches it). With verify,
  // throws std::runtime_error naming the task and the first wrong element on a wrong result.
  virtual std::vector<TaskTiming> run_iteration(std::atomic<std::uint64_t>& progress) = 0;
  // Device / machine description for the timeline ("NVIDIA H100 80GB HBM3", "x86-64 host, OpenBLAS").
  virtual std::string device() const = 0;
};

std::unique_ptr<Backend> make_host_backend();
// Only when built with CUDA and NCCL (PARALLAX_HAVE_CUDA); otherwise throws InputError saying so.
std::unique_ptr<Backend> make_cuda_backend(const Environment& env);

}  // namespace parallax::exec
