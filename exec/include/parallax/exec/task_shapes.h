// The tensor shapes behind the tasks of modern layers (model::Op RmsNorm, FinalRmsNorm, Rope,
// FlashAttention, Swiglu, SquaredRelu), which a backend needs to run their real kernels: a task
// carries only its FLOPs and bytes (and, for flash attention, its GEMM-like sizes). The shapes come
// from the plan's scenario, and the task's own numbers must agree with them, so a plan whose tasks
// describe different work than its scenario is refused by name rather than run as something else.
// Shared by every backend (no MPI, no BLAS).
#pragma once

#include "parallax/model/job_graph.h"

#include <cstdint>
#include <string>

namespace parallax::exec {

// Whether a backend runs `op` as its own kernel (rather than a GEMM of the task's sizes or a copy of
// its bytes).
bool is_layer_kernel(model::Op op);

// Flash attention of one micro-batch on one rank (FlashAttention task convention, job_graph.h):
// queries [batch, heads, seq, head_dim], keys and values [batch, kv_heads, seq, head_dim]; query
// head h reads kv head h / (heads / kv_heads). Causal (decoder-only models).
struct FlashAttentionShape {
  std::uint32_t batch = 0;     // micro-batch size b (gemm_batch / heads)
  std::uint32_t heads = 0;     // query heads on this rank: num_heads / tp
  std::uint32_t kv_heads = 0;  // key/value heads on this rank: num_query_groups / tp (num_heads when 0)
  std::uint32_t seq = 0;       // gemm_m = gemm_n = seq_length
  std::uint32_t head_dim = 0;  // gemm_k
  bool backward = false;       // phase BACKWARD (RECOMPUTE_FORWARD runs the forward)
};

// An elementwise layer op over `rows` tokens of `cols` values each.
//   RmsNorm, FinalRmsNorm  rows = b s (/ tp under sequence parallelism), cols = hidden_size
//   Swiglu                 rows = b s, cols = ffn_hidden_size / tp (output values: silu(gate) * up)
//   SquaredRelu            rows = b s, cols = ffn_hidden_size / tp
//   Rope                   rows = b s, cols = (heads + kv_heads) / tp x head_dim (q and k rotated);
//                          the token of row r is at position r % seq
// The task's bytes must be rows x cols x bytes_per_value (the traffic the builder counts, with e the
// precision's bytes per element): RMSNorm and squared ReLU read x and write y forward (2e), read x,
// dy and write dx backward (3e); SwiGLU reads gate and up and writes the output forward (3e), reads
// gate, up, dy and writes dgate, dup backward (5e); RoPE reads and writes each value (2e) both ways.
struct LayerOpShape {
  std::uint64_t rows = 0, cols = 0;
  std::uint32_t seq = 0;       // RoPE: positions repeat every seq rows
  std::uint32_t head_dim = 0;  // RoPE: the rotary pairs (i, i + head_dim / 2) within each head
  std::uint32_t bytes_per_value = 0;
  bool backward = false;
  std::uint64_t values() const { return rows * cols; }
};

// Both throw InputError naming `source`, the task (`graph.task_name`) and the disagreement (a task of
// another op, a scenario without a model, sizes the scenario does not give).
FlashAttentionShape flash_attention_shape(const model::JobGraph& graph, std::uint32_t task,
                                          const std::string& source);
LayerOpShape layer_op_shape(const model::JobGraph& graph, std::uint32_t task, const std::string& source);

}  // namespace parallax::exec
