// Kernels of the CUDA backend: operand initialisation, the memory-bound traffic kernel and the --verify
// fill and check kernels. Host-side launchers only; the backend logic lives in cuda_backend.cpp.
#include "kernels.h"
#include "elem.cuh"

#include <cuda_runtime.h>

#include <algorithm>

namespace parallax::exec::gpu {
namespace {

__device__ __forceinline__ std::uint32_t hash(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return static_cast<std::uint32_t>(x);
}

template <typename T>
__global__ void fill_random_kernel(T* out, std::size_t n, std::uint32_t seed) {
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    // 1/64 steps in [-1, 1): exact in every element type.
    const float v = static_cast<float>(static_cast<int>(hash(i ^ (std::uint64_t(seed) << 40)) % 128u) - 64) / 64.0f;
    out[i] = from_float<T>(v);
  }
}

__global__ void move_kernel(const float4* __restrict__ in, float4* __restrict__ out, std::size_t n) {
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  // Four independent 16-byte loads in flight before the first store.
  for (; i + 3 * stride < n; i += 4 * stride) {
    float4 a = in[i], b = in[i + stride], c = in[i + 2 * stride], d = in[i + 3 * stride];
    a.x += 1.0f; b.y += 1.0f; c.z += 1.0f; d.w += 1.0f;
    out[i] = a;
    out[i + stride] = b;
    out[i + 2 * stride] = c;
    out[i + 3 * stride] = d;
  }
  for (; i < n; i += stride) {
    float4 a = in[i];
    a.x += 1.0f;
    out[i] = a;
  }
}

template <typename T>
__global__ void fill_pattern_kernel(T* out, std::size_t n, float base, std::uint64_t offset) {
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = from_float<T>(base + static_cast<float>((offset + i) % 7));
}

__device__ __forceinline__ float expected_at(const Expectation& e, std::size_t i) {
  const std::size_t block = i / e.block_len, j = i % e.block_len;
  const float base = e.block_base ? e.block_base[block] : e.base0;
  return base + e.multiplier * static_cast<float>((e.offset + j) % 7);
}

template <typename T>
__global__ void check_kernel(const T* data, Expectation e, VerifyResult* result) {
  const std::size_t n = e.block_len * e.blocks;
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float want = expected_at(e, i), got = to_float(data[i]);
    if (!(fabsf(got - want) <= e.tolerance * fabsf(want))) atomicMin(&result->index, static_cast<unsigned long long>(i));
  }
}

template <typename T>
__global__ void finish_check_kernel(const T* data, Expectation e, VerifyResult* result) {
  if (result->index == kNoError) return;
  result->expected = expected_at(e, result->index);
  result->got = to_float(data[result->index]);
}

__global__ void reset_kernel(VerifyResult* results, std::size_t n) {
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    results[i] = VerifyResult{kNoError, 0.0f, 0.0f};
}

}  // namespace

cudaError_t fill_random(void* buffer, std::size_t count, Elem elem, std::uint32_t seed, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  return dispatch(elem, [&](auto zero) {
    using T = decltype(zero);
    fill_random_kernel<T><<<blocks_for(count), kThreads, 0, stream>>>(static_cast<T*>(buffer), count, seed);
  });
}

cudaError_t move_bytes(const void* in, void* out, std::size_t half_bytes, cudaStream_t stream) {
  const std::size_t n = half_bytes / sizeof(float4);
  // Launched even when there is nothing to move: a tiny task still costs a kernel launch.
  move_kernel<<<blocks_for(n), kThreads, 0, stream>>>(static_cast<const float4*>(in), static_cast<float4*>(out), n);
  return cudaGetLastError();
}

cudaError_t fill_pattern(void* buffer, std::size_t count, Elem elem, float base, std::uint64_t offset,
                         cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  return dispatch(elem, [&](auto zero) {
    using T = decltype(zero);
    fill_pattern_kernel<T><<<blocks_for(count), kThreads, 0, stream>>>(static_cast<T*>(buffer), count, base, offset);
  });
}

cudaError_t check_pattern(const void* buffer, Elem elem, const Expectation& expect, VerifyResult* result,
                          cudaStream_t stream) {
  const std::size_t n = expect.block_len * expect.blocks;
  if (n == 0) return cudaSuccess;
  return dispatch(elem, [&](auto zero) {
    using T = decltype(zero);
    const T* data = static_cast<const T*>(buffer);
    check_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(data, expect, result);
    finish_check_kernel<T><<<1, 1, 0, stream>>>(data, expect, result);
  });
}

cudaError_t reset_results(VerifyResult* results, std::size_t count, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  reset_kernel<<<blocks_for(count), kThreads, 0, stream>>>(results, count);
  return cudaGetLastError();
}

}  // namespace parallax::exec::gpu
