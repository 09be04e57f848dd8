#include "parallax/exec/execute.h"

#include "parallax/exec/backend.h"
#include "parallax/exec/environment.h"
#include "parallax/exec/plan.h"
#include "parallax/traces/io.h"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <stdexcept>
#include <thread>
#include <unistd.h>

namespace parallax::exec {
namespace {

void check_mpi(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw std::runtime_error(std::string(what) + " failed: " + std::string(text, static_cast<std::size_t>(length)));
}

// One communicator per group kind this rank belongs to; every rank calls MPI_Comm_split for every
// kind (collective over the world), with MPI_UNDEFINED when it is not a member.
Communicators make_communicators(const model::JobGraph& graph, const RankPlan& plan) {
  Communicators comms;
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  for (CommGroup group : {GROUP_TP, GROUP_DP, GROUP_EMBEDDING}) {
    auto members = plan.grid.members(group, plan.rank);
    const bool in_group = std::find(members.begin(), members.end(), plan.rank) != members.end() && members.size() > 1;
    // The embedding group exists only between the first and last stage.
    const bool exists = group != GROUP_EMBEDDING || plan.grid.p > 1;
    const int color = exists && in_group ? static_cast<int>(members.front()) : MPI_UNDEFINED;
    const int key = static_cast<int>(std::find(members.begin(), members.end(), plan.rank) - members.begin());
    MPI_Comm comm = MPI_COMM_NULL;
    check_mpi(MPI_Comm_split(MPI_COMM_WORLD, color, key, &comm), "MPI_Comm_split");
    if (comm != MPI_COMM_NULL) {
      MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
      comms.groups[group] = comm;
      comms.members[group] = members;
    }
  }
  // Explicit rank lists (imported traces): MPI_Comm_create_group is collective over the list's
  // members only, so each member creates its lists in the graph's order (the same on every rank)
  // with the list's index as the tag, and non-members skip it.
  const auto& lists = graph.communicators();
  for (std::size_t g = 0; g < lists.size(); ++g) {
    const auto& members = lists[g];
    if (members.size() < 2 || std::find(members.begin(), members.end(), plan.rank) == members.end()) continue;
    MPI_Group world_group = MPI_GROUP_NULL, group = MPI_GROUP_NULL;
    check_mpi(MPI_Comm_group(MPI_COMM_WORLD, &world_group), "MPI_Comm_group");
    const std::vector<int> ranks(members.begin(), members.end());
    check_mpi(MPI_Group_incl(world_group, static_cast<int>(ranks.size()), ranks.data(), &group), "MPI_Group_incl");
    MPI_Comm comm = MPI_COMM_NULL;
    check_mpi(MPI_Comm_create_group(MPI_COMM_WORLD, group, static_cast<int>(g % 32768), &comm),
              "MPI_Comm_create_group");
    MPI_Group_free(&group);
    MPI_Group_free(&world_group);
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    comms.explicit_comms[static_cast<std::int32_t>(g)] = comm;
    comms.explicit_members[static_cast<std::int32_t>(g)] = members;
  }
  return comms;
}

// What an imported trace's compute tasks run as, printed by rank 0: the executor's stand-ins for
// work the trace describes only by a duration or an operation count.
void print_imported_compute(const model::JobGraph& graph, std::uint32_t cap, std::uint64_t bytes_cap) {
  std::uint64_t measured = 0, gemms = 0, capped = 0, capped_bytes = 0;
  double skipped_flops = 0;
  for (const auto& t : graph.tasks()) {
    if (!runs_measured_duration(t) && !(t.kind == GEMM && t.op == model::Op::TraceCompute) && t.bytes > bytes_cap)
      ++capped_bytes;
    if (runs_measured_duration(t)) {
      ++measured;
    } else if (t.kind == GEMM && t.op == model::Op::TraceCompute) {
      ++gemms;
      const double side = trace_gemm_side(t, cap);
      if (t.gemm_m > cap) {
        ++capped;
        skipped_flops += t.flops - 2 * side * side * side;
      }
    }
  }
  std::printf("parallax exec: imported trace: %llu compute tasks hold their core for their measured duration_micros; "
              "%llu run a square SGEMM of their num_ops, %llu of them capped at %u^3 (%.3g FLOP not run); %llu tasks' bytes capped at %llu\n",
              static_cast<unsigned long long>(measured), static_cast<unsigned long long>(gemms),
              static_cast<unsigned long long>(capped), cap, skipped_flops,
              static_cast<unsigned long long>(capped_bytes), static_cast<unsigned long long>(bytes_cap));
  std::fflush(stdout);
}

// Aborts the whole job when this rank stops making progress: a peer died or a collective can never
// complete. Better a clear message and a bounded exit than a hang.
class Watchdog {
 public:
  Watchdog(std::atomic<std::uint64_t>& progress, double limit_s, int rank)
      : progress_(progress), limit_s_(limit_s), rank_(rank), thread_([this] { watch(); }) {}
  ~Watchdog() {
    stop_ = true;
    thread_.join();
  }
  void set_active(bool active) { active_ = active; }

 private:
  void watch() {
    auto last_change = std::chrono::steady_clock::now();
    std::uint64_t last = progress_.load();
    while (!stop_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      const auto now = std::chrono::steady_clock::now();
      const auto seen = progress_.load();
      if (seen != last || !active_) {
        last = seen;
        last_change = now;
        continue;
      }
      if (std::chrono::duration<double>(now - last_change).count() > limit_s_) {
        std::fprintf(stderr,
                     "parallax exec: rank %d made no progress for %.0f s (after %llu tasks): a peer rank died or a "
                     "collective cannot complete; aborting the job (raise --watchdog if tasks really take this long)\n",
                     rank_, limit_s_, static_cast<unsigned long long>(seen));
        std::fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, 4);
      }
    }
  }

  std::atomic<std::uint64_t>& progress_;
  double limit_s_;
  int rank_;
  std::atomic<bool> stop_{false}, active_{false};
  std::thread thread_;
};

// Fault injection for the tests (PARALLAX_EXEC_FAULT=die:R or hang:R): rank R crashes or stops
// making progress at the start of the first measured iteration, so the tests can check that the
// other ranks exit with a message in bounded time instead of hanging.
void inject_fault(int rank) {
  const char* fault = std::getenv("PARALLAX_EXEC_FAULT");
  if (!fault) return;
  const std::string f = fault;
  const auto colon = f.find(':');
  if (colon == std::string::npos || std::atoi(f.c_str() + colon + 1) != rank) return;
  const std::string kind = f.substr(0, colon);
  if (kind == "die") {
    std::fprintf(stderr, "parallax exec: rank %d: injected fault: dying\n", rank);
    std::fflush(stderr);
    _exit(9);
  }
  if (kind == "hang") {
    std::fprintf(stderr, "parallax exec: rank %d: injected fault: hanging\n", rank);
    std::fflush(stderr);
    while (true) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

std::string hostname() {
  char name[256] = {};
  gethostname(name, sizeof name - 1);
  return name;
}

}  // namespace

parallax::Timeline execute(const model::JobGraph& graph, const ExecOptions& options) {
  int rank = 0, world = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  check_world_size(graph, world);
  if (options.iterations < 1) throw InputError("--iterations must be at least 1");
  if (options.warmup < 0) throw InputError("--warmup must not be negative");
  const RankPlan plan = plan_for_rank(graph, static_cast<std::uint32_t>(rank));
  Environment env = detect_environment();
  env.rank = rank;
  env.world_size = world;

  std::unique_ptr<Backend> backend;
  if (graph.imported() && options.backend != "host")
    throw InputError("an imported trace runs on the host backend only (the " + options.backend +
                     " backend has no explicit-communicator or measured-duration tasks yet); use --backend host");
  if (graph.imported() && rank == 0) print_imported_compute(graph, options.trace_gemm_side_cap, options.trace_bytes_cap);
  if (options.backend == "host") {
    backend = make_host_backend();
  } else if (options.backend == "cuda") {
    backend = make_cuda_backend(env);
  } else {
    throw InputError("unknown backend \"" + options.backend + "\"; valid: host, cuda");
  }
  const Communicators comms = make_communicators(graph, plan);
  backend->prepare(graph, plan, comms, options);

  std::atomic<std::uint64_t> progress{0};
  Watchdog watchdog(progress, options.watchdog_s, rank);
  std::vector<std::vector<TaskTiming>> measured;
  std::vector<double> steps;
  for (int it = 0; it < options.warmup + options.iterations; ++it) {
    check_mpi(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
    watchdog.set_active(true);
    if (it == options.warmup) inject_fault(rank);
    auto timings = backend->run_iteration(progress);
    watchdog.set_active(false);
    if (it < options.warmup) continue;
    double local = 0;
    for (const auto& t : timings) local = std::max(local, t.end);
    double step = 0;
    check_mpi(MPI_Allreduce(&local, &step, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
    steps.push_back(step);
    measured.push_back(std::move(timings));
  }
  // The iteration with the median step time (the same on every rank).
  std::vector<std::size_t> order(steps.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](auto a, auto b) { return steps[a] < steps[b]; });
  const auto& chosen = measured[order[order.size() / 2]];

  parallax::Timeline mine;
  for (std::size_t i = 0; i < plan.tasks.size(); ++i) {
    const auto id = plan.tasks[i];
    const model::Task& t = graph.tasks()[id];
    auto* e = mine.add_events();
    e->set_task_id(id);
    e->set_rank(static_cast<std::uint32_t>(rank));
    e->set_stream(t.stream);
    e->set_kind(t.kind);
    e->set_lane(chosen[i].lane);
    e->set_start_s(chosen[i].start);
    e->set_end_s(chosen[i].end);
    e->set_name(graph.task_name(id));
  }
  // Gather every rank's events on rank 0.
  const std::string bytes = mine.SerializeAsString();
  int size = static_cast<int>(bytes.size());
  std::vector<int> sizes(static_cast<std::size_t>(world)), offsets(static_cast<std::size_t>(world));
  check_mpi(MPI_Gather(&size, 1, MPI_INT, sizes.data(), 1, MPI_INT, 0, MPI_COMM_WORLD), "MPI_Gather");
  std::string all;
  if (rank == 0) {
    int total = 0;
    for (int r = 0; r < world; ++r) {
      offsets[static_cast<std::size_t>(r)] = total;
      total += sizes[static_cast<std::size_t>(r)];
    }
    all.resize(static_cast<std::size_t>(total));
  }
  check_mpi(MPI_Gatherv(bytes.data(), size, MPI_BYTE, all.data(), sizes.data(), offsets.data(), MPI_BYTE, 0,
                        MPI_COMM_WORLD),
            "MPI_Gatherv");
  for (auto& [group, comm] : comms.groups) {
    MPI_Comm c = comm;
    MPI_Comm_free(&c);
  }
  for (auto& [index, comm] : comms.explicit_comms) {
    MPI_Comm c = comm;
    MPI_Comm_free(&c);
  }
  parallax::Timeline timeline;
  if (rank != 0) return timeline;
  timeline.set_source(Timeline::MEASURED);
  timeline.set_scenario_name(graph.scenario().name());
  *timeline.mutable_scenario() = graph.scenario();
  // An imported graph cannot be rebuilt from its scenario (no model): the timeline carries it.
  if (graph.imported()) *timeline.mutable_graph() = graph.to_proto();
  timeline.set_backend(backend->name());
  timeline.set_warmup_iterations(options.warmup);
  timeline.set_measured_iterations(options.iterations);
  timeline.set_host(hostname() + ": " + backend->device());
  for (int r = 0; r < world; ++r) {
    parallax::Timeline part;
    part.ParseFromArray(all.data() + offsets[static_cast<std::size_t>(r)], sizes[static_cast<std::size_t>(r)]);
    for (const auto& e : part.events()) *timeline.add_events() = e;
    auto* tr = timeline.add_ranks();
    tr->set_rank(static_cast<std::uint32_t>(r));
    tr->set_multiplicity(1);
    if (graph.imported()) {
      tr->set_label("rank " + std::to_string(r));
      continue;
    }
    tr->set_label("rank " + std::to_string(r) + " (dp" + std::to_string(plan.grid.dp(static_cast<std::uint32_t>(r))) + " tp" +
                  std::to_string(plan.grid.tp(static_cast<std::uint32_t>(r))) + " pp" +
                  std::to_string(plan.grid.stage(static_cast<std::uint32_t>(r))) + ")");
  }
  return timeline;
}

#ifndef PARALLAX_HAVE_CUDA
std::unique_ptr<Backend> make_cuda_backend(const Environment&) {
  throw InputError("this parallax was built without the CUDA backend (CMake did not find the CUDA toolkit and NCCL); "
                   "use --backend host, or rebuild on a machine with CUDA and NCCL");
}
#endif

}  // namespace parallax::exec
