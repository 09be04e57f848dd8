#include "parallax/model/parameters.h"

#include "parallax/model/layer.h"

namespace parallax::model {

ParameterShard layer_parameters(const Dims& d) {
  // Column-parallel QKV and FC1 split weights and biases; row-parallel projection and FC2 split
  // weights, their biases are added after the reduction and replicated, as are the norms.
  const LayerDescription layer = describe_layer(d);
  ParameterShard p;
  p.sharded = layer.sharded_parameters();
  p.replicated = layer.replicated_parameters();
  return p;
}

EmbeddingShard embedding_parameters(const Dims& d) {
  EmbeddingShard e;
  e.word = static_cast<double>(padded_vocab(d)) * d.h / d.t;
  e.sharded = e.word;
  if (d.positions == ModelSpec::LEARNED) e.replicated = static_cast<double>(d.s) * d.h;
  return e;
}

ParameterShard output_parameters(const Dims& d, bool tied_embeddings) {
  ParameterShard p;
  p.replicated = describe_layer(d).final_norm_parameters;
  if (!tied_embeddings || d.p > 1) p.sharded = static_cast<double>(padded_vocab(d)) * d.h / d.t;
  return p;
}

ParameterShard stage_parameters(const Dims& d, bool tied_embeddings, std::int64_t stage) {
  const ParameterShard layer = layer_parameters(d);
  const double layers = static_cast<double>(d.L / d.p);
  ParameterShard p{layer.sharded * layers, layer.replicated * layers};
  if (stage == 0) {
    const auto e = embedding_parameters(d);
    p.sharded += e.sharded;
    p.replicated += e.replicated;
  }
  if (stage == d.p - 1) {
    const auto o = output_parameters(d, tied_embeddings);
    p.sharded += o.sharded;
    p.replicated += o.replicated;
  }
  return p;
}

double total_parameters(const Dims& d, bool tied_embeddings) {
  double total = 0;
  for (std::int64_t stage = 0; stage < d.p; ++stage) total += stage_parameters(d, tied_embeddings, stage).unique(d.t);
  // The last stage's copy of a tied word embedding is not a parameter of its own.
  if (tied_embeddings && d.p > 1) total -= static_cast<double>(padded_vocab(d)) * d.h;
  return total;
}

}  // namespace parallax::model
