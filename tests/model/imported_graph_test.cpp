// A graph imported from an execution trace written to and read back from its proto form (the form a
// timeline of an imported trace carries, so compare and the GUI can join and draw it): the round
// trip keeps communicators, measured durations, host ops and trace labels; a malformed one is an
// InputError naming the task or communicator; compare joins two timelines of the same import and
// refuses timelines of different jobs.
#include "parallax/interop/chakra.h"
#include "parallax/analysis/compare.h"
#include "parallax/model/job_graph.h"
#include "parallax/model/presets.h"
#include "parallax/model/scenario.h"
#include "test_support.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>

namespace parallax::model {
using analysis::compare_timelines;
using analysis::CompareResult;
namespace {

using ::testing::HasSubstr;
using interop::ChakraImport;

ChakraImport import_trace(const std::string& dir, const std::string& prefix) {
  return interop::import_chakra(
      parallax::testing::source_dir() / "tests" / "data" / "chakra" / dir / prefix,
      model::resolve_cluster("dgx-a100-80g"));
}

std::string input_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no InputError)";
}

void expect_same_graph(const JobGraph& a, const JobGraph& b) {
  ASSERT_EQ(a.num_tasks(), b.num_tasks());
  ASSERT_EQ(a.num_edges(), b.num_edges());
  EXPECT_TRUE(b.imported());
  EXPECT_EQ(a.communicators(), b.communicators());
  for (std::uint32_t id = 0; id < a.num_tasks(); ++id) {
    const Task &x = a.tasks()[id], &y = b.tasks()[id];
    EXPECT_EQ(a.task_label(id), b.task_label(id));
    EXPECT_EQ(x.rank, y.rank);
    EXPECT_EQ(x.kind, y.kind);
    EXPECT_EQ(x.op, y.op);
    EXPECT_EQ(x.stream, y.stream);
    EXPECT_EQ(x.communicator, y.communicator);
    EXPECT_EQ(x.measured_s, y.measured_s);
    EXPECT_EQ(x.on_host, y.on_host);
    EXPECT_EQ(x.bytes, y.bytes);
    EXPECT_EQ(x.flops, y.flops);
    EXPECT_EQ(x.peer, y.peer);
    EXPECT_EQ(a.successors(id), b.successors(id));
  }
  for (std::size_t r = 0; r < a.ranks().size(); ++r)
    EXPECT_TRUE(std::equal(a.rank_tasks(r).begin(), a.rank_tasks(r).end(), b.rank_tasks(r).begin(),
                           b.rank_tasks(r).end()));
}

TEST(ImportedGraph, ProtoRoundTripKeepsCommunicatorsDurationsHostOpsAndLabels) {
  // GPT dp2 x tp2: four explicit communicators. FSDP: measured durations and CPU-side ops.
  for (const auto& [dir, prefix] :
       {std::pair{"gpt-stg-dp2-tp2", "workload"}, {"fsdp-mlp-pytorch-2", "chakra_trace"}}) {
    SCOPED_TRACE(dir);
    const ChakraImport imported = import_trace(dir, prefix);
    const JobGraph back = JobGraph::from_proto(imported.graph.to_proto(), "test");
    expect_same_graph(imported.graph, back);
  }
  const ChakraImport fsdp = import_trace("fsdp-mlp-pytorch-2", "chakra_trace");
  int measured = 0, host = 0;
  for (const Task& t : fsdp.graph.tasks()) {
    measured += t.measured_s >= 0;
    host += t.on_host;
  }
  // Not vacuous: the trace has both.
  EXPECT_GT(measured, 0);
  EXPECT_GT(host, 0);
}

class MalformedImportedGraph : public ::testing::Test {
 protected:
  void SetUp() override { proto = import_trace("gpt-stg-dp2-tp2", "workload").graph.to_proto(); }
  int first_collective() const {
    for (int i = 0; i < proto.tasks_size(); ++i)
      if (proto.tasks(i).kind() == COLLECTIVE) return i;
    return -1;
  }
  std::string error() const {
    return input_error([&] { JobGraph::from_proto(proto, "pred.pb: graph"); });
  }
  parallax::JobGraph proto;
};

TEST_F(MalformedImportedGraph, CommunicatorIndexOutOfRange) {
  const int c = first_collective();
  ASSERT_GE(c, 0);
  proto.mutable_tasks(c)->set_communicator(99);
  EXPECT_THAT(error(), HasSubstr("communicator 99 does not exist"));
  proto.mutable_tasks(c)->set_communicator(-5);
  EXPECT_THAT(error(), HasSubstr("communicator -5 does not exist"));
}

TEST_F(MalformedImportedGraph, CollectiveWithoutCommunicatorOrOffItsMembers) {
  const int c = first_collective();
  ASSERT_GE(c, 0);
  proto.mutable_tasks(c)->clear_communicator();
  EXPECT_THAT(error(), HasSubstr("needs its communicator"));
  // Communicator whose members exclude the task's rank.
  const std::uint32_t rank = proto.tasks(c).rank();
  auto* lonely = proto.add_communicators();
  lonely->add_ranks(rank == 0 ? 1 : 0);
  proto.mutable_tasks(c)->set_communicator(proto.communicators_size() - 1);
  EXPECT_THAT(error(), HasSubstr("which is not in its communicator"));
}

TEST_F(MalformedImportedGraph, CommunicatorRanks) {
  proto.add_communicators();
  EXPECT_THAT(error(), HasSubstr("has no ranks"));
  proto.mutable_communicators(proto.communicators_size() - 1)->add_ranks(7);
  EXPECT_THAT(error(), HasSubstr("has rank 7 but the job has 4 ranks"));
  proto.mutable_communicators(proto.communicators_size() - 1)->set_ranks(0, 1);
  proto.mutable_communicators(proto.communicators_size() - 1)->add_ranks(1);
  EXPECT_THAT(error(), HasSubstr("lists a rank twice"));
}

TEST_F(MalformedImportedGraph, MeasuredDurationNotFinite) {
  proto.mutable_tasks(0)->set_measured_s(std::numeric_limits<double>::infinity());
  EXPECT_THAT(error(), HasSubstr("measured_s must be a finite number"));
  proto.mutable_tasks(0)->set_measured_s(std::numeric_limits<double>::quiet_NaN());
  EXPECT_THAT(error(), HasSubstr("measured_s must be a finite number"));
}

TEST_F(MalformedImportedGraph, ScenarioOfAnImportIsChecked) {
  proto.mutable_scenario()->mutable_layout()->set_tp(2);
  EXPECT_THAT(error(), HasSubstr("an imported graph has tp 1 and pp 1"));
  proto.mutable_scenario()->mutable_layout()->set_tp(1);
  proto.mutable_scenario()->mutable_layout()->set_dp(100000);
  EXPECT_THAT(error(), HasSubstr("layout.dp"));
  proto.mutable_scenario()->mutable_layout()->set_dp(4);
  proto.mutable_scenario()->mutable_cluster()->set_gpus_per_node(0);
  EXPECT_THAT(error(), HasSubstr("cluster.gpus_per_node"));
}

TEST(ImportedGraph, FieldsOfImportsAreRefusedOnABuiltGraph) {
  Scenario sc = load_scenario(parallax::testing::scenarios_dir() / "tiny-gpt-cpu.pbtxt");
  parallax::JobGraph proto = build_job_graph(sc).to_proto();
  proto.add_communicators()->add_ranks(0);
  EXPECT_THAT(input_error([&] { JobGraph::from_proto(proto, "plan.pb"); }),
              HasSubstr("communicators are only for graphs imported"));
  proto.clear_communicators();
  proto.mutable_tasks(0)->set_label("x");
  EXPECT_THAT(input_error([&] { JobGraph::from_proto(proto, "plan.pb"); }),
              HasSubstr("only for graphs imported from execution traces"));
}

// A measured timeline made from a prediction by slowing every GEMM by 20%: compare of an imported
// trace's timelines must join every event and find that error.
Timeline predicted_timeline(const JobGraph& graph) {
  Timeline t;
  t.set_source(Timeline::PREDICTED);
  *t.mutable_scenario() = graph.scenario();
  *t.mutable_graph() = graph.to_proto();
  // Tasks back to back per rank in program order, each 1 ms: a valid (if simple) schedule.
  for (std::size_t r = 0; r < graph.ranks().size(); ++r) {
    double clock = 0;
    for (auto id : graph.rank_tasks(r)) {
      auto* e = t.add_events();
      e->set_task_id(id);
      e->set_rank(graph.tasks()[id].rank);
      e->set_kind(graph.tasks()[id].kind);
      e->set_start_s(clock);
      clock += 1e-3;
      e->set_end_s(clock);
    }
  }
  return t;
}

TEST(ImportedGraph, CompareJoinsTimelinesOfTheSameImport) {
  const ChakraImport imported = import_trace("gpt-stg-dp2-tp2", "workload");
  const Timeline predicted = predicted_timeline(imported.graph);
  Timeline measured = predicted;
  measured.set_source(Timeline::MEASURED);
  for (auto& e : *measured.mutable_events())
    if (e.kind() == GEMM) e.set_end_s(e.start_s() + 1.2e-3);
  const CompareResult r = compare_timelines(predicted, measured);
  EXPECT_EQ(r.measured_events, imported.graph.num_tasks());
  EXPECT_EQ(r.predicted_tasks, imported.graph.num_tasks());
  bool saw_gemm = false;
  for (const auto& c : r.classes)
    if (c.name.starts_with("gemm")) {
      saw_gemm = true;
      EXPECT_GT(c.count, 0u);
      EXPECT_NEAR(c.error_pct, (1.0 - 1.2) / 1.2 * 100, 1e-6);
    }
  EXPECT_TRUE(saw_gemm);
}

TEST(ImportedGraph, CompareRefusesTimelinesOfDifferentJobs) {
  const ChakraImport gpt = import_trace("gpt-stg-dp2-tp2", "workload");
  const ChakraImport fsdp = import_trace("fsdp-mlp-pytorch-2", "chakra_trace");
  Timeline measured = predicted_timeline(fsdp.graph);
  measured.set_source(Timeline::MEASURED);
  EXPECT_THAT(input_error([&] { compare_timelines(predicted_timeline(gpt.graph), measured); }),
              HasSubstr("different jobs"));
  // One of an import, one of a scenario.
  Timeline scenario_timeline;
  *scenario_timeline.mutable_scenario() =
      load_scenario(parallax::testing::scenarios_dir() / "tiny-gpt-cpu.pbtxt");
  scenario_timeline.set_source(Timeline::MEASURED);
  EXPECT_THAT(
      input_error([&] { compare_timelines(predicted_timeline(gpt.graph), scenario_timeline); }),
      HasSubstr("imported from an execution trace but the measured one is of a scenario"));
}

}  // namespace
}  // namespace parallax::model
