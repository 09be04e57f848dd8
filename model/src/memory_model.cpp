#include "parallax/model/memory_model.h"

#include "parallax/model/layer.h"
#include "parallax/model/parameters.h"
#include "parallax/model/rank_grid.h"
#include "parallax/model/schedule.h"
#include "parallax/model/stage_partition.h"

#include <algorithm>

namespace parallax::model {

std::vector<StoredActivation> layer_activations(const Dims& d, Layout::Recompute recompute, bool moe) {
  // Korthikanti et al. 2022, §4.1, for 16-bit training, generalised by model::LayerDescription:
  // bytes per micro-batch of one layer. Tensors inside the TP regions are split over t; the rest are
  // split over t only with sequence parallelism.
  const LayerDescription layer = describe_layer(d, moe);
  std::vector<StoredActivation> a;
  for (const SavedTensor* s : layer.saved(recompute, d.selective_policy)) a.push_back({s->name, s->bytes});
  return a;
}

double layer_activation_bytes(const Dims& d, Layout::Recompute recompute, bool moe) {
  double total = 0;
  for (const auto& a : layer_activations(d, recompute, moe)) total += a.bytes;
  return total;
}

const StageMemory& MemoryEstimate::peak() const {
  return *std::max_element(stages.begin(), stages.end(),
                           [](const StageMemory& a, const StageMemory& b) { return a.total() < b.total(); });
}

double gradient_bytes_per_parameter(const Layout& layout, const Dims& d) {
  return layout.grad_reduce_in_fp32() ? 4.0 : static_cast<double>(d.e);
}

OptimizerCost optimizer_cost(const Layout& layout, const Dims& d) {
  const double e = static_cast<double>(d.e);
  OptimizerCost c;
  c.step_flops = 12.0;  // bias-corrected Adam with weight decay, per parameter
  if (d.e >= 4) {
    // fp32 training: the weights are the master copy; m and v. Read w, g, m, v; write w, m, v.
    c.state_bytes = 8.0;
    c.step_bytes = 28.0;
    return c;
  }
  switch (layout.optimizer_state()) {
    case Layout::FP32_REMAINDERS:
      // m, v (8 B) and the 16-bit remainder (2 B); reads w, remainder, g (fp32), m, v and writes
      // w, remainder, m, v.
      c.state_bytes = 10.0;
      c.step_bytes = (e + 2.0 + 4.0 + 8.0) + (e + 2.0 + 8.0);
      break;
    case Layout::MODEL_PRECISION:
      // m, v in the model's precision; reads w, g, m, v and writes w, m, v, all e bytes.
      c.state_bytes = 2.0 * e;
      c.step_bytes = 7.0 * e;
      break;
    default:
      // fp32 master, m, v: read master, g (fp32), m, v (16 B); write master, m, v (12 B) and the
      // low-precision copy (e B).
      c.state_bytes = 12.0;
      c.step_bytes = 28.0 + e;
      break;
  }
  return c;
}

MemoryEstimate estimate_memory(const Scenario& sc) {
  const Dims d = dims(sc);
  const Layout& layout = sc.layout();
  const bool tied = sc.model().tied_embeddings();
  const int zero = layout.zero_stage();
  const double dp = static_cast<double>(dp_cp(d));  // ZeRO shards over dp x cp
  const double grad_bytes = gradient_bytes_per_parameter(layout, d);
  const double optimizer_bytes = optimizer_cost(layout, d).state_bytes;
  const double per_layer = layer_activation_bytes(d, layout.recompute());
  // A Mixture-of-Experts layer's (its routed tokens, router probabilities, expert inputs).
  const double per_moe_layer = d.experts > 0 ? layer_activation_bytes(d, layout.recompute(), true) : 0.0;
  const double edp = static_cast<double>(rank_grid(sc).expert_data_parallel());  // expert ZeRO shards
  const double sbh = static_cast<double>(local_tokens(d)) * d.h;  // this rank's tokens (s / cp)
  const double outside = d.sp ? static_cast<double>(d.t) : 1.0;
  const StagePartition partition = stage_partition(sc);
  const std::int64_t last_vs = d.p * d.v - 1;

  MemoryEstimate est;
  est.capacity = sc.cluster().gpu().hbm_gb() * 1e9;
  for (std::int64_t stage = 0; stage < d.p; ++stage) {
    StageMemory m;
    m.stage = stage;
    const ParameterShard params =
        stage_parameters(d, tied, stage, partition.stage_layers(stage), stage_moe_layers(d, partition, stage));
    m.parameters = params.local();
    // Routed experts shard over expert dp (ZeRO), the rest over dp x cp.
    auto sharded = [&](double bytes_per_parameter, bool shard) {
      return params.dense() * bytes_per_parameter / (shard ? dp : 1.0) +
             params.expert * bytes_per_parameter / (shard ? edp : 1.0);
    };
    m.weights = sharded(static_cast<double>(d.e), zero >= 3);
    // FP8 training: Transformer Engine caches each linear's FP8 weight and its transpose (1 + 1 B)
    // for the step; with fp8_params they replace the BF16 copy instead of joining it.
    if (d.fp8) {
      const std::int64_t moe_layers = stage_moe_layers(d, partition, stage);
      double linears = static_cast<double>(partition.stage_layers(stage) - moe_layers) * describe_layer(d).sharded_parameters() +
                       (moe_layers > 0 ? static_cast<double>(moe_layers) * (describe_layer(d, true).sharded_parameters()) : 0.0);
      // The multi-token prediction layers' linears (their eh_proj stays in BF16).
      if (stage == d.p - 1 && d.mtp > 0)
        linears += static_cast<double>(d.mtp) * describe_layer(d, is_moe_layer(d, d.L)).sharded_parameters();
      m.weights += linears * (d.fp8_params ? 0.0 : 2.0) / (zero >= 3 ? dp : 1.0) +
                   params.expert * (d.fp8_params ? 0.0 : 2.0) / (zero >= 3 ? edp : 1.0);
    }
    m.gradients = sharded(grad_bytes, zero >= 2);
    m.optimizer = sharded(optimizer_bytes, zero >= 1);
    m.reserved = sc.cluster().gpu().reserved_memory_gb() * 1e9;

    // Each chunk forward adds its stored activations, its backward frees them; the peak over this
    // stage's schedule comes in closed form (peak_held), since m may be in the millions. Extra
    // tensors: the embedding's dropout mask on the first virtual stage, the fp32 logits kept for
    // the cross-entropy backward on the last.
    std::vector<double> chunk_bytes(static_cast<std::size_t>(d.v)), chunk_layers(chunk_bytes.size());
    for (std::int64_t chunk = 0; chunk < d.v; ++chunk) {
      const std::int64_t vs = chunk * d.p + stage;
      chunk_layers[static_cast<std::size_t>(chunk)] = static_cast<double>(partition.layers(vs));
      const auto moe_layers = static_cast<double>(chunk_moe_layers(d, partition, vs));
      double bytes = per_layer * (static_cast<double>(partition.layers(vs)) - moe_layers) + per_moe_layer * moe_layers;
      if (vs == 0 && d.dropout) bytes += sbh / outside;  // the embedding's dropout mask
      const double logits = 4.0 * static_cast<double>(local_tokens(d)) * (padded_vocab(d) / d.t);
      if (vs == last_vs) bytes += logits + 2 * sbh / outside;
      // Each multi-token prediction module: its layer, its logits and final norm input, the two
      // norms' inputs and eh_proj's (2h wide).
      if (vs == last_vs && d.mtp > 0)
        bytes += static_cast<double>(d.mtp) * ((is_moe_layer(d, d.L) ? per_moe_layer : per_layer) + logits +
                                               (2 + 4 + 4) * sbh / outside);
      chunk_bytes[static_cast<std::size_t>(chunk)] = bytes;
    }
    const HeldPeak held = peak_held(layout.schedule(), static_cast<int>(d.p), static_cast<int>(d.v),
                                    static_cast<int>(d.m), static_cast<int>(stage), chunk_bytes);
    const double peak = held.weight;
    // Layers' worth held at the peak: chunks times their size when the chunks are even; else the
    // peak of held layers (the extra first / last chunk tensors can move the byte peak by a step).
    const double peak_layers =
        partition.even() ? static_cast<double>(held.chunks * partition.layers(0))
                         : peak_held(layout.schedule(), static_cast<int>(d.p), static_cast<int>(d.v), static_cast<int>(d.m),
                                     static_cast<int>(stage), chunk_layers)
                               .weight;
    m.activations = peak;
    m.layers_in_flight = peak_layers;
    // Recompute rebuilds one layer's full activations at a time during backward.
    if (layout.recompute() != Layout::NO_RECOMPUTE) {
      m.transient = layer_activation_bytes(d, Layout::NO_RECOMPUTE) - per_layer;
      if (stage_moe_layers(d, partition, stage) > 0)
        m.transient = std::max(m.transient, layer_activation_bytes(d, Layout::NO_RECOMPUTE, true) - per_moe_layer);
    }
    // ZeRO-3 gathers a layer's parameters, one in use and one prefetched; without resharding after
    // forward every layer of the stage stays gathered from its forward to its backward.
    if (zero >= 3 && dp_cp(d) > 1) {
      const double gathered_layers = layout.reshard_after_forward() ? 2.0 : static_cast<double>(partition.stage_layers(stage));
      m.transient += gathered_layers * layer_parameters(d).local() * d.e;
    }
    est.stages.push_back(m);
  }
  return est;
}

}  // namespace parallax::model
