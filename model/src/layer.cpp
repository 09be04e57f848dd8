#include "parallax/model/layer.h"

#include <algorithm>
#include <string_view>

namespace parallax::model {

std::int64_t padded_vocab(const Dims& d) {
  if (d.Vp > 0) return d.Vp;
  const std::int64_t t = std::max<std::int64_t>(1, d.t);
  return (d.V + t - 1) / t * t;  // a Dims filled by hand: padded to a multiple of tp only
}

namespace {

std::int64_t query_groups(const Dims& d) { return d.g > 0 ? d.g : d.a; }
std::int64_t head_dim(const Dims& d) { return d.hd > 0 ? d.hd : d.h / std::max<std::int64_t>(1, d.a); }

SavedTensor kept(const char* name, double bytes, TensorSplit split, bool no_recompute, bool selective, bool per_op) {
  return SavedTensor{name, bytes, split, no_recompute, selective, per_op};
}

// The norms: LayerNorm reads x and writes y (mean and rstd are negligible) with ~8 FLOPs per element
// (mean, variance, normalise, scale, shift); backward reads x and dy and writes dx. RMSNorm has no
// mean and no shift (~5 FLOPs per element forward, ~6 backward) and half the parameters.
struct NormKind {
  Op op, final_op;
  ElementwiseCost forward, backward;
  double parameters_per_hidden;
  const char* first_input;
  const char* second_input;
};
NormKind norm_kind(const Dims& d) {
  const double e = static_cast<double>(d.e);
  // Eager RMSNorm (torchtitan's models/norms.py: self._norm(x.float()).type_as(x) * self.weight,
  // _norm = x * rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)) is seven kernels over the tensor, per
  // element: float (read e, write 4), pow (4, 4), mean (read 4), x * r (4, 4), type_as (4, e),
  // * weight (e, e): 4e + 28 bytes. Autograd runs them back: the weight's mul (dx: e, e; dw: the
  // product 2e, e and its sum e), the cast to fp32 (e, 4), x * r (g * r: 4, 4; g * x: 8, 4 and its
  // sum 4), pow (4, 4), the two gradients of x added (8, 4), the cast back (4, e): 8e + 52 bytes.
  // LayerNorm is one native kernel (aten::native_layer_norm) eager or not.
  if (d.normalization == ModelSpec::RMSNORM && d.eager)
    return {Op::RmsNorm, Op::FinalRmsNorm, {4.0 * e + 28.0, 5.0}, {8.0 * e + 52.0, 6.0}, 1.0, "rmsnorm 1 input",
            "rmsnorm 2 input"};
  if (d.normalization == ModelSpec::RMSNORM)
    return {Op::RmsNorm, Op::FinalRmsNorm, {2.0 * e, 5.0}, {3.0 * e, 6.0}, 1.0, "rmsnorm 1 input", "rmsnorm 2 input"};
  return {Op::LayerNorm, Op::FinalLayerNorm, {2.0 * e, 8.0}, {3.0 * e, 8.0}, 2.0, "layernorm 1 input",
          "layernorm 2 input"};
}

// FP8 training as Transformer Engine runs it (te.LayerNormLinear for qkv and fc1, te.Linear for the
// projection and fc2; transformer_engine/pytorch/module/{layernorm_linear,linear}.py):
//  - forward: a Linear casts its BF16 input to FP8 with its transpose for the weight gradient (read
//    2 B, write 1 + 1 B per element); a LayerNormLinear's norm writes FP8 directly (nothing extra
//    with delayed scaling; current scaling writes BF16, reads it for the amax and again to cast:
//    2 + 2 + 2 + 1 - 1 = 6 B more per element of the norm's output). Current scaling adds one read
//    (the amax) to every other cast.
//  - backward: the output gradient is cast with its transpose (read 2, write 2 B per element, + 2
//    with current scaling); a LayerNormLinear transposes its saved FP8 input for the wgrad (1 + 1 B).
//  - the weight is cast and transposed once per step (read 2, write 2 B per parameter; with
//    fp8_params only transposed, 1 + 1 B) and cached for the other micro-batches.
//  - the saved GEMM inputs are the FP8 copies (1 B per element instead of 2).
// The delayed-scaling amax history update and reduction are a few small kernels and one all-reduce
// of a few kB per micro-batch: not modelled.
void fp8_linears(LayerDescription& out, const Dims& d, std::int64_t hidden_elements) {
  const double amax = d.fp8_current ? 2.0 : 0.0;
  for (LayerOp& op : out.ops) {
    if (!op.is_gemm || (op.tp == TpPlacement::None && !op.expert)) continue;
    op.fp8 = true;
    // (A grouped expert GEMM casts every expert's input and gradient: times its batch.)
    const double groups = static_cast<double>(std::max<std::int64_t>(1, op.gemm.batch));
    const double in = static_cast<double>(op.gemm.m * op.gemm.k) * groups, grad = static_cast<double>(op.gemm.m * op.gemm.n) * groups;
    if (op.tp == TpPlacement::Column) {
      op.fp8_forward_cast_bytes = d.fp8_current ? 6.0 * static_cast<double>(hidden_elements) : 0.0;
      op.fp8_backward_cast_bytes = (4.0 + amax) * grad + 2.0 * in;
    } else {
      op.fp8_forward_cast_bytes = (4.0 + amax) * in;
      op.fp8_backward_cast_bytes = (4.0 + amax) * grad;
    }
    op.fp8_weight_cast_bytes = (d.fp8_params ? 2.0 : 4.0) * (op.sharded_parameters + op.expert_parameters);
    for (SavedTensor& t : op.saved)
      if (std::string_view(t.name).ends_with(" input")) t.bytes /= 2;  // the FP8 copy TE keeps
  }
}

}  // namespace

// Selective recompute, two policies.
//
// CORE_ATTENTION (Megatron, Korthikanti et al. 2022): the attention core (scores, softmax, dropout,
// context) is re-run before its backward, so the s x s tensors are never kept. With FLASH attention
// there is no s x s tensor to drop and the fused kernel already recomputes the scores inside its
// backward: CORE_ATTENTION is then a no-op (nothing re-run, the same memory as without recompute),
// which is what Megatron's selective recompute amounts to with flash attention.
//
// PER_OP (torchtitan's per-op selective activation checkpointing, torchtitan/models/llama3/
// infra/parallelize.py, `_save_list` and `_custom_policy`): each layer is checkpointed as a whole;
// the outputs of ops in the save list are kept - aten.mm (except every second mm call of the layer),
// the fused scaled-dot-product attention (flash/efficient/cuDNN: its output and logsumexp) and, with
// sequence parallelism, the reduce-scatter outputs - and every other op is re-run from the layer
// input before the backward. torchtitan's Llama runs seven matmuls per layer, in forward order wq
// (kept), wk (re-run), wv (kept), wo (re-run), w1 (kept), w3 (re-run), w2 (kept); parallax fuses
// wq/wk/wv into QKV and w1/w3 into FC1, so the K columns of QKV and the up half of FC1 are re-run
// as GEMMs of their own (per_op_rerun_columns). So what is kept: the layer input, Q and V (with RoPE
// the unrotated copies, the same size), the flash output and logsumexp, the gate half of the FC1
// output, the FC2 output (SAC caches every saved op's output until the re-run consumes it, needed
// or not), with sequence parallelism the two reduce-scatter outputs, and the dropout masks (1 byte
// per element; re-drawing them would need the GEMM before each). What is re-run: both norms, the K
// columns of QKV, RoPE, the unfused attention core (its batched matmuls are aten.bmm, not in the
// save list), the projection and its TP reduction (not with sequence parallelism: its
// reduce-scatter output is kept), the first dropout-residual, the up half of FC1 and the activation.
LayerDescription describe_layer(const Dims& d, bool moe, bool windowed) {
  LayerDescription out;
  const double e = static_cast<double>(d.e), t = static_cast<double>(d.t);
  // Context parallelism: this rank's s / cp tokens of each sequence (the attention's ring is below).
  const std::int64_t b = d.b, s = local_seq(d), h = d.h, f = d.f, a = d.a;
  const std::int64_t g = query_groups(d), dh = head_dim(d);
  const std::int64_t bs = b * s;
  const std::int64_t heads = a / d.t, batch = b * heads;  // attention heads on one TP rank
  const std::int64_t scores = batch * s * s;
  const std::int64_t hidden_elements = bs * h / (d.sp ? d.t : 1);
  const double sbh = static_cast<double>(s) * b * h;
  const double as2b = static_cast<double>(a) * s * s * b;
  const double outside = d.sp ? t : 1.0;
  const std::int64_t qkv_width = (a + 2 * g) * dh;  // Q, K and V columns over all ranks
  const bool flash = d.attention != ModelSpec::UNFUSED;  // FLASH or FLASH2: the same fused kernel's work
  const bool swiglu = d.activation == ModelSpec::SWIGLU;
  const NormKind norm = norm_kind(d);
  const auto bias = [&](std::int64_t n) { return d.bias ? n : 0; };

  out.layer_input = kept("layer input", 2 * sbh / outside, TensorSplit::TpWithSp, true, true, true);
  out.final_norm_parameters = norm.parameters_per_hidden * static_cast<double>(h);
  out.norm_op = norm.op;
  out.final_norm_op = norm.final_op;
  out.norm_forward = norm.forward;
  out.norm_backward = norm.backward;
  out.vocab = padded_vocab(d);
  out.learned_positions = d.positions == ModelSpec::LEARNED;

  auto elementwise = [&](Op op, std::int64_t elements, ElementwiseCost fwd, ElementwiseCost bwd) {
    LayerOp o;
    o.op = op;
    o.elements = elements;
    o.forward = fwd;
    o.backward = bwd;
    return o;
  };
  auto gemm = [&](Op op, GemmShape shape, TpPlacement tp) {
    LayerOp o;
    o.op = op;
    o.is_gemm = true;
    o.gemm = shape;
    o.tp = tp;
    o.has_weight = tp != TpPlacement::None;
    return o;
  };
  auto norm_op = [&](const char* input) {
    LayerOp o = elementwise(norm.op, hidden_elements, norm.forward, norm.backward);
    o.replicated_parameters = norm.parameters_per_hidden * static_cast<double>(h);
    o.saved.push_back(kept(input, 2 * sbh / outside, TensorSplit::TpWithSp, true, true, false));
    return o;
  };
  // Dropout on the residual branch, then the add: forward reads x and the residual, writes y and a
  // 1-byte mask; backward reads dy and the mask, writes dx. Without dropout only the add: forward
  // reads x and the residual and writes y, backward passes dy on (read dy, write dx).
  auto dropout_residual = [&](const char* mask) {
    if (!d.dropout) return elementwise(Op::DropoutResidual, hidden_elements, {3.0 * e, 1.0}, {2.0 * e, 0.0});
    // Eager: dropout (read e, write e and the mask) then the add (2e, e).
    LayerOp o = elementwise(Op::DropoutResidual, hidden_elements, {(d.eager ? 5.0 : 3.0) * e + 1.0, 3.0},
                            {2.0 * e + 1.0, 3.0});
    o.saved.push_back(kept(mask, sbh / outside, TensorSplit::TpWithSp, true, true, true));
    return o;
  };

  // Attention block.
  {
    LayerOp n1 = norm_op(norm.first_input);
    n1.saved.front().per_op = true;  // the layer input
    n1.per_op_rerun = true;
    out.ops.push_back(n1);
  }
  // Multi-head latent attention (DeepSeek-V2/V3) as Megatron-Core's MLASelfAttention runs it
  // (megatron/core/transformer/multi_latent_attention.py): the down-projections are duplicated
  // linears (the same weights on every TP rank) over this rank's tokens, into the q latent, the kv
  // latent and the one RoPE key all heads share; with sequence parallelism the latents are
  // all-gathered over TP (gather_from_sequence_parallel_region), normalised, and projected up by
  // column-parallel linears to this rank's heads: queries of qk_nope + qk_rope, keys of qk_nope
  // (the shared RoPE key appended to each), values of v_head_dim. Without a q latent (q_lora_rank 0)
  // the queries come from a column-parallel projection of the hidden state.
  const bool mla = d.kv_lora > 0;
  const std::int64_t qk_hd = mla ? d.qk_nope + d.qk_rope : dh, v_hd = mla ? d.v_hd : dh;
  if (mla) {
    const std::int64_t tokens_here = bs / (d.sp ? d.t : 1);
    const std::int64_t latents = d.q_lora + d.kv_lora + d.qk_rope;
    LayerOp down = gemm(Op::MlaDownProj, {tokens_here, latents, h, 1}, TpPlacement::None);
    down.has_weight = true;
    down.replicated_parameters = static_cast<double>(h * latents);
    down.saved.push_back(kept("MLA down-projection input", 2 * sbh / outside, TensorSplit::TpWithSp, true, true, true));
    out.ops.push_back(down);
    // RMSNorm of the q and kv latents (the RoPE key is not normalised).
    LayerOp latent_norm = elementwise(Op::MlaLatentNorm, tokens_here * (d.q_lora + d.kv_lora), norm.forward, norm.backward);
    latent_norm.replicated_parameters = static_cast<double>(d.q_lora + d.kv_lora);
    latent_norm.saved.push_back(kept("MLA latents (norm input)", 2.0 * static_cast<double>(tokens_here * (d.q_lora + d.kv_lora)),
                                     TensorSplit::TpWithSp, true, true, false));
    latent_norm.per_op_rerun = true;
    out.ops.push_back(latent_norm);
    const std::int64_t q_in = d.q_lora > 0 ? d.q_lora : h;
    LayerOp q_up = gemm(d.q_lora > 0 ? Op::MlaQUpProj : Op::Qkv, {bs, heads * qk_hd, q_in, 1}, TpPlacement::Column);
    q_up.sharded_parameters = static_cast<double>(q_in * a * qk_hd) / t;
    q_up.gathered_width = q_in;
    q_up.saved.push_back(kept("MLA q up-projection input", 2.0 * static_cast<double>(bs * q_in) / outside,
                              TensorSplit::TpWithSp, true, true, false));
    out.ops.push_back(q_up);
    LayerOp kv_up = gemm(Op::MlaKvUpProj, {bs, heads * (d.qk_nope + v_hd), d.kv_lora, 1}, TpPlacement::Column);
    kv_up.sharded_parameters = static_cast<double>(d.kv_lora * a * (d.qk_nope + v_hd)) / t;
    kv_up.gathered_width = d.kv_lora + d.qk_rope;  // the RoPE key travels with the kv latent
    kv_up.saved.push_back(kept("MLA kv up-projection input", 2.0 * static_cast<double>(bs * d.kv_lora) / outside,
                               TensorSplit::TpWithSp, true, true, false));
    out.ops.push_back(kv_up);
    // RoPE on the queries' and the shared key's RoPE parts, and the concatenations that give every
    // head its full query and key (torch.cat: read and write each element): counted as one
    // elementwise op over the queries and keys of this rank's heads.
    LayerOp rope = elementwise(Op::Rope, 2 * bs * heads * qk_hd, {2.0 * e, 1.0}, {2.0 * e, 1.0});
    rope.per_op_rerun = true;
    out.ops.push_back(rope);
  }
  if (!mla) {
    LayerOp qkv = gemm(Op::Qkv, {bs, qkv_width / d.t, h, 1}, TpPlacement::Column);
    qkv.sharded_parameters = static_cast<double>(h * qkv_width + bias(qkv_width)) / t;
    qkv.saved.push_back(kept("QKV input", 2 * sbh / outside, TensorSplit::TpWithSp, true, true, false));
    qkv.per_op_rerun_columns = std::max<std::int64_t>(1, g * dh / d.t);  // wk
    out.ops.push_back(qkv);
  }
  if (!mla && d.positions == ModelSpec::ROPE) {
    // Rotates q and k (x cos + rotate(x) sin); its backward is the inverse rotation, so it keeps
    // nothing.
    // Eager (torchtitan's apply_rotary_emb): x.float() viewed as complex64 (read e, write 4), the
    // complex product with freqs_cis (4, 4), type_as (4, e): 2e + 16 bytes per element, and as many
    // back. Counted here too, the copies eager attention makes around SDPA: repeat_kv materialises K
    // and V at all a heads (read 2g, write 2a head vectors per token; backward sums them back) and
    // the output's transpose(1, 2).contiguous() (read a, write a): e (4a + 2g) / (a + g) bytes per
    // element of this op each way.
    const double layout_copies = d.eager ? e * static_cast<double>(4 * a + 2 * g) / static_cast<double>(a + g) : 0.0;
    const double rope_bytes = d.eager ? 2.0 * e + 16.0 + layout_copies : 2.0 * e;
    LayerOp rope = elementwise(Op::Rope, bs * (a + g) * dh / d.t, {rope_bytes, 3.0}, {rope_bytes, 3.0});
    rope.per_op_rerun = true;
    out.ops.push_back(rope);
  }
  // Keys and values per rank: the query groups' (GQA), or with MLA every head's own.
  const std::int64_t kv_heads = mla ? a : g;
  const double q_bytes = 2.0 * static_cast<double>(bs * a * qk_hd) / t;  // per-op SAC keeps wq's output
  const double k_bytes = 2.0 * static_cast<double>(bs * kv_heads * qk_hd) / t;  // and re-runs wk
  const double v_bytes = 2.0 * static_cast<double>(bs * kv_heads * v_hd) / t;
  if (flash) {
    // Causal: half of the 4 b s^2 d heads of full attention forward (two matmuls, QK^T over the
    // query/key head dimension and PV over the value's: 2 b s^2 heads (d_qk + d_v) / 2); backward
    // five matmuls (the scores recomputed inside the kernel): 2.5 times the forward.
    //
    // A sliding window of w tokens: each query attends to the w keys ending at itself. The kernel
    // (FlashAttention's local attention, cuDNN's sliding window) computes whole 128 x 128 tiles, so
    // a query block touches the key tiles its window spans, kw = 128 ceil((w + 127) / 128) keys per
    // query instead of s / 2; that is causal attention over sequences of 2 kw tokens, s / 2 kw times
    // as many, and the kernel is timed as that (its efficiency at sequence 2 kw: the short, many
    // blocks of a windowed kernel).
    const std::int64_t dh_mean = (qk_hd + v_hd) / 2;
    const std::int64_t tile = 128;
    const std::int64_t kw = windowed && d.window > 0 ? std::min<std::int64_t>(s / 2, tile * ((d.window + tile - 1) / tile + 1)) : s / 2;
    const std::int64_t s_eff = windowed && d.window > 0 && 2 * kw < s ? 2 * kw : s;
    LayerOp fa = gemm(Op::FlashAttention, {s_eff, s_eff, dh_mean, batch * std::max<std::int64_t>(1, s / s_eff)}, TpPlacement::None);
    fa.fused_attention = true;
    fa.fused_forward_flops = s_eff < s ? 4.0 * static_cast<double>(s) * kw * static_cast<double>(batch) * 0.5 * static_cast<double>(qk_hd + v_hd)
                                       : static_cast<double>(s) * s * static_cast<double>(batch) * static_cast<double>(qk_hd + v_hd);
    fa.fused_backward_flops = 2.5 * fa.fused_forward_flops;
    const double q = static_cast<double>(bs * heads * qk_hd), k = static_cast<double>(bs * (kv_heads / d.t) * qk_hd),
                 v = static_cast<double>(bs * (kv_heads / d.t) * v_hd), o = static_cast<double>(bs * heads * v_hd);
    const double kv = (k + v) / 2;
    const double lse = 4.0 * static_cast<double>(batch * s);
    fa.fused_forward_bytes = (q + k + v + o) * e + lse;                  // read q, k, v; write o, lse
    fa.fused_backward_bytes = (2 * q + 2 * k + 2 * v + 2 * o) * e + lse;  // read q k v o do lse; write dq dk dv
    // Attention sinks: one learned logit per head.
    if (d.sinks) fa.sharded_parameters = static_cast<double>(a) / t;
    fa.cp_steps = std::max<std::int64_t>(1, d.c);
    fa.cp_kv_bytes = fa.cp_steps > 1 ? 2.0 * kv * e : 0.0;      // K and V of this rank's tokens
    fa.saved.push_back(kept("Q (attention input)", q_bytes, TensorSplit::Tp, true, true, true));
    fa.saved.push_back(kept("K (attention input)", k_bytes, TensorSplit::Tp, true, true, false));
    fa.saved.push_back(kept("V (attention input)", v_bytes, TensorSplit::Tp, true, true, true));
    fa.saved.push_back(kept("softmax logsumexp", lse, TensorSplit::Tp, true, true, true));
    out.ops.push_back(fa);
  } else {
    LayerOp sc = gemm(Op::AttnScores, {s, s, dh, batch}, TpPlacement::None);
    sc.transposed_operand = true;
    sc.saved.push_back(kept("Q (scores input)", q_bytes, TensorSplit::Tp, true, true, true));
    sc.saved.push_back(kept("K (scores input)", k_bytes, TensorSplit::Tp, true, true, false));
    LayerOp softmax = elementwise(Op::Softmax, scores, {2.0 * e, 5.0}, {3.0 * e, 4.0});
    softmax.saved.push_back(kept("softmax output", 2 * as2b / t, TensorSplit::Tp, true, false, false));
    LayerOp dropout = elementwise(Op::AttnDropout, scores, {2.0 * e + 1.0, 1.0}, {2.0 * e + 1.0, 1.0});
    dropout.saved.push_back(kept("softmax dropout mask", as2b / t, TensorSplit::Tp, true, false, false));
    LayerOp ctx = gemm(Op::AttnContext, {s, dh, s, batch}, TpPlacement::None);
    // Without dropout the context GEMM reads the softmax output, already kept.
    if (d.dropout) ctx.saved.push_back(kept("softmax dropout output", 2 * as2b / t, TensorSplit::Tp, true, false, false));
    ctx.saved.push_back(kept("V (context input)", v_bytes, TensorSplit::Tp, true, true, true));
    std::vector<LayerOp*> core{&sc, &softmax, &ctx};
    if (d.dropout) core.insert(core.begin() + 2, &dropout);
    for (LayerOp* o : core) {
      o->attention_core = true;
      o->per_op_rerun = true;
      out.ops.push_back(*o);
    }
  }
  {
    LayerOp proj = gemm(Op::AttnProj, {bs, h, a * v_hd / d.t, 1}, TpPlacement::Row);
    proj.sharded_parameters = static_cast<double>(a * v_hd * h) / t;
    proj.replicated_parameters = static_cast<double>(bias(h));
    // The attention output; under PER_OP kept only as the fused attention's output.
    proj.saved.push_back(kept("projection input", 2.0 * static_cast<double>(bs * a * v_hd) / t, TensorSplit::Tp, true,
                              true, flash));
    if (d.sp) proj.saved.push_back(kept("attention reduce-scatter output", 2 * sbh / t, TensorSplit::TpWithSp, false, false, true));
    proj.per_op_rerun = !d.sp;
    out.ops.push_back(proj);
  }
  {
    LayerOp dr = dropout_residual("attention dropout mask");
    dr.per_op_rerun = true;
    out.ops.push_back(dr);
  }
  // MLP block.
  {
    LayerOp n2 = norm_op(norm.second_input);
    n2.per_op_rerun = true;
    out.ops.push_back(n2);
  }
  // The activation between FC1 and FC2 over `elements` of its output on this rank (the FFN width).
  auto activation = [&](std::int64_t elements) {
    const double x = static_cast<double>(elements);
    LayerOp act;
    if (swiglu) {
      // SiLU(gate) * up: reads gate and up, writes the product (3 values per output element);
      // backward reads gate, up and dy, writes dgate and dup.
      // Eager (torchtitan's w2(F.silu(w1(x)) * w3(x))): silu (e, e) then the product (2e, e): 5e
      // forward; backward the product's two gradients (2e, e each, reading the saved SiLU output)
      // and silu's (2e, e): 9e. Autograd keeps the SiLU output beside gate and up.
      act = elementwise(Op::Swiglu, elements, {(d.eager ? 5.0 : 3.0) * e, 6.0}, {(d.eager ? 9.0 : 5.0) * e, 10.0});
      act.saved.push_back(kept("SwiGLU gate input", 2 * x, TensorSplit::Tp, true, true, true));
      act.saved.push_back(kept("SwiGLU up input", 2 * x, TensorSplit::Tp, true, true, false));
      // Under per-op SAC SiLU is re-run, its output not kept.
      if (d.eager) act.saved.push_back(kept("SiLU output (eager)", 2 * x, TensorSplit::Tp, true, true, false));
    } else if (d.activation == ModelSpec::SQUARED_RELU) {
      // Eager: relu (e, e) then square (e, e); backward square's (2e, e) and relu's (2e, e).
      act = elementwise(Op::SquaredRelu, elements, {(d.eager ? 4.0 : 2.0) * e, 2.0}, {(d.eager ? 6.0 : 3.0) * e, 3.0});
      act.saved.push_back(kept("squared ReLU input", 2 * x, TensorSplit::Tp, true, true, true));
    } else {
      act = elementwise(Op::Gelu, elements, {2.0 * e, 8.0}, {3.0 * e, 12.0});
      act.saved.push_back(kept("GeLU input", 2 * x, TensorSplit::Tp, true, true, true));
    }
    act.per_op_rerun = true;
    return act;
  };
  // A tensor-parallel FFN of width ff (the dense MLP, or DeepSeek's shared experts beside the routed
  // ones): FC1 column-parallel, the activation, FC2 row-parallel.
  auto dense_mlp = [&](std::int64_t ff, Op fc1_op, Op fc2_op) {
    const std::int64_t width = swiglu ? 2 * ff : ff;
    const double ff_h = static_cast<double>(ff) / static_cast<double>(h);
    LayerOp fc1 = gemm(fc1_op, {bs, width / d.t, h, 1}, TpPlacement::Column);
    fc1.sharded_parameters = static_cast<double>(h * width + bias(width)) / t;
    fc1.saved.push_back(kept("FC1 input", 2 * sbh / outside, TensorSplit::TpWithSp, true, true, false));
    if (swiglu) fc1.per_op_rerun_columns = ff / d.t;  // w3
    out.ops.push_back(fc1);
    out.ops.push_back(activation(bs * ff / d.t));
    LayerOp fc2 = gemm(fc2_op, {bs, h, ff / d.t, 1}, TpPlacement::Row);
    fc2.sharded_parameters = static_cast<double>(ff * h) / t;
    fc2.replicated_parameters = static_cast<double>(bias(h));
    fc2.saved.push_back(kept("FC2 input", 2 * ff_h * sbh / t, TensorSplit::Tp, true, true, false));
    if (d.sp) fc2.saved.push_back(kept("MLP reduce-scatter output", 2 * sbh / t, TensorSplit::TpWithSp, false, false, true));
    // Per-op SAC caches w2's output (the 7th matmul, kept): b s h partial sums on every TP rank.
    fc2.saved.push_back(kept("FC2 output (per-op SAC cache)", 2 * sbh, TensorSplit::Tp, false, false, true));
    out.ops.push_back(fc2);
  };
  if (!moe) {
    dense_mlp(f, Op::Fc1, Op::Fc2);
  } else {
    // Megatron-Core's MoELayer (megatron/core/transformer/moe) with the all-to-all token dispatcher.
    // Each rank routes its own T tokens (b s / cp, split over tp by
    // sequence parallelism, which Megatron requires with MoE): the router GEMM (h x experts) and
    // its softmax / top-k in fp32, the permutation of every token's top_k copies into expert order
    // (memory-bound), the dispatch all-to-all over the ep group, the local experts' FFNs as grouped
    // GEMMs, the combine all-to-all back, and the un-permutation (the top_k outputs weighted by
    // their router probabilities and summed). Balanced routing sends each expert T top_k ep /
    // experts tokens; with moe_routing_skew s the busiest expert gets s times that, and this rank,
    // the one holding it, runs it as a GEMM of its own after the others' grouped GEMM.
    // Expert tensor parallelism (etp > 1): the etp ranks holding the same experts all-gather the
    // tokens each received, so every expert GEMM has etp x the rows, and each rank computes its
    // 1 / etp of FC1's output columns and of FC2's input rows; FC2's partial outputs are
    // reduce-scattered back to the rank that received the tokens before the combine.
    const std::int64_t T = bs / (d.sp ? d.t : 1);
    const std::int64_t E = d.experts, k = d.top_k, local = E / d.ep;
    // A capacity factor c (token dropping) keeps at most c x the balanced share per expert: below 1
    // every expert drops, and the dropped copies are neither dispatched nor computed; above 1 it
    // caps the busiest expert of a skewed routing.
    // Padded to capacity (moe_pad_to_capacity), every expert computes exactly c x its share, and the
    // all-to-alls carry the padded buffers, whatever the routing.
    const bool padded = d.capacity > 0 && d.pad_to_capacity;
    const double kept_share = padded ? d.capacity : d.capacity > 0 ? std::min(1.0, d.capacity) : 1.0;
    const double busiest = padded ? d.capacity : d.capacity > 0 ? std::min(d.skew, d.capacity) : d.skew;
    const double copies = static_cast<double>(T * k) * kept_share;  // the token copies this rank dispatches
    const double mean = static_cast<double>(T * k) * static_cast<double>(d.ep) / static_cast<double>(E);
    const std::int64_t m_mean = std::max<std::int64_t>(1, std::llround(mean * kept_share));
    const std::int64_t m_busy = std::max<std::int64_t>(1, std::llround(mean * std::max(busiest, kept_share)));
    const bool skewed = m_busy != m_mean;
    const double rows = static_cast<double>(m_mean * (skewed ? local - 1 : local) + (skewed ? m_busy : 0));
    const std::int64_t etp = d.etp, expert_f = d.moe_f / etp;  // one expert's FFN width on this rank
    const std::int64_t expert_width = swiglu ? 2 * expert_f : expert_f;
    const double expert_rows = rows * static_cast<double>(etp);  // the rows each expert GEMM runs
    // The all-gather dispatcher where tokens move (ep > 1): the ep group's T ep tokens arrive, this
    // rank's rows are picked out of them, and its outputs go back through a zeroed buffer of them
    // (written once more per row computed: `zeroed` bytes per element of the rows).
    const bool gathered = d.allgather_dispatcher && d.ep > 1;
    const double zeroed = gathered ? static_cast<double>(T * d.ep) / std::max(1.0, rows) : 0.0;
    {
      LayerOp router = gemm(Op::MoeRouter, {T, E, h, 1}, TpPlacement::None);
      router.has_weight = true;
      router.replicated_parameters = static_cast<double>(E * h);  // on every TP rank, reduced over dp
      router.saved.push_back(kept("router input", 2.0 * static_cast<double>(T * h), TensorSplit::TpWithSp, true, true, false));
      out.ops.push_back(router);
      // Softmax and top-k over the fp32 logits (read the logits, write fp32 probabilities); backward
      // reads the kept probabilities and the gradient.
      LayerOp topk = elementwise(Op::MoeTopK, T * E, {e + 8.0, 8.0}, {e + 8.0, 4.0});
      topk.saved.push_back(kept("router probabilities", 4.0 * static_cast<double>(T * E), TensorSplit::TpWithSp, true, true, true));
      out.ops.push_back(topk);
      // Gather every token's top_k copies in expert order (read and write one copy each); backward
      // sums the copies' gradients back into the token (read top_k copies, write one).
      if (gathered) {
        // After the gather: the copies for this rank's experts picked out of the ep group's tokens
        // (read and write one copy each); backward scatters their gradients into a zeroed buffer of
        // the gathered tokens (written once more), which the reduce-scatter returns.
        out.ops.push_back(elementwise(Op::MoePermute, static_cast<std::int64_t>(rows) * h, {2.0 * e, 0.0},
                                      {2.0 * e + zeroed * e, 1.0}));
      } else {
        out.ops.push_back(elementwise(Op::MoePermute, T * k * h, {2.0 * e, 0.0}, {e + e / static_cast<double>(k), 1.0}));
      }
    }
    // A token exchange among the expert ranks (LayerOp::expert_exchange).
    auto exchange = [](Op op, CommGroup group, CollectiveKind forward, CollectiveKind backward, double forward_bytes,
                       double backward_bytes) {
      LayerOp x;
      x.op = op;
      x.expert_exchange = true;
      x.exchange_group = group;
      x.exchange_forward = forward;
      x.exchange_backward = backward;
      x.exchange_forward_bytes = forward_bytes;
      x.exchange_backward_bytes = backward_bytes;
      return x;
    };
    auto all_to_all = [&](Op op) {
      if (!gathered) {
        const double bytes = copies * static_cast<double>(h) * e;  // each rank's send buffer (and receive)
        return exchange(op, GROUP_EP, ALL_TO_ALL, ALL_TO_ALL, bytes, bytes);
      }
      // Megatron-Core's MoEAllGatherTokenDispatcher: the ep group's tokens gathered (with each
      // token's routing: its probabilities in fp32 and its routing-map row, 5 B per expert), the
      // expert outputs reduce-scattered back; backward the other way round without the routing.
      const double gathered_tokens = static_cast<double>(T * d.ep);
      const bool dispatch = op == Op::MoeDispatch;
      const double tokens_bytes = gathered_tokens * static_cast<double>(h) * e;
      return exchange(op, GROUP_EP, dispatch ? ALL_GATHER : REDUCE_SCATTER, dispatch ? REDUCE_SCATTER : ALL_GATHER,
                      tokens_bytes + (dispatch ? gathered_tokens * 5.0 * static_cast<double>(E) : 0.0), tokens_bytes);
    };
    if (d.ep > 1) out.ops.push_back(all_to_all(Op::MoeDispatch));
    // The expert tensor-parallel exchange: the received tokens gathered over etp (backward: their
    // gradients reduce-scattered), and the partial outputs reduce-scattered (backward: gathered).
    const double expert_tp_bytes = expert_rows * static_cast<double>(h) * e;  // the whole gathered tensor
    if (etp > 1)
      out.ops.push_back(exchange(Op::ExpertTpGather, GROUP_EXPERT_TP, ALL_GATHER, REDUCE_SCATTER, expert_tp_bytes, expert_tp_bytes));
    auto experts = [&](Op op, std::int64_t n, std::int64_t kk, double parameters_per_expert, const char* input,
                       double input_width) {
      if (!skewed || local > 1) {
        LayerOp g = gemm(op, {m_mean * etp, n, kk, skewed ? local - 1 : local}, TpPlacement::None);
        g.expert = true;
        out.ops.push_back(g);
      }
      if (skewed) {
        LayerOp busiest = gemm(op, {m_busy * etp, n, kk, 1}, TpPlacement::None);
        busiest.expert = true;
        out.ops.push_back(busiest);
      }
      LayerOp& first = out.ops[out.ops.size() - ((skewed && local > 1) ? 2 : 1)];
      first.has_weight = true;
      first.expert_parameters = parameters_per_expert * static_cast<double>(local);
      first.saved.push_back(kept(input, 2.0 * expert_rows * input_width, TensorSplit::Tp, true, true, false));
    };
    experts(Op::ExpertFc1, expert_width, h, static_cast<double>(h * expert_width), "permuted tokens, the expert FC1 input",
            static_cast<double>(h));
    out.ops.push_back(activation(static_cast<std::int64_t>(expert_rows) * expert_f));
    experts(Op::ExpertFc2, h, expert_f, static_cast<double>(expert_f * h), "expert FC2 input", static_cast<double>(expert_f));
    if (etp > 1)
      out.ops.push_back(
          exchange(Op::ExpertTpReduceScatter, GROUP_EXPERT_TP, REDUCE_SCATTER, ALL_GATHER, expert_tp_bytes, expert_tp_bytes));
    if (d.ep > 1) out.ops.push_back(all_to_all(Op::MoeCombine));
    // Un-permute: each token's top_k expert outputs weighted by their probabilities and summed (read
    // the copies, write the token); backward writes each copy's gradient and reads the kept outputs
    // for the probabilities' gradient.
    // With the all-gather dispatcher this rank's expert outputs, weighted, are added into a zeroed
    // buffer of the ep group's tokens (the reduce-scatter's input); backward gathers their gradients.
    LayerOp unpermute =
        gathered ? elementwise(Op::MoeUnpermute, static_cast<std::int64_t>(rows) * h, {2.0 * e + zeroed * e, 2.0}, {2.0 * e, 2.0})
                 : elementwise(Op::MoeUnpermute, T * k * h, {e + e / static_cast<double>(k), 2.0}, {2.0 * e, 2.0});
    unpermute.saved.push_back(kept("expert outputs (unpermute input)", 2.0 * (gathered ? rows : copies) * static_cast<double>(h),
                                   TensorSplit::Tp, true, true, true));
    out.ops.push_back(unpermute);
    if (d.shared > 0) dense_mlp(d.shared * d.moe_f, Op::SharedExpertFc1, Op::SharedExpertFc2);
  }
  out.ops.push_back(dropout_residual("MLP dropout mask"));
  if (d.fp8) fp8_linears(out, d, hidden_elements);
  return out;
}

double LayerDescription::sharded_parameters() const {
  double total = 0;
  for (const LayerOp& op : ops) total += op.sharded_parameters;
  return total;
}

double LayerDescription::expert_parameters() const {
  double total = 0;
  for (const LayerOp& op : ops) total += op.expert_parameters;
  return total;
}

double LayerDescription::replicated_parameters() const {
  double total = 0;
  for (const LayerOp& op : ops) total += op.replicated_parameters;
  return total;
}

std::vector<const SavedTensor*> LayerDescription::saved(Layout::Recompute recompute,
                                                        Layout::SelectivePolicy policy) const {
  if (recompute == Layout::FULL) return {&layer_input};
  const bool per_op = recompute == Layout::SELECTIVE && policy == Layout::PER_OP;
  auto keeps = [&](const SavedTensor& s) {
    if (recompute == Layout::NO_RECOMPUTE) return s.no_recompute;
    return per_op ? s.per_op : s.selective;
  };
  std::vector<const SavedTensor*> out;
  for (const bool first_pass : {true, false})
    for (const LayerOp& op : ops)
      for (const SavedTensor& s : op.saved)
        if (keeps(s) && s.selective == first_pass) out.push_back(&s);
  return out;
}

std::vector<BackwardStep> backward_of(const LayerOp& op) {
  if (op.fused_attention) {
    BackwardStep step{GemmRole::InputGrad, true, op.gemm};
    step.flops = op.fused_backward_flops;
    step.bytes = op.fused_backward_bytes;
    return {step};
  }
  if (!op.is_gemm) {
    BackwardStep step{GemmRole::Forward, false, {}};
    step.flops = static_cast<double>(op.elements) * op.backward.flops_per_element;
    step.bytes = static_cast<double>(op.elements) * op.backward.bytes_per_element;
    return {step};
  }
  const GemmShape& y = op.gemm;
  const GemmShape input_grad{y.m, y.k, y.n, y.batch};
  const GemmShape second = op.transposed_operand && !op.has_weight ? GemmShape{y.n, y.k, y.m, y.batch}
                                                                   : GemmShape{y.k, y.n, y.m, y.batch};
  BackwardStep dx{GemmRole::InputGrad, true, input_grad};
  dx.flops = input_grad.flops();
  BackwardStep dw{GemmRole::WeightGrad, true, second};
  dw.flops = second.flops();
  return {dx, dw};
}

LayerTaskCounts layer_task_counts(const LayerDescription& layer, const Dims& d, Layout::Recompute recompute) {
  const std::uint64_t tb = d.t > 1 ? 1 : 0, spt = d.sp ? 1 : 0;
  LayerTaskCounts c;
  for (const LayerOp& op : layer.ops) {
    c.forward += 1 + (op.fp8 ? 1 : 0);  // an FP8 linear's input cast
    if (op.fp8) c.backward += 1;       // and its output gradient's
    if (op.cp_steps > 1) {
      // The ring: cp kernels and cp - 1 K/V exchanges forward; backward cp kernels, cp - 1 K/V
      // exchanges and cp dK/dV exchanges (backward_of counts one kernel).
      c.forward += 2 * static_cast<std::uint64_t>(op.cp_steps - 1);
      c.backward += 3 * static_cast<std::uint64_t>(op.cp_steps - 1) + 1;
    }
    if (op.tp == TpPlacement::Column) c.forward += spt;
    if (op.tp == TpPlacement::Row) c.forward += tb;
    c.backward += backward_of(op).size();
    if (op.tp == TpPlacement::Column) c.backward += spt + tb;  // re-gather of the input, reduction of its grad
    if (op.tp == TpPlacement::Row) c.backward += spt;          // gather of the output grad
  }
  if (recompute == Layout::FULL) c.backward += c.forward;
  if (recompute == Layout::SELECTIVE) {
    for (const LayerOp& op : layer.ops) {
      if (d.selective_policy == Layout::PER_OP) {
        if (op.per_op_rerun) c.backward += 1 + (op.fp8 ? 1 : 0) + (op.tp == TpPlacement::Row ? tb : 0);
        if (op.per_op_rerun_columns > 0) c.backward += 1 + (op.fp8 ? 1 : 0) + spt;  // its input re-gathered
      } else if (op.attention_core) {
        c.backward += 1;
      }
    }
  }
  return c;
}

}  // namespace parallax::model
