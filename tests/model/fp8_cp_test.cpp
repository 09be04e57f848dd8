// FP8 training and context parallelism in the model: FP8 GEMMs timed at the FP8 peak with the FP8
// table, each tensor counted at its precision, TE's casts in the graph; the sequence split over cp
// ranks (activation memory by hand), the K/V ring's tasks and bytes, gradients over dp x cp; and the
// refusals (FP8 without FP8 tensor cores, a seq_length that does not split, cp without a fused kernel).
#include "parallax/model/cost_model.h"
#include "parallax/model/job_graph.h"
#include "parallax/model/job_size.h"
#include "parallax/model/layer.h"
#include "parallax/model/memory_model.h"
#include "parallax/model/parameters.h"
#include "parallax/model/stage_partition.h"
#include "test_support.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

namespace parallax::model {
namespace {

using parallax::testing::scenario_from_text;

// A Llama-shaped model (GQA, SwiGLU, RMSNorm, RoPE, flash, no bias, no dropout) on one DGX H100.
std::string llama(const std::string& precision, const std::string& layout, const std::string& model_extra = "",
                  const std::string& cluster = R"(preset: "dgx-h100" num_nodes: 1)") {
  return R"(model { num_layers: 4 hidden_size: 2048 num_heads: 16 num_query_groups: 4 ffn_hidden_size: 5632
                    seq_length: 4096 vocab_size: 32000 activation: SWIGLU normalization: RMSNORM
                    attention_kernel: FLASH position_embedding: ROPE add_bias_linear: false dropout: false
                    tied_embeddings: false precision: )" +
         precision + " " + model_extra + " }\ncluster { " + cluster + " }\nlayout { " + layout + " }";
}

const Task* find(const JobGraph& g, Op op, Phase phase, GemmRole role = GemmRole::Forward) {
  for (const Task& t : g.tasks())
    if (t.op == op && t.phase == phase && t.role == role && t.layer >= 0) return &t;
  return nullptr;
}

TEST(Fp8, LinearGemmsRunAtTheFp8PeakAtTheTablesEfficiency) {
  const Scenario sc = scenario_from_text(llama("FP8", "tp: 2 sequence_parallel: true dp: 4 global_batch_size: 8"));
  const JobGraph g = build_job_graph(sc);
  const CostModel cost(sc.cluster().gpu(), sc.model().precision());
  const GpuSpec& gpu = sc.cluster().gpu();
  const double overhead = gpu.kernel_overhead_us() * 1e-6;
  EXPECT_DOUBLE_EQ(cost.peak_flops(), gpu.peak_bf16_tflops() * 1e12);  // everything else stays BF16
  EXPECT_DOUBLE_EQ(cost.fp8_peak_flops(), gpu.peak_fp8_tflops() * 1e12);
  for (Op op : {Op::Qkv, Op::AttnProj, Op::Fc1, Op::Fc2}) {
    for (auto [phase, role] : {std::pair{FORWARD, GemmRole::Forward}, {BACKWARD, GemmRole::InputGrad},
                               {BACKWARD, GemmRole::WeightGrad}}) {
      const Task* t = find(g, op, phase, role);
      ASSERT_NE(t, nullptr) << op_name(op);
      EXPECT_TRUE(t->fp8) << op_name(op);
      const double m = static_cast<double>(t->gemm_m) * std::max(1u, t->gemm_batch);
      const double eff = cost.fp8_gemm_efficiency(m, t->gemm_n, t->gemm_k);
      EXPECT_GT(eff, 0.0);
      EXPECT_LT(std::abs(eff - cost.gemm_efficiency(m, t->gemm_n, t->gemm_k)), 0.5);  // its own table
      // Large GEMMs: compute-bound, so the roofline's memory side does not decide.
      EXPECT_NEAR(cost.duration(*t), t->flops / (gpu.peak_fp8_tflops() * 1e12 * eff) + overhead, 1e-12)
          << op_name(op);
    }
  }
  // The attention kernel and the logits stay on the BF16 peak.
  const Task* logits = nullptr;
  for (const Task& t : g.tasks())
    if (t.op == Op::Logits && t.phase == FORWARD) logits = &t;
  ASSERT_NE(logits, nullptr);
  EXPECT_FALSE(logits->fp8);
  const Task* flash = find(g, Op::FlashAttention, FORWARD);
  ASSERT_NE(flash, nullptr);
  EXPECT_FALSE(flash->fp8);
  const double fa_eff = cost.flash_attention_efficiency(flash->gemm_m, flash->gemm_k, false);
  EXPECT_NEAR(cost.duration(*flash), flash->flops / (gpu.peak_bf16_tflops() * 1e12 * fa_eff) + overhead, 1e-12);
  // The same job in BF16 has the same GEMMs, none in FP8, and no casts.
  const JobGraph bf16 = build_job_graph(scenario_from_text(llama("BF16", "tp: 2 sequence_parallel: true dp: 4 global_batch_size: 8")));
  int casts = 0, fp8_gemms = 0;
  for (const Task& t : g.tasks()) {
    casts += t.op == Op::Fp8Cast;
    fp8_gemms += t.fp8;
  }
  for (const Task& t : bf16.tasks()) EXPECT_FALSE(t.fp8 || t.op == Op::Fp8Cast);
  // 4 layers x 2 micro-batches (global 8 / dp 4) x 4 linears: a forward and a backward cast each, and
  // their three GEMMs in FP8.
  EXPECT_EQ(casts, 4 * 2 * 4 * 2);
  EXPECT_EQ(fp8_gemms, 4 * 2 * 4 * 3);
  EXPECT_EQ(g.num_tasks(), bf16.num_tasks() + static_cast<std::size_t>(casts));
  EXPECT_EQ(estimate_job_size(sc).tasks, g.num_tasks());  // the size check counts them too
}

// Each tensor at its precision: TE keeps an FP8 copy of each linear's weight with its transpose (2 B
// per parameter beside the BF16 weight; instead of it with fp8_params), and the FP8 copies of the
// linears' inputs for the backward (1 B per element instead of 2); gradients and Adam's states as in
// BF16.
TEST(Fp8, MemoryCountsEachTensorAtItsPrecision) {
  const std::string layout = "tp: 2 sequence_parallel: true dp: 4 global_batch_size: 8 zero_stage: 1";
  const Scenario bf16 = scenario_from_text(llama("BF16", layout));
  const Scenario fp8 = scenario_from_text(llama("FP8", layout));
  const Scenario fp8_params = scenario_from_text(llama("FP8", layout, "fp8_params: true"));
  const MemoryEstimate a = estimate_memory(bf16), b = estimate_memory(fp8), c = estimate_memory(fp8_params);
  const Dims d = dims(bf16);
  const double linear = describe_layer(d).sharded_parameters();  // qkv, proj, fc1, fc2 on one TP rank
  const double layers = static_cast<double>(stage_partition(bf16).stage_layers(0));
  EXPECT_NEAR(b.stages[0].weights - a.stages[0].weights, 2.0 * linear * layers, 1.0);
  EXPECT_NEAR(c.stages[0].weights, a.stages[0].weights, 1.0);
  EXPECT_DOUBLE_EQ(b.stages[0].gradients, a.stages[0].gradients);
  EXPECT_DOUBLE_EQ(b.stages[0].optimizer, a.stages[0].optimizer);
  // Activations: the four GEMM inputs at 1 B. By hand, per micro-batch on one TP rank (s b = 4096
  // tokens, h 2048, a 16 heads of 128, f 5632, t 2, sequence parallel): QKV and FC1 inputs s b h / t,
  // projection input s b h / t, FC2 input s b f / t elements.
  const Dims f8 = dims(fp8);
  const double sb = 4096, h = 2048, f = 5632, t = 2;
  const double gemm_inputs_bf16 = 2 * (sb * h / t + sb * h / t + sb * h / t + sb * f / t);
  EXPECT_NEAR(layer_activation_bytes(d, Layout::NO_RECOMPUTE) - layer_activation_bytes(f8, Layout::NO_RECOMPUTE),
              gemm_inputs_bf16 / 2, 1e-6);
}

TEST(Fp8, RefusedOnAGpuWithoutFp8TensorCores) {
  try {
    scenario_from_text(llama("FP8", "dp: 8 global_batch_size: 8", "", R"(preset: "dgx-a100-80g" num_nodes: 1)"));
    FAIL() << "FP8 on an A100 was accepted";
  } catch (const InputError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("cluster.gpu.peak_fp8_tflops"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("no FP8 tensor cores"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("model.precision BF16"));
  }
}

// Context parallelism: cp 2 holds s / 2 tokens of each sequence, so a layer's activations are those of
// the same layer at seq_length s / 2. By hand for this model (no recompute, tp 1, 2 B per element,
// s' = s / cp tokens, b 1): both norms' inputs (the first is the layer input), the QKV and FC1
// inputs: 4 x 2 s' h; Q
// and K 2 s' (a + g) d, V 2 s' g d, logsumexp 4 a s'; projection input 2 s' a d; SwiGLU input 2 s' 2f;
// FC2 input 2 s' f.
TEST(ContextParallel, ActivationMemoryIsTheHandFormula) {
  for (int cp : {1, 2, 4}) {
    const Scenario sc = scenario_from_text(llama("BF16", "cp: " + std::to_string(cp) + " dp: " + std::to_string(8 / cp) +
                                                             " global_batch_size: " + std::to_string(8 / cp)));
    const Dims d = dims(sc);
    EXPECT_EQ(d.c, cp);
    EXPECT_EQ(d.gpus, 8);
    const double s = 4096.0 / cp, h = 2048, a = 16, g = 4, dh = 128, f = 5632;
    const double hand = 4 * 2 * s * h + 2 * s * (a + g) * dh + 2 * s * g * dh + 4 * a * s + 2 * s * a * dh +
                        2 * s * 2 * f + 2 * s * f;
    EXPECT_NEAR(layer_activation_bytes(d, Layout::NO_RECOMPUTE), hand, 1e-6) << "cp " << cp;
  }
}

// The ring: per layer and micro-batch, cp flash kernels forward with cp - 1 K/V exchanges between
// them; backward cp kernels, cp - 1 K/V exchanges and cp dK/dV exchanges; each exchange one rank's K
// and V: 2 x b x (s / cp) x (g / t) x d x 2 B, on the CP group. Gradients reduce over dp x cp.
TEST(ContextParallel, RingTasksAndBytes) {
  for (int cp : {2, 4}) {
    const Scenario sc =
        scenario_from_text(llama("BF16", "cp: " + std::to_string(cp) + " dp: " + std::to_string(8 / cp) +
                                             " global_batch_size: " + std::to_string(8 / cp) + " zero_stage: 1"));
    const JobGraph g = build_job_graph(sc);
    std::map<std::pair<int, int>, int> kernels, exchanges;  // by (layer, phase)
    const double kv = 2.0 * 1 * (4096.0 / cp) * 4 * 128 * 2;
    int dp_collectives = 0;
    for (const Task& t : g.tasks()) {
      if (t.microbatch != 0 && t.microbatch != -1) continue;
      if (t.op == Op::FlashAttention) ++kernels[{t.layer, t.phase}];
      if (t.op == Op::CpKvExchange) {
        ++exchanges[{t.layer, t.phase}];
        EXPECT_EQ(t.collective, RING_EXCHANGE);
        EXPECT_EQ(t.group, GROUP_CP);
        EXPECT_EQ(t.stream, CP_COMM);
        EXPECT_DOUBLE_EQ(static_cast<double>(t.bytes), kv);
      }
      if (t.stream == DP_COMM) {
        ++dp_collectives;
        EXPECT_EQ(t.group, GROUP_DP_CP) << g.task_name(static_cast<std::uint32_t>(&t - g.tasks().data()));
      }
      if (t.op == Op::FlashAttention) {
        EXPECT_EQ(t.gemm_m, static_cast<std::uint32_t>(4096 / cp));
      }
    }
    EXPECT_GT(dp_collectives, 0);
    for (int layer = 0; layer < 4; ++layer) {
      EXPECT_EQ((kernels[{layer, FORWARD}]), cp);
      EXPECT_EQ((kernels[{layer, BACKWARD}]), cp);
      EXPECT_EQ((exchanges[{layer, FORWARD}]), cp - 1);
      EXPECT_EQ((exchanges[{layer, BACKWARD}]), 2 * cp - 1);
    }
    EXPECT_EQ(estimate_job_size(sc).tasks, g.num_tasks());
    // The FLOPs per sequence are those of cp 1 (the attention's: cp ranks x cp steps x (s / cp)^2):
    // 8 / cp sequences here, 8 there.
    const JobGraph one = build_job_graph(scenario_from_text(llama("BF16", "dp: 8 global_batch_size: 8 zero_stage: 1")));
    EXPECT_NEAR(g.model_flops() * cp / one.model_flops(), 1.0, 1e-12);
  }
}

// The job size check counts what the builder emits, with and without symmetry, for FP8 and cp
// layouts of every kind the builder branches on.
TEST(ContextParallel, JobSizeCountsTheBuildersTasks) {
  for (const char* layout :
       {"cp: 2 dp: 4 global_batch_size: 8", "cp: 4 tp: 2 sequence_parallel: true global_batch_size: 2 zero_stage: 1",
        "cp: 2 pp: 2 dp: 2 schedule: INTERLEAVED_1F1B virtual_stages: 2 global_batch_size: 8 recompute: FULL",
        "cp: 2 dp: 4 global_batch_size: 8 zero_stage: 3 recompute: SELECTIVE selective_policy: PER_OP",
        "cp: 2 tp: 2 dp: 2 sequence_parallel: true tp_comm_overlap: true global_batch_size: 4 zero_stage: 2"}) {
    for (const char* precision : {"BF16", "FP8"}) {
      for (const bool symmetry : {true, false}) {
        const Scenario sc = scenario_from_text(llama(precision, layout) +
                                               (symmetry ? "" : "\noptions { use_symmetry: false }"));
        const JobGraph g = build_job_graph(sc);
        const JobSizeEstimate est = estimate_job_size(sc);
        EXPECT_EQ(est.tasks, g.num_tasks()) << layout << " " << precision << " symmetry " << symmetry;
        EXPECT_EQ(est.expanded_tasks, g.expanded_tasks()) << layout << " " << precision;
        EXPECT_LE(g.num_edges(), est.edges) << layout << " " << precision;
      }
    }
  }
}

TEST(ContextParallel, BadLayoutsAreRefused) {
  auto refused = [](const std::string& text, const std::vector<std::string>& parts) {
    try {
      scenario_from_text(text);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const InputError& e) {
      for (const auto& p : parts) EXPECT_THAT(e.what(), ::testing::HasSubstr(p));
    }
  };
  // seq 4096 over 2 x cp = 6 chunks does not divide.
  refused(llama("BF16", "cp: 3 dp: 1 global_batch_size: 1", "", R"(preset: "dgx-h100" num_nodes: 1 gpus_per_node: 3)"),
          {"layout.cp", "2 x cp = 6", "seq_length 4096"});
  // The unfused kernel cannot run the ring.
  refused(R"(model { num_layers: 2 hidden_size: 1024 num_heads: 8 seq_length: 2048 vocab_size: 1024 }
             cluster { preset: "dgx-h100" num_nodes: 1 gpus_per_node: 2 }
             layout { cp: 2 global_batch_size: 1 })",
          {"layout.cp", "UNFUSED", "FLASH"});
}

}  // namespace
}  // namespace parallax::model
