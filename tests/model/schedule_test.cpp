// Pipeline schedules: every step once, dependencies satisfiable, bubbles and in-flight micro-batches
// equal to the closed forms of Narayanan et al. 2021 and Korthikanti et al. 2022.
#include "parallax/model/schedule.h"

#include <gtest/gtest.h>

#include <set>
#include <tuple>

namespace parallax::model {
namespace {

struct Case {
  Layout::Schedule schedule;
  int p, v, m;
};

class ScheduleTest : public ::testing::TestWithParam<Case> {};

TEST_P(ScheduleTest, EveryStepOnceAndForwardBeforeBackward) {
  const Case c = GetParam();
  const int v = c.schedule == Layout::INTERLEAVED_1F1B ? c.v : 1;
  for (int stage = 0; stage < c.p; ++stage) {
    const auto order = stage_order(c.schedule, c.p, c.v, c.m, stage);
    ASSERT_EQ(order.size(), static_cast<std::size_t>(2 * c.m * v));
    std::set<std::tuple<int, int, bool>> seen;
    for (const auto& s : order) {
      EXPECT_TRUE(seen.insert({s.microbatch, s.chunk, s.forward}).second) << "repeated step";
      if (!s.forward) {
        EXPECT_TRUE(seen.count({s.microbatch, s.chunk, true})) << "backward before its forward";
      }
      EXPECT_GE(s.microbatch, 0);
      EXPECT_LT(s.microbatch, c.m);
      EXPECT_GE(s.chunk, 0);
      EXPECT_LT(s.chunk, v);
    }
  }
}

TEST_P(ScheduleTest, BubbleMatchesClosedForm) {
  const Case c = GetParam();
  const int v = c.schedule == Layout::INTERLEAVED_1F1B ? c.v : 1;
  // Narayanan et al. 2021: (p - 1) / (v m) with t_b = 2 t_f.
  const double expected = static_cast<double>(c.p - 1) / (v * c.m);
  EXPECT_NEAR(schedule_bubble_fraction(c.schedule, c.p, c.v, c.m), expected, 1e-9);
}

TEST_P(ScheduleTest, FirstStageHoldsKorthikantiActivations) {
  const Case c = GetParam();
  const int v = c.schedule == Layout::INTERLEAVED_1F1B ? c.v : 1;
  const int chunks = max_chunks_in_flight(stage_order(c.schedule, c.p, c.v, c.m, 0));
  double layers_fraction = static_cast<double>(chunks) / (c.p * v);  // of the model's L layers
  double expected;
  if (c.schedule == Layout::GPIPE) {
    expected = static_cast<double>(c.m) / c.p;
  } else if (c.schedule == Layout::ONE_F_ONE_B) {
    expected = static_cast<double>(std::min(c.p, c.m)) / c.p;
  } else {
    expected = c.m == c.p ? static_cast<double>(c.m) / c.p : 1.0 + (c.p - 1.0) / (c.p * v);
  }
  EXPECT_NEAR(layers_fraction, expected, 1e-12);
}

INSTANTIATE_TEST_SUITE_P(
    Schedules, ScheduleTest,
    ::testing::Values(Case{Layout::ONE_F_ONE_B, 1, 1, 4}, Case{Layout::ONE_F_ONE_B, 2, 1, 2},
                      Case{Layout::ONE_F_ONE_B, 4, 1, 8}, Case{Layout::ONE_F_ONE_B, 4, 1, 3},
                      Case{Layout::ONE_F_ONE_B, 16, 1, 192}, Case{Layout::GPIPE, 4, 1, 8},
                      Case{Layout::GPIPE, 8, 1, 32}, Case{Layout::INTERLEAVED_1F1B, 2, 2, 4},
                      Case{Layout::INTERLEAVED_1F1B, 4, 2, 8}, Case{Layout::INTERLEAVED_1F1B, 4, 3, 16},
                      Case{Layout::INTERLEAVED_1F1B, 8, 2, 48}, Case{Layout::INTERLEAVED_1F1B, 4, 2, 4},
                      Case{Layout::INTERLEAVED_1F1B, 35, 3, 280}),
    [](const ::testing::TestParamInfo<Case>& info) {
      const Case& c = info.param;
      const char* name = c.schedule == Layout::GPIPE ? "gpipe" : c.schedule == Layout::ONE_F_ONE_B ? "onef1b" : "interleaved";
      return std::string(name) + "_p" + std::to_string(c.p) + "_v" + std::to_string(c.v) + "_m" + std::to_string(c.m);
    });

TEST(Schedule, OneFOneBWarmupMatchesMegatron) {
  // Stage 0 of 4 with 8 micro-batches: 3 warm-up forwards, then alternate, then 3 backwards.
  const auto order = stage_order(Layout::ONE_F_ONE_B, 4, 1, 8, 0);
  const std::string expected = "FFFFBFBFBFBFBBBB";
  std::string got;
  for (const auto& s : order) got += s.forward ? 'F' : 'B';
  EXPECT_EQ(got, expected);
  // The last stage alternates from the start.
  got.clear();
  for (const auto& s : stage_order(Layout::ONE_F_ONE_B, 4, 1, 8, 3)) got += s.forward ? 'F' : 'B';
  EXPECT_EQ(got, "FBFBFBFBFBFBFBFB");
}

TEST(Schedule, InterleavedChunkOrderMatchesMegatron) {
  // p = 2, v = 2, m = 4: stage 0 warms up with (p - 1) * 2 + (v - 1) * p = 4 forwards:
  // micro-batches 0,1 on chunk 0, then 0,1 on chunk 1.
  const auto order = stage_order(Layout::INTERLEAVED_1F1B, 2, 2, 4, 0);
  ASSERT_GE(order.size(), 5u);
  EXPECT_EQ(order[0].chunk, 0);
  EXPECT_EQ(order[1].chunk, 0);
  EXPECT_EQ(order[2].chunk, 1);
  EXPECT_EQ(order[2].microbatch, 0);
  EXPECT_EQ(order[3].chunk, 1);
  EXPECT_EQ(order[3].microbatch, 1);
  // The first backward runs the last chunk of micro-batch 0.
  EXPECT_FALSE(order[5].forward);
  EXPECT_EQ(order[5].chunk, 1);
  EXPECT_EQ(order[5].microbatch, 0);
}

}  // namespace
}  // namespace parallax::model
