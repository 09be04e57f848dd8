// Kernels of modern layers (layer_kernels.h). Flash attention follows FlashAttention-2: the forward
// walks blocks of keys for a block of queries with an online softmax (running max and sum in FP32
// registers), the backward walks blocks of queries for a block of keys, recomputing the scores from
// q, k and the forward's log-sum-exp. Tiles live in shared memory as FP32; inputs and outputs are
// BF16, FP16 or FP32. The products run on the FP32 cores (FMA), not on tensor cores: this kernel
// is the executor's reference-checked implementation of the op's FLOPs, not a cuDNN-class one.
#include "layer_kernels.h"
#include "elem.cuh"

#include <cuda_runtime.h>

#include <cmath>

namespace parallax::exec::gpu {
namespace {

constexpr float kNegInf = -INFINITY;
constexpr unsigned kFullMask = 0xffffffffu;
// Each query (forward) or key (backward) row is held by kLanes consecutive threads, each owning the
// columns c with c % kLanes == its lane: their partial dot products meet by two warp shuffles, and
// the lanes of a warp read consecutive shared-memory words (no bank conflicts).
constexpr int kLanes = 4;
constexpr int kCols = kMaxHeadDim / kLanes;  // columns per thread, at most
// Forward: 64 queries per block (256 threads), key tiles of 32 (2 x 16 KiB of shared memory).
constexpr int kFwdRows = 64, kFwdKeys = 32;
// Backward: 64 keys per block (256 threads), query tiles of 32: q, do (2 x 16 KiB), k (32 KiB), dS
// (8 KiB) and the tile's log-sum-exp and delta: 74 KiB of dynamic shared memory (sm_80+ allow 164).
constexpr int kBwdKeys = 64, kBwdRows = 32;
constexpr std::size_t kBwdShared =
    sizeof(float) * (2 * kBwdRows * kMaxHeadDim + kBwdKeys * kMaxHeadDim + kBwdRows * kBwdKeys + 2 * kBwdRows);

__device__ __forceinline__ float lanes_sum(float v) {
  v += __shfl_xor_sync(kFullMask, v, 1);
  v += __shfl_xor_sync(kFullMask, v, 2);
  return v;
}

template <typename T>
__global__ void __launch_bounds__(kFwdRows * kLanes)
    flash_forward_kernel(AttentionDims d, const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                         T* __restrict__ o, float* __restrict__ lse, float scale) {
  __shared__ float ks[kFwdKeys][kMaxHeadDim];
  __shared__ float vs[kFwdKeys][kMaxHeadDim];
  const int D = d.head_dim;
  const int bh = blockIdx.y, b = bh / d.heads, h = bh % d.heads, kvh = h / (d.heads / d.kv_heads);
  const int row = threadIdx.x / kLanes, lane = threadIdx.x % kLanes;
  const int i = blockIdx.x * kFwdRows + row;
  const bool valid = i < d.seq_q;
  const T* qh = q + std::size_t(bh) * d.seq_q * D;
  const T* kh = k + (std::size_t(b) * d.kv_heads + kvh) * d.seq_k * D;
  const T* vh = v + (std::size_t(b) * d.kv_heads + kvh) * d.seq_k * D;
  float qr[kCols], acc[kCols];
#pragma unroll
  for (int c = 0; c < kCols; ++c) {
    const int col = c * kLanes + lane;
    qr[c] = valid && col < D ? to_float(qh[std::size_t(i) * D + col]) * scale : 0.0f;
    acc[c] = 0.0f;
  }
  const int offset = d.seq_k - d.seq_q;
  const int last_row = min(d.seq_q, int(blockIdx.x + 1) * kFwdRows) - 1;
  const int key_end = d.causal ? max(0, min(d.seq_k, last_row + offset + 1)) : d.seq_k;
  const int my_last = d.causal ? i + offset : d.seq_k - 1;
  float m = kNegInf, l = 0.0f;
  for (int j0 = 0; j0 < key_end; j0 += kFwdKeys) {
    __syncthreads();
    for (int e = threadIdx.x; e < kFwdKeys * D; e += blockDim.x) {
      const int jj = e / D, col = e % D, j = j0 + jj;
      ks[jj][col] = j < d.seq_k ? to_float(kh[std::size_t(j) * D + col]) : 0.0f;
      vs[jj][col] = j < d.seq_k ? to_float(vh[std::size_t(j) * D + col]) : 0.0f;
    }
    __syncthreads();
    float s[kFwdKeys];
    float tile_max = kNegInf;
#pragma unroll
    for (int jj = 0; jj < kFwdKeys; ++jj) {
      float part = 0.0f;
#pragma unroll
      for (int c = 0; c < kCols; ++c) {
        const int col = c * kLanes + lane;
        if (col < D) part += qr[c] * ks[jj][col];
      }
      part = lanes_sum(part);
      const int j = j0 + jj;
      s[jj] = j < d.seq_k && j <= my_last ? part : kNegInf;
      tile_max = fmaxf(tile_max, s[jj]);
    }
    const float m_new = fmaxf(m, tile_max);
    if (m_new == kNegInf) continue;  // nothing visible to this query yet
    const float rescale = __expf(m - m_new);  // 0 on the first visible tile (m = -inf)
    l *= rescale;
#pragma unroll
    for (int c = 0; c < kCols; ++c) acc[c] *= rescale;
#pragma unroll
    for (int jj = 0; jj < kFwdKeys; ++jj) {
      const float p = __expf(s[jj] - m_new);  // masked: exp(-inf) = 0
      l += p;
#pragma unroll
      for (int c = 0; c < kCols; ++c) {
        const int col = c * kLanes + lane;
        if (col < D) acc[c] += p * vs[jj][col];
      }
    }
    m = m_new;
  }
  if (!valid) return;
  T* oh = o + (std::size_t(bh) * d.seq_q + i) * D;
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
  for (int c = 0; c < kCols; ++c) {
    const int col = c * kLanes + lane;
    if (col < D) oh[col] = from_float<T>(acc[c] * inv);
  }
  if (lane == 0) lse[std::size_t(bh) * d.seq_q + i] = l > 0.0f ? m + logf(l) : kNegInf;
}

// delta[row] = sum_c dout[row][c] o[row][c], one warp per row.
template <typename T>
__global__ void attention_delta_kernel(const T* __restrict__ dout, const T* __restrict__ o, float* __restrict__ delta,
                                       std::size_t rows, int D) {
  const std::size_t warp = (std::size_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (warp >= rows) return;
  float sum = 0.0f;
  for (int c = lane; c < D; c += 32) sum += to_float(dout[warp * D + c]) * to_float(o[warp * D + c]);
  for (int step = 16; step > 0; step /= 2) sum += __shfl_xor_sync(kFullMask, sum, step);
  if (lane == 0) delta[warp] = sum;
}

template <typename T>
__global__ void __launch_bounds__(kBwdKeys * kLanes)
    flash_backward_kernel(AttentionDims d, const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                          const float* __restrict__ lse, const float* __restrict__ delta, const T* __restrict__ dout,
                          float* __restrict__ dq_acc, T* __restrict__ dk, T* __restrict__ dv, float scale) {
  extern __shared__ float shared[];
  float* qs = shared;                          // [kBwdRows][kMaxHeadDim]
  float* dos = qs + kBwdRows * kMaxHeadDim;    // [kBwdRows][kMaxHeadDim]
  float* kst = dos + kBwdRows * kMaxHeadDim;   // [kBwdKeys][kMaxHeadDim]
  float* ds = kst + kBwdKeys * kMaxHeadDim;    // [kBwdRows][kBwdKeys]
  float* ls = ds + kBwdRows * kBwdKeys;        // [kBwdRows]
  float* dl = ls + kBwdRows;                   // [kBwdRows]
  const int D = d.head_dim, group = d.heads / d.kv_heads;
  const int bkv = blockIdx.y, b = bkv / d.kv_heads, kvh = bkv % d.kv_heads;
  const int key = threadIdx.x / kLanes, lane = threadIdx.x % kLanes;
  const int j0 = blockIdx.x * kBwdKeys, j = j0 + key;
  const bool valid = j < d.seq_k;
  const T* kh = k + std::size_t(bkv) * d.seq_k * D;
  const T* vh = v + std::size_t(bkv) * d.seq_k * D;
  float kr[kCols], vr[kCols], dk_acc[kCols], dv_acc[kCols];
#pragma unroll
  for (int c = 0; c < kCols; ++c) {
    const int col = c * kLanes + lane;
    kr[c] = valid && col < D ? to_float(kh[std::size_t(j) * D + col]) : 0.0f;
    vr[c] = valid && col < D ? to_float(vh[std::size_t(j) * D + col]) : 0.0f;
    dk_acc[c] = dv_acc[c] = 0.0f;
  }
  for (int e = threadIdx.x; e < kBwdKeys * D; e += blockDim.x) {
    const int jj = e / D, col = e % D;
    kst[jj * kMaxHeadDim + col] = j0 + jj < d.seq_k ? to_float(kh[std::size_t(j0 + jj) * D + col]) : 0.0f;
  }
  const int offset = d.seq_k - d.seq_q;
  // Causal: queries before j0 - offset see none of this block's keys.
  const int first_query = d.causal ? max(0, j0 - offset) : 0;
  for (int hh = 0; hh < group; ++hh) {
    const int bh = b * d.heads + kvh * group + hh;
    const T* qh = q + std::size_t(bh) * d.seq_q * D;
    const T* doh = dout + std::size_t(bh) * d.seq_q * D;
    for (int i0 = first_query / kBwdRows * kBwdRows; i0 < d.seq_q; i0 += kBwdRows) {
      __syncthreads();
      for (int e = threadIdx.x; e < kBwdRows * D; e += blockDim.x) {
        const int r = e / D, col = e % D, i = i0 + r;
        qs[r * kMaxHeadDim + col] = i < d.seq_q ? to_float(qh[std::size_t(i) * D + col]) : 0.0f;
        dos[r * kMaxHeadDim + col] = i < d.seq_q ? to_float(doh[std::size_t(i) * D + col]) : 0.0f;
      }
      if (threadIdx.x < kBwdRows) {
        const int i = i0 + threadIdx.x;
        ls[threadIdx.x] = i < d.seq_q ? lse[std::size_t(bh) * d.seq_q + i] : kNegInf;
        dl[threadIdx.x] = i < d.seq_q ? delta[std::size_t(bh) * d.seq_q + i] : 0.0f;
      }
      __syncthreads();
      for (int r = 0; r < kBwdRows; ++r) {
        const int i = i0 + r;
        float s = 0.0f, dp = 0.0f;
#pragma unroll
        for (int c = 0; c < kCols; ++c) {
          const int col = c * kLanes + lane;
          if (col < D) {
            s += qs[r * kMaxHeadDim + col] * kr[c];
            dp += dos[r * kMaxHeadDim + col] * vr[c];
          }
        }
        s = lanes_sum(s);
        dp = lanes_sum(dp);
        const bool visible = valid && i < d.seq_q && (!d.causal || j <= i + offset) && ls[r] != kNegInf;
        const float p = visible ? __expf(s * scale - ls[r]) : 0.0f;
        const float dsv = p * (dp - dl[r]);
#pragma unroll
        for (int c = 0; c < kCols; ++c) {
          const int col = c * kLanes + lane;
          if (col < D) {
            dv_acc[c] += p * dos[r * kMaxHeadDim + col];
            dk_acc[c] += dsv * qs[r * kMaxHeadDim + col];
          }
        }
        if (lane == 0) ds[r * kBwdKeys + key] = dsv;
      }
      __syncthreads();
      // dQ_i += scale sum_j dS[i][j] K[j], into the FP32 accumulator (other key blocks add theirs).
      for (int e = threadIdx.x; e < kBwdRows * D; e += blockDim.x) {
        const int r = e / D, col = e % D, i = i0 + r;
        if (i >= d.seq_q) continue;
        float sum = 0.0f;
#pragma unroll 8
        for (int jj = 0; jj < kBwdKeys; ++jj) sum += ds[r * kBwdKeys + jj] * kst[jj * kMaxHeadDim + col];
        atomicAdd(dq_acc + (std::size_t(bh) * d.seq_q + i) * D + col, sum * scale);
      }
    }
  }
  if (!valid) return;
  T* dkh = dk + (std::size_t(bkv) * d.seq_k + j) * D;
  T* dvh = dv + (std::size_t(bkv) * d.seq_k + j) * D;
#pragma unroll
  for (int c = 0; c < kCols; ++c) {
    const int col = c * kLanes + lane;
    if (col < D) {
      dkh[col] = from_float<T>(dk_acc[c] * scale);
      dvh[col] = from_float<T>(dv_acc[c]);
    }
  }
}

template <typename In, typename Out>
__global__ void convert_kernel(const In* __restrict__ in, Out* __restrict__ out, std::size_t n) {
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = from_float<Out>(to_float(in[i]));
}

// ---- Elementwise ----

// Sum over the block (kThreads threads), returned to every thread.
__device__ float block_sum(float v) {
  __shared__ float partial[kThreads / 32];
  for (int step = 16; step > 0; step /= 2) v += __shfl_xor_sync(kFullMask, v, step);
  __syncthreads();  // partial[] may still be read from a previous call
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = v;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < kThreads / 32; ++w) total += partial[w];
  return total;
}

template <typename T>
__global__ void rms_norm_forward_kernel(const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ y,
                                        float* __restrict__ inv_rms, std::size_t cols, float eps) {
  const T* xr = x + blockIdx.x * cols;
  float sum = 0.0f;
  for (std::size_t c = threadIdx.x; c < cols; c += blockDim.x) sum += to_float(xr[c]) * to_float(xr[c]);
  const float inv = rsqrtf(block_sum(sum) / static_cast<float>(cols) + eps);
  if (threadIdx.x == 0) inv_rms[blockIdx.x] = inv;
  for (std::size_t c = threadIdx.x; c < cols; c += blockDim.x)
    y[blockIdx.x * cols + c] = from_float<T>(to_float(xr[c]) * inv * to_float(w[c]));
}

template <typename T>
__global__ void rms_norm_backward_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                         const float* __restrict__ inv_rms, const T* __restrict__ dy,
                                         T* __restrict__ dx, std::size_t cols) {
  const std::size_t base = blockIdx.x * cols;
  float dot = 0.0f;
  for (std::size_t c = threadIdx.x; c < cols; c += blockDim.x)
    dot += to_float(w[c]) * to_float(dy[base + c]) * to_float(x[base + c]);
  const float inv = inv_rms[blockIdx.x];
  const float k = block_sum(dot) / static_cast<float>(cols) * inv * inv;
  for (std::size_t c = threadIdx.x; c < cols; c += blockDim.x)
    dx[base + c] = from_float<T>(inv * (to_float(w[c]) * to_float(dy[base + c]) - to_float(x[base + c]) * k));
}

// dweight[c] = sum_r dy[r][c] x[r][c] inv_rms[r]: a thread per column, the rows in a loop (coalesced).
template <typename T>
__global__ void rms_norm_dweight_kernel(const T* __restrict__ x, const float* __restrict__ inv_rms,
                                        const T* __restrict__ dy, float* __restrict__ dweight, std::size_t rows,
                                        std::size_t cols) {
  const std::size_t c = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  float sum = 0.0f;
  for (std::size_t r = 0; r < rows; ++r) sum += to_float(dy[r * cols + c]) * to_float(x[r * cols + c]) * inv_rms[r];
  dweight[c] = sum;
}

__global__ void rope_table_kernel(float* cos_out, float* sin_out, std::size_t seq, std::size_t head_dim,
                                  double theta_base) {
  const std::size_t half = head_dim / 2, n = seq * half;
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  for (std::size_t e = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += stride) {
    const std::size_t pos = e / half, i = e % half;
    const double angle = static_cast<double>(pos) * pow(theta_base, -2.0 * static_cast<double>(i) / head_dim);
    double s, c;
    sincos(angle, &s, &c);
    cos_out[e] = static_cast<float>(c);
    sin_out[e] = static_cast<float>(s);
  }
}

template <typename T>
__global__ void rope_kernel(const T* __restrict__ in, T* __restrict__ out, const float* __restrict__ cos_table,
                            const float* __restrict__ sin_table, std::size_t rows, std::size_t cols, std::size_t seq,
                            std::size_t head_dim, float direction) {
  const std::size_t half = head_dim / 2, heads = cols / head_dim, n = rows * heads * half;
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  for (std::size_t e = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += stride) {
    const std::size_t i = e % half, head = (e / half) % heads, r = e / (half * heads);
    const std::size_t at = r * cols + head * head_dim + i, t = (r % seq) * half + i;
    const float x1 = to_float(in[at]), x2 = to_float(in[at + half]);
    const float c = cos_table[t], s = direction * sin_table[t];
    out[at] = from_float<T>(x1 * c - x2 * s);
    out[at + half] = from_float<T>(x2 * c + x1 * s);
  }
}

__device__ __forceinline__ float sigmoid(float g) { return 1.0f / (1.0f + __expf(-g)); }

template <typename T>
__global__ void swiglu_forward_kernel(const T* __restrict__ gate, const T* __restrict__ up, T* __restrict__ out,
                                      std::size_t n) {
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float g = to_float(gate[i]);
    out[i] = from_float<T>(g * sigmoid(g) * to_float(up[i]));
  }
}

template <typename T>
__global__ void swiglu_backward_kernel(const T* __restrict__ gate, const T* __restrict__ up,
                                       const T* __restrict__ dout, T* __restrict__ dgate, T* __restrict__ dup,
                                       std::size_t n) {
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float g = to_float(gate[i]), s = sigmoid(g), dy = to_float(dout[i]);
    dup[i] = from_float<T>(dy * g * s);
    dgate[i] = from_float<T>(dy * to_float(up[i]) * s * (1.0f + g * (1.0f - s)));
  }
}

template <typename T>
__global__ void squared_relu_forward_kernel(const T* __restrict__ x, T* __restrict__ y, std::size_t n) {
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float r = fmaxf(to_float(x[i]), 0.0f);
    y[i] = from_float<T>(r * r);
  }
}

template <typename T>
__global__ void squared_relu_backward_kernel(const T* __restrict__ x, const T* __restrict__ dy, T* __restrict__ dx,
                                             std::size_t n) {
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    dx[i] = from_float<T>(2.0f * fmaxf(to_float(x[i]), 0.0f) * to_float(dy[i]));
}

float attention_scale(const AttentionDims& d) { return static_cast<float>(1.0 / std::sqrt(double(d.head_dim))); }

}  // namespace

bool attention_dims_supported(const AttentionDims& d) {
  return d.batch > 0 && d.heads > 0 && d.kv_heads > 0 && d.heads % d.kv_heads == 0 && d.seq_q > 0 && d.seq_k > 0 &&
         d.head_dim > 0 && d.head_dim <= kMaxHeadDim;
}

cudaError_t flash_attention_forward(const AttentionDims& d, Elem elem, const void* q, const void* k, const void* v,
                                    void* o, float* lse, cudaStream_t stream) {
  if (!attention_dims_supported(d)) return cudaErrorInvalidValue;
  const dim3 grid((d.seq_q + kFwdRows - 1) / kFwdRows, static_cast<unsigned>(d.batch * d.heads));
  return dispatch(elem, [&](auto zero) {
    using T = decltype(zero);
    flash_forward_kernel<T><<<grid, kFwdRows * kLanes, 0, stream>>>(
        d, static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v), static_cast<T*>(o), lse,
        attention_scale(d));
  });
}

std::size_t attention_backward_workspace(const AttentionDims& d) { return sizeof(float) * (d.q_values() + d.rows()); }

cudaError_t flash_attention_backward(const AttentionDims& d, Elem elem, const void* q, const void* k, const void* v,
                                     const void* o, const float* lse, const void* dout, void* dq, void* dk, void* dv,
                                     void* workspace, cudaStream_t stream) {
  if (!attention_dims_supported(d)) return cudaErrorInvalidValue;
  float* dq_acc = static_cast<float*>(workspace);
  float* delta = dq_acc + d.q_values();
  if (auto e = cudaMemsetAsync(dq_acc, 0, sizeof(float) * d.q_values(), stream); e != cudaSuccess) return e;
  return dispatch(elem, [&](auto zero) {
    using T = decltype(zero);
    const std::size_t rows = d.rows();
    attention_delta_kernel<T><<<static_cast<unsigned>((rows * 32 + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
        static_cast<const T*>(dout), static_cast<const T*>(o), delta, rows, d.head_dim);
    // Above the default 48 KiB of dynamic shared memory: allowed once per kernel (cheap to repeat).
    cudaFuncSetAttribute(flash_backward_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                         static_cast<int>(kBwdShared));
    const dim3 grid((d.seq_k + kBwdKeys - 1) / kBwdKeys, static_cast<unsigned>(d.batch * d.kv_heads));
    flash_backward_kernel<T><<<grid, kBwdKeys * kLanes, kBwdShared, stream>>>(
        d, static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v), lse, delta,
        static_cast<const T*>(dout), dq_acc, static_cast<T*>(dk), static_cast<T*>(dv), attention_scale(d));
    convert_kernel<float, T><<<blocks_for(d.q_values()), kThreads, 0, stream>>>(dq_acc, static_cast<T*>(dq),
                                                                               d.q_values());
  });
}

cudaError_t rms_norm_forward(Elem elem, const void* x, const void* weight, void* y, float* inv_rms, std::size_t rows,
                             std::size_t cols, float eps, cudaStream_t stream) {
  if (rows == 0 || cols == 0) return cudaSuccess;
  return dispatch(elem, [&](auto zero) {
    using T = decltype(zero);
    rms_norm_forward_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
        static_cast<const T*>(x), static_cast<const T*>(weight), static_cast<T*>(y), inv_rms, cols, eps);
  });
}

cudaError_t rms_norm_backward(Elem elem, const void* x, const void* weight, const float* inv_rms, const void* dy,
                              void* dx, float* dweight, std::size_t rows, std::size_t cols, cudaStream_t stream) {
  if (rows == 0 || cols == 0) return cudaSuccess;
  return dispatch(elem, [&](auto zero) {
    using T = decltype(zero);
    rms_norm_backward_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
        static_cast<const T*>(x), static_cast<const T*>(weight), inv_rms, static_cast<const T*>(dy),
        static_cast<T*>(dx), cols);
    rms_norm_dweight_kernel<T><<<static_cast<unsigned>((cols + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
        static_cast<const T*>(x), inv_rms, static_cast<const T*>(dy), dweight, rows, cols);
  });
}

cudaError_t rope_table(float* cos, float* sin, std::size_t seq, std::size_t head_dim, double theta_base,
                       cudaStream_t stream) {
  const std::size_t n = seq * (head_dim / 2);
  if (n == 0) return cudaSuccess;
  rope_table_kernel<<<blocks_for(n), kThreads, 0, stream>>>(cos, sin, seq, head_dim, theta_base);
  return cudaGetLastError();
}

cudaError_t rope_apply(Elem elem, const void* in, void* out, const float* cos, const float* sin, std::size_t rows,
                       std::size_t cols, std::size_t seq, std::size_t head_dim, int direction, cudaStream_t stream) {
  if (head_dim < 2 || head_dim % 2 != 0 || cols % head_dim != 0 || seq == 0) return cudaErrorInvalidValue;
  const std::size_t n = rows * (cols / 2);
  if (n == 0) return cudaSuccess;
  return dispatch(elem, [&](auto zero) {
    using T = decltype(zero);
    rope_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(static_cast<const T*>(in), static_cast<T*>(out), cos, sin,
                                                           rows, cols, seq, head_dim, direction < 0 ? -1.0f : 1.0f);
  });
}

cudaError_t swiglu_forward(Elem elem, const void* gate, const void* up, void* out, std::size_t count,
                           cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  return dispatch(elem, [&](auto zero) {
    using T = decltype(zero);
    swiglu_forward_kernel<T><<<blocks_for(count), kThreads, 0, stream>>>(
        static_cast<const T*>(gate), static_cast<const T*>(up), static_cast<T*>(out), count);
  });
}

cudaError_t swiglu_backward(Elem elem, const void* gate, const void* up, const void* dout, void* dgate, void* dup,
                            std::size_t count, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  return dispatch(elem, [&](auto zero) {
    using T = decltype(zero);
    swiglu_backward_kernel<T><<<blocks_for(count), kThreads, 0, stream>>>(
        static_cast<const T*>(gate), static_cast<const T*>(up), static_cast<const T*>(dout), static_cast<T*>(dgate),
        static_cast<T*>(dup), count);
  });
}

cudaError_t squared_relu_forward(Elem elem, const void* x, void* y, std::size_t count, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  return dispatch(elem, [&](auto zero) {
    using T = decltype(zero);
    squared_relu_forward_kernel<T><<<blocks_for(count), kThreads, 0, stream>>>(static_cast<const T*>(x),
                                                                              static_cast<T*>(y), count);
  });
}

cudaError_t squared_relu_backward(Elem elem, const void* x, const void* dy, void* dx, std::size_t count,
                                  cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  return dispatch(elem, [&](auto zero) {
    using T = decltype(zero);
    squared_relu_backward_kernel<T><<<blocks_for(count), kThreads, 0, stream>>>(
        static_cast<const T*>(x), static_cast<const T*>(dy), static_cast<T*>(dx), count);
  });
}

cudaError_t convert(const void* in, Elem in_elem, void* out, Elem out_elem, std::size_t count, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  return dispatch(in_elem, [&](auto in_zero) {
    using In = decltype(in_zero);
    dispatch(out_elem, [&](auto out_zero) {
      using Out = decltype(out_zero);
      convert_kernel<In, Out><<<blocks_for(count), kThreads, 0, stream>>>(static_cast<const In*>(in),
                                                                          static_cast<Out*>(out), count);
    });
  });
}

}  // namespace parallax::exec::gpu
