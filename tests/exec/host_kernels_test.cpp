// The host kernels of modern layers (parallax/exec/host_kernels.h) against their FP64 references on
// small and odd shapes (not multiples of the flash attention tiles), causal and not, grouped-query
// attention with 1, 2 and 4 query heads per kv head; the references themselves against hand-computed
// values and finite differences of their forwards; and the comparison that --verify uses.
#include "parallax/exec/host_kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

namespace parallax::exec::host {
namespace {

std::vector<float> random_values(std::size_t n, std::uint64_t seed) {
  std::vector<float> v(n);
  fill_random(v.data(), n, seed);
  return v;
}

void expect_close(const std::vector<float>& got, const std::vector<double>& want, Tolerance tolerance,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  const auto m = first_mismatch(got.data(), want.data(), want.size(), tolerance);
  EXPECT_FALSE(m.found) << what << ": element " << m.index << " is " << m.got << ", reference " << m.want
                        << " (allowed " << m.allowed << ")";
}

// d/dx_i of sum(out(x) * dout) by central differences, in double over float inputs (the step is a
// power of two, so x_i +- h is exact for |x_i| < 1).
double numeric_derivative(std::vector<float>& x, std::size_t i, const std::function<double()>& loss) {
  const float h = 1.0f / 1024, saved = x[i];
  x[i] = saved + h;
  const double plus = loss();
  x[i] = saved - h;
  const double minus = loss();
  x[i] = saved;
  return (plus - minus) / (2.0 * h);
}

double dot(const std::vector<double>& a, const std::vector<float>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// ---- the comparison --verify uses ----

TEST(HostKernels, ComparisonFindsTheFirstWrongElementAndAcceptsRounding) {
  const std::vector<double> want{1.0, -2.0, 100.0, 0.0};
  std::vector<float> got{1.0f, -2.0f, 100.0f, 0.0f};
  EXPECT_FALSE(first_mismatch(got.data(), want.data(), 4, kElementwiseTolerance).found);
  got[1] = std::nextafter(-2.0f, 0.0f);  // one FP32 ulp
  EXPECT_FALSE(first_mismatch(got.data(), want.data(), 4, kElementwiseTolerance).found);
  got[3] = 0.01f;  // beyond 1e-6 x max |want| = 1e-4
  const auto m = first_mismatch(got.data(), want.data(), 4, kElementwiseTolerance);
  ASSERT_TRUE(m.found);
  EXPECT_EQ(m.index, 3u);
  got[3] = std::nanf("");
  EXPECT_TRUE(first_mismatch(got.data(), want.data(), 4, kElementwiseTolerance).found);
  // Only the listed indices are compared.
  EXPECT_FALSE(first_mismatch(got.data(), want.data(), 4, kElementwiseTolerance, {0, 1, 2}).found);
}

TEST(HostKernels, RandomInputsAreDeterministicAndInRange) {
  const auto a = random_values(1000, 7), b = random_values(1000, 7), c = random_values(1000, 8);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  for (float v : a) {
    EXPECT_GE(v, -1.0f);
    EXPECT_LT(v, 1.0f);
  }
}

// ---- RMSNorm ----

TEST(HostKernels, RmsNormMatchesTheReference) {
  for (auto [rows, cols] : {std::pair<std::size_t, std::size_t>{1, 1}, {7, 37}, {33, 256}}) {
    SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(cols));
    const auto x = random_values(rows * cols, 1), w = random_values(cols, 2), dy = random_values(rows * cols, 3);
    std::vector<float> y(rows * cols), inv(rows), dx(rows * cols), dw(cols);
    rms_norm_forward(x.data(), w.data(), y.data(), inv.data(), rows, cols, 1e-5f);
    std::vector<double> want(rows * cols), want_dw(cols);
    reference::rms_norm_forward(x.data(), w.data(), want.data(), rows, cols, 1e-5);
    expect_close(y, want, kElementwiseTolerance, "y");
    rms_norm_backward(x.data(), w.data(), inv.data(), dy.data(), dx.data(), dw.data(), rows, cols);
    reference::rms_norm_backward(x.data(), w.data(), dy.data(), want.data(), want_dw.data(), rows, cols, 1e-5);
    expect_close(dx, want, kElementwiseTolerance, "dx");
    expect_close(dw, want_dw, kElementwiseTolerance, "dweight");
  }
}

TEST(HostKernels, RmsNormReferenceIsUnitRmsAndItsGradientMatchesFiniteDifferences) {
  const std::size_t rows = 3, cols = 5;
  auto x = random_values(rows * cols, 4);
  auto w = random_values(cols, 5);
  const auto dy = random_values(rows * cols, 6);
  const std::vector<float> ones(cols, 1.0f);
  std::vector<double> y(rows * cols);
  reference::rms_norm_forward(x.data(), ones.data(), y.data(), rows, cols, 0.0);
  for (std::size_t r = 0; r < rows; ++r) {
    double sum = 0;
    for (std::size_t c = 0; c < cols; ++c) sum += y[r * cols + c] * y[r * cols + c];
    EXPECT_NEAR(sum / cols, 1.0, 1e-12);
  }
  auto loss = [&] {
    reference::rms_norm_forward(x.data(), w.data(), y.data(), rows, cols, 1e-5);
    double s = 0;
    for (std::size_t i = 0; i < y.size(); ++i) s += y[i] * dy[i];
    return s;
  };
  std::vector<double> dx(rows * cols), dw(cols);
  reference::rms_norm_backward(x.data(), w.data(), dy.data(), dx.data(), dw.data(), rows, cols, 1e-5);
  for (std::size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(dx[i], numeric_derivative(x, i, loss), 1e-4) << "dx " << i;
  for (std::size_t c = 0; c < cols; ++c) EXPECT_NEAR(dw[c], numeric_derivative(w, c, loss), 1e-4) << "dw " << c;
}

// ---- RoPE ----

TEST(HostKernels, RopeMatchesTheReferenceAndItsBackwardInvertsIt) {
  RopeShape s;
  s.rows = 13;  // positions wrap at seq 5
  s.seq = 5;
  s.head_dim = 6;
  s.cols = 18;  // three heads
  const auto x = random_values(s.rows * s.cols, 9);
  std::vector<float> y(x.size()), back(x.size());
  std::vector<double> want(x.size());
  rope_forward(s, x.data(), y.data());
  reference::rope_forward(s, x.data(), want.data());
  expect_close(y, want, kElementwiseTolerance, "rope forward");
  rope_backward(s, y.data(), back.data());
  reference::rope_backward(s, y.data(), want.data());
  expect_close(back, want, kElementwiseTolerance, "rope backward");
  std::vector<double> original(x.begin(), x.end());
  expect_close(back, original, kElementwiseTolerance, "rope backward of forward");
  // Position 0 is the identity; other positions rotate each pair (i, i + 3), keeping its length.
  for (std::size_t c = 0; c < s.cols; ++c) EXPECT_EQ(y[c], x[c]);
  EXPECT_NE(y[s.cols + 0], x[s.cols + 0]);
  for (std::size_t r = 0; r < s.rows; ++r)
    for (std::size_t h = 0; h < 3; ++h)
      for (std::size_t i = 0; i < 3; ++i) {
        const std::size_t a = r * s.cols + h * 6 + i, b = a + 3;
        EXPECT_NEAR(std::hypot(y[a], y[b]), std::hypot(x[a], x[b]), 1e-6);
      }
  // Pair 0 turns by the position in radians (theta^0 = 1): row 1 (position 1) by exactly 1 radian.
  const std::size_t a = s.cols, b = s.cols + 3;
  EXPECT_NEAR(y[a], x[a] * std::cos(1.0) - x[b] * std::sin(1.0), 1e-6);
}

TEST(HostKernels, RopeKeepsItsAnglesExactAtLongPositions) {
  // Position 100000 x frequency 1: a float angle would be off by ~4e-3 radians.
  RopeShape s;
  s.rows = 100001;
  s.seq = 200000;
  s.head_dim = 2;
  s.cols = 2;
  std::vector<float> x(s.rows * 2, 0.0f), y(x.size());
  x[100000 * 2] = 1.0f;
  rope_forward(s, x.data(), y.data());
  EXPECT_NEAR(y[100000 * 2], std::cos(100000.0), 1e-6);
  EXPECT_NEAR(y[100000 * 2 + 1], std::sin(100000.0), 1e-6);
}

// ---- SwiGLU and squared ReLU ----

TEST(HostKernels, SwigluMatchesTheReferenceAndFiniteDifferences) {
  const std::size_t n = 1001;
  auto gate = random_values(n, 10), up = random_values(n, 11);
  for (auto& g : gate) g *= 8;  // both tails of the sigmoid
  const auto dout = random_values(n, 12);
  std::vector<float> out(n), dgate(n), dup(n);
  std::vector<double> want(n), want_dgate(n), want_dup(n);
  swiglu_forward(gate.data(), up.data(), out.data(), n);
  reference::swiglu_forward(gate.data(), up.data(), want.data(), n);
  expect_close(out, want, kElementwiseTolerance, "swiglu forward");
  swiglu_backward(gate.data(), up.data(), dout.data(), dgate.data(), dup.data(), n);
  reference::swiglu_backward(gate.data(), up.data(), dout.data(), want_dgate.data(), want_dup.data(), n);
  expect_close(dgate, want_dgate, kElementwiseTolerance, "swiglu dgate");
  expect_close(dup, want_dup, kElementwiseTolerance, "swiglu dup");
  auto loss = [&] {
    reference::swiglu_forward(gate.data(), up.data(), want.data(), n);
    return dot(want, dout);
  };
  for (std::size_t i = 0; i < n; i += 97) {
    EXPECT_NEAR(want_dgate[i], numeric_derivative(gate, i, loss), 1e-4) << i;
    EXPECT_NEAR(want_dup[i], numeric_derivative(up, i, loss), 1e-4) << i;
  }
  // silu(0) = 0, silu(large) = large.
  const std::vector<float> g{0.0f, 30.0f}, u{1.0f, 1.0f};
  std::vector<float> o(2);
  swiglu_forward(g.data(), u.data(), o.data(), 2);
  EXPECT_EQ(o[0], 0.0f);
  EXPECT_NEAR(o[1], 30.0f, 1e-5);
}

TEST(HostKernels, SquaredReluMatchesTheReference) {
  const std::size_t n = 517;
  const auto x = random_values(n, 13), dy = random_values(n, 14);
  std::vector<float> y(n), dx(n);
  std::vector<double> want(n);
  squared_relu_forward(x.data(), y.data(), n);
  reference::squared_relu_forward(x.data(), want.data(), n);
  expect_close(y, want, kElementwiseTolerance, "squared relu forward");
  squared_relu_backward(x.data(), dy.data(), dx.data(), n);
  reference::squared_relu_backward(x.data(), dy.data(), want.data(), n);
  expect_close(dx, want, kElementwiseTolerance, "squared relu backward");
  const std::vector<float> v{-2.0f, 0.0f, 3.0f};
  std::vector<float> r(3);
  squared_relu_forward(v.data(), r.data(), 3);
  EXPECT_EQ(r, (std::vector<float>{0.0f, 0.0f, 9.0f}));
}

// ---- Flash attention ----

struct AttentionCase {
  std::size_t batch, kv_heads, group, seq_q, seq_k, head_dim;
  bool causal;
};

std::string describe(const AttentionCase& c) {
  return "b" + std::to_string(c.batch) + " kv" + std::to_string(c.kv_heads) + " group" + std::to_string(c.group) +
         " sq" + std::to_string(c.seq_q) + " sk" + std::to_string(c.seq_k) + " d" + std::to_string(c.head_dim) +
         (c.causal ? " causal" : " full");
}

class FlashAttention : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(FlashAttention, ForwardAndBackwardMatchTheFp64Reference) {
  const AttentionCase& c = GetParam();
  AttentionShape s;
  s.batch = c.batch;
  s.kv_heads = c.kv_heads;
  s.heads = c.kv_heads * c.group;
  s.seq_q = c.seq_q;
  s.seq_k = c.seq_k;
  s.head_dim = c.head_dim;
  s.causal = c.causal;
  auto q = random_values(s.q_values(), 20), k = random_values(s.kv_values(), 21), v = random_values(s.kv_values(), 22);
  // Larger scores than uniform [-1, 1) inputs give (a peaked softmax tests the running max).
  for (auto& x : q) x *= 3;
  const auto dout = random_values(s.q_values(), 23);
  std::vector<float> o(s.q_values()), lse(s.rows()), dq(s.q_values()), dk(s.kv_values()), dv(s.kv_values());
  flash_attention_forward(s, q.data(), k.data(), v.data(), o.data(), lse.data());
  flash_attention_backward(s, q.data(), k.data(), v.data(), o.data(), lse.data(), dout.data(), dq.data(), dk.data(),
                           dv.data());
  std::vector<double> ro(s.q_values()), rlse(s.rows()), rdq(s.q_values()), rdk(s.kv_values()), rdv(s.kv_values());
  for (std::size_t b = 0; b < s.batch; ++b)
    for (std::size_t h = 0; h < s.kv_heads; ++h) {
      reference::attention_forward(s, b, h, q.data(), k.data(), v.data(), ro.data(), rlse.data());
      reference::attention_backward(s, b, h, q.data(), k.data(), v.data(), dout.data(), rdq.data(), rdk.data(),
                                    rdv.data());
    }
  expect_close(o, ro, kAttentionTolerance, "O");
  expect_close(lse, rlse, kAttentionTolerance, "log-sum-exp");
  expect_close(dq, rdq, kAttentionTolerance, "dQ");
  expect_close(dk, rdk, kAttentionTolerance, "dK");
  expect_close(dv, rdv, kAttentionTolerance, "dV");
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, FlashAttention,
    ::testing::Values(
        // GQA groups 1, 2 and 4; sequences below, at and across the 64-query / 64-key tiles.
        AttentionCase{1, 1, 1, 1, 1, 8, true}, AttentionCase{2, 2, 1, 37, 37, 8, true},
        AttentionCase{2, 2, 2, 37, 37, 8, false}, AttentionCase{1, 2, 4, 64, 64, 16, true},
        AttentionCase{1, 1, 4, 130, 130, 12, true}, AttentionCase{2, 1, 2, 130, 130, 5, false},
        AttentionCase{1, 2, 2, 200, 200, 32, true},
        // Different query and key lengths: causal aligned at the end, and a full one.
        AttentionCase{1, 1, 2, 50, 90, 8, true}, AttentionCase{1, 2, 1, 90, 50, 8, false}),
    [](const ::testing::TestParamInfo<AttentionCase>& info) {
      std::string name = describe(info.param);
      for (auto& ch : name)
        if (ch == ' ') ch = '_';
      return name;
    });

TEST(HostKernels, AttentionReferenceMatchesAHandComputedCase) {
  // One head, head_dim 1 (scale 1), two tokens, causal. Query 0 sees key 0 only: o0 = v0. Query 1
  // has scores (1 x 0, 1 x ln 3) = (0, ln 3): softmax (1/4, 3/4), o1 = v0 / 4 + 3 v1 / 4.
  AttentionShape s;
  s.seq_q = s.seq_k = 2;
  const std::vector<float> q{5.0f, 1.0f}, k{0.0f, static_cast<float>(std::log(3.0))}, v{2.0f, 6.0f};
  std::vector<double> o(2), lse(2);
  reference::attention_forward(s, 0, 0, q.data(), k.data(), v.data(), o.data(), lse.data());
  EXPECT_NEAR(o[0], 2.0, 1e-12);
  EXPECT_NEAR(o[1], 0.25 * 2 + 0.75 * 6, 1e-6);
  EXPECT_NEAR(lse[0], 0.0, 1e-12);
  EXPECT_NEAR(lse[1], std::log(4.0), 1e-6);
  std::vector<float> fo(2), flse(2);
  flash_attention_forward(s, q.data(), k.data(), v.data(), fo.data(), flse.data());
  EXPECT_NEAR(fo[1], 5.0, 1e-5);
}

TEST(HostKernels, AttentionReferenceGradientMatchesFiniteDifferences) {
  AttentionShape s;
  s.batch = 1;
  s.kv_heads = 1;
  s.heads = 2;  // two query heads share the kv head: dK and dV sum over both
  s.seq_q = s.seq_k = 5;
  s.head_dim = 3;
  auto q = random_values(s.q_values(), 30), k = random_values(s.kv_values(), 31), v = random_values(s.kv_values(), 32);
  const auto dout = random_values(s.q_values(), 33);
  std::vector<double> o(s.q_values()), lse(s.rows()), dq(s.q_values()), dk(s.kv_values()), dv(s.kv_values());
  reference::attention_backward(s, 0, 0, q.data(), k.data(), v.data(), dout.data(), dq.data(), dk.data(), dv.data());
  auto loss = [&] {
    reference::attention_forward(s, 0, 0, q.data(), k.data(), v.data(), o.data(), lse.data());
    return dot(o, dout);
  };
  for (std::size_t i = 0; i < q.size(); ++i) EXPECT_NEAR(dq[i], numeric_derivative(q, i, loss), 1e-5) << "dq " << i;
  for (std::size_t i = 0; i < k.size(); ++i) EXPECT_NEAR(dk[i], numeric_derivative(k, i, loss), 1e-5) << "dk " << i;
  for (std::size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(dv[i], numeric_derivative(v, i, loss), 1e-5) << "dv " << i;
}

TEST(HostKernels, AWrongMaskOrHeadMappingIsOutsideTheAttentionTolerance) {
  // The tolerance must not hide real mistakes: non-causal output compared with the causal reference,
  // and kv heads swapped, both fail.
  AttentionShape s;
  s.batch = 1;
  s.kv_heads = 2;
  s.heads = 4;
  s.seq_q = s.seq_k = 70;
  s.head_dim = 8;
  const auto q = random_values(s.q_values(), 40), k = random_values(s.kv_values(), 41), v = random_values(s.kv_values(), 42);
  std::vector<double> ro(s.q_values()), rlse(s.rows());
  for (std::size_t h = 0; h < 2; ++h) reference::attention_forward(s, 0, h, q.data(), k.data(), v.data(), ro.data(), rlse.data());
  std::vector<float> o(s.q_values()), lse(s.rows());
  AttentionShape full = s;
  full.causal = false;
  flash_attention_forward(full, q.data(), k.data(), v.data(), o.data(), lse.data());
  EXPECT_TRUE(first_mismatch(o.data(), ro.data(), ro.size(), kAttentionTolerance).found);
  // Swap the two kv heads.
  std::vector<float> swapped(k.size()), vswapped(v.size());
  const std::size_t half = k.size() / 2;
  for (std::size_t i = 0; i < half; ++i) {
    swapped[i] = k[i + half], swapped[i + half] = k[i];
    vswapped[i] = v[i + half], vswapped[i + half] = v[i];
  }
  flash_attention_forward(s, q.data(), swapped.data(), vswapped.data(), o.data(), lse.data());
  EXPECT_TRUE(first_mismatch(o.data(), ro.data(), ro.size(), kAttentionTolerance).found);
}

}  // namespace
}  // namespace parallax::exec::host
