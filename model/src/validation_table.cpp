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
    r.overlap_grad_reduce = integer("overlap_grad_reduce", 0) != 0;
    r.overlap_p2p = integer("overlap_p2p", 0) != 0;
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

Scenario validation_scenario(const ValidationRow& r) {
  static const std::map<std::string, std::string> presets = {
      {"a100-80g", "dgx-a100-80g"}, {"h100-80g", "dgx-h100"}, {"h200-141g", "hgx-h200"}, {"v100-32g", "dgx1-v100"}};
  const auto preset = presets.find(r.gpu);
  if (preset == presets.end()) {
    std::string known;
    for (const auto& [gpu, name] : presets) known += (known.empty() ? "" : ", ") + gpu;
    throw InputError("row " + r.id + " (line " + std::to_string(r.line) + "): no cluster preset for gpu \"" + r.gpu +
                     "\"; known: " + known);
  }
  const int gpus = r.tp * r.pp * r.dp;
  if (r.gpus_per_node <= 0 || gpus % r.gpus_per_node != 0)
    throw InputError("row " + r.id + " (line " + std::to_string(r.line) + "): tp*pp*dp = " + std::to_string(gpus) +
                     " GPUs is not a whole number of nodes of " + std::to_string(r.gpus_per_node));
  std::ostringstream s;
  s << "name: \"" << r.id << "\"\n"
    << "model { num_layers: " << r.layers << " hidden_size: " << r.hidden << " num_heads: " << r.heads
    << " seq_length: " << r.seq << " vocab_size: " << r.vocab << " precision: " << (r.precision == "fp16" ? "FP16" : "BF16")
    << " }\n"
    << "cluster { preset: \"" << preset->second << "\" num_nodes: " << gpus / r.gpus_per_node
    << " gpus_per_node: " << r.gpus_per_node << " nics_per_node: " << r.nics_per_node << " nic_gbit_per_s: " << r.nic_gbps
    << " }\n"
    << "layout { dp: " << r.dp << " tp: " << r.tp << " pp: " << r.pp << " virtual_stages: " << r.vpp
    << " schedule: " << (r.vpp > 1 ? "INTERLEAVED_1F1B" : "ONE_F_ONE_B") << " sequence_parallel: " << (r.sp ? "true" : "false")
    << " micro_batch_size: " << r.mbs << " global_batch_size: " << r.gbs << " recompute: "
    << (r.recompute == "full" ? "FULL" : r.recompute == "selective" ? "SELECTIVE" : "NO_RECOMPUTE")
    << " zero_stage: " << r.zero << " overlap_grad_reduce: " << (r.overlap_grad_reduce ? "true" : "false")
    << " overlap_p2p: " << (r.overlap_p2p ? "true" : "false") << " }\n";
  return parse_scenario(s.str(), "row " + r.id, false, data_dir());
}

}  // namespace parallax::model
