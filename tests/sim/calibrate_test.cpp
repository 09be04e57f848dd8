// compare and calibrate against synthetic measurements: a scenario simulated on a PERTURBED machine
// (GEMM efficiency table x0.6, memory_bound_efficiency 0.5, NVLink efficiency 0.5) stands for a real
// run, relabelled MEASURED and expanded to every rank of each pipeline stage as the executor writes
// it. compare must report the errors the perturbation implies, calibrate must recover the
// perturbation, and a calibrated prediction of a second, different scenario on the perturbed machine
// must be much closer than the uncalibrated one.
#include "parallax/analysis/calibrate.h"
#include "parallax/analysis/compare.h"
#include "parallax/model/cost_model.h"
#include "parallax/model/job_graph.h"
#include "parallax/model/rank_grid.h"
#include "parallax/sim/simulate.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

namespace parallax::model {
using namespace parallax::analysis;  // compare and calibrate
namespace {

using parallax::testing::as_measured;
using parallax::testing::scenario_from_text;

// Calibration run: tp 1 puts most GEMM shapes (m = b s = 2048, n and k from h = 2048, 4h = 8192) on
// grid points of the A100 table; dp 4 x pp 2 in one node puts every transfer on NVLink.
Scenario scenario_a() {
  return scenario_from_text(R"(
    name: "calibration-a"
    model { num_layers: 4 hidden_size: 2048 num_heads: 16 seq_length: 2048 vocab_size: 32768 }
    cluster { preset: "dgx-a100-80g" num_nodes: 1 }
    layout { tp: 1 dp: 4 pp: 2 micro_batch_size: 1 global_batch_size: 16 })");
}

// A different job on the same machine: other shapes, tensor parallelism, two micro-batch sizes.
Scenario scenario_b() {
  return scenario_from_text(R"(
    name: "calibration-b"
    model { num_layers: 8 hidden_size: 1536 num_heads: 12 seq_length: 1024 vocab_size: 32768 }
    cluster { preset: "dgx-a100-80g" num_nodes: 1 }
    layout { tp: 2 dp: 2 pp: 2 micro_batch_size: 2 global_batch_size: 16 })");
}

// The real machine: slower GEMMs, HBM and NVLink than the preset says.
ClusterSpec perturbed(const ClusterSpec& nominal) {
  ClusterSpec c = nominal;
  for (auto& e : *c.mutable_gpu()->mutable_gemm_efficiency()->mutable_efficiency()) e *= 0.6;
  c.mutable_gpu()->set_memory_bound_efficiency(0.5);
  c.mutable_intra_node()->set_bandwidth_efficiency(0.5);
  return c;
}

Scenario with_cluster(Scenario sc, const ClusterSpec& cluster) {
  *sc.mutable_cluster() = cluster;
  return sc;
}

sim::SimulationResult simulate(const Scenario& sc) { return sim::simulate_in_subprocess(build_job_graph(sc)); }

struct Fixture {
  Scenario nominal = scenario_a();
  Timeline predicted, measured;
  double predicted_step = 0, measured_step = 0;
};

const Fixture& fixture() {
  static const Fixture f = [] {
    Fixture x;
    const auto pred = simulate(x.nominal);
    x.predicted = pred.timeline;
    x.predicted_step = pred.report.step_time_s();
    const auto real = simulate(with_cluster(x.nominal, perturbed(x.nominal.cluster())));
    x.measured = as_measured(real.timeline, x.nominal);
    x.measured_step = real.report.step_time_s();
    return x;
  }();
  return f;
}

const ClassError* find_class(const CompareResult& r, const std::string& name) {
  for (const auto& c : r.classes)
    if (c.name == name) return &c;
  return nullptr;
}

TEST(CompareCalibrate, CompareReportsTheConstructedErrors) {
  const Fixture& f = fixture();
  const CompareResult r = compare_timelines(f.predicted, f.measured);
  EXPECT_NEAR(r.step_time_predicted_s, f.predicted_step, 1e-12);
  EXPECT_NEAR(r.step_time_measured_s, f.measured_step, 1e-12);
  EXPECT_NEAR(r.step_time_error_pct, 100 * (f.predicted_step - f.measured_step) / f.measured_step, 1e-9);
  EXPECT_LT(r.step_time_error_pct, -30);
  EXPECT_EQ(r.measured_events, 4u * static_cast<std::uint64_t>(f.predicted.events_size()));
  // Large GEMMs take 1/0.6 as long: predicted (1 - 1/0.6) / (1/0.6) = -40%, less the kernel overhead.
  const ClassError* large = find_class(r, "gemm large");
  ASSERT_NE(large, nullptr);
  EXPECT_NEAR(large->error_pct, -40, 1);
  EXPECT_NEAR(large->median_error_pct, -40, 1);
  EXPECT_EQ(large->count % 4, 0u);  // every rank of a stage
  // Streaming kernels at 0.5 instead of 0.8 of the HBM bandwidth: 0.5 / 0.8 - 1 = -37.5%, diluted by
  // the (unchanged) kernel overhead.
  const ClassError* memory = find_class(r, "memory-bound");
  ASSERT_NE(memory, nullptr);
  EXPECT_GT(memory->error_pct, -37.5);
  EXPECT_LT(memory->error_pct, -30);
  // NVLink at 0.5 instead of 0.77: sends 0.5 / 0.77 - 1 = -35%, less the (unchanged) latency.
  const ClassError* send = find_class(r, "send");
  ASSERT_NE(send, nullptr);
  EXPECT_NEAR(send->median_error_pct, 100 * (0.5 / 0.77 - 1), 1.5);
  // The measured critical path is longer, and mostly compute in both.
  EXPECT_GT(r.critical_path_measured.length_s, r.critical_path_predicted.length_s);
  EXPECT_GT(r.critical_path_measured.path.compute_s(), 0.9 * r.critical_path_measured.length_s - r.critical_path_measured.path.comm_s());
  EXPECT_NEAR(r.critical_path_predicted.length_s, r.step_time_predicted_s, 1e-9);
  ASSERT_EQ(r.top_tasks.size(), 10u);
  for (std::size_t i = 1; i < r.top_tasks.size(); ++i)
    EXPECT_GE(std::fabs(r.top_tasks[i - 1].error_s), std::fabs(r.top_tasks[i].error_s));
}

TEST(CompareCalibrate, CalibrateRecoversThePerturbation) {
  const Fixture& f = fixture();
  CalibrationSummary s;
  const ClusterSpec overlay = calibrate(f.measured, f.nominal.cluster(), &s);
  const std::string text = calibration_text(overlay, s);
  ASSERT_TRUE(overlay.gpu().has_memory_bound_efficiency()) << text;
  EXPECT_NEAR(overlay.gpu().memory_bound_efficiency(), 0.5, 0.5 * 0.05) << text;
  ASSERT_TRUE(overlay.intra_node().has_bandwidth_efficiency()) << text;
  EXPECT_NEAR(overlay.intra_node().bandwidth_efficiency(), 0.5, 0.5 * 0.10) << text;
  RecordProperty("memory_bound_efficiency", std::to_string(overlay.gpu().memory_bound_efficiency()));
  RecordProperty("intra_node_bandwidth_efficiency", std::to_string(overlay.intra_node().bandwidth_efficiency()));
  EXPECT_FALSE(overlay.has_nic_bandwidth_efficiency()) << text;  // nothing crossed nodes
  ASSERT_TRUE(overlay.gpu().has_gemm_efficiency()) << text;
  const auto& prior = f.nominal.cluster().gpu().gemm_efficiency();
  const auto& fitted = overlay.gpu().gemm_efficiency();
  ASSERT_EQ(fitted.efficiency_size(), prior.efficiency_size());
  EXPECT_EQ(fitted.m_size(), prior.m_size());
  int well_sampled = 0;
  double worst = 0;
  for (int j = 0; j < prior.efficiency_size(); ++j) {
    const double support = s.gemm_support[static_cast<std::size_t>(j)];
    const double ratio = fitted.efficiency(j) / prior.efficiency(j);
    if (support >= 4) {
      ++well_sampled;
      worst = std::max(worst, std::fabs(ratio / 0.6 - 1));
      EXPECT_NEAR(ratio, 0.6, 0.6 * 0.02) << "grid point " << j << " support " << support;
    } else if (support == 0) {
      // No data here: the point follows the machine's overall ratio to the prior (0.6 as perturbed),
      // unless that would leave (0, 1].
      EXPECT_NEAR(ratio, 0.6, 0.6 * 0.02) << "grid point " << j << " has no data and follows the overall ratio";
    }
  }
  EXPECT_GE(well_sampled, 5);
  RecordProperty("gemm_points_well_sampled", well_sampled);
  RecordProperty("gemm_worst_ratio_error", std::to_string(worst));
  // The summary says what was fitted from how many tasks, and the models now match the measurement.
  for (const auto& e : s.errors) {
    EXPECT_LT(e.mean_abs_error_after_s, e.mean_abs_error_before_s) << e.kind;
    if (e.kind == "gemm" || e.kind == "memory-bound") {
      EXPECT_LT(e.mean_abs_error_after_pct, 1) << e.kind;
    }
  }
  EXPECT_NE(text.find("# fitted gpu.memory_bound_efficiency: 0.8 -> 0.5"), std::string::npos) << text;
}

TEST(CompareCalibrate, CalibrationImprovesASecondScenario) {
  const Fixture& f = fixture();
  const ClusterSpec overlay = calibrate(f.measured, f.nominal.cluster());
  const Scenario b = scenario_b();
  const double truth = simulate(with_cluster(b, perturbed(b.cluster()))).report.step_time_s();
  const double before = simulate(b).report.step_time_s();
  const double after = simulate(calibrated_scenario(b, overlay, "test overlay")).report.step_time_s();
  const double before_pct = 100 * (before - truth) / truth, after_pct = 100 * (after - truth) / truth;
  RecordProperty("before_pct", std::to_string(before_pct));
  RecordProperty("after_pct", std::to_string(after_pct));
  EXPECT_LT(before_pct, -25);
  EXPECT_LT(std::fabs(after_pct), 0.5 * std::fabs(before_pct)) << "before " << before_pct << "%, after " << after_pct << "%";
}

TEST(CompareCalibrate, InterNodeSendsCalibrateTheNic) {
  // Stage 1 on the second node: every pipeline transfer crosses InfiniBand, here at 60% of the line
  // rate instead of the preset's 92%.
  const Scenario nominal = scenario_from_text(R"(
    name: "calibration-nic"
    model { num_layers: 4 hidden_size: 2048 num_heads: 16 seq_length: 2048 vocab_size: 32768 }
    cluster { preset: "dgx-a100-80g" num_nodes: 2 }
    layout { tp: 1 dp: 8 pp: 2 micro_batch_size: 1 global_batch_size: 32 })");
  ClusterSpec real = nominal.cluster();
  real.set_nic_bandwidth_efficiency(0.6);
  const Timeline measured = as_measured(simulate(with_cluster(nominal, real)).timeline, nominal);
  CalibrationSummary s;
  const ClusterSpec overlay = calibrate(measured, nominal.cluster(), &s);
  const std::string text = calibration_text(overlay, s);
  ASSERT_TRUE(overlay.has_nic_bandwidth_efficiency()) << text;
  EXPECT_NEAR(overlay.nic_bandwidth_efficiency(), 0.6, 0.6 * 0.05) << text;
  RecordProperty("nic_bandwidth_efficiency", std::to_string(overlay.nic_bandwidth_efficiency()));
  // NVLink (the DP all-reduces) and the GPU are as the preset says.
  if (overlay.intra_node().has_bandwidth_efficiency()) {
    EXPECT_NEAR(overlay.intra_node().bandwidth_efficiency(), nominal.cluster().intra_node().bandwidth_efficiency(), 0.05) << text;
  }
  EXPECT_NEAR(overlay.gpu().memory_bound_efficiency(), nominal.cluster().gpu().memory_bound_efficiency(), 1e-3) << text;
}

}  // namespace
}  // namespace parallax::model
