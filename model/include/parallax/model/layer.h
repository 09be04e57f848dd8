// One transformer layer, described once: its forward ops in order, each with its work, its place in
// the tensor-parallel regions, the parameters it owns and the tensors it keeps for its backward pass.
// The graph builder, the parameter counts, the activation memory and the task counts all read it;
// backward work is derived from the forward ops by rule (backward_of).
#pragma once

#include "parallax/model/job_graph.h"
#include "parallax/model/scenario.h"

#include <cstdint>
#include <vector>

namespace parallax::model {

// Y = A B with A (m x k), B (k x n), `batch` times (per TP rank).
struct GemmShape {
  std::int64_t m = 0, n = 0, k = 0, batch = 1;
  double flops() const { return 2.0 * static_cast<double>(m) * n * k * batch; }
  bool operator==(const GemmShape&) const = default;
};

// HBM traffic and arithmetic per element of an elementwise op, one direction.
struct ElementwiseCost {
  double bytes_per_element = 0;
  double flops_per_element = 0;
};

// Megatron's tensor-parallel linears. Column: the weight split by output columns; its input is the
// full activation (all-gathered first with sequence parallelism), the gradient of that input is
// reduced over TP in backward. Row: split by input rows; its output is reduced over TP (all-reduce,
// or reduce-scatter with sequence parallelism), its output gradient all-gathered with sequence
// parallelism in backward.
enum class TpPlacement : std::uint8_t { None, Column, Row };

// How a kept tensor is divided over the TP ranks: inside a TP region always by t; outside (the
// hidden activation between the regions) by t only with sequence parallelism.
enum class TensorSplit : std::uint8_t { Tp, TpWithSp };

// A tensor the layer keeps from its forward pass for its backward pass, and under which recompute
// choices it is kept (FULL keeps only the layer input, described apart).
struct SavedTensor {
  const char* name;
  double bytes;  // per micro-batch, on one TP rank
  TensorSplit split;
  bool no_recompute;  // kept without recompute
  bool selective;     // kept under SELECTIVE with the CORE_ATTENTION policy
  bool per_op;        // kept under SELECTIVE with the PER_OP policy
};

struct LayerOp {
  Op op;
  bool is_gemm = false;
  GemmShape gemm;                 // forward shape on one TP rank (GEMMs)
  bool has_weight = false;        // backward computes a weight gradient (else two input gradients)
  bool transposed_operand = false;  // B is a transposed tensor (K^T): its gradient is GEMM(n, k, m)
  // FlashAttention: one fused kernel both ways; FLOPs and bytes given, not derived from the shape.
  bool fused_attention = false;
  // Context parallelism (Dims::c > 1): the fused kernel runs as cp_steps kernels of the fused FLOPs
  // each (the causal work of s / cp tokens: with the load-balanced chunks every step of the ring does
  // as much), with a ring exchange of cp_kv_bytes (this rank's K and V block) before each step but
  // the first; in backward the K/V again and the dK/dV (as large) after each step.
  std::int64_t cp_steps = 1;
  double cp_kv_bytes = 0;
  double fused_forward_flops = 0, fused_backward_flops = 0;
  double fused_forward_bytes = 0, fused_backward_bytes = 0;
  std::int64_t elements = 0;      // elementwise ops, per TP rank
  ElementwiseCost forward, backward;
  TpPlacement tp = TpPlacement::None;
  double sharded_parameters = 0;     // per TP rank
  double replicated_parameters = 0;  // on every TP rank
  std::vector<SavedTensor> saved;
  // FP8 training (Dims::fp8), the linears: the GEMMs run in FP8, after a cast (Op::Fp8Cast) of the
  // input in forward and of the output gradient in backward; bytes per micro-batch on one TP rank,
  // and of the weight (cast and transposed once per step, with the first micro-batch's forward).
  bool fp8 = false;
  double fp8_forward_cast_bytes = 0, fp8_backward_cast_bytes = 0, fp8_weight_cast_bytes = 0;
  bool attention_core = false;   // re-run before its backward by SELECTIVE / CORE_ATTENTION
  bool per_op_rerun = false;     // re-run before the layer's backward by SELECTIVE / PER_OP
  // SELECTIVE / PER_OP on a fused GEMM of which torchtitan runs a part as its own matmul and
  // re-runs it (wk within QKV, w3 within FC1): the output columns (per TP rank) re-run.
  std::int64_t per_op_rerun_columns = 0;
  // Mixture of Experts: a routed expert's GEMM (its weights sharded over ep and etp, not tp; FP8 like
  // the linears), and the expert parameters this op holds on this rank (reduced over expert dp).
  bool expert = false;
  double expert_parameters = 0;
  // A token exchange among the expert ranks, no compute: the dispatch or combine over the ep group,
  // or the expert tensor-parallel gather and reduce-scatter around the experts (exchange_group
  // GROUP_EXPERT_TP). With the all-to-all dispatcher each rank sends (and receives)
  // exchange_forward_bytes in forward, and the same for the gradients in backward. Otherwise the
  // collective is exchange_forward in forward (a gather: ALL_GATHER, a scatter back:
  // REDUCE_SCATTER) and the other one in backward, of exchange_forward_bytes in forward and
  // exchange_backward_bytes in backward (the whole gathered tensor, as nccl-tests count).
  bool expert_exchange = false;
  CommGroup exchange_group = GROUP_EP;
  CollectiveKind exchange_forward = ALL_TO_ALL, exchange_backward = ALL_TO_ALL;
  double exchange_forward_bytes = 0, exchange_backward_bytes = 0;
  // A column-parallel GEMM whose input is narrower than the hidden state (multi-head latent
  // attention's up-projections read a latent): the elements per token its sequence-parallel
  // all-gather (and the reduce-scatter of its input gradient) carries; 0: hidden_size.
  std::int64_t gathered_width = 0;
};

// One step of an op's backward pass.
struct BackwardStep {
  GemmRole role;      // InputGrad / WeightGrad for GEMMs (the second of two input gradients is
                      // named WeightGrad, as the builder always has); Forward for elementwise ops
  bool is_gemm;
  GemmShape gemm;     // GEMMs
  double flops = 0;   // all steps
  double bytes = 0;   // fused attention and elementwise ops (GEMM bytes follow from the shape)
};
// The backward of a forward op, by rule: a GEMM Y = X W gives dX = dY W^T, GEMM(m, k, n), and
// dW = X^T dY, GEMM(k, n, m); a GEMM of two activations gives the same two shapes as the gradients
// of both inputs, except that a transposed second operand (S = Q K^T) has its gradient computed
// untransposed, dK = dS^T Q, GEMM(n, k, m); flash attention is one fused kernel; an elementwise op
// is one kernel with its own backward cost.
std::vector<BackwardStep> backward_of(const LayerOp& op);

struct LayerDescription {
  std::vector<LayerOp> ops;          // forward order
  SavedTensor layer_input;           // all that FULL recompute keeps
  double final_norm_parameters = 0;  // replicated, on the last stage
  Op norm_op = Op::LayerNorm, final_norm_op = Op::FinalLayerNorm;
  ElementwiseCost norm_forward, norm_backward;  // the final norm's costs (as the layer's norms)
  std::int64_t vocab = 0;            // padded vocabulary (rows of the embedding and the logits)
  bool learned_positions = true;

  // Parameters of one layer on one TP rank.
  double sharded_parameters() const;
  double replicated_parameters() const;
  // Routed experts' parameters on this rank (experts / ep of them; 0 for a dense layer).
  double expert_parameters() const;
  // The tensors kept under a recompute choice, in Korthikanti's order (those selective recompute
  // keeps first, then the attention core's).
  std::vector<const SavedTensor*> saved(Layout::Recompute recompute, Layout::SelectivePolicy policy) const;
};

// A dense layer, or with `moe` a Mixture-of-Experts layer (the FFN replaced by the router, the
// dispatch, the routed experts, the shared experts and the combine); with `windowed` its attention
// is the sliding window of Dims::window (is_windowed_layer).
LayerDescription describe_layer(const Dims& d, bool moe = false, bool windowed = false);

// Tasks one layer emits for one micro-batch, without ZeRO tasks (Builder::layer_forward and
// layer_backward).
struct LayerTaskCounts {
  std::uint64_t forward = 0;
  std::uint64_t backward = 0;
};
LayerTaskCounts layer_task_counts(const LayerDescription& layer, const Dims& d, Layout::Recompute recompute);

// The vocabulary padded as Megatron pads it: to a multiple of make_vocab_size_divisible_by * tp.
std::int64_t padded_vocab(const Dims& d);

}  // namespace parallax::model
