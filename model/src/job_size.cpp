#include "parallax/model/job_size.h"

#include "parallax/model/job_graph.h"
#include "parallax/model/layer.h"
#include "parallax/model/memory_model.h"
#include "parallax/model/parameters.h"
#include "parallax/model/scenario.h"
#include "parallax/model/stage_partition.h"
#include "parallax/traces/io.h"

#include <algorithm>
#include <limits>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace parallax::model {

namespace {

// Counts saturate here: an unvalidated scenario may describe more than 2^64 tasks.
constexpr double kSaturate = 1.8e19;

// The scenario's numbers as dims() reads them, each clamped to at least 1 so that an unvalidated
// scenario cannot divide by zero (a validated one is unchanged: validation requires all of them
// to be at least 1).
Dims clamped_dims(const Scenario& sc) {
  const ModelSpec& m = sc.model();
  const Layout& l = sc.layout();
  auto at_least_1 = [](std::int64_t v) { return std::max<std::int64_t>(1, v); };
  Dims d{};
  d.L = at_least_1(m.num_layers());
  d.h = at_least_1(m.hidden_size());
  d.a = at_least_1(m.num_heads());
  d.f = m.ffn_hidden_size() > 0 ? m.ffn_hidden_size() : 4 * d.h;
  d.s = at_least_1(m.seq_length());
  d.V = at_least_1(m.vocab_size());
  d.b = at_least_1(l.micro_batch_size());
  d.B = at_least_1(l.global_batch_size());
  d.t = at_least_1(l.tp());
  d.p = at_least_1(l.pp());
  d.d = at_least_1(l.dp());
  d.v = l.schedule() == Layout::INTERLEAVED_1F1B ? at_least_1(l.virtual_stages()) : 1;
  d.m = at_least_1(d.B / (d.b * d.d));
  d.e = m.precision() == FP32 ? 4 : 2;  // FP8 training keeps BF16 elements
  // Saturating: the fields are not validated yet here, and three 31-bit sides overflow 64 bits.
  const auto saturating_mul = [](std::int64_t a, std::int64_t b) {
    std::int64_t out = 0;
    return __builtin_mul_overflow(a, b, &out) ? std::numeric_limits<std::int64_t>::max() : out;
  };
  d.sp = l.sequence_parallel() && d.t > 1;
  set_layer_shape(d, m, l);  // sets cp (at least 1)
  d.gpus = saturating_mul(saturating_mul(saturating_mul(d.t, d.p), d.d), d.c);
  d.hd = std::max<std::int64_t>(1, d.hd);
  return d;
}

// Layers of each virtual stage: the layout's StagePartition when it is a valid uneven one, else the
// even share (at least 1: an unvalidated scenario is still counted).
struct ChunkLayers {
  std::optional<StagePartition> partition;
  std::int64_t even_share = 1;
  ChunkLayers(const Scenario& sc, const Dims& d) : even_share(std::max<std::int64_t>(1, d.L / (d.p * d.v))) {
    if (!has_partition_fields(sc.layout())) return;
    partition = try_stage_partition(sc.model(), sc.layout());
    if (partition && (partition->even() || partition->pp() != d.p || partition->chunks() != d.v)) partition.reset();
  }
  std::int64_t operator()(std::int64_t vs) const { return partition ? partition->layers(vs) : even_share; }
  std::int64_t first(std::int64_t vs) const { return partition ? partition->first_layer(vs) : vs * even_share; }
  std::int64_t on_stage(const Dims& d, std::int64_t stage) const {
    return partition ? partition->stage_layers(stage) : even_share * d.v;
  }
};

// Gradient buckets of one stage, counted as Builder::make_buckets cuts them: per model chunk, its
// items in backward order (output layer, layers, embedding), skipping those without parameters,
// a bucket closed as soon as it holds `capacity` parameters (a MoE layer's dense ones). `with_moe`:
// those holding a Mixture-of-Experts layer, whose routed experts are reduced on their own.
struct BucketCount {
  std::uint64_t buckets = 0, with_moe = 0;
};
BucketCount bucket_count(const Dims& d, const ChunkLayers& chunk_layers, bool tied, double capacity, std::int64_t stage,
                         bool moe) {
  // Validation allows at most 32767 layers; more is an unvalidated scenario, bounded by one bucket
  // per item rather than walked.
  const std::int64_t on_stage = chunk_layers.on_stage(d, stage);
  if (on_stage > 65536) return {static_cast<std::uint64_t>(on_stage + 2), static_cast<std::uint64_t>(on_stage + 2)};
  const double dense_layer = layer_parameters(d).local();
  const double moe_layer = moe ? layer_parameters(d, true).dense() : dense_layer;
  BucketCount count;
  for (std::int64_t c = 0; c < d.v; ++c) {
    const std::int64_t vs = c * d.p + stage;
    double current = 0;
    bool open = false, has_moe = false;
    auto item = [&](double params, bool moe_item) {
      if (params <= 0) return;
      open = true;
      has_moe = has_moe || moe_item;
      current += params;
      if (current >= capacity) {
        ++count.buckets;
        if (has_moe) ++count.with_moe;
        current = 0;
        open = has_moe = false;
      }
    };
    if (vs == d.p * d.v - 1) {
      const ParameterShard output = output_parameters(d, tied);  // with the MTP modules
      item(output.dense(), moe && output.expert > 0);
    }
    const std::int64_t first = chunk_layers.first(vs);
    for (std::int64_t l = first + chunk_layers(vs) - 1; l >= first; --l) {
      const bool moe_item = moe && is_moe_layer(d, l);
      item(moe_item ? moe_layer : dense_layer, moe_item);
    }
    if (vs == 0) item(embedding_parameters(d).local(), false);
    if (open) {
      ++count.buckets;
      if (has_moe) ++count.with_moe;
    }
  }
  return count;
}

}  // namespace

// Tasks: the builder's emission, counted. Every rank of a stage emits the same tasks (tp and dp
// coordinates only change peers), and each of its chunk-forwards and chunk-backwards emits a fixed
// number of tasks whatever the micro-batch, so a stage's count is m times a sum over its chunks
// plus its per-step gradient and optimizer tasks. tests/hardening/bounds_test.cpp checks it equals
// JobGraph::num_tasks() over layouts that exercise every branch of the builder.
//
// Edges: add() gives each task at most one edge from the previous task on its stream and at most
// one from an explicit dependency; each pending task (a blocking collective, a recv, an
// unoverlapped send, a gradient sync) becomes one edge into the next compute task; each recv gets
// one edge from its send. That is at most 4 edges per task, and the test checks the bound against
// the builder.
JobSizeEstimate estimate_job_size(const Scenario& sc) {
  const Dims d = clamped_dims(sc);
  const Layout& layout = sc.layout();
  const bool tied = sc.model().tied_embeddings();
  const int zero = layout.zero_stage();
  const Layout::Recompute recompute = layout.recompute();
  const std::uint64_t tb = d.t > 1 ? 1 : 0, spt = d.sp ? 1 : 0;
  const std::uint64_t z3 = zero >= 3 && dp_cp(d) > 1 ? 1 : 0, z2 = zero >= 2 && dp_cp(d) > 1 ? 1 : 0;

  // One layer, one micro-batch (Builder::layer_forward and layer_backward, from the ops of
  // model::LayerDescription): GPT has 13 compute tasks forward plus the TP collectives (two, four with
  // sequence parallelism) and the ZeRO-3 gather; backward 19 compute tasks (+4 attention core under
  // selective recompute, + a whole forward under full), the TP collectives (two reductions, with
  // sequence parallelism two gathers and two re-gathers), the ZeRO-3 gather and the ZeRO-2/3
  // reduce-scatter.
  // A Mixture-of-Experts model is counted as if every layer were a MoE layer (more tasks than a
  // dense one: an upper bound where the first layers are dense), its expert gradient reductions
  // as one more per bucket holding a MoE layer.
  // (Only for MoE fields validation would accept: this runs on unvalidated scenarios.)
  const bool moe = d.experts > 0 && d.top_k >= 1 && d.top_k <= d.experts && d.moe_f >= 1 && d.experts % d.ep == 0 &&
                   d.moe_f % d.etp == 0 && d.skew >= 1 && d.skew <= static_cast<double>(d.experts);
  // More than one rank holds the same experts (expert dp > 1), so their gradients are reduced
  // (model::RankGrid). In doubles: unvalidated degrees can overflow a 64-bit product.
  const bool expert_dp_above_one =
      static_cast<double>(d.t) * static_cast<double>(d.c) * static_cast<double>(d.d) > static_cast<double>(d.ep) * static_cast<double>(d.etp);
  const LayerTaskCounts counts = layer_task_counts(describe_layer(d, moe), d, recompute);
  const std::uint64_t layer_fwd = counts.forward + z3;
  // Without resharding after forward (FSDP2 reshard_after_forward False) the backward uses the
  // parameters the forward gathered: no second gather.
  const std::uint64_t layer_bwd = counts.backward + (layout.reshard_after_forward() ? z3 : 0) + z2;
  const std::uint64_t embedding_fwd = 1 + tb;
  const std::uint64_t embedding_bwd = 1 + (z2 && embedding_parameters(d).local() > 0 ? 1 : 0);
  const std::uint64_t head_fwd = 3 + spt + tb, head_bwd = 4 + spt + tb;
  // Each multi-token prediction module (Builder::mtp_forward): the lookup and its TP reduction, two
  // norms, eh_proj (column-parallel) and the gather of its output, the layer, the output head;
  // backward the head, the layer, the sequence-parallel gather, eh_proj's two GEMMs with their TP
  // collectives, the norms and the lookup's scatter-add.
  const auto mtp = static_cast<std::uint64_t>(std::clamp<std::int64_t>(d.mtp, 0, kMaxMtpLayers));
  const std::uint64_t mtp_fwd = mtp * ((1 + tb) + 2 + (1 + spt) + tb + counts.forward + head_fwd);
  const std::uint64_t mtp_bwd = mtp * (head_bwd + counts.backward + spt + (2 + spt + tb) + 2 + 1);
  const std::uint64_t output_fwd = head_fwd + mtp_fwd;
  const std::uint64_t output_bwd = head_bwd + mtp_bwd + (z2 && output_parameters(d, tied).local() > 0 ? 1 : 0);

  const ChunkLayers chunk_layers(sc, d);
  const auto m = static_cast<std::uint64_t>(d.m);
  const std::int64_t last_vs = d.p * d.v - 1;
  const double capacity = layout.grad_bucket_mb() * 1e6 / gradient_bytes_per_parameter(layout, d);
  const bool param_gathers = (zero == 1 || zero == 2) && dp_cp(d) > 1;  // over dp x cp

  // Stages between the first and the last emit the same tasks: count one for all of them.
  auto stage_tasks = [&](std::int64_t stage) {
    std::uint64_t per_microbatch = 0;
    for (std::int64_t c = 0; c < d.v; ++c) {
      const std::int64_t vs = c * d.p + stage;
      const auto layers = static_cast<std::uint64_t>(chunk_layers(vs));
      per_microbatch +=
          (vs == 0 ? embedding_fwd : 1) + layers * layer_fwd + (vs == last_vs ? output_fwd : 1);
      per_microbatch +=
          (vs == last_vs ? output_bwd : 1) + layers * layer_bwd + (vs == 0 ? embedding_bwd : 1);
    }
    double once = 1;  // the optimizer step
    const bool expert_reductions = moe && expert_dp_above_one && zero < 2;
    if (param_gathers || (dp_cp(d) > 1 && zero < 2) || expert_reductions) {
      const BucketCount count = bucket_count(d, chunk_layers, tied, capacity, stage, moe);
      const auto buckets = static_cast<double>(count.buckets);
      if (param_gathers) once += buckets;                   // parameter all-gathers, at the start or the end
      if (dp_cp(d) > 1 && zero < 2) once += buckets;        // gradient reductions
      if (expert_reductions) once += static_cast<double>(count.with_moe);  // expert gradient reductions
    }
    if ((tied || d.mtp > 0) && d.p > 1 && (stage == 0 || stage == d.p - 1)) once += 1;  // embedding gradients
    return static_cast<double>(m) * static_cast<double>(per_microbatch) + once;
  };
  double per_stage_total = kSaturate;
  // Validation allows at most 32767 layers, so more virtual stages than that is an unvalidated
  // scenario: called too big rather than counted chunk by chunk.
  if (chunk_layers.partition) {
    // Uneven: every stage its own (a valid partition has at most ~num_layers virtual stages).
    per_stage_total = 0;
    for (std::int64_t stage = 0; stage < d.p; ++stage) per_stage_total += stage_tasks(stage);
  } else if (d.v <= 65536) {
    per_stage_total = stage_tasks(0);
    if (d.p > 1) per_stage_total += stage_tasks(d.p - 1);
    if (d.p > 2) per_stage_total += static_cast<double>(d.p - 2) * stage_tasks(1);
  }
  const double copies = static_cast<double>(d.t) * static_cast<double>(d.d) * static_cast<double>(d.c);  // ranks per stage
  const double stored = sc.options().use_symmetry() ? per_stage_total : per_stage_total * copies;

  JobSizeEstimate est;
  auto to_u64 = [](double v) { return static_cast<std::uint64_t>(std::min(v, kSaturate)); };
  est.ranks = to_u64(sc.options().use_symmetry() ? static_cast<double>(d.p)
                                                 : static_cast<double>(d.p) * copies);
  est.microbatches = m;
  est.tasks = to_u64(stored);
  est.edges = to_u64(4 * stored);
  est.expanded_tasks = to_u64(per_stage_total * copies);
  // The build holds the tasks (a growing vector: up to twice their size), each rank's task list,
  // the edge list (growing: up to twice) and then the compressed graph built from it (out and in
  // edges, offsets), plus a hash entry per pipeline transfer.
  const double task_bytes = 2.0 * sizeof(Task) + 4 + 16;
  const double edge_bytes = 2.0 * 8 + 16;
  est.bytes = stored * task_bytes + 4 * stored * edge_bytes;
  return est;
}

std::uint64_t max_stored_tasks() {
  const char* env = std::getenv("PARALLAX_MAX_TASKS");
  if (!env || !*env) return kDefaultMaxTasks;
  const std::string text(env);
  char* end = nullptr;
  errno = 0;
  const unsigned long long value = std::strtoull(text.c_str(), &end, 10);
  if (text.find_first_not_of("0123456789") != std::string::npos || errno == ERANGE || value < 1)
    throw InputError("PARALLAX_MAX_TASKS: \"" + text.substr(0, 40) +
                     "\" is not a whole number of tasks >= 1 (unset it for the default, " +
                     std::to_string(kDefaultMaxTasks) + ")");
  return value;
}

namespace {

std::string with_commas(std::uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace

void check_job_size(const Scenario& sc, const std::string& source, bool symmetry_optional) {
  const std::uint64_t limit = max_stored_tasks();
  const JobSizeEstimate est = estimate_job_size(sc);
  if (est.tasks <= limit) return;
  const Layout& l = sc.layout();
  std::ostringstream msg;
  msg << source << ": the job graph would store " << with_commas(est.tasks) << " tasks and up to "
      << with_commas(est.edges) << " edges (about " << std::fixed;
  msg.precision(1);
  msg << est.bytes / (1024.0 * 1024 * 1024) << " GiB to build), over the limit of "
      << with_commas(limit)
      << " tasks. It grows as micro-batches x layers x ranks built: layout.global_batch_size "
      << l.global_batch_size() << " / (micro_batch_size " << l.micro_batch_size() << " x dp "
      << l.dp() << ") = " << with_commas(est.microbatches)
      << " micro-batches per pipeline, model.num_layers " << sc.model().num_layers() << ", "
      << with_commas(est.ranks) << (est.ranks == 1 ? " rank" : " ranks") << " built";
  if (!sc.options().use_symmetry() && symmetry_optional)
    msg << " (options.use_symmetry: false builds every rank)";
  msg << ". Lower global_batch_size or raise micro_batch_size";
  if (!sc.options().use_symmetry() && symmetry_optional) msg << ", set options.use_symmetry: true";
  msg << ", or raise the limit with the environment variable PARALLAX_MAX_TASKS=N if this machine "
         "has "
         "the memory";
  throw InputError(msg.str());
}

}  // namespace parallax::model
