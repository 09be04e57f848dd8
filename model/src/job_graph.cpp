#include "parallax/model/job_graph.h"

#include "parallax/model/job_size.h"
#include "parallax/model/layer.h"
#include "parallax/model/memory_model.h"
#include "parallax/model/parameters.h"
#include "parallax/model/rank_grid.h"
#include "parallax/model/scenario.h"
#include "parallax/model/schedule.h"
#include "parallax/model/stage_partition.h"

#include <boost/graph/topological_sort.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <iterator>
#include <limits>
#include <stdexcept>
#include <unordered_map>

namespace parallax::model {

std::string_view op_name(Op op) {
  static constexpr std::array<std::string_view, static_cast<std::size_t>(Op::kCount)> names{
      "embedding",          "layernorm",          "qkv",
      "attn_scores",        "softmax",            "attn_dropout",
      "attn_context",       "attn_proj",          "dropout_residual",
      "fc1",                "gelu",               "fc2",
      "final_layernorm",    "logits",             "cross_entropy",
      "tp_all_reduce",      "sp_all_gather",      "sp_reduce_scatter",
      "pp_send",            "pp_recv",            "dp_grad_all_reduce",
      "dp_grad_reduce_scatter", "dp_param_all_gather", "embedding_grad_all_reduce",
      "optimizer_step",     "rmsnorm",            "final_rmsnorm",
      "rope",               "flash_attention",    "swiglu",
      "squared_relu",       "fp8_cast",           "cp_kv_exchange",
      "trace_compute",      "trace_memory",
      "trace_bookkeeping",  "trace_collective",   "trace_send",
      "trace_recv",         "moe_router",         "moe_topk",
      "moe_permute",        "moe_dispatch",       "expert_fc1",
      "expert_fc2",         "moe_combine",        "moe_unpermute",
      "shared_expert_fc1",  "shared_expert_fc2",  "mla_down_proj",
      "mla_latent_norm",    "mla_q_up_proj",      "mla_kv_up_proj",
      "expert_tp_all_gather", "expert_tp_reduce_scatter", "mtp_projection"};
  return names[static_cast<std::size_t>(op)];
}

namespace {

using Edge = std::pair<std::uint32_t, std::uint32_t>;
constexpr std::uint32_t kNone = ~0u;

// One gradient bucket: consecutive layers of one model chunk, in the order backward finishes them.
struct Bucket {
  std::int32_t chunk;
  std::vector<std::int32_t> layers;  // global layer ids; -1 = embedding, -2 = output layer
  double parameters = 0;
};

class Builder {
 public:
  explicit Builder(const Scenario& sc)
      : sc_(sc), d_(dims(sc)), grid_(rank_grid(sc)), partition_(stage_partition(sc)), layout_(sc.layout()),
        layer_(describe_layer(d_)),
        moe_layer_(d_.experts > 0 ? describe_layer(d_, true) : LayerDescription{}),
        windowed_layer_(d_.window > 0 ? describe_layer(d_, false, true) : LayerDescription{}),
        windowed_moe_layer_(d_.window > 0 && d_.experts > 0 ? describe_layer(d_, true, true) : LayerDescription{}) {
    grad_bytes_ = static_cast<std::int64_t>(gradient_bytes_per_parameter(layout_, d_));
    layer_params_ = layer_parameters(d_).local();
    if (d_.experts > 0) moe_params_ = layer_parameters(d_, true);
  }

  JobGraph build() {
    const bool symmetric = sc_.options().use_symmetry();
    for (std::int64_t stage = 0; stage < d_.p; ++stage) {
      if (symmetric) {
        ranks_.push_back({grid_.stage_representative(stage), static_cast<std::uint32_t>(grid_.pipelines()),
                          static_cast<std::int32_t>(stage)});
      } else {
        for (std::uint32_t rank : grid_.stage_ranks(stage)) ranks_.push_back({rank, 1u, static_cast<std::int32_t>(stage)});
      }
    }
    rank_tasks_.resize(ranks_.size());
    for (std::size_t i = 0; i < ranks_.size(); ++i) emit_rank(i);
    // Pipeline transfers: every recv waits for its matching send on the peer.
    for (const auto& [key, recv] : recvs_) {
      const auto it = sends_.find(key);
      if (it == sends_.end())
        throw std::logic_error("job graph: a pipeline recv has no matching send (builder bug)");
      edges_.emplace_back(it->second, recv);
    }
    return JobGraph(sc_, std::move(ranks_), std::move(tasks_), std::move(rank_tasks_), edges_);
  }

 private:
  // ---- task emission with stream order and pending dependencies ----

  std::uint32_t add(Task t, std::initializer_list<std::uint32_t> deps = {}, bool stream_ordered = true) {
    t.rank = current_rank_;
    const auto id = static_cast<std::uint32_t>(tasks_.size());
    auto& last = last_on_stream_[t.stream];
    auto add_edge = [&](std::uint32_t from) {
      if (from != kNone && from != id) edges_.emplace_back(from, id);
    };
    if (stream_ordered) add_edge(last);
    for (auto dep : deps)
      if (dep != last || !stream_ordered) add_edge(dep);
    if (t.is_compute()) {
      for (auto dep : pending_) add_edge(dep);
      pending_.clear();
    }
    if (stream_ordered) last = id;
    tasks_.push_back(t);
    rank_tasks_[rank_index_].push_back(id);
    return id;
  }

  std::uint32_t last_compute() const { return last_on_stream_[COMPUTE]; }

  Task base(Op op, Phase phase, std::int32_t layer, std::int32_t mb) const {
    Task t;
    t.op = op;
    t.phase = phase;
    t.layer = static_cast<std::int16_t>(layer);
    t.microbatch = mb;
    return t;
  }

  std::uint32_t gemm(Op op, GemmRole role, Phase phase, std::int32_t layer, std::int32_t mb,
                     std::int64_t m, std::int64_t n, std::int64_t k, std::int64_t batch = 1, bool fp8 = false) {
    Task t = base(op, phase, layer, mb);
    t.kind = GEMM;
    t.role = role;
    t.gemm_m = static_cast<std::uint32_t>(m);
    t.gemm_n = static_cast<std::uint32_t>(n);
    t.gemm_k = static_cast<std::uint32_t>(k);
    t.gemm_batch = static_cast<std::uint32_t>(batch);
    t.flops = 2.0 * m * n * k * batch;
    t.fp8 = fp8;
    // Each operand read once and the result written once: the roofline's memory side (FP8 operands
    // 1 B, the output in the training precision).
    const std::int64_t operand_bytes = fp8 ? 1 : d_.e;
    t.bytes = static_cast<std::uint64_t>(((m * k + k * n) * operand_bytes + m * n * d_.e) * batch);
    return add(t);
  }

  // FP8 training: the cast before an FP8 linear's GEMM (LayerOp::fp8_*_cast_bytes), the weight's
  // with the first micro-batch's forward.
  void fp8_cast(const LayerOp& op, Phase phase, std::int32_t layer, std::int32_t mb) {
    if (!op.fp8) return;
    double bytes = phase == BACKWARD ? op.fp8_backward_cast_bytes : op.fp8_forward_cast_bytes;
    if (phase == FORWARD && mb == 0) bytes += op.fp8_weight_cast_bytes;
    Task t = base(Op::Fp8Cast, phase, layer, mb);
    t.kind = MEMORY_BOUND;
    t.bytes = static_cast<std::uint64_t>(bytes);
    t.flops = bytes / 2;  // scale, saturate and convert: about one FLOP per BF16 value read
    add(t);
  }

  // An elementwise op over `elements` values touching `bytes_per_element` bytes for each.
  std::uint32_t elementwise(Op op, Phase phase, std::int32_t layer, std::int32_t mb,
                            std::int64_t elements, double bytes_per_element, double flops_per_element) {
    Task t = base(op, phase, layer, mb);
    t.kind = MEMORY_BOUND;
    t.bytes = static_cast<std::uint64_t>(elements * bytes_per_element);
    t.flops = static_cast<double>(elements) * flops_per_element;
    return add(t);
  }

  std::uint32_t collective(Op op, CollectiveKind kind, CommGroup group, Stream stream, Phase phase,
                           std::int32_t layer, std::int32_t mb, std::uint64_t bytes,
                           std::initializer_list<std::uint32_t> deps) {
    Task t = base(op, phase, layer, mb);
    t.kind = COLLECTIVE;
    t.collective = kind;
    t.group = group;
    t.stream = stream;
    t.bytes = bytes;
    return add(t, deps);
  }

  // A TP collective the compute stream waits for (forward all-reduce, SP gathers).
  void tp_blocking(Op op, CollectiveKind kind, Phase phase, std::int32_t layer, std::int32_t mb,
                   std::uint64_t bytes = 0) {
    if (d_.t == 1) return;
    pending_.push_back(collective(op, kind, GROUP_TP, TP_COMM, phase, layer, mb, bytes ? bytes : act_bytes_full(),
                                  {last_compute()}));
  }

  // ---- sizes ----

  std::int64_t tokens() const { return local_tokens(d_); }  // this rank's: s / cp of each sequence
  // Elements of the hidden activation held by one TP rank outside the TP regions.
  std::int64_t hidden_elements() const { return tokens() * d_.h / (d_.sp ? d_.t : 1); }
  std::uint64_t act_bytes_full() const { return static_cast<std::uint64_t>(tokens() * d_.h * d_.e); }
  // A sequence-parallel all-gather feeding an FP8 linear carries the FP8 cast (TE casts before it
  // gathers, in forward the input and in backward the output gradient).
  std::uint64_t gather_bytes(const LayerOp& op) const {
    const std::uint64_t full = input_bytes_full(op);
    return op.fp8 ? full / static_cast<std::uint64_t>(d_.e) : full;
  }
  // The whole input of a column-parallel GEMM (hidden_size wide, or a latent: LayerOp::gathered_width).
  std::uint64_t input_bytes_full(const LayerOp& op) const {
    return op.gathered_width > 0 ? static_cast<std::uint64_t>(tokens() * op.gathered_width * d_.e) : act_bytes_full();
  }

  // ---- transformer layer ----

  // A GEMM whose FLOPs and bytes are given (the fused attention kernel), not derived from the shape.
  std::uint32_t fused_gemm(Op op, GemmRole role, Phase phase, std::int32_t layer, std::int32_t mb,
                           const GemmShape& shape, double flops, double bytes) {
    Task t = base(op, phase, layer, mb);
    t.kind = GEMM;
    t.role = role;
    t.gemm_m = static_cast<std::uint32_t>(shape.m);
    t.gemm_n = static_cast<std::uint32_t>(shape.n);
    t.gemm_k = static_cast<std::uint32_t>(shape.k);
    t.gemm_batch = static_cast<std::uint32_t>(shape.batch);
    t.flops = flops;
    t.bytes = static_cast<std::uint64_t>(bytes);
    return add(t);
  }

  // One forward op of model::LayerDescription with its TP collectives: with sequence parallelism a
  // column-parallel GEMM waits for the all-gather of its input; a row-parallel GEMM's output is
  // reduced (all-reduce, or reduce-scatter with sequence parallelism) before the next op.
  // MoE dispatch / combine: an all-to-all over the ep group, on the compute stream: Megatron's
  // dispatcher holds the layer's compute until the tokens have arrived (no overlap). The same for
  // the all-gather dispatcher's collectives and the expert tensor-parallel gather and scatter
  // (LayerOp::exchange_group, exchange_forward, exchange_backward).
  void expert_exchange(const LayerOp& op, Phase phase, std::int32_t layer, std::int32_t mb) {
    const bool backward = phase == BACKWARD;
    const CollectiveKind kind = backward ? op.exchange_backward : op.exchange_forward;
    const auto bytes = static_cast<std::uint64_t>(backward ? op.exchange_backward_bytes : op.exchange_forward_bytes);
    // Overlapped (merged steps of layout.moe_a2a_overlap): on the EP_COMM stream after this chain's
    // last compute task, and this chain's next compute task waits for it.
    if (overlapped_a2a_) {
      pending_.push_back(
          collective(op.op, kind, op.exchange_group, EP_COMM, phase, layer, mb, bytes, {chains_[active_chain_].last}));
      return;
    }
    collective(op.op, kind, op.exchange_group, COMPUTE, phase, layer, mb, bytes, {last_compute()});
  }

  void op_forward(const LayerOp& op, Phase phase, std::int32_t layer, std::int32_t mb) {
    if (op.expert_exchange) {
      expert_exchange(op, phase, layer, mb);
      return;
    }
    const bool overlap = tp_overlapped() && op.is_gemm;
    fp8_cast(op, phase, layer, mb);
    const std::uint32_t gathered =
        op.tp == TpPlacement::Column && d_.sp ? sp_gather(overlap, phase, layer, mb, gather_bytes(op)) : kNone;
    const std::uint32_t before = last_compute();
    if (op.fused_attention && op.cp_steps > 1)
      cp_ring_forward(op, phase, layer, mb);
    else if (op.fused_attention)
      fused_gemm(op.op, GemmRole::Forward, phase, layer, mb, op.gemm, op.fused_forward_flops, op.fused_forward_bytes);
    else if (op.is_gemm) {
      const auto id =
          gemm(op.op, GemmRole::Forward, phase, layer, mb, op.gemm.m, op.gemm.n, op.gemm.k, op.gemm.batch, op.fp8);
      // TE's ring_exchange for the column-parallel GEMMs, pipeline for the row-parallel ones.
      if (overlap && op.tp == TpPlacement::Column) overlap_shaped(id, d_.t, false);
      if (overlap && op.tp == TpPlacement::Row) overlap_shaped(id, kTpOverlapPipelineSplits, true);
    } else
      elementwise(op.op, phase, layer, mb, op.elements, op.forward.bytes_per_element, op.forward.flops_per_element);
    if (gathered != kNone) pending_.push_back(gathered);
    if (op.tp == TpPlacement::Row) {
      if (overlap)
        pending_.push_back(collective(Op::SpReduceScatter, REDUCE_SCATTER, GROUP_TP, TP_COMM, phase, layer, mb,
                                      act_bytes_full(), {before}));
      else
        tp_blocking(d_.sp ? Op::SpReduceScatter : Op::TpAllReduce, d_.sp ? REDUCE_SCATTER : ALL_REDUCE, phase, layer, mb);
    }
  }

  // Context parallelism's ring attention (Megatron's p2p cp_comm_type, Transformer Engine's
  // AttnFuncWithCPAndKVP2P): cp steps on the compute stream, each the fused kernel on the K/V block
  // in hand, while the next block moves on the CP stream (a send to the next cp rank and a receive
  // from the previous): the exchange for step k + 1 starts with step k, so a step waits only for the
  // part of its block's transfer that outlasts the kernel before it. The first exchange starts when
  // this rank's K/V exist.
  void cp_ring_forward(const LayerOp& op, Phase phase, std::int32_t layer, std::int32_t mb) {
    const auto kv = static_cast<std::uint64_t>(op.cp_kv_bytes);
    std::uint32_t arriving = kNone;
    for (std::int64_t k = 0; k < op.cp_steps; ++k) {
      if (arriving != kNone) pending_.push_back(arriving);
      arriving = k + 1 < op.cp_steps ? collective(Op::CpKvExchange, RING_EXCHANGE, GROUP_CP, CP_COMM, phase, layer, mb,
                                                  kv, {last_compute()})
                                     : kNone;
      fused_gemm(op.op, GemmRole::Forward, phase, layer, mb, op.gemm, op.fused_forward_flops, op.fused_forward_bytes);
    }
  }

  // Its backward: the K/V blocks travel the ring again, and after each step the dK/dV it computed for
  // the block in hand go on with it (accumulated by the next rank; the last exchange brings each
  // rank's own dK/dV home, and the layer's backward continues when it is there).
  void cp_ring_backward(const LayerOp& op, const BackwardStep& step, std::int32_t layer, std::int32_t mb) {
    const auto kv = static_cast<std::uint64_t>(op.cp_kv_bytes);
    std::uint32_t arriving = kNone, gradients = kNone;
    for (std::int64_t k = 0; k < op.cp_steps; ++k) {
      if (arriving != kNone) pending_.push_back(arriving);
      arriving = k + 1 < op.cp_steps ? collective(Op::CpKvExchange, RING_EXCHANGE, GROUP_CP, CP_COMM, BACKWARD, layer,
                                                  mb, kv, {last_compute()})
                                     : kNone;
      const auto kernel = fused_gemm(op.op, step.role, BACKWARD, layer, mb, step.gemm, step.flops, step.bytes);
      gradients = collective(Op::CpKvExchange, RING_EXCHANGE, GROUP_CP, CP_COMM, BACKWARD, layer, mb, kv, {kernel});
    }
    pending_.push_back(gradients);
  }

  // NeMo's tp_comm_overlap (Transformer Engine userbuffers, sequence parallel only): the all-gather
  // feeding a column-parallel GEMM and the reduce-scatter of a row-parallel GEMM's output are cut
  // into chunks that move while the GEMM computes the chunks already there, so the collective starts
  // with its GEMM and the op after the GEMM waits for both: max(GEMM, collective) instead of their
  // sum. The GEMMs themselves run as TE runs them (overlap_shaped, kTpOverlapCommSms): in chunks,
  // on the SMs the communication kernels leave. Not modelled: the first (or last) chunk that cannot
  // overlap.
  bool tp_overlapped() const { return layout_.tp_comm_overlap() && d_.sp && d_.t > 1; }

  // The GEMM `id` as TE's userbuffer overlap runs it (kTpOverlapCommSms): in `splits` chunks along
  // m, and on the SMs the communication kernels leave when they keep a margin.
  void overlap_shaped(std::uint32_t id, std::int64_t splits, bool sm_margin) {
    Task& t = tasks_[id];
    t.gemm_splits = static_cast<std::uint16_t>(std::clamp<std::int64_t>(splits, 1, std::max<std::int64_t>(1, t.gemm_m)));
    if (sm_margin) t.sm_share = static_cast<float>(sm_count_ - kTpOverlapCommSms) / static_cast<float>(sm_count_);
  }

  // The sequence-parallel all-gather before a GEMM. Blocking: the next compute task (the GEMM) waits
  // for it and kNone is returned. Overlapped: it starts with the GEMM and is returned, for the caller
  // to make the task after the GEMM wait for it.
  std::uint32_t sp_gather(bool overlapped, Phase phase, std::int32_t layer, std::int32_t mb, std::uint64_t bytes) {
    if (!overlapped) {
      tp_blocking(Op::SpAllGather, ALL_GATHER, phase, layer, mb, bytes);
      return kNone;
    }
    return collective(Op::SpAllGather, ALL_GATHER, GROUP_TP, TP_COMM, phase, layer, mb, bytes, {last_compute()});
  }

  void layer_forward(Phase phase, std::int32_t layer, std::int32_t mb) {
    if (phase == FORWARD) zero3_gather(phase, layer, mb);  // recompute: gathered by layer_backward
    for (const LayerOp& op : layer_of(layer).ops) op_forward(op, phase, layer, mb);
  }

  // Backward of Y = X W with X (m x k), W (k x n): dX = dY W^T is GEMM(m, k, n), dW = X^T dY is
  // GEMM(k, n, m). Megatron overlaps the TP reduction of dX with the dW GEMM; with sequence
  // parallelism it also re-gathers X (kept sharded) for dW while dX is computed.
  void linear_backward_with_tp(const LayerOp& lop, std::int32_t layer, std::int32_t mb,
                               const std::vector<BackwardStep>& steps) {
    const Op op = lop.op;
    fp8_cast(lop, BACKWARD, layer, mb);
    std::uint32_t regather = kNone;
    if (d_.sp && d_.t > 1)
      regather = collective(Op::SpAllGather, ALL_GATHER, GROUP_TP, TP_COMM, BACKWARD, layer, mb,
                            gather_bytes(lop), {last_compute()});
    const GemmShape& dx = steps.at(0).gemm;
    const GemmShape& dw = steps.at(1).gemm;
    const auto dgrad = gemm(op, GemmRole::InputGrad, BACKWARD, layer, mb, dx.m, dx.n, dx.k, dx.batch, lop.fp8);
    // TE's bulk overlap: the all-gather runs beside the dgrad, the reduce-scatter beside the wgrad.
    if (tp_overlapped()) overlap_shaped(dgrad, 1, true);
    std::uint32_t reduce = kNone;
    if (d_.t > 1)
      reduce = collective(d_.sp ? Op::SpReduceScatter : Op::TpAllReduce, d_.sp ? REDUCE_SCATTER : ALL_REDUCE,
                          GROUP_TP, TP_COMM, BACKWARD, layer, mb, input_bytes_full(lop), {dgrad});
    if (regather != kNone) pending_.push_back(regather);
    const auto wgrad = gemm(op, GemmRole::WeightGrad, BACKWARD, layer, mb, dw.m, dw.n, dw.k, dw.batch, lop.fp8);
    if (tp_overlapped() && reduce != kNone) overlap_shaped(wgrad, 1, true);
    if (reduce != kNone) pending_.push_back(reduce);
  }

  // The backward of one forward op (model::backward_of) with its TP collectives.
  void op_backward(const LayerOp& op, std::int32_t layer, std::int32_t mb) {
    if (op.expert_exchange) {
      expert_exchange(op, BACKWARD, layer, mb);  // the gradients of the tokens, the other way
      return;
    }
    const std::vector<BackwardStep> steps = backward_of(op);
    if (!op.is_gemm) {
      elementwise(op.op, BACKWARD, layer, mb, op.elements, op.backward.bytes_per_element, op.backward.flops_per_element);
      return;
    }
    if (op.tp == TpPlacement::Column) {
      linear_backward_with_tp(op, layer, mb, steps);
      return;
    }
    fp8_cast(op, BACKWARD, layer, mb);
    // A row-parallel GEMM's output gradient is gathered (sequence parallel) before its dgrad; with TP
    // overlap the gather runs with the dgrad and the wgrad waits for it.
    std::uint32_t gathered =
        op.tp == TpPlacement::Row && d_.sp ? sp_gather(tp_overlapped(), BACKWARD, layer, mb, gather_bytes(op)) : kNone;
    for (const BackwardStep& step : steps) {
      if (op.fused_attention && op.cp_steps > 1) {
        cp_ring_backward(op, step, layer, mb);
      } else if (op.fused_attention) {
        fused_gemm(op.op, step.role, BACKWARD, layer, mb, step.gemm, step.flops, step.bytes);
      } else {
        const auto id =
            gemm(op.op, step.role, BACKWARD, layer, mb, step.gemm.m, step.gemm.n, step.gemm.k, step.gemm.batch, op.fp8);
        // TE's ring_exchange: the dgrad runs shard by shard as the output gradient arrives.
        if (gathered != kNone) overlap_shaped(id, d_.t, false);
      }
      if (gathered != kNone) {
        pending_.push_back(gathered);
        gathered = kNone;
      }
    }
  }

  // `next_layer`: the layer whose backward follows in the same chunk (-1 at the chunk's first layer).
  void layer_backward(std::int32_t layer, std::int32_t next_layer, std::int32_t mb) {
    const auto recompute = layout_.recompute();
    const bool per_op = recompute == Layout::SELECTIVE && layout_.selective_policy() == Layout::PER_OP;
    const bool core_attention = recompute == Layout::SELECTIVE && !per_op;
    // Full recompute re-runs the forward (gathering ZeRO-3 parameters once for both passes).
    zero3_backward_gathers(recompute == Layout::FULL ? RECOMPUTE_FORWARD : BACKWARD, layer, next_layer, mb);
    if (recompute == Layout::FULL) layer_forward(RECOMPUTE_FORWARD, layer, mb);
    // Per-op selective recompute re-runs the ops whose outputs it did not keep (describe_layer).
    const LayerDescription& desc = layer_of(layer);
    if (per_op)
      for (const LayerOp& op : desc.ops) {
        if (op.per_op_rerun) op_forward(op, RECOMPUTE_FORWARD, layer, mb);
        if (op.per_op_rerun_columns > 0) {
          LayerOp part = op;  // torchtitan's wk / w3: the same input, fewer output columns
          part.gemm.n = op.per_op_rerun_columns;
          op_forward(part, RECOMPUTE_FORWARD, layer, mb);
        }
      }
    for (auto it = desc.ops.rbegin(); it != desc.ops.rend(); ++it) {
      // Selective recompute re-runs the attention core just before its backward needs it.
      if (core_attention && it->attention_core && (it == desc.ops.rbegin() || !std::prev(it)->attention_core))
        for (const LayerOp& op : desc.ops)
          if (op.attention_core) op_forward(op, RECOMPUTE_FORWARD, layer, mb);
      op_backward(*it, layer, mb);
    }
    layer_done_[layer] = last_compute();
    zero2_reduce(layer, mb);
  }

  // ---- embedding and output layer ----

  void embedding_forward(std::int32_t mb) {
    // Vocabulary-parallel lookup (rows of V/t), the learned position embedding's add, dropout:
    // reads the word row (and the position row), writes the sum and a 1-byte mask.
    const bool positions = layer_.learned_positions;
    elementwise(Op::Embedding, FORWARD, -1, mb, tokens() * d_.h, (positions ? 3.0 : 2.0) * d_.e + (d_.dropout ? 1.0 : 0.0),
                positions ? 2.0 : 1.0);
    if (d_.t > 1)
      pending_.push_back(collective(d_.sp ? Op::SpReduceScatter : Op::TpAllReduce, d_.sp ? REDUCE_SCATTER : ALL_REDUCE,
                                    GROUP_TP, TP_COMM, FORWARD, -1, mb, act_bytes_full(), {last_compute()}));
  }

  void embedding_backward(std::int32_t mb) {
    // Scatter-add of the output gradient into the embedding rows (the vocabulary-parallel embedding
    // needs no TP communication in backward).
    elementwise(Op::Embedding, BACKWARD, -1, mb, tokens() * d_.h, 3.0 * d_.e, 1.0);
    embedding_done_ = last_compute();
    zero2_reduce(-1, mb);
  }

  // A column-parallel linear outside the layers: this rank's tokens times a k x n weight shard.
  LayerOp column_linear(Op kind, std::int64_t n, std::int64_t k) const {
    LayerOp op;
    op.op = kind;
    op.is_gemm = true;
    op.has_weight = true;
    op.tp = TpPlacement::Column;
    op.gemm = {tokens(), n, k, 1};
    return op;
  }

  // The output layer: the final norm, the logits (a column-parallel GEMM over the padded
  // vocabulary), the cross entropy.
  LayerOp logits_op() const { return column_linear(Op::Logits, layer_.vocab / d_.t, d_.h); }

  // The final norm, the logits and the cross entropy (the main model's, and each MTP module's with
  // the shared output head).
  void output_head_forward(std::int32_t mb) {
    const std::int64_t vocab_shard = layer_.vocab / d_.t;
    elementwise(layer_.final_norm_op, FORWARD, -2, mb, hidden_elements(), layer_.norm_forward.bytes_per_element,
                layer_.norm_forward.flops_per_element);
    op_forward(logits_op(), FORWARD, -2, mb);
    // Vocabulary-parallel cross entropy: fp32 softmax over the shard, with max and sum all-reduced
    // over TP (two b*s fp32 vectors).
    // Eager (torchtitan: F.cross_entropy(pred.float(), labels)): the fp32 copy (read e, write 4),
    // then log_softmax (4, 4): e + 12 bytes per logit.
    elementwise(Op::CrossEntropy, FORWARD, -2, mb, tokens() * vocab_shard, d_.e + (d_.eager ? 12.0 : 8.0), 6.0);
    if (d_.t > 1)
      pending_.push_back(collective(Op::TpAllReduce, ALL_REDUCE, GROUP_TP, TP_COMM, FORWARD, -2, mb,
                                    static_cast<std::uint64_t>(tokens() * 4 * 2), {last_compute()}));
  }

  void output_head_backward(std::int32_t mb) {
    const std::int64_t vocab_shard = layer_.vocab / d_.t;
    // Eager: nll_loss's backward writes a dense fp32 gradient (4), log_softmax's reads it and its
    // output and writes (12), the cast back (4, e): e + 20 bytes per logit.
    elementwise(Op::CrossEntropy, BACKWARD, -2, mb, tokens() * vocab_shard, d_.e + (d_.eager ? 20.0 : 4.0), 2.0);
    op_backward(logits_op(), -2, mb);
    elementwise(layer_.final_norm_op, BACKWARD, -2, mb, hidden_elements(), layer_.norm_backward.bytes_per_element,
                layer_.norm_backward.flops_per_element);
  }

  // Multi-token prediction (model.mtp_layers, Megatron-Core's MultiTokenPredictionLayer): module k
  // looks up the embeddings of the tokens k + 1 ahead (the vocabulary-parallel lookup, reduced over
  // TP as the first stage's), normalises them and the hidden state, projects their concatenation
  // 2h -> h (eh_proj: column-parallel, its input all-gathered with sequence parallelism, its output
  // gathered over TP), runs its transformer layer (layer id num_layers + k) and the output head.
  // Its tasks but the layer's are the output layer's (layer -2).
  LayerOp mtp_projection_op() const {
    LayerOp op = column_linear(Op::MtpProjection, d_.h / d_.t, 2 * d_.h);
    op.gathered_width = 2 * d_.h;
    return op;
  }

  void mtp_forward(std::int32_t mb) {
    for (std::int64_t k = 0; k < d_.mtp; ++k) {
      elementwise(Op::Embedding, FORWARD, -2, mb, tokens() * d_.h, 2.0 * d_.e, 1.0);
      if (d_.t > 1)
        pending_.push_back(collective(d_.sp ? Op::SpReduceScatter : Op::TpAllReduce, d_.sp ? REDUCE_SCATTER : ALL_REDUCE,
                                      GROUP_TP, TP_COMM, FORWARD, -2, mb, act_bytes_full(), {last_compute()}));
      for (int norm = 0; norm < 2; ++norm)  // the embedding's and the hidden state's
        elementwise(layer_.norm_op, FORWARD, -2, mb, hidden_elements(), layer_.norm_forward.bytes_per_element,
                    layer_.norm_forward.flops_per_element);
      op_forward(mtp_projection_op(), FORWARD, -2, mb);
      tp_blocking(Op::SpAllGather, ALL_GATHER, FORWARD, -2, mb);  // eh_proj's output, h / tp -> h wide
      layer_forward(FORWARD, static_cast<std::int32_t>(d_.L + k), mb);
      output_head_forward(mb);
    }
  }

  void mtp_backward(std::int32_t mb) {
    for (std::int64_t k = d_.mtp - 1; k >= 0; --k) {
      output_head_backward(mb);
      layer_backward(static_cast<std::int32_t>(d_.L + k), -1, mb);
      // The sequence-parallel split after eh_proj's gather: its backward gathers the sequence.
      if (d_.sp) tp_blocking(Op::SpAllGather, ALL_GATHER, BACKWARD, -2, mb);
      op_backward(mtp_projection_op(), -2, mb);
      for (int norm = 0; norm < 2; ++norm)
        elementwise(layer_.norm_op, BACKWARD, -2, mb, hidden_elements(), layer_.norm_backward.bytes_per_element,
                    layer_.norm_backward.flops_per_element);
      elementwise(Op::Embedding, BACKWARD, -2, mb, tokens() * d_.h, 3.0 * d_.e, 1.0);
    }
  }

  void output_forward(std::int32_t mb) {
    output_head_forward(mb);
    mtp_forward(mb);
  }

  // The MTP modules' backward first (their losses' gradients reach the main hidden state through
  // their hnorm), then the main output head's.
  void output_backward(std::int32_t mb) {
    mtp_backward(mb);
    output_head_backward(mb);
    output_done_ = last_compute();
    zero2_reduce(-2, mb);
  }

  // ---- pipeline transfers ----

  std::uint64_t p2p_bytes() const {
    // With sequence parallelism the activation is already split over TP; without it Megatron still
    // sends one copy of the full activation per TP rank.
    return static_cast<std::uint64_t>(hidden_elements() * d_.e);
  }

  static std::uint64_t transfer_key(std::uint32_t dst_rank, std::int32_t mb, std::int64_t dst_vs, bool forward) {
    return ((static_cast<std::uint64_t>(dst_rank) * 4096 + static_cast<std::uint64_t>(dst_vs)) * 1048576 +
            static_cast<std::uint64_t>(mb)) * 2 + (forward ? 1 : 0);
  }

  std::uint32_t peer_of(std::int64_t vs) const {
    return grid_.with(current_rank_, GridDim::Pp, vs % d_.p);
  }

  // Pipeline transfers carry the layer at the boundary they cross (the first layer above it), so a
  // transfer is identified by (micro-batch, direction, boundary) on both sides.
  std::int32_t boundary_layer(std::int64_t upper_vs) const {
    return static_cast<std::int32_t>(partition_.first_layer(upper_vs));
  }

  std::uint32_t recv(std::int64_t from_vs, std::int64_t my_vs, std::int32_t mb, bool forward) {
    Task t = base(Op::PpRecv, forward ? FORWARD : BACKWARD, boundary_layer(std::max(from_vs, my_vs)), mb);
    t.kind = RECV;
    t.stream = PP_COMM;
    t.group = GROUP_PP;
    t.bytes = p2p_bytes();
    t.peer = static_cast<std::int32_t>(peer_of(from_vs));
    // Posted ahead (Megatron's batch_isend_irecv): ordered only by the matching send.
    const auto id = add(t, {}, /*stream_ordered=*/false);
    recvs_.emplace(transfer_key(current_rank_, mb, my_vs, forward), id);
    pending_.push_back(id);
    return id;
  }

  // `received`: the recv of a chunk without layers, which the send passes on (kNone otherwise: the
  // chunk's compute orders them).
  void send(std::int64_t to_vs, std::int32_t mb, bool forward, std::uint32_t received = kNone,
            std::uint32_t after = kNone) {
    const std::int64_t my_vs = forward ? to_vs - 1 : to_vs + 1;
    Task t = base(Op::PpSend, forward ? FORWARD : BACKWARD, boundary_layer(std::max(to_vs, my_vs)), mb);
    t.kind = SEND;
    t.stream = PP_COMM;
    t.group = GROUP_PP;
    t.bytes = p2p_bytes();
    t.peer = static_cast<std::int32_t>(peer_of(to_vs));
    const auto id = add(t, {after != kNone ? after : last_compute(), received});
    sends_.emplace(transfer_key(static_cast<std::uint32_t>(t.peer), mb, to_vs, forward), id);
    if (!layout_.overlap_p2p()) pending_.push_back(id);
  }

  // ---- data parallelism ----

  // Gradients are reduced, and ZeRO shards, over dp x cp: the cp ranks hold the same weights and each
  // computed gradients from its part of the sequences (Megatron's data-parallel group with context
  // parallelism, torchtitan's dp_shard_cp mesh).
  CommGroup dp_group() const { return d_.c > 1 ? GROUP_DP_CP : GROUP_DP; }
  std::int64_t dp_ways() const { return dp_cp(d_); }

  std::vector<Bucket> make_buckets() const {
    // Per model chunk, parameters in the order backward finishes them (last layer first), cut into
    // buckets of grad_bucket_mb (Megatron's DDP, one bucket set per chunk).
    std::vector<Bucket> buckets;
    const double capacity = layout_.grad_bucket_mb() * 1e6 / static_cast<double>(grad_bytes_);
    for (std::int64_t c = 0; c < d_.v; ++c) {
      const std::int64_t vs = c * d_.p + stage_;
      std::vector<std::pair<std::int32_t, double>> order;
      if (vs == d_.p * d_.v - 1) order.emplace_back(-2, output_parameters(d_, sc_.model().tied_embeddings()).dense());
      for (std::int64_t l = partition_.first_layer(vs + 1) - 1; l >= partition_.first_layer(vs); --l)
        order.emplace_back(static_cast<std::int32_t>(l), dense_params(static_cast<std::int32_t>(l)));
      if (vs == 0) order.emplace_back(-1, embedding_parameters(d_).local());
      Bucket current{static_cast<std::int32_t>(c), {}, 0};
      for (const auto& [layer, params] : order) {
        if (params <= 0) continue;
        current.layers.push_back(layer);
        current.parameters += params;
        if (current.parameters >= capacity) {
          buckets.push_back(current);
          current = Bucket{static_cast<std::int32_t>(c), {}, 0};
        }
      }
      if (!current.layers.empty()) buckets.push_back(current);
    }
    return buckets;
  }

  std::uint32_t done_task(std::int32_t layer) const {
    if (layer == -1) return embedding_done_;
    if (layer == -2) return output_done_;
    return layer_done_.at(layer);
  }

  // ZeRO-3: parameters are gathered before each use, prefetched one layer ahead.
  void zero3_gather(Phase phase, std::int32_t layer, std::int32_t mb) {
    if (layout_.zero_stage() < 3 || dp_ways() == 1) return;
    const auto bytes = static_cast<std::uint64_t>(layer_params_ * d_.e);
    const auto id = collective(Op::DpParamAllGather, ALL_GATHER, dp_group(), DP_COMM, phase, layer, mb, bytes,
                               {prefetch_anchor_});
    prefetch_anchor_ = last_compute();
    pending_.push_back(id);
  }

  // ZeRO-3 in the backward pass prefetches like FSDP's BACKWARD_PRE: the next layer's gather is
  // issued before this layer computes, so on the one DP stream it runs while this layer computes,
  // ahead of this layer's gradient reduce-scatter. Issued after the reduce-scatter instead, every
  // gather would wait for the previous layer's backward and reduce-scatter: no overlap at all.
  void zero3_backward_gathers(Phase phase, std::int32_t layer, std::int32_t next_layer, std::int32_t mb) {
    // reshard_after_forward False (FSDP2; ZeRO-2's traffic with ZeRO-3's sharded weights between
    // steps): the forward's gathered parameters stay until the backward, which gathers nothing.
    if (layout_.zero_stage() < 3 || dp_ways() == 1 || !layout_.reshard_after_forward()) return;
    if (prefetched_gather_ != kNone) {
      pending_.push_back(prefetched_gather_);
      prefetched_gather_ = kNone;
    } else {
      zero3_gather(phase, layer, mb);
    }
    if (next_layer < 0) return;
    const auto bytes = static_cast<std::uint64_t>(layer_params_ * d_.e);
    // One layer ahead at most: it waits for the compute before this layer's.
    prefetched_gather_ = collective(Op::DpParamAllGather, ALL_GATHER, dp_group(), DP_COMM, phase, next_layer, mb, bytes,
                                    {last_compute()});
  }

  // ZeRO-2/3 keep only a shard of the gradients: each micro-batch's gradients are reduce-scattered
  // as soon as they are computed (DeepSpeed's behaviour).
  void zero2_reduce(std::int32_t layer, std::int32_t mb) {
    if (layout_.zero_stage() < 2 || dp_ways() == 1) return;
    double params = layer >= 0 ? layer_params_
                               : (layer == -1 ? embedding_parameters(d_).local()
                                               : output_parameters(d_, sc_.model().tied_embeddings()).dense());
    if (params <= 0) return;
    grad_syncs_.push_back(collective(Op::DpGradReduceScatter, REDUCE_SCATTER, dp_group(), DP_COMM, GRADIENT_SYNC,
                                     layer, mb, static_cast<std::uint64_t>(params * grad_bytes_),
                                     {last_compute()}));
  }

  void param_all_gathers(const std::vector<Bucket>& buckets, bool at_start) {
    // ZeRO-1/2: updated parameter shards are all-gathered per bucket. Overlapped (Megatron's
    // overlap_param_gather), the gathers of the previous step's update run at the start of this step
    // and each bucket's first forward waits for its gather; otherwise they follow the optimizer step.
    // In the order the forward pass needs them: chunk 0 first (the buckets of a chunk are in backward
    // order, so each chunk's are walked from its end).
    std::vector<const Bucket*> order;
    for (std::int32_t c = 0; c < static_cast<std::int32_t>(d_.v); ++c)
      for (auto it = buckets.rbegin(); it != buckets.rend(); ++it)
        if (it->chunk == c) order.push_back(&*it);
    for (const Bucket* it : order) {
      const auto id = collective(Op::DpParamAllGather, ALL_GATHER, dp_group(), DP_COMM, at_start ? FORWARD : OPTIMIZER,
                                 -1, -1, static_cast<std::uint64_t>(it->parameters * d_.e),
                                 {at_start ? kNone : last_compute()});
      if (at_start) {
        for (auto layer : it->layers) gather_for_layer_[layer] = id;
      } else {
        pending_.push_back(id);
      }
    }
  }

  void wait_param_gather(std::int32_t layer) {
    const auto it = gather_for_layer_.find(layer);
    if (it == gather_for_layer_.end()) return;
    pending_.push_back(it->second);
    gather_for_layer_.erase(it);
  }

  void gradient_sync(const std::vector<Bucket>& buckets) {
    const int zero = layout_.zero_stage();
    if (dp_ways() > 1 && zero < 2) {
      const auto overall_last = last_compute();
      // One DP stream: reduce buckets in the order their gradients become final.
      std::vector<const Bucket*> by_readiness;
      for (const Bucket& b : buckets) by_readiness.push_back(&b);
      std::stable_sort(by_readiness.begin(), by_readiness.end(), [&](const Bucket* x, const Bucket* y) {
        return done_task(x->layers.back()) < done_task(y->layers.back());
      });
      for (const Bucket* bucket_ptr : by_readiness) {
        const Bucket& bucket = *bucket_ptr;
        // The bucket is ready when backward has finished its last-processed parameters.
        const auto ready = layout_.overlap_grad_reduce() ? done_task(bucket.layers.back()) : overall_last;
        const bool shard = zero >= 1;
        grad_syncs_.push_back(collective(shard ? Op::DpGradReduceScatter : Op::DpGradAllReduce,
                                         shard ? REDUCE_SCATTER : ALL_REDUCE, dp_group(), DP_COMM, GRADIENT_SYNC, -1,
                                         -1, static_cast<std::uint64_t>(bucket.parameters * grad_bytes_), {ready}));
      }
    }
    // Routed experts: their gradients are reduced over the ranks holding the same experts (expert
    // dp), from Megatron's separate expert buffers, as each bucket's layers finish.
    const std::int64_t edp = grid_.expert_data_parallel();
    if (d_.experts > 0 && edp > 1 && zero < 2) {
      const bool shard = zero >= 1;
      for (const Bucket& bucket : buckets) {
        double experts = 0;
        for (auto layer : bucket.layers)
          if (layer >= 0 && is_moe_layer(d_, layer)) experts += moe_params_.expert;
        // The multi-token prediction layers' experts, with the output layer.
        if (bucket.layers.front() == -2) experts += output_parameters(d_, sc_.model().tied_embeddings()).expert;
        if (experts <= 0) continue;
        const auto ready = layout_.overlap_grad_reduce() ? done_task(bucket.layers.back()) : last_compute();
        grad_syncs_.push_back(collective(shard ? Op::DpGradReduceScatter : Op::DpGradAllReduce,
                                         shard ? REDUCE_SCATTER : ALL_REDUCE, GROUP_EXPERT_DP, DP_COMM, GRADIENT_SYNC, -1,
                                         -1, static_cast<std::uint64_t>(experts * grad_bytes_), {ready}));
      }
    }
    // Tied embeddings (or the multi-token prediction modules' lookups): the first and last stage
    // each hold a copy of the word embedding; their gradients are summed.
    if ((sc_.model().tied_embeddings() || d_.mtp > 0) && d_.p > 1 && (stage_ == 0 || stage_ == d_.p - 1)) {
      const auto bytes = static_cast<std::uint64_t>(embedding_parameters(d_).word * grad_bytes_);
      grad_syncs_.push_back(collective(Op::EmbeddingGradAllReduce, ALL_REDUCE, GROUP_EMBEDDING, DP_COMM,
                                       GRADIENT_SYNC, -1, -1, bytes,
                                       {stage_ == 0 ? embedding_done_ : output_done_}));
    }
  }

  void optimizer_step() {
    // Adam over the local parameters (model::optimizer_cost); ZeRO >= 1 updates only a 1/d shard.
    const ParameterShard held = stage_parameters(d_, sc_.model().tied_embeddings(), stage_, partition_.stage_layers(stage_),
                                                 stage_moe_layers(d_, partition_, stage_));
    double params = held.local();
    // ZeRO-1: dense parameters sharded over dp x cp, routed experts over expert dp.
    if (layout_.zero_stage() >= 1)
      params = held.dense() / static_cast<double>(dp_ways()) +
               held.expert / static_cast<double>(grid_.expert_data_parallel());
    Task t = base(Op::OptimizerStep, OPTIMIZER, -1, -1);
    t.kind = MEMORY_BOUND;
    const OptimizerCost adam = optimizer_cost(layout_, d_);
    t.bytes = static_cast<std::uint64_t>(params * adam.step_bytes);
    t.flops = params * adam.step_flops;
    pending_.insert(pending_.end(), grad_syncs_.begin(), grad_syncs_.end());
    add(t);
  }

  // ---- one rank ----

  void emit_rank(std::size_t index) {
    rank_index_ = index;
    const RankClass& rc = ranks_[index];
    current_rank_ = rc.rank;
    stage_ = rc.pp_stage;
    last_on_stream_.fill(kNone);
    pending_.clear();
    grad_syncs_.clear();
    layer_done_.clear();
    gather_for_layer_.clear();
    embedding_done_ = output_done_ = prefetch_anchor_ = prefetched_gather_ = kNone;

    const auto buckets = make_buckets();
    const int zero = layout_.zero_stage();
    const bool gather_at_start = (zero == 1 || zero == 2) && dp_ways() > 1 && layout_.overlap_param_gather();
    if (gather_at_start) param_all_gathers(buckets, true);

    const auto steps = stage_order(layout_.schedule(), static_cast<int>(d_.p), static_cast<int>(d_.v),
                                   static_cast<int>(d_.m), static_cast<int>(stage_), layout_.moe_a2a_overlap() ? 1 : 0);
    for (std::size_t i = 0; i < steps.size(); ++i) {
      // layout.moe_a2a_overlap: a forward step and the backward step after it (the steady state of
      // the 1F1B schedules), both over MoE layers, run merged.
      if (layout_.moe_a2a_overlap() && steps[i].forward && i + 1 < steps.size() && !steps[i + 1].forward &&
          chunk_has_moe(steps[i]) && chunk_has_moe(steps[i + 1])) {
        merged_steps(steps[i], steps[i + 1]);
        ++i;
        continue;
      }
      const PipelineStep& step = steps[i];
      if (step.forward) {
        const std::uint32_t received = forward_prologue(step);
        const auto [first_layer, end_layer] = chunk_layers(step);
        for (std::int32_t l = first_layer; l < end_layer; ++l) {
          wait_param_gather(l);
          layer_forward(FORWARD, l, step.microbatch);
        }
        forward_epilogue(step, received, last_compute());
      } else {
        const std::uint32_t received = backward_prologue(step);
        const auto [first_layer, end_layer] = chunk_layers(step);
        for (std::int32_t l = end_layer - 1; l >= first_layer; --l)
          layer_backward(l, l > first_layer ? l - 1 : -1, step.microbatch);
        backward_epilogue(step, received, last_compute());
      }
    }
    gradient_sync(buckets);
    optimizer_step();
    if ((zero == 1 || zero == 2) && dp_ways() > 1 && !gather_at_start) param_all_gathers(buckets, false);
  }

  // ---- pipeline steps ----

  std::int64_t virtual_stage(const PipelineStep& step) const { return step.chunk * d_.p + stage_; }
  std::pair<std::int32_t, std::int32_t> chunk_layers(const PipelineStep& step) const {
    const std::int64_t vs = virtual_stage(step);
    return {static_cast<std::int32_t>(partition_.first_layer(vs)), static_cast<std::int32_t>(partition_.first_layer(vs + 1))};
  }
  bool chunk_has_moe(const PipelineStep& step) const {
    const auto [first, end] = chunk_layers(step);
    for (std::int32_t l = first; l < end; ++l)
      if (is_moe_layer(d_, l)) return true;
    return false;
  }
  // A chunk without layers (Megatron's embedding-only first chunk, say) passes its input on.
  bool pass_through(const PipelineStep& step) const {
    const auto [first, end] = chunk_layers(step);
    return first == end;
  }

  // What a forward step does before its layers (the embedding, or the activation's receive) and
  // after them (the output layer, or the send, after `last`: the step's own last compute task).
  std::uint32_t forward_prologue(const PipelineStep& step) {
    if (virtual_stage(step) == 0) {
      wait_param_gather(-1);
      embedding_forward(step.microbatch);
      return kNone;
    }
    return recv(virtual_stage(step) - 1, virtual_stage(step), step.microbatch, true);
  }
  void forward_epilogue(const PipelineStep& step, std::uint32_t received, std::uint32_t last) {
    const std::int64_t vs = virtual_stage(step);
    if (vs == d_.p * d_.v - 1) {
      wait_param_gather(-2);
      output_forward(step.microbatch);
    } else {
      send(vs + 1, step.microbatch, true, pass_through(step) ? received : kNone, last);
    }
  }
  std::uint32_t backward_prologue(const PipelineStep& step) {
    const std::int64_t vs = virtual_stage(step);
    if (vs == d_.p * d_.v - 1) {
      output_backward(step.microbatch);
      return kNone;
    }
    return recv(vs + 1, vs, step.microbatch, false);
  }
  void backward_epilogue(const PipelineStep& step, std::uint32_t received, std::uint32_t last) {
    const std::int64_t vs = virtual_stage(step);
    if (vs == 0)
      embedding_backward(step.microbatch);
    else
      send(vs - 1, step.microbatch, false, pass_through(step) ? received : kNone, last);
  }

  // ---- the MoE all-to-all overlap (layout.moe_a2a_overlap) ----
  //
  // Megatron-Core's combined 1F1B (overlap_moe_expert_parallel_comm): forward step F and backward
  // step B run as two chains whose work alternates on the compute stream, layer by layer, while
  // their all-to-alls run on the EP_COMM stream:
  //   B: post-combine backward (un-permute, shared experts)  | then B's combine gradient moves
  //   F: attention, router, permutation                      | while B's combine gradient moves
  //   B: experts backward                                    | while F's tokens are dispatched
  //   F: experts                                             | while B's dispatch gradient moves
  //   B: router and attention backward                       | while F's combine moves
  //   F: un-permute, shared experts                          |
  // Each chain keeps its own pending dependencies (a chain's compute waits for its own all-to-all,
  // not the other's) and its own last compute task.
  struct Chain {
    std::vector<std::uint32_t> pending;
    std::uint32_t last = kNone;
  };
  Chain chains_[2];
  int active_chain_ = -1;
  bool overlapped_a2a_ = false;  // the all-to-alls go to EP_COMM (inside merged steps)

  void enter_chain(int c) {
    if (active_chain_ == c) return;
    if (active_chain_ >= 0) {
      chains_[active_chain_].pending = std::move(pending_);
      pending_.clear();
    }
    pending_ = std::move(chains_[c].pending);
    chains_[c].pending.clear();
    active_chain_ = c;
  }
  // Remember the chain's last compute task if it emitted one since `before` was the stream's last.
  void mark_chain(std::uint32_t before) {
    if (last_compute() != before) chains_[active_chain_].last = last_compute();
  }

  // The ops of `layer`'s description in [lo, hi): forward in order, backward in reverse.
  void forward_ops(std::int32_t layer, std::int32_t mb, std::size_t lo, std::size_t hi) {
    const LayerDescription& desc = layer_of(layer);
    for (std::size_t i = lo; i < hi; ++i) op_forward(desc.ops[i], FORWARD, layer, mb);
  }
  void backward_ops(std::int32_t layer, std::int32_t mb, std::size_t lo, std::size_t hi) {
    const LayerDescription& desc = layer_of(layer);
    const bool core_attention = layout_.recompute() == Layout::SELECTIVE && layout_.selective_policy() != Layout::PER_OP;
    for (std::size_t i = hi; i-- > lo;) {
      const LayerOp& op = desc.ops[i];
      if (core_attention && op.attention_core && (i + 1 == desc.ops.size() || !desc.ops[i + 1].attention_core))
        for (const LayerOp& o : desc.ops)
          if (o.attention_core) op_forward(o, RECOMPUTE_FORWARD, layer, mb);
      op_backward(op, layer, mb);
    }
  }
  // The indices of a MoE layer's dispatch and combine.
  std::pair<std::size_t, std::size_t> a2a_indices(std::int32_t layer) const {
    const LayerDescription& desc = layer_of(layer);
    std::size_t dispatch = desc.ops.size(), combine = desc.ops.size();
    for (std::size_t i = 0; i < desc.ops.size(); ++i) {
      if (desc.ops[i].op == Op::MoeDispatch) dispatch = i;
      if (desc.ops[i].op == Op::MoeCombine) combine = i;
    }
    return {dispatch, combine};
  }

  void merged_steps(const PipelineStep& f, const PipelineStep& b) {
    const std::int32_t fmb = f.microbatch, bmb = b.microbatch;
    chains_[0] = {pending_, last_compute()};  // both chains start after what came before
    chains_[1] = {pending_, last_compute()};
    pending_.clear();
    active_chain_ = -1;
    enter_chain(0);
    std::uint32_t before = last_compute();
    const std::uint32_t f_received = forward_prologue(f);
    mark_chain(before);
    enter_chain(1);
    before = last_compute();
    const std::uint32_t b_received = backward_prologue(b);
    mark_chain(before);
    overlapped_a2a_ = true;
    const auto [f_first, f_end] = chunk_layers(f);
    const auto [b_first, b_end] = chunk_layers(b);
    std::int32_t fl = f_first, bl = b_end - 1;
    // A part that runs beside the other chain's all-to-all (`beside`) has its GEMMs on the SMs the
    // all-to-all's kernels leave (kEpOverlapCommSms).
    auto share_sms = [&](std::size_t first_task) {
      const float share = static_cast<float>(sm_count_ - kEpOverlapCommSms) / static_cast<float>(sm_count_);
      for (std::size_t id = first_task; id < tasks_.size(); ++id)
        if (tasks_[id].kind == GEMM) tasks_[id].sm_share = std::min(tasks_[id].sm_share, share);
    };
    // Ops [lo, hi) of the forward chain's (0) current layer, or of the backward chain's (1).
    auto part = [&](int chain, std::size_t lo, std::size_t hi, bool beside) {
      enter_chain(chain);
      const std::uint32_t start = last_compute();
      const std::size_t first_task = tasks_.size();
      if (chain == 0)
        forward_ops(fl, fmb, lo, hi);
      else
        backward_ops(bl, bmb, lo, hi);
      if (beside) share_sms(first_task);
      mark_chain(start);
    };
    auto f_part = [&](std::size_t lo, std::size_t hi, bool beside = false) { part(0, lo, hi, beside); };
    auto b_part = [&](std::size_t lo, std::size_t hi, bool beside = false) { part(1, lo, hi, beside); };
    auto b_layer_done = [&] {
      layer_done_[bl] = chains_[1].last;
      zero2_reduce(bl, bmb);
    };
    while (fl < f_end || bl >= b_first) {
      const bool f_moe = fl < f_end && is_moe_layer(d_, fl), b_moe = bl >= b_first && is_moe_layer(d_, bl);
      if (fl < f_end) {
        enter_chain(0);
        wait_param_gather(fl);
      }
      if (f_moe && b_moe) {
        const auto [fd, fc] = a2a_indices(fl);
        const auto [bd, bc] = a2a_indices(bl);
        const std::size_t fn = layer_of(fl).ops.size(), bn = layer_of(bl).ops.size();
        enter_chain(1);
        zero3_backward_gathers(BACKWARD, bl, bl > b_first ? bl - 1 : -1, bmb);
        b_part(bc + 1, bn);      // un-permute and shared experts backward
        b_part(bc, bc + 1);      // the combine's gradient (EP_COMM)
        f_part(0, fd, true);     // attention, router, permutation
        f_part(fd, fd + 1);      // dispatch (EP_COMM)
        b_part(bd + 1, bc, true);  // experts backward
        b_part(bd, bd + 1);      // the dispatch's gradient (EP_COMM)
        f_part(fd + 1, fc, true);  // experts
        f_part(fc, fc + 1);      // combine (EP_COMM)
        b_part(0, bd, true);     // router and attention backward
        b_layer_done();
        f_part(fc + 1, fn);      // un-permute, shared experts
        ++fl;
        --bl;
        continue;
      }
      // A dense layer (or one chain out of layers): the layer as a whole, in its chain.
      if (fl < f_end) {
        f_part(0, layer_of(fl).ops.size());
        ++fl;
      }
      if (bl >= b_first) {
        enter_chain(1);
        zero3_backward_gathers(BACKWARD, bl, bl > b_first ? bl - 1 : -1, bmb);
        b_part(0, layer_of(bl).ops.size());
        b_layer_done();
        --bl;
      }
    }
    overlapped_a2a_ = false;
    // The backward finishes first (its attention backward comes before the forward's last
    // un-permute): its gradient leaves first.
    enter_chain(1);
    backward_epilogue(b, b_received, chains_[1].last);
    enter_chain(0);
    forward_epilogue(f, f_received, chains_[0].last);
    // What either chain left pending waits for the next step.
    enter_chain(0);
    pending_.insert(pending_.end(), chains_[1].pending.begin(), chains_[1].pending.end());
    chains_[1].pending.clear();
    active_chain_ = -1;
  }

  const Scenario& sc_;
  Dims d_;
  RankGrid grid_;
  StagePartition partition_;
  const Layout& layout_;
  LayerDescription layer_, moe_layer_;  // a dense layer; a Mixture-of-Experts layer (experts > 0)
  LayerDescription windowed_layer_, windowed_moe_layer_;  // the same with sliding-window attention
  double layer_params_ = 0;  // one dense layer's parameters on one rank
  ParameterShard moe_params_;  // one MoE layer's on one rank
  const LayerDescription& layer_of(std::int32_t layer) const {
    if (is_windowed_layer(d_, layer)) return is_moe_layer(d_, layer) ? windowed_moe_layer_ : windowed_layer_;
    return is_moe_layer(d_, layer) ? moe_layer_ : layer_;
  }
  // The parameters of `layer` reduced (and ZeRO-sharded) over dp x cp: all of a dense layer's, a MoE
  // layer's but its routed experts.
  double dense_params(std::int32_t layer) const { return is_moe_layer(d_, layer) ? moe_params_.dense() : layer_params_; }
  std::int64_t grad_bytes_;
  std::int32_t sm_count_ = sc_.cluster().gpu().sm_count();  // validated > kTpOverlapCommSms with TP overlap

  std::vector<RankClass> ranks_;
  std::vector<Task> tasks_;
  std::vector<std::vector<std::uint32_t>> rank_tasks_;
  std::vector<Edge> edges_;
  std::unordered_map<std::uint64_t, std::uint32_t> sends_, recvs_;

  // State of the rank being emitted.
  std::size_t rank_index_ = 0;
  std::uint32_t current_rank_ = 0;
  std::int64_t stage_ = 0;
  std::array<std::uint32_t, Stream_ARRAYSIZE> last_on_stream_{};  // by Stream
  std::vector<std::uint32_t> pending_;
  std::vector<std::uint32_t> grad_syncs_;
  std::unordered_map<std::int32_t, std::uint32_t> layer_done_, gather_for_layer_;
  std::uint32_t embedding_done_ = kNone, output_done_ = kNone, prefetch_anchor_ = kNone, prefetched_gather_ = kNone;
};

}  // namespace

JobGraph::JobGraph(Scenario scenario, std::vector<RankClass> ranks, std::vector<Task> tasks,
                   std::vector<std::vector<std::uint32_t>> rank_tasks, const std::vector<Edge>& edges)
    : scenario_(std::move(scenario)),
      ranks_(std::move(ranks)),
      tasks_(std::move(tasks)),
      rank_tasks_(std::move(rank_tasks)),
      csr_(boost::edges_are_unsorted_multi_pass, edges.begin(), edges.end(),
           static_cast<std::uint32_t>(tasks_.size())) {}

std::vector<std::uint32_t> JobGraph::successors(std::uint32_t task) const {
  std::vector<std::uint32_t> out;
  for (auto [it, end] = boost::adjacent_vertices(task, csr_); it != end; ++it) out.push_back(*it);
  return out;
}

std::vector<std::uint32_t> JobGraph::predecessors(std::uint32_t task) const {
  std::vector<std::uint32_t> out;
  for (auto [it, end] = boost::in_edges(task, csr_); it != end; ++it) out.push_back(boost::source(*it, csr_));
  return out;
}

std::vector<std::uint32_t> JobGraph::topological_order() const {
  std::vector<std::uint32_t> reversed;
  reversed.reserve(tasks_.size());
  try {
    boost::topological_sort(csr_, std::back_inserter(reversed));
  } catch (const boost::not_a_dag&) {
    throw std::logic_error("job graph has a dependency cycle: the schedule would deadlock");
  }
  return {reversed.rbegin(), reversed.rend()};
}

std::uint64_t JobGraph::expanded_tasks() const {
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < ranks_.size(); ++i) total += rank_tasks_[i].size() * std::uint64_t{ranks_[i].multiplicity};
  return total;
}

std::uint64_t JobGraph::expanded_edges() const {
  // Every edge starts at a task of one representative; its copies follow that representative's.
  std::vector<std::uint32_t> multiplicity_of(tasks_.size());
  for (std::size_t i = 0; i < ranks_.size(); ++i)
    for (auto task : rank_tasks_[i]) multiplicity_of[task] = ranks_[i].multiplicity;
  std::uint64_t total = 0;
  for (std::uint32_t v = 0; v < tasks_.size(); ++v) total += boost::out_degree(v, csr_) * std::uint64_t{multiplicity_of[v]};
  return total;
}

bool JobGraph::uses_symmetry() const {
  return std::any_of(ranks_.begin(), ranks_.end(), [](const RankClass& r) { return r.multiplicity > 1; });
}

std::string JobGraph::task_name(std::uint32_t id) const {
  const Task& t = tasks_.at(id);
  if (!task_label(id).empty()) return std::string(task_label(id));
  std::string name;
  switch (t.phase) {
    case FORWARD: name = "fwd"; break;
    case BACKWARD: name = "bwd"; break;
    case RECOMPUTE_FORWARD: name = "recompute"; break;
    case GRADIENT_SYNC: name = "grad_sync"; break;
    case OPTIMIZER: name = "optimizer"; break;
  }
  if (t.microbatch >= 0) name += " mb" + std::to_string(t.microbatch);
  if (t.layer >= 0) name += " L" + std::to_string(t.layer);
  name += " ";
  name += op_name(t.op);
  if (t.role == GemmRole::InputGrad) name += " dgrad";
  if (t.role == GemmRole::WeightGrad) name += " wgrad";
  if (t.peer >= 0) name += (t.kind == SEND ? " to " : " from ") + std::to_string(t.peer);
  return name;
}

double JobGraph::hardware_flops() const {
  double total = 0;
  for (std::size_t i = 0; i < ranks_.size(); ++i)
    for (auto id : rank_tasks_[i])
      if (tasks_[id].kind == GEMM) total += tasks_[id].flops * ranks_[i].multiplicity;
  return total;
}

double JobGraph::model_flops() const {
  double total = 0;
  for (std::size_t i = 0; i < ranks_.size(); ++i)
    for (auto id : rank_tasks_[i]) {
      const Task& t = tasks_[id];
      if (t.kind != GEMM || t.phase == RECOMPUTE_FORWARD) continue;
      // The fused attention backward runs five matmuls, one of them the recompute of the scores:
      // model FLOPs count the other four (twice the forward).
      const double share = t.op == Op::FlashAttention && t.phase == BACKWARD ? 0.8 : 1.0;
      total += t.flops * share * ranks_[i].multiplicity;
    }
  return total;
}

parallax::JobGraph JobGraph::to_proto() const {
  parallax::JobGraph out;
  *out.mutable_scenario() = scenario_;
  for (const RankClass& r : ranks_) {
    auto* rc = out.add_ranks();
    rc->set_rank(r.rank);
    rc->set_multiplicity(r.multiplicity);
    rc->set_pp_stage(r.pp_stage);
  }
  // Tasks in program order per rank, so that reading them back restores the rank lists.
  std::vector<std::uint32_t> order;
  order.reserve(tasks_.size());
  for (const auto& list : rank_tasks_) order.insert(order.end(), list.begin(), list.end());
  out.mutable_tasks()->Reserve(static_cast<int>(tasks_.size()));
  for (auto id : order) {
    const Task& t = tasks_[id];
    auto* p = out.add_tasks();
    p->set_id(id);
    p->set_rank(t.rank);
    p->set_stream(t.stream);
    p->set_kind(t.kind);
    p->set_phase(t.phase);
    std::string op(op_name(t.op));
    if (t.role == GemmRole::InputGrad) op += ".dgrad";
    if (t.role == GemmRole::WeightGrad) op += ".wgrad";
    p->set_op(op);
    if (t.layer >= 0) p->set_layer(t.layer);
    if (t.microbatch >= 0) p->set_microbatch(t.microbatch);
    p->set_flops(t.flops);
    p->set_bytes(t.bytes);
    if (t.kind == GEMM) {
      p->set_gemm_m(t.gemm_m);
      p->set_gemm_n(t.gemm_n);
      p->set_gemm_k(t.gemm_k);
      p->set_gemm_batch(t.gemm_batch);
      if (t.gemm_splits != 1) p->set_gemm_splits(t.gemm_splits);
      if (t.sm_share != 1.0f) p->set_sm_share(t.sm_share);
      if (t.fp8) p->set_fp8(true);
    }
    if (t.kind == COLLECTIVE) p->set_collective(t.collective);
    if (t.group != GROUP_NONE) p->set_group(t.group);
    if (t.peer >= 0) p->set_peer(t.peer);
    if (t.communicator >= 0) p->set_communicator(t.communicator);
    if (t.measured_s >= 0) p->set_measured_s(t.measured_s);
    if (t.on_host) p->set_on_host(true);
    if (id < task_labels_.size() && !task_labels_[id].empty()) p->set_label(task_labels_[id]);
  }
  for (const auto& members : communicators_)
    out.add_communicators()->mutable_ranks()->Add(members.begin(), members.end());
  out.mutable_edge_src()->Reserve(static_cast<int>(num_edges()));
  out.mutable_edge_dst()->Reserve(static_cast<int>(num_edges()));
  for (auto [it, end] = boost::edges(csr_); it != end; ++it) {
    out.add_edge_src(boost::source(*it, csr_));
    out.add_edge_dst(boost::target(*it, csr_));
  }
  return out;
}

namespace {

// A task on a dependency cycle among `edges` (Kahn's algorithm; then from a task left over, walk back
// through left-over predecessors until one repeats), or -1 when there is none.
std::int64_t task_on_cycle(std::uint32_t n, const std::vector<Edge>& edges) {
  std::vector<std::uint32_t> indegree(n, 0);
  std::vector<std::vector<std::uint32_t>> out(n), in(n);
  for (const auto& [src, dst] : edges) {
    ++indegree[dst];
    out[src].push_back(dst);
    in[dst].push_back(src);
  }
  std::vector<std::uint32_t> ready;
  for (std::uint32_t i = 0; i < n; ++i)
    if (indegree[i] == 0) ready.push_back(i);
  std::uint32_t done = 0;
  while (!ready.empty()) {
    const std::uint32_t v = ready.back();
    ready.pop_back();
    ++done;
    for (auto w : out[v])
      if (--indegree[w] == 0) ready.push_back(w);
  }
  if (done == n) return -1;
  std::uint32_t v = 0;
  while (indegree[v] == 0) ++v;
  // Every left-over task has a left-over predecessor; walking back must revisit one, which is on a cycle.
  std::vector<bool> visited(n, false);
  while (!visited[v]) {
    visited[v] = true;
    for (auto p : in[v])
      if (indegree[p] > 0) {
        v = p;
        break;
      }
  }
  return v;
}

}  // namespace

JobGraph JobGraph::from_proto(const parallax::JobGraph& in, const std::string& source) {
  auto fail = [&](const std::string& what) { throw InputError(source + ": " + what); };
  if (!in.has_scenario())
    fail("the plan has no scenario (write it again with this version's `parallax inspect -o`)");
  // Everything below indexes by the scenario's layout: check it as a scenario file is checked. A
  // graph imported from an execution trace has no model, only the cluster and its explicit ranks.
  const bool imported = !in.scenario().has_model();
  if (imported)
    validate_imported_scenario(in.scenario(), source + ": scenario");
  else
    validate_scenario(in.scenario(), source + ": scenario");
  if (!imported && in.communicators_size() > 0)
    fail(
        "communicators are only for graphs imported from execution traces (this one's scenario has "
        "a model)");
  std::vector<std::vector<std::uint32_t>> communicators;
  for (int c = 0; c < in.communicators_size(); ++c) {
    const auto& ranks = in.communicators(c).ranks();
    if (ranks.empty()) fail("communicator " + std::to_string(c) + " has no ranks");
    std::vector<std::uint32_t> members(ranks.begin(), ranks.end());
    std::vector<std::uint32_t> sorted = members;
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
      fail("communicator " + std::to_string(c) + " lists a rank twice");
    if (sorted.back() >= static_cast<std::uint32_t>(in.scenario().layout().dp()))
      fail("communicator " + std::to_string(c) + " has rank " + std::to_string(sorted.back()) +
           " but the job has " + std::to_string(in.scenario().layout().dp()) + " ranks");
    communicators.push_back(std::move(members));
  }
  const RankGrid grid = rank_grid(in.scenario());
  const std::int64_t world = grid.size();
  if (world > std::numeric_limits<std::int32_t>::max())
    fail("scenario: the job has " + std::to_string(world) + " GPUs; at most 2^31 - 1 ranks are supported");

  std::vector<RankClass> ranks;
  std::unordered_map<std::uint32_t, std::size_t> index_of_rank;
  for (const auto& r : in.ranks()) {
    const std::string which = "rank class " + std::to_string(ranks.size()) + " (rank " + std::to_string(r.rank()) + ")";
    if (r.rank() >= world)
      fail(which + ": the job has only " + std::to_string(world) + " ranks (" + grid_shape_text(grid) + ")");
    if (index_of_rank.contains(r.rank())) fail(which + ": rank listed twice");
    if (r.multiplicity() < 1 || r.multiplicity() > world)
      fail(which + ": multiplicity " + std::to_string(r.multiplicity()) + " is not between 1 and the job's " +
           std::to_string(world) + " ranks");
    if (r.pp_stage() != grid.stage(r.rank()))
      fail(which + ": pp_stage " + std::to_string(r.pp_stage()) + " but the rank is in stage " +
           std::to_string(grid.stage(r.rank())));
    index_of_rank[r.rank()] = ranks.size();
    ranks.push_back({r.rank(), r.multiplicity(), r.pp_stage()});
  }
  const auto n = static_cast<std::uint32_t>(in.tasks_size());
  std::vector<Task> tasks(n);
  std::vector<bool> seen(n, false);
  std::vector<std::vector<std::uint32_t>> rank_tasks(ranks.size());
  std::vector<std::string> labels;
  for (const auto& p : in.tasks()) {
    if (p.id() >= n || seen[p.id()])
      fail("task id " + std::to_string(p.id()) + " is out of range or repeated (the plan has " + std::to_string(n) +
           " tasks, numbered from 0)");
    seen[p.id()] = true;
    const std::string which = "task " + std::to_string(p.id()) + " (" + p.op() + ")";
    const auto rank_it = index_of_rank.find(p.rank());
    if (rank_it == index_of_rank.end())
      fail(which + " runs on rank " + std::to_string(p.rank()) + ", which the plan does not list");
    Task& t = tasks[p.id()];
    t.rank = p.rank();
    t.stream = p.stream();
    t.kind = p.kind();
    t.phase = p.phase();
    std::string op = p.op();
    t.role = GemmRole::Forward;
    if (op.ends_with(".dgrad")) t.role = GemmRole::InputGrad;
    if (op.ends_with(".wgrad")) t.role = GemmRole::WeightGrad;
    if (const auto dot = op.find('.'); dot != std::string::npos) op.resize(dot);
    bool known = false;
    for (std::size_t i = 0; i < static_cast<std::size_t>(Op::kCount); ++i) {
      if (op_name(static_cast<Op>(i)) == op) {
        t.op = static_cast<Op>(i);
        known = true;
      }
    }
    if (!known) fail("task " + std::to_string(p.id()) + " has unknown op \"" + p.op() + "\"");
    // Stored narrower than in the file: out-of-range values would silently wrap.
    if (p.layer() < -1 || p.layer() > std::numeric_limits<std::int16_t>::max())
      fail(which + ": layer " + std::to_string(p.layer()) + " is out of range (-1 or 0 to 32767)");
    if (p.microbatch() < -1) fail(which + ": microbatch " + std::to_string(p.microbatch()) + " is negative");
    for (const auto& [field, value] : {std::pair{"gemm_m", p.gemm_m()}, {"gemm_n", p.gemm_n()},
                                       {"gemm_k", p.gemm_k()}, {"gemm_batch", p.gemm_batch()}})
      if (value > std::numeric_limits<std::uint32_t>::max())
        fail(which + ": " + field + " " + std::to_string(value) + " is out of range (at most 2^32 - 1)");
    if (!(p.flops() >= 0) || !std::isfinite(p.flops()))
      fail(which + ": flops must be a finite number >= 0");
    // Chunks of at least one row each; a share of the SMs in (0, 1].
    if (p.gemm_splits() < 1 || p.gemm_splits() > std::numeric_limits<std::uint16_t>::max() ||
        (p.kind() == GEMM && p.gemm_splits() > std::max<std::uint64_t>(1, p.gemm_m())))
      fail(which + ": gemm_splits " + std::to_string(p.gemm_splits()) + " must be 1 to gemm_m (" +
           std::to_string(p.gemm_m()) + ")");
    if (!(p.sm_share() > 0 && p.sm_share() <= 1))
      fail(which + ": sm_share must be in (0, 1] (got " + std::to_string(p.sm_share()) + ")");
    if (p.kind() == SEND || p.kind() == RECV) {
      if (p.peer() < 0 || p.peer() >= world)
        fail(which + ": peer " + std::to_string(p.peer()) + " is not a rank of the job (0 to " +
             std::to_string(world - 1) + ")");
    } else if (p.peer() < -1) {
      fail(which + ": peer " + std::to_string(p.peer()) + " is negative");
    }
    t.layer = static_cast<std::int16_t>(p.layer());
    t.microbatch = p.microbatch();
    t.flops = p.flops();
    t.bytes = p.bytes();
    t.gemm_m = static_cast<std::uint32_t>(p.gemm_m());
    t.gemm_n = static_cast<std::uint32_t>(p.gemm_n());
    t.gemm_k = static_cast<std::uint32_t>(p.gemm_k());
    t.gemm_batch = static_cast<std::uint32_t>(p.gemm_batch());
    t.gemm_splits = static_cast<std::uint16_t>(p.gemm_splits());
    t.sm_share = static_cast<float>(p.sm_share());
    t.fp8 = p.fp8();
    t.collective = p.collective();
    t.group = p.group();
    t.peer = p.peer();
    if (!imported &&
        (p.has_communicator() || p.has_measured_s() || p.has_on_host() || p.has_label()))
      fail(which +
           ": communicator, measured_s, on_host and label are only for graphs imported from "
           "execution traces");
    if (p.communicator() < -1 ||
        p.communicator() >= static_cast<std::int64_t>(communicators.size()))
      fail(which + ": communicator " + std::to_string(p.communicator()) +
           " does not exist (the graph has " + std::to_string(communicators.size()) + ")");
    if (imported && p.kind() == COLLECTIVE) {
      if (p.communicator() < 0)
        fail(which + ": a collective of an imported graph needs its communicator");
      const auto& members = communicators[static_cast<std::size_t>(p.communicator())];
      if (std::find(members.begin(), members.end(), p.rank()) == members.end())
        fail(which + ": runs on rank " + std::to_string(p.rank()) +
             ", which is not in its communicator " + std::to_string(p.communicator()));
    }
    if (!std::isfinite(p.measured_s()))
      fail(which + ": measured_s must be a finite number of seconds (negative: none)");
    t.communicator = p.communicator();
    t.measured_s = p.measured_s();
    t.on_host = p.on_host();
    if (!p.label().empty()) {
      if (labels.empty()) labels.resize(n);
      labels[p.id()] = p.label();
    }
    rank_tasks[rank_it->second].push_back(p.id());
  }
  if (in.edge_src_size() != in.edge_dst_size())
    fail("edge_src has " + std::to_string(in.edge_src_size()) + " entries but edge_dst " +
         std::to_string(in.edge_dst_size()) + "; they must pair up");
  std::vector<Edge> edges;
  edges.reserve(static_cast<std::size_t>(in.edge_src_size()));
  for (int i = 0; i < in.edge_src_size(); ++i) {
    if (in.edge_src(i) >= n || in.edge_dst(i) >= n)
      fail("edge " + std::to_string(i) + " (" + std::to_string(in.edge_src(i)) + " -> " +
           std::to_string(in.edge_dst(i)) + ") refers to a task that does not exist (the plan has " +
           std::to_string(n) + " tasks)");
    edges.emplace_back(in.edge_src(i), in.edge_dst(i));
  }
  JobGraph graph(in.scenario(), std::move(ranks), std::move(tasks), std::move(rank_tasks), edges);
  graph.set_communicators(std::move(communicators));
  graph.set_task_labels(std::move(labels));
  if (const std::int64_t v = task_on_cycle(n, edges); v >= 0)
    fail("task " + std::to_string(v) + " (" + graph.task_name(static_cast<std::uint32_t>(v)) +
         ") is on a dependency cycle: the schedule would deadlock");
  return graph;
}

JobGraph build_job_graph(const Scenario& scenario, const std::string& source) {
  // Refused before any allocation: a small file can describe billions of tasks.
  check_job_size(scenario, source.empty() ? "scenario \"" + scenario.name() + "\"" : source);
  return Builder(scenario).build();
}

}  // namespace parallax::model
