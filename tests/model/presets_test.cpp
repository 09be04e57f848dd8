// The one preset resolver: lookup (names, paths, next to the scenario, the bundled data), merging
// with the GEMM efficiency table replaced rather than appended, and messages that name what was
// searched and how to fix it.
#include "parallax/model/presets.h"
#include "parallax/model/scenario.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <fstream>
#include <unistd.h>

namespace parallax::model {
namespace {

namespace fs = std::filesystem;
using parallax::testing::scenarios_dir;

GemmEfficiencyTable table(std::vector<double> m, std::vector<double> n, std::vector<double> k, double value) {
  GemmEfficiencyTable t;
  for (double x : m) t.add_m(x);
  for (double x : n) t.add_n(x);
  for (double x : k) t.add_k(x);
  for (std::size_t i = 0; i < m.size() * n.size() * k.size(); ++i) t.add_efficiency(value);
  return t;
}

// A fresh directory per test process, removed at the end.
struct TempDir {
  fs::path path = fs::temp_directory_path() / ("parallax-presets-" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

TEST(Presets, AClusterOverlayReplacesTheGemmTable) {
  const ClusterSpec base = load_cluster("dgx-a100-80g");
  ASSERT_EQ(base.gpu().gemm_efficiency().efficiency_size(), 125);
  ClusterSpec overlay;
  overlay.set_nic_gbit_per_s(100);
  *overlay.mutable_gpu()->mutable_gemm_efficiency() = table({64, 4096}, {64, 4096}, {64, 4096}, 0.5);
  const ClusterSpec merged = merge_cluster(base, overlay);
  // Replaced, not appended (MergeFrom would give 125 + 8 values over 5 + 2 axis points: invalid).
  EXPECT_EQ(merged.gpu().gemm_efficiency().m_size(), 2);
  EXPECT_EQ(merged.gpu().gemm_efficiency().efficiency_size(), 8);
  EXPECT_DOUBLE_EQ(merged.gpu().gemm_efficiency().efficiency(0), 0.5);
  // Other fields: the overlay's where it sets them, else the base's.
  EXPECT_DOUBLE_EQ(merged.nic_gbit_per_s(), 100);
  EXPECT_DOUBLE_EQ(merged.gpu().peak_bf16_tflops(), base.gpu().peak_bf16_tflops());
  EXPECT_EQ(merged.gpus_per_node(), base.gpus_per_node());
  // An overlay without a table keeps the base's.
  ClusterSpec no_table;
  no_table.mutable_gpu()->set_hbm_gb(40);
  const ClusterSpec kept = merge_cluster(base, no_table);
  EXPECT_EQ(kept.gpu().gemm_efficiency().SerializeAsString(), base.gpu().gemm_efficiency().SerializeAsString());
  EXPECT_DOUBLE_EQ(kept.gpu().hbm_gb(), 40);
}

TEST(Presets, AScenarioTableReplacesTheGpuPresetTable) {
  const Scenario sc = parse_scenario(R"(
    model { num_layers: 8 hidden_size: 512 num_heads: 8 seq_length: 256 vocab_size: 1024 }
    cluster { preset: "dgx-a100-80g" num_nodes: 1
      gpu { gemm_efficiency { m: [64, 4096] n: [64, 4096] k: [64, 4096] efficiency: [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.6] } } }
    layout { dp: 8 global_batch_size: 8 })",
                                     "s.pbtxt", false, scenarios_dir());
  EXPECT_EQ(sc.cluster().gpu().gemm_efficiency().efficiency_size(), 8);
  EXPECT_DOUBLE_EQ(sc.cluster().gpu().gemm_efficiency().efficiency(7), 0.6);
  EXPECT_DOUBLE_EQ(sc.cluster().gpu().peak_bf16_tflops(), 312);  // the rest from the GPU preset
}

TEST(Presets, AnUnknownPresetNamesTheSearchPathAndTheFix) {
  try {
    find_preset(PresetKind::Cluster, "dgx-z900", "/some/scenario/dir");
    FAIL() << "found a preset that does not exist";
  } catch (const PresetNotFound& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("no cluster preset or file \"dgx-z900\""), std::string::npos) << m;
    // Every place looked: next to the scenario, one folder up, the bundled data.
    EXPECT_NE(m.find("/some/scenario/dir/clusters/dgx-z900.pbtxt"), std::string::npos) << m;
    EXPECT_NE(m.find("/some/scenario/clusters/dgx-z900.pbtxt"), std::string::npos) << m;
    EXPECT_NE(m.find((data_dir() / "clusters" / "dgx-z900.pbtxt").string()), std::string::npos) << m;
    // What exists, and how to fix it.
    EXPECT_NE(m.find("bundled presets: cpu-laptop, dgx-a100-80g"), std::string::npos) << m;
    EXPECT_NE(m.find("or the path of a ClusterSpec file (.pbtxt or .json)"), std::string::npos) << m;
    EXPECT_EQ(e.kind(), PresetKind::Cluster);
    EXPECT_EQ(e.name(), "dgx-z900");
  }
  try {
    load_model("gpt-9000b");
    FAIL();
  } catch (const PresetNotFound& e) {
    EXPECT_NE(std::string(e.what()).find("no model preset or file \"gpt-9000b\""), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("gpt3-175b"), std::string::npos) << e.what();
  }
  // A scenario names its own file, line and field.
  try {
    parse_scenario("model { num_layers: 8 hidden_size: 512 num_heads: 8 seq_length: 256 vocab_size: 1024 }\n"
                   "cluster { preset: \"dgx-a100-80g\" num_nodes: 1\n gpu { preset: \"z900\" } }\n"
                   "layout { dp: 8 global_batch_size: 8 }\n",
                   "bad.pbtxt", false, scenarios_dir());
    FAIL();
  } catch (const InputError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("bad.pbtxt:3: cluster.gpu.preset: no preset \"z900\" (looked for "), std::string::npos) << m;
    EXPECT_NE(m.find("a100-sxm4-80gb"), std::string::npos) << m;
  }
}

TEST(Presets, LookupOrderAndPaths) {
  TempDir dir;
  fs::create_directories(dir.path / "job" / "gpus");
  // A GPU preset next to the scenario shadows the bundled one of the same name.
  std::ofstream(dir.path / "job" / "gpus" / "a100-sxm4-80gb.pbtxt") << "name: \"local\"\n";
  EXPECT_EQ(find_preset(PresetKind::Gpu, "a100-sxm4-80gb", dir.path / "job"),
            dir.path / "job" / "gpus" / "a100-sxm4-80gb.pbtxt");
  EXPECT_EQ(load_gpu("a100-sxm4-80gb", dir.path / "job").name(), "local");
  // Without a base directory: the bundled one.
  EXPECT_EQ(find_preset(PresetKind::Gpu, "a100-sxm4-80gb"), data_dir() / "gpus" / "a100-sxm4-80gb.pbtxt");
  // A name with a dot is a preset first ("gpt-1.7b"), a path with a slash or .pbtxt is a file.
  EXPECT_EQ(load_model("gpt-1.7b").num_layers(), 24);
  EXPECT_EQ(load_model("gpt-1.7b").name(), "GPT 1.7B");  // the file's own name wins over its stem
  const fs::path file = dir.path / "my-model.pbtxt";
  std::ofstream(file) << "num_layers: 2 hidden_size: 64 num_heads: 2 seq_length: 32 vocab_size: 128\n";
  EXPECT_EQ(load_model("my-model.pbtxt", dir.path).name(), "my-model");  // named after the file
  EXPECT_EQ(load_model("my-model.pbtxt", dir.path).num_layers(), 2);
}

// torchtitan's machine (scenarios/clusters/grand-teton-h100-96gb.pbtxt): the published figures of
// its H100 96GB HBM2e at 500 W, and the DGX H100 preset unchanged beside it.
TEST(Presets, GrandTetonH100_96GB) {
  const ClusterSpec c = resolve_cluster("grand-teton-h100-96gb", 128);
  EXPECT_EQ(c.num_nodes(), 16);
  EXPECT_EQ(c.gpus_per_node(), 8);
  EXPECT_EQ(c.nics_per_node(), 8);
  EXPECT_DOUBLE_EQ(c.nic_gbit_per_s(), 400);
  EXPECT_DOUBLE_EQ(c.intra_node().gb_per_s(), 450);
  EXPECT_DOUBLE_EQ(c.gpu().hbm_gb(), 96);
  EXPECT_DOUBLE_EQ(c.gpu().hbm_tb_per_s(), 2.4);
  // Between the H100 NVL's 835 and the SXM5's 989 (the TorchTitan paper's bounds).
  EXPECT_DOUBLE_EQ(c.gpu().peak_bf16_tflops(), 912);
  // The same GEMM table shape as the H100 SXM5 (same silicon): equal values.
  const ClusterSpec dgx = resolve_cluster("dgx-h100");
  EXPECT_DOUBLE_EQ(dgx.gpu().hbm_gb(), 85.52);  // the driver's 81,559 MiB
  EXPECT_DOUBLE_EQ(dgx.gpu().peak_bf16_tflops(), 989);
  ASSERT_EQ(c.gpu().gemm_efficiency().efficiency_size(), dgx.gpu().gemm_efficiency().efficiency_size());
  for (int i = 0; i < c.gpu().gemm_efficiency().efficiency_size(); ++i)
    EXPECT_DOUBLE_EQ(c.gpu().gemm_efficiency().efficiency(i), dgx.gpu().gemm_efficiency().efficiency(i)) << i;
}

TEST(Presets, ResolveClusterMergesResizesAndValidates) {
  const ClusterSpec c = resolve_cluster("dgx-a100-80g");
  EXPECT_DOUBLE_EQ(c.gpu().peak_bf16_tflops(), 312);  // the GPU preset merged
  EXPECT_FALSE(c.has_preset());                        // the file as written
  EXPECT_EQ(resolve_cluster("dgx-a100-80g", 64).num_nodes(), 8);
  EXPECT_EQ(resolve_cluster("dgx-a100-80g", 4).gpus_per_node(), 4);
  try {
    resolve_cluster("dgx-a100-80g", 12);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("use a multiple of 8 (e.g. 8, 16)"), std::string::npos) << e.what();
  }
  // A broken cluster file: the message names its file, line and field.
  TempDir dir;
  const fs::path file = dir.path / "broken.pbtxt";
  std::ofstream(file) << "gpus_per_node: 8\nnum_nodes: 1\ngpu { preset: \"a100-sxm4-80gb\" }\nintra_node { gb_per_s: -1 }\n";
  try {
    resolve_cluster_file(file);
    FAIL() << "accepted a negative bandwidth";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("broken.pbtxt:4: cluster.intra_node.gb_per_s: must be positive"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace parallax::model
