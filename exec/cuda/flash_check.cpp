// parallax-flash-check: the CUDA flash attention kernels (layer_kernels.h) against the host's FP64
// reference (parallax/exec/host_kernels.h) on random inputs, and their achieved TFLOP/s. Run on a
// GPU node by exec/gpu-check.sh; exit 0 when forward and backward match, 1 when they do not, 2 on bad
// options or no GPU.
//
//   parallax-flash-check [--batch 1] [--heads 16] [--kv-heads 4] [--seq 2048] [--head-dim 128]
//                        [--dtype bf16|fp16|fp32] [--iterations 20] [--no-causal]
//
// The reference is computed for the first and the last (batch, kv head) group (all their query
// heads), in double, on the inputs after rounding to --dtype: the kernel and the reference see the
// same numbers. FLOPs counted as the plan counts them (model/include/parallax/model/job_graph.h):
// forward 2 matmuls of 2 s^2 d per head, backward 5, halved when causal.
#include "layer_kernels.h"
#include "parallax/cli/options.h"
#include "parallax/exec/host_kernels.h"
#include "parallax/traces/io.h"

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using parallax::InputError;
namespace gpu = parallax::exec::gpu;
namespace host = parallax::exec::host;

constexpr const char* kHelp = R"(parallax-flash-check: compare the CUDA flash attention kernels with an FP64 host reference
on random inputs and report their TFLOP/s.

Options: --batch N --heads N --kv-heads N --seq N --head-dim N (<= 128) --dtype bf16|fp16|fp32
--iterations N (timed runs of each kernel) --no-causal. Exit codes: 0 match, 1 mismatch, 2 bad options or no GPU.
)";

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

struct Device {
  void* p = nullptr;
  explicit Device(std::size_t bytes) { check(cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc"); }
  ~Device() { cudaFree(p); }
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;
  float* f() const { return static_cast<float*>(p); }
};

// Random FP32 values rounded to `elem` on the device: `typed` holds them as `elem`, the returned host
// vector as FP32 (the exact values the kernel reads).
std::vector<float> random_input(std::size_t n, std::uint64_t seed, gpu::Elem elem, Device& typed) {
  std::vector<float> values(n);
  host::fill_random(values.data(), n, seed);
  Device staging(n * sizeof(float));
  check(cudaMemcpy(staging.p, values.data(), n * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
  check(gpu::convert(staging.p, gpu::Elem::F32, typed.p, elem, n, nullptr), "convert");
  check(gpu::convert(typed.p, elem, staging.p, gpu::Elem::F32, n, nullptr), "convert");
  check(cudaMemcpy(values.data(), staging.p, n * sizeof(float), cudaMemcpyDeviceToHost), "cudaMemcpy");
  return values;
}

std::vector<float> read_back(const Device& typed, gpu::Elem elem, std::size_t n) {
  Device staging(n * sizeof(float));
  check(gpu::convert(typed.p, elem, staging.p, gpu::Elem::F32, n, nullptr), "convert");
  std::vector<float> values(n);
  check(cudaMemcpy(values.data(), staging.p, n * sizeof(float), cudaMemcpyDeviceToHost), "cudaMemcpy");
  return values;
}

// Tolerances against the FP64 reference: the kernel's outputs are rounded to --dtype (BF16 keeps 8
// significant bits: half an ulp is 2^-9 = 2e-3 relative; FP16 11 bits: 2.4e-4), on top of the FP32
// accumulation the host kernels' tolerance covers (host::kAttentionTolerance). Four half-ulps
// relative plus the same of the tensor's largest value.
host::Tolerance tolerance_for(gpu::Elem elem) {
  switch (elem) {
    case gpu::Elem::BF16: return {8e-3, 8e-3};
    case gpu::Elem::F16: return {1e-3, 1e-3};
    case gpu::Elem::F32: return host::kAttentionTolerance;
  }
  return host::kAttentionTolerance;
}

int run(const std::vector<std::string>& args) {
  int batch = 1, heads = 16, kv_heads = 4, seq = 2048, head_dim = 128, iterations = 20;
  bool no_causal = false;
  std::string dtype = "bf16";
  if (!parallax::cli::Options("parallax-flash-check", kHelp)
           .whole("--batch", batch, 1, "a batch size, e.g. --batch 1")
           .whole("--heads", heads, 1, "a number of query heads, e.g. --heads 16")
           .whole("--kv-heads", kv_heads, 1, "a number of kv heads, e.g. --kv-heads 4")
           .whole("--seq", seq, 1, "a sequence length, e.g. --seq 2048")
           .whole("--head-dim", head_dim, 1, "a head dimension up to 128, e.g. --head-dim 128")
           .whole("--iterations", iterations, 1, "a number of timed runs, e.g. --iterations 20")
           .text("--dtype", dtype, "bf16, fp16 or fp32, e.g. --dtype bf16")
           .flag("--no-causal", no_causal)
           .parse(args))
    return 0;
  gpu::Elem elem;
  if (dtype == "bf16") elem = gpu::Elem::BF16;
  else if (dtype == "fp16") elem = gpu::Elem::F16;
  else if (dtype == "fp32") elem = gpu::Elem::F32;
  else throw InputError("--dtype " + dtype + ": valid: bf16, fp16, fp32");
  gpu::AttentionDims d;
  d.batch = batch, d.heads = heads, d.kv_heads = kv_heads, d.seq_q = d.seq_k = seq, d.head_dim = head_dim;
  d.causal = !no_causal;
  if (!gpu::attention_dims_supported(d))
    throw InputError("--heads must be a multiple of --kv-heads and --head-dim at most " +
                     std::to_string(gpu::kMaxHeadDim));
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) throw InputError("no CUDA device found");
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  std::printf("flash-check: %s, %s, batch %d, heads %d (kv %d), seq %d, head_dim %d, %s\n", prop.name, dtype.c_str(),
              batch, heads, kv_heads, seq, head_dim, d.causal ? "causal" : "full");

  const std::size_t es = gpu::elem_size(elem), nq = d.q_values(), nkv = d.kv_values();
  Device q(nq * es), k(nkv * es), v(nkv * es), o(nq * es), dout(nq * es), dq(nq * es), dk(nkv * es), dv(nkv * es);
  Device lse(d.rows() * sizeof(float)), workspace(gpu::attention_backward_workspace(d));
  const auto hq = random_input(nq, 1, elem, q), hk = random_input(nkv, 2, elem, k), hv = random_input(nkv, 3, elem, v),
             hdo = random_input(nq, 4, elem, dout);

  auto forward = [&] { check(gpu::flash_attention_forward(d, elem, q.p, k.p, v.p, o.p, lse.f(), nullptr), "forward"); };
  auto backward = [&] {
    check(gpu::flash_attention_backward(d, elem, q.p, k.p, v.p, o.p, lse.f(), dout.p, dq.p, dk.p, dv.p, workspace.p,
                                        nullptr),
          "backward");
  };
  forward();
  backward();
  check(cudaDeviceSynchronize(), "first runs");

  // Correctness: the first and last (batch, kv head) groups.
  host::AttentionShape s;
  s.batch = batch, s.heads = heads, s.kv_heads = kv_heads, s.seq_q = s.seq_k = seq, s.head_dim = head_dim;
  s.causal = d.causal;
  std::vector<std::pair<std::size_t, std::size_t>> groups{{0, 0}};
  if (batch > 1 || kv_heads > 1) groups.emplace_back(batch - 1, kv_heads - 1);
  std::vector<double> ro(nq), rlse(d.rows()), rdq(nq), rdk(nkv), rdv(nkv);
  std::vector<std::size_t> q_index, kv_index;
  const std::size_t group = heads / kv_heads;
  for (auto [b, kvh] : groups) {
    host::reference::attention_forward(s, b, kvh, hq.data(), hk.data(), hv.data(), ro.data(), rlse.data());
    host::reference::attention_backward(s, b, kvh, hq.data(), hk.data(), hv.data(), hdo.data(), rdq.data(),
                                        rdk.data(), rdv.data());
    for (std::size_t h = kvh * group; h < (kvh + 1) * group; ++h)
      for (std::size_t e = 0; e < std::size_t(seq) * head_dim; ++e)
        q_index.push_back((b * heads + h) * seq * head_dim + e);
    for (std::size_t e = 0; e < std::size_t(seq) * head_dim; ++e)
      kv_index.push_back((b * kv_heads + kvh) * seq * head_dim + e);
  }
  const auto tol = tolerance_for(elem);
  bool ok = true;
  auto compare = [&](const char* what, const std::vector<float>& got, const std::vector<double>& want,
                     const std::vector<std::size_t>& index) {
    const auto m = host::first_mismatch(got.data(), want.data(), want.size(), tol, index);
    if (m.found) {
      ok = false;
      std::printf("flash-check: MISMATCH %s element %zu: %.6g, FP64 reference %.6g (allowed difference %.3g)\n", what,
                  m.index, m.got, m.want, m.allowed);
    } else {
      std::printf("flash-check: %s matches the FP64 reference (%zu values)\n", what, index.size());
    }
  };
  compare("O", read_back(o, elem, nq), ro, q_index);
  compare("dQ", read_back(dq, elem, nq), rdq, q_index);
  compare("dK", read_back(dk, elem, nkv), rdk, kv_index);
  compare("dV", read_back(dv, elem, nkv), rdv, kv_index);

  // Speed.
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");
  auto time = [&](const std::function<void()>& f) {
    check(cudaEventRecord(start), "cudaEventRecord");
    for (int i = 0; i < iterations; ++i) f();
    check(cudaEventRecord(stop), "cudaEventRecord");
    check(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    return ms / 1e3 / iterations;
  };
  const double pair_flops = 2.0 * 2.0 * batch * heads * double(seq) * seq * head_dim * (d.causal ? 0.5 : 1.0);
  const double fwd_s = time(forward), bwd_s = time(backward);
  std::printf("flash-check: forward %.3f ms, %.1f TFLOP/s; backward %.3f ms, %.1f TFLOP/s\n", fwd_s * 1e3,
              pair_flops / fwd_s / 1e12, bwd_s * 1e3, 2.5 * pair_flops / bwd_s / 1e12);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::printf("flash-check: %s\n", ok ? "passed" : "FAILED");
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const InputError& e) {
    std::fprintf(stderr, "parallax-flash-check: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "parallax-flash-check: %s\n", e.what());
    return 1;
  }
}
