// Real execution of a job graph: every rank runs its tasks (real GEMMs, memory traffic, collectives
// and transfers carrying real data), timing each task; the measured Timeline has the plan's task ids.
#pragma once

#include "parallax/model/job_graph.h"
#include "parallax/parallax.pb.h"

#include <string>

namespace parallax::exec {

struct ExecOptions {
  std::string backend = "host";  // "host" (MPI + BLAS) or "cuda" (CUDA + cuBLAS + NCCL)
  int warmup = 1;                // iterations run and discarded
  int iterations = 3;            // iterations measured; the timeline is the median-step one
  bool verify = false;           // fill buffers with known values and check every result
  double watchdog_s = 120;       // a rank with no progress for this long aborts the job
  // Imported traces: compute nodes with only num_ops (no GEMM shape, no measured duration) run a
  // square SGEMM of the same FLOPs with its side capped here. A trace's GPU-sized GEMM (teraFLOPs)
  // would take minutes per task on one CPU core; 2 * 512^3 = 0.27 GFLOP is tens of milliseconds.
  std::uint32_t trace_gemm_side_cap = 512;
  // Imported traces: bytes a collective, transfer or memory-bound task moves, capped (a GPU job's
  // GiB-sized all-gathers would exhaust a CPU host's memory and take seconds each).
  std::uint64_t trace_bytes_cap = 64ull << 20;
};

// Runs this process's rank of `graph` (MPI must be initialised by the caller) and returns the whole
// job's measured Timeline on rank 0 (gathered), an empty Timeline on the other ranks.
// Bad input (world size, GPU count) throws InputError on every rank.
parallax::Timeline execute(const model::JobGraph& graph, const ExecOptions& options);

}  // namespace parallax::exec
