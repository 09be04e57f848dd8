// Launch configurations: a layout as Megatron-LM arguments and as a torchtitan TOML, every name one
// those projects publish, read back into the same layout; and what a framework cannot say refused by
// the layout field.
#include "parallax/model/presets.h"
#include "parallax/planner/launch_config.h"
#include "parallax/traces/io.h"
#include "test_support.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <sstream>
#include <tuple>

namespace parallax::planner {
namespace {

using parallax::testing::scenario_from_text;

// Megatron-LM's argument names (megatron/training/arguments.py), the ones a layout can need.
const std::set<std::string> kMegatronArguments = {
    "--account-for-embedding-in-pipeline-split", "--account-for-loss-in-pipeline-split",
    "--accumulate-allreduce-grads-in-fp32", "--attention-backend", "--attention-dropout", "--bf16",
    "--context-parallel-size", "--cp-comm-type", "--data-parallel-sharding-strategy",
    "--decoder-first-pipeline-num-layers", "--decoder-last-pipeline-num-layers", "--disable-bias-linear",
    "--exp-avg-dtype", "--exp-avg-sq-dtype", "--ffn-hidden-size", "--fp16", "--fp8-format", "--fp8-param-gather",
    "--fp8-recipe", "--global-batch-size", "--group-query-attention", "--hidden-dropout", "--hidden-size",
    "--kv-channels", "--main-params-dtype", "--make-vocab-size-divisible-by", "--max-position-embeddings",
    "--micro-batch-size", "--no-overlap-p2p-communication", "--normalization", "--num-attention-heads",
    "--num-layers", "--num-layers-per-virtual-pipeline-stage", "--num-query-groups", "--overlap-grad-reduce",
    "--overlap-param-gather", "--pipeline-model-parallel-size", "--position-embedding-type",
    "--recompute-granularity", "--recompute-method", "--recompute-num-layers", "--seq-length",
    "--sequence-parallel", "--squared-relu", "--swiglu", "--tensor-model-parallel-size", "--tp-comm-overlap",
    "--untie-embeddings-and-output-weights", "--use-distributed-optimizer", "--use-megatron-fsdp",
    "--use-precision-aware-optimizer", "--vocab-size",
    // Mixture of Experts and the attention variants.
    "--num-experts", "--moe-router-topk", "--moe-ffn-hidden-size", "--moe-grouped-gemm",
    "--moe-shared-expert-intermediate-size", "--moe-layer-freq", "--moe-expert-capacity-factor",
    "--moe-pad-expert-input-to-capacity",
    "--moe-token-dispatcher-type", "--expert-model-parallel-size", "--expert-tensor-parallel-size",
    "--overlap-moe-expert-parallel-comm",
    "--mtp-num-layers", "--multi-latent-attention", "--q-lora-rank", "--kv-lora-rank", "--qk-head-dim", "--qk-pos-emb-head-dim",
    "--v-head-dim", "--window-size", "--window-attn-skip-freq", "--softmax-type"};

// torchtitan's job config keys (torchtitan/config/job_config.py), section.key.
const std::set<std::string> kTorchtitanKeys = {
    "model.converters", "training.seq_len", "training.global_batch_size", "training.local_batch_size",
    "training.mixed_precision_param", "training.mixed_precision_reduce",
    "parallelism.data_parallel_replicate_degree", "parallelism.data_parallel_shard_degree",
    "parallelism.fsdp_reshard_after_forward", "parallelism.tensor_parallel_degree",
    "parallelism.enable_async_tensor_parallel", "parallelism.context_parallel_degree",
    "parallelism.pipeline_parallel_degree", "parallelism.pipeline_parallel_schedule",
    "parallelism.pipeline_parallel_layers_per_stage", "parallelism.pipeline_parallel_first_stage_less_layers",
    "parallelism.pipeline_parallel_last_stage_less_layers", "parallelism.pipeline_parallel_microbatch_size",
    "activation_checkpoint.mode", "activation_checkpoint.selective_ac_option", "compile.enable",
    "compile.components", "float8.recipe_name",
    "float8.enable_fsdp_float8_all_gather"};

Scenario llama(int gpus, const std::string& precision, const std::string& layout, const std::string& model_extra = "") {
  return scenario_from_text(R"(model { name: "Llama 3 70B" num_layers: 80 hidden_size: 8192 num_heads: 64
      num_query_groups: 8 head_dim: 128 ffn_hidden_size: 28672 seq_length: 8192 vocab_size: 128256
      make_vocab_size_divisible_by: 128 tied_embeddings: false activation: SWIGLU normalization: RMSNORM
      attention_kernel: FLASH position_embedding: ROPE add_bias_linear: false dropout: false precision: )" +
                            precision + " " + model_extra + " }\ncluster { preset: \"dgx-h100\" num_nodes: " +
                            std::to_string(gpus / 8) + " }\nlayout { " + layout + " }");
}

// The fields a launch text carries, compared one by one.
void expect_same_layout(const Scenario& want, const Scenario& got, const std::string& what) {
  const Layout &a = want.layout(), &b = got.layout();
  EXPECT_EQ(a.dp(), b.dp()) << what;
  EXPECT_EQ(a.tp(), b.tp()) << what;
  EXPECT_EQ(a.pp(), b.pp()) << what;
  EXPECT_EQ(a.cp(), b.cp()) << what;
  EXPECT_EQ(a.schedule(), b.schedule()) << what;
  if (a.schedule() == Layout::INTERLEAVED_1F1B) {
    EXPECT_EQ(a.virtual_stages(), b.virtual_stages()) << what;
  }
  EXPECT_EQ(a.sequence_parallel() && a.tp() > 1, b.sequence_parallel() && b.tp() > 1) << what;
  EXPECT_EQ(a.tp_comm_overlap(), b.tp_comm_overlap()) << what;
  EXPECT_EQ(a.micro_batch_size(), b.micro_batch_size()) << what;
  EXPECT_EQ(a.global_batch_size(), b.global_batch_size()) << what;
  EXPECT_EQ(a.recompute(), b.recompute()) << what;
  EXPECT_EQ(a.zero_stage(), b.zero_stage()) << what;
  EXPECT_EQ(a.grad_reduce_in_fp32(), b.grad_reduce_in_fp32()) << what;
  EXPECT_EQ(a.embedding_in_pipeline_split(), b.embedding_in_pipeline_split()) << what;
  EXPECT_EQ(a.loss_in_pipeline_split(), b.loss_in_pipeline_split()) << what;
  EXPECT_EQ(a.optimizer_state(), b.optimizer_state()) << what;
  EXPECT_EQ(std::max(1, a.ep()), std::max(1, b.ep())) << what;
  if (want.model().num_experts() > 0) {
    EXPECT_EQ(std::max(1, a.etp()), std::max(1, b.etp())) << what;
  }
  EXPECT_EQ(a.moe_dispatcher(), b.moe_dispatcher()) << what;
  EXPECT_EQ(a.moe_a2a_overlap(), b.moe_a2a_overlap()) << what;
  EXPECT_EQ(want.model().precision(), got.model().precision()) << what;
  if (want.model().precision() == FP8) {
    EXPECT_EQ(want.model().fp8_recipe(), got.model().fp8_recipe()) << what;
    EXPECT_EQ(want.model().fp8_params(), got.model().fp8_params()) << what;
  }
}

// A scenario's Megatron arguments: every name one Megatron-LM publishes, read back into the same
// layout; the scenario read back.
Scenario megatron_round_trip(const std::string& name, const Scenario& sc, int gpus) {
  const std::string text = megatron_arguments(sc);
  std::string w;
  std::istringstream all(text.substr(text.find('\n') + 1));
  while (all >> w)
    if (w.rfind("--", 0) == 0) {
      EXPECT_TRUE(kMegatronArguments.count(w)) << name << ": " << w;
    }
  const Scenario back = parse_megatron_arguments(text, gpus, name);
  expect_same_layout(sc, back, name + "\n" + text);
  return back;
}

TEST(LaunchConfig, MegatronArgumentsParseBackIntoTheSameLayout) {
  const std::vector<std::pair<std::string, Scenario>> cases = {
      // NVIDIA's Llama 3.1 70B FP8 benchmark layout (modern.tsv MR04).
      {"mr04", llama(64, "FP8",
                     "tp: 4 pp: 4 cp: 2 dp: 2 virtual_stages: 5 schedule: INTERLEAVED_1F1B sequence_parallel: true "
                     "tp_comm_overlap: true micro_batch_size: 1 global_batch_size: 128 zero_stage: 1",
                     "fp8_recipe: DELAYED fp8_params: true")},
      {"fsdp", llama(64, "BF16", "dp: 32 cp: 2 zero_stage: 3 recompute: FULL global_batch_size: 128 grad_reduce_in_fp32: true")},
      {"split", llama(64, "BF16",
                      "tp: 8 pp: 2 dp: 4 virtual_stages: 41 schedule: INTERLEAVED_1F1B sequence_parallel: true "
                      "embedding_in_pipeline_split: true loss_in_pipeline_split: true global_batch_size: 64 "
                      "recompute: SELECTIVE zero_stage: 1 overlap_p2p: false")},
      {"bf16-optimizer", llama(64, "BF16", "tp: 8 dp: 8 sequence_parallel: true global_batch_size: 64 zero_stage: 1 "
                                           "optimizer_state: MODEL_PRECISION")},
  };
  for (const auto& [name, sc] : cases) EXPECT_EQ(megatron_round_trip(name, sc, 64).model().num_layers(), 80);
  // Mixtures of Experts: DeepSeek-V3 (latent attention, three dense layers, a shared expert) with the
  // all-to-all overlap, and GPT-OSS (sliding window every other layer, sinks) with the all-gather
  // dispatcher and a capacity factor; the model's MoE and attention fields come back too.
  const auto preset = [](const std::string& name, int gpus, const std::string& layout, const std::string& extra = "") {
    std::string model = traces::to_text(model::load_model(name));
    return scenario_from_text("model { " + model + extra + " }\ncluster { preset: \"dgx-h100\" num_nodes: " +
                              std::to_string(gpus / 8) + " }\nlayout { " + layout + " }");
  };
  const std::vector<std::pair<std::string, Scenario>> moe = {
      {"deepseek", preset("deepseek-v3", 224,
                          "tp: 2 pp: 7 dp: 16 ep: 32 virtual_stages: 3 schedule: INTERLEAVED_1F1B sequence_parallel: true "
                          "embedding_in_pipeline_split: true loss_in_pipeline_split: true "
                          "micro_batch_size: 1 global_batch_size: 224 zero_stage: 1 moe_a2a_overlap: true")},
      // With its multi-token prediction module (D = 1), as DeepSeek trained it.
      {"deepseek-mtp", preset("deepseek-v3", 224,
                              "tp: 2 pp: 7 dp: 16 ep: 32 virtual_stages: 3 schedule: INTERLEAVED_1F1B sequence_parallel: true "
                              "embedding_in_pipeline_split: true loss_in_pipeline_split: true "
                              "micro_batch_size: 1 global_batch_size: 224 zero_stage: 1",
                              " mtp_layers: 1")},
      {"gpt-oss", preset("gpt-oss-120b", 64, "pp: 4 dp: 16 ep: 8 moe_dispatcher: ALLGATHER global_batch_size: 128 zero_stage: 1",
                         " moe_capacity_factor: 1.25 moe_pad_to_capacity: true")},
      // Expert tensor parallelism.
      {"qwen3-etp", preset("qwen3-30b-a3b", 32, "tp: 2 dp: 16 sequence_parallel: true ep: 8 etp: 2 global_batch_size: 64 zero_stage: 1")},
  };
  for (const auto& [name, sc] : moe) {
    const Scenario back = megatron_round_trip(name, sc, sc.cluster().num_nodes() * 8);
    const std::string text = megatron_arguments(sc);
    const ModelSpec &a = sc.model(), &b = back.model();
    for (const auto& [field, x, y] : std::vector<std::tuple<std::string, double, double>>{
             {"num_experts", a.num_experts(), b.num_experts()}, {"moe_top_k", a.moe_top_k(), b.moe_top_k()},
             {"moe_ffn_hidden_size", a.moe_ffn_hidden_size(), b.moe_ffn_hidden_size()},
             {"num_shared_experts", a.num_shared_experts(), b.num_shared_experts()},
             {"moe_dense_layers", a.moe_dense_layers(), b.moe_dense_layers()},
             {"moe_capacity_factor", a.moe_capacity_factor(), b.moe_capacity_factor()},
             {"moe_pad_to_capacity", a.moe_pad_to_capacity(), b.moe_pad_to_capacity()},
             {"q_lora_rank", a.q_lora_rank(), b.q_lora_rank()}, {"kv_lora_rank", a.kv_lora_rank(), b.kv_lora_rank()},
             {"qk_nope_head_dim", a.qk_nope_head_dim(), b.qk_nope_head_dim()},
             {"qk_rope_head_dim", a.qk_rope_head_dim(), b.qk_rope_head_dim()}, {"v_head_dim", a.v_head_dim(), b.v_head_dim()},
             {"sliding_window", a.sliding_window(), b.sliding_window()},
             {"sliding_window_pattern", a.sliding_window_pattern(), b.sliding_window_pattern()},
             {"attention_sinks", a.attention_sinks(), b.attention_sinks()}, {"mtp_layers", a.mtp_layers(), b.mtp_layers()}})
      EXPECT_EQ(x, y) << name << ": model." << field << "\n" << text;
  }
  EXPECT_NE(megatron_arguments(moe[0].second).find("--moe-layer-freq \"([0]*3+[1]*58)\""), std::string::npos);
  EXPECT_NE(megatron_arguments(moe[2].second).find("--window-size \"(127,0)\""), std::string::npos);
  // etp is always written, 1 included: without it Megatron-LM would take tp.
  EXPECT_NE(megatron_arguments(moe[0].second).find("--expert-tensor-parallel-size 1"), std::string::npos);
  EXPECT_NE(megatron_arguments(moe[3].second).find("--expert-tensor-parallel-size 2"), std::string::npos);
  EXPECT_NE(megatron_arguments(moe[1].second).find("--mtp-num-layers 1"), std::string::npos);
  EXPECT_EQ(megatron_arguments(moe[0].second).find("--mtp-num-layers"), std::string::npos);
  {
    // Read without the flag: Megatron-LM's default, etp = tp (here 2 from deepseek's tp 2).
    std::string text = megatron_arguments(moe[0].second);
    const auto at = text.find("--expert-tensor-parallel-size 1");
    text.erase(at, std::string("--expert-tensor-parallel-size 1").size());
    EXPECT_EQ(parse_megatron_arguments(text, 224, "no-etp").layout().etp(), 2);
  }
  // Spot checks of the values.
  const std::string mr04 = megatron_arguments(cases[0].second);
  for (const char* expected : {"--tensor-model-parallel-size 4", "--pipeline-model-parallel-size 4",
                               "--context-parallel-size 2", "--num-layers-per-virtual-pipeline-stage 4",
                               "--fp8-format hybrid", "--fp8-recipe delayed", "--fp8-param-gather",
                               "--use-distributed-optimizer", "--tp-comm-overlap", "--sequence-parallel"})
    EXPECT_NE(mr04.find(expected), std::string::npos) << expected << "\n" << mr04;
  EXPECT_THAT(mr04, ::testing::StartsWith("# Megatron-LM pretrain_gpt.py arguments for 64 GPUs: dp = 64 / (tp 4 x pp 4 x cp 2) = 2"));
}

TEST(LaunchConfig, TorchtitanTomlParsesBackIntoTheSameLayout) {
  const std::vector<std::pair<std::string, Scenario>> cases = {
      // torchtitan's Llama 3 70B FSDP run (modern.tsv MR23 shape) with per-op selective recompute.
      {"fsdp", llama(64, "BF16",
                     "dp: 64 zero_stage: 3 recompute: SELECTIVE selective_policy: PER_OP global_batch_size: 64 "
                     "grad_reduce_in_fp32: true")},
      {"3d", llama(64, "FP8",
                   "tp: 8 pp: 2 dp: 4 cp: 1 sequence_parallel: true tp_comm_overlap: true zero_stage: 3 "
                   "schedule: INTERLEAVED_1F1B virtual_stages: 2 global_batch_size: 64 recompute: FULL",
                   "fp8_recipe: CURRENT fp8_params: true")},
      {"ddp-cp", llama(64, "BF16", "dp: 32 cp: 2 zero_stage: 0 global_batch_size: 64")},
      // The embedding and the output counted as a layer each (torchtitan's first / last stage less layers).
      {"split", llama(64, "BF16",
                      "tp: 8 pp: 2 dp: 4 sequence_parallel: true zero_stage: 3 embedding_in_pipeline_split: true "
                      "loss_in_pipeline_split: true global_batch_size: 64")},
  };
  for (const auto& [name, sc] : cases) {
    const std::string toml = torchtitan_toml(sc);
    std::istringstream lines(toml);
    std::string line, section;
    while (std::getline(lines, line)) {
      if (line.empty() || line[0] == '#') continue;
      if (line[0] == '[') {
        section = line.substr(1, line.size() - 2);
        continue;
      }
      EXPECT_TRUE(kTorchtitanKeys.count(section + "." + line.substr(0, line.find(' ')))) << name << ": " << line;
    }
    const Scenario back = parse_torchtitan_toml(toml, 80, name);
    expect_same_layout(sc, back, name + "\n" + toml);
    if (sc.layout().recompute() == Layout::SELECTIVE) {
      EXPECT_EQ(back.layout().selective_policy(), Layout::PER_OP);
    }
    EXPECT_EQ(back.model().elementwise_kernels(), sc.model().elementwise_kernels()) << name;
  }
  // Eager elementwise ops are torchtitan without torch.compile; a TOML that leaves [compile] out
  // gets torchtitan's default (off), the 2024 spelling training.compile is read too.
  const Scenario eager = llama(64, "BF16", "dp: 64 zero_stage: 3 global_batch_size: 64", "elementwise_kernels: EAGER");
  const std::string eager_toml = torchtitan_toml(eager);
  EXPECT_NE(eager_toml.find("[compile]\nenable = false"), std::string::npos) << eager_toml;
  EXPECT_EQ(parse_torchtitan_toml(eager_toml, 80, "eager").model().elementwise_kernels(), ModelSpec::EAGER);
  EXPECT_EQ(parse_torchtitan_toml("[parallelism]\ndata_parallel_shard_degree = 8\n", 80, "bare").model().elementwise_kernels(),
            ModelSpec::EAGER);
  EXPECT_EQ(parse_torchtitan_toml("[training]\ncompile = true\n", 80, "2024").model().elementwise_kernels(),
            ModelSpec::FUSED);
  const std::string three_d = torchtitan_toml(cases[1].second);
  for (const char* expected : {"tensor_parallel_degree = 8", "pipeline_parallel_schedule = \"Interleaved1F1B\"",
                               "pipeline_parallel_layers_per_stage = 20", "data_parallel_shard_degree = 4",
                               "converters = [\"float8\"]", "recipe_name = \"tensorwise\"", "mode = \"full\""})
    EXPECT_NE(three_d.find(expected), std::string::npos) << expected << "\n" << three_d;
}

TEST(LaunchConfig, WhatATargetCannotSayIsRefusedByField) {
  auto refused = [](const Scenario& sc, LaunchTarget target, const std::vector<std::string>& parts) {
    try {
      (void)launch_config(sc, target);
      ADD_FAILURE() << "expressed: " << sc.layout().ShortDebugString();
    } catch (const InputError& e) {
      for (const auto& p : parts) EXPECT_THAT(e.what(), ::testing::HasSubstr(p));
    }
  };
  refused(llama(64, "BF16", "pp: 8 dp: 8 schedule: GPIPE global_batch_size: 64"), LaunchTarget::Megatron,
          {"--emit megatron", "layout.schedule GPIPE", "ONE_F_ONE_B"});
  refused(llama(64, "BF16", "dp: 64 zero_stage: 2 global_batch_size: 64"), LaunchTarget::Megatron,
          {"layout.zero_stage 2", "zero_stage 1 or 3"});
  refused(llama(64, "BF16", "dp: 64 recompute: SELECTIVE selective_policy: PER_OP global_batch_size: 64"),
          LaunchTarget::Megatron, {"layout.selective_policy PER_OP"});
  refused(llama(64, "BF16", "dp: 64 zero_stage: 3 global_batch_size: 64", "elementwise_kernels: EAGER"),
          LaunchTarget::Megatron, {"--emit megatron", "model.elementwise_kernels EAGER", "FUSED"});
  refused(llama(64, "BF16", "dp: 64 zero_stage: 1 global_batch_size: 64"), LaunchTarget::Torchtitan,
          {"--emit torchtitan", "layout.zero_stage 1", "FSDP2"});
  refused(llama(64, "BF16", "tp: 8 dp: 8 global_batch_size: 64 zero_stage: 3"), LaunchTarget::Torchtitan,
          {"layout.sequence_parallel false"});
  refused(llama(64, "FP8", "dp: 64 zero_stage: 3 global_batch_size: 64", "fp8_recipe: DELAYED"), LaunchTarget::Torchtitan,
          {"model.fp8_recipe DELAYED", "tensorwise"});
  // torchtitan's MoE models are its own flavors: a Mixture of Experts is refused by the model field.
  refused(scenario_from_text("model { " + traces::to_text(model::load_model("mixtral-8x7b")) +
                             " }\ncluster { preset: \"dgx-h100\" num_nodes: 8 }\nlayout { dp: 64 ep: 8 "
                             "global_batch_size: 64 }"),
          LaunchTarget::Torchtitan, {"--emit torchtitan", "model.num_experts 8", "--emit megatron"});
  try {
    (void)parse_launch_target("deepspeed");
    ADD_FAILURE();
  } catch (const InputError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("--emit: unknown target \"deepspeed\"; valid: megatron"));
  }
}

}  // namespace
}  // namespace parallax::planner
