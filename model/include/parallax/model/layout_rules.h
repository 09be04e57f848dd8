// The divisibility and schedule rules a parallel layout must satisfy for a model and a batch, as one
// table: scenario validation reports the first broken rule with its message, the planner prunes
// layouts by the same predicates, so the two cannot disagree.
#pragma once

#include "parallax/parallax.pb.h"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace parallax::model {

// What the rules read of the model.
struct LayoutFacts {
  std::int64_t num_heads = 1, ffn_size = 1, seq_length = 1, num_layers = 1;
  std::int64_t num_query_groups = 0;  // key/value heads; 0: num_heads
  static LayoutFacts of(const ModelSpec& model);  // ffn_size: ffn_hidden_size, else 4 * hidden_size
};

// What the rules read of the layout (all at least 1), as written: virtual_stages is taken even when
// the schedule is not interleaved (the Schedule rule rejects that).
struct LayoutShape {
  std::int64_t tp = 1, pp = 1, dp = 1, virtual_stages = 1, micro_batch_size = 1, global_batch_size = 1;
  bool sequence_parallel = false, interleaved = false;
  static LayoutShape of(const Layout& layout);
};

// In the order they are checked; the planner's PruneReason starts with the same values.
enum class LayoutRule : int {
  HeadsTp,     // num_heads % tp != 0, or num_query_groups % tp != 0 (Megatron splits the KV heads;
               // the planner counts both as "num_heads not divisible by tp")
  FfnTp,       // FFN size % tp != 0
  SeqTp,       // sequence parallel with seq_length % tp != 0
  LayersPpV,   // num_layers % (pp * virtual_stages) != 0
  BatchMbsDp,  // global_batch_size % (micro_batch_size * dp) != 0
  Schedule,    // interleaved 1F1B with virtual_stages < 2, pp < 2 or micro-batches % pp != 0; or
               // virtual_stages > 1 without it
};
inline constexpr int kLayoutRules = 6;

struct LayoutRuleEntry {
  LayoutRule rule;
  std::string_view key;   // "heads_tp", ...
  std::string_view text;  // "num_heads not divisible by tp", ...
  bool (*broken)(const LayoutFacts&, const LayoutShape&);
};
// The table, in LayoutRule order.
std::span<const LayoutRuleEntry> layout_rules();

// The first rule in [first, last] that the layout breaks.
std::optional<LayoutRule> first_broken_rule(const LayoutFacts& facts, const LayoutShape& shape,
                                            LayoutRule first = LayoutRule::HeadsTp,
                                            LayoutRule last = LayoutRule::Schedule);

// Why a broken rule is broken, for a scenario: the field to change (a path from the Scenario root,
// e.g. {"layout", "tp"}) and the problem with its fix ("num_heads 12 is not divisible by tp 8;
// valid tp: 1, 2, 3, 4, 6, 12").
struct LayoutRuleViolation {
  std::vector<std::string> field;
  std::string problem;
};
LayoutRuleViolation explain_broken_rule(LayoutRule rule, const LayoutFacts& facts, const LayoutShape& shape);

// The divisors of n (n >= 1) up to `at_most`, ascending, as a suggestion for a message: "1, 2, 3,
// 6". Found in O(sqrt n) steps, since n comes from a file and may be near 2^31; a long list keeps
// its first and last few ("1, 2, 4, 8, ..., 512, 1024 (24 in all)").
std::string divisors_text(std::int64_t n, std::int64_t at_most);

}  // namespace parallax::model
