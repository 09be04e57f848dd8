#include "parallax/planner/launch_config.h"

#include "parallax/model/scenario.h"
#include "parallax/model/stage_partition.h"
#include "parallax/traces/io.h"

#include <algorithm>
#include <map>
#include <sstream>
#include <vector>

namespace parallax::planner {
namespace {

// A field a framework cannot express: the field, its value, and what to use instead.
[[noreturn]] void cannot(const char* framework, const std::string& field, const std::string& value,
                         const std::string& instead) {
  const std::string where = field.rfind("model.", 0) == 0 ? field : "layout." + field;
  throw InputError(std::string("--emit ") + framework + ": " + where + " " + value + " has no " +
                   (std::string(framework) == "megatron" ? "Megatron-LM argument" : "torchtitan setting") + "; " +
                   instead);
}

// What both targets need: Megatron's (and torchtitan's) grid order, fastest first.
void require_common(const char* framework, const Layout& l) {
  if (l.rank_order() != "tp-cp-ep-dp-pp")
    cannot(framework, "rank_order", "\"" + l.rank_order() + "\"",
           "it places ranks tp fastest, then cp, ep, dp, pp (\"tp-cp-ep-dp-pp\"); plan with that order");
}

// A number as Megatron's argument parser reads it back (shortest round-trip form).
std::string number(double v) {
  std::ostringstream s;
  s.precision(17);
  s << v;
  return s.str();
}

// An explicit partition Megatron or torchtitan can say: the even one (the same layers in every chunk).
bool explicit_partition_is_even(const Layout& l, const ModelSpec& m) {
  if (l.stage_layers_size() == 0) return true;
  for (int v : l.stage_layers())
    if (static_cast<std::int64_t>(v) * l.stage_layers_size() != m.num_layers()) return false;
  return true;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

LaunchTarget parse_launch_target(const std::string& name, const std::string& option) {
  if (name == "megatron") return LaunchTarget::Megatron;
  if (name == "torchtitan") return LaunchTarget::Torchtitan;
  throw InputError(option + ": unknown target \"" + name + "\"; valid: megatron (Megatron-LM / NeMo arguments), "
                   "torchtitan (a job TOML)");
}

std::string launch_config(const Scenario& scenario, LaunchTarget target) {
  return target == LaunchTarget::Megatron ? megatron_arguments(scenario) : torchtitan_toml(scenario);
}

// ---- Megatron-LM ----

std::string megatron_arguments(const Scenario& sc) {
  const ModelSpec& m = sc.model();
  const Layout& l = sc.layout();
  const char* fw = "megatron";
  require_common(fw, l);
  if (l.schedule() == Layout::GPIPE)
    cannot(fw, "schedule", "GPIPE", "Megatron-LM runs 1F1B or interleaved 1F1B; plan with ONE_F_ONE_B");
  if (l.zero_stage() == 2)
    cannot(fw, "zero_stage", "2", "its distributed optimizer is ZeRO-1 (--use-distributed-optimizer) and Megatron-FSDP "
           "ZeRO-3; use zero_stage 1 or 3");
  if (l.zero_stage() == 3 && !l.reshard_after_forward())
    cannot(fw, "reshard_after_forward", "false", "Megatron-FSDP gathers the parameters again for the backward; use true");
  if (l.recompute() == Layout::SELECTIVE && l.selective_policy() == Layout::PER_OP)
    cannot(fw, "selective_policy", "PER_OP", "its selective recompute re-runs the attention core (CORE_ATTENTION); "
           "PER_OP is torchtitan's (--emit torchtitan)");
  if (sc.model().elementwise_kernels() == ModelSpec::EAGER)
    cannot(fw, "model.elementwise_kernels", "EAGER", "Megatron-LM runs its norms, RoPE and SwiGLU as fused kernels "
           "(Transformer Engine, its fusions); use FUSED, or --emit torchtitan without compile");
  if (l.optimizer_state() == Layout::FP32_REMAINDERS)
    cannot(fw, "optimizer_state", "FP32_REMAINDERS", "the 16-bit remainders are Apex's DistributedFusedAdam (NeMo's "
           "distributed_fused_adam); Megatron-LM keeps FP32_MASTER or, with --use-precision-aware-optimizer, "
           "MODEL_PRECISION");
  if (!explicit_partition_is_even(l, m))
    cannot(fw, "stage_layers", "(an uneven list)", "it takes an even split with --decoder-first-pipeline-num-layers / "
           "--decoder-last-pipeline-num-layers for the ends; plan without an explicit partition");
  const int gpus = sc.cluster().num_nodes() * sc.cluster().gpus_per_node();
  std::vector<std::string> a;
  auto arg = [&](const std::string& name, const std::string& value = "") { a.push_back(value.empty() ? name : name + " " + value); };
  // Model.
  arg("--num-layers", std::to_string(m.num_layers()));
  arg("--hidden-size", std::to_string(m.hidden_size()));
  arg("--ffn-hidden-size", std::to_string(m.ffn_hidden_size() ? m.ffn_hidden_size() : 4 * m.hidden_size()));
  arg("--num-attention-heads", std::to_string(m.num_heads()));
  if (m.num_query_groups() > 0 && m.num_query_groups() != m.num_heads()) {
    arg("--group-query-attention");
    arg("--num-query-groups", std::to_string(m.num_query_groups()));
  }
  if (m.head_dim() > 0) arg("--kv-channels", std::to_string(m.head_dim()));
  arg("--seq-length", std::to_string(m.seq_length()));
  arg("--max-position-embeddings", std::to_string(m.seq_length()));
  arg("--vocab-size", std::to_string(m.vocab_size()));
  arg("--make-vocab-size-divisible-by", std::to_string(m.make_vocab_size_divisible_by()));
  if (m.activation() == ModelSpec::SWIGLU) arg("--swiglu");
  if (m.activation() == ModelSpec::SQUARED_RELU) arg("--squared-relu");
  arg("--normalization", m.normalization() == ModelSpec::RMSNORM ? "RMSNorm" : "LayerNorm");
  arg("--position-embedding-type", m.position_embedding() == ModelSpec::ROPE ? "rope" : "learned_absolute");
  if (!m.add_bias_linear()) arg("--disable-bias-linear");
  if (!m.tied_embeddings()) arg("--untie-embeddings-and-output-weights");
  if (!m.dropout()) {
    arg("--attention-dropout", "0");
    arg("--hidden-dropout", "0");
  }
  arg("--attention-backend", m.attention_kernel() == ModelSpec::UNFUSED ? "unfused"
                             : m.attention_kernel() == ModelSpec::FLASH2 ? "flash"
                                                                          : "fused");
  // Megatron-Core's MoE layer (megatron/core/transformer/moe). The routing skew is a modelling
  // assumption (how unbalanced the router is), not a setting: it has no argument.
  if (m.num_experts() > 0) {
    arg("--num-experts", std::to_string(m.num_experts()));
    arg("--moe-router-topk", std::to_string(m.moe_top_k()));
    arg("--moe-ffn-hidden-size", std::to_string(m.moe_ffn_hidden_size()));
    arg("--moe-grouped-gemm");
    if (m.num_shared_experts() > 0)
      arg("--moe-shared-expert-intermediate-size", std::to_string(m.num_shared_experts() * m.moe_ffn_hidden_size()));
    if (m.moe_dense_layers() > 0)
      arg("--moe-layer-freq", "\"([0]*" + std::to_string(m.moe_dense_layers()) + "+[1]*" +
                                  std::to_string(m.num_layers() - m.moe_dense_layers()) + ")\"");
    if (m.has_moe_capacity_factor()) arg("--moe-expert-capacity-factor", number(m.moe_capacity_factor()));
    if (m.moe_pad_to_capacity()) arg("--moe-pad-expert-input-to-capacity");
    arg("--moe-token-dispatcher-type", l.moe_dispatcher() == Layout::ALLGATHER ? "allgather" : "alltoall");
    arg("--expert-model-parallel-size", std::to_string(std::max(1, l.ep())));
    // Always written: without it Megatron-LM sets expert_tensor_parallel_size to tp.
    arg("--expert-tensor-parallel-size", std::to_string(std::max(1, l.etp())));
    if (l.moe_a2a_overlap()) arg("--overlap-moe-expert-parallel-comm");
  } else if (l.ep() > 1) {
    cannot(fw, "ep", std::to_string(l.ep()), "expert parallelism needs a Mixture-of-Experts model (model.num_experts)");
  }
  if (m.mtp_layers() > 0) arg("--mtp-num-layers", std::to_string(m.mtp_layers()));
  if (m.kv_lora_rank() > 0) {
    arg("--multi-latent-attention");
    if (m.q_lora_rank() > 0) arg("--q-lora-rank", std::to_string(m.q_lora_rank()));
    arg("--kv-lora-rank", std::to_string(m.kv_lora_rank()));
    arg("--qk-head-dim", std::to_string(m.qk_nope_head_dim()));
    arg("--qk-pos-emb-head-dim", std::to_string(m.qk_rope_head_dim()));
    arg("--v-head-dim", std::to_string(m.v_head_dim()));
  }
  if (m.sliding_window() > 0) {
    // Megatron's window (left, right) counts the keys before the query: a window of W tokens with
    // the query's own is (W - 1, 0), as Megatron-Bridge converts GPT-OSS's sliding_window.
    arg("--window-size", "\"(" + std::to_string(m.sliding_window() - 1) + ",0)\"");
    if (m.sliding_window_pattern() > 1) arg("--window-attn-skip-freq", std::to_string(m.sliding_window_pattern()));
  }
  if (m.attention_sinks()) arg("--softmax-type", "learnable");
  // Precision.
  switch (m.precision()) {
    case BF16: arg("--bf16"); break;
    case FP16: arg("--fp16"); break;
    case FP8:
      arg("--bf16");
      arg("--fp8-format", "hybrid");
      arg("--fp8-recipe", m.fp8_recipe() == ModelSpec::CURRENT ? "tensorwise" : "delayed");
      if (m.fp8_params()) arg("--fp8-param-gather");
      break;
    default: break;  // fp32: no flag
  }
  // Parallelism.
  arg("--tensor-model-parallel-size", std::to_string(l.tp()));
  arg("--pipeline-model-parallel-size", std::to_string(l.pp()));
  arg("--context-parallel-size", std::to_string(l.cp()));
  if (l.cp() > 1) arg("--cp-comm-type", "p2p");
  if (l.schedule() == Layout::INTERLEAVED_1F1B && l.virtual_stages() > 1) {
    const std::int64_t slots = m.num_layers() + (l.embedding_in_pipeline_split() ? 1 : 0) +
                               (l.loss_in_pipeline_split() ? 1 : 0) - l.first_stage_layers() - l.last_stage_layers();
    const std::int64_t chunks = static_cast<std::int64_t>(l.pp()) * l.virtual_stages();
    if (l.first_stage_layers() || l.last_stage_layers() || slots % chunks != 0)
      cannot(fw, "virtual_stages", std::to_string(l.virtual_stages()),
             "--num-layers-per-virtual-pipeline-stage needs the same layers in every chunk; plan with an even split");
    arg("--num-layers-per-virtual-pipeline-stage", std::to_string(slots / chunks));
  }
  if (l.first_stage_layers() > 0) arg("--decoder-first-pipeline-num-layers", std::to_string(l.first_stage_layers()));
  if (l.last_stage_layers() > 0) arg("--decoder-last-pipeline-num-layers", std::to_string(l.last_stage_layers()));
  if (l.embedding_in_pipeline_split()) arg("--account-for-embedding-in-pipeline-split");
  if (l.loss_in_pipeline_split()) arg("--account-for-loss-in-pipeline-split");
  if (l.sequence_parallel() && l.tp() > 1) arg("--sequence-parallel");
  if (l.tp_comm_overlap()) arg("--tp-comm-overlap");
  arg("--micro-batch-size", std::to_string(l.micro_batch_size()));
  arg("--global-batch-size", std::to_string(l.global_batch_size()));
  // Recompute.
  if (l.recompute() == Layout::FULL) {
    arg("--recompute-granularity", "full");
    arg("--recompute-method", "uniform");
    arg("--recompute-num-layers", "1");
  } else if (l.recompute() == Layout::SELECTIVE) {
    arg("--recompute-granularity", "selective");
  }
  // Data parallelism and the optimizer.
  if (l.zero_stage() == 1) arg("--use-distributed-optimizer");
  if (l.zero_stage() == 3) {
    arg("--use-megatron-fsdp");
    arg("--data-parallel-sharding-strategy", "optim_grads_params");
  }
  if (l.optimizer_state() == Layout::MODEL_PRECISION && m.precision() != FP32) {
    arg("--use-precision-aware-optimizer");
    arg("--main-params-dtype", "bf16");
    arg("--exp-avg-dtype", "bf16");
    arg("--exp-avg-sq-dtype", "bf16");
  }
  if (l.grad_reduce_in_fp32()) arg("--accumulate-allreduce-grads-in-fp32");
  if (l.overlap_grad_reduce()) arg("--overlap-grad-reduce");
  if (l.overlap_param_gather() && l.zero_stage() >= 1) arg("--overlap-param-gather");
  if (!l.overlap_p2p() && l.pp() > 1) arg("--no-overlap-p2p-communication");
  std::ostringstream out;
  out << "# Megatron-LM pretrain_gpt.py arguments for " << gpus << " GPUs: dp = " << gpus << " / (tp " << l.tp()
      << " x pp " << l.pp() << " x cp " << l.cp() << ") = " << l.dp() << " (" << (sc.name().empty() ? "parallax plan" : sc.name())
      << ")\n";
  for (std::size_t i = 0; i < a.size(); ++i) out << a[i] << (i + 1 < a.size() ? " \\\n" : "\n");
  return out.str();
}

Scenario parse_megatron_arguments(const std::string& text, int gpus, const std::string& source) {
  std::map<std::string, std::string> args;  // flag -> value ("" for switches)
  std::istringstream in(text);
  std::string line, word;
  std::vector<std::string> words;
  while (std::getline(in, line)) {
    if (const auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    std::istringstream ls(line);
    while (ls >> word)
      if (word != "\\") words.push_back(word);
  }
  for (std::size_t i = 0; i < words.size(); ++i) {
    if (words[i].rfind("--", 0) != 0) continue;
    const bool has_value = i + 1 < words.size() && words[i + 1].rfind("--", 0) != 0;
    args[words[i]] = has_value ? words[i + 1] : "";
  }
  auto has = [&](const std::string& k) { return args.count(k) > 0; };
  auto integer = [&](const std::string& k, int fallback) {
    if (!has(k)) return fallback;
    try {
      std::size_t used = 0;
      const int v = std::stoi(args[k], &used);
      if (used == args[k].size() && v > 0) return v;
    } catch (const std::exception&) {
    }
    throw InputError(source + ": " + k + " \"" + args[k] + "\" is not a positive whole number");
  };
  Scenario out;
  ModelSpec& m = *out.mutable_model();
  Layout& l = *out.mutable_layout();
  m.set_precision(has("--fp8-format") ? FP8 : has("--fp16") ? FP16 : has("--bf16") ? BF16 : FP32);
  if (m.precision() == FP8) {
    m.set_fp8_recipe(args["--fp8-recipe"] == "tensorwise" ? ModelSpec::CURRENT : ModelSpec::DELAYED);
    m.set_fp8_params(has("--fp8-param-gather"));
  }
  const int layers = integer("--num-layers", 0);
  if (layers) m.set_num_layers(layers);
  l.set_tp(integer("--tensor-model-parallel-size", 1));
  l.set_pp(integer("--pipeline-model-parallel-size", 1));
  l.set_cp(integer("--context-parallel-size", 1));
  const int model_parallel = l.tp() * l.pp() * l.cp();
  if (gpus % model_parallel != 0)
    throw InputError(source + ": " + std::to_string(gpus) + " GPUs do not divide by tp x pp x cp = " + std::to_string(model_parallel));
  l.set_dp(gpus / model_parallel);
  l.set_micro_batch_size(integer("--micro-batch-size", 1));
  l.set_global_batch_size(integer("--global-batch-size", l.micro_batch_size() * l.dp()));
  l.set_sequence_parallel(has("--sequence-parallel"));
  l.set_tp_comm_overlap(has("--tp-comm-overlap"));
  if (has("--num-layers-per-virtual-pipeline-stage")) {
    const int per_chunk = integer("--num-layers-per-virtual-pipeline-stage", 1);
    const int slots = layers + (has("--account-for-embedding-in-pipeline-split") ? 1 : 0) +
                      (has("--account-for-loss-in-pipeline-split") ? 1 : 0);
    l.set_schedule(Layout::INTERLEAVED_1F1B);
    l.set_virtual_stages(slots / (per_chunk * l.pp()));
  }
  l.set_first_stage_layers(has("--decoder-first-pipeline-num-layers") ? integer("--decoder-first-pipeline-num-layers", 0) : 0);
  l.set_last_stage_layers(has("--decoder-last-pipeline-num-layers") ? integer("--decoder-last-pipeline-num-layers", 0) : 0);
  l.set_embedding_in_pipeline_split(has("--account-for-embedding-in-pipeline-split"));
  l.set_loss_in_pipeline_split(has("--account-for-loss-in-pipeline-split"));
  const std::string granularity = has("--recompute-granularity") ? args["--recompute-granularity"] : "";
  l.set_recompute(granularity == "full" ? Layout::FULL : granularity == "selective" ? Layout::SELECTIVE : Layout::NO_RECOMPUTE);
  l.set_zero_stage(has("--use-megatron-fsdp") ? 3 : has("--use-distributed-optimizer") ? 1 : 0);
  if (has("--use-precision-aware-optimizer") && args["--main-params-dtype"] == "bf16")
    l.set_optimizer_state(Layout::MODEL_PRECISION);
  l.set_grad_reduce_in_fp32(has("--accumulate-allreduce-grads-in-fp32"));
  l.set_overlap_grad_reduce(has("--overlap-grad-reduce"));
  l.set_overlap_param_gather(has("--overlap-param-gather"));
  l.set_overlap_p2p(!has("--no-overlap-p2p-communication"));
  // Mixture of Experts and the attention variants.
  if (has("--num-experts")) {
    m.set_num_experts(integer("--num-experts", 1));
    m.set_moe_top_k(integer("--moe-router-topk", 2));
    if (has("--moe-ffn-hidden-size")) m.set_moe_ffn_hidden_size(integer("--moe-ffn-hidden-size", 1));
    if (has("--moe-layer-freq")) {
      // "([0]*D+[1]*R)": D dense layers, then MoE layers (the only pattern parallax models).
      const std::string freq = args["--moe-layer-freq"];
      const auto zeros = freq.find("[0]*"), plus = freq.find('+');
      if (zeros == std::string::npos || plus == std::string::npos || plus < zeros)
        throw InputError(source + ": --moe-layer-freq \"" + freq + "\" is not ([0]*D+[1]*R), leading dense layers then MoE");
      m.set_moe_dense_layers(std::stoi(freq.substr(zeros + 4, plus - zeros - 4)));
    }
    if (has("--moe-shared-expert-intermediate-size") && m.moe_ffn_hidden_size() > 0)
      m.set_num_shared_experts(integer("--moe-shared-expert-intermediate-size", 1) / m.moe_ffn_hidden_size());
    if (has("--moe-expert-capacity-factor")) m.set_moe_capacity_factor(std::stod(args["--moe-expert-capacity-factor"]));
    m.set_moe_pad_to_capacity(has("--moe-pad-expert-input-to-capacity"));
  }
  l.set_ep(integer("--expert-model-parallel-size", 1));
  // Megatron-LM's default: expert tensor parallelism as wide as tensor parallelism (arguments.py).
  if (has("--num-experts")) l.set_etp(integer("--expert-tensor-parallel-size", l.tp()));
  if (has("--moe-token-dispatcher-type")) {
    const std::string dispatcher = args["--moe-token-dispatcher-type"];
    if (dispatcher != "alltoall" && dispatcher != "allgather")
      throw InputError(source + ": --moe-token-dispatcher-type " + dispatcher +
                       " is not modelled; alltoall and allgather are");
    l.set_moe_dispatcher(dispatcher == "allgather" ? Layout::ALLGATHER : Layout::ALLTOALL);
  }
  l.set_moe_a2a_overlap(has("--overlap-moe-expert-parallel-comm"));
  if (has("--mtp-num-layers")) m.set_mtp_layers(integer("--mtp-num-layers", 0));
  if (has("--multi-latent-attention")) {
    if (has("--q-lora-rank")) m.set_q_lora_rank(integer("--q-lora-rank", 1));
    m.set_kv_lora_rank(integer("--kv-lora-rank", 1));
    m.set_qk_nope_head_dim(integer("--qk-head-dim", 1));
    m.set_qk_rope_head_dim(integer("--qk-pos-emb-head-dim", 1));
    m.set_v_head_dim(integer("--v-head-dim", 1));
  }
  if (has("--window-size")) {
    std::string w = args["--window-size"];
    w.erase(std::remove_if(w.begin(), w.end(), [](char c) { return c == '"' || c == '(' || c == ' '; }), w.end());
    m.set_sliding_window(std::stoi(w.substr(0, w.find(','))) + 1);
    if (has("--window-attn-skip-freq")) m.set_sliding_window_pattern(integer("--window-attn-skip-freq", 1));
  }
  m.set_attention_sinks(has("--softmax-type") && args["--softmax-type"] == "learnable");
  return out;
}

// ---- torchtitan ----

std::string torchtitan_toml(const Scenario& sc) {
  const ModelSpec& m = sc.model();
  const Layout& l = sc.layout();
  const char* fw = "torchtitan";
  require_common(fw, l);
  if (m.num_experts() > 0)
    cannot(fw, "model.num_experts", std::to_string(m.num_experts()),
           "torchtitan's Mixtures of Experts are its own model flavors (DeepSeek-V3, Llama 4), not a job setting; "
           "use --emit megatron");
  if (m.kv_lora_rank() > 0 || m.sliding_window() > 0)
    cannot(fw, m.kv_lora_rank() > 0 ? "model.kv_lora_rank" : "model.sliding_window",
           std::to_string(m.kv_lora_rank() > 0 ? m.kv_lora_rank() : m.sliding_window()),
           "the attention variant is a torchtitan model flavor, not a job setting; use --emit megatron");
  if (l.zero_stage() == 1 || l.zero_stage() == 2)
    cannot(fw, "zero_stage", std::to_string(l.zero_stage()),
           "it shards with FSDP2 (zero_stage 3) or replicates with DDP (zero_stage 0)");
  if (l.tp() > 1 && !l.sequence_parallel())
    cannot(fw, "sequence_parallel", "false", "its tensor parallelism always shards the sequence outside the TP regions; "
           "plan with sequence_parallel: true");
  if (l.recompute() == Layout::SELECTIVE && l.selective_policy() == Layout::CORE_ATTENTION)
    cannot(fw, "selective_policy", "CORE_ATTENTION", "its selective activation checkpointing is per op "
           "(selective_policy PER_OP) or per layer interval");
  if (l.optimizer_state() != Layout::FP32_MASTER)
    cannot(fw, "optimizer_state", Layout::OptimizerState_Name(l.optimizer_state()),
           "FSDP2 keeps fp32 sharded parameters and Adam states (FP32_MASTER)");
  if (m.precision() == FP8 && m.fp8_recipe() == ModelSpec::DELAYED)
    cannot(fw, "model.fp8_recipe", "DELAYED", "torchao's float8 training scales each tensor currently (fp8_recipe CURRENT, "
           "recipe \"tensorwise\")");
  if (m.precision() == FP16) cannot(fw, "model.precision", "FP16", "it trains in bfloat16 (or float32)");
  if (l.first_stage_layers() || l.last_stage_layers() || !explicit_partition_is_even(l, m))
    cannot(fw, "stage_layers", "(an uneven split)", "pipeline_parallel_layers_per_stage gives every stage the same layers "
           "(less one on the first and the last for the embedding and the output: embedding_in_pipeline_split, "
           "loss_in_pipeline_split); plan with an even split");
  // torchtitan counts the embedding and the output as pipeline_parallel_{first,last}_stage_less_layers
  // layers (Megatron's account-for-embedding / loss): 1 each where parallax's layout says so.
  const std::int64_t embedding = l.embedding_in_pipeline_split() ? 1 : 0, output = l.loss_in_pipeline_split() ? 1 : 0;
  const std::int64_t chunks = static_cast<std::int64_t>(l.pp()) * (l.schedule() == Layout::INTERLEAVED_1F1B ? l.virtual_stages() : 1);
  const std::int64_t slots = m.num_layers() + embedding + output;
  if (l.pp() > 1 && slots % chunks != 0)
    cannot(fw, "pp", std::to_string(l.pp()), "pipeline_parallel_layers_per_stage must split the layers evenly over the "
           "pp x virtual_stages chunks");
  const int gpus = sc.cluster().num_nodes() * sc.cluster().gpus_per_node();
  const bool fsdp = l.zero_stage() == 3;
  std::ostringstream o;
  o << "# torchtitan job config for " << gpus << " GPUs (" << (sc.name().empty() ? "parallax plan" : sc.name()) << ")\n";
  o << "[model]\n";
  if (m.precision() == FP8) o << "converters = [\"float8\"]\n";
  o << "\n[training]\n";
  o << "seq_len = " << m.seq_length() << "\n";
  o << "global_batch_size = " << l.global_batch_size() << "\n";
  // Without pipeline parallelism a local batch is one micro-batch (the rest is gradient accumulation:
  // global / (local x dp) steps); with it, a rank's whole share goes through the pipeline in
  // micro-batches of pipeline_parallel_microbatch_size.
  o << "local_batch_size = " << (l.pp() > 1 ? l.global_batch_size() / l.dp() : l.micro_batch_size()) << "\n";
  o << "mixed_precision_param = \"" << (m.precision() == FP32 ? "float32" : "bfloat16") << "\"\n";
  o << "mixed_precision_reduce = \"" << (l.grad_reduce_in_fp32() ? "float32" : "bfloat16") << "\"\n";
  o << "\n[parallelism]\n";
  o << "data_parallel_replicate_degree = " << (fsdp ? 1 : l.dp()) << "\n";
  o << "data_parallel_shard_degree = " << (fsdp ? l.dp() : 1) << "\n";
  o << "fsdp_reshard_after_forward = \"" << (l.reshard_after_forward() ? "always" : "never") << "\"\n";
  o << "tensor_parallel_degree = " << l.tp() << "\n";
  o << "enable_async_tensor_parallel = " << (l.tp_comm_overlap() && l.tp() > 1 ? "true" : "false") << "\n";
  o << "context_parallel_degree = " << l.cp() << "\n";
  o << "pipeline_parallel_degree = " << l.pp() << "\n";
  if (l.pp() > 1) {
    o << "pipeline_parallel_schedule = \""
      << (l.schedule() == Layout::GPIPE ? "GPipe" : l.schedule() == Layout::INTERLEAVED_1F1B ? "Interleaved1F1B" : "1F1B")
      << "\"\n";
    o << "pipeline_parallel_layers_per_stage = " << slots / chunks << "\n";
    o << "pipeline_parallel_first_stage_less_layers = " << embedding << "\n";
    o << "pipeline_parallel_last_stage_less_layers = " << output << "\n";
  }
  o << "pipeline_parallel_microbatch_size = " << l.micro_batch_size() << "\n";
  o << "\n[activation_checkpoint]\n";
  o << "mode = \"" << (l.recompute() == Layout::FULL ? "full" : l.recompute() == Layout::SELECTIVE ? "selective" : "none")
    << "\"\n";
  if (l.recompute() == Layout::SELECTIVE) o << "selective_ac_option = \"op\"\n";
  // torch.compile fuses the elementwise ops (model.elementwise_kernels FUSED); without it they run
  // eager.
  o << "\n[compile]\n";
  o << "enable = " << (m.elementwise_kernels() == ModelSpec::EAGER ? "false" : "true") << "\n";
  o << "components = [\"model\", \"loss\"]\n";
  if (m.precision() == FP8) {
    o << "\n[float8]\n";
    o << "recipe_name = \"tensorwise\"\n";
    o << "enable_fsdp_float8_all_gather = " << (m.fp8_params() ? "true" : "false") << "\n";
  }
  return o.str();
}

Scenario parse_torchtitan_toml(const std::string& text, int num_layers, const std::string& source) {
  std::map<std::string, std::string> kv;  // "section.key" -> value, quotes removed
  std::istringstream in(text);
  std::string line, section;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (const auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos) continue;
    line = line.substr(first, line.find_last_not_of(" \t") - first + 1);
    if (line.front() == '[') {
      if (line.back() != ']') throw InputError(source + ":" + std::to_string(number) + ": unterminated section header");
      section = line.substr(1, line.size() - 2);
      continue;
    }
    const auto eq = line.find('=');
    if (eq == std::string::npos) throw InputError(source + ":" + std::to_string(number) + ": expected key = value");
    std::string key = line.substr(0, eq), value = line.substr(eq + 1);
    key.erase(key.find_last_not_of(" \t") + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    kv[section + "." + key] = value;
  }
  auto integer = [&](const std::string& k, int fallback) {
    const auto it = kv.find(k);
    if (it == kv.end()) return fallback;
    try {
      std::size_t used = 0;
      const int v = std::stoi(it->second, &used);
      if (used == it->second.size() && v > 0) return v;
    } catch (const std::exception&) {
    }
    throw InputError(source + ": " + k + " = " + it->second + " is not a positive whole number");
  };
  auto boolean = [&](const std::string& k) { return kv.count(k) && lower(kv[k]) == "true"; };
  Scenario out;
  ModelSpec& m = *out.mutable_model();
  Layout& l = *out.mutable_layout();
  const bool fp8 = kv.count("model.converters") && kv["model.converters"].find("float8") != std::string::npos;
  m.set_precision(fp8 ? FP8 : kv["training.mixed_precision_param"] == "float32" ? FP32 : BF16);
  // [compile] enable (torchtitan 2025+) or training.compile (2024); absent: torchtitan's default, off.
  const bool compiled = boolean("compile.enable") || boolean("training.compile");
  m.set_elementwise_kernels(compiled ? ModelSpec::FUSED : ModelSpec::EAGER);
  if (fp8) {
    m.set_fp8_recipe(ModelSpec::CURRENT);
    m.set_fp8_params(boolean("float8.enable_fsdp_float8_all_gather"));
  }
  const int replicate = integer("parallelism.data_parallel_replicate_degree", 1);
  const int shard = integer("parallelism.data_parallel_shard_degree", 1);
  l.set_dp(replicate * shard);
  l.set_zero_stage(shard > 1 ? 3 : 0);
  l.set_reshard_after_forward(kv["parallelism.fsdp_reshard_after_forward"] != "never");
  l.set_tp(integer("parallelism.tensor_parallel_degree", 1));
  l.set_sequence_parallel(l.tp() > 1);
  l.set_tp_comm_overlap(boolean("parallelism.enable_async_tensor_parallel"));
  l.set_cp(integer("parallelism.context_parallel_degree", 1));
  l.set_pp(integer("parallelism.pipeline_parallel_degree", 1));
  const std::string schedule = kv.count("parallelism.pipeline_parallel_schedule") ? kv["parallelism.pipeline_parallel_schedule"] : "1F1B";
  l.set_schedule(schedule == "GPipe" ? Layout::GPIPE : schedule == "Interleaved1F1B" ? Layout::INTERLEAVED_1F1B : Layout::ONE_F_ONE_B);
  if (l.pp() > 1) {
    // torchtitan's defaults: one layer less on the first and the last stage.
    const auto less = [&](const std::string& k) { return kv.count(k) ? std::stoi(kv[k]) : 1; };
    const int embedding = less("parallelism.pipeline_parallel_first_stage_less_layers");
    const int output = less("parallelism.pipeline_parallel_last_stage_less_layers");
    if (embedding > 1 || output > 1 || embedding < 0 || output < 0)
      throw InputError(source + ": pipeline_parallel_{first,last}_stage_less_layers other than 0 or 1 is an uneven split "
                       "parallax reads as stage_layers; give 0 or 1");
    l.set_embedding_in_pipeline_split(embedding == 1);
    l.set_loss_in_pipeline_split(output == 1);
    const int per_stage = integer("parallelism.pipeline_parallel_layers_per_stage", 0);
    const int slots = num_layers + embedding + output;
    if (per_stage > 0) {
      if (slots % (per_stage * l.pp()) != 0)
        throw InputError(source + ": pipeline_parallel_layers_per_stage " + std::to_string(per_stage) + " x " +
                         std::to_string(l.pp()) + " stages does not split the model's " + std::to_string(num_layers) +
                         " layers (+ the embedding and output it counts)");
      if (l.schedule() == Layout::INTERLEAVED_1F1B) l.set_virtual_stages(slots / (per_stage * l.pp()));
    }
  }
  m.set_num_layers(num_layers);
  const int local = integer("training.local_batch_size", 1);
  l.set_micro_batch_size(l.pp() > 1 ? integer("parallelism.pipeline_parallel_microbatch_size", 1) : local);
  l.set_global_batch_size(integer("training.global_batch_size", local * l.dp()));
  l.set_grad_reduce_in_fp32(kv["training.mixed_precision_reduce"] == "float32");
  const std::string mode = kv["activation_checkpoint.mode"];
  l.set_recompute(mode == "full" ? Layout::FULL : mode == "selective" ? Layout::SELECTIVE : Layout::NO_RECOMPUTE);
  if (l.recompute() == Layout::SELECTIVE) l.set_selective_policy(Layout::PER_OP);
  return out;
}

}  // namespace parallax::planner
