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
  for (CommGroup group : model::kCollectiveGroups) {
    // The same on every rank, so skipping a split is collective too: no CP or EP group without cp or
    // ep, the embedding group only between a first and a last stage.
    if (!plan.grid.has_group(group)) continue;
    auto members = plan.grid.members(group, plan.rank);
    const bool in_group = std::find(members.begin(), members.end(), plan.rank) != members.end() && members.size() > 1;
    const int color = in_group ? static_cast<int>(members.front()) : MPI_UNDEFINED;
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

// Fault injection for the tests (PARALLAX_EXEC_FAULT=KIND:R): rank R misbehaves at one point of
// the run, so the tests can check that the other ranks exit with a message in bounded time instead
// of hanging. At the start of the first measured iteration: die (exits at once) or hang (stops making
// progress). Hanging elsewhere: hang-startup (just after MPI_Init, before the communicators are
// made), hang-barrier (before the barrier of the first measured iteration), hang-allreduce (before
// its step-time all-reduce), hang-gather (before the final gather).
void inject_fault(int rank, const std::string& where) {
  const char* fault = std::getenv("PARALLAX_EXEC_FAULT");
  if (!fault) return;
  const std::string f = fault;
  const auto colon = f.find(':');
  if (colon == std::string::npos || std::atoi(f.c_str() + colon + 1) != rank) return;
  const std::string kind = f.substr(0, colon);
  if (where == "iteration" && kind == "die") {
    std::fprintf(stderr, "parallax exec: rank %d: injected fault: dying\n", rank);
    std::fflush(stderr);
    _exit(9);
  }
  if ((where == "iteration" && kind == "hang") || kind == "hang-" + where) {
    std::fprintf(stderr, "parallax exec: rank %d: injected fault: hanging (%s)\n", rank, kind.c_str());
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

Watchdog::Watchdog(double limit_s) : limit_s_(limit_s), thread_([this] { watch(); }) {}

Watchdog::~Watchdog() { stop(); }

void Watchdog::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Watchdog::enter(Phase phase, int iteration, int total) {
  iteration_ = iteration;
  total_ = total;
  phase_ = static_cast<int>(phase);
  ++epoch_;
}

std::string Watchdog::where() const {
  const std::string of = std::to_string(iteration_.load()) + " of " + std::to_string(total_.load());
  switch (static_cast<Phase>(phase_.load())) {
    case Phase::kMpiInit:
      return "during start-up (in MPI_Init, which waits for every rank to start)";
    case Phase::kCommunicators:
      return "during start-up (making the communicators)";
    case Phase::kPrepare:
      return "during start-up (preparing the backend)";
    case Phase::kBarrier:
      return "at the barrier before iteration " + of;
    case Phase::kIteration:
      return "in iteration " + of + " (" + std::to_string(progress_.load()) + " tasks done so far)";
    case Phase::kAllReduce:
      return "at the step-time all-reduce after iteration " + of;
    case Phase::kGather:
      return "at the final gather of the timelines";
  }
  return "";
}

void Watchdog::watch() {
  using Clock = std::chrono::steady_clock;
  auto last_change = Clock::now();
  std::uint64_t last_progress = progress_.load(), last_epoch = epoch_.load();
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    wake_.wait_for(lock, std::chrono::milliseconds(100));
    if (stop_) return;
    const auto now = Clock::now();
    const std::uint64_t progress = progress_.load(), epoch = epoch_.load();
    if (progress != last_progress || epoch != last_epoch) {
      last_progress = progress;
      last_epoch = epoch;
      last_change = now;
      continue;
    }
    // Written so that a limit that is not a number fires at once rather than never (the option
    // parser refuses NaN, but a watchdog that a NaN switches off would hang the job silently).
    if (std::chrono::duration<double>(now - last_change).count() <= limit_s_) continue;
    const int rank = rank_.load();
    std::fprintf(stderr,
                 "parallax exec: %s%s made no progress for %g s %s: a peer rank died or stalled, or a collective "
                 "cannot complete; aborting the job (--watchdog S sets this limit, default 120 s: lower it to "
                 "catch a hang sooner, raise it if a step really takes this long)\n",
                 rank >= 0 ? "rank " : "a rank", rank >= 0 ? std::to_string(rank).c_str() : "", limit_s_,
                 where().c_str());
    std::fflush(stderr);
    // MPI_Initialized may be called from any thread at any time. Before MPI_Init has returned
    // there is no communicator to abort: exiting non-zero makes the launcher end the job.
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) MPI_Abort(MPI_COMM_WORLD, 4);
    _exit(4);
  }
}

parallax::Timeline execute(const model::JobGraph& graph, const ExecOptions& options, Watchdog& watchdog) {
  int rank = 0, world = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  watchdog.set_rank(rank);
  watchdog.enter(Watchdog::Phase::kCommunicators);
  inject_fault(rank, "startup");
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
  watchdog.enter(Watchdog::Phase::kPrepare);
  // A backend refuses a plan it cannot hold (a task's buffers larger than the machine) before it
  // allocates; the ranks agree on it so that every one exits with the message instead of the
  // others waiting at the first barrier for a rank that has left.
  std::string refused;
  try {
    backend->prepare(graph, plan, comms, options);
  } catch (const InputError& e) {
    refused = e.what();
  }
  int refusing = refused.empty() ? world : rank, first = world;
  check_mpi(MPI_Allreduce(&refusing, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD), "MPI_Allreduce");
  if (!refused.empty()) throw InputError(refused);
  if (first < world) throw InputError("rank " + std::to_string(first) + " cannot run the plan (see its message)");

  std::vector<std::vector<TaskTiming>> measured;
  std::vector<double> steps;
  const int total = options.warmup + options.iterations;
  for (int it = 0; it < total; ++it) {
    watchdog.enter(Watchdog::Phase::kBarrier, it + 1, total);
    if (it == options.warmup) inject_fault(rank, "barrier");
    check_mpi(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
    watchdog.enter(Watchdog::Phase::kIteration, it + 1, total);
    if (it == options.warmup) inject_fault(rank, "iteration");
    auto timings = backend->run_iteration(watchdog.progress());
    if (it < options.warmup) continue;
    double local = 0;
    for (const auto& t : timings) local = std::max(local, t.end);
    double step = 0;
    watchdog.enter(Watchdog::Phase::kAllReduce, it + 1, total);
    if (it == options.warmup) inject_fault(rank, "allreduce");
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
  watchdog.enter(Watchdog::Phase::kGather);
  inject_fault(rank, "gather");
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
  watchdog.stop();
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
    tr->set_label(model::rank_label(plan.grid, static_cast<std::uint32_t>(r)));
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
