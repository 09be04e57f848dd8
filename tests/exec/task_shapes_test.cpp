// The shapes the executor runs modern-layer tasks with (parallax/exec/task_shapes.h): derived from
// the plan's scenario, and refused by name when the task's own numbers disagree with it.
#include "parallax/exec/task_shapes.h"
#include "parallax/model/scenario.h"
#include "test_support.h"

#include <gtest/gtest.h>

namespace parallax::exec {
namespace {

using testing::input_error;

// tiny-gpt-cpu-tp2: hidden 384, 6 heads (head_dim 64), seq 192, micro-batch 2, tp 2 with sequence
// parallelism, FP32 (e = 4); here with 2 kv heads (one per rank) and an FFN of 1000.
Scenario tiny_tp2() {
  Scenario s = model::load_scenario(testing::scenarios_dir() / "tiny-gpt-cpu-tp2.pbtxt");
  s.mutable_model()->set_num_query_groups(2);
  s.mutable_model()->set_ffn_hidden_size(1000);
  return s;
}

model::JobGraph graph_of(const Scenario& scenario, std::vector<model::Task> tasks) {
  for (auto& t : tasks) t.rank = 0;
  std::vector<std::uint32_t> ids;
  for (std::uint32_t i = 0; i < tasks.size(); ++i) ids.push_back(i);
  return model::JobGraph(scenario, {{0, 2, 0}}, std::move(tasks), {ids}, {});
}

model::Task flash(std::uint32_t m, std::uint32_t n, std::uint32_t k, std::uint32_t batch, Phase phase = FORWARD) {
  model::Task t;
  t.op = model::Op::FlashAttention;
  t.kind = GEMM;
  t.phase = phase;
  t.gemm_m = m, t.gemm_n = n, t.gemm_k = k, t.gemm_batch = batch;
  return t;
}

model::Task elementwise(model::Op op, std::uint64_t bytes, Phase phase = FORWARD) {
  model::Task t;
  t.op = op;
  t.kind = MEMORY_BOUND;
  t.phase = phase;
  t.bytes = bytes;
  return t;
}

TEST(TaskShapes, LayerKernelsAreTheSixModernOps) {
  int count = 0;
  for (int i = 0; i < static_cast<int>(model::Op::kCount); ++i) count += is_layer_kernel(static_cast<model::Op>(i));
  EXPECT_EQ(count, 6);
  EXPECT_TRUE(is_layer_kernel(model::Op::FlashAttention));
  EXPECT_FALSE(is_layer_kernel(model::Op::Gelu));
  EXPECT_FALSE(is_layer_kernel(model::Op::LayerNorm));
}

TEST(TaskShapes, FlashAttentionShapeComesFromTheTaskAndTheScenario) {
  // 3 query heads per rank x micro-batch 2 = gemm_batch 6; 2 kv heads over tp 2 = 1 per rank.
  const auto graph = graph_of(tiny_tp2(), {flash(192, 192, 64, 6), flash(192, 192, 64, 6, BACKWARD),
                                           flash(192, 192, 64, 6, RECOMPUTE_FORWARD)});
  const auto s = flash_attention_shape(graph, 0, "p.pb");
  EXPECT_EQ(s.batch, 2u);
  EXPECT_EQ(s.heads, 3u);
  EXPECT_EQ(s.kv_heads, 1u);
  EXPECT_EQ(s.seq, 192u);
  EXPECT_EQ(s.head_dim, 64u);
  EXPECT_FALSE(s.backward);
  EXPECT_TRUE(flash_attention_shape(graph, 1, "p.pb").backward);
  EXPECT_FALSE(flash_attention_shape(graph, 2, "p.pb").backward);  // the recompute runs the forward
}

TEST(TaskShapes, AFlashAttentionTaskThatDisagreesWithItsScenarioIsRefusedByName) {
  const auto graph = graph_of(tiny_tp2(), {flash(192, 192, 32, 6), flash(192, 192, 64, 5), flash(100, 192, 64, 6),
                                           flash(192, 192, 64, 9), elementwise(model::Op::Gelu, 8)});
  auto message = input_error([&] { flash_attention_shape(graph, 0, "p.pb"); });
  EXPECT_NE(message.find("p.pb: task 0"), std::string::npos) << message;
  EXPECT_NE(message.find("gemm_k (head_dim) is 32 but the scenario gives 64"), std::string::npos) << message;
  message = input_error([&] { flash_attention_shape(graph, 1, "p.pb"); });
  EXPECT_NE(message.find("gemm_batch"), std::string::npos) << message;
  message = input_error([&] { flash_attention_shape(graph, 2, "p.pb"); });
  EXPECT_NE(message.find("gemm_m (query tokens) is 100"), std::string::npos) << message;
  message = input_error([&] { flash_attention_shape(graph, 3, "p.pb"); });  // micro-batch 3, not 2
  EXPECT_NE(message.find("layout.micro_batch_size"), std::string::npos) << message;
  message = input_error([&] { flash_attention_shape(graph, 4, "p.pb"); });
  EXPECT_NE(message.find("not a flash attention task"), std::string::npos) << message;
}

TEST(TaskShapes, ElementwiseShapesAndTheirBytes) {
  // e = 4 (FP32). Tokens b s = 384; sequence parallel: the norms hold 384 / 2 = 192 rows of 384.
  const std::uint64_t norm = 192ull * 384, ffn = 384ull * 500, rope = 384ull * (3 + 1) * 64;
  const auto graph = graph_of(tiny_tp2(), {
                                              elementwise(model::Op::RmsNorm, norm * 8),
                                              elementwise(model::Op::FinalRmsNorm, norm * 12, BACKWARD),
                                              elementwise(model::Op::Swiglu, ffn * 12),
                                              elementwise(model::Op::Swiglu, ffn * 20, BACKWARD),
                                              elementwise(model::Op::SquaredRelu, ffn * 12, BACKWARD),
                                              elementwise(model::Op::Rope, rope * 8, BACKWARD),
                                          });
  auto s = layer_op_shape(graph, 0, "p.pb");
  EXPECT_EQ(s.rows, 192u);
  EXPECT_EQ(s.cols, 384u);
  EXPECT_FALSE(s.backward);
  s = layer_op_shape(graph, 1, "p.pb");
  EXPECT_EQ(s.values(), norm);
  EXPECT_TRUE(s.backward);
  s = layer_op_shape(graph, 2, "p.pb");
  EXPECT_EQ(s.rows, 384u);
  EXPECT_EQ(s.cols, 500u);
  EXPECT_EQ(s.bytes_per_value, 12u);
  EXPECT_EQ(layer_op_shape(graph, 3, "p.pb").bytes_per_value, 20u);
  EXPECT_EQ(layer_op_shape(graph, 4, "p.pb").cols, 500u);
  s = layer_op_shape(graph, 5, "p.pb");
  EXPECT_EQ(s.rows, 384u);
  EXPECT_EQ(s.cols, 256u);  // 3 query heads and 1 kv head of 64
  EXPECT_EQ(s.head_dim, 64u);
  EXPECT_EQ(s.seq, 192u);
}

TEST(TaskShapes, ElementwiseTasksWhoseBytesDisagreeAreRefusedByName) {
  Scenario scenario = tiny_tp2();
  const auto graph = graph_of(scenario, {elementwise(model::Op::RmsNorm, 384ull * 384 * 8),  // rows without SP
                                         elementwise(model::Op::Swiglu, 384ull * 500 * 8)});  // 2e, not 3e
  auto message = input_error([&] { layer_op_shape(graph, 0, "p.pb"); });
  EXPECT_NE(message.find("p.pb: task 0"), std::string::npos) << message;
  EXPECT_NE(message.find("192 x 384 values x 8 bytes"), std::string::npos) << message;
  message = input_error([&] { layer_op_shape(graph, 1, "p.pb"); });
  EXPECT_NE(message.find("384 x 500 values x 12 bytes"), std::string::npos) << message;
  // An odd head_dim cannot be rotated in pairs; an FFN that tp does not divide has no shape.
  scenario.mutable_model()->set_head_dim(63);
  scenario.mutable_model()->set_ffn_hidden_size(1001);
  const auto odd = graph_of(scenario, {elementwise(model::Op::Rope, 8), elementwise(model::Op::SquaredRelu, 8)});
  message = input_error([&] { layer_op_shape(odd, 0, "p.pb"); });
  EXPECT_NE(message.find("head_dim 63 is odd"), std::string::npos) << message;
  message = input_error([&] { layer_op_shape(odd, 1, "p.pb"); });
  EXPECT_NE(message.find("ffn_hidden_size 1001 is not a multiple of tp 2"), std::string::npos) << message;
}

}  // namespace
}  // namespace parallax::exec
