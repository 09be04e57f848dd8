#include "parallax/planner/estimate.h"

#include "parallax/model/cost_model.h"
#include "parallax/model/job_graph.h"
#include "parallax/model/memory_model.h"
#include "parallax/model/parameters.h"
#include "parallax/model/scenario.h"
#include "parallax/model/rank_grid.h"
#include "parallax/model/schedule.h"
#include "parallax/model/stage_partition.h"
#include "parallax/netmodel/collective_cost.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <numeric>
#include <tuple>
#include <unordered_map>

namespace parallax::planner {
namespace {

using model::Dims;
using model::Task;
constexpr double kInf = std::numeric_limits<double>::infinity();

// The fastest algorithm's time on a group, from the network cost model (the simulator's tuner); an
// empty bucket is not sent. Groups are summarised by arithmetic from their size and stride, with every
// GPU of a node communicating at once (netmodel::strided_group_shape).
double tuned_time(CollectiveKind kind, const netmodel::GroupShape& g, double S) {
  if (S <= 0) return 0;
  return netmodel::collective_time(g, kind, netmodel::CollectiveAlgorithm::Auto, S);
}

// A transformer layer's kind: dense or Mixture-of-Experts (model::is_moe_layer), full or
// sliding-window attention (model::is_windowed_layer). Layers of one kind cost the same.
constexpr int kLayerKinds = 4;
int layer_kind(const Dims& d, std::int64_t layer) {
  return (model::is_moe_layer(d, layer) ? 2 : 0) + (model::is_windowed_layer(d, layer) ? 1 : 0);
}

// Costs of one transformer layer of each kind (and the embedding / output ends) for one micro-batch,
// measured on a job graph of a few layers of the same shapes (one of each kind the model has): an
// as-soon-as-possible schedule of its tasks with the cost model's compute times and analytic
// collective times, per phase of the layer.
struct KindCosts {
  double forward = 0, backward = 0;         // one layer, one micro-batch (backward includes recompute)
  double first_forward_extra = 0;           // the first micro-batch's forward also casts FP8 weights
  double tp_comm_fwd = 0, tp_comm_bwd = 0;  // TP time inside the above (for the report)
  double ep_comm_fwd = 0, ep_comm_bwd = 0;  // the MoE dispatch and combine all-to-alls inside them
};
struct LayerCosts {
  std::array<KindCosts, kLayerKinds> kind{};
  double embedding_fwd = 0, embedding_bwd = 0, output_fwd = 0, output_bwd = 0;
  double embedding_first_extra = 0, output_first_extra = 0;
  const KindCosts& of(const Dims& d, std::int64_t layer) const {
    return kind[static_cast<std::size_t>(layer_kind(d, layer))];
  }
};

// The group `group` of rank 0 summarised by its size and finest stride (the estimator's arithmetic
// shapes): Megatron's expert grid puts an ep group on consecutive ranks of a stage, its expert-data-
// parallel peers ep apart.
netmodel::GroupShape grid_group_shape(const netmodel::LinkParameters& net, const model::RankGrid& grid, CommGroup group) {
  const auto members = grid.members(group, 0);
  std::int64_t stride = 1;
  if (members.size() > 1) {
    stride = std::numeric_limits<std::int64_t>::max();
    for (std::size_t i = 1; i < members.size(); ++i)
      stride = std::min<std::int64_t>(stride, static_cast<std::int64_t>(members[i]) - members[i - 1]);
  }
  return netmodel::strided_group_shape(net, static_cast<std::int64_t>(members.size()), stride);
}

LayerCosts layer_costs(const Scenario& sc, const netmodel::LinkParameters& net) {
  Scenario one = sc;
  const Dims full = model::dims(sc);
  // One layer of each kind: with a sliding-window pattern, a run of `pattern` layers has both
  // attentions; MoE models with leading dense layers get such a run of each.
  const std::int64_t pattern = full.window > 0 ? std::max<std::int64_t>(1, full.window_pattern) : 1;
  const std::int64_t dense_run = full.experts > 0 && full.dense_layers > 0 ? pattern : 0;
  one.mutable_model()->set_num_layers(static_cast<std::int32_t>(dense_run + pattern));
  if (full.experts > 0) one.mutable_model()->set_moe_dense_layers(static_cast<std::int32_t>(dense_run));
  auto* l = one.mutable_layout();
  l->set_pp(1);
  // Expert parallelism needs ep x etp | tp x cp x dp: the fewest data-parallel replicas that hold
  // an ep x etp block of the expert grid (the graph's tasks per rank do not depend on dp).
  const std::int64_t expert_block = std::max<std::int64_t>(1, sc.layout().ep()) * std::max<std::int64_t>(1, sc.layout().etp());
  const std::int64_t dp_one = expert_block / std::gcd(expert_block, full.t * full.c);
  l->set_dp(static_cast<std::int32_t>(dp_one));
  l->set_virtual_stages(1);
  l->set_schedule(Layout::ONE_F_ONE_B);
  // The all-to-all overlap pairs one micro-batch's forward with another's backward: the per-layer
  // costs are those of the plain order (the overlap's gain is left to the simulation of the top K).
  l->clear_moe_a2a_overlap();
  // One layer on one stage: no partition; the TP group keeps its stride (below), not its place.
  l->clear_stage_layers();
  l->clear_first_stage_layers();
  l->clear_last_stage_layers();
  l->clear_embedding_in_pipeline_split();
  l->clear_loss_in_pipeline_split();
  l->clear_rank_order();
  // Two micro-batches: the second's spans are the steady cost of every micro-batch; the first's
  // forward also casts the FP8 weights (Transformer Engine keeps them over the step's micro-batches).
  l->set_global_batch_size(static_cast<std::int32_t>(2 * l->micro_batch_size() * dp_one));
  l->set_zero_stage(0);
  one.mutable_cluster()->set_num_nodes(1);
  one.mutable_cluster()->set_gpus_per_node(static_cast<int>(full.t * full.c * dp_one));
  one.mutable_options()->set_use_symmetry(true);
  const model::JobGraph g = model::build_job_graph(one);
  const Dims reduced = model::dims(one);
  const model::CostModel cost(sc.cluster().gpu(), sc.model().precision());
  const model::RankGrid grid = model::rank_grid(sc);
  const netmodel::GroupShape tp = netmodel::strided_group_shape(net, full.t, grid.stride(model::GridDim::Tp));
  // Context parallelism's ring on the cp group where the full job places it.
  const netmodel::GroupShape cp = netmodel::strided_group_shape(net, full.c, grid.stride(model::GridDim::Cp));
  const netmodel::GroupShape ep_group =
      grid.has_group(GROUP_EP) ? grid_group_shape(net, grid, GROUP_EP) : netmodel::GroupShape{};
  const netmodel::GroupShape etp_group =
      grid.has_group(GROUP_EXPERT_TP) ? grid_group_shape(net, grid, GROUP_EXPERT_TP) : netmodel::GroupShape{};

  const auto n = static_cast<std::uint32_t>(g.num_tasks());
  std::vector<double> duration(n), start(n), end(n);
  for (std::uint32_t v = 0; v < n; ++v) {
    const Task& t = g.tasks()[v];
    duration[v] = t.is_compute()         ? cost.duration(t)
                  : t.group == GROUP_TP ? tuned_time(t.collective, tp, static_cast<double>(t.bytes))
                  : t.group == GROUP_CP ? tuned_time(t.collective, cp, static_cast<double>(t.bytes))
                  : t.group == GROUP_EP ? tuned_time(t.collective, ep_group, static_cast<double>(t.bytes))
                  : t.group == GROUP_EXPERT_TP ? tuned_time(t.collective, etp_group, static_cast<double>(t.bytes))
                                               : 0.0;
  }
  // The graph's tasks are numbered in emission order, predecessors first: one pass schedules them.
  // With skewed routing the representative ranks differ (one holds the busiest expert): a layer's
  // span over all of them is the busiest one's, which the others wait for at the next all-to-all.
  for (std::uint32_t v = 0; v < n; ++v) {
    double ready = 0;
    for (auto p : g.predecessors(v)) ready = std::max(ready, end[p]);
    start[v] = ready;
    end[v] = ready + duration[v];
  }
  // Span of a phase of a part of the graph (a layer >= 0, the embedding -1, the output -2).
  auto span = [&](std::int32_t layer, bool forward, std::int32_t mb, double* tp_time, double* ep_time) {
    double lo = kInf, hi = 0;
    for (std::uint32_t i = 0; i < n; ++i) {
      const Task& t = g.tasks()[i];
      if (t.layer != layer || t.microbatch != mb || t.kind == SEND || t.kind == RECV) continue;
      if (t.phase == GRADIENT_SYNC || t.phase == OPTIMIZER) continue;
      const bool fwd = t.phase == FORWARD;
      if (fwd != forward) continue;
      lo = std::min(lo, start[i]);
      hi = std::max(hi, end[i]);
      // Communication time of the first representative rank (one rank's share of the step).
      if (t.rank != g.tasks()[0].rank) continue;
      if (tp_time && t.group == GROUP_TP) *tp_time += duration[i];
      if (ep_time && (t.group == GROUP_EP || t.group == GROUP_EXPERT_TP)) *ep_time += duration[i];
    }
    return hi > lo ? hi - lo : 0.0;
  };
  LayerCosts c;
  std::array<bool, kLayerKinds> measured{};
  for (std::int32_t layer = 0; layer < one.model().num_layers(); ++layer) {
    const auto k = static_cast<std::size_t>(layer_kind(reduced, layer));
    if (measured[k]) continue;
    measured[k] = true;
    KindCosts& kc = c.kind[k];
    kc.forward = span(layer, true, 1, &kc.tp_comm_fwd, &kc.ep_comm_fwd);
    kc.backward = span(layer, false, 1, &kc.tp_comm_bwd, &kc.ep_comm_bwd);
    kc.first_forward_extra = std::max(0.0, span(layer, true, 0, nullptr, nullptr) - kc.forward);
  }
  c.embedding_fwd = span(-1, true, 1, nullptr, nullptr);
  c.embedding_bwd = span(-1, false, 1, nullptr, nullptr);
  c.output_fwd = span(-2, true, 1, nullptr, nullptr);
  c.output_bwd = span(-2, false, 1, nullptr, nullptr);
  c.embedding_first_extra = std::max(0.0, span(-1, true, 0, nullptr, nullptr) - c.embedding_fwd);
  c.output_first_extra = std::max(0.0, span(-2, true, 0, nullptr, nullptr) - c.output_fwd);
  return c;
}

// Layer costs depend on the micro-batch, tensor parallelism, sequence parallelism and recompute, not
// on pipeline or data parallelism: the planner asks for the same few many times.
LayerCosts cached_layer_costs(const Scenario& sc, const netmodel::LinkParameters& net) {
  static std::mutex mutex;
  static std::map<std::string, LayerCosts> cache;
  Scenario key_scenario = sc;
  auto* l = key_scenario.mutable_layout();
  l->clear_dp();
  l->clear_pp();
  l->clear_virtual_stages();
  l->clear_schedule();
  l->clear_global_batch_size();
  l->clear_zero_stage();
  key_scenario.mutable_cluster()->clear_num_nodes();
  key_scenario.clear_name();
  key_scenario.clear_description();
  // The TP group's rank stride depends on the degrees ordered before tp (cleared above).
  const model::RankGrid grid = model::rank_grid(sc);
  // The ep and expert tp groups' places (their members' spacing) depend on the grid's order and
  // extents.
  std::string ep_members;
  for (CommGroup group : {GROUP_EP, GROUP_EXPERT_TP}) {
    if (grid.has_group(group))
      for (auto r : grid.members(group, 0)) ep_members += std::to_string(r) + ",";
    ep_members += "|";
  }
  const std::string key = key_scenario.SerializeAsString() + "|" + std::to_string(grid.stride(model::GridDim::Tp)) +
                          "|" + std::to_string(grid.stride(model::GridDim::Cp)) + "|" + ep_members;
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (auto it = cache.find(key); it != cache.end()) return it->second;
  }
  const LayerCosts c = layer_costs(sc, net);
  std::lock_guard<std::mutex> lock(mutex);
  if (cache.size() > 4096) cache.clear();
  cache.emplace(key, c);
  return c;
}

// Micro-batches per pipeline up to which the schedule is timed step by step (every bundled
// scenario, validation row and realistic layout); beyond, see the extrapolation in estimate_step.
constexpr std::int64_t kExactMicrobatches = 16384;

// The group gradients are reduced and ZeRO shards over: dp x cp ranks (model::Builder's dp_group),
// summarised by its finest stride (with the default order, cp's: dp x cp is then evenly strided).
netmodel::GroupShape dp_group_shape(const netmodel::LinkParameters& net, const Dims& d, const model::RankGrid& grid) {
  const std::int64_t stride = d.c > 1 ? std::min(grid.stride(model::GridDim::Cp), grid.stride(model::GridDim::Dp))
                                      : grid.stride(model::GridDim::Dp);
  return netmodel::strided_group_shape(net, model::dp_cp(d), stride);
}

}  // namespace

StepEstimate estimate_step(const Scenario& sc) {
  const Dims d = model::dims(sc);
  const Layout& layout = sc.layout();
  const netmodel::LinkParameters net(sc.cluster());
  const LayerCosts lc = cached_layer_costs(sc, net);
  const model::CostModel cost(sc.cluster().gpu(), sc.model().precision());
  const bool tied = sc.model().tied_embeddings();

  const std::int64_t P = d.p, V = d.v, M = d.m, VS = P * V;
  // Layers per virtual stage and the rank grid's strides (which ranks share a node).
  const model::StagePartition partition = model::stage_partition(sc);
  const model::RankGrid grid = model::rank_grid(sc);
  const auto chunk_layers = [&](std::int64_t vs) { return static_cast<double>(partition.layers(vs)); };
  // Layers of each kind on each virtual stage, counted once.
  std::vector<std::array<double, kLayerKinds>> kinds(static_cast<std::size_t>(VS));
  for (std::int64_t vs = 0; vs < VS; ++vs)
    for (std::int64_t l = partition.first_layer(vs); l < partition.first_layer(vs + 1); ++l)
      kinds[static_cast<std::size_t>(vs)][static_cast<std::size_t>(layer_kind(d, l))] += 1;
  // Sum over a virtual stage's layers of a per-layer cost (count x cost per kind: a model of one kind
  // gets layers x cost).
  const auto chunk_sum = [&](std::int64_t vs, double KindCosts::*field) {
    const auto& count = kinds[static_cast<std::size_t>(vs)];
    double sum = 0;
    for (std::size_t k = 0; k < kLayerKinds; ++k)
      if (count[k] > 0) sum += count[k] * (lc.kind[k].*field);
    return sum;
  };
  // Dense parameters of a layer (reduced and ZeRO-sharded over dp x cp) and its routed experts'.
  const model::ParameterShard dense_layer = model::layer_parameters(d);
  const model::ParameterShard moe_layer = d.experts > 0 ? model::layer_parameters(d, true) : model::ParameterShard{};
  const auto layer_dense_params = [&](std::int64_t l) {
    return model::is_moe_layer(d, l) ? moe_layer.dense() : dense_layer.local();
  };
  const auto layer_expert_params = [&](std::int64_t l) { return model::is_moe_layer(d, l) ? moe_layer.expert : 0.0; };
  // Chunk times per virtual stage: the slowest stage sets the pace through the schedule's timing.
  std::vector<double> fwd(static_cast<std::size_t>(VS)), bwd(static_cast<std::size_t>(VS));
  // What the first micro-batch's forward of each chunk adds (FP8 weight casts).
  std::vector<double> first_fwd_extra(static_cast<std::size_t>(VS));
  for (std::int64_t vs = 0; vs < VS; ++vs) {
    first_fwd_extra[static_cast<std::size_t>(vs)] = chunk_sum(vs, &KindCosts::first_forward_extra) +
                                                     (vs == 0 ? lc.embedding_first_extra : 0.0) +
                                                     (vs == VS - 1 ? lc.output_first_extra : 0.0);
    fwd[static_cast<std::size_t>(vs)] = chunk_sum(vs, &KindCosts::forward);
    bwd[static_cast<std::size_t>(vs)] = chunk_sum(vs, &KindCosts::backward);
    if (vs == 0) {
      fwd[0] += lc.embedding_fwd;
      bwd[0] += lc.embedding_bwd;
    }
    if (vs == VS - 1) {
      fwd[static_cast<std::size_t>(vs)] += lc.output_fwd;
      bwd[static_cast<std::size_t>(vs)] += lc.output_bwd;
    }
  }
  // ZeRO-2/3 put per-layer, per-micro-batch collectives on the one data-parallel stream: ZeRO-3
  // gathers each layer's parameters before its forward and again for its backward (prefetched one
  // layer ahead), ZeRO-2/3 reduce-scatter each layer's gradients after its backward. When that
  // stream needs longer than the compute it hides behind, it sets the pace of the chunk.
  {
    const int zero_stage = layout.zero_stage();
    if (zero_stage >= 2 && model::dp_cp(d) > 1) {
      const netmodel::GroupShape dp_shape = dp_group_shape(net, d, grid);
      const double layer_local = model::layer_parameters(d).local();
      const double grad_b = model::gradient_bytes_per_parameter(layout, d);
      const double gather = zero_stage >= 3 ? tuned_time(ALL_GATHER, dp_shape, layer_local * d.e) : 0.0;
      const double reduce = tuned_time(REDUCE_SCATTER, dp_shape, layer_local * grad_b);
      // Without gathers in the backward (ZeRO-2; ZeRO-3 keeping the forward's gathered parameters)
      // the stream starts with the first layer's reduce-scatter, after that layer's backward compute.
      const bool backward_gathers = zero_stage >= 3 && layout.reshard_after_forward();
      for (std::int64_t vs = 0; vs < VS; ++vs) {
        auto& f = fwd[static_cast<std::size_t>(vs)];
        auto& b = bwd[static_cast<std::size_t>(vs)];
        // The chunk's backward starts with its last layer.
        const std::int64_t last_layer = partition.first_layer(vs) + partition.layers(vs) - 1;
        const double first_backward = partition.layers(vs) > 0 ? lc.of(d, last_layer).backward : 0.0;
        f = std::max(f, chunk_layers(vs) * gather);
        b = std::max(b, backward_gathers ? chunk_layers(vs) * (gather + reduce) : first_backward + chunk_layers(vs) * reduce);
      }
    }
  }
  // Pipeline transfers: adjacent stages are stride(pp) ranks apart (t*d in Megatron's order).
  const double p2p_bytes = static_cast<double>(model::local_tokens(d) * d.h * d.e) / (d.sp ? static_cast<double>(d.t) : 1.0);
  const netmodel::GroupShape pp_pair = netmodel::strided_group_shape(net, 2, grid.stride(model::GridDim::Pp));
  const double p2p = P > 1 ? netmodel::transfer_time(pp_pair, p2p_bytes) : 0.0;
  const bool overlap_p2p = layout.overlap_p2p();

  // ZeRO-1/2 with overlap_param_gather: the previous step's updated parameters are all-gathered per
  // gradient bucket at the start of the step, chunk 0 first, and each layer's first forward waits for
  // its bucket's gather (the builder's param_all_gathers). Per virtual stage, for the items of its
  // chunk in forward order (embedding, layers, output layer): when their gather ends (0: none).
  const bool gathers_at_start =
      (layout.zero_stage() == 1 || layout.zero_stage() == 2) && model::dp_cp(d) > 1 && layout.overlap_param_gather();
  std::vector<std::vector<double>> gather_done(static_cast<std::size_t>(VS));
  if (gathers_at_start) {
    const double grad_b = model::gradient_bytes_per_parameter(layout, d);
    const double capacity = layout.grad_bucket_mb() * 1e6 / grad_b;
    const netmodel::GroupShape dp_shape = dp_group_shape(net, d, grid);
    for (std::int64_t s = 0; s < P; ++s) {
      double t = 0;  // the DP stream of stage s from the start of the step
      for (std::int64_t c = 0; c < V; ++c) {
        const std::int64_t vs = c * P + s;
        // Items in backward order, as the builder cuts its buckets.
        std::vector<double> params;
        if (vs == VS - 1) params.push_back(model::output_parameters(d, tied).dense());
        for (std::int64_t l = partition.first_layer(vs + 1) - 1; l >= partition.first_layer(vs); --l)
          params.push_back(layer_dense_params(l));
        if (vs == 0) params.push_back(model::embedding_parameters(d).local());
        std::vector<std::pair<std::vector<std::size_t>, double>> buckets;  // items, parameters
        std::pair<std::vector<std::size_t>, double> current{{}, 0.0};
        for (std::size_t i = 0; i < params.size(); ++i) {
          if (params[i] <= 0) continue;
          current.first.push_back(i);
          current.second += params[i];
          if (current.second >= capacity) {
            buckets.push_back(current);
            current = {{}, 0.0};
          }
        }
        if (!current.first.empty()) buckets.push_back(current);
        std::vector<double> done(params.size(), 0.0);
        for (auto it = buckets.rbegin(); it != buckets.rend(); ++it) {
          t += tuned_time(ALL_GATHER, dp_shape, it->second * static_cast<double>(d.e));
          for (std::size_t i : it->first) done[i] = t;
        }
        std::reverse(done.begin(), done.end());  // forward order
        gather_done[static_cast<std::size_t>(vs)] = std::move(done);
      }
    }
  }
  // The end of a chunk's first forward when it waits, item by item, for the gathers above.
  const auto gated_forward_end = [&](std::int64_t vs, double begin) {
    const auto& done = gather_done[static_cast<std::size_t>(vs)];
    std::size_t k = 0;
    double t = begin;
    // The first micro-batch's forward (with its FP8 weight casts).
    if (vs == 0) t = std::max(t, done[k++]) + lc.embedding_fwd + lc.embedding_first_extra;
    for (std::int64_t l = partition.first_layer(vs); l < partition.first_layer(vs + 1); ++l)
      t = std::max(t, done[k++]) + lc.of(d, l).forward + lc.of(d, l).first_forward_extra;
    if (vs == VS - 1) t = std::max(t, done[k++]) + lc.output_fwd + lc.output_first_extra;
    return t;
  };

  // Time the schedule: each stage runs its order; a step waits for its input from the neighbouring
  // virtual stage (plus the transfer when it crosses stages).
  struct Timing {
    std::vector<double> free_at, busy, final_bwd_start;
  };
  const auto time_schedule = [&](const std::int64_t M) {
    std::vector<std::vector<model::PipelineStep>> orders;
    for (std::int64_t s = 0; s < P; ++s)
      orders.push_back(model::stage_order(layout.schedule(), static_cast<int>(P),
                                          static_cast<int>(V), static_cast<int>(M),
                                          static_cast<int>(s)));
    std::vector<double> done(static_cast<std::size_t>(M * VS * 2), -1.0);
    auto at = [&](std::int64_t mb, std::int64_t vs, bool backward) -> double& {
      return done[static_cast<std::size_t>((mb * VS + vs) * 2 + (backward ? 1 : 0))];
    };
    std::vector<std::size_t> next(static_cast<std::size_t>(P), 0);
    std::vector<double> free_at(static_cast<std::size_t>(P), 0.0),
        busy(static_cast<std::size_t>(P), 0.0);
    // When each chunk's final backward starts on its stage (for the gradient buckets).
    std::vector<double> final_bwd_start(static_cast<std::size_t>(VS), 0.0);
    std::size_t remaining = 0;
    for (const auto& o : orders) remaining += o.size();
    while (remaining > 0) {
      bool progressed = false;
      for (std::int64_t s = 0; s < P; ++s) {
        auto& i = next[static_cast<std::size_t>(s)];
        const auto& order = orders[static_cast<std::size_t>(s)];
        while (i < order.size()) {
          const auto step = order[i];
          const std::int64_t vs = step.chunk * P + s;
          double ready;
          if (step.forward) {
            ready = vs == 0 ? 0.0 : at(step.microbatch, vs - 1, false);
            if (ready < 0) break;
            if (vs > 0) ready += p2p;
          } else if (vs == VS - 1) {
            ready = at(step.microbatch, vs, false);
            if (ready < 0) break;
          } else {
            ready = at(step.microbatch, vs + 1, true);
            if (ready < 0) break;
            ready += p2p;
          }
          const double begin = std::max(ready, free_at[static_cast<std::size_t>(s)]);
          const double length =
              step.forward ? fwd[static_cast<std::size_t>(vs)] + (step.microbatch == 0 ? first_fwd_extra[static_cast<std::size_t>(vs)] : 0.0)
                           : bwd[static_cast<std::size_t>(vs)];
          double end = begin + length;
          if (gathers_at_start && step.forward && step.microbatch == 0)
            end = gated_forward_end(vs, begin);
          at(step.microbatch, vs, !step.forward) = end;
          if (!step.forward) final_bwd_start[static_cast<std::size_t>(vs)] = begin;
          // Without overlap the stage waits for its own send before computing on.
          const bool sends = step.forward ? vs < VS - 1 : vs > 0;
          if (sends && !overlap_p2p) end += p2p;
          free_at[static_cast<std::size_t>(s)] = end;
          busy[static_cast<std::size_t>(s)] += length;
          ++i;
          --remaining;
          progressed = true;
        }
      }
      if (!progressed)
        break;  // cannot happen for Megatron's schedules (tests check they are deadlock-free)
    }
    return Timing{std::move(free_at), std::move(busy), std::move(final_bwd_start)};
  };
  // Past a few thousand micro-batches the schedule is periodic: after the warm-up every further
  // micro-batch adds the same time to each stage, so two timings of bounded length give the rest
  // by linear extrapolation instead of a walk (and a table) over 10^8 micro-batches.
  Timing timing;
  if (M <= kExactMicrobatches) {
    timing = time_schedule(M);
  } else {
    // Well past the warm-up (at most about 3 p v steps) and multiples of p, as interleaving needs.
    const std::int64_t base = std::max<std::int64_t>(512, 4 * VS);
    const std::int64_t m1 = P * ((base + P - 1) / P), m2 = 2 * m1;
    const Timing t1 = time_schedule(m1), t2 = time_schedule(m2);
    const double f = static_cast<double>(M - m1) / static_cast<double>(m2 - m1);
    auto extrapolate = [&](const std::vector<double>& x1, const std::vector<double>& x2) {
      std::vector<double> x(x1.size());
      for (std::size_t i = 0; i < x.size(); ++i) x[i] = x1[i] + f * (x2[i] - x1[i]);
      return x;
    };
    timing = Timing{extrapolate(t1.free_at, t2.free_at), extrapolate(t1.busy, t2.busy),
                    extrapolate(t1.final_bwd_start, t2.final_bwd_start)};
  }
  const std::vector<double>& free_at = timing.free_at;
  const std::vector<double>& busy = timing.busy;
  const std::vector<double>& final_bwd_start = timing.final_bwd_start;

  // Data parallelism and the optimizer, per stage.
  const int zero = layout.zero_stage();
  const double grad_bytes = model::gradient_bytes_per_parameter(layout, d);
  const netmodel::GroupShape dp = dp_group_shape(net, d, grid);
  const double capacity = layout.grad_bucket_mb() * 1e6 / grad_bytes;
  // Routed experts' gradients are reduced over the ranks that hold the same experts (expert dp).
  const std::int64_t expert_dp = grid.expert_data_parallel();
  const netmodel::GroupShape edp =
      grid.has_group(GROUP_EXPERT_DP) ? grid_group_shape(net, grid, GROUP_EXPERT_DP) : netmodel::GroupShape{};
  StepEstimate est;
  double step = 0;
  std::vector<double> stage_end(static_cast<std::size_t>(P));
  double dp_comm_stage0 = 0;
  for (std::int64_t s = 0; s < P; ++s) {
    const double compute_end = free_at[static_cast<std::size_t>(s)];
    double dp_free = 0, dp_total = 0;
    const bool experts_reduced = d.experts > 0 && expert_dp > 1 && zero < 2;
    if ((model::dp_cp(d) > 1 || experts_reduced) && zero < 2) {
      // Buckets per chunk in backward order, as the builder makes them; each is ready when its last
      // layer's final backward ends. A bucket holds dense parameters; its MoE layers' routed experts
      // are reduced separately, over expert dp.
      struct Bucket {
        double ready, params, experts;
      };
      std::vector<Bucket> buckets;
      for (std::int64_t c = 0; c < V; ++c) {
        const std::int64_t vs = c * P + s;
        double t = final_bwd_start[static_cast<std::size_t>(vs)];
        struct Item {
          double finish, params, experts;
        };
        std::vector<Item> items;
        if (vs == VS - 1) {
          t += lc.output_bwd;
          const model::ParameterShard output = model::output_parameters(d, tied);  // with the MTP modules
          items.push_back({t, output.dense(), output.expert});
        }
        for (std::int64_t l = partition.first_layer(vs + 1) - 1; l >= partition.first_layer(vs); --l) {
          t += lc.of(d, l).backward;
          items.push_back({t, layer_dense_params(l), layer_expert_params(l)});
        }
        if (vs == 0) {
          t += lc.embedding_bwd;
          items.push_back({t, model::embedding_parameters(d).local(), 0.0});
        }
        double acc = 0, experts = 0, ready = 0;
        for (const auto& item : items) {
          if (item.params <= 0) continue;
          acc += item.params;
          experts += item.experts;
          ready = item.finish;
          if (acc >= capacity) {
            buckets.push_back({ready, acc, experts});
            acc = experts = 0;
          }
        }
        if (acc > 0) buckets.push_back({ready, acc, experts});
      }
      const CollectiveKind reduce = zero >= 1 ? REDUCE_SCATTER : ALL_REDUCE;
      // The builder's one DP stream: the dense buckets as they become ready, then the experts' in
      // bucket order.
      std::vector<Bucket> by_readiness = buckets;
      std::stable_sort(by_readiness.begin(), by_readiness.end(),
                       [](const Bucket& a, const Bucket& b) { return a.ready < b.ready; });
      if (model::dp_cp(d) > 1)
        for (const auto& b : by_readiness) {
          const double t = tuned_time(reduce, dp, b.params * grad_bytes);
          const double ready = layout.overlap_grad_reduce() ? b.ready : compute_end;
          dp_free = std::max(dp_free, ready) + t;
          dp_total += t;
        }
      if (experts_reduced)
        for (const auto& b : buckets) {
          if (b.experts <= 0) continue;
          const double t = tuned_time(reduce, edp, b.experts * grad_bytes);
          const double ready = layout.overlap_grad_reduce() ? b.ready : compute_end;
          dp_free = std::max(dp_free, ready) + t;
          dp_total += t;
        }
    }
    if (model::dp_cp(d) > 1 && zero >= 2) {
      // The per-layer reduce-scatters run with the backward (their pace is in the chunk times); the
      // last layer's, and the embedding's, finish after it.
      const double last = tuned_time(REDUCE_SCATTER, dp, model::layer_parameters(d).local() * grad_bytes);
      dp_total = last * static_cast<double>(M) * static_cast<double>(partition.stage_layers(s));
      dp_free = compute_end + last;
      // ZeRO-3: the first stage's embedding gradients are reduce-scattered after the first layer's.
      if (s == 0 && zero >= 3) {
        const double embedding =
            tuned_time(REDUCE_SCATTER, dp, model::embedding_parameters(d).local() * grad_bytes);
        dp_free += embedding;
        dp_total += embedding * static_cast<double>(M);
      }
    }
    if ((tied || d.mtp > 0) && P > 1 && (s == 0 || s == P - 1)) {
      const double t = tuned_time(ALL_REDUCE, netmodel::strided_group_shape(net, 2, grid.stride(model::GridDim::Pp) * (P - 1)),
                                  model::embedding_parameters(d).word * grad_bytes);
      dp_free = std::max(dp_free, compute_end) + t;
      dp_total += t;
    }
    // Adam over the local (ZeRO: sharded) parameters: dense ones over dp x cp, routed experts over
    // expert dp.
    const model::ParameterShard held =
        model::stage_parameters(d, tied, s, partition.stage_layers(s), model::stage_moe_layers(d, partition, s));
    double params = held.local();
    if (zero >= 1)
      params = held.dense() / static_cast<double>(model::dp_cp(d)) + held.expert / static_cast<double>(expert_dp);
    Task optimizer;
    optimizer.kind = MEMORY_BOUND;
    const model::OptimizerCost adam = model::optimizer_cost(layout, d);
    optimizer.bytes = static_cast<std::uint64_t>(params * adam.step_bytes);
    optimizer.flops = params * adam.step_flops;
    double end = std::max(compute_end, dp_free) + cost.duration(optimizer);
    // ZeRO-3: the first layer's gather starts the step with nothing before it to hide behind but the
    // embedding, and every stage waits for the first one's activations: the whole step shifts.
    if (zero >= 3 && model::dp_cp(d) > 1)
      end += std::max(0.0, tuned_time(ALL_GATHER, dp, model::layer_parameters(d).local() * d.e) - lc.embedding_fwd);
    if ((zero == 1 || zero == 2) && model::dp_cp(d) > 1) {
      const double gathers = tuned_time(ALL_GATHER, dp, held.dense() * d.e);
      // Overlapped, they run at the start of the next step alongside the first forward; else after
      // the optimizer.
      end += layout.overlap_param_gather() ? 0.0 : gathers;
      dp_total += gathers;
    }
    stage_end[static_cast<std::size_t>(s)] = end;
    if (s == 0) dp_comm_stage0 = dp_total;
    step = std::max(step, end);
  }

  // Summary for the busiest stage.
  const auto busiest = static_cast<std::size_t>(std::max_element(busy.begin(), busy.end()) - busy.begin());
  // Per-layer communication inside the compute stream, summed over the busiest stage's layers.
  const auto stage_sum = [&](double KindCosts::*forward, double KindCosts::*backward) {
    double sum = 0;
    for (std::int64_t c = 0; c < V; ++c) {
      const auto& count = kinds[static_cast<std::size_t>(c * P + static_cast<std::int64_t>(busiest))];
      for (std::size_t k = 0; k < kLayerKinds; ++k)
        if (count[k] > 0) sum += (lc.kind[k].*forward + lc.kind[k].*backward) * count[k] * static_cast<double>(M);
    }
    return sum;
  };
  est.step_s = step;
  est.compute_s = busy[busiest];
  est.tp_comm_s = stage_sum(&KindCosts::tp_comm_fwd, &KindCosts::tp_comm_bwd);
  est.ep_comm_s = stage_sum(&KindCosts::ep_comm_fwd, &KindCosts::ep_comm_bwd);
  est.pp_comm_s = P > 1 ? 2.0 * p2p * static_cast<double>(M * V) : 0.0;
  est.dp_comm_s = dp_comm_stage0;
  est.bubble_s = std::max(0.0, free_at[busiest] - busy[busiest]);
  est.exposed_comm_s = std::max(0.0, step - free_at[busiest]) + est.tp_comm_s + est.ep_comm_s;
  const double recompute_share = layout.recompute() == Layout::FULL ? 0.25 : 0.0;
  std::vector<std::pair<double, std::string>> costs = {
      {est.compute_s - est.tp_comm_s - est.ep_comm_s, "compute"},
      {est.bubble_s, "pipeline bubble"},
      {est.tp_comm_s, "tensor-parallel communication"},
      {est.ep_comm_s, d.etp > 1 ? "expert communication (MoE dispatch and combine, expert tp gather and scatter)"
                                : "expert all-to-all (MoE dispatch and combine)"},
      {std::max(0.0, step - free_at[busiest]), "data-parallel gradient sync and optimizer"},
  };
  std::sort(costs.rbegin(), costs.rend());
  est.bottleneck = costs.front().second;
  if (est.bottleneck == "compute" && recompute_share > 0) est.bottleneck = "compute (a quarter of it full recompute)";
  return est;
}

}  // namespace parallax::planner
