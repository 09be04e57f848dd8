// parallax: plan, predict and validate distributed training of large models.
#include "commands.h"

#include "parallax/traces/io.h"

#include <google/protobuf/stubs/common.h>

#include <cstdio>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

namespace {

constexpr const char* kUsage = R"(usage: parallax <command> [options]

Plan, predict and validate distributed training of large models.

Commands:
  inspect SCENARIO [--json] [-o PLAN.pb]
      Build the job graph of one training step and report parameters, FLOPs per iteration,
      tasks and edges, peak memory per GPU (and whether it fits), micro-batches and the
      pipeline bubble. -o saves the graph as a plan file for the backends.

  simulate SCENARIO [--json] [--timeline FILE.pb] [--chrome FILE.json] [--max-step-time S]
      Simulate one training step with SimGrid: predicted step time, TFLOP/s per GPU, MFU,
      per-rank breakdown, critical path, busiest links, memory. --max-step-time makes it a CI
      gate (exit 1 when the prediction exceeds S seconds).

  validate TABLE.tsv [--json] [--only IDS] [--max-mape PCT]
      Simulate every row of a table of published measured runs (validation/public.tsv) and
      report predicted vs measured iteration time, the error per row and the MAPE.

  compare PREDICTED.pb MEASURED.pb [--json] [--chrome FILE.json] [--top N]
      Join a predicted and a measured timeline of the same job on task id: step time error,
      error per task class, the tasks with the largest errors, both critical paths.

  calibrate MEASURED.pb -o CALIBRATION.pbtxt [--json]
      Fit the GEMM efficiency table, memory-bound efficiency, kernel overhead and NVLink / NIC
      efficiencies and latencies to a measured timeline; writes a cluster overlay for
      `simulate --calibration`.

  plan SCENARIO_OR_MODEL --gpus N --cluster PRESET [--global-batch B] [--top K] [--jobs J] [--json] [--csv FILE]
      Search every parallelism layout (tp, pp, dp, schedule, micro-batch, sequence parallel,
      recompute, ZeRO): prune by constraints and memory, rank all survivors with the fast
      estimator, simulate the top K with SimGrid, and explain why the winner beats the runner-up.
      `mpirun -np P parallax plan ...` spreads the simulations over P processes.

  export-chakra SCENARIO -o PREFIX
      Write the job graph as MLCommons Chakra execution traces (PREFIX.<rank>.et and
      PREFIX.comm_groups.json) for ASTRA-sim; `simulate --chakra PREFIX --cluster PRESET`
      simulates such traces (yours or any tool's).

  exec SCENARIO|PLAN.pb --backend host|cuda [--warmup K] [--iterations N] [--verify] -o MEASURED.pb
      Run the job graph for real under mpirun (one process per rank): host (MPI + OpenBLAS) or
      cuda (cuBLAS + NCCL). Writes the measured timeline, with the plan's task ids.

Options:
  -h, --help       show this help (or `parallax <command> --help`)
  --version        show the version

Scenarios are protobuf text format (.pbtxt) or JSON (.json); see scenarios/ for examples.
Exit codes: 0 ok, 1 over --max-step-time, 2 bad input (the message names file, line, field and fix), 3 does not fit in memory.
)";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::cerr << kUsage;
    return parallax::cli::kBadInput;
  }
  const std::string command = args.front();
  args.erase(args.begin());
  if (command == "-h" || command == "--help" || command == "help") {
    std::cout << kUsage;
    return parallax::cli::kOk;
  }
  if (command == "--version") {
    std::cout << "parallax " << PARALLAX_VERSION << " (protobuf " << google::protobuf::internal::VersionString(GOOGLE_PROTOBUF_VERSION)
              << ")\n";
    return parallax::cli::kOk;
  }
  try {
    if (command == "inspect") return parallax::cli::inspect(args);
    if (command == "simulate") return parallax::cli::simulate(args);
    if (command == "validate") return parallax::cli::validate(args);
    if (command == "compare") return parallax::cli::compare(args);
    if (command == "calibrate") return parallax::cli::calibrate(args);
    if (command == "plan") return parallax::cli::plan(args);
    if (command == "exec") return parallax::cli::exec(args);
    if (command == "export-chakra") return parallax::cli::export_chakra(args);
    std::cerr << "parallax: unknown command \"" << command << "\"; run `parallax --help` for the list\n";
    return parallax::cli::kBadInput;
  } catch (const parallax::InputError& e) {
    std::cerr << "parallax " << command << ": " << e.what() << "\n";
    return parallax::cli::kBadInput;
  } catch (const std::exception& e) {
    // Not the user's fault: say so rather than crash.
    std::cerr << "parallax " << command << ": internal error: " << e.what()
              << " (please report it with the scenario)\n";
    return parallax::cli::kInternalError;
  }
}
