#include "parallax/exec/plan.h"

#include "parallax/model/scenario.h"
#include "parallax/traces/io.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <queue>
#include <string>

namespace parallax::exec {

void check_world_size(const model::JobGraph& graph, int world_size) {
  const model::RankGrid grid = model::rank_grid(graph.scenario());
  const auto ranks = static_cast<int>(grid.size());
  if (world_size != ranks)
    throw InputError("the plan is for " + std::to_string(ranks) + " ranks (" + model::grid_shape_text(grid) + ") but " +
                     std::to_string(world_size) +
                     " processes were started; launch it with `mpirun -np " + std::to_string(ranks) + " ...`");
}

namespace {

// Imported traces list nodes in file order, which need not be a dependency order; each stream runs
// its tasks in plan order and waits for their dependencies, so a task listed before its own
// predecessor would wait forever. Reorder topologically, keeping file order among ready tasks.
void order_topologically(const model::JobGraph& graph, RankPlan& plan) {
  const auto n = plan.tasks.size();
  std::unordered_map<std::uint32_t, std::size_t> index;
  for (std::size_t i = 0; i < n; ++i) index[plan.tasks[i]] = i;
  std::vector<std::size_t> left(n, 0);
  std::vector<std::vector<std::size_t>> successors(n);
  for (std::size_t i = 0; i < n; ++i)
    for (auto p : local_predecessors(graph, plan, plan.tasks[i])) {
      ++left[i];
      successors[index.at(p)].push_back(i);
    }
  std::priority_queue<std::size_t, std::vector<std::size_t>, std::greater<>> ready;
  for (std::size_t i = 0; i < n; ++i)
    if (left[i] == 0) ready.push(i);
  std::vector<std::uint32_t> ordered;
  ordered.reserve(n);
  while (!ready.empty()) {
    const auto i = ready.top();
    ready.pop();
    ordered.push_back(plan.tasks[i]);
    for (auto s : successors[i])
      if (--left[s] == 0) ready.push(s);
  }
  // The importer refuses cycles; a graph from elsewhere with one is refused here too.
  if (ordered.size() != n)
    throw InputError("rank " + std::to_string(plan.rank) + "'s tasks have a dependency cycle; the job cannot run");
  plan.tasks = std::move(ordered);
}

void plan_imported(const model::JobGraph& graph, RankPlan& plan) {
  plan.imported = true;
  order_topologically(graph, plan);
  // The k-th send of rank s to rank d (in s's program order) has tag k on both sides; a recv finds
  // its send through the send -> recv edge the importer added.
  std::map<std::uint32_t, std::unordered_map<std::uint32_t, int>> send_index;  // source -> send id -> k
  auto sends_of = [&](std::uint32_t source) -> const std::unordered_map<std::uint32_t, int>& {
    auto [it, fresh] = send_index.try_emplace(source);
    if (fresh) {
      std::map<std::int32_t, int> next;  // destination -> next k
      for (auto id : graph.rank_tasks(source)) {
        const model::Task& t = graph.tasks()[id];
        if (t.kind == SEND) it->second[id] = next[t.peer]++;
      }
    }
    return it->second;
  };
  for (auto id : plan.tasks) {
    const model::Task& t = graph.tasks()[id];
    if (t.kind == SEND) {
      plan.transfer_tags[id] = sends_of(plan.rank).at(id);
    } else if (t.kind == RECV) {
      const auto source = static_cast<std::uint32_t>(t.peer);
      bool found = false;
      for (auto p : graph.predecessors(id))
        if (graph.tasks()[p].kind == SEND && graph.tasks()[p].rank == source) {
          plan.transfer_tags[id] = sends_of(source).at(p);
          found = true;
          break;
        }
      if (!found)
        throw InputError("recv task " + std::to_string(id) + " (" + graph.task_name(id) + ") of rank " +
                         std::to_string(plan.rank) + " has no matching send from rank " + std::to_string(source) +
                         " in the graph");
    }
  }
}

}  // namespace

RankPlan plan_for_rank(const model::JobGraph& graph, std::uint32_t rank) {
  RankPlan plan;
  plan.rank = rank;
  plan.grid = model::rank_grid(graph.scenario());
  const auto stage = plan.grid.stage(rank);
  bool found = false;
  for (std::size_t i = 0; i < graph.ranks().size(); ++i) {
    const auto& rc = graph.ranks()[i];
    // The rank itself, or (under symmetry) the representative of its stage.
    if (rc.rank == rank || (!found && rc.multiplicity > 1 && rc.pp_stage == stage)) {
      plan.representative = i;
      found = true;
      if (rc.rank == rank) break;
    }
  }
  if (!found) throw InputError("the plan has no tasks for rank " + std::to_string(rank));
  const auto list = graph.rank_tasks(plan.representative);
  plan.tasks.assign(list.begin(), list.end());
  if (graph.imported()) plan_imported(graph, plan);
  return plan;
}

std::uint32_t transfer_peer(const RankPlan& plan, const model::Task& task) {
  if (plan.imported) return static_cast<std::uint32_t>(task.peer);  // every rank explicit
  // The representative's peer is in another stage; this rank's peer is its own pipeline's rank there.
  const auto peer_stage = plan.grid.stage(static_cast<std::uint32_t>(task.peer));
  return plan.grid.with(plan.rank, model::GridDim::Pp, peer_stage);
}

int transfer_tag(const model::Task& task) {
  const int boundary = std::max(0, static_cast<int>(task.layer));
  const int direction = task.phase == BACKWARD ? 1 : 0;
  // 32767 is the smallest MPI_TAG_UB the standard allows; OpenMPI's is far larger.
  // In 64 bits: a plan file may hold any int32 micro-batch index.
  const std::int64_t microbatch = std::max<std::int64_t>(0, task.microbatch);
  return static_cast<int>(((microbatch * 2 + direction) * 4096 + boundary) % (1 << 30));
}

int transfer_tag(const RankPlan& plan, std::uint32_t id, const model::Task& task) {
  if (!plan.imported) return transfer_tag(task);
  return plan.transfer_tags.at(id) % (1 << 30);
}

std::uint32_t trace_gemm_side(const model::Task& task, std::uint32_t cap) {
  return std::min(std::max(1u, task.gemm_m), std::max(1u, cap));
}

std::vector<std::uint32_t> local_predecessors(const model::JobGraph& graph, const RankPlan& plan, std::uint32_t task) {
  std::vector<std::uint32_t> out;
  const auto my_rank = graph.ranks()[plan.representative].rank;
  for (auto p : graph.predecessors(task))
    if (graph.tasks()[p].rank == my_rank) out.push_back(p);
  return out;
}

double task_buffer_bytes(const model::Task& t, bool imported, std::uint32_t gemm_side_cap,
                         std::uint64_t bytes_cap) {
  if (runs_measured_duration(t)) return 0;
  const double bytes = static_cast<double>(imported ? std::min(t.bytes, bytes_cap) : t.bytes);
  if (t.kind == GEMM && t.op == model::Op::TraceCompute) {
    const double side = trace_gemm_side(t, gemm_side_cap);
    return 3 * 4 * side * side;
  }
  if (t.kind == GEMM && t.op == model::Op::FlashAttention) {
    // Per query head: q, o, do, dq (seq_q x head_dim) and the log-sum-exp; per kv head (at most one
    // per query head) k, v, dk, dv; and a saved o and lse for the backward. No seq x seq matrix.
    const double batch = std::max(1u, t.gemm_batch), q = batch * t.gemm_m * t.gemm_k, kv = batch * t.gemm_n * t.gemm_k;
    return 4 * (5 * q + 4 * kv + 2 * batch * t.gemm_m);
  }
  switch (t.kind) {
    case GEMM: {
      const double m = t.gemm_m, n = t.gemm_n, k = t.gemm_k;
      return 4 * (m * k + k * n + m * n);
    }
    case MEMORY_BOUND:
      return bytes;
    case COLLECTIVE:
      return 3 * bytes;
    default:
      return bytes;  // SEND, RECV
  }
}

double host_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<double>(pages) * static_cast<double>(page) : 0;
}

void check_task_buffers(const model::JobGraph& graph, std::uint32_t gemm_side_cap,
                        std::uint64_t bytes_cap, double memory_bytes, const std::string& source) {
  if (!(memory_bytes > 0)) return;  // unknown: nothing to compare with
  auto gib = [](double b) {
    char text[32];
    std::snprintf(text, sizeof text, "%.3g GiB", b / (1024.0 * 1024 * 1024));
    return std::string(text);
  };
  for (std::uint32_t id = 0; id < graph.num_tasks(); ++id) {
    const model::Task& t = graph.tasks()[id];
    const double need = task_buffer_bytes(t, graph.imported(), gemm_side_cap, bytes_cap);
    if (need <= memory_bytes) continue;
    std::string sizes = t.kind == GEMM && t.op != model::Op::TraceCompute
                            ? "gemm_m " + std::to_string(t.gemm_m) + ", gemm_n " +
                                  std::to_string(t.gemm_n) + ", gemm_k " +
                                  std::to_string(t.gemm_k) + " (fp32 operands)"
                            : "bytes " + std::to_string(t.bytes);
    throw InputError(
        source + ": task " + std::to_string(id) + " (" + graph.task_name(id) + ", rank " +
        std::to_string(t.rank) + ") needs " + gib(need) + " of buffers for " + sizes +
        ", more than this host's " + gib(memory_bytes) +
        " of memory; the plan cannot run here (use a smaller model or micro_batch_size, or "
        "more tensor parallelism)");
  }
}

}  // namespace parallax::exec
