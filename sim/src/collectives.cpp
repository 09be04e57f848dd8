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

// NCCL's all-to-all (ncclSend / ncclRecv to every peer) with PXN, on by default since NCCL 2.12
// (NCCL_PXN_DISABLE=0): a piece for a GPU of another node that sits on another rail first crosses
// NVLink to the member of this node on the destination's rail (its NIC), which sends it over the
// rail, so it never climbs to the spine; the relay aggregates every local member's pieces for that
// destination into one network transfer. Pieces between GPUs of one rail, or with no member of the
// source node on the destination's rail, go direct. The pipelined chunks move concurrently, so one
// phase; the pieces of one (source, destination) pair merge into one flow of their sum. Every link
// carries what it carries under NCCL, with n (per_node - 1) + n (nodes - 1) flows instead of n (n - 1)
// (4.5x fewer for 64 members on 8 nodes), which is what makes expert parallelism over many nodes
// simulable.
Phase CollectivePlanner::all_to_all_phase(const std::vector<std::uint32_t>& g, double S) const {
  const auto& topology = platform_.topology();
  const auto& p = topology.parameters();
  const double piece = S / static_cast<double>(g.size());
  const auto gpn = static_cast<std::uint32_t>(p.gpus_per_node);
  // The members of each node, by node.
  std::map<int, std::vector<std::uint32_t>> by_node;
  for (auto r : g) by_node[topology.node_of(r)].push_back(r);
  auto relay_for = [&](std::uint32_t a, std::uint32_t b) {
    if (topology.node_of(a) == topology.node_of(b) || p.nic_of(a) == p.nic_of(b)) return a;
    std::uint32_t relay = a;
    for (auto r : by_node[topology.node_of(a)]) {
      if (p.nic_of(r) != p.nic_of(b)) continue;
      if (r % gpn == b % gpn) return r;  // the destination's own slot: NCCL's rail peer
      if (relay == a) relay = r;
    }
    return relay;
  };
  std::map<std::pair<std::uint32_t, std::uint32_t>, double> bytes;
  for (auto a : g)
    for (auto b : g) {
      if (a == b) continue;
      const std::uint32_t r = relay_for(a, b);
      if (r != a) bytes[{a, r}] += piece;
      bytes[{r, b}] += piece;
    }
  // A group that holds the same GPU slots in every node it spans (every expert-parallel group of
  // Megatron's grid): each member's pieces over NVLink merge into one flow to the next member of its
  // node, and its pieces over the network into one flow to its slot's GPU in the next node. Every
  // link then carries exactly the bytes it carries under the pairwise exchange above (each up link
  // its member's sum, each down link the same sum from its predecessor), so the exchange alone takes
  // the same time, with 2 flows per member instead of per_node - 1 + nodes - 1: SimGrid's cost grows
  // with the flows sharing a link, and a 64-member exchange over 8 nodes drops from 896 flows to 128.
  // What changes is how the exchange shares a link with other traffic: as one flow per link instead
  // of several (max-min fairness per flow).
  std::vector<std::uint32_t> slots;
  bool regular = true;
  for (const auto& [node, members] : by_node) {
    std::vector<std::uint32_t> these;
    for (auto r : members) these.push_back(r % gpn);
    std::sort(these.begin(), these.end());
    if (slots.empty()) slots = these;
    regular = regular && these == slots;
  }
  Phase phase;
  if (!regular) {
    phase.reserve(bytes.size());
    for (const auto& [pair, sum] : bytes) phase.push_back({pair.first, pair.second, sum});
    return phase;
  }
  std::map<std::uint32_t, double> nvlink, network;  // bytes each member sends at each level
  for (const auto& [pair, sum] : bytes)
    (topology.node_of(pair.first) == topology.node_of(pair.second) ? nvlink : network)[pair.first] += sum;
  std::vector<int> nodes;
  for (const auto& [node, members] : by_node) nodes.push_back(node);
  for (std::size_t k = 0; k < nodes.size(); ++k) {
    const auto& members = by_node[nodes[k]];
    const auto& next_node = by_node[nodes[(k + 1) % nodes.size()]];
    for (std::size_t i = 0; i < members.size(); ++i) {
      const std::uint32_t a = members[i];
      if (const auto it = nvlink.find(a); it != nvlink.end()) phase.push_back({a, members[(i + 1) % members.size()], it->second});
      if (const auto it = network.find(a); it != network.end()) {
        // The same slot in the next node (by_node keeps each node's members in group order, and
        // every node holds the same slots).
        std::uint32_t peer = next_node.front();
        for (auto r : next_node)
          if (r % gpn == a % gpn) peer = r;
        phase.push_back({a, peer, it->second});
      }
    }
  }
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
    plan.algorithm = "pxn";
    plan.phases = {all_to_all_phase(g, S)};
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
