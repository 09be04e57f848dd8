// The SimGrid backend against closed forms: lone transfers, uncontended ring all-reduce, contention
// on a shared NIC, rooted collectives (reduce, gather, scatter), pipeline bubbles, a single-GPU
// step, exact symmetry, and deadlock detection. Each simulation runs in its own process (SimGrid's
// engine is once per process).
#include "parallax/model/cost_model.h"
#include "parallax/model/job_graph.h"
#include "parallax/model/schedule.h"
#include "parallax/sim/simulate.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <sstream>

namespace parallax::sim {
namespace {

using model::JobGraph;
using model::RankClass;
using model::Task;
using parallax::testing::scenario_from_text;

// A scenario whose cluster and layout give ranks their coordinates; the graph is written by hand.
Scenario cluster_scenario(int nodes, const std::string& layout, const std::string& cluster_extra = "") {
  return scenario_from_text(R"(
    model { num_layers: 8 hidden_size: 512 num_heads: 8 seq_length: 256 vocab_size: 1024 }
    cluster { preset: "dgx-a100-80g" num_nodes: )" +
                            std::to_string(nodes) + " " + cluster_extra + R"( }
    layout { )" + layout + R"( }
    options { use_symmetry: false })");
}

// Hand-made graphs: tasks on explicit ranks, edges between them.
struct GraphBuilder {
  Scenario scenario;
  std::vector<Task> tasks;
  std::map<std::uint32_t, std::vector<std::uint32_t>> by_rank;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> edges;

  std::uint32_t add(Task t) {
    const auto id = static_cast<std::uint32_t>(tasks.size());
    tasks.push_back(t);
    by_rank[t.rank].push_back(id);
    return id;
  }
  std::uint32_t send(std::uint32_t from, std::uint32_t to, std::uint64_t bytes) {
    Task s;
    s.kind = SEND;
    s.stream = PP_COMM;
    s.group = GROUP_PP;
    s.op = model::Op::PpSend;
    s.rank = from;
    s.peer = static_cast<std::int32_t>(to);
    s.bytes = bytes;
    const auto sid = add(s);
    Task r = s;
    r.kind = RECV;
    r.op = model::Op::PpRecv;
    r.rank = to;
    r.peer = static_cast<std::int32_t>(from);
    const auto rid = add(r);
    edges.push_back({sid, rid});
    return rid;
  }
  std::uint32_t collective(std::uint32_t rank, CollectiveKind kind, CommGroup group, std::uint64_t bytes) {
    Task c;
    c.kind = COLLECTIVE;
    c.stream = DP_COMM;
    c.op = model::Op::DpGradAllReduce;
    c.collective = kind;
    c.group = group;
    c.rank = rank;
    c.bytes = bytes;
    return add(c);
  }
  std::uint32_t gemm(std::uint32_t rank, double flops) {
    Task g;
    g.kind = GEMM;
    g.op = model::Op::Fc1;
    g.rank = rank;
    g.gemm_m = g.gemm_n = g.gemm_k = 8192;
    g.gemm_batch = 1;
    g.flops = flops;
    return add(g);
  }
  JobGraph graph() const {
    std::vector<RankClass> ranks;
    std::vector<std::vector<std::uint32_t>> lists;
    for (const auto& [rank, list] : by_rank) {
      ranks.push_back({rank, 1u, 0});
      lists.push_back(list);
    }
    return JobGraph(scenario, ranks, tasks, lists, edges);
  }
};

double step_time(const JobGraph& g, CollectiveAlgorithm algorithm = CollectiveAlgorithm::Auto) {
  SimulationOptions options;
  options.algorithm = algorithm;
  return simulate_in_subprocess(g, options).report.step_time_s();
}

TEST(Simulate, LoneTransferIsBytesOverBandwidthPlusLatency) {
  const double B = 1e9;
  const Scenario sc = cluster_scenario(2, "tp: 8 pp: 2 global_batch_size: 2");
  const auto& c = sc.cluster();
  {  // Across nodes: the NIC (HDR, 25 GB/s at 92%) and its latency.
    GraphBuilder b{sc, {}, {}, {}};
    b.send(0, 8, static_cast<std::uint64_t>(B));
    const double bw = c.nic_gbit_per_s() / 8 * 1e9 * c.nic_bandwidth_efficiency();
    const double expected = B / bw + c.nic_latency_us() * 1e-6;
    EXPECT_NEAR(step_time(b.graph()) / expected, 1.0, 0.005);
  }
  {  // Inside a node: NVLink through NVSwitch.
    GraphBuilder b{sc, {}, {}, {}};
    b.send(0, 1, static_cast<std::uint64_t>(B));
    const double bw = c.intra_node().gb_per_s() * 1e9 * c.intra_node().bandwidth_efficiency();
    const double expected = B / bw + c.intra_node().latency_us() * 1e-6;
    EXPECT_NEAR(step_time(b.graph()) / expected, 1.0, 0.005);
  }
}

TEST(Simulate, UncontendedRingAllReduceMatchesClosedForm) {
  // One rank per node in the DP group (tp 8): every ring hop crosses a NIC.
  for (const int n : {2, 4, 8}) {
    for (const double S : {1e6, 256e6}) {
      const Scenario sc = cluster_scenario(n, "tp: 8 dp: " + std::to_string(n) + " global_batch_size: " + std::to_string(n));
      GraphBuilder b{sc, {}, {}, {}};
      for (int i = 0; i < n; ++i) b.collective(static_cast<std::uint32_t>(8 * i), ALL_REDUCE, GROUP_DP, static_cast<std::uint64_t>(S));
      const auto& c = sc.cluster();
      const double bw = c.nic_gbit_per_s() / 8 * 1e9 * c.nic_bandwidth_efficiency();
      // Same leaf (20 nodes per leaf): the route is NIC up + NIC down.
      const double alpha = c.nic_latency_us() * 1e-6;
      const double expected = 2.0 * (n - 1) / n * S / bw + 2.0 * (n - 1) * alpha;
      EXPECT_NEAR(step_time(b.graph(), CollectiveAlgorithm::Ring) / expected, 1.0, 0.02) << "n=" << n << " S=" << S;
    }
  }
}

// GB200 NVL72: the 72 GPUs of a rack are one NVLink domain, so an all-reduce among them is a ring at
// NVLink bandwidth (closed form); among 144 (two racks) it crosses the fabric: NCCL's channels leave
// each rack from all 72 NICs (netmodel::channel_rings), so it is no faster than the NVLink ring and
// its flows load the NICs.
TEST(Simulate, Nvl72AllReduceRunsAtNvlinkBandwidthInsideTheRack) {
  const double S = 256e6;
  auto scenario = [](int racks) {
    return scenario_from_text(R"(
      model { num_layers: 2 hidden_size: 512 num_heads: 8 seq_length: 256 vocab_size: 1024 }
      cluster { preset: "gb200-nvl72" num_nodes: )" + std::to_string(racks) + R"( }
      layout { dp: )" + std::to_string(72 * racks) + " global_batch_size: " + std::to_string(72 * racks) + R"( }
      options { use_symmetry: false })");
  };
  auto all_reduce = [&](int racks) {
    GraphBuilder b{scenario(racks), {}, {}, {}};
    for (int r = 0; r < 72 * racks; ++r) b.collective(static_cast<std::uint32_t>(r), ALL_REDUCE, GROUP_DP, static_cast<std::uint64_t>(S));
    return b.graph();
  };
  const Scenario one = scenario(1);
  const auto& c = one.cluster();
  const double nvlink = c.intra_node().gb_per_s() * 1e9 * c.intra_node().bandwidth_efficiency();
  const double n = 72, alpha = c.intra_node().latency_us() * 1e-6;
  const double expected = 2 * (n - 1) / n * S / nvlink + 2 * (n - 1) * alpha;
  const double one_rack = step_time(all_reduce(1), CollectiveAlgorithm::Ring);
  EXPECT_NEAR(one_rack / expected, 1.0, 0.02);
  SimulationOptions every_link;
  every_link.algorithm = CollectiveAlgorithm::Ring;
  every_link.top_links = 100000;
  const auto two = simulate_in_subprocess(all_reduce(2), every_link);
  EXPECT_GE(two.report.step_time_s(), one_rack * (1 - 1e-9));
  bool nic_loaded = false;
  for (const auto& link : two.report.links()) nic_loaded |= link.name().find("nic") != std::string::npos && link.bytes() > 0;
  EXPECT_TRUE(nic_loaded);
}

TEST(Simulate, HierarchicalAllReduceAndNcclStyleChoice) {
  // 16 ranks on 2 nodes (8 per node). Hierarchical: intra-node reduce-scatter, inter-node all-reduce
  // of S/8 per local rank, intra-node all-gather, one phase after the other. Ring: the group fills
  // both nodes, so NCCL's 8 channels each leave a node through another NIC (netmodel::channel_rings),
  // NVLink and NICs busy at once: 2(n-1)/n S over min(NVLink x 8/7, 8 NICs). For 1 GB the ring wins
  // and the NCCL-style tuner picks it; a single ring through one NIC would be far slower than both.
  const double S = 1e9;
  const Scenario sc = cluster_scenario(2, "dp: 16 global_batch_size: 16");
  GraphBuilder b{sc, {}, {}, {}};
  for (std::uint32_t r = 0; r < 16; ++r) b.collective(r, ALL_REDUCE, GROUP_DP, static_cast<std::uint64_t>(S));
  const auto& c = sc.cluster();
  const double intra = c.intra_node().gb_per_s() * 1e9 * c.intra_node().bandwidth_efficiency();
  const double inter = c.nic_gbit_per_s() / 8 * 1e9 * c.nic_bandwidth_efficiency();
  const double a_intra = c.intra_node().latency_us() * 1e-6, a_inter = c.nic_latency_us() * 1e-6;
  const double hierarchical = 2 * 7.0 / 8 * S / intra + 2 * 7 * a_intra + 2 * 0.5 * (S / 8) / inter + 2 * a_inter;
  EXPECT_NEAR(step_time(b.graph(), CollectiveAlgorithm::Hierarchical) / hierarchical, 1.0, 0.02);
  // The ring's slowest hop leaves the node (NIC latency, and the spine's when it changes rail).
  const double a_ring = a_inter + 2.0 * (c.inter_node().levels() - 1) * c.inter_node().switch_latency_us() * 1e-6;
  const double ring = 2 * 15.0 / 16 * S / std::min(intra * 8 / 7, 8 * inter) + 2 * 15 * a_ring;
  EXPECT_NEAR(step_time(b.graph(), CollectiveAlgorithm::Ring) / ring, 1.0, 0.02);
  ASSERT_LT(ring, hierarchical);
  const auto automatic = simulate_in_subprocess(b.graph());
  EXPECT_EQ(automatic.report.collective_algorithms().at("ring"), 1u);
  EXPECT_NEAR(automatic.report.step_time_s() / ring, 1.0, 0.02);
  EXPECT_LT(ring * 3, 2 * 15.0 / 16 * S / inter);  // what one ring through one NIC would take
}

TEST(Simulate, AllReducesSharingOneNicContend) {
  // Two DP groups (tp 0 and tp 1) each all-reduce 1 GB between two nodes. With one NIC per node both
  // cross the same NIC and take about twice as long as one alone; with a NIC per GPU they do not.
  auto run = [](int groups, int nics) {
    const Scenario sc = cluster_scenario(2, "tp: 8 dp: 2 global_batch_size: 2", "nics_per_node: " + std::to_string(nics));
    GraphBuilder b{sc, {}, {}, {}};
    for (int g = 0; g < groups; ++g)
      for (int node = 0; node < 2; ++node)
        b.collective(static_cast<std::uint32_t>(8 * node + g), ALL_REDUCE, GROUP_DP, 1'000'000'000);
    return step_time(b.graph(), CollectiveAlgorithm::Ring);
  };
  const double one_shared = run(1, 1), two_shared = run(2, 1);
  EXPECT_NEAR(two_shared / one_shared, 2.0, 0.05);
  const double one_own = run(1, 8), two_own = run(2, 8);
  EXPECT_NEAR(two_own / one_own, 1.0, 0.01);
}

TEST(Simulate, RootedCollectivesMatchTheirClosedForms) {
  // One rank per node in the DP group {0, 8, 16, 24} (tp 8): every flow crosses a NIC (HDR, 25 GB/s
  // at 92%; same leaf: NIC up + NIC down, alpha = the NIC latency). The root is the first member,
  // rank 0 on node 0.
  const int n = 4;
  const double S = 256e6;
  const Scenario sc = cluster_scenario(n, "tp: 8 dp: 4 global_batch_size: 4");
  const auto& c = sc.cluster();
  const double bw = c.nic_gbit_per_s() / 8 * 1e9 * c.nic_bandwidth_efficiency();
  const double alpha = c.nic_latency_us() * 1e-6;
  auto run = [&](CollectiveKind kind, CollectiveAlgorithm algorithm = CollectiveAlgorithm::Ring) {
    GraphBuilder b{sc, {}, {}, {}};
    for (int i = 0; i < n; ++i)
      b.collective(static_cast<std::uint32_t>(8 * i), kind, GROUP_DP,
                   static_cast<std::uint64_t>(S));
    SimulationOptions options;
    options.algorithm = algorithm;
    return simulate_in_subprocess(b.graph(), options).report;
  };
  // REDUCE, NCCL's ring reduce: the chain 8 -> 16 -> 24 -> 0 carries S on each of its 3 edges, n-1
  // steps of latency.
  const Report reduce = run(REDUCE);
  EXPECT_NEAR(reduce.step_time_s() / (S / bw + (n - 1) * alpha), 1.0, 0.005);
  EXPECT_EQ(reduce.flows(), 3u);
  EXPECT_EQ(reduce.collective_algorithms().at("ring"), 1u);
  ASSERT_GT(reduce.links_size(), 0);
  EXPECT_NEAR(reduce.links(0).bytes(), S, 1.0);  // a chain edge carries the whole tensor
  // GATHER: three pieces of S/4 into the root, sharing its NIC's down link: 3/4 S / B + alpha,
  // three times a lone piece's transfer time.
  const Report gather = run(GATHER);
  EXPECT_NEAR(gather.step_time_s() / ((n - 1.0) / n * S / bw + alpha), 1.0, 0.005);
  EXPECT_GT(gather.step_time_s(), 2.5 * (S / n / bw + alpha));
  EXPECT_EQ(gather.flows(), 3u);
  EXPECT_EQ(gather.collective_algorithms().at("direct"), 1u);
  ASSERT_GT(gather.links_size(), 0);
  EXPECT_EQ(gather.links(0).name(), "node0_nic0_down");
  EXPECT_NEAR(gather.links(0).bytes(), (n - 1.0) / n * S, 1.0);
  // The root's link is the algorithm, not contention: the analytic duration alone accounts for it.
  EXPECT_LT(gather.contention_delay_s(), 1e-3 * gather.step_time_s());
  // SCATTER: the mirror, out of the root's NIC up link.
  const Report scatter = run(SCATTER);
  EXPECT_NEAR(scatter.step_time_s() / ((n - 1.0) / n * S / bw + alpha), 1.0, 0.005);
  ASSERT_GT(scatter.links_size(), 0);
  EXPECT_EQ(scatter.links(0).name(), "node0_nic0_up");
  EXPECT_NEAR(scatter.links(0).bytes(), (n - 1.0) / n * S, 1.0);
  EXPECT_LT(scatter.contention_delay_s(), 1e-3 * scatter.step_time_s());
  // Of the same S, a reduce moves more than a reduce-scatter ((n-1)/n S per edge) and less than a
  // ring all-reduce (2(n-1)/n S), whichever all-reduce algorithm the tuner picks.
  const double reduce_scatter = run(REDUCE_SCATTER).step_time_s();
  EXPECT_GT(reduce.step_time_s(), 1.2 * reduce_scatter);
  EXPECT_LT(reduce.step_time_s(), run(ALL_REDUCE).step_time_s() / 1.4);
  EXPECT_LT(reduce.step_time_s(), run(ALL_REDUCE, CollectiveAlgorithm::Auto).step_time_s());
}

// A pipeline of p stages with forward chunks of time tf and backward 2 tf, free communication.
double pipeline_bubble(Layout::Schedule schedule, int p, int v, int m) {
  std::string layout = "tp: 1 dp: 1 pp: " + std::to_string(p) + " global_batch_size: " + std::to_string(m);
  const Scenario sc = scenario_from_text(R"(
    model { num_layers: 8 hidden_size: 512 num_heads: 8 seq_length: 256 vocab_size: 1024 }
    cluster { preset: "dgx-a100-80g" num_nodes: 1 gpus_per_node: )" +
                                         std::to_string(p) + R"(
              gpu { kernel_overhead_us: 0 gemm_efficiency { m: 1 n: 1 k: 1 efficiency: 1 } } }
    layout { )" + layout + R"( }
    options { use_symmetry: false })");
  GraphBuilder b{sc, {}, {}, {}};
  const double peak = 312e12, tf = 1e-3;
  const int vs_count = p * v;
  // Per (microbatch, virtual stage, direction): the compute task and, for non-final stages, the recv
  // that feeds the next one.
  std::map<std::tuple<int, int, bool>, std::uint32_t> done;
  std::vector<std::uint32_t> last(static_cast<std::size_t>(p), ~0u);
  std::vector<std::vector<model::PipelineStep>> orders;
  for (int s = 0; s < p; ++s) orders.push_back(model::stage_order(schedule, p, v, m, s));
  // Emit stage by stage in program order; edges to inputs are added after all tasks exist.
  std::vector<std::tuple<std::uint32_t, int, int, bool>> needs;  // task, microbatch, input vs, forward
  for (int s = 0; s < p; ++s) {
    for (const auto& step : orders[static_cast<std::size_t>(s)]) {
      const int vs = step.chunk * p + s;
      const auto id = b.gemm(static_cast<std::uint32_t>(s), (step.forward ? tf : 2 * tf) / v * peak);
      if (last[static_cast<std::size_t>(s)] != ~0u) b.edges.push_back({last[static_cast<std::size_t>(s)], id});
      last[static_cast<std::size_t>(s)] = id;
      done[{step.microbatch, vs, step.forward}] = id;
      if (step.forward && vs > 0) needs.push_back({id, step.microbatch, vs - 1, true});
      if (!step.forward) needs.push_back({id, step.microbatch, vs == vs_count - 1 ? vs : vs + 1, vs != vs_count - 1 ? false : true});
    }
  }
  for (const auto& [id, mb, input_vs, forward] : needs) {
    const auto producer = done.at({mb, input_vs, forward});
    const auto producer_rank = b.tasks[producer].rank, consumer_rank = b.tasks[id].rank;
    if (producer_rank == consumer_rank) {
      b.edges.push_back({producer, id});
    } else {
      const auto recv = b.send(producer_rank, consumer_rank, 0);
      b.edges.push_back({producer, recv - 1});
      b.edges.push_back({recv, id});
    }
  }
  const double busy = m * 3 * tf;
  return (step_time(b.graph()) - busy) / busy;
}

TEST(Simulate, PipelineBubbleMatchesClosedForm) {
  EXPECT_NEAR(pipeline_bubble(Layout::GPIPE, 4, 1, 8), 3.0 / 8, 1e-6);
  EXPECT_NEAR(pipeline_bubble(Layout::ONE_F_ONE_B, 4, 1, 8), 3.0 / 8, 1e-6);
  EXPECT_NEAR(pipeline_bubble(Layout::ONE_F_ONE_B, 8, 1, 32), 7.0 / 32, 1e-6);
  EXPECT_NEAR(pipeline_bubble(Layout::INTERLEAVED_1F1B, 4, 2, 8), 3.0 / 16, 1e-6);
  EXPECT_NEAR(pipeline_bubble(Layout::INTERLEAVED_1F1B, 4, 3, 12), 3.0 / 36, 1e-6);
}

TEST(Simulate, SingleGpuStepIsTheSumOfItsComputeTasks) {
  const Scenario sc = scenario_from_text(R"(
    model { num_layers: 4 hidden_size: 1024 num_heads: 16 seq_length: 512 vocab_size: 4096 }
    cluster { preset: "dgx-a100-80g" num_nodes: 1 gpus_per_node: 1 }
    layout { micro_batch_size: 2 global_batch_size: 8 recompute: SELECTIVE })");
  const JobGraph g = model::build_job_graph(sc);
  const model::CostModel cost(sc.cluster().gpu(), sc.model().precision());
  double sum = 0;
  for (const Task& t : g.tasks()) sum += cost.duration(t);
  const auto result = simulate_in_subprocess(g);
  EXPECT_NEAR(result.report.step_time_s() / sum, 1.0, 1e-9);
  EXPECT_EQ(result.report.flows(), 0u);
  ASSERT_EQ(result.report.breakdown_size(), 1);
  EXPECT_NEAR(result.report.breakdown(0).compute_s() / sum, 1.0, 1e-9);
  EXPECT_NEAR(result.report.breakdown(0).bubble_s(), 0.0, 1e-12);
}

TEST(Simulate, SymmetryIsExact) {
  // Same step with and without the representative-rank reduction: identical predictions.
  for (const char* layout : {"tp: 8 dp: 2 pp: 1 micro_batch_size: 1 global_batch_size: 4",
                             "tp: 4 dp: 2 pp: 2 micro_batch_size: 1 global_batch_size: 8",
                             "tp: 2 dp: 4 pp: 2 micro_batch_size: 1 global_batch_size: 8 zero_stage: 1"}) {
    auto make = [&](bool symmetry) {
      return model::build_job_graph(scenario_from_text(
          std::string(R"(model { num_layers: 8 hidden_size: 512 num_heads: 8 seq_length: 256 vocab_size: 1024 }
                         cluster { preset: "dgx-a100-80g" num_nodes: 2 }
                         layout { )") + layout + " }\noptions { use_symmetry: " + (symmetry ? "true" : "false") + " }"));
    };
    const double with = step_time(make(true)), without = step_time(make(false));
    EXPECT_NEAR(with / without, 1.0, 1e-6) << layout;
  }
}

// NeMo's tp_comm_overlap: the sequence-parallel all-gather starts with the column-parallel GEMM it
// feeds and the reduce-scatter with the row-parallel GEMM it reduces; the op after each GEMM waits
// for both. The step gets shorter than with blocking collectives, never shorter than the compute.
TEST(Simulate, TensorParallelOverlapHidesCollectivesBehindTheirGemms) {
  auto make = [](bool overlap) {
    return model::build_job_graph(scenario_from_text(
        std::string(R"(model { num_layers: 4 hidden_size: 4096 num_heads: 32 seq_length: 4096 vocab_size: 32000
                                 num_query_groups: 8 activation: SWIGLU normalization: RMSNORM
                                 attention_kernel: FLASH position_embedding: ROPE add_bias_linear: false }
                       cluster { preset: "dgx-h100" num_nodes: 1 }
                       layout { tp: 8 sequence_parallel: true micro_batch_size: 1 global_batch_size: 2 tp_comm_overlap: )") +
        (overlap ? "true" : "false") + " }"));
  };
  const JobGraph blocking = make(false), overlapped = make(true);
  ASSERT_EQ(blocking.num_tasks(), overlapped.num_tasks());  // the same work, other dependencies
  // No forward column-parallel GEMM waits for an all-gather; every forward all-gather and
  // reduce-scatter is waited for by a compute task after its GEMM.
  int gathers = 0;
  for (std::uint32_t id = 0; id < overlapped.num_tasks(); ++id) {
    const Task& t = overlapped.tasks()[id];
    if (t.phase != FORWARD) continue;
    if (t.op == model::Op::Qkv || t.op == model::Op::Fc1) {
      for (auto pred : overlapped.predecessors(id))
        EXPECT_NE(overlapped.tasks()[pred].op, model::Op::SpAllGather) << overlapped.task_name(id);
    }
    if (t.op == model::Op::SpAllGather && t.layer >= 0) {
      ++gathers;
      bool waited_after_gemm = false;
      for (auto succ : overlapped.successors(id))
        waited_after_gemm |= overlapped.tasks()[succ].is_compute() && overlapped.tasks()[succ].op != model::Op::Qkv &&
                             overlapped.tasks()[succ].op != model::Op::Fc1;
      EXPECT_TRUE(waited_after_gemm) << overlapped.task_name(id);
    }
  }
  EXPECT_EQ(gathers, 2 * 4 * 2);  // two per layer, 4 layers, 2 micro-batches
  const model::CostModel cost(make(false).scenario().cluster().gpu(), BF16);
  double compute = 0;
  for (auto id : overlapped.rank_tasks(0))
    if (overlapped.tasks()[id].is_compute()) compute += cost.duration(overlapped.tasks()[id]);
  const double t_blocking = step_time(blocking), t_overlapped = step_time(overlapped);
  EXPECT_LT(t_overlapped, t_blocking * 0.99);
  EXPECT_GE(t_overlapped, compute * (1 - 1e-9));
}

// Context parallelism's ring on 2 and 4 ranks. With free links (100 TB/s, no latency) the step is the
// sum of one rank's kernels (every exchange hides behind the kernel before the step that needs it)
// plus at most the gradient reduction over dp x cp at 100 TB/s (its last bucket is exposed).
// With a slow link each forward exchange outlasts its kernel, so a layer's forward attention takes
// at least (cp - 1) x (exchange - kernel) longer, and the exchanges show on the critical path.
TEST(Simulate, ContextParallelRingClosedForms) {
  for (int cp : {2, 4}) {
    auto make = [cp](const std::string& link) {
      return model::build_job_graph(scenario_from_text(
          R"(model { num_layers: 2 hidden_size: 2048 num_heads: 16 num_query_groups: 4 ffn_hidden_size: 5632
                     seq_length: 4096 vocab_size: 32000 activation: SWIGLU normalization: RMSNORM
                     attention_kernel: FLASH position_embedding: ROPE add_bias_linear: false dropout: false
                     tied_embeddings: false }
             cluster { preset: "dgx-h100" num_nodes: 1 gpus_per_node: )" +
          std::to_string(cp) + " intra_node { " + link + R"( latency_us: 0 bandwidth_efficiency: 1 } }
             layout { cp: )" + std::to_string(cp) + " global_batch_size: 1 }"));
    };
    const JobGraph free = make("gb_per_s: 100000");
    const model::CostModel cost(free.scenario().cluster().gpu(), BF16);
    double compute = 0, kernel_fwd = 0;
    double kv = 0, gradients = 0;
    for (auto id : free.rank_tasks(0)) {
      const Task& t = free.tasks()[id];
      compute += cost.duration(t);
      if (t.stream == DP_COMM) gradients += 2.0 * static_cast<double>(t.bytes) / 1e14;  // ring all-reduce, 2S
      if (t.op == model::Op::FlashAttention && t.phase == FORWARD) kernel_fwd = cost.duration(t);
      if (t.op == model::Op::CpKvExchange) kv = static_cast<double>(t.bytes);
    }
    ASSERT_GT(kv, 0);
    const auto fast = simulate_in_subprocess(free);
    EXPECT_GE(fast.report.step_time_s(), compute * (1 - 1e-9)) << "cp " << cp;
    EXPECT_LE(fast.report.step_time_s(), compute + gradients) << "cp " << cp;
    EXPECT_LT(gradients, 1e-2 * compute);  // the bound stays tight
    // 10 GB/s: one exchange takes kv / 1e10 s, far longer than a forward kernel.
    const double exchange = kv / 10e9;
    ASSERT_GT(exchange, 4 * kernel_fwd);
    const auto slow = simulate_in_subprocess(make("gb_per_s: 10"));
    const double exposed_forward = 2 /* layers */ * (cp - 1) * (exchange - kernel_fwd);
    EXPECT_GE(slow.report.step_time_s() - fast.report.step_time_s(), exposed_forward * (1 - 1e-6)) << "cp " << cp;
    const auto& by_op = slow.report.critical_path().by_op();
    ASSERT_TRUE(by_op.count("cp_kv_exchange")) << "cp " << cp;
    EXPECT_GE(by_op.at("cp_kv_exchange"), exposed_forward * (1 - 1e-6)) << "cp " << cp;
  }
}

// The MoE dispatch / combine: an all-to-all of S bytes per member among n ranks is n (n - 1)
// concurrent flows of S / n. Inside one node each GPU's NVLink carries (n - 1) / n S; over two nodes
// each GPU's NIC carries the half of S bound for the other node (its share of the NVLink traffic is
// smaller and in parallel). Two all-to-alls at once through the same NICs take twice as long.
TEST(Simulate, AllToAllMatchesClosedFormAndContends) {
  const double S = 256e6;
  auto run = [&](int nodes, int concurrent, const std::string& extra = "") {
    const int n = 8 * nodes;
    const Scenario sc = scenario_from_text(R"(
        model { num_layers: 8 hidden_size: 512 num_heads: 8 seq_length: 256 vocab_size: 1024 num_experts: 16
                moe_top_k: 2 moe_ffn_hidden_size: 512 }
        cluster { preset: "dgx-a100-80g" num_nodes: )" + std::to_string(nodes) + " " + extra + R"( }
        layout { dp: )" + std::to_string(n) + " ep: " + std::to_string(n) + " global_batch_size: " +
                                           std::to_string(n) + R"( }
        options { use_symmetry: false })");
    GraphBuilder b{sc, {}, {}, {}};
    for (int k = 0; k < concurrent; ++k)
      for (int r = 0; r < n; ++r) {
        const auto id = b.collective(static_cast<std::uint32_t>(r), ALL_TO_ALL, GROUP_EP, static_cast<std::uint64_t>(S));
        b.tasks[id].stream = k == 0 ? DP_COMM : TP_COMM;  // two streams: the exchanges overlap
      }
    return std::pair{step_time(b.graph()), sc};
  };
  {
    const auto [t, sc] = run(1, 1);
    const auto& link = sc.cluster().intra_node();
    const double expected = 7.0 / 8 * S / (link.gb_per_s() * 1e9 * link.bandwidth_efficiency()) + link.latency_us() * 1e-6;
    EXPECT_NEAR(t / expected, 1.0, 0.02);
  }
  {
    const auto [t, sc] = run(2, 1);
    const auto& c = sc.cluster();
    const double nic = c.nic_gbit_per_s() / 8 * 1e9 * c.nic_bandwidth_efficiency();
    const double expected = S / 2 / nic + c.nic_latency_us() * 1e-6;
    EXPECT_NEAR(t / expected, 1.0, 0.02);
    EXPECT_NEAR(run(2, 2).first / t, 2.0, 0.05);
  }
}

// NCCL's all-to-all with PXN on a rail-optimised fabric: a piece for a GPU of another node on
// another rail crosses NVLink to the local GPU on the destination's rail and leaves on that rail, so
// no piece climbs to the spine. Oversubscribing the spine 8:1 leaves the exchange's time unchanged
// (a direct GPU-to-GPU exchange would send 7/8 of the inter-node bytes through it), and over four
// nodes each NIC still carries (n - 8) / n of S: 3/4 S.
TEST(Simulate, AllToAllStaysOnTheRails) {
  const double S = 256e6;
  auto run = [&](int nodes, double oversubscription) {
    const int n = 8 * nodes;
    std::ostringstream text;
    text << R"(model { num_layers: 8 hidden_size: 512 num_heads: 8 seq_length: 256 vocab_size: 1024 num_experts: 32
                       moe_top_k: 2 moe_ffn_hidden_size: 512 }
               cluster { preset: "dgx-h100" num_nodes: )"
         << nodes << " inter_node { kind: RAIL_OPTIMIZED oversubscription: " << oversubscription << R"( } }
               layout { dp: )" << n << " ep: " << n << " global_batch_size: " << n << R"( }
               options { use_symmetry: false })";
    const Scenario sc = scenario_from_text(text.str());
    GraphBuilder b{sc, {}, {}, {}};
    for (int r = 0; r < n; ++r) b.collective(static_cast<std::uint32_t>(r), ALL_TO_ALL, GROUP_EP, static_cast<std::uint64_t>(S));
    return std::pair{step_time(b.graph()), sc};
  };
  const auto [flat, sc] = run(2, 1);
  EXPECT_NEAR(run(2, 8).first / flat, 1.0, 1e-6);
  const auto [four, sc4] = run(4, 1);
  const auto& c = sc4.cluster();
  const double nic = c.nic_gbit_per_s() / 8 * 1e9 * c.nic_bandwidth_efficiency();
  EXPECT_NEAR(four / (0.75 * S / nic), 1.0, 0.02);
}

// layout.moe_a2a_overlap on an all-to-all-bound layout (ep 16 over two nodes, 2 x 2 interleaved
// stages): the merged steps hide part of the all-to-alls behind the other micro-batch's compute, so
// the step is shorter, with the same FLOPs.
TEST(Simulate, MoeAllToAllOverlapHidesCommunication) {
  const std::string base = R"(model { num_layers: 8 hidden_size: 2048 num_heads: 16 num_query_groups: 4 seq_length: 4096
      vocab_size: 4096 activation: SWIGLU normalization: RMSNORM attention_kernel: FLASH position_embedding: ROPE
      add_bias_linear: false dropout: false tied_embeddings: false num_experts: 32 moe_top_k: 4 moe_ffn_hidden_size: 1024 }
      cluster { preset: "dgx-h100" num_nodes: 4 }
      layout { pp: 2 dp: 16 virtual_stages: 2 schedule: INTERLEAVED_1F1B ep: 16 global_batch_size: 128 )";
  const auto plain = simulate_in_subprocess(model::build_job_graph(scenario_from_text(base + "}"))).report;
  const auto merged =
      simulate_in_subprocess(model::build_job_graph(scenario_from_text(base + "moe_a2a_overlap: true }"))).report;
  EXPECT_LT(merged.step_time_s(), 0.9 * plain.step_time_s());
  EXPECT_NEAR(merged.hardware_flops() / plain.hardware_flops(), 1.0, 1e-12);
  double plain_compute = 0, merged_compute = 0;
  for (const auto& b : plain.breakdown()) plain_compute += b.compute_s();
  for (const auto& b : merged.breakdown()) merged_compute += b.compute_s();
  // The same work; the GEMMs beside an all-to-all run on the SMs NCCL's kernels leave, so the
  // compute takes longer, at most by the SM ratio.
  const double sms = 132;  // H100 SXM5
  EXPECT_GT(merged_compute, plain_compute);
  EXPECT_LT(merged_compute, plain_compute * sms / (sms - model::kEpOverlapCommSms));
}

// The two dispatchers' traffic per rank and pass: the all-to-all sends top_k x (ep - 1) / ep of its
// tokens, the all-gather receives (ep - 1) x its tokens. With top_k 8 over ep 4 the all-gather moves
// half as much (the routing it gathers too adds 2%); with top_k 2 over ep 8 the all-to-all moves a
// quarter as much (in time at least half: its flows' latency and NVSwitch sharing weigh more on
// the smaller exchange). Measured on the dispatch and combine time of the critical path, and the step.
TEST(Simulate, AllGatherDispatcherWinsWhenTopKExceedsEp) {
  struct Run {
    double step, exchange;
  };
  auto run = [](int top_k, int ep, const char* dispatcher) {
    const std::string text = std::string(R"(model { num_layers: 2 hidden_size: 4096 num_heads: 8 num_query_groups: 4
        seq_length: 2048 vocab_size: 4096 activation: SWIGLU normalization: RMSNORM attention_kernel: FLASH
        position_embedding: ROPE add_bias_linear: false dropout: false tied_embeddings: false num_experts: 32
        moe_ffn_hidden_size: 128 moe_top_k: )") + std::to_string(top_k) + R"( }
        cluster { preset: "dgx-h100" num_nodes: 2 }
        layout { dp: 16 global_batch_size: 16 ep: )" + std::to_string(ep) + " moe_dispatcher: " + dispatcher + " }";
    const Report r = simulate_in_subprocess(model::build_job_graph(scenario_from_text(text))).report;
    double exchange = 0;
    for (const auto& [op, t] : r.critical_path().by_op())
      if (op == "moe_dispatch" || op == "moe_combine") exchange += t;
    return Run{r.step_time_s(), exchange};
  };
  const Run a2a8 = run(8, 4, "ALLTOALL"), ag8 = run(8, 4, "ALLGATHER");
  EXPECT_NEAR(ag8.exchange / a2a8.exchange, 0.5, 0.1);
  EXPECT_LT(ag8.step, a2a8.step);
  const Run a2a2 = run(2, 8, "ALLTOALL"), ag2 = run(2, 8, "ALLGATHER");
  EXPECT_GT(ag2.exchange / a2a2.exchange, 2.0);
  EXPECT_LT(a2a2.step, ag2.step);
}

TEST(Simulate, UnmatchedCollectiveIsReportedAsDeadlock) {
  const Scenario sc = cluster_scenario(2, "tp: 8 dp: 2 global_batch_size: 2");
  GraphBuilder b{sc, {}, {}, {}};
  b.collective(0, ALL_REDUCE, GROUP_DP, 1000);  // rank 8, its peer, never joins
  b.gemm(8, 1e9);
  try {
    simulate_in_subprocess(b.graph());
    FAIL() << "a collective missing a participant must not pass silently";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("deadlocked"), std::string::npos) << e.what();
  }
}

TEST(Simulate, ReportIsConsistent) {
  const JobGraph g = model::build_job_graph(scenario_from_text(R"(
    model { num_layers: 8 hidden_size: 1024 num_heads: 16 seq_length: 512 vocab_size: 4096 }
    cluster { preset: "dgx-a100-80g" num_nodes: 2 }
    layout { tp: 4 pp: 2 dp: 2 micro_batch_size: 1 global_batch_size: 16 })"));
  const auto r = simulate_in_subprocess(g).report;
  const double step = r.step_time_s();
  ASSERT_GT(step, 0);
  for (const auto& b : r.breakdown()) {
    // Compute, exposed communication, bubble and idle partition the step.
    EXPECT_NEAR((b.compute_s() + b.exposed_comm_s() + b.bubble_s() + b.idle_s()) / step, 1.0, 1e-6) << b.rank();
    EXPECT_GT(b.bubble_s(), 0);  // 2 stages, 8 micro-batches: (p-1)/m of bubble
  }
  EXPECT_NEAR(r.critical_path().compute_s() + r.critical_path().comm_s() + r.critical_path().wait_s(), step, 1e-6 * step);
  EXPECT_NEAR(r.mfu(), r.model_flops() / (16 * step * 312e12), 1e-9);
  EXPECT_GT(r.links_size(), 0);
  EXPECT_GE(r.links(0).utilisation(), r.links(r.links_size() - 1).utilisation());
}

}  // namespace
}  // namespace parallax::sim
