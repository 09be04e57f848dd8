#include "parallax/model/scenario.h"

#include "parallax/model/job_graph.h"
#include "parallax/model/layout_rules.h"
#include "parallax/model/presets.h"
#include "parallax/model/rank_grid.h"
#include "parallax/model/stage_partition.h"

#include <google/protobuf/text_format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <initializer_list>
#include <memory>
#include <optional>
#include <sstream>
#include <tuple>
#include <vector>

#ifndef PARALLAX_DATA_DIR
#error "PARALLAX_DATA_DIR must be defined by the build"
#endif

namespace parallax::model {
namespace {

namespace pb = google::protobuf;
namespace fs = std::filesystem;

// A parsed file and where each of its fields was written, so that messages about values (not only
// syntax) point at a line.
struct SourceFile {
  std::string name;
  std::unique_ptr<pb::TextFormat::ParseInfoTree> tree = std::make_unique<pb::TextFormat::ParseInfoTree>();
  bool json = false;

  // The parse tree of a preset file that was merged (nothing when `file` is empty), for line numbers.
  template <typename Message>
  void read(const fs::path& file) {
    if (file.empty()) return;
    Message message;
    name = file.string();
    json = file.extension() == ".json";
    traces::read_text_or_json(file, message, tree.get());
  }

  // Line (1-based) of the field at `path` below `root`, 0 if unknown.
  int line_of(const pb::Descriptor* root, const std::vector<std::string>& path) const {
    if (json) return 0;
    const pb::TextFormat::ParseInfoTree* node = tree.get();
    const pb::Descriptor* type = root;
    for (std::size_t i = 0; i < path.size() && node && type; ++i) {
      const pb::FieldDescriptor* field = type->FindFieldByName(path[i]);
      if (!field) return 0;
      if (i + 1 == path.size()) {
        const auto loc = node->GetLocation(field, field->is_repeated() ? 0 : -1);
        return loc.line >= 0 ? loc.line + 1 : 0;
      }
      node = node->GetTreeForNested(field, field->is_repeated() ? 0 : -1);
      type = field->message_type();
    }
    return 0;
  }
};

struct Sources {
  SourceFile scenario;
  SourceFile cluster_preset;  // empty name when none
  SourceFile gpu_preset;
  // A model block replaced from another file (--hf-config): its fields are that file's, except
  // those the scenario still gives (model_fields_kept).
  std::string model_source;
  std::vector<std::string> model_fields_kept;

  // "file:line" of a field given as a path from the Scenario root, looking in the scenario first,
  // then in the presets it came from.
  std::string where(const std::vector<std::string>& path) const {
    if (!model_source.empty() && path.size() > 1 && path[0] == "model" &&
        std::find(model_fields_kept.begin(), model_fields_kept.end(), path[1]) == model_fields_kept.end())
      return model_source;
    if (int line = scenario.line_of(Scenario::descriptor(), path))
      return scenario.name + ":" + std::to_string(line);
    if (path.size() > 1 && path[0] == "cluster") {
      std::vector<std::string> rest(path.begin() + 1, path.end());
      if (!cluster_preset.name.empty())
        if (int line = cluster_preset.line_of(ClusterSpec::descriptor(), rest))
          return cluster_preset.name + ":" + std::to_string(line);
      if (rest.size() > 1 && rest[0] == "gpu" && !gpu_preset.name.empty()) {
        std::vector<std::string> in_gpu(rest.begin() + 1, rest.end());
        if (int line = gpu_preset.line_of(GpuSpec::descriptor(), in_gpu))
          return gpu_preset.name + ":" + std::to_string(line);
      }
    }
    return scenario.name;
  }
};

std::string dotted(const std::vector<std::string>& path) {
  std::string out;
  for (const auto& p : path) out += (out.empty() ? "" : ".") + p;
  return out;
}

[[noreturn]] void fail(const Sources& sources, const std::vector<std::string>& path,
                       const std::string& problem) {
  throw InputError(sources.where(path) + ": " + dotted(path) + ": " + problem);
}

void require_positive(const Sources& src, const std::vector<std::string>& path, double value,
                      bool is_set, const std::string& what) {
  if (!is_set) fail(src, path, "missing: set " + what);
  if (!(value > 0))
    fail(src, path, "must be positive (got " + pb::SimpleDtoa(value) + "); " + what);
}

constexpr std::int64_t kMaxGpus = 1 << 20;
constexpr std::int64_t kMaxLayers = 32767;

// a * b * ... in 64 bits, or nothing when the product does not fit: a wrapped product of sizes from
// a file could otherwise equal a valid count (dp * tp * pp = 2^64 + 4 "is" 4 GPUs).
std::optional<std::int64_t> checked_product(std::initializer_list<std::int64_t> factors) {
  std::int64_t product = 1;
  for (std::int64_t f : factors)
    if (__builtin_mul_overflow(product, f, &product)) return std::nullopt;
  return product;
}

// When a number must hold: always (a default is then in range), when the file sets it, or (for
// the NIC fields) also whenever the cluster has more than one node, where the network uses it.
enum class Need { kAlways, kIfSet, kMultiNode };

// Every real number of a scenario, its presets and a calibration overlay, with its range, checked
// in one place (number_ranges() below). The simulator (SimGrid) aborts or crashes on a NaN, an
// infinity, a zero bandwidth or a negative latency, and a huge peak or bandwidth makes a cost 0
// and a result silently meaningless, so each must be finite and physical. The ceilings are about
// 100x today's fastest parts (a GPU of ~5,000 dense TFLOPS, ~8 TB/s and ~300 GB of HBM, ~900 GB/s
// of NVLink, 800 Gbit/s NICs); latencies and the kernel overhead stop at one second, which no
// fabric or kernel launch comes near. The whole numbers of the model and layout are checked in
// validate().
struct NumberRange {
  std::vector<std::string> path;  // from the Scenario root
  double lo;
  bool lo_open;  // (lo, hi] rather than [lo, hi]
  double hi;
  Need need;
  const char* what;  // what the field is, for the fix
};

const std::vector<NumberRange>& number_ranges() {
  constexpr double kPeakTflops = 1e6, kHbmGb = 1e5, kHbmTbPerS = 1e3, kIntraGbPerS = 1e5,
                   kNicGbitPerS = 1e5, kLatencyUs = 1e6;
  using P = std::vector<std::string>;
  static const std::vector<NumberRange> ranges = {
      {P{"cluster", "gpu", "peak_bf16_tflops"}, 0, true, kPeakTflops, Need::kIfSet,
       "the dense BF16 peak in TFLOPS"},
      {P{"cluster", "gpu", "peak_fp16_tflops"}, 0, true, kPeakTflops, Need::kIfSet,
       "the dense FP16 peak in TFLOPS"},
      {P{"cluster", "gpu", "peak_fp32_tflops"}, 0, true, kPeakTflops, Need::kIfSet,
       "the FP32 peak in TFLOPS"},
      {P{"cluster", "gpu", "peak_tf32_tflops"}, 0, true, kPeakTflops, Need::kIfSet,
       "the dense TF32 peak in TFLOPS"},
      {P{"cluster", "gpu", "peak_fp8_tflops"}, 0, true, kPeakTflops, Need::kIfSet,
       "the dense FP8 peak in TFLOPS"},
      {P{"cluster", "gpu", "hbm_gb"}, 0, true, kHbmGb, Need::kIfSet, "the GPU memory size in GB"},
      {P{"cluster", "gpu", "hbm_tb_per_s"}, 0, true, kHbmTbPerS, Need::kIfSet,
       "the GPU memory bandwidth in TB/s"},
      {P{"cluster", "gpu", "memory_bound_efficiency"}, 0, true, 1, Need::kAlways,
       "the achieved fraction of HBM bandwidth"},
      {P{"cluster", "gpu", "kernel_overhead_us"}, 0, false, kLatencyUs, Need::kAlways,
       "the fixed cost per kernel in microseconds"},
      {P{"cluster", "gpu", "reserved_memory_gb"}, 0, false, kHbmGb, Need::kAlways,
       "the GPU memory the framework cannot use, in GB"},
      {P{"cluster", "intra_node", "gb_per_s"}, 0, true, kIntraGbPerS, Need::kIfSet,
       "the per-GPU intra-node bandwidth in GB/s"},
      {P{"cluster", "intra_node", "latency_us"}, 0, false, kLatencyUs, Need::kAlways,
       "the intra-node latency in microseconds"},
      {P{"cluster", "intra_node", "links_per_gpu"}, 1, false, 1024, Need::kIfSet,
       "the NVLink links per GPU"},
      {P{"cluster", "intra_node", "bandwidth_efficiency"}, 0, true, 1, Need::kAlways,
       "the fraction of gb_per_s that transfers achieve"},
      {P{"cluster", "nics_per_node"}, 1, false, 1024, Need::kMultiNode, "NICs per node"},
      {P{"cluster", "nic_gbit_per_s"}, 0, true, kNicGbitPerS, Need::kMultiNode,
       "the NIC speed in Gbit/s"},
      {P{"cluster", "nic_latency_us"}, 0, false, kLatencyUs, Need::kAlways,
       "the NIC latency in microseconds"},
      {P{"cluster", "nic_bandwidth_efficiency"}, 0, true, 1, Need::kAlways,
       "the fraction of the NIC bandwidth that transfers achieve"},
      {P{"cluster", "inter_node", "oversubscription"}, 1, false, 1024, Need::kAlways,
       "the leaf downlink:uplink ratio (1 = non-blocking)"},
      {P{"cluster", "inter_node", "nodes_per_leaf"}, 1, false, kMaxGpus, Need::kAlways,
       "nodes per leaf switch"},
      {P{"cluster", "inter_node", "levels"}, 1, false, 16, Need::kAlways,
       "the switch levels of the network"},
      {P{"cluster", "inter_node", "switch_latency_us"}, 0, false, kLatencyUs, Need::kAlways,
       "the latency per switch in microseconds"},
      // 1e6 MB is a terabyte of gradients in one bucket; 1e16 tokens is ~700x the largest published
      // training run (15T tokens).
      {P{"layout", "grad_bucket_mb"}, 0, true, 1e6, Need::kAlways,
       "the gradient bucket size in MB"},
      {P{"options", "token_budget"}, 0, false, 1e16, Need::kAlways,
       "the number of tokens to train on"},
  };
  return ranges;
}

// The value at `path` below `message` as a double (int32 and double fields), and whether the file
// set it (an unset field has its schema default).
std::pair<double, bool> number_at(const pb::Message& root, const std::vector<std::string>& path) {
  const pb::Message* message = &root;
  for (std::size_t i = 0; i + 1 < path.size(); ++i) {
    const pb::FieldDescriptor* f = message->GetDescriptor()->FindFieldByName(path[i]);
    message = &message->GetReflection()->GetMessage(*message, f);
  }
  const pb::FieldDescriptor* f = message->GetDescriptor()->FindFieldByName(path.back());
  const pb::Reflection* r = message->GetReflection();
  const bool set = r->HasField(*message, f);
  switch (f->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_DOUBLE:
      return {r->GetDouble(*message, f), set};
    case pb::FieldDescriptor::CPPTYPE_INT32:
      return {static_cast<double>(r->GetInt32(*message, f)), set};
    default:
      return {0, set};
  }
}

std::string range_text(const NumberRange& range) {
  return std::string(range.lo_open ? "(" : "[") + pb::SimpleDtoa(range.lo) + ", " +
         pb::SimpleDtoa(range.hi) + "]";
}

// The ranges whose path starts with `prefix` ("cluster", "layout", "options").
void check_numbers(const Scenario& sc, const Sources& src, const std::string& prefix) {
  for (const NumberRange& range : number_ranges()) {
    if (range.path.front() != prefix) continue;
    const auto [value, set] = number_at(sc, range.path);
    if (!set && (range.need == Need::kIfSet ||
                 (range.need == Need::kMultiNode && sc.cluster().num_nodes() <= 1)))
      continue;
    // Written so that NaN fails: every comparison with it is false.
    const bool above_lo = range.lo_open ? value > range.lo : value >= range.lo;
    if (!(above_lo && value <= range.hi))
      fail(src, range.path,
           std::string("must be ") + (std::isfinite(value) ? "" : "a finite number ") + "in " +
               range_text(range) + " (got " + pb::SimpleDtoa(value) + "); " + range.what);
  }
}

// The cluster block: the same checks for a scenario and for an imported graph's (which has no
// model; `precision` is then the default, BF16).
void validate_cluster(const Scenario& sc, const Sources& src, Precision precision) {
  if (!sc.has_cluster()) fail(src, {"cluster"}, "missing: give cluster { preset: \"dgx-a100-80g\" num_nodes: N }");
  const ClusterSpec& c = sc.cluster();
  const GpuSpec& g = c.gpu();
  require_positive(src, {"cluster", "num_nodes"}, c.num_nodes(), c.has_num_nodes(), "the number of nodes");
  require_positive(src, {"cluster", "gpus_per_node"}, c.gpus_per_node(), c.has_gpus_per_node(), "GPUs per node");
  require_positive(src, {"cluster", "gpu", "hbm_gb"}, g.hbm_gb(), g.has_hbm_gb(),
                   "the GPU memory size in GB");
  require_positive(src, {"cluster", "gpu", "hbm_tb_per_s"}, g.hbm_tb_per_s(), g.has_hbm_tb_per_s(),
                   "the GPU memory bandwidth in TB/s");
  require_positive(src, {"cluster", "intra_node", "gb_per_s"}, c.intra_node().gb_per_s(),
                   c.intra_node().has_gb_per_s(), "the per-GPU intra-node bandwidth in GB/s");
  if (c.num_nodes() > 1) {
    require_positive(src, {"cluster", "nics_per_node"}, c.nics_per_node(), c.has_nics_per_node(),
                     "NICs per node");
    require_positive(src, {"cluster", "nic_gbit_per_s"}, c.nic_gbit_per_s(), c.has_nic_gbit_per_s(),
                     "the NIC speed in Gbit/s");
  }
  check_numbers(sc, src, "cluster");
  // FP8 training runs all but its linears' GEMMs in BF16: it needs both peaks and both tables.
  const Precision base_precision = precision == FP8 ? BF16 : precision;
  const double peak = peak_flops(g, base_precision);
  if (!(peak > 0))
    fail(src,
         {"cluster", "gpu",
          "peak_" +
              [&] {
                std::string n = precision_name(base_precision);
                for (auto& ch : n) ch = static_cast<char>(std::tolower(ch));
                return n;
              }() +
              "_tflops"},
         "the GPU \"" + g.name() + "\" has no positive peak for the model's precision " +
             precision_name(base_precision) + "; set it, or change model.precision");
  if (precision == FP8 && !(g.peak_fp8_tflops() > 0))
    fail(src, {"cluster", "gpu", "peak_fp8_tflops"},
         "the GPU \"" + g.name() +
             "\" has no FP8 tensor cores (no peak_fp8_tflops): FP8 training needs a Hopper or newer GPU (H100, "
             "H200, H800, B200, GB200); train this one in BF16 (model.precision BF16)");
  auto check_gemm_table = [&](const GemmEfficiencyTable& t, const char* field, const std::string& what) {
    const std::vector<std::string> base{"cluster", "gpu", field};
    if (t.m_size() == 0 || t.n_size() == 0 || t.k_size() == 0)
      fail(src, base, "missing or empty: " + what + " (axes m, n, k and efficiency values)");
    for (const auto* axis : {&t.m(), &t.n(), &t.k()}) {
      for (int i = 0; i < axis->size(); ++i) {
        if ((*axis)[i] <= 0 || (i > 0 && (*axis)[i] <= (*axis)[i - 1]))
          fail(src, base, "axis values must be positive and strictly ascending");
      }
    }
    const auto expected = checked_product({t.m_size(), t.n_size(), t.k_size()});
    if (!expected || t.efficiency_size() != *expected)
      fail(src, base,
           "has " + std::to_string(t.efficiency_size()) + " efficiency values; the axes need " +
               (expected ? std::to_string(*expected) : std::string("more than 2^63")) +
               " (len(m) * len(n) * len(k))");
    for (double e : t.efficiency())
      if (!(e > 0 && e <= 1)) fail(src, base, "efficiency values must be in (0, 1] (got " + pb::SimpleDtoa(e) + ")");
  };
  check_gemm_table(g.gemm_efficiency(), "gemm_efficiency", "the GPU needs a GEMM efficiency table");
  if (precision == FP8 || g.has_fp8_gemm_efficiency())
    check_gemm_table(g.fp8_gemm_efficiency(), "fp8_gemm_efficiency",
                     "FP8 training needs the GPU's FP8 GEMM efficiency table");
  for (const auto& [field, has, table] :
       {std::tuple{"flash_attention_efficiency", g.has_flash_attention_efficiency(), &g.flash_attention_efficiency()},
        std::tuple{"flash2_attention_efficiency", g.has_flash2_attention_efficiency(), &g.flash2_attention_efficiency()}}) {
    if (!has) continue;
    const AttentionEfficiencyTable& t = *table;
    const std::vector<std::string> base{"cluster", "gpu", field};
    if (t.seq_size() == 0 || t.head_dim_size() == 0)
      fail(src, base, "empty: give the seq and head_dim axes and forward and backward values, or leave the table out");
    for (const auto* axis : {&t.seq(), &t.head_dim()})
      for (int i = 0; i < axis->size(); ++i)
        if ((*axis)[i] <= 0 || (i > 0 && (*axis)[i] <= (*axis)[i - 1]))
          fail(src, base, "axis values must be positive and strictly ascending");
    const std::int64_t expected = static_cast<std::int64_t>(t.seq_size()) * t.head_dim_size();
    for (const auto& [name, values] : {std::pair{"forward", &t.forward()}, {"backward", &t.backward()}}) {
      if (values->size() != expected)
        fail(src, base,
             "has " + std::to_string(values->size()) + " " + name + " values; the axes need " +
                 std::to_string(expected) + " (len(seq) * len(head_dim))");
      for (double e : *values)
        if (!(e > 0 && e <= 1))
          fail(src, base, std::string(name) + " values must be in (0, 1] (got " + pb::SimpleDtoa(e) + ")");
    }
  }
}

// What the schema can say but the models do not compute yet: refused by name rather than silently
// modelled as something else (a wrong number is worse than an error).
// A double as its shortest round-trip text ("2", "0.5", "32").
std::string shortest(double v) {
  std::ostringstream o;
  o << std::setprecision(15) << v;
  return o.str();
}

void refuse_unmodelled(const Sources& src, const std::vector<std::string>& field, bool set, const std::string& what) {
  if (set) fail(src, field, what + " is not modelled yet; leave the field at its default");
}

// Layout.rank_order: any order of the grid's dimensions (model::RankGrid handles them all).
void check_rank_order(const Sources& src, const Layout& l) {
  if (!parse_rank_order(l.rank_order()))
    fail(src, {"layout", "rank_order"},
         "\"" + l.rank_order() +
             "\" is not a rank order: give the five dimensions tp, cp, ep, dp, pp once each, fastest first, "
             "joined by '-' (Megatron's default: \"tp-cp-ep-dp-pp\")");
}

void validate(const Scenario& sc, const Sources& src) {
  // Model.
  if (!sc.has_model()) fail(src, {"model"}, "missing: a scenario needs a model { ... } block");
  const ModelSpec& m = sc.model();
  require_positive(src, {"model", "num_layers"}, m.num_layers(), m.has_num_layers(),
                   "the number of transformer layers");
  require_positive(src, {"model", "hidden_size"}, m.hidden_size(), m.has_hidden_size(),
                   "the hidden size h");
  require_positive(src, {"model", "num_heads"}, m.num_heads(), m.has_num_heads(),
                   "the number of attention heads");
  require_positive(src, {"model", "seq_length"}, m.seq_length(), m.has_seq_length(),
                   "the sequence length in tokens");
  require_positive(src, {"model", "vocab_size"}, m.vocab_size(), m.has_vocab_size(),
                   "the vocabulary size");
  // Layer indices are stored in 16 bits per task (the graph of a big job has millions of tasks).
  if (m.num_layers() > kMaxLayers)
    fail(src, {"model", "num_layers"},
         "at most " + std::to_string(kMaxLayers) + " layers are supported (got " +
             std::to_string(m.num_layers()) + ")");
  if (m.ffn_hidden_size() < 0)
    fail(src, {"model", "ffn_hidden_size"}, "must not be negative (0 means 4 * hidden_size)");
  if (m.num_query_groups() < 0)
    fail(src, {"model", "num_query_groups"},
         "must not be negative (got " + std::to_string(m.num_query_groups()) +
             "); 0 means num_heads (multi-head attention), 1 multi-query");
  if (m.head_dim() < 0)
    fail(src, {"model", "head_dim"},
         "must not be negative (got " + std::to_string(m.head_dim()) + "); 0 means hidden_size / num_heads");
  if (m.make_vocab_size_divisible_by() < 1)
    fail(src, {"model", "make_vocab_size_divisible_by"},
         "must be >= 1 (got " + std::to_string(m.make_vocab_size_divisible_by()) + "); 1 pads only to a multiple of tp");
  if (m.num_query_groups() > 0 && m.num_heads() % m.num_query_groups() != 0)
    fail(src, {"model", "num_query_groups"},
         "num_heads " + std::to_string(m.num_heads()) + " is not a multiple of num_query_groups " +
             std::to_string(m.num_query_groups()) + "; valid num_query_groups: " +
             divisors_text(m.num_heads(), m.num_heads()));
  // Mixture of Experts.
  if (m.num_experts() < 0)
    fail(src, {"model", "num_experts"}, "must not be negative (got " + std::to_string(m.num_experts()) + "); 0 is a dense model");
  if (m.num_experts() > 0) {
    const std::int64_t experts = m.num_experts();
    if (m.moe_top_k() < 1 || m.moe_top_k() > experts)
      fail(src, {"model", "moe_top_k"},
           "must be 1 to num_experts " + std::to_string(experts) + " (got " + std::to_string(m.moe_top_k()) +
               "): the experts each token is routed to");
    if (m.moe_ffn_hidden_size() < 1)
      fail(src, {"model", "moe_ffn_hidden_size"},
           "must be >= 1 (got " + std::to_string(m.moe_ffn_hidden_size()) + "): the FFN size of one expert");
    if (m.num_shared_experts() < 0)
      fail(src, {"model", "num_shared_experts"}, "must not be negative (got " + std::to_string(m.num_shared_experts()) + ")");
    if (m.moe_dense_layers() < 0 || m.moe_dense_layers() >= m.num_layers())
      fail(src, {"model", "moe_dense_layers"},
           "must be 0 to num_layers - 1 = " + std::to_string(m.num_layers() - 1) + " (got " +
               std::to_string(m.moe_dense_layers()) + "): the leading layers with a dense FFN");
    // The busiest expert can get at most every token once: skew x tokens x top_k / experts <= tokens.
    const double max_skew = static_cast<double>(experts) / m.moe_top_k();
    if (m.has_moe_capacity_factor() && !(m.moe_capacity_factor() > 0 && m.moe_capacity_factor() <= max_skew))
      fail(src, {"model", "moe_capacity_factor"},
           "must be > 0 and at most num_experts / moe_top_k = " + shortest(max_skew) + " (got " +
               shortest(m.moe_capacity_factor()) + "): an expert's token capacity as a multiple of the balanced share; "
               "leave it out for dropless routing");
    if (m.moe_pad_to_capacity() && !m.has_moe_capacity_factor())
      fail(src, {"model", "moe_pad_to_capacity"},
           "pads each expert's input to its capacity, which model.moe_capacity_factor sets; set it (e.g. 1.0) or "
           "drop moe_pad_to_capacity");
    if (!(m.moe_routing_skew() >= 1.0 && m.moe_routing_skew() <= max_skew))
      fail(src, {"model", "moe_routing_skew"},
           "must be 1 (balanced) to num_experts / moe_top_k = " + shortest(max_skew) + " (got " +
               shortest(m.moe_routing_skew()) + "): the busiest expert's tokens as a multiple of the mean");
  } else {
    for (const auto& [name, set] : {std::pair{"moe_top_k", m.moe_top_k() != 0},
                                    {"moe_ffn_hidden_size", m.moe_ffn_hidden_size() != 0},
                                    {"num_shared_experts", m.num_shared_experts() != 0},
                                    {"moe_dense_layers", m.moe_dense_layers() != 0},
                                    {"moe_routing_skew", m.moe_routing_skew() != 1.0},
                                    {"moe_capacity_factor", m.has_moe_capacity_factor()},
                                    {"moe_pad_to_capacity", m.moe_pad_to_capacity()}})
      if (set)
        fail(src, {"model", name}, "is set but model.num_experts is 0 (a dense model); set num_experts or drop it");
  }
  // Multi-head latent attention.
  for (const auto& [name, value] : {std::pair{"q_lora_rank", m.q_lora_rank()}, {"kv_lora_rank", m.kv_lora_rank()},
                                    {"qk_nope_head_dim", m.qk_nope_head_dim()}, {"qk_rope_head_dim", m.qk_rope_head_dim()},
                                    {"v_head_dim", m.v_head_dim()}, {"sliding_window", m.sliding_window()},
                                    {"sliding_window_pattern", m.sliding_window_pattern()}})
    if (value < 0) fail(src, {"model", name}, "must not be negative (got " + std::to_string(value) + ")");
  if (m.kv_lora_rank() > 0) {
    // The latents compress the hidden state: a rank above hidden_size compresses nothing and is a
    // typo (DeepSeek-V3: 1536 and 512 on 7168).
    for (const auto& [name, value] : {std::pair{"q_lora_rank", m.q_lora_rank()}, {"kv_lora_rank", m.kv_lora_rank()}})
      if (value > m.hidden_size())
        fail(src, {"model", name},
             std::to_string(value) + " is larger than hidden_size " + std::to_string(m.hidden_size()) +
                 ": a latent rank must be 1 to hidden_size (DeepSeek-V3: q_lora_rank 1536, kv_lora_rank 512 on 7168; "
                 "q_lora_rank 0 projects queries without compression)");
    if (std::int64_t{m.qk_nope_head_dim()} + m.qk_rope_head_dim() < 1)  // int32 fields: no overflow
      fail(src, {"model", "qk_nope_head_dim"},
           "multi-head latent attention needs a query/key head dimension: qk_nope_head_dim + qk_rope_head_dim "
           "must be >= 1 (DeepSeek-V3: 128 + 64)");
    if (m.v_head_dim() < 1)
      fail(src, {"model", "v_head_dim"}, "must be >= 1 with multi-head latent attention (got " +
                                             std::to_string(m.v_head_dim()) + "; DeepSeek-V3: 128)");
    if (m.num_query_groups() != 0 && m.num_query_groups() != m.num_heads())
      fail(src, {"model", "num_query_groups"},
           "does not apply to multi-head latent attention (every head has its own keys and values from the "
           "latent); leave it 0");
    if (m.attention_kernel() == ModelSpec::UNFUSED)
      fail(src, {"model", "attention_kernel"},
           "multi-head latent attention is modelled with a fused attention kernel; use attention_kernel: FLASH");
  } else {
    for (const auto& [name, set] : {std::pair{"q_lora_rank", m.q_lora_rank() != 0},
                                    {"qk_nope_head_dim", m.qk_nope_head_dim() != 0},
                                    {"qk_rope_head_dim", m.qk_rope_head_dim() != 0},
                                    {"v_head_dim", m.v_head_dim() != 0}})
      if (set)
        fail(src, {"model", name},
             "is set but model.kv_lora_rank is 0 (no multi-head latent attention); set kv_lora_rank or drop it");
  }
  if (m.sliding_window() == 0 && m.sliding_window_pattern() != 0)
    fail(src, {"model", "sliding_window_pattern"}, "is set but model.sliding_window is 0; set the window or drop it");
  if (m.sliding_window() > 0 && m.attention_kernel() == ModelSpec::UNFUSED)
    fail(src, {"model", "attention_kernel"},
         "sliding-window attention is modelled with a fused attention kernel; use attention_kernel: FLASH");
  // With head_dim set, the attention width (num_heads * head_dim) need not be hidden_size
  // (Nemotron-4 340B: 96 heads of 192 on a hidden size of 18432).
  if (m.head_dim() == 0 && m.hidden_size() % m.num_heads() != 0)
    fail(src, {"model", "num_heads"},
         "hidden_size " + std::to_string(m.hidden_size()) + " is not divisible by num_heads " +
             std::to_string(m.num_heads()) +
             "; valid num_heads: " + divisors_text(m.hidden_size(), m.hidden_size()) +
             " (or set model.head_dim)");

  validate_cluster(sc, src, m.precision());
  const ClusterSpec& c = sc.cluster();
  if (m.attention_kernel() != ModelSpec::UNFUSED && !c.gpu().has_flash_attention_efficiency())
    fail(src, {"cluster", "gpu", "flash_attention_efficiency"},
         "missing: the GPU \"" + c.gpu().name() +
             "\" has no flash attention efficiency table, which model.attention_kernel " +
             ModelSpec::AttentionKernel_Name(m.attention_kernel()) + " needs; "
             "add cluster.gpu.flash_attention_efficiency (seq and head_dim axes, forward and backward "
             "fractions of peak) or use attention_kernel: UNFUSED");

  if (m.mtp_layers() < 0 || m.mtp_layers() > kMaxMtpLayers)
    fail(src, {"model", "mtp_layers"},
         "must be 0 to " + std::to_string(kMaxMtpLayers) + " (got " + std::to_string(m.mtp_layers()) +
             "): the multi-token prediction modules after the main model (DeepSeek-V3: 1)");

  // Layout.
  if (!sc.has_layout()) fail(src, {"layout"}, "missing: give layout { dp: .. tp: .. pp: .. global_batch_size: .. }");
  const Layout& l = sc.layout();
  for (const auto& [name, value] : {std::pair{"dp", l.dp()}, {"tp", l.tp()}, {"pp", l.pp()},
                                    {"virtual_stages", l.virtual_stages()},
                                    {"micro_batch_size", l.micro_batch_size()}, {"cp", l.cp()}, {"ep", l.ep()},
                                    {"etp", l.etp()}}) {
    if (value < 1) fail(src, {"layout", name}, "must be >= 1 (got " + std::to_string(value) + ")");
  }
  for (const auto& [name, value] : {std::pair{"first_stage_layers", l.first_stage_layers()},
                                    {"last_stage_layers", l.last_stage_layers()}}) {
    if (value < 0)
      fail(src, {"layout", name}, "must not be negative (got " + std::to_string(value) + "); 0 means an even share");
  }
  if (l.cp() > 1) {
    // Megatron splits each sequence into 2 x cp chunks (rank i keeps chunks i and 2 cp - 1 - i, so
    // the causal attention work is even) and runs the ring in Transformer Engine's fused attention.
    const std::int64_t chunks = 2 * static_cast<std::int64_t>(l.cp());
    if (m.seq_length() % chunks != 0)
      fail(src, {"layout", "cp"},
           "cp " + std::to_string(l.cp()) + " splits each sequence into 2 x cp = " + std::to_string(chunks) +
               " chunks, but model.seq_length " + std::to_string(m.seq_length()) +
               " does not divide by it; choose a cp for which seq_length / (2 cp) is whole");
    if (m.attention_kernel() == ModelSpec::UNFUSED)
      fail(src, {"layout", "cp"},
           "context parallelism runs its K/V ring inside a fused attention kernel (Transformer Engine), and "
           "model.attention_kernel is UNFUSED (the s x s scores materialised); set attention_kernel FLASH or "
           "FLASH2, or cp 1");
    if (l.sequence_parallel() && l.tp() > 1 && (m.seq_length() / l.cp()) % l.tp() != 0)
      fail(src, {"layout", "cp"},
           "with sequence parallelism each rank's s / cp = " + std::to_string(m.seq_length() / l.cp()) +
               " tokens are split again over tp " + std::to_string(l.tp()) + ", which does not divide them");
  }
  // Megatron's expert grid folds into a stage's tp x cp x dp ranks (model::RankGrid): ep, and ep x
  // etp, divide them. Computed where an expert degree exceeds 1 (the GPU count is bounded later).
  const auto stage_ranks_of = [&l] { return static_cast<std::int64_t>(l.tp()) * l.cp() * l.dp(); };
  if (l.ep() > 1) {
    const std::int64_t stage_ranks = stage_ranks_of();
    if (m.num_experts() == 0)
      fail(src, {"layout", "ep"}, "expert parallelism needs a Mixture-of-Experts model (model.num_experts > 0); use ep 1");
    if (m.num_experts() % l.ep() != 0)
      fail(src, {"layout", "ep"},
           "ep " + std::to_string(l.ep()) + " does not divide model.num_experts " + std::to_string(m.num_experts()) +
               "; valid ep: " + divisors_text(m.num_experts(), std::min<std::int64_t>(m.num_experts(), stage_ranks)));
    if (stage_ranks % l.ep() != 0)
      fail(src, {"layout", "ep"},
           "ep " + std::to_string(l.ep()) + " does not divide tp x cp x dp = " + std::to_string(stage_ranks) +
               " (the ranks of a pipeline stage, which Megatron regroups as ep x expert dp); valid ep: " +
               divisors_text(stage_ranks, std::min<std::int64_t>(m.num_experts(), stage_ranks)));
  }
  if (l.etp() > 1) {
    // Expert tensor parallelism: ep x etp ranks of each stage hold one copy of all the experts.
    const std::int64_t stage_ranks = stage_ranks_of();
    const std::int64_t ep = std::max(1, l.ep());
    if (m.num_experts() == 0)
      fail(src, {"layout", "etp"},
           "expert tensor parallelism needs a Mixture-of-Experts model (model.num_experts > 0); use etp 1");
    if (stage_ranks % (ep * l.etp()) != 0)
      fail(src, {"layout", "etp"},
           "ep x etp = " + std::to_string(ep) + " x " + std::to_string(l.etp()) + " does not divide tp x cp x dp = " +
               std::to_string(stage_ranks) +
               " (the ranks of a pipeline stage, which Megatron regroups as etp x ep x expert dp); valid etp with ep " +
               std::to_string(ep) + ": " + divisors_text(stage_ranks / ep, stage_ranks / ep));
    if (m.moe_ffn_hidden_size() % l.etp() != 0)
      fail(src, {"layout", "etp"},
           "etp " + std::to_string(l.etp()) + " does not divide model.moe_ffn_hidden_size " +
               std::to_string(m.moe_ffn_hidden_size()) + " (each expert's FFN is split over etp ranks); valid etp: " +
               divisors_text(m.moe_ffn_hidden_size(), std::min<std::int64_t>(m.moe_ffn_hidden_size(), stage_ranks / ep)));
    if (m.add_bias_linear())
      fail(src, {"layout", "etp"},
           "etp " + std::to_string(l.etp()) +
               " with model.add_bias_linear: Megatron-Core asserts expert_tensor_parallel_size == 1 or no linear "
               "biases; use etp 1 or add_bias_linear: false");
    if (l.moe_dispatcher() == Layout::ALLGATHER)
      fail(src, {"layout", "etp"},
           "etp " + std::to_string(l.etp()) +
               " with moe_dispatcher ALLGATHER is not modelled (the all-gather dispatcher gathers over ep x etp); "
               "use etp 1 or moe_dispatcher: ALLTOALL");
    refuse_unmodelled(src, {"layout", "etp"}, l.moe_a2a_overlap(),
                      "the all-to-all overlap (moe_a2a_overlap) with expert tensor parallelism (etp " +
                          std::to_string(l.etp()) + ")");
  }
  refuse_unmodelled(src, {"layout", "cp"}, l.cp() > 1 && (m.kv_lora_rank() > 0 || m.sliding_window() > 0),
                    "context parallelism with " +
                        std::string(m.kv_lora_rank() > 0 ? "multi-head latent" : "sliding-window") +
                        " attention (cp " + std::to_string(l.cp()) + ")");
  refuse_unmodelled(src, {"layout", "moe_a2a_overlap"}, m.mtp_layers() > 0 && l.moe_a2a_overlap(),
                    "the all-to-all overlap with multi-token prediction (model.mtp_layers " + std::to_string(m.mtp_layers()) +
                        ")");
  refuse_unmodelled(src, {"layout", "zero_stage"}, m.mtp_layers() > 0 && l.zero_stage() >= 2,
                    "ZeRO-2/3 (FSDP) sharding with multi-token prediction (model.mtp_layers " +
                        std::to_string(m.mtp_layers()) + "; take zero_stage 0 or 1)");
  refuse_unmodelled(src, {"layout", "zero_stage"}, m.num_experts() > 0 && l.zero_stage() >= 2,
                    "ZeRO-2/3 (FSDP) sharding of a Mixture-of-Experts model (zero_stage " +
                        std::to_string(l.zero_stage()) + "; MoE layouts take zero_stage 0 or 1)");
  if (l.moe_a2a_overlap() && (m.num_experts() == 0 || l.ep() < 2))
    fail(src, {"layout", "moe_a2a_overlap"},
         "overlaps the expert-parallel all-to-alls, so it needs a Mixture-of-Experts model with ep > 1 (got " +
             std::string(m.num_experts() == 0 ? "a dense model" : "ep 1") + "); set ep or drop it");
  if (l.moe_dispatcher() == Layout::ALLGATHER && m.num_experts() == 0)
    fail(src, {"layout", "moe_dispatcher"},
         "ALLGATHER dispatches a Mixture-of-Experts model's tokens (model.num_experts is 0: a dense model); drop it");
  if (l.moe_a2a_overlap() && l.moe_dispatcher() == Layout::ALLGATHER)
    fail(src, {"layout", "moe_a2a_overlap"},
         "overlaps the all-to-all dispatcher's exchanges (Megatron-Core allows it with the alltoall and flex "
         "dispatchers); use moe_dispatcher: ALLTOALL or drop the overlap");
  if (l.moe_a2a_overlap() && l.pp() > 1 && (l.schedule() != Layout::INTERLEAVED_1F1B || l.virtual_stages() < 2))
    fail(src, {"layout", "moe_a2a_overlap"},
         "with pp " + std::to_string(l.pp()) +
             " needs the interleaved schedule (schedule: INTERLEAVED_1F1B, virtual_stages >= 2), as Megatron's combined "
             "1F1B does: with one chunk per stage each stage's merged forward and backward wait for its neighbours' "
             "whole merged steps");
  refuse_unmodelled(src, {"layout", "moe_a2a_overlap"},
                    l.moe_a2a_overlap() && (l.recompute() == Layout::FULL ||
                                            (l.recompute() == Layout::SELECTIVE && l.selective_policy() == Layout::PER_OP)),
                    "the all-to-all overlap with full or per-op recompute (Megatron's combined 1F1B runs without them)");
  // Megatron routes each rank's own tokens: with tp > 1 they must be split over tp (sequence
  // parallelism), else every TP rank would dispatch the same tokens.
  if (m.num_experts() > 0 && l.tp() > 1 && !l.sequence_parallel())
    fail(src, {"layout", "sequence_parallel"},
         "a Mixture-of-Experts model with tp " + std::to_string(l.tp()) +
             " needs sequence_parallel: true (Megatron requires it: each TP rank routes its own s / tp tokens)");
  check_rank_order(src, l);
  // Megatron / Transformer Engine overlap the TP collectives with the GEMMs only under sequence
  // parallelism (the all-gather and reduce-scatter it splits into chunks).
  if (l.tp_comm_overlap() && l.tp() > 1 && !l.sequence_parallel())
    fail(src, {"layout", "tp_comm_overlap"},
         "needs sequence_parallel: true (the overlapped collectives are the sequence-parallel all-gather and "
         "reduce-scatter); set sequence_parallel or drop tp_comm_overlap");
  const std::int32_t sms = c.gpu().sm_count();
  if (sms < 0 || sms > 10000)
    fail(src, {"cluster", "gpu", "sm_count"},
         "must be 0 (not given) to 10000 streaming multiprocessors (got " + std::to_string(sms) + ")");
  if (l.tp_comm_overlap() && l.tp() > 1 && sms <= kTpOverlapCommSms)
    fail(src, {"cluster", "gpu", "sm_count"},
         (sms == 0 ? std::string("missing") : "is " + std::to_string(sms)) +
             ": layout.tp_comm_overlap keeps " + std::to_string(kTpOverlapCommSms) +
             " SMs for its communication kernels and runs the GEMMs on the rest, so the GPU needs more; set "
             "cluster.gpu.sm_count (H100 SXM5: 132, A100: 108) or drop tp_comm_overlap");
  // The remainders complete a bf16 weight to fp32: Apex refuses them for any other model dtype.
  if (l.optimizer_state() == Layout::FP32_REMAINDERS && sc.model().precision() != BF16 &&
      sc.model().precision() != FP8)
    fail(src, {"layout", "optimizer_state"},
         "FP32_REMAINDERS stores the low 16 bits of an fp32 master weight beside its bf16 copy, so it needs "
         "model.precision BF16 (or FP8, whose weights are BF16) (got " + Precision_Name(sc.model().precision()) +
             "); use FP32_MASTER or MODEL_PRECISION");
  if (!l.has_global_batch_size()) fail(src, {"layout", "global_batch_size"}, "missing: set the global batch size in sequences");
  if (l.global_batch_size() < 1)
    fail(src, {"layout", "global_batch_size"}, "must be >= 1 (got " + std::to_string(l.global_batch_size()) + ")");
  const std::int64_t gpus = static_cast<std::int64_t>(c.num_nodes()) * c.gpus_per_node();
  // Ranks are 32-bit everywhere (tasks, timelines, MPI) and compare, calibrate and the executor keep
  // per-rank arrays: a bound far above any real job keeps every rank product exact and in memory.
  if (gpus > kMaxGpus)
    fail(src, {"cluster", "num_nodes"}, "the cluster has " + std::to_string(gpus) + " GPUs (" +
                                            std::to_string(c.num_nodes()) + " nodes * " +
                                            std::to_string(c.gpus_per_node()) + "); at most " +
                                            std::to_string(kMaxGpus) + " are supported");
  // ep is folded into tp x cp x dp (Megatron's expert grid), so it does not multiply the GPU count.
  const std::optional<std::int64_t> product = checked_product({l.dp(), l.tp(), l.pp(), l.cp()});
  if (product != gpus) {
    const std::int64_t tp_pp = static_cast<std::int64_t>(l.tp()) * l.pp();
    std::string fix = gpus % tp_pp == 0 ? "; with tp " + std::to_string(l.tp()) + " and pp " + std::to_string(l.pp()) +
                                              " use dp " + std::to_string(gpus / tp_pp)
                                        : "; tp * pp must divide the GPU count";
    fail(src, {"layout", "dp"},
         "dp * tp * pp = " + std::to_string(l.dp()) + " * " + std::to_string(l.tp()) + " * " +
             std::to_string(l.pp()) + " = " +
             (product ? std::to_string(*product) : std::string("more than 2^63")) +
             " but the cluster has " + std::to_string(gpus) + " GPUs (" +
             std::to_string(c.num_nodes()) + " nodes * " + std::to_string(c.gpus_per_node()) + ")" +
             fix);
  }
  // The divisibility rules (model/src/layout_rules.cpp, shared with the planner's pruning), then the
  // sizes, then the batch and schedule rules.
  const LayoutFacts facts = LayoutFacts::of(m);
  const LayoutShape shape = LayoutShape::of(l);
  const auto check_rules = [&](LayoutRule first, LayoutRule last) {
    if (const auto rule = first_broken_rule(facts, shape, first, last)) {
      const LayoutRuleViolation why = explain_broken_rule(*rule, facts, shape);
      fail(src, why.field, why.problem);
    }
  };
  check_rules(LayoutRule::HeadsTp, LayoutRule::LayersPpV);
  const std::int64_t ffn = facts.ffn_size;
  // The graph builder and the cost and memory models multiply sizes in 64-bit integers (elements of a
  // micro-batch's activations, attention scores, GEMM operands times bytes): bound the factors so no
  // product overflows. 2^48 elements is ~10^6 times any published run.
  {
    const double b = l.micro_batch_size(), s = m.seq_length(), a = m.num_heads();
    // The wider of the hidden size and the attention's width (heads * head_dim, which head_dim can
    // make wider); SwiGLU's FC1 is 2f wide; the vocabulary as padded.
    double head_dim = m.head_dim() > 0 ? m.head_dim() : static_cast<double>(m.hidden_size()) / a;
    if (m.kv_lora_rank() > 0)  // multi-head latent attention: its own query/key and value head widths
      head_dim = std::max(static_cast<double>(m.qk_nope_head_dim()) + m.qk_rope_head_dim(),
                          static_cast<double>(m.v_head_dim()));
    const double h = std::max(static_cast<double>(m.hidden_size()), a * head_dim);
    const double f = static_cast<double>(ffn) * (m.activation() == ModelSpec::SWIGLU ? 2.0 : 1.0);
    const double multiple = static_cast<double>(m.make_vocab_size_divisible_by()) * l.tp();
    const double vocab = std::ceil(m.vocab_size() / multiple) * multiple;
    const double limit = 281474976710656.0;  // 2^48
    const struct {
      double elements;
      std::vector<std::string> field;
      const char* what;
    } sizes[] = {
        {b * a * s * s, {"model", "seq_length"}, "micro_batch_size * num_heads * seq_length^2 (attention scores of a micro-batch)"},
        {b * s * std::max({h, f, vocab}), {"layout", "micro_batch_size"},
         "micro_batch_size * seq_length * max(hidden_size, ffn size, vocab_size) (activations of a micro-batch)"},
        {h * std::max({h, f, vocab}), {"model", "hidden_size"},
         "hidden_size * max(hidden_size, ffn size, vocab_size) (a weight matrix)"},
    };
    for (const auto& size : sizes)
      if (size.elements > limit)
        fail(src, size.field, std::string("too large: ") + size.what + " = " + pb::SimpleDtoa(size.elements) +
                                  " elements; at most 2^48 are supported");
  }
  check_rules(LayoutRule::BatchMbsDp, LayoutRule::Schedule);
  if (const auto why = stage_partition_problem(m, l)) fail(src, why->field, why->problem);
  if (l.zero_stage() < 0 || l.zero_stage() > 3)
    fail(src, {"layout", "zero_stage"}, "must be 0, 1, 2 or 3 (got " + std::to_string(l.zero_stage()) + ")");
  check_numbers(sc, src, "layout");
  check_numbers(sc, src, "options");
}

Scenario resolve(Scenario sc, const fs::path& base_dir, Sources& sources) {
  if (sc.has_cluster()) {
    ResolvedCluster resolved;
    try {
      resolved = merge_cluster_presets(sc.cluster(), base_dir);
    } catch (const PresetNotFound& e) {
      const bool gpu = e.kind() == PresetKind::Gpu;
      // A GPU preset named by the cluster preset: point at the cluster preset's line.
      if (gpu && sc.cluster().has_preset())
        sources.cluster_preset.read<ClusterSpec>(find_preset(PresetKind::Cluster, sc.cluster().preset(), base_dir));
      fail(sources, gpu ? std::vector<std::string>{"cluster", "gpu", "preset"} : std::vector<std::string>{"cluster", "preset"},
           "no preset \"" + e.shown_name() + "\" " + e.detail());
    }
    sources.cluster_preset.read<ClusterSpec>(resolved.cluster_file);
    sources.gpu_preset.read<GpuSpec>(resolved.gpu_file);
    *sc.mutable_cluster() = std::move(resolved.cluster);
  }
  // FlashAttention-2 where the GPU's flash table is of a faster kernel: the job's attention runs at
  // FA2's efficiency, so its flash table is FA2's (the cost model, the estimator and calibration read
  // only that one).
  if (sc.model().attention_kernel() == ModelSpec::FLASH2 && sc.cluster().gpu().has_flash2_attention_efficiency())
    *sc.mutable_cluster()->mutable_gpu()->mutable_flash_attention_efficiency() =
        sc.cluster().gpu().flash2_attention_efficiency();
  validate(sc, sources);
  return sc;
}

}  // namespace

fs::path data_dir() {
  if (const char* env = std::getenv("PARALLAX_DATA_DIR"); env && *env) return env;
  return PARALLAX_DATA_DIR;
}

Scenario parse_scenario(const std::string& text, const std::string& name, bool json,
                        const fs::path& base_dir) {
  Sources sources;
  sources.scenario.name = name;
  sources.scenario.json = json;
  Scenario sc;
  traces::parse_text_or_json(text, name, json, sc, sources.scenario.tree.get());
  if (!sc.has_name()) sc.set_name(fs::path(name).stem().string());
  return resolve(std::move(sc), base_dir, sources);
}

void validate_cluster(const ResolvedCluster& resolved, const std::string& name, Precision precision) {
  Sources sources;
  sources.scenario.name = name;
  sources.scenario.json = true;  // no parse tree: the preset files give the lines
  sources.cluster_preset.read<ClusterSpec>(resolved.cluster_file);
  sources.gpu_preset.read<GpuSpec>(resolved.gpu_file);
  Scenario sc;
  *sc.mutable_cluster() = resolved.cluster;
  validate_cluster(sc, sources, precision);
}

void validate_scenario(const Scenario& scenario, const std::string& name) {
  Sources sources;
  sources.scenario.name = name;
  sources.scenario.json = true;  // no parse tree: no line numbers
  validate(scenario, sources);
}

void validate_imported_scenario(const Scenario& scenario, const std::string& name) {
  Sources src;
  src.scenario.name = name;
  src.scenario.json = true;
  // Only what the graph indexes with: the machine model matters to the simulator alone, which
  // imports the trace itself (the executor's host cluster has no GPU model at all).
  if (!scenario.has_cluster())
    fail(src, {"cluster"}, "missing: an imported graph records the cluster it was imported for");
  const ClusterSpec& c = scenario.cluster();
  require_positive(src, {"cluster", "num_nodes"}, c.num_nodes(), c.has_num_nodes(),
                   "the number of nodes");
  require_positive(src, {"cluster", "gpus_per_node"}, c.gpus_per_node(), c.has_gpus_per_node(),
                   "GPUs per node");
  const Layout& l = scenario.layout();
  // The importer's grid: every rank explicit, data parallel only.
  if (l.tp() != 1 || l.pp() != 1)
    fail(src, {"layout"},
         "an imported graph has tp 1 and pp 1 (got tp " + std::to_string(l.tp()) + ", pp " +
             std::to_string(l.pp()) + "); its ranks are all explicit");
  if (l.cp() != 1 || l.ep() != 1)
    fail(src, {"layout"},
         "an imported graph has cp 1 and ep 1 (got cp " + std::to_string(l.cp()) + ", ep " + std::to_string(l.ep()) +
             "); its ranks are all explicit");
  check_rank_order(src, l);
  if (scenario.options().use_symmetry())
    fail(src, {"options", "use_symmetry"},
         "must be false for an imported graph (every rank is explicit)");
  const std::int64_t gpus = static_cast<std::int64_t>(c.num_nodes()) * c.gpus_per_node();
  if (gpus > kMaxGpus)
    fail(src, {"cluster", "num_nodes"},
         "the cluster has " + std::to_string(gpus) + " GPUs; at most " + std::to_string(kMaxGpus) +
             " are supported");
  if (l.dp() < 1 || l.dp() > gpus)
    fail(src, {"layout", "dp"},
         "the rank count " + std::to_string(l.dp()) + " must be between 1 and the cluster's " +
             std::to_string(gpus) + " GPUs");
}

Scenario load_scenario(const fs::path& path) {
  return parse_scenario(traces::read_file(path, traces::kMaxTextFileBytes, "scenario file"),
                        path.string(), path.extension() == ".json",
                        path.has_parent_path() ? path.parent_path() : fs::path("."));
}

ModelSpec replaced_model(const ModelReplacement& replacement) {
  ModelSpec m = replacement.model;
  if (replacement.seq_length > 0) m.set_seq_length(replacement.seq_length);
  return m;
}

Scenario load_scenario(const fs::path& path, const ModelReplacement& replacement) {
  Sources sources;
  sources.scenario.name = path.string();
  sources.scenario.json = path.extension() == ".json";
  sources.model_source = replacement.source;
  Scenario sc;
  traces::parse_text_or_json(traces::read_file(path, traces::kMaxTextFileBytes, "scenario file"), path.string(),
                             sources.scenario.json, sc, sources.scenario.tree.get());
  if (!sc.has_name()) sc.set_name(path.stem().string());
  ModelSpec m = replacement.model;
  if (replacement.seq_length > 0) {
    m.set_seq_length(replacement.seq_length);
  } else if (sc.model().has_seq_length()) {
    m.set_seq_length(sc.model().seq_length());
    sources.model_fields_kept.push_back("seq_length");
  }
  if (sc.model().has_precision()) {
    m.set_precision(sc.model().precision());
    sources.model_fields_kept.push_back("precision");
  }
  *sc.mutable_model() = std::move(m);
  return resolve(std::move(sc), path.has_parent_path() ? path.parent_path() : fs::path("."), sources);
}

int bytes_per_element(Precision precision) {
  switch (precision) {
    case FP32: return 4;
    case TF32: return 4;
    case FP8: return 2;  // FP8 training keeps activations, weights and gradients in BF16
    case BF16:
    case FP16:
    default: return 2;
  }
}

double mfu_peak_flops(const GpuSpec& gpu, Precision precision) {
  return peak_flops(gpu, precision == FP8 ? BF16 : precision);
}

double peak_flops(const GpuSpec& gpu, Precision precision) {
  switch (precision) {
    case FP16: return gpu.peak_fp16_tflops() * 1e12;
    case FP32: return gpu.peak_fp32_tflops() * 1e12;
    case TF32: return gpu.peak_tf32_tflops() * 1e12;
    case FP8: return gpu.peak_fp8_tflops() * 1e12;
    case BF16:
    default: return gpu.peak_bf16_tflops() * 1e12;
  }
}

std::string precision_name(Precision precision) { return Precision_Name(precision); }

Dims dims(const Scenario& sc) {
  const ModelSpec& m = sc.model();
  const Layout& l = sc.layout();
  Dims d{};
  d.L = m.num_layers();
  d.h = m.hidden_size();
  d.a = m.num_heads();
  d.f = m.ffn_hidden_size() ? m.ffn_hidden_size() : 4 * d.h;
  d.s = m.seq_length();
  d.V = m.vocab_size();
  d.b = l.micro_batch_size();
  d.B = l.global_batch_size();
  d.t = l.tp();
  d.p = l.pp();
  d.d = l.dp();
  d.v = l.schedule() == Layout::INTERLEAVED_1F1B ? l.virtual_stages() : 1;
  d.m = d.B / (d.b * d.d);
  d.e = bytes_per_element(m.precision());
  d.sp = l.sequence_parallel() && d.t > 1;
  set_layer_shape(d, m, l);  // the layer's shape, the precision and cp
  d.gpus = d.t * d.p * dp_cp(d);
  return d;
}

void set_layer_shape(Dims& d, const ModelSpec& m, const Layout& l) {
  d.g = m.num_query_groups() > 0 ? m.num_query_groups() : d.a;
  d.hd = m.head_dim() > 0 ? m.head_dim() : d.h / std::max<std::int64_t>(1, d.a);
  // Megatron pads the vocabulary to a multiple of make_vocab_size_divisible_by * tp.
  const std::int64_t multiple = std::max<std::int64_t>(1, m.make_vocab_size_divisible_by()) * std::max<std::int64_t>(1, d.t);
  d.Vp = (d.V + multiple - 1) / multiple * multiple;
  d.activation = m.activation();
  d.normalization = m.normalization();
  d.attention = m.attention_kernel();
  d.positions = m.position_embedding();
  d.bias = m.add_bias_linear();
  d.tied = m.tied_embeddings();
  d.dropout = m.dropout();
  d.selective_policy = l.selective_policy();
  d.fp8 = m.precision() == FP8;
  d.fp8_current = d.fp8 && m.fp8_recipe() == ModelSpec::CURRENT;
  d.fp8_params = d.fp8 && m.fp8_params();
  d.c = std::max<std::int64_t>(1, l.cp());
  d.eager = m.elementwise_kernels() == ModelSpec::EAGER;
  d.experts = m.num_experts();
  d.top_k = m.moe_top_k();
  d.moe_f = m.moe_ffn_hidden_size();
  d.shared = m.num_shared_experts();
  d.dense_layers = m.moe_dense_layers();
  d.skew = m.moe_routing_skew();
  d.capacity = m.has_moe_capacity_factor() ? m.moe_capacity_factor() : 0.0;
  d.pad_to_capacity = m.moe_pad_to_capacity();
  d.ep = std::max<std::int64_t>(1, l.ep());
  d.etp = std::max<std::int64_t>(1, l.etp());
  d.mtp = std::clamp<std::int64_t>(m.mtp_layers(), 0, kMaxMtpLayers);
  d.allgather_dispatcher = l.moe_dispatcher() == Layout::ALLGATHER;
  d.kv_lora = m.kv_lora_rank();
  d.q_lora = m.q_lora_rank();
  d.qk_nope = m.qk_nope_head_dim();
  d.qk_rope = m.qk_rope_head_dim();
  d.v_hd = m.v_head_dim();
  d.window = m.sliding_window();
  d.window_pattern = m.sliding_window_pattern();
  d.sinks = m.attention_sinks();
}

}  // namespace parallax::model
