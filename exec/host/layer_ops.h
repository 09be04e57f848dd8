// The host backend's runner of modern-layer tasks (RMSNorm, RoPE, SwiGLU, squared ReLU, flash
// attention): their shapes from the plan's scenario (task_shapes.h), input buffers filled once with
// fixed pseudo-random values, the real kernel per task (host_kernels.h), and --verify against the
// FP64 reference on the same inputs. Internal to the host backend.
#pragma once

#include "parallax/exec/host_kernels.h"
#include "parallax/exec/plan.h"
#include "parallax/exec/task_shapes.h"

#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace parallax::exec {

class LayerOps {
 public:
  // Reads the shapes of the plan's layer tasks (InputError when a task and the scenario disagree) and
  // returns the bytes their buffers will take; allocate() then allocates them.
  double plan(const model::JobGraph& graph, const RankPlan& plan, bool verify);
  void allocate();
  // Whether task index `i` (into plan.tasks) is a layer kernel this runner executes.
  bool handles(std::size_t i) const { return tasks_.contains(i); }
  void run(std::size_t i);
  // --verify: compares task i's last outputs with the FP64 reference; a message naming the op, the
  // output and the first wrong element, or nothing.
  std::optional<std::string> check(std::size_t i) const;
  // Fault injection for the tests: adds 1 + 1% of the output's largest magnitude to one element of
  // task i's output (beyond any tolerance).
  void corrupt(std::size_t i);
  // The op a task runs ("flash_attention", "rms_norm", ...), for messages.
  std::string op_of(std::size_t i) const;

 private:
  struct Task {
    model::Op op;
    bool attention = false;
    FlashAttentionShape attn;
    LayerOpShape elem;
  };
  host::AttentionShape attention_shape(const FlashAttentionShape& s) const;
  host::RopeShape rope_shape(const LayerOpShape& s) const;
  using Key = std::tuple<std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t>;
  static Key attention_key(const host::AttentionShape& s) { return {s.batch, s.heads * 65536 + s.kv_heads, s.seq_q, s.head_dim}; }

  std::unordered_map<std::size_t, Task> tasks_;
  bool verify_ = false;
  float eps_ = 1e-5f;
  // Largest sizes over the tasks.
  std::size_t values_ = 0, cols_ = 0, rows_ = 0, q_ = 0, kv_ = 0, q_rows_ = 0;
  // Elementwise: inputs a (x, gate), b (up), dy, weight; outputs y, y2 (dgate / dup), dweight; inv_rms.
  std::vector<float> a_, b_, dy_, weight_, y_, y2_, dweight_, inv_rms_;
  // Flash attention inputs and outputs.
  std::vector<float> q_buf_, k_buf_, v_buf_, do_buf_, o_buf_, lse_buf_, dq_buf_, dk_buf_, dv_buf_;
  // A backward needs the forward's output and log-sum-exp of the same inputs: one per shape, from
  // a forward run at allocation.
  std::map<Key, std::pair<std::vector<float>, std::vector<float>>> saved_attention_;
  // The RMSNorm backward reads the forward's 1 / rms per row, computed at allocation (every RMSNorm of
  // a plan has cols = hidden_size; the row counts differ only in how many of the same rows they take).
  std::size_t norm_rows_ = 0, norm_cols_ = 0;
};

}  // namespace parallax::exec
