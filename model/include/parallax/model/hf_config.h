// A Hugging Face transformers model config (config.json) as a ModelSpec, for --hf-config on the
// command line and for the GUI: the architecture a published checkpoint describes, without writing
// a model block by hand.
#pragma once

#include "parallax/parallax.pb.h"
#include "parallax/traces/io.h"  // InputError

#include <filesystem>
#include <string>
#include <vector>

namespace parallax::model {

// The values of `architectures[0]` that read_hf_config maps.
const std::vector<std::string>& supported_hf_architectures();

// Reads `file` (JSON; unknown keys ignored) into a ModelSpec:
//   layers, hidden, heads, FFN size (intermediate_size; GPT-2: n_layer, n_embd, n_head, n_inner),
//   num_key_value_heads -> num_query_groups, head_dim, vocab_size, tie_word_embeddings (absent:
//   true), hidden_act / activation_function -> activation, max_position_embeddings (GPT-2:
//   n_positions) -> seq_length (a default: a scenario or --seq overrides it), rms_norm_eps ->
//   RMSNORM, layer_norm_eps / norm_eps / layer_norm_epsilon -> LAYERNORM, the position embedding,
//   biases and attention kernel of the architecture.
// name: the config's _name_or_path, else the folder of a file named config.json, else the file's
// stem. Precision is left at the schema default (BF16): torch_dtype is how the checkpoint is
// stored, not how it is trained.
// Throws InputError naming the file and the key: an architecture not in
// supported_hf_architectures(), a missing required key, a value out of range or not mapped.
ModelSpec read_hf_config(const std::filesystem::path& file);

// The same from JSON text; `name` stands for the file in messages and gives the model's name.
ModelSpec parse_hf_config(const std::string& json, const std::filesystem::path& name);

}  // namespace parallax::model
