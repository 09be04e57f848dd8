// The host backend runs the ops of modern layers (RMSNorm, RoPE, flash attention, SwiGLU, squared
// ReLU) as their real kernels under mpirun, checks them against FP64 references with --verify, and
// --verify catches a corrupted kernel output. Plans built from Llama- and Nemotron-style scenarios
// run verified; and, to put every op in one plan with GPT's schedule, a plan made by hand: the 2-rank tiny-gpt-cpu-tp2 plan from `parallax inspect -o` with its
// layer norms turned into RMSNorms (same traffic), its attention score GEMMs into flash attention, its
// softmaxes into RoPE and its GeLUs into SwiGLU (even layers) and squared ReLU (odd layers), with the
// sizes the executor derives from the scenario (parallax/exec/task_shapes.h). Its dependencies,
// collectives and schedule are the built graph's.
#include "parallax/parallax.pb.h"
#include "parallax/traces/io.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

namespace parallax {
namespace {

namespace fs = std::filesystem;
using testing::run_command;

std::string mpirun(int np, const std::string& env = "") { return testing::mpirun_command(np, PARALLAX_EXEC, env); }

// tiny-gpt-cpu-tp2: hidden 384, 6 heads of 64 (3 per rank), seq 192, micro-batch 2, FFN 1536 (768
// per rank), FP32 (e = 4 bytes), sequence parallel.
constexpr std::uint64_t kTokens = 2 * 192, kHeadsPerRank = 3, kHeadDim = 64, kFfnPerRank = 768, kE = 4;

struct ModernPlan {
  fs::path file;
  std::map<std::string, int> forward, backward;  // op -> tasks of each phase
  int flash_runs = 0;  // flash attention tasks over all ranks (each representative's times its multiplicity)
};

ModernPlan write_modern_plan(const fs::path& dir) {
  ModernPlan plan;
  plan.file = dir / "modern.plan.pb";
  const auto built = dir / "built.plan.pb";
  const auto r = run_command(std::string(PARALLAX_CLI) + " inspect " +
                             (testing::scenarios_dir() / "tiny-gpt-cpu-tp2.pbtxt").string() + " -o " + built.string());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  JobGraph graph;
  traces::read_binary(built, graph);
  for (auto& t : *graph.mutable_tasks()) {
    std::string op = t.op();
    const auto dot = op.find('.');
    const std::string base = op.substr(0, dot), role = dot == std::string::npos ? "" : op.substr(dot);
    const bool bwd = t.phase() == BACKWARD;
    std::string now;
    if (base == "layernorm") {
      now = "rmsnorm";  // the builder's LayerNorm traffic (2e forward, 3e backward) is RMSNorm's
    } else if (base == "final_layernorm") {
      now = "final_rmsnorm";
    } else if (base == "attn_scores") {
      now = "flash_attention";
      t.set_gemm_m(192);
      t.set_gemm_n(192);
      t.set_gemm_k(kHeadDim);
      t.set_gemm_batch(2 * kHeadsPerRank);
    } else if (base == "softmax") {
      now = "rope";  // q and k: 3 + 3 heads of 64 per token, read and written
      t.set_bytes(kTokens * (2 * kHeadsPerRank) * kHeadDim * 2 * kE);
    } else if (base == "gelu") {
      if (t.layer() % 2 == 0) {
        now = "swiglu";
        t.set_bytes(kTokens * kFfnPerRank * (bwd ? 5 : 3) * kE);
      } else {
        now = "squared_relu";
        t.set_bytes(kTokens * kFfnPerRank * (bwd ? 3 : 2) * kE);
      }
    }
    if (now.empty()) continue;
    t.set_op(now + role);
    ++(bwd ? plan.backward : plan.forward)[now];
    if (now == "flash_attention")
      for (const auto& rank : graph.ranks())
        if (rank.rank() == t.rank()) plan.flash_runs += static_cast<int>(rank.multiplicity());
  }
  traces::write_binary(plan.file, graph);
  return plan;
}

TEST(ExecHostLayerOps, AHandMadeModernPlanRunsItsKernelsVerifiedOnTwoRanks) {
  const testing::TempDir dir;
  const ModernPlan plan = write_modern_plan(dir.path());
  for (const char* op : {"rmsnorm", "final_rmsnorm", "flash_attention", "rope", "swiglu", "squared_relu"}) {
    EXPECT_GT(plan.forward.count(op) ? plan.forward.at(op) : 0, 0) << op;
    EXPECT_GT(plan.backward.count(op) ? plan.backward.at(op) : 0, 0) << op;
  }
  const auto out = dir / "modern.measured.pb";
  const auto r = run_command(mpirun(2) + plan.file.string() + " --verify --warmup 0 --iterations 1 -o " + out.string());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  Timeline measured;
  traces::read_binary(out, measured);
  int flash = 0;
  for (const auto& e : measured.events())
    if (e.name().find("flash_attention") != std::string::npos) {
      ++flash;
      EXPECT_GT(e.end_s(), e.start_s()) << e.name();
    }
  EXPECT_EQ(flash, plan.flash_runs);
  EXPECT_GT(flash, 0);
}

TEST(ExecHostLayerOps, VerifyCatchesACorruptedKernelOutputOfEachOp) {
  const testing::TempDir dir;
  const ModernPlan plan = write_modern_plan(dir.path());
  for (const char* op : {"flash_attention", "rmsnorm", "rope", "swiglu", "squared_relu"}) {
    SCOPED_TRACE(op);
    const auto r = run_command(mpirun(2, std::string("PARALLAX_EXEC_FAULT=corrupt-kernel:1:") + op) +
                               plan.file.string() + " --verify --warmup 0 --iterations 1 -o " +
                               (dir / "never.pb").string());
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("rank 1: --verify: task"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(std::string(", op ") + op + ":"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("element 0 is"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("the FP64 reference"), std::string::npos) << r.err;
  }
  // Without --verify the same fault goes unchecked: the run succeeds (the check is what catches it).
  const auto r = run_command(mpirun(2, "PARALLAX_EXEC_FAULT=corrupt-kernel:1:flash_attention") + plan.file.string() +
                             " --warmup 0 --iterations 1 -o " + (dir / "unchecked.pb").string());
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

// The builder's own modern layers (model::LayerDescription): tiny-gpt-cpu-tp2 as a Llama (GQA with
// 2 kv heads, SwiGLU, RMSNorm, RoPE, flash attention, no biases, untied embeddings) and as a
// Nemotron (squared ReLU), run on 2 ranks with --verify: every task's shape derived from the scenario
// agrees with the builder's sizes and bytes, and every kernel matches its FP64 reference.
TEST(ExecHostLayerOps, BuiltLlamaAndNemotronStylePlansRunVerified) {
  const testing::TempDir dir;
  std::string text = testing::file_text(testing::scenarios_dir() / "tiny-gpt-cpu-tp2.pbtxt");
  const std::string model_end = "  precision: FP32\n";
  ASSERT_NE(text.find(model_end), std::string::npos);
  for (const std::string activation : {"SWIGLU", "SQUARED_RELU"}) {
    SCOPED_TRACE(activation);
    std::string modern = text;
    modern.replace(modern.find(model_end), model_end.size(),
                   model_end + "  num_query_groups: 2\n  activation: " + activation +
                       "\n  normalization: RMSNORM\n  attention_kernel: FLASH\n  position_embedding: ROPE\n"
                       "  add_bias_linear: false\n  tied_embeddings: false\n");
    // The CPU preset has no flash attention table (the cost model needs one; the executor does not).
    const std::string cluster = "cluster {\n";
    ASSERT_NE(modern.find(cluster), std::string::npos);
    modern.replace(modern.find(cluster), cluster.size(),
                   cluster + "  gpu { flash_attention_efficiency { seq: [128, 4096] head_dim: [64, 128] "
                             "forward: [0.3, 0.3, 0.3, 0.3] backward: [0.3, 0.3, 0.3, 0.3] } }\n");
    const auto scenario_file = dir / (activation + ".pbtxt");
    {
      std::ofstream out(scenario_file);
      out << modern;
    }
    const auto out = dir / (activation + ".measured.pb");
    const auto r = run_command(mpirun(2, "PARALLAX_DATA_DIR=" + testing::scenarios_dir().string()) +
                               scenario_file.string() + " --verify --warmup 0 --iterations 1 -o " + out.string());
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    Timeline measured;
    traces::read_binary(out, measured);
    std::map<std::string, int> seen;
    for (const auto& e : measured.events())
      for (const char* op : {"flash_attention", "rmsnorm", "rope", "swiglu", "squared_relu"})
        if (e.name().find(op) != std::string::npos) ++seen[op];
    EXPECT_GT(seen["flash_attention"], 0);
    EXPECT_GT(seen["rmsnorm"], 0);
    EXPECT_GT(seen["rope"], 0);
    EXPECT_GT(seen[activation == "SWIGLU" ? "swiglu" : "squared_relu"], 0);
    EXPECT_EQ(seen[activation == "SWIGLU" ? "squared_relu" : "swiglu"], 0);
  }
}

TEST(ExecHostLayerOps, APlanWhoseFlashAttentionDisagreesWithItsScenarioIsRefused) {
  const testing::TempDir dir;
  const ModernPlan plan = write_modern_plan(dir.path());
  JobGraph graph;
  traces::read_binary(plan.file, graph);
  std::uint32_t changed = 0;
  for (auto& t : *graph.mutable_tasks())
    if (t.op() == "flash_attention") {
      t.set_gemm_k(32);
      changed = t.id();
      break;
    }
  const auto bad = dir / "bad.plan.pb";
  traces::write_binary(bad, graph);
  const auto r = run_command(mpirun(2) + bad.string() + " --warmup 0 --iterations 1 -o " + (dir / "never.pb").string());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("task " + std::to_string(changed) + " ("), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("gemm_k (head_dim) is 32 but the scenario gives 64"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace parallax
