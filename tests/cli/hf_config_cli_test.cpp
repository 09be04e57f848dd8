// --hf-config on inspect, simulate and plan: the model of a Hugging Face config.json replaces the
// scenario's model block (or the model preset), and bad input exits 2 naming the file and the key.
#include "test_support.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace parallax {
namespace {

using testing::run_command;
namespace fs = std::filesystem;

std::string cli() { return PARALLAX_CLI; }
std::string hf(const std::string& name) {
  return (testing::source_dir() / "tests" / "data" / "hf" / name / "config.json").string();
}

// GPT-2 small (12 heads) on one DGX A100: tp 4 divides its heads.
fs::path gpt2_scenario(const testing::TempDir& dir) {
  const fs::path path = dir / "gpt2.pbtxt";
  std::ofstream(path) << R"(model { num_layers: 2 hidden_size: 64 num_heads: 4 seq_length: 512 vocab_size: 1000 }
cluster { preset: "dgx-a100-80g" num_nodes: 1 }
layout { dp: 2 tp: 4 global_batch_size: 16 }
)";
  return path;
}

TEST(HfConfigCli, InspectGpt2ReplacesTheScenariosModel) {
  const testing::TempDir dir;
  const auto sc = gpt2_scenario(dir).string();
  // --seq 1024 (the config's n_positions): GPT-2 small's published 124,439,808 parameters (tied
  // embeddings, 1024 learned positions, biases), plus the 3 rows of 768 that pad its 50257-word
  // vocabulary to a multiple of tp 4 as Megatron does (the rows exist in the embedding it trains).
  auto r = run_command(cli() + " inspect --json " + sc + " --hf-config " + hf("gpt2") + " --seq 1024");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"parameters\": " + std::to_string(124439808 + 3 * 768)), std::string::npos) << r.out;
  // Without --seq the scenario's seq_length (512) stays: fewer position parameters.
  r = run_command(cli() + " inspect " + sc + " --hf-config " + hf("gpt2"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("model       gpt2: 12 layers, hidden 768, 12 heads, seq 512, vocab 50257"), std::string::npos)
      << r.out;
}

TEST(HfConfigCli, SimulateAndPlanTakeIt) {
  const testing::TempDir dir;
  const auto sc = gpt2_scenario(dir).string();
  auto r = run_command(cli() + " simulate --json " + sc + " --hf-config " + hf("gpt2"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"step_time_s\""), std::string::npos);
  // plan with no scenario: the config is the model.
  r = run_command(cli() + " plan --hf-config " + hf("gpt2") +
                  " --gpus 8 --cluster dgx-a100-80g --global-batch 16 --top 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"model\": \"gpt2\""), std::string::npos) << r.out;
}

TEST(HfConfigCli, BadInputExitsTwo) {
  const testing::TempDir dir;
  const auto sc = gpt2_scenario(dir).string();
  // An unknown architecture: the file, the field and the supported list.
  const fs::path falcon = dir / "config.json";
  std::ofstream(falcon) << R"({"architectures": ["FalconForCausalLM"], "hidden_size": 4544})";
  auto r = run_command(cli() + " inspect " + sc + " --hf-config " + falcon.string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(falcon.string() + ": field `architectures`: \"FalconForCausalLM\" is not supported; supported: "
                                          "LlamaForCausalLM"),
            std::string::npos)
      << r.err;
  // A missing file.
  r = run_command(cli() + " simulate " + sc + " --hf-config " + (dir / "none.json").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("none.json"), std::string::npos) << r.err;
  // --seq alone.
  r = run_command(cli() + " inspect " + sc + " --seq 2048");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--seq goes with --hf-config"), std::string::npos) << r.err;
  // plan: a model preset and --hf-config both give the model.
  r = run_command(cli() + " plan gpt3-175b --hf-config " + hf("gpt2") + " --gpus 8 --cluster dgx-a100-80g --global-batch 16");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--hf-config gives the model, and so does the model preset \"gpt3-175b\""), std::string::npos)
      << r.err;
  // plan: --hf-config alone needs the cluster, GPUs and batch.
  r = run_command(cli() + " plan --hf-config " + hf("gpt2") + " --gpus 8 --cluster dgx-a100-80g");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--hf-config without a scenario needs a global batch size"), std::string::npos) << r.err;
  // A model field the scenario loader refuses names the config file, not the scenario.
  std::string text = testing::file_text(hf("gpt2"));
  text.replace(text.find("\"n_layer\": 12"), 13, "\"n_layer\": 40000");
  const fs::path deep = dir / "deep.json";
  std::ofstream(deep) << text;
  r = run_command(cli() + " inspect " + sc + " --hf-config " + deep.string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(deep.string() + ": model.num_layers: at most 32767 layers"), std::string::npos) << r.err;
  // The layout stays the scenario's: its lines are named.
  const fs::path tp8 = dir / "tp8.pbtxt";
  std::ofstream(tp8) << R"(model { num_layers: 2 hidden_size: 64 num_heads: 4 seq_length: 512 vocab_size: 1000 }
cluster { preset: "dgx-a100-80g" num_nodes: 1 }
layout { tp: 8 global_batch_size: 16 }
)";
  r = run_command(cli() + " inspect " + tp8.string() + " --hf-config " + hf("gpt2"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(tp8.string() + ":3: layout.tp: num_heads 12 is not divisible by tp 8"), std::string::npos)
      << r.err;
}

// Llama 3 8B on one DGX H100: the config's GQA, SwiGLU, RMSNorm, RoPE and untied embeddings reach
// the parameter count.
TEST(HfConfigCli, InspectLlama3_8B) {
  const testing::TempDir dir;
  const fs::path sc = dir / "llama.pbtxt";
  std::ofstream(sc) << R"(model { num_layers: 2 hidden_size: 64 num_heads: 4 seq_length: 8192 vocab_size: 1000 }
cluster { preset: "dgx-h100" num_nodes: 1 }
layout { dp: 8 global_batch_size: 64 zero_stage: 1 recompute: FULL }
)";
  const auto r = run_command(cli() + " inspect --json " + sc.string() + " --hf-config " + hf("Meta-Llama-3-8B"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // 8,030,261,248 parameters: 2 x 128256 x 4096 untied embeddings, 32 layers of GQA (8 kv heads)
  // attention and a SwiGLU MLP of 14336, RMSNorm weights.
  EXPECT_NE(r.out.find("\"parameters\": 8030261248"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace parallax
