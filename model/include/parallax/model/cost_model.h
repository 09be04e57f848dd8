// Compute cost model (DESIGN.md §3): the duration of a compute task on one GPU is the roofline
// max(FLOPs / (peak * efficiency(m, n, k)), bytes / (HBM bandwidth * memory efficiency)) plus a fixed
// kernel overhead. The GEMM efficiency comes from the GPU's table, never from a per-scenario factor.
#pragma once

#include "parallax/model/job_graph.h"

namespace parallax::model {

class CostModel {
 public:
  CostModel(const GpuSpec& gpu, Precision precision);

  // Seconds; 0 for communication tasks (their time is the backends' business).
  double duration(const Task& task) const;
  // Fraction of peak a GEMM of this shape reaches: trilinear interpolation of the table in
  // log2(m), log2(n), log2(k), clamped at the table's edges.
  double gemm_efficiency(double m, double n, double k) const;

  double peak_flops() const { return peak_; }
  double memory_bandwidth() const { return bandwidth_; }

 private:
  GemmEfficiencyTable table_;
  double peak_, bandwidth_, memory_efficiency_, overhead_s_;
  double vector_peak_;
};

// Sum of compute durations of each representative rank's tasks, in ranks() order.
std::vector<double> compute_time_per_rank(const JobGraph& graph, const CostModel& cost);

}  // namespace parallax::model
