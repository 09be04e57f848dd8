// Importing Chakra traces into a job graph and simulating them: the four shared real traces (node
// counts by type, collectives by kind, every dependency against the file, a simulation on a preset
// cluster), measured vs costed durations, communicators, send/recv matching, and every malformed
// class.
#include "chakra_test_util.h"

#include "parallax/interop/chakra.h"
#include "parallax/model/presets.h"
#include "parallax/model/cost_model.h"
#include "parallax/sim/simulate.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <set>

namespace parallax::testing {
namespace {

using interop::ChakraImport;

struct SharedTrace {
  const char* dir;
  const char* prefix;
  const char* comm_groups;  // in dir, or ""
  std::uint32_t ranks;
  std::uint64_t comp_per_rank, coll_per_rank;
  std::uint64_t all_gather, reduce_scatter, all_reduce, broadcast;  // whole job
  std::uint64_t bookkeeping;                                        // CPU-side COMM_COLL, whole job
  // Counted by an independent decoder of the files (whole job): edges, dependencies on absent ids,
  // nodes listing themselves as a dependency, ctrl_deps on a cycle (dropped: see chakra.h).
  std::uint64_t edges, dropped, self, cyclic_ctrl;
};

// SOURCES.md for the node counts; the edge and dangling counts from a separate Python wire-format
// decoder over the same files (distinct ctrl+data dependencies on ids present in the file).
const SharedTrace kTraces[] = {
    {"gpt-stg-dp2-tp2", "workload", "comm_groups.json", 4, 2492, 884, 1920, 1280, 336, 0, 0, 18304,
     0, 0, 0},
    {"resnet50-ddp-pytorch", "chakra", "", 1, 3643, 21, 0, 0, 5, 2, 14, 182581, 1277, 383, 599},
    {"mlp-model-parallel-32", "MLP_ModelParallel", "", 32, 18, 11, 192, 0, 160, 0, 0, 1056, 0, 0,
     0},
    {"fsdp-mlp-pytorch-2", "chakra_trace", "", 2, 1632, 2, 0, 0, 4, 0, 0, 4838, 0, 0, 0},
};

const ClusterSpec& h100() {
  static const ClusterSpec c = model::resolve_cluster("dgx-h100");
  return c;
}

ChakraImport import_shared(const SharedTrace& t) {
  interop::ChakraImportOptions options;
  if (*t.comm_groups) options.comm_groups = chakra_data() / t.dir / t.comm_groups;
  return interop::import_chakra(chakra_data() / t.dir / t.prefix, h100(), options);
}

class SharedTraces : public ::testing::TestWithParam<SharedTrace> {};

TEST_P(SharedTraces, NodeCountsByTypeAndCollectivesByKind) {
  const SharedTrace& t = GetParam();
  const ChakraImport in = import_shared(t);
  const auto& g = in.graph;
  ASSERT_EQ(in.ranks.size(), t.ranks);
  ASSERT_EQ(g.ranks().size(), t.ranks);
  EXPECT_FALSE(g.uses_symmetry());
  EXPECT_TRUE(g.imported());
  EXPECT_EQ(g.num_tasks(), t.ranks * (t.comp_per_rank + t.coll_per_rank));
  for (std::uint32_t r = 0; r < t.ranks; ++r) {
    EXPECT_EQ(in.ranks[r].nodes_by_type[chakra::COMP_NODE], t.comp_per_rank) << "rank " << r;
    EXPECT_EQ(in.ranks[r].nodes_by_type[chakra::COMM_COLL_NODE], t.coll_per_rank) << "rank " << r;
    EXPECT_EQ(g.rank_tasks(r).size(), t.comp_per_rank + t.coll_per_rank);
  }
  std::map<CollectiveKind, std::uint64_t> kinds;
  std::uint64_t bookkeeping = 0, compute = 0;
  for (const auto& task : g.tasks()) {
    if (task.kind == COLLECTIVE) ++kinds[task.collective];
    if (task.op == model::Op::TraceBookkeeping) ++bookkeeping;
    if (task.op == model::Op::TraceCompute) ++compute;
  }
  EXPECT_EQ(kinds[ALL_GATHER], t.all_gather);
  EXPECT_EQ(kinds[REDUCE_SCATTER], t.reduce_scatter);
  EXPECT_EQ(kinds[ALL_REDUCE], t.all_reduce);
  EXPECT_EQ(kinds[BROADCAST], t.broadcast);
  EXPECT_EQ(bookkeeping, t.bookkeeping);
  EXPECT_EQ(compute, t.ranks * t.comp_per_rank);
  EXPECT_EQ(g.num_edges(), t.edges);
  std::uint64_t dropped = 0;
  std::uint64_t self = 0, cyclic = 0;
  for (const auto& s : in.ranks) {
    dropped += s.dropped_dependencies;
    self += s.self_dependencies;
    cyclic += s.cyclic_ctrl_dependencies;
  }
  EXPECT_EQ(dropped, t.dropped);
  EXPECT_EQ(self, t.self);
  EXPECT_EQ(cyclic, t.cyclic_ctrl);
  // A note for the comm-groups file used, and one per kind of dependency dropped.
  EXPECT_EQ(!in.warnings.empty(), *t.comm_groups || t.dropped || t.self || t.cyclic_ctrl);
}

TEST_P(SharedTraces, EveryDataDependencyIsAnEdgeAndEveryEdgeADependency) {
  const SharedTrace& t = GetParam();
  const ChakraImport in = import_shared(t);
  const auto& g = in.graph;
  std::uint64_t ctrl_only_missing = 0;
  for (std::uint32_t r = 0; r < t.ranks; ++r) {
    const auto file = traces::read_chakra_et(
        chakra_data() / t.dir / (std::string(t.prefix) + "." + std::to_string(r) + ".et"));
    std::set<std::uint64_t> ids;
    for (const auto& n : file.nodes) ids.insert(n.id());
    const auto tasks = g.rank_tasks(r);
    ASSERT_EQ(tasks.size(), file.nodes.size());
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      const auto& node = file.nodes[i];
      const auto v = tasks[i];
      ASSERT_EQ(in.node_id[v], node.id());
      EXPECT_EQ(g.task_label(v), node.name());
      std::set<std::uint64_t> data, any;
      for (auto d : node.data_deps())
        if (ids.contains(d) && d != node.id()) data.insert(d);
      any = data;
      for (auto d : node.ctrl_deps())
        if (ids.contains(d) && d != node.id()) any.insert(d);
      std::set<std::uint64_t> actual;
      for (auto p : g.predecessors(v)) {
        ASSERT_EQ(g.tasks()[p].rank, r) << "no cross-rank edges without sends";
        actual.insert(in.node_id[p]);
      }
      // Every data dependency is kept; nothing but the file's dependencies is an edge; only
      // ctrl_deps closing a cycle are left out.
      for (auto d : data)
        ASSERT_TRUE(actual.contains(d)) << "rank " << r << " node " << node.id() << " dep " << d;
      for (auto d : actual)
        ASSERT_TRUE(any.contains(d)) << "rank " << r << " node " << node.id() << " edge " << d;
      ctrl_only_missing += any.size() - actual.size();
    }
  }
  EXPECT_EQ(ctrl_only_missing, t.cyclic_ctrl);
}

TEST_P(SharedTraces, CollectivesRunOnTheirCommunicators) {
  const SharedTrace& t = GetParam();
  const ChakraImport in = import_shared(t);
  const auto& g = in.graph;
  const auto groups = *t.comm_groups
                          ? interop::parse_comm_groups(
                                [&] {
                                  std::ifstream f(chakra_data() / t.dir / t.comm_groups);
                                  return std::string(std::istreambuf_iterator<char>(f), {});
                                }(),
                                "groups", t.ranks)
                          : interop::CommGroups{};
  for (std::uint32_t r = 0; r < t.ranks; ++r) {
    const auto file = traces::read_chakra_et(
        chakra_data() / t.dir / (std::string(t.prefix) + "." + std::to_string(r) + ".et"));
    const auto tasks = g.rank_tasks(r);
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      const auto& task = g.tasks()[tasks[i]];
      if (task.kind != COLLECTIVE) continue;
      ASSERT_GE(task.communicator, 0);
      const auto& members = g.communicators()[static_cast<std::size_t>(task.communicator)];
      const auto pg = traces::string_attribute(file.nodes[i], "pg_name");
      if (!groups.empty() && pg) {
        EXPECT_EQ(members, groups.at(*pg));
      } else {
        EXPECT_EQ(members.size(), t.ranks);  // no comm-groups file: all ranks
      }
      // comm_size is the input tensor: an all-gather's is one member's piece of the S it gathers.
      const auto comm_size = *traces::unsigned_attribute(file.nodes[i], "comm_size", "f");
      EXPECT_EQ(task.bytes, task.collective == ALL_GATHER ? comm_size * members.size() : comm_size);
    }
  }
}

// The longest chain of compute time through the graph, communication counted as free: a lower bound
// on any simulated step, and the step itself when no collective moves data.
double compute_critical_path(const model::JobGraph& g) {
  const model::CostModel cost(g.scenario().cluster().gpu(), BF16);
  std::vector<double> finish(g.num_tasks(), 0);
  double longest = 0;
  for (auto v : g.topological_order()) {
    double start = 0;
    for (auto p : g.predecessors(v)) start = std::max(start, finish[p]);
    const auto& t = g.tasks()[v];
    const double d = t.is_compute() ? (t.measured_s >= 0 ? t.measured_s : cost.duration(t)) : 0;
    finish[v] = start + d;
    longest = std::max(longest, finish[v]);
  }
  return longest;
}

TEST_P(SharedTraces, SimulatesOnAPresetCluster) {
  const SharedTrace& t = GetParam();
  const ChakraImport in = import_shared(t);
  const sim::SimulationResult result = sim::simulate_in_subprocess(in.graph);
  const Report& r = result.report;
  const double bound = compute_critical_path(in.graph);
  std::printf(
      "[chakra] %s: %u ranks, %zu tasks, step %.6g s (compute critical path %.6g s), %llu flows, "
      "simulated "
      "in %.3f s wall\n",
      t.dir, t.ranks, in.graph.num_tasks(), r.step_time_s(), bound,
      static_cast<unsigned long long>(r.flows()), r.wall_s());
  RecordProperty("step_time_s", std::to_string(r.step_time_s()));
  RecordProperty("wall_s", std::to_string(r.wall_s()));
  ASSERT_TRUE(std::isfinite(r.step_time_s()));
  EXPECT_GT(r.step_time_s(), 0);
  EXPECT_GE(r.step_time_s(), bound * (1 - 1e-9));
  EXPECT_EQ(result.timeline.events_size(), static_cast<int>(in.graph.num_tasks()));
  EXPECT_EQ(r.breakdown_size(), static_cast<int>(t.ranks));
  // Per GPU: compute is its kernels' time (at most the step, one kernel at a time), host ops apart.
  for (const auto& b : r.breakdown())
    EXPECT_LE(b.compute_s(), r.step_time_s() * (1 + 1e-9)) << "rank " << b.rank();
  for (const auto& e : result.timeline.events()) EXPECT_LE(e.end_s(), r.step_time_s() + 1e-12);
  // One kernel at a time per GPU and one op at a time per host (ASTRA-sim's rule): no two compute
  // tasks of a lane overlap, so the step is at least each lane's total.
  std::map<std::pair<std::uint32_t, bool>, std::vector<std::pair<double, double>>> lanes;
  std::map<std::pair<std::uint32_t, bool>, double> lane_total;
  double all_compute = 0;
  const model::CostModel cost(in.graph.scenario().cluster().gpu(), BF16);
  for (const auto& e : result.timeline.events()) {
    const auto& task = in.graph.tasks()[e.task_id()];
    if (!task.is_compute()) continue;
    const double d = task.measured_s >= 0 ? task.measured_s : cost.duration(task);
    EXPECT_NEAR(e.end_s() - e.start_s(), d, 1e-9);
    lanes[{task.rank, task.on_host}].push_back({e.start_s(), e.end_s()});
    lane_total[{task.rank, task.on_host}] += d;
    all_compute += d;
  }
  for (auto& [lane, intervals] : lanes) {
    std::sort(intervals.begin(), intervals.end());
    for (std::size_t k = 1; k < intervals.size(); ++k)
      ASSERT_GE(intervals[k].first, intervals[k - 1].second - 1e-12) << "rank " << lane.first;
    EXPECT_GE(r.step_time_s(), lane_total[lane] * (1 - 1e-9));
  }
  if (t.ranks == 1) {
    // One rank: every collective is a group of one (no traffic); the step is at most the serial
    // sum.
    EXPECT_EQ(r.flows(), 0u);
    EXPECT_LE(r.step_time_s(), all_compute * (1 + 1e-9));
  } else {
    EXPECT_GT(r.flows(), 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(Chakra, SharedTraces, ::testing::ValuesIn(kTraces), [](const auto& info) {
  std::string name = info.param.dir;
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
});

// ---- small traces built here ----

std::vector<std::string> names(std::size_t n) {
  std::vector<std::string> out;
  for (std::size_t r = 0; r < n; ++r) out.push_back("t." + std::to_string(r) + ".et");
  return out;
}

ChakraImport import_traces(const std::vector<traces::ChakraTrace>& ranks,
                           const interop::CommGroups* groups = nullptr, bool strict = false) {
  return interop::import_chakra_traces(ranks, names(ranks.size()), h100(), groups, strict, "t");
}

std::string import_error(const std::vector<traces::ChakraTrace>& ranks,
                         const interop::CommGroups* groups = nullptr, bool strict = false) {
  try {
    import_traces(ranks, groups, strict);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

chakra::Node& collective(traces::ChakraTrace& t, std::uint64_t id,
                         std::initializer_list<std::uint64_t> deps, std::int64_t type,
                         std::uint64_t bytes, const std::string& pg = "") {
  auto& n = add_node(t, id, chakra::COMM_COLL_NODE, deps);
  set_int(n, "comm_type", type);
  set_uint(n, "comm_size", bytes);
  if (!pg.empty()) set_string(n, "pg_name", pg);
  return n;
}

TEST(ChakraImport, MeasuredDurationsStandAndNumOpsGoThroughTheCostModel) {
  auto t = empty_trace();
  add_node(t, 10, chakra::COMP_NODE, {}, 1000);  // 1 ms measured
  auto& costed = add_node(t, 11, chakra::COMP_NODE, {10});
  set_uint(costed, "num_ops", 2'000'000'000'000);
  set_uint(costed, "tensor_size", 1'000'000);
  add_node(t, 12, chakra::COMP_NODE, {11});  // neither: no work
  const ChakraImport in = import_traces({t});
  const auto& tasks = in.graph.tasks();
  EXPECT_DOUBLE_EQ(tasks[0].measured_s, 1e-3);
  EXPECT_LT(tasks[1].measured_s, 0);
  EXPECT_EQ(tasks[1].kind, GEMM);
  EXPECT_EQ(tasks[1].gemm_m, 10000u);  // the square GEMM of 2e12 operations
  EXPECT_DOUBLE_EQ(tasks[1].flops, 2e12);
  EXPECT_EQ(tasks[1].bytes, 1'000'000u);
  EXPECT_EQ(tasks[2].measured_s, 0);
  EXPECT_EQ(in.ranks[0].measured, 2u);
  EXPECT_EQ(in.ranks[0].costed, 1u);
  const double costed_s = model::CostModel(h100().gpu(), BF16).duration(tasks[1]);
  EXPECT_GT(costed_s, 2e12 / model::CostModel(h100().gpu(), BF16).peak_flops());
  const auto r = sim::simulate_in_subprocess(in.graph).report;
  EXPECT_NEAR(r.step_time_s(), 1e-3 + costed_s, 1e-12);
}

TEST(ChakraImport, OneKernelAtATimePerGpuAndOneOpPerHost) {
  // Three independent GPU kernels (100, 200, 50 us) and two independent CPU ops (250, 10 us): the
  // kernels run one after another (350 us), the CPU ops alongside them on the host lane (260 us).
  auto t = empty_trace();
  add_node(t, 1, chakra::COMP_NODE, {}, 100);
  add_node(t, 2, chakra::COMP_NODE, {}, 200);
  add_node(t, 3, chakra::COMP_NODE, {}, 50);
  for (std::uint64_t id : {4, 5}) {
    auto& op = add_node(t, id, chakra::COMP_NODE, {}, id == 4 ? 250 : 10);
    auto* flag = op.add_attr();
    flag->set_name("is_cpu_op");
    flag->set_bool_val(true);
  }
  const auto in = import_traces({t});
  EXPECT_TRUE(in.graph.tasks()[3].on_host);
  EXPECT_FALSE(in.graph.tasks()[0].on_host);
  const auto result = sim::simulate_in_subprocess(in.graph);
  EXPECT_NEAR(result.report.step_time_s(), 350e-6, 1e-12);
  // In the order they became ready (file order): 0-100, 100-300, 300-350 us.
  std::vector<double> starts;
  for (const auto& e : result.timeline.events()) starts.push_back(e.start_s());
  EXPECT_NEAR(starts[1], 100e-6, 1e-12);
  EXPECT_NEAR(starts[2], 300e-6, 1e-12);
  EXPECT_NEAR(starts[4], 250e-6, 1e-12);
}

TEST(ChakraImport, ExplicitCommunicatorsMeetOnlyTheirMembers) {
  // Ranks 0 and 1 all-reduce on "a", 2 and 3 on "b"; rank 1 computes 300 us first, the others 100
  // us.
  std::vector<traces::ChakraTrace> ranks(4, empty_trace());
  for (std::uint32_t r = 0; r < 4; ++r) {
    add_node(ranks[r], 1, chakra::COMP_NODE, {}, r == 1 ? 300 : 100);
    collective(ranks[r], 2, {1}, chakra::ALL_REDUCE, 1 << 20, r < 2 ? "a" : "b");
  }
  const interop::CommGroups groups{{"a", {0, 1}}, {"b", {2, 3}}};
  const ChakraImport in = import_traces(ranks, &groups);
  ASSERT_EQ(in.graph.communicators().size(), 2u);
  const auto result = sim::simulate_in_subprocess(in.graph);
  std::map<std::uint32_t, double> start_of_collective;
  for (const auto& e : result.timeline.events())
    if (e.kind() == COLLECTIVE) start_of_collective[e.rank()] = e.start_s();
  const auto end_of = [&](std::uint32_t rank) {
    for (const auto& e : result.timeline.events())
      if (e.kind() == COLLECTIVE && e.rank() == rank) return e.end_s();
    return -1.0;
  };
  // Group a waits for rank 1's 300 us; group b does not.
  EXPECT_GE(end_of(0), 300e-6);
  EXPECT_NEAR(end_of(0), end_of(1), 1e-12);
  EXPECT_LT(end_of(2), 300e-6);
  EXPECT_NEAR(end_of(2), end_of(3), 1e-12);
  EXPECT_GT(end_of(2), 100e-6 + 1e-6);  // a megabyte takes microseconds
}

TEST(ChakraImport, RootedCollectivesKeepKindAndRootAndSimulateToClosedForms) {
  // REDUCE, GATHER, SCATTER of S = 256 MiB one after another on [2, 0, 1, 3] (root: rank 2), on
  // dgx-h100 (the 4 ranks in one node: NVLink, 360 GB/s after efficiency, 1 us) and on one GPU per
  // node (NDR NIC, 46 GB/s, 3 us; same rail: NIC up + NIC down).
  const double S = 256.0 * (1 << 20);
  const auto trace = rooted_collectives_trace(static_cast<std::uint64_t>(S));
  ClusterSpec one_per_node = h100();
  one_per_node.set_gpus_per_node(1);
  one_per_node.set_nics_per_node(1);
  for (const ClusterSpec& cluster : {h100(), one_per_node}) {
    const bool nvlink = cluster.gpus_per_node() == 8;
    SCOPED_TRACE(nvlink ? "one node" : "one GPU per node");
    const ChakraImport in =
        interop::import_chakra_traces(trace.ranks, names(4), cluster, &trace.groups, false, "t");
    const auto& g = in.graph;
    ASSERT_EQ(g.num_tasks(), 12u);
    for (std::uint32_t r = 0; r < 4; ++r) {
      const auto list = g.rank_tasks(r);
      ASSERT_EQ(list.size(), 3u);
      const CollectiveKind expected[] = {REDUCE, GATHER, SCATTER};
      for (std::size_t k = 0; k < 3; ++k) {
        const auto& t = g.tasks()[list[k]];
        EXPECT_EQ(t.kind, COLLECTIVE);
        EXPECT_EQ(t.collective, expected[k]);
        EXPECT_EQ(t.bytes, static_cast<std::uint64_t>(S));
        ASSERT_GE(t.communicator, 0);
        // The root is the communicator's first member, as for BROADCAST.
        EXPECT_EQ(g.communicators()[static_cast<std::size_t>(t.communicator)],
                  (std::vector<std::uint32_t>{2, 0, 1, 3}));
      }
    }
    const double B =
        nvlink ? cluster.intra_node().gb_per_s() * 1e9 * cluster.intra_node().bandwidth_efficiency()
               : cluster.nic_gbit_per_s() / 8 * 1e9 * cluster.nic_bandwidth_efficiency();
    const double alpha =
        (nvlink ? cluster.intra_node().latency_us() : cluster.nic_latency_us()) * 1e-6;
    const double n = 4;
    // REDUCE: NCCL's ring chain 0 -> 1 -> 3 -> 2, S on each edge, n-1 steps of latency. GATHER and
    // SCATTER: three pieces of S/4 through the root's one link: (n-1)/n S / B + alpha.
    const double expected[] = {S / B + (n - 1) * alpha, (n - 1) / n * S / B + alpha,
                               (n - 1) / n * S / B + alpha};
    const auto result = sim::simulate_in_subprocess(g);
    ASSERT_EQ(result.timeline.events_size(), 12);
    for (const auto& e : result.timeline.events()) {
      const auto k = static_cast<std::size_t>(in.node_id[e.task_id()] - 1);
      EXPECT_NEAR((e.end_s() - e.start_s()) / expected[k], 1.0, 0.005)
          << "rank " << e.rank() << " node " << k + 1;
    }
    EXPECT_NEAR(result.report.step_time_s() / (expected[0] + expected[1] + expected[2]), 1.0,
                0.005);
    EXPECT_EQ(result.report.flows(), 9u);
    EXPECT_EQ(result.report.collective_algorithms().at("ring"), 1u);
    EXPECT_EQ(result.report.collective_algorithms().at("direct"), 2u);
    // The root's incoming link carries the reduce chain's last edge (S) and the gather (3/4 S).
    ASSERT_GT(result.report.links_size(), 0);
    EXPECT_EQ(result.report.links(0).name(), nvlink ? "nvlink2_down" : "node2_nic0_down");
    EXPECT_NEAR(result.report.links(0).bytes(), S + (n - 1) / n * S, 1.0);
  }
  // Without a comm-groups file a collective spans all ranks in rank order: rank 0 is the root.
  const ChakraImport all = import_traces(trace.ranks);
  EXPECT_EQ(all.graph.communicators().at(0).front(), 0u);
}

TEST(ChakraImport, SendsMeetTheirRecvsByTag) {
  std::vector<traces::ChakraTrace> ranks(2, empty_trace());
  add_node(ranks[0], 1, chakra::COMP_NODE, {}, 100);
  for (std::uint64_t tag : {7, 8}) {
    auto& s = add_node(ranks[0], 1 + tag, chakra::COMM_SEND_NODE, {1});
    set_int(s, "comm_dst", 1);
    set_uint(s, "comm_size", 8u << 20);
    set_int(s, "comm_tag", static_cast<std::int64_t>(tag));
  }
  // Rank 1 receives tag 8 first, then 7.
  for (std::uint64_t tag : {8, 7}) {
    auto& rv = add_node(ranks[1], tag, chakra::COMM_RECV_NODE);
    set_int(rv, "comm_src", 0);
    set_int(rv, "comm_tag", static_cast<std::int64_t>(tag));
  }
  add_node(ranks[1], 20, chakra::COMP_NODE, {7, 8}, 50);
  const ChakraImport in = import_traces(ranks);
  const auto& g = in.graph;
  // Task ids: rank 0 = 0 (comp), 1 (send tag 7), 2 (send tag 8); rank 1 = 3 (recv 8), 4 (recv
  // 7), 5.
  EXPECT_EQ(g.predecessors(3), std::vector<std::uint32_t>{2});
  EXPECT_EQ(g.predecessors(4), std::vector<std::uint32_t>{1});
  EXPECT_EQ(g.tasks()[3].bytes, 8u << 20);  // the recv takes the send's size
  const auto r = sim::simulate_in_subprocess(g).report;
  EXPECT_GT(r.step_time_s(), 150e-6);
  EXPECT_EQ(r.flows(), 2u);

  ranks[1].nodes.erase(ranks[1].nodes.begin());  // drop the recv of tag 8
  ranks[1].nodes.back().clear_data_deps();
  const std::string e = import_error(ranks);
  EXPECT_NE(e.find("rank 0 sends 1 messages with tag 8 to rank 1, which receives 0"),
            std::string::npos)
      << e;
}

TEST(ChakraImport, DanglingDependenciesAreDroppedAndCountedOrRefusedUnderStrict) {
  auto t = empty_trace();
  add_node(t, 1, chakra::COMP_NODE, {}, 10);
  add_node(t, 2, chakra::COMP_NODE, {1, 99, 98}, 10);
  const ChakraImport in = import_traces({t});
  EXPECT_EQ(in.ranks[0].dropped_dependencies, 2u);
  EXPECT_EQ(in.graph.num_edges(), 1u);
  ASSERT_FALSE(in.warnings.empty());
  EXPECT_NE(
      in.warnings[0].find(
          "t.0.et: dropped 2 dependencies on node ids absent from the file, first id 99 of node 1 "
          "(id 2, \"node2\")"),
      std::string::npos)
      << in.warnings[0];
  const std::string e = import_error({t}, nullptr, true);
  EXPECT_NE(e.find("t.0.et: 2 dependencies on node ids absent from the file"), std::string::npos)
      << e;
  EXPECT_NE(e.find("--strict"), std::string::npos) << e;
}

TEST(ChakraImport, StrictRefusesTheResnetTracesDanglingIds) {
  interop::ChakraImportOptions strict;
  strict.strict = true;
  try {
    interop::import_chakra(chakra_data() / "resnet50-ddp-pytorch/chakra", h100(), strict);
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("chakra.0.et: 1277 dependencies on node ids absent"),
              std::string::npos)
        << e.what();
  }
}

TEST(ChakraImportBadInput, CycleNamesItsNodes) {
  auto t = empty_trace();
  add_node(t, 1, chakra::COMP_NODE, {}, 10);
  add_node(t, 2, chakra::COMP_NODE, {1, 4}, 10);
  add_node(t, 3, chakra::COMP_NODE, {2}, 10);
  add_node(t, 4, chakra::COMP_NODE, {3}, 10);
  const std::string e = import_error({t});
  EXPECT_NE(e.find("t.0.et: dependency cycle: "), std::string::npos) << e;
  for (const char* node : {"(id 2, \"node2\")", "(id 3, \"node3\")", "(id 4, \"node4\")"})
    EXPECT_NE(e.find(node), std::string::npos) << e;
  EXPECT_EQ(e.find("(id 1,"), std::string::npos) << e;  // not on the cycle
  EXPECT_NE(e.find("3 nodes can never run"), std::string::npos) << e;

  // A node listing itself (383 in the resnet trace): dropped with a warning, refused under strict.
  auto self = empty_trace();
  add_node(self, 5, chakra::COMP_NODE, {5}, 10);
  const auto in = import_traces({self});
  EXPECT_EQ(in.graph.num_edges(), 0u);
  EXPECT_EQ(in.ranks[0].self_dependencies, 1u);
  ASSERT_EQ(in.warnings.size(), 1u);
  EXPECT_NE(in.warnings[0].find("t.0.et: dropped 1 self-dependencies"), std::string::npos)
      << in.warnings[0];
  EXPECT_NE(import_error({self}, nullptr, true).find("node 0 (id 5, \"node5\"): depends on itself"),
            std::string::npos);
}

TEST(ChakraImport, CtrlDependenciesClosingACycleAreDroppedDataOnesAreNot) {
  // 1 -> 2 -> 3 by data; 3 lists 2 as ctrl parent and 2 lists 3: the ctrl edge 3 -> 2 closes a
  // cycle.
  auto t = empty_trace();
  add_node(t, 1, chakra::COMP_NODE, {}, 10);
  add_node(t, 2, chakra::COMP_NODE, {1}, 10).add_ctrl_deps(3);
  add_node(t, 3, chakra::COMP_NODE, {2}, 10).add_ctrl_deps(1);
  const auto in = import_traces({t});
  EXPECT_EQ(in.ranks[0].cyclic_ctrl_dependencies, 1u);
  EXPECT_EQ(in.graph.num_edges(), 3u);  // 1->2, 2->3 (data), 1->3 (ctrl, no cycle)
  ASSERT_EQ(in.warnings.size(), 1u);
  EXPECT_NE(
      in.warnings[0].find(
          "dropped 1 ctrl_deps that close dependency cycles, first node 1 (id 2, \"node2\") on "
          "node 2 (id 3, \"node3\")"),
      std::string::npos)
      << in.warnings[0];
  const std::string e = import_error({t}, nullptr, true);
  EXPECT_NE(e.find("t.0.et: dependency cycle through 1 ctrl_deps"), std::string::npos) << e;
  EXPECT_NE(e.find("--strict"), std::string::npos) << e;
}

TEST(ChakraImportBadInput, CollectivesWithoutTypeOrSizeOrOfUnknownType) {
  auto t = empty_trace();
  add_node(t, 1, chakra::COMM_COLL_NODE);
  EXPECT_NE(import_error({t}).find(
                "t.0.et: node 0 (id 1, \"node1\"): a COMM_COLL_NODE needs the attribute comm_type"),
            std::string::npos);
  auto unknown = empty_trace();
  collective(unknown, 1, {}, 42, 100);
  EXPECT_NE(import_error({unknown}).find("unknown comm_type 42"), std::string::npos);
  EXPECT_NE(import_error({unknown}).find("REDUCE=1, ALL_GATHER=2, GATHER=3, SCATTER=4"),
            std::string::npos);
  auto sizeless = empty_trace();
  set_int(add_node(sizeless, 1, chakra::COMM_COLL_NODE), "comm_type", chakra::ALL_GATHER);
  EXPECT_NE(import_error({sizeless}).find("needs the attribute comm_size"), std::string::npos);
  // A CPU-side c10d call without type or size is bookkeeping, not an error.
  auto cpu = empty_trace();
  auto& call = add_node(cpu, 1, chakra::COMM_COLL_NODE, {}, 30);
  auto* flag = call.add_attr();
  flag->set_name("is_cpu_op");
  flag->set_bool_val(true);
  const auto in = import_traces({cpu});
  EXPECT_EQ(in.graph.tasks()[0].op, model::Op::TraceBookkeeping);
  EXPECT_DOUBLE_EQ(in.graph.tasks()[0].measured_s, 30e-6);
}

TEST(ChakraImportBadInput, SizesThatOverflow) {
  auto huge = empty_trace();
  collective(huge, 1, {}, chakra::ALL_REDUCE, std::uint64_t{1} << 60);
  EXPECT_NE(
      import_error({huge}).find("comm_size 1152921504606846976 bytes is beyond any real tensor"),
      std::string::npos);
  auto negative = empty_trace();
  auto& n = add_node(negative, 1, chakra::COMM_COLL_NODE);
  set_int(n, "comm_type", 0);
  set_int(n, "comm_size", -1);
  EXPECT_NE(import_error({negative}).find("attribute \"comm_size\" is negative"),
            std::string::npos);
  auto slow = empty_trace();
  add_node(slow, 1, chakra::COMP_NODE, {}, std::uint64_t{1} << 62);
  EXPECT_NE(
      import_error({slow}).find("duration_micros 4611686018427387904 is beyond any real kernel"),
      std::string::npos);
  auto ops = empty_trace();
  set_uint(add_node(ops, 1, chakra::COMP_NODE), "num_ops", ~std::uint64_t{0});
  EXPECT_NE(import_error({ops}).find(
                "num_ops 18446744073709551615 is beyond any real kernel (over 2^60)"),
            std::string::npos);
  auto tensor = empty_trace();
  set_uint(add_node(tensor, 1, chakra::MEM_LOAD_NODE), "tensor_size", ~std::uint64_t{0});
  EXPECT_NE(import_error({tensor}).find("tensor_size"), std::string::npos);
}

TEST(ChakraImportBadInput, CommunicatorProblems) {
  std::vector<traces::ChakraTrace> ranks(2, empty_trace());
  collective(ranks[0], 1, {}, chakra::ALL_REDUCE, 64, "x");
  collective(ranks[1], 1, {}, chakra::ALL_REDUCE, 64, "x");
  const interop::CommGroups missing{{"y", {0, 1}}};
  EXPECT_NE(import_error(ranks, &missing).find("pg_name \"x\" is not in the comm-groups file"),
            std::string::npos);
  const interop::CommGroups other{{"x", {1}}};
  EXPECT_NE(import_error(ranks, &other)
                .find("t.0.et: node 0 (id 1, \"node1\"): runs on communicator \"x\" which does not "
                      "include this file's rank 0"),
            std::string::npos);
  collective(ranks[0], 2, {1}, chakra::ALL_REDUCE, 64, "x");  // rank 0 issues one more
  const std::string e = import_error(ranks);
  EXPECT_NE(e.find("issues 1 collectives on communicator"), std::string::npos) << e;
  EXPECT_NE(e.find("would deadlock"), std::string::npos) << e;
}

TEST(ChakraImportBadInput, PeersOutsideTheJob) {
  std::vector<traces::ChakraTrace> ranks(2, empty_trace());
  auto& s = add_node(ranks[0], 1, chakra::COMM_SEND_NODE);
  set_int(s, "comm_dst", 5);
  set_uint(s, "comm_size", 10);
  EXPECT_NE(import_error(ranks).find("comm_dst 5 is not a rank of the job (0 to 1"),
            std::string::npos);
  auto& r = add_node(ranks[1], 1, chakra::COMM_RECV_NODE);
  (void)r;
  ranks[0].nodes.pop_back();
  EXPECT_NE(import_error(ranks).find("a recv needs the attribute comm_src"), std::string::npos);
}

TEST(ChakraImportBadInput, CommGroupsFile) {
  auto msg = [](const std::string& json) {
    try {
      interop::parse_comm_groups(json, "g.json", 4);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(msg(R"({"1": [0, 1], "2": [2, 3]})"), "");
  EXPECT_NE(msg("[0, 1]").find("g.json: not a JSON object"), std::string::npos);
  EXPECT_NE(msg(R"({"1": [0, 7]})").find("g.json: group \"1\": member 7"), std::string::npos);
  EXPECT_NE(msg(R"({"1": [0, 0]})").find("rank 0 is listed twice"), std::string::npos);
  EXPECT_NE(msg(R"({"1": [0.5]})").find("not a rank of the job"), std::string::npos);
  EXPECT_NE(msg(R"({"1": 3})").find("not a list of ranks"), std::string::npos);
}

TEST(ChakraImportBadInput, RankFilesWithAGap) {
  const testing::TempDir dir;
  auto t = empty_trace();
  add_node(t, 1, chakra::COMP_NODE, {}, 1);
  traces::write_chakra_et(dir / "job.0.et", t);
  traces::write_chakra_et(dir / "job.2.et", t);
  try {
    interop::chakra_rank_files(dir / "job");
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("job.2.et exists but"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("job.1.et does not"), std::string::npos) << e.what();
  }
  EXPECT_THROW(interop::chakra_rank_files(dir / "nothing"), InputError);
}

TEST(ChakraImport, GzipRankFilesImportLikePlainOnes) {
  const testing::TempDir dir;
  for (int r = 0; r < 2; ++r) {
    std::ifstream in(
        chakra_data() / "fsdp-mlp-pytorch-2" / ("chakra_trace." + std::to_string(r) + ".et"),
        std::ios::binary);
    const std::string bytes(std::istreambuf_iterator<char>(in), {});
    std::ofstream(dir / ("job." + std::to_string(r) + ".et"), std::ios::binary)
        << traces::gzip_compress(bytes);
  }
  const auto gz = interop::import_chakra(dir / "job", h100());
  const auto plain =
      interop::import_chakra(chakra_data() / "fsdp-mlp-pytorch-2/chakra_trace", h100());
  EXPECT_EQ(gz.graph.num_tasks(), plain.graph.num_tasks());
  EXPECT_EQ(gz.graph.num_edges(), plain.graph.num_edges());
  EXPECT_EQ(gz.node_id, plain.node_id);
}

TEST(ChakraImportBadInput, UnknownCluster) {
  try {
    model::resolve_cluster("no-such-cluster");
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("bundled presets: "), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("dgx-h100"), std::string::npos);
  }
}

}  // namespace
}  // namespace parallax::testing
