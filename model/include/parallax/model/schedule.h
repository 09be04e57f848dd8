// Pipeline schedules: the order in which one pipeline stage runs the forward and backward passes of
// its model chunks for every micro-batch (GPipe, 1F1B, Megatron's interleaved 1F1B).
#pragma once

#include "parallax/parallax.pb.h"

#include <cstdint>
#include <vector>

namespace parallax::model {

struct PipelineStep {
  std::int32_t microbatch;
  std::int32_t chunk;  // model chunk on this stage (0 .. v-1); virtual stage = chunk * p + stage
  bool forward;
};

// The order of steps on `stage` (0 .. p-1). Megatron's order: warm-up forwards, steady 1F1B, cool-down
// backwards; interleaved follows megatron/core/pipeline_parallel/schedules.py. `extra_warmup` more
// forwards before the steady state: the MoE all-to-all overlap (layout.moe_a2a_overlap) merges each
// steady forward with the backward after it, which must be of another micro-batch, or the last
// stage's pair would be one micro-batch's forward and its own backward (Megatron's combined 1F1B
// takes one warm-up micro-batch more).
std::vector<PipelineStep> stage_order(Layout::Schedule schedule, int p, int v, int m, int stage, int extra_warmup = 0);

// Times the schedule with every chunk's forward taking `forward_time`, backward `backward_time` and
// free communication, respecting the order on each stage and the dependencies between virtual
// stages. Returns the bubble fraction (makespan - busy) / busy of the busiest stage.
double schedule_bubble_fraction(Layout::Schedule schedule, int p, int v, int m,
                                double forward_time = 1.0, double backward_time = 2.0);
// The same for uneven virtual stages: virtual stage vs's forward takes chunk_weight[vs] (its layers,
// say; p * v entries), its backward backward_ratio times that; the bubble is the busiest stage's.
double schedule_bubble_fraction(Layout::Schedule schedule, int p, int v, int m,
                                const std::vector<double>& chunk_weight, double backward_ratio = 2.0);

// The bubble of a validated scenario's schedule, chunks weighted by their layers
// (model::StagePartition; the embedding and the output layer left out): the first overload when the
// layers are even.
double layout_bubble_fraction(const Scenario& scenario);

// Largest number of chunk-forwards whose backward has not run yet, on `stage`: how many micro-batch
// chunks of activations it holds at its peak.
int max_chunks_in_flight(const std::vector<PipelineStep>& order);

// The same peaks without building the order (m may be in the millions): each chunk-forward adds
// chunk_weight[chunk] (v entries; one for GPipe and 1F1B), its backward removes it. Returns the
// largest running sum (the first step reaching it, as a walk over stage_order finds it) and the
// chunks held at that step. The weights must not be negative.
struct HeldPeak {
  double weight = 0;
  std::int64_t chunks = 0;
};
HeldPeak peak_held(Layout::Schedule schedule, int p, int v, int m, int stage,
                   const std::vector<double>& chunk_weight);
// max_chunks_in_flight(stage_order(...)) in O(p v) time.
int peak_chunks_in_flight(Layout::Schedule schedule, int p, int v, int m, int stage);

}  // namespace parallax::model
