#include "layer_ops_cuda.h"

#include "parallax/traces/io.h"

#include <algorithm>
#include <set>
#include <utility>

namespace parallax::exec {

void CudaLayerOps::plan(const model::JobGraph& graph, const RankPlan& plan, gpu::Elem elem) {
  elem_ = elem;
  for (std::size_t i = 0; i < plan.tasks.size(); ++i) {
    const auto id = plan.tasks[i];
    const model::Task& t = graph.tasks()[id];
    if (!is_layer_kernel(t.op)) continue;
    Task task;
    task.op = t.op;
    if (t.op == model::Op::FlashAttention) {
      const FlashAttentionShape s = flash_attention_shape(graph, id, "plan");
      if (s.head_dim > static_cast<std::uint32_t>(gpu::kMaxHeadDim))
        throw InputError("plan: task " + std::to_string(id) + " (" + graph.task_name(id) + "): head_dim " +
                         std::to_string(s.head_dim) + " is beyond the cuda backend's flash attention kernel (at most " +
                         std::to_string(gpu::kMaxHeadDim) + ")");
      task.attention = true;
      task.backward = s.backward;
      task.attn.batch = static_cast<int>(s.batch);
      task.attn.heads = static_cast<int>(s.heads);
      task.attn.kv_heads = static_cast<int>(s.kv_heads);
      task.attn.seq_q = task.attn.seq_k = static_cast<int>(s.seq);
      task.attn.head_dim = static_cast<int>(s.head_dim);
      task.attn.causal = true;
      q_ = std::max(q_, task.attn.q_values());
      kv_ = std::max(kv_, task.attn.kv_values());
      q_rows_ = std::max(q_rows_, task.attn.rows());
      workspace_ = std::max(workspace_, gpu::attention_backward_workspace(task.attn));
    } else {
      task.elem = layer_op_shape(graph, id, "plan");
      task.backward = task.elem.backward;
      values_ = std::max<std::size_t>(values_, task.elem.values());
      cols_ = std::max<std::size_t>(cols_, task.elem.cols);
      rows_ = std::max<std::size_t>(rows_, task.elem.rows);
      if (t.op == model::Op::Rope) {
        // One table: every RoPE task of a plan has the scenario's seq and head_dim.
        rope_seq_ = task.elem.seq;
        rope_head_dim_ = task.elem.head_dim;
      }
    }
    tasks_.emplace(i, task);
  }
}

cudaError_t CudaLayerOps::allocate(const Allocator& allocate, cudaStream_t stream) {
  if (tasks_.empty()) return cudaSuccess;
  const std::size_t es = gpu::elem_size(elem_);
  std::uint32_t seed = 100;
  cudaError_t error = cudaSuccess;
  auto random = [&](std::size_t n, const std::string& what) {
    void* p = allocate(std::max<std::size_t>(1, n) * es, what);
    if (error == cudaSuccess && n) error = gpu::fill_random(p, n, elem_, seed++, stream);
    return p;
  };
  auto zeros = [&](std::size_t bytes, const std::string& what) {
    void* p = allocate(std::max<std::size_t>(1, bytes), what);
    if (error == cudaSuccess) error = cudaMemsetAsync(p, 0, std::max<std::size_t>(1, bytes), stream);
    return p;
  };
  if (values_) {
    a_ = random(values_, "layer ops: input");
    b_ = random(values_, "layer ops: second input");
    dy_ = random(values_, "layer ops: output gradient");
    weight_ = random(cols_, "layer ops: norm weight");
    y_ = zeros(values_ * es, "layer ops: output");
    y2_ = zeros(values_ * es, "layer ops: second output");
    dweight_ = static_cast<float*>(zeros(cols_ * sizeof(float), "layer ops: norm weight gradient"));
    inv_rms_ = static_cast<float*>(zeros(rows_ * sizeof(float), "layer ops: 1 / rms"));
  }
  if (rope_seq_) {
    const std::size_t entries = rope_seq_ * (rope_head_dim_ / 2);
    cos_ = static_cast<float*>(zeros(entries * sizeof(float), "RoPE cos table"));
    sin_ = static_cast<float*>(zeros(entries * sizeof(float), "RoPE sin table"));
    if (error == cudaSuccess) error = gpu::rope_table(cos_, sin_, rope_seq_, rope_head_dim_, 10000.0, stream);
  }
  if (q_) {
    q_buf_ = random(q_, "flash attention: q");
    k_buf_ = random(kv_, "flash attention: k");
    v_buf_ = random(kv_, "flash attention: v");
    do_buf_ = random(q_, "flash attention: dO");
    o_buf_ = zeros(q_ * es, "flash attention: O");
    dq_buf_ = zeros(q_ * es, "flash attention: dQ");
    dk_buf_ = zeros(kv_ * es, "flash attention: dK");
    dv_buf_ = zeros(kv_ * es, "flash attention: dV");
    lse_ = static_cast<float*>(zeros(q_rows_ * sizeof(float), "flash attention: log-sum-exp"));
    workspace_buf_ = zeros(workspace_, "flash attention: backward workspace");
  }
  if (error != cudaSuccess) return error;
  // The backward reads the forward's O and log-sum-exp, and the RMSNorm backward its 1 / rms: one
  // forward of each first, so the backward runs on consistent values (a softmax of garbage statistics
  // could overflow into infinities).
  for (const auto& [i, task] : tasks_) {
    if (task.backward) continue;
    if (task.attention || task.op == model::Op::RmsNorm || task.op == model::Op::FinalRmsNorm)
      if (auto e = launch(i, stream); e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

cudaError_t CudaLayerOps::launch(std::size_t i, cudaStream_t stream) const {
  const Task& task = tasks_.at(i);
  if (task.attention) {
    if (!task.backward) return gpu::flash_attention_forward(task.attn, elem_, q_buf_, k_buf_, v_buf_, o_buf_, lse_, stream);
    return gpu::flash_attention_backward(task.attn, elem_, q_buf_, k_buf_, v_buf_, o_buf_, lse_, do_buf_, dq_buf_, dk_buf_,
                                         dv_buf_, workspace_buf_, stream);
  }
  const LayerOpShape& e = task.elem;
  const std::size_t n = e.values();
  switch (task.op) {
    case model::Op::RmsNorm:
    case model::Op::FinalRmsNorm:
      if (!e.backward) return gpu::rms_norm_forward(elem_, a_, weight_, y_, inv_rms_, e.rows, e.cols, 1e-5f, stream);
      return gpu::rms_norm_backward(elem_, a_, weight_, inv_rms_, dy_, y_, dweight_, e.rows, e.cols, stream);
    case model::Op::Rope:
      return gpu::rope_apply(elem_, e.backward ? dy_ : a_, y_, cos_, sin_, e.rows, e.cols, e.seq, e.head_dim,
                             e.backward ? -1 : 1, stream);
    case model::Op::Swiglu:
      if (!e.backward) return gpu::swiglu_forward(elem_, a_, b_, y_, n, stream);
      return gpu::swiglu_backward(elem_, a_, b_, dy_, y_, y2_, n, stream);
    case model::Op::SquaredRelu:
      if (!e.backward) return gpu::squared_relu_forward(elem_, a_, y_, n, stream);
      return gpu::squared_relu_backward(elem_, a_, dy_, y_, n, stream);
    default:
      return cudaSuccess;
  }
}

cudaError_t CudaLayerOps::load(cudaStream_t stream) const {
  std::set<std::pair<int, bool>> loaded;
  for (const auto& [i, task] : tasks_)
    if (loaded.emplace(static_cast<int>(task.op), task.backward).second)
      if (auto e = launch(i, stream); e != cudaSuccess) return e;
  return cudaSuccess;
}

}  // namespace parallax::exec
