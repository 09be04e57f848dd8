#include "model_options.h"

#include "parallax/model/hf_config.h"

namespace parallax::cli {

Options& ModelOptions::declare(Options& options) {
  return options.text("--hf-config", hf_config, "a Hugging Face config.json, e.g. --hf-config llama3-8b/config.json")
      .whole("--seq", seq, 1, "a sequence length in tokens, e.g. --seq 8192");
}

const char* ModelOptions::help() {
  return R"(  --hf-config FILE  the model from a Hugging Face config.json (architectures LlamaForCausalLM,
                    MistralForCausalLM, Qwen2ForCausalLM, NemotronForCausalLM, GPT2LMHeadModel,
                    MixtralForCausalLM, Qwen3MoeForCausalLM, DeepseekV3ForCausalLM,
                    GptOssForCausalLM) instead of the scenario's model block; the scenario's seq_length and
                    precision are kept, else max_position_embeddings and BF16
  --seq N           with --hf-config: the sequence length (overrides the scenario's and the config's)
)";
}

std::optional<model::ModelReplacement> ModelOptions::replacement() const {
  if (hf_config.empty()) {
    if (seq > 0)
      throw InputError("--seq goes with --hf-config (a scenario sets model.seq_length; a model preset its "
                       "seq_length)");
    return std::nullopt;
  }
  return model::ModelReplacement{model::read_hf_config(hf_config), hf_config, seq};
}

Scenario load_scenario(const std::string& path, const std::optional<model::ModelReplacement>& replacement) {
  return replacement ? model::load_scenario(path, *replacement) : model::load_scenario(path);
}

}  // namespace parallax::cli
