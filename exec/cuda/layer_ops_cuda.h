// The CUDA backend's runner of modern-layer tasks (RMSNorm, RoPE, SwiGLU, squared ReLU, flash
// attention): their shapes from the plan's scenario (task_shapes.h), device buffers of the scenario's
// element type sized by the largest task and filled once with random values, and one launch of the
// op's kernel (layer_kernels.h) per task. Plain C++ (host compiler, project warnings).
#pragma once

#include "layer_kernels.h"
#include "parallax/exec/plan.h"
#include "parallax/exec/task_shapes.h"

#include <functional>
#include <string>
#include <unordered_map>

namespace parallax::exec {

class CudaLayerOps {
 public:
  // Reads the shapes of the plan's layer tasks (InputError when a task and its scenario disagree, or
  // a head_dim beyond the kernel's gpu::kMaxHeadDim).
  void plan(const model::JobGraph& graph, const RankPlan& plan, gpu::Elem elem);
  bool handles(std::size_t i) const { return tasks_.contains(i); }
  // Allocates and fills the buffers through `allocate` (bytes, what) on `stream`.
  using Allocator = std::function<void*(std::size_t, const std::string&)>;
  cudaError_t allocate(const Allocator& allocate, cudaStream_t stream);
  // Launches task i's kernel on `stream`.
  cudaError_t launch(std::size_t i, cudaStream_t stream) const;
  // Launches one task of each distinct (op, direction) once: loads every kernel before NCCL runs.
  cudaError_t load(cudaStream_t stream) const;

 private:
  struct Task {
    model::Op op;
    bool attention = false;
    gpu::AttentionDims attn;
    bool backward = false;
    LayerOpShape elem;
  };
  std::unordered_map<std::size_t, Task> tasks_;
  gpu::Elem elem_ = gpu::Elem::BF16;
  std::size_t values_ = 0, cols_ = 0, rows_ = 0, q_ = 0, kv_ = 0, q_rows_ = 0, workspace_ = 0, rope_entries_ = 0;
  std::size_t rope_seq_ = 0, rope_head_dim_ = 0;
  void *a_ = nullptr, *b_ = nullptr, *dy_ = nullptr, *weight_ = nullptr, *y_ = nullptr, *y2_ = nullptr;
  float *dweight_ = nullptr, *inv_rms_ = nullptr, *cos_ = nullptr, *sin_ = nullptr;
  void *q_buf_ = nullptr, *k_buf_ = nullptr, *v_buf_ = nullptr, *o_buf_ = nullptr, *do_buf_ = nullptr;
  void *dq_buf_ = nullptr, *dk_buf_ = nullptr, *dv_buf_ = nullptr, *workspace_buf_ = nullptr;
  float* lse_ = nullptr;
};

}  // namespace parallax::exec
