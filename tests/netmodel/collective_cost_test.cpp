// The network cost model: the topology's links and routes, every collective algorithm's closed form
// on a known cluster, the tuner's choices, and that the estimator's arithmetic view of a group and the
// simulator's view from routes give the same times where both describe the same group.
#include "parallax/netmodel/collective_cost.h"
#include "parallax/netmodel/topology.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

namespace parallax::netmodel {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double S = 1 << 30;  // bytes

ClusterSpec preset(const std::string& name, int nodes) {
  return testing::scenario_from_text(R"(
    model { num_layers: 2 hidden_size: 512 num_heads: 8 seq_length: 512 vocab_size: 4096 }
    cluster { preset: ")" + name + R"(" num_nodes: )" + std::to_string(nodes) + R"( }
    layout { tp: 8 dp: )" + std::to_string(nodes) + R"( micro_batch_size: 1 global_batch_size: )" +
                                     std::to_string(nodes) + " }")
      .cluster();
}

std::vector<std::uint32_t> ranks(std::uint32_t first, std::uint32_t count, std::uint32_t stride = 1) {
  std::vector<std::uint32_t> r(count);
  for (std::uint32_t i = 0; i < count; ++i) r[i] = first + i * stride;
  return r;
}

void expect_relative(double actual, double expected) {
  EXPECT_NEAR(actual / expected, 1.0, 1e-12) << "actual " << actual << " s, expected " << expected << " s";
}

// DGX H100 (scenarios/clusters/dgx-h100.pbtxt): NVSwitch 450 GB/s at 0.8, 1 us; eight 400 Gbit/s
// NICs at 0.92, 3 us; rail-optimised, two levels of 0.5 us switches.
constexpr double kNvlink = 450e9 * 0.8, kNvlinkLatency = 1e-6;
constexpr double kNic = 400.0 / 8 * 1e9 * 0.92, kNicLatency = 3e-6, kSpineLatency = 2 * 0.5e-6;

TEST(Topology, LinksAndRoutesOfARailOptimisedCluster) {
  const Topology t(preset("dgx-h100", 4));
  EXPECT_EQ(t.gpus(), 32);
  // Per GPU an NVLink up and down, per node 8 NICs up and down, one rail switch per NIC index.
  EXPECT_EQ(t.links().size(), 2u * 32 + 2u * 4 * 8 + 2u * 8);
  EXPECT_EQ(t.links().front().name, "nvlink0_up");
  EXPECT_DOUBLE_EQ(t.parameters().intra_bandwidth, kNvlink);
  EXPECT_DOUBLE_EQ(t.parameters().nic_bandwidth, kNic);
  EXPECT_DOUBLE_EQ(t.parameters().upper_latency, kSpineLatency);

  std::vector<std::uint32_t> route;
  double latency = 0;
  t.route(0, 5, route, latency);  // inside a node: NVLink up and down
  EXPECT_EQ(route.size(), 2u);
  EXPECT_DOUBLE_EQ(latency, kNvlinkLatency);
  EXPECT_DOUBLE_EQ(t.bottleneck_bandwidth(0, 5), kNvlink);
  t.route(3, 11, route, latency);  // same rail, next node: NIC up and down
  EXPECT_EQ(route.size(), 2u);
  EXPECT_EQ(t.links()[route.front()].name, "node0_nic3_up");
  EXPECT_DOUBLE_EQ(latency, kNicLatency);
  t.route(3, 12, route, latency);  // another rail: through the spine
  EXPECT_EQ(route.size(), 4u);
  EXPECT_DOUBLE_EQ(latency, kNicLatency + kSpineLatency);
  EXPECT_DOUBLE_EQ(transfer_time(t, 3, 11, S), S / kNic + kNicLatency);
}

TEST(CollectiveCost, ClosedFormsInsideANode) {
  const Topology t(preset("dgx-h100", 2));
  const double n = 8;
  const auto node = ranks(0, 8);
  auto time = [&](CollectiveKind kind, CollectiveAlgorithm a) {
    return collective_time(group_shape(t, node, kind), kind, a, S);
  };
  expect_relative(time(ALL_REDUCE, CollectiveAlgorithm::Ring), 2 * (n - 1) / n * S / kNvlink + 2 * (n - 1) * kNvlinkLatency);
  expect_relative(time(ALL_REDUCE, CollectiveAlgorithm::Tree), 2 * S / kNvlink + 2 * 3 * kNvlinkLatency);
  EXPECT_EQ(time(ALL_REDUCE, CollectiveAlgorithm::Hierarchical), kInf);  // one node
  expect_relative(time(REDUCE_SCATTER, CollectiveAlgorithm::Ring), (n - 1) / n * S / kNvlink + (n - 1) * kNvlinkLatency);
  expect_relative(time(ALL_GATHER, CollectiveAlgorithm::Ring), (n - 1) / n * S / kNvlink + (n - 1) * kNvlinkLatency);
  expect_relative(time(BROADCAST, CollectiveAlgorithm::Ring), S / kNvlink + (n - 1) * kNvlinkLatency);
  expect_relative(time(REDUCE, CollectiveAlgorithm::Ring), S / kNvlink + (n - 1) * kNvlinkLatency);
  // Seven pieces of S/8 through the root's NVLink in one step.
  expect_relative(time(GATHER, CollectiveAlgorithm::Ring), (n - 1) / n * S / kNvlink + kNvlinkLatency);
  expect_relative(time(SCATTER, CollectiveAlgorithm::Ring), (n - 1) / n * S / kNvlink + kNvlinkLatency);
  expect_relative(time(ALL_TO_ALL, CollectiveAlgorithm::Ring), (n - 1) / n * S / kNvlink + kNvlinkLatency);
  EXPECT_EQ(collective_time(group_shape(t, {4}, ALL_REDUCE), ALL_REDUCE, CollectiveAlgorithm::Ring, S), 0);
}

TEST(CollectiveCost, ClosedFormsAcrossNodes) {
  const Topology t(preset("dgx-h100", 2));
  const auto both = ranks(0, 16);
  const GroupShape s = group_shape(t, both, ALL_REDUCE);
  EXPECT_EQ(s.nodes, 2);
  EXPECT_EQ(s.per_node, 8);
  // The ring crosses to the other node (7 -> 8 changes rail: through the spine), so its slowest hop
  // is a NIC with the spine's latency. The group fills both nodes, so NCCL runs 8 channels, each
  // ring leaving a node through another GPU's NIC: the NICs carry 1/8 of the data each, the NVLinks
  // 7/8 (ring_channels): the ring runs at min(NVLink x 8/7, 8 NICs).
  EXPECT_EQ(ring_channels(t, s), 8);
  const double n = 16, ring_latency = kNicLatency + kSpineLatency;
  expect_relative(collective_time(s, ALL_REDUCE, CollectiveAlgorithm::Ring, S),
                  2 * (n - 1) / n * S / std::min(kNvlink * 8 / 7, 8 * kNic) + 2 * (n - 1) * ring_latency);
  // Reduce-scatter inside each node, all-reduce of each node's eighth across the two, all-gather.
  expect_relative(collective_time(s, ALL_REDUCE, CollectiveAlgorithm::Hierarchical, S),
                  2 * 7.0 / 8 * S / kNvlink + 2 * 7 * kNvlinkLatency + 2 * 1.0 / 2 * (S / 8) / kNic + 2 * 1 * ring_latency);
  expect_relative(collective_time(s, ALL_REDUCE, CollectiveAlgorithm::Tree, S),
                  2 * S / kNic + 2 * 4 * ring_latency);
  // All-to-all (MoE dispatch): each GPU's NIC carries the half of S bound for the other node while
  // its NVLink carries 7/16 of S; the simulator's pairwise flows give the same
  // (Simulate.AllToAllMatchesClosedFormAndContends). With one NIC per node its 8 GPUs share it.
  const GroupShape a2a = group_shape(t, both, ALL_TO_ALL);
  EXPECT_NEAR(collective_time(a2a, ALL_TO_ALL, CollectiveAlgorithm::Ring, S) / (S / 2 / kNic), 1.0, 0.01);
  ClusterSpec one_nic = preset("dgx-h100", 2);
  one_nic.set_nics_per_node(1);
  const GroupShape shared = group_shape(Topology(one_nic), both, ALL_TO_ALL);
  EXPECT_NEAR(collective_time(shared, ALL_TO_ALL, CollectiveAlgorithm::Ring, S) / (8 * S / 2 / kNic), 1.0, 0.01);
  // One GPU per node on the same rail: NIC to NIC.
  const GroupShape rail = group_shape(t, {2, 10}, ALL_REDUCE);
  expect_relative(collective_time(rail, ALL_REDUCE, CollectiveAlgorithm::Ring, S), S / kNic + 2 * kNicLatency);
  EXPECT_EQ(collective_time(rail, ALL_REDUCE, CollectiveAlgorithm::Tree, S), kInf);  // needs three members
}

TEST(CollectiveCost, TunerPicksTheFastestAndFallsBackToRing) {
  const Topology t(preset("dgx-h100", 2));
  const GroupShape node = group_shape(t, ranks(0, 8), ALL_REDUCE);
  const GroupShape both = group_shape(t, ranks(0, 16), ALL_REDUCE);
  // Latency-bound: the tree's 2 log2(n) steps beat the ring's 2(n-1); across nodes the hierarchical
  // all-reduce's 14 NVLink steps and 2 NIC steps beat the tree's 8 NIC steps.
  EXPECT_EQ(choose_algorithm(node, ALL_REDUCE, 4096).algorithm, CollectiveAlgorithm::Tree);
  EXPECT_EQ(choose_algorithm(both, ALL_REDUCE, 4096).algorithm, CollectiveAlgorithm::Hierarchical);
  // Bandwidth-bound inside a node: the ring moves 2(n-1)/n S, the tree 2 S.
  EXPECT_EQ(choose_algorithm(node, ALL_REDUCE, S).algorithm, CollectiveAlgorithm::Ring);
  // Bandwidth-bound across nodes: the channelled ring keeps every NVLink and NIC busy at once, where
  // the hierarchical all-reduce runs its NVLink and NIC phases one after the other.
  const AlgorithmChoice big = choose_algorithm(both, ALL_REDUCE, S);
  EXPECT_EQ(big.algorithm, CollectiveAlgorithm::Ring);
  EXPECT_EQ(big.seconds, collective_time(both, ALL_REDUCE, CollectiveAlgorithm::Ring, S));
  EXPECT_LT(big.seconds, collective_time(both, ALL_REDUCE, CollectiveAlgorithm::Hierarchical, S));
  EXPECT_EQ(collective_time(both, ALL_REDUCE, CollectiveAlgorithm::Auto, S), big.seconds);
  // Forced: used where it applies, else ring (as NCCL does).
  EXPECT_EQ(choose_algorithm(node, ALL_REDUCE, S, CollectiveAlgorithm::Tree).algorithm, CollectiveAlgorithm::Tree);
  EXPECT_EQ(choose_algorithm(node, ALL_REDUCE, S, CollectiveAlgorithm::Hierarchical).algorithm, CollectiveAlgorithm::Ring);
  // Other collectives have one algorithm.
  EXPECT_EQ(choose_algorithm(both, ALL_GATHER, 4096).algorithm, CollectiveAlgorithm::Ring);
  EXPECT_EQ(parse_algorithm("hierarchical"), CollectiveAlgorithm::Hierarchical);
  EXPECT_EQ(algorithm_name(CollectiveAlgorithm::Tree), "tree");
  EXPECT_THROW(parse_algorithm("nvls"), InputError);
}

// The planner's estimator summarises a group by arithmetic (strided_group_shape: n members `stride`
// ranks apart); the simulator from the routes of its real ranks (group_shape). Where both describe
// the same group (a node's TP group, a DP group of one GPU per node on one rail, a DP group of 2 GPUs
// per node on a fat tree) every collective's time is the same: one model.
TEST(CollectiveCost, EstimatorAndSimulatorViewsAgree) {
  struct Case {
    const char* preset;
    std::uint32_t n, stride;
  };
  for (const Case c : {Case{"dgx-h100", 8, 1}, Case{"dgx-h100", 4, 8}, Case{"dgx-h100", 2, 24},
                       Case{"dgx-a100-80g", 8, 1}, Case{"dgx-a100-80g", 4, 8}, Case{"dgx-a100-80g", 8, 4},
                       Case{"dgx-a100-80g", 16, 2}}) {
    const ClusterSpec cluster = preset(c.preset, 4);
    const Topology topology(cluster);
    const LinkParameters links(cluster);
    const auto members = ranks(0, c.n, c.stride);
    for (const CollectiveKind kind : {ALL_REDUCE, REDUCE_SCATTER, ALL_GATHER, BROADCAST, REDUCE}) {
      for (const double bytes : {1e3, 1e6, 1e9}) {
        const double estimator = collective_time(strided_group_shape(links, c.n, c.stride), kind, CollectiveAlgorithm::Auto, bytes);
        const double simulator = collective_time(group_shape(topology, members, kind), kind, CollectiveAlgorithm::Auto, bytes);
        EXPECT_NEAR(estimator / simulator, 1.0, 1e-12)
            << c.preset << " n=" << c.n << " stride=" << c.stride << " " << CollectiveKind_Name(kind) << " " << bytes
            << " B: estimator " << estimator << " s, simulator " << simulator << " s";
      }
    }
  }
}

}  // namespace
}  // namespace parallax::netmodel
