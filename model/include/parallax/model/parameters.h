// Parameter counts per tensor-parallel rank, summed from the ops of model::LayerDescription (docs/architecture.md, "What the builder emits").
#pragma once

#include "parallax/model/scenario.h"

namespace parallax::model {

// Parameters held by one TP rank: `sharded` ones are split over the t ranks of its TP group,
// `replicated` ones (biases after row-parallel GEMMs, LayerNorms, position embeddings) are copied.
struct ParameterShard {
  double sharded = 0;
  double replicated = 0;
  double local() const { return sharded + replicated; }
  double unique(std::int64_t tp) const { return sharded * static_cast<double>(tp) + replicated; }
};

// One transformer layer (GPT: QKV 3h^2 + 3h, projection h^2 + h, FFN 2hf + f + h, two LayerNorms 4h).
ParameterShard layer_parameters(const Dims& d);

struct EmbeddingShard : ParameterShard {
  double word = 0;  // the vocabulary-parallel word embedding part (V h / t)
};
// Word (vocabulary-parallel, padded vocabulary) and learned position embeddings, on the first stage.
EmbeddingShard embedding_parameters(const Dims& d);

// Final norm and the output layer on the last stage: with tied embeddings and p > 1 a copy of the
// word embedding (kept in sync by an all-reduce), with tied embeddings and p = 1 nothing extra.
ParameterShard output_parameters(const Dims& d, bool tied_embeddings);

// Everything held by one rank of pipeline stage `stage`.
ParameterShard stage_parameters(const Dims& d, bool tied_embeddings, std::int64_t stage);

// The model's parameter count (tied copies counted once).
double total_parameters(const Dims& d, bool tied_embeddings);

}  // namespace parallax::model
