// Hugging Face config.json files (tests/data/hf, published configs) read into ModelSpecs: every
// field the reader sets, and the errors for an unknown architecture, a missing key and bad values.
#include "parallax/model/hf_config.h"
#include "parallax/model/scenario.h"
#include "parallax/model/presets.h"
#include "parallax/model/parameters.h"
#include "test_support.h"

#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <string>

namespace parallax {
namespace {

namespace fs = std::filesystem;
using testing::input_error;

fs::path hf(const std::string& name) { return testing::source_dir() / "tests" / "data" / "hf" / name / "config.json"; }

ModelSpec spec(const std::string& text) {
  ModelSpec m;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &m)) << text;
  return m;
}

void expect_model(const std::string& folder, const std::string& expected) {
  const ModelSpec got = model::read_hf_config(hf(folder));
  const ModelSpec want = spec(expected);
  std::string diff;
  google::protobuf::util::MessageDifferencer d;
  d.ReportDifferencesToString(&diff);
  EXPECT_TRUE(d.Compare(want, got)) << folder << ":\n" << diff << "got: " << got.ShortDebugString();
}

TEST(HfConfig, Llama3_8B) {
  expect_model("Meta-Llama-3-8B", R"(name: "Meta-Llama-3-8B" num_layers: 32 hidden_size: 4096 num_heads: 32
    ffn_hidden_size: 14336 seq_length: 8192 vocab_size: 128256 tied_embeddings: false num_query_groups: 8
    activation: SWIGLU normalization: RMSNORM attention_kernel: FLASH position_embedding: ROPE add_bias_linear: false dropout: false)");
}

TEST(HfConfig, Llama3_70B) {
  expect_model("Meta-Llama-3-70B", R"(name: "Meta-Llama-3-70B" num_layers: 80 hidden_size: 8192 num_heads: 64
    ffn_hidden_size: 28672 seq_length: 8192 vocab_size: 128256 tied_embeddings: false num_query_groups: 8
    activation: SWIGLU normalization: RMSNORM attention_kernel: FLASH position_embedding: ROPE add_bias_linear: false dropout: false)");
}

TEST(HfConfig, Llama31_405B) {
  // max_position_embeddings 131072 is the default sequence; a scenario or --seq sets the trained one.
  expect_model("Llama-3.1-405B", R"(name: "Llama-3.1-405B" num_layers: 126 hidden_size: 16384 num_heads: 128
    ffn_hidden_size: 53248 seq_length: 131072 vocab_size: 128256 tied_embeddings: false num_query_groups: 8
    activation: SWIGLU normalization: RMSNORM attention_kernel: FLASH position_embedding: ROPE add_bias_linear: false dropout: false)");
}

TEST(HfConfig, Mistral7B) {
  expect_model("Mistral-7B-v0.1", R"(name: "Mistral-7B-v0.1" num_layers: 32 hidden_size: 4096 num_heads: 32
    ffn_hidden_size: 14336 seq_length: 32768 vocab_size: 32000 tied_embeddings: false num_query_groups: 8
    activation: SWIGLU normalization: RMSNORM attention_kernel: FLASH position_embedding: ROPE add_bias_linear: false dropout: false)");
}

TEST(HfConfig, Qwen2_7B) {
  expect_model("Qwen2-7B", R"(name: "Qwen2-7B" num_layers: 28 hidden_size: 3584 num_heads: 28
    ffn_hidden_size: 18944 seq_length: 131072 vocab_size: 152064 tied_embeddings: false num_query_groups: 4
    activation: SWIGLU normalization: RMSNORM attention_kernel: FLASH position_embedding: ROPE add_bias_linear: false dropout: false)");
}

TEST(HfConfig, Nemotron4_340B) {
  expect_model("Nemotron-4-340B-Base", R"(name: "Nemotron-4-340B-Base" num_layers: 96 hidden_size: 18432
    num_heads: 96 ffn_hidden_size: 73728 seq_length: 4096 vocab_size: 256000 tied_embeddings: false
    num_query_groups: 8 head_dim: 192 activation: SQUARED_RELU normalization: LAYERNORM attention_kernel: FLASH
    position_embedding: ROPE add_bias_linear: false dropout: false)");
}

TEST(HfConfig, Gpt2IsTheGptEraModel) {
  // Every GPT-era default: GELU, LayerNorm, unfused attention, learned positions, biases, tied
  // embeddings, FFN 4h (n_inner null), head_dim hidden/heads, multi-head.
  expect_model("gpt2", R"(name: "gpt2" num_layers: 12 hidden_size: 768 num_heads: 12 seq_length: 1024
    vocab_size: 50257 tied_embeddings: true activation: GELU normalization: LAYERNORM attention_kernel: UNFUSED
    position_embedding: LEARNED add_bias_linear: true dropout: true)");
}

// ---- Mixtures of Experts (MixtralForCausalLM, Qwen3MoeForCausalLM, DeepseekV3ForCausalLM,
// GptOssForCausalLM) ----

TEST(HfConfig, Mixtral8x7B) {
  expect_model("Mixtral-8x7B-v0.1", R"(name: "Mixtral-8x7B-v0.1" num_layers: 32 hidden_size: 4096 num_heads: 32
    ffn_hidden_size: 14336 seq_length: 32768 vocab_size: 32000 tied_embeddings: false num_query_groups: 8
    activation: SWIGLU normalization: RMSNORM attention_kernel: FLASH position_embedding: ROPE add_bias_linear: false
    dropout: false num_experts: 8 moe_top_k: 2 moe_ffn_hidden_size: 14336)");
}

TEST(HfConfig, Qwen3_235B_A22B) {
  // The experts are moe_intermediate_size wide; intermediate_size is the dense MLP's (no layer has one).
  expect_model("Qwen3-235B-A22B", R"(name: "Qwen3-235B-A22B" num_layers: 94 hidden_size: 4096 num_heads: 64
    ffn_hidden_size: 12288 seq_length: 40960 vocab_size: 151936 tied_embeddings: false num_query_groups: 4
    head_dim: 128 activation: SWIGLU normalization: RMSNORM attention_kernel: FLASH position_embedding: ROPE
    add_bias_linear: false dropout: false num_experts: 128 moe_top_k: 8 moe_ffn_hidden_size: 1536)");
}

std::string config_with(const std::string& folder, const std::string& replace, const std::string& with);

TEST(HfConfig, DeepSeekV3) {
  // Multi-head latent attention (no key/value groups), 3 dense layers of 18432, then 256 routed
  // experts of 2048 and one shared, and its multi-token-prediction module (num_nextn_predict_layers).
  expect_model("DeepSeek-V3", R"(name: "DeepSeek-V3" num_layers: 61 hidden_size: 7168 num_heads: 128
    ffn_hidden_size: 18432 seq_length: 163840 vocab_size: 129280 tied_embeddings: false activation: SWIGLU
    normalization: RMSNORM attention_kernel: FLASH position_embedding: ROPE add_bias_linear: false dropout: false
    num_experts: 256 moe_top_k: 8 moe_ffn_hidden_size: 2048 moe_dense_layers: 3 num_shared_experts: 1
    kv_lora_rank: 512 q_lora_rank: 1536 qk_nope_head_dim: 128 qk_rope_head_dim: 64 v_head_dim: 128 mtp_layers: 1)");
  EXPECT_NE(input_error([] {
              model::parse_hf_config(config_with("DeepSeek-V3", "\"num_nextn_predict_layers\": 1", "\"num_nextn_predict_layers\": 9"),
                                     "c.json");
            }).find("c.json: field `num_nextn_predict_layers`: must be 0 to 8 (got 9)"),
            std::string::npos);
}

TEST(HfConfig, GptOss120B) {
  // Sliding window 128 on the even layers (layer_types), sinks in every layer, biases.
  expect_model("gpt-oss-120b", R"(name: "gpt-oss-120b" num_layers: 36 hidden_size: 2880 num_heads: 64
    ffn_hidden_size: 2880 seq_length: 131072 vocab_size: 201088 tied_embeddings: false num_query_groups: 8
    head_dim: 64 activation: SWIGLU normalization: RMSNORM attention_kernel: FLASH position_embedding: ROPE
    add_bias_linear: true dropout: false num_experts: 128 moe_top_k: 4 moe_ffn_hidden_size: 2880
    attention_sinks: true sliding_window: 128 sliding_window_pattern: 2)");
}

// The same models as the bundled presets: the same parameters, total and activated.
TEST(HfConfig, MixturesOfExpertsMatchTheirPresets) {
  for (const auto& [folder, preset] : {std::pair{"Mixtral-8x7B-v0.1", "mixtral-8x7b"}, {"Qwen3-235B-A22B", "qwen3-235b-a22b"},
                                       {"DeepSeek-V3", "deepseek-v3"}, {"gpt-oss-120b", "gpt-oss-120b"}}) {
    auto dims_of = [](ModelSpec m) {
      m.set_seq_length(4096);
      Scenario sc;
      *sc.mutable_model() = m;
      sc.mutable_layout()->set_global_batch_size(1);
      return model::dims(sc);
    };
    const ModelSpec from_hf = model::read_hf_config(hf(folder));
    // DeepSeek-V3's config has its multi-token prediction module (num_nextn_predict_layers 1); the
    // preset is the main model (DeepSeek's 671B), so the module is compared with it added.
    EXPECT_EQ(from_hf.mtp_layers(), std::string(preset) == "deepseek-v3" ? 1 : 0) << folder;
    ModelSpec bundled = model::load_model(preset);
    bundled.set_mtp_layers(from_hf.mtp_layers());
    const model::Dims hf_dims = dims_of(from_hf);
    const model::Dims preset_dims = dims_of(bundled);
    EXPECT_DOUBLE_EQ(model::total_parameters(hf_dims, false), model::total_parameters(preset_dims, false)) << folder;
    EXPECT_DOUBLE_EQ(model::activated_parameters(hf_dims, false), model::activated_parameters(preset_dims, false)) << folder;
  }
}

std::string config_with(const std::string& folder, const std::string& replace, const std::string& with) {
  std::string text = testing::file_text(hf(folder));
  const auto at = text.find(replace);
  EXPECT_NE(at, std::string::npos) << replace;
  return text.replace(at, replace.size(), with);
}

TEST(HfConfig, UnmodelledExpertLayoutsAreNamed) {
  auto error = [](const std::string& folder, const std::string& replace, const std::string& with) {
    return input_error([&] { model::parse_hf_config(config_with(folder, replace, with), "c.json"); });
  };
  EXPECT_NE(error("Qwen3-235B-A22B", "\"decoder_sparse_step\": 1", "\"decoder_sparse_step\": 2")
                .find("c.json: field `decoder_sparse_step`: 2 (a dense MLP between MoE layers) is not modelled"),
            std::string::npos);
  EXPECT_NE(error("Qwen3-235B-A22B", "\"mlp_only_layers\": []", "\"mlp_only_layers\": [0, 5]")
                .find("c.json: field `mlp_only_layers`: dense MLP layers among the MoE layers are not modelled"),
            std::string::npos);
  EXPECT_NE(error("DeepSeek-V3", "\"moe_layer_freq\": 1", "\"moe_layer_freq\": 2").find("c.json: field `moe_layer_freq`: 2"),
            std::string::npos);
  EXPECT_NE(error("DeepSeek-V3", "\"first_k_dense_replace\": 3", "\"first_k_dense_replace\": 61")
                .find("c.json: field `first_k_dense_replace`: must be 0 to num_hidden_layers - 1 = 60 (got 61)"),
            std::string::npos);
  EXPECT_NE(error("DeepSeek-V3", "\"kv_lora_rank\"", "\"unused_kv_lora_rank\"").find("c.json: field `kv_lora_rank`: missing"),
            std::string::npos);
  EXPECT_NE(error("Mixtral-8x7B-v0.1", "\"num_experts_per_tok\": 2", "\"num_experts_per_tok\": 9")
                .find("c.json: field `num_experts_per_tok`: 9 is more than the 8 experts (`num_local_experts`)"),
            std::string::npos);
  EXPECT_NE(error("Mixtral-8x7B-v0.1", "\"num_local_experts\"", "\"unused_num_local_experts\"")
                .find("c.json: field `num_local_experts`: missing"),
            std::string::npos);
  // GPT-OSS's layer pattern: one full layer closing every period; anything else is named.
  EXPECT_NE(error("gpt-oss-120b", "\"sliding_attention\",\n    \"full_attention\",\n    \"sliding_attention\"",
                  "\"sliding_attention\",\n    \"full_attention\",\n    \"full_attention\"")
                .find("c.json: field `layer_types`: layer 2 breaks the pattern of one full-attention layer every 2"),
            std::string::npos);
}

std::string llama_with(const std::string& replace, const std::string& with) {
  return config_with("Meta-Llama-3-8B", replace, with);
}

TEST(HfConfig, UnknownArchitectureNamesTheFileTheFieldAndTheSupportedList) {
  const std::string e = input_error([] {
    model::parse_hf_config(llama_with("\"LlamaForCausalLM\"", "\"FalconForCausalLM\""), "falcon/config.json");
  });
  EXPECT_NE(e.find("falcon/config.json: field `architectures`: \"FalconForCausalLM\" is not supported; supported: "
                   "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, NemotronForCausalLM, GPT2LMHeadModel"),
            std::string::npos)
      << e;
  EXPECT_NE(input_error([] { model::parse_hf_config("{\"hidden_size\": 8}", "x.json"); })
                .find("x.json: field `architectures`: missing"),
            std::string::npos);
}

TEST(HfConfig, MissingKeyIsNamed) {
  for (const std::string key : {"num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads",
                                "vocab_size", "max_position_embeddings", "hidden_act"}) {
    const std::string e = input_error([&] {
      model::parse_hf_config(llama_with("\"" + key + "\"", "\"unused_" + key + "\""), "llama/config.json");
    });
    EXPECT_NE(e.find("llama/config.json: field `" + key + "`: missing"), std::string::npos) << key << ": " << e;
  }
  std::string gpt2 = testing::file_text(hf("gpt2"));
  gpt2.replace(gpt2.find("\"n_embd\""), 8, "\"n_embx\"");
  EXPECT_NE(input_error([&] { model::parse_hf_config(gpt2, "gpt2/config.json"); })
                .find("gpt2/config.json: field `n_embd`: missing"),
            std::string::npos);
}

TEST(HfConfig, BadValuesAreNamed) {
  EXPECT_NE(input_error([] { model::parse_hf_config(llama_with("\"hidden_size\": 4096", "\"hidden_size\": 0"), "c.json"); })
                .find("c.json: field `hidden_size`: must be a whole number >= 1 (got 0)"),
            std::string::npos);
  EXPECT_NE(input_error([] {
              model::parse_hf_config(llama_with("\"num_key_value_heads\": 8", "\"num_key_value_heads\": 5"), "c.json");
            }).find("c.json: field `num_key_value_heads`: 5 does not divide num_attention_heads 32"),
            std::string::npos);
  EXPECT_NE(input_error([] { model::parse_hf_config(llama_with("\"silu\"", "\"gelu\""), "c.json"); })
                .find("c.json: field `hidden_act`: \"gelu\" in the gated MLP of LlamaForCausalLM is not modelled"),
            std::string::npos);
  EXPECT_NE(input_error([] { model::parse_hf_config("{ not json", "c.json"); })
                .find("c.json: not a Hugging Face config.json parallax can read"),
            std::string::npos);
  EXPECT_NE(input_error([] { model::read_hf_config("/nonexistent/config.json"); }).find("/nonexistent/config.json"),
            std::string::npos);
}

TEST(HfConfig, EpsilonKeySaysTheNorm) {
  // A LayerNorm epsilon (no rms_norm_eps) on a Llama-shaped config: LayerNorm.
  const ModelSpec m = model::parse_hf_config(llama_with("\"rms_norm_eps\"", "\"layer_norm_eps\""), "c.json");
  EXPECT_EQ(m.normalization(), ModelSpec::LAYERNORM);
  // attention_bias true: biases.
  EXPECT_TRUE(model::parse_hf_config(llama_with("\"attention_bias\": false", "\"attention_bias\": true"), "c.json")
                  .add_bias_linear());
  // tie_word_embeddings absent: PretrainedConfig's default, tied.
  EXPECT_TRUE(model::parse_hf_config(llama_with("\"tie_word_embeddings\": false,", ""), "c.json").tied_embeddings());
  // num_key_value_heads absent: multi-head (0 = num_heads).
  EXPECT_EQ(model::parse_hf_config(llama_with("\"num_key_value_heads\": 8,", ""), "c.json").num_query_groups(), 0);
}

}  // namespace
}  // namespace parallax
