#include "parallax/sim/simulate.h"

#include "collectives.h"
#include "parallax/analysis/timeline_analysis.h"
#include "parallax/model/cost_model.h"
#include "parallax/model/memory_model.h"
#include "parallax/model/parameters.h"
#include "parallax/model/rank_grid.h"
#include "parallax/model/stage_partition.h"
#include "parallax/model/scenario.h"
#include "parallax/model/schedule.h"
#include "parallax/sim/runner.h"
#include "parallax/traces/io.h"
#include "parallax/traces/lanes.h"

#include <simgrid/kernel/Timer.hpp>
#include <simgrid/s4u.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <stdexcept>
#include <unordered_map>

namespace parallax::sim {

namespace {

namespace s4u = simgrid::s4u;
using model::Task;
constexpr double kUnset = -1.0;

using Grid = model::RankGrid;

class Simulator;
Simulator* g_current = nullptr;  // SimGrid's completion signal is global; one simulation per process

// A set of flows started together; the next phase starts when all have completed.
struct FlowRun {
  std::vector<std::uint32_t> tasks;  // the graph tasks this run completes (collective participants or a send)
  std::vector<Phase> phases;
  std::size_t phase = 0;
  int pending = 0;
  double extra_latency = 0;  // analytic per-step latencies not carried by the flows
  double alone_s = 0;        // duration with the network to itself
  double launched_at = 0;    // when the flows started (after any rendezvous)
};

class Simulator {
 public:
  Simulator(const model::JobGraph& graph, const SimulationOptions& options)
      : graph_(graph),
        options_(options),
        sc_(graph.scenario()),
        dims_(model::dims(sc_)),
        grid_(model::rank_grid(sc_)),
        cost_(sc_.cluster().gpu(), sc_.model().precision()) {}

  SimulationResult run() {
    const auto wall_start = std::chrono::steady_clock::now();
    wall_start_ = last_progress_ = wall_start;
    if (options_.progress) progress_interval_ = progress_interval_s();
    int argc = 3;
    char arg0[] = "parallax", arg1[] = "--log=root.thres:critical", arg2[] = "--log=xbt_cfg.thres:critical";
    char* argv[] = {arg0, arg1, arg2, nullptr};
    s4u::Engine engine(&argc, argv);
    // A fluid RDMA model: no TCP window or slow-start effects, so a lone transfer of B bytes takes
    // B / bandwidth + latency (docs/architecture.md, the simulator).
    engine.set_config("network/model:CM02");
    engine.set_config("network/crosstraffic:0");
    engine.set_config("network/TCP-gamma:0");
    platform_ = std::make_unique<Platform>(sc_.cluster());
    collectives_ = std::make_unique<CollectivePlanner>(*platform_, options_.algorithm);
    link_bytes_.assign(platform_->topology().links().size(), 0.0);
    setup_ranks();
    g_current = this;
    s4u::Activity::on_completion_cb([](const s4u::Activity& a) {
      if (g_current) g_current->on_flow_done(a);
    });
    start_time_ = s4u::Engine::get_clock();

    const auto n = graph_.num_tasks();
    start_.assign(n, kUnset);
    end_.assign(n, kUnset);
    remaining_.resize(n);
    for (std::uint32_t v = 0; v < n; ++v) remaining_[v] = static_cast<std::uint32_t>(boost::in_degree(v, graph_.graph()));
    for (std::uint32_t v = 0; v < n; ++v)
      if (remaining_[v] == 0) ready(v);
    engine.run();
    g_current = nullptr;
    graveyard_.clear();

    std::size_t unfinished = 0;
    std::uint32_t first_unfinished = 0;
    for (std::uint32_t v = 0; v < n; ++v)
      if (end_[v] == kUnset && unfinished++ == 0) first_unfinished = v;
    if (unfinished)
      throw std::logic_error("simulation deadlocked: " + std::to_string(unfinished) + " tasks never ran, first " +
                             graph_.task_name(first_unfinished) + " on rank " +
                             std::to_string(graph_.tasks()[first_unfinished].rank));
    SimulationResult result;
    build_report(result);
    result.report.set_wall_s(std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count());
    return result;
  }

  void on_flow_done(const s4u::Activity& activity) {
    graveyard_.clear();  // comms completed earlier are no longer referenced by SimGrid
    auto it = live_.find(&activity);
    if (it == live_.end()) return;
    FlowRun* run = static_cast<FlowRun*>(it->second.second);
    graveyard_.push_back(std::move(it->second.first));
    live_.erase(it);
    if (--run->pending == 0) advance(run);
  }

 private:
  double now() const { return s4u::Engine::get_clock() - start_time_; }

  void setup_ranks() {
    stored_of_rank_.assign(static_cast<std::size_t>(dims_.gpus), -1);
    stage_rep_.assign(static_cast<std::size_t>(dims_.p), -1);
    for (std::size_t i = 0; i < graph_.ranks().size(); ++i) {
      const auto& rc = graph_.ranks()[i];
      stored_of_rank_[rc.rank] = static_cast<std::int32_t>(i);
      if (rc.multiplicity > 1) stage_rep_[static_cast<std::size_t>(rc.pp_stage)] = static_cast<std::int32_t>(i);
    }
    symmetric_ = graph_.uses_symmetry();
    // Skipping the flows of TP groups other than the representative's is exact when those groups'
    // NVLink links carry nothing else: every other communicator has at most one member per node.
    const std::int64_t g = platform_->topology().gpus_per_node();
    // Ranks fill nodes in rank order, so a TP group is inside one node when its span (stride * t)
    // divides the node, and every other dimension has at most one member per node when its stride
    // is a node or more.
    const std::int64_t tp_span = grid_.stride(model::GridDim::Tp) * grid_.extent(model::GridDim::Tp);
    const bool tp_in_node = tp_span <= g && g % tp_span == 0;
    bool others_cross_nodes = true;
    for (model::GridDim dim : grid_.order())
      if (dim != model::GridDim::Tp && grid_.extent(dim) > 1 && grid_.stride(dim) < g) others_cross_nodes = false;
    skip_tp_images_ = symmetric_ && tp_in_node && others_cross_nodes;
    if (symmetric_)
      notes_.push_back("symmetry: one representative rank per pipeline stage is simulated for its " +
                       std::to_string(grid_.pipelines()) + (dims_.c > 1 ? " tp x cp x dp" : " tp x dp") +
                       " peers (their task lists are identical); the data-parallel, pipeline and "
                       "embedding flows of every peer are simulated, so shared links contend");
    if (skip_tp_images_ && dims_.t > 1)
      notes_.push_back("symmetry: tensor-parallel collectives are simulated for the representative's group only: each "
                       "TP group has its node's NVLink links to itself (no other communicator has two members in a "
                       "node), so the other groups' flows cannot interact with it");
  }

  std::int32_t stored_index(std::uint32_t rank) const {
    if (stored_of_rank_[rank] >= 0) return stored_of_rank_[rank];
    return symmetric_ ? stage_rep_[static_cast<std::size_t>(grid_.stage(rank))] : -1;
  }

  // The ranks a stored representative stands for (itself alone without symmetry).
  std::vector<std::uint32_t> images(std::uint32_t rank) const {
    if (!symmetric_) return {rank};
    return grid_.stage_ranks(grid_.stage(rank));
  }

  void ready(std::uint32_t v) {
    const Task& t = graph_.tasks()[v];
    start_[v] = now();
    switch (t.kind) {
      case GEMM:
      case MEMORY_BOUND: {
        if (graph_.imported()) {
          // An execution trace's dependencies do not order a rank's kernels among themselves (a
          // built graph's stream edges do): as ASTRA-sim, one kernel at a time per GPU and one CPU
          // op at a time per host, in the order they become ready.
          const std::size_t lane = 2 * static_cast<std::size_t>(t.rank) + (t.on_host ? 1 : 0);
          if (lane_busy_.empty()) {
            lane_busy_.assign(2 * static_cast<std::size_t>(dims_.gpus), false);
            lane_queue_.resize(lane_busy_.size());
          }
          if (lane_busy_[lane]) {
            lane_queue_[lane].push_back(v);
            return;
          }
          lane_busy_[lane] = true;
        }
        start_compute(v);
        return;
      }
      case RECV: {
        // The transfer is the matching send's flow: the recv spans it.
        for (auto [it, end] = boost::in_edges(v, graph_.graph()); it != end; ++it) {
          const auto s = boost::source(*it, graph_.graph());
          if (graph_.tasks()[s].kind == SEND) start_[v] = start_[s];
        }
        finish(v);
        return;
      }
      case SEND: {
        auto run = std::make_unique<FlowRun>();
        run->tasks = {v};
        Phase phase;
        // Every rank the sender stands for sends its own copy to its own peer.
        if (symmetric_) {
          const std::int64_t peer_stage = grid_.stage(static_cast<std::uint32_t>(t.peer));
          for (auto r : images(t.rank))
            phase.push_back({r, grid_.with(r, model::GridDim::Pp, peer_stage), static_cast<double>(t.bytes)});
        } else {
          phase.push_back({t.rank, static_cast<std::uint32_t>(t.peer), static_cast<double>(t.bytes)});
        }
        run->phases.push_back(std::move(phase));
        run->alone_s = netmodel::transfer_time(platform_->topology(), t.rank, static_cast<std::uint32_t>(t.peer),
                                               static_cast<double>(t.bytes));
        launch(std::move(run));
        return;
      }
      case COLLECTIVE:
        collective_ready(v);
        return;
    }
  }

  void start_compute(std::uint32_t v) {
    const Task& t = graph_.tasks()[v];
    start_[v] = now();
    // An imported trace's measured kernel time stands as measured; everything else is costed.
    const double duration = t.measured_s >= 0 ? t.measured_s : cost_.duration(t);
    ++activities_;
    simgrid::kernel::timer::Timer::set(s4u::Engine::get_clock() + duration, [this, v] { compute_done(v); });
  }

  void compute_done(std::uint32_t v) {
    if (!lane_busy_.empty()) {
      const Task& t = graph_.tasks()[v];
      const std::size_t lane = 2 * static_cast<std::size_t>(t.rank) + (t.on_host ? 1 : 0);
      // The lane's next queued task starts before this one's successors become ready (FIFO).
      if (lane_queue_[lane].empty()) {
        lane_busy_[lane] = false;
      } else {
        const auto next = lane_queue_[lane].front();
        lane_queue_[lane].pop_front();
        start_compute(next);
      }
    }
    finish(v);
  }

  void collective_ready(std::uint32_t v) {
    const Task& t = graph_.tasks()[v];
    if (t.communicator >= 0) {
      explicit_collective_ready(v);
      return;
    }
    const auto members = grid_.members(t.group, t.rank);
    // Stored ranks taking part: the collective starts when each has reached it (NCCL matches
    // collectives on a communicator by issue order).
    std::vector<std::int32_t> participants;
    for (auto m : members) {
      const auto s = stored_index(m);
      if (s >= 0 && std::find(participants.begin(), participants.end(), s) == participants.end()) participants.push_back(s);
    }
    const std::uint64_t group_id = members.front();
    const std::uint64_t seq = sequence_[{static_cast<std::uint64_t>(stored_index(t.rank)), static_cast<std::uint64_t>(t.group) << 40 | group_id}]++;
    const std::uint64_t key = ((group_id << 8 | static_cast<std::uint64_t>(t.group)) << 32) ^ seq;
    auto& waiting = rendezvous_[key];
    waiting.push_back(v);
    if (waiting.size() < participants.size()) return;

    auto run = std::make_unique<FlowRun>();
    run->tasks = std::move(waiting);
    rendezvous_.erase(key);
    // The groups whose flows are simulated: this group, and under symmetry the same communicator of
    // every peer the representatives stand for.
    std::vector<std::vector<std::uint32_t>> groups;
    if (!symmetric_ || (t.group == GROUP_TP && skip_tp_images_)) {
      groups.push_back(members);
    } else {
      std::vector<bool> seen(static_cast<std::size_t>(dims_.gpus), false);
      for (auto r : images(t.rank)) {
        auto g = grid_.members(t.group, r);
        if (seen[g.front()]) continue;
        seen[g.front()] = true;
        groups.push_back(std::move(g));
      }
    }
    const CollectivePlan plan = collectives_->plan(t.collective, groups, static_cast<double>(t.bytes));
    ++algorithms_[plan.algorithm];
    run->phases = plan.phases;
    run->extra_latency = plan.extra_latency;
    run->alone_s = plan.alone_s;
    launch(std::move(run));
  }

  // A collective on an explicit communicator (imported traces: every rank stored, no symmetry). Its
  // members meet by issue order on that communicator, as NCCL matches them.
  void explicit_collective_ready(std::uint32_t v) {
    const Task& t = graph_.tasks()[v];
    const auto communicator = static_cast<std::uint64_t>(t.communicator);
    const auto& members = graph_.communicators()[communicator];
    const std::uint64_t seq = explicit_sequence_[{t.rank, communicator}]++;
    const std::pair<std::uint64_t, std::uint64_t> key{communicator, seq};
    auto& waiting = explicit_rendezvous_[key];
    waiting.push_back(v);
    if (waiting.size() < members.size()) return;
    auto run = std::make_unique<FlowRun>();
    run->tasks = std::move(waiting);
    explicit_rendezvous_.erase(key);
    const CollectivePlan plan = collectives_->plan(t.collective, {members}, static_cast<double>(t.bytes));
    ++algorithms_[plan.algorithm];
    run->phases = plan.phases;
    run->extra_latency = plan.extra_latency;
    run->alone_s = plan.alone_s;
    launch(std::move(run));
  }

  void launch(std::unique_ptr<FlowRun> owned) {
    FlowRun* run = owned.get();
    run->launched_at = now();
    runs_.emplace(run, std::move(owned));
    start_phase(run);
  }

  void start_phase(FlowRun* run) {
    while (run->phase < run->phases.size()) {
      for (const Flow& f : run->phases[run->phase]) {
        if (f.src == f.dst || f.bytes <= 0) continue;
        platform_->topology().route(f.src, f.dst, route_scratch_, route_latency_scratch_);
        for (auto id : route_scratch_) link_bytes_[id] += f.bytes;
        auto comm = s4u::Comm::sendto_async(platform_->host(f.src), platform_->host(f.dst),
                                            static_cast<std::uint64_t>(std::ceil(f.bytes)));
        live_.emplace(comm.get(), std::make_pair(comm, static_cast<void*>(run)));
        ++run->pending;
        ++flows_;
        ++activities_;
      }
      if (run->pending > 0) return;
      ++run->phase;  // nothing to send in this phase
    }
    complete(run);
  }

  void advance(FlowRun* run) {
    ++run->phase;
    if (run->phase < run->phases.size()) {
      start_phase(run);
      return;
    }
    complete(run);
  }

  void complete(FlowRun* run) {
    if (run->extra_latency > 0) {
      const double latency = run->extra_latency;
      run->extra_latency = 0;
      ++activities_;
      simgrid::kernel::timer::Timer::set(s4u::Engine::get_clock() + latency, [this, run] { complete(run); });
      return;
    }
    const auto tasks = run->tasks;
    // Time lost to sharing links with other flows (waiting for peers at a rendezvous is not).
    contention_ += std::max(0.0, (now() - run->launched_at) - run->alone_s);
    runs_.erase(run);
    for (auto v : tasks) finish(v);
  }

  void finish(std::uint32_t v) {
    end_[v] = now();
    // Reads the wall clock every 1024 tasks only; prints nothing that feeds the prediction.
    if (options_.progress && (++finished_ & 1023u) == 0) report_progress();
    for (auto [it, end] = boost::adjacent_vertices(v, graph_.graph()); it != end; ++it)
      if (--remaining_[*it] == 0) ready(*it);
  }

  // ---- progress ----

  void report_progress() {
    const auto now_wall = std::chrono::steady_clock::now();
    if (std::chrono::duration<double>(now_wall - last_progress_).count() < progress_interval_)
      return;
    last_progress_ = now_wall;
    const double elapsed = std::chrono::duration<double>(now_wall - wall_start_).count();
    const double done = static_cast<double>(finished_) / static_cast<double>(graph_.num_tasks());
    std::string left;
    if (done > 0 && done < 1)
      left = ", about " +
             std::to_string(static_cast<long long>(elapsed * (1 - done) / done + 0.5)) + " s left";
    std::fprintf(stderr, "simulating: %d%% of %zu tasks done, %lld s elapsed%s\n",
                 static_cast<int>(done * 100), graph_.num_tasks(),
                 static_cast<long long>(elapsed + 0.5), left.c_str());
    std::fflush(stderr);
  }

  // ---- report ----

  void build_report(SimulationResult& result) {
    Report& r = result.report;
    const auto n = graph_.num_tasks();
    double step = 0;
    for (std::uint32_t v = 0; v < n; ++v) step = std::max(step, end_[v]);
    const double gpus = static_cast<double>(dims_.gpus);
    const double peak = cost_.peak_flops();
    r.set_scenario_name(sc_.name());
    r.set_gpus(static_cast<std::int32_t>(dims_.gpus));
    if (graph_.imported()) {
      imported_report(result, step);
      return;
    }
    r.set_parameters(model::total_parameters(dims_, sc_.model().tied_embeddings()));
    r.set_model_flops(graph_.model_flops());
    r.set_hardware_flops(graph_.hardware_flops());
    r.set_tasks(graph_.expanded_tasks());
    r.set_edges(graph_.expanded_edges());
    r.set_microbatches(static_cast<std::int32_t>(dims_.m));
    r.set_bubble_fraction(model::layout_bubble_fraction(sc_));
    const model::StagePartition partition = model::stage_partition(sc_);
    r.set_step_time_s(step);
    r.set_tflops_per_gpu(graph_.hardware_flops() / (gpus * step) / 1e12);
    r.set_mfu(graph_.model_flops() / (gpus * step * peak));
    r.set_hfu(graph_.hardware_flops() / (gpus * step * peak));
    r.set_tokens_per_s(static_cast<double>(dims_.B * dims_.s) / step);
    if (sc_.options().token_budget() > 0) {
      r.set_token_budget(sc_.options().token_budget());
      r.set_time_to_train_s(sc_.options().token_budget() / r.tokens_per_s());
    }
    const model::MemoryEstimate memory = model::estimate_memory(sc_);
    r.set_peak_memory_bytes(memory.peak().total());
    r.set_memory_capacity_bytes(memory.capacity);
    r.set_fits(memory.fits());
    for (const auto& m : memory.stages) {
      auto* mb = r.add_memory();
      mb->set_pp_stage(static_cast<std::int32_t>(m.stage));
      mb->set_rank(grid_.stage_representative(m.stage));
      mb->set_weights_bytes(m.weights);
      mb->set_gradients_bytes(m.gradients);
      mb->set_optimizer_bytes(m.optimizer);
      mb->set_activations_bytes(m.activations + m.transient);
      mb->set_reserved_bytes(m.reserved);
      mb->set_total_bytes(m.total());
      // In micro-batches of the stage's layers (a stage without layers holds none).
      const double stage_layers =
          static_cast<double>(partition.stage_layers(m.stage));
      mb->set_microbatches_in_flight(stage_layers > 0 ? m.layers_in_flight / stage_layers : 0.0);
    }
    breakdown(r, step, &memory);
    finish_report(result, step);
  }

  // A graph imported from an execution trace has no model: no parameters, memory, tokens or
  // pipeline schedule; its FLOPs are the trace's operation counts.
  void imported_report(SimulationResult& result, double step) {
    Report& r = result.report;
    const double gpus = static_cast<double>(dims_.gpus), peak = cost_.peak_flops();
    r.set_model_flops(graph_.model_flops());
    r.set_hardware_flops(graph_.hardware_flops());
    r.set_tasks(graph_.expanded_tasks());
    r.set_edges(graph_.expanded_edges());
    r.set_step_time_s(step);
    if (step > 0) {
      r.set_tflops_per_gpu(graph_.hardware_flops() / (gpus * step) / 1e12);
      r.set_mfu(graph_.model_flops() / (gpus * step * peak));
      r.set_hfu(graph_.hardware_flops() / (gpus * step * peak));
    }
    breakdown(r, step, nullptr);
    finish_report(result, step);
  }

  // What every report has, built or imported graph: critical path, links, the simulator's counters
  // and notes, and the timeline.
  void finish_report(SimulationResult& result, double step) {
    Report& r = result.report;
    critical_path(r, step);
    links(r, step);
    r.set_flows(flows_);
    r.set_activities(activities_);
    for (const auto& [name, count] : algorithms_) (*r.mutable_collective_algorithms())[name] = count;
    r.set_contention_delay_s(contention_);
    for (const auto& note : notes_) r.add_notes(note);
    timeline(result.timeline);
  }

  // The breakdown and critical path of a report are the analysis of any finished timeline
  // (parallax/analysis/timeline_analysis.h), here over the simulated times of the stored tasks.
  analysis::TaskTimes task_times(double step) const {
    analysis::TaskTimes times;
    times.start = start_;
    times.end = end_;
    times.rank.resize(graph_.num_tasks());
    for (std::uint32_t v = 0; v < graph_.num_tasks(); ++v) times.rank[v] = graph_.tasks()[v].rank;
    times.event.assign(graph_.num_tasks(), -1);
    times.step_s = step;
    return times;
  }

  void breakdown(Report& r, double step, const model::MemoryEstimate* memory) {
    const std::vector<analysis::RankTime> parts = analysis::breakdown(graph_, task_times(step));
    for (std::size_t i = 0; i < graph_.ranks().size(); ++i) {
      const auto& rc = graph_.ranks()[i];
      auto* b = r.add_breakdown();
      b->set_rank(rc.rank);
      b->set_pp_stage(rc.pp_stage);
      b->set_multiplicity(rc.multiplicity);
      b->set_compute_s(parts[i].compute_s);
      b->set_overlapped_comm_s(parts[i].overlapped_comm_s);
      b->set_exposed_comm_s(parts[i].exposed_comm_s);
      b->set_bubble_s(parts[i].bubble_s);
      b->set_idle_s(parts[i].idle_s);
      if (memory) b->set_peak_memory_bytes(memory->stages[static_cast<std::size_t>(rc.pp_stage)].total());
    }
  }

  void critical_path(Report& r, double step) {
    *r.mutable_critical_path() = analysis::critical_path(graph_, task_times(step)).path;
  }

  void links(Report& r, double step) {
    std::vector<std::uint32_t> order(link_bytes_.size());
    for (std::uint32_t i = 0; i < order.size(); ++i) order[i] = i;
    const auto& info = platform_->topology().links();
    auto utilisation = [&](std::uint32_t i) { return link_bytes_[i] / (info[i].bandwidth * step); };
    std::sort(order.begin(), order.end(), [&](auto a, auto b) {
      return utilisation(a) > utilisation(b) || (utilisation(a) == utilisation(b) && a < b);
    });
    for (int i = 0; i < options_.top_links && i < static_cast<int>(order.size()); ++i) {
      const auto id = order[static_cast<std::size_t>(i)];
      if (link_bytes_[id] <= 0) break;
      auto* l = r.add_links();
      l->set_name(info[id].name);
      l->set_bandwidth_bytes_per_s(info[id].bandwidth);
      l->set_bytes(link_bytes_[id]);
      l->set_utilisation(utilisation(id));
    }
  }

  void timeline(Timeline& tl) {
    tl.set_source(Timeline::PREDICTED);
    tl.set_scenario_name(sc_.name());
    *tl.mutable_scenario() = sc_;
    // An imported graph cannot be rebuilt from its scenario (no model): the timeline carries it.
    if (graph_.imported()) *tl.mutable_graph() = graph_.to_proto();
    for (const auto& rc : graph_.ranks()) {
      auto* tr = tl.add_ranks();
      tr->set_rank(rc.rank);
      tr->set_multiplicity(rc.multiplicity);
      if (graph_.imported()) {
        tr->set_label("rank " + std::to_string(rc.rank));
        continue;
      }
      tr->set_label(model::rank_label(grid_, rc.rank));
    }
    tl.mutable_events()->Reserve(static_cast<int>(graph_.num_tasks()));
    for (std::uint32_t v = 0; v < graph_.num_tasks(); ++v) {
      const Task& t = graph_.tasks()[v];
      auto* e = tl.add_events();
      e->set_task_id(v);
      e->set_rank(t.rank);
      e->set_stream(t.stream);
      e->set_kind(t.kind);
      e->set_lane(traces::lane_of(t.stream, t.kind, t.on_host));
      e->set_start_s(start_[v]);
      e->set_end_s(end_[v]);
      if (options_.name_events) e->set_name(graph_.task_name(v));
      if (t.kind == RECV)
        for (auto [it, end] = boost::in_edges(v, graph_.graph()); it != end; ++it) {
          auto* f = tl.add_flows();
          f->set_from_task(boost::source(*it, graph_.graph()));
          f->set_to_task(v);
        }
    }
  }

  const model::JobGraph& graph_;
  SimulationOptions options_;
  const Scenario& sc_;
  model::Dims dims_;
  Grid grid_;
  model::CostModel cost_;
  std::unique_ptr<Platform> platform_;
  std::unique_ptr<CollectivePlanner> collectives_;
  double start_time_ = 0;

  std::vector<double> start_, end_;
  std::vector<std::uint32_t> remaining_;
  std::vector<std::int32_t> stored_of_rank_, stage_rep_;
  bool symmetric_ = false, skip_tp_images_ = false;

  std::map<std::pair<std::uint64_t, std::uint64_t>, std::uint64_t> sequence_;
  std::unordered_map<std::uint64_t, std::vector<std::uint32_t>> rendezvous_;
  std::map<std::pair<std::uint32_t, std::uint64_t>, std::uint64_t> explicit_sequence_;
  std::vector<bool> lane_busy_;  // imported graphs: per rank, its GPU (2r) and its host (2r + 1)
  std::vector<std::deque<std::uint32_t>> lane_queue_;
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::vector<std::uint32_t>> explicit_rendezvous_;
  std::unordered_map<FlowRun*, std::unique_ptr<FlowRun>> runs_;
  std::unordered_map<const s4u::Activity*, std::pair<s4u::CommPtr, void*>> live_;
  std::vector<s4u::CommPtr> graveyard_;
  std::vector<std::uint32_t> route_scratch_;
  double route_latency_scratch_ = 0;

  std::vector<double> link_bytes_;
  std::map<std::string, std::uint64_t> algorithms_;
  std::vector<std::string> notes_;
  std::uint64_t flows_ = 0, activities_ = 0;
  // Progress lines (options_.progress).
  std::uint64_t finished_ = 0;
  double progress_interval_ = 10;
  std::chrono::steady_clock::time_point wall_start_, last_progress_;
  double contention_ = 0;
};

}  // namespace

double progress_interval_s() {
  const char* env = std::getenv("PARALLAX_PROGRESS_INTERVAL_S");
  if (!env || !*env) return 10.0;
  const std::string text(env);
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !std::isfinite(value) || !(value > 0))
    throw InputError("PARALLAX_PROGRESS_INTERVAL_S: \"" + text.substr(0, 40) +
                     "\" is not a number of seconds > 0 (e.g. 10, the default when unset)");
  return value;
}

SimulationResult simulate(const model::JobGraph& graph, const SimulationOptions& options) {
  Simulator simulator(graph, options);
  return simulator.run();
}

SimulationResult simulate_in_subprocess(const model::JobGraph& graph, const SimulationOptions& options) {
  JobOutcome outcome = run_job([&] {
    const SimulationResult result = simulate(graph, options);
    return std::vector<std::string>{result.report.SerializeAsString(), result.timeline.SerializeAsString()};
  });
  if (outcome.status == JobOutcome::Status::InputError) throw InputError(outcome.error);
  if (!outcome.ok()) throw std::runtime_error(outcome.error);
  SimulationResult result;
  if (outcome.parts.size() != 2 || !result.report.ParseFromString(outcome.parts[0]) ||
      !result.timeline.ParseFromString(outcome.parts[1]))
    throw std::runtime_error("the simulation process sent a result that could not be read");
  return result;
}

}  // namespace parallax::sim
