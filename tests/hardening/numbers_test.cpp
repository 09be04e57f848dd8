// Numbers read from outside (scenarios, presets, calibration overlays, command lines): each is
// checked once, where scenarios and presets are resolved, and a bad one is an InputError naming the
// field and the range, never a NaN or an infinity that reaches the simulator, a wrapped product
// that passes a count check, or a preset "name" that reads a file outside the preset folders.
#include "parallax/analysis/calibrate.h"
#include "parallax/model/layout_rules.h"
#include "parallax/model/presets.h"
#include "parallax/model/scenario.h"
#include "scenario_mutator.h"
#include "test_support.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace parallax {
namespace {

namespace fs = std::filesystem;
namespace pb = google::protobuf;
using ::testing::HasSubstr;
using ::testing::Not;

using testing::input_error;

void replace(std::string& text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  ASSERT_NE(at, std::string::npos) << from;
  text.replace(at, from.size(), to);
}

// The tiny bundled scenario with `fields` added to its cluster block, on one node or on two (dp 4),
// where the network between nodes is used.
std::string tiny_with(const std::string& fields, bool two_nodes) {
  std::string text = testing::file_text(testing::scenarios_dir() / "tiny-gpt-cpu.pbtxt");
  replace(text, "preset: \"cpu-laptop\"", "preset: \"cpu-laptop\" " + fields);
  if (two_nodes) {
    replace(text, "num_nodes: 1 ", "num_nodes: 2 ");
    replace(text, "  dp: 2\n", "  dp: 4\n");
  }
  return text;
}

Scenario parse(const std::string& text, bool json = false) {
  return model::parse_scenario(text, json ? "probe.json" : "probe.pbtxt", json,
                               testing::scenarios_dir());
}

struct Probe {
  std::string field;   // the dotted path the message must name
  std::string fields;  // what the cluster block gets
  bool two_nodes;
};

void PrintTo(const Probe& p, std::ostream* os) {
  *os << p.fields << (p.two_nodes ? " (2 nodes)" : "");
}

class BadClusterNumber : public ::testing::TestWithParam<Probe> {};

TEST_P(BadClusterNumber, IsAnInputErrorNamingTheField) {
  const Probe& p = GetParam();
  const std::string text = tiny_with(p.fields, p.two_nodes);
  // Before: SIGABRT/SIGSEGV in SimGrid, or a silent 0 (a latency) or "MFU 0.0%" (a peak).
  const std::string msg = input_error([&] { parse(text); });
  EXPECT_THAT(msg, HasSubstr("probe.pbtxt:")) << msg;
  EXPECT_THAT(msg, HasSubstr(p.field + ": must be")) << msg;
  EXPECT_THAT(msg, HasSubstr("(got ")) << msg;
}

INSTANTIATE_TEST_SUITE_P(
    CrashProbes, BadClusterNumber,
    ::testing::Values(
        Probe{"cluster.intra_node.bandwidth_efficiency", "intra_node { bandwidth_efficiency: 0 }",
              false},
        Probe{"cluster.intra_node.bandwidth_efficiency", "intra_node { bandwidth_efficiency: -1 }",
              false},
        Probe{"cluster.intra_node.bandwidth_efficiency", "intra_node { bandwidth_efficiency: nan }",
              false},
        Probe{"cluster.intra_node.bandwidth_efficiency", "intra_node { bandwidth_efficiency: inf }",
              false},
        Probe{"cluster.intra_node.bandwidth_efficiency",
              "intra_node { bandwidth_efficiency: -inf }", false},
        Probe{"cluster.intra_node.bandwidth_efficiency",
              "intra_node { bandwidth_efficiency: 1e300 }", false},
        Probe{"cluster.gpu.kernel_overhead_us", "gpu { kernel_overhead_us: nan }", false},
        Probe{"cluster.gpu.kernel_overhead_us", "gpu { kernel_overhead_us: inf }", false},
        Probe{"cluster.intra_node.latency_us", "intra_node { latency_us: inf }", false},
        Probe{"cluster.intra_node.gb_per_s", "intra_node { gb_per_s: 1e300 }", false},
        Probe{"cluster.intra_node.gb_per_s", "intra_node { gb_per_s: inf }", false},
        Probe{"cluster.nic_bandwidth_efficiency", "nic_bandwidth_efficiency: 0", true},
        Probe{"cluster.nic_bandwidth_efficiency", "nic_bandwidth_efficiency: -1", true},
        Probe{"cluster.nic_bandwidth_efficiency", "nic_bandwidth_efficiency: nan", true},
        Probe{"cluster.nic_bandwidth_efficiency", "nic_bandwidth_efficiency: inf", true},
        Probe{"cluster.nic_gbit_per_s", "nic_gbit_per_s: inf", true},
        Probe{"cluster.nic_latency_us", "nic_latency_us: inf", true}));

INSTANTIATE_TEST_SUITE_P(
    SilentlyAccepted, BadClusterNumber,
    ::testing::Values(
        Probe{"cluster.intra_node.latency_us", "intra_node { latency_us: nan }", false},
        Probe{"cluster.intra_node.latency_us", "intra_node { latency_us: -1 }", false},
        Probe{"cluster.intra_node.latency_us", "intra_node { latency_us: -inf }", false},
        Probe{"cluster.nic_latency_us", "nic_latency_us: nan", true},
        Probe{"cluster.inter_node.switch_latency_us", "inter_node { switch_latency_us: -1 }", true},
        Probe{"cluster.inter_node.switch_latency_us", "inter_node { switch_latency_us: nan }",
              true},
        Probe{"cluster.inter_node.switch_latency_us", "inter_node { switch_latency_us: inf }",
              true},
        Probe{"cluster.inter_node.oversubscription", "inter_node { oversubscription: nan }", true},
        Probe{"cluster.inter_node.oversubscription", "inter_node { oversubscription: inf }", true},
        Probe{"cluster.inter_node.levels", "inter_node { levels: 0 }", true},
        Probe{"cluster.inter_node.levels", "inter_node { levels: -3 }", true},
        Probe{"cluster.intra_node.links_per_gpu", "intra_node { links_per_gpu: 0 }", false},
        Probe{"cluster.intra_node.links_per_gpu", "intra_node { links_per_gpu: -5 }", false},
        Probe{"cluster.gpu.peak_fp32_tflops", "gpu { peak_fp32_tflops: inf }", false},
        Probe{"cluster.gpu.peak_fp32_tflops", "gpu { peak_fp32_tflops: 1e300 }", false},
        Probe{"cluster.gpu.peak_bf16_tflops", "gpu { peak_bf16_tflops: nan }", false},
        Probe{"cluster.gpu.hbm_gb", "gpu { hbm_gb: inf }", false},
        Probe{"cluster.gpu.reserved_memory_gb", "gpu { reserved_memory_gb: nan }", false},
        Probe{"cluster.gpu.memory_bound_efficiency", "gpu { memory_bound_efficiency: nan }", false},
        // A 100,000-digit literal: the text parser makes it inf.
        Probe{"cluster.intra_node.gb_per_s",
              "intra_node { gb_per_s: 1" + std::string(100000, '0') + " }", false}));

TEST(Numbers, LayoutAndOptionsNumbersAreFiniteAndInRange) {
  std::string text = tiny_with("", false);
  replace(text, "  recompute: NO_RECOMPUTE\n",
          "  recompute: NO_RECOMPUTE\n  grad_bucket_mb: inf\n");
  EXPECT_THAT(input_error([&] { parse(text); }),
              HasSubstr("layout.grad_bucket_mb: must be a finite number in (0, "));
  text = tiny_with("", false) + "options { token_budget: nan }\n";
  EXPECT_THAT(input_error([&] { parse(text); }),
              HasSubstr("options.token_budget: must be a finite number in [0, "));
  text = tiny_with("", false) + "options { token_budget: -1 }\n";
  EXPECT_THAT(input_error([&] { parse(text); }),
              HasSubstr("options.token_budget: must be in [0, 1e+16] (got -1)"));
}

TEST(Numbers, MessageNamesTheFileLineFieldValueAndRange) {
  const std::string msg =
      input_error([&] { parse(tiny_with("\n intra_node { bandwidth_efficiency: 0 }", false)); });
  EXPECT_THAT(
      msg,
      HasSubstr(
          "probe.pbtxt:24: cluster.intra_node.bandwidth_efficiency: must be in (0, 1] (got 0); "
          "the fraction of gb_per_s that transfers achieve"));
}

TEST(Numbers, JsonNanAndInfinityGiveTheSameErrors) {
  const std::string base =
      testing::file_text(testing::source_dir() / "fuzz" / "corpus" / "fuzz_scenario_json" / "tiny-gpt-cpu.json");
  for (const auto& [fields, field] : std::vector<std::pair<std::string, std::string>>{
           {R"("gpu": {"kernelOverheadUs": "NaN"})", "cluster.gpu.kernel_overhead_us"},
           {R"("intraNode": {"latencyUs": "Infinity"})", "cluster.intra_node.latency_us"},
           {R"("gpu": {"peakFp32Tflops": "Infinity"})", "cluster.gpu.peak_fp32_tflops"},
           {R"("intraNode": {"bandwidthEfficiency": "-Infinity"})",
            "cluster.intra_node.bandwidth_efficiency"}}) {
    std::string text = base;
    replace(text, R"("num_nodes": 1)", R"("num_nodes": 1, )" + fields);
    const std::string msg = input_error([&] { parse(text, true); });
    EXPECT_THAT(msg, HasSubstr(field + ": must be a finite number in ")) << fields;
  }
}

// Every number of every message a scenario is made of: NaN, +-inf and 1e300 in a real field, -1
// and INT32_MIN in a whole one, are refused with the field named (set through reflection on a valid
// two-node scenario, so a field added to the schema without a check fails here).
TEST(Numbers, EveryNumericFieldOfTheScenarioIsChecked) {
  const Scenario valid = parse(tiny_with("", true));
  ASSERT_NO_THROW(model::validate_scenario(valid, "valid"));
  int checked = 0;
  std::function<void(const pb::Descriptor*, std::vector<const pb::FieldDescriptor*>)> walk =
      [&](const pb::Descriptor* type, std::vector<const pb::FieldDescriptor*> path) {
        for (int i = 0; i < type->field_count(); ++i) {
          const pb::FieldDescriptor* f = type->field(i);
          if (f->is_repeated()) continue;  // the GEMM table: its own test below
          auto here = path;
          here.push_back(f);
          if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
            walk(f->message_type(), here);
            continue;
          }
          const bool real = f->cpp_type() == pb::FieldDescriptor::CPPTYPE_DOUBLE;
          if (!real && f->cpp_type() != pb::FieldDescriptor::CPPTYPE_INT32)
            continue;  // enums, bools, strings
          std::string dotted;
          for (const auto* p : here) dotted += (dotted.empty() ? "" : ".") + p->name();
          const double inf = std::numeric_limits<double>::infinity();
          const std::vector<double> bad =
              real ? std::vector<double>{std::nan(""), inf, -inf, 1e300}
                   : std::vector<double>{-1, std::numeric_limits<std::int32_t>::min()};
          for (double v : bad) {
            Scenario sc = valid;
            pb::Message* m = &sc;
            for (std::size_t k = 0; k + 1 < here.size(); ++k)
              m = m->GetReflection()->MutableMessage(m, here[k]);
            if (real)
              m->GetReflection()->SetDouble(m, f, v);
            else
              m->GetReflection()->SetInt32(m, f, static_cast<std::int32_t>(v));
            const std::string msg = input_error([&] { model::validate_scenario(sc, "sc"); });
            EXPECT_THAT(msg, HasSubstr("sc: " + dotted + ": ")) << dotted << " = " << v;
            ++checked;
          }
        }
      };
  walk(Scenario::descriptor(), {});
  EXPECT_GT(checked, 80);
}

TEST(Numbers, GemmEfficiencyValuesAreChecked) {
  Scenario sc = parse(tiny_with("", false));
  sc.mutable_cluster()->mutable_gpu()->mutable_gemm_efficiency()->set_efficiency(3, std::nan(""));
  EXPECT_THAT(
      input_error([&] { model::validate_scenario(sc, "sc"); }),
      HasSubstr("sc: cluster.gpu.gemm_efficiency: efficiency values must be in (0, 1] (got nan)"));
}

TEST(Numbers, BundledScenariosAndPresetsStillValidate) {
  for (const auto& entry : fs::directory_iterator(testing::scenarios_dir())) {
    if (entry.path().extension() == ".pbtxt" || entry.path().extension() == ".json") {
      EXPECT_NO_THROW(model::load_scenario(entry.path())) << entry.path();
    }
  }
  for (const auto& name : model::bundled_presets(model::PresetKind::Cluster)) {
    EXPECT_NO_THROW(model::resolve_cluster(name)) << name;
    // Eight of its nodes (64 GPUs of the 8-GPU presets, 576 of an NVL72's racks).
    const int per_node = model::resolve_cluster(name).gpus_per_node();
    EXPECT_NO_THROW(model::resolve_cluster(name, 8 * per_node)) << name;
  }
}

// The other ways a cluster is resolved: a Chakra import's --cluster (resolve_cluster, and the file
// form), and a calibration overlay merged over a scenario's cluster.
TEST(Numbers, ClusterChecksRunForImportsFilesAndCalibrations) {
  const testing::TempDir dir;
  std::ofstream(dir / "c.pbtxt")
      << "gpus_per_node: 4\nnum_nodes: 1\ngpu { preset: \"a100-sxm4-80gb\" }\n"
         "intra_node { gb_per_s: 300\n latency_us: nan }\n";
  EXPECT_THAT(input_error([&] { model::resolve_cluster_file(dir / "c.pbtxt"); }),
              HasSubstr("c.pbtxt:5: cluster.intra_node.latency_us: must be a finite number in [0, "
                        "1000000] (got nan)"));
  model::ResolvedCluster r;
  r.cluster = model::resolve_cluster("dgx-a100-80g");
  r.cluster.set_nic_latency_us(std::numeric_limits<double>::infinity());
  EXPECT_THAT(input_error([&] { model::validate_cluster(r, "cluster preset dgx-a100-80g"); }),
              HasSubstr("cluster.nic_latency_us: must be a finite number"));

  const Scenario sc = parse(tiny_with("", true));
  ClusterSpec overlay;
  overlay.mutable_gpu()->set_kernel_overhead_us(std::nan(""));
  EXPECT_THAT(input_error([&] { analysis::calibrated_scenario(sc, overlay, "cal.pbtxt"); }),
              HasSubstr("cal.pbtxt: merged over the scenario's cluster, the calibration gives an "
                        "invalid scenario: "
                        "cluster.gpu.kernel_overhead_us: must be a finite number"));
  overlay.Clear();
  overlay.set_nic_bandwidth_efficiency(0);
  EXPECT_THAT(input_error([&] { analysis::calibrated_scenario(sc, overlay, "cal.pbtxt"); }),
              HasSubstr("cluster.nic_bandwidth_efficiency: must be in (0, 1] (got 0)"));
}

// dp * tp * pp = 1718039348 * 384773 * 27905 = 2^64 + 4: in 64 bits it wrapped to the cluster's 4
// GPUs and passed, and the graph builder then failed with an internal error.
TEST(Numbers, WrappedLayoutProductIsRefused) {
  const std::string wrap4 = testing::file_text(testing::source_dir() / "fuzz" / "corpus" / "fuzz_scenario_text" /
                                 "extreme-wrapped-product.pbtxt");
  EXPECT_THAT(
      input_error([&] { parse(wrap4); }),
      HasSubstr(
          "layout.dp: dp * tp * pp = 1718039348 * 384773 * 27905 = more than 2^63 but the cluster "
          "has 4 GPUs"));
  std::string cube = wrap4;
  replace(cube, "dp: 1718039348 tp: 384773 pp: 27905", "dp: 2097152 tp: 2097152 pp: 2097152");
  EXPECT_THAT(input_error([&] { parse(cube); }),
              HasSubstr("= more than 2^63 but the cluster has 4 GPUs"));
}

TEST(Numbers, DivisorSuggestionsAreFastAndShort) {
  const auto start = std::chrono::steady_clock::now();
  const std::string msg = input_error([&] {
    parse(
        "model { num_layers: 4 hidden_size: 2147483646 num_heads: 5 seq_length: 8 vocab_size: 64 "
        "precision: FP32 }\n"
        "cluster { preset: \"cpu-laptop\" num_nodes: 1 }\nlayout { dp: 4 global_batch_size: 4 }\n");
  });
  // It took 4.7 s scanning 1..n.
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 1.0);
  // 2147483646 = 2 * 3^2 * 7 * 11 * 31 * 151 * 331 has 192 divisors.
  EXPECT_THAT(
      msg,
      HasSubstr(
          "valid num_heads: 1, 2, 3, 6, 7, 9, ..., 238609294, 306783378, 357913941, 715827882, "
          "1073741823, 2147483646 (192 in all)"));
  // A prime head count: tp above the largest GPU count is never a suggestion.
  const std::string tp = input_error([&] {
    parse(
        "model { num_layers: 4 hidden_size: 2147483647 num_heads: 2147483647 seq_length: 8 "
        "vocab_size: 64 "
        "precision: FP32 }\ncluster { preset: \"cpu-laptop\" num_nodes: 1 }\n"
        "layout { dp: 2 tp: 2 global_batch_size: 4 }\n");
  });
  EXPECT_THAT(tp, HasSubstr("num_heads 2147483647 is not divisible by tp 2; valid tp: 1"));
  EXPECT_THAT(tp, Not(HasSubstr("valid tp: 1, 2147483647")));
  EXPECT_EQ(model::divisors_text(12, 12), "1, 2, 3, 4, 6, 12");
  EXPECT_EQ(model::divisors_text(12, 5), "1, 2, 3, 4");
  EXPECT_EQ(model::divisors_text(1, 1), "1");
  EXPECT_EQ(model::divisors_text(36, 36), "1, 2, 3, 4, 6, 9, 12, 18, 36");
}

// A preset is a name: it resolves only in the preset folders, or below the scenario's own folder.
TEST(PresetNames, PathsOutOfThePresetFoldersAreRefused) {
  for (const std::string name :
       {"../../../../../../etc/passwd", "/etc/passwd", "gpus/../../../etc/passwd"}) {
    std::string text = tiny_with("", false);
    replace(text, "preset: \"cpu-laptop\"", "preset: \"" + name + "\"");
    const std::string msg = input_error([&] { parse(text); });
    EXPECT_THAT(msg, HasSubstr("probe.pbtxt:23: cluster.preset: no preset \"" + name + "\" (it "))
        << msg;
    EXPECT_THAT(msg, HasSubstr("a file below the scenario's folder by its relative path")) << msg;
    EXPECT_THAT(msg, Not(HasSubstr("root"))) << msg;  // the first word of /etc/passwd is not echoed
  }
  const std::string gpu =
      input_error([&] { parse(tiny_with("gpu { preset: \"../../../../etc/shadow\" }", false)); });
  EXPECT_THAT(
      gpu,
      HasSubstr(
          "cluster.gpu.preset: no preset \"../../../../etc/shadow\" (it has a \"..\" component"));
  // From the command line (no scenario folder): names only, and the option for a file.
  for (const std::string name :
       {"../../etc/passwd", "/etc/passwd", "clusters/dgx-a100-80g.pbtxt"}) {
    const std::string msg = input_error([&] { model::resolve_cluster(name); });
    EXPECT_THAT(msg, HasSubstr("no cluster preset \"" + name + "\" (it ")) << msg;
    EXPECT_THAT(msg, HasSubstr("--cluster-file PATH")) << msg;
  }
  EXPECT_THAT(input_error([&] { model::load_model("../../../etc/passwd"); }),
              HasSubstr("no model preset"));
}

TEST(PresetNames, FilesGivenExplicitlyStillWork) {
  const testing::TempDir dir;
  fs::create_directories(dir / "mine");
  std::ofstream(dir / "mine" / "c.pbtxt")
      << "gpus_per_node: 4\nnum_nodes: 1\ngpu { preset: \"a100-sxm4-80gb\" }\n"
         "intra_node { gb_per_s: 300 }\n";
  // In a scenario: a relative path below its folder.
  std::ofstream(dir / "s.pbtxt")
      << "model { num_layers: 4 hidden_size: 256 num_heads: 8 seq_length: 128 vocab_size: 1024 }\n"
         "cluster { preset: \"mine/c.pbtxt\" }\nlayout { dp: 4 global_batch_size: 4 }\n";
  EXPECT_EQ(model::load_scenario(dir / "s.pbtxt").cluster().gpus_per_node(), 4);
  // On the command line: the file form, any path.
  EXPECT_EQ(model::resolve_cluster_file(dir / "mine" / "c.pbtxt", 2).gpus_per_node(), 2);
  EXPECT_THAT(input_error([&] { model::resolve_cluster_file(dir / "none.pbtxt"); }),
              HasSubstr("none.pbtxt: no such ClusterSpec file"));
}

// The command line: the options that name a cluster, and the commands that share one resolution.
TEST(NumbersCli, BadNumbersAndPresetPathsExitTwo) {
  const testing::TempDir dir;
  const fs::path bad = dir / "bweff0.pbtxt";
  std::ofstream(bad) << tiny_with("intra_node { bandwidth_efficiency: 0 }", false);
  const std::string cli = PARALLAX_CLI;
  for (const std::string command : {"simulate", "inspect", "export-chakra"}) {
    const auto r =
        testing::run_command(cli + " " + command + " " + bad.string() +
                             (command == "export-chakra" ? " -o " + (dir / "ck").string() : ""));
    EXPECT_EQ(r.exit_code, 2) << command << ": " << r.err;  // simulate: 134 (SIGABRT) before
    EXPECT_THAT(r.err,
                HasSubstr("cluster.intra_node.bandwidth_efficiency: must be in (0, 1] (got 0)"))
        << command;
  }
  auto r = testing::run_command(
      cli + " plan gpt2-1.5b --gpus 8 --global-batch 8 --cluster ../../../../etc/passwd");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("--cluster-file PATH"));
  r = testing::run_command(cli + " simulate --chakra " + (dir / "x").string() +
                           " --cluster /etc/passwd");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("(it is an absolute path"));
  r = testing::run_command(
      cli + " plan gpt2-1.5b --gpus 8 --global-batch 8 --cluster dgx-a100-80g --cluster-file " +
      bad.string());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("give either --cluster PRESET or --cluster-file FILE, not both"));
  // --cluster-file reads the file, and its numbers are checked like a preset's.
  r = testing::run_command(cli + " plan " +
                           (testing::scenarios_dir() / "tiny-gpt-cpu.pbtxt").string() +
                           " --top 1 --cluster-file " +
                           (testing::scenarios_dir() / "clusters" / "cpu-laptop.pbtxt").string());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::ofstream(dir / "c.pbtxt")
      << "gpus_per_node: 8\nnum_nodes: 1\ngpu { preset: \"a100-sxm4-80gb\" }\n"
         "intra_node { gb_per_s: 300 latency_us: -1 }\n";
  r = testing::run_command(cli + " plan gpt2-1.5b --gpus 8 --global-batch 8 --cluster-file " +
                           (dir / "c.pbtxt").string());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(
      r.err,
      HasSubstr("c.pbtxt:4: cluster.intra_node.latency_us: must be in [0, 1000000] (got -1)"));
  r = testing::run_command(cli + " simulate --chakra " + (dir / "x").string() + " --cluster-file " +
                           (dir / "c.pbtxt").string());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("cluster.intra_node.latency_us: must be in [0, 1000000] (got -1)"));
}

// The scenario fuzzers' custom mutator: it writes extreme numbers into fields of a scenario that
// parses, in its own format, and every one it writes is refused by validation or valid.
TEST(FuzzMutator, WritesExtremeNumbersTheValidatorRefuses) {
  const std::string text = testing::file_text(testing::scenarios_dir() / "tiny-gpt-cpu.pbtxt");
  const std::string json =
      testing::file_text(testing::source_dir() / "fuzz" / "corpus" / "fuzz_scenario_json" / "tiny-gpt-cpu.json");
  std::minstd_rand rng(7);
  int refused = 0, extreme = 0;
  for (int i = 0; i < 200; ++i) {
    const bool as_json = i % 2 == 1;
    const auto out = fuzz::mutate_scenario_number(as_json ? json : text, as_json, rng);
    ASSERT_TRUE(out) << i;
    if (out->find("nan") != std::string::npos || out->find("NaN") != std::string::npos ||
        out->find("inf") != std::string::npos || out->find("Infinity") != std::string::npos ||
        out->find("e+300") != std::string::npos)
      ++extreme;
    try {
      parse(*out, as_json);
    } catch (const InputError&) {
      ++refused;
    }
  }
  EXPECT_GT(extreme, 20);
  EXPECT_GT(refused, 150);
  EXPECT_FALSE(fuzz::mutate_scenario_number("not { a scenario", false, rng));
}

}  // namespace
}  // namespace parallax
