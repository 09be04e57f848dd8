#include "parallax/model/parameters.h"

#include "parallax/model/layer.h"

#include <algorithm>

namespace parallax::model {

ParameterShard layer_parameters(const Dims& d, bool moe) {
  // Column-parallel QKV and FC1 split weights and biases; row-parallel projection and FC2 split
  // weights, their biases are added after the reduction and replicated, as are the norms.
  const LayerDescription layer = describe_layer(d, moe);
  ParameterShard p;
  p.sharded = layer.sharded_parameters();
  p.replicated = layer.replicated_parameters();
  p.expert = layer.expert_parameters();
  return p;
}

std::int64_t chunk_moe_layers(const Dims& d, const StagePartition& partition, std::int64_t vs) {
  if (d.experts == 0) return 0;
  const std::int64_t first = partition.first_layer(vs), end = first + partition.layers(vs);
  return end - std::clamp(d.dense_layers, first, end);
}

std::int64_t stage_moe_layers(const Dims& d, const StagePartition& partition, std::int64_t stage) {
  std::int64_t n = 0;
  for (std::int64_t c = 0; c < d.v; ++c) n += chunk_moe_layers(d, partition, c * d.p + stage);
  return n;
}

EmbeddingShard embedding_parameters(const Dims& d) {
  EmbeddingShard e;
  e.word = static_cast<double>(padded_vocab(d)) * d.h / d.t;
  e.sharded = e.word;
  if (d.positions == ModelSpec::LEARNED) e.replicated = static_cast<double>(d.s) * d.h;
  return e;
}

namespace {
// The final norm and the output layer alone.
ParameterShard output_layer_parameters(const Dims& d, bool tied_embeddings) {
  ParameterShard p;
  p.replicated = describe_layer(d).final_norm_parameters;
  if (!tied_embeddings || d.p > 1) p.sharded = static_cast<double>(padded_vocab(d)) * d.h / d.t;
  return p;
}
// One MTP module without an embedding copy: eh_proj, three norms, its layer.
ParameterShard mtp_module_parameters(const Dims& d) {
  const ParameterShard layer = layer_parameters(d, is_moe_layer(d, d.L));
  ParameterShard p;
  p.sharded = 2.0 * static_cast<double>(d.h) * static_cast<double>(d.h) / static_cast<double>(d.t) + layer.sharded;
  p.replicated = 3.0 * describe_layer(d).final_norm_parameters + layer.replicated;
  p.expert = layer.expert;
  return p;
}
}  // namespace

ParameterShard mtp_parameters(const Dims& d, bool tied_embeddings) {
  if (d.mtp <= 0) return {};
  const ParameterShard module = mtp_module_parameters(d);
  const double n = static_cast<double>(d.mtp);
  ParameterShard p{module.sharded * n, module.replicated * n, module.expert * n};
  if (!tied_embeddings && d.p > 1) p.sharded += embedding_parameters(d).word;
  return p;
}

ParameterShard output_parameters(const Dims& d, bool tied_embeddings) {
  const ParameterShard o = output_layer_parameters(d, tied_embeddings), m = mtp_parameters(d, tied_embeddings);
  return {o.sharded + m.sharded, o.replicated + m.replicated, m.expert};
}

ParameterShard stage_parameters(const Dims& d, bool tied_embeddings, std::int64_t stage, std::int64_t stage_layers,
                                std::int64_t moe_layers) {
  const ParameterShard layer = layer_parameters(d);
  const double layers = static_cast<double>(stage_layers - moe_layers);
  ParameterShard p{layer.sharded * layers, layer.replicated * layers, 0};
  if (moe_layers > 0) {
    const ParameterShard moe = layer_parameters(d, true);
    const double n = static_cast<double>(moe_layers);
    p.sharded += moe.sharded * n;
    p.replicated += moe.replicated * n;
    p.expert += moe.expert * n;
  }
  if (stage == 0) {
    const auto e = embedding_parameters(d);
    p.sharded += e.sharded;
    p.replicated += e.replicated;
  }
  if (stage == d.p - 1) {
    const auto o = output_parameters(d, tied_embeddings);
    p.sharded += o.sharded;
    p.replicated += o.replicated;
    p.expert += o.expert;
  }
  return p;
}

namespace {
// Embedding and output layer, counted once (a tied word embedding's copy on the last stage is not a
// parameter of its own).
double embedding_and_output(const Dims& d, bool tied_embeddings) {
  const EmbeddingShard e = embedding_parameters(d);
  const ParameterShard o = output_layer_parameters(d, tied_embeddings);
  double total = e.unique(d.t) + o.unique(d.t);
  if (tied_embeddings && d.p > 1) total -= static_cast<double>(padded_vocab(d)) * d.h;
  return total;
}
// The MTP modules, counted once (their layers' experts over ep x etp; a token passes through
// top_k / experts of them).
double mtp_total(const Dims& d, bool activated) {
  if (d.mtp <= 0) return 0;
  const ParameterShard m = mtp_module_parameters(d);
  const double expert_ranks = static_cast<double>(d.ep * d.etp);
  const double experts = activated && d.experts > 0
                             ? m.expert * expert_ranks * static_cast<double>(d.top_k) / static_cast<double>(d.experts)
                             : m.expert * expert_ranks;
  return static_cast<double>(d.mtp) * (m.sharded * static_cast<double>(d.t) + m.replicated + experts);
}
}  // namespace

double activated_parameters(const Dims& d, bool tied_embeddings) {
  if (d.experts == 0) return total_parameters(d, tied_embeddings);
  const ParameterShard dense = layer_parameters(d), moe = layer_parameters(d, true);
  // A token uses top_k of the experts / ep experts a rank holds (1 / etp of each), times ep x etp
  // ranks: top_k / experts of them all.
  const double routed =
      moe.expert * static_cast<double>(d.ep * d.etp) * static_cast<double>(d.top_k) / static_cast<double>(d.experts);
  return static_cast<double>(d.dense_layers) * dense.unique(d.t) +
         static_cast<double>(d.L - d.dense_layers) * (moe.sharded * static_cast<double>(d.t) + moe.replicated + routed) +
         embedding_and_output(d, tied_embeddings) + mtp_total(d, true);
}

double total_parameters(const Dims& d, bool tied_embeddings) {
  if (d.experts > 0) {
    const ParameterShard dense = layer_parameters(d), moe = layer_parameters(d, true);
    return static_cast<double>(d.dense_layers) * dense.unique(d.t) +
           static_cast<double>(d.L - d.dense_layers) * moe.unique(d.t, d.ep * d.etp) + embedding_and_output(d, tied_embeddings) +
           mtp_total(d, false);
  }
  double total = 0;
  // Any split of the layers gives the same count: the even one (the first L % p stages one more).
  for (std::int64_t stage = 0; stage < d.p; ++stage)
    total += stage_parameters(d, tied_embeddings, stage, d.L / d.p + (stage < d.L % d.p ? 1 : 0)).unique(d.t);
  // The last stage's copy of the word embedding (tied, or for the MTP modules' lookups) is not a
  // parameter of its own.
  if ((tied_embeddings || d.mtp > 0) && d.p > 1) total -= static_cast<double>(padded_vocab(d)) * d.h;
  return total;
}

}  // namespace parallax::model
