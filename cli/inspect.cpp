// parallax inspect: what a scenario is before anything runs it.
#include "commands.h"
#include "format.h"
#include "model_options.h"
#include "parallax/cli/options.h"

#include "parallax/model/cost_model.h"
#include "parallax/model/formulas.h"
#include "parallax/model/job_graph.h"
#include "parallax/model/memory_model.h"
#include "parallax/model/parameters.h"
#include "parallax/model/scenario.h"
#include "parallax/model/schedule.h"
#include "parallax/traces/io.h"
#include "parallax/traces/json_writer.h"

#include <cmath>
#include <cstdio>
#include <iostream>
#include <string>

namespace parallax::cli {
namespace {

constexpr const char* kHelp = R"(usage: parallax inspect SCENARIO [--json] [-o PLAN.pb] [--hf-config FILE [--seq N]]

Builds the job graph of one training step of SCENARIO and reports:
  parameters, model FLOPs and hardware FLOPs (with recompute) per iteration, tasks and edges per
  rank and in total, peak memory per GPU and whether it fits, micro-batches and the pipeline bubble.

  --json        machine-readable output (keys: parameters, model_flops, hardware_flops, tasks,
                edges, peak_memory_bytes, fits, microbatches, bubble_fraction, ...)
  -o PLAN.pb    save the job graph (protobuf binary) for the backends
)";

constexpr const char* kHelpEnd = R"(
Environment: PARALLAX_MAX_TASKS=N  refuse (exit 2, before building) a job graph of more than N
             stored tasks (default 20000000, a few GiB); raise it on a machine with the memory.

Exit codes: 0 fits, 2 bad input, 3 does not fit in GPU memory.
)";

}  // namespace

const char* schedule_name(Layout::Schedule s) {
  switch (s) {
    case Layout::GPIPE: return "GPipe";
    case Layout::INTERLEAVED_1F1B: return "interleaved 1F1B";
    default: return "1F1B";
  }
}

const char* recompute_name(Layout::Recompute r) {
  switch (r) {
    case Layout::FULL: return "full";
    case Layout::SELECTIVE: return "selective";
    default: return "none";
  }
}

int inspect(const std::vector<std::string>& args) {
  std::string scenario_path, plan_path;
  bool json = false;
  ModelOptions model_options;
  Options options("parallax inspect", std::string(kHelp) + ModelOptions::help() + kHelpEnd);
  options.flag("--json", json)
      .output({"-o", "--output"}, plan_path, "a file name, e.g. -o plan.pb")
      .positional(scenario_path, "scenario",
                  "no scenario given; usage: parallax inspect SCENARIO [--json] [-o PLAN.pb]");
  if (!model_options.declare(options).parse(args)) return kOk;
  check_files({{"the scenario", scenario_path}, {"--hf-config", model_options.hf_config}}, {{"-o", plan_path}});

  const Scenario sc = load_scenario(scenario_path, model_options.replacement());
  const model::Dims d = model::dims(sc);
  const model::JobGraph graph = model::build_job_graph(sc, scenario_path);
  const model::MemoryEstimate memory = model::estimate_memory(sc);
  const model::CostModel cost(sc.cluster().gpu(), sc.model().precision());
  const auto compute_time = model::compute_time_per_rank(graph, cost);
  const double parameters = model::total_parameters(d, sc.model().tied_embeddings());
  const double bubble = model::layout_bubble_fraction(sc);
  const model::StageMemory& peak = memory.peak();

  // Per representative rank: tasks and the edges leaving them.
  std::vector<std::uint64_t> rank_edges(graph.ranks().size(), 0);
  for (std::size_t r = 0; r < graph.ranks().size(); ++r)
    for (auto id : graph.rank_tasks(r)) rank_edges[r] += boost::out_degree(id, graph.graph());

  if (!plan_path.empty()) traces::write_binary(plan_path, graph.to_proto());

  if (json) {
    traces::JsonWriter w;
    w.begin_object();
    w.field("scenario", sc.name());
    w.field("gpus", d.gpus);
    w.field("parameters", parameters);
    w.field("model_flops", graph.model_flops());
    w.field("hardware_flops", graph.hardware_flops());
    w.field("tasks", graph.expanded_tasks());
    w.field("edges", graph.expanded_edges());
    w.field("tasks_stored", static_cast<std::uint64_t>(graph.num_tasks()));
    w.field("edges_stored", static_cast<std::uint64_t>(graph.num_edges()));
    w.field("symmetry", graph.uses_symmetry() ? "one representative rank per pipeline stage stands for its tp*dp peers"
                                              : "none: every rank stored");
    w.key("ranks").begin_array();
    for (std::size_t r = 0; r < graph.ranks().size(); ++r) {
      const auto& rc = graph.ranks()[r];
      w.begin_object();
      w.field("rank", rc.rank).field("pp_stage", rc.pp_stage).field("multiplicity", rc.multiplicity);
      w.field("tasks", static_cast<std::uint64_t>(graph.rank_tasks(r).size()));
      w.field("edges", rank_edges[r]);
      w.field("compute_time_s", compute_time[r]);
      w.end_object();
    }
    w.end_array();
    w.field("peak_memory_bytes", peak.total());
    w.field("memory_capacity_bytes", memory.capacity);
    w.field("fits", memory.fits());
    w.key("memory").begin_array();
    for (const auto& m : memory.stages) {
      w.begin_object();
      w.field("pp_stage", m.stage).field("parameters", m.parameters);
      w.field("weights_bytes", m.weights).field("gradients_bytes", m.gradients).field("optimizer_bytes", m.optimizer);
      w.field("activations_bytes", m.activations).field("layers_in_flight", m.layers_in_flight);
      w.field("transient_bytes", m.transient).field("reserved_bytes", m.reserved).field("total_bytes", m.total());
      w.end_object();
    }
    w.end_array();
    w.field("microbatches", d.m);
    w.field("bubble_fraction", bubble);
    w.end_object();
    std::cout << w.str() << "\n";
  } else {
    const Layout& l = sc.layout();
    std::printf("scenario    %s\n", sc.name().c_str());
    std::printf("model       %s: %lld layers, hidden %lld, %lld heads, seq %lld, vocab %lld, %s\n",
                model_label(sc.model()).c_str(), static_cast<long long>(d.L),
                static_cast<long long>(d.h), static_cast<long long>(d.a), static_cast<long long>(d.s),
                static_cast<long long>(d.V), model::precision_name(sc.model().precision()).c_str());
    std::printf("parameters  %s\n", si(parameters, "").c_str());
    std::printf("cluster     %s: %d nodes x %d GPUs = %lld GPUs (%s)\n", sc.cluster().name().c_str(),
                sc.cluster().num_nodes(), sc.cluster().gpus_per_node(), static_cast<long long>(d.gpus),
                sc.cluster().gpu().name().c_str());
    std::printf("layout      dp %lld x tp %lld x pp %lld%s%s, %s%s, micro-batch %lld, global batch %lld, recompute %s, ZeRO %d\n",
                static_cast<long long>(d.d), static_cast<long long>(d.t), static_cast<long long>(d.p),
                d.v > 1 ? (" x v " + std::to_string(d.v)).c_str() : "", d.c > 1 ? (" x cp " + std::to_string(d.c)).c_str() : "", schedule_name(l.schedule()),
                d.sp ? ", sequence parallel" : "", static_cast<long long>(d.b), static_cast<long long>(d.B),
                recompute_name(l.recompute()), l.zero_stage());
    std::printf("pipeline    %lld micro-batches per step, bubble %.2f%% of compute\n", static_cast<long long>(d.m),
                100 * bubble);
    std::printf("FLOPs/step  model %s, hardware %s (with recompute)\n", si(graph.model_flops(), "FLOP").c_str(),
                si(graph.hardware_flops(), "FLOP").c_str());
    std::printf("graph       %s tasks, %s edges in the job", count(graph.expanded_tasks()).c_str(),
                count(graph.expanded_edges()).c_str());
    if (graph.uses_symmetry()) {
      std::printf("; stored: %s tasks, %s edges on %zu representative rank(s) (one per pipeline stage,\n"
                  "            each standing for its %lld %s peers: exact, their task lists are identical)\n",
                  count(graph.num_tasks()).c_str(), count(graph.num_edges()).c_str(), graph.ranks().size(),
                  static_cast<long long>(d.t * model::dp_cp(d)), d.c > 1 ? "tp x cp x dp" : "tp x dp");
    } else {
      std::printf(" (every rank stored)\n");
    }
    // Per stage: one line each, or the first and last few when there are many.
    const std::size_t n = graph.ranks().size();
    for (std::size_t r = 0; r < n; ++r) {
      if (n > 8 && r == 3) {
        std::printf("            ...\n");
        r = n - 3;
      }
      const auto& rc = graph.ranks()[r];
      std::printf("  rank %-5u stage %-3d x%-5u %9s tasks %9s edges  compute %.3f s\n", rc.rank, rc.pp_stage,
                  rc.multiplicity, count(graph.rank_tasks(r).size()).c_str(), count(rank_edges[r]).c_str(),
                  compute_time[r]);
    }
    std::printf("memory      peak %s of %s per GPU on stage %lld: weights %s, gradients %s, optimizer %s,\n"
                "            activations %s (%.3g layers in flight), transient %s, reserved %s -> %s\n",
                gib(peak.total()).c_str(), gib(memory.capacity).c_str(), static_cast<long long>(peak.stage),
                gib(peak.weights).c_str(), gib(peak.gradients).c_str(), gib(peak.optimizer).c_str(),
                gib(peak.activations).c_str(), peak.layers_in_flight, gib(peak.transient).c_str(),
                gib(peak.reserved).c_str(), memory.fits() ? "fits" : "DOES NOT FIT");
  }
  if (!memory.fits()) {
    std::cerr << "parallax inspect: " << scenario_path << ": the layout needs " << gib(peak.total())
              << " per GPU on pipeline stage " << peak.stage << " but the GPU has " << gib(memory.capacity)
              << "; try recompute (layout.recompute), more pipeline or tensor parallelism, a smaller "
                 "micro_batch_size, or ZeRO (layout.zero_stage)\n";
    return kDoesNotFit;
  }
  return kOk;
}

}  // namespace parallax::cli
