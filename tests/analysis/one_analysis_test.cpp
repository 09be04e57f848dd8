// One timeline, one analysis: the simulator's report, compare and the analysis functions called on
// the timeline itself must give the same critical path (task ids, in order, and its summary: the
// report carries the summary, segment by segment) and the same per-rank breakdown. The GUI's core is held to the same numbers in tests/gui/core_test.cpp
// (one_analysis_as_the_report). Two scenarios: the tiny dp 2 x pp 2 job and a pure pipeline of 2
// stages and 4 micro-batches, whose fill and drain are bubble.
#include "parallax/analysis/compare.h"
#include "parallax/analysis/timeline_analysis.h"
#include "parallax/model/job_graph.h"
#include "parallax/model/rank_grid.h"
#include "parallax/model/scenario.h"
#include "parallax/sim/simulate.h"
#include "test_support.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace parallax::analysis {
namespace {

using google::protobuf::util::MessageDifferencer;

struct Simulated {
  Report report;
  Timeline timeline;
};

Simulated simulate(const std::string& scenario_file) {
  const Scenario sc = model::load_scenario((testing::scenarios_dir() / scenario_file).string());
  sim::SimulationOptions options;
  options.name_events = true;
  sim::SimulationResult r = sim::simulate_in_subprocess(model::build_job_graph(sc), options);
  return {std::move(r.report), std::move(r.timeline)};
}

// What a critical path is, checked from the graph and the times alone (not by the code under test):
// it ends at the task that ends last, each task is a predecessor of the next, and the first has no
// timed predecessor.
void expect_a_path_of(const model::JobGraph& graph, const TaskTimes& times, const std::vector<std::uint32_t>& path) {
  ASSERT_FALSE(path.empty());
  const double last_end = *std::max_element(times.end.begin(), times.end.end());
  EXPECT_EQ(times.end[path.back()], last_end);
  for (std::size_t i = 1; i < path.size(); ++i) {
    const auto preds = graph.predecessors(path[i]);
    EXPECT_NE(std::find(preds.begin(), preds.end(), path[i - 1]), preds.end())
        << graph.task_name(path[i - 1]) << " does not precede " << graph.task_name(path[i]);
  }
  EXPECT_TRUE(graph.predecessors(path.front()).empty()) << graph.task_name(path.front());
}

void expect_same_breakdown(const RankBreakdown& report, const RankTime& timeline, const std::string& where) {
  EXPECT_NEAR(report.compute_s(), timeline.compute_s, 1e-12) << where;
  EXPECT_NEAR(report.exposed_comm_s(), timeline.exposed_comm_s, 1e-12) << where;
  EXPECT_NEAR(report.overlapped_comm_s(), timeline.overlapped_comm_s, 1e-12) << where;
  EXPECT_NEAR(report.bubble_s(), timeline.bubble_s, 1e-12) << where;
  EXPECT_NEAR(report.idle_s(), timeline.idle_s, 1e-12) << where;
}

class OneAnalysis : public ::testing::TestWithParam<const char*> {};

TEST_P(OneAnalysis, ReportCompareAndTimelineAgree) {
  const Simulated s = simulate(GetParam());
  const model::JobGraph graph = graph_of(s.timeline, "the simulated timeline");
  const TaskTimes times = task_times(graph, s.timeline);
  EXPECT_DOUBLE_EQ(times.step_s, s.report.step_time_s());

  // The critical path: the report's, the timeline's, and compare's of the timeline against itself.
  const PathSummary path = critical_path(graph, times);
  expect_a_path_of(graph, times, path.tasks);
  // The report's path: the same tasks (its summary names each rank's first and last task, counts the
  // tasks per segment and times each), the same split of time.
  EXPECT_TRUE(MessageDifferencer::Equals(s.report.critical_path(), path.path))
      << "report:\n" << s.report.critical_path().DebugString() << "timeline:\n" << path.path.DebugString();
  EXPECT_NEAR(path.path.compute_s() + path.path.comm_s() + path.path.wait_s(), s.report.step_time_s(), 1e-12);

  Timeline measured = s.timeline;
  measured.set_source(Timeline::MEASURED);
  const CompareResult self = compare_timelines(s.timeline, measured);
  EXPECT_EQ(self.critical_path_predicted.tasks, path.tasks);
  EXPECT_EQ(self.critical_path_measured.tasks, path.tasks);
  EXPECT_TRUE(MessageDifferencer::Equals(self.critical_path_predicted.path, s.report.critical_path()));
  EXPECT_TRUE(MessageDifferencer::Equals(self.critical_path_measured.path, s.report.critical_path()));

  // Against a perturbed copy (every GEMM 1.5 times as long, where it started): compare's predicted
  // path is still the report's, its measured path the analysis of the perturbed timeline.
  Timeline slower = measured;
  for (auto& e : *slower.mutable_events())
    if (graph.tasks()[e.task_id()].kind == GEMM) e.set_end_s(e.start_s() + 1.5 * (e.end_s() - e.start_s()));
  const CompareResult perturbed = compare_timelines(s.timeline, slower);
  EXPECT_EQ(perturbed.critical_path_predicted.tasks, path.tasks);
  const TaskTimes slower_times = task_times(graph, slower);
  const PathSummary slower_path = critical_path(graph, slower_times);
  expect_a_path_of(graph, slower_times, slower_path.tasks);
  EXPECT_EQ(perturbed.critical_path_measured.tasks, slower_path.tasks);
  EXPECT_GT(perturbed.critical_path_measured.path.compute_s(), perturbed.critical_path_predicted.path.compute_s());

  // The breakdown: the report's rows and the timeline's, representative by representative; the parts
  // sum to the step.
  const std::vector<RankTime> parts = breakdown(graph, times);
  ASSERT_EQ(static_cast<std::size_t>(s.report.breakdown_size()), graph.ranks().size());
  ASSERT_EQ(parts.size(), graph.ranks().size());
  double bubble = 0;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const RankBreakdown& row = s.report.breakdown(static_cast<int>(i));
    EXPECT_EQ(row.rank(), graph.ranks()[i].rank);
    expect_same_breakdown(row, parts[i], "rank " + std::to_string(row.rank()));
    const RankTime& p = parts[i];
    EXPECT_NEAR(p.compute_s + p.exposed_comm_s + p.bubble_s + p.idle_s, s.report.step_time_s(), 1e-12)
        << "rank " << row.rank();
    bubble += p.bubble_s;
  }
  // Both scenarios are pipelines: fill and drain are bubble, not idle.
  EXPECT_GT(bubble, 0);
}

INSTANTIATE_TEST_SUITE_P(Scenarios, OneAnalysis, ::testing::Values("tiny-gpt-cpu.pbtxt", "tiny-gpt-cpu-pp2.pbtxt"),
                         [](const auto& info) {
                           std::string name = info.param;
                           name = name.substr(0, name.find('.'));
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// Under symmetry every real rank of a stage runs its representative's task list: a measured
// timeline's rank is analysed by that list (the GUI's per-rank breakdown relies on it).
TEST(OneAnalysis, RealRanksMapToTheirStageRepresentative) {
  const Scenario sc = model::load_scenario((testing::scenarios_dir() / "tiny-gpt-cpu.pbtxt").string());
  const model::JobGraph graph = model::build_job_graph(sc);
  ASSERT_TRUE(graph.uses_symmetry());
  const model::RankGrid grid = model::rank_grid(sc);
  for (std::uint32_t r = 0; r < grid.size(); ++r) {
    const std::int64_t index = rank_index_of(graph, r);
    ASSERT_GE(index, 0) << r;
    EXPECT_EQ(graph.ranks()[static_cast<std::size_t>(index)].pp_stage, grid.stage(r)) << r;
  }
  EXPECT_EQ(rank_index_of(graph, grid.size()), -1);
}

}  // namespace
}  // namespace parallax::analysis
