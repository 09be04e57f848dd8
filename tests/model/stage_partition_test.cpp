// Stage partitions: the explicit list, Megatron's first / last stage overrides and embedding / loss
// slots (transformer_block.py get_num_layers_to_build), Llama 3.1 405B's split, the errors by field,
// and every consumer (builder, parameters, memory, job size) following the partition.
#include "parallax/model/job_graph.h"
#include "parallax/model/job_size.h"
#include "parallax/model/memory_model.h"
#include "parallax/model/parameters.h"
#include "parallax/model/stage_partition.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <map>
#include <numeric>
#include <set>

namespace parallax::model {
namespace {

using parallax::testing::input_error;
using parallax::testing::scenario_from_text;

// `layers` layers on 16 GPUs (dp fills what tp and pp leave).
std::string text(int layers, const std::string& layout) {
  return "model { num_layers: " + std::to_string(layers) +
         " hidden_size: 512 num_heads: 8 seq_length: 256 vocab_size: 1024 }\n"
         "cluster { preset: \"dgx-a100-80g\" num_nodes: 2 }\nlayout { " + layout + " }\n";
}

std::vector<std::int64_t> chunk_layers(const StagePartition& p) {
  std::vector<std::int64_t> out;
  for (std::int64_t vs = 0; vs < p.virtual_stages(); ++vs) out.push_back(p.layers(vs));
  return out;
}

StagePartition partition_of(int layers, const std::string& layout) {
  return stage_partition(scenario_from_text(text(layers, layout)));
}

std::string error_of(int layers, const std::string& layout) {
  return input_error([&] { scenario_from_text(text(layers, layout), "p.pbtxt"); });
}

TEST(StagePartition, EvenByDefault) {
  const StagePartition p = partition_of(8, "pp: 2 dp: 8 global_batch_size: 16 schedule: INTERLEAVED_1F1B virtual_stages: 2");
  EXPECT_EQ(chunk_layers(p), (std::vector<std::int64_t>{2, 2, 2, 2}));
  EXPECT_TRUE(p.even());
  EXPECT_EQ(p.first_layer(3), 6);
  EXPECT_EQ(p.stage_layers(1), 4);
}

TEST(StagePartition, ExplicitListInVirtualStageOrder) {
  const StagePartition p = partition_of(
      8, "pp: 2 dp: 8 global_batch_size: 16 schedule: INTERLEAVED_1F1B virtual_stages: 2 stage_layers: [3, 1, 0, 4]");
  EXPECT_EQ(chunk_layers(p), (std::vector<std::int64_t>{3, 1, 0, 4}));
  EXPECT_FALSE(p.even());
  EXPECT_EQ(p.first_layer(1), 3);
  EXPECT_EQ(p.first_layer(3), 4);
  EXPECT_EQ(p.num_layers(), 8);
  EXPECT_EQ(p.stage_layers(0), 3);  // vs 0 and 2
  EXPECT_EQ(p.stage_layers(1), 5);  // vs 1 and 3
  EXPECT_EQ(p.layers_of_chunk(1, 1), 4);
}

TEST(StagePartition, FirstAndLastStageOverridesAsMegatron) {
  // 10 layers, pp 4: first 1, last 3, the middle two stages share 6.
  EXPECT_EQ(chunk_layers(partition_of(10, "pp: 4 dp: 4 global_batch_size: 16 first_stage_layers: 1 last_stage_layers: 3")),
            (std::vector<std::int64_t>{1, 3, 3, 3}));
  // Only the last given: the others share the rest.
  EXPECT_EQ(chunk_layers(partition_of(11, "pp: 4 dp: 4 global_batch_size: 16 last_stage_layers: 2")),
            (std::vector<std::int64_t>{3, 3, 3, 2}));
  // Interleaved: each stage's layers divided over its chunks (first 2 over 2 chunks, middle 4 each).
  EXPECT_EQ(chunk_layers(partition_of(
                14, "pp: 4 dp: 4 global_batch_size: 16 schedule: INTERLEAVED_1F1B virtual_stages: 2 first_stage_layers: 2")),
            (std::vector<std::int64_t>{1, 2, 2, 2, 1, 2, 2, 2}));
}

TEST(StagePartition, EmbeddingAndLossSlots) {
  // 6 layers + embedding + loss = 8 slots over pp 4: 2 each; the first stage 1 layer, the last 1.
  EXPECT_EQ(chunk_layers(partition_of(
                6, "pp: 4 dp: 4 global_batch_size: 16 embedding_in_pipeline_split: true loss_in_pipeline_split: true")),
            (std::vector<std::int64_t>{1, 2, 2, 1}));
  // Embedding only: 7 + 1 slots.
  EXPECT_EQ(chunk_layers(partition_of(7, "pp: 4 dp: 4 global_batch_size: 16 embedding_in_pipeline_split: true")),
            (std::vector<std::int64_t>{1, 2, 2, 2}));
  // One slot per chunk: an embedding-only first chunk and a loss-only last chunk (no layers).
  EXPECT_EQ(chunk_layers(partition_of(
                6, "pp: 4 dp: 4 global_batch_size: 16 schedule: INTERLEAVED_1F1B virtual_stages: 2 "
                   "embedding_in_pipeline_split: true loss_in_pipeline_split: true")),
            (std::vector<std::int64_t>{0, 1, 1, 1, 1, 1, 1, 0}));
}

// Llama 3.1 405B (Meta's run; Megatron's account_for_embedding/loss_in_pipeline_split): 126 layers,
// 128 slots over pp 8 * vpp 8 = 64 chunks, 2 each; the first chunk 1 layer + embedding, the last
// 1 layer + loss. With pp 16, one slot per chunk: the first and last chunks hold no layer.
TEST(StagePartition, Llama405BPipelineSplit) {
  for (const int pp : {8, 16}) {
    Layout l;
    l.set_pp(pp);
    l.set_schedule(Layout::INTERLEAVED_1F1B);
    l.set_virtual_stages(8);
    l.set_embedding_in_pipeline_split(true);
    l.set_loss_in_pipeline_split(true);
    ModelSpec m;
    m.set_num_layers(126);
    ASSERT_FALSE(stage_partition_problem(m, l)) << stage_partition_problem(m, l)->problem;
    const auto p = try_stage_partition(m, l);
    ASSERT_TRUE(p);
    ASSERT_EQ(p->virtual_stages(), pp * 8);
    const std::int64_t per_chunk = 128 / (pp * 8);
    EXPECT_EQ(p->layers(0), per_chunk - 1) << pp;
    EXPECT_EQ(p->layers(pp * 8 - 1), per_chunk - 1) << pp;
    for (std::int64_t vs = 1; vs < pp * 8 - 1; ++vs) EXPECT_EQ(p->layers(vs), per_chunk) << pp << " vs " << vs;
    EXPECT_EQ(p->num_layers(), 126);
    EXPECT_EQ(p->first_layer(1), per_chunk - 1);
    // Pipeline stage 0 holds chunk 0 (short) and 7 full chunks; so does the last stage.
    EXPECT_EQ(p->stage_layers(0), 8 * per_chunk - 1);
    EXPECT_EQ(p->stage_layers(pp - 1), 8 * per_chunk - 1);
    EXPECT_EQ(p->stage_layers(1), 8 * per_chunk);
  }
}

TEST(StagePartition, ErrorsNameTheFieldAndTheFix) {
  const std::string base = "pp: 2 dp: 8 global_batch_size: 16 ";
  std::string e = error_of(8, base + "stage_layers: [3, 4]");
  EXPECT_NE(e.find("layout.stage_layers: sums to 7 layers but num_layers is 8"), std::string::npos) << e;
  e = error_of(8, base + "stage_layers: [3, 4, 1]");
  EXPECT_NE(e.find("layout.stage_layers: has 3 entries but pp = 2 virtual stages need one each"), std::string::npos) << e;
  e = error_of(8, "pp: 2 dp: 8 global_batch_size: 16 schedule: INTERLEAVED_1F1B virtual_stages: 3 stage_layers: [4, 0, 0, 0, 4, 0]");
  EXPECT_NE(e.find("layout.stage_layers: entries 1 to 2 are 0: at most pp - 1 = 1 virtual stages in a row may be empty"),
            std::string::npos) << e;
  e = error_of(8, base + "stage_layers: [9, -1]");
  EXPECT_NE(e.find("layout.stage_layers: entry 1 is -1"), std::string::npos) << e;
  e = error_of(8, base + "stage_layers: [4, 4] first_stage_layers: 4");
  EXPECT_NE(e.find("layout.first_stage_layers: cannot be combined with stage_layers"), std::string::npos) << e;
  e = error_of(8, base + "first_stage_layers: 2 loss_in_pipeline_split: true");
  EXPECT_NE(e.find("layout.loss_in_pipeline_split: cannot be combined with first_stage_layers"), std::string::npos) << e;
  // 10 layers, pp 4, first 3: 7 left for 3 middle stages does not divide.
  e = error_of(10, "pp: 4 dp: 4 global_batch_size: 16 first_stage_layers: 3");
  EXPECT_NE(e.find("layout.first_stage_layers: the 7 layers left for the 3 middle stages do not divide"), std::string::npos) << e;
  EXPECT_NE(e.find("valid first_stage_layers (with the other as given): 1, 4, 7"), std::string::npos) << e;
  e = error_of(10, "pp: 4 dp: 4 global_batch_size: 16 first_stage_layers: 6 last_stage_layers: 6");
  EXPECT_NE(e.find("layout.first_stage_layers: first_stage_layers + last_stage_layers = 12 exceeds num_layers 10"),
            std::string::npos) << e;
  e = error_of(10, "pp: 4 dp: 4 global_batch_size: 16 schedule: INTERLEAVED_1F1B virtual_stages: 2 first_stage_layers: 3");
  EXPECT_NE(e.find("layout.first_stage_layers: 3 is not divisible by virtual_stages 2"), std::string::npos) << e;
  e = error_of(8, "dp: 16 global_batch_size: 16 last_stage_layers: 3");
  EXPECT_NE(e.find("layout.last_stage_layers: an uneven first or last stage needs pp >= 2"), std::string::npos) << e;
  // 7 + 1 + 1 = 9 slots over pp 2.
  e = error_of(7, base + "embedding_in_pipeline_split: true loss_in_pipeline_split: true");
  EXPECT_NE(e.find("layout.pp: num_layers 7 plus the embedding and / or loss slots = 9 is not divisible by pp 2; valid pp: 1, 3, 9"),
            std::string::npos) << e;
  // 6 + 1 + 1 = 8 slots, 4 per stage, not divisible by 3 chunks.
  e = error_of(6, "pp: 2 dp: 8 global_batch_size: 16 schedule: INTERLEAVED_1F1B virtual_stages: 3 "
                  "embedding_in_pipeline_split: true loss_in_pipeline_split: true");
  EXPECT_NE(e.find("layout.virtual_stages: the 4 layer slots of each stage are not divisible by virtual_stages 3; "
                   "valid virtual_stages: 1, 2, 4"),
            std::string::npos) << e;
  // No partition: the layers must divide (the layout rule), and the message says how to split unevenly.
  e = error_of(7, base);
  EXPECT_NE(e.find("layout.pp: num_layers 7 is not divisible by pp * virtual_stages = 2 * 1"), std::string::npos) << e;
  EXPECT_NE(e.find("stage_layers"), std::string::npos) << e;
}

// The builder's layers follow the partition: each layer once per micro-batch and pass, on the stage
// the partition puts it, transfers labelled with the first layer above their boundary, and an
// empty chunk passing its input on (its send waits for its recv).
TEST(StagePartition, BuilderEmitsEachChunksLayers) {
  const Scenario sc = scenario_from_text(
      text(8, "pp: 2 dp: 8 global_batch_size: 16 schedule: INTERLEAVED_1F1B virtual_stages: 2 stage_layers: [3, 0, 1, 4]"));
  const StagePartition p = stage_partition(sc);
  const JobGraph g = build_job_graph(sc);
  const Dims d = dims(sc);
  std::map<std::int32_t, std::int64_t> stage_of_layer;
  for (std::int64_t vs = 0; vs < 4; ++vs)
    for (std::int64_t l = p.first_layer(vs); l < p.first_layer(vs + 1); ++l) stage_of_layer[static_cast<std::int32_t>(l)] = vs % 2;
  std::map<std::pair<std::int32_t, std::int32_t>, int> qkv_forwards;  // (layer, mb) -> count
  for (std::size_t i = 0; i < g.ranks().size(); ++i)
    for (auto id : g.rank_tasks(i)) {
      const Task& t = g.tasks()[id];
      if (t.op == Op::Qkv && t.phase == FORWARD) {
        ++qkv_forwards[{t.layer, t.microbatch}];
        EXPECT_EQ(stage_of_layer.at(t.layer), g.ranks()[i].pp_stage) << g.task_name(id);
      }
      if (t.kind == SEND && t.phase == FORWARD) {
        // Sends from stage 1's empty chunk (vs 1) wait for its recv from vs 0.
        if (g.ranks()[i].pp_stage == 1 && t.layer == p.first_layer(2)) {
          bool waits_for_recv = false;
          for (auto pred : g.predecessors(id))
            waits_for_recv |= g.tasks()[pred].kind == RECV && g.tasks()[pred].microbatch == t.microbatch;
          EXPECT_TRUE(waits_for_recv) << g.task_name(id);
        }
      }
    }
  EXPECT_EQ(qkv_forwards.size(), static_cast<std::size_t>(8 * d.m));
  for (const auto& [key, n] : qkv_forwards) EXPECT_EQ(n, 1);
  (void)g.topological_order();  // no cycle
  // The job size estimate counts the builder's tasks exactly.
  EXPECT_EQ(estimate_job_size(sc).tasks, g.num_tasks());
}

// estimate_job_size counts what the builder emits for uneven stages too (every stage its own count),
// with and without symmetry, ZeRO buckets and the interleaved schedule included.
TEST(StagePartition, JobSizeCountsUnevenBuildsExactly) {
  for (const char* layout :
       {"pp: 4 dp: 4 global_batch_size: 16 first_stage_layers: 1 last_stage_layers: 3 zero_stage: 1",
        "pp: 4 dp: 4 global_batch_size: 16 schedule: INTERLEAVED_1F1B virtual_stages: 2 embedding_in_pipeline_split: true "
        "loss_in_pipeline_split: true",
        "pp: 2 dp: 8 global_batch_size: 16 schedule: INTERLEAVED_1F1B virtual_stages: 2 stage_layers: [0, 3, 1, 2] "
        "grad_bucket_mb: 1",
        "pp: 2 dp: 8 global_batch_size: 16 stage_layers: [6, 0] zero_stage: 3"}) {
    for (const bool symmetry : {true, false}) {
      Scenario sc = scenario_from_text(text(6, layout));
      sc.mutable_options()->set_use_symmetry(symmetry);
      const JobGraph g = build_job_graph(sc);
      EXPECT_EQ(estimate_job_size(sc).tasks, g.num_tasks()) << layout << " symmetry " << symmetry;
      EXPECT_LE(g.num_edges(), estimate_job_size(sc).edges) << layout;
      (void)g.topological_order();
    }
  }
}

TEST(StagePartition, ParametersAndMemoryFollowTheStageLayers) {
  const Scenario even = scenario_from_text(text(8, "pp: 2 dp: 8 global_batch_size: 16"));
  const Scenario uneven = scenario_from_text(text(8, "pp: 2 dp: 8 global_batch_size: 16 stage_layers: [2, 6]"));
  const Dims d = dims(even);
  const double layer = layer_parameters(d).local();
  const MemoryEstimate me = estimate_memory(even), mu = estimate_memory(uneven);
  EXPECT_NEAR(mu.stages[0].parameters, me.stages[0].parameters - 2 * layer, 1e-6 * me.stages[0].parameters);
  EXPECT_NEAR(mu.stages[1].parameters, me.stages[1].parameters + 2 * layer, 1e-6 * me.stages[1].parameters);
  // Activations: stage 0 holds 2 micro-batches of 2 layers where it held 2 of 4; stage 1 one micro-batch of 6.
  EXPECT_NEAR(mu.stages[0].layers_in_flight, 4, 1e-9);
  EXPECT_NEAR(mu.stages[1].layers_in_flight, 6, 1e-9);
  EXPECT_NEAR(me.stages[0].layers_in_flight, 8, 1e-9);
}

}  // namespace
}  // namespace parallax::model
