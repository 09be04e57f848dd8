// The roofline cost model and the GEMM efficiency table lookup.
#include "parallax/model/cost_model.h"
#include "test_support.h"

#include <gtest/gtest.h>

namespace parallax::model {
namespace {

GpuSpec gpu_with_table() {
  GpuSpec g;
  g.set_peak_bf16_tflops(100);
  g.set_peak_fp32_tflops(10);
  g.set_hbm_tb_per_s(1);
  g.set_memory_bound_efficiency(0.5);
  g.set_kernel_overhead_us(2);
  auto* t = g.mutable_gemm_efficiency();
  for (auto v : {256, 4096}) {
    t->add_m(v);
    t->add_n(v);
    t->add_k(v);
  }
  // efficiency = 0.1 at the small corner, rising with each dimension.
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j)
      for (int l = 0; l < 2; ++l) t->add_efficiency(0.1 + 0.2 * i + 0.2 * j + 0.1 * l);
  return g;
}

TEST(CostModel, TableIsExactAtGridPointsAndInterpolatesInLogSpace) {
  const CostModel cost(gpu_with_table(), BF16);
  EXPECT_DOUBLE_EQ(cost.gemm_efficiency(256, 256, 256), 0.1);
  EXPECT_DOUBLE_EQ(cost.gemm_efficiency(4096, 4096, 4096), 0.6);
  EXPECT_DOUBLE_EQ(cost.gemm_efficiency(4096, 256, 256), 0.3);
  // 1024 is halfway between 256 and 4096 in log2.
  EXPECT_NEAR(cost.gemm_efficiency(1024, 256, 256), 0.2, 1e-12);
  EXPECT_NEAR(cost.gemm_efficiency(1024, 1024, 1024), 0.35, 1e-12);
  // Clamped outside the grid.
  EXPECT_DOUBLE_EQ(cost.gemm_efficiency(16, 16, 16), 0.1);
  EXPECT_DOUBLE_EQ(cost.gemm_efficiency(1 << 20, 1 << 20, 1 << 20), 0.6);
}

// A 4096^3 GEMM in 16-bit: compute-bound on the table's GPU.
Task square_gemm_4096() {
  Task gemm;
  gemm.kind = GEMM;
  gemm.gemm_m = gemm.gemm_n = gemm.gemm_k = 4096;
  gemm.gemm_batch = 1;
  gemm.flops = 2.0 * 4096 * 4096 * 4096;
  gemm.bytes = 3ull * 4096 * 4096 * 2;
  return gemm;
}

// A GEMM overlapped with TP communication: gemm_splits kernels of m / splits rows, each paying the
// kernel overhead, on sm_share of the SMs.
TEST(CostModel, OverlappedGemmRunsAsChunksOnTheSmsLeft) {
  const CostModel cost(gpu_with_table(), BF16);
  Task gemm = square_gemm_4096();
  const double whole = cost.duration(gemm);
  gemm.gemm_splits = 16;  // chunks of m = 256: efficiency 0.1 + 0.2 + 0.1 = 0.4 instead of 0.6
  EXPECT_NEAR(cost.duration(gemm), gemm.flops / (100e12 * 0.4) + 16 * 2e-6, 1e-12);
  gemm.sm_share = 0.75f;
  EXPECT_NEAR(cost.duration(gemm), gemm.flops / (100e12 * 0.4 * 0.75) + 16 * 2e-6, 1e-12);
  gemm.gemm_splits = 1;
  EXPECT_NEAR(cost.duration(gemm), (whole - 2e-6) / 0.75 + 2e-6, 1e-12);
}

TEST(CostModel, RooflineTakesTheSlowerSide) {
  const CostModel cost(gpu_with_table(), BF16);
  Task gemm = square_gemm_4096();
  // Compute-bound: FLOPs / (100 TFLOP/s * 0.6) + 2 us.
  EXPECT_NEAR(cost.duration(gemm), gemm.flops / 60e12 + 2e-6, 1e-12);
  Task copy;
  copy.kind = MEMORY_BOUND;
  copy.bytes = 1'000'000'000;
  copy.flops = 1e6;
  // Memory-bound: 1 GB at 1 TB/s * 0.5 = 2 ms.
  EXPECT_NEAR(cost.duration(copy), 2e-3 + 2e-6, 1e-12);
  Task comm;
  comm.kind = COLLECTIVE;
  comm.bytes = 1'000'000;
  EXPECT_EQ(cost.duration(comm), 0.0);
}

TEST(CostModel, BundledTablesGiveSensibleA100Figures) {
  const Scenario sc = model::load_scenario(parallax::testing::scenarios_dir() / "gpt3-175b-1024gpu.pbtxt");
  const CostModel cost(sc.cluster().gpu(), BF16);
  // Large GEMMs reach ~80% of the boost-clock peak on A100 (NVIDIA's GEMM performance guide), times
  // the 0.925 clock fraction sustained under training power: 0.74. Small ones far less.
  EXPECT_NEAR(cost.gemm_efficiency(8192, 8192, 8192), 0.74, 0.005);
  EXPECT_LT(cost.gemm_efficiency(128, 128, 128), 0.4);
  // Efficiency never decreases as a dimension grows.
  for (double m : {128.0, 512.0, 2048.0, 8192.0})
    EXPECT_LE(cost.gemm_efficiency(m, 2048, 2048), cost.gemm_efficiency(2 * m, 2048, 2048) + 1e-12);
}

}  // namespace
}  // namespace parallax::model
