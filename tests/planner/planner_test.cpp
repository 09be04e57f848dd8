// The layout planner: pruning counts checked by hand, bad inputs, the known-best layout of a case built
// so that the optimum is known, the scale-out protocol, and the CLI.
#include "parallax/model/presets.h"
#include "parallax/model/scenario.h"
#include "parallax/planner/plan.h"
#include "parallax/traces/io.h"
#include "test_support.h"

#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace parallax::planner {
namespace {

namespace fs = std::filesystem;
using parallax::testing::run_command;
using model::load_model;
using model::resolve_cluster;

PlanRequest request(const std::string& model_text, int gpus, int global_batch, const std::string& cluster = "dgx-a100-80g") {
  PlanRequest r;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(model_text, &r.model)) << model_text;
  r.gpus = gpus;
  r.global_batch_size = global_batch;
  r.cluster = resolve_cluster(cluster, gpus);
  return r;
}

// The small model of the brief: 8 layers, 8 heads (hidden 512, FFN 2048, seq 256), a few MB of weights.
constexpr const char* kSmall = "name: 'small' num_layers: 8 hidden_size: 512 num_heads: 8 seq_length: 256 vocab_size: 1024";

// ---- the search space counted from the rules, without the code under test ----

struct Counts {
  long enumerated = 0, heads = 0, ffn = 0, seq = 0, layers = 0, batch = 0, interleaved = 0, redundant = 0, rest = 0;
};

// Written from the rules: tp divides the GPUs and a node's GPUs (every TP group inside a node),
// pp divides gpus/tp, dp is what is left; schedules GPipe, 1F1B and interleaved with v = 2..8;
// micro-batch sizes are the divisors of the global batch up to 16; sequence parallel only with tp > 1,
// and with it TP overlap on or off (the A100 has more than 16 SMs); 3 recompute modes; ZeRO 0-3 and
// ZeRO-3 without resharding after forward; the layer split over the pp * v virtual stages: even when
// it divides, Megatron's embedding and loss slots when num_layers + 2 divides (at least 2 slots per
// virtual stage), else the balanced remainder when there are more layers than virtual stages; with
// none of these the layout counts once, under the layers rule. Each layout counts under the first
// rule it breaks, in the planner's documented order.
std::vector<int> split_kinds(int layers, int vs) {
  std::vector<int> out;  // 0 even, 1 embedding + loss, 2 balanced, -1 none
  if (layers % vs == 0) out.push_back(0);
  if (vs > 1 && (layers + 2) % vs == 0 && layers + 2 >= 2 * vs) out.push_back(1);
  if (out.empty() && layers > vs) out.push_back(2);
  if (out.empty()) out.push_back(-1);
  return out;
}

Counts count_by_rules(int gpus, int per_node, int heads, int ffn, int seq, int layers, int gbs) {
  Counts c;
  for (int tp = 1; tp <= gpus; ++tp) {
    if (gpus % tp || per_node % tp) continue;
    for (int pp = 1; pp <= gpus / tp; ++pp) {
      if ((gpus / tp) % pp) continue;
      const int dp = gpus / tp / pp;
      for (int schedule = 0; schedule < 9; ++schedule) {  // 0 GPipe, 1 1F1B, 2.. interleaved v = schedule
        const bool interleaved = schedule >= 2;
        const int v = interleaved ? schedule : 1;
        for (int mbs = 1; mbs <= 16; ++mbs) {
          if (gbs % mbs) continue;
          for (int sp = 0; sp <= (tp > 1 ? 1 : 0); ++sp)
            for (int recompute = 0; recompute < 3; ++recompute)
              for (int zero = 0; zero < 5; ++zero)  // 4: ZeRO-3 keeping the gathered parameters
                for (int overlap = 0; overlap <= sp; ++overlap)
                  for (int split : split_kinds(layers, pp * v)) {
                    ++c.enumerated;
                    if (heads % tp) {
                      ++c.heads;
                    } else if (ffn % tp) {
                      ++c.ffn;
                    } else if (sp && seq % tp) {
                      ++c.seq;
                    } else if (split < 0) {
                      ++c.layers;
                    } else if (gbs % (mbs * dp)) {
                      ++c.batch;
                    } else if (const int m = gbs / (mbs * dp); interleaved && (pp < 2 || m % pp)) {
                      ++c.interleaved;
                    } else if ((zero > 0 && dp == 1) || (schedule == 0 && m == 1)) {
                      ++c.redundant;
                    } else {
                      ++c.rest;
                    }
                  }
        }
      }
    }
  }
  return c;
}

void expect_stats(const PruneStats& s, const Counts& c, long memory) {
  EXPECT_EQ(s.enumerated, static_cast<std::uint64_t>(c.enumerated));
  EXPECT_EQ(s.pruned_by(PruneReason::HeadsTp), static_cast<std::uint64_t>(c.heads));
  EXPECT_EQ(s.pruned_by(PruneReason::FfnTp), static_cast<std::uint64_t>(c.ffn));
  EXPECT_EQ(s.pruned_by(PruneReason::SeqTp), static_cast<std::uint64_t>(c.seq));
  EXPECT_EQ(s.pruned_by(PruneReason::LayersPpV), static_cast<std::uint64_t>(c.layers));
  EXPECT_EQ(s.pruned_by(PruneReason::BatchMbsDp), static_cast<std::uint64_t>(c.batch));
  EXPECT_EQ(s.pruned_by(PruneReason::Interleaved), static_cast<std::uint64_t>(c.interleaved));
  EXPECT_EQ(s.pruned_by(PruneReason::Redundant), static_cast<std::uint64_t>(c.redundant));
  EXPECT_EQ(s.pruned_by(PruneReason::Memory), static_cast<std::uint64_t>(memory));
  EXPECT_EQ(s.survivors, static_cast<std::uint64_t>(c.rest - memory));
}

TEST(Pruning, HandCheckedCountsOnASmallCase) {
  // 8 layers, 8 heads, 8 GPUs of one DGX A100 node, global batch 16. By hand:
  //  (tp, pp) pairs: tp 1: pp 1,2,4,8; tp 2: pp 1,2,4; tp 4: pp 1,2; tp 8: pp 1 -> 10 pairs.
  //  Splits of 8 layers over vs = pp * v virtual stages: vs 2 has two (even; 8 + 2 = 10 slots of 5),
  //  every other vs one (even at 1, 4, 8; embedding + loss at 5; balanced at 3, 6, 7; none from 9 up,
  //  pruned by the layers rule). Schedule x split units per pp (GPipe, 1F1B, v = 2..8): pp 1: 1+1+2+6 =
  //  10, pp 2: 2+2+7 = 11, pp 4: 9, pp 8: 9.
  //  Per unit: 5 micro-batch sizes (1,2,4,8,16) x 3 recompute x 5 sharding (ZeRO 0-3, ZeRO-3 kept) x (1
  //  at tp 1, else sp off + sp on with overlap off / on = 3) -> 75 or 225.
  //  enumerated = 39 * 75 + 30 * 225 + 21 * 225 + 10 * 225 = 2925 + 6750 + 4725 + 2250 = 16650.
  //  The other counts follow the same rules as before on this larger space (count_by_rules): layers
  //  4425, batch 2370, interleaved 4995, redundant 2379, survivors 2481.
  const Counts rules = count_by_rules(8, 8, 8, 2048, 256, 8, 16);
  EXPECT_EQ(rules.enumerated, 16650);
  EXPECT_EQ(rules.layers, 4425);
  EXPECT_EQ(rules.batch, 2370);
  EXPECT_EQ(rules.interleaved, 4995);
  EXPECT_EQ(rules.redundant, 2379);
  EXPECT_EQ(rules.rest, 2481);

  PruneStats stats;
  const auto layouts = enumerate_layouts(request(kSmall, 8, 16), &stats);
  expect_stats(stats, rules, 0);
  ASSERT_EQ(layouts.size(), 2481u);

  // Every survivor is a full scenario the loader accepts, and they are all different.
  std::set<std::string> names;
  for (const auto& sc : layouts) {
    EXPECT_NO_THROW(model::parse_scenario(traces::to_text(sc), "survivor", false, parallax::testing::scenarios_dir()))
        << sc.name();
    names.insert(layout_summary(sc.layout()));
    EXPECT_FALSE(check_layout(request(kSmall, 8, 16), sc.layout()).has_value()) << sc.name();
  }
  EXPECT_EQ(names.size(), layouts.size());
  EXPECT_EQ(layout_summary(layouts.front().layout()), "tp1 pp1 dp8 v1 GPipe mbs1 sp0 recompute none zero0");
}

TEST(Pruning, EveryTensorParallelRuleCountsWhereItBitesFirst) {
  // 12 heads (tp 8 fails), FFN 3074 = 2 * 1537 (tp 4 fails), odd sequence 129 (sequence parallel fails at
  // tp 2). Whole tp slices by hand (the units of the small case): tp 8 has 10 * 225 = 2250 layouts, tp 4
  // 21 * 225 = 4725, tp 2 with sp on two thirds of its 30 * 225 = 6750: 4500.
  const auto r = request("num_layers: 8 hidden_size: 768 num_heads: 12 ffn_hidden_size: 3074 seq_length: 129 vocab_size: 1024",
                         8, 16);
  PruneStats stats;
  enumerate_layouts(r, &stats);
  const Counts rules = count_by_rules(8, 8, 12, 3074, 129, 8, 16);
  EXPECT_EQ(rules.heads, 2250);
  EXPECT_EQ(rules.ffn, 4725);
  EXPECT_EQ(rules.seq, 4500);
  expect_stats(stats, rules, 0);
  EXPECT_EQ(check_layout(r, [] {
              Layout l;
              l.set_tp(8);
              l.set_dp(1);
              return l;
            }()),
            PruneReason::HeadsTp);
}

TEST(Pruning, MemoryPrunesExactlyTheUnshardedLayoutsOfAWeightHeavyModel) {
  // 8 layers of hidden 8192 with a short sequence (64): 6.5e9 parameters and almost no activations
  // (under 0.5 GB in any layout). Weights, gradients and Adam take 16 B per parameter unsharded: 104 GB at
  // tp = pp = 1 without ZeRO, over the 85.9 GB (80 GiB) of an A100. Everything else fits: ZeRO 1 over dp 8 is 5.5
  // B/param = 36 GB, and tp*pp >= 2 halves the 104 GB to 52 GB (+ embedding, + 3 GB reserved). So memory
  // prunes exactly the tp 1 pp 1 dp 8 ZeRO-0 layouts the rules leave: 1F1B mbs 1, 1F1B mbs 2, GPipe mbs 1
  // (GPipe mbs 2 is one micro-batch: redundant), times 3 recompute modes = 9. The divisibility counts are
  // those of the small case (same layers, heads, GPUs and batch).
  const auto r = request("num_layers: 8 hidden_size: 8192 num_heads: 8 seq_length: 64 vocab_size: 8192", 8, 16);
  PruneStats stats;
  const auto layouts = enumerate_layouts(r, &stats);
  expect_stats(stats, count_by_rules(8, 8, 8, 4 * 8192, 64, 8, 16), 9);
  for (const auto& sc : layouts)
    EXPECT_FALSE(sc.layout().tp() * sc.layout().pp() == 1 && sc.layout().zero_stage() == 0) << sc.name();
  Layout unsharded;
  unsharded.set_dp(8);
  EXPECT_EQ(check_layout(r, unsharded), PruneReason::Memory);
}

// With a flash attention kernel, Megatron's selective recompute (the attention core) re-runs
// nothing: those layouts repeat the ones without recompute and are pruned as redundant. torchtitan's
// per-op policy re-runs the elementwise ops and the projection: searched.
TEST(Pruning, SelectiveRecomputeOfAFlashCoreIsRedundant) {
  const std::string flash = std::string(kSmall) + " attention_kernel: FLASH";
  PruneStats core, unfused;
  const auto with_flash = enumerate_layouts(request(flash, 8, 16), &core);
  enumerate_layouts(request(kSmall, 8, 16), &unfused);
  for (const auto& sc : with_flash) EXPECT_NE(sc.layout().recompute(), Layout::SELECTIVE) << sc.name();
  EXPECT_EQ(core.enumerated, unfused.enumerated);
  EXPECT_EQ(core.survivors, unfused.survivors / 3 * 2);  // none and full of none, selective, full
  PlanRequest per_op = request(flash, 8, 16);
  per_op.fixed.set_selective_policy(Layout::PER_OP);
  PruneStats stats;
  bool selective = false;
  for (const auto& sc : enumerate_layouts(per_op, &stats)) selective |= sc.layout().recompute() == Layout::SELECTIVE;
  EXPECT_TRUE(selective);
  EXPECT_EQ(stats.survivors, unfused.survivors);
}

// Context parallelism is searched for a fused attention over long sequences (cp a power of two up to
// 16 with at least 512 tokens per chunk: 2, 4, 8 at seq 8192), FP8 beside BF16 where the GPU has FP8
// tensor cores (the H100, not the A100): every layout twice on the H100.
TEST(Pruning, ContextParallelAndFp8AreSearchedWhereTheyApply) {
  const std::string llama =
      "name: 'l' num_layers: 8 hidden_size: 1024 num_heads: 8 ffn_hidden_size: 4096 seq_length: 8192 "
      "vocab_size: 32000 attention_kernel: FLASH activation: SWIGLU normalization: RMSNORM position_embedding: ROPE "
      "add_bias_linear: false dropout: false tied_embeddings: false";
  PruneStats h100, a100;
  const auto on_h100 = enumerate_layouts(request(llama, 16, 16, "dgx-h100"), &h100);
  const auto on_a100 = enumerate_layouts(request(llama, 16, 16, "dgx-a100-80g"), &a100);
  std::set<int> cps;
  bool fp8 = false, a100_fp8 = false;
  for (const auto& sc : on_h100) {
    cps.insert(sc.layout().cp());
    fp8 |= sc.model().precision() == FP8;
    EXPECT_EQ(sc.layout().tp() * sc.layout().cp() * sc.layout().pp() * sc.layout().dp(), 16) << sc.name();
  }
  for (const auto& sc : on_a100) a100_fp8 |= sc.model().precision() == FP8;
  EXPECT_EQ(cps, (std::set<int>{1, 2, 4, 8}));
  EXPECT_TRUE(fp8);
  EXPECT_FALSE(a100_fp8);
  EXPECT_EQ(h100.enumerated, 2 * a100.enumerated);
  // A cp layout's name says so, and an FP8 one's.
  bool named = false;
  for (const auto& sc : on_h100)
    named |= sc.layout().cp() == 4 && sc.model().precision() == FP8 && sc.name().find(" cp4") != std::string::npos &&
             sc.name().find(" fp8") != std::string::npos;
  EXPECT_TRUE(named);
}

// A layout given with its own partition (a scenario's, located in the ranking) keeps it: the
// planner neither drops nor replaces it by one of the splits it searches.
TEST(Pruning, AGivenPartitionIsKept) {
  const auto r = request(kSmall, 8, 16);
  Layout given;
  given.set_pp(2);
  given.set_dp(4);
  given.set_first_stage_layers(3);  // 3 + 5 of the 8 layers
  EXPECT_FALSE(check_layout(r, given).has_value());
  const Scenario sc = layout_scenario(r, given);
  EXPECT_EQ(sc.layout().first_stage_layers(), 3);
  EXPECT_EQ(sc.layout().stage_layers_size(), 0);
  EXPECT_NE(layout_summary(sc.layout()).find("first-stage 3"), std::string::npos) << layout_summary(sc.layout());
  EXPECT_NO_THROW(model::parse_scenario(traces::to_text(sc), "given", false, parallax::testing::scenarios_dir()));
}

// ---- bad inputs ----

// Mixture of Experts: ep is searched with the dense dimensions (each a divisor of the experts and of
// tp x cp x dp), under Megatron's rules (sequence parallelism with tp > 1) and the modelled ZeRO
// stages (0, 1); every survivor is a layout scenario validation accepts; expert shards make layouts
// fit that do not without them; the simulated winner is the estimate's pick within the estimator's
// agreement; and the table names the all-to-all where it dominates.
TEST(Plan, MixtureOfExpertsSearchesExpertParallelism) {
  const std::string moe = std::string(kSmall) +
                          " activation: SWIGLU attention_kernel: FLASH num_experts: 16 moe_top_k: 2 moe_ffn_hidden_size: 32768";
  PlanRequest r = request(moe, 16, 16, "dgx-h100");
  PruneStats stats;
  const auto layouts = enumerate_layouts(r, &stats);
  std::set<int> eps;
  bool allgather = false;
  for (const Scenario& sc : layouts) {
    const Layout& l = sc.layout();
    const int ep = std::max(1, l.ep());
    eps.insert(ep);
    // Both dispatchers where tokens move.
    allgather |= l.moe_dispatcher() == Layout::ALLGATHER;
    ASSERT_TRUE(ep > 1 || l.moe_dispatcher() == Layout::ALLTOALL) << sc.name();
    ASSERT_EQ(16 % ep, 0) << sc.name();
    ASSERT_EQ((l.tp() * l.cp() * l.dp()) % ep, 0) << sc.name();
    ASSERT_LE(l.zero_stage(), 1) << sc.name();
    ASSERT_TRUE(l.tp() == 1 || l.sequence_parallel()) << sc.name();
    // The loader accepts every survivor as it is.
    EXPECT_NO_THROW(model::parse_scenario(traces::to_text(sc), sc.name(), false, model::data_dir())) << sc.name();
  }
  EXPECT_EQ(eps, (std::set<int>{1, 2, 4, 8, 16}));
  EXPECT_TRUE(allgather);
  // With linear biases (kSmall's default) Megatron refuses expert tensor parallelism: etp 1 only.
  for (const Scenario& sc : layouts) ASSERT_EQ(std::max(1, sc.layout().etp()), 1) << sc.name();
  // Without them etp is searched among the divisors of tp, with the all-to-all dispatcher.
  {
    const auto unbiased = enumerate_layouts(request(moe + " add_bias_linear: false", 16, 16, "dgx-h100"));
    std::set<std::pair<int, int>> tp_etp;
    for (const Scenario& sc : unbiased) {
      const Layout& l = sc.layout();
      const int etp = std::max(1, l.etp());
      tp_etp.insert({l.tp(), etp});
      ASSERT_EQ(l.tp() % etp, 0) << sc.name();
      ASSERT_EQ((l.tp() * l.cp() * l.dp()) % (std::max(1, l.ep()) * etp), 0) << sc.name();
      ASSERT_TRUE(etp == 1 || (l.moe_dispatcher() == Layout::ALLTOALL && !l.moe_a2a_overlap())) << sc.name();
      if (etp > 1) {
        EXPECT_NE(sc.name().find(" etp" + std::to_string(etp)), std::string::npos) << sc.name();
        EXPECT_NO_THROW(model::parse_scenario(traces::to_text(sc), sc.name(), false, model::data_dir())) << sc.name();
      }
    }
    EXPECT_TRUE(tp_etp.count({2, 2}));
    EXPECT_TRUE(tp_etp.count({8, 4}));
    EXPECT_TRUE(tp_etp.count({8, 8}));
  }
  // 8 layers of 16 experts of 3 x 512 x 32768: 6.4 B parameters, about 100 GB of weights, gradients and
  // Adam states per GPU without ep at ZeRO 0: memory prunes layouts that expert shards would save.
  EXPECT_GT(stats.pruned[static_cast<std::size_t>(PruneReason::Memory)], 0u);

  PlanOptions options;
  options.top_k = 3;
  const PlanResult result = plan(r, options);
  ASSERT_FALSE(result.rows.empty());
  for (const PlanRow& row : result.rows) {
    ASSERT_TRUE(row.simulated);
    EXPECT_NEAR(row.estimate.step_s / row.step_s, 1.0, 0.10) << row.scenario.name();
  }

  // Behind 25 Gb/s NICs, ep over nodes: the all-to-all is named, with where its group lies.
  r = request("name: 'wide moe' num_layers: 4 hidden_size: 1024 num_heads: 16 seq_length: 2048 vocab_size: 8192 "
              "activation: SWIGLU attention_kernel: FLASH num_experts: 32 moe_top_k: 8 moe_ffn_hidden_size: 512",
              32, 32, "dgx-h100");
  r.cluster.set_nic_gbit_per_s(25);
  r.reference = Layout();
  r.reference->set_dp(32);
  r.reference->set_ep(16);
  r.reference->set_micro_batch_size(1);
  options.top_k = 1;
  const PlanResult slow = plan(r, options);
  ASSERT_TRUE(slow.reference);
  EXPECT_NE(slow.reference->bottleneck.find("expert all-to-all (ep 16 spans nodes)"), std::string::npos)
      << slow.reference->bottleneck;
}

TEST(BadInput, NoFactorisationSaysWhatToChange) {
  // 7 heads and 7 layers on 8 GPUs: tp must divide 7 (tp 1), pp must divide 8 and leave each stage a
  // layer (pp 1, 2, 4: 7 layers split unevenly), so dp = 8, 4 or 2, none of which divides the global
  // batch of 3.
  const auto r = request("name: 'odd' num_layers: 7 hidden_size: 448 num_heads: 7 seq_length: 128 vocab_size: 1024", 8, 3);
  PruneStats stats;
  try {
    enumerate_layouts(r, &stats);
    FAIL() << "expected InputError";
  } catch (const NothingFits&) {
    FAIL() << "not a memory problem";
  } catch (const InputError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("no layout of odd (7 layers, 7 heads"), std::string::npos) << m;
    EXPECT_NE(m.find("over 8 GPUs"), std::string::npos) << m;
    EXPECT_NE(m.find("tp must divide the 7 heads"), std::string::npos) << m;
    EXPECT_NE(m.find("(pp 1, 2, 4)"), std::string::npos) << m;
    EXPECT_NE(m.find("leaves dp 2, 4, 8"), std::string::npos) << m;
    EXPECT_NE(m.find("--global-batch 2 or 4"), std::string::npos) << m;  // the fix: a multiple of 2
    EXPECT_NE(m.find("--gpus 4"), std::string::npos) << m;  // or 4 GPUs (pp 4 dp 1 divides 3)
  }
  EXPECT_EQ(stats.survivors, 0u);
  EXPECT_EQ(stats.pruned_by(PruneReason::BatchMbsDp) + stats.pruned_by(PruneReason::HeadsTp) +
                stats.pruned_by(PruneReason::LayersPpV) + stats.pruned_by(PruneReason::FfnTp),
            stats.enumerated);
}

TEST(BadInput, NothingFitsNamesTheSmallestLayoutAndTheFix) {
  // GPT-3 175B on 8 A100s: even ZeRO-3 over all 8 leaves 175e9 * 16 B / 8 = 350 GB per GPU.
  auto r = request("", 8, 8);
  r.model = load_model("gpt3-175b");
  PruneStats stats;
  try {
    enumerate_layouts(r, &stats);
    FAIL() << "expected NothingFits";
  } catch (const NothingFits& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("nothing fits in 85.9 GB (80.0 GiB)"), std::string::npos) << m;
    EXPECT_NE(m.find("the smallest needs"), std::string::npos) << m;
    EXPECT_NE(m.find("GiB per GPU (tp"), std::string::npos) << m;  // and names it
    // The fix, checked: 40 = 8 * 329 GiB / 80 GiB rounded up to nodes, and it fits: tp 8 pp 5 dp 1
    // with the 96 layers split 19-20 per stage (175e9 * 16 B / 40 = 70 GB = 65 GiB, plus the
    // embedding, full-recompute activations and 3 GB reserved: under 80 GiB). With even splits only,
    // 40 did not factor and the answer was 48.
    EXPECT_NE(m.find("Add GPUs (from --gpus 40 some layout fits)"), std::string::npos) << m;
  }
  EXPECT_EQ(stats.survivors, 0u);
  EXPECT_GT(stats.pruned_by(PruneReason::Memory), 0u);
  EXPECT_GT(stats.smallest_memory_bytes, 300e9);
}

TEST(BadInput, ClusterAndModelNames) {
  EXPECT_THROW(resolve_cluster("dgx-a100-80g", 12), InputError);  // not whole nodes
  try {
    resolve_cluster("dgx-a100-80g", 12);
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("e.g. 8, 16"), std::string::npos) << e.what();
  }
  EXPECT_EQ(resolve_cluster("dgx-a100-80g", 4).gpus_per_node(), 4);  // part of a node
  EXPECT_EQ(resolve_cluster("dgx-a100-80g", 64).num_nodes(), 8);
  try {
    load_model("gpt-9000b");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("gpt3-175b"), std::string::npos) << e.what();
  }
  // Every bundled model loads and matches its row of validation/public.tsv where it has one.
  for (const auto& name : model::bundled_presets(model::PresetKind::Model)) EXPECT_GT(load_model(name).num_layers(), 0) << name;
  EXPECT_EQ(load_model("gpt-1t").num_heads(), 160);
  EXPECT_EQ(load_model("gpt-22b").hidden_size(), 6144);
}

// ---- the known best ----

TEST(Plan, FindsTheKnownBestLayoutBehindASlowNic) {
  // Two DGX A100 nodes joined by a 1 Gbit/s NIC per GPU (~0.115 GB/s after efficiency), a 110M-parameter
  // model. Without cross-node TP, every pp 1 layout has tp*dp = 16 > 8, so its data-parallel groups
  // span both nodes: the gradient reduction pushes at least the gradients of 1/8 of the model (~27 MB at
  // tp 8, more at lower tp) through each NIC, >= 0.2 s, while a step's compute is a few ms. With pp >= 2
  // and tp*dp <= 8 every TP and DP group sits inside a node and only pipeline activations cross:
  // s*b*h*2 B = 1 MB per micro-batch and direction, 2 micro-batches per pipeline at dp 8 -> ~4 MB, ~40 ms.
  // So the optimum, by construction, keeps tp*dp within a node and puts the pipeline across the NIC.
  auto r = request("name: 'slow-nic' num_layers: 8 hidden_size: 1024 num_heads: 16 seq_length: 512 vocab_size: 8192",
                   16, 16);
  r.cluster.set_nic_gbit_per_s(1);
  PlanOptions options;
  options.top_k = 3;
  options.jobs = 2;
  const PlanResult res = plan(r, options);
  ASSERT_EQ(res.rows.size(), 3u);
  for (const auto& row : res.rows) {
    EXPECT_TRUE(row.simulated) << row.note;
    EXPECT_GE(row.scenario.layout().pp(), 2) << row.layout;
  }
  const Layout& best = res.rows[0].scenario.layout();
  EXPECT_LE(best.tp() * best.dp(), 8) << res.rows[0].layout;
  // Ranked by simulated step time.
  EXPECT_LE(res.rows[0].step_s, res.rows[1].step_s);
  EXPECT_LE(res.rows[1].step_s, res.rows[2].step_s);
  // The best pp 1 layout is far behind (its gradients cross the slow NIC).
  double best_pp1 = 0;
  for (const auto& [layout, step] : res.ranking)
    if (layout.find(" pp1 ") != std::string::npos) {
      best_pp1 = step;
      break;
    }
  EXPECT_GT(best_pp1, 2 * res.rows[0].step_s);
  EXPECT_NE(res.explanation.find("beats the runner-up"), std::string::npos) << res.explanation;
  EXPECT_FALSE(res.rows[0].bottleneck.empty());
  EXPECT_GT(res.layouts_per_s, 0);
  EXPECT_EQ(res.estimated, res.pruning.survivors);
}

TEST(Plan, LocatesAReferenceLayoutAndExplainsTheWinner) {
  auto r = request(kSmall, 8, 16);
  Layout reference;
  reference.set_tp(2);
  reference.set_pp(2);
  reference.set_dp(2);
  reference.set_micro_batch_size(1);
  r.reference = reference;
  PlanOptions options;
  options.top_k = 2;
  const PlanResult res = plan(r, options);
  EXPECT_GT(res.reference_estimate_rank, 0);
  // The top 2 and the reference (unless it is one of them), ranked together by simulated step time.
  ASSERT_EQ(res.rows.size(), res.reference_estimate_rank <= 2 ? 2u : 3u);
  int references = 0;
  for (const auto& row : res.rows) references += row.is_reference;
  EXPECT_EQ(references, 1);
  ASSERT_TRUE(res.reference.has_value());
  EXPECT_TRUE(res.reference->simulated);
  EXPECT_EQ(res.reference->layout, "tp2 pp2 dp2 v1 1F1B mbs1 sp0 recompute none zero0");
  EXPECT_GE(res.reference->step_s, res.rows[0].step_s * 0.95);
  for (const char* word : {"beats the runner-up", "per step", "Memory per GPU", "headroom"})
    EXPECT_NE(res.explanation.find(word), std::string::npos) << word << ": " << res.explanation;
}

// ---- scale-out: the protocol of `mpirun -np 2 parallax plan`, both ranks in this process ----

TEST(ScaleOut, RanksMeetInTheScratchDirectory) {
  const auto r = request(kSmall, 8, 16);
  const testing::TempDir dir;
  const fs::path scratch = dir / "scratch";
  PlanOptions options;
  options.top_k = 3;
  options.distribution.size = 2;
  options.distribution.scratch = scratch;
  options.distribution.rank = 1;
  const PlanResult rank1 = plan(r, options);  // simulates entry 1 and leaves it for rank 0
  EXPECT_FALSE(rank1.is_root);
  int parts = 0;
  for (const auto& entry : fs::directory_iterator(scratch)) {
    EXPECT_EQ(entry.path().filename().string().rfind("part-1-", 0), 0u) << entry.path();  // entry 1 only
    ++parts;
  }
  EXPECT_EQ(parts, 1);
  options.distribution.rank = 0;
  const PlanResult rank0 = plan(r, options);  // simulates entries 0 and 2, gathers 1
  ASSERT_TRUE(rank0.is_root);
  ASSERT_EQ(rank0.rows.size(), 3u);
  EXPECT_FALSE(fs::exists(scratch)) << "rank 0 cleans up";
  PlanOptions single;
  single.top_k = 3;
  const PlanResult alone = plan(r, single);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(rank0.rows[i].layout, alone.rows[i].layout);
    EXPECT_DOUBLE_EQ(rank0.rows[i].step_s, alone.rows[i].step_s);
  }
}

TEST(ScaleOut, RankZeroGivesUpWithAClearMessage) {
  const auto r = request(kSmall, 8, 16);
  PlanOptions options;
  options.top_k = 2;
  options.distribution.size = 2;
  const testing::TempDir dir;
  options.distribution.scratch = dir / "scratch";
  options.distribution.gather_timeout_s = 0.5;
  try {
    plan(r, options);
    FAIL() << "expected a timeout";
  } catch (const InputError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("rank 0 waited"), std::string::npos) << m;
    EXPECT_NE(m.find("/part-1-"), std::string::npos) << m;
    EXPECT_NE(m.find(".pb from rank 1"), std::string::npos) << m;
    EXPECT_NE(m.find("--scratch"), std::string::npos) << m;
  }
}

TEST(ScaleOut, DistributionFromTheLauncher) {
  ::setenv("OMPI_COMM_WORLD_RANK", "1", 1);
  ::setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
  ::setenv("OMPI_MCA_ess_base_jobid", "1234", 1);
  const Distribution d = detect_distribution("/shared/scratch");
  EXPECT_EQ(d.rank, 1);
  EXPECT_EQ(d.size, 4);
  EXPECT_EQ(d.launcher, "openmpi");
  EXPECT_EQ(d.scratch, fs::path("/shared/scratch/parallax-plan-1234"));
  ::unsetenv("OMPI_COMM_WORLD_RANK");
  ::unsetenv("OMPI_COMM_WORLD_SIZE");
  ::unsetenv("OMPI_MCA_ess_base_jobid");
  EXPECT_EQ(detect_distribution().size, 1);
}

// ---- the command ----

std::string cli() { return PARALLAX_CLI; }

TEST(PlanCli, JsonAndCsvHaveTheDocumentedKeys) {
  const testing::TempDir dir;
  const fs::path csv = dir / "plan.csv";
  const auto r = run_command(cli() + " plan gpt2-1.5b --gpus 8 --cluster dgx-a100-80g --global-batch 64 --top 3 --json --csv " +
                             csv.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "") << "no progress bar when stderr is not a terminal";
  for (const char* key : {"\"pruning\"", "\"enumerated\"", "\"survivors\"", "\"heads_tp\"", "\"memory\"",
                          "\"layouts_per_s\"", "\"rows\"", "\"rank\": 3", "\"layout\"", "\"estimated_step_s\"",
                          "\"simulated_step_s\"", "\"tflops_per_gpu\"", "\"mfu\"", "\"memory_per_gpu_bytes\"",
                          "\"headroom_bytes\"", "\"bubble_pct\"", "\"exposed_comm_pct\"", "\"bottleneck\"",
                          "\"winner\"", "\"explanation\""})
    EXPECT_NE(r.out.find(key), std::string::npos) << key;
  EXPECT_EQ(r.out.find("\"rank\": 4"), std::string::npos);
  std::ifstream in(csv);
  std::string line;
  int lines = 0;
  std::getline(in, line);
  EXPECT_EQ(line.rfind("rank,estimate_rank,layout,tp,pp,dp", 0), 0u) << line;
  while (std::getline(in, line)) ++lines;
  EXPECT_EQ(lines, 3);
}

TEST(PlanCli, TextOutputAndExitCodes) {
  auto r = run_command(cli() + " plan gpt2-1.5b --gpus 8 --cluster dgx-a100-80g --global-batch 64 --top 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* text : {"layouts enumerated", "pruned: num_heads not divisible by tp", "layouts/s", "TFLOP/s",
                           "memory/GPU (headroom)", "winner", "beats the runner-up"})
    EXPECT_NE(r.out.find(text), std::string::npos) << text << "\n" << r.out;
  r = run_command(cli() + " plan gpt3-175b --gpus 8 --cluster dgx-a100-80g --global-batch 8");
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("nothing fits"), std::string::npos) << r.err;
  r = run_command(cli() + " plan gpt2-1.5b --gpus 8 --cluster dgx-a100-80g");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--global-batch"), std::string::npos) << r.err;
  r = run_command(cli() + " plan gpt2-1.5b --gpus 12 --cluster dgx-a100-80g --global-batch 64");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("not a whole number"), std::string::npos) << r.err;
  r = run_command(cli() + " plan --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("gpt-530b"), std::string::npos);
}

TEST(PlanCli, AScenarioFileIsItsOwnReference) {
  const testing::TempDir dir;
  const fs::path path = dir / "scenario.pbtxt";
  std::ofstream(path) << parallax::testing::small_scenario_text("tp: 2 pp: 2 dp: 2 global_batch_size: 16");
  const auto r = run_command(cli() + " plan " + path.string() + " --top 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"reference\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"speedup_of_pick\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"gpus\": 8"), std::string::npos) << r.out;
}

double json_number(const std::string& json, const std::string& key) {
  const auto at = json.find("\"" + key + "\": ");
  if (at == std::string::npos) return -1;
  return std::stod(json.substr(at + key.size() + 4));
}

TEST(PlanCli, AScenarioOnAnotherClusterPresetKeepsItsLayoutAsReference) {
  const testing::TempDir dir;
  const fs::path path = dir / "scenario.pbtxt";
  std::ofstream(path) << parallax::testing::small_scenario_text("tp: 2 pp: 2 dp: 2 global_batch_size: 16");
  const auto r = run_command(cli() + " plan " + path.string() + " --cluster dgx-h100 --top 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The top-level "reference" object (only written when the request has a reference layout).
  EXPECT_NE(r.out.find("\"outside_search_space\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"reference\": true"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"layout\": \"tp2 pp2 dp2"), std::string::npos) << r.out;
}

TEST(PlanCli, TableRanksEachPublishedLayout) {
  // The published layout of row K1 (Korthikanti et al.: 22B, tp8, full recompute) is located among
  // the survivors and simulated as the reference: its step equals `parallax validate`'s prediction.
  const auto table = (parallax::testing::source_dir() / "validation" / "public.tsv").string();
  const auto r = run_command(cli() + " plan --table " + table + " --only K1 --top 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"published_layout\": \"tp8 pp1 dp1 v1 1F1B mbs4 sp0 recompute full zero0\""), std::string::npos)
      << r.out;
  EXPECT_GE(json_number(r.out, "published_estimate_rank"), 1) << r.out;
  const double published = json_number(r.out, "published_step_s"), pick = json_number(r.out, "pick_step_s");
  ASSERT_GT(published, 0) << r.out;
  EXPECT_NEAR(json_number(r.out, "speedup_of_pick"), published / pick, 1e-9);
  const auto v = run_command(cli() + " validate " + table + " --only K1 --json");
  ASSERT_EQ(v.exit_code, 0) << v.err;
  EXPECT_NEAR(published / json_number(v.out, "predicted_iter_s"), 1.0, 1e-9) << v.out;

  const auto text = run_command(cli() + " plan --table " + table + " --only K1,N1 --top 1");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  for (const char* s : {"published layout", "parallax's pick", "speed-up", "K1", "N1", "2 rows:"})
    EXPECT_NE(text.out.find(s), std::string::npos) << s << "\n" << text.out;

  auto bad = run_command(cli() + " plan --table " + table + " --only NOPE");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("matches --only"), std::string::npos) << bad.err;
  bad = run_command(cli() + " plan gpt2-1.5b --table " + table);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("not both"), std::string::npos) << bad.err;
}

TEST(PlanCli, MpirunSpreadsTheSimulations) {
  const std::string env =
      "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 ";
  const auto r = run_command(env + "mpirun --oversubscribe -np 2 " + cli() +
                             " plan gpt2-1.5b --gpus 8 --cluster dgx-a100-80g --global-batch 64 --top 3 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"ranks\": 2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"rank\": 3"), std::string::npos) << r.out;
  // One report: rank 1 prints nothing.
  EXPECT_EQ(r.out.find("\"pruning\""), r.out.rfind("\"pruning\"")) << r.out;
}

}  // namespace
}  // namespace parallax::planner
