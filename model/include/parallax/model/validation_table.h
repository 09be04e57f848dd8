// Published measured runs (validation/public.tsv): reading the table and turning a row into a
// scenario on the bundled cluster presets.
#pragma once

#include "parallax/parallax.pb.h"

#include <filesystem>
#include <string>
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
  int line = 0;                        // in the file, for messages
};

// Reads a tab-separated table whose header row names the columns (lines starting with # are
// comments). Throws InputError naming the file, line and column on malformed input: a column named
// twice, a row with more cells than the header has columns, an empty or repeated row id, a number
// that is not finite and above 0, or no row at all.
std::vector<ValidationRow> read_validation_table(const std::filesystem::path& path);

// The rows whose ids `only` lists (comma-separated, as the --only option takes them), in table order.
// Throws InputError when `only` names no id, or an id that no row has (the message lists the ids of
// `table`, the file name for messages).
std::vector<ValidationRow> select_validation_rows(const std::vector<ValidationRow>& rows, const std::string& only,
                                                  const std::string& table);

// The row as a scenario: the cluster preset of its GPU with the row's node shape and NICs, its model
// and layout. Throws InputError when the row names a GPU without a preset.
Scenario validation_scenario(const ValidationRow& row);

}  // namespace parallax::model
