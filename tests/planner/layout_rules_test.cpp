// The layout rules table (model::layout_rules) is the one source of scenario validation's layout
// messages and of the planner's structural pruning: every rule is reachable from both, and the two
// agree on every layout of a sweep.
#include "parallax/model/layout_rules.h"
#include "parallax/model/presets.h"
#include "parallax/model/scenario.h"
#include "parallax/planner/plan.h"
#include "parallax/traces/io.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <set>

namespace parallax::planner {
namespace {

using model::LayoutRule;
using parallax::testing::scenarios_dir;

struct Case {
  const char* model;  // ModelSpec text
  int tp, pp, dp, v, mbs, gbs;
  bool sp;
  Layout::Schedule schedule;
  LayoutRule broken;
};

// One layout per rule on 8 GPUs, breaking that rule and none before it.
const Case kCases[] = {
    {"num_layers: 8 hidden_size: 768 num_heads: 12 seq_length: 256 vocab_size: 1024", 8, 1, 1, 1, 1, 16, false,
     Layout::ONE_F_ONE_B, LayoutRule::HeadsTp},
    {"num_layers: 8 hidden_size: 512 num_heads: 8 ffn_hidden_size: 2052 seq_length: 256 vocab_size: 1024", 8, 1, 1, 1,
     1, 16, false, Layout::ONE_F_ONE_B, LayoutRule::FfnTp},
    {"num_layers: 8 hidden_size: 512 num_heads: 8 seq_length: 260 vocab_size: 1024", 8, 1, 1, 1, 1, 16, true,
     Layout::ONE_F_ONE_B, LayoutRule::SeqTp},
    {"num_layers: 6 hidden_size: 512 num_heads: 8 seq_length: 256 vocab_size: 1024", 1, 4, 2, 1, 1, 16, false,
     Layout::ONE_F_ONE_B, LayoutRule::LayersPpV},
    {"num_layers: 8 hidden_size: 512 num_heads: 8 seq_length: 256 vocab_size: 1024", 1, 1, 8, 1, 1, 12, false,
     Layout::ONE_F_ONE_B, LayoutRule::BatchMbsDp},
    {"num_layers: 8 hidden_size: 512 num_heads: 8 seq_length: 256 vocab_size: 1024", 1, 2, 4, 2, 1, 12, false,
     Layout::INTERLEAVED_1F1B, LayoutRule::Schedule},
};

Layout layout_of(const Case& c) {
  Layout l;
  l.set_tp(c.tp);
  l.set_pp(c.pp);
  l.set_dp(c.dp);
  l.set_virtual_stages(c.v);
  l.set_micro_batch_size(c.mbs);
  l.set_global_batch_size(c.gbs);
  l.set_sequence_parallel(c.sp);
  l.set_schedule(c.schedule);
  return l;
}

ModelSpec model_of(const char* text) {
  ModelSpec m;
  traces::parse_text_or_json(text, "model", false, m);
  return m;
}

// The scenario loader's message for the layout, or "" when it validates.
std::string validation_error(const ModelSpec& m, const Layout& l) {
  Scenario sc;
  *sc.mutable_model() = m;
  sc.mutable_cluster()->set_preset("dgx-a100-80g");
  sc.mutable_cluster()->set_num_nodes(1);
  *sc.mutable_layout() = l;
  try {
    model::parse_scenario(traces::to_text(sc), "s.pbtxt", false, scenarios_dir());
    return "";
  } catch (const InputError& e) {
    return e.what();
  }
}

std::optional<PruneReason> planner_verdict(const ModelSpec& m, const Layout& l) {
  PlanRequest r;
  r.model = m;
  r.cluster = model::resolve_cluster("dgx-a100-80g", 8);
  r.gpus = 8;
  r.global_batch_size = l.global_batch_size();
  return check_layout(r, l);
}

TEST(LayoutRules, EveryRuleIsReachableFromValidationAndThePlanner) {
  std::set<LayoutRule> seen;
  for (const Case& c : kCases) {
    const ModelSpec m = model_of(c.model);
    const Layout l = layout_of(c);
    const auto facts = model::LayoutFacts::of(m);
    const auto shape = model::LayoutShape::of(l);
    ASSERT_EQ(model::first_broken_rule(facts, shape), c.broken) << c.model;
    // Validation: the table's message for the rule, on the table's field.
    const model::LayoutRuleViolation why = model::explain_broken_rule(c.broken, facts, shape);
    std::string field;
    for (const auto& p : why.field) field += (field.empty() ? "" : ".") + p;
    const std::string error = validation_error(m, l);
    EXPECT_NE(error.find(field + ": " + why.problem), std::string::npos) << error << "\nwanted: " << why.problem;
    // The planner: pruned for the same rule.
    const auto verdict = planner_verdict(m, l);
    ASSERT_TRUE(verdict.has_value()) << c.model;
    EXPECT_EQ(static_cast<int>(*verdict), static_cast<int>(c.broken));
    EXPECT_EQ(prune_reason_key(*verdict), model::layout_rules()[static_cast<std::size_t>(c.broken)].key);
    seen.insert(c.broken);
  }
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(model::kLayoutRules));
}

TEST(LayoutRules, MessagesAreTheValidationMessages) {
  // Spelled out once, so a change to the table's wording shows up here.
  const model::LayoutFacts facts{12, 3072, 256, 8};
  model::LayoutShape shape;
  shape.tp = 8;
  EXPECT_EQ(model::explain_broken_rule(LayoutRule::HeadsTp, facts, shape).problem,
            "num_heads 12 is not divisible by tp 8; valid tp: 1, 2, 3, 4, 6, 12");
  shape = {};
  shape.pp = 2;
  shape.dp = 4;
  shape.virtual_stages = 2;
  shape.global_batch_size = 12;
  shape.interleaved = true;
  const auto why = model::explain_broken_rule(LayoutRule::Schedule, facts, shape);
  EXPECT_EQ(why.field, (std::vector<std::string>{"layout", "global_batch_size"}));
  EXPECT_EQ(why.problem,
            "the interleaved schedule needs the number of micro-batches (3 = global_batch_size / (micro_batch_size * "
            "dp)) to be a multiple of pp 2");
}

TEST(LayoutRules, ValidationAndPlannerAgreeOnASweep) {
  const ModelSpec m = model_of("num_layers: 6 hidden_size: 768 num_heads: 12 seq_length: 250 vocab_size: 1024");
  int checked = 0, rejected = 0;
  for (int tp : {1, 2, 4, 8})
    for (int pp : {1, 2, 4, 8 / tp}) {
      if (8 % (tp * pp) != 0) continue;
      for (int v : {1, 2, 3})
        for (int mbs : {1, 2, 3})
          for (int gbs : {8, 12, 24})
            for (bool sp : {false, true}) {
              Case c{"", tp, pp, 8 / (tp * pp), v, mbs, gbs, sp,
                     v > 1 ? Layout::INTERLEAVED_1F1B : Layout::ONE_F_ONE_B, LayoutRule::HeadsTp};
              const Layout l = layout_of(c);
              const auto verdict = planner_verdict(m, l);
              const bool structural = verdict && static_cast<int>(*verdict) < model::kLayoutRules;
              const std::string error = validation_error(m, l);
              EXPECT_EQ(structural, !error.empty()) << layout_summary(l) << ": " << error;
              ++checked;
              rejected += structural;
            }
    }
  EXPECT_GT(checked, 200);
  EXPECT_GT(rejected, 0);
  EXPECT_LT(rejected, checked);
}

}  // namespace
}  // namespace parallax::planner
