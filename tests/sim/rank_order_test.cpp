// The rank order decides which ranks share a node: ranks fill nodes in rank order, so with tp fastest
// a TP group is inside a node (NVLink) and with dp fastest it spans nodes (the NICs). The simulator
// places ranks by the grid, its symmetric run equals the full one for any order, and the report's
// lane labels carry each rank's coordinates.
#include "parallax/model/job_graph.h"
#include "parallax/model/rank_grid.h"
#include "parallax/sim/simulate.h"
#include "test_support.h"

#include <gtest/gtest.h>

namespace parallax::sim {
namespace {

using parallax::testing::scenario_from_text;

Scenario tp_dp(const std::string& order, bool symmetry) {
  return scenario_from_text(std::string(R"(
    model { num_layers: 4 hidden_size: 2048 num_heads: 16 seq_length: 1024 vocab_size: 8192 }
    cluster { preset: "dgx-a100-80g" num_nodes: 2 }
    layout { tp: 4 dp: 2 pp: 2 micro_batch_size: 1 global_batch_size: 8 rank_order: ")") +
                            order + R"(" }
    options { use_symmetry: )" + (symmetry ? "true" : "false") + " }");
}

TEST(RankOrder, TpFastestKeepsTensorParallelismInsideANode) {
  const Scenario inside = tp_dp("tp-cp-ep-dp-pp", true), across = tp_dp("dp-pp-tp-cp-ep", true);
  const model::RankGrid a = model::rank_grid(inside), b = model::rank_grid(across);
  EXPECT_EQ(a.members(GROUP_TP, 0), (std::vector<std::uint32_t>{0, 1, 2, 3}));
  EXPECT_EQ(b.members(GROUP_TP, 0), (std::vector<std::uint32_t>{0, 4, 8, 12}));  // nodes 0, 0, 1, 1
  const double t_inside = simulate_in_subprocess(model::build_job_graph(inside)).report.step_time_s();
  const double t_across = simulate_in_subprocess(model::build_job_graph(across)).report.step_time_s();
  // Four TP all-reduces per layer and micro-batch over InfiniBand instead of NVLink.
  EXPECT_GT(t_across, 1.2 * t_inside) << "tp in a node " << t_inside << " s, across nodes " << t_across << " s";
}

TEST(RankOrder, SymmetryIsExactForAnyOrder) {
  for (const char* order : {"dp-pp-tp-cp-ep", "pp-tp-dp-cp-ep"}) {
    const auto sym = simulate_in_subprocess(model::build_job_graph(tp_dp(order, true)));
    const auto full = simulate_in_subprocess(model::build_job_graph(tp_dp(order, false)));
    EXPECT_NEAR(sym.report.step_time_s() / full.report.step_time_s(), 1.0, 1e-6) << order;
    // Lanes are labelled with each rank's coordinates on this order's grid.
    const model::RankGrid grid = model::rank_grid(tp_dp(order, false));
    ASSERT_EQ(full.timeline.ranks_size(), 16) << order;
    for (const auto& r : full.timeline.ranks()) EXPECT_EQ(r.label(), model::rank_label(grid, r.rank())) << order;
  }
}

}  // namespace
}  // namespace parallax::sim
