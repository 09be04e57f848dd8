#include "collectives.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

namespace parallax::sim {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

int ceil_log2(int n) {
  int k = 0;
  while ((1 << k) < n) ++k;
  return k;
}

// NCCL's double binary tree: two trees over the ranks, the second mirrored, each carrying half the
// data. Returns (child, parent) pairs of both trees.
std::vector<std::pair<int, int>> double_tree_edges(int n) {
  std::vector<std::pair<int, int>> edges;
  for (int i = 1; i < n; ++i) {
    edges.push_back({i, (i - 1) / 2});
    edges.push_back({n - 1 - i, n - 1 - (i - 1) / 2});
  }
  return edges;
}

// Rooted collectives (REDUCE, GATHER, SCATTER): the root is the group's first member, as for
// BROADCAST (the importer's and the backends' convention).

// NCCL's ring reduce (src/device/reduce.h, runRing): the rank after the root in the ring sends its
// data, every other rank receives, adds its own and sends on, and the root receives and adds last.
// Chunks are pipelined, so each of the n-1 edges of that chain carries the whole S and the
// collective takes S/B plus n-1 steps of latency; nccl-tests counts its bus bandwidth as S/t for
// that reason (PERFORMANCE.md: "Reduce: t = S/B"). Returned as (src, dst) member indices, root = 0.
std::vector<std::pair<int, int>> reduce_chain_edges(int n) {
  std::vector<std::pair<int, int>> edges;
  for (int i = 1; i < n; ++i) edges.push_back({i, (i + 1) % n});
  return edges;
}

}  // namespace

// Time of concurrent flows that start together: the most loaded link (its bytes over its bandwidth)
// plus the longest route latency. Exact under SimGrid's max-min sharing when the flows crossing the
// busiest link are equal and bottlenecked there, as in a gather (every flow ends on the root's
// down link) or a scatter (every flow leaves on the root's up link).
double CollectivePlanner::direct_time(const Phase& flows) const {
  std::map<std::uint32_t, double> load;
  std::vector<std::uint32_t> links;
  double latency = 0, slowest = 0;
  for (const Flow& f : flows) {
    if (f.src == f.dst || f.bytes <= 0) continue;
    double lat = 0;
    platform_.route(f.src, f.dst, links, lat);
    latency = std::max(latency, lat);
    for (auto id : links) load[id] += f.bytes;
  }
  for (const auto& [id, bytes] : load)
    slowest = std::max(slowest, bytes / platform_.links()[id].bandwidth);
  return slowest + latency;
}

CollectivePlanner::Shape CollectivePlanner::shape(const std::vector<std::uint32_t>& g) const {
  Shape s;
  s.n = static_cast<int>(g.size());
  std::map<int, int> per_node;
  for (auto r : g) ++per_node[platform_.node_of(r)];
  s.nodes = static_cast<int>(per_node.size());
  s.per_node = per_node.begin()->second;
  for (const auto& [node, count] : per_node)
    if (count != s.per_node) s.per_node = 0;
  s.ring_bw = kInf;
  s.intra_bw = kInf;
  s.inter_bw = kInf;
  for (int i = 0; i < s.n; ++i) {
    const auto a = g[static_cast<std::size_t>(i)], b = g[static_cast<std::size_t>((i + 1) % s.n)];
    if (a == b) continue;
    const double bw = platform_.bottleneck_bandwidth(a, b), lat = platform_.latency(a, b);
    s.ring_bw = std::min(s.ring_bw, bw);
    s.ring_latency = std::max(s.ring_latency, lat);
  }
  // Representative intra- and inter-node hops.
  for (std::size_t i = 0; i + 1 < g.size(); ++i) {
    for (std::size_t j = i + 1; j < g.size() && j < i + 2 + static_cast<std::size_t>(std::max(1, s.per_node)); ++j) {
      const double bw = platform_.bottleneck_bandwidth(g[i], g[j]), lat = platform_.latency(g[i], g[j]);
      if (platform_.node_of(g[i]) == platform_.node_of(g[j])) {
        s.intra_bw = std::min(s.intra_bw, bw);
        s.intra_latency = std::max(s.intra_latency, lat);
      } else {
        s.inter_bw = std::min(s.inter_bw, bw);
        s.inter_latency = std::max(s.inter_latency, lat);
      }
    }
  }
  if (s.inter_bw == kInf && s.nodes > 1) {
    s.inter_bw = s.ring_bw;
    s.inter_latency = s.ring_latency;
  }
  return s;
}

double CollectivePlanner::estimate(CollectiveKind kind, const std::vector<std::uint32_t>& g, double S,
                                   CollectiveAlgorithm algorithm) const {
  const Shape s = shape(g);
  const double n = s.n;
  if (s.n <= 1) return 0;
  switch (kind) {
    case ALL_REDUCE:
      if (algorithm == CollectiveAlgorithm::Ring)
        return 2 * (n - 1) / n * S / s.ring_bw + 2 * (n - 1) * s.ring_latency;
      if (algorithm == CollectiveAlgorithm::Tree) {
        if (s.n < 3) return kInf;
        double bw = kInf, lat = 0;
        for (auto [c, p] : double_tree_edges(s.n)) {
          bw = std::min(bw, platform_.bottleneck_bandwidth(g[static_cast<std::size_t>(c)], g[static_cast<std::size_t>(p)]));
          lat = std::max(lat, platform_.latency(g[static_cast<std::size_t>(c)], g[static_cast<std::size_t>(p)]));
        }
        // Reduce up and broadcast down; a rank sends half the data on each tree.
        return 2 * S / bw + 2 * ceil_log2(s.n) * lat;
      }
      if (algorithm == CollectiveAlgorithm::Hierarchical) {
        if (s.nodes < 2 || s.per_node < 2) return kInf;
        const double gpn = s.per_node, nodes = s.nodes;
        return 2 * (gpn - 1) / gpn * S / s.intra_bw + 2 * (gpn - 1) * s.intra_latency +
               2 * (nodes - 1) / nodes * (S / gpn) / s.inter_bw + 2 * (nodes - 1) * s.inter_latency;
      }
      return kInf;
    case REDUCE_SCATTER:
    case ALL_GATHER:
      return (n - 1) / n * S / s.ring_bw + (n - 1) * s.ring_latency;
    case BROADCAST:
      return S / s.ring_bw + (n - 1) * s.ring_latency;
    case REDUCE: {
      // The chain's slowest edge carries S; n-1 pipelined steps of latency.
      double bw = kInf, lat = 0;
      for (auto [a, b] : reduce_chain_edges(s.n)) {
        const auto src = g[static_cast<std::size_t>(a)], dst = g[static_cast<std::size_t>(b)];
        bw = std::min(bw, platform_.bottleneck_bandwidth(src, dst));
        lat = std::max(lat, platform_.latency(src, dst));
      }
      return S / bw + (n - 1) * lat;
    }
    case GATHER:
    case SCATTER:
      // One step: (n-1) pieces of S/n through the root's links, (n-1)/n S / B + alpha alone.
      return direct_time(rooted_phase(kind, g, S));
    case ALL_TO_ALL:
    default:
      return (n - 1) / n * S / s.ring_bw + s.ring_latency;
  }
}

Phase CollectivePlanner::rooted_phase(CollectiveKind kind, const std::vector<std::uint32_t>& g,
                                      double S) const {
  Phase phase;
  const double n = static_cast<double>(g.size());
  if (kind == REDUCE) {
    for (auto [a, b] : reduce_chain_edges(static_cast<int>(g.size())))
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

CollectiveAlgorithm CollectivePlanner::choose(CollectiveKind kind, const std::vector<std::uint32_t>& g, double S) {
  if (kind != ALL_REDUCE) return CollectiveAlgorithm::Ring;
  if (forced_ != CollectiveAlgorithm::Auto) {
    // A forced algorithm that cannot run on this group falls back to ring, as NCCL does.
    return estimate(kind, g, S, forced_) < kInf ? forced_ : CollectiveAlgorithm::Ring;
  }
  const auto key = std::make_tuple(static_cast<int>(kind), g.front(), static_cast<std::uint32_t>(g.size()), S);
  if (auto it = choice_cache_.find(key); it != choice_cache_.end()) return it->second;
  CollectiveAlgorithm best = CollectiveAlgorithm::Ring;
  double best_time = estimate(kind, g, S, best);
  for (auto a : {CollectiveAlgorithm::Tree, CollectiveAlgorithm::Hierarchical}) {
    const double t = estimate(kind, g, S, a);
    if (t < best_time) {
      best = a;
      best_time = t;
    }
  }
  choice_cache_[key] = best;
  return best;
}

CollectivePlan CollectivePlanner::build(CollectiveKind kind, const std::vector<std::uint32_t>& g, double S,
                                        CollectiveAlgorithm algorithm) const {
  CollectivePlan plan;
  const int n = static_cast<int>(g.size());
  if (n <= 1) {
    plan.algorithm = "local";
    return plan;
  }
  const double nd = n;
  const Shape s = shape(g);
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
    for (auto [c, p] : double_tree_edges(n)) {
      up.push_back({g[static_cast<std::size_t>(c)], g[static_cast<std::size_t>(p)], S / 2});
      down.push_back({g[static_cast<std::size_t>(p)], g[static_cast<std::size_t>(c)], S / 2});
    }
    plan.phases = {up, down};
    double lat = 0;
    for (const auto& f : up) lat = std::max(lat, platform_.latency(f.src, f.dst));
    steps_latency = 2 * ceil_log2(n) * lat;
    plan.extra_latency = std::max(0.0, steps_latency - 2 * lat);
  } else if (kind == ALL_REDUCE && algorithm == CollectiveAlgorithm::Hierarchical) {
    plan.algorithm = "hierarchical";
    std::map<int, std::vector<std::uint32_t>> by_node;
    for (auto r : g) by_node[platform_.node_of(r)].push_back(r);
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
    double lat = 0;
    for (const Flow& f : plan.phases.front()) lat = std::max(lat, platform_.latency(f.src, f.dst));
    steps_latency = (nd - 1) * lat;
    plan.extra_latency = std::max(0.0, steps_latency - lat);
  } else if (kind == GATHER || kind == SCATTER) {
    // One step of concurrent point-to-point flows to (from) the root; they contend on its links in
    // SimGrid's solver, so no latency beyond the one the flows carry.
    plan.algorithm = "direct";
    plan.phases = {rooted_phase(kind, g, S)};
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
    plan.phases = {ring_phase(g, per_flow)};
    steps_latency = steps * s.ring_latency;
    plan.extra_latency = std::max(0.0, steps_latency - s.ring_latency);
  }
  plan.alone_s = estimate(kind, g, S, algorithm == CollectiveAlgorithm::Auto ? CollectiveAlgorithm::Ring : algorithm);
  if (!(plan.alone_s < kInf)) plan.alone_s = estimate(kind, g, S, CollectiveAlgorithm::Ring);
  return plan;
}

CollectivePlan CollectivePlanner::plan(CollectiveKind kind, const std::vector<std::vector<std::uint32_t>>& groups,
                                       double bytes) {
  const CollectiveAlgorithm algorithm = choose(kind, groups.front(), bytes);
  CollectivePlan merged = build(kind, groups.front(), bytes, algorithm);
  for (std::size_t i = 1; i < groups.size(); ++i) {
    const CollectivePlan other = build(kind, groups[i], bytes, algorithm);
    for (std::size_t k = 0; k < merged.phases.size() && k < other.phases.size(); ++k)
      merged.phases[k].insert(merged.phases[k].end(), other.phases[k].begin(), other.phases[k].end());
  }
  return merged;
}

}  // namespace parallax::sim
