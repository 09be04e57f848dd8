// The readers under bad input: every problem the fuzzers or the review of the
// readers found, with the message it must give now. Each names the file (or the timeline), the
// node or field and the problem, and is a parallax::InputError, never a crash or a wrong answer.
#include "parallax/exec/plan.h"
#include "parallax/analysis/calibrate.h"
#include "parallax/analysis/compare.h"
#include "parallax/model/job_graph.h"
#include "parallax/model/scenario.h"
#include "parallax/traces/io.h"
#include "test_support.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

namespace parallax {
namespace {

using ::testing::HasSubstr;

using testing::input_error;

parallax::JobGraph small_plan() {
  return model::build_job_graph(testing::scenario_from_text(testing::small_scenario_text(
                                    "dp: 4 tp: 1 pp: 2 micro_batch_size: 1 global_batch_size: 8")))
      .to_proto();
}

// --- plans (parallax.JobGraph, the executor's input) ---

TEST(HardenedPlan, ValidPlanStillReadsBack) {
  const parallax::JobGraph proto = small_plan();
  const model::JobGraph graph = model::JobGraph::from_proto(proto, "plan.pb");
  EXPECT_EQ(graph.num_tasks(), static_cast<std::size_t>(proto.tasks_size()));
  EXPECT_EQ(graph.num_edges(), static_cast<std::size_t>(proto.edge_src_size()));
}

// Was: a plan whose scenario had tp 0 divided by zero in the executor's rank grid (SIGFPE).
TEST(HardenedPlan, InvalidEmbeddedScenarioIsAnInputError) {
  parallax::JobGraph proto = small_plan();
  proto.mutable_scenario()->mutable_layout()->set_tp(0);
  const std::string msg = input_error([&] { model::JobGraph::from_proto(proto, "plan.pb"); });
  EXPECT_THAT(msg, HasSubstr("plan.pb: scenario: layout.tp: must be >= 1 (got 0)"));
}

TEST(HardenedPlan, PlanWithoutScenarioIsAnInputError) {
  parallax::JobGraph proto = small_plan();
  proto.clear_scenario();
  EXPECT_THAT(input_error([&] { model::JobGraph::from_proto(proto, "plan.pb"); }),
              HasSubstr("plan.pb: the plan has no scenario"));
}

// Was: a dependency cycle made topological_order() throw std::logic_error (not an InputError: the
// tools reported an internal error) and the executor deadlock.
TEST(HardenedPlan, CycleNamesATaskOnIt) {
  parallax::JobGraph proto = small_plan();
  // Close a cycle: an edge back from the successor of the first edge to its source.
  const std::uint32_t a = proto.edge_src(0), b = proto.edge_dst(0);
  proto.add_edge_src(b);
  proto.add_edge_dst(a);
  const std::string msg = input_error([&] { model::JobGraph::from_proto(proto, "plan.pb"); });
  EXPECT_THAT(msg, HasSubstr("plan.pb: task "));
  EXPECT_THAT(msg, HasSubstr("is on a dependency cycle: the schedule would deadlock"));
  const bool names_a = msg.find("task " + std::to_string(a) + " (") != std::string::npos;
  const bool names_b = msg.find("task " + std::to_string(b) + " (") != std::string::npos;
  EXPECT_TRUE(names_a || names_b) << msg;
}

TEST(HardenedPlan, SelfLoopIsACycle) {
  parallax::JobGraph proto = small_plan();
  proto.add_edge_src(3);
  proto.add_edge_dst(3);
  EXPECT_THAT(input_error([&] { model::JobGraph::from_proto(proto, "plan.pb"); }),
              HasSubstr("plan.pb: task 3 ("));
}

// Was: a send to a rank outside the job made the executor compute a peer stage past the last one.
TEST(HardenedPlan, PeerOutsideTheJobIsAnInputError) {
  parallax::JobGraph proto = small_plan();
  int send = -1;
  for (int i = 0; i < proto.tasks_size(); ++i)
    if (proto.tasks(i).kind() == SEND) send = i;
  ASSERT_GE(send, 0);
  proto.mutable_tasks(send)->set_peer(8);
  const std::string msg = input_error([&] { model::JobGraph::from_proto(proto, "plan.pb"); });
  EXPECT_THAT(msg,
              HasSubstr("plan.pb: task " + std::to_string(proto.tasks(send).id()) + " (pp_send"));
  EXPECT_THAT(msg, HasSubstr("peer 8 is not a rank of the job (0 to 7)"));
}

// Was: silently wrapped into the 16-bit layer index (a silent wrong task name and MPI tag).
TEST(HardenedPlan, LayerOutOfRangeIsAnInputError) {
  parallax::JobGraph proto = small_plan();
  proto.mutable_tasks(0)->set_layer(40000);
  EXPECT_THAT(input_error([&] { model::JobGraph::from_proto(proto, "plan.pb"); }),
              HasSubstr("layer 40000 is out of range (-1 or 0 to 32767)"));
}

TEST(HardenedPlan, RankClassOutsideTheJobIsAnInputError) {
  parallax::JobGraph proto = small_plan();
  proto.mutable_ranks(0)->set_rank(9);
  EXPECT_THAT(
      input_error([&] { model::JobGraph::from_proto(proto, "plan.pb"); }),
      HasSubstr("plan.pb: rank class 0 (rank 9): the job has only 8 ranks (dp 4 x tp 1 x pp 2)"));
}

TEST(HardenedPlan, RankClassInTheWrongStageIsAnInputError) {
  parallax::JobGraph proto = small_plan();
  proto.mutable_ranks(0)->set_pp_stage(1);
  EXPECT_THAT(input_error([&] { model::JobGraph::from_proto(proto, "plan.pb"); }),
              HasSubstr("pp_stage 1 but the rank is in stage 0"));
}

TEST(HardenedPlan, GemmSizeOverflowIsAnInputError) {
  parallax::JobGraph proto = small_plan();
  proto.mutable_tasks(0)->set_gemm_m(1ull << 40);
  EXPECT_THAT(input_error([&] { model::JobGraph::from_proto(proto, "plan.pb"); }),
              HasSubstr("gemm_m 1099511627776 is out of range"));
}

// A plan file cut off mid-message names the file and says what it expected.
TEST(HardenedPlan, TruncatedFileNamesTheFile) {
  const std::string bytes = small_plan().SerializeAsString();
  const testing::TempDir dir;
  const auto path = dir / "truncated.plan.pb";
  {
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  }
  parallax::JobGraph proto;
  const std::string msg = input_error([&] { traces::read_binary(path, proto); });
  EXPECT_THAT(msg, HasSubstr(path.string() +
                             ": not a valid parallax.JobGraph (protobuf binary; truncated"));
}

// --- timelines (compare, calibrate) ---

Timeline small_timeline() {
  Timeline tl;
  *tl.mutable_scenario() = testing::scenario_from_text(
      testing::small_scenario_text("dp: 4 tp: 1 pp: 2 micro_batch_size: 1 global_batch_size: 8"));
  auto* e = tl.add_events();
  e->set_task_id(0);
  e->set_rank(0);
  e->set_start_s(0);
  e->set_end_s(1e-3);
  return tl;
}

// Was: compare and calibrate built a job graph from the embedded scenario without validating it; tp
// 0 divided by zero (SIGFPE).
TEST(HardenedTimeline, InvalidEmbeddedScenarioIsAnInputError) {
  Timeline tl = small_timeline();
  tl.mutable_scenario()->mutable_layout()->set_tp(0);
  EXPECT_THAT(input_error([&] { analysis::compare_timelines(tl, tl); }),
              HasSubstr("the predicted timeline's scenario: layout.tp: must be >= 1 (got 0)"));
  EXPECT_THAT(input_error([&] { analysis::calibrate(tl, small_timeline().scenario().cluster()); }),
              HasSubstr("the measured timeline's scenario: layout.tp: must be >= 1 (got 0)"));
}

// Was: a NaN or infinite time went into the step time and the calibration fit as a number.
TEST(HardenedTimeline, NonFiniteTimeIsAnInputError) {
  Timeline tl = small_timeline();
  tl.mutable_events(0)->set_end_s(std::numeric_limits<double>::infinity());
  EXPECT_THAT(
      input_error([&] { analysis::compare_timelines(tl, tl); }),
      HasSubstr(
          "the predicted timeline: event 0 (task 0, rank 0) has a start_s or end_s that is not a "
          "finite number"));
}

// --- scenarios ---

// Was: accepted, then the 16-bit layer index of every task wrapped.
TEST(HardenedScenario, TooManyLayersIsAnInputError) {
  const std::string text = testing::small_scenario_text("dp: 8 global_batch_size: 8");
  Scenario sc = testing::scenario_from_text(text);
  sc.mutable_model()->set_num_layers(40000);
  EXPECT_THAT(
      input_error([&] { model::validate_scenario(sc, "big.pbtxt"); }),
      HasSubstr("big.pbtxt: model.num_layers: at most 32767 layers are supported (got 40000)"));
}

// Was: accepted; the rank grid's 32-bit size wrapped (2^31 nodes x 8 GPUs) and per-rank arrays were
// sized by it.
TEST(HardenedScenario, TooManyGpusIsAnInputError) {
  Scenario sc =
      testing::scenario_from_text(testing::small_scenario_text("dp: 8 global_batch_size: 8"));
  sc.mutable_cluster()->set_num_nodes(1 << 29);
  sc.mutable_layout()->set_dp(1 << 30);
  sc.mutable_layout()->set_tp(4);
  EXPECT_THAT(input_error([&] { model::validate_scenario(sc, "huge.pbtxt"); }),
              HasSubstr("huge.pbtxt: cluster.num_nodes: the cluster has 4294967296 GPUs"));
}

// Was: accepted; the graph builder's 64-bit products of sizes (attention scores: micro-batch * heads *
// seq_length^2, GEMM operand bytes) overflowed, undefined behaviour.
TEST(HardenedScenario, SizesWhoseProductsOverflowAreInputErrors) {
  std::string text = testing::small_scenario_text("dp: 8 global_batch_size: 8");
  text.replace(text.find("seq_length: 256"), 15, "seq_length: 1073741824");
  EXPECT_THAT(input_error([&] { testing::scenario_from_text(text, "long.pbtxt"); }),
              HasSubstr("long.pbtxt:3: model.seq_length: too large: micro_batch_size * num_heads * seq_length^2 "
                        "(attention scores of a micro-batch) = 9.2233720368547758e+18 elements; at most 2^48 are "
                        "supported"));
  text = testing::small_scenario_text("dp: 8 global_batch_size: 8");
  // hidden 2^25: a 4h x h FFN weight matrix is 2^52 elements.
  text.replace(text.find("hidden_size: 512"), 16, "hidden_size: 33554432");
  EXPECT_THAT(input_error([&] { testing::scenario_from_text(text, "wide.pbtxt"); }),
              HasSubstr("wide.pbtxt:3: model.hidden_size: too large: hidden_size * max(hidden_size, ffn size, "
                        "vocab_size) (a weight matrix)"));
}

// Found by fuzz_scenario_text (regressions/fuzz_scenario_text/preset-name-*.pbtxt). Was: a preset name
// longer than the file system allows made std::filesystem throw ("File name too long"), an uncaught
// filesystem_error; a name with control bytes was looked up as it was.
TEST(HardenedScenario, PresetNamesNoFileCanHaveAreInputErrors) {
  std::string text = testing::small_scenario_text("dp: 8 global_batch_size: 8");
  const std::string preset = "preset: \"dgx-a100-80g\"";
  std::string long_name = text;
  long_name.replace(long_name.find(preset), preset.size(), "preset: \"dgx-" + std::string(5000, '9') + "\"");
  const std::string message = input_error([&] { testing::scenario_from_text(long_name, "long.pbtxt"); });
  EXPECT_THAT(message, HasSubstr("long.pbtxt:4: cluster.preset: no preset \"dgx-999"));
  // The name is cut in the message, with its length.
  EXPECT_THAT(message, HasSubstr("... (5004 bytes)"));
  EXPECT_LT(message.size(), 2000u);
  std::string control = text;
  control.replace(control.find(preset), preset.size(), "preset: \"cpu-\x19\x19laptop\"");
  EXPECT_THAT(input_error([&] { testing::scenario_from_text(control, "ctl.pbtxt"); }),
              HasSubstr("ctl.pbtxt:4: cluster.preset: no preset \"cpu-\\x19\\x19laptop\" (a name with a control "
                        "character names no file); bundled presets: "));
}

// Found by fuzz_scenario_text (regressions/fuzz_scenario_text/mla-head-dims-overflow.pbtxt). Was: the
// check that multi-head latent attention has a query/key head dimension added qk_nope_head_dim and
// qk_rope_head_dim in 32 bits, signed overflow (UBSan) at 2^31 - 1 each.
TEST(HardenedScenario, LatentAttentionHeadDimensionsDoNotOverflow) {
  const std::string mla = "kv_lora_rank: 256 qk_nope_head_dim: 2147483647 qk_rope_head_dim: 2147483647 "
                          "v_head_dim: 128 attention_kernel: FLASH }";
  std::string text = testing::small_scenario_text("dp: 8 global_batch_size: 8");
  text.replace(text.find("BF16 }"), 6, "BF16 " + mla);
  // The sum is taken in 64 bits and the attention's width then bounded like any other size.
  EXPECT_THAT(input_error([&] { testing::scenario_from_text(text, "mla.pbtxt"); }),
              HasSubstr("mla.pbtxt:3: model.hidden_size: too large: hidden_size * max(hidden_size, ffn size, "
                        "vocab_size) (a weight matrix)"));
}

}  // namespace
}  // namespace parallax
