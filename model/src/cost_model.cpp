#include "parallax/model/cost_model.h"

#include "parallax/model/scenario.h"

#include <algorithm>
#include <cmath>

namespace parallax::model {
namespace {

// Position of log2(x) on an ascending axis: lower index and weight of the upper neighbour.
std::pair<int, double> locate(const google::protobuf::RepeatedField<std::int64_t>& axis, double x) {
  const int n = axis.size();
  if (n == 1 || x <= static_cast<double>(axis[0])) return {0, 0.0};
  if (x >= static_cast<double>(axis[n - 1])) return {n - 2, 1.0};
  int i = 0;
  while (static_cast<double>(axis[i + 1]) < x) ++i;
  const double lo = std::log2(static_cast<double>(axis[i])), hi = std::log2(static_cast<double>(axis[i + 1]));
  return {i, (std::log2(x) - lo) / (hi - lo)};
}

}  // namespace

CostModel::CostModel(const GpuSpec& gpu, Precision precision)
    : table_(gpu.gemm_efficiency()),
      fp8_table_(gpu.fp8_gemm_efficiency()),
      attention_table_(gpu.flash_attention_efficiency()),
      // FP8 training: BF16 everywhere but the FP8 GEMMs.
      peak_(parallax::model::peak_flops(gpu, precision == FP8 ? BF16 : precision)),
      fp8_peak_(gpu.peak_fp8_tflops() * 1e12),
      bandwidth_(gpu.hbm_tb_per_s() * 1e12),
      memory_efficiency_(gpu.memory_bound_efficiency()),
      overhead_s_(gpu.kernel_overhead_us() * 1e-6) {
  const double fp32 = gpu.peak_fp32_tflops() * 1e12;
  vector_peak_ = fp32 > 0 ? std::min(fp32, peak_) : peak_;
}

GemmTableWeights gemm_table_weights(const GemmEfficiencyTable& table, double m, double n, double k) {
  const int nn = table.n_size(), nk = table.k_size();
  auto at = [&](int i, int j, int l) {
    // A one-point axis has no upper neighbour: clamp the index.
    i = std::min(i, table.m_size() - 1);
    j = std::min(j, nn - 1);
    l = std::min(l, nk - 1);
    return (i * nn + j) * nk + l;
  };
  const auto [i, wm] = locate(table.m(), m);
  const auto [j, wn] = locate(table.n(), n);
  const auto [l, wk] = locate(table.k(), k);
  GemmTableWeights out;
  for (int di = 0; di < 2; ++di)
    for (int dj = 0; dj < 2; ++dj)
      for (int dl = 0; dl < 2; ++dl) {
        const double w = (di ? wm : 1 - wm) * (dj ? wn : 1 - wn) * (dl ? wk : 1 - wk);
        if (w > 0) {
          out.index[static_cast<std::size_t>(out.count)] = at(i + di, j + dj, l + dl);
          out.weight[static_cast<std::size_t>(out.count)] = w;
          ++out.count;
        }
      }
  return out;
}

GemmLaunch gemm_launch(const Task& task) {
  GemmLaunch g;
  g.kernels = std::max<double>(1, task.gemm_splits);
  g.m = static_cast<double>(task.gemm_m) * std::max(1u, task.gemm_batch) / g.kernels;
  g.sm_share = static_cast<double>(task.sm_share);
  return g;
}

namespace {
double table_efficiency(const GemmEfficiencyTable& table, double m, double n, double k) {
  const GemmTableWeights w = gemm_table_weights(table, m, n, k);
  double e = 0;
  for (int c = 0; c < w.count; ++c)
    e += w.weight[static_cast<std::size_t>(c)] * table.efficiency(w.index[static_cast<std::size_t>(c)]);
  return e;
}
}  // namespace

double CostModel::gemm_efficiency(double m, double n, double k) const { return table_efficiency(table_, m, n, k); }

double CostModel::fp8_gemm_efficiency(double m, double n, double k) const {
  return table_efficiency(fp8_table_, m, n, k);
}

double CostModel::flash_attention_efficiency(double seq, double head_dim, bool backward) const {
  const AttentionEfficiencyTable& t = attention_table_;
  if (t.seq_size() == 0 || t.head_dim_size() == 0) return 0;
  const auto [i, ws] = locate(t.seq(), seq);
  const auto [j, wd] = locate(t.head_dim(), head_dim);
  const auto& values = backward ? t.backward() : t.forward();
  const int nd = t.head_dim_size();
  auto at = [&](int si, int di) {
    si = std::min(si, t.seq_size() - 1);
    di = std::min(di, nd - 1);
    return values.Get(si * nd + di);
  };
  return (1 - ws) * (1 - wd) * at(i, j) + (1 - ws) * wd * at(i, j + 1) + ws * (1 - wd) * at(i + 1, j) +
         ws * wd * at(i + 1, j + 1);
}

double CostModel::duration(const Task& task) const {
  if (!task.is_compute()) return 0.0;
  if (task.op == Op::FlashAttention) {
    // The fused kernel: its (causal) FLOPs at the fraction of peak the GPU's table gives for this
    // sequence length and head dimension (scenario validation refuses FLASH on a GPU without one).
    const double eff = flash_attention_efficiency(task.gemm_m, task.gemm_k, task.phase == BACKWARD);
    if (eff > 0) return task.flops / (peak_ * eff) + overhead_s_;
  }
  double compute = 0;
  double kernels = 1;
  if (task.kind == GEMM) {
    // A batched GEMM fills the GPU like one GEMM with the batch folded into m. Overlapped with TP
    // communication (JobGraph's kTpOverlapCommSms) it runs as chunks, each its own kernel, on the
    // share of the SMs the communication leaves (gemm_launch).
    const GemmLaunch g = gemm_launch(task);
    kernels = g.kernels;
    // Scenario validation refuses an FP8 model on a GPU without an FP8 peak and table.
    compute = task.fp8 ? task.flops / (fp8_peak_ * fp8_gemm_efficiency(g.m, task.gemm_n, task.gemm_k) * g.sm_share)
                       : task.flops / (peak_ * gemm_efficiency(g.m, task.gemm_n, task.gemm_k) * g.sm_share);
  } else {
    // Elementwise work runs on the CUDA cores (FP32 peak), not the tensor cores.
    compute = task.flops / vector_peak_;
  }
  const double memory = static_cast<double>(task.bytes) / (bandwidth_ * memory_efficiency_);
  return std::max(compute, memory) + kernels * overhead_s_;
}

std::vector<double> compute_time_per_rank(const JobGraph& graph, const CostModel& cost) {
  std::vector<double> out(graph.ranks().size(), 0.0);
  for (std::size_t r = 0; r < out.size(); ++r)
    for (auto id : graph.rank_tasks(r)) out[r] += cost.duration(graph.tasks()[id]);
  return out;
}

}  // namespace parallax::model
