// CUDA kernels of modern layers (exec/cuda/layer_kernels.cu): flash attention forward and backward
// (causal, grouped-query, shared-memory tiles, BF16/FP16/FP32 in and out, FP32 accumulation and
// softmax statistics) and the elementwise ops (RMSNorm, RoPE, SwiGLU, squared ReLU). The same
// layouts and formulas as the host kernels (parallax/exec/host_kernels.h), which are their reference.
// Plain C++ interface, as kernels.h.
#pragma once

#include "kernels.h"

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace parallax::exec::gpu {

// q, o, do, dq: [batch, heads, seq_q, head_dim]; k, v, dk, dv: [batch, kv_heads, seq_k, head_dim];
// lse, delta: [batch, heads, seq_q] FP32. Query head h reads kv head h / (heads / kv_heads). Causal
// queries see keys j <= i + seq_k - seq_q. head_dim <= kMaxHeadDim.
struct AttentionDims {
  int batch = 1, heads = 1, kv_heads = 1, seq_q = 1, seq_k = 1, head_dim = 64;
  bool causal = true;
  std::size_t q_values() const { return std::size_t(batch) * heads * seq_q * head_dim; }
  std::size_t kv_values() const { return std::size_t(batch) * kv_heads * seq_k * head_dim; }
  std::size_t rows() const { return std::size_t(batch) * heads * seq_q; }
};
constexpr int kMaxHeadDim = 128;

// Whether the kernels take these dims (head_dim 1..kMaxHeadDim, heads a multiple of kv_heads,
// positive sizes); the launchers return cudaErrorInvalidValue otherwise.
bool attention_dims_supported(const AttentionDims& dims);

cudaError_t flash_attention_forward(const AttentionDims& dims, Elem elem, const void* q, const void* k, const void* v,
                                    void* o, float* lse, cudaStream_t stream);
// `workspace` holds attention_backward_workspace(dims) bytes (FP32 dQ accumulator and delta).
std::size_t attention_backward_workspace(const AttentionDims& dims);
cudaError_t flash_attention_backward(const AttentionDims& dims, Elem elem, const void* q, const void* k,
                                     const void* v, const void* o, const float* lse, const void* dout, void* dq,
                                     void* dk, void* dv, void* workspace, cudaStream_t stream);

// Elementwise ops; tensors of `elem`, per-row and per-column statistics FP32.
cudaError_t rms_norm_forward(Elem elem, const void* x, const void* weight, void* y, float* inv_rms, std::size_t rows,
                             std::size_t cols, float eps, cudaStream_t stream);
cudaError_t rms_norm_backward(Elem elem, const void* x, const void* weight, const float* inv_rms, const void* dy,
                              void* dx, float* dweight, std::size_t rows, std::size_t cols, cudaStream_t stream);
// RoPE's cos and sin per (position, pair): [seq][head_dim / 2] each, computed in double on the device.
cudaError_t rope_table(float* cos, float* sin, std::size_t seq, std::size_t head_dim, double theta_base,
                       cudaStream_t stream);
// direction +1: forward rotation, -1: backward (the inverse).
cudaError_t rope_apply(Elem elem, const void* in, void* out, const float* cos, const float* sin, std::size_t rows,
                       std::size_t cols, std::size_t seq, std::size_t head_dim, int direction, cudaStream_t stream);
cudaError_t swiglu_forward(Elem elem, const void* gate, const void* up, void* out, std::size_t count,
                           cudaStream_t stream);
cudaError_t swiglu_backward(Elem elem, const void* gate, const void* up, const void* dout, void* dgate, void* dup,
                            std::size_t count, cudaStream_t stream);
cudaError_t squared_relu_forward(Elem elem, const void* x, void* y, std::size_t count, cudaStream_t stream);
cudaError_t squared_relu_backward(Elem elem, const void* x, const void* dy, void* dx, std::size_t count,
                                  cudaStream_t stream);

// Element conversion (the check tool rounds its FP32 inputs to the kernel's type and reads results back).
cudaError_t convert(const void* in, Elem in_elem, void* out, Elem out_elem, std::size_t count, cudaStream_t stream);

}  // namespace parallax::exec::gpu
