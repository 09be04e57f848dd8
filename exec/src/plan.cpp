#include "parallax/exec/plan.h"

#include "parallax/model/scenario.h"
#include "parallax/traces/io.h"

#include <string>

namespace parallax::exec {

void check_world_size(const model::JobGraph& graph, int world_size) {
  const model::RankGrid grid = model::rank_grid(graph.scenario());
  const auto ranks = static_cast<int>(grid.size());
  if (world_size != ranks)
    throw InputError("the plan is for " + std::to_string(ranks) + " ranks (dp " + std::to_string(grid.d) + " x tp " +
                     std::to_string(grid.t) + " x pp " + std::to_string(grid.p) + ") but " + std::to_string(world_size) +
                     " processes were started; launch it with `mpirun -np " + std::to_string(ranks) + " ...`");
}

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
  return plan;
}

std::uint32_t transfer_peer(const RankPlan& plan, const model::Task& task) {
  // The representative's peer is in another stage; this rank's peer is its own (tp, dp) in that stage.
  const auto peer_stage = plan.grid.stage(static_cast<std::uint32_t>(task.peer));
  return plan.grid.rank(plan.grid.tp(plan.rank), plan.grid.dp(plan.rank), peer_stage);
}

int transfer_tag(const model::Task& task) {
  const int boundary = std::max(0, static_cast<int>(task.layer));
  const int direction = task.phase == BACKWARD ? 1 : 0;
  // 32767 is the smallest MPI_TAG_UB the standard allows; OpenMPI's is far larger.
  return ((task.microbatch * 2 + direction) * 4096 + boundary) % (1 << 30);
}

std::vector<std::uint32_t> local_predecessors(const model::JobGraph& graph, const RankPlan& plan, std::uint32_t task) {
  std::vector<std::uint32_t> out;
  const auto my_rank = graph.ranks()[plan.representative].rank;
  for (auto p : graph.predecessors(task))
    if (graph.tasks()[p].rank == my_rank) out.push_back(p);
  return out;
}

}  // namespace parallax::exec
