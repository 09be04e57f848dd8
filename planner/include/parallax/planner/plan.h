// The layout planner: every valid parallelism layout of a model on a number of GPUs, pruned by the
// divisibility constraints and by memory, ranked by the fast estimator (estimate.h), the best K
// simulated in detail with SimGrid and re-ranked by the simulated step time, and the winner explained.
#pragma once

#include "parallax/parallax.pb.h"
#include "parallax/planner/estimate.h"
#include "parallax/traces/io.h"  // InputError

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace parallax::planner {

struct PlanRequest {
  ModelSpec model;
  // Resolved (presets merged, see model::resolve_cluster) with num_nodes * gpus_per_node == gpus.
  ClusterSpec cluster;
  int gpus = 0;
  int global_batch_size = 0;
  // Else tp divides gpus_per_node, so that every TP group lies inside a node (tp 6 on 8-GPU nodes would
  // straddle two); with it, any divisor of gpus.
  bool allow_cross_node_tp = false;
  int max_micro_batch = 16;
  int max_virtual_stages = 8;        // interleaved schedule: v in 2 .. max_virtual_stages
  // Layout settings the planner does not search (overlap_grad_reduce, overlap_p2p, grad_bucket_mb,
  // grad_reduce_in_fp32), copied into every layout; the searched fields of it are ignored.
  Layout fixed;
  Options options;  // copied into every scenario (token_budget gives the time to train)
  // A layout to locate in the ranking and simulate next to the winner (a scenario's own layout).
  std::optional<Layout> reference;
};

// Why a layout was pruned: the first constraint it fails, in this order. The first six are
// model::LayoutRule (the rules of scenario validation), with the same values.
enum class PruneReason : int {
  HeadsTp,        // num_heads % tp != 0
  FfnTp,          // ffn_hidden_size % tp != 0
  SeqTp,          // sequence parallel with seq_length % tp != 0
  LayersPpV,      // num_layers % (pp * v) != 0
  BatchMbsDp,     // global_batch_size % (micro_batch_size * dp) != 0
  Interleaved,    // interleaved 1F1B with pp < 2 or micro-batches % pp != 0
  Redundant,      // the same layout as another: ZeRO stage > 0 with dp 1 (nothing to shard: ZeRO 0),
                  // GPipe with one micro-batch (1F1B), selective recompute of a flash attention core
                  // (nothing to re-run: no recompute)
  Memory,         // does not fit in GPU memory (model::estimate_memory)
};
inline constexpr int kPruneReasons = 8;
// "heads_tp", "ffn_tp", "seq_tp", "layers_pp_v", "batch_mbs_dp", "interleaved", "redundant", "memory"
std::string_view prune_reason_key(PruneReason reason);
// The rule in words: "num_heads not divisible by tp", ...
std::string_view prune_reason_text(PruneReason reason);

// No layout fits in GPU memory (a kind of bad input: tools exit 3 for it rather than 2).
class NothingFits : public InputError {
 public:
  using InputError::InputError;
};

struct PruneStats {
  std::uint64_t enumerated = 0;  // layouts in the search space
  std::uint64_t survivors = 0;   // pass every constraint and fit
  std::array<std::uint64_t, kPruneReasons> pruned{};  // by first failing reason, in PruneReason order
  std::uint64_t pruned_by(PruneReason r) const { return pruned[static_cast<std::size_t>(r)]; }
  double seconds = 0;            // wall time of the enumeration
  // Of the layouts that satisfy every constraint but memory, the one needing the least memory.
  double smallest_memory_bytes = 0;
  double memory_capacity_bytes = 0;
  std::string smallest_memory_layout;
};

// "tp8 pp16 dp8 v1 1F1B mbs1 sp0 recompute full zero0" (schedules: GPipe, 1F1B, interleaved).
std::string layout_summary(const Layout& layout);
// The same with " fp8" for a model trained in FP8.
std::string layout_summary(const Scenario& scenario);

// Every layout of the search space that passes the constraints and fits, as full validated scenarios
// (each passes model::parse_scenario's validation), in enumeration order: tp, pp, schedule and v,
// micro-batch size, sequence parallelism, recompute, ZeRO stage. Throws InputError naming what to
// change when no layout satisfies the divisibility constraints, NothingFits when none fits; `stats`
// (when given) is filled before either.
std::vector<Scenario> enumerate_layouts(const PlanRequest& request, PruneStats* stats = nullptr);

// The first constraint `layout` fails under `request`'s model, GPUs and batch, or nothing when it
// passes them all (memory included). Layouts outside the search space (mbs above max_micro_batch, tp
// across nodes without allow_cross_node_tp) are judged by the constraints alone.
std::optional<PruneReason> check_layout(const PlanRequest& request, const Layout& layout);

// The scenario the planner builds for `layout` (name, model, cluster, options).
Scenario layout_scenario(const PlanRequest& request, const Layout& layout);

// ---- planning ----

struct Progress {
  enum class Phase { Estimate, Simulate };
  Phase phase;
  std::size_t done = 0, total = 0;
};

// This process's place among the planner processes of an `mpirun -np P parallax plan` run.
struct Distribution {
  int rank = 0, size = 1;
  std::string launcher = "none";  // exec::Environment::launcher: "openmpi", "pmi", "slurm", "torchrun", "none"
  // Where the ranks exchange their results; must be shared by all ranks (a shared filesystem when
  // the ranks span nodes).
  std::filesystem::path scratch;
  double gather_timeout_s = 0;  // how long rank 0 waits for the others' results; 0: automatic
};
// From the launcher's environment (exec::detect_environment: OpenMPI, PMI/PMIx, Slurm, torchrun).
// The scratch directory: `scratch_dir` (when not empty) or /tmp, and below it a directory named by
// the launcher's job id (exec::Environment::job_id), else by the parent process id (mpirun's on one
// node).
Distribution detect_distribution(const std::string& scratch_dir = "");

// Thrown by plan() when PlanOptions::cancelled returned true; its simulation processes are killed and
// reaped first.
class Cancelled : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct PlanOptions {
  int top_k = 10;  // layouts simulated in detail
  int jobs = 1;    // concurrent simulation processes on this machine
  std::function<void(const Progress&)> progress;
  // Polled during estimation and at least every 100 ms while simulating (from the planning thread);
  // true stops the plan with Cancelled. For front ends that plan in a worker thread (the GUI).
  std::function<bool()> cancelled;
  Distribution distribution;  // single process unless detect_distribution() says otherwise
};

struct PlanRow {
  Scenario scenario;
  std::string layout;       // layout_summary
  int estimate_rank = 0;    // 1-based place in the estimated ranking
  StepEstimate estimate;
  bool simulated = false;
  Report report;            // the simulation's (when simulated)
  // From the simulation when simulated, else from the estimate and the memory model.
  double step_s = 0;
  double tflops_per_gpu = 0, mfu = 0;
  double memory_bytes = 0, capacity_bytes = 0, headroom_bytes = 0;
  // Fractions of the step, averaged over the GPUs.
  double compute_fraction = 0, bubble_fraction = 0, exposed_comm_fraction = 0, idle_fraction = 0;
  double recompute_fraction = 0;  // of the FLOPs computed, the recomputed share
  std::string bottleneck;         // the dominant cost in words
  double disagreement = 0;        // (simulated - estimated) / simulated
  std::string note;               // estimate and simulation more than 5% apart: which effect
  bool is_reference = false;      // the request's reference layout
};

struct PlanResult {
  PruneStats pruning;
  std::size_t estimated = 0;
  double estimate_seconds = 0, layouts_per_s = 0;
  // Every survivor by estimated step time: its layout summary and estimated step.
  std::vector<std::pair<std::string, double>> ranking;
  // The top K by estimate, and the reference layout when it is valid, ranked by simulated step time.
  std::vector<PlanRow> rows;
  std::string explanation;    // why rows[0] beats rows[1]
  double simulate_seconds = 0;
  int jobs = 1, ranks = 1;
  // The request's reference layout: where it ranks, and the row (simulated) when it is valid.
  bool has_reference = false;
  std::string reference_layout;
  std::optional<PruneReason> reference_pruned;  // why it is not among the survivors
  bool reference_outside_space = false;         // valid, but outside the searched space
  int reference_estimate_rank = 0;              // 0 when not among the survivors
  std::optional<PlanRow> reference;            // a copy of its row
  // False on MPI ranks other than 0: they simulated their share and wrote it for rank 0.
  bool is_root = true;
};

// Enumerates, estimates every survivor, simulates the top K (and the reference) in `jobs` processes
// at a time and re-ranks them. Throws InputError on bad input (see enumerate_layouts).
PlanResult plan(const PlanRequest& request, const PlanOptions& options = {});

}  // namespace parallax::planner
