// Loading scenarios: presets and overrides, JSON, and every class of bad input rejected with a
// message naming the file, the line, the field and the fix.
#include "parallax/model/scenario.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <fstream>

namespace parallax::model {
namespace {

using parallax::testing::scenario_from_text;
using parallax::testing::scenarios_dir;

TEST(Scenario, PresetIsMergedAndOverridden) {
  const Scenario sc = scenario_from_text(R"(
    model { num_layers: 8 hidden_size: 512 num_heads: 8 seq_length: 256 vocab_size: 1024 }
    cluster { preset: "dgx-a100-80g" num_nodes: 2 nic_gbit_per_s: 400 gpu { hbm_gb: 40 } }
    layout { dp: 16 global_batch_size: 32 })");
  EXPECT_EQ(sc.cluster().num_nodes(), 2);
  EXPECT_EQ(sc.cluster().gpus_per_node(), 8);           // from the cluster preset
  EXPECT_DOUBLE_EQ(sc.cluster().nic_gbit_per_s(), 400);  // overridden
  EXPECT_DOUBLE_EQ(sc.cluster().gpu().hbm_gb(), 40);     // GPU preset field overridden
  EXPECT_DOUBLE_EQ(sc.cluster().gpu().peak_bf16_tflops(), 312);  // from the GPU preset
  EXPECT_EQ(sc.cluster().gpu().gemm_efficiency().efficiency_size(), 125);
  EXPECT_EQ(dims(sc).m, 2);
}

TEST(Scenario, JsonAndTextFormatAgree) {
  const Scenario text = load_scenario(scenarios_dir() / "gpt3-175b-1024gpu.pbtxt");
  Scenario json = load_scenario(scenarios_dir() / "gpt3-175b-1024gpu.json");
  json.set_description(text.description());
  EXPECT_EQ(text.SerializeAsString(), json.SerializeAsString());
}

TEST(Scenario, BundledScenariosLoad) {
  for (const char* name : {"gpt2-1.5b-40gpu.pbtxt", "gpt3-175b-1024gpu.pbtxt", "tiny-gpt-cpu.pbtxt"}) {
    EXPECT_NO_THROW(load_scenario(scenarios_dir() / name)) << name;
  }
}

// Returns the InputError message for a scenario text (line 1 is the first line of `text`).
std::string error_of(const std::string& text) {
  try {
    scenario_from_text(text, "bad.pbtxt");
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no error)";
}

const std::string kModel =
    "model { num_layers: 8 hidden_size: 512 num_heads: 8 seq_length: 256 vocab_size: 1024 }\n";
const std::string kCluster = "cluster { preset: \"dgx-a100-80g\" num_nodes: 1 }\n";

TEST(BadInput, TypoedFieldSuggestsTheRightOne) {
  const auto e = error_of(kModel + kCluster + "layout {\n  dp: 8\n  tpp: 1\n  global_batch_size: 8 }\n");
  EXPECT_NE(e.find("bad.pbtxt:5:"), std::string::npos) << e;
  EXPECT_NE(e.find("no field named \"tpp\""), std::string::npos) << e;
  EXPECT_NE(e.find("Did you mean \"tp\"?"), std::string::npos) << e;
}

TEST(BadInput, UnknownEnumListsValidValues) {
  const auto e = error_of(kModel + kCluster + "layout { dp: 8 global_batch_size: 8\n schedule: PIPEDREAM }\n");
  EXPECT_NE(e.find("bad.pbtxt:4:"), std::string::npos) << e;
  EXPECT_NE(e.find("PIPEDREAM"), std::string::npos) << e;
  EXPECT_NE(e.find("Valid values: ONE_F_ONE_B, GPIPE, INTERLEAVED_1F1B"), std::string::npos) << e;
}

TEST(BadInput, RankCountMustMatchTheCluster) {
  const auto e = error_of(kModel + kCluster + "layout {\n dp: 2\n tp: 2\n global_batch_size: 8 }\n");
  EXPECT_NE(e.find("bad.pbtxt:4: layout.dp:"), std::string::npos) << e;
  EXPECT_NE(e.find("dp * tp * pp = 2 * 2 * 1 = 4 but the cluster has 8 GPUs"), std::string::npos) << e;
  EXPECT_NE(e.find("use dp 4"), std::string::npos) << e;
}

TEST(BadInput, HeadsMustDivideByTp) {
  const auto e = error_of(
      "model { num_layers: 8 hidden_size: 600 num_heads: 6 seq_length: 256 vocab_size: 1024 }\n" + kCluster +
      "layout { dp: 2\n tp: 4\n global_batch_size: 8 }\n");
  EXPECT_NE(e.find("bad.pbtxt:4: layout.tp: num_heads 6 is not divisible by tp 4; valid tp: 1, 2, 3, 6"),
            std::string::npos)
      << e;
}

TEST(BadInput, LayersMustDivideByStages) {
  auto e = error_of(kModel + kCluster + "layout { dp: 1 tp: 1\n pp: 8\n global_batch_size: 8 }\n");
  EXPECT_EQ(e, "(no error)");  // 8 layers on 8 stages is fine
  e = error_of(
      "model { num_layers: 6 hidden_size: 512 num_heads: 8 seq_length: 256 vocab_size: 1024 }\n" + kCluster +
      "layout { dp: 2 tp: 1\n pp: 4\n global_batch_size: 8 }\n");
  EXPECT_NE(e.find("bad.pbtxt:4: layout.pp: num_layers 6 is not divisible by pp * virtual_stages = 4 * 1"),
            std::string::npos)
      << e;
  e = error_of(kModel + kCluster +
               "layout { dp: 2 tp: 1 pp: 4\n virtual_stages: 3\n schedule: INTERLEAVED_1F1B global_batch_size: 8 }\n");
  EXPECT_NE(e.find("bad.pbtxt:4: layout.virtual_stages: num_layers 8 is not divisible by pp * virtual_stages = 4 * 3"),
            std::string::npos)
      << e;
}

TEST(BadInput, GlobalBatchMustDivideByMicroBatchTimesDp) {
  const auto e = error_of(kModel + kCluster + "layout { dp: 8 micro_batch_size: 2\n global_batch_size: 20 }\n");
  EXPECT_NE(e.find("bad.pbtxt:4: layout.global_batch_size: 20 is not divisible by micro_batch_size * dp = 2 * 8 = 16"),
            std::string::npos)
      << e;
}

TEST(BadInput, NegativeSizesAreRejected) {
  auto e = error_of("model { num_layers: 8\n hidden_size: -512 num_heads: 8 seq_length: 256 vocab_size: 1024 }\n" +
                    kCluster + "layout { dp: 8 global_batch_size: 8 }\n");
  EXPECT_NE(e.find("bad.pbtxt:2: model.hidden_size: must be positive (got -512)"), std::string::npos) << e;
  e = error_of(kModel + kCluster + "layout { dp: 8\n micro_batch_size: -1 global_batch_size: 8 }\n");
  EXPECT_NE(e.find("bad.pbtxt:4: layout.micro_batch_size: must be >= 1 (got -1)"), std::string::npos) << e;
  e = error_of(kModel + "cluster { preset: \"dgx-a100-80g\" num_nodes: 1\n gpu { hbm_gb: -80 } }\n" +
               "layout { dp: 8 global_batch_size: 8 }\n");
  EXPECT_NE(e.find("bad.pbtxt:3: cluster.gpu.hbm_gb: must be positive"), std::string::npos) << e;
}

TEST(BadInput, MissingAndUnknownPresets) {
  auto e = error_of(kModel + "cluster {\n preset: \"dgx-z900\" num_nodes: 1 }\nlayout { dp: 8 global_batch_size: 8 }\n");
  EXPECT_NE(e.find("bad.pbtxt:3: cluster.preset: no preset \"dgx-z900\""), std::string::npos) << e;
  EXPECT_NE(e.find("dgx-a100-80g"), std::string::npos) << e;  // lists what exists
  e = error_of(kCluster + "layout { dp: 8 global_batch_size: 8 }\n");
  EXPECT_NE(e.find("model: missing"), std::string::npos) << e;
  e = error_of(kModel + kCluster + "layout { dp: 8 }\n");
  EXPECT_NE(e.find("layout.global_batch_size: missing"), std::string::npos) << e;
}

TEST(BadInput, ScheduleOptionsMustBeConsistent) {
  auto e = error_of(kModel + kCluster + "layout { dp: 4 pp: 2\n virtual_stages: 2 global_batch_size: 8 }\n");
  EXPECT_NE(e.find("layout.virtual_stages: virtual_stages > 1 needs schedule: INTERLEAVED_1F1B"), std::string::npos) << e;
  e = error_of(kModel + kCluster + "layout { dp: 1 pp: 8\n zero_stage: 4 global_batch_size: 8 }\n");
  EXPECT_NE(e.find("layout.zero_stage: must be 0, 1, 2 or 3 (got 4)"), std::string::npos) << e;
  // Interleaving needs the micro-batch count to be a multiple of pp (Megatron's requirement).
  e = error_of(kModel + kCluster +
               "layout { dp: 2 pp: 4 virtual_stages: 2 schedule: INTERLEAVED_1F1B\n global_batch_size: 6 }\n");
  EXPECT_NE(e.find("bad.pbtxt:4: layout.global_batch_size: the interleaved schedule needs"), std::string::npos) << e;
}

TEST(BadInput, ErrorsInPresetFilesNameThePreset) {
  // A scenario next to its own broken cluster preset.
  const testing::TempDir scratch;
  const auto& dir = scratch.path();
  std::filesystem::create_directories(dir / "clusters");
  std::ofstream(dir / "clusters" / "broken.pbtxt") << "name: \"broken\"\ngpus_per_node: 8\nnum_nodes: 1\n"
                                                      "gpu { preset: \"a100-sxm4-80gb\" }\nintra_node { gb_per_s: -1 }\n";
  std::ofstream(dir / "s.pbtxt") << kModel << "cluster { preset: \"broken\" }\nlayout { dp: 8 global_batch_size: 8 }\n";
  try {
    load_scenario(dir / "s.pbtxt");
    FAIL() << "accepted a negative bandwidth";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("broken.pbtxt:5: cluster.intra_node.gb_per_s: must be positive"),
              std::string::npos)
        << e.what();
  }
}

TEST(BadInput, MalformedJsonIsRejected) {
  try {
    parse_scenario("{\"model\": {\"num_layers\": \"many\"}}", "bad.json", true, scenarios_dir());
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.json: "), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace parallax::model
