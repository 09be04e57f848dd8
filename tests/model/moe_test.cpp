// Mixture of Experts in the model: the published parameter counts (total and activated), Megatron's
// expert grid folded into tp x cp x dp, the MoE layer's tasks (router, permutation, dispatch and
// combine all-to-alls on the ep group, grouped expert GEMMs with balanced or skewed routing),
// expert gradients over expert dp, the memory of expert shards, and the refusals.
#include "parallax/model/cost_model.h"
#include "parallax/model/job_graph.h"
#include "parallax/model/job_size.h"
#include "parallax/model/layer.h"
#include "parallax/model/memory_model.h"
#include "parallax/model/parameters.h"
#include "parallax/model/presets.h"
#include "parallax/model/rank_grid.h"
#include "parallax/traces/lanes.h"
#include "test_support.h"

#include <gmock/gmock.h>
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

namespace parallax::model {
namespace {

using ::testing::HasSubstr;
using parallax::testing::input_error;
using parallax::testing::scenario_from_text;

Dims preset_dims(const std::string& preset, const std::string& layout = "global_batch_size: 1") {
  Scenario sc;
  *sc.mutable_model() = load_model(preset);
  google::protobuf::TextFormat::ParseFromString(layout, sc.mutable_layout());
  return dims(sc);
}

struct PublishedMoe {
  const char* preset;
  double total, activated, tolerance, activated_tolerance;
  // Whether the publisher's activated count includes the input embedding table. parallax counts it
  // (activated_parameters: every weight of a layer a token passes through); DeepSeek and OpenAI leave
  // it out (a token reads one row of it) and count the output layer: their 37B and 5.13B.
  bool counts_input_embedding = true;
};

class PublishedMoeParameters : public ::testing::TestWithParam<PublishedMoe> {};

TEST_P(PublishedMoeParameters, TotalAndActivated) {
  const auto p = GetParam();
  const Dims d = preset_dims(p.preset);
  const bool tied = load_model(p.preset).tied_embeddings();
  EXPECT_NEAR(total_parameters(d, tied) / p.total, 1.0, p.tolerance) << total_parameters(d, tied);
  const double input_embedding = p.counts_input_embedding ? 0.0 : static_cast<double>(padded_vocab(d) * d.h);
  const double activated = activated_parameters(d, tied) - input_embedding;
  EXPECT_NEAR(activated / p.activated, 1.0, p.activated_tolerance) << activated;
  // The count does not depend on how the experts are split.
  const Dims split = preset_dims(p.preset, "ep: 8 dp: 8 global_batch_size: 8");
  EXPECT_NEAR(total_parameters(split, tied) / total_parameters(d, tied), 1.0, 1e-12);
}

// Mixtral: Jiang et al. 2024 (46.7B / 12.9B); Mistral AI (141B / 39B). Qwen3 technical report
// (235B / 22B, 30.5B / 3.3B): the activated counts are given to two digits (22.2B and 3.35B by the
// configs), so within half their last digit (3.35B rounds to 3.3B: 2% there). Grok-1: xAI's 314B, within 1% (the released config
// gives 315.7B), "25% of the weights active" within 10%. DeepSeek-V3: the technical report's 671B
// (without the multi-token-prediction module) and 37B, to half its last digit. GPT-OSS-120B: OpenAI's
// model card, 116.83B total and 5.13B active.
INSTANTIATE_TEST_SUITE_P(Models, PublishedMoeParameters,
                         ::testing::Values(PublishedMoe{"mixtral-8x7b", 46.7e9, 12.9e9, 0.005, 0.005},
                                           PublishedMoe{"mixtral-8x22b", 141e9, 39e9, 0.005, 0.005},
                                           PublishedMoe{"qwen3-235b-a22b", 235e9, 22e9, 0.005, 0.5 / 22},
                                           PublishedMoe{"qwen3-30b-a3b", 30.5e9, 3.3e9, 0.005, 0.02},
                                           PublishedMoe{"grok-1", 314e9, 314e9 * 0.25, 0.01, 0.1},
                                           PublishedMoe{"deepseek-v3", 671e9, 37e9, 0.005, 0.5 / 37, false},
                                           PublishedMoe{"gpt-oss-120b", 116.83e9, 5.13e9, 0.005, 0.005, false}),
                         [](const auto& info) {
                           std::string name = info.param.preset;
                           for (char& c : name)
                             if (c == '-' || c == '.') c = '_';
                           return name;
                         });

// Megatron's expert grid: within a stage the tp x cp x dp ranks in rank order regrouped as ep
// (fastest) x expert dp; ep does not multiply the GPU count.
TEST(MoeGrid, ExpertGroupsFoldIntoTheStage) {
  const RankGrid grid(GridCoords{2, 1, 1, 4, 2}, kDefaultRankOrder, ExpertGrid{4, 1});  // tp 2, dp 4, pp 2, ep 4
  EXPECT_EQ(grid.size(), 16u);
  EXPECT_EQ(grid.expert_parallel(), 4);
  EXPECT_EQ(grid.expert_data_parallel(), 2);
  EXPECT_EQ(grid.members(GROUP_EP, 5), (std::vector<std::uint32_t>{4, 5, 6, 7}));
  EXPECT_EQ(grid.members(GROUP_EP, 9), (std::vector<std::uint32_t>{8, 9, 10, 11}));  // stage 1
  EXPECT_EQ(grid.members(GROUP_EXPERT_DP, 5), (std::vector<std::uint32_t>{1, 5}));
  EXPECT_EQ(grid.members(GROUP_EXPERT_DP, 14), (std::vector<std::uint32_t>{10, 14}));
  EXPECT_TRUE(grid.has_group(GROUP_EP));
  EXPECT_TRUE(grid.has_group(GROUP_EXPERT_DP));
  // With pp fastest the stage's ranks are strided, and the groups follow them.
  const RankGrid pp_first(GridCoords{1, 1, 1, 4, 2}, *parse_rank_order("pp-tp-cp-ep-dp"), ExpertGrid{2, 1});
  EXPECT_EQ(pp_first.members(GROUP_EP, 0), (std::vector<std::uint32_t>{0, 2}));
  EXPECT_EQ(pp_first.members(GROUP_EP, 5), (std::vector<std::uint32_t>{5, 7}));
  EXPECT_EQ(pp_first.members(GROUP_EXPERT_DP, 1), (std::vector<std::uint32_t>{1, 5}));
  // The scenario's grid: ep 8 inside dp 8 of 8 GPUs.
  const Scenario sc = scenario_from_text(R"(model { num_layers: 2 hidden_size: 512 num_heads: 8 seq_length: 512
      vocab_size: 1000 num_experts: 8 moe_top_k: 2 moe_ffn_hidden_size: 1024 activation: SWIGLU
      attention_kernel: FLASH normalization: RMSNORM position_embedding: ROPE add_bias_linear: false dropout: false }
      cluster { preset: "dgx-h100" num_nodes: 1 } layout { dp: 8 ep: 8 global_batch_size: 8 })");
  EXPECT_EQ(rank_grid(sc).members(GROUP_EP, 3).size(), 8u);
  EXPECT_FALSE(rank_grid(sc).has_group(GROUP_EXPERT_DP));
}

// A small Mixtral-like model on two DGX H100 nodes: 8 experts, top 2, FFN 1024 per expert.
// `model_extra` fields replace the defaults of the same name.
std::string moe_scenario(const std::string& layout, const std::string& model_extra = "", int nodes = 2) {
  std::string model = R"(num_layers: 4 hidden_size: 1024 num_heads: 8 num_query_groups: 4 seq_length: 2048
      vocab_size: 4096 activation: SWIGLU normalization: RMSNORM attention_kernel: FLASH
      position_embedding: ROPE add_bias_linear: false dropout: false tied_embeddings: false )" + model_extra;
  for (const auto& [field, value] : std::vector<std::pair<std::string, std::string>>{
           {"num_experts", "8"}, {"moe_top_k", "2"}, {"moe_ffn_hidden_size", "1024"}})
    if (model_extra.find(field + ":") == std::string::npos) model += " " + field + ": " + value;
  return "model { " + model + " }\ncluster { preset: \"dgx-h100\" num_nodes: " + std::to_string(nodes) +
         " }\nlayout { " + layout + " }";
}

std::vector<const Task*> tasks_of(const JobGraph& g, Op op, Phase phase, std::int32_t layer) {
  std::vector<const Task*> out;
  for (const Task& t : g.tasks())
    if (t.op == op && t.phase == phase && t.layer == layer && t.microbatch == 0 && t.rank == g.tasks()[0].rank)
      out.push_back(&t);
  return out;
}

TEST(MoeLayer, BalancedRoutingGivesEachExpertTokensTimesTopKOverExperts) {
  // 16 GPUs, dp 16, ep 8: each rank routes 2048 tokens, 2 copies each, 8 experts over 8 ranks.
  const Scenario sc = scenario_from_text(moe_scenario("dp: 16 ep: 8 global_batch_size: 16"));
  const JobGraph g = build_job_graph(sc);
  const auto fc1 = tasks_of(g, Op::ExpertFc1, FORWARD, 0);
  ASSERT_EQ(fc1.size(), 1u);
  // tokens x top_k x ep / experts = 2048 x 2 x 8 / 8 per expert, one local expert.
  EXPECT_EQ(fc1[0]->gemm_m, 4096u);
  EXPECT_EQ(fc1[0]->gemm_batch, 1u);
  EXPECT_EQ(fc1[0]->gemm_n, 2048u);  // gate and up of one expert
  EXPECT_EQ(fc1[0]->gemm_k, 1024u);
  // ep 2: four local experts, each 2048 x 2 x 2 / 8 tokens.
  const JobGraph g2 = build_job_graph(scenario_from_text(moe_scenario("dp: 16 ep: 2 global_batch_size: 16")));
  const auto fc1_2 = tasks_of(g2, Op::ExpertFc1, FORWARD, 0);
  ASSERT_EQ(fc1_2.size(), 1u);
  EXPECT_EQ(fc1_2[0]->gemm_m, 1024u);
  EXPECT_EQ(fc1_2[0]->gemm_batch, 4u);
  // Dispatch and combine: all-to-alls of every copy's hidden vector (2048 x 2 x 1024 x 2 B) over the
  // ep group, on the compute stream, twice forward and twice backward.
  for (const Phase phase : {FORWARD, BACKWARD})
    for (const Op op : {Op::MoeDispatch, Op::MoeCombine}) {
      const auto a2a = tasks_of(g, op, phase, 0);
      ASSERT_EQ(a2a.size(), 1u) << op_name(op);
      EXPECT_EQ(a2a[0]->kind, COLLECTIVE);
      EXPECT_EQ(a2a[0]->collective, ALL_TO_ALL);
      EXPECT_EQ(a2a[0]->group, GROUP_EP);
      EXPECT_EQ(a2a[0]->stream, COMPUTE);
      EXPECT_EQ(a2a[0]->bytes, 2048u * 2 * 1024 * 2);
    }
  // ep 1: the experts are all local, nothing to exchange.
  const JobGraph local = build_job_graph(scenario_from_text(moe_scenario("dp: 16 global_batch_size: 16")));
  EXPECT_TRUE(tasks_of(local, Op::MoeDispatch, FORWARD, 0).empty());
  EXPECT_EQ(tasks_of(local, Op::ExpertFc1, FORWARD, 0)[0]->gemm_batch, 8u);
}

// FP8 (Transformer Engine's grouped linear): the experts' GEMMs in FP8 with a cast of every expert's
// input, the router in BF16.
TEST(MoeLayer, Fp8ExpertsAndABf16Router) {
  const Scenario sc = scenario_from_text(moe_scenario("dp: 16 ep: 2 global_batch_size: 16", "precision: FP8"));
  const JobGraph g = build_job_graph(sc);
  const auto fc1 = tasks_of(g, Op::ExpertFc1, FORWARD, 0);
  ASSERT_EQ(fc1.size(), 1u);
  EXPECT_TRUE(fc1[0]->fp8);
  EXPECT_FALSE(tasks_of(g, Op::MoeRouter, FORWARD, 0)[0]->fp8);
  // The cast just before the grouped FC1: the four local experts' inputs (4 x 1024 tokens x 1024)
  // read 2 B and written 1 + 1 B each, and on the first micro-batch their weights (4 x 1024 x 2048)
  // cast and transposed, 4 B each.
  const Task& cast = g.tasks()[static_cast<std::size_t>(fc1[0] - g.tasks().data()) - 1];
  ASSERT_EQ(cast.op, Op::Fp8Cast);
  EXPECT_EQ(cast.bytes, 4u * 4 * 1024 * 1024 + 4u * 4 * 1024 * 2048);
}

// A capacity factor (token dropping): under 1 every expert keeps that share of its balanced tokens
// and the dropped copies are not dispatched; over 1 it caps a skewed routing's busiest expert.
TEST(MoeLayer, CapacityFactorDropsTokensAndCapsTheBusiestExpert) {
  auto graph = [](const std::string& model) {
    return build_job_graph(scenario_from_text(moe_scenario("dp: 16 ep: 4 global_batch_size: 16", model)));
  };
  const JobGraph dropless = graph(""), half = graph("moe_capacity_factor: 0.5");
  const auto d = tasks_of(dropless, Op::ExpertFc1, FORWARD, 0), h = tasks_of(half, Op::ExpertFc1, FORWARD, 0);
  ASSERT_EQ(d.size(), 1u);
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(2 * h[0]->gemm_m, d[0]->gemm_m);
  EXPECT_EQ(2 * tasks_of(half, Op::MoeDispatch, FORWARD, 0)[0]->bytes, tasks_of(dropless, Op::MoeDispatch, FORWARD, 0)[0]->bytes);
  // Capacity 1 leaves balanced routing as it is.
  EXPECT_EQ(tasks_of(graph("moe_capacity_factor: 1"), Op::ExpertFc1, FORWARD, 0)[0]->gemm_m, d[0]->gemm_m);
  // A skew of 3 capped at 2: the busiest expert gets twice the mean, not three times.
  const JobGraph skewed = graph("moe_routing_skew: 3 moe_capacity_factor: 2");  // outlives its task pointers
  const auto capped = tasks_of(skewed, Op::ExpertFc1, FORWARD, 0);
  ASSERT_EQ(capped.size(), 2u);
  EXPECT_EQ(capped[1]->gemm_m, 2 * d[0]->gemm_m);
  auto error = [](const std::string& model) {
    return input_error([&] { scenario_from_text(moe_scenario("dp: 16 global_batch_size: 16", model)); });
  };
  EXPECT_THAT(error("moe_capacity_factor: 0"), HasSubstr("model.moe_capacity_factor: must be > 0"));
  EXPECT_THAT(error("moe_capacity_factor: -1"), HasSubstr("leave it out for dropless routing"));
  EXPECT_THAT(error("moe_capacity_factor: 5"), HasSubstr("num_experts / moe_top_k = 4"));
  EXPECT_THAT(input_error([] {
                scenario_from_text(R"(model { num_layers: 2 hidden_size: 512 num_heads: 8 seq_length: 512 vocab_size: 1000
                    moe_capacity_factor: 1 } cluster { preset: "dgx-h100" num_nodes: 1 } layout { dp: 8 global_batch_size: 8 })");
              }),
              HasSubstr("model.moe_capacity_factor: is set but model.num_experts is 0"));
}

// Padded to capacity (Megatron's moe_pad_expert_input_to_capacity): every expert computes exactly
// capacity x its balanced share and the all-to-alls carry the padded buffers, whatever the skew.
TEST(MoeLayer, PaddingToCapacityGivesEveryExpertItsCapacity) {
  auto graph = [](const std::string& model) {
    return build_job_graph(scenario_from_text(moe_scenario("dp: 16 ep: 4 global_batch_size: 16", model)));
  };
  const JobGraph dropless = graph(""), padded = graph("moe_capacity_factor: 1.5 moe_pad_to_capacity: true");
  const auto d = tasks_of(dropless, Op::ExpertFc1, FORWARD, 0), p = tasks_of(padded, Op::ExpertFc1, FORWARD, 0);
  ASSERT_EQ(d.size(), 1u);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(2 * p[0]->gemm_m, 3 * d[0]->gemm_m);
  EXPECT_EQ(2 * tasks_of(padded, Op::MoeDispatch, FORWARD, 0)[0]->bytes,
            3 * tasks_of(dropless, Op::MoeDispatch, FORWARD, 0)[0]->bytes);
  // A skew of 3 padded to 2: no busiest expert of its own, every expert at twice the mean.
  const JobGraph skewed = graph("moe_routing_skew: 3 moe_capacity_factor: 2 moe_pad_to_capacity: true");
  const auto s = tasks_of(skewed, Op::ExpertFc1, FORWARD, 0);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0]->gemm_m, 2 * d[0]->gemm_m);
  EXPECT_EQ(s[0]->gemm_batch, d[0]->gemm_batch);
  EXPECT_THAT(input_error([] {
                scenario_from_text(moe_scenario("dp: 16 global_batch_size: 16", "moe_pad_to_capacity: true"));
              }),
              HasSubstr("model.moe_pad_to_capacity: pads each expert's input to its capacity, which "
                        "model.moe_capacity_factor sets"));
}

TEST(MoeLayer, SkewedRoutingDoublesTheBusiestExpertAndTheLayerWaitsForIt) {
  auto run = [](const std::string& skew) {
    const Scenario sc = scenario_from_text(moe_scenario("dp: 16 ep: 4 global_batch_size: 16", skew));
    return build_job_graph(sc);
  };
  const JobGraph balanced = run(""), skewed = run("moe_routing_skew: 2");
  const auto b = tasks_of(balanced, Op::ExpertFc2, FORWARD, 0), s = tasks_of(skewed, Op::ExpertFc2, FORWARD, 0);
  ASSERT_EQ(b.size(), 1u);
  ASSERT_EQ(s.size(), 2u);  // the other local expert, then the busiest
  EXPECT_EQ(b[0]->gemm_batch, 2u);
  EXPECT_EQ(s[0]->gemm_batch, 1u);
  EXPECT_EQ(s[1]->gemm_m, 2 * b[0]->gemm_m);
  // Twice the work; a little less than twice the time, the bigger GEMM running nearer its peak.
  EXPECT_DOUBLE_EQ(s[1]->flops, b[0]->flops);  // the balanced grouped GEMM held two experts
  const CostModel cost(balanced.scenario().cluster().gpu(), BF16);
  Task one = *b[0];
  one.gemm_batch = 1;
  one.flops /= 2;
  EXPECT_GT(cost.duration(*s[1]) / cost.duration(one), 1.5);
  EXPECT_LE(cost.duration(*s[1]) / cost.duration(one), 2.0);
  // The combine all-to-all comes after the busiest expert's FC2 on the compute stream.
  const auto combine = tasks_of(skewed, Op::MoeCombine, FORWARD, 0);
  ASSERT_EQ(combine.size(), 1u);
  EXPECT_GT(combine[0] - skewed.tasks().data(), s[1] - skewed.tasks().data());
  bool waits = false;
  const auto busiest = static_cast<std::uint32_t>(s[1] - skewed.tasks().data());
  for (auto pred : skewed.predecessors(static_cast<std::uint32_t>(combine[0] - skewed.tasks().data())))
    waits |= pred == busiest;
  EXPECT_TRUE(waits);
}

// Megatron-Core's all-gather token dispatcher: the ep group's tokens (and their routing, fp32
// probabilities and the routing map, 5 B per expert) gathered, the expert outputs reduce-scattered;
// backward the other way round. The experts' GEMMs are the all-to-all dispatcher's.
TEST(MoeLayer, AllGatherDispatcherGathersTheGroupsTokensAndReduceScattersTheOutputs) {
  const JobGraph a2a = build_job_graph(scenario_from_text(moe_scenario("dp: 16 ep: 8 global_batch_size: 16")));
  const JobGraph ag =
      build_job_graph(scenario_from_text(moe_scenario("dp: 16 ep: 8 global_batch_size: 16 moe_dispatcher: ALLGATHER")));
  const std::uint64_t tokens = 8 * 2048, hidden_bytes = tokens * 1024 * 2;
  auto only = [](const JobGraph& g, Op op, Phase phase) {
    const auto t = tasks_of(g, op, phase, 0);
    EXPECT_EQ(t.size(), 1u);
    return t.empty() ? Task{} : *t[0];
  };
  const Task dispatch = only(ag, Op::MoeDispatch, FORWARD), combine = only(ag, Op::MoeCombine, FORWARD);
  EXPECT_EQ(dispatch.collective, ALL_GATHER);
  EXPECT_EQ(dispatch.group, GROUP_EP);
  EXPECT_EQ(dispatch.bytes, hidden_bytes + tokens * 5 * 8);
  EXPECT_EQ(combine.collective, REDUCE_SCATTER);
  EXPECT_EQ(combine.bytes, hidden_bytes);
  const Task dispatch_grad = only(ag, Op::MoeDispatch, BACKWARD), combine_grad = only(ag, Op::MoeCombine, BACKWARD);
  EXPECT_EQ(dispatch_grad.collective, REDUCE_SCATTER);
  EXPECT_EQ(dispatch_grad.bytes, hidden_bytes);
  EXPECT_EQ(combine_grad.collective, ALL_GATHER);
  EXPECT_EQ(combine_grad.bytes, hidden_bytes);
  // The all-to-all moves each rank's top_k copies: 2048 x 2 x 1024 x 2 B.
  EXPECT_EQ(only(a2a, Op::MoeDispatch, FORWARD).collective, ALL_TO_ALL);
  EXPECT_EQ(only(a2a, Op::MoeDispatch, FORWARD).bytes, 2048u * 2 * 1024 * 2);
  EXPECT_EQ(only(ag, Op::ExpertFc1, FORWARD).gemm_m, only(a2a, Op::ExpertFc1, FORWARD).gemm_m);
  EXPECT_DOUBLE_EQ(ag.scenario().model().num_experts(), 8);
  // Refused: on a dense model, and with the all-to-all overlap (which overlaps the all-to-alls).
  EXPECT_THAT(input_error([] {
                scenario_from_text(R"(model { num_layers: 2 hidden_size: 512 num_heads: 8 seq_length: 512 vocab_size: 1000 }
                    cluster { preset: "dgx-h100" num_nodes: 1 } layout { dp: 8 global_batch_size: 8 moe_dispatcher: ALLGATHER })");
              }),
              HasSubstr("layout.moe_dispatcher: ALLGATHER dispatches a Mixture-of-Experts model's tokens"));
  EXPECT_THAT(input_error([] {
                scenario_from_text(moe_scenario("dp: 16 ep: 8 global_batch_size: 32 moe_dispatcher: ALLGATHER moe_a2a_overlap: true"));
              }),
              HasSubstr("layout.moe_a2a_overlap: overlaps the all-to-all dispatcher's exchanges"));
}

TEST(MoeLayer, DenseLayersComeFirstAndSharedExpertsBesideTheRouted) {
  const Scenario sc =
      scenario_from_text(moe_scenario("dp: 16 ep: 8 global_batch_size: 16", "moe_dense_layers: 1 num_shared_experts: 2 ffn_hidden_size: 4096"));
  const JobGraph g = build_job_graph(sc);
  EXPECT_TRUE(tasks_of(g, Op::MoeRouter, FORWARD, 0).empty());
  EXPECT_EQ(tasks_of(g, Op::Fc1, FORWARD, 0).size(), 1u);
  EXPECT_EQ(tasks_of(g, Op::MoeRouter, FORWARD, 1).size(), 1u);
  const auto shared = tasks_of(g, Op::SharedExpertFc1, FORWARD, 1);
  ASSERT_EQ(shared.size(), 1u);
  EXPECT_EQ(shared[0]->gemm_n, 2u * 2 * 1024);  // two shared experts of 1024, gate and up
  // Parameters: the dense layer's FFN is 3 x 1024 x 4096; a MoE layer's router 8 x 1024, 8 experts
  // and the shared FFN of 2048, 3 x 1024 x (8 x 1024 + 2048).
  const Dims d = dims(sc);
  const double attention = 1024.0 * (1024 + 2 * 512) + 1024.0 * 1024 + 2 * 1024;
  EXPECT_NEAR(layer_parameters(d).local(), attention + 3.0 * 1024 * 4096, 1);
  EXPECT_NEAR(layer_parameters(d, true).unique(1, 8), attention + 8 * 1024 + 3.0 * 1024 * (8 * 1024 + 2048), 1);
}

TEST(MoeLayer, ExpertGradientsReduceOverExpertDataParallelRanks) {
  // 16 GPUs, ep 4: expert dp 4. Dense gradients over dp 16, experts' over 4 ranks.
  const Scenario sc = scenario_from_text(moe_scenario("dp: 16 ep: 4 global_batch_size: 16 zero_stage: 1"));
  const JobGraph g = build_job_graph(sc);
  const Dims d = dims(sc);
  double expert_bytes = 0, dense_bytes = 0;
  for (const Task& t : g.tasks()) {
    if (t.phase != GRADIENT_SYNC || t.rank != g.tasks()[0].rank) continue;
    (t.group == GROUP_EXPERT_DP ? expert_bytes : dense_bytes) += static_cast<double>(t.bytes);
    if (t.group == GROUP_EXPERT_DP) {
      EXPECT_EQ(rank_grid(sc).members(t.group, t.rank).size(), 4u);
    }
  }
  // 4 MoE layers, 2 local experts each of 3 x 1024 x 1024, bf16 gradients (2 B).
  EXPECT_NEAR(expert_bytes, 4 * 2 * 3.0 * 1024 * 1024 * 2, 1);
  EXPECT_GT(dense_bytes, 0);
  // ZeRO-1: the optimizer state of the experts is sharded over expert dp, the rest over dp.
  const MemoryEstimate m = estimate_memory(sc);
  const ParameterShard p = stage_parameters(d, false, 0, 4, 4);
  EXPECT_NEAR(m.stages[0].optimizer, p.dense() * 12 / 16 + p.expert * 12 / 4, 1);
}

// Expert tensor parallelism in the grid: within a stage the ranks in pipeline() order are
// etp (fastest) x ep x expert dp.
TEST(MoeGrid, ExpertTensorParallelGroupsAreFastestThenEpThenExpertDp) {
  const RankGrid grid(GridCoords{2, 1, 1, 4, 2}, kDefaultRankOrder, ExpertGrid{2, 2});  // tp 2 dp 4 pp 2, ep 2 etp 2
  EXPECT_EQ(grid.expert_data_parallel(), 2);
  EXPECT_TRUE(grid.has_group(GROUP_EXPERT_TP));
  // Rank 5 is place 5 of stage 0: etp 1, ep 0, expert dp 1.
  EXPECT_EQ(grid.members(GROUP_EXPERT_TP, 5), (std::vector<std::uint32_t>{4, 5}));
  EXPECT_EQ(grid.members(GROUP_EP, 5), (std::vector<std::uint32_t>{5, 7}));
  EXPECT_EQ(grid.members(GROUP_EXPERT_DP, 5), (std::vector<std::uint32_t>{1, 5}));
  EXPECT_EQ(grid.members(GROUP_EXPERT_TP, 10), (std::vector<std::uint32_t>{10, 11}));  // stage 1
  EXPECT_EQ(grid.members(GROUP_EP, 10), (std::vector<std::uint32_t>{8, 10}));
  // Every rank of a stage is in exactly one expert tp group, one ep group and one expert dp group,
  // and the three together cover the stage: etp x ep x expert dp = 8.
  for (std::uint32_t r = 0; r < 8; ++r) {
    std::set<std::uint32_t> reached;
    for (auto a : grid.members(GROUP_EXPERT_TP, r))
      for (auto b : grid.members(GROUP_EP, a))
        for (auto c : grid.members(GROUP_EXPERT_DP, b)) reached.insert(c);
    EXPECT_EQ(reached.size(), 8u) << r;
    EXPECT_EQ(*reached.rbegin(), 7u) << r;
  }
  EXPECT_EQ(rank_label(grid, 5), "rank 5 (dp2 tp1 pp0 ep0 etp1)");
  EXPECT_EQ(grid_shape_text(grid), "dp 4 x tp 2 x pp 2 (ep 2 x etp 2 within)");
  // A MoE model with ep 1 still has an expert grid: its experts' gradients are reduced over all
  // of the stage's tp x cp x dp ranks (each tp rank routed its own tokens).
  const Scenario sc = scenario_from_text(moe_scenario("tp: 2 dp: 8 sequence_parallel: true global_batch_size: 8"));
  EXPECT_TRUE(rank_grid(sc).has_group(GROUP_EXPERT_DP));
  EXPECT_EQ(rank_grid(sc).members(GROUP_EXPERT_DP, 0).size(), 16u);
}

// etp 2 against etp 1 at the same ep: each expert GEMM runs twice the rows on half the width (the
// same FLOPs), the received tokens are all-gathered over the expert tp group before the experts and
// the partial outputs reduce-scattered after them, and each rank holds half of its experts.
TEST(MoeLayer, ExpertTensorParallelismSplitsEachExpertAndGathersItsTokens) {
  const std::string layout = "tp: 2 dp: 8 sequence_parallel: true ep: 4 global_batch_size: 8";
  const Scenario one = scenario_from_text(moe_scenario(layout));
  const Scenario two = scenario_from_text(moe_scenario(layout + " etp: 2"));
  const JobGraph g1 = build_job_graph(one), g2 = build_job_graph(two);
  const auto fc1_1 = tasks_of(g1, Op::ExpertFc1, FORWARD, 0), fc1_2 = tasks_of(g2, Op::ExpertFc1, FORWARD, 0);
  const auto fc2_1 = tasks_of(g1, Op::ExpertFc2, FORWARD, 0), fc2_2 = tasks_of(g2, Op::ExpertFc2, FORWARD, 0);
  ASSERT_EQ(fc1_1.size(), 1u);
  ASSERT_EQ(fc1_2.size(), 1u);
  ASSERT_EQ(fc2_2.size(), 1u);
  // Each rank routes 2048 / tp = 1024 tokens, 2 copies; ep 4: 1024 x 2 x 4 / 8 = 1024 rows per
  // expert, two local experts.
  EXPECT_EQ(fc1_1[0]->gemm_m, 1024u);
  EXPECT_EQ(fc1_2[0]->gemm_m, 2048u);
  EXPECT_EQ(fc1_2[0]->gemm_n, fc1_1[0]->gemm_n / 2);  // gate and up: 2 x 1024 / etp
  EXPECT_EQ(fc1_2[0]->gemm_batch, 2u);
  EXPECT_EQ(fc2_2[0]->gemm_k, fc2_1[0]->gemm_k / 2);
  EXPECT_DOUBLE_EQ(fc1_2[0]->flops, fc1_1[0]->flops);
  EXPECT_DOUBLE_EQ(fc2_2[0]->flops, fc2_1[0]->flops);
  // The exchange over the expert tp group: the whole gathered tensor, 2 experts x 2048 rows x 1024 x 2 B.
  const std::uint64_t gathered = 2u * 2048 * 1024 * 2;
  const std::map<std::pair<Op, Phase>, CollectiveKind> expected{{{Op::ExpertTpGather, FORWARD}, ALL_GATHER},
                                                                {{Op::ExpertTpGather, BACKWARD}, REDUCE_SCATTER},
                                                                {{Op::ExpertTpReduceScatter, FORWARD}, REDUCE_SCATTER},
                                                                {{Op::ExpertTpReduceScatter, BACKWARD}, ALL_GATHER}};
  for (const auto& [key, kind] : expected) {
    const auto t = tasks_of(g2, key.first, key.second, 0);
    ASSERT_EQ(t.size(), 1u) << op_name(key.first);
    EXPECT_EQ(t[0]->collective, kind) << op_name(key.first);
    EXPECT_EQ(t[0]->group, GROUP_EXPERT_TP);
    EXPECT_EQ(t[0]->stream, COMPUTE);
    EXPECT_EQ(t[0]->bytes, gathered);
    EXPECT_EQ(rank_grid(two).members(GROUP_EXPERT_TP, t[0]->rank).size(), 2u);
    EXPECT_TRUE(tasks_of(g1, key.first, key.second, 0).empty());
  }
  // In forward order: dispatch, gather, experts, reduce-scatter, combine.
  std::vector<Op> order;
  for (const Task& t : g2.tasks())
    if (t.layer == 0 && t.microbatch == 0 && t.phase == FORWARD && t.rank == g2.tasks()[0].rank &&
        (t.op == Op::MoeDispatch || t.op == Op::ExpertTpGather || t.op == Op::ExpertFc1 ||
         t.op == Op::ExpertTpReduceScatter || t.op == Op::MoeCombine))
      order.push_back(t.op);
  EXPECT_EQ(order, (std::vector<Op>{Op::MoeDispatch, Op::ExpertTpGather, Op::ExpertFc1, Op::ExpertTpReduceScatter,
                                    Op::MoeCombine}));
  // Parameters: half of each local expert per rank; the model's totals are unchanged.
  const Dims d1 = dims(one), d2 = dims(two);
  EXPECT_NEAR(layer_parameters(d2, true).expert, layer_parameters(d1, true).expert / 2, 1e-6);
  EXPECT_NEAR(total_parameters(d2, false), total_parameters(d1, false), 1);
  EXPECT_NEAR(activated_parameters(d2, false), activated_parameters(d1, false), 1);
  // Expert gradients over expert dp = 16 / (4 x 2) = 2 ranks, half the bytes of etp 1's (over 4).
  auto expert_grads = [](const JobGraph& g, const Scenario& sc, std::size_t group_size) {
    double bytes = 0;
    for (const Task& t : g.tasks())
      if (t.phase == GRADIENT_SYNC && t.rank == g.tasks()[0].rank && t.group == GROUP_EXPERT_DP) {
        bytes += static_cast<double>(t.bytes);
        EXPECT_EQ(rank_grid(sc).members(t.group, t.rank).size(), group_size);
      }
    return bytes;
  };
  EXPECT_NEAR(expert_grads(g2, two, 2), expert_grads(g1, one, 4) / 2, 1);
  // Memory: the expert weights per rank halve.
  EXPECT_LT(estimate_memory(two).stages[0].weights, estimate_memory(one).stages[0].weights);
  // The simulated-size count is exact for the etp graph too.
  EXPECT_EQ(estimate_job_size(one).tasks, g1.num_tasks());
  EXPECT_EQ(estimate_job_size(two).tasks, g2.num_tasks());
}

// Multi-token prediction (model.mtp_layers 1, DeepSeek-V3's D = 1) on pp 2: the module runs on the
// last stage after the output head, with its own layer (id num_layers, a MoE layer here), eh_proj
// (2h -> h) and a second pass through the output head; the last stage then holds a copy of the
// untied word embedding, whose gradient is all-reduced with the first stage's.
TEST(MultiTokenPrediction, OneModuleOnTheLastStage) {
  const std::string layout = "pp: 2 dp: 8 ep: 4 global_batch_size: 16 zero_stage: 1";  // expert dp 2
  const Scenario plain = scenario_from_text(moe_scenario(layout));
  const Scenario mtp = scenario_from_text(moe_scenario(layout, "mtp_layers: 1"));
  const JobGraph g0 = build_job_graph(plain), g1 = build_job_graph(mtp);
  const RankGrid grid = rank_grid(mtp);
  const std::uint32_t last = grid.stage_representative(1), first = grid.stage_representative(0);
  auto count = [](const JobGraph& g, std::uint32_t rank, auto&& pred) {
    std::size_t n = 0;
    for (const Task& t : g.tasks())
      if (t.rank == rank && t.microbatch <= 0 && pred(t)) ++n;
    return n;
  };
  // Two passes through the output head per micro-batch, one eh_proj GEMM forward (tokens, h, 2h).
  for (const Phase phase : {FORWARD, BACKWARD}) {
    EXPECT_EQ(count(g1, last, [&](const Task& t) { return t.op == Op::Logits && t.phase == phase && t.microbatch == 0; }),
              2 * count(g0, last, [&](const Task& t) { return t.op == Op::Logits && t.phase == phase && t.microbatch == 0; }));
  }
  std::vector<const Task*> on_last;
  for (const Task& t : g1.tasks())
    if (t.op == Op::MtpProjection && t.phase == FORWARD && t.microbatch == 0 && t.rank == last) on_last.push_back(&t);
  ASSERT_EQ(on_last.size(), 1u);
  EXPECT_EQ(on_last[0]->gemm_m, 2048u);
  EXPECT_EQ(on_last[0]->gemm_n, 1024u);
  EXPECT_EQ(on_last[0]->gemm_k, 2048u);
  EXPECT_EQ(count(g1, first, [](const Task& t) { return t.op == Op::MtpProjection; }), 0u);
  // Its layer is layer 4 (num_layers), a MoE layer with its all-to-alls, on the last stage only.
  EXPECT_GT(count(g1, last, [](const Task& t) { return t.layer == 4 && t.op == Op::MoeDispatch; }), 0u);
  EXPECT_EQ(count(g1, first, [](const Task& t) { return t.layer == 4; }), 0u);
  EXPECT_EQ(count(g0, last, [](const Task& t) { return t.layer == 4; }), 0u);
  // The word embedding's gradient all-reduced between the first and last stage (untied).
  EXPECT_EQ(count(g0, last, [](const Task& t) { return t.op == Op::EmbeddingGradAllReduce; }), 0u);
  EXPECT_EQ(count(g1, last, [](const Task& t) { return t.op == Op::EmbeddingGradAllReduce; }), 1u);
  EXPECT_EQ(count(g1, first, [](const Task& t) { return t.op == Op::EmbeddingGradAllReduce; }), 1u);
  // Parameters: eh_proj 2h^2, three RMSNorms of h and one MoE layer more; per rank of the last
  // stage also the embedding copy (4096 x 1024); the layer's experts reduced over expert dp.
  const Dims d0 = dims(plain), d1 = dims(mtp);
  const double module = 2.0 * 1024 * 1024 + 3.0 * 1024 + layer_parameters(d0, true).unique(1, 4);
  EXPECT_NEAR(total_parameters(d1, false) - total_parameters(d0, false), module, 1);
  const ParameterShard stage0 = stage_parameters(d0, false, 1, 2, 2), stage1 = stage_parameters(d1, false, 1, 2, 2);
  EXPECT_NEAR(stage1.dense() - stage0.dense(), 2.0 * 1024 * 1024 + 3.0 * 1024 + layer_parameters(d0, true).dense() + 4096.0 * 1024, 1);
  EXPECT_NEAR(stage1.expert - stage0.expert, layer_parameters(d0, true).expert, 1e-6);
  auto expert_grad_bytes = [&](const JobGraph& g) {
    double bytes = 0;
    for (const Task& t : g.tasks())
      if (t.rank == last && t.phase == GRADIENT_SYNC && t.group == GROUP_EXPERT_DP) bytes += static_cast<double>(t.bytes);
    return bytes;
  };
  EXPECT_NEAR(expert_grad_bytes(g1) - expert_grad_bytes(g0), layer_parameters(d0, true).expert * 2, 1);
  // Memory: the last stage holds the module's activations and weights too.
  EXPECT_GT(estimate_memory(mtp).stages[1].activations, estimate_memory(plain).stages[1].activations);
  EXPECT_GT(estimate_memory(mtp).stages[1].weights, estimate_memory(plain).stages[1].weights);
  EXPECT_DOUBLE_EQ(estimate_memory(mtp).stages[0].activations, estimate_memory(plain).stages[0].activations);
  // The size check counts the module's tasks exactly, with sequence parallelism too.
  EXPECT_EQ(estimate_job_size(mtp).tasks, g1.num_tasks());
  const Scenario sp = scenario_from_text(
      moe_scenario("tp: 2 sequence_parallel: true pp: 2 dp: 4 ep: 8 global_batch_size: 8 recompute: FULL", "mtp_layers: 2"));
  EXPECT_EQ(estimate_job_size(sp).tasks, build_job_graph(sp).num_tasks());
  // Refused: more than 8 modules, ZeRO-2/3, the all-to-all overlap.
  EXPECT_THAT(input_error([&] { scenario_from_text(moe_scenario(layout, "mtp_layers: 9")); }),
              HasSubstr("model.mtp_layers: must be 0 to 8 (got 9)"));
  EXPECT_THAT(input_error([&] {
                scenario_from_text(moe_scenario("pp: 2 dp: 8 ep: 8 global_batch_size: 32 moe_a2a_overlap: true "
                                                "schedule: INTERLEAVED_1F1B virtual_stages: 2",
                                                "mtp_layers: 1"));
              }),
              HasSubstr("the all-to-all overlap with multi-token prediction"));
}

TEST(MoeLayer, BadInputNamesTheFieldAndTheValidValues) {
  auto error = [](const std::string& layout, const std::string& model = "") {
    return input_error([&] { scenario_from_text(moe_scenario(layout, model)); });
  };
  EXPECT_THAT(error("dp: 16 ep: 3 global_batch_size: 16"), HasSubstr("layout.ep: ep 3 does not divide model.num_experts 8"));
  EXPECT_NO_THROW(scenario_from_text(moe_scenario("tp: 2 dp: 8 sequence_parallel: true ep: 16 global_batch_size: 8",
                                                   "num_experts: 32")));
  EXPECT_THAT(error("dp: 4 pp: 4 ep: 8 global_batch_size: 16"), HasSubstr("does not divide tp x cp x dp = 4"));
  EXPECT_THAT(error("dp: 16 global_batch_size: 16", "moe_top_k: 9"), HasSubstr("model.moe_top_k: must be 1 to num_experts 8"));
  EXPECT_THAT(error("dp: 16 global_batch_size: 16", "moe_routing_skew: 0.5"), HasSubstr("model.moe_routing_skew"));
  EXPECT_THAT(error("dp: 16 global_batch_size: 16", "moe_routing_skew: 5"), HasSubstr("num_experts / moe_top_k = 4"));
  EXPECT_THAT(error("tp: 2 dp: 8 global_batch_size: 8"), HasSubstr("layout.sequence_parallel"));
  EXPECT_THAT(error("dp: 16 global_batch_size: 16 zero_stage: 3"), HasSubstr("is not modelled yet"));
  EXPECT_THAT(error("dp: 16 global_batch_size: 16", "moe_dense_layers: 4"), HasSubstr("model.moe_dense_layers"));
  const std::string dense = input_error([] {
    scenario_from_text(R"(model { num_layers: 2 hidden_size: 512 num_heads: 8 seq_length: 512 vocab_size: 1000 }
        cluster { preset: "dgx-h100" num_nodes: 1 } layout { dp: 8 ep: 2 global_batch_size: 8 })");
  });
  EXPECT_THAT(dense, HasSubstr("layout.ep: expert parallelism needs a Mixture-of-Experts model"));
  const std::string stray = input_error([] {
    scenario_from_text(R"(model { num_layers: 2 hidden_size: 512 num_heads: 8 seq_length: 512 vocab_size: 1000 moe_top_k: 2 }
        cluster { preset: "dgx-h100" num_nodes: 1 } layout { dp: 8 global_batch_size: 8 })");
  });
  EXPECT_THAT(stray, HasSubstr("model.moe_top_k: is set but model.num_experts is 0"));
  // Expert tensor parallelism: ep x etp within the stage, etp dividing the expert FFN, and the
  // combinations Megatron refuses or parallax does not model.
  EXPECT_THAT(error("tp: 2 dp: 8 sequence_parallel: true ep: 8 etp: 4 global_batch_size: 8"),
              HasSubstr("layout.etp: ep x etp = 8 x 4 does not divide tp x cp x dp = 16"));
  EXPECT_THAT(error("tp: 2 dp: 8 sequence_parallel: true ep: 2 etp: 4 global_batch_size: 8", "moe_ffn_hidden_size: 1022"),
              HasSubstr("layout.etp: etp 4 does not divide model.moe_ffn_hidden_size 1022"));
  std::string biased = moe_scenario("dp: 16 ep: 2 etp: 2 global_batch_size: 16");
  biased.replace(biased.find("add_bias_linear: false"), 22, "add_bias_linear: true");
  EXPECT_THAT(input_error([&] { scenario_from_text(biased); }),
              HasSubstr("Megatron-Core asserts expert_tensor_parallel_size == 1 or no linear biases"));
  EXPECT_THAT(error("dp: 16 ep: 2 etp: 2 global_batch_size: 16 moe_dispatcher: ALLGATHER"),
              HasSubstr("layout.etp: etp 2 with moe_dispatcher ALLGATHER is not modelled"));
  EXPECT_THAT(error("dp: 16 ep: 2 etp: 2 global_batch_size: 32 moe_a2a_overlap: true"), HasSubstr("is not modelled yet"));
  EXPECT_THAT(error("dp: 16 etp: 0 global_batch_size: 16"), HasSubstr("layout.etp: must be >= 1 (got 0)"));
  const std::string dense_etp = input_error([] {
    scenario_from_text(R"(model { num_layers: 2 hidden_size: 512 num_heads: 8 seq_length: 512 vocab_size: 1000 }
        cluster { preset: "dgx-h100" num_nodes: 1 } layout { dp: 8 etp: 2 global_batch_size: 8 })");
  });
  EXPECT_THAT(dense_etp, HasSubstr("layout.etp: expert tensor parallelism needs a Mixture-of-Experts model"));
}

// Multi-head latent attention with DeepSeek-V3's ranks on tp 2: the down-projection on this rank's
// s / tp tokens with the same weights on every TP rank, the latents all-gathered over TP (their width,
// not the hidden size), the up-projections to this rank's 64 heads, the fused attention over
// queries and keys of 192 and values of 128, the projection reading 64 x 128.
TEST(MlaLayer, ShapesParametersAndTheLatentGather) {
  const std::string mla = "q_lora_rank: 1536 kv_lora_rank: 512 qk_nope_head_dim: 128 qk_rope_head_dim: 64 v_head_dim: 128 ";
  // The scenario with `field: value` in place of MLA's own setting of that field.
  auto scenario = [&](const std::string& field = "", const std::string& value = "") {
    std::string fields = mla;
    if (!field.empty()) {
      const auto at = fields.find(field + ": ");
      if (at == std::string::npos)
        fields += field + ": " + value + " ";
      else
        fields.replace(at, fields.find(' ', at + field.size() + 2) - at, field + ": " + value);
    }
    std::string text = moe_scenario("tp: 2 dp: 8 sequence_parallel: true ep: 16 global_batch_size: 8",
                                    fields + "num_experts: 32 ");
    for (const auto& [from, to] : {std::pair<std::string, std::string>{"hidden_size: 1024", "hidden_size: 7168"},
                                   {"num_heads: 8 num_query_groups: 4", "num_heads: 128"}})
      text.replace(text.find(from), from.size(), to);
    return scenario_from_text(text);
  };
  const Scenario sc = scenario();
  const Dims d = dims(sc);
  const LayerDescription layer = describe_layer(d, true);
  auto op = [&](Op o) -> const LayerOp& {
    for (const LayerOp& x : layer.ops)
      if (x.op == o) return x;
    throw std::runtime_error("no op " + std::string(op_name(o)));
  };
  const std::int64_t s = 2048;
  EXPECT_EQ(op(Op::MlaDownProj).gemm, (GemmShape{s / 2, 1536 + 512 + 64, 7168, 1}));
  EXPECT_EQ(op(Op::MlaDownProj).replicated_parameters, 7168.0 * 2112);
  EXPECT_EQ(op(Op::MlaQUpProj).gemm, (GemmShape{s, 64 * 192, 1536, 1}));
  EXPECT_EQ(op(Op::MlaKvUpProj).gemm, (GemmShape{s, 64 * 256, 512, 1}));
  EXPECT_EQ(op(Op::AttnProj).gemm, (GemmShape{s, 7168, 64 * 128, 1}));
  // Per layer: 187.1M attention weights (DeepSeek-V3's, from its config) over both TP ranks.
  double attention = 0;
  for (Op o : {Op::MlaDownProj, Op::MlaLatentNorm, Op::MlaQUpProj, Op::MlaKvUpProj, Op::AttnProj})
    attention += op(o).sharded_parameters * 2 + op(o).replicated_parameters;
  EXPECT_EQ(attention, 7168.0 * 2112 + 2048 + 1536.0 * 24576 + 512.0 * 32768 + 16384.0 * 7168);
  // Causal flash attention: s^2 heads (192 + 128) FLOPs forward on this rank's 64 heads.
  EXPECT_DOUBLE_EQ(op(Op::FlashAttention).fused_forward_flops, 1.0 * s * s * 64 * (192 + 128));
  // The graph: the latents' all-gather carries s x (1536) and s x (512 + 64) elements, not s x 7168.
  const JobGraph g = build_job_graph(sc);
  std::vector<std::uint64_t> gathers;
  const Task* previous = nullptr;
  for (const Task& t : g.tasks()) {
    if (t.rank != 0 || t.layer != 0 || t.microbatch != 0 || t.phase != FORWARD) continue;
    if (t.op == Op::MlaQUpProj || t.op == Op::MlaKvUpProj) {
      ASSERT_NE(previous, nullptr);
      gathers.push_back(previous->bytes);
    }
    if (t.op == Op::SpAllGather) previous = &t;
  }
  EXPECT_EQ(gathers, (std::vector<std::uint64_t>{2u * s * 1536, 2u * s * 576}));
  // Bad input: a latent wider than the hidden state, a head dimension missing, MLA fields without MLA.
  auto error = [&](const std::string& field, const std::string& value) {
    return input_error([&] { scenario(field, value); });
  };
  EXPECT_THAT(error("kv_lora_rank", "8192"), HasSubstr("model.kv_lora_rank: 8192 is larger than hidden_size 7168"));
  EXPECT_THAT(error("q_lora_rank", "9000"), HasSubstr("model.q_lora_rank"));
  EXPECT_THAT(error("v_head_dim", "0"), HasSubstr("model.v_head_dim: must be >= 1"));
  EXPECT_THAT(error("num_query_groups", "8"), HasSubstr("model.num_query_groups: does not apply"));
  EXPECT_THAT(input_error([] { scenario_from_text(moe_scenario("dp: 16 global_batch_size: 16", "qk_rope_head_dim: 64")); }),
              HasSubstr("model.qk_rope_head_dim: is set but model.kv_lora_rank is 0"));
}

// Sliding-window attention as GPT-OSS alternates it (window 128, every second layer full): the
// windowed layers' kernel computes the 128-key tiles the window spans (256 keys per query at
// window 128) instead of the causal s / 2, and the full layers are unchanged.
TEST(SlidingWindow, WindowedLayersDoTheWindowsWork) {
  const Scenario sc = scenario_from_text(moe_scenario("dp: 16 global_batch_size: 16",
                                                      "sliding_window: 128 sliding_window_pattern: 2 attention_sinks: true"));
  const Dims d = dims(sc);
  EXPECT_TRUE(is_windowed_layer(d, 0));
  EXPECT_FALSE(is_windowed_layer(d, 1));
  const JobGraph g = build_job_graph(sc);
  const auto windowed = tasks_of(g, Op::FlashAttention, FORWARD, 0), full = tasks_of(g, Op::FlashAttention, FORWARD, 1);
  ASSERT_EQ(windowed.size(), 1u);
  ASSERT_EQ(full.size(), 1u);
  const double s = 2048;
  EXPECT_DOUBLE_EQ(windowed[0]->flops / full[0]->flops, 256.0 / (s / 2));
  const model::CostModel cost(sc.cluster().gpu(), sc.model().precision());
  EXPECT_LT(cost.duration(*windowed[0]), cost.duration(*full[0]));
  // The sinks: one parameter per head and layer.
  Scenario plain = sc;
  plain.mutable_model()->set_attention_sinks(false);
  EXPECT_EQ(total_parameters(d, false) - total_parameters(dims(plain), false), 8.0 * 4);
  EXPECT_THAT(input_error([] { scenario_from_text(moe_scenario("dp: 16 global_batch_size: 16", "sliding_window_pattern: 2")); }),
              HasSubstr("model.sliding_window_pattern: is set but model.sliding_window is 0"));
  EXPECT_THAT(input_error([] { scenario_from_text(moe_scenario("dp: 8 cp: 2 global_batch_size: 16", "sliding_window: 128")); }),
              HasSubstr("is not modelled yet"));
}

// layout.moe_a2a_overlap: in the steady state each forward step merges with the backward step after
// it. Their all-to-alls move to EP_COMM (the "ep comm" lane), the warm-up and cool-down steps keep
// theirs on the compute stream, and the compute stream alternates the two micro-batches within a layer.
TEST(MoeOverlap, MergedStepsPutTheAllToAllsOnTheirOwnStream) {
  const std::string layout = "pp: 2 dp: 8 virtual_stages: 2 schedule: INTERLEAVED_1F1B ep: 4 global_batch_size: 64";
  const JobGraph plain = build_job_graph(scenario_from_text(moe_scenario(layout)));
  const JobGraph merged = build_job_graph(scenario_from_text(moe_scenario(layout + " moe_a2a_overlap: true")));
  auto count = [](const JobGraph& g, Stream stream) {
    std::size_t n = 0;
    for (const Task& t : g.tasks())
      if (t.kind == COLLECTIVE && t.collective == ALL_TO_ALL && t.stream == stream) ++n;
    return n;
  };
  EXPECT_EQ(count(plain, EP_COMM), 0u);
  EXPECT_GT(count(merged, EP_COMM), 0u);
  EXPECT_GT(count(merged, COMPUTE), 0u);  // the warm-up's and cool-down's
  EXPECT_EQ(count(merged, EP_COMM) + count(merged, COMPUTE), count(plain, COMPUTE));
  EXPECT_EQ(merged.num_tasks(), plain.num_tasks());
  EXPECT_EQ(traces::lane_name(traces::lane_of(EP_COMM, COLLECTIVE)), "ep comm");
  // On a rank's compute stream, some forward compute task sits between two backward ones of one layer.
  auto interleaved = [](const JobGraph& g) {
    std::vector<const Task*> compute;
    for (auto id : g.rank_tasks(0))
      if (g.tasks()[id].is_compute()) compute.push_back(&g.tasks()[id]);
    for (std::size_t i = 0; i + 1 < compute.size(); ++i) {
      if (compute[i]->phase != BACKWARD || compute[i + 1]->phase != FORWARD) continue;
      std::size_t j = i + 1;
      while (j < compute.size() && compute[j]->phase == FORWARD) ++j;
      // The same layer of the same micro-batch's backward on both sides of the forward tasks.
      if (j < compute.size() && compute[j]->phase == BACKWARD && compute[j]->layer == compute[i]->layer &&
          compute[j]->layer >= 0 && compute[j]->microbatch == compute[i]->microbatch)
        return true;
    }
    return false;
  };
  EXPECT_TRUE(interleaved(merged));
  EXPECT_FALSE(interleaved(plain));

  // Bad input: a dense model, ep 1, full recompute, pp > 1 without the interleaved schedule.
  auto error = [&](const std::string& l, const std::string& model = "") {
    return input_error([&] { scenario_from_text(moe_scenario(l + " moe_a2a_overlap: true", model)); });
  };
  EXPECT_THAT(error("dp: 16 global_batch_size: 16"), HasSubstr("layout.moe_a2a_overlap: overlaps the expert-parallel"));
  EXPECT_THAT(error("dp: 16 ep: 4 global_batch_size: 16 recompute: FULL"), HasSubstr("is not modelled yet"));
  EXPECT_THAT(error("pp: 2 dp: 8 ep: 4 global_batch_size: 16"), HasSubstr("needs the interleaved schedule"));
}

}  // namespace
}  // namespace parallax::model
