// How the transformer layers are split over the virtual pipeline stages (virtual stage vs = chunk * pp +
// stage, layers numbered in virtual-stage order). From Layout.stage_layers when given, else Megatron's
// rule (megatron/core/transformer/transformer_block.py get_num_layers_to_build and
// transformer_layer.py get_transformer_layer_offset): first_stage_layers / last_stage_layers taken
// first, or the embedding and the loss counted as one layer slot each on the first / last stage, the
// rest divided evenly. A chunk may hold no layer (an embedding-only first chunk, a pass-through).
#pragma once

#include "parallax/parallax.pb.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace parallax::model {

class StagePartition {
 public:
  // num_layers / (pp * chunks) layers in each of the pp * chunks virtual stages (must divide).
  static StagePartition even(std::int64_t num_layers, std::int64_t pp, std::int64_t chunks);
  // Layer counts of the pp * chunks virtual stages, in virtual-stage order (each >= 0).
  StagePartition(std::vector<std::int64_t> chunk_layers, std::int64_t pp);

  std::int64_t pp() const { return pp_; }
  std::int64_t chunks() const { return static_cast<std::int64_t>(layers_.size()) / pp_; }  // per stage
  std::int64_t virtual_stages() const { return static_cast<std::int64_t>(layers_.size()); }
  std::int64_t num_layers() const { return first_.back(); }
  std::int64_t layers(std::int64_t vs) const { return layers_[static_cast<std::size_t>(vs)]; }
  // Global id of the first layer of virtual stage vs (its layers are first_layer .. first_layer + layers - 1).
  std::int64_t first_layer(std::int64_t vs) const { return first_[static_cast<std::size_t>(vs)]; }
  std::int64_t layers_of_chunk(std::int64_t stage, std::int64_t chunk) const { return layers(chunk * pp_ + stage); }
  // Transformer layers held by pipeline stage `stage` (all its chunks).
  std::int64_t stage_layers(std::int64_t stage) const;
  // Every virtual stage has the same number of layers (the GPT-era case).
  bool even() const;

 private:
  std::vector<std::int64_t> layers_;
  std::vector<std::int64_t> first_;  // prefix sums, one more entry than layers_
  std::int64_t pp_ = 1;
};

// Whether the layout asks for anything but an even split (stage_layers, first/last_stage_layers,
// embedding/loss_in_pipeline_split).
bool has_partition_fields(const Layout& layout);

// Why the layout's partition is invalid: the field to change ({"layout", "stage_layers"}) and the
// problem with its fix; nullopt when valid. Reads num_layers, pp, schedule and virtual_stages
// (chunks per stage: virtual_stages under INTERLEAVED_1F1B, else 1).
struct StagePartitionProblem {
  std::vector<std::string> field;
  std::string problem;
};
std::optional<StagePartitionProblem> stage_partition_problem(const ModelSpec& model, const Layout& layout);

// The partition of a layout that has none of the problems above; nullopt otherwise.
std::optional<StagePartition> try_stage_partition(const ModelSpec& model, const Layout& layout);
// The partition of a validated scenario (std::invalid_argument when it has a problem).
StagePartition stage_partition(const Scenario& scenario);

}  // namespace parallax::model
