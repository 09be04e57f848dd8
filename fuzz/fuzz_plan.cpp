// libFuzzer target: a plan file (parallax.JobGraph, protobuf binary) as `parallax exec PLAN.pb`
// reads it: parsed, turned into a model::JobGraph (from_proto validates ranks, tasks, edges and the
// scenario), then used as the executor uses it: the world size, every rank's plan, pipeline peers
// and tags, local predecessors, and a topological order. A fuzzed plan must end in
// parallax::InputError or be safe for all of these; an out-of-bounds index, another exception or a
// hang is a finding.
#include "fuzz_support.h"

#include "parallax/exec/plan.h"
#include "parallax/model/job_graph.h"
#include "parallax/traces/io.h"

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    parallax::JobGraph proto;
    parallax::traces::parse_binary(bytes, "fuzz-plan.pb", proto);
    // A valid plan of a big job is legitimate and slow; see small_enough_to_build.
    if (proto.has_scenario() && !parallax::fuzz::small_enough_to_build(proto.scenario())) return 0;
    const parallax::model::JobGraph graph =
        parallax::model::JobGraph::from_proto(proto, "fuzz-plan.pb");
    const parallax::model::RankGrid grid = parallax::model::rank_grid(graph.scenario());
    parallax::exec::check_world_size(graph, static_cast<int>(grid.size()));
    for (std::uint32_t rank = 0; rank < grid.size(); ++rank) {
      const parallax::exec::RankPlan plan = parallax::exec::plan_for_rank(graph, rank);
      for (const std::uint32_t task : plan.tasks) {
        const parallax::model::Task& t = graph.tasks()[task];
        if (t.kind == parallax::SEND || t.kind == parallax::RECV) {
          (void)parallax::exec::transfer_peer(plan, t);
          (void)parallax::exec::transfer_tag(t);
        }
        (void)parallax::exec::local_predecessors(graph, plan, task);
        (void)graph.task_name(task);
      }
    }
    (void)graph.topological_order();
    (void)graph.expanded_tasks();
    (void)graph.expanded_edges();
    (void)graph.hardware_flops();
    (void)graph.model_flops();
  } catch (const parallax::InputError&) {
    // The reader's answer to bad input.
  }
  return 0;
}
