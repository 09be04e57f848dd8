#include "parallax/model/validation_table.h"

#include "parallax/model/scenario.h"
#include "parallax/traces/io.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

namespace parallax::model {
namespace {

// A table row is a few hundred bytes and public.tsv has tens of rows; these stop a wrong file (a
// binary, a log) early with a clear message instead of simulating or echoing megabytes.
constexpr std::size_t kMaxLineBytes = 64 * 1024;
constexpr int kMaxLines = 1'000'000;

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> cells;
  std::string cell;
  std::istringstream in(line);
  while (std::getline(in, cell, '\t')) {
    while (!cell.empty() && (cell.back() == '\r' || cell.back() == ' ')) cell.pop_back();
    cells.push_back(cell);
  }
  return cells;
}

}  // namespace

std::vector<ValidationRow> read_validation_table(const std::filesystem::path& path) {
  std::istringstream in(
      traces::read_file(path, traces::kMaxTextFileBytes, "validation table (.tsv file)"));
  std::vector<ValidationRow> rows;
  std::map<std::string, std::size_t> column;
  std::size_t columns = 0;
  std::map<std::string, int> first_line;  // row id -> its line
  std::string line;
  int number = 0;
  const std::vector<std::string> required = {"id", "layers", "hidden", "heads", "seq", "vocab", "gbs", "mbs", "tp",
                                             "pp", "dp", "gpu", "measured_iter_s"};
  while (std::getline(in, line)) {
    ++number;
    if (number > kMaxLines)
      throw InputError(path.string() + ": has more than " + std::to_string(kMaxLines) +
                       " lines; a validation table has one line per run (is it the right file?)");
    if (line.size() > kMaxLineBytes)
      throw InputError(
          path.string() + ":" + std::to_string(number) + ": the line is " +
          std::to_string(line.size()) + " bytes long, more than " + std::to_string(kMaxLineBytes) +
          "; a table row is tab-separated cells of a few bytes each (is it the right file?)");
    if (line.empty() || line[0] == '#') continue;
    const auto cells = split_tabs(line);
    const std::string at = path.string() + ":" + std::to_string(number) + ": ";
    if (column.empty()) {
      for (std::size_t i = 0; i < cells.size(); ++i)
        if (!column.emplace(cells[i], i).second)
          throw InputError(at + "the header names column \"" + cells[i] + "\" twice (columns " +
                           std::to_string(column[cells[i]] + 1) + " and " + std::to_string(i + 1) + ")");
      columns = cells.size();
      for (const auto& name : required)
        if (!column.count(name))
          throw InputError(path.string() + ":" + std::to_string(number) + ": the header has no column \"" + name +
                           "\" (columns are tab-separated; see validation/public.tsv)");
      continue;
    }
    // A cell past the header's columns belongs to no column: a shifted row or a stray tab.
    if (cells.size() > columns)
      throw InputError(at + "the row has " + std::to_string(cells.size()) + " cells but the header names " +
                       std::to_string(columns) + " columns (cell " + std::to_string(columns + 1) + " is \"" +
                       cells[columns] + "\"); columns are tab-separated");
    auto cell = [&](const std::string& name, const std::string& fallback) -> std::string {
      const auto it = column.find(name);
      if (it == column.end()) return fallback;
      if (it->second >= cells.size())
        throw InputError(path.string() + ":" + std::to_string(number) + ": the row has " + std::to_string(cells.size()) +
                         " cells but column \"" + name + "\" is number " + std::to_string(it->second + 1));
      return cells[it->second];
    };
    auto integer = [&](const std::string& name, int fallback) {
      const std::string v = cell(name, std::to_string(fallback));
      try {
        std::size_t used = 0;
        const int x = std::stoi(v, &used);
        if (used == v.size() && x >= 0) return x;
      } catch (const std::exception&) {
      }
      throw InputError(path.string() + ":" + std::to_string(number) + ": column \"" + name +
                       "\" must be a non-negative integer (got \"" + v + "\")");
    };
    // Every number is a measurement or a link speed: finite and above 0 ("inf" would give a MAPE of
    // NaN, 0 a division by zero). '-' or '?' (or nothing) marks a value the source does not give.
    auto real = [&](const std::string& name, double fallback) {
      const std::string v = cell(name, "");
      if (v.empty() || v == "-" || v == "?") return fallback;
      try {
        std::size_t used = 0;
        const double x = std::stod(v, &used);
        if (used == v.size() && std::isfinite(x) && x > 0) return x;
      } catch (const std::exception&) {
      }
      throw InputError(at + "column \"" + name + "\" must be a finite number above 0 (got \"" + v +
                       "\"); write - when the source does not give it");
    };
    ValidationRow r;
    r.line = number;
    r.id = cell("id", "");
    if (r.id.empty()) throw InputError(at + "the row has no id (column \"id\" is empty)");
    if (const auto [first, fresh] = first_line.emplace(r.id, number); !fresh)
      throw InputError(at + "row id \"" + r.id + "\" is already used on line " + std::to_string(first->second) +
                       "; ids name rows (--only), so each must be unique");
    r.layers = integer("layers", 0);
    r.hidden = integer("hidden", 0);
    r.heads = integer("heads", 0);
    r.seq = integer("seq", 0);
    r.vocab = integer("vocab", 0);
    r.gbs = integer("gbs", 0);
    r.mbs = integer("mbs", 1);
    r.tp = integer("tp", 1);
    r.pp = integer("pp", 1);
    r.dp = integer("dp", 1);
    r.vpp = integer("vpp", 1);
    r.sp = integer("sp", 0) != 0;
    r.recompute = cell("recompute", "none");
    r.zero = integer("zero", 0);
    r.gpu = cell("gpu", "");
    r.gpus_per_node = integer("gpus_per_node", 8);
    r.nics_per_node = integer("nics_per_node", 8);
    r.nic_gbps = real("nic_gbps", 200);
    r.precision = cell("precision", "bf16");
    r.measured_iter_s = real("measured_iter_s", 0);
    r.measured_tflops_per_gpu = real("measured_tflops_per_gpu", 0);
    r.flops_convention = cell("flops_convention", "");
    r.framework = cell("framework", "");
    // The frameworks of modern.tsv (2023+) overlap gradient reduction and pipeline transfers by
    // default (NeMo overlap_grad_sync / overlap_p2p_comm, Megatron-Bridge, FSDP2's prefetch).
    const int overlap_default = r.framework.empty() ? 0 : 1;
    r.overlap_grad_reduce = integer("overlap_grad_reduce", overlap_default) != 0;
    r.overlap_p2p = integer("overlap_p2p", overlap_default) != 0;
    // A '?' cell: the source does not say.
    auto integer_or_unknown = [&](const std::string& name, int fallback) {
      return cell(name, "") == "?" ? fallback : integer(name, fallback);
    };
    auto one_of = [&](const std::string& name, const std::vector<std::string>& allowed) {
      const std::string v = cell(name, "");
      if (v.empty() || std::find(allowed.begin(), allowed.end(), v) != allowed.end()) return v;
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      throw InputError(at + "column \"" + name + "\" must be one of " + list + " (got \"" + v + "\")");
    };
    r.model = cell("model", "");
    r.ffn_hidden = integer("ffn_hidden", 0);
    r.kv_heads = integer("kv_heads", 0);
    r.head_dim = integer_or_unknown("head_dim", 0);
    r.attention = one_of("attention", {"mha", "gqa", "mla"});
    r.activation = one_of("activation", {"gelu", "swiglu", "relu2"});
    r.tied_embeddings = integer("tied_embeddings", 1) != 0;
    r.experts = integer("experts", 0);
    r.top_k = integer("top_k", 0);
    r.moe_ffn_hidden = integer("moe_ffn_hidden", 0);
    r.shared_experts = integer("shared_experts", 0);
    r.dense_layers = integer("dense_layers", 0);
    r.cp = integer("cp", 1);
    r.ep = integer("ep", 1);
    for (const auto& [name, value] : {std::pair<const char*, int>{"cp", r.cp}, {"ep", r.ep}})
      if (value < 1) throw InputError(at + "column \"" + std::string(name) + "\" must be at least 1 (got 0)");
    if (const int gpus = integer("gpus", 0); gpus != 0 && gpus != r.gpus())
      throw InputError(at + "column \"gpus\" is " + std::to_string(gpus) + " but tp * pp * cp * dp = " +
                       std::to_string(r.tp) + " * " + std::to_string(r.pp) + " * " + std::to_string(r.cp) + " * " +
                       std::to_string(r.dp) + " = " + std::to_string(r.gpus()));
    // Absent or '?': Megatron's distributed optimizer and FSDP2 keep fp32 master weights, m and v.
    r.optimizer = one_of("optimizer", {"fp32", "fp32-remainders", "bf16", "?"});
    if (r.optimizer.empty() || r.optimizer == "?") r.optimizer = "fp32";
    {
      const std::string fp8 =
          one_of("fp8", {"-", "delayed", "delayed+params", "current", "current+params"});
      if (!fp8.empty() && fp8 != "-") {
        if (r.precision != "fp8")
          throw InputError(at + "column \"fp8\" is \"" + fp8 + "\" but the row's precision is " + r.precision +
                           "; write - for a run that does not train in FP8");
        r.fp8_recipe = fp8.substr(0, fp8.find('+'));
        r.fp8_params = fp8.ends_with("+params");
      }
    }
    {
      // torch.compile fuses the elementwise ops; the Megatron stacks (Transformer Engine, Megatron's
      // fusions) run fused kernels whatever the column says; torchtitan without compile runs eager.
      const std::string compile = one_of("compile", {"yes", "no", "?"});
      const bool pytorch_native = r.framework == "torchtitan";
      if (compile == "no" && !pytorch_native && !r.framework.empty())
        throw InputError(at + "column \"compile\" is \"no\" but the framework \"" + r.framework +
                         "\" runs fused kernels without torch.compile; write ? or yes");
      r.eager = pytorch_native && compile != "yes";
      if (pytorch_native && (compile.empty() || compile == "?"))
        r.assumed.push_back("elementwise ops eager (the source does not say; torchtitan's training.compile defaults to false)");
    }
    if (r.experts > 0)
      r.assumed.push_back("routing balanced: every expert gets tokens x top_k / experts (NVIDIA's benchmark "
                          "recipes force it; dropless)");
    if (r.framework == "megatron-bridge" && r.model.rfind("Qwen3-235B", 0) == 0 && r.gpu == "h100-80g")
      r.assumed.push_back("all-to-alls overlapped with the other micro-batch's compute (Megatron-Bridge's H100 "
                          "recipe sets moe_a2a_overlap)");
    if (r.recompute == "?") {
      // The framework's published default when the source does not say.
      static const std::map<std::string, std::pair<std::string, std::string>> defaults = {
          {"nemo-dgxc", {"none", "NeMo's performance configs checkpoint no activations (recompute_layers 0)"}},
          {"nemo", {"none", "NeMo's performance configs checkpoint no activations (recompute_layers 0)"}},
          {"megatron-bridge", {"none", "Megatron-Bridge's performance recipes recompute nothing by default"}},
          {"nemo-automodel", {"none", "NeMo AutoModel checkpoints activations only when asked"}},
          {"torchtitan", {"selective", "torchtitan's default activation checkpointing is selective (per-op)"}},
      };
      // NeMo 25.04's DeepSeek-V3 recipe recomputes the MLA up-projections, the dense MLP and the MoE
      // layer (recompute_modules mla_up_proj, mlp, moe; validation/README.md): every op of a layer
      // but the attention core and the down-projections is re-run, which full recompute stands for.
      if (r.framework == "nemo-dgxc" && r.model.rfind("DeepSeek-V3", 0) == 0) {
        r.recompute = "full";
        r.assumed.push_back("recompute full (the source does not say; NeMo 25.04's DeepSeek-V3 recipe recomputes "
                            "mla_up_proj, mlp and moe, which re-runs all of a layer but the attention core and the "
                            "MLA down-projections)");
      }
      const auto d = defaults.find(r.framework);
      if (r.recompute == "?") {
        if (d == defaults.end())
          throw InputError(at + "column \"recompute\" is '?' and the framework \"" + r.framework +
                           "\" has no known default; write none, selective or full");
        r.recompute = d->second.first;
        r.assumed.push_back("recompute " + r.recompute + " (the source does not say; " + d->second.second + ")");
      }
    }
    if (r.recompute != "none" && r.recompute != "selective" && r.recompute != "full")
      throw InputError(path.string() + ":" + std::to_string(number) + ": column \"recompute\" must be none, selective or full (got \"" +
                       r.recompute + "\")");
    rows.push_back(r);
  }
  if (column.empty()) throw InputError(path.string() + ": no header row (the first non-comment line names the columns)");
  // Nothing to compare would pass any gate: a table is there to be compared.
  if (rows.empty()) throw InputError(path.string() + ": no rows after the header (nothing to compare)");
  return rows;
}

std::vector<ValidationRow> select_validation_rows(const std::vector<ValidationRow>& rows, const std::string& only,
                                                  const std::string& table) {
  std::vector<std::string> ids;
  std::istringstream in(only);
  for (std::string id; std::getline(in, id, ',');)
    if (!id.empty()) ids.push_back(id);
  if (ids.empty())
    throw InputError("--only names no row id (got \"" + only + "\"); give ids separated by commas, e.g. --only N1,K2");
  std::string known;
  for (const auto& r : rows) known += (known.empty() ? "" : ", ") + r.id;
  for (const auto& id : ids) {
    bool found = false;
    for (const auto& r : rows) found = found || r.id == id;
    if (!found)
      throw InputError("no row of " + table + " matches --only id \"" + id + "\" (the table's ids: " + known + ")");
  }
  std::vector<ValidationRow> out;
  for (const auto& r : rows)
    if (std::find(ids.begin(), ids.end(), r.id) != ids.end()) out.push_back(r);
  return out;
}

std::vector<std::pair<std::size_t, std::size_t>> precision_pairs(const std::vector<ValidationRow>& rows) {
  auto same_run = [](const ValidationRow& a, const ValidationRow& b) {
    return a.model == b.model && a.layers == b.layers && a.hidden == b.hidden && a.seq == b.seq && a.gbs == b.gbs &&
           a.mbs == b.mbs && a.tp == b.tp && a.pp == b.pp && a.vpp == b.vpp && a.cp == b.cp && a.ep == b.ep &&
           a.dp == b.dp && a.sp == b.sp && a.recompute == b.recompute && a.zero == b.zero && a.gpu == b.gpu &&
           a.framework == b.framework && a.experts == b.experts;
  };
  std::vector<std::pair<std::size_t, std::size_t>> pairs;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].precision != "bf16") continue;
    for (std::size_t j = 0; j < rows.size(); ++j)
      if (rows[j].precision == "fp8" && same_run(rows[i], rows[j])) {
        pairs.emplace_back(i, j);
        break;
      }
  }
  return pairs;
}

std::string validation_row_text(const ValidationRow& r) {
  const std::string row = "row " + r.id + " (line " + std::to_string(r.line) + ")";
  // GPU names of the tables -> cluster presets; any other name is a mistake in the table.
  static const std::map<std::string, std::string> presets = {
      {"a100-80g", "dgx-a100-80g"}, {"h100-80g", "dgx-h100"},    {"h100-96g", "grand-teton-h100-96gb"},
      {"h200-141g", "hgx-h200"},    {"v100-32g", "dgx1-v100"}, {"b200-180g", "dgx-b200"},
      {"h800-80g", "hgx-h800"},     {"gb200-186g", "gb200-nvl72"}};
  const auto preset = presets.find(r.gpu);
  if (preset == presets.end()) {
    std::string known;
    for (const auto& [gpu, name] : presets) known += (known.empty() ? "" : ", ") + gpu;
    throw InputError(row + ": no cluster preset for gpu \"" + r.gpu + "\"; known: " + known);
  }
  const int gpus = r.gpus();
  if (r.gpus_per_node <= 0 || gpus % r.gpus_per_node != 0)
    throw InputError(row + ": tp*pp*cp*dp = " + std::to_string(gpus) + " GPUs is not a whole number of nodes of " +
                     std::to_string(r.gpus_per_node));

  std::ostringstream model, layout;
  // The row's model name, for the reports (a quote would end the text-format string).
  if (!r.model.empty()) {
    std::string name = r.model;
    std::replace(name.begin(), name.end(), '"', '\'');
    model << "name: \"" << name << "\" ";
  }
  model << "num_layers: " << r.layers << " hidden_size: " << r.hidden << " num_heads: " << r.heads
        << " seq_length: " << r.seq << " vocab_size: " << r.vocab << " precision: " << (r.precision == "fp16" ? "FP16" : r.precision == "fp8" ? "FP8" : "BF16");
  if (r.precision == "fp8")
    model << " fp8_recipe: " << (r.fp8_recipe == "current" ? "CURRENT" : "DELAYED")
          << " fp8_params: " << (r.fp8_params ? "true" : "false");
  layout << "dp: " << r.dp << " tp: " << r.tp << " pp: " << r.pp << " virtual_stages: " << r.vpp
         << " schedule: " << (r.vpp > 1 ? "INTERLEAVED_1F1B" : "ONE_F_ONE_B") << " sequence_parallel: " << (r.sp ? "true" : "false")
         << " micro_batch_size: " << r.mbs << " global_batch_size: " << r.gbs << " recompute: "
         << (r.recompute == "full" ? "FULL" : r.recompute == "selective" ? "SELECTIVE" : "NO_RECOMPUTE")
         << " zero_stage: " << r.zero << " overlap_grad_reduce: " << (r.overlap_grad_reduce ? "true" : "false")
         << " overlap_p2p: " << (r.overlap_p2p ? "true" : "false");
  if (!r.framework.empty()) {
    // A 2024+ run: the architecture as its model card gives it and the settings its framework
    // runs with (validation/README.md). GPT-3 in NeMo keeps GPT's LayerNorm, learned positions and
    // biases (NeMo-Framework-Launcher conf/training/gpt3/175b.yaml sets none of
    // position_embedding_type, normalization, bias: NeMo's defaults learned_absolute, layernorm,
    // true); Nemotron-4 uses LayerNorm1P (LayerNorm's cost), RoPE and no biases; the others (Llama
    // and its relatives) RMSNorm, RoPE, no biases.
    const bool gpt = r.model.rfind("GPT-3", 0) == 0;
    const bool nemotron = r.model.rfind("Nemotron", 0) == 0;
    const bool megatron = r.framework != "torchtitan" && r.framework != "nemo-automodel";
    model << " ffn_hidden_size: " << r.ffn_hidden << " tied_embeddings: " << (r.tied_embeddings ? "true" : "false");
    if (r.kv_heads > 0) model << " num_query_groups: " << r.kv_heads;
    if (r.head_dim > 0) model << " head_dim: " << r.head_dim;
    // GPT-OSS alternates sliding-window (128 tokens, first) and full attention layers, with attention
    // sinks and biases on the linears (validation/README.md; the table has no columns for them).
    const bool gpt_oss = r.model.rfind("GPT-OSS", 0) == 0;
    if (gpt_oss) model << " sliding_window: 128 sliding_window_pattern: 2 attention_sinks: true";
    // Multi-head latent attention with DeepSeek-V3's ranks (the table's header).
    if (r.attention == "mla")
      model << " q_lora_rank: 1536 kv_lora_rank: 512 qk_nope_head_dim: 128 qk_rope_head_dim: 64 v_head_dim: 128";
    model << " activation: " << (r.activation == "swiglu" ? "SWIGLU" : r.activation == "relu2" ? "SQUARED_RELU" : "GELU")
          << " normalization: " << (gpt || nemotron ? "LAYERNORM" : "RMSNORM")
          // A fused kernel in every 2024+ stack: Transformer Engine's cuDNN fused attention in the
          // Megatron stacks; PyTorch SDPA's flash backend, FlashAttention-2, in torchtitan (SDPA
          // tries cuDNN's kernel last since PyTorch 2.5.1).
          << " attention_kernel: " << (r.framework == "torchtitan" ? "FLASH2" : "FLASH")
          << " position_embedding: " << (gpt ? "LEARNED" : "ROPE") << " add_bias_linear: " << (gpt || gpt_oss ? "true" : "false")
          // GPT-3 in NeMo keeps hidden and attention dropout 0.1 (NeMo's defaults); Llama and
          // Nemotron-4 train without dropout.
          << " dropout: " << (gpt ? "true" : "false")
          // Megatron's default padding (NeMo, Megatron-Bridge); torchtitan and AutoModel use the
          // tokenizer's size as it is.
          << " make_vocab_size_divisible_by: " << (megatron ? 128 : 1);
    if (r.eager) model << " elementwise_kernels: EAGER";
    if (r.experts > 0)
      model << " num_experts: " << r.experts << " moe_top_k: " << r.top_k << " moe_ffn_hidden_size: " << r.moe_ffn_hidden
            << " num_shared_experts: " << r.shared_experts << " moe_dense_layers: " << r.dense_layers;
    layout << " cp: " << r.cp << " ep: " << r.ep;
    // Layers that do not divide over pp x vpp but do once the embedding and the loss count as one
    // layer each: NeMo's Llama 3.1 405B recipe (126 layers on pp 8 x vpp 8) sets
    // account_for_embedding_in_pipeline_split and account_for_loss_in_pipeline_split.
    const int chunks = r.pp * std::max(1, r.vpp);
    if (megatron && chunks > 1 && r.layers % chunks != 0 && (r.layers + 2) % chunks == 0)
      layout << " embedding_in_pipeline_split: true loss_in_pipeline_split: true";
    else if (megatron && chunks > 1 && r.layers % chunks != 0 && r.model.rfind("DeepSeek-V3", 0) == 0) {
      // NeMo's DeepSeek-V3 recipe gives each virtual stage ceil(61 / chunks) layers and the last the
      // rest (its map_pp_vp_to_layout: pp 16 is 4 layers on each of 15 stages and 1 on the last).
      const int each = (r.layers + chunks - 1) / chunks;
      for (int c = 0; c < chunks; ++c) layout << " stage_layers: " << (c + 1 < chunks ? each : r.layers - each * (chunks - 1));
    }
    if (r.optimizer != "fp32")
      layout << " optimizer_state: " << (r.optimizer == "bf16" ? "MODEL_PRECISION" : "FP32_REMAINDERS");
    // NeMo's performance configs overlap the TP all-gather / reduce-scatter with the GEMMs
    // (ub_tp_comm_overlap) wherever sequence parallelism runs.
    if (megatron && r.tp > 1 && r.sp) layout << " tp_comm_overlap: true";
    // Megatron-Bridge's Qwen3-235B-A22B recipe on H100 (scripts/performance/configs/qwen,
    // QWEN3_235B_A22B_PRETRAIN_CONFIG_H100_*: moe_a2a_overlap True) overlaps the all-to-alls with
    // the other micro-batch's compute; the table has no column for it.
    if (r.framework == "megatron-bridge" && r.model.rfind("Qwen3-235B", 0) == 0 && r.gpu == "h100-80g")
      layout << " moe_a2a_overlap: true";
    if (r.framework == "torchtitan") {
      // FSDP2: reshard_after_forward True and reduce_dtype float32 are torchtitan's defaults; its
      // selective activation checkpointing is the per-op policy.
      layout << " grad_reduce_in_fp32: true";
      if (r.zero == 3) layout << " reshard_after_forward: true";
      if (r.recompute == "selective") layout << " selective_policy: PER_OP";
    }
  }
  std::ostringstream s;
  s << "name: \"" << r.id << "\"\n"
    << "model { " << model.str() << " }\n"
    << "cluster { preset: \"" << preset->second << "\" num_nodes: " << gpus / r.gpus_per_node
    << " gpus_per_node: " << r.gpus_per_node << " nics_per_node: " << r.nics_per_node << " nic_gbit_per_s: " << r.nic_gbps
    << " }\n"
    << "layout { " << layout.str() << " }\n";
  return s.str();
}

Scenario validation_scenario(const ValidationRow& r) {
  const std::string text = validation_row_text(r);
  try {
    return parse_scenario(text, "row " + r.id, false, data_dir());
  } catch (const InputError& e) {
    // The scenario loader's refusals name the field and end "is not modelled yet; leave the field at
    // its default": a row that needs it is not modelled, not wrong.
    const std::string what = e.what();
    if (const auto at = what.find(" is not modelled yet"); at != std::string::npos) {
      // "row X: model.activation: the activation SWIGLU" -> "the activation SWIGLU (model.activation)"
      const auto field_end = what.rfind(": ", at);
      const auto field_start = what.find(": ");
      std::string reason = what.substr(field_end + 2, at - field_end - 2);
      if (field_start != std::string::npos && field_start < field_end)
        reason += " (" + what.substr(field_start + 2, field_end - field_start - 2) + ")";
      throw RowNotModelled(reason);
    }
    throw;
  }
}

}  // namespace parallax::model
