// The N-dimensional rank grid: every order a bijection, the group table's sizes and strides, the
// default order equal to Megatron's rank = tp + t * (dp + d * stage), and rank_order validation.
#include "parallax/model/job_graph.h"
#include "parallax/model/rank_grid.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

namespace parallax::model {
namespace {

using parallax::testing::input_error;
using parallax::testing::scenario_from_text;
using parallax::testing::small_scenario_text;

// All 120 orders of the five dimensions.
std::vector<GridOrder> all_orders() {
  GridOrder order = kDefaultRankOrder;
  std::sort(order.begin(), order.end());
  std::vector<GridOrder> out;
  do out.push_back(order);
  while (std::next_permutation(order.begin(), order.end()));
  return out;
}

// Extents that tell every dimension apart: 2, 3, 1, 2, 5 would hide ep; all > 1 and distinct.
constexpr GridCoords kExtent{2, 3, 5, 2, 7};  // tp, cp, ep, dp, pp: 420 ranks

TEST(RankGrid, EveryOrderIsABijectionBetweenRanksAndCoordinates) {
  for (const GridOrder& order : all_orders()) {
    const RankGrid grid(kExtent, order);
    ASSERT_EQ(grid.size(), 420u);
    std::set<GridCoords> seen;
    for (std::uint32_t r = 0; r < grid.size(); ++r) {
      const GridCoords c = grid.coords(r);
      for (std::size_t i = 0; i < kGridDims; ++i) ASSERT_LT(c[i], kExtent[i]);
      ASSERT_EQ(grid.rank(c), r) << rank_order_text(order);
      ASSERT_TRUE(seen.insert(c).second) << rank_order_text(order) << " rank " << r;
    }
    // The fastest dimension has stride 1, each next one the product of those before it.
    std::int64_t stride = 1;
    for (GridDim dim : order) {
      EXPECT_EQ(grid.stride(dim), stride) << rank_order_text(order) << " " << grid_dim_name(dim);
      stride *= grid.extent(dim);
    }
  }
}

TEST(RankGrid, GroupsHaveTheRightSizeStrideAndPartitionTheRanks) {
  const std::vector<std::pair<CommGroup, GridDim>> single{
      {GROUP_TP, GridDim::Tp}, {GROUP_CP, GridDim::Cp}, {GROUP_EP, GridDim::Ep}, {GROUP_DP, GridDim::Dp}, {GROUP_PP, GridDim::Pp}};
  for (const GridOrder& order : all_orders()) {
    const RankGrid grid(kExtent, order);
    for (const auto& [group, dim] : single) {
      std::set<std::uint32_t> covered;
      for (std::uint32_t r = 0; r < grid.size(); ++r) {
        const auto m = grid.members(group, r);
        ASSERT_EQ(static_cast<std::int64_t>(m.size()), grid.extent(dim));
        ASSERT_TRUE(std::find(m.begin(), m.end(), r) != m.end());
        for (std::size_t i = 1; i < m.size(); ++i)
          ASSERT_EQ(static_cast<std::int64_t>(m[i] - m[i - 1]), grid.stride(dim)) << rank_order_text(order);
        // Members share every other coordinate.
        for (auto x : m)
          for (std::size_t k = 0; k < kGridDims; ++k)
            if (static_cast<GridDim>(k) != dim) {
              ASSERT_EQ(grid.coords(x)[k], grid.coords(r)[k]);
            }
        // Every member names the same group.
        ASSERT_EQ(grid.members(group, m.back()), m);
        if (m.front() == r) covered.insert(m.begin(), m.end());
      }
      EXPECT_EQ(covered.size(), grid.size());
    }
    for (std::uint32_t r = 0; r < grid.size(); r += 7) {
      const auto dp_cp = grid.members(GROUP_DP_CP, r);
      ASSERT_EQ(dp_cp.size(), 6u);
      ASSERT_TRUE(std::is_sorted(dp_cp.begin(), dp_cp.end()));
      for (auto x : dp_cp) {
        EXPECT_EQ(grid.tp(x), grid.tp(r));
        EXPECT_EQ(grid.ep(x), grid.ep(r));
        EXPECT_EQ(grid.stage(x), grid.stage(r));
      }
      const auto emb = grid.members(GROUP_EMBEDDING, r);
      ASSERT_EQ(emb.size(), 2u);
      EXPECT_EQ(grid.stage(emb[0]), 0);
      EXPECT_EQ(grid.stage(emb[1]), 6);
      EXPECT_EQ(grid.pipeline(emb[0]), grid.pipeline(r));
      EXPECT_EQ(grid.members(GROUP_NONE, r), std::vector<std::uint32_t>{r});
    }
    // Stages: the representative is in its stage, the stage's ranks are one per pipeline.
    std::set<std::int64_t> pipelines;
    for (std::int64_t s = 0; s < 7; ++s) {
      EXPECT_EQ(grid.stage(grid.stage_representative(s)), s);
      const auto ranks = grid.stage_ranks(s);
      ASSERT_EQ(static_cast<std::int64_t>(ranks.size()), grid.pipelines());
      for (auto x : ranks) {
        EXPECT_EQ(grid.stage(x), s);
        if (s == 0) pipelines.insert(grid.pipeline(x));
      }
    }
    EXPECT_EQ(static_cast<std::int64_t>(pipelines.size()), grid.pipelines());
    EXPECT_EQ(*pipelines.rbegin(), grid.pipelines() - 1);
  }
}

TEST(RankGrid, DefaultOrderIsMegatronsTpDpStage) {
  for (const auto& [t, d, p] : {std::tuple{1, 1, 1}, {2, 3, 4}, {8, 4, 2}, {1, 16, 3}}) {
    const RankGrid grid(t, d, p);
    EXPECT_EQ(rank_order_text(grid.order()), "tp-cp-ep-dp-pp");
    for (std::int64_t s = 0; s < p; ++s)
      for (std::int64_t j = 0; j < d; ++j)
        for (std::int64_t i = 0; i < t; ++i) {
          const auto r = static_cast<std::uint32_t>(i + t * (j + d * s));
          EXPECT_EQ(grid.rank({i, 0, 0, j, s}), r);
          EXPECT_EQ(grid.tp(r), i);
          EXPECT_EQ(grid.dp(r), j);
          EXPECT_EQ(grid.stage(r), s);
          EXPECT_EQ(grid.with(r, GridDim::Pp, 0), static_cast<std::uint32_t>(i + t * j));
        }
    EXPECT_EQ(grid.stage_representative(p - 1), static_cast<std::uint32_t>(t * d * (p - 1)));
  }
}

TEST(RankGrid, ParsesRankOrders) {
  EXPECT_EQ(parse_rank_order("tp-cp-ep-dp-pp"), kDefaultRankOrder);
  const auto order = parse_rank_order("pp-dp-tp-ep-cp");
  ASSERT_TRUE(order);
  EXPECT_EQ(rank_order_text(*order), "pp-dp-tp-ep-cp");
  for (const char* bad : {"", "tp-dp-pp", "tp-cp-ep-dp-pp-tp", "tp-tp-ep-dp-pp", "tp-cp-ep-dp-xx", "tp-cp-ep-dp-pp-",
                          "TP-CP-EP-DP-PP", "tp cp ep dp pp"})
    EXPECT_FALSE(parse_rank_order(bad)) << bad;
}

TEST(RankGrid, ScenarioRankOrderIsValidatedByName) {
  const std::string e = input_error(
      [] { scenario_from_text(small_scenario_text("tp: 2 dp: 4 global_batch_size: 8 rank_order: \"tp-dp-pp\""), "o.pbtxt"); });
  EXPECT_NE(e.find("layout.rank_order"), std::string::npos) << e;
  EXPECT_NE(e.find("tp, cp, ep, dp, pp once each"), std::string::npos) << e;
  EXPECT_NE(e.find("tp-cp-ep-dp-pp"), std::string::npos) << e;
}

// Any order builds: with symmetry the representative of each stage is a rank of that stage, its
// pipeline peers are in its own pipeline, and the build with and without symmetry stores the
// same tasks per stage.
TEST(RankGrid, EveryOrderBuildsAGraphWhosePeersStayInTheirPipeline) {
  for (const char* order : {"tp-cp-ep-dp-pp", "pp-dp-tp-cp-ep", "dp-pp-tp-cp-ep", "tp-pp-dp-cp-ep"}) {
    for (const bool symmetry : {true, false}) {
      const Scenario sc = scenario_from_text(small_scenario_text(
          std::string("tp: 2 pp: 2 dp: 2 global_batch_size: 4 rank_order: \"") + order + "\"", 1,
          std::string("options { use_symmetry: ") + (symmetry ? "true" : "false") + " }"));
      const RankGrid grid = rank_grid(sc);
      const JobGraph g = build_job_graph(sc);
      ASSERT_EQ(g.ranks().size(), symmetry ? 2u : 8u) << order;
      for (std::size_t i = 0; i < g.ranks().size(); ++i) {
        const auto& rc = g.ranks()[i];
        EXPECT_EQ(grid.stage(rc.rank), rc.pp_stage) << order;
        for (auto id : g.rank_tasks(i)) {
          const Task& t = g.tasks()[id];
          if (t.peer < 0) continue;
          const auto peer = static_cast<std::uint32_t>(t.peer);
          EXPECT_EQ(grid.pipeline(peer), grid.pipeline(rc.rank)) << order << " " << g.task_name(id);
          EXPECT_NE(grid.stage(peer), grid.stage(rc.rank)) << order;
        }
      }
    }
  }
}

}  // namespace
}  // namespace parallax::model
