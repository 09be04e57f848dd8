// The host backend's kernels for the ops of modern layers (exec/host/host_kernels.cpp), and their
// FP64 references, which `--verify` and the tests compare them with. FP32, row-major, single
// threaded like the host backend's SGEMMs (one BLAS thread per rank: the ranks share the cores).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace parallax::exec::host {

// ---- Elementwise ops over `rows` x `cols` values ----

// y = x / rms(x) * weight per row, rms = sqrt(mean(x^2) + eps); inv_rms[row] = 1 / rms is kept for
// the backward.
void rms_norm_forward(const float* x, const float* weight, float* y, float* inv_rms, std::size_t rows,
                      std::size_t cols, float eps);
// dx and dweight (the sum over rows) from the forward's input and inv_rms.
void rms_norm_backward(const float* x, const float* weight, const float* inv_rms, const float* dy, float* dx,
                       float* dweight, std::size_t rows, std::size_t cols);

// Rotary position embedding: each row holds whole heads of head_dim values; within a head the pairs
// (i, i + head_dim / 2) rotate by pos * theta_base^(-2i / head_dim) with pos = row % seq (Megatron's and
// Hugging Face's non-interleaved "rotate half"). The angles are computed in double: in float, pos x
// frequency loses the angle's low bits at long positions.
struct RopeShape {
  std::size_t rows = 0, cols = 0, seq = 1, head_dim = 2;
  double theta_base = 10000.0;
};
void rope_forward(const RopeShape& shape, const float* x, float* y);
// dx = the inverse rotation of dy.
void rope_backward(const RopeShape& shape, const float* dy, float* dx);

// out = silu(gate) * up, silu(g) = g / (1 + exp(-g)).
void swiglu_forward(const float* gate, const float* up, float* out, std::size_t count);
void swiglu_backward(const float* gate, const float* up, const float* dout, float* dgate, float* dup,
                     std::size_t count);

// y = max(x, 0)^2 (Nemotron-4's MLP activation).
void squared_relu_forward(const float* x, float* y, std::size_t count);
void squared_relu_backward(const float* x, const float* dy, float* dx, std::size_t count);

// ---- Flash attention (FlashAttention-2) ----

// q, o, do, dq: [batch, heads, seq_q, head_dim]; k, v, dk, dv: [batch, kv_heads, seq_k, head_dim];
// lse: [batch, heads, seq_q], the log-sum-exp of each query's scaled scores. Query head h reads kv
// head h / (heads / kv_heads) (grouped-query attention). Causal: query i sees keys j <= i + seq_k - seq_q
// (aligned at the end, as FlashAttention-2); scores are scaled by 1 / sqrt(head_dim).
struct AttentionShape {
  std::size_t batch = 1, heads = 1, kv_heads = 1, seq_q = 1, seq_k = 1, head_dim = 1;
  bool causal = true;
  std::size_t q_values() const { return batch * heads * seq_q * head_dim; }
  std::size_t kv_values() const { return batch * kv_heads * seq_k * head_dim; }
  std::size_t rows() const { return batch * heads * seq_q; }
};
// Query and key blocks of the tiling: a block of scores is kBlockQ x kBlockK floats (16 KiB, L1).
constexpr std::size_t kBlockQ = 64, kBlockK = 64;

// Forward: blocks of queries against blocks of keys with an online softmax (running max and sum per
// query), never holding a whole seq_q x seq_k matrix; key blocks past the causal edge are skipped.
void flash_attention_forward(const AttentionShape& shape, const float* q, const float* k, const float* v, float* o,
                             float* lse);
// Backward: per block of keys, recomputes the scores of every query block from q, k and lse, and
// accumulates dV = P^T dO, dK = dS^T Q, dQ += dS K with dS = P (dP - rowsum(dO o O)). dk and dv sum
// over the query heads sharing a kv head.
void flash_attention_backward(const AttentionShape& shape, const float* q, const float* k, const float* v,
                              const float* o, const float* lse, const float* dout, float* dq, float* dk, float* dv);

// ---- FP64 references (whole matrices, the textbook formulas) ----
namespace reference {

void rms_norm_forward(const float* x, const float* weight, double* y, std::size_t rows, std::size_t cols, double eps);
void rms_norm_backward(const float* x, const float* weight, const float* dy, double* dx, double* dweight,
                       std::size_t rows, std::size_t cols, double eps);
void rope_forward(const RopeShape& shape, const float* x, double* y);
void rope_backward(const RopeShape& shape, const float* dy, double* dx);
void swiglu_forward(const float* gate, const float* up, double* out, std::size_t count);
void swiglu_backward(const float* gate, const float* up, const float* dout, double* dgate, double* dup,
                     std::size_t count);
void squared_relu_forward(const float* x, double* y, std::size_t count);
void squared_relu_backward(const float* x, const float* dy, double* dx, std::size_t count);

// One (batch, kv head) group of attention: the query heads kv_head x group .. + group - 1, with the
// full seq_q x seq_k score matrix in double. Outputs are written at their places in full-size
// arrays (o, lse, dq: query layout; dk, dv: kv layout); other places are left alone.
void attention_forward(const AttentionShape& shape, std::size_t batch, std::size_t kv_head, const float* q,
                       const float* k, const float* v, double* o, double* lse);
void attention_backward(const AttentionShape& shape, std::size_t batch, std::size_t kv_head, const float* q,
                        const float* k, const float* v, const float* dout, double* dq, double* dk, double* dv);

}  // namespace reference

// ---- Comparison ----

// Kernel output against its FP64 reference: element i passes when
//   |got[i] - want[i]| <= relative * |want[i]| + absolute * max(max_j |want[j]|, 1).
// The absolute part scales with the tensor (gradients are not of order 1), but not below 1: the
// inputs are of order 1 (fill_random), and a result that cancels to nearly 0 (the gradient of a
// softmax over one key, an RMSNorm of one value) keeps the rounding of the order-1 terms it summed.
struct Tolerance {
  double relative, absolute;
};
// Elementwise ops: a handful of FP32 roundings per value (exp, the rotation's two products, the RMS
// row sum, which the kernel accumulates in double): 2^-24 each, so 1e-5 relative leaves 100x margin.
constexpr Tolerance kElementwiseTolerance{1e-5, 1e-6};
// Flash attention: FP32 sums of up to seq_k products (scores, P V) and, in the backward, of up to
// group x seq_q terms (dK, dV), with the online softmax's rescaling. The worst-case bound n x 2^-24 is
// 5e-4 for n = 8192 terms; errors in practice are near sqrt(n) x 2^-24 (~1e-5). 1e-3 relative plus
// 1e-4 of the tensor's largest value catches any wrong block, mask or head mapping (errors of order 1).
constexpr Tolerance kAttentionTolerance{1e-3, 1e-4};

struct Mismatch {
  bool found = false;
  std::size_t index = 0;
  double got = 0, want = 0, allowed = 0;
};
// The first element outside the tolerance, over the indices listed (all when `indices` is empty).
Mismatch first_mismatch(const float* got, const double* want, std::size_t count, Tolerance tolerance,
                        const std::vector<std::size_t>& indices = {});

// Deterministic pseudo-random values in [-1, 1) (splitmix64 of seed and index), the same on every run.
void fill_random(float* values, std::size_t count, std::uint64_t seed);

}  // namespace parallax::exec::host
