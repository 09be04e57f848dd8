// Device helpers shared by the CUDA backend's kernel files: element conversion, the element-type
// dispatch of a launcher, and the grid size of a grid-stride loop.
#pragma once

#include "kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>

namespace parallax::exec::gpu {

constexpr int kThreads = 256;

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16(v); }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half(v); }

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }

// Blocks for a grid-stride loop over `n` items: enough to fill the GPU, no more than the work needs.
inline unsigned blocks_for(std::size_t n) {
  int device = 0, sms = 1;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  const std::size_t needed = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(std::max<std::size_t>(1, std::min<std::size_t>(needed, std::size_t(sms) * 8)));
}

// Calls f(T{}) with the element type of `elem`, then returns the launch's error.
template <typename F>
cudaError_t dispatch(Elem elem, F&& f) {
  switch (elem) {
    case Elem::F32: f(float{}); break;
    case Elem::BF16: f(__nv_bfloat16{}); break;
    case Elem::F16: f(__half{}); break;
  }
  return cudaGetLastError();
}

}  // namespace parallax::exec::gpu
