// The host kernels of modern layers and their FP64 references (parallax/exec/host_kernels.h).
// Flash attention's block products are OpenBLAS SGEMMs (the host backend's GEMM path); everything
// else is plain loops the compiler vectorises.
#include "parallax/exec/host_kernels.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace parallax::exec::host {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// cos and sin of every (position, pair) angle, computed in double.
struct RopeTable {
  std::vector<float> cos, sin;  // [seq][head_dim / 2]
  explicit RopeTable(const RopeShape& s) {
    const std::size_t half = s.head_dim / 2;
    cos.resize(s.seq * half);
    sin.resize(s.seq * half);
    for (std::size_t pos = 0; pos < s.seq; ++pos)
      for (std::size_t i = 0; i < half; ++i) {
        const double angle = static_cast<double>(pos) *
                             std::pow(s.theta_base, -2.0 * static_cast<double>(i) / static_cast<double>(s.head_dim));
        cos[pos * half + i] = static_cast<float>(std::cos(angle));
        sin[pos * half + i] = static_cast<float>(std::sin(angle));
      }
  }
};

// Rotation by +angle (forward) or -angle (backward, the transpose).
void rope_apply(const RopeShape& s, const float* in, float* out, float direction) {
  const RopeTable table(s);
  const std::size_t half = s.head_dim / 2, heads = s.cols / s.head_dim;
  for (std::size_t r = 0; r < s.rows; ++r) {
    const float* c = table.cos.data() + (r % s.seq) * half;
    const float* sn = table.sin.data() + (r % s.seq) * half;
    for (std::size_t h = 0; h < heads; ++h) {
      const float* x = in + r * s.cols + h * s.head_dim;
      float* y = out + r * s.cols + h * s.head_dim;
      for (std::size_t i = 0; i < half; ++i) {
        const float x1 = x[i], x2 = x[i + half], sine = direction * sn[i];
        y[i] = x1 * c[i] - x2 * sine;
        y[i + half] = x2 * c[i] + x1 * sine;
      }
    }
  }
}

void rope_reference(const RopeShape& s, const float* in, double* out, double direction) {
  const std::size_t half = s.head_dim / 2, heads = s.cols / s.head_dim;
  for (std::size_t r = 0; r < s.rows; ++r)
    for (std::size_t h = 0; h < heads; ++h)
      for (std::size_t i = 0; i < half; ++i) {
        const double angle = static_cast<double>(r % s.seq) *
                             std::pow(s.theta_base, -2.0 * static_cast<double>(i) / static_cast<double>(s.head_dim));
        const std::size_t at = r * s.cols + h * s.head_dim + i;
        const double x1 = in[at], x2 = in[at + half], c = std::cos(angle), sn = direction * std::sin(angle);
        out[at] = x1 * c - x2 * sn;
        out[at + half] = x2 * c + x1 * sn;
      }
}

float sigmoid(float g) { return 1.0f / (1.0f + std::exp(-g)); }
double sigmoid(double g) { return 1.0 / (1.0 + std::exp(-g)); }

// The last key a query row may see: i + seq_k - seq_q when causal (as a signed number: it is negative
// for the first rows when seq_q > seq_k), else seq_k - 1.
std::ptrdiff_t last_key(const AttentionShape& s, std::size_t i) {
  if (!s.causal) return static_cast<std::ptrdiff_t>(s.seq_k) - 1;
  return static_cast<std::ptrdiff_t>(i + s.seq_k) - static_cast<std::ptrdiff_t>(s.seq_q);
}

}  // namespace

// ---- Elementwise kernels ----

void rms_norm_forward(const float* x, const float* weight, float* y, float* inv_rms, std::size_t rows,
                      std::size_t cols, float eps) {
  for (std::size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    double sum = 0;
    for (std::size_t c = 0; c < cols; ++c) sum += static_cast<double>(xr[c]) * xr[c];
    const float inv = static_cast<float>(1.0 / std::sqrt(sum / static_cast<double>(cols) + eps));
    inv_rms[r] = inv;
    for (std::size_t c = 0; c < cols; ++c) y[r * cols + c] = xr[c] * inv * weight[c];
  }
}

void rms_norm_backward(const float* x, const float* weight, const float* inv_rms, const float* dy, float* dx,
                       float* dweight, std::size_t rows, std::size_t cols) {
  std::vector<double> dw(cols, 0.0);
  for (std::size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    const float* dyr = dy + r * cols;
    const float inv = inv_rms[r];
    // dx = inv (g - x inv^2 mean(g x)) with g = weight dy.
    double dot = 0;
    for (std::size_t c = 0; c < cols; ++c) dot += static_cast<double>(weight[c]) * dyr[c] * xr[c];
    const float k = static_cast<float>(dot / static_cast<double>(cols)) * inv * inv;
    for (std::size_t c = 0; c < cols; ++c) {
      dx[r * cols + c] = inv * (weight[c] * dyr[c] - xr[c] * k);
      dw[c] += static_cast<double>(dyr[c]) * xr[c] * inv;
    }
  }
  for (std::size_t c = 0; c < cols; ++c) dweight[c] = static_cast<float>(dw[c]);
}

void rope_forward(const RopeShape& shape, const float* x, float* y) { rope_apply(shape, x, y, 1.0f); }
void rope_backward(const RopeShape& shape, const float* dy, float* dx) { rope_apply(shape, dy, dx, -1.0f); }

void swiglu_forward(const float* gate, const float* up, float* out, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) out[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

void swiglu_backward(const float* gate, const float* up, const float* dout, float* dgate, float* dup,
                     std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    const float g = gate[i], s = sigmoid(g), silu = g * s;
    dup[i] = dout[i] * silu;
    dgate[i] = dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
  }
}

void squared_relu_forward(const float* x, float* y, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    const float r = std::max(x[i], 0.0f);
    y[i] = r * r;
  }
}

void squared_relu_backward(const float* x, const float* dy, float* dx, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) dx[i] = 2.0f * std::max(x[i], 0.0f) * dy[i];
}

// ---- Flash attention ----

void flash_attention_forward(const AttentionShape& s, const float* q, const float* k, const float* v, float* o,
                             float* lse) {
  const std::size_t d = s.head_dim, group = s.heads / s.kv_heads;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  std::vector<float> scores(kBlockQ * kBlockK), acc(kBlockQ * d), row_max(kBlockQ), row_sum(kBlockQ);
  for (std::size_t b = 0; b < s.batch; ++b)
    for (std::size_t h = 0; h < s.heads; ++h) {
      const std::size_t kvh = h / group;
      const float* qh = q + (b * s.heads + h) * s.seq_q * d;
      const float* kh = k + (b * s.kv_heads + kvh) * s.seq_k * d;
      const float* vh = v + (b * s.kv_heads + kvh) * s.seq_k * d;
      float* oh = o + (b * s.heads + h) * s.seq_q * d;
      float* lh = lse + (b * s.heads + h) * s.seq_q;
      for (std::size_t i0 = 0; i0 < s.seq_q; i0 += kBlockQ) {
        const std::size_t bq = std::min(kBlockQ, s.seq_q - i0);
        std::fill(acc.begin(), acc.begin() + static_cast<std::ptrdiff_t>(bq * d), 0.0f);
        std::fill(row_max.begin(), row_max.end(), kNegInf);
        std::fill(row_sum.begin(), row_sum.end(), 0.0f);
        const std::ptrdiff_t block_last = last_key(s, i0 + bq - 1);  // the last key any row of the block sees
        for (std::size_t j0 = 0; j0 < s.seq_k && static_cast<std::ptrdiff_t>(j0) <= block_last; j0 += kBlockK) {
          const std::size_t bk = std::min(kBlockK, s.seq_k - j0);
          // S = scale Q_i K_j^T (bq x bk)
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(bq), static_cast<int>(bk),
                      static_cast<int>(d), scale, qh + i0 * d, static_cast<int>(d), kh + j0 * d, static_cast<int>(d),
                      0.0f, scores.data(), static_cast<int>(bk));
          for (std::size_t r = 0; r < bq; ++r) {
            float* sr = scores.data() + r * bk;
            const std::ptrdiff_t last = last_key(s, i0 + r);
            float block_max = kNegInf;
            for (std::size_t c = 0; c < bk; ++c) {
              if (static_cast<std::ptrdiff_t>(j0 + c) > last) sr[c] = kNegInf;
              block_max = std::max(block_max, sr[c]);
            }
            const float new_max = std::max(row_max[r], block_max);
            if (new_max == kNegInf) {  // nothing visible yet: P is all zero
              std::fill(sr, sr + bk, 0.0f);
              continue;
            }
            const float rescale = std::exp(row_max[r] - new_max);  // exp(-inf) = 0 on the first block
            float sum = 0;
            for (std::size_t c = 0; c < bk; ++c) {
              sr[c] = std::exp(sr[c] - new_max);
              sum += sr[c];
            }
            row_sum[r] = row_sum[r] * rescale + sum;
            row_max[r] = new_max;
            float* ar = acc.data() + r * d;
            for (std::size_t c = 0; c < d; ++c) ar[c] *= rescale;
          }
          // acc += P V_j (bq x d)
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(bq), static_cast<int>(d),
                      static_cast<int>(bk), 1.0f, scores.data(), static_cast<int>(bk), vh + j0 * d,
                      static_cast<int>(d), 1.0f, acc.data(), static_cast<int>(d));
        }
        for (std::size_t r = 0; r < bq; ++r) {
          const float l = row_sum[r];
          float* out = oh + (i0 + r) * d;
          if (l > 0) {
            for (std::size_t c = 0; c < d; ++c) out[c] = acc[r * d + c] / l;
            lh[i0 + r] = row_max[r] + std::log(l);
          } else {  // a query that sees no key (causal, seq_q > seq_k): zero output
            std::fill(out, out + d, 0.0f);
            lh[i0 + r] = kNegInf;
          }
        }
      }
    }
}

void flash_attention_backward(const AttentionShape& s, const float* q, const float* k, const float* v,
                              const float* o, const float* lse, const float* dout, float* dq, float* dk, float* dv) {
  const std::size_t d = s.head_dim, group = s.heads / s.kv_heads;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  // Delta = rowsum(dO o O) per query.
  std::vector<float> delta(s.rows());
  for (std::size_t r = 0; r < s.rows(); ++r) {
    float sum = 0;
    for (std::size_t c = 0; c < d; ++c) sum += dout[r * d + c] * o[r * d + c];
    delta[r] = sum;
  }
  std::fill(dq, dq + s.q_values(), 0.0f);
  std::vector<float> p(kBlockQ * kBlockK), dp(kBlockQ * kBlockK), dk_acc(kBlockK * d), dv_acc(kBlockK * d);
  for (std::size_t b = 0; b < s.batch; ++b)
    for (std::size_t kvh = 0; kvh < s.kv_heads; ++kvh) {
      const float* kh = k + (b * s.kv_heads + kvh) * s.seq_k * d;
      const float* vh = v + (b * s.kv_heads + kvh) * s.seq_k * d;
      for (std::size_t j0 = 0; j0 < s.seq_k; j0 += kBlockK) {
        const std::size_t bk = std::min(kBlockK, s.seq_k - j0);
        std::fill(dk_acc.begin(), dk_acc.end(), 0.0f);
        std::fill(dv_acc.begin(), dv_acc.end(), 0.0f);
        for (std::size_t h = kvh * group; h < (kvh + 1) * group; ++h) {
          const std::size_t head = b * s.heads + h;
          const float* qh = q + head * s.seq_q * d;
          const float* doh = dout + head * s.seq_q * d;
          const float* lh = lse + head * s.seq_q;
          const float* dh = delta.data() + head * s.seq_q;
          float* dqh = dq + head * s.seq_q * d;
          for (std::size_t i0 = 0; i0 < s.seq_q; i0 += kBlockQ) {
            const std::size_t bq = std::min(kBlockQ, s.seq_q - i0);
            if (last_key(s, i0 + bq - 1) < static_cast<std::ptrdiff_t>(j0)) continue;  // all masked
            const int ibq = static_cast<int>(bq), ibk = static_cast<int>(bk), id = static_cast<int>(d);
            // P = exp(scale Q_i K_j^T - lse)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ibq, ibk, id, scale, qh + i0 * d, id, kh + j0 * d,
                        id, 0.0f, p.data(), ibk);
            for (std::size_t r = 0; r < bq; ++r) {
              const std::ptrdiff_t last = last_key(s, i0 + r);
              const float l = lh[i0 + r];
              for (std::size_t c = 0; c < bk; ++c)
                p[r * bk + c] = static_cast<std::ptrdiff_t>(j0 + c) > last || l == kNegInf
                                    ? 0.0f
                                    : std::exp(p[r * bk + c] - l);
            }
            // dV_j += P^T dO_i
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ibk, id, ibq, 1.0f, p.data(), ibk, doh + i0 * d, id,
                        1.0f, dv_acc.data(), id);
            // dP = dO_i V_j^T; dS = P (dP - Delta)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ibq, ibk, id, 1.0f, doh + i0 * d, id, vh + j0 * d,
                        id, 0.0f, dp.data(), ibk);
            for (std::size_t r = 0; r < bq; ++r)
              for (std::size_t c = 0; c < bk; ++c) dp[r * bk + c] = p[r * bk + c] * (dp[r * bk + c] - dh[i0 + r]);
            // dQ_i += scale dS K_j; dK_j += scale dS^T Q_i
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ibq, id, ibk, scale, dp.data(), ibk, kh + j0 * d,
                        id, 1.0f, dqh + i0 * d, id);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ibk, id, ibq, scale, dp.data(), ibk, qh + i0 * d, id,
                        1.0f, dk_acc.data(), id);
          }
        }
        float* dkh = dk + ((b * s.kv_heads + kvh) * s.seq_k + j0) * d;
        float* dvh = dv + ((b * s.kv_heads + kvh) * s.seq_k + j0) * d;
        std::copy(dk_acc.begin(), dk_acc.begin() + static_cast<std::ptrdiff_t>(bk * d), dkh);
        std::copy(dv_acc.begin(), dv_acc.begin() + static_cast<std::ptrdiff_t>(bk * d), dvh);
      }
    }
}

// ---- FP64 references ----
namespace reference {

void rms_norm_forward(const float* x, const float* weight, double* y, std::size_t rows, std::size_t cols, double eps) {
  for (std::size_t r = 0; r < rows; ++r) {
    double sum = 0;
    for (std::size_t c = 0; c < cols; ++c) sum += static_cast<double>(x[r * cols + c]) * x[r * cols + c];
    const double rms = std::sqrt(sum / static_cast<double>(cols) + eps);
    for (std::size_t c = 0; c < cols; ++c) y[r * cols + c] = x[r * cols + c] / rms * weight[c];
  }
}

void rms_norm_backward(const float* x, const float* weight, const float* dy, double* dx, double* dweight,
                       std::size_t rows, std::size_t cols, double eps) {
  // y_c = w_c x_c / rms;  d rms / d x_j = x_j / (n rms);  dx_j = w_j dy_j / rms - x_j sum_c(w_c dy_c x_c) / (n rms^3)
  std::fill(dweight, dweight + cols, 0.0);
  const double n = static_cast<double>(cols);
  for (std::size_t r = 0; r < rows; ++r) {
    double sum = 0, dot = 0;
    for (std::size_t c = 0; c < cols; ++c) {
      const double xc = x[r * cols + c];
      sum += xc * xc;
      dot += static_cast<double>(weight[c]) * dy[r * cols + c] * xc;
    }
    const double rms = std::sqrt(sum / n + eps);
    for (std::size_t c = 0; c < cols; ++c) {
      const double xc = x[r * cols + c], dyc = dy[r * cols + c];
      dx[r * cols + c] = weight[c] * dyc / rms - xc * dot / (n * rms * rms * rms);
      dweight[c] += dyc * xc / rms;
    }
  }
}

void rope_forward(const RopeShape& shape, const float* x, double* y) { rope_reference(shape, x, y, 1.0); }
void rope_backward(const RopeShape& shape, const float* dy, double* dx) { rope_reference(shape, dy, dx, -1.0); }

void swiglu_forward(const float* gate, const float* up, double* out, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) out[i] = gate[i] * sigmoid(static_cast<double>(gate[i])) * up[i];
}

void swiglu_backward(const float* gate, const float* up, const float* dout, double* dgate, double* dup,
                     std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    const double g = gate[i], s = sigmoid(g);
    dup[i] = dout[i] * g * s;
    // d/dg (g s(g)) = s + g s (1 - s)
    dgate[i] = static_cast<double>(dout[i]) * up[i] * (s + g * s * (1 - s));
  }
}

void squared_relu_forward(const float* x, double* y, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) y[i] = x[i] > 0 ? static_cast<double>(x[i]) * x[i] : 0.0;
}

void squared_relu_backward(const float* x, const float* dy, double* dx, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) dx[i] = x[i] > 0 ? 2.0 * x[i] * dy[i] : 0.0;
}

namespace {

// The softmax probabilities of one query head, seq_q x seq_k, in double (masked entries 0).
std::vector<double> probabilities(const AttentionShape& s, const float* qh, const float* kh, std::vector<double>* lse) {
  const std::size_t d = s.head_dim;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  std::vector<double> p(s.seq_q * s.seq_k, 0.0);
  for (std::size_t i = 0; i < s.seq_q; ++i) {
    const std::ptrdiff_t last = last_key(s, i);
    double max = -std::numeric_limits<double>::infinity();
    for (std::size_t j = 0; j < s.seq_k && static_cast<std::ptrdiff_t>(j) <= last; ++j) {
      double dot = 0;
      for (std::size_t c = 0; c < d; ++c) dot += static_cast<double>(qh[i * d + c]) * kh[j * d + c];
      p[i * s.seq_k + j] = dot * scale;
      max = std::max(max, dot * scale);
    }
    double sum = 0;
    for (std::size_t j = 0; j < s.seq_k && static_cast<std::ptrdiff_t>(j) <= last; ++j) {
      p[i * s.seq_k + j] = std::exp(p[i * s.seq_k + j] - max);
      sum += p[i * s.seq_k + j];
    }
    for (std::size_t j = 0; j < s.seq_k && static_cast<std::ptrdiff_t>(j) <= last; ++j) p[i * s.seq_k + j] /= sum;
    if (lse) (*lse)[i] = sum > 0 ? max + std::log(sum) : -std::numeric_limits<double>::infinity();
  }
  return p;
}

}  // namespace

void attention_forward(const AttentionShape& s, std::size_t b, std::size_t kvh, const float* q, const float* k,
                       const float* v, double* o, double* lse) {
  const std::size_t d = s.head_dim, group = s.heads / s.kv_heads;
  const float* kh = k + (b * s.kv_heads + kvh) * s.seq_k * d;
  const float* vh = v + (b * s.kv_heads + kvh) * s.seq_k * d;
  std::vector<double> row_lse(s.seq_q);
  for (std::size_t h = kvh * group; h < (kvh + 1) * group; ++h) {
    const std::size_t head = b * s.heads + h;
    const auto p = probabilities(s, q + head * s.seq_q * d, kh, &row_lse);
    std::vector<double> row(d);
    for (std::size_t i = 0; i < s.seq_q; ++i) {
      std::fill(row.begin(), row.end(), 0.0);
      for (std::size_t j = 0; j < s.seq_k; ++j)
        for (std::size_t c = 0; c < d; ++c) row[c] += p[i * s.seq_k + j] * vh[j * d + c];
      std::copy(row.begin(), row.end(), o + (head * s.seq_q + i) * d);
      lse[head * s.seq_q + i] = row_lse[i];
    }
  }
}

void attention_backward(const AttentionShape& s, std::size_t b, std::size_t kvh, const float* q, const float* k,
                        const float* v, const float* dout, double* dq, double* dk, double* dv) {
  const std::size_t d = s.head_dim, group = s.heads / s.kv_heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  const float* kh = k + (b * s.kv_heads + kvh) * s.seq_k * d;
  const float* vh = v + (b * s.kv_heads + kvh) * s.seq_k * d;
  double* dkh = dk + (b * s.kv_heads + kvh) * s.seq_k * d;
  double* dvh = dv + (b * s.kv_heads + kvh) * s.seq_k * d;
  std::fill(dkh, dkh + s.seq_k * d, 0.0);
  std::fill(dvh, dvh + s.seq_k * d, 0.0);
  std::vector<double> ds(s.seq_q * s.seq_k);
  for (std::size_t h = kvh * group; h < (kvh + 1) * group; ++h) {
    const std::size_t head = b * s.heads + h;
    const float* qh = q + head * s.seq_q * d;
    const float* doh = dout + head * s.seq_q * d;
    const auto p = probabilities(s, qh, kh, nullptr);
    // dP = dO V^T; dS = P (dP - sum_j P dP) (the softmax Jacobian)
    for (std::size_t i = 0; i < s.seq_q; ++i) {
      double row = 0;
      for (std::size_t j = 0; j < s.seq_k; ++j) {
        double dp = 0;
        for (std::size_t c = 0; c < d; ++c) dp += static_cast<double>(doh[i * d + c]) * vh[j * d + c];
        ds[i * s.seq_k + j] = dp;
        row += p[i * s.seq_k + j] * dp;
      }
      for (std::size_t j = 0; j < s.seq_k; ++j) ds[i * s.seq_k + j] = p[i * s.seq_k + j] * (ds[i * s.seq_k + j] - row);
    }
    // Row-major walks (i outer, then j, then c): these loops cost seq^2 d each.
    std::vector<double> row(d);
    for (std::size_t i = 0; i < s.seq_q; ++i) {
      std::fill(row.begin(), row.end(), 0.0);
      for (std::size_t j = 0; j < s.seq_k; ++j) {
        const double dsij = ds[i * s.seq_k + j], pij = p[i * s.seq_k + j];
        for (std::size_t c = 0; c < d; ++c) {
          row[c] += dsij * kh[j * d + c];
          dkh[j * d + c] += scale * dsij * qh[i * d + c];
          dvh[j * d + c] += pij * doh[i * d + c];
        }
      }
      for (std::size_t c = 0; c < d; ++c) dq[(head * s.seq_q + i) * d + c] = scale * row[c];
    }
  }
}

}  // namespace reference

// ---- Comparison and inputs ----

Mismatch first_mismatch(const float* got, const double* want, std::size_t count, Tolerance tolerance,
                        const std::vector<std::size_t>& indices) {
  const bool all = indices.empty();
  const std::size_t n = all ? count : indices.size();
  double max_abs = 0;
  for (std::size_t k = 0; k < n; ++k) max_abs = std::max(max_abs, std::abs(want[all ? k : indices[k]]));
  Mismatch m;
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t i = all ? k : indices[k];
    const double allowed = tolerance.relative * std::abs(want[i]) + tolerance.absolute * std::max(max_abs, 1.0);
    // Written so that a NaN fails.
    if (!(std::abs(static_cast<double>(got[i]) - want[i]) <= allowed)) {
      m.found = true;
      m.index = i;
      m.got = got[i];
      m.want = want[i];
      m.allowed = allowed;
      return m;
    }
  }
  return m;
}

void fill_random(float* values, std::size_t count, std::uint64_t seed) {
  for (std::size_t i = 0; i < count; ++i) {
    std::uint64_t z = (seed << 40) + i + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    values[i] = static_cast<float>(static_cast<double>(z >> 40) / static_cast<double>(1ull << 23) - 1.0);
  }
}

}  // namespace parallax::exec::host
