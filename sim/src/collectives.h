// Collectives as point-to-point flows (internal to the simulator). A collective of S bytes on a group
// becomes phases of concurrent flows carrying the bytes its algorithm moves, plus the per-step latency
// of the algorithm added analytically (docs/architecture.md, the simulator: a step-by-step ring is 2(n-1) rounds of
// comms; one phase with the equivalent bytes gives the same time without contention and lets flows
// contend through SimGrid's solver, at a fraction of the cost).
#pragma once

#include "platform.h"

#include "parallax/netmodel/collective_cost.h"
#include "parallax/parallax.pb.h"
#include "parallax/sim/simulate.h"

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace parallax::sim {

struct Flow {
  std::uint32_t src, dst;
  double bytes;
};
using Phase = std::vector<Flow>;

struct CollectivePlan {
  std::string algorithm;       // "ring", "tree", "hierarchical", "direct" (send/recv, all-to-all)
  std::vector<Phase> phases;   // run one after another
  double extra_latency = 0;    // per-step latencies beyond the one each phase's flows carry
  double alone_s = 0;          // analytic duration of one group with the network to itself
};

class CollectivePlanner {
 public:
  CollectivePlanner(const Platform& platform, CollectiveAlgorithm forced) : platform_(platform), forced_(forced) {}

  // `groups` are congruent groups running the same collective at the same time (a representative's
  // group and its symmetric images); each is a list of global ranks.
  CollectivePlan plan(CollectiveKind kind, const std::vector<std::vector<std::uint32_t>>& groups, double bytes);

 private:
  // The algorithm for the representative group (NCCL-style tuner of the network cost model).
  CollectiveAlgorithm choose(CollectiveKind kind, const std::vector<std::uint32_t>& group,
                             const netmodel::GroupShape& shape, double bytes);
  CollectivePlan build(CollectiveKind kind, const std::vector<std::uint32_t>& group, const netmodel::GroupShape& shape,
                       double bytes, CollectiveAlgorithm algorithm) const;
  // REDUCE's chain ("ring"), GATHER's or SCATTER's flows ("direct"); the root is the first member.
  Phase rooted_phase(CollectiveKind kind, const std::vector<std::uint32_t>& group, double bytes) const;
  Phase all_to_all_phase(const std::vector<std::uint32_t>& group, double bytes) const;

  const Platform& platform_;
  CollectiveAlgorithm forced_;
  std::map<std::tuple<int, std::uint32_t, std::uint32_t, double>, CollectiveAlgorithm> choice_cache_;
};

}  // namespace parallax::sim
