// Parameter counts per tensor-parallel rank, summed from the ops of model::LayerDescription (docs/architecture.md, "What the builder emits").
#pragma once

#include "parallax/model/scenario.h"
#include "parallax/model/stage_partition.h"

namespace parallax::model {

// Parameters held by one TP rank: `sharded` ones are split over the t ranks of its TP group,
// `replicated` ones (biases after row-parallel GEMMs, LayerNorms, position embeddings) are copied.
// `expert` ones (a MoE layer's routed experts) are split over the ep ranks of an expert group and
// replicated over expert dp.
struct ParameterShard {
  double sharded = 0;
  double replicated = 0;
  double expert = 0;
  double local() const { return sharded + replicated + expert; }
  // Parameters other than the routed experts (reduced, and ZeRO-sharded, over dp x cp).
  double dense() const { return sharded + replicated; }
  // Over the tp ranks and the ep x etp ranks of the expert grid that together hold one copy.
  double unique(std::int64_t tp, std::int64_t expert_ranks = 1) const {
    return sharded * static_cast<double>(tp) + replicated + expert * static_cast<double>(expert_ranks);
  }
};

// One transformer layer (GPT: QKV 3h^2 + 3h, projection h^2 + h, FFN 2hf + f + h, two LayerNorms 4h);
// with `moe` a Mixture-of-Experts layer.
ParameterShard layer_parameters(const Dims& d, bool moe = false);

// MoE layers among virtual stage vs's layers, and among all of pipeline stage `stage`'s (the first
// d.dense_layers layers are dense).
std::int64_t chunk_moe_layers(const Dims& d, const StagePartition& partition, std::int64_t vs);
std::int64_t stage_moe_layers(const Dims& d, const StagePartition& partition, std::int64_t stage);

struct EmbeddingShard : ParameterShard {
  double word = 0;  // the vocabulary-parallel word embedding part (V h / t)
};
// Word (vocabulary-parallel, padded vocabulary) and learned position embeddings, on the first stage.
EmbeddingShard embedding_parameters(const Dims& d);

// The output part of the last stage: the final norm and the output layer (with tied embeddings and
// p > 1 a copy of the word embedding, kept in sync by an all-reduce; with tied embeddings and p = 1
// nothing extra), and the multi-token prediction modules (mtp_parameters). Reduced over dp x cp
// but for ParameterShard::expert (the MTP layers' routed experts, over expert dp).
ParameterShard output_parameters(const Dims& d, bool tied_embeddings);
// The multi-token prediction modules (model.mtp_layers) on one rank of the last stage: per module
// eh_proj (2h x h, column-parallel), three norms (the hidden state's, the embedding's, the
// module's output) and one layer of the kind layer num_layers + k has; with p > 1 and untied
// embeddings, a copy of the word embedding for the modules' lookups (the first stage's copy is the
// one counted once).
ParameterShard mtp_parameters(const Dims& d, bool tied_embeddings);

// Everything held by one rank of pipeline stage `stage`, which has `stage_layers` transformer layers
// (StagePartition::stage_layers).
// (StagePartition::stage_layers), `moe_layers` of them Mixture-of-Experts layers.
ParameterShard stage_parameters(const Dims& d, bool tied_embeddings, std::int64_t stage, std::int64_t stage_layers,
                                std::int64_t moe_layers = 0);

// The model's parameter count (tied copies counted once).
double total_parameters(const Dims& d, bool tied_embeddings);
// The parameters one token uses: a MoE layer counts its router, shared experts and top_k routed
// experts, not all of them (DeepSeek-V3: 37B of 671B). The total for a dense model.
double activated_parameters(const Dims& d, bool tied_embeddings);

}  // namespace parallax::model
