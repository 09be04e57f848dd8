// Memory model: per-layer activations built tensor by tensor must equal Korthikanti et al.'s closed
// forms; per-stage totals follow the ZeRO stage and the schedule.
#include "parallax/model/formulas.h"
#include "parallax/model/job_graph.h"
#include "parallax/model/memory_model.h"
#include "parallax/model/parameters.h"
#include "test_support.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace parallax::model {
namespace {

using parallax::testing::scenario_from_text;
using parallax::testing::small_scenario_text;

struct ActivationCase {
  int tp;
  bool sp;
  Layout::Recompute recompute;
};

class ActivationTest : public ::testing::TestWithParam<ActivationCase> {};

TEST_P(ActivationTest, LayerMatchesKorthikanti) {
  const auto c = GetParam();
  // GPT-3 175B shapes (Korthikanti's Table 3 model), micro-batch 1.
  Dims d{};
  d.L = 96;
  d.h = 12288;
  d.a = 96;
  d.f = 4 * d.h;
  d.s = 2048;
  d.V = 51200;
  d.b = 1;
  d.t = c.tp;
  d.sp = c.sp;
  d.e = 2;
  EXPECT_NEAR(layer_activation_bytes(d, c.recompute) / formulas::activation_bytes_per_layer(d, c.recompute), 1.0,
              1e-12);
}

INSTANTIATE_TEST_SUITE_P(
    Korthikanti, ActivationTest,
    ::testing::Values(ActivationCase{1, false, Layout::NO_RECOMPUTE}, ActivationCase{8, false, Layout::NO_RECOMPUTE},
                      ActivationCase{8, true, Layout::NO_RECOMPUTE}, ActivationCase{8, false, Layout::SELECTIVE},
                      ActivationCase{8, true, Layout::SELECTIVE}, ActivationCase{4, false, Layout::FULL},
                      ActivationCase{4, true, Layout::FULL}));

TEST(Memory, Gpt3ActivationsMatchKorthikantiTable) {
  // Korthikanti et al. 2022, §4.1: for GPT-3 175B (s 2048, h 12288, a 96, t 8, b 1) the per-layer
  // activations are sbh (10 + 24/t + 5as/(ht)) = 50.3M * (10 + 3 + 10) bytes without recompute and
  // 34 sbh / t with sequence parallelism and selective recompute.
  Dims d{};
  d.h = 12288;
  d.a = 96;
  d.f = 4 * d.h;
  d.s = 2048;
  d.b = 1;
  d.t = 8;
  d.e = 2;
  const double sbh = 2048.0 * 12288.0;
  EXPECT_DOUBLE_EQ(layer_activation_bytes(d, Layout::NO_RECOMPUTE), sbh * (10 + 3 + 5.0 * 96 * 2048 / (12288 * 8)));
  d.sp = true;
  EXPECT_DOUBLE_EQ(layer_activation_bytes(d, Layout::SELECTIVE), sbh * 34 / 8);
}

TEST(Memory, StageActivationsFollowTheSchedule) {
  for (const char* layout : {"dp: 1 tp: 2 pp: 4 micro_batch_size: 1 global_batch_size: 16",
                             "dp: 1 tp: 2 pp: 4 virtual_stages: 2 schedule: INTERLEAVED_1F1B micro_batch_size: 1 global_batch_size: 16",
                             "dp: 1 tp: 2 pp: 4 schedule: GPIPE micro_batch_size: 1 global_batch_size: 16"}) {
    const Scenario sc = scenario_from_text(small_scenario_text(layout));
    const Dims d = dims(sc);
    const MemoryEstimate est = estimate_memory(sc);
    // Stage 0 holds Korthikanti's layers' worth of micro-batch activations (plus the embedding mask).
    EXPECT_NEAR(est.stages[0].layers_in_flight, formulas::first_stage_layers_in_flight(d, sc.layout().schedule()),
                1e-9)
        << layout;
    // Plus at most one embedding dropout mask per chunk in flight.
    const double per_layer = formulas::activation_bytes_per_layer(d, sc.layout().recompute());
    const double chunks = est.stages[0].layers_in_flight / (static_cast<double>(d.L) / (d.p * d.v));
    const double embedding_mask = static_cast<double>(d.s) * d.b * d.h;
    EXPECT_GE(est.stages[0].activations, est.stages[0].layers_in_flight * per_layer) << layout;
    EXPECT_LE(est.stages[0].activations, est.stages[0].layers_in_flight * per_layer + chunks * embedding_mask)
        << layout;
    // Later stages hold fewer micro-batches under 1F1B: monotone non-increasing up to the last stage.
    if (sc.layout().schedule() == Layout::ONE_F_ONE_B) {
      for (std::size_t i = 1; i + 1 < est.stages.size(); ++i)
        EXPECT_LT(est.stages[i].layers_in_flight, est.stages[i - 1].layers_in_flight);
    }
  }
}

TEST(Memory, ZeroStagesShardStatesOverDataParallelRanks) {
  auto stage0 = [](int zero) {
    const Scenario sc = scenario_from_text(small_scenario_text(
        "dp: 8 tp: 1 pp: 1 micro_batch_size: 1 global_batch_size: 64 zero_stage: " + std::to_string(zero)));
    return estimate_memory(sc).stages[0];
  };
  const StageMemory z0 = stage0(0), z1 = stage0(1), z2 = stage0(2), z3 = stage0(3);
  const double params = z0.parameters;
  // bf16 weights and gradients, fp32 master + Adam moments: 2 + 2 + 12 bytes per parameter.
  EXPECT_DOUBLE_EQ(z0.weights, 2 * params);
  EXPECT_DOUBLE_EQ(z0.gradients, 2 * params);
  EXPECT_DOUBLE_EQ(z0.optimizer, 12 * params);
  EXPECT_DOUBLE_EQ(z1.optimizer, 12 * params / 8);
  EXPECT_DOUBLE_EQ(z1.gradients, 2 * params);
  EXPECT_DOUBLE_EQ(z2.gradients, 2 * params / 8);
  EXPECT_DOUBLE_EQ(z2.weights, 2 * params);
  EXPECT_DOUBLE_EQ(z3.weights, 2 * params / 8);
  EXPECT_GT(z3.transient, z2.transient);  // gathered layers
}

// What Adam keeps per parameter: fp32 master + m + v (12 B), Apex's 16-bit remainders of the master
// + m + v (10 B), or m and v in bf16 without a master (4 B); the optimizer step moves accordingly.
TEST(Memory, OptimizerStateFollowsTheFramework) {
  auto state = [](const std::string& layout) {
    const Scenario sc = scenario_from_text(
        small_scenario_text("dp: 8 tp: 1 pp: 1 micro_batch_size: 1 global_batch_size: 64 zero_stage: 1 " + layout));
    return std::pair{estimate_memory(sc).stages[0], optimizer_cost(sc.layout(), dims(sc))};
  };
  const auto [master, master_step] = state("");
  const auto [remainders, remainders_step] = state("optimizer_state: FP32_REMAINDERS");
  const auto [bf16, bf16_step] = state("optimizer_state: MODEL_PRECISION");
  const double params = master.parameters;
  EXPECT_DOUBLE_EQ(master.optimizer, 12 * params / 8);
  EXPECT_DOUBLE_EQ(remainders.optimizer, 10 * params / 8);
  EXPECT_DOUBLE_EQ(bf16.optimizer, 4 * params / 8);
  EXPECT_EQ(remainders.weights, master.weights);
  // Read master, grad, m, v and write them with the bf16 copy: 30 B; with remainders 28 B; in bf16 14 B.
  EXPECT_DOUBLE_EQ(master_step.step_bytes, 30);
  EXPECT_DOUBLE_EQ(remainders_step.step_bytes, 28);
  EXPECT_DOUBLE_EQ(bf16_step.step_bytes, 14);
  // The graph's optimizer step reads the same table.
  const Scenario sc = scenario_from_text(small_scenario_text(
      "dp: 8 tp: 1 pp: 1 micro_batch_size: 1 global_batch_size: 64 zero_stage: 1 optimizer_state: MODEL_PRECISION"));
  const JobGraph g = build_job_graph(sc);
  int steps = 0;
  for (const Task& t : g.tasks()) {
    if (t.op != Op::OptimizerStep) continue;
    ++steps;
    EXPECT_NEAR(static_cast<double>(t.bytes), 14 * params / 8, 1.0);
  }
  EXPECT_EQ(steps, 1);
}

TEST(Memory, RemaindersNeedABf16Model) {
  const std::string text = small_scenario_text("dp: 8 global_batch_size: 64 optimizer_state: FP32_REMAINDERS");
  std::string fp16 = text;
  fp16.replace(fp16.find("precision: BF16"), 15, "precision: FP16");
  EXPECT_THAT(parallax::testing::input_error([&] { scenario_from_text(fp16); }),
              ::testing::HasSubstr("layout.optimizer_state: FP32_REMAINDERS stores the low 16 bits"));
}

TEST(Memory, Gpt3On8GpusDoesNotFit) {
  // 175B parameters at 16 bytes each need 2.8 TB: 8 GPUs of 80 GB cannot hold it.
  const Scenario sc = parallax::testing::scenario_from_text(R"(
    model { num_layers: 96 hidden_size: 12288 num_heads: 96 seq_length: 2048 vocab_size: 51200 }
    cluster { preset: "dgx-a100-80g" num_nodes: 1 }
    layout { tp: 8 global_batch_size: 8 recompute: FULL })");
  const MemoryEstimate est = estimate_memory(sc);
  EXPECT_FALSE(est.fits());
  EXPECT_GT(est.peak().weights + est.peak().gradients + est.peak().optimizer, 16.0 * 174e9 / 8 * 0.99);
}

}  // namespace
}  // namespace parallax::model
