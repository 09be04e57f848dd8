// Compute cost model (docs/architecture.md, "Cost model"): the duration of a compute task on one GPU is the roofline
// max(FLOPs / (peak * efficiency(m, n, k)), bytes / (HBM bandwidth * memory efficiency)) plus a fixed
// kernel overhead; the fused attention kernel is FLOPs / (peak * its own efficiency(seq, head_dim))
// plus the overhead. An FP8 GEMM (Task::fp8) is timed at the FP8 peak with the GPU's FP8 table. The GEMM efficiency comes from the GPU's table, never from a per-scenario factor.
#pragma once

#include "parallax/model/job_graph.h"

#include <array>

namespace parallax::model {

// The grid points a GEMM efficiency lookup blends and their weights: trilinear in log2(m), log2(n),
// log2(k), clamped at the table's edges (indices into GemmEfficiencyTable::efficiency, at most 8 with
// a positive weight; the weights sum to 1). CostModel::gemm_efficiency is sum(weight * efficiency);
// calibration fits the table through the same weights.
struct GemmTableWeights {
  int count = 0;
  std::array<int, 8> index{};
  std::array<double, 8> weight{};
};
GemmTableWeights gemm_table_weights(const GemmEfficiencyTable& table, double m, double n, double k);

// How a GEMM task runs: `kernels` launches (its gemm_splits chunks when overlapped with TP
// communication, else 1) of `m` rows each (the batch folded into m), on `sm_share` of the SMs. The
// table lookup uses m, the kernel overhead counts once per kernel; duration and calibration agree.
struct GemmLaunch {
  double m = 0, kernels = 1, sm_share = 1;
};
GemmLaunch gemm_launch(const Task& task);

class CostModel {
 public:
  CostModel(const GpuSpec& gpu, Precision precision);

  // Seconds; 0 for communication tasks (their time is the backends' business).
  double duration(const Task& task) const;
  // Fraction of peak a GEMM of this shape reaches: trilinear interpolation of the table in
  // log2(m), log2(n), log2(k), clamped at the table's edges.
  double gemm_efficiency(double m, double n, double k) const;
  // The same for FP8 GEMMs (Task::fp8), from the GPU's fp8_gemm_efficiency table.
  double fp8_gemm_efficiency(double m, double n, double k) const;
  // Fraction of peak the fused (flash) attention kernel reaches, forward or backward: bilinear in
  // log2(seq), log2(head_dim) over the GPU's flash_attention_efficiency table, clamped at its edges;
  // 0 when the GPU has no table.
  double flash_attention_efficiency(double seq, double head_dim, bool backward) const;

  // The 16-bit (or the model's) tensor peak: FP8 training runs everything but its linears' GEMMs in
  // BF16, so this is the BF16 peak for precision FP8, and fp8_peak_flops() the FP8 one.
  double peak_flops() const { return peak_; }
  double fp8_peak_flops() const { return fp8_peak_; }
  double memory_bandwidth() const { return bandwidth_; }
  // FLOP/s of elementwise work (the FP32 CUDA-core peak, at most the tensor peak).
  double vector_peak_flops() const { return vector_peak_; }

 private:
  GemmEfficiencyTable table_, fp8_table_;
  AttentionEfficiencyTable attention_table_;
  double peak_, fp8_peak_, bandwidth_, memory_efficiency_, overhead_s_;
  double vector_peak_;
};

// Sum of compute durations of each representative rank's tasks, in ranks() order.
std::vector<double> compute_time_per_rank(const JobGraph& graph, const CostModel& cost);

}  // namespace parallax::model
