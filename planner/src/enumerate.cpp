// The search space of layouts and its pruning: divisibility constraints (model::layout_rules, the
// rules of scenario validation), redundant ZeRO stages, and memory (model::estimate_memory).
#include "parallax/planner/plan.h"

#include "parallax/model/job_graph.h"
#include "parallax/model/layout_rules.h"
#include "parallax/model/memory_model.h"
#include "parallax/model/scenario.h"
#include "parallax/model/stage_partition.h"
#include "parallax/traces/io.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <set>
#include <sstream>

namespace parallax::planner {
namespace {

namespace fs = std::filesystem;

std::vector<int> divisors(long long n) {
  std::vector<int> out;
  for (long long i = 1; i <= n; ++i)
    if (n % i == 0) out.push_back(static_cast<int>(i));
  return out;
}

std::string join(const std::vector<int>& v) {
  std::string out;
  for (int x : v) out += (out.empty() ? "" : ", ") + std::to_string(x);
  return out;
}

std::string gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / (1024.0 * 1024 * 1024));
  return buf;
}

std::string count(std::uint64_t n) {
  const std::string digits = std::to_string(n);
  std::string s;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) s += ',';
    s += digits[i];
  }
  return s;
}

std::string model_label(const ModelSpec& m) {
  if (!m.name().empty()) return m.name();
  return std::to_string(m.num_layers()) + "x" + std::to_string(m.hidden_size()) + " GPT";
}

// How the layers are split over the pp * v virtual stages.
enum class Split {
  Even,           // num_layers / (pp * v) each
  EmbeddingLoss,  // Megatron's account_for_embedding/loss_in_pipeline_split: (num_layers + 2) / (pp * v)
                  // slots each, the embedding and the loss one slot each (Llama 3.1 405B's 126 layers)
  Balanced,       // the remainder of num_layers / (pp * v) as one more layer on the virtual stages after
                  // the first (which holds the embedding), the last (the logits and loss) kept lean
};

// The searched fields of a layout; everything else comes from PlanRequest::fixed.
struct Candidate {
  int tp, pp, dp, v;
  Layout::Schedule schedule;
  int mbs;
  bool sp;
  Layout::Recompute recompute;
  int zero;
  bool reshard;     // ZeRO-3: reshard_after_forward (FSDP2's two variants)
  bool tp_overlap;  // TE's userbuffer overlap of the sequence-parallel collectives
  Split split;
  int cp = 1;        // context parallelism
  bool fp8 = false;  // the linears in FP8 (model.precision FP8), where the GPU has FP8 tensor cores
  int ep = 1;        // expert parallelism (Mixture-of-Experts models), within tp x cp x dp
  bool a2a_overlap = false;  // layout.moe_a2a_overlap, where the request asks for it and it applies
  bool allgather = false;    // layout.moe_dispatcher ALLGATHER (searched with ep > 1)
  int etp = 1;               // expert tensor parallelism, within tp x cp x dp with ep
};

// The splits worth searching for pp * v virtual stages of num_layers layers: an even split when
// there is one, Megatron's embedding/loss slots when they make it even, else the balanced remainder.
std::vector<Split> splits_of(long long num_layers, int pp, int v) {
  const long long vs = static_cast<long long>(pp) * v;
  std::vector<Split> out;
  if (num_layers % vs == 0) out.push_back(Split::Even);
  if (vs > 1 && (num_layers + 2) % vs == 0 && num_layers + 2 >= 2 * vs) out.push_back(Split::EmbeddingLoss);
  if (out.empty() && num_layers > vs) out.push_back(Split::Balanced);
  return out;
}

// The layout rules of model validation (model::layout_rules, in PruneReason order), plus the layouts
// that repeat another. Memory is judged separately.
struct Rules {
  model::LayoutFacts facts;
  long long gbs;
  // Selective recompute of the attention core re-runs nothing with a fused (flash) kernel: the same
  // layout as no recompute.
  bool selective_is_none = false;

  std::optional<PruneReason> structural(const Candidate& c) const {
    const model::LayoutShape shape{c.tp, c.pp, c.dp, c.v, c.mbs, gbs, c.sp, c.schedule == Layout::INTERLEAVED_1F1B,
                                    /*partitioned=*/c.split != Split::Even};
    if (const auto rule = model::first_broken_rule(facts, shape)) return static_cast<PruneReason>(*rule);
    if (c.zero > 0 && c.dp == 1) return PruneReason::Redundant;
    if (c.recompute == Layout::SELECTIVE && selective_is_none) return PruneReason::Redundant;
    if (c.schedule == Layout::GPIPE && gbs / (static_cast<long long>(c.mbs) * c.dp) == 1) return PruneReason::Redundant;
    return std::nullopt;
  }
};
static_assert(static_cast<int>(PruneReason::Redundant) == model::kLayoutRules,
              "PruneReason starts with the model::LayoutRule values");

Rules rules_of(const PlanRequest& r) {
  return Rules{model::LayoutFacts::of(r.model), r.global_batch_size,
               r.model.attention_kernel() != ModelSpec::UNFUSED && r.fixed.selective_policy() == Layout::CORE_ATTENTION};
}

// Balanced: q = num_layers / (pp * v) each and the remainder r one more on the virtual stages 1..r
// (the middle ones when r < pp * v - 1), in virtual-stage order.
std::vector<int> balanced_stage_layers(long long num_layers, long long vs) {
  std::vector<int> out(static_cast<std::size_t>(vs), static_cast<int>(num_layers / vs));
  const long long r = num_layers % vs;
  for (long long i = 0; i < r; ++i) ++out[static_cast<std::size_t>((1 + i) % vs)];
  return out;
}

void apply(const Candidate& c, long long num_layers, Layout& l) {
  l.set_tp(c.tp);
  l.set_cp(c.cp);
  l.set_pp(c.pp);
  l.set_dp(c.dp);
  l.set_virtual_stages(c.v);
  l.set_schedule(c.schedule);
  l.set_micro_batch_size(c.mbs);
  l.set_sequence_parallel(c.sp);
  l.set_recompute(c.recompute);
  l.set_zero_stage(c.zero);
  l.set_reshard_after_forward(c.reshard);
  l.set_tp_comm_overlap(c.tp_overlap);
  l.set_ep(c.ep);
  l.set_moe_a2a_overlap(c.a2a_overlap);
  l.set_moe_dispatcher(c.allgather ? Layout::ALLGATHER : Layout::ALLTOALL);
  l.set_etp(c.etp);
  l.clear_stage_layers();
  l.set_embedding_in_pipeline_split(c.split == Split::EmbeddingLoss);
  l.set_loss_in_pipeline_split(c.split == Split::EmbeddingLoss);
  if (c.split == Split::Balanced)
    for (int n : balanced_stage_layers(num_layers, static_cast<long long>(c.pp) * c.v)) l.add_stage_layers(n);
}

Candidate candidate_of(const Layout& l) {
  const int v = l.schedule() == Layout::INTERLEAVED_1F1B ? l.virtual_stages() : 1;
  const bool sp = l.sequence_parallel() && l.tp() > 1;
  // A given partition other than the searched ones counts as uneven (layout_scenario keeps it).
  const bool only_slots = l.stage_layers_size() == 0 && l.first_stage_layers() == 0 && l.last_stage_layers() == 0;
  const Split split = !model::has_partition_fields(l)                                            ? Split::Even
                      : only_slots && l.embedding_in_pipeline_split() && l.loss_in_pipeline_split() ? Split::EmbeddingLoss
                                                                                                   : Split::Balanced;
  Candidate c{l.tp(),         l.pp(), l.dp(), v, l.schedule(), l.micro_batch_size(), sp, l.recompute(), l.zero_stage(),
              l.zero_stage() < 3 || l.reshard_after_forward(), sp && l.tp_comm_overlap(), split, l.cp()};
  c.ep = std::max(1, l.ep());
  c.a2a_overlap = l.moe_a2a_overlap();
  c.allgather = l.moe_dispatcher() == Layout::ALLGATHER;
  c.etp = std::max(1, l.etp());
  return c;
}

// The request's model and cluster with a placeholder layout, validated once by the scenario loader
// (every layout then only changes the layout fields, which the Rules check).
Scenario base_scenario(const PlanRequest& r) {
  if (r.gpus < 1) throw InputError("--gpus must be at least 1 (got " + std::to_string(r.gpus) + ")");
  if (r.global_batch_size < 1)
    throw InputError("the global batch size must be at least 1 sequence (got " + std::to_string(r.global_batch_size) +
                     "); give --global-batch B");
  if (r.max_micro_batch < 1) throw InputError("max_micro_batch must be at least 1");
  if (r.max_virtual_stages < 1) throw InputError("max_virtual_stages must be at least 1");
  const long long cluster_gpus = static_cast<long long>(r.cluster.num_nodes()) * r.cluster.gpus_per_node();
  if (cluster_gpus != r.gpus)
    throw InputError("the cluster has " + std::to_string(r.cluster.num_nodes()) + " nodes of " +
                     std::to_string(r.cluster.gpus_per_node()) + " GPUs, not the " + std::to_string(r.gpus) +
                     " GPUs asked for (resize it with model::resize_cluster)");
  Scenario sc;
  sc.set_name(model_label(r.model));
  *sc.mutable_model() = r.model;
  *sc.mutable_cluster() = r.cluster;
  // Already resolved: validate it as it is.
  sc.mutable_cluster()->clear_preset();
  sc.mutable_cluster()->mutable_gpu()->clear_preset();
  Layout& l = *sc.mutable_layout();
  l = r.fixed;
  // The planner chooses the partition (a given one fits one pp * virtual_stages only).
  l.clear_first_stage_layers();
  l.clear_last_stage_layers();
  apply(Candidate{1, 1, r.gpus, 1, Layout::ONE_F_ONE_B, 1, false, Layout::NO_RECOMPUTE, 0, true, false, Split::Even},
        r.model.num_layers(), l);
  l.set_global_batch_size(r.gpus);  // placeholder, valid for dp = gpus
  *sc.mutable_options() = r.options;
  Scenario validated =
      model::parse_scenario(traces::to_text(sc), "plan request (" + model_label(r.model) + ")", false, model::data_dir());
  validated.mutable_layout()->set_global_batch_size(r.global_batch_size);
  return validated;
}

struct Space {
  std::vector<int> tps;
  std::vector<std::pair<Layout::Schedule, int>> schedules;
  std::vector<int> mbs;
};

Space space_of(const PlanRequest& r) {
  Space s;
  const int per_node = r.cluster.gpus_per_node();
  for (int t : divisors(r.gpus))
    if (r.allow_cross_node_tp || per_node % t == 0) s.tps.push_back(t);
  s.schedules.push_back({Layout::GPIPE, 1});
  s.schedules.push_back({Layout::ONE_F_ONE_B, 1});
  for (int v = 2; v <= r.max_virtual_stages; ++v) s.schedules.push_back({Layout::INTERLEAVED_1F1B, v});
  for (int b : divisors(r.global_batch_size))
    if (b <= r.max_micro_batch) s.mbs.push_back(b);
  return s;
}

// Whether some tp, pp, dp of `gpus` GPUs satisfies the divisibility rules (v 1, mbs 1).
bool factorable(const PlanRequest& r, const Rules& rules, int gpus, int per_node) {
  for (int t : divisors(gpus)) {
    if (!r.allow_cross_node_tp && per_node % t != 0) continue;
    for (int p : divisors(gpus / t)) {
      for (Split split : splits_of(rules.facts.num_layers, p, 1)) {
        const Candidate c{t, p, gpus / (t * p), 1, Layout::ONE_F_ONE_B, 1, false, Layout::NO_RECOMPUTE, 0, true, false, split};
        if (!rules.structural(c)) return true;
      }
    }
  }
  return false;
}

std::string stats_line(const PruneStats& stats) {
  std::string out = count(stats.enumerated) + " layouts enumerated, pruned:";
  for (int i = 0; i < kPruneReasons; ++i)
    if (stats.pruned[static_cast<std::size_t>(i)] > 0)
      out += " " + std::string(prune_reason_key(static_cast<PruneReason>(i))) + " " +
             count(stats.pruned[static_cast<std::size_t>(i)]);
  return out;
}

[[noreturn]] void no_layout(const PlanRequest& r, const Rules& rules, const PruneStats& stats) {
  const int per_node = r.cluster.gpus_per_node();
  std::vector<int> all_tp, tp_ok, pp_ok;
  std::set<int> dps;
  for (int t : divisors(r.gpus)) {
    if (!r.allow_cross_node_tp && per_node % t != 0) continue;
    all_tp.push_back(t);
    if (rules.facts.num_heads % t == 0 && rules.facts.ffn_size % t == 0) tp_ok.push_back(t);
  }
  std::set<int> pps;
  for (int t : tp_ok)
    for (int p : divisors(r.gpus / t))
      if (!splits_of(rules.facts.num_layers, p, 1).empty()) {
        pps.insert(p);
        dps.insert(r.gpus / (t * p));
      }
  std::ostringstream s;
  s << "no layout of " << model_label(r.model) << " (" << r.model.num_layers() << " layers, " << r.model.num_heads()
    << " heads, FFN " << rules.facts.ffn_size << ") over " << r.gpus << " GPUs with global batch " << r.global_batch_size
    << ": tp*pp*dp = " << r.gpus << ", tp must divide the " << r.model.num_heads() << " heads and the FFN size "
    << rules.facts.ffn_size << " (tp " << join(tp_ok) << " of " << join(all_tp)
    << (r.allow_cross_node_tp ? "" : ", tp dividing the " + std::to_string(per_node) + " GPUs of a node") << "), pp must leave each stage a layer of the "
    << r.model.num_layers() << " (pp " << join(std::vector<int>(pps.begin(), pps.end())) << "), which leaves dp "
    << join(std::vector<int>(dps.begin(), dps.end())) << ", and micro_batch_size*dp must divide the global batch "
    << r.global_batch_size << "; none does (" << stats_line(stats) << "). Change ";
  if (!dps.empty()) {
    const long long d = *dps.begin();
    const long long lower = r.global_batch_size / d * d, upper = lower + d;
    s << "the global batch to a multiple of " << d << " (e.g. --global-batch " << (lower > 0 ? lower : upper)
      << (lower > 0 ? " or " + std::to_string(upper) : "") << ")";
  } else {
    s << "the model's heads or layers";
  }
  // GPU counts nearby that factor: divisors of a node, or whole nodes.
  std::vector<int> sizes;
  for (int g : divisors(per_node)) sizes.push_back(g);
  for (int k = 2; k * per_node <= 4 * std::max(r.gpus, per_node); ++k) sizes.push_back(k * per_node);
  std::sort(sizes.begin(), sizes.end(), [&](int a, int b) {
    return std::abs(a - r.gpus) < std::abs(b - r.gpus) || (std::abs(a - r.gpus) == std::abs(b - r.gpus) && a < b);
  });
  std::vector<int> good;
  for (int g : sizes) {
    if (g == r.gpus || !factorable(r, rules, g, per_node)) continue;
    good.push_back(g);
    if (good.size() == 2) break;
  }
  if (!good.empty()) {
    s << ", or the GPU count (--gpus " << good[0];
    if (good.size() > 1) s << " or " << good[1];
    s << " would work)";
  }
  PlanRequest cross = r;
  cross.allow_cross_node_tp = true;
  if (!r.allow_cross_node_tp && factorable(cross, rules, r.gpus, per_node))
    s << ", or allow tensor parallelism across nodes (--allow-cross-node-tp)";
  throw InputError(s.str());
}

// The smallest whole-node GPU count from `from` up on which some lean layout (micro-batch 1, full
// recompute, sequence parallel where it applies, ZeRO) satisfies the rules and fits; 0 if none is found
// in a few tries.
int gpus_that_fit(const PlanRequest& r, const Rules& rules, Scenario scratch, long long from) {
  const int per_node = r.cluster.gpus_per_node();
  Layout& layout = *scratch.mutable_layout();
  long long n = std::max<long long>(per_node, (from + per_node - 1) / per_node * per_node);
  for (int tries = 0; tries < 64 && n <= (1LL << 20); ++tries, n += per_node) {
    const int gpus = static_cast<int>(n);
    for (int tp : divisors(gpus)) {
      if (!r.allow_cross_node_tp && per_node % tp != 0) continue;
      for (int pp : divisors(gpus / tp))
        for (int zero = 0; zero <= 3; ++zero)
          for (Split split : splits_of(rules.facts.num_layers, pp, 1)) {
            const bool sp = tp > 1 && rules.facts.seq_length % tp == 0;
            Candidate c{tp, pp, gpus / (tp * pp), 1, Layout::ONE_F_ONE_B, 1, sp, Layout::FULL, zero, true, false, split};
            if (r.model.num_experts() > 0) {
              // MoE: ZeRO 0-1, sequence parallel with tp > 1, and the experts spread as far as they go.
              if (zero >= 2 || (tp > 1 && !sp)) continue;
              for (int e : divisors(r.model.num_experts()))
                if ((static_cast<long long>(tp) * c.dp) % e == 0) c.ep = e;
            }
            if (rules.structural(c)) continue;
            apply(c, rules.facts.num_layers, layout);
            if (model::estimate_memory(scratch).fits()) return gpus;
          }
    }
  }
  return 0;
}

[[noreturn]] void nothing_fits(const PlanRequest& r, const Rules& rules, const Scenario& scratch,
                               const PruneStats& stats) {
  const double capacity = stats.memory_capacity_bytes;
  const double need = stats.smallest_memory_bytes;
  std::uint64_t structural = 0;
  for (int i = 0; i < kPruneReasons - 1; ++i) structural += stats.pruned[static_cast<std::size_t>(i)];
  std::ostringstream s;
  s << "nothing fits in " << r.cluster.gpu().hbm_gb() << " GB (" << gib(capacity) << ") per GPU: of "
    << count(stats.enumerated - structural) << " layouts of " << model_label(r.model) << " on " << r.gpus
    << " GPUs that satisfy the constraints, the smallest needs " << gib(need) << " per GPU ("
    << stats.smallest_memory_layout << "). ";
  // Sharded memory falls about with the GPU count: start there and check.
  const long long guess = static_cast<long long>(std::ceil(r.gpus * need / capacity));
  if (const int more = gpus_that_fit(r, rules, scratch, std::max<long long>(guess, r.gpus + 1))) {
    s << "Add GPUs (from --gpus " << more << " some layout fits), use GPUs with more memory";
  } else {
    s << "Add GPUs (many more: memory per GPU falls roughly with their number), use GPUs with more memory";
  }
  s << ", or a shorter sequence";
  throw NothingFits(s.str());
}

}  // namespace

std::string_view prune_reason_key(PruneReason reason) {
  if (static_cast<int>(reason) < model::kLayoutRules) return model::layout_rules()[static_cast<std::size_t>(reason)].key;
  switch (reason) {
    case PruneReason::Redundant: return "redundant";
    case PruneReason::Memory: return "memory";
    default: break;
  }
  return "?";
}

std::string_view prune_reason_text(PruneReason reason) {
  if (static_cast<int>(reason) < model::kLayoutRules) return model::layout_rules()[static_cast<std::size_t>(reason)].text;
  switch (reason) {
    case PruneReason::Redundant:
      return "redundant: ZeRO > 0 with dp 1 (= ZeRO 0), GPipe with 1 micro-batch (= 1F1B), selective recompute of "
             "a flash attention core (= none)";
    case PruneReason::Memory: return "does not fit in GPU memory";
    default: break;
  }
  return "?";
}

std::string layout_summary(const Layout& l) {
  const bool interleaved = l.schedule() == Layout::INTERLEAVED_1F1B;
  const char* schedule = interleaved ? "interleaved" : l.schedule() == Layout::GPIPE ? "GPipe" : "1F1B";
  const char* recompute = l.recompute() == Layout::FULL        ? "full"
                          : l.recompute() == Layout::SELECTIVE ? "selective"
                                                               : "none";
  std::ostringstream s;
  s << "tp" << l.tp() << " pp" << l.pp() << " dp" << l.dp() << " v" << (interleaved ? l.virtual_stages() : 1) << " "
    << schedule << " mbs" << l.micro_batch_size() << " sp" << (l.sequence_parallel() && l.tp() > 1 ? 1 : 0)
    << " recompute " << recompute << " zero" << l.zero_stage();
  if (l.cp() > 1) s << " cp" << l.cp();
  if (l.ep() > 1) s << " ep" << l.ep();
  if (l.etp() > 1) s << " etp" << l.etp();
  if (l.moe_a2a_overlap()) s << " a2a-overlap";
  if (l.moe_dispatcher() == Layout::ALLGATHER) s << " allgather-dispatch";
  if (l.zero_stage() >= 3 && !l.reshard_after_forward()) s << " keep-gathered";
  if (l.tp_comm_overlap() && l.sequence_parallel() && l.tp() > 1) s << " tp-overlap";
  if (l.stage_layers_size() > 0) {
    s << " layers";
    for (int i = 0; i < l.stage_layers_size(); ++i) s << (i ? "," : " ") << l.stage_layers(i);
  } else {
    if (l.first_stage_layers() > 0) s << " first-stage " << l.first_stage_layers();
    if (l.last_stage_layers() > 0) s << " last-stage " << l.last_stage_layers();
    if (l.embedding_in_pipeline_split()) s << " emb-as-layer";
    if (l.loss_in_pipeline_split()) s << " loss-as-layer";
  }
  return s.str();
}

std::string layout_summary(const Scenario& sc) {
  return layout_summary(sc.layout()) + (sc.model().precision() == FP8 ? " fp8" : "");
}

Scenario layout_scenario(const PlanRequest& request, const Layout& layout) {
  Scenario sc = base_scenario(request);
  Layout& l = *sc.mutable_layout();
  apply(candidate_of(layout), request.model.num_layers(), l);
  // A layout given with its own partition (a scenario's) keeps it, whatever the search would split.
  if (model::has_partition_fields(layout)) {
    *l.mutable_stage_layers() = layout.stage_layers();
    l.set_first_stage_layers(layout.first_stage_layers());
    l.set_last_stage_layers(layout.last_stage_layers());
    l.set_embedding_in_pipeline_split(layout.embedding_in_pipeline_split());
    l.set_loss_in_pipeline_split(layout.loss_in_pipeline_split());
  }
  sc.set_name(model_label(request.model) + " " + layout_summary(sc));
  return sc;
}

std::optional<PruneReason> check_layout(const PlanRequest& request, const Layout& layout) {
  const Candidate c = candidate_of(layout);
  if (static_cast<long long>(c.tp) * c.cp * c.pp * c.dp != request.gpus)
    throw InputError("layout " + layout_summary(layout) + ": tp*cp*pp*dp is not " + std::to_string(request.gpus));
  if (auto reason = rules_of(request).structural(c)) return reason;
  if (!model::estimate_memory(layout_scenario(request, layout)).fits()) return PruneReason::Memory;
  return std::nullopt;
}

std::vector<Scenario> enumerate_layouts(const PlanRequest& request, PruneStats* stats_out) {
  const auto t0 = std::chrono::steady_clock::now();
  PruneStats local;
  PruneStats& stats = stats_out ? *stats_out : local;
  stats = PruneStats{};
  Scenario scratch = base_scenario(request);
  const std::string prefix = scratch.name() + " ";
  const Rules rules = rules_of(request);
  const Space space = space_of(request);
  stats.memory_capacity_bytes = scratch.cluster().gpu().hbm_gb() * 1e9;
  stats.smallest_memory_bytes = std::numeric_limits<double>::infinity();

  std::vector<Scenario> survivors;
  Layout& layout = *scratch.mutable_layout();
  constexpr Layout::Recompute kRecompute[] = {Layout::NO_RECOMPUTE, Layout::SELECTIVE, Layout::FULL};
  // ZeRO 0-3; ZeRO-3 with and without resharding after forward (FSDP2's reshard_after_forward).
  constexpr std::pair<int, bool> kSharding[] = {{0, true}, {1, true}, {2, true}, {3, true}, {3, false}};
  // TE's overlap keeps kTpOverlapCommSms SMs for its kernels: only on a GPU with more.
  const bool overlap_possible = scratch.cluster().gpu().sm_count() > model::kTpOverlapCommSms;
  // FP8 (Transformer Engine's recipe) beside BF16 where the GPU has FP8 tensor cores and a table for
  // them; a model already in FP8 stays in FP8.
  const Precision base_precision = request.model.precision();
  const GpuSpec& gpu = scratch.cluster().gpu();
  const bool fp8_possible = base_precision == BF16 && gpu.peak_fp8_tflops() > 0 && gpu.fp8_gemm_efficiency().efficiency_size() > 0;
  std::vector<bool> precisions{base_precision == FP8};
  if (fp8_possible) precisions.push_back(true);
  // Context parallelism: powers of two up to 16 that split each sequence into 2 cp chunks of at
  // least 512 tokens (shorter sequences gain nothing from it), with a fused attention kernel.
  const auto cps_of = [&](int tp) {
    std::vector<int> out{1};
    const long long seq = request.model.seq_length();
    if (request.model.attention_kernel() == ModelSpec::UNFUSED) return out;
    // Not modelled with multi-head latent or sliding-window attention (scenario validation refuses it).
    if (request.model.kv_lora_rank() > 0 || request.model.sliding_window() > 0) return out;
    for (int c = 2; c <= 16 && (request.gpus / tp) % c == 0; c *= 2)
      if (seq % (2 * c) == 0 && seq / (2 * c) >= 512 && (seq / c) % tp == 0) out.push_back(c);
    return out;
  };
  // Mixture of Experts: ep divides the experts and tp x cp x dp (Megatron's expert grid); Megatron
  // needs sequence parallelism with tp > 1; ZeRO-2/3 of MoE models is not modelled (0 and 1 only).
  const bool moe = request.model.num_experts() > 0;
  const auto eps_of = [&](long long stage_ranks) {
    std::vector<int> out;
    if (!moe) return std::vector<int>{1};
    for (int e : divisors(request.model.num_experts()))
      if (stage_ranks % e == 0) out.push_back(e);
    return out;
  };
  // Expert tensor parallelism: etp divides tp (Megatron's default etp is tp; experts split finer
  // than the dense layers are left out of the search), ep x etp the stage's ranks, and etp the
  // expert FFN; not with linear biases (Megatron asserts it).
  const auto etps_of = [&](int tp, int ep, long long stage_ranks) {
    std::vector<int> out{1};
    if (!moe || request.model.add_bias_linear()) return out;
    for (int e : divisors(tp))
      if (e > 1 && stage_ranks % (static_cast<long long>(ep) * e) == 0 && request.model.moe_ffn_hidden_size() % e == 0)
        out.push_back(e);
    return out;
  };
  // The all-to-all overlap where the request asks for it and the layout can run it (ep > 1, one
  // stage or the interleaved schedule, no full or per-op recompute; scenario validation's rules).
  const auto a2a_overlap_of = [&](int ep, int pp, Layout::Schedule schedule, Layout::Recompute recompute) {
    return request.fixed.moe_a2a_overlap() && ep > 1 && (pp == 1 || schedule == Layout::INTERLEAVED_1F1B) &&
           recompute != Layout::FULL &&
           !(recompute == Layout::SELECTIVE && request.fixed.selective_policy() == Layout::PER_OP);
  };
  // One layout: pruned by a rule, by memory, or kept.
  const auto consider = [&](const Candidate& c) {
    ++stats.enumerated;
    if (auto reason = rules.structural(c)) {
      ++stats.pruned[static_cast<std::size_t>(*reason)];
      return;
    }
    apply(c, request.model.num_layers(), layout);
    scratch.mutable_model()->set_precision(c.fp8 ? FP8 : base_precision);
    const model::MemoryEstimate memory = model::estimate_memory(scratch);
    if (!memory.fits()) {
      ++stats.pruned[static_cast<std::size_t>(PruneReason::Memory)];
      const double need = memory.peak().total();
      if (need < stats.smallest_memory_bytes) {
        stats.smallest_memory_bytes = need;
        stats.smallest_memory_layout = layout_summary(scratch);
      }
      return;
    }
    ++stats.survivors;
    Scenario& s = survivors.emplace_back(scratch);
    s.set_name(prefix + layout_summary(scratch));
  };
  for (int tp : space.tps) {
    for (int cp : cps_of(tp)) {
      for (int pp : divisors(request.gpus / (tp * cp))) {
        const int dp = request.gpus / (tp * cp * pp);
        for (const auto& [schedule, v] : space.schedules) {
          std::vector<Split> splits = splits_of(request.model.num_layers(), pp, v);
          if (splits.empty()) splits.push_back(Split::Even);  // at least as many stages as layers: pruned by rule
          for (int ep : eps_of(static_cast<long long>(tp) * cp * dp))
            for (int mbs : space.mbs)
              for (int sp = moe && tp > 1 ? 1 : 0; sp <= (tp > 1 ? 1 : 0); ++sp)
                for (Layout::Recompute recompute : kRecompute)
                  for (const auto& [zero, reshard] : kSharding) {
                    if (moe && zero >= 2) continue;
                    for (int overlap = 0; overlap <= (sp == 1 && overlap_possible ? 1 : 0); ++overlap)
                      for (Split split : splits)
                        for (const bool fp8 : precisions)
                          // Megatron's two token dispatchers where tokens move (ep > 1); the
                          // all-to-all overlap is the all-to-all dispatcher's. Expert tensor
                          // parallelism with the all-to-all dispatcher, without the overlap.
                          for (int etp : etps_of(tp, ep, static_cast<long long>(tp) * cp * dp))
                            for (int allgather = 0; allgather <= (ep > 1 && etp == 1 ? 1 : 0); ++allgather) {
                              Candidate c{tp, pp, dp, v, schedule, mbs, sp == 1, recompute, zero, reshard, overlap == 1,
                                          split, cp, fp8};
                              c.ep = ep;
                              c.etp = etp;
                              c.allgather = allgather == 1;
                              c.a2a_overlap = etp == 1 && !c.allgather && a2a_overlap_of(ep, pp, schedule, recompute);
                              consider(c);
                            }
                  }
        }
      }
    }
  }
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!std::isfinite(stats.smallest_memory_bytes)) stats.smallest_memory_bytes = 0;
  std::uint64_t structural = 0;
  for (int i = 0; i < kPruneReasons - 1; ++i) structural += stats.pruned[static_cast<std::size_t>(i)];
  if (structural == stats.enumerated) no_layout(request, rules, stats);
  if (survivors.empty()) nothing_fits(request, rules, scratch, stats);
  return survivors;
}

}  // namespace parallax::planner
