// The planner's fast estimator against the SimGrid simulator: within 5% where the network is
// uncontended (every row of validation/public.tsv, the bundled scenarios), and clearly apart where
// flows share a link, which is the effect only the simulator models.
#include "parallax/model/job_graph.h"
#include "parallax/model/validation_table.h"
#include "parallax/planner/estimate.h"
#include "parallax/sim/simulate.h"
#include "test_support.h"

#include <gtest/gtest.h>

namespace parallax::planner {
namespace {

using parallax::testing::scenario_from_text;

double simulated(const Scenario& sc) {
  return sim::simulate_in_subprocess(model::build_job_graph(sc)).report.step_time_s();
}

class EstimatorAgreement : public ::testing::TestWithParam<const char*> {};

TEST_P(EstimatorAgreement, WithinFivePercentOfTheSimulatorWithoutContention) {
  const Scenario sc = scenario_from_text(std::string(R"(
    model { num_layers: 8 hidden_size: 1024 num_heads: 16 seq_length: 1024 vocab_size: 8192 }
    cluster { preset: "dgx-a100-80g" num_nodes: 4 }
    layout { )") + GetParam() + " }");
  const double estimate = estimate_step(sc).step_s, simulation = simulated(sc);
  EXPECT_NEAR(estimate / simulation, 1.0, 0.05) << "estimate " << estimate << " s, simulation " << simulation << " s";
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, EstimatorAgreement,
    ::testing::Values("tp: 8 pp: 4 micro_batch_size: 1 global_batch_size: 16",
                      "tp: 4 pp: 2 dp: 4 micro_batch_size: 2 global_batch_size: 32 recompute: FULL",
                      "tp: 8 pp: 2 dp: 2 virtual_stages: 2 schedule: INTERLEAVED_1F1B micro_batch_size: 1 global_batch_size: 16",
                      "tp: 2 pp: 4 dp: 4 sequence_parallel: true recompute: SELECTIVE micro_batch_size: 1 global_batch_size: 32",
                      "tp: 8 dp: 4 zero_stage: 1 micro_batch_size: 2 global_batch_size: 32",
                      "tp: 8 pp: 4 schedule: GPIPE micro_batch_size: 1 global_batch_size: 8"));

TEST(Estimator, ZeroStagesAgreeWithinFivePercent) {
  // ZeRO-2/3 put per-layer gathers and reduce-scatters on the one DP stream (ZeRO-3 prefetching one
  // layer ahead in both passes); ZeRO-1/2 gather the updated parameters per bucket at the start of
  // the step and each layer's first forward waits for its bucket. The estimator times both.
  for (const char* layout : {"tp: 4 dp: 8 zero_stage: 2 micro_batch_size: 1 global_batch_size: 16",
                             "tp: 2 dp: 16 zero_stage: 3 recompute: FULL micro_batch_size: 1 global_batch_size: 16",
                             "tp: 1 dp: 32 zero_stage: 3 micro_batch_size: 1 global_batch_size: 32",
                             "tp: 1 dp: 32 zero_stage: 3 reshard_after_forward: false micro_batch_size: 1 global_batch_size: 32",
                             "tp: 2 pp: 2 dp: 8 virtual_stages: 2 schedule: INTERLEAVED_1F1B zero_stage: 1 "
                             "micro_batch_size: 1 global_batch_size: 16 grad_bucket_mb: 4",
                             // TE's userbuffer overlap: chunked GEMMs on fewer SMs, collectives beside them.
                             "tp: 8 dp: 4 sequence_parallel: true tp_comm_overlap: true micro_batch_size: 1 global_batch_size: 16"}) {
    const Scenario sc = scenario_from_text(std::string(R"(
      model { num_layers: 8 hidden_size: 1024 num_heads: 16 seq_length: 1024 vocab_size: 8192 }
      cluster { preset: "dgx-a100-80g" num_nodes: 4 }
      layout { )") + layout + " }");
    const double estimate = estimate_step(sc).step_s, simulation = simulated(sc);
    EXPECT_NEAR(estimate / simulation, 1.0, 0.05) << layout << ": estimate " << estimate << " s, simulation " << simulation << " s";
  }
}

TEST(Estimator, AgreesWithTheSimulatorOnPublishedRuns) {
  // Three rows of different shape (the whole table takes minutes to simulate; the estimator's value
  // for all 18 rows is in the planner's note).
  for (const auto& row : model::read_validation_table(parallax::testing::source_dir() / "validation" / "public.tsv")) {
    if (row.id != "N3" && row.id != "K2" && row.id != "K4") continue;
    const Scenario sc = model::validation_scenario(row);
    const double estimate = estimate_step(sc).step_s, simulation = simulated(sc);
    EXPECT_NEAR(estimate / simulation, 1.0, 0.05) << row.id;
  }
}

TEST(Estimator, ContentionIsWhereItDisagrees) {
  // Every node on its own leaf with an 8:1 oversubscribed uplink: the 8 data-parallel rings (one per
  // tensor rank) leave each node together and share one NIC's worth of uplink. The estimator sees each
  // ring alone on its NIC; only the simulator sees them contend.
  const Scenario oversubscribed = scenario_from_text(R"(
    model { num_layers: 8 hidden_size: 2048 num_heads: 16 seq_length: 1024 vocab_size: 8192 }
    cluster { preset: "dgx-a100-80g" num_nodes: 4 nics_per_node: 8
              inter_node { nodes_per_leaf: 1 oversubscription: 8 } }
    layout { tp: 8 dp: 4 micro_batch_size: 1 global_batch_size: 4 overlap_grad_reduce: false })");
  const double estimate = estimate_step(oversubscribed).step_s, simulation = simulated(oversubscribed);
  EXPECT_GT(simulation, estimate * 1.05) << "estimate " << estimate << " s, simulation " << simulation << " s";
}

TEST(Estimator, BreaksDownTheStep) {
  const StepEstimate e = estimate_step(model::load_scenario(parallax::testing::scenarios_dir() / "gpt3-175b-1024gpu.pbtxt"));
  EXPECT_GT(e.step_s, e.compute_s);
  EXPECT_GT(e.bubble_s, 0);
  EXPECT_GT(e.tp_comm_s, 0);
  EXPECT_GT(e.pp_comm_s, 0);
  EXPECT_GT(e.dp_comm_s, 0);
  EXPECT_FALSE(e.bottleneck.empty());
}

// A modern dense model (GQA, SwiGLU, RMSNorm, RoPE, flash attention, per-op selective recompute)
// builds, simulates and estimates, and the two agree as they do for GPT.
TEST(Estimator, Llama3EightBSimulatesAndEstimates) {
  const Scenario sc = model::load_scenario(parallax::testing::scenarios_dir() / "llama3-8b-64gpu.pbtxt");
  const sim::SimulationResult result = sim::simulate_in_subprocess(model::build_job_graph(sc));
  const double simulation = result.report.step_time_s();
  EXPECT_NEAR(result.report.parameters() / 8.03e9, 1.0, 0.005);
  EXPECT_GT(result.report.mfu(), 0.2);
  EXPECT_LT(result.report.mfu(), 0.8);
  const StepEstimate e = estimate_step(sc);
  EXPECT_GT(e.step_s, 0);
  EXPECT_NEAR(e.step_s / simulation, 1.0, 0.1) << "estimate " << e.step_s << " s, simulation " << simulation << " s";
}

// Mixture of Experts: the estimator times each kind of layer (dense leading layers, MoE layers,
// sliding-window ones) from a few-layer graph, the dispatch and combine all-to-alls on the ep group
// from the one network cost model, and the experts' gradients over expert dp after the dense
// buckets. Uncontended (ep within a node, or one GPU per node's NIC), it agrees with the simulator.
TEST(Estimator, MixtureOfExpertsLayoutsAgreeWithinFivePercent) {
  const std::string moe_model = R"(
    model { num_layers: 8 hidden_size: 1024 num_heads: 16 seq_length: 1024 vocab_size: 8192 activation: SWIGLU
            normalization: RMSNORM attention_kernel: FLASH ffn_hidden_size: 2816 num_experts: 8 moe_top_k: 2
            moe_ffn_hidden_size: 1024 )";
  const struct {
    const char* model_extra;
    const char* layout;
  } cases[] = {
      {"", "dp: 32 ep: 8 zero_stage: 1 micro_batch_size: 1 global_batch_size: 64"},
      // The all-gather dispatcher.
      {"", "dp: 32 ep: 8 moe_dispatcher: ALLGATHER micro_batch_size: 1 global_batch_size: 32"},
      // ep 1: every expert local; FP8 casts its eight experts' weights with the first micro-batch only.
      {"precision: FP8", "dp: 32 micro_batch_size: 1 global_batch_size: 256"},
      // A dense first layer, a shared expert, a skew of 2: the busiest expert sets the pace.
      {"moe_dense_layers: 1 num_shared_experts: 1 moe_routing_skew: 2",
       "tp: 2 pp: 2 dp: 8 sequence_parallel: true ep: 4 zero_stage: 1 micro_batch_size: 1 global_batch_size: 32"},
      {"", "tp: 2 pp: 2 dp: 8 virtual_stages: 2 schedule: INTERLEAVED_1F1B sequence_parallel: true ep: 8 "
           "micro_batch_size: 1 global_batch_size: 16"},
      // Multi-head latent attention with a dense first layer and a shared expert (DeepSeek-V3's shape).
      {"moe_dense_layers: 1 num_shared_experts: 1 q_lora_rank: 256 kv_lora_rank: 128 qk_nope_head_dim: 64 "
       "qk_rope_head_dim: 32 v_head_dim: 64",
       "tp: 2 sequence_parallel: true dp: 16 ep: 8 zero_stage: 1 micro_batch_size: 1 global_batch_size: 32"},
      // Sliding-window layers every other layer (GPT-OSS's pattern).
      {"sliding_window: 128 sliding_window_pattern: 2 attention_sinks: true", "pp: 4 dp: 8 ep: 8 micro_batch_size: 1 global_batch_size: 32"},
      // Multi-token prediction: a module (its MoE layer, eh_proj, a second output head) on the last stage.
      {"mtp_layers: 1", "pp: 2 dp: 16 ep: 8 zero_stage: 1 micro_batch_size: 1 global_batch_size: 32"},
      // Expert tensor parallelism: the received tokens gathered over etp 2 and scattered back.
      {"add_bias_linear: false",
       "tp: 4 sequence_parallel: true dp: 8 ep: 4 etp: 2 zero_stage: 1 micro_batch_size: 1 global_batch_size: 16"},
  };
  for (const auto& c : cases) {
    const Scenario sc = scenario_from_text(moe_model + c.model_extra + R"( }
      cluster { preset: "dgx-h100" num_nodes: 4 }
      layout { )" + c.layout + " }");
    const StepEstimate e = estimate_step(sc);
    const double simulation = simulated(sc);
    EXPECT_NEAR(e.step_s / simulation, 1.0, 0.05)
        << c.model_extra << " / " << c.layout << ": estimate " << e.step_s << " s, simulation " << simulation << " s";
    EXPECT_EQ(e.ep_comm_s > 0, sc.layout().ep() > 1) << c.layout;
  }
}

// Expert parallelism over nodes behind a slow NIC: the all-to-alls dominate and the estimate says so.
TEST(Estimator, NamesTheAllToAllWhenItDominates) {
  const Scenario sc = scenario_from_text(R"(
    model { num_layers: 4 hidden_size: 1024 num_heads: 16 seq_length: 2048 vocab_size: 8192 activation: SWIGLU
            num_experts: 32 moe_top_k: 8 moe_ffn_hidden_size: 512 }
    cluster { preset: "dgx-h100" num_nodes: 4 nic_gbit_per_s: 25 }
    layout { dp: 32 ep: 32 micro_batch_size: 1 global_batch_size: 32 })");
  const StepEstimate e = estimate_step(sc);
  EXPECT_EQ(e.bottleneck, "expert all-to-all (MoE dispatch and combine)");
  EXPECT_GT(e.ep_comm_s, 0.5 * e.compute_s);
  const double simulation = simulated(sc);
  EXPECT_NEAR(e.step_s / simulation, 1.0, 0.10) << "estimate " << e.step_s << " s, simulation " << simulation << " s";
}

}  // namespace
}  // namespace parallax::planner
