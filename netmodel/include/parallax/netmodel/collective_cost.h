// Analytic time of collectives and point-to-point transfers on a Topology, and the NCCL-style tuner
// that picks a collective's algorithm. One model for the simulator (its algorithm choice and its
// "alone" times), the planner's estimator and calibration.
//
// A group is first summarised as a GroupShape (its size, how it spreads over nodes, and the bandwidth
// and latency of the hops each algorithm uses); the algorithms' formulas read only the shape. Shapes
// come from the routes of real ranks (group_shape) or, where no ranks exist, from arithmetic
// (strided_group_shape, uniform_group_shape).
#pragma once

#include "parallax/netmodel/topology.h"
#include "parallax/parallax.pb.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace parallax::netmodel {

// Auto lets the tuner pick, per collective, the algorithm with the lowest analytic time for its size
// and topology; the others force one where it applies. Only ALL_REDUCE has a choice: every other
// collective runs its one algorithm (a ring, REDUCE's chain to the root, direct flows for gather,
// scatter and all-to-all), reported as Ring.
enum class CollectiveAlgorithm { Auto, Ring, Tree, Hierarchical };
// "auto", "ring", "tree", "hierarchical"; throws InputError for anything else.
CollectiveAlgorithm parse_algorithm(const std::string& name);
std::string algorithm_name(CollectiveAlgorithm algorithm);

struct GroupShape {
  int n = 0, nodes = 0;
  int per_node = 0;  // members per node; 0 when nodes hold different member counts
  // The slowest hop of the ring in member order (bandwidth, latency).
  double ring_bandwidth = 0, ring_latency = 0;
  // Representative intra- and inter-node hops (the hierarchical all-reduce's two levels).
  double intra_bandwidth = 0, intra_latency = 0, inter_bandwidth = 0, inter_latency = 0;
  // The slowest edge of NCCL's double binary tree (ALL_REDUCE shapes of 3 or more members).
  double tree_bandwidth = 0, tree_latency = 0;
  // The slowest edge of REDUCE's chain to the root.
  double chain_bandwidth = 0, chain_latency = 0;
  // GATHER and SCATTER: the busiest link carries rooted_share of the S bytes at rooted_bandwidth; the
  // slowest route's latency.
  double rooted_share = 0, rooted_bandwidth = 0, rooted_latency = 0;
  // ALL_TO_ALL over nodes: members of a node that share one NIC (a node with fewer NICs than
  // members); the routes' inter_bandwidth sees each NIC alone.
  double members_per_nic = 1;
};

// The shape of a group of global ranks on `topology`, from the routes between its members. Computes
// the hops `kind`'s algorithms need. Rooted collectives' root is the first member.
GroupShape group_shape(const Topology& topology, const std::vector<std::uint32_t>& members, CollectiveKind kind);

// NCCL's channels for a ring over a group that fills every node it spans (all of a node's GPUs are
// members, on more than one node): one ring per member of a node, ring c visiting each node's
// members rotated by c, so each ring leaves a node from a different GPU's NIC. 1 (the group's own
// order) otherwise. channel_rings gives the rings; each carries 1/channels of the data.
int ring_channels(const Topology& topology, const GroupShape& shape);
std::vector<std::vector<std::uint32_t>> channel_rings(const Topology& topology, const std::vector<std::uint32_t>& members,
                                                      int channels);

// A group of `n` ranks `stride` apart, summarised by arithmetic (no routes): on a node of g GPUs it
// holds g/stride members per node when stride < g, else one. Every GPU of a node is assumed to
// communicate at once (data and pipeline parallelism), so a shared NIC is split (the estimator's view;
// the routes of group_shape see each link alone); the spine's latency is added when the group spans
// more nodes than a leaf holds.
GroupShape strided_group_shape(const LinkParameters& links, std::int64_t n, std::int64_t stride);

// `n` members whose every hop has `bandwidth` and `latency` (all in one node, or one per node).
GroupShape uniform_group_shape(int n, double bandwidth, double latency);

// Seconds of one collective of `bytes` on a group alone under `algorithm`; infinity when the
// algorithm does not apply to the group (a tree needs 3 members, hierarchical needs 2 or more nodes
// with the same count of 2 or more members each). Auto means the tuner's choice.
double collective_time(const GroupShape& shape, CollectiveKind kind, CollectiveAlgorithm algorithm, double bytes);

struct AlgorithmChoice {
  CollectiveAlgorithm algorithm;
  double seconds;
};
// NCCL-style tuner: the fastest algorithm for the collective (Auto), or `requested` where it applies
// (a forced algorithm that cannot run on this group falls back to ring, as NCCL does).
AlgorithmChoice choose_algorithm(const GroupShape& shape, CollectiveKind kind, double bytes,
                                 CollectiveAlgorithm requested = CollectiveAlgorithm::Auto);

// A send/recv of `bytes` alone: over the route's slowest link plus its latency.
double transfer_time(const Topology& topology, std::uint32_t src, std::uint32_t dst, double bytes);
// The same over a two-member shape's hop.
double transfer_time(const GroupShape& pair, double bytes);

// The algorithms' communication patterns, as member indices (the simulator turns them into flows).
// NCCL's double binary tree: two trees over the ranks, the second mirrored, each carrying half the
// data; (child, parent) pairs of both trees.
std::vector<std::pair<int, int>> double_tree_edges(int n);
// Levels of a binary tree over n ranks: the tree all-reduce's steps each way.
int tree_depth(int n);
// NCCL's ring reduce chain, (src, dst) pairs ending at the root 0.
std::vector<std::pair<int, int>> reduce_chain_edges(int n);

}  // namespace parallax::netmodel
