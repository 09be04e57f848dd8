// Published measured runs (validation/public.tsv, validation/modern.tsv): reading the table and
// turning a row into a scenario on the bundled cluster presets.
#pragma once

#include "parallax/parallax.pb.h"
#include "parallax/traces/io.h"  // InputError

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace parallax::model {

struct ValidationRow {
  std::string id;
  int layers = 0, hidden = 0, heads = 0, seq = 0, vocab = 0, gbs = 0, mbs = 0, tp = 0, pp = 0, dp = 0, vpp = 1;
  bool sp = false;
  std::string recompute;  // none | selective | full
  int zero = 0;
  std::string gpu;        // a100-80g | h100-80g | ...
  int gpus_per_node = 8, nics_per_node = 8;
  double nic_gbps = 200;
  std::string precision;  // fp16 | bf16
  double measured_iter_s = 0;
  double measured_tflops_per_gpu = 0;  // 0 when the source gives none ("-")
  std::string flops_convention;        // hw96 | mf72
  // Megatron-LM as both sources ran it (2021-2022) reduced gradients after the backward pass and
  // waited for pipeline transfers; overlapped bucketed reduction and overlapped p2p came in 2023.
  // Optional columns overlap_grad_reduce / overlap_p2p (0/1) describe runs from newer software.
  bool overlap_grad_reduce = false;
  bool overlap_p2p = false;
  // The columns of validation/modern.tsv (2024+ runs). A table without them describes the GPT-era
  // runs of public.tsv: GELU, LayerNorm, multi-head, learned positions, unfused attention, biases.
  std::string model;            // "Llama 3.1 70B"; decides the normalisation (see validation_scenario)
  int ffn_hidden = 0;           // 0: 4 * hidden
  int kv_heads = 0;             // 0: heads
  int head_dim = 0;             // 0 (or '?'): hidden / heads
  std::string attention;        // mha | gqa | mla ("" for public.tsv)
  std::string activation;       // gelu | swiglu | relu2 ("": gelu)
  bool tied_embeddings = true;
  int experts = 0, top_k = 0, moe_ffn_hidden = 0, shared_experts = 0, dense_layers = 0;
  int cp = 1, ep = 1;
  std::string framework;        // nemo-dgxc | megatron-bridge | nemo | nemo-automodel | torchtitan ("" for public.tsv)
  // What Adam keeps per parameter (Layout.optimizer_state): fp32 (master, m, v), fp32-remainders
  // (Apex DistributedFusedAdam, NeMo's default for a bf16 model), bf16 (optim.dtype bf16: no master).
  std::string optimizer = "fp32";
  // FP8 rows (precision fp8): Transformer Engine's scaling (delayed | current) and whether the
  // weights are kept in FP8 only (column fp8: "delayed", "delayed+params", "current", "current+params").
  std::string fp8_recipe = "delayed";
  bool fp8_params = false;
  // The elementwise ops eager (PyTorch without torch.compile) rather than fused: column "compile"
  // (yes | no | ?; '?' or absent: the framework's default, eager for torchtitan, fused elsewhere).
  bool eager = false;
  // What parallax assumed where the source says '?' (the framework's published default), one
  // sentence each, printed with the row.
  std::vector<std::string> assumed;
  int line = 0;                        // in the file, for messages

  int gpus() const { return tp * pp * cp * dp; }
};

// A row describing a run with a feature parallax does not model yet (mixture of experts, multi-head latent attention, a GPU without a preset, or a field
// the scenario loader refuses as "not modelled yet"). what() is the reason. Not bad input: the row
// is reported and counted as not predicted.
class RowNotModelled : public InputError {
 public:
  using InputError::InputError;
};

// Reads a tab-separated table whose header row names the columns (lines starting with # are
// comments). Throws InputError naming the file, line and column on malformed input: a column named
// twice, a row with more cells than the header has columns, an empty or repeated row id, a number
// that is not finite and above 0, or no row at all.
std::vector<ValidationRow> read_validation_table(const std::filesystem::path& path);

// The rows whose ids `only` lists (comma-separated, as the --only option takes them), in table order.
// Throws InputError when `only` names no id, or an id that no row has (the message lists the ids of
// `table`, the file name for messages).
// FP8/BF16 pairs: two rows of the same run (model, layout, GPUs, framework, batch) but for their
// precision, bf16 and fp8 (MR27/MR28). Indices into `rows`: {bf16 row, fp8 row}, in table order.
std::vector<std::pair<std::size_t, std::size_t>> precision_pairs(const std::vector<ValidationRow>& rows);

std::vector<ValidationRow> select_validation_rows(const std::vector<ValidationRow>& rows, const std::string& only,
                                                  const std::string& table);

// The row as a scenario: the cluster preset of its GPU with the row's node shape and NICs, its model
// and layout. For a row with a framework (modern.tsv), the settings the framework ran with: flash
// attention, RoPE (learned positions for GPT-3), RMSNorm (LayerNorm for GPT-3 and Nemotron), no
// biases (GPT-3: biases), Megatron's vocabulary padding of 128 for the NeMo / Megatron stacks,
// overlapped gradient reduction and pipeline transfers, NeMo's TP communication overlap (tp > 1
// with sequence parallelism), torchtitan's FSDP2 (zero 3, reshard after forward, fp32 gradient
// reduction) and per-op selective recompute. Throws RowNotModelled for what parallax does not model
// (see there), InputError when the row names an unknown GPU or is otherwise invalid.
Scenario validation_scenario(const ValidationRow& row);
// The scenario text (protobuf text format) validation_scenario parses, its cluster preset not yet
// merged and nothing validated; throws as validation_scenario does before parsing.
std::string validation_row_text(const ValidationRow& row);

}  // namespace parallax::model
