// Real execution of a job graph: every rank runs its tasks (real GEMMs, memory traffic, collectives
// and transfers carrying real data), timing each task; the measured Timeline has the plan's task ids.
#pragma once

#include "parallax/model/job_graph.h"
#include "parallax/parallax.pb.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

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

// Aborts the whole job when this rank makes no progress for `limit_s` seconds: a peer died or
// stalled, or a collective can never complete. Better a clear message and a bounded exit (code 4)
// than a job that hangs with no word. It watches the whole run, not only the iterations: it is
// started just before MPI_Init (whose start-up exchange already waits for every rank) and stopped
// after the final gather, and every step between (communicators, buffers, each barrier, iteration
// and step-time all-reduce, the gather) is a phase that its message names. Entering a phase and
// finishing a task both count as progress. Before MPI is initialized it cannot MPI_Abort, so it
// exits the process with code 4 and the launcher takes the job down.
class Watchdog {
 public:
  // Start-up is three phases: MPI_Init, making the communicators, preparing the backend.
  enum class Phase { kMpiInit, kCommunicators, kPrepare, kBarrier, kIteration, kAllReduce, kGather };
  explicit Watchdog(double limit_s);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void set_rank(int rank) { rank_ = rank; }
  // `iteration` counts from 1 over warm-up and measured iterations together, of `total`.
  void enter(Phase phase, int iteration = 0, int total = 0);
  // Tasks finished so far; the backend bumps it after each task.
  std::atomic<std::uint64_t>& progress() { return progress_; }
  // Stops watching (idempotent); must happen before MPI_Finalize.
  void stop();

 private:
  void watch();
  std::string where() const;

  const double limit_s_;
  std::atomic<int> rank_{-1};
  std::atomic<std::uint64_t> progress_{0}, epoch_{0};
  std::atomic<int> phase_{static_cast<int>(Phase::kMpiInit)}, iteration_{0}, total_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

// Runs this process's rank of `graph` (MPI must be initialised by the caller) and returns the whole
// job's measured Timeline on rank 0 (gathered), an empty Timeline on the other ranks. Tells
// `watchdog` each phase it enters and the tasks it finishes; the caller stops it afterwards.
// Bad input (world size, GPU count, buffers too large for the machine) throws InputError on every rank.
parallax::Timeline execute(const model::JobGraph& graph, const ExecOptions& options, Watchdog& watchdog);

}  // namespace parallax::exec
