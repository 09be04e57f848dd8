#include "collectives.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace parallax::sim {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

}  // namespace

Phase CollectivePlanner::rooted_phase(CollectiveKind kind, const std::vector<std::uint32_t>& g,
                                      double S) const {
  Phase phase;
  const double n = static_cast<double>(g.size());
  if (kind == REDUCE) {
    for (auto [a, b] : netmodel::reduce_chain_edges(static_cast<int>(g.size())))
      phase.push_back({g[static_cast<std::size_t>(a)], g[static_cast<std::size_t>(b)], S});
    return phase;
  }
  // GATHER: each member sends its S/n to the root; SCATTER: the root sends each member its S/n. The
  // root's own piece stays put. NCCL has no gather or scatter kernel: torch.distributed and
  // nccl-tests post them as one group of ncclSend/ncclRecv, which run concurrently and share the
  // root's links.
  for (std::size_t i = 1; i < g.size(); ++i)
    phase.push_back(kind == GATHER ? Flow{g[i], g.front(), S / n} : Flow{g.front(), g[i], S / n});
  return phase;
}

CollectiveAlgorithm CollectivePlanner::choose(CollectiveKind kind, const std::vector<std::uint32_t>& g,
                                              const netmodel::GroupShape& shape, double S) {
  if (kind != ALL_REDUCE || forced_ != CollectiveAlgorithm::Auto)
    return netmodel::choose_algorithm(shape, kind, S, forced_).algorithm;
  const auto key = std::make_tuple(static_cast<int>(kind), g.front(), static_cast<std::uint32_t>(g.size()), S);
  if (auto it = choice_cache_.find(key); it != choice_cache_.end()) return it->second;
  const CollectiveAlgorithm best = netmodel::choose_algorithm(shape, kind, S).algorithm;
  choice_cache_[key] = best;
  return best;
}

CollectivePlan CollectivePlanner::build(CollectiveKind kind, const std::vector<std::uint32_t>& g,
                                        const netmodel::GroupShape& s, double S, CollectiveAlgorithm algorithm) const {
  CollectivePlan plan;
  const int n = static_cast<int>(g.size());
  if (n <= 1) {
    plan.algorithm = "local";
    return plan;
  }
  const double nd = n;
  auto ring_phase = [&](const std::vector<std::uint32_t>& members, double bytes_per_flow) {
    Phase phase;
    for (std::size_t i = 0; i < members.size(); ++i)
      phase.push_back({members[i], members[(i + 1) % members.size()], bytes_per_flow});
    return phase;
  };
  double steps_latency = 0;
  if (kind == ALL_REDUCE && algorithm == CollectiveAlgorithm::Tree) {
    plan.algorithm = "tree";
    Phase up, down;
    for (auto [c, p] : netmodel::double_tree_edges(n)) {
      up.push_back({g[static_cast<std::size_t>(c)], g[static_cast<std::size_t>(p)], S / 2});
      down.push_back({g[static_cast<std::size_t>(p)], g[static_cast<std::size_t>(c)], S / 2});
    }
    plan.phases = {up, down};
    steps_latency = 2 * netmodel::tree_depth(n) * s.tree_latency;
    plan.extra_latency = std::max(0.0, steps_latency - 2 * s.tree_latency);
  } else if (kind == ALL_REDUCE && algorithm == CollectiveAlgorithm::Hierarchical) {
    plan.algorithm = "hierarchical";
    std::map<int, std::vector<std::uint32_t>> by_node;
    for (auto r : g) by_node[platform_.topology().node_of(r)].push_back(r);
    const int gpn = s.per_node, nodes = s.nodes;
    Phase intra_rs, inter, intra_ag;
    for (const auto& [node, members] : by_node) {
      for (const Flow& f : ring_phase(members, (gpn - 1.0) / gpn * S)) intra_rs.push_back(f);
    }
    for (int j = 0; j < gpn; ++j) {
      std::vector<std::uint32_t> column;
      for (const auto& [node, members] : by_node) column.push_back(members[static_cast<std::size_t>(j)]);
      for (const Flow& f : ring_phase(column, 2.0 * (nodes - 1) / nodes * S / gpn)) inter.push_back(f);
    }
    intra_ag = intra_rs;
    plan.phases = {intra_rs, inter, intra_ag};
    steps_latency = 2 * (gpn - 1) * s.intra_latency + 2 * (nodes - 1) * s.inter_latency;
    plan.extra_latency = std::max(0.0, steps_latency - 2 * s.intra_latency - s.inter_latency);
  } else if (kind == REDUCE) {
    // NCCL's ring reduce: one phase of the chain's n-1 flows of S each (the pipelined chunks move
    // concurrently on every edge), then the remaining n-2 steps of latency (the flows carry one).
    // Not a reduce-scatter then a gather: that moves (n-1)/n S per edge and again (n-1)/n S into
    // the root, 2(n-1)/n S through the root's link like an all-reduce, where NCCL's chain moves S.
    plan.algorithm = "ring";
    plan.phases = {rooted_phase(kind, g, S)};
    steps_latency = (nd - 1) * s.chain_latency;
    plan.extra_latency = std::max(0.0, steps_latency - s.chain_latency);
  } else if (kind == GATHER || kind == SCATTER) {
    // One step of concurrent point-to-point flows to (from) the root; they contend on its links in
    // SimGrid's solver, so no latency beyond the one the flows carry.
    plan.algorithm = "direct";
    plan.phases = {rooted_phase(kind, g, S)};
  } else if (kind == RING_EXCHANGE) {
    // One step of a ring: n concurrent flows of S, member i to member i + 1.
    plan.algorithm = "ring";
    plan.phases = {ring_phase(g, S)};
  } else if (kind == ALL_TO_ALL) {
    plan.algorithm = "direct";
    Phase phase;
    for (auto a : g)
      for (auto b : g)
        if (a != b) phase.push_back({a, b, S / nd});
    plan.phases = {phase};
  } else {
    plan.algorithm = "ring";
    double per_flow = S, steps = nd - 1;
    if (kind == ALL_REDUCE) {
      per_flow = 2 * (nd - 1) / nd * S;
      steps = 2 * (nd - 1);
    } else if (kind == REDUCE_SCATTER || kind == ALL_GATHER) {
      per_flow = (nd - 1) / nd * S;
    }
    // Over whole nodes, NCCL's channels: one ring per GPU of a node, each leaving the node from another
    // NIC (netmodel::channel_rings), each carrying its share.
    const int channels = netmodel::ring_channels(platform_.topology(), s);
    Phase phase;
    for (const auto& ring : netmodel::channel_rings(platform_.topology(), g, channels))
      for (const Flow& f : ring_phase(ring, per_flow / channels)) phase.push_back(f);
    plan.phases = {std::move(phase)};
    steps_latency = steps * s.ring_latency;
    plan.extra_latency = std::max(0.0, steps_latency - s.ring_latency);
  }
  plan.alone_s = netmodel::collective_time(s, kind, algorithm == CollectiveAlgorithm::Auto ? CollectiveAlgorithm::Ring : algorithm, S);
  if (!(plan.alone_s < kInf)) plan.alone_s = netmodel::collective_time(s, kind, CollectiveAlgorithm::Ring, S);
  return plan;
}

CollectivePlan CollectivePlanner::plan(CollectiveKind kind, const std::vector<std::vector<std::uint32_t>>& groups,
                                       double bytes) {
  const auto& topology = platform_.topology();
  const netmodel::GroupShape shape = netmodel::group_shape(topology, groups.front(), kind);
  const CollectiveAlgorithm algorithm = choose(kind, groups.front(), shape, bytes);
  CollectivePlan merged = build(kind, groups.front(), shape, bytes, algorithm);
  for (std::size_t i = 1; i < groups.size(); ++i) {
    const CollectivePlan other = build(kind, groups[i], netmodel::group_shape(topology, groups[i], kind), bytes, algorithm);
    for (std::size_t k = 0; k < merged.phases.size() && k < other.phases.size(); ++k)
      merged.phases[k].insert(merged.phases[k].end(), other.phases[k].begin(), other.phases[k].end());
  }
  return merged;
}

}  // namespace parallax::sim
