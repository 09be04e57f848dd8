// Every published run of validation/public.tsv, expressed as a scenario, checked against the closed
// forms: Narayanan's eq. 3 for FLOPs per iteration, the parameter counts of docs/architecture.md; and the graph must
// be a DAG (the schedule cannot deadlock).
#include "parallax/model/formulas.h"
#include "parallax/model/job_graph.h"
#include "parallax/model/memory_model.h"
#include "parallax/model/parameters.h"
#include "test_support.h"

#include <gtest/gtest.h>

namespace parallax::model {
namespace {

using testing::ValidationRow;

class ValidationRowTest : public ::testing::TestWithParam<ValidationRow> {};

TEST_P(ValidationRowTest, FlopsParametersAndGraph) {
  const ValidationRow& row = GetParam();
  const Scenario sc = parallax::testing::scenario_from_text(parallax::testing::validation_scenario_text(row),
                                                            row.id + ".pbtxt");
  const Dims d = dims(sc);
  const JobGraph graph = build_job_graph(sc);

  // Model FLOPs: the 72 formula (no recompute) within 1%.
  const double model72 = formulas::flops_per_iteration(d, false);
  EXPECT_NEAR(graph.model_flops() / model72, 1.0, 0.01);

  // Hardware FLOPs: with full recompute the 96 formula; with selective recompute the 72 formula plus
  // the recomputed attention core (2 batched GEMMs of 2 b s^2 h FLOPs per layer and micro-batch).
  double hardware_expected = model72;
  if (row.recompute == "full") hardware_expected = formulas::flops_per_iteration(d, true);
  if (row.recompute == "selective")
    hardware_expected += 4.0 * static_cast<double>(d.B) * d.s * d.s * d.h * d.L;
  EXPECT_NEAR(graph.hardware_flops() / hardware_expected, 1.0, 0.01);

  // Parameters from the per-rank shards, against P = 12 L h^2 (1 + 13/(12h) + (V+s)/(12 L h)); the
  // formula leaves out the final LayerNorm (2h), hence the tolerance.
  EXPECT_NEAR(total_parameters(d, true) / formulas::parameters(d), 1.0, 1e-5);

  // The step is a DAG and every representative stands for tp * dp ranks.
  const auto order = graph.topological_order();
  EXPECT_EQ(order.size(), graph.num_tasks());
  EXPECT_EQ(graph.ranks().size(), static_cast<std::size_t>(d.p));
  EXPECT_EQ(graph.ranks().front().multiplicity, static_cast<std::uint32_t>(d.t * d.d));

  // Published runs fit in memory (they ran).
  EXPECT_TRUE(estimate_memory(sc).fits()) << row.id << " needs " << estimate_memory(sc).peak().total() / 1e9 << " GB";
}

INSTANTIATE_TEST_SUITE_P(PublicTsv, ValidationRowTest, ::testing::ValuesIn(parallax::testing::validation_rows()),
                         [](const ::testing::TestParamInfo<ValidationRow>& info) { return info.param.id; });

}  // namespace
}  // namespace parallax::model
