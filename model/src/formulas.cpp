#include "parallax/model/formulas.h"

#include <algorithm>

namespace parallax::model::formulas {

double parameters(const Dims& d) {
  const double L = d.L, h = d.h, V = d.V, s = d.s;
  return 12.0 * L * h * h * (1.0 + 13.0 / (12.0 * h) + (V + s) / (12.0 * L * h));
}

double flops_per_iteration(const Dims& d, bool full_recompute) {
  const double B = d.B, s = d.s, L = d.L, h = d.h, V = d.V;
  if (full_recompute) return 96.0 * B * s * L * h * h * (1.0 + s / (6.0 * h) + V / (16.0 * L * h));
  return 72.0 * B * s * L * h * h * (1.0 + s / (6.0 * h) + V / (12.0 * L * h));
}

double bubble_fraction(const Dims& d) { return static_cast<double>(d.p - 1) / (d.v * d.m); }

double pipeline_time(const std::vector<double>& stage_time, std::int64_t m) {
  double slowest = 0, sum = 0;
  for (double t : stage_time) {
    slowest = std::max(slowest, t);
    sum += t;
  }
  return static_cast<double>(m - 1) * slowest + sum;
}

double bubble_fraction(const std::vector<double>& stage_time, std::int64_t m) {
  const double slowest = *std::max_element(stage_time.begin(), stage_time.end());
  return pipeline_time(stage_time, m) / (static_cast<double>(m) * slowest) - 1.0;
}

double activation_bytes_per_layer(const Dims& d, Layout::Recompute recompute) {
  const double s = d.s, b = d.b, h = d.h, a = d.a, t = d.t;
  const double sbh = s * b * h;
  switch (recompute) {
    case Layout::FULL:
      return d.sp ? 2.0 * sbh / t : 2.0 * sbh;
    case Layout::SELECTIVE:
      return d.sp ? sbh * 34.0 / t : sbh * (10.0 + 24.0 / t);
    case Layout::NO_RECOMPUTE:
    default:
      return d.sp ? sbh / t * (34.0 + 5.0 * a * s / h) : sbh * (10.0 + 24.0 / t + 5.0 * a * s / (h * t));
  }
}

double first_stage_layers_in_flight(const Dims& d, Layout::Schedule schedule) {
  const double L = d.L, p = d.p, v = d.v, m = d.m;
  switch (schedule) {
    case Layout::GPIPE:
      return L / p * m;
    case Layout::INTERLEAVED_1F1B:
      if (d.m == d.p) return L / p * m;  // Megatron runs every forward first when m == p
      return L * (1.0 + (p - 1.0) / (p * v));
    case Layout::ONE_F_ONE_B:
    default:
      return L / p * std::min(p, m);
  }
}

}  // namespace parallax::model::formulas
