// --hf-config FILE and --seq N: the model from a Hugging Face config.json instead of the scenario's
// model block (inspect, simulate) or a model preset (plan). Declared once here so the three
// commands spell, check and document them alike.
#pragma once

#include "parallax/cli/options.h"
#include "parallax/model/scenario.h"

#include <optional>
#include <string>

namespace parallax::cli {

struct ModelOptions {
  std::string hf_config;
  int seq = 0;

  // Declares the two options on `options`.
  Options& declare(Options& options);
  // The help lines of the two options.
  static const char* help();
  // Refuses --seq without --hf-config (a scenario sets its own seq_length); the model of
  // --hf-config, read (InputError naming the file and the key), when given.
  std::optional<model::ModelReplacement> replacement() const;
};

// The scenario at `path`, its model block replaced when `replacement` is given.
Scenario load_scenario(const std::string& path, const std::optional<model::ModelReplacement>& replacement);

}  // namespace parallax::cli
