#include "parallax/netmodel/collective_cost.h"

#include "parallax/traces/io.h"

#include <algorithm>
#include <limits>
#include <map>

namespace parallax::netmodel {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

int ceil_log2(int n) {
  int k = 0;
  while ((1 << k) < n) ++k;
  return k;
}

// ---- the algorithms ----
// Each formula is the time of one group with the network to itself: the bytes over the slowest hop
// of the pattern plus one latency per step. Adding an algorithm is one function here, one row in
// kAllReduceAlgorithms (or a case in single_algorithm_time), and its value in CollectiveAlgorithm.

double ring_all_reduce(const GroupShape& s, double S) {
  const double n = s.n;
  return 2 * (n - 1) / n * S / s.ring_bandwidth + 2 * (n - 1) * s.ring_latency;
}

// Reduce up and broadcast down the double binary tree; a rank sends half the data on each tree.
double tree_all_reduce(const GroupShape& s, double S) {
  if (s.n < 3) return kInf;
  return 2 * S / s.tree_bandwidth + 2 * tree_depth(s.n) * s.tree_latency;
}

// A ring reduce-scatter inside each node, a ring all-reduce of each node's share between nodes, and a
// ring all-gather inside each node.
double hierarchical_all_reduce(const GroupShape& s, double S) {
  if (s.nodes < 2 || s.per_node < 2) return kInf;
  const double gpn = s.per_node, nodes = s.nodes;
  return 2 * (gpn - 1) / gpn * S / s.intra_bandwidth + 2 * (gpn - 1) * s.intra_latency +
         2 * (nodes - 1) / nodes * (S / gpn) / s.inter_bandwidth + 2 * (nodes - 1) * s.inter_latency;
}

struct AllReduceAlgorithm {
  CollectiveAlgorithm algorithm;
  double (*seconds)(const GroupShape&, double bytes);
};
// In the tuner's order: on a tie the earlier one wins.
constexpr AllReduceAlgorithm kAllReduceAlgorithms[] = {
    {CollectiveAlgorithm::Ring, ring_all_reduce},
    {CollectiveAlgorithm::Tree, tree_all_reduce},
    {CollectiveAlgorithm::Hierarchical, hierarchical_all_reduce},
};

// The collectives with one algorithm.
double single_algorithm_time(const GroupShape& s, CollectiveKind kind, double S) {
  const double n = s.n;
  switch (kind) {
    case REDUCE_SCATTER:
    case ALL_GATHER:
      return (n - 1) / n * S / s.ring_bandwidth + (n - 1) * s.ring_latency;
    case BROADCAST:
      return S / s.ring_bandwidth + (n - 1) * s.ring_latency;
    case REDUCE:
      // NCCL's ring reduce (src/device/reduce.h, runRing): the rank after the root sends its data,
      // every other rank receives, adds its own and sends on, and the root adds last. Chunks are
      // pipelined, so each of the n-1 edges of the chain carries the whole S: S/B plus n-1 steps of
      // latency (nccl-tests' PERFORMANCE.md: "Reduce: t = S/B").
      return S / s.chain_bandwidth + (n - 1) * s.chain_latency;
    case GATHER:
    case SCATTER:
      // One step of concurrent sends of S/n to (from) the root: NCCL has no gather or scatter kernel,
      // torch.distributed and nccl-tests post one group of ncclSend/ncclRecv. No bytes, no flows.
      if (!(S > 0)) return 0;
      return s.rooted_share * S / s.rooted_bandwidth + s.rooted_latency;
    case RING_EXCHANGE:
      // One step of the ring: every member sends S to the next at once, so the slowest ring edge
      // carries S.
      return S / s.ring_bandwidth + s.ring_latency;
    case ALL_TO_ALL:
      // Pieces of S / n to every other member at once (NCCL's send/recv with PXN, as the simulator
      // runs it). Over nodes, a member's NIC carries the pieces bound for other nodes that sit on its
      // rail, relayed to it over NVLink by the other members behind other NICs: (n - per_node) / n of
      // S in all, shared by the members behind one NIC. Its NVLink carries its pieces for the other
      // members of its node and, to their relays, those of its pieces for other nodes that are on
      // other rails ((rails - 1) / rails of them), in parallel.
      if (s.nodes > 1 && s.per_node > 0) {
        const double rails = s.per_node / s.members_per_nic;
        const double nvlink_pieces = (s.per_node - 1) + (n - s.per_node) * (rails - 1) / rails;
        const double intra = s.per_node > 1 ? nvlink_pieces / n * S / s.intra_bandwidth : 0.0;
        const double inter = (n - s.per_node) / n * S * s.members_per_nic / s.inter_bandwidth;
        return std::max(intra, inter) + s.inter_latency;
      }
      return (n - 1) / n * S / s.ring_bandwidth + s.ring_latency;
    default:
      return (n - 1) / n * S / s.ring_bandwidth + s.ring_latency;
  }
}

// ---- shapes ----

struct Hop {
  double bandwidth, latency;
};
Hop hop(const Topology& t, std::uint32_t a, std::uint32_t b, std::vector<std::uint32_t>& scratch) {
  double latency = 0;
  t.route(a, b, scratch, latency);
  double bw = 1e300;
  for (auto id : scratch) bw = std::min(bw, t.links()[id].bandwidth);
  return {bw, latency};
}

// The slowest of a pattern's edges (member index pairs).
Hop slowest_edge(const Topology& t, const std::vector<std::uint32_t>& g, const std::vector<std::pair<int, int>>& edges,
                 std::vector<std::uint32_t>& scratch) {
  Hop slowest{kInf, 0};
  for (auto [a, b] : edges) {
    const Hop h = hop(t, g[static_cast<std::size_t>(a)], g[static_cast<std::size_t>(b)], scratch);
    slowest.bandwidth = std::min(slowest.bandwidth, h.bandwidth);
    slowest.latency = std::max(slowest.latency, h.latency);
  }
  return slowest;
}

}  // namespace

CollectiveAlgorithm parse_algorithm(const std::string& name) {
  if (name == "auto") return CollectiveAlgorithm::Auto;
  if (name == "ring") return CollectiveAlgorithm::Ring;
  if (name == "tree") return CollectiveAlgorithm::Tree;
  if (name == "hierarchical") return CollectiveAlgorithm::Hierarchical;
  throw InputError("unknown collective algorithm \"" + name + "\"; valid: auto, ring, tree, hierarchical");
}

std::string algorithm_name(CollectiveAlgorithm a) {
  switch (a) {
    case CollectiveAlgorithm::Ring: return "ring";
    case CollectiveAlgorithm::Tree: return "tree";
    case CollectiveAlgorithm::Hierarchical: return "hierarchical";
    default: return "auto";
  }
}

std::vector<std::pair<int, int>> double_tree_edges(int n) {
  std::vector<std::pair<int, int>> edges;
  for (int i = 1; i < n; ++i) {
    edges.push_back({i, (i - 1) / 2});
    edges.push_back({n - 1 - i, n - 1 - (i - 1) / 2});
  }
  return edges;
}

int tree_depth(int n) { return ceil_log2(n); }

std::vector<std::pair<int, int>> reduce_chain_edges(int n) {
  std::vector<std::pair<int, int>> edges;
  for (int i = 1; i < n; ++i) edges.push_back({i, (i + 1) % n});
  return edges;
}

int ring_channels(const Topology& topology, const GroupShape& s) {
  return s.nodes > 1 && s.per_node > 1 && s.per_node == topology.gpus_per_node() ? s.per_node : 1;
}

std::vector<std::vector<std::uint32_t>> channel_rings(const Topology& topology, const std::vector<std::uint32_t>& g,
                                                      int channels) {
  if (channels <= 1) return {g};
  // Members by node in group order (a group that fills its nodes lists each node's GPUs together).
  std::vector<std::vector<std::uint32_t>> nodes;
  for (auto r : g) {
    if (nodes.empty() || topology.node_of(nodes.back().front()) != topology.node_of(r)) nodes.emplace_back();
    nodes.back().push_back(r);
  }
  std::vector<std::vector<std::uint32_t>> rings(static_cast<std::size_t>(channels));
  for (int c = 0; c < channels; ++c)
    for (const auto& node : nodes)
      for (std::size_t j = 0; j < node.size(); ++j)
        rings[static_cast<std::size_t>(c)].push_back(node[(j + static_cast<std::size_t>(c)) % node.size()]);
  return rings;
}

GroupShape group_shape(const Topology& topology, const std::vector<std::uint32_t>& g, CollectiveKind kind) {
  GroupShape s;
  s.n = static_cast<int>(g.size());
  if (g.empty()) return s;
  std::vector<std::uint32_t> scratch;
  std::map<int, int> per_node;
  for (auto r : g) ++per_node[topology.node_of(r)];
  s.nodes = static_cast<int>(per_node.size());
  s.per_node = per_node.begin()->second;
  for (const auto& [node, count] : per_node)
    if (count != s.per_node) s.per_node = 0;
  s.ring_bandwidth = kInf;
  s.intra_bandwidth = kInf;
  s.inter_bandwidth = kInf;
  for (int i = 0; i < s.n; ++i) {
    const auto a = g[static_cast<std::size_t>(i)], b = g[static_cast<std::size_t>((i + 1) % s.n)];
    if (a == b) continue;
    const Hop h = hop(topology, a, b, scratch);
    s.ring_bandwidth = std::min(s.ring_bandwidth, h.bandwidth);
    s.ring_latency = std::max(s.ring_latency, h.latency);
  }
  // Representative intra- and inter-node hops: each member with the next members up to one node's
  // worth further.
  for (std::size_t i = 0; i + 1 < g.size(); ++i) {
    for (std::size_t j = i + 1; j < g.size() && j < i + 2 + static_cast<std::size_t>(std::max(1, s.per_node)); ++j) {
      const Hop h = hop(topology, g[i], g[j], scratch);
      if (topology.node_of(g[i]) == topology.node_of(g[j])) {
        s.intra_bandwidth = std::min(s.intra_bandwidth, h.bandwidth);
        s.intra_latency = std::max(s.intra_latency, h.latency);
      } else {
        s.inter_bandwidth = std::min(s.inter_bandwidth, h.bandwidth);
        s.inter_latency = std::max(s.inter_latency, h.latency);
      }
    }
  }
  if (s.inter_bandwidth == kInf && s.nodes > 1) {
    s.inter_bandwidth = s.ring_bandwidth;
    s.inter_latency = s.ring_latency;
  }
  // A group that fills every node it spans (FSDP or dp x cp over whole nodes): NCCL runs one ring per
  // member of a node (its channels), each rotated so it leaves the node from another GPU's NIC
  // (ring_channels), so the nodes' NICs all carry 1/k of the data instead of one NIC carrying it all.
  // Per GPU: (k - 1)/k of the data on its NVLink, 1/k on its NIC.
  if (const int k = ring_channels(topology, s); k > 1) {
    double intra = kInf, inter = kInf;
    for (int i = 0; i < s.n; ++i) {
      const auto a = g[static_cast<std::size_t>(i)], b = g[static_cast<std::size_t>((i + 1) % s.n)];
      if (a == b) continue;
      const Hop h = hop(topology, a, b, scratch);
      (topology.node_of(a) == topology.node_of(b) ? intra : inter) =
          std::min(topology.node_of(a) == topology.node_of(b) ? intra : inter, h.bandwidth);
    }
    // k rings leave over min(k, NICs) NICs (rings share a NIC when a node has fewer NICs than GPUs).
    s.ring_bandwidth = std::min(intra * k / (k - 1.0), inter * std::min(k, topology.parameters().nics));
  }
  if (kind == ALL_TO_ALL && s.per_node > 1)
    s.members_per_nic = std::max(1.0, static_cast<double>(s.per_node) / std::max(1, topology.parameters().nics));
  if (kind == ALL_REDUCE && s.n >= 3) {
    const Hop tree = slowest_edge(topology, g, double_tree_edges(s.n), scratch);
    s.tree_bandwidth = tree.bandwidth;
    s.tree_latency = tree.latency;
  } else if (kind == REDUCE) {
    const Hop chain = slowest_edge(topology, g, reduce_chain_edges(s.n), scratch);
    s.chain_bandwidth = chain.bandwidth;
    s.chain_latency = chain.latency;
  } else if (kind == GATHER || kind == SCATTER) {
    // Each member's S/n to (from) the root, all at once: the most loaded link (its pieces over its
    // bandwidth) sets the pace, the longest route adds its latency. Exact under max-min sharing when
    // the flows on the busiest link are equal and bottlenecked there, as here (every flow ends on the
    // root's down link, or leaves on its up link).
    std::map<std::uint32_t, int> pieces;
    for (std::size_t i = 1; i < g.size(); ++i) {
      const std::uint32_t src = kind == GATHER ? g[i] : g.front(), dst = kind == GATHER ? g.front() : g[i];
      if (src == dst) continue;
      double latency = 0;
      topology.route(src, dst, scratch, latency);
      s.rooted_latency = std::max(s.rooted_latency, latency);
      for (auto id : scratch) ++pieces[id];
    }
    s.rooted_bandwidth = kInf;
    double busiest = 0;  // pieces per byte/s
    for (const auto& [id, count] : pieces) {
      const double bw = topology.links()[id].bandwidth;
      if (count / bw > busiest) {
        busiest = count / bw;
        s.rooted_share = static_cast<double>(count) / s.n;
        s.rooted_bandwidth = bw;
      }
    }
  }
  return s;
}

GroupShape strided_group_shape(const LinkParameters& net, std::int64_t n, std::int64_t stride) {
  GroupShape g;
  g.n = static_cast<int>(n);
  g.per_node = 1;
  g.nodes = 1;
  if (n > 1) {
    const std::int64_t span = stride * (n - 1) + 1;
    if (stride < net.gpus_per_node) {
      g.per_node = static_cast<int>(std::min<std::int64_t>(n, std::max<std::int64_t>(1, net.gpus_per_node / stride)));
      g.nodes = static_cast<int>((n + g.per_node - 1) / g.per_node);
      if (span <= net.gpus_per_node) g.nodes = 1;
    } else {
      g.per_node = 1;
      g.nodes = g.n;
    }
  }
  const bool inter = g.nodes > 1;
  const bool beyond_leaf = g.nodes > net.nodes_per_leaf && net.nodes > net.nodes_per_leaf;
  const double bw = inter ? net.shared_nic_bandwidth() : net.intra_bandwidth;
  const double lat = inter ? net.nic_latency + (beyond_leaf ? net.upper_latency : 0.0) : net.intra_latency;
  g.ring_bandwidth = g.tree_bandwidth = g.chain_bandwidth = g.rooted_bandwidth = bw;
  g.ring_latency = g.tree_latency = g.chain_latency = g.rooted_latency = lat;
  g.intra_bandwidth = net.intra_bandwidth;
  g.intra_latency = net.intra_latency;
  g.inter_bandwidth = net.shared_nic_bandwidth();
  g.inter_latency = lat;
  // Every piece but the root's own crosses the root's link.
  g.rooted_share = (static_cast<double>(n) - 1) / static_cast<double>(n);
  // A group that fills the nodes it spans runs NCCL's channels (ring_channels): one ring per GPU of a
  // node, each leaving through another NIC.
  if (inter && stride == 1 && g.per_node == net.gpus_per_node && g.per_node > 1) {
    const double k = g.per_node;
    g.ring_bandwidth = std::min(net.intra_bandwidth * k / (k - 1), net.nic_bandwidth * std::min<double>(net.nics, k));
  }
  return g;
}

GroupShape uniform_group_shape(int n, double bandwidth, double latency) {
  GroupShape g;
  g.n = n;
  g.nodes = 1;
  g.per_node = n;
  g.ring_bandwidth = g.intra_bandwidth = g.inter_bandwidth = g.tree_bandwidth = g.chain_bandwidth = bandwidth;
  g.ring_latency = g.intra_latency = g.inter_latency = g.tree_latency = g.chain_latency = latency;
  g.rooted_bandwidth = bandwidth;
  g.rooted_latency = latency;
  g.rooted_share = (static_cast<double>(n) - 1) / n;
  return g;
}

double collective_time(const GroupShape& shape, CollectiveKind kind, CollectiveAlgorithm algorithm, double bytes) {
  if (shape.n <= 1) return 0;
  if (kind != ALL_REDUCE) return single_algorithm_time(shape, kind, bytes);
  if (algorithm == CollectiveAlgorithm::Auto) return choose_algorithm(shape, kind, bytes).seconds;
  for (const auto& a : kAllReduceAlgorithms)
    if (a.algorithm == algorithm) return a.seconds(shape, bytes);
  return kInf;
}

AlgorithmChoice choose_algorithm(const GroupShape& shape, CollectiveKind kind, double bytes,
                                 CollectiveAlgorithm requested) {
  const auto time = [&](CollectiveAlgorithm a) { return collective_time(shape, kind, a, bytes); };
  if (kind != ALL_REDUCE) return {CollectiveAlgorithm::Ring, time(CollectiveAlgorithm::Ring)};
  if (requested != CollectiveAlgorithm::Auto) {
    const double t = time(requested);
    return t < kInf ? AlgorithmChoice{requested, t} : AlgorithmChoice{CollectiveAlgorithm::Ring, time(CollectiveAlgorithm::Ring)};
  }
  AlgorithmChoice best{CollectiveAlgorithm::Ring, kInf};
  bool first = true;
  for (const auto& a : kAllReduceAlgorithms) {
    const double t = time(a.algorithm);
    if (first || t < best.seconds) best = {a.algorithm, t};
    first = false;
  }
  return best;
}

double transfer_time(const Topology& topology, std::uint32_t src, std::uint32_t dst, double bytes) {
  return bytes / topology.bottleneck_bandwidth(src, dst) + topology.latency(src, dst);
}

double transfer_time(const GroupShape& pair, double bytes) { return bytes / pair.ring_bandwidth + pair.ring_latency; }

}  // namespace parallax::netmodel
