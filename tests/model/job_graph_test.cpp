// The job graph's structure: DAG, stream order, pipeline pairing, TP/DP collectives, GEMM shapes,
// exact symmetry, and the plan file round trip.
#include "parallax/model/job_graph.h"
#include "parallax/model/memory_model.h"
#include "parallax/model/parameters.h"
#include "parallax/traces/io.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>

namespace parallax::model {
namespace {

using parallax::testing::scenario_from_text;
using parallax::testing::small_scenario_text;

const char* kLayouts[] = {
    "dp: 2 tp: 2 pp: 2 micro_batch_size: 1 global_batch_size: 8",
    "dp: 1 tp: 2 pp: 4 micro_batch_size: 1 global_batch_size: 8 schedule: GPIPE",
    "dp: 1 tp: 2 pp: 4 virtual_stages: 2 schedule: INTERLEAVED_1F1B micro_batch_size: 1 global_batch_size: 8",
    "dp: 2 tp: 4 pp: 1 sequence_parallel: true recompute: SELECTIVE micro_batch_size: 2 global_batch_size: 8",
    "dp: 4 tp: 1 pp: 2 recompute: FULL zero_stage: 1 micro_batch_size: 1 global_batch_size: 8",
    "dp: 4 tp: 2 pp: 1 zero_stage: 2 micro_batch_size: 1 global_batch_size: 8",
    "dp: 8 tp: 1 pp: 1 zero_stage: 3 recompute: FULL micro_batch_size: 1 global_batch_size: 16",
    "dp: 2 tp: 2 pp: 2 overlap_grad_reduce: false overlap_param_gather: false overlap_p2p: false zero_stage: 1 "
    "micro_batch_size: 1 global_batch_size: 8",
};

class GraphLayoutTest : public ::testing::TestWithParam<const char*> {
 protected:
  Scenario scenario(bool symmetry = true) const {
    return scenario_from_text(small_scenario_text(GetParam(), 1,
                                                  std::string("options { use_symmetry: ") + (symmetry ? "true" : "false") + " }"));
  }
};

TEST_P(GraphLayoutTest, IsADagWithStreamOrder) {
  const JobGraph g = build_job_graph(scenario());
  const auto order = g.topological_order();
  ASSERT_EQ(order.size(), g.num_tasks());
  std::vector<std::size_t> position(g.num_tasks());
  for (std::size_t i = 0; i < order.size(); ++i) position[order[i]] = i;
  for (std::uint32_t v = 0; v < g.num_tasks(); ++v)
    for (auto w : g.successors(v)) EXPECT_LT(position[v], position[w]);
  // On each rank, consecutive tasks of one stream are joined by an edge (pipeline recvs excepted:
  // they are posted ahead).
  for (std::size_t r = 0; r < g.ranks().size(); ++r) {
    std::map<int, std::uint32_t> last;
    for (auto id : g.rank_tasks(r)) {
      const Task& t = g.tasks()[id];
      if (t.kind == RECV) continue;
      if (auto it = last.find(t.stream); it != last.end()) {
        const auto succ = g.successors(it->second);
        EXPECT_TRUE(std::find(succ.begin(), succ.end(), id) != succ.end())
            << g.task_name(it->second) << " -> " << g.task_name(id);
      }
      last[t.stream] = id;
    }
  }
}

TEST_P(GraphLayoutTest, PipelineTransfersPairUp) {
  const JobGraph g = build_job_graph(scenario());
  const Dims d = dims(g.scenario());
  std::size_t sends = 0, recvs = 0;
  for (std::uint32_t id = 0; id < g.num_tasks(); ++id) {
    const Task& t = g.tasks()[id];
    if (t.kind == SEND) ++sends;
    if (t.kind != RECV) continue;
    ++recvs;
    const auto preds = g.predecessors(id);
    ASSERT_EQ(preds.size(), 1u) << g.task_name(id);
    const Task& s = g.tasks()[preds[0]];
    EXPECT_EQ(s.kind, SEND);
    EXPECT_EQ(s.peer, static_cast<std::int32_t>(t.rank));
    EXPECT_EQ(t.peer, static_cast<std::int32_t>(s.rank));
    EXPECT_EQ(s.microbatch, t.microbatch);
    EXPECT_EQ(s.bytes, t.bytes);
  }
  // Each micro-batch crosses p*v - 1 stage boundaries forward and as many backward.
  EXPECT_EQ(sends, static_cast<std::size_t>(2 * d.m * (d.p * d.v - 1)));
  EXPECT_EQ(recvs, sends);
}

TEST_P(GraphLayoutTest, SymmetryIsExact) {
  const JobGraph sym = build_job_graph(scenario(true));
  const JobGraph full = build_job_graph(scenario(false));
  EXPECT_EQ(sym.expanded_tasks(), full.num_tasks());
  EXPECT_EQ(sym.expanded_edges(), full.num_edges());
  EXPECT_DOUBLE_EQ(sym.hardware_flops(), full.hardware_flops());
  // Every rank's task list equals its stage representative's, op by op.
  std::map<int, std::size_t> representative_of_stage;
  for (std::size_t r = 0; r < sym.ranks().size(); ++r) representative_of_stage[sym.ranks()[r].pp_stage] = r;
  for (std::size_t r = 0; r < full.ranks().size(); ++r) {
    const auto rep = representative_of_stage.at(full.ranks()[r].pp_stage);
    const auto a = sym.rank_tasks(rep);
    const auto b = full.rank_tasks(r);
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      const Task& x = sym.tasks()[a[i]];
      const Task& y = full.tasks()[b[i]];
      ASSERT_EQ(x.op, y.op);
      ASSERT_EQ(x.kind, y.kind);
      ASSERT_EQ(x.bytes, y.bytes);
      ASSERT_EQ(x.flops, y.flops);
    }
  }
}

TEST_P(GraphLayoutTest, DataParallelSyncCoversEveryGradient) {
  const Scenario sc = scenario();
  const JobGraph g = build_job_graph(sc);
  const Dims d = dims(sc);
  if (d.d == 1) GTEST_SKIP() << "no data parallelism";
  const int zero = sc.layout().zero_stage();
  for (std::size_t r = 0; r < g.ranks().size(); ++r) {
    const double params = stage_parameters(d, true, g.ranks()[r].pp_stage, d.L / d.p).local();
    double reduced = 0, gathered = 0;
    for (auto id : g.rank_tasks(r)) {
      const Task& t = g.tasks()[id];
      if (t.group != GROUP_DP) continue;
      if (t.op == Op::DpGradAllReduce || t.op == Op::DpGradReduceScatter) reduced += static_cast<double>(t.bytes);
      if (t.op == Op::DpParamAllGather) gathered += static_cast<double>(t.bytes);
    }
    // bf16 gradients: 2 bytes per parameter, once per step (ZeRO-2/3: once per micro-batch).
    const double per_pass = params * 2;
    const double passes = zero >= 2 ? static_cast<double>(d.m) : 1.0;
    EXPECT_NEAR(reduced / (per_pass * passes), 1.0, 1e-6) << "rank " << g.ranks()[r].rank;
    if (zero == 1 || zero == 2) {
      EXPECT_NEAR(gathered / (params * 2), 1.0, 1e-6);
    }
    if (zero == 0) {
      EXPECT_EQ(gathered, 0.0);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, GraphLayoutTest, ::testing::ValuesIn(kLayouts));

TEST(JobGraph, LayerGemmShapesFollowDesign) {
  // b 2, s 256, h 512, a 8, t 4: QKV (bs, 3h/t, h), scores a/t*b batched (s, s, h/a), ...
  const Scenario sc = scenario_from_text(small_scenario_text("dp: 2 tp: 4 pp: 1 micro_batch_size: 2 global_batch_size: 4"));
  const JobGraph g = build_job_graph(sc);
  std::map<std::string, std::tuple<std::uint32_t, std::uint32_t, std::uint32_t, std::uint32_t>> shapes;
  for (const Task& t : g.tasks())
    if (t.kind == GEMM && t.layer == 0 && t.microbatch == 0)
      shapes[std::string(op_name(t.op)) + (t.role == GemmRole::InputGrad ? ".dgrad" : t.role == GemmRole::WeightGrad ? ".wgrad" : "")] =
          {t.gemm_m, t.gemm_n, t.gemm_k, t.gemm_batch};
  using S = std::tuple<std::uint32_t, std::uint32_t, std::uint32_t, std::uint32_t>;
  EXPECT_EQ(shapes["qkv"], S(512, 384, 512, 1));
  EXPECT_EQ(shapes["attn_scores"], S(256, 256, 64, 4));
  EXPECT_EQ(shapes["attn_context"], S(256, 64, 256, 4));
  EXPECT_EQ(shapes["attn_proj"], S(512, 512, 128, 1));
  EXPECT_EQ(shapes["fc1"], S(512, 512, 512, 1));
  EXPECT_EQ(shapes["fc2"], S(512, 512, 512, 1));
  EXPECT_EQ(shapes["qkv.dgrad"], S(512, 512, 384, 1));
  EXPECT_EQ(shapes["qkv.wgrad"], S(512, 384, 512, 1));
  EXPECT_EQ(shapes["attn_proj.dgrad"], S(512, 128, 512, 1));
  EXPECT_EQ(shapes["attn_proj.wgrad"], S(128, 512, 512, 1));
}

TEST(JobGraph, TensorParallelCollectivesPerLayer) {
  auto count = [](const char* layout) {
    const JobGraph g = build_job_graph(scenario_from_text(small_scenario_text(layout)));
    std::map<std::pair<int, int>, int> n;  // (phase, collective) -> count in layer 0, micro-batch 0
    for (const Task& t : g.tasks())
      if (t.kind == COLLECTIVE && t.group == GROUP_TP && t.layer == 0 && t.microbatch == 0) ++n[{t.phase, t.collective}];
    return n;
  };
  // Megatron TP: 2 all-reduces forward, 2 backward per layer.
  auto tp = count("dp: 1 tp: 8 pp: 1 micro_batch_size: 1 global_batch_size: 2");
  EXPECT_EQ((tp[{FORWARD, ALL_REDUCE}]), 2);
  EXPECT_EQ((tp[{BACKWARD, ALL_REDUCE}]), 2);
  // Sequence parallel: each becomes all-gather + reduce-scatter; backward re-gathers the inputs of
  // the QKV and FC1 weight gradients.
  auto sp = count("dp: 1 tp: 8 pp: 1 sequence_parallel: true micro_batch_size: 1 global_batch_size: 2");
  EXPECT_EQ((sp[{FORWARD, ALL_GATHER}]), 2);
  EXPECT_EQ((sp[{FORWARD, REDUCE_SCATTER}]), 2);
  EXPECT_EQ((sp[{BACKWARD, ALL_GATHER}]), 4);
  EXPECT_EQ((sp[{BACKWARD, REDUCE_SCATTER}]), 2);
  // Full recompute repeats the forward's collectives.
  auto full = count("dp: 1 tp: 8 pp: 1 recompute: FULL micro_batch_size: 1 global_batch_size: 2");
  EXPECT_EQ((full[{RECOMPUTE_FORWARD, ALL_REDUCE}]), 2);
}

TEST(JobGraph, TiedEmbeddingGradientsAreSummedAcrossFirstAndLastStage) {
  const JobGraph g = build_job_graph(scenario_from_text(small_scenario_text("dp: 2 tp: 1 pp: 4 micro_batch_size: 1 global_batch_size: 4")));
  std::set<std::int32_t> stages;
  for (std::size_t r = 0; r < g.ranks().size(); ++r)
    for (auto id : g.rank_tasks(r))
      if (g.tasks()[id].op == Op::EmbeddingGradAllReduce) stages.insert(g.ranks()[r].pp_stage);
  EXPECT_EQ(stages, (std::set<std::int32_t>{0, 3}));
}

TEST(JobGraph, OverlappedBucketsStartBeforeBackwardEnds) {
  const JobGraph g = build_job_graph(scenario_from_text(small_scenario_text(
      "dp: 8 tp: 1 pp: 1 micro_batch_size: 1 global_batch_size: 16 grad_bucket_mb: 2")));
  // With small buckets, the first bucket depends on a layer's backward, not on the embedding's (the
  // last backward task), so communication can overlap the rest of the backward pass.
  int buckets = 0, early = 0;
  for (std::uint32_t id = 0; id < g.num_tasks(); ++id) {
    if (g.tasks()[id].op != Op::DpGradAllReduce) continue;
    ++buckets;
    for (auto p : g.predecessors(id))
      if (g.tasks()[p].kind != COLLECTIVE && g.tasks()[p].op != Op::Embedding) ++early;
  }
  EXPECT_GT(buckets, 2);
  EXPECT_GE(early, buckets - 1);
}

TEST(JobGraph, ZeroThreePrefetchesTheNextLayerAheadOfTheReduceScatter) {
  // FSDP's BACKWARD_PRE prefetch: on the one DP stream, layer l-1's parameter gather comes before
  // layer l's gradient reduce-scatter and waits only for the compute before layer l's backward, so it
  // overlaps layer l's backward. Layer l-1's backward then waits for that gather.
  const JobGraph g = build_job_graph(scenario_from_text(
      small_scenario_text("dp: 8 tp: 1 pp: 1 zero_stage: 3 micro_batch_size: 1 global_batch_size: 8")));
  const Dims d = dims(g.scenario());
  ASSERT_GE(d.L, 3);
  int checked = 0;
  std::int32_t previous_layer = -100;
  std::uint32_t previous_id = 0;
  for (auto id : g.rank_tasks(0)) {
    const Task& t = g.tasks()[id];
    if (t.stream != DP_COMM || t.phase == FORWARD) continue;
    if (t.op == Op::DpGradReduceScatter && t.layer >= 1 && t.layer < d.L) {
      // The task just before this reduce-scatter on the stream is the gather of the layer below.
      ASSERT_EQ(g.tasks()[previous_id].op, Op::DpParamAllGather) << g.task_name(id);
      EXPECT_EQ(previous_layer, t.layer - 1) << g.task_name(id);
      for (auto p : g.predecessors(previous_id)) {
        const Task& pred = g.tasks()[p];
        // On the stream it follows the reduce-scatter of the layer above (l+1), never its own layer's.
        if (pred.op == Op::DpGradReduceScatter) {
          EXPECT_GT(pred.layer, t.layer) << "the prefetch waits for this layer's reduce-scatter";
        }
        if (pred.is_compute() && pred.layer >= 0) {
          EXPECT_GT(pred.layer, t.layer - 1) << "the prefetch waits for its own layer's compute";
        }
      }
      ++checked;
    }
    previous_layer = t.layer;
    previous_id = id;
  }
  EXPECT_EQ(checked, static_cast<int>((d.L - 1) * d.m));
}

// FSDP2's reshard_after_forward False: each layer's parameters are gathered once per micro-batch (in
// its forward) and kept for its backward, which gathers nothing; memory holds the stage's gathered
// layers meanwhile instead of two.
TEST(JobGraph, ZeroThreeWithoutReshardingGathersOncePerLayer) {
  auto make = [](bool reshard) {
    return scenario_from_text(small_scenario_text(std::string("dp: 8 tp: 1 pp: 1 zero_stage: 3 micro_batch_size: 1 "
                                                              "global_batch_size: 16 recompute: FULL reshard_after_forward: ") +
                                                  (reshard ? "true" : "false")));
  };
  auto gathers = [](const JobGraph& g) {
    std::map<Phase, int> n;
    for (auto id : g.rank_tasks(0))
      if (g.tasks()[id].op == Op::DpParamAllGather) ++n[g.tasks()[id].phase];
    return n;
  };
  const Scenario resharded = make(true), kept = make(false);
  const Dims d = dims(kept);
  const auto with = gathers(build_job_graph(resharded)), without = gathers(build_job_graph(kept));
  EXPECT_EQ(with.at(FORWARD), d.L * d.m);
  EXPECT_EQ(with.at(RECOMPUTE_FORWARD), d.L * d.m);  // full recompute gathers again before the backward
  EXPECT_EQ(without.at(FORWARD), d.L * d.m);
  EXPECT_EQ(without.count(RECOMPUTE_FORWARD) + without.count(BACKWARD), 0u);
  const double layer_bytes = layer_parameters(d).local() * d.e;
  EXPECT_NEAR(estimate_memory(kept).stages[0].transient - estimate_memory(resharded).stages[0].transient,
              (d.L - 2) * layer_bytes, 1.0);
}

TEST(JobGraph, ParameterGathersAtTheStartComeInForwardOrder) {
  // ZeRO-1 with overlap_param_gather and interleaving: chunk 0's buckets are gathered first (its
  // layers run first), and each bucket's first forward waits for its gather.
  const JobGraph g = build_job_graph(scenario_from_text(small_scenario_text(
      "dp: 4 tp: 1 pp: 2 virtual_stages: 2 schedule: INTERLEAVED_1F1B zero_stage: 1 micro_batch_size: 1 "
      "global_batch_size: 16 grad_bucket_mb: 1")));
  for (std::size_t r = 0; r < g.ranks().size(); ++r) {
    std::vector<std::int32_t> first_layer_of_gather;  // per gather, the lowest layer waiting for it
    for (auto id : g.rank_tasks(r)) {
      const Task& t = g.tasks()[id];
      if (t.op != Op::DpParamAllGather || t.phase != FORWARD) continue;
      // Forward position: the embedding (-1) before layer 0, the output layer (-2) after the last.
      std::int32_t lowest = 1 << 20;
      for (auto s : g.successors(id))
        if (const Task& c = g.tasks()[s]; c.is_compute()) lowest = std::min<std::int32_t>(lowest, c.layer == -2 ? 1 << 19 : c.layer);
      first_layer_of_gather.push_back(lowest);
    }
    ASSERT_GT(first_layer_of_gather.size(), 2u);
    EXPECT_TRUE(std::is_sorted(first_layer_of_gather.begin(), first_layer_of_gather.end()))
        << "rank " << g.ranks()[r].rank;
  }
}

TEST(JobGraph, PlanFileRoundTrip) {
  const JobGraph g = build_job_graph(scenario_from_text(small_scenario_text(
      "dp: 2 tp: 2 pp: 2 virtual_stages: 2 schedule: INTERLEAVED_1F1B micro_batch_size: 1 global_batch_size: 8")));
  const testing::TempDir dir;
  const auto path = dir / "plan.pb";
  traces::write_binary(path, g.to_proto());
  parallax::JobGraph proto;
  traces::read_binary(path, proto);
  const JobGraph back = JobGraph::from_proto(proto);
  ASSERT_EQ(back.num_tasks(), g.num_tasks());
  ASSERT_EQ(back.num_edges(), g.num_edges());
  for (std::uint32_t id = 0; id < g.num_tasks(); ++id) {
    EXPECT_EQ(back.task_name(id), g.task_name(id));
    EXPECT_EQ(back.tasks()[id].bytes, g.tasks()[id].bytes);
    EXPECT_EQ(back.tasks()[id].flops, g.tasks()[id].flops);
    EXPECT_EQ(back.tasks()[id].gemm_k, g.tasks()[id].gemm_k);
    EXPECT_EQ(back.successors(id), g.successors(id));
  }
  for (std::size_t r = 0; r < g.ranks().size(); ++r)
    EXPECT_TRUE(std::equal(back.rank_tasks(r).begin(), back.rank_tasks(r).end(), g.rank_tasks(r).begin(),
                           g.rank_tasks(r).end()));
  EXPECT_EQ(back.scenario().SerializeAsString(), g.scenario().SerializeAsString());
}

TEST(JobGraph, CorruptPlanIsRejected) {
  parallax::JobGraph proto = build_job_graph(scenario_from_text(small_scenario_text(
      "dp: 4 tp: 1 pp: 2 micro_batch_size: 1 global_batch_size: 4"))).to_proto();
  proto.set_edge_dst(0, 1u << 30);
  EXPECT_THROW(JobGraph::from_proto(proto), InputError);
}

TEST(JobGraph, Gpt3OnThousandGpusStoresOneRankPerStage) {
  const JobGraph g = build_job_graph(model::load_scenario(parallax::testing::scenarios_dir() / "gpt3-175b-1024gpu.pbtxt"));
  EXPECT_EQ(g.ranks().size(), 16u);
  EXPECT_LT(g.num_tasks(), 1'100'000u);
  EXPECT_EQ(g.expanded_tasks(), g.num_tasks() * 64);
}

}  // namespace
}  // namespace parallax::model
