// The CUDA backend's own kernels (exec/cuda/kernels.cu), behind a plain C++ interface so the backend
// itself (cuda_backend.cpp) is ordinary C++ compiled by the host compiler with the project's warnings.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace parallax::exec::gpu {

enum class Elem : std::uint8_t { F32, BF16, F16 };

inline std::size_t elem_size(Elem e) { return e == Elem::F32 ? 4 : 2; }

// Deterministic pseudo-random values in [-1, 1) (GEMM operands: no denormals, no zeros the hardware
// could shortcut).
cudaError_t fill_random(void* buffer, std::size_t count, Elem elem, std::uint32_t seed, cudaStream_t stream);

// Memory traffic of a memory-bound task: reads `half_bytes` from `in` and writes `half_bytes` to `out`,
// 16-byte vector accesses, coalesced, four loads in flight per thread (a grid-stride loop).
cudaError_t move_bytes(const void* in, void* out, std::size_t half_bytes, cudaStream_t stream);

// --verify: element i of `buffer[0, count)` = base + ((offset + i) % 7), exec::verify_value's pattern
// for a rank with base = (rank % 13) + 1.
cudaError_t fill_pattern(void* buffer, std::size_t count, Elem elem, float base, std::uint64_t offset,
                         cudaStream_t stream);

// What a communication result must hold: `blocks` blocks of `block_len` elements; element j of block b
// is block_base[b] + multiplier * ((offset + j) % 7) (block_base == nullptr: every block has base0).
// Reductions allow |got - expected| <= tolerance * expected (the rounding of low-precision sums).
struct Expectation {
  std::uint64_t block_len = 0;
  std::uint32_t blocks = 1;
  float base0 = 0;
  const float* block_base = nullptr;  // device memory, `blocks` values
  float multiplier = 1;
  std::uint64_t offset = 0;
  float tolerance = 0;
};

// The first wrong element of a checked result (index == kNoError when all were right).
struct VerifyResult {
  unsigned long long index;
  float expected, got;
};
constexpr unsigned long long kNoError = ~0ull;

// Checks `buffer` against `expect` on `stream` and records the smallest wrong index, with its expected
// and actual value, in `*result` (device memory, initialised to kNoError by the caller).
cudaError_t check_pattern(const void* buffer, Elem elem, const Expectation& expect, VerifyResult* result,
                          cudaStream_t stream);

// Initialises `count` results to kNoError.
cudaError_t reset_results(VerifyResult* results, std::size_t count, cudaStream_t stream);

}  // namespace parallax::exec::gpu
