// model::LayerDescription: the one description of a transformer layer, its backward by rule, and the
// parameter counts, FLOPs and activation memory of modern dense models (Llama 3, Nemotron-4) that
// follow from it.
#include "parallax/model/layer.h"

#include "parallax/model/cost_model.h"
#include "parallax/model/formulas.h"
#include "parallax/model/job_graph.h"
#include "parallax/model/job_size.h"
#include "parallax/model/memory_model.h"
#include "parallax/model/parameters.h"
#include "parallax/model/presets.h"
#include "test_support.h"

#include <gmock/gmock.h>

#include <algorithm>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace parallax::model {
namespace {

using ::testing::HasSubstr;
using parallax::testing::input_error;
using parallax::testing::scenario_from_text;

// The Dims of a model preset with a layout (not validated: only the layer's shape matters here).
Dims preset_dims(const std::string& preset, int tp = 1, bool sp = false) {
  Scenario sc;
  *sc.mutable_model() = load_model(preset);
  sc.mutable_layout()->set_tp(tp);
  sc.mutable_layout()->set_sequence_parallel(sp);
  sc.mutable_layout()->set_global_batch_size(1);
  return dims(sc);
}

const LayerOp& find_op(const LayerDescription& layer, Op op) {
  const auto it = std::find_if(layer.ops.begin(), layer.ops.end(), [&](const LayerOp& o) { return o.op == op; });
  if (it == layer.ops.end()) throw std::runtime_error("no such op in the layer");
  return *it;
}

// ---- parameters of the published models ----

struct PublishedCount {
  const char* preset;
  double parameters;
};

class PublishedParameters : public ::testing::TestWithParam<PublishedCount> {};

TEST_P(PublishedParameters, WithinHalfAPercent) {
  const Dims d = preset_dims(GetParam().preset);
  const double counted = total_parameters(d, d.tied);
  EXPECT_NEAR(counted / GetParam().parameters, 1.0, 0.005) << GetParam().preset << ": " << counted;
  // The closed form sums the same tensors.
  EXPECT_NEAR(formulas::parameters(d) / counted, 1.0, 1e-9) << GetParam().preset;
}

// Llama 3: Dubey et al. 2024 and the released checkpoints (8.03B, 70.6B, 405.9B). Nemotron-4 15B:
// 12.5B non-embedding + 3.2B embedding (Parmar et al. 2024); 340B: 341B (NVIDIA 2024).
INSTANTIATE_TEST_SUITE_P(Presets, PublishedParameters,
                         ::testing::Values(PublishedCount{"llama3-8b", 8.03e9}, PublishedCount{"llama3-70b", 70.6e9},
                                           PublishedCount{"llama3.1-405b", 405.9e9},
                                           PublishedCount{"nemotron4-15b", 15.7e9},
                                           PublishedCount{"nemotron4-340b", 341e9}));

TEST(Layer, Llama3EightBLayerParametersByHand) {
  const Dims d = preset_dims("llama3-8b", 4);
  const ParameterShard p = layer_parameters(d);
  // QKV 4096 x (32 + 2 * 8) * 128, projection 4096 x 4096, SwiGLU 3 x 4096 x 14336, split over tp 4;
  // two RMSNorms of 4096 replicated; no biases.
  EXPECT_DOUBLE_EQ(p.sharded, (4096.0 * 6144 + 4096.0 * 4096 + 3 * 4096.0 * 14336) / 4);
  EXPECT_DOUBLE_EQ(p.replicated, 2 * 4096.0);
  // Untied: the output layer has its own V x h, the vocabulary padded to a multiple of 128 * 4:
  // 128256 -> 128512.
  EXPECT_DOUBLE_EQ(output_parameters(d, false).sharded, 128512.0 * 4096 / 4);
  EXPECT_DOUBLE_EQ(embedding_parameters(d).replicated, 0);  // RoPE: no position table
}

TEST(Layer, VocabularyPaddedAsMegatron) {
  Scenario sc;
  *sc.mutable_model() = load_model("gpt2-1.5b");
  sc.mutable_model()->set_make_vocab_size_divisible_by(128);
  sc.mutable_layout()->set_tp(2);
  sc.mutable_layout()->set_global_batch_size(1);
  // 50257 up to a multiple of 128 * 2 = 256: 50432, Megatron's padded GPT-2 vocabulary at tp 2.
  EXPECT_EQ(padded_vocab(dims(sc)), 50432);
  EXPECT_DOUBLE_EQ(embedding_parameters(dims(sc)).word, 50432.0 * 1600 / 2);
  sc.mutable_model()->set_make_vocab_size_divisible_by(1);
  EXPECT_EQ(padded_vocab(dims(sc)), 50258);  // a multiple of tp only
}

// ---- backward by rule ----

TEST(Layer, BackwardOfEachOpFollowsTheRule) {
  const Dims d = preset_dims("gpt3-175b", 8);
  const LayerDescription layer = describe_layer(d);
  for (const LayerOp& op : layer.ops) {
    const std::vector<BackwardStep> steps = backward_of(op);
    if (!op.is_gemm) {
      ASSERT_EQ(steps.size(), 1u) << op_name(op.op);
      EXPECT_FALSE(steps[0].is_gemm);
      EXPECT_DOUBLE_EQ(steps[0].flops, static_cast<double>(op.elements) * op.backward.flops_per_element);
      continue;
    }
    ASSERT_EQ(steps.size(), 2u) << op_name(op.op);
    const GemmShape& y = op.gemm;
    // dX = dY W^T: GEMM(m, k, n).
    EXPECT_EQ(steps[0].role, GemmRole::InputGrad);
    EXPECT_EQ(steps[0].gemm, (GemmShape{y.m, y.k, y.n, y.batch})) << op_name(op.op);
    EXPECT_EQ(steps[1].role, GemmRole::WeightGrad);
    if (op.transposed_operand) {
      // S = Q K^T: dK = dS^T Q, GEMM(n, k, m).
      EXPECT_EQ(steps[1].gemm, (GemmShape{y.n, y.k, y.m, y.batch})) << op_name(op.op);
    } else {
      // dW = X^T dY: GEMM(k, n, m).
      EXPECT_EQ(steps[1].gemm, (GemmShape{y.k, y.n, y.m, y.batch})) << op_name(op.op);
    }
    // Backward of a GEMM is twice its forward.
    EXPECT_DOUBLE_EQ(steps[0].flops + steps[1].flops, 2 * y.flops()) << op_name(op.op);
  }
  // The shapes the builder always used for GPT-3 at tp 8 (b s = 2048, h = 12288, f = 4h, d = 128,
  // 12 heads per rank).
  EXPECT_EQ(backward_of(find_op(layer, Op::Qkv))[1].gemm, (GemmShape{12288, 3 * 12288 / 8, 2048, 1}));
  EXPECT_EQ(backward_of(find_op(layer, Op::Fc2))[0].gemm, (GemmShape{2048, 4 * 12288 / 8, 12288, 1}));
  EXPECT_EQ(backward_of(find_op(layer, Op::AttnScores))[1].gemm, (GemmShape{2048, 128, 2048, 12}));
  EXPECT_EQ(backward_of(find_op(layer, Op::AttnContext))[0].gemm, (GemmShape{2048, 2048, 128, 12}));
}

TEST(Layer, FlashAttentionIsOneFusedKernelEachWay) {
  const Dims d = preset_dims("llama3-8b", 2);
  const LayerDescription layer = describe_layer(d);
  EXPECT_TRUE(std::none_of(layer.ops.begin(), layer.ops.end(), [](const LayerOp& o) {
    return o.op == Op::AttnScores || o.op == Op::Softmax || o.op == Op::AttnDropout || o.op == Op::AttnContext;
  }));
  const LayerOp& fa = find_op(layer, Op::FlashAttention);
  // Causal half of 4 b s^2 d heads (16 heads per rank at tp 2).
  const double forward = 4.0 * 8192 * 8192 * 128 * 16 / 2;
  EXPECT_DOUBLE_EQ(fa.fused_forward_flops, forward);
  const auto steps = backward_of(fa);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_DOUBLE_EQ(steps[0].flops, 2.5 * forward);  // 5 matmuls against 2
  // GQA: QKV is (32 + 2 * 8) heads of 128 wide over tp 2; RoPE rotates q and k.
  EXPECT_EQ(find_op(layer, Op::Qkv).gemm, (GemmShape{8192, 48 * 128 / 2, 4096, 1}));
  EXPECT_EQ(find_op(layer, Op::Rope).elements, 8192 * 40 * 128 / 2);
  EXPECT_EQ(find_op(layer, Op::Fc1).gemm, (GemmShape{8192, 2 * 14336 / 2, 4096, 1}));  // gate and up
  EXPECT_EQ(find_op(layer, Op::Swiglu).elements, 8192 * 14336 / 2);
  EXPECT_EQ(find_op(layer, Op::RmsNorm).replicated_parameters, 4096);
}

// ---- FLOPs ----

TEST(Layer, ModelFlopsPerTokenOfLlama3EightB) {
  const Dims d = preset_dims("llama3-8b");
  // 6 N (matmul weights, output layer included) + 6 L s a d (causal attention, three times its
  // forward of 2 s a d per token).
  const double L = 32, h = 4096, s = 8192, V = 128256;
  const double n = L * (h * 6144 + 4096 * h + 3 * h * 14336) + V * h;
  EXPECT_NEAR(formulas::model_flops_per_token(d) / (6 * n + 6 * L * s * 32 * 128), 1.0, 1e-12);

  // The graph's model FLOPs (the flash backward without its in-kernel recompute) agree within 1%.
  const Scenario sc = load_scenario(parallax::testing::scenarios_dir() / "llama3-8b-64gpu.pbtxt");
  const JobGraph g = build_job_graph(sc);
  const Dims sd = dims(sc);
  const double tokens = static_cast<double>(sd.B) * sd.s;
  EXPECT_NEAR(g.model_flops() / tokens / formulas::model_flops_per_token(sd), 1.0, 0.01);
  EXPECT_NEAR(g.model_flops() / formulas::flops_per_iteration(sd, false), 1.0, 0.01);
  // Hardware FLOPs add the flash kernel's recompute of the scores (half a forward) and the per-op
  // selective recompute's re-run GEMMs: torchtitan's wk (h x 8 kv heads x 128) and w3 (h x f) on
  // every token of every layer; not the projection with sequence parallelism (its reduce-scatter
  // output is kept).
  const double flash_recompute = 0.5 * 4.0 * 8192 * 8192 * 128 * 32 / 2 * 32 * sd.B;
  const double rerun = 2.0 * 4096 * (8 * 128 + 14336) * 32 * 8192 * sd.B;
  EXPECT_NEAR((g.hardware_flops() - g.model_flops()) / (flash_recompute + rerun), 1.0, 1e-9);
}

TEST(Layer, GptClosedFormsUnchanged) {
  // The GPT special case keeps Narayanan's formula; the general one equals it.
  Dims d = preset_dims("gpt3-175b");
  d.B = 1536;
  const double narayanan = 72.0 * 1536 * 2048 * 96 * 12288.0 * 12288 * (1 + 2048 / (6 * 12288.0) + 51200 / (12 * 96 * 12288.0));
  EXPECT_DOUBLE_EQ(formulas::flops_per_iteration(d, false), narayanan);
  EXPECT_NEAR(formulas::model_flops_per_token(d) * d.B * d.s / narayanan, 1.0, 1e-12);
}

// ---- activation memory ----

struct FlashCase {
  int tp;
  bool sp;
};
class FlashActivations : public ::testing::TestWithParam<FlashCase> {};

TEST_P(FlashActivations, LlamaLayerMatchesHandDerivedFormula) {
  const auto [tp, sp] = GetParam();
  Dims d = preset_dims("llama3-70b", tp, sp);
  ASSERT_FALSE(d.dropout);  // Llama 3 trains without dropout
  d.b = 2;
  const double s = 8192, b = 2, h = 8192, a = 64, g = 8, dh = 128, f = 28672, t = tp;
  const double sbh = s * b * h, o = sp ? t : 1.0;
  for (const bool dropout : {false, true}) {
    d.dropout = dropout;
    d.selective_policy = Layout::CORE_ATTENTION;
    const double masks = dropout ? 2 * sbh / o : 0.0;  // two 1-byte dropout masks, outside the TP regions
    // Korthikanti's 34 sbh without the 5as/h scores term, adjusted:
    //   outside the TP regions (divided by t only with SP): norm 1 input 2sbh, QKV input 2sbh, (the
    //   dropout masks), norm 2 input 2sbh, FC1 input 2sbh = 8 sbh (+ 2 sbh of masks);
    //   inside: Q and K 2 sb (a + g) d, V 2 sb g d, the attention output (projection input) 2 sb a d,
    //   the softmax logsumexp 4 b a s (fp32), the SwiGLU input 2 sb 2f, the FC2 input 2 sb f.
    const double expected = 8 * sbh / o + masks +
                            (2 * s * b * (a + g) * dh + 2 * s * b * g * dh + 2 * s * b * a * dh + 4 * b * a * s +
                             2 * s * b * 2 * f + 2 * s * b * f) / t;
    EXPECT_NEAR(layer_activation_bytes(d, Layout::NO_RECOMPUTE) / expected, 1.0, 1e-12) << dropout;
    // With flash attention there is no s x s tensor: selective (core attention) recompute keeps the same.
    EXPECT_DOUBLE_EQ(layer_activation_bytes(d, Layout::SELECTIVE), layer_activation_bytes(d, Layout::NO_RECOMPUTE));
    EXPECT_DOUBLE_EQ(layer_activation_bytes(d, Layout::FULL), 2 * sbh / o);
    // Per-op selective recompute (torchtitan): the layer input, Q and V (wq's and wv's outputs; wk's
    // is re-run), the attention output and logsumexp, the gate half of the FC1 output (w1's; w3's is
    // re-run), the FC2 output on every TP rank (w2's, cached by SAC), the dropout masks; with SP the
    // two reduce-scatter outputs.
    d.selective_policy = Layout::PER_OP;
    const double per_op = 2 * sbh / o + masks +
                          (2 * s * b * a * dh + 2 * s * b * g * dh + 2 * s * b * a * dh + 4 * b * a * s +
                           2 * s * b * f) / t +
                          2 * sbh + (sp ? 4 * sbh / t : 0.0);
    EXPECT_NEAR(layer_activation_bytes(d, Layout::SELECTIVE) / per_op, 1.0, 1e-12) << dropout;
  }
}

// Without dropout the residual branches are plain adds (no mask, 3 elements' bytes forward) and the
// unfused attention core has no dropout op: its context GEMM reads the kept softmax output.
TEST(Layer, WithoutDropoutNoMasksAndNoAttentionDropout) {
  Dims d = preset_dims("llama3-8b", 1);
  d.attention = ModelSpec::UNFUSED;
  d.dropout = true;
  const LayerDescription with = describe_layer(d);
  d.dropout = false;
  const LayerDescription without = describe_layer(d);
  auto count = [](const LayerDescription& l, Op op) {
    return std::count_if(l.ops.begin(), l.ops.end(), [&](const LayerOp& o) { return o.op == op; });
  };
  EXPECT_EQ(count(with, Op::AttnDropout), 1);
  EXPECT_EQ(count(without, Op::AttnDropout), 0);
  EXPECT_EQ(count(without, Op::DropoutResidual), 2);
  const double sbh = static_cast<double>(d.s) * d.b * d.h, as2b = static_cast<double>(d.a) * d.s * d.s * d.b;
  // Two residual masks (sbh each), the softmax dropout mask (as^2 b) and its output (2 as^2 b).
  const double bytes_without = layer_activation_bytes(d, Layout::NO_RECOMPUTE);
  d.dropout = true;
  const double bytes_with = layer_activation_bytes(d, Layout::NO_RECOMPUTE);
  EXPECT_DOUBLE_EQ(bytes_without + 2 * sbh + 3 * as2b, bytes_with);
}

INSTANTIATE_TEST_SUITE_P(Layouts, FlashActivations,
                         ::testing::Values(FlashCase{1, false}, FlashCase{8, false}, FlashCase{8, true}));

// ---- the graph ----

// A small Llama-like model; `model_fields` adds or replaces fields ("attention_kernel: FLASH").
std::string modern_scenario(const std::string& model_fields, const std::string& layout) {
  const std::vector<std::pair<std::string, std::string>> base{
      {"num_layers", "4"},          {"hidden_size", "512"},        {"num_heads", "8"},
      {"num_query_groups", "4"},    {"ffn_hidden_size", "1536"},   {"seq_length", "512"},
      {"vocab_size", "1000"},       {"tied_embeddings", "false"},  {"activation", "SWIGLU"},
      {"normalization", "RMSNORM"}, {"position_embedding", "ROPE"}, {"add_bias_linear", "false"},
      {"make_vocab_size_divisible_by", "64"}};
  std::string model = model_fields;
  for (const auto& [field, value] : base)
    if (model_fields.find(field + ":") == std::string::npos) model += " " + field + ": " + value;
  return "name: \"modern\"\nmodel { " + model + " }\ncluster { preset: \"dgx-a100-80g\" num_nodes: 1 }\nlayout { " +
         layout + " }\n";
}

class ModernGraph : public ::testing::TestWithParam<std::pair<const char*, const char*>> {};

// The task count of job_size follows the builder for every kind of layer and recompute, and each
// layer's tasks sum to the description's work.
TEST_P(ModernGraph, JobSizeCountsTheBuildersTasks) {
  const auto [model_extra, layout] = GetParam();
  const Scenario sc = scenario_from_text(modern_scenario(model_extra, layout));
  const JobGraph g = build_job_graph(sc);
  EXPECT_EQ(estimate_job_size(sc).tasks, g.num_tasks()) << model_extra << " / " << layout;
  EXPECT_NO_THROW((void)g.topological_order());
  // Forward FLOPs of layer 0, micro-batch 0 = the description's.
  const LayerDescription layer = describe_layer(dims(sc));
  double described = 0;
  for (const LayerOp& op : layer.ops)
    described += op.fused_attention ? op.fused_forward_flops
                                     : (op.is_gemm ? op.gemm.flops() : static_cast<double>(op.elements) * op.forward.flops_per_element);
  double emitted = 0;
  for (const Task& t : g.tasks())
    if (t.layer == 0 && t.microbatch == 0 && t.phase == FORWARD && t.rank == 0 && t.is_compute()) emitted += t.flops;
  EXPECT_DOUBLE_EQ(emitted, described);
}

INSTANTIATE_TEST_SUITE_P(
    Layers, ModernGraph,
    ::testing::Values(std::pair{"attention_kernel: FLASH", "tp: 2 dp: 4 global_batch_size: 8"},
                      std::pair{"attention_kernel: FLASH", "tp: 4 dp: 2 sequence_parallel: true global_batch_size: 8 recompute: SELECTIVE selective_policy: PER_OP"},
                      std::pair{"attention_kernel: FLASH", "tp: 2 dp: 4 global_batch_size: 8 recompute: SELECTIVE selective_policy: PER_OP"},
                      std::pair{"", "tp: 2 pp: 2 dp: 2 global_batch_size: 8 recompute: SELECTIVE selective_policy: PER_OP"},
                      std::pair{"", "tp: 4 pp: 2 sequence_parallel: true global_batch_size: 8 recompute: SELECTIVE"},
                      std::pair{"attention_kernel: FLASH", "tp: 2 pp: 2 dp: 2 global_batch_size: 8 recompute: FULL zero_stage: 3"},
                      std::pair{"activation: SQUARED_RELU normalization: LAYERNORM head_dim: 96",
                                "tp: 4 dp: 2 sequence_parallel: true global_batch_size: 8"}),
    // Stable test names (the default prints the strings' addresses, which change between builds).
    [](const ::testing::TestParamInfo<std::pair<const char*, const char*>>& info) {
      return "case" + std::to_string(info.index);
    });

TEST(Layer, PerOpRecomputeRerunsElementwiseOpsAndTheProjection) {
  const Scenario sc = scenario_from_text(modern_scenario(
      "attention_kernel: FLASH", "tp: 2 dp: 4 global_batch_size: 4 recompute: SELECTIVE selective_policy: PER_OP"));
  const JobGraph g = build_job_graph(sc);
  std::map<std::string, int> rerun;
  for (std::uint32_t i = 0; i < g.num_tasks(); ++i) {
    const Task& t = g.tasks()[i];
    if (t.phase != RECOMPUTE_FORWARD || t.layer != 0 || t.microbatch != 0) continue;
    ++rerun[std::string(op_name(t.op))];
    // hidden 512, 8 heads of 64, 4 kv heads, ffn 1536, tp 2: wk is 4 x 64 / 2 columns of the QKV
    // GEMM's (8 + 2 x 4) x 64 / 2, w3 1536 / 2 of FC1's 2 x 1536 / 2; the same input (all tokens).
    if (t.op == Op::Qkv || t.op == Op::Fc1) {
      EXPECT_EQ(t.gemm_n, t.op == Op::Qkv ? 128u : 768u);
      EXPECT_EQ(t.gemm_k, 512u);
    }
  }
  // torchtitan's re-run matmuls: wk (the K columns of QKV), wo (the projection), w3 (the up half of FC1).
  const std::map<std::string, int> expected{{"rmsnorm", 2}, {"qkv", 1}, {"rope", 1}, {"attn_proj", 1},
                                            {"tp_all_reduce", 1}, {"dropout_residual", 1}, {"fc1", 1}, {"swiglu", 1}};
  EXPECT_EQ(rerun, expected);
}

// PyTorch eager (torchtitan without torch.compile) against fused kernels: each elementwise op moves
// the bytes of its eager kernel sequence (layer.cpp gives the sequences), the GEMMs are the same,
// and autograd keeps SiLU's output.
TEST(Layer, EagerElementwiseOpsMoveTheBytesOfTheirKernels) {
  Dims fused = preset_dims("llama3-8b");
  Dims eager = fused;
  eager.eager = true;
  const LayerDescription f = describe_layer(fused), g = describe_layer(eager);
  ASSERT_EQ(f.ops.size(), g.ops.size());
  const double e = 2;
  EXPECT_DOUBLE_EQ(f.norm_forward.bytes_per_element, 2 * e);
  EXPECT_DOUBLE_EQ(f.norm_backward.bytes_per_element, 3 * e);
  EXPECT_DOUBLE_EQ(g.norm_forward.bytes_per_element, 4 * e + 28);  // float, pow, mean, mul, type_as, * weight
  EXPECT_DOUBLE_EQ(g.norm_backward.bytes_per_element, 8 * e + 52);
  EXPECT_DOUBLE_EQ(find_op(f, Op::Swiglu).forward.bytes_per_element, 3 * e);
  EXPECT_DOUBLE_EQ(find_op(g, Op::Swiglu).forward.bytes_per_element, 5 * e);
  EXPECT_DOUBLE_EQ(find_op(g, Op::Swiglu).backward.bytes_per_element, 9 * e);
  // RoPE through complex64 (2e + 16) and repeat_kv's and the output transpose's copies: 32 query and
  // 8 key/value heads, e (4 * 32 + 2 * 8) / (32 + 8) per element.
  EXPECT_DOUBLE_EQ(find_op(f, Op::Rope).forward.bytes_per_element, 2 * e);
  EXPECT_DOUBLE_EQ(find_op(g, Op::Rope).forward.bytes_per_element, 2 * e + 16 + e * 144.0 / 40.0);
  for (std::size_t i = 0; i < f.ops.size(); ++i) {
    EXPECT_EQ(f.ops[i].op, g.ops[i].op);
    if (f.ops[i].is_gemm) {
      EXPECT_EQ(f.ops[i].gemm, g.ops[i].gemm) << op_name(f.ops[i].op);
    }
    EXPECT_EQ(f.ops[i].elements, g.ops[i].elements) << op_name(f.ops[i].op);
  }
  auto saved = [](const LayerDescription& l, const std::string& name) {
    for (const LayerOp& op : l.ops)
      for (const SavedTensor& t : op.saved)
        if (name == t.name) return t.bytes;
    return 0.0;
  };
  EXPECT_EQ(saved(f, "SiLU output (eager)"), 0.0);
  // b s f bytes of the SiLU output: 1 x 8192 x 14336 x 2.
  EXPECT_DOUBLE_EQ(saved(g, "SiLU output (eager)"), 8192.0 * 14336 * 2);
}

// The loss on an fp32 copy of the logits: e + 12 bytes per logit forward and e + 20 backward eager,
// e + 8 and e + 4 fused; the step of one GPU slower by exactly the extra bytes over the HBM.
TEST(Layer, EagerLossAndStepTimeFollowTheBytes) {
  auto build = [&](bool eager) {
    ModelSpec m = load_model("llama3-8b");
    if (eager) m.set_elementwise_kernels(ModelSpec::EAGER);
    Scenario sc = scenario_from_text("model { " + m.ShortDebugString() +
                                     " } cluster { preset: \"dgx-h100\" num_nodes: 1 gpus_per_node: 1 } "
                                     "layout { global_batch_size: 1 }");
    return std::pair{sc, build_job_graph(sc)};
  };
  const auto [fs, fg] = build(false);
  const auto [es, eg] = build(true);
  ASSERT_EQ(fg.num_tasks(), eg.num_tasks());
  const double logits = 8192.0 * 128256;
  double extra_bytes = 0;
  for (std::uint32_t i = 0; i < fg.num_tasks(); ++i) {
    const Task &a = fg.tasks()[i], &b = eg.tasks()[i];
    ASSERT_EQ(a.op, b.op);
    EXPECT_DOUBLE_EQ(a.flops, b.flops) << op_name(a.op);
    extra_bytes += static_cast<double>(b.bytes) - static_cast<double>(a.bytes);
    if (a.op == Op::CrossEntropy) {
      EXPECT_NEAR(static_cast<double>(a.bytes), logits * (a.phase == FORWARD ? 10 : 6), 1);
      EXPECT_NEAR(static_cast<double>(b.bytes), logits * (b.phase == FORWARD ? 14 : 22), 1);
    }
  }
  EXPECT_GT(extra_bytes, 0);
  // Every elementwise op is memory-bound on the H100 (a few FLOPs per element): the extra time is
  // the extra bytes at the preset's HBM bandwidth and memory efficiency.
  const CostModel cost(fs.cluster().gpu(), BF16);
  double fused_s = 0, eager_s = 0;
  for (std::uint32_t i = 0; i < fg.num_tasks(); ++i) {
    if (!fg.tasks()[i].is_compute()) continue;
    fused_s += cost.duration(fg.tasks()[i]);
    eager_s += cost.duration(eg.tasks()[i]);
  }
  const GpuSpec& gpu = fs.cluster().gpu();
  EXPECT_NEAR(eager_s - fused_s, extra_bytes / (gpu.hbm_tb_per_s() * 1e12 * gpu.memory_bound_efficiency()),
              1e-9 * eager_s);
}

TEST(Layer, FlashAttentionTimedFromTheGpuTable) {
  const Scenario sc = scenario_from_text(modern_scenario("attention_kernel: FLASH seq_length: 4096", "tp: 4 dp: 2 global_batch_size: 2"));
  const CostModel cost(sc.cluster().gpu(), BF16);
  // The A100 table at seq 4096, head_dim 64 (512 / 8 heads).
  EXPECT_DOUBLE_EQ(cost.flash_attention_efficiency(4096, 64, false), 0.51);
  EXPECT_DOUBLE_EQ(cost.flash_attention_efficiency(4096, 64, true), 0.39);
  EXPECT_NEAR(cost.flash_attention_efficiency(4096, 90.5, false), (0.51 + 0.61) / 2, 1e-2);  // log2 midway
  EXPECT_DOUBLE_EQ(cost.flash_attention_efficiency(100000, 1024, true), 0.46);               // clamped
  const JobGraph g = build_job_graph(sc);
  for (const Task& t : g.tasks()) {
    if (t.op != Op::FlashAttention) continue;
    const double eff = t.phase == BACKWARD ? 0.39 : 0.51;
    EXPECT_NEAR(cost.duration(t), t.flops / (cost.peak_flops() * eff) + sc.cluster().gpu().kernel_overhead_us() * 1e-6,
                1e-12);
  }
}

// ---- validation ----

TEST(Layer, GroupedQueryAttentionRules) {
  EXPECT_THAT(input_error([] {
                scenario_from_text(modern_scenario("num_query_groups: 3", "tp: 1 dp: 8 global_batch_size: 8"));
              }),
              HasSubstr("model.num_query_groups: num_heads 8 is not a multiple of num_query_groups 3; valid num_query_groups: 1, 2, 4, 8"));
  EXPECT_THAT(input_error([] {
                scenario_from_text(modern_scenario("num_query_groups: 2", "tp: 4 dp: 2 global_batch_size: 8"));
              }),
              HasSubstr("layout.tp: model.num_query_groups 2 is not divisible by tp 4 (each TP rank holds whole "
                        "key/value heads); valid tp: 1, 2"));
  // head_dim set: hidden_size need not be num_heads * head_dim.
  EXPECT_NO_THROW(scenario_from_text(modern_scenario("hidden_size: 500 head_dim: 64", "tp: 2 dp: 4 global_batch_size: 8")));
  EXPECT_THAT(input_error([] { scenario_from_text(modern_scenario("hidden_size: 500", "tp: 2 dp: 4 global_batch_size: 8")); }),
              HasSubstr("(or set model.head_dim)"));
}

TEST(Layer, TensorParallelOverlapNeedsSequenceParallelism) {
  EXPECT_THAT(input_error([] {
                scenario_from_text(modern_scenario("", "tp: 2 dp: 4 global_batch_size: 8 tp_comm_overlap: true"));
              }),
              HasSubstr("layout.tp_comm_overlap: needs sequence_parallel: true"));
  EXPECT_NO_THROW(scenario_from_text(
      modern_scenario("", "tp: 2 dp: 4 global_batch_size: 8 sequence_parallel: true tp_comm_overlap: true")));
}

// TE's userbuffer overlap as the builder shapes it (kTpOverlapCommSms): the column-parallel forward
// GEMMs and the row-parallel dgrads run shard by shard (tp chunks, all SMs); the row-parallel forward
// GEMMs in 4 chunks and the column-parallel backward GEMMs whole, both on the SMs the communication
// kernels leave. Without the overlap every GEMM is one kernel on the whole GPU.
TEST(Layer, TensorParallelOverlapShapesTheGemmsAsTransformerEngineRunsThem) {
  auto build = [](bool overlap) {
    return build_job_graph(scenario_from_text(modern_scenario(
        "attention_kernel: FLASH", std::string("tp: 4 dp: 2 sequence_parallel: true global_batch_size: 8 tp_comm_overlap: ") +
                                       (overlap ? "true" : "false"))));
  };
  const JobGraph g = build(true);
  const float share = static_cast<float>(108 - kTpOverlapCommSms) / 108.0f;  // the A100 of modern_scenario
  std::map<std::string, std::pair<int, float>> shaped;
  for (const Task& t : g.tasks()) {
    if (t.kind != GEMM || t.layer != 0 || t.microbatch != 0) continue;
    const std::string role = t.role == GemmRole::InputGrad ? ".dgrad" : t.role == GemmRole::WeightGrad ? ".wgrad" : "";
    shaped[std::string(op_name(t.op)) + role] = {t.gemm_splits, t.sm_share};
  }
  const std::map<std::string, std::pair<int, float>> expected{
      {"qkv", {4, 1.0f}},          {"fc1", {4, 1.0f}},             // ring_exchange
      {"attn_proj", {4, share}},   {"fc2", {4, share}},            // pipeline
      {"attn_proj.dgrad", {4, 1.0f}}, {"fc2.dgrad", {4, 1.0f}},    // ring_exchange
      {"attn_proj.wgrad", {1, 1.0f}}, {"fc2.wgrad", {1, 1.0f}},
      {"qkv.dgrad", {1, share}},   {"qkv.wgrad", {1, share}},      // bulk
      {"fc1.dgrad", {1, share}},   {"fc1.wgrad", {1, share}},
      {"flash_attention", {1, 1.0f}}, {"flash_attention.dgrad", {1, 1.0f}}};
  EXPECT_EQ(shaped, expected);
  const JobGraph blocking = build(false);
  for (const Task& t : blocking.tasks()) {
    EXPECT_EQ(t.gemm_splits, 1);
    EXPECT_EQ(t.sm_share, 1.0f);
  }
  // A plan file keeps the shape.
  const JobGraph back = JobGraph::from_proto(g.to_proto());
  for (std::uint32_t i = 0; i < g.num_tasks(); ++i) {
    EXPECT_EQ(back.tasks()[i].gemm_splits, g.tasks()[i].gemm_splits);
    EXPECT_EQ(back.tasks()[i].sm_share, g.tasks()[i].sm_share);
  }
}

TEST(Layer, TensorParallelOverlapNeedsTheSmCount) {
  std::string text = modern_scenario("", "tp: 2 dp: 4 global_batch_size: 8 sequence_parallel: true tp_comm_overlap: true");
  text.replace(text.find("num_nodes: 1"), 12, "num_nodes: 1 gpu { sm_count: 0 }");
  EXPECT_THAT(input_error([&] { scenario_from_text(text); }),
              HasSubstr("cluster.gpu.sm_count: missing: layout.tp_comm_overlap keeps 16 SMs"));
}

// FLASH2 (FlashAttention-2): on a Hopper preset the job's flash table becomes the GPU's FA2 table
// (slower than its FA3 / cuDNN one), on the A100 (FA2 is its flash table) nothing changes; the work
// is FLASH's either way.
TEST(Layer, FlashAttention2TakesTheGpusFa2Table) {
  auto load = [](const char* kernel, const char* cluster) {
    std::string text = modern_scenario(std::string("attention_kernel: ") + kernel + " seq_length: 4096", "tp: 4 dp: 2 global_batch_size: 2");
    text.replace(text.find("dgx-a100-80g"), 12, cluster);
    return scenario_from_text(text);
  };
  const Scenario h100 = load("FLASH", "dgx-h100"), h100_fa2 = load("FLASH2", "dgx-h100");
  EXPECT_EQ(h100_fa2.cluster().gpu().flash_attention_efficiency().SerializeAsString(),
            h100.cluster().gpu().flash2_attention_efficiency().SerializeAsString());
  const CostModel fa3(h100.cluster().gpu(), BF16), fa2(h100_fa2.cluster().gpu(), BF16);
  // Head dim 64 (512 / 8 heads) at seq 4096: FA2 0.29 and 0.19 of peak against FA3's 0.42 and 0.30.
  EXPECT_DOUBLE_EQ(fa2.flash_attention_efficiency(4096, 64, false), 0.29);
  EXPECT_DOUBLE_EQ(fa2.flash_attention_efficiency(4096, 64, true), 0.19);
  EXPECT_DOUBLE_EQ(fa3.flash_attention_efficiency(4096, 64, false), 0.42);
  const JobGraph a = build_job_graph(h100), b = build_job_graph(h100_fa2);
  ASSERT_EQ(a.num_tasks(), b.num_tasks());
  double attention_fa3 = 0, attention_fa2 = 0;
  for (std::uint32_t i = 0; i < a.num_tasks(); ++i) {
    EXPECT_EQ(a.tasks()[i].flops, b.tasks()[i].flops);
    if (a.tasks()[i].op != Op::FlashAttention) continue;
    attention_fa3 += fa3.duration(a.tasks()[i]);
    attention_fa2 += fa2.duration(b.tasks()[i]);
  }
  EXPECT_GT(attention_fa2, 1.4 * attention_fa3);
  const Scenario a100 = load("FLASH", "dgx-a100-80g"), a100_fa2 = load("FLASH2", "dgx-a100-80g");
  EXPECT_EQ(a100_fa2.cluster().gpu().flash_attention_efficiency().SerializeAsString(),
            a100.cluster().gpu().flash_attention_efficiency().SerializeAsString());
  EXPECT_THAT(input_error([&] { load("FLASH2", "dgx1-v100"); }),
              HasSubstr("which model.attention_kernel FLASH2 needs"));
}

TEST(Layer, FlashNeedsTheGpusTable) {
  const std::string text = R"(
model { num_layers: 2 hidden_size: 256 num_heads: 4 seq_length: 128 vocab_size: 512 precision: FP16 attention_kernel: FLASH }
cluster { preset: "dgx1-v100" num_nodes: 1 }
layout { dp: 8 global_batch_size: 8 }
)";
  EXPECT_THAT(input_error([&] { scenario_from_text(text); }),
              HasSubstr("cluster.gpu.flash_attention_efficiency: missing: the GPU \"NVIDIA V100"));
}

}  // namespace
}  // namespace parallax::model
