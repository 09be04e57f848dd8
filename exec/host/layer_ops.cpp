#include "layer_ops.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace parallax::exec {
namespace {

// Seeds of the input tensors (host::fill_random): fixed, so every run and every rank computes on the
// same values, and a failure reproduces.
enum Seed : std::uint64_t { kSeedA = 11, kSeedB, kSeedDy, kSeedWeight, kSeedQ, kSeedK, kSeedV, kSeedDo };

std::string number(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.9g", v);
  return text;
}

// The (batch, kv head) groups --verify recomputes in FP64: the first and the last. The reference
// costs as much as the kernel again per group in double loops; two groups bound it while covering
// both ends of the batch and head layout (a wrong head or batch offset shows in either).
std::vector<std::pair<std::size_t, std::size_t>> checked_groups(const host::AttentionShape& s) {
  std::vector<std::pair<std::size_t, std::size_t>> groups{{0, 0}};
  if (s.batch > 1 || s.kv_heads > 1) groups.emplace_back(s.batch - 1, s.kv_heads - 1);
  return groups;
}

// Indices of the query-layout (q, o, dq) and kv-layout (dk, dv) values of those groups.
void group_indices(const host::AttentionShape& s, std::vector<std::size_t>& q_index, std::vector<std::size_t>& kv_index,
                   std::vector<std::size_t>* lse_index) {
  const std::size_t group = s.heads / s.kv_heads;
  for (auto [b, kvh] : checked_groups(s)) {
    for (std::size_t h = kvh * group; h < (kvh + 1) * group; ++h) {
      const std::size_t head = b * s.heads + h;
      for (std::size_t e = 0; e < s.seq_q * s.head_dim; ++e) q_index.push_back(head * s.seq_q * s.head_dim + e);
      if (lse_index)
        for (std::size_t r = 0; r < s.seq_q; ++r) lse_index->push_back(head * s.seq_q + r);
    }
    const std::size_t kv = b * s.kv_heads + kvh;
    for (std::size_t e = 0; e < s.seq_k * s.head_dim; ++e) kv_index.push_back(kv * s.seq_k * s.head_dim + e);
  }
}

std::optional<std::string> compare(const std::string& output, const float* got, const std::vector<double>& want,
                                   host::Tolerance tolerance, const std::vector<std::size_t>& indices = {}) {
  const auto m = host::first_mismatch(got, want.data(), want.size(), tolerance, indices);
  if (!m.found) return std::nullopt;
  return output + " element " + std::to_string(m.index) + " is " + number(m.got) + ", the FP64 reference " +
         number(m.want) + " (allowed difference " + number(m.allowed) + ")";
}

}  // namespace

host::AttentionShape LayerOps::attention_shape(const FlashAttentionShape& s) const {
  host::AttentionShape a;
  a.batch = s.batch;
  a.heads = s.heads;
  a.kv_heads = s.kv_heads;
  a.seq_q = a.seq_k = s.seq;
  a.head_dim = s.head_dim;
  a.causal = true;
  return a;
}

host::RopeShape LayerOps::rope_shape(const LayerOpShape& s) const {
  host::RopeShape r;
  r.rows = s.rows;
  r.cols = s.cols;
  r.seq = s.seq;
  r.head_dim = s.head_dim;
  return r;
}

std::string LayerOps::op_of(std::size_t i) const { return std::string(model::op_name(tasks_.at(i).op)); }

double LayerOps::plan(const model::JobGraph& graph, const RankPlan& plan, bool verify) {
  verify_ = verify;
  for (std::size_t i = 0; i < plan.tasks.size(); ++i) {
    const auto id = plan.tasks[i];
    const model::Task& t = graph.tasks()[id];
    if (!is_layer_kernel(t.op) || runs_measured_duration(t)) continue;
    Task task;
    task.op = t.op;
    if (t.op == model::Op::FlashAttention) {
      task.attention = true;
      task.attn = flash_attention_shape(graph, id, "plan");
      const auto a = attention_shape(task.attn);
      q_ = std::max(q_, a.q_values());
      kv_ = std::max(kv_, a.kv_values());
      q_rows_ = std::max(q_rows_, a.rows());
    } else {
      task.elem = layer_op_shape(graph, id, "plan");
      values_ = std::max<std::size_t>(values_, task.elem.values());
      cols_ = std::max<std::size_t>(cols_, task.elem.cols);
      rows_ = std::max<std::size_t>(rows_, task.elem.rows);
      if (t.op == model::Op::RmsNorm || t.op == model::Op::FinalRmsNorm) {
        norm_rows_ = std::max<std::size_t>(norm_rows_, task.elem.rows);
        norm_cols_ = task.elem.cols;
      }
    }
    tasks_.emplace(i, task);
  }
  // fp32: elementwise a, b, dy, y, y2 and the row and column vectors; attention q, o, do, dq (query
  // layout), k, v, dk, dv (kv layout), lse, and one saved o + lse per backward shape (bounded by one
  // more of each); the references' doubles while verifying.
  double floats = 5.0 * static_cast<double>(values_) + 2.0 * static_cast<double>(cols_) + static_cast<double>(rows_) +
                  5.0 * static_cast<double>(q_) + 4.0 * static_cast<double>(kv_) + 2.0 * static_cast<double>(q_rows_);
  if (verify_) floats += 2.0 * (2.0 * static_cast<double>(std::max(values_, q_)) + 2.0 * static_cast<double>(kv_));
  return 4.0 * floats;
}

void LayerOps::allocate() {
  if (tasks_.empty()) return;
  // At least one element, so the kernels get a valid pointer for an op this rank does not run.
  auto zeroed = [](std::vector<float>& v, std::size_t n) { v.assign(std::max<std::size_t>(1, n), 0.0f); };
  auto filled = [&](std::vector<float>& v, std::size_t n, std::uint64_t seed) {
    zeroed(v, n);
    host::fill_random(v.data(), n, seed);
  };
  filled(a_, values_, kSeedA);
  filled(b_, values_, kSeedB);
  filled(dy_, values_, kSeedDy);
  filled(weight_, cols_, kSeedWeight);
  zeroed(y_, values_);
  zeroed(y2_, values_);
  zeroed(dweight_, cols_);
  zeroed(inv_rms_, rows_);
  if (norm_rows_ > 0)
    host::rms_norm_forward(a_.data(), weight_.data(), y_.data(), inv_rms_.data(), norm_rows_, norm_cols_, eps_);
  filled(q_buf_, q_, kSeedQ);
  filled(k_buf_, kv_, kSeedK);
  filled(v_buf_, kv_, kSeedV);
  filled(do_buf_, q_, kSeedDo);
  zeroed(o_buf_, q_);
  zeroed(dq_buf_, q_);
  zeroed(dk_buf_, kv_);
  zeroed(dv_buf_, kv_);
  zeroed(lse_buf_, q_rows_);
  for (const auto& [i, task] : tasks_) {
    if (!task.attention || !task.attn.backward) continue;
    const auto s = attention_shape(task.attn);
    auto [it, fresh] = saved_attention_.try_emplace(attention_key(s));
    if (!fresh) continue;
    it->second.first.assign(s.q_values(), 0.0f);
    it->second.second.assign(s.rows(), 0.0f);
    host::flash_attention_forward(s, q_buf_.data(), k_buf_.data(), v_buf_.data(), it->second.first.data(),
                                  it->second.second.data());
  }
}

void LayerOps::run(std::size_t i) {
  const Task& task = tasks_.at(i);
  if (task.attention) {
    const auto s = attention_shape(task.attn);
    if (!task.attn.backward) {
      host::flash_attention_forward(s, q_buf_.data(), k_buf_.data(), v_buf_.data(), o_buf_.data(), lse_buf_.data());
    } else {
      const auto& saved = saved_attention_.at(attention_key(s));
      host::flash_attention_backward(s, q_buf_.data(), k_buf_.data(), v_buf_.data(), saved.first.data(),
                                     saved.second.data(), do_buf_.data(), dq_buf_.data(), dk_buf_.data(),
                                     dv_buf_.data());
    }
    return;
  }
  const LayerOpShape& e = task.elem;
  const std::size_t n = e.values();
  switch (task.op) {
    case model::Op::RmsNorm:
    case model::Op::FinalRmsNorm:
      if (!e.backward)
        host::rms_norm_forward(a_.data(), weight_.data(), y_.data(), inv_rms_.data(), e.rows, e.cols, eps_);
      else
        host::rms_norm_backward(a_.data(), weight_.data(), inv_rms_.data(), dy_.data(), y_.data(), dweight_.data(),
                                e.rows, e.cols);
      return;
    case model::Op::Rope:
      if (!e.backward)
        host::rope_forward(rope_shape(e), a_.data(), y_.data());
      else
        host::rope_backward(rope_shape(e), dy_.data(), y_.data());
      return;
    case model::Op::Swiglu:
      if (!e.backward)
        host::swiglu_forward(a_.data(), b_.data(), y_.data(), n);
      else
        host::swiglu_backward(a_.data(), b_.data(), dy_.data(), y_.data(), y2_.data(), n);
      return;
    case model::Op::SquaredRelu:
      if (!e.backward)
        host::squared_relu_forward(a_.data(), y_.data(), n);
      else
        host::squared_relu_backward(a_.data(), dy_.data(), y_.data(), n);
      return;
    default:
      return;
  }
}

void LayerOps::corrupt(std::size_t i) {
  const Task& task = tasks_.at(i);
  // The first element of the main output: in the first checked attention group, and in every
  // elementwise output (y: forward outputs, dx, dgate).
  std::vector<float>& out = task.attention ? (task.attn.backward ? dq_buf_ : o_buf_) : y_;
  const std::size_t n = task.attention ? attention_shape(task.attn).q_values() : task.elem.values();
  float largest = 0;
  for (std::size_t e = 0; e < n; ++e) largest = std::max(largest, std::abs(out[e]));
  out[0] += 1.0f + 0.01f * largest;
}

std::optional<std::string> LayerOps::check(std::size_t i) const {
  const Task& task = tasks_.at(i);
  if (task.attention) {
    const auto s = attention_shape(task.attn);
    std::vector<std::size_t> q_index, kv_index, lse_index;
    group_indices(s, q_index, kv_index, &lse_index);
    const auto tol = host::kAttentionTolerance;
    if (!task.attn.backward) {
      std::vector<double> o(s.q_values()), lse(s.rows());
      for (auto [b, kvh] : checked_groups(s))
        host::reference::attention_forward(s, b, kvh, q_buf_.data(), k_buf_.data(), v_buf_.data(), o.data(), lse.data());
      if (auto m = compare("output O", o_buf_.data(), o, tol, q_index)) return m;
      return compare("log-sum-exp", lse_buf_.data(), lse, tol, lse_index);
    }
    std::vector<double> dq(s.q_values()), dk(s.kv_values()), dv(s.kv_values());
    for (auto [b, kvh] : checked_groups(s))
      host::reference::attention_backward(s, b, kvh, q_buf_.data(), k_buf_.data(), v_buf_.data(), do_buf_.data(),
                                          dq.data(), dk.data(), dv.data());
    if (auto m = compare("dQ", dq_buf_.data(), dq, tol, q_index)) return m;
    if (auto m = compare("dK", dk_buf_.data(), dk, tol, kv_index)) return m;
    return compare("dV", dv_buf_.data(), dv, tol, kv_index);
  }
  const LayerOpShape& e = task.elem;
  const std::size_t n = e.values();
  const auto tol = host::kElementwiseTolerance;
  std::vector<double> want(n);
  switch (task.op) {
    case model::Op::RmsNorm:
    case model::Op::FinalRmsNorm:
      if (!e.backward) {
        host::reference::rms_norm_forward(a_.data(), weight_.data(), want.data(), e.rows, e.cols, eps_);
        return compare("y", y_.data(), want, tol);
      } else {
        std::vector<double> dweight(e.cols);
        host::reference::rms_norm_backward(a_.data(), weight_.data(), dy_.data(), want.data(), dweight.data(), e.rows,
                                           e.cols, eps_);
        if (auto m = compare("dx", y_.data(), want, tol)) return m;
        // dweight sums over every row; the kernel accumulates it in double, so the same tolerance holds.
        return compare("dweight", dweight_.data(), dweight, tol);
      }
    case model::Op::Rope:
      if (!e.backward)
        host::reference::rope_forward(rope_shape(e), a_.data(), want.data());
      else
        host::reference::rope_backward(rope_shape(e), dy_.data(), want.data());
      return compare(e.backward ? "dx" : "y", y_.data(), want, tol);
    case model::Op::Swiglu:
      if (!e.backward) {
        host::reference::swiglu_forward(a_.data(), b_.data(), want.data(), n);
        return compare("y", y_.data(), want, tol);
      } else {
        std::vector<double> dup(n);
        host::reference::swiglu_backward(a_.data(), b_.data(), dy_.data(), want.data(), dup.data(), n);
        if (auto m = compare("dgate", y_.data(), want, tol)) return m;
        return compare("dup", y2_.data(), dup, tol);
      }
    case model::Op::SquaredRelu:
      if (!e.backward)
        host::reference::squared_relu_forward(a_.data(), want.data(), n);
      else
        host::reference::squared_relu_backward(a_.data(), dy_.data(), want.data(), n);
      return compare(e.backward ? "dx" : "y", y_.data(), want, tol);
    default:
      return std::nullopt;
  }
}

}  // namespace parallax::exec
