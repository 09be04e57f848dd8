// validation/modern.tsv read and mapped to scenarios: the new columns, the framework defaults where
// the source says '?', what is refused as not modelled, and public.tsv's rows unchanged.
#include "parallax/model/validation_table.h"
#include "test_support.h"

#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>

namespace parallax::model {
namespace {

using parallax::testing::input_error;

const std::map<std::string, ValidationRow>& modern() {
  static const std::map<std::string, ValidationRow> rows = [] {
    std::map<std::string, ValidationRow> out;
    for (const auto& r : read_validation_table(parallax::testing::source_dir() / "validation" / "modern.tsv"))
      out.emplace(r.id, r);
    return out;
  }();
  return rows;
}

// The row's scenario as written, before presets and validation.
Scenario text_of(const std::string& id) {
  Scenario sc;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(validation_row_text(modern().at(id)), &sc)) << id;
  return sc;
}


TEST(ModernRows, ColumnsAreRead) {
  ASSERT_EQ(modern().size(), 20u);
  const ValidationRow& r = modern().at("MR24");
  EXPECT_EQ(r.model, "Nemotron-4 340B");
  EXPECT_EQ(r.ffn_hidden, 73728);
  EXPECT_EQ(r.kv_heads, 8);
  EXPECT_EQ(r.head_dim, 192);
  EXPECT_EQ(r.activation, "relu2");
  EXPECT_FALSE(r.tied_embeddings);
  EXPECT_EQ(r.vpp, 12);
  EXPECT_EQ(r.framework, "nemo-dgxc");
  EXPECT_EQ(r.gpus(), 128);
  EXPECT_TRUE(r.overlap_grad_reduce);  // a framework's row: overlapped by default
  EXPECT_EQ(modern().at("MR01").cp, 2);
  EXPECT_EQ(modern().at("MR01").gpus(), 8);
  EXPECT_EQ(modern().at("MR30").experts, 256);
  EXPECT_EQ(modern().at("MR30").head_dim, 0);  // '?'
}

TEST(ModernRows, QuestionMarksTakeTheFrameworksDefaultAndSaySo) {
  const ValidationRow& r = modern().at("MR36");  // megatron-bridge, recompute '?', a MoE row
  EXPECT_EQ(r.recompute, "none");
  ASSERT_EQ(r.assumed.size(), 2u);
  EXPECT_NE(r.assumed[0].find("routing balanced: every expert gets tokens x top_k / experts"), std::string::npos)
      << r.assumed[0];
  EXPECT_NE(r.assumed[1].find("recompute none (the source does not say; Megatron-Bridge"), std::string::npos)
      << r.assumed[1];
  EXPECT_TRUE(modern().at("MR21").assumed.empty());  // the source says selective
}

TEST(ModernRows, UnmodelledFeaturesAreNamed) {
  // Every MoE row is modelled: Qwen3, Grok-1, Mixtral (on DGX B200, which has a preset), DeepSeek-V3
  // (multi-head latent attention) and GPT-OSS (sliding-window and sink attention).
  for (const char* id : {"MR30", "MR34", "MR36", "MR37", "MR39"}) EXPECT_NO_THROW(validation_scenario(modern().at(id))) << id;
  // What the scenario loader refuses as not modelled yet is named: ZeRO-3 of a MoE model.
  ValidationRow fsdp_moe = modern().at("MR37");
  fsdp_moe.zero = 3;
  try {
    validation_scenario(fsdp_moe);
    ADD_FAILURE() << "ZeRO-3 of a MoE model was modelled";
  } catch (const RowNotModelled& e) {
    EXPECT_NE(std::string(e.what()).find("ZeRO-2/3 (FSDP) sharding of a Mixture-of-Experts model"), std::string::npos) << e.what();
  }
  // DeepSeek-V3: MLA with the table's ranks, NeMo's uneven pipeline split (4 layers on each of 15
  // stages, 1 on the last), the recipe's recompute; GPT-OSS: the window, its pattern and the sinks.
  const Scenario deepseek = text_of("MR30");
  EXPECT_EQ(deepseek.model().kv_lora_rank(), 512);
  EXPECT_EQ(deepseek.model().q_lora_rank(), 1536);
  EXPECT_EQ(deepseek.layout().stage_layers_size(), 16);
  EXPECT_EQ(deepseek.layout().stage_layers(0), 4);
  EXPECT_EQ(deepseek.layout().stage_layers(15), 1);
  EXPECT_EQ(deepseek.layout().recompute(), Layout::FULL);
  const Scenario gpt_oss = text_of("MR36");
  EXPECT_EQ(gpt_oss.model().sliding_window(), 128);
  EXPECT_EQ(gpt_oss.model().sliding_window_pattern(), 2);
  EXPECT_TRUE(gpt_oss.model().attention_sinks());
  EXPECT_TRUE(gpt_oss.model().add_bias_linear());
  const Scenario mixtral = text_of("MR39");
  EXPECT_EQ(mixtral.model().num_experts(), 8);
  EXPECT_EQ(mixtral.model().moe_top_k(), 2);
  EXPECT_EQ(mixtral.model().moe_ffn_hidden_size(), 14336);
  EXPECT_EQ(mixtral.layout().ep(), 8);
}

TEST(ModernRows, TorchtitanOnTheH100_96GB) {
  const Scenario sc = text_of("MR21");
  EXPECT_EQ(sc.cluster().preset(), "grand-teton-h100-96gb");
  EXPECT_EQ(sc.cluster().num_nodes(), 16);
  const ModelSpec& m = sc.model();
  EXPECT_EQ(m.num_query_groups(), 8);
  EXPECT_EQ(m.head_dim(), 128);
  EXPECT_EQ(m.ffn_hidden_size(), 14336);
  EXPECT_EQ(m.activation(), ModelSpec::SWIGLU);
  EXPECT_EQ(m.normalization(), ModelSpec::RMSNORM);
  EXPECT_EQ(m.attention_kernel(), ModelSpec::FLASH2);  // PyTorch SDPA's flash backend
  EXPECT_EQ(m.position_embedding(), ModelSpec::ROPE);
  EXPECT_FALSE(m.add_bias_linear());
  EXPECT_FALSE(m.tied_embeddings());
  EXPECT_EQ(m.make_vocab_size_divisible_by(), 1);  // torchtitan: no Megatron padding
  EXPECT_EQ(m.name(), "Llama 3.1 8B");
  const Layout& l = sc.layout();
  EXPECT_EQ(l.zero_stage(), 3);
  EXPECT_TRUE(l.reshard_after_forward());
  EXPECT_TRUE(l.grad_reduce_in_fp32());
  EXPECT_EQ(l.recompute(), Layout::SELECTIVE);
  EXPECT_EQ(l.selective_policy(), Layout::PER_OP);
  EXPECT_EQ(l.dp(), 128);
  EXPECT_EQ(l.micro_batch_size(), 2);
  EXPECT_FALSE(l.tp_comm_overlap());
  // On the A100 (MR22): DGX A100 with the row's 200 Gbit/s NICs.
  const Scenario a100 = text_of("MR22");
  EXPECT_EQ(a100.cluster().preset(), "dgx-a100-80g");
  EXPECT_DOUBLE_EQ(a100.cluster().nic_gbit_per_s(), 200);
  // torch.compile: MR21's source names it (column compile yes: fused); MR22 leaves it unsaid, so
  // torchtitan's default (training.compile false) runs its elementwise ops eager.
  EXPECT_EQ(m.elementwise_kernels(), ModelSpec::FUSED);
  EXPECT_EQ(a100.model().elementwise_kernels(), ModelSpec::EAGER);
  // The Megatron stacks run fused kernels whatever the column says.
  EXPECT_EQ(text_of("MR24").model().elementwise_kernels(), ModelSpec::FUSED);
}

TEST(ModernRows, NemoNemotronAndGpt3) {
  const Scenario nemotron = text_of("MR24");
  EXPECT_EQ(nemotron.model().activation(), ModelSpec::SQUARED_RELU);
  EXPECT_EQ(nemotron.model().normalization(), ModelSpec::LAYERNORM);
  EXPECT_EQ(nemotron.model().position_embedding(), ModelSpec::ROPE);
  EXPECT_FALSE(nemotron.model().add_bias_linear());
  EXPECT_EQ(nemotron.model().head_dim(), 192);
  EXPECT_EQ(nemotron.model().make_vocab_size_divisible_by(), 128);
  EXPECT_EQ(nemotron.layout().schedule(), Layout::INTERLEAVED_1F1B);
  EXPECT_EQ(nemotron.layout().virtual_stages(), 12);
  EXPECT_TRUE(nemotron.layout().tp_comm_overlap());
  EXPECT_TRUE(nemotron.layout().overlap_p2p());
  EXPECT_EQ(nemotron.cluster().preset(), "dgx-h100");

  EXPECT_EQ(nemotron.model().attention_kernel(), ModelSpec::FLASH);  // Transformer Engine's fused attention
  const Scenario gpt3 = text_of("MR27");
  EXPECT_EQ(gpt3.model().activation(), ModelSpec::GELU);
  EXPECT_EQ(gpt3.model().normalization(), ModelSpec::LAYERNORM);
  EXPECT_EQ(gpt3.model().position_embedding(), ModelSpec::LEARNED);
  EXPECT_TRUE(gpt3.model().add_bias_linear());
  EXPECT_TRUE(gpt3.model().tied_embeddings());
  EXPECT_EQ(gpt3.model().attention_kernel(), ModelSpec::FLASH);
  EXPECT_EQ(gpt3.model().vocab_size(), 50257);
  EXPECT_EQ(gpt3.model().make_vocab_size_divisible_by(), 128);

  // The optimizer column, as each run's config has it: 340B's optim.dtype bf16, GPT-3's
  // distributed_fused_adam (fp32 state, master kept as remainders), 15B's mcore distributed optimizer.
  EXPECT_EQ(nemotron.layout().optimizer_state(), Layout::MODEL_PRECISION);
  EXPECT_EQ(gpt3.layout().optimizer_state(), Layout::FP32_REMAINDERS);
  EXPECT_EQ(text_of("MR26").layout().optimizer_state(), Layout::FP32_MASTER);
  EXPECT_FALSE(text_of("MR26").layout().has_optimizer_state());
  EXPECT_EQ(modern().at("MR21").optimizer, "fp32");  // '?'
}

TEST(ModernRows, PublicRowsAreTheGptEraScenarioAsBefore) {
  for (const auto& r : read_validation_table(parallax::testing::source_dir() / "validation" / "public.tsv")) {
    const std::string text = validation_row_text(r);
    for (const char* field : {"activation", "normalization", "attention_kernel", "cp:", "tp_comm_overlap",
                              "make_vocab_size_divisible_by", "num_query_groups"})
      EXPECT_EQ(text.find(field), std::string::npos) << r.id << ": " << field;
    EXPECT_NO_THROW(validation_scenario(r)) << r.id;
  }
}

TEST(ModernRows, MalformedColumnsAreRefused) {
  const parallax::testing::TempDir dir;
  const auto path = dir / "t.tsv";
  const std::string header = "id\tlayers\thidden\theads\tseq\tvocab\tgbs\tmbs\ttp\tpp\tdp\tcp\tgpus\tgpu\tmeasured_iter_s\tactivation\trecompute\tframework\n";
  std::ofstream(path) << header << "X\t2\t64\t4\t128\t1000\t8\t1\t1\t1\t8\t1\t16\th100-80g\t1\tgelu\tnone\tnemo\n";
  EXPECT_NE(input_error([&] { read_validation_table(path); })
                .find(":2: column \"gpus\" is 16 but tp * pp * cp * dp = 1 * 1 * 1 * 8 = 8"),
            std::string::npos);
  std::ofstream(path) << header << "X\t2\t64\t4\t128\t1000\t8\t1\t1\t1\t8\t1\t8\th100-80g\t1\tgeglu\tnone\tnemo\n";
  EXPECT_NE(input_error([&] { read_validation_table(path); })
                .find(":2: column \"activation\" must be one of gelu, swiglu, relu2 (got \"geglu\")"),
            std::string::npos);
  std::ofstream(path) << header.substr(0, header.size() - 1) << "\toptimizer\n"
                      << "X\t2\t64\t4\t128\t1000\t8\t1\t1\t1\t8\t1\t8\th100-80g\t1\tgelu\tnone\tnemo\tfp16\n";
  EXPECT_NE(input_error([&] { read_validation_table(path); })
                .find("column \"optimizer\" must be one of fp32, fp32-remainders, bf16, ? (got \"fp16\")"),
            std::string::npos);
  std::ofstream(path) << header << "X\t2\t64\t4\t128\t1000\t8\t1\t1\t1\t8\t1\t8\th100-80g\t1\tgelu\t?\tmegatron-lm\n";
  EXPECT_NE(input_error([&] { read_validation_table(path); })
                .find("column \"recompute\" is '?' and the framework \"megatron-lm\" has no known default"),
            std::string::npos);
  std::ofstream(path) << header.substr(0, header.size() - 1) << "\tcompile\n"
                      << "X\t2\t64\t4\t128\t1000\t8\t1\t1\t1\t8\t1\t8\th100-80g\t1\tgelu\tnone\tnemo\tno\n";
  EXPECT_NE(input_error([&] { read_validation_table(path); })
                .find("column \"compile\" is \"no\" but the framework \"nemo\" runs fused kernels"),
            std::string::npos);
  std::ofstream(path) << header.substr(0, header.size() - 1) << "\tcompile\n"
                      << "X\t2\t64\t4\t128\t1000\t8\t1\t1\t1\t8\t1\t8\th100-80g\t1\tgelu\tnone\ttorchtitan\tmaybe\n";
  EXPECT_NE(input_error([&] { read_validation_table(path); })
                .find("column \"compile\" must be one of yes, no, ? (got \"maybe\")"),
            std::string::npos);
}

}  // namespace
}  // namespace parallax::model
