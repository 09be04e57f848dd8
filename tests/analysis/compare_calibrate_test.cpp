// compare and calibrate on timelines scheduled here from the job graph (no simulator): every task
// starts when its last predecessor ends and lasts what a given duration function says. Measured
// timelines are such schedules with known changes, expanded to every rank as the executor writes
// them; the sim-based tests (tests/sim/calibrate_test.cpp) do the same with SimGrid.
#include "parallax/analysis/calibrate.h"
#include "parallax/analysis/compare.h"
#include "parallax/model/cost_model.h"
#include "parallax/model/job_graph.h"
#include "parallax/model/rank_grid.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>

namespace parallax::model {
using namespace parallax::analysis;  // compare and calibrate
namespace {

using parallax::testing::as_measured;
using parallax::testing::scenario_from_text;

// Small GEMMs, many tiny memory-bound tasks (kernel overhead), a few big ones (logits, cross entropy,
// optimizer), TP all-reduces small enough for their latency to show and large DP buckets.
Scenario small_job(const std::string& extra_layout = "") {
  return scenario_from_text(R"(
    name: "small-job"
    model { num_layers: 4 hidden_size: 512 num_heads: 8 seq_length: 256 vocab_size: 51200 }
    cluster { preset: "dgx-a100-80g" num_nodes: 1 }
    layout { tp: 2 dp: 2 pp: 2 micro_batch_size: 1 global_batch_size: 16 )" + extra_layout + " }");
}

using Duration = std::function<double(std::uint32_t task)>;

// As soon as possible: a task starts when its last predecessor ends; a recv spans its send.
Timeline schedule(const JobGraph& graph, const Duration& duration) {
  const auto n = graph.num_tasks();
  std::vector<double> start(n, 0), end(n, 0);
  for (auto v : graph.topological_order()) {
    double s = 0, send_start = -1;
    for (auto p : graph.predecessors(v)) {
      s = std::max(s, end[p]);
      if (graph.tasks()[p].kind == SEND) send_start = start[p];
    }
    if (graph.tasks()[v].kind == RECV && send_start >= 0) {
      start[v] = send_start;
      end[v] = s;
    } else {
      start[v] = s;
      end[v] = s + duration(v);
    }
  }
  Timeline tl;
  tl.set_source(Timeline::PREDICTED);
  tl.set_scenario_name(graph.scenario().name());
  *tl.mutable_scenario() = graph.scenario();
  for (std::uint32_t v = 0; v < n; ++v) {
    auto* e = tl.add_events();
    e->set_task_id(v);
    e->set_rank(graph.tasks()[v].rank);
    e->set_stream(graph.tasks()[v].stream);
    e->set_kind(graph.tasks()[v].kind);
    e->set_start_s(start[v]);
    e->set_end_s(end[v]);
  }
  return tl;
}

// Communication time on an intra-node fabric of latency alpha and bandwidth bw: ring collectives
// (nccl-tests bus-bandwidth convention) and sends.
double comm_time(const JobGraph& graph, std::uint32_t v, double alpha, double bw) {
  const Task& t = graph.tasks()[v];
  const double S = static_cast<double>(t.bytes);
  if (t.kind == SEND) return alpha + S / bw;
  if (t.kind != COLLECTIVE) return 0;
  const double n = static_cast<double>(rank_grid(graph.scenario()).members(t.group, t.rank).size());
  if (n < 2) return 0;
  if (t.collective == ALL_REDUCE) return 2 * (n - 1) * alpha + 2 * (n - 1) / n * S / bw;
  return (n - 1) * alpha + (n - 1) / n * S / bw;
}

template <typename F>
void expect_input_error(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no InputError (expected one mentioning \"" << needle << "\")";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Compare, GemmErrorsByClassOnSymmetricMeasurement) {
  const Scenario sc = small_job();
  const JobGraph g = build_job_graph(sc);
  ASSERT_TRUE(g.uses_symmetry());
  const CostModel cost(sc.cluster().gpu(), sc.model().precision());
  auto nominal = [&](std::uint32_t v) {
    return g.tasks()[v].is_compute() ? cost.duration(g.tasks()[v]) : comm_time(g, v, 1e-6, 200e9);
  };
  const Timeline predicted = schedule(g, nominal);
  // The machine runs every GEMM 1/0.6 times longer: the prediction is 40% short on each.
  Timeline measured = as_measured(schedule(g, [&](std::uint32_t v) {
                                    return nominal(v) / (g.tasks()[v].kind == GEMM ? 0.6 : 1.0);
                                  }),
                                  sc);
  ASSERT_EQ(measured.events_size(), 4 * g.num_tasks());  // tp 2 x dp 2 ranks per stage
  const CompareResult r = compare_timelines(predicted, measured, {.top_n = 5});
  EXPECT_EQ(r.measured_events, 4 * g.num_tasks());
  EXPECT_EQ(r.predicted_tasks, g.num_tasks());
  bool saw_gemm = false;
  for (const auto& c : r.classes) {
    if (c.name.rfind("gemm", 0) == 0) {
      saw_gemm = true;
      EXPECT_NEAR(c.error_pct, -40, 1e-6) << c.name;
      EXPECT_NEAR(c.median_error_pct, -40, 1e-6) << c.name;
    } else if (c.name != "recv") {  // a recv spans its send's wait for the sender's compute
      EXPECT_NEAR(c.error_pct, 0, 1e-6) << c.name;
    }
    EXPECT_GT(c.count, 0u);
    EXPECT_EQ(c.count % 4, 0u) << c.name;  // every rank of a stage counted
  }
  EXPECT_TRUE(saw_gemm);
  double pmin = 1e300, pmax = 0, mmin = 1e300, mmax = 0;
  for (const auto& e : predicted.events()) pmin = std::min(pmin, e.start_s()), pmax = std::max(pmax, e.end_s());
  for (const auto& e : measured.events()) mmin = std::min(mmin, e.start_s()), mmax = std::max(mmax, e.end_s());
  EXPECT_DOUBLE_EQ(r.step_time_predicted_s, pmax - pmin);
  EXPECT_DOUBLE_EQ(r.step_time_measured_s, mmax - mmin);
  EXPECT_NEAR(r.step_time_error_pct, 100 * (r.step_time_predicted_s - r.step_time_measured_s) / r.step_time_measured_s, 1e-9);
  EXPECT_LT(r.step_time_error_pct, 0);

  // Critical paths: an as-soon-as-possible schedule has no gaps on it, and it spans the step.
  for (const PathSummary* p : {&r.critical_path_predicted, &r.critical_path_measured}) {
    EXPECT_GT(p->path.tasks(), 10u);
    EXPECT_NEAR(p->path.compute_s() + p->path.comm_s() + p->path.wait_s(), p->length_s, 1e-9);
    EXPECT_NEAR(p->path.wait_s(), 0, 1e-12);
  }
  EXPECT_NEAR(r.critical_path_predicted.length_s, r.step_time_predicted_s, 1e-9);
  EXPECT_NEAR(r.critical_path_measured.length_s, r.step_time_measured_s, 1e-9);
  EXPECT_GT(r.critical_path_measured.path.compute_s(), r.critical_path_predicted.path.compute_s());
  ASSERT_EQ(r.top_tasks.size(), 5u);
  for (const auto& t : r.top_tasks) EXPECT_EQ(t.kind, GEMM) << t.name;
}

TEST(Compare, SlowestRankOfAStageCarriesTheMeasuredCriticalPathAndTopTask) {
  const Scenario sc = small_job();
  const JobGraph g = build_job_graph(sc);
  const CostModel cost(sc.cluster().gpu(), sc.model().precision());
  auto d = [&](std::uint32_t v) { return g.tasks()[v].is_compute() ? cost.duration(g.tasks()[v]) : comm_time(g, v, 1e-6, 200e9); };
  const Timeline predicted = schedule(g, d);
  Timeline measured = as_measured(predicted, sc);
  // Rank 7 (stage 1) has one task 1 ms slower, and finishes last.
  std::uint32_t slow_task = 0;
  for (std::uint32_t v = 0; v < g.num_tasks(); ++v)
    if (g.tasks()[v].kind == GEMM && rank_grid(sc).stage(g.tasks()[v].rank) == 1) slow_task = v;
  for (auto& e : *measured.mutable_events()) {
    if (e.rank() != 7) continue;
    if (e.task_id() == slow_task) e.set_end_s(e.end_s() + 1e-3);
    else if (e.start_s() >= predicted.events(static_cast<int>(slow_task)).end_s()) {
      e.set_start_s(e.start_s() + 1e-3);
      e.set_end_s(e.end_s() + 1e-3);
    }
  }
  const CompareResult r = compare_timelines(predicted, measured);
  ASSERT_FALSE(r.top_tasks.empty());
  EXPECT_EQ(r.top_tasks[0].task_id, slow_task);
  EXPECT_EQ(r.top_tasks[0].rank, 7u);
  EXPECT_NEAR(r.top_tasks[0].error_s, -1e-3, 1e-12);
  EXPECT_EQ(r.top_tasks[0].name, g.task_name(slow_task));
  bool on_seven = false;
  for (const auto& s : r.critical_path_measured.path.segments()) {
    EXPECT_TRUE(s.rank() == 7 || rank_grid(sc).stage(s.rank()) == 0) << s.rank();
    on_seven |= s.rank() == 7;
  }
  EXPECT_TRUE(on_seven);
}

TEST(Compare, WithoutSymmetryRanksMatchOneToOne) {
  const Scenario sc = small_job();
  Scenario full = sc;
  full.mutable_options()->set_use_symmetry(false);
  const JobGraph g = build_job_graph(full);
  ASSERT_FALSE(g.uses_symmetry());
  const CostModel cost(sc.cluster().gpu(), sc.model().precision());
  const Timeline predicted = schedule(g, [&](std::uint32_t v) {
    return g.tasks()[v].is_compute() ? cost.duration(g.tasks()[v]) : comm_time(g, v, 1e-6, 200e9);
  });
  const Timeline measured = as_measured(predicted, full);
  EXPECT_EQ(measured.events_size(), predicted.events_size());
  const CompareResult r = compare_timelines(predicted, measured);
  EXPECT_NEAR(r.step_time_error_pct, 0, 1e-9);
  for (const auto& c : r.classes) EXPECT_NEAR(c.error_pct, 0, 1e-9) << c.name;
  // The same job with symmetry numbers its tasks differently: refused.
  expect_input_error([&] { compare_timelines(predicted, as_measured(predicted, sc)); }, "use_symmetry");
}

TEST(Compare, BadInputsAreInputErrors) {
  const Scenario sc = small_job();
  const JobGraph g = build_job_graph(sc);
  const Timeline predicted = schedule(g, [](std::uint32_t) { return 1e-5; });
  const Timeline measured = as_measured(predicted, sc);

  Timeline no_scenario = predicted;
  no_scenario.clear_scenario();
  expect_input_error([&] { compare_timelines(no_scenario, measured); }, "predicted timeline has no scenario");
  Timeline measured_no_scenario = measured;
  measured_no_scenario.clear_scenario();
  expect_input_error([&] { compare_timelines(predicted, measured_no_scenario); }, "measured timeline has no scenario");

  Timeline other_model = measured;
  other_model.mutable_scenario()->mutable_model()->set_hidden_size(1024);
  expect_input_error([&] { compare_timelines(predicted, other_model); }, "different jobs");
  expect_input_error([&] { compare_timelines(predicted, other_model); }, "hidden_size");
  Timeline other_layout = measured;
  other_layout.mutable_scenario()->mutable_layout()->set_global_batch_size(32);
  expect_input_error([&] { compare_timelines(predicted, other_layout); }, "layout");
  Timeline other_cluster = measured;
  other_cluster.mutable_scenario()->mutable_cluster()->set_num_nodes(2);
  expect_input_error([&] { compare_timelines(predicted, other_cluster); }, "GPU count 8");
  // A different GPU is the same job: the point of comparing.
  Timeline other_gpu = measured;
  other_gpu.mutable_scenario()->mutable_cluster()->mutable_gpu()->set_memory_bound_efficiency(0.5);
  EXPECT_NO_THROW(compare_timelines(predicted, other_gpu));

  Timeline unknown_task = measured;
  unknown_task.mutable_events(3)->set_task_id(static_cast<std::uint32_t>(g.num_tasks()) + 5);
  expect_input_error([&] { compare_timelines(predicted, unknown_task); },
                     "task id " + std::to_string(g.num_tasks() + 5));
  Timeline partial_prediction = predicted;
  partial_prediction.mutable_events()->RemoveLast();
  expect_input_error([&] { compare_timelines(partial_prediction, measured); }, "has no event for");
  Timeline bad_rank = measured;
  bad_rank.mutable_events(0)->set_rank(8);
  expect_input_error([&] { compare_timelines(predicted, bad_rank); }, "rank 8 but the job has 8 GPUs");
  Timeline wrong_stage = measured;
  // A stage-0 task measured on a stage-1 rank.
  for (auto& e : *wrong_stage.mutable_events())
    if (e.rank() == 0) {
      e.set_rank(4);
      break;
    }
  expect_input_error([&] { compare_timelines(predicted, wrong_stage); }, "another pipeline stage");

  expect_input_error([&] { calibrate(measured_no_scenario, sc.cluster()); }, "no scenario");
  expect_input_error([&] { calibrate(unknown_task, sc.cluster()); }, "task id");
}

TEST(Calibrate, RecoversOverheadMemoryEfficiencyAndNvlinkFromExactDurations) {
  const Scenario sc = small_job();
  const JobGraph g = build_job_graph(sc);
  // The machine: 6 us per kernel, 55% of HBM bandwidth, GEMMs at 0.7x the table; NVLink at 2 us and
  // 120 GB/s (efficiency 0.4 of 300).
  ClusterSpec real = sc.cluster();
  real.mutable_gpu()->set_kernel_overhead_us(6);
  real.mutable_gpu()->set_memory_bound_efficiency(0.55);
  for (auto& e : *real.mutable_gpu()->mutable_gemm_efficiency()->mutable_efficiency()) e *= 0.7;
  const CostModel cost(real.gpu(), sc.model().precision());
  const Timeline measured = as_measured(schedule(g, [&](std::uint32_t v) {
                                          return g.tasks()[v].is_compute() ? cost.duration(g.tasks()[v])
                                                                           : comm_time(g, v, 2e-6, 120e9);
                                        }),
                                        sc);
  CalibrationSummary s;
  const ClusterSpec overlay = calibrate(measured, sc.cluster(), &s);
  ASSERT_TRUE(overlay.gpu().has_kernel_overhead_us()) << calibration_text(overlay, s);
  EXPECT_NEAR(overlay.gpu().kernel_overhead_us(), 6, 0.06);
  ASSERT_TRUE(overlay.gpu().has_memory_bound_efficiency()) << calibration_text(overlay, s);
  EXPECT_NEAR(overlay.gpu().memory_bound_efficiency(), 0.55, 0.55 * 0.01);
  ASSERT_TRUE(overlay.intra_node().has_bandwidth_efficiency()) << calibration_text(overlay, s);
  EXPECT_NEAR(overlay.intra_node().bandwidth_efficiency(), 0.4, 0.4 * 0.01);
  ASSERT_TRUE(overlay.intra_node().has_latency_us()) << calibration_text(overlay, s);
  EXPECT_NEAR(overlay.intra_node().latency_us(), 2, 0.02);
  // Only fitted fields are set.
  EXPECT_FALSE(overlay.has_nic_bandwidth_efficiency());
  EXPECT_FALSE(overlay.has_nic_latency_us());
  EXPECT_FALSE(overlay.has_num_nodes());
  EXPECT_FALSE(overlay.intra_node().has_gb_per_s());
  EXPECT_FALSE(overlay.gpu().has_peak_bf16_tflops());
  // The summary: what was fitted from how many tasks, and the errors fall.
  EXPECT_GE(s.fitted.size(), 4u);
  for (const auto& f : s.fitted) EXPECT_GT(f.samples, 0u) << f.field;
  ASSERT_FALSE(s.errors.empty());
  for (const auto& e : s.errors) {
    EXPECT_LT(e.mean_abs_error_after_s, e.mean_abs_error_before_s) << e.kind;
    if (e.kind != "gemm") {
      EXPECT_LT(e.mean_abs_error_after_pct, 1) << e.kind;
    }
  }
  const std::string text = calibration_text(overlay, s);
  EXPECT_NE(text.find("# fitted gpu.kernel_overhead_us: 4 -> 6"), std::string::npos) << text;
  EXPECT_NE(text.find("not fitted nic_bandwidth_efficiency"), std::string::npos) << text;
  // The text parses back to the overlay.
  ClusterSpec parsed;
  traces::parse_text_or_json(text, "calibration.pbtxt", false, parsed);
  EXPECT_NEAR(parsed.gpu().memory_bound_efficiency(), overlay.gpu().memory_bound_efficiency(), 1e-6);
}

TEST(Calibrate, TooLittleDataFitsNothing) {
  const Scenario sc = small_job();
  const JobGraph g = build_job_graph(sc);
  Timeline measured = as_measured(schedule(g, [](std::uint32_t) { return 1e-5; }), sc);
  // Keep the first 5 events only.
  while (measured.events_size() > 5) measured.mutable_events()->RemoveLast();
  CalibrationSummary s;
  const ClusterSpec overlay = calibrate(measured, sc.cluster(), &s);
  EXPECT_EQ(overlay.ByteSizeLong(), 0u) << traces::to_text(overlay);
  EXPECT_TRUE(s.fitted.empty());
  EXPECT_GE(s.skipped.size(), 4u);
}

TEST(Calibrate, OverlayMergeReplacesTheGemmTableAndRevalidates) {
  const Scenario sc = small_job();
  ClusterSpec overlay;
  overlay.mutable_intra_node()->set_bandwidth_efficiency(0.5);
  auto* t = overlay.mutable_gpu()->mutable_gemm_efficiency();
  t->add_m(1024);
  t->add_n(1024);
  t->add_k(1024);
  t->add_efficiency(0.42);
  const Scenario merged = calibrated_scenario(sc, overlay, "overlay.pbtxt");
  EXPECT_EQ(merged.cluster().gpu().gemm_efficiency().efficiency_size(), 1);
  EXPECT_DOUBLE_EQ(merged.cluster().intra_node().bandwidth_efficiency(), 0.5);
  EXPECT_DOUBLE_EQ(merged.cluster().intra_node().gb_per_s(), sc.cluster().intra_node().gb_per_s());
  EXPECT_EQ(merged.cluster().gpu().name(), sc.cluster().gpu().name());
  const CostModel cost(merged.cluster().gpu(), BF16);
  EXPECT_DOUBLE_EQ(cost.gemm_efficiency(8192, 8192, 8192), 0.42);
  overlay.mutable_gpu()->set_memory_bound_efficiency(1.5);
  expect_input_error([&] { calibrated_scenario(sc, overlay, "overlay.pbtxt"); }, "overlay.pbtxt");
  expect_input_error([&] { calibrated_scenario(sc, overlay, "overlay.pbtxt"); }, "memory_bound_efficiency");
}

TEST(CostModel, GemmTableWeightsReproduceTheLookup) {
  const Scenario sc = small_job();
  const auto& table = sc.cluster().gpu().gemm_efficiency();
  const CostModel cost(sc.cluster().gpu(), BF16);
  for (double m : {64.0, 128.0, 300.0, 2048.0, 5000.0, 1e6})
    for (double n : {128.0, 777.0, 32768.0})
      for (double k : {100.0, 4096.0, 40000.0}) {
        const GemmTableWeights w = gemm_table_weights(table, m, n, k);
        double e = 0, sum = 0;
        for (int i = 0; i < w.count; ++i) {
          e += w.weight[static_cast<std::size_t>(i)] * table.efficiency(w.index[static_cast<std::size_t>(i)]);
          sum += w.weight[static_cast<std::size_t>(i)];
        }
        EXPECT_DOUBLE_EQ(e, cost.gemm_efficiency(m, n, k));
        EXPECT_NEAR(sum, 1, 1e-12);
      }
}

}  // namespace
}  // namespace parallax::model
