#include "parallax/model/layout_rules.h"

#include <algorithm>
#include <array>
#include <numeric>
#include <vector>

namespace parallax::model {
namespace {

// No parallel degree exceeds the largest supported GPU count (2^20, model/src/scenario.cpp), so a
// suggestion never lists one that is larger.
constexpr std::int64_t kMaxDegree = std::int64_t{1} << 20;

std::int64_t micro_batches(const LayoutShape& l) { return l.global_batch_size / (l.micro_batch_size * l.dp); }

constexpr std::array<LayoutRuleEntry, kLayoutRules> kRules{{
    {LayoutRule::HeadsTp, "heads_tp", "num_heads not divisible by tp",
     [](const LayoutFacts& m, const LayoutShape& l) {
       return m.num_heads % l.tp != 0 || (m.num_query_groups > 0 && m.num_query_groups % l.tp != 0);
     }},
    {LayoutRule::FfnTp, "ffn_tp", "FFN size not divisible by tp",
     [](const LayoutFacts& m, const LayoutShape& l) { return m.ffn_size % l.tp != 0; }},
    {LayoutRule::SeqTp, "seq_tp", "sequence parallel: seq_length not divisible by tp",
     [](const LayoutFacts& m, const LayoutShape& l) { return l.sequence_parallel && m.seq_length % l.tp != 0; }},
    {LayoutRule::LayersPpV, "layers_pp_v", "num_layers not divisible by pp * v",
     [](const LayoutFacts& m, const LayoutShape& l) { return m.num_layers % (l.pp * l.virtual_stages) != 0; }},
    {LayoutRule::BatchMbsDp, "batch_mbs_dp", "global batch not divisible by micro-batch * dp",
     [](const LayoutFacts&, const LayoutShape& l) { return l.global_batch_size % (l.micro_batch_size * l.dp) != 0; }},
    {LayoutRule::Schedule, "interleaved", "interleaved needs pp >= 2 and micro-batches divisible by pp",
     [](const LayoutFacts&, const LayoutShape& l) {
       if (!l.interleaved) return l.virtual_stages != 1;
       return l.virtual_stages < 2 || l.pp < 2 || micro_batches(l) % l.pp != 0;
     }},
}};

}  // namespace

LayoutFacts LayoutFacts::of(const ModelSpec& m) {
  return LayoutFacts{m.num_heads(), m.ffn_hidden_size() ? m.ffn_hidden_size() : 4LL * m.hidden_size(),
                     m.seq_length(), m.num_layers(), m.num_query_groups()};
}

LayoutShape LayoutShape::of(const Layout& l) {
  return LayoutShape{l.tp(),
                     l.pp(),
                     l.dp(),
                     l.virtual_stages(),
                     l.micro_batch_size(),
                     l.global_batch_size(),
                     l.sequence_parallel(),
                     l.schedule() == Layout::INTERLEAVED_1F1B};
}

std::string divisors_text(std::int64_t n, std::int64_t at_most) {
  std::vector<std::int64_t> small, large;
  for (std::int64_t i = 1; i <= n / i; ++i) {
    if (n % i != 0) continue;
    if (i <= at_most) small.push_back(i);
    if (n / i != i && n / i <= at_most) large.push_back(n / i);
  }
  small.insert(small.end(), large.rbegin(), large.rend());
  constexpr std::size_t kShown = 6;  // at each end
  std::string out;
  for (std::size_t i = 0; i < small.size(); ++i) {
    if (small.size() > 2 * kShown + 1 && i == kShown) {
      out += ", ...";
      i = small.size() - kShown - 1;
      continue;
    }
    out += (out.empty() ? "" : ", ") + std::to_string(small[i]);
  }
  if (small.size() > 2 * kShown + 1) out += " (" + std::to_string(small.size()) + " in all)";
  return out;
}

std::span<const LayoutRuleEntry> layout_rules() { return kRules; }

std::optional<LayoutRule> first_broken_rule(const LayoutFacts& facts, const LayoutShape& shape, LayoutRule first,
                                            LayoutRule last) {
  for (int i = static_cast<int>(first); i <= static_cast<int>(last); ++i)
    if (kRules[static_cast<std::size_t>(i)].broken(facts, shape)) return kRules[static_cast<std::size_t>(i)].rule;
  return std::nullopt;
}

LayoutRuleViolation explain_broken_rule(LayoutRule rule, const LayoutFacts& m, const LayoutShape& l) {
  const auto str = [](std::int64_t n) { return std::to_string(n); };
  switch (rule) {
    case LayoutRule::HeadsTp:
      if (m.num_heads % l.tp != 0 || m.num_query_groups <= 0)
        return {{"layout", "tp"},
                "num_heads " + str(m.num_heads) + " is not divisible by tp " + str(l.tp) +
                    "; valid tp: " + divisors_text(m.num_heads, kMaxDegree)};
      // Megatron splits the key/value heads over the TP ranks too: each holds whole groups.
      return {{"layout", "tp"},
              "model.num_query_groups " + str(m.num_query_groups) + " is not divisible by tp " + str(l.tp) +
                  " (each TP rank holds whole key/value heads); valid tp: " +
                  divisors_text(std::gcd(m.num_heads, m.num_query_groups), kMaxDegree)};
    case LayoutRule::FfnTp:
      return {{"layout", "tp"}, "the FFN size " + str(m.ffn_size) + " is not divisible by tp " + str(l.tp)};
    case LayoutRule::SeqTp:
      return {{"layout", "sequence_parallel"},
              "seq_length " + str(m.seq_length) + " is not divisible by tp " + str(l.tp)};
    case LayoutRule::LayersPpV:
      return {{"layout", l.virtual_stages > 1 ? "virtual_stages" : "pp"},
              "num_layers " + str(m.num_layers) + " is not divisible by pp * virtual_stages = " +
                  str(l.pp) + " * " + str(l.virtual_stages) +
                  "; valid pp * virtual_stages: " + divisors_text(m.num_layers, kMaxDegree)};
    case LayoutRule::BatchMbsDp: {
      const std::int64_t per_step = l.micro_batch_size * l.dp;
      return {{"layout", "global_batch_size"},
              str(l.global_batch_size) + " is not divisible by micro_batch_size * dp = " + str(l.micro_batch_size) +
                  " * " + str(l.dp) + " = " + str(per_step) + "; use a multiple of " + str(per_step)};
    }
    case LayoutRule::Schedule:
      if (!l.interleaved) return {{"layout", "virtual_stages"}, "virtual_stages > 1 needs schedule: INTERLEAVED_1F1B"};
      if (l.virtual_stages < 2)
        return {{"layout", "virtual_stages"},
                "schedule INTERLEAVED_1F1B needs virtual_stages >= 2 (or use ONE_F_ONE_B)"};
      if (l.pp < 2) return {{"layout", "pp"}, "schedule INTERLEAVED_1F1B needs pp >= 2"};
      return {{"layout", "global_batch_size"},
              "the interleaved schedule needs the number of micro-batches (" + str(micro_batches(l)) +
                  " = global_batch_size / (micro_batch_size * dp)) to be a multiple of pp " + str(l.pp)};
  }
  return {{"layout"}, "unknown layout rule"};
}

}  // namespace parallax::model
