#include "parallax/model/hf_config.h"

#include "parallax/hf_config.pb.h"
#include "parallax/model/scenario.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <iterator>
#include <optional>
#include <utility>

namespace parallax::model {
namespace {

namespace fs = std::filesystem;

enum class Family { Llama, Mistral, Qwen2, Nemotron, Gpt2, Mixtral, Qwen3Moe, DeepseekV3, GptOss };

struct Architecture {
  const char* name;
  Family family;
};

constexpr Architecture kArchitectures[] = {
    {"LlamaForCausalLM", Family::Llama},       {"MistralForCausalLM", Family::Mistral},
    {"Qwen2ForCausalLM", Family::Qwen2},       {"NemotronForCausalLM", Family::Nemotron},
    {"GPT2LMHeadModel", Family::Gpt2},         {"MixtralForCausalLM", Family::Mixtral},
    {"Qwen3MoeForCausalLM", Family::Qwen3Moe}, {"DeepseekV3ForCausalLM", Family::DeepseekV3},
    {"GptOssForCausalLM", Family::GptOss},
};

// Llama, Mistral and Qwen2 have a gated MLP (gate and up projections, act(gate) * up): with SiLU
// that is SwiGLU.
// Mixtral, Qwen3-MoE, DeepSeek-V3 and GPT-OSS gate their experts (and dense MLPs) the same way.
bool gated_mlp(Family f) { return f != Family::Nemotron && f != Family::Gpt2; }

std::string supported_list() {
  std::string out;
  for (const auto& a : kArchitectures) out += (out.empty() ? "" : ", ") + std::string(a.name);
  return out;
}

// Messages about the keys of one file.
class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& problem) const {
    throw InputError(file_ + ": field `" + key + "`: " + problem);
  }

  // A required whole number >= 1.
  int positive(const std::string& key, bool has, int value, const std::string& arch) const {
    if (!has)
      fail(key, "missing: a Hugging Face config of " + arch +
                    " names it; add it (see the model's config.json on the Hub)");
    if (value < 1) fail(key, "must be a whole number >= 1 (got " + std::to_string(value) + ")");
    return value;
  }
  // An optional whole number >= 1 (absent or null: nothing).
  std::optional<int> optional_positive(const std::string& key, bool has, int value) const {
    if (!has) return std::nullopt;
    if (value < 1) fail(key, "must be a whole number >= 1 (got " + std::to_string(value) + ")");
    return value;
  }

 private:
  std::string file_;
};

// The Mixture-of-Experts, latent-attention and sliding-window keys of Mixtral, Qwen3-MoE, DeepSeek-V3
// and GPT-OSS (transformers' MixtralConfig, Qwen3MoeConfig, DeepseekV3Config, GptOssConfig).
void read_moe(const hf::HfConfig& c, const Reader& r, const std::string& arch, Family family, ModelSpec& m) {
  if (family != Family::Mixtral && family != Family::Qwen3Moe && family != Family::DeepseekV3 && family != Family::GptOss)
    return;
  // Each family names its expert count differently.
  struct Key {
    const char* name;
    bool has;
    int value;
  };
  const Key count = family == Family::Qwen3Moe     ? Key{"num_experts", c.has_num_experts(), c.num_experts()}
                    : family == Family::DeepseekV3 ? Key{"n_routed_experts", c.has_n_routed_experts(), c.n_routed_experts()}
                                                   : Key{"num_local_experts", c.has_num_local_experts(), c.num_local_experts()};
  const char* experts_key = count.name;
  const int experts = r.positive(count.name, count.has, count.value, arch);
  const bool oss_alias = family == Family::GptOss && !c.has_num_experts_per_tok() && c.has_experts_per_token();
  const int top_k = oss_alias ? r.positive("experts_per_token", true, c.experts_per_token(), arch)
                              : r.positive("num_experts_per_tok", c.has_num_experts_per_tok(), c.num_experts_per_tok(), arch);
  if (top_k > experts)
    r.fail(oss_alias ? "experts_per_token" : "num_experts_per_tok",
           std::to_string(top_k) + " is more than the " + std::to_string(experts) + " experts (`" + experts_key + "`)");
  m.set_num_experts(experts);
  m.set_moe_top_k(top_k);
  // Mixtral and GPT-OSS: every layer's experts are intermediate_size wide; Qwen3-MoE and DeepSeek-V3
  // name the expert width moe_intermediate_size (intermediate_size is their dense MLP's).
  if (family == Family::Qwen3Moe || family == Family::DeepseekV3)
    m.set_moe_ffn_hidden_size(
        r.positive("moe_intermediate_size", c.has_moe_intermediate_size(), c.moe_intermediate_size(), arch));
  else
    m.set_moe_ffn_hidden_size(m.ffn_hidden_size());
  if (family == Family::Qwen3Moe) {
    // Every layer MoE is what parallax models (Qwen3's published MoE models); a dense MLP between
    // them is not.
    if (c.has_decoder_sparse_step() && c.decoder_sparse_step() != 1)
      r.fail("decoder_sparse_step", std::to_string(c.decoder_sparse_step()) +
                                        " (a dense MLP between MoE layers) is not modelled: only 1 (every layer MoE) is");
    if (c.mlp_only_layers_size() > 0)
      r.fail("mlp_only_layers", "dense MLP layers among the MoE layers are not modelled; only an empty list is");
  }
  if (family == Family::DeepseekV3) {
    if (c.has_moe_layer_freq() && c.moe_layer_freq() != 1)
      r.fail("moe_layer_freq", std::to_string(c.moe_layer_freq()) +
                                   " (a dense layer between MoE layers) is not modelled: only 1 (every layer after "
                                   "first_k_dense_replace MoE) is");
    if (c.has_first_k_dense_replace()) {
      if (c.first_k_dense_replace() < 0 || c.first_k_dense_replace() >= m.num_layers())
        r.fail("first_k_dense_replace", "must be 0 to num_hidden_layers - 1 = " + std::to_string(m.num_layers() - 1) +
                                            " (got " + std::to_string(c.first_k_dense_replace()) + ")");
      m.set_moe_dense_layers(c.first_k_dense_replace());
    }
    if (c.has_n_shared_experts()) {
      if (c.n_shared_experts() < 0)
        r.fail("n_shared_experts", "must not be negative (got " + std::to_string(c.n_shared_experts()) + ")");
      m.set_num_shared_experts(c.n_shared_experts());
    }
    // Multi-head latent attention: every head has its own keys and values from the latent.
    m.set_kv_lora_rank(r.positive("kv_lora_rank", c.has_kv_lora_rank(), c.kv_lora_rank(), arch));
    if (const auto q = r.optional_positive("q_lora_rank", c.has_q_lora_rank(), c.q_lora_rank())) m.set_q_lora_rank(*q);
    m.set_qk_nope_head_dim(r.positive("qk_nope_head_dim", c.has_qk_nope_head_dim(), c.qk_nope_head_dim(), arch));
    m.set_qk_rope_head_dim(r.positive("qk_rope_head_dim", c.has_qk_rope_head_dim(), c.qk_rope_head_dim(), arch));
    m.set_v_head_dim(r.positive("v_head_dim", c.has_v_head_dim(), c.v_head_dim(), arch));
    m.clear_num_query_groups();
    m.clear_head_dim();
  }
  // DeepSeek-V3's multi-token prediction modules, trained with the model (its checkpoint holds them).
  if (c.has_num_nextn_predict_layers()) {
    if (c.num_nextn_predict_layers() < 0 || c.num_nextn_predict_layers() > kMaxMtpLayers)
      r.fail("num_nextn_predict_layers", "must be 0 to " + std::to_string(kMaxMtpLayers) + " (got " +
                                             std::to_string(c.num_nextn_predict_layers()) + ")");
    m.set_mtp_layers(c.num_nextn_predict_layers());
  }
  if (family == Family::GptOss) {
    // Attention sinks in every layer (a learned logit per head); the sliding window on the layers
    // layer_types names, which must repeat with one full layer closing each period (GPT-OSS:
    // sliding, full, sliding, full, ...).
    m.set_attention_sinks(true);
    const auto window = r.optional_positive("sliding_window", c.has_sliding_window(), c.sliding_window());
    if (window) {
      if (c.layer_types_size() != m.num_layers())
        r.fail("layer_types", "has " + std::to_string(c.layer_types_size()) + " entries for num_hidden_layers " +
                                  std::to_string(m.num_layers()) + "; it names each layer's attention");
      int period = 0;
      for (int l = 0; l < c.layer_types_size(); ++l) {
        const std::string& type = c.layer_types(l);
        if (type != "sliding_attention" && type != "full_attention")
          r.fail("layer_types", "entry " + std::to_string(l) + " \"" + type +
                                    "\" is not sliding_attention or full_attention");
        if (type == "full_attention" && period == 0) period = l + 1;
      }
      if (period == 0) period = 1 + c.layer_types_size();  // no full layer: every layer windowed
      for (int l = 0; l < c.layer_types_size(); ++l) {
        const bool full = period <= c.layer_types_size() && l % period == period - 1;
        if ((c.layer_types(l) == "full_attention") != full)
          r.fail("layer_types", "layer " + std::to_string(l) + " breaks the pattern of one full-attention layer every " +
                                    std::to_string(period) + " (the only pattern modelled)");
      }
      m.set_sliding_window(*window);
      // A period beyond the layers: every layer windowed (is_windowed_layer with pattern <= 1).
      m.set_sliding_window_pattern(period <= c.layer_types_size() ? period : 1);
    }
  }
}

}  // namespace

const std::vector<std::string>& supported_hf_architectures() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& a : kArchitectures) out.emplace_back(a.name);
    return out;
  }();
  return names;
}

ModelSpec parse_hf_config(const std::string& json, const fs::path& path) {
  const std::string file = path.string();
  hf::HfConfig c;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;  // a config.json has dozens of keys parallax does not use
  if (const auto status = google::protobuf::util::JsonStringToMessage(json, &c, options); !status.ok())
    throw InputError(file + ": not a Hugging Face config.json parallax can read (" + std::string(status.message()) +
                     "); give the model's config.json (JSON) from the Hugging Face Hub");
  const Reader r(file);

  if (c.architectures_size() == 0)
    r.fail("architectures", "missing: the config names no architecture; supported: " + supported_list());
  const std::string& arch = c.architectures(0);
  const auto found = std::find_if(std::begin(kArchitectures), std::end(kArchitectures),
                                  [&](const Architecture& a) { return arch == a.name; });
  if (found == std::end(kArchitectures))
    r.fail("architectures", "\"" + arch + "\" is not supported; supported: " + supported_list());
  const Family family = found->family;
  const bool gpt2 = family == Family::Gpt2;

  ModelSpec m;
  m.set_name(path.filename() == "config.json" && path.has_parent_path() && !path.parent_path().filename().empty()
                 ? path.parent_path().filename().string()
                 : path.stem().string());
  int heads = 0;
  if (gpt2) {
    m.set_num_layers(r.positive("n_layer", c.has_n_layer(), c.n_layer(), arch));
    m.set_hidden_size(r.positive("n_embd", c.has_n_embd(), c.n_embd(), arch));
    heads = r.positive("n_head", c.has_n_head(), c.n_head(), arch);
    // n_inner null or absent: 4 * n_embd, which ffn_hidden_size 0 means too.
    if (const auto inner = r.optional_positive("n_inner", c.has_n_inner(), c.n_inner())) m.set_ffn_hidden_size(*inner);
    m.set_seq_length(r.positive("n_positions", c.has_n_positions(), c.n_positions(), arch));
  } else {
    m.set_num_layers(r.positive("num_hidden_layers", c.has_num_hidden_layers(), c.num_hidden_layers(), arch));
    m.set_hidden_size(r.positive("hidden_size", c.has_hidden_size(), c.hidden_size(), arch));
    heads = r.positive("num_attention_heads", c.has_num_attention_heads(), c.num_attention_heads(), arch);
    m.set_ffn_hidden_size(r.positive("intermediate_size", c.has_intermediate_size(), c.intermediate_size(), arch));
    m.set_seq_length(
        r.positive("max_position_embeddings", c.has_max_position_embeddings(), c.max_position_embeddings(), arch));
  }
  m.set_num_heads(heads);
  const std::string heads_key = gpt2 ? "n_head" : "num_attention_heads";
  if (const auto kv = r.optional_positive("num_key_value_heads", c.has_num_key_value_heads(), c.num_key_value_heads())) {
    if (heads % *kv != 0)
      r.fail("num_key_value_heads", std::to_string(*kv) + " does not divide " + heads_key + " " +
                                        std::to_string(heads) + " (each key/value head serves a whole group)");
    m.set_num_query_groups(*kv);
  }
  if (const auto hd = r.optional_positive("head_dim", c.has_head_dim(), c.head_dim())) {
    m.set_head_dim(*hd);
  } else if (m.hidden_size() % heads != 0) {
    r.fail(heads_key, std::to_string(heads) + " does not divide the hidden size " + std::to_string(m.hidden_size()) +
                          " and the config gives no head_dim");
  }
  m.set_vocab_size(r.positive("vocab_size", c.has_vocab_size(), c.vocab_size(), arch));
  // PretrainedConfig's default is true (GPT-2 ties; Llama, Mistral, Qwen2-7B and Nemotron say false).
  m.set_tied_embeddings(c.has_tie_word_embeddings() ? c.tie_word_embeddings() : true);

  // Activation. GPT-2 names it activation_function, the others hidden_act.
  const std::string act_key = gpt2 ? "activation_function" : "hidden_act";
  const bool has_act = gpt2 ? c.has_activation_function() : c.has_hidden_act();
  const std::string act = gpt2 ? c.activation_function() : c.hidden_act();
  if (!has_act) r.fail(act_key, "missing: a Hugging Face config of " + arch + " names it; add it");
  const bool gelu = act.rfind("gelu", 0) == 0;  // gelu, gelu_new, gelu_pytorch_tanh, gelu_fast: one cost
  if (gated_mlp(family)) {
    if (act != "silu")
      r.fail(act_key, "\"" + act + "\" in the gated MLP of " + arch +
                          " is not modelled: only silu (SwiGLU) is; GeGLU and others are not");
    m.set_activation(ModelSpec::SWIGLU);
  } else if (act == "relu2") {
    m.set_activation(ModelSpec::SQUARED_RELU);
  } else if (gelu) {
    m.set_activation(ModelSpec::GELU);
  } else {
    r.fail(act_key, "\"" + act + "\" is not modelled for " + arch + ": relu2 (squared ReLU) and gelu* are");
  }

  // Normalisation: the epsilon key says which one the checkpoint uses. Nemotron's norm_eps is its
  // LayerNorm1P (LayerNorm with weight + 1: the same cost as LayerNorm).
  if (c.has_rms_norm_eps()) {
    m.set_normalization(ModelSpec::RMSNORM);
  } else if (c.has_layer_norm_eps() || c.has_norm_eps() || c.has_layer_norm_epsilon()) {
    m.set_normalization(ModelSpec::LAYERNORM);
  } else {
    // transformers' modelling code of the architecture decides when the config is silent.
    m.set_normalization(gated_mlp(family) ? ModelSpec::RMSNORM : ModelSpec::LAYERNORM);
  }

  if (gpt2) {
    // GPT-2: learned positions, biases on every linear layer, and the attention as its reference
    // implementation computes it (scores, softmax, context: UNFUSED), which the GPT-era validation
    // runs used. A scenario that runs it with a fused kernel sets model.attention_kernel: FLASH.
    m.set_position_embedding(ModelSpec::LEARNED);
    m.set_add_bias_linear(true);
    m.set_attention_kernel(ModelSpec::UNFUSED);
  } else {
    // The modern architectures apply rotary embeddings in every layer (rope_theta is its base;
    // transformers defaults it when absent) and are trained with a fused (flash) attention kernel.
    m.set_position_embedding(ModelSpec::ROPE);
    m.set_attention_kernel(ModelSpec::FLASH);
    // attention_bias / mlp_bias (absent: false). One switch in the schema: biases when either says
    // so. Qwen2 has q/k/v biases its config does not state (about 0.01% of the parameters):
    // counted as no bias.
    m.set_add_bias_linear((c.has_attention_bias() && c.attention_bias()) || (c.has_mlp_bias() && c.mlp_bias()));
  }
  // Dropout: trained with it when any rate the config gives is above 0 (GPT-2's defaults are 0.1;
  // the modern architectures' absent rates are 0).
  const double rate = std::max({c.attention_dropout(), c.hidden_dropout(), c.has_resid_pdrop() ? c.resid_pdrop() : (gpt2 ? 0.1 : 0.0),
                                c.has_embd_pdrop() ? c.embd_pdrop() : (gpt2 ? 0.1 : 0.0), c.has_attn_pdrop() ? c.attn_pdrop() : (gpt2 ? 0.1 : 0.0)});
  m.set_dropout(rate > 0);
  read_moe(c, r, arch, family, m);
  return m;
}

ModelSpec read_hf_config(const fs::path& file) {
  return parse_hf_config(traces::read_file(file, traces::kMaxTextFileBytes, "Hugging Face config (config.json)"),
                         file);
}

}  // namespace parallax::model
