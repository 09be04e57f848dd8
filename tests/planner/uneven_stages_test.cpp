// Uneven pipeline stages against the closed form: with free transfers and the slowest stage last,
// 1F1B takes (m - 1) max_i t_i + sum_i t_i (formulas::pipeline_time) plus the first stage's optimizer
// step; the simulator and the planner's estimator both have to find it, and they agree with each
// other where the closed form does not apply (the slowest stage first).
#include "parallax/model/cost_model.h"
#include "parallax/model/formulas.h"
#include "parallax/model/job_graph.h"
#include "parallax/model/schedule.h"
#include "parallax/model/stage_partition.h"
#include "parallax/planner/estimate.h"
#include "parallax/sim/simulate.h"
#include "test_support.h"

#include <gtest/gtest.h>

namespace parallax::planner {
namespace {

using parallax::testing::scenario_from_text;

// Two CPU "GPUs", one per stage, on a link as free as validation allows (1e5 GB/s, no latency): only
// compute is left, each stage's tasks one after another on its compute stream.
Scenario two_stage(const std::string& stage_layers, const std::string& schedule = "ONE_F_ONE_B") {
  return scenario_from_text(R"(
    model { num_layers: 4 hidden_size: 256 num_heads: 4 seq_length: 128 vocab_size: 512 precision: FP32
            tied_embeddings: false }
    cluster { preset: "cpu-laptop" num_nodes: 1 gpus_per_node: 2
              intra_node { kind: PCIE gb_per_s: 100000 latency_us: 0 } }
    layout { pp: 2 micro_batch_size: 1 global_batch_size: 8 schedule: )" + schedule +
                            " stage_layers: [" + stage_layers + "] }");
}

struct StageCosts {
  std::vector<double> per_microbatch;  // forward + backward of one micro-batch, per stage
  std::vector<double> optimizer;
};

// From the graph and the cost model: each stage's compute tasks of micro-batch 0, and its optimizer.
StageCosts stage_costs(const model::JobGraph& g) {
  const model::CostModel cost(g.scenario().cluster().gpu(), g.scenario().model().precision());
  StageCosts c;
  c.per_microbatch.assign(2, 0.0);
  c.optimizer.assign(2, 0.0);
  for (std::size_t i = 0; i < g.ranks().size(); ++i) {
    const auto stage = static_cast<std::size_t>(g.ranks()[i].pp_stage);
    for (auto id : g.rank_tasks(i)) {
      const model::Task& t = g.tasks()[id];
      if (!t.is_compute()) continue;
      if (t.phase == OPTIMIZER) c.optimizer[stage] += cost.duration(t);
      else if (t.microbatch == 0) c.per_microbatch[stage] += cost.duration(t);
    }
  }
  return c;
}

double simulated(const model::JobGraph& g) { return sim::simulate_in_subprocess(g).report.step_time_s(); }

TEST(UnevenStages, SlowestStageLastGivesTheClosedForm) {
  for (const char* split : {"1, 3", "2, 2"}) {
    for (const char* schedule : {"ONE_F_ONE_B", "GPIPE"}) {
      const Scenario sc = two_stage(split, schedule);
      const model::JobGraph g = model::build_job_graph(sc);
      const StageCosts c = stage_costs(g);
      // The output layer sits on the last stage: it is the slowest in both splits.
      ASSERT_GT(c.per_microbatch[1], c.per_microbatch[0]) << split;
      const double closed = model::formulas::pipeline_time(c.per_microbatch, 8) + c.optimizer[0];
      const double sim = simulated(g), est = estimate_step(sc).step_s;
      EXPECT_NEAR(sim / closed, 1.0, 2e-3) << split << " " << schedule << ": simulated " << sim << " s, closed form " << closed;
      EXPECT_NEAR(est / closed, 1.0, 2e-3) << split << " " << schedule << ": estimated " << est << " s, closed form " << closed;
    }
  }
}

TEST(UnevenStages, ClosedFormOfEvenStagesIsTheClassicBubble) {
  EXPECT_DOUBLE_EQ(model::formulas::bubble_fraction(std::vector<double>(4, 2.5), 8), 3.0 / 8.0);
  EXPECT_DOUBLE_EQ(model::formulas::pipeline_time({1.0, 3.0}, 8), 7 * 3.0 + 4.0);
  // The schedule walk with per-chunk weights: an even split is the classic bubble, a split with the
  // heavy stage last is the closed form's (weights 1 and 3, backward twice the forward).
  EXPECT_NEAR(model::schedule_bubble_fraction(Layout::ONE_F_ONE_B, 2, 1, 8, std::vector<double>{2, 2}), 1.0 / 8, 1e-12);
  EXPECT_NEAR(model::schedule_bubble_fraction(Layout::ONE_F_ONE_B, 2, 1, 8, std::vector<double>{1, 3}),
              model::formulas::bubble_fraction({3.0, 9.0}, 8), 1e-12);
  // The scenario's bubble (inspect, the simulator's report) weights chunks by their layers.
  EXPECT_NEAR(model::layout_bubble_fraction(two_stage("1, 3")), model::formulas::bubble_fraction({3.0, 9.0}, 8), 1e-12);
  EXPECT_NEAR(model::layout_bubble_fraction(two_stage("2, 2")), 1.0 / 8, 1e-12);
  EXPECT_NEAR(model::layout_bubble_fraction(two_stage("1, 3", "GPIPE")), model::formulas::bubble_fraction({3.0, 9.0}, 8), 1e-12);
}

TEST(UnevenStages, SimulatorAndEstimatorAgreeWithTheSlowestStageFirst) {
  const Scenario sc = two_stage("4, 0");
  const model::JobGraph g = model::build_job_graph(sc);
  const StageCosts c = stage_costs(g);
  ASSERT_GT(c.per_microbatch[0], c.per_microbatch[1]);
  const double sim = simulated(g), est = estimate_step(sc).step_s;
  EXPECT_NEAR(est / sim, 1.0, 5e-3) << "estimated " << est << " s, simulated " << sim;
  // Slower than the busiest stage alone, faster than the closed form that assumes it is last.
  EXPECT_GT(sim, 8 * c.per_microbatch[0]);
  EXPECT_LT(sim, model::formulas::pipeline_time(c.per_microbatch, 8) + c.optimizer[0]);
}

}  // namespace
}  // namespace parallax::planner
