#include "parallax/model/formulas.h"

#include <algorithm>

namespace parallax::model::formulas {

namespace {

// The GPT layer of the closed forms from the literature: multi-head attention of h / a per head,
// GeLU, LayerNorm, unfused attention, learned positions, biases. Their formulas are kept for it as
// written (the general ones below equal them there, up to rounding).
bool gpt_layer(const Dims& d) {
  return (d.g == 0 || d.g == d.a) && (d.hd == 0 || d.hd * d.a == d.h) && d.activation == ModelSpec::GELU &&
         d.normalization == ModelSpec::LAYERNORM && d.attention == ModelSpec::UNFUSED &&
         d.positions == ModelSpec::LEARNED && d.bias;
}

std::int64_t groups(const Dims& d) { return d.g > 0 ? d.g : d.a; }
std::int64_t head_dim(const Dims& d) { return d.hd > 0 ? d.hd : d.h / d.a; }
double vocab(const Dims& d) { return static_cast<double>(d.Vp > 0 ? d.Vp : d.V); }
double fc1_width(const Dims& d) { return (d.activation == ModelSpec::SWIGLU ? 2.0 : 1.0) * static_cast<double>(d.f); }

// Weights of one layer's matmuls: QKV h (a + 2g) d_h, projection a d_h h, FC1 h f1 (f1 = 2f for
// SwiGLU's fused gate and up), FC2 f h.
double layer_matmul_parameters(const Dims& d) {
  const double h = d.h, a = d.a, g = groups(d), dh = head_dim(d), f = d.f;
  return h * (a + 2 * g) * dh + a * dh * h + h * fc1_width(d) + f * h;
}

// Forward FLOPs of one layer's attention core per token: QK^T and PV, 2 s d_h each per head; the
// causal (flash) kernel computes half of them.
double attention_forward_flops_per_token(const Dims& d) {
  const double full = 4.0 * d.s * static_cast<double>(d.a) * head_dim(d);
  return d.attention != ModelSpec::UNFUSED ? full / 2 : full;
}

}  // namespace

double parameters(const Dims& d) {
  const double L = d.L, h = d.h, V = d.V, s = d.s;
  if (gpt_layer(d)) return 12.0 * L * h * h * (1.0 + 13.0 / (12.0 * h) + (V + s) / (12.0 * L * h));
  // P = L (matmul weights + biases + two norms) + word embedding (+ an untied output layer) +
  // learned positions + the final norm.
  const double a = d.a, g = groups(d), dh = head_dim(d);
  const double norm = d.normalization == ModelSpec::RMSNORM ? h : 2 * h;
  const double biases = d.bias ? (a + 2 * g) * dh + h + fc1_width(d) + h : 0.0;
  const double per_layer = layer_matmul_parameters(d) + biases + 2 * norm;
  return L * per_layer + vocab(d) * h * (d.tied ? 1.0 : 2.0) +
         (d.positions == ModelSpec::LEARNED ? s * h : 0.0) + norm;
}

double model_flops_per_token(const Dims& d) {
  // 6 N over the matmul weights (forward 2, backward 4 FLOPs per weight per token), the output
  // layer included, plus the attention core three times its forward: causal flash attention
  // 6 L s a d_h, unfused (the full s x s) 12 L s a d_h.
  const double matmul_weights = d.L * layer_matmul_parameters(d) + vocab(d) * d.h;
  return 6.0 * matmul_weights + 3.0 * d.L * attention_forward_flops_per_token(d);
}

double flops_per_iteration(const Dims& d, bool full_recompute) {
  const double B = d.B, s = d.s, L = d.L, h = d.h, V = d.V;
  if (gpt_layer(d)) {
    if (full_recompute) return 96.0 * B * s * L * h * h * (1.0 + s / (6.0 * h) + V / (16.0 * L * h));
    return 72.0 * B * s * L * h * h * (1.0 + s / (6.0 * h) + V / (12.0 * L * h));
  }
  // Full recompute runs each layer's forward once more (the output layer is not recomputed).
  const double recompute = full_recompute ? L * (2.0 * layer_matmul_parameters(d) + attention_forward_flops_per_token(d)) : 0.0;
  return B * s * (model_flops_per_token(d) + recompute);
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
