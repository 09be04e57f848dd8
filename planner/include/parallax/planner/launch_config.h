// Launch configurations: a scenario's layout as the command-line arguments of Megatron-LM (and NeMo's
// Megatron-based recipes, which take the same names) or as a torchtitan job TOML, so a user can start
// the run `parallax plan` recommends; and those texts read back into the layout, so a test (or a user
// checking a hand-edited launch script) can see they describe the same run.
//
// What a framework cannot express is refused with an InputError naming the layout field, its value
// and what the framework offers instead (Megatron-LM has no GPipe schedule and no ZeRO-2; torchtitan
// shards with FSDP or replicates with DDP, always runs sequence parallelism with tp, ...).
#pragma once

#include "parallax/parallax.pb.h"

#include <string>

namespace parallax::planner {

enum class LaunchTarget { Megatron, Torchtitan };
// "megatron" | "torchtitan"; throws InputError naming `option` for anything else.
LaunchTarget parse_launch_target(const std::string& name, const std::string& option = "--emit");

// Megatron-LM pretrain_gpt.py arguments, one per line ending in " \", preceded by a comment line giving
// the GPU count and the data-parallel degree Megatron derives from it.
std::string megatron_arguments(const Scenario& scenario);
// A torchtitan job config: the [model], [training], [parallelism], [activation_checkpoint] and
// [float8] entries of the layout, with a comment naming the GPU count.
std::string torchtitan_toml(const Scenario& scenario);
std::string launch_config(const Scenario& scenario, LaunchTarget target);

// The layout (and the model's precision fields) a launch text describes: Megatron's on `gpus` GPUs
// (it derives dp from the world size), torchtitan's for a model of `num_layers` layers (its model
// flavour holds them; the TOML gives layers per pipeline stage). Returned as a Scenario holding
// model { num_layers, precision, fp8_recipe, fp8_params } and layout; unknown arguments or keys are
// ignored, malformed values throw InputError naming `source`.
Scenario parse_megatron_arguments(const std::string& text, int gpus, const std::string& source = "arguments");
Scenario parse_torchtitan_toml(const std::string& text, int num_layers, const std::string& source = "toml");

}  // namespace parallax::planner
