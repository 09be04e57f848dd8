#include "parallax/exec/cli.h"

#include "parallax/cli/options.h"

#include "parallax/exec/environment.h"
#include "parallax/exec/execute.h"
#include "parallax/exec/plan.h"
#include "parallax/interop/chakra.h"
#include "parallax/model/job_graph.h"
#include "parallax/model/presets.h"
#include "parallax/model/scenario.h"
#include "parallax/traces/io.h"

#include <mpi.h>

#include <cstdint>
#include <cstdio>
#include <iostream>

namespace parallax::exec {
namespace {

// The longest --watchdog: a watchdog of more than a week watches nothing in practice, and a huge
// value is more likely a typo (milliseconds meant) than a wish.
constexpr double kMaxWatchdogS = 7 * 24 * 3600.0;

constexpr const char* kHelp = R"(usage: mpirun -np N parallax exec SCENARIO|PLAN.pb [options] -o MEASURED.pb
       mpirun -np N parallax exec --chakra PREFIX [--comm-groups FILE] [--strict] [options] -o MEASURED.pb

Executes one training step of the job graph for real on every rank and writes the measured Timeline
(same task ids as the plan and the prediction; gathered on rank 0).

  --backend host|cuda   host: MPI processes, OpenBLAS GEMMs, threads for streams (no GPU needed);
                        cuda: one GPU per rank, cuBLAS GEMMs, NCCL collectives (default: host)
  --warmup K            iterations run first and discarded (default 1)
  --iterations N        measured iterations; the timeline is the median-step one (default 3)
  --verify              fill buffers with known values and check every collective and transfer
  --watchdog S          abort the job (exit code 4) when a rank makes no progress for S seconds, from
                        MPI_Init to the final gather (default 120; at most 604800, a week)
  -o MEASURED.pb        where rank 0 writes the measured timeline
  --chakra PREFIX       run the MLCommons Chakra execution trace PREFIX.<rank>.et (one file per rank,
                        N = the number of files) as `parallax simulate --chakra` imports it: the
                        timeline has the same task ids. Collectives run on the trace's communicators,
                        sends/recvs meet as the trace pairs them (src, dst, comm_tag); compute nodes
                        with duration_micros hold their core that long, those with only num_ops run
                        a square SGEMM of that many FLOPs (side capped, see --gemm-cap); host
                        backend only
  --comm-groups FILE    the trace's communicators ({"pg_name": [ranks]}); default
                        PREFIX.comm_groups.json when it exists, else every collective spans all ranks
  --strict              refuse dependencies on node ids absent from the trace instead of dropping them
  --gemm-cap SIDE       largest side of the SGEMM a num_ops-only node runs (default 512: 0.27 GFLOP,
                        tens of ms on a core; a trace's GPU GEMMs would take minutes); the count of
                        capped nodes and the FLOPs not run are printed
  --bytes-cap BYTES     most bytes a collective, transfer or memory-bound node of a trace moves
                        (default 67108864: a GPU job's GiB all-gathers would exhaust a host's memory);
                        the count of capped nodes is printed
  --cluster PRESET      the cluster recorded in the timeline's scenario for an imported trace (as
                        `parallax simulate --chakra --cluster`); default: a one-GPU-per-node host

Ranks come from mpirun (OMPI_COMM_WORLD_*), srun (SLURM_*) or RANK/LOCAL_RANK/WORLD_SIZE; the world size
must equal the plan's dp * tp * pp. Exit codes: 0 ok, 2 bad input; a failing rank aborts the job.
)";

}  // namespace

int exec_command(const std::vector<std::string>& args) {
  ExecOptions options;
  std::string input, output, chakra_prefix, comm_groups, cluster;
  bool strict = false;
  int gemm_cap = 0;
  std::uint64_t bytes_cap = 0;
  if (!cli::Options("parallax exec", kHelp)
           .text("--backend", options.backend, "host or cuda, e.g. --backend host")
           .whole("--warmup", options.warmup, 0, "a number of iterations, e.g. --warmup 1")
           .whole("--iterations", options.iterations, 1,
                  "a number of iterations, e.g. --iterations 3")
           .flag("--verify", options.verify)
           .number("--watchdog", options.watchdog_s, cli::Options::Sign::kPositive,
                   "a number of seconds, e.g. --watchdog 120", "seconds")
           .text("--chakra", chakra_prefix, "a trace prefix, e.g. --chakra traces/workload")
           .text("--comm-groups", comm_groups, "a file name, e.g. --comm-groups comm_groups.json")
           .flag("--strict", strict)
           .whole("--gemm-cap", gemm_cap, 1, "a GEMM side, e.g. --gemm-cap 512")
           .whole("--bytes-cap", bytes_cap, 1, "a number of bytes, e.g. --bytes-cap 67108864")
           .text("--cluster", cluster, "a cluster preset, e.g. --cluster dgx-a100-80g")
           .output({"-o", "--output"}, output, "a file name, e.g. -o measured.pb")
           .positional(input, "scenario or plan")
           .parse(args))
    return 0;
  if (!(options.watchdog_s <= kMaxWatchdogS)) {
    char given[64];
    std::snprintf(given, sizeof given, "%g", options.watchdog_s);
    throw InputError(std::string("--watchdog needs a positive number of seconds up to 604800 (a week) (got ") +
                     given + ")");
  }
  const bool gemm_cap_given = gemm_cap > 0, bytes_cap_given = bytes_cap > 0;
  if (gemm_cap_given) options.trace_gemm_side_cap = static_cast<std::uint32_t>(gemm_cap);
  if (bytes_cap_given) options.trace_bytes_cap = bytes_cap;
  if (!chakra_prefix.empty() && !input.empty())
    throw InputError("give either a scenario/plan (\"" + input + "\") or --chakra PREFIX, not both");
  if (chakra_prefix.empty() && (!comm_groups.empty() || strict || !cluster.empty() || gemm_cap_given || bytes_cap_given))
    throw InputError("--comm-groups, --strict, --gemm-cap, --bytes-cap and --cluster apply to --chakra PREFIX only");
  if (input.empty() && chakra_prefix.empty()) throw InputError("no scenario or plan given; usage: mpirun -np N parallax exec SCENARIO -o MEASURED.pb");
  if (output.empty()) throw InputError("no output file: add -o MEASURED.pb");
  cli::check_files(
      {{"the scenario or plan", input}, {"--comm-groups", comm_groups}, {"--cluster", cluster}},
      {{"-o", output}});
  if (options.backend != "host" && options.backend != "cuda")
    throw InputError("unknown backend \"" + options.backend + "\"; valid: host, cuda");

  // Read the plan before MPI starts so bad input fails fast on every rank alike.
  std::vector<std::string> import_warnings;
  auto load = [&]() {
    if (!chakra_prefix.empty()) {
      ClusterSpec spec;
      if (!cluster.empty()) {
        spec = model::resolve_cluster(cluster);
      } else {
        spec.set_name("host");
        spec.set_gpus_per_node(1);
      }
      interop::ChakraImportOptions import_options;
      import_options.comm_groups = comm_groups;
      import_options.strict = strict;
      interop::ChakraImport imported = interop::import_chakra(chakra_prefix, spec, import_options);
      import_warnings = std::move(imported.warnings);
      return std::move(imported.graph);
    }
    if (input.size() > 3 && input.ends_with(".pb")) {
      parallax::JobGraph proto;
      traces::read_binary(input, proto);
      return model::JobGraph::from_proto(proto, input);
    }
    return model::build_job_graph(model::load_scenario(input), input);
  };
  const model::JobGraph graph = load();
  // Every rank checks the same plan against its host before MPI starts, so all refuse alike
  // instead of each ending in std::bad_alloc while allocating buffers.
  check_task_buffers(graph, options.trace_gemm_side_cap, options.trace_bytes_cap,
                     host_memory_bytes(), chakra_prefix.empty() ? input : chakra_prefix);

  // Armed before MPI_Init: its start-up exchange already waits for every rank, so a rank that
  // stalls before it must not hang the others silently.
  Watchdog watchdog(options.watchdog_s);
  watchdog.set_rank(detect_environment().rank);
  int provided = 0;
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
  if (provided < MPI_THREAD_MULTIPLE) {
    watchdog.stop();
    MPI_Finalize();
    throw InputError("the MPI library does not support MPI_THREAD_MULTIPLE, which the host backend needs");
  }
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0)
    for (const auto& w : import_warnings) std::printf("parallax exec: note: %s\n", w.c_str());
  // Rank 0 writes -o: check it can before the measurement (hours on a cluster), not only after.
  int output_ok = 1;
  if (rank == 0) {
    try {
      traces::check_output_path(output);
    } catch (const InputError& e) {
      std::fprintf(stderr, "parallax exec: %s\n", e.what());
      output_ok = 0;
    }
  }
  MPI_Bcast(&output_ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (!output_ok) {
    MPI_Finalize();
    return 2;
  }
  int code = 0;
  try {
    const parallax::Timeline timeline = execute(graph, options, watchdog);
    if (rank == 0) {
      traces::write_binary(output, timeline);
      std::printf("parallax exec: %d ranks, %s backend, %d measured iterations: wrote %s (%d events)\n",
                  static_cast<int>(timeline.ranks_size()), options.backend.c_str(), options.iterations, output.c_str(),
                  timeline.events_size());
    }
  } catch (const InputError& e) {
    std::fprintf(stderr, "parallax exec: rank %d: %s\n", rank, e.what());
    code = 2;
  }
  watchdog.stop();
  MPI_Finalize();
  return code;
}

}  // namespace parallax::exec
