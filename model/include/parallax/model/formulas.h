// Closed forms from the literature (docs/architecture.md, "What the builder emits"). The graph builder and the memory model compute the
// same quantities from first principles; tests hold them to these formulas.
#pragma once

#include "parallax/model/scenario.h"

namespace parallax::model::formulas {

// GPT: P = 12 L h^2 (1 + 13/(12h) + (V+s)/(12 L h)). Other layers (GQA, head_dim, SwiGLU, RMSNorm,
// RoPE, no biases, untied): the sum of their weights, biases, norms and embeddings.
double parameters(const Dims& d);

// Model FLOPs per token of training: 6 N_matmul + 3 L x the attention core's forward, where
// N_matmul = L (h (a + 2g) d_h + a d_h h + h f1 + f h) + V h (the output layer; f1 = 2f for SwiGLU)
// and the core's forward is 4 s a d_h per token, half that for causal flash attention: so
// 6 N_matmul + 6 L s a d_h with flash, + 12 L s a d_h unfused.
double model_flops_per_token(const Dims& d);

// FLOPs per iteration. GPT: Narayanan et al. SC21 eq. 3, 96 B s L h^2 (1 + s/(6h) + V/(16 L h)) with
// full recompute, 72 B s L h^2 (1 + s/(6h) + V/(12 L h)) without (assumes an FFN of 4h). Other layers:
// B s model_flops_per_token, plus each layer's forward again with full recompute. The flash kernel's
// own recompute of the scores inside its backward is not counted (as the selective recompute is not).
double flops_per_iteration(const Dims& d, bool full_recompute);

// Pipeline bubble: (p-1)/(v m) (v = 1 for GPipe and 1F1B).
double bubble_fraction(const Dims& d);

// Korthikanti et al. 2022, activation bytes per layer per micro-batch on one GPU.
double activation_bytes_per_layer(const Dims& d, Layout::Recompute recompute);

// Korthikanti: with 1F1B the first stage holds p micro-batches of L/p layers (L layers' worth);
// interleaving multiplies that by (1 + (p-1)/(p v)); GPipe holds all m. Result in layers' worth.
double first_stage_layers_in_flight(const Dims& d, Layout::Schedule schedule);

}  // namespace parallax::model::formulas
