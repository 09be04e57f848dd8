// Peak memory per GPU: weights, gradients and optimizer states per ZeRO stage, and the activations
// a pipeline stage holds at its peak under the chosen schedule (Korthikanti et al. 2022).
#pragma once

#include "parallax/model/scenario.h"

#include <string>
#include <vector>

namespace parallax::model {

// One tensor a transformer layer keeps for its backward pass (Korthikanti's accounting).
struct StoredActivation {
  const char* name;
  double bytes;  // per micro-batch, on one TP rank
};
// The tensors one layer stores for one micro-batch under the scenario's recompute and TP/SP setting.
// With `moe`, of a Mixture-of-Experts layer.
std::vector<StoredActivation> layer_activations(const Dims& d, Layout::Recompute recompute, bool moe = false);
double layer_activation_bytes(const Dims& d, Layout::Recompute recompute, bool moe = false);

// Bytes one parameter's gradient takes where it accumulates and is reduced (fp32 with
// grad_reduce_in_fp32, else the training precision).
double gradient_bytes_per_parameter(const Layout& layout, const Dims& d);

// Adam, per local parameter: what it keeps between steps (layout.optimizer_state) and what its
// update moves and computes. Memory, the graph's optimizer step and the planner all read it.
struct OptimizerCost {
  double state_bytes = 0;
  double step_bytes = 0;
  double step_flops = 0;
};
OptimizerCost optimizer_cost(const Layout& layout, const Dims& d);

struct StageMemory {
  std::int64_t stage = 0;
  double parameters = 0;           // held by one rank of this stage
  double weights = 0, gradients = 0, optimizer = 0;
  double activations = 0;          // at the peak of the schedule
  double layers_in_flight = 0;     // activations held, in layers' worth of micro-batches
  double transient = 0;            // working memory of the layer being computed
  double reserved = 0;             // CUDA context, NCCL, fragmentation (from the GPU spec)
  double total() const { return weights + gradients + optimizer + activations + transient + reserved; }
};

struct MemoryEstimate {
  std::vector<StageMemory> stages;
  double capacity = 0;  // bytes of one GPU
  const StageMemory& peak() const;
  bool fits() const { return peak().total() <= capacity; }
};

MemoryEstimate estimate_memory(const Scenario& scenario);

}  // namespace parallax::model
