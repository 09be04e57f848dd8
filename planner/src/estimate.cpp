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
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
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

// Costs of one transformer layer (and the embedding / output ends) for one micro-batch, measured on a
// one-layer job graph of the same shapes: an as-soon-as-possible schedule of its tasks with the cost
// model's compute times and analytic collective times, per phase of the layer.
struct LayerCosts {
  double forward = 0, backward = 0;          // one layer, one micro-batch (backward includes recompute)
  double embedding_fwd = 0, embedding_bwd = 0, output_fwd = 0, output_bwd = 0;
  double tp_comm_fwd = 0, tp_comm_bwd = 0;   // TP time inside the above (for the report)
};

LayerCosts layer_costs(const Scenario& sc, const netmodel::LinkParameters& net) {
  Scenario one = sc;
  const Dims full = model::dims(sc);
  one.mutable_model()->set_num_layers(1);
  auto* l = one.mutable_layout();
  l->set_pp(1);
  l->set_dp(1);
  l->set_virtual_stages(1);
  l->set_schedule(Layout::ONE_F_ONE_B);
  // One layer on one stage: no partition; the TP group keeps its stride (below), not its place.
  l->clear_stage_layers();
  l->clear_first_stage_layers();
  l->clear_last_stage_layers();
  l->clear_embedding_in_pipeline_split();
  l->clear_loss_in_pipeline_split();
  l->clear_rank_order();
  l->set_global_batch_size(l->micro_batch_size());
  l->set_zero_stage(0);
  one.mutable_cluster()->set_num_nodes(1);
  one.mutable_cluster()->set_gpus_per_node(static_cast<int>(full.t * full.c));
  one.mutable_options()->set_use_symmetry(true);
  const model::JobGraph g = model::build_job_graph(one);
  const model::CostModel cost(sc.cluster().gpu(), sc.model().precision());
  const model::RankGrid grid = model::rank_grid(sc);
  const netmodel::GroupShape tp = netmodel::strided_group_shape(net, full.t, grid.stride(model::GridDim::Tp));
  // Context parallelism's ring on the cp group where the full job places it.
  const netmodel::GroupShape cp = netmodel::strided_group_shape(net, full.c, grid.stride(model::GridDim::Cp));

  const auto n = static_cast<std::uint32_t>(g.num_tasks());
  std::vector<double> duration(n), start(n), end(n);
  for (std::uint32_t v = 0; v < n; ++v) {
    const Task& t = g.tasks()[v];
    duration[v] = t.is_compute()         ? cost.duration(t)
                  : t.group == GROUP_TP ? tuned_time(t.collective, tp, static_cast<double>(t.bytes))
                  : t.group == GROUP_CP ? tuned_time(t.collective, cp, static_cast<double>(t.bytes))
                                        : 0.0;
  }
  // The graph's tasks are numbered in emission order, predecessors first: one pass schedules them.
  for (std::uint32_t v = 0; v < n; ++v) {
    double ready = 0;
    for (auto p : g.predecessors(v)) ready = std::max(ready, end[p]);
    start[v] = ready;
    end[v] = ready + duration[v];
  }
  // Span of a phase of a part of the graph (layer 0, the embedding -1, the output -2).
  auto span = [&](std::int32_t layer, bool forward, double* tp_time) {
    double lo = kInf, hi = 0;
    for (std::uint32_t v = 0; v < n; ++v) {
      const Task& t = g.tasks()[v];
      if (t.layer != layer || t.kind == SEND || t.kind == RECV) continue;
      if (t.phase == GRADIENT_SYNC || t.phase == OPTIMIZER) continue;
      const bool fwd = t.phase == FORWARD;
      if (fwd != forward) continue;
      lo = std::min(lo, start[v]);
      hi = std::max(hi, end[v]);
      if (tp_time && t.group == GROUP_TP) *tp_time += duration[v];
    }
    return hi > lo ? hi - lo : 0.0;
  };
  LayerCosts c;
  c.forward = span(0, true, &c.tp_comm_fwd);
  c.backward = span(0, false, &c.tp_comm_bwd);
  c.embedding_fwd = span(-1, true, nullptr);
  c.embedding_bwd = span(-1, false, nullptr);
  c.output_fwd = span(-2, true, nullptr);
  c.output_bwd = span(-2, false, nullptr);
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
  const std::string key = key_scenario.SerializeAsString() + "|" + std::to_string(grid.stride(model::GridDim::Tp)) +
                          "|" + std::to_string(grid.stride(model::GridDim::Cp));
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
  // The estimator times dense layers only: a MoE layer's router, all-to-alls and experts are the
  // simulator's (issue: the planner searches ep with the MoE estimate).
  if (sc.model().num_experts() > 0)
    throw InputError("model.num_experts " + std::to_string(sc.model().num_experts()) +
                     ": the fast estimator and the layout search do not model Mixture-of-Experts layers yet; "
                     "simulate the layout with parallax simulate");
  if (sc.model().kv_lora_rank() > 0 || sc.model().sliding_window() > 0)
    throw InputError(std::string(sc.model().kv_lora_rank() > 0 ? "model.kv_lora_rank" : "model.sliding_window") +
                     ": the fast estimator and the layout search do not model " +
                     (sc.model().kv_lora_rank() > 0 ? "multi-head latent" : "sliding-window") +
                     " attention yet; simulate the layout with parallax simulate");
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
  // Chunk times per virtual stage: the slowest stage sets the pace through the schedule's timing.
  std::vector<double> fwd(static_cast<std::size_t>(VS)), bwd(static_cast<std::size_t>(VS));
  for (std::int64_t vs = 0; vs < VS; ++vs) {
    fwd[static_cast<std::size_t>(vs)] = chunk_layers(vs) * lc.forward;
    bwd[static_cast<std::size_t>(vs)] = chunk_layers(vs) * lc.backward;
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
        f = std::max(f, chunk_layers(vs) * gather);
        b = std::max(b, backward_gathers ? chunk_layers(vs) * (gather + reduce) : lc.backward + chunk_layers(vs) * reduce);
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
        if (vs == VS - 1) params.push_back(model::output_parameters(d, tied).local());
        for (std::int64_t k = 0; k < partition.layers(vs); ++k) params.push_back(model::layer_parameters(d).local());
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
    if (vs == 0) t = std::max(t, done[k++]) + lc.embedding_fwd;
    for (std::int64_t l = 0; l < partition.layers(vs); ++l) t = std::max(t, done[k++]) + lc.forward;
    if (vs == VS - 1) t = std::max(t, done[k++]) + lc.output_fwd;
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
              step.forward ? fwd[static_cast<std::size_t>(vs)] : bwd[static_cast<std::size_t>(vs)];
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
  const model::ParameterShard layer_params = model::layer_parameters(d);
  StepEstimate est;
  double step = 0;
  std::vector<double> stage_end(static_cast<std::size_t>(P));
  double dp_comm_stage0 = 0;
  for (std::int64_t s = 0; s < P; ++s) {
    const double compute_end = free_at[static_cast<std::size_t>(s)];
    double dp_free = 0, dp_total = 0;
    if (model::dp_cp(d) > 1 && zero < 2) {
      // Buckets per chunk in backward order, as the builder makes them; each is ready when its last
      // layer's final backward ends.
      struct Bucket {
        double ready, params;
      };
      std::vector<Bucket> buckets;
      for (std::int64_t c = 0; c < V; ++c) {
        const std::int64_t vs = c * P + s;
        double t = final_bwd_start[static_cast<std::size_t>(vs)];
        std::vector<std::pair<double, double>> items;  // (finish time, params)
        if (vs == VS - 1) {
          t += lc.output_bwd;
          items.push_back({t, model::output_parameters(d, tied).local()});
        }
        for (std::int64_t k = 0; k < partition.layers(vs); ++k) {
          t += lc.backward;
          items.push_back({t, layer_params.local()});
        }
        if (vs == 0) {
          t += lc.embedding_bwd;
          items.push_back({t, model::embedding_parameters(d).local()});
        }
        double acc = 0, ready = 0;
        for (const auto& [finish, params] : items) {
          if (params <= 0) continue;
          acc += params;
          ready = finish;
          if (acc >= capacity) {
            buckets.push_back({ready, acc});
            acc = 0;
          }
        }
        if (acc > 0) buckets.push_back({ready, acc});
      }
      std::sort(buckets.begin(), buckets.end(), [](const Bucket& a, const Bucket& b) { return a.ready < b.ready; });
      for (const auto& b : buckets) {
        const double t = tuned_time(zero >= 1 ? REDUCE_SCATTER : ALL_REDUCE, dp, b.params * grad_bytes);
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
    if (tied && P > 1 && (s == 0 || s == P - 1)) {
      const double t = tuned_time(ALL_REDUCE, netmodel::strided_group_shape(net, 2, grid.stride(model::GridDim::Pp) * (P - 1)),
                                  model::embedding_parameters(d).word * grad_bytes);
      dp_free = std::max(dp_free, compute_end) + t;
      dp_total += t;
    }
    // Adam over the local (ZeRO: sharded) parameters.
    double params = model::stage_parameters(d, tied, s, partition.stage_layers(s)).local();
    if (zero >= 1) params /= static_cast<double>(model::dp_cp(d));
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
      const double gathers = tuned_time(ALL_GATHER, dp, model::stage_parameters(d, tied, s, partition.stage_layers(s)).local() * d.e);
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
  const double layers_on_stage = static_cast<double>(partition.stage_layers(static_cast<std::int64_t>(busiest)));
  est.step_s = step;
  est.compute_s = busy[busiest];
  est.tp_comm_s = (lc.tp_comm_fwd + lc.tp_comm_bwd) * layers_on_stage * static_cast<double>(M);
  est.pp_comm_s = P > 1 ? 2.0 * p2p * static_cast<double>(M * V) : 0.0;
  est.dp_comm_s = dp_comm_stage0;
  est.bubble_s = std::max(0.0, free_at[busiest] - busy[busiest]);
  est.exposed_comm_s = std::max(0.0, step - free_at[busiest]) + est.tp_comm_s;
  const double recompute_share = layout.recompute() == Layout::FULL ? 0.25 : 0.0;
  std::vector<std::pair<double, std::string>> costs = {
      {est.compute_s - est.tp_comm_s, "compute"},
      {est.bubble_s, "pipeline bubble"},
      {est.tp_comm_s, "tensor-parallel communication"},
      {std::max(0.0, step - free_at[busiest]), "data-parallel gradient sync and optimizer"},
  };
  std::sort(costs.rbegin(), costs.rend());
  est.bottleneck = costs.front().second;
  if (est.bottleneck == "compute" && recompute_share > 0) est.bottleneck = "compute (a quarter of it full recompute)";
  return est;
}

}  // namespace parallax::planner
