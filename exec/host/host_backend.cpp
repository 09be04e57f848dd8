// The host backend: ranks are MPI processes, lanes are threads. GEMM tasks run an OpenBLAS SGEMM
// of the task's shape, memory-bound tasks move their bytes, collectives and transfers run the MPI
// call on the task's communicator with real data. Every receive is posted when the iteration starts
// (as Megatron's batched isend/irecv does), so a send never waits for its receiver to get there.
// Imported traces (Chakra): compute tasks with a measured duration hold their core for that long,
// shapeless ones run a square SGEMM of their num_ops (side capped), CPU-side ops get a host lane of
// their own, and collectives run on the trace's explicit communicators.
// Threads: one per lane of traces::lane_of (parallax/traces/lanes.h) that has tasks; each task runs on
// its lane's thread, and the timing says which.
#include "layer_ops.h"
#include "parallax/exec/plan.h"
#include "parallax/exec/backend.h"
#include "parallax/traces/io.h"
#include "parallax/traces/lanes.h"

#include <cblas.h>
#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>

#include <unistd.h>

namespace parallax::exec {
namespace {

using Clock = std::chrono::steady_clock;

std::size_t floats_for(std::uint64_t bytes) { return static_cast<std::size_t>((bytes + 3) / 4); }

std::string gib(double bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3g GiB", bytes / (1024.0 * 1024 * 1024));
  return text;
}

[[noreturn]] void fail(const std::string& message) {
  // A rank that cannot go on takes the job down with it: its peers would otherwise wait forever.
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  std::fprintf(stderr, "parallax exec: rank %d: %s; aborting the job\n", rank, message.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 3);
  std::abort();
}

void check_mpi(int code, const std::string& what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  fail(what + ": " + std::string(text, static_cast<std::size_t>(length)));
}

// Waits for a nonblocking MPI operation without spinning a core: OpenMPI's blocking calls busy-poll,
// which on a CPU-only run steals the core a compute thread needs and makes measured GEMMs depend on
// how much communication overlaps them. Polling every 20 us keeps MPI progressing and the core free.
void wait_politely(MPI_Request& request, const std::string& what) {
  int done = 0;
  while (true) {
    check_mpi(MPI_Test(&request, &done, MPI_STATUS_IGNORE), what);
    if (done) return;
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
}

class HostBackend final : public Backend {
 public:
  std::string name() const override { return "host"; }
  std::string device() const override {
    return "x86-64 host, " + std::to_string(std::thread::hardware_concurrency()) + " hardware threads, OpenBLAS " +
           std::string(openblas_get_config());
  }

  void prepare(const model::JobGraph& graph, const RankPlan& plan, const Communicators& comms,
               const ExecOptions& options) override {
    graph_ = &graph;
    plan_ = plan;
    comms_ = comms;
    verify_ = options.verify;
    gemm_cap_ = options.trace_gemm_side_cap;
    bytes_cap_ = plan.imported ? options.trace_bytes_cap : std::numeric_limits<std::uint64_t>::max();
    // PARALLAX_EXEC_FAULT=corrupt:R makes rank R send one wrong element (in a send, or its part of
    // a reduce, gather, scatter or all-to-all): --verify must catch it.
    // PARALLAX_EXEC_FAULT=corrupt-kernel:R[:OP] makes rank R corrupt the output of its first layer
    // kernel (of op OP, e.g. flash_attention, when given) each time it runs: --verify must catch it.
    std::string kernel_fault_op;
    bool kernel_fault = false;
    if (const char* fault = std::getenv("PARALLAX_EXEC_FAULT")) {
      const std::string f = fault, mine = std::to_string(plan.rank);
      corrupt_sends_ = f == "corrupt:" + mine;
      const std::string prefix = "corrupt-kernel:" + mine;
      if (f == prefix || f.starts_with(prefix + ":")) {
        kernel_fault = true;
        if (f.size() > prefix.size()) kernel_fault_op = f.substr(prefix.size() + 1);
      }
    }
    // Transfer tags must stay within this MPI's MPI_TAG_UB (32767 is all the standard promises); past
    // it they wrap, and MPI's in-order matching per (source, tag) keeps transfers paired because both
    // sides post them in the same order.
    int* tag_ub = nullptr;
    int has_ub = 0;
    MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &tag_ub, &has_ub);
    tag_limit_ = has_ub && tag_ub ? *tag_ub : 32767;
    // One BLAS thread per rank: ranks already share the cores.
    openblas_set_num_threads(1);
    const auto n = plan.tasks.size();
    std::unordered_map<std::uint32_t, std::size_t> index;
    for (std::size_t i = 0; i < n; ++i) index[plan.tasks[i]] = i;
    deps_.assign(n, {});
    std::size_t max_a = 1, max_b = 1, max_c = 1, max_mem = 1, max_comm = 1;
    // What a rank's buffers may take: the machine's physical memory. More cannot be allocated (or only
    // by swapping for hours), and std::bad_alloc midway would end every rank with an internal error.
    const double known_memory = host_memory_bytes();
    const double limit = known_memory > 0 ? known_memory : std::numeric_limits<double>::infinity();
    // Checked before anything is allocated, in doubles (a product of two 32-bit sides or a 2^60-byte
    // task would overflow a 64-bit sum of buffers). Each task alone was checked against the machine's
    // memory before MPI started (exec::check_task_buffers); here: the int limits of MPI counts and
    // BLAS sides, and this rank's buffers together.
    double recv_bytes = 0;
    // Modern-layer ops run their own kernels on buffers of their real shapes (InputError when a task
    // and the scenario disagree).
    const double layer_bytes = layer_ops_.plan(graph, plan, verify_);
    constexpr double kMaxCount = std::numeric_limits<int>::max();  // MPI counts and BLAS sides are ints
    for (std::size_t i = 0; i < n; ++i) {
      const auto id = plan.tasks[i];
      for (auto p : local_predecessors(graph, plan, id)) deps_[i].push_back(index.at(p));
      const model::Task& t = graph.tasks()[id];
      // Imported CPU-side ops run on the host lane, beside the device's, as a host thread runs beside
      // a GPU. Receives are posted together and completed by the LANE_PP_RECV thread.
      const LaneId lane = traces::lane_of(t.stream, t.kind, t.on_host);
      if (lane == LANE_PP_RECV)
        recvs_.push_back(i);
      else
        lanes_[lane].push_back(i);
      if (runs_measured_duration(t)) continue;
      if (layer_ops_.handles(i)) {
        if (kernel_fault && corrupt_kernel_ == kNone && (kernel_fault_op.empty() || layer_ops_.op_of(i) == kernel_fault_op))
          corrupt_kernel_ = i;
        continue;
      }
      if (t.kind == GEMM && t.op != model::Op::TraceCompute) {
        const double m = t.gemm_m, k = t.gemm_k, nn = t.gemm_n;
        if (std::max({m, k, nn}) > kMaxCount)
          throw InputError("task " + std::to_string(id) + " (" + graph.task_name(id) + ") is a GEMM of " +
                           std::to_string(t.gemm_m) + " x " + std::to_string(t.gemm_n) + " x " + std::to_string(t.gemm_k) +
                           " (m x n x k); BLAS takes sides up to 2147483647");
      } else if (t.kind != GEMM && t.kind != MEMORY_BOUND) {
        const double floats = static_cast<double>(floats_for(bytes_of(t)));
        if (floats > kMaxCount)
          throw InputError("task " + std::to_string(id) + " (" + graph.task_name(id) + ") transfers " +
                           std::to_string(bytes_of(t)) + " bytes; an MPI count is an int: the host backend moves " +
                           "at most 2147483647 floats (8 GiB) per collective or transfer");
        if (t.kind == RECV) recv_bytes += 4 * floats;
      }
      if (t.kind == GEMM && t.op == model::Op::TraceCompute) {
        const std::size_t side = trace_gemm_side(t, gemm_cap_);
        max_a = std::max(max_a, side * side);
        max_b = std::max(max_b, side * side);
        max_c = std::max(max_c, side * side);
        continue;
      }
      switch (t.kind) {
        case GEMM:
          max_a = std::max<std::size_t>(max_a, std::size_t{t.gemm_m} * t.gemm_k);
          max_b = std::max<std::size_t>(max_b, std::size_t{t.gemm_k} * t.gemm_n);
          max_c = std::max<std::size_t>(max_c, std::size_t{t.gemm_m} * t.gemm_n);
          break;
        case MEMORY_BOUND:
          max_mem = std::max<std::size_t>(max_mem, floats_for(bytes_of(t) / 2));
          break;
        case COLLECTIVE:
          max_comm = std::max(max_comm, floats_for(bytes_of(t)) + 64);
          break;
        case SEND:
          max_comm = std::max(max_comm, floats_for(bytes_of(t)));
          break;
        case RECV:
          break;
      }
    }
    // The buffers together: each kind sized by its largest task, and one per receive.
    const double total = 4 * (static_cast<double>(max_a) + static_cast<double>(max_b) + static_cast<double>(max_c) +
                               2 * static_cast<double>(max_mem) + kLanes * static_cast<double>(max_comm)) +
                         recv_bytes + layer_bytes;
    if (total > limit) {
      throw InputError("rank " + std::to_string(plan.rank) +
                       "'s buffers (the largest GEMM's operands, memory-bound and communication buffers, one per "
                       "receive) need " + gib(total) + " together, more than this machine's " + gib(limit) +
                       " of physical memory; the plan is too large to run here: give it fewer tokens per "
                       "micro-batch or more tp");
    }
    // Operand buffers sized by the largest task and reused (a batched GEMM reuses one batch's
    // operands: the arithmetic is the same).
    a_.assign(max_a, 1.0f / 1024);
    b_.assign(max_b, 1.0f / 1024);
    c_.assign(max_c, 0.0f);
    mem_src_.assign(max_mem, 1.0f);
    mem_dst_.assign(max_mem, 0.0f);
    for (auto& buffer : comm_buffers_) buffer.assign(max_comm, 0.0f);
    recv_buffers_.resize(recvs_.size());
    for (std::size_t k = 0; k < recvs_.size(); ++k)
      recv_buffers_[k].assign(floats_for(bytes_of(graph.tasks()[plan.tasks[recvs_[k]]])), 0.0f);
    layer_ops_.allocate();
    done_ = std::vector<std::atomic<std::uint8_t>>(n);
  }

  std::vector<TaskTiming> run_iteration(std::atomic<std::uint64_t>& progress) override {
    const auto n = plan_.tasks.size();
    std::vector<TaskTiming> timing(n);
    for (auto& d : done_) d.store(0);
    start_ = Clock::now();
    // Post every receive first.
    std::vector<MPI_Request> requests(recvs_.size(), MPI_REQUEST_NULL);
    for (std::size_t k = 0; k < recvs_.size(); ++k) {
      const model::Task& t = task(recvs_[k]);
      check_mpi(MPI_Irecv(recv_buffers_[k].data(), static_cast<int>(recv_buffers_[k].size()), MPI_FLOAT,
                          static_cast<int>(transfer_peer(plan_, t)), tag(recvs_[k]), MPI_COMM_WORLD, &requests[k]),
                "MPI_Irecv for " + name(recvs_[k]));
    }
    std::vector<std::thread> threads;
    for (int lane = 0; lane < kLanes; ++lane) {
      if (lanes_[lane].empty()) continue;
      threads.emplace_back([this, lane, &timing, &progress] {
        for (auto i : lanes_[lane]) {
          wait_for_dependencies(i);
          timing[i].lane = static_cast<LaneId>(lane);
          timing[i].start = now();
          run_task(i, lane);
          timing[i].end = now();
          // Outside the task's time: the FP64 reference costs more than the kernel.
          if (verify_ && layer_ops_.handles(i)) check_layer_kernel(i);
          complete(i, progress);
        }
      });
    }
    if (!recvs_.empty()) {
      threads.emplace_back([this, &timing, &progress, &requests] {
        // Receives were posted together; they complete in program order from here.
        for (std::size_t k = 0; k < recvs_.size(); ++k) {
          const auto i = recvs_[k];
          timing[i].lane = LANE_PP_RECV;
          timing[i].start = now();
          wait_politely(requests[k], "MPI_Wait for " + name(i));
          timing[i].end = now();
          if (verify_) check_transfer(i, recv_buffers_[k]);
          complete(i, progress);
        }
      });
    }
    for (auto& t : threads) t.join();
    return timing;
  }

 private:
  const model::Task& task(std::size_t i) const { return graph_->tasks()[plan_.tasks[i]]; }
  std::string name(std::size_t i) const { return "task " + std::to_string(plan_.tasks[i]) + " (" + graph_->task_name(plan_.tasks[i]) + ")"; }
  // In 64 bits: OpenMPI's MPI_TAG_UB is INT_MAX, and INT_MAX + 1 overflows an int (UBSan).
  int tag(std::size_t i) const {
    return static_cast<int>(transfer_tag(plan_, plan_.tasks[i], task(i)) %
                            (static_cast<std::int64_t>(tag_limit_) + 1));
  }
  // Imported traces: a GPU job's tensors (GiBs) capped to what a CPU run can move.
  std::uint64_t bytes_of(const model::Task& t) const { return std::min(t.bytes, bytes_cap_); }
  double now() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

  void wait_for_dependencies(std::size_t i) {
    for (auto d : deps_[i]) done_[d].wait(0);
  }

  void complete(std::size_t i, std::atomic<std::uint64_t>& progress) {
    done_[i].store(1);
    done_[i].notify_all();
    progress.fetch_add(1, std::memory_order_relaxed);
  }

  void run_task(std::size_t i, int lane) {
    const model::Task& t = task(i);
    if (runs_measured_duration(t)) {
      // The trace measured this op on its own hardware: hold the core for exactly that long. A spin
      // on the steady clock reproduces the duration to microseconds on any CPU, where a GEMM sized
      // to it would need a per-machine calibration and drift with frequency and contention.
      const auto until = Clock::now() + std::chrono::ceil<Clock::duration>(std::chrono::duration<double>(t.measured_s));
      while (Clock::now() < until) {
      }
      return;
    }
    if (layer_ops_.handles(i)) {
      layer_ops_.run(i);
      if (i == corrupt_kernel_) layer_ops_.corrupt(i);  // injected fault (tests)
      return;
    }
    if (t.kind == GEMM && t.op == model::Op::TraceCompute) {
      const int side = static_cast<int>(trace_gemm_side(t, gemm_cap_));
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, side, side, side, 1.0f, a_.data(), side, b_.data(), side,
                  0.0f, c_.data(), side);
      return;
    }
    switch (t.kind) {
      case GEMM: {
        const int m = static_cast<int>(t.gemm_m), n = static_cast<int>(t.gemm_n), k = static_cast<int>(t.gemm_k);
        // Overlapped with TP communication the GEMM runs as gemm_splits chunks of rows (the plan's
        // TE ring_exchange / pipeline shape); the SM share has no meaning on the host.
        const int splits = std::clamp<int>(t.gemm_splits, 1, std::max(1, m));
        for (std::uint32_t b = 0; b < std::max(1u, t.gemm_batch); ++b)
          for (int c = 0, row = 0; c < splits; ++c) {
            const int rows = m / splits + (c < m % splits ? 1 : 0);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, n, k, 1.0f, a_.data() + static_cast<std::size_t>(row) * k, k,
                        b_.data(), n, 0.0f, c_.data() + static_cast<std::size_t>(row) * n, n);
            row += rows;
          }
        return;
      }
      case MEMORY_BOUND: {
        // Read half the bytes, write the other half.
        const std::size_t count = floats_for(bytes_of(t) / 2);
        std::memcpy(mem_dst_.data(), mem_src_.data(), count * sizeof(float));
        return;
      }
      case COLLECTIVE:
        run_collective(i, comm_buffers_[lane]);
        return;
      case SEND: {
        auto& buffer = comm_buffers_[lane];
        const std::size_t count = floats_for(bytes_of(t));
        if (verify_) {
          for (std::size_t e = 0; e < count; ++e) buffer[e] = verify_value(plan_.rank, e);
          if (corrupt_sends_ && count > 0) buffer[count - 1] += 1;  // injected fault (tests)
        }
        MPI_Request request;
        check_mpi(MPI_Isend(buffer.data(), static_cast<int>(count), MPI_FLOAT, static_cast<int>(transfer_peer(plan_, t)),
                            tag(i), MPI_COMM_WORLD, &request),
                  "MPI_Isend for " + name(i));
        wait_politely(request, "MPI_Isend for " + name(i));
        return;
      }
      case RECV:
        return;  // handled by the receive thread
    }
  }

  void run_collective(std::size_t i, std::vector<float>& buffer) {
    const model::Task& t = task(i);
    // Imported graphs name an explicit communicator; built ones a group kind of the layout.
    MPI_Comm comm = MPI_COMM_NULL;
    const std::vector<std::uint32_t>* member_list = nullptr;
    if (t.communicator >= 0) {
      const auto it = comms_.explicit_comms.find(t.communicator);
      if (it == comms_.explicit_comms.end()) return;  // a communicator of one: nothing to exchange
      comm = it->second;
      member_list = &comms_.explicit_members.at(t.communicator);
    } else {
      const auto it = comms_.groups.find(t.group);
      if (it == comms_.groups.end()) return;  // a group of one: nothing to exchange
      comm = it->second;
      member_list = &comms_.members.at(t.group);
    }
    const auto& members = *member_list;
    const std::size_t n = members.size();
    const std::size_t me = static_cast<std::size_t>(std::find(members.begin(), members.end(), plan_.rank) - members.begin());
    // Counts rounded up to a multiple of the group size so every rank's shard is whole (at least one
    // element each: a trace's barrier is an all-reduce that may carry no bytes).
    const std::size_t count = std::max<std::size_t>(1, (floats_for(bytes_of(t)) + n - 1) / n) * n, shard = count / n;
    const std::string what = name(i);
    MPI_Request request = MPI_REQUEST_NULL;
    switch (t.collective) {
      case ALL_REDUCE:
        if (verify_)
          for (std::size_t e = 0; e < count; ++e) buffer[e] = verify_value(plan_.rank, e);
        check_mpi(MPI_Iallreduce(MPI_IN_PLACE, buffer.data(), static_cast<int>(count), MPI_FLOAT, MPI_SUM, comm, &request),
                  "MPI_Iallreduce for " + what);
        wait_politely(request, "MPI_Iallreduce for " + what);
        if (verify_)
          for (std::size_t e = 0; e < count; ++e) expect(what, e, buffer[e], sum_over(members, e));
        return;
      case REDUCE_SCATTER: {
        if (verify_)
          for (std::size_t e = 0; e < count; ++e) buffer[e] = verify_value(plan_.rank, e);
        std::vector<float> result(shard);
        check_mpi(MPI_Ireduce_scatter_block(buffer.data(), result.data(), static_cast<int>(shard), MPI_FLOAT, MPI_SUM, comm,
                                            &request),
                  "MPI_Ireduce_scatter_block for " + what);
        wait_politely(request, "MPI_Ireduce_scatter_block for " + what);
        if (verify_)
          for (std::size_t e = 0; e < shard; ++e) expect(what, e, result[e], sum_over(members, me * shard + e));
        return;
      }
      case ALL_GATHER: {
        std::vector<float> mine(shard);
        if (verify_)
          for (std::size_t e = 0; e < shard; ++e) mine[e] = verify_value(plan_.rank, e);
        check_mpi(MPI_Iallgather(mine.data(), static_cast<int>(shard), MPI_FLOAT, buffer.data(), static_cast<int>(shard),
                                 MPI_FLOAT, comm, &request),
                  "MPI_Iallgather for " + what);
        wait_politely(request, "MPI_Iallgather for " + what);
        if (verify_)
          for (std::size_t b = 0; b < n; ++b)
            for (std::size_t e = 0; e < shard; ++e) expect(what, b * shard + e, buffer[b * shard + e], verify_value(members[b], e));
        return;
      }
      case BROADCAST:
        if (verify_ && me == 0)
          for (std::size_t e = 0; e < count; ++e) buffer[e] = verify_value(members[0], e);
        check_mpi(MPI_Ibcast(buffer.data(), static_cast<int>(count), MPI_FLOAT, 0, comm, &request), "MPI_Ibcast for " + what);
        wait_politely(request, "MPI_Ibcast for " + what);
        if (verify_)
          for (std::size_t e = 0; e < count; ++e) expect(what, e, buffer[e], verify_value(members[0], e));
        return;
      // Rooted collectives: the root is the communicator's first member (rank 0 of `comm`), as for
      // BROADCAST. An injected fault (PARALLAX_EXEC_FAULT=corrupt:R) makes rank R contribute one
      // wrong element, which the root's --verify must catch.
      case REDUCE: {
        if (verify_) {
          for (std::size_t e = 0; e < count; ++e) buffer[e] = verify_value(plan_.rank, e);
          if (corrupt_sends_) buffer[count - 1] += 1;
        }
        check_mpi(
            MPI_Ireduce(me == 0 ? MPI_IN_PLACE : buffer.data(), me == 0 ? buffer.data() : nullptr,
                        static_cast<int>(count), MPI_FLOAT, MPI_SUM, 0, comm, &request),
            "MPI_Ireduce for " + what);
        wait_politely(request, "MPI_Ireduce for " + what);
        if (verify_ && me == 0)
          for (std::size_t e = 0; e < count; ++e) expect(what, e, buffer[e], sum_over(members, e));
        return;
      }
      case GATHER: {
        // Each rank's S/n piece; the root receives them in member order.
        std::vector<float> mine(shard);
        if (verify_) {
          for (std::size_t e = 0; e < shard; ++e) mine[e] = verify_value(plan_.rank, e);
          if (corrupt_sends_) mine[shard - 1] += 1;
        }
        check_mpi(MPI_Igather(mine.data(), static_cast<int>(shard), MPI_FLOAT,
                              me == 0 ? buffer.data() : nullptr, static_cast<int>(shard), MPI_FLOAT,
                              0, comm, &request),
                  "MPI_Igather for " + what);
        wait_politely(request, "MPI_Igather for " + what);
        if (verify_ && me == 0)
          for (std::size_t b = 0; b < n; ++b)
            for (std::size_t e = 0; e < shard; ++e)
              expect(what, b * shard + e, buffer[b * shard + e], verify_value(members[b], e));
        return;
      }
      case SCATTER: {
        // The root's S, piece b to member b.
        std::vector<float> mine(shard);
        if (verify_ && me == 0) {
          for (std::size_t e = 0; e < count; ++e) buffer[e] = verify_value(members[0], e);
          if (corrupt_sends_) buffer[count - 1] += 1;
        }
        check_mpi(
            MPI_Iscatter(me == 0 ? buffer.data() : nullptr, static_cast<int>(shard), MPI_FLOAT,
                         mine.data(), static_cast<int>(shard), MPI_FLOAT, 0, comm, &request),
            "MPI_Iscatter for " + what);
        wait_politely(request, "MPI_Iscatter for " + what);
        if (verify_)
          for (std::size_t e = 0; e < shard; ++e)
            expect(what, me * shard + e, mine[e], verify_value(members[0], me * shard + e));
        return;
      }
      case RING_EXCHANGE: {
        // Context parallelism's K/V ring: this rank's block to the next member, the previous
        // member's block in. --verify checks the block that arrived is the previous member's (an
        // injected fault corrupts what this rank sends, which its next member must catch).
        const int next = static_cast<int>((me + 1) % n), prev = static_cast<int>((me + n - 1) % n);
        const std::size_t elements = std::max<std::size_t>(1, floats_for(bytes_of(t)));
        std::vector<float> mine(elements), received(elements);
        if (verify_) {
          for (std::size_t e = 0; e < elements; ++e) mine[e] = verify_value(plan_.rank, e);
          if (corrupt_sends_) mine[elements - 1] += 1;
        }
        MPI_Request requests[2];
        check_mpi(MPI_Irecv(received.data(), static_cast<int>(elements), MPI_FLOAT, prev, 0, comm, &requests[0]),
                  "MPI_Irecv for " + what);
        check_mpi(MPI_Isend(mine.data(), static_cast<int>(elements), MPI_FLOAT, next, 0, comm, &requests[1]),
                  "MPI_Isend for " + what);
        wait_politely(requests[1], "MPI_Isend for " + what);
        wait_politely(requests[0], "MPI_Irecv for " + what);
        if (verify_)
          for (std::size_t e = 0; e < elements; ++e)
            expect(what, e, received[e], verify_value(members[static_cast<std::size_t>(prev)], e));
        return;
      }
      case ALL_TO_ALL: {
        std::vector<float> out(count);
        if (verify_)
          for (std::size_t e = 0; e < count; ++e) buffer[e] = verify_value(plan_.rank, e);
        if (corrupt_sends_ && count > 0) buffer[count - 1] += 1;  // injected fault (tests): the last member's block
        check_mpi(MPI_Ialltoall(buffer.data(), static_cast<int>(shard), MPI_FLOAT, out.data(), static_cast<int>(shard),
                                MPI_FLOAT, comm, &request),
                  "MPI_Ialltoall for " + what);
        wait_politely(request, "MPI_Ialltoall for " + what);
        if (verify_)
          for (std::size_t b = 0; b < n; ++b)
            for (std::size_t e = 0; e < shard; ++e) expect(what, b * shard + e, out[b * shard + e], verify_value(members[b], me * shard + e));
        return;
      }
    }
  }

  static float sum_over(const std::vector<std::uint32_t>& members, std::uint64_t e) {
    float s = 0;
    for (auto m : members) s += verify_value(m, e);
    return s;
  }

  void expect(const std::string& what, std::size_t element, float got, float expected) const {
    if (got == expected) return;
    fail("--verify: " + what + ": element " + std::to_string(element) + " is " + std::to_string(got) + ", expected " +
         std::to_string(expected));
  }

  void check_layer_kernel(std::size_t i) const {
    if (auto wrong = layer_ops_.check(i)) fail("--verify: " + name(i) + ", op " + layer_ops_.op_of(i) + ": " + *wrong);
  }

  void check_transfer(std::size_t i, const std::vector<float>& buffer) const {
    const auto peer = transfer_peer(plan_, task(i));
    for (std::size_t e = 0; e < buffer.size(); ++e) expect(name(i), e, buffer[e], verify_value(peer, e));
  }

  const model::JobGraph* graph_ = nullptr;
  RankPlan plan_;
  Communicators comms_;
  bool verify_ = false, corrupt_sends_ = false;
  int tag_limit_ = 32767;
  std::uint32_t gemm_cap_ = 512;
  std::uint64_t bytes_cap_ = std::numeric_limits<std::uint64_t>::max();
  std::vector<std::vector<std::size_t>> deps_;
  // Each lane's tasks in program order (LANE_PP_RECV's are recvs_).
  static constexpr int kLanes = LaneId_ARRAYSIZE;
  std::vector<std::size_t> lanes_[kLanes];
  std::vector<std::size_t> recvs_;
  std::vector<float> a_, b_, c_, mem_src_, mem_dst_;
  std::vector<float> comm_buffers_[kLanes];
  std::vector<std::vector<float>> recv_buffers_;
  std::vector<std::atomic<std::uint8_t>> done_;
  Clock::time_point start_;
  LayerOps layer_ops_;
  static constexpr std::size_t kNone = ~std::size_t{0};
  std::size_t corrupt_kernel_ = kNone;  // the task index whose output an injected fault corrupts
};

}  // namespace

std::unique_ptr<Backend> make_host_backend() { return std::make_unique<HostBackend>(); }

}  // namespace parallax::exec
