// The CUDA backend: one GPU per rank. GEMM tasks run cuBLAS GEMMs of the task's shape, memory-bound
// tasks a kernel moving the task's bytes, collectives and pipeline transfers NCCL calls on the task
// group's communicator. Every task is timed with CUDA events against one event recorded at the
// iteration's start (one clock per rank).
//
// Tasks of modern layers (RMSNorm, RoPE, SwiGLU, squared ReLU, flash attention) run their own kernels
// (layer_kernels.cu) on buffers of their real shapes (CudaLayerOps); --verify checks their results
// only on the host backend (parallax-flash-check compares the CUDA flash attention with the FP64
// reference).
//
// Streams: one per lane of traces::lane_of (parallax/traces/lanes.h), the stream's index being the
// lane's id: compute, tp comm, dp comm, pp send; then the pp recv lane as one stream per pipeline peer
// this rank receives from (recvs are posted ahead and ordered only by their sends). Built graphs have
// no host lane (imported traces run on the host backend).
//
// Communicators: the world (ncclCommInitRank, unique id broadcast over MPI), one per group kind
// (ncclCommSplit, color = first member, key = position), and for the pipeline one two-rank
// communicator per directed stage link (sender rank 0, receiver rank 1). A link's communicator is used
// by the send stream on one side and one recv stream on the other, so no two streams of a rank share
// a pipeline communicator, and both sides issue its operations in the same (program) order.
#include "kernels.h"
#include "layer_ops_cuda.h"

#include "parallax/exec/backend.h"
#include "parallax/traces/io.h"
#include "parallax/traces/lanes.h"

#include <cstdlib>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <mpi.h>
#include <nccl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

namespace parallax::exec {
namespace {

using gpu::Elem;

constexpr std::size_t kAlign = 256;
// The memory-bound kernel's working set: a task moving more than this per direction loops over it
// (still far larger than any L2, so every pass goes to HBM). Keeps the optimizer step of a large
// model (tens of GB of traffic) within one GPU's memory.
constexpr std::size_t kMoveHalfCap = std::size_t{512} << 20;
// Tasks issued ahead of the oldest unfinished one: bounds the CUDA launch queues so the host never
// blocks inside a launch while a peer waits on work this rank has not issued yet.
constexpr std::size_t kIssueWindow = 1024;
constexpr std::size_t kCublasWorkspace = std::size_t{32} << 20;  // NVIDIA's recommendation for Hopper

std::size_t round_up(std::size_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

// The lanes with one stream each, at index = lane id; recv streams follow from index LANE_PP_RECV on.
constexpr int kCompute = LANE_COMPUTE, kLaneStreams = LANE_PP_RECV;

const char* group_name(CommGroup g) {
  switch (g) {
    case GROUP_TP: return "TP";
    case GROUP_DP: return "DP";
    case GROUP_PP: return "PP";
    case GROUP_EMBEDDING: return "embedding";
    case GROUP_CP: return "CP";
    case GROUP_EP: return "EP";
    case GROUP_DP_CP: return "DP x CP";
    case GROUP_EXPERT_DP: return "expert DP";
    case GROUP_EXPERT_TP: return "expert TP";
    default: return "none";
  }
}

ncclDataType_t nccl_type(Elem e) {
  switch (e) {
    case Elem::F32: return ncclFloat32;
    case Elem::BF16: return ncclBfloat16;
    case Elem::F16: return ncclFloat16;
  }
  return ncclFloat32;
}

cudaDataType_t cuda_type(Elem e) {
  switch (e) {
    case Elem::F32: return CUDA_R_32F;
    case Elem::BF16: return CUDA_R_16BF;
    case Elem::F16: return CUDA_R_16F;
  }
  return CUDA_R_32F;
}

// Allowed relative error of a sum over n ranks: NCCL adds in the element type, one rounding per step.
float reduction_tolerance(Elem e, std::uint32_t n) {
  switch (e) {
    case Elem::F32: return 0.0f;  // small integers: exact
    case Elem::BF16: return static_cast<float>(n) / 256.0f;
    case Elem::F16: return static_cast<float>(n) / 2048.0f;
  }
  return 0.0f;
}

float verify_base(std::uint32_t rank) { return verify_value(rank, 0); }  // (rank % 13) + 1

std::string version_string(int code, int major_div, int minor_div) {
  return std::to_string(code / major_div) + "." + std::to_string((code % major_div) / minor_div);
}

// One plan task, resolved to a stream, a communicator and buffer offsets once in prepare().
struct Step {
  std::uint32_t id = 0;
  const model::Task* task = nullptr;
  LaneId lane = LANE_COMPUTE;
  int stream = kCompute;             // index into streams_
  std::vector<std::uint32_t> waits;  // plan indices of the latest predecessor on each other stream
  // Communication.
  ncclComm_t comm = nullptr;
  int comm_peer = -1;            // send/recv: the peer's rank in `comm`
  std::uint32_t peer = 0;        // send/recv: the peer's global rank
  Elem elem = Elem::BF16;
  std::size_t count = 0;         // elements of the full tensor S
  std::size_t chunk = 0;         // RS / AG / all-to-all: elements per member
  std::uint32_t group_size = 1, position = 0;
  float sum_bases = 0;           // --verify: sum of the members' verify bases
  float root_base = 0;
  std::size_t bases_offset = 0;  // --verify: the members' bases in bases_ (AG, all-to-all)
  int verify_slot = -1;
};

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, int rank) : device_(device), rank_(static_cast<std::uint32_t>(rank)) {
    check(cudaSetDevice(device_), "cudaSetDevice");
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, device_), "cudaGetDeviceProperties");
    int runtime = 0, nccl = 0;
    check(cudaRuntimeGetVersion(&runtime), "cudaRuntimeGetVersion");
    check_nccl(ncclGetVersion(&nccl), "ncclGetVersion", nullptr);
    description_ = std::string(prop.name) + ", CUDA " + version_string(runtime, 1000, 10) + ", NCCL " +
                   std::to_string(nccl / 10000) + "." + std::to_string((nccl % 10000) / 100) + "." +
                   std::to_string(nccl % 100);
  }

  ~CudaBackend() override {
    cudaSetDevice(device_);
    if (!aborted_) {
      const bool healthy = !failed_ && cudaDeviceSynchronize() == cudaSuccess;
      for (auto it = comms_.rbegin(); it != comms_.rend(); ++it) {
        if (healthy) {
          ncclCommDestroy(it->second);
        } else {
          ncclCommAbort(it->second);
        }
      }
    }
    for (auto e : start_) cudaEventDestroy(e);
    for (auto e : end_) cudaEventDestroy(e);
    if (iteration_start_) cudaEventDestroy(iteration_start_);
    if (cublas_) cublasDestroy(cublas_);
    for (void* p : allocations_) cudaFree(p);
    for (auto s : streams_) cudaStreamDestroy(s);
  }

  std::string name() const override { return "cuda"; }
  std::string device() const override { return description_; }

  void prepare(const model::JobGraph& graph, const RankPlan& plan, const Communicators& comms,
               const ExecOptions& options) override {
    failed_ = true;  // until prepare returns: the destructor aborts NCCL instead of waiting for peers
    graph_ = &graph;
    verify_ = options.verify;
    check(cudaSetDevice(device_), "cudaSetDevice");
    if (plan.rank != rank_) throw std::logic_error("cuda backend: the plan is for rank " + std::to_string(plan.rank) +
                                                   " but this process is rank " + std::to_string(rank_));
    choose_types(graph.scenario());
    layer_ops_.plan(graph, plan, elem_);  // before any NCCL call: a bad plan fails on every rank alike
    for (int s = 0; s < kLaneStreams; ++s) add_stream();
    check_cublas(cublasCreate(&cublas_), "cublasCreate", -1);
    check(cudaDeviceGetAttribute(&device_sms_, cudaDevAttrMultiProcessorCount, device_), "cudaDeviceGetAttribute");
    create_communicators(graph, plan, comms);
    resolve_steps(graph, plan, comms);
    allocate_buffers();
    start_.resize(steps_.size());
    end_.resize(steps_.size());
    for (std::size_t i = 0; i < steps_.size(); ++i) {
      check(cudaEventCreateWithFlags(&start_[i], cudaEventDefault), "cudaEventCreate");
      check(cudaEventCreateWithFlags(&end_[i], cudaEventDefault), "cudaEventCreate");
    }
    check(cudaEventCreateWithFlags(&iteration_start_, cudaEventDefault), "cudaEventCreate");
    check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    load_kernels();
    connect();
    // Queues of plan indices per stream, in issue order: completions are polled at each queue's head.
    queues_.assign(streams_.size(), {});
    for (std::uint32_t i = 0; i < steps_.size(); ++i) queues_[static_cast<std::size_t>(steps_[i].stream)].push_back(i);
    failed_ = false;
  }

  std::vector<TaskTiming> run_iteration(std::atomic<std::uint64_t>& progress) override {
    failed_ = true;
    check(cudaSetDevice(device_), "cudaSetDevice");
    cudaStream_t compute = streams_[kCompute];
    if (verify_) check(gpu::reset_results(results_, verify_count_, compute), "reset verify results");
    check(cudaEventRecord(iteration_start_, compute), "cudaEventRecord");
    for (std::size_t s = 1; s < streams_.size(); ++s)
      check(cudaStreamWaitEvent(streams_[s], iteration_start_, 0), "cudaStreamWaitEvent");

    heads_.assign(streams_.size(), 0);
    done_ = 0;
    for (std::size_t i = 0; i < steps_.size(); ++i) {
      while (i >= oldest_unfinished(i) + kIssueWindow) wait_a_little(i, progress);
      issue(static_cast<std::uint32_t>(i));
      if (i % 64 == 63) poll(i + 1, progress);
    }
    while (done_ < steps_.size()) wait_a_little(steps_.size(), progress);
    for (std::size_t s = 0; s < streams_.size(); ++s) check(cudaStreamSynchronize(streams_[s]), "cudaStreamSynchronize");

    std::vector<TaskTiming> timings(steps_.size());
    for (std::size_t i = 0; i < steps_.size(); ++i) {
      float start_ms = 0, end_ms = 0;
      check(cudaEventElapsedTime(&start_ms, iteration_start_, start_[i]), "cudaEventElapsedTime", static_cast<int>(i));
      check(cudaEventElapsedTime(&end_ms, iteration_start_, end_[i]), "cudaEventElapsedTime", static_cast<int>(i));
      timings[i].start = start_ms * 1e-3;
      timings[i].end = end_ms * 1e-3;
      timings[i].lane = steps_[i].lane;
    }
    if (verify_) check_results();
    failed_ = false;
    return timings;
  }

 private:
  // ---- errors ----

  std::string where(int step) const {
    std::string s = "cuda backend, rank " + std::to_string(rank_);
    if (step >= 0 && graph_ && static_cast<std::size_t>(step) < steps_.size()) {
      const auto id = steps_[static_cast<std::size_t>(step)].id;
      s += ", task '" + graph_->task_name(id) + "' (id " + std::to_string(id) + ")";
    }
    return s;
  }

  // Fatal: abort every NCCL communicator first so that no peer rank waits forever on this one.
  [[noreturn]] void fail(const std::string& message) {
    abort_communicators();
    failed_ = true;
    throw std::runtime_error(message);
  }

  void abort_communicators() {
    if (aborted_) return;
    aborted_ = true;
    for (auto it = comms_.rbegin(); it != comms_.rend(); ++it) ncclCommAbort(it->second);
  }

  void check(cudaError_t e, const char* call, int step = -1) {
    if (e != cudaSuccess) fail(where(step) + ": " + call + " failed: " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
  }

  void check_cublas(cublasStatus_t s, const char* call, int step) {
    if (s != CUBLAS_STATUS_SUCCESS)
      fail(where(step) + ": " + call + " failed: " + cublasGetStatusName(s) + " (" + cublasGetStatusString(s) + ")");
  }

  void check_nccl(ncclResult_t r, const char* call, ncclComm_t comm, int step = -1) {
    if (r == ncclSuccess || r == ncclInProgress) return;
    std::string detail = ncclGetErrorString(r);
    if (const char* last = ncclGetLastError(comm); last && *last) detail += ": " + std::string(last);
    fail(where(step) + ": " + call + " failed: " + detail);
  }

  void check_async_errors(int step) {
    for (const auto& [label, comm] : comms_) {
      ncclResult_t state = ncclSuccess;
      const ncclResult_t r = ncclCommGetAsyncError(comm, &state);
      if (r != ncclSuccess) check_nccl(r, "ncclCommGetAsyncError", comm, step);
      if (state != ncclSuccess && state != ncclInProgress)
        check_nccl(state, ("NCCL asynchronous error on the " + label + " communicator").c_str(), comm, step);
    }
  }

  // ---- prepare ----

  void choose_types(const Scenario& scenario) {
    if (scenario.layout().cp() > 1)
      throw InputError("layout.cp " + std::to_string(scenario.layout().cp()) +
                       ": the cuda backend does not run context parallelism's K/V ring (RING_EXCHANGE) yet; run "
                       "this layout on the host backend (--backend host) or simulate it, or set cp 1");
    switch (scenario.model().precision()) {
      case BF16: elem_ = Elem::BF16; compute_type_ = CUBLAS_COMPUTE_32F; break;
      case FP16: elem_ = Elem::F16; compute_type_ = CUBLAS_COMPUTE_32F; break;
      case FP32: elem_ = Elem::F32; compute_type_ = CUBLAS_COMPUTE_32F; break;
      case TF32: elem_ = Elem::F32; compute_type_ = CUBLAS_COMPUTE_32F_FAST_TF32; break;
      default:
        throw InputError("precision FP8: the cuda backend runs BF16, FP16, FP32 and TF32 scenarios (FP8 GEMMs need "
                         "cuBLASLt scaling factors, not implemented); set model.precision to BF16");
    }
    grad_elem_ = scenario.layout().grad_reduce_in_fp32() ? Elem::F32 : elem_;
  }

  int add_stream() {
    cudaStream_t s = nullptr;
    check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    streams_.push_back(s);
    return static_cast<int>(streams_.size()) - 1;
  }

  ncclComm_t split(int color, int key, const std::string& label) {
    ncclComm_t comm = nullptr;
    check_nccl(ncclCommSplit(world_, color, key, &comm, nullptr), ("ncclCommSplit (" + label + ")").c_str(), world_);
    if (comm) comms_.emplace_back(label, comm);
    return comm;
  }

  void create_communicators(const model::JobGraph& graph, const RankPlan& plan, const Communicators& comms) {
    int mpi_rank = 0, world_size = 1;
    MPI_Comm_rank(comms.world, &mpi_rank);
    MPI_Comm_size(comms.world, &world_size);
    if (static_cast<std::uint32_t>(mpi_rank) != rank_)
      throw std::logic_error("cuda backend: MPI rank " + std::to_string(mpi_rank) + " is not the plan's rank " +
                             std::to_string(rank_));
    // Pipeline links: the directed stage pairs any rank sends over, from one representative per stage.
    // NCCL matches the sends and recvs of a communicator in issue order, so both sides of a link must
    // post its transfers in the same order; checked here on every rank (before any NCCL call, so a bad
    // plan fails everywhere alike instead of hanging).
    const model::RankGrid& grid = plan.grid;
    std::map<std::int64_t, std::size_t> representative;  // stage -> index into graph.ranks()
    for (std::size_t r = 0; r < graph.ranks().size(); ++r) representative.emplace(grid.stage(graph.ranks()[r].rank), r);
    std::map<std::pair<std::int64_t, std::int64_t>, std::vector<int>> sent, received;
    for (const auto& [stage, r] : representative) {
      for (auto id : graph.rank_tasks(r)) {
        const model::Task& t = graph.tasks()[id];
        if (t.peer < 0) continue;
        const auto other = grid.stage(static_cast<std::uint32_t>(t.peer));
        if (t.kind == SEND) sent[{stage, other}].push_back(transfer_tag(t));
        if (t.kind == RECV) received[{other, stage}].push_back(transfer_tag(t));
      }
    }
    for (const auto& [link, tags] : sent) received[link];  // both maps list every link
    for (const auto& [link, tags] : received)
      if (sent[link] != tags)
        throw std::logic_error("cuda backend: stage " + std::to_string(link.first) + " sends to stage " +
                               std::to_string(link.second) + " in another order than stage " +
                               std::to_string(link.second) + " receives (NCCL matches transfers in issue order)");

    ncclUniqueId id{};
    if (mpi_rank == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId", nullptr);
    if (MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, comms.world) != MPI_SUCCESS)
      fail(where(-1) + ": MPI_Bcast of the NCCL unique id failed");
    check_nccl(ncclCommInitRank(&world_, world_size, id, mpi_rank), "ncclCommInitRank", nullptr);
    comms_.emplace_back("world", world_);

    // Group communicators: every rank takes part in every split the layout needs (collective over the
    // world), with NCCL_SPLIT_NOCOLOR where it is not a member.
    for (CommGroup g : model::kCollectiveGroups) {
      if (!grid.has_group(g)) continue;
      int color = NCCL_SPLIT_NOCOLOR, key = 0;
      const auto found = comms.members.find(g);
      if (found != comms.members.end() && found->second.size() > 1) {
        const auto& members = found->second;
        const auto pos = std::find(members.begin(), members.end(), rank_);
        if (pos != members.end()) {
          color = static_cast<int>(members.front());
          key = static_cast<int>(pos - members.begin());
        }
      }
      ncclComm_t comm = split(color, key, group_name(g));
      if (!comm) continue;
      const auto& members = found->second;
      int count = 0, me = 0;
      check_nccl(ncclCommCount(comm, &count), "ncclCommCount", comm);
      check_nccl(ncclCommUserRank(comm, &me), "ncclCommUserRank", comm);
      if (static_cast<std::size_t>(count) != members.size() || me != key)
        fail(where(-1) + ": the " + group_name(g) + " communicator has " + std::to_string(count) + " ranks (this one " +
             std::to_string(me) + "), expected " + std::to_string(members.size()) + " (this one " + std::to_string(key) + ")");
      groups_[g] = {comm, members};
    }

    std::vector<std::vector<std::pair<std::int64_t, std::int64_t>>> rounds;
    std::vector<std::set<std::int64_t>> busy;
    // Links coloured into rounds in which each stage takes part in at most one link: one split per
    // round gives every link its own two-rank communicator.
    for (const auto& link_tags : sent) {
      const auto& link = link_tags.first;
      std::size_t r = 0;
      while (r < rounds.size() && (busy[r].count(link.first) || busy[r].count(link.second))) ++r;
      if (r == rounds.size()) {
        rounds.emplace_back();
        busy.emplace_back();
      }
      rounds[r].push_back(link);
      busy[r].insert(link.first);
      busy[r].insert(link.second);
    }
    const std::int64_t me = grid.stage(rank_);
    const std::int64_t pipelines = grid.pipelines();
    const std::int64_t pipeline = grid.pipeline(rank_);
    for (const auto& round : rounds) {
      int color = NCCL_SPLIT_NOCOLOR, key = 0;
      std::pair<std::int64_t, std::int64_t> mine{-1, -1};
      for (std::size_t e = 0; e < round.size(); ++e) {
        if (round[e].first != me && round[e].second != me) continue;
        color = static_cast<int>(static_cast<std::int64_t>(e) * pipelines + pipeline);
        key = round[e].first == me ? 0 : 1;
        mine = round[e];
      }
      const std::string label = "pipeline stage " + std::to_string(mine.first) + "->" + std::to_string(mine.second);
      ncclComm_t comm = split(color, key, label);
      round_comms_.push_back(comm);
      if (!comm) continue;
      if (key == 0) {
        send_comms_[mine.second] = comm;
      } else {
        recv_comms_[mine.first] = comm;
        recv_streams_[mine.first] = add_stream();
      }
    }
  }

  void resolve_steps(const model::JobGraph& graph, const RankPlan& plan, const Communicators& comms) {
    (void)comms;
    const model::RankGrid& grid = plan.grid;
    std::unordered_map<std::uint32_t, std::uint32_t> index_of;
    index_of.reserve(plan.tasks.size());
    for (std::uint32_t i = 0; i < plan.tasks.size(); ++i) index_of.emplace(plan.tasks[i], i);

    // --verify: each group's member bases, for all-gather / all-to-all block checks.
    std::unordered_map<int, std::size_t> bases_of_group;
    for (const auto& [g, info] : groups_) {
      bases_of_group[g] = host_bases_.size();
      for (auto m : info.members) host_bases_.push_back(verify_base(m));
    }

    steps_.resize(plan.tasks.size());
    for (std::uint32_t i = 0; i < plan.tasks.size(); ++i) {
      Step& st = steps_[i];
      st.id = plan.tasks[i];
      st.task = &graph.tasks()[st.id];
      const model::Task& t = *st.task;
      const auto name = [&] { return "task '" + graph.task_name(st.id) + "' (id " + std::to_string(st.id) + ")"; };
      st.lane = traces::lane_of(t.stream, t.kind, t.on_host);
      if (st.lane >= kLaneStreams && st.lane != LANE_PP_RECV)
        throw std::logic_error(name() + ": lane " + std::string(traces::lane_name(st.lane)) +
                               " has no CUDA stream (CPU-side ops of imported traces run on the host backend)");
      st.stream = st.lane;  // LANE_PP_RECV: replaced by the peer's recv stream below

      if (!layer_ops_.handles(i)) switch (t.kind) {
        case GEMM: {
          const std::size_t batch = std::max<std::uint32_t>(1, t.gemm_batch);
          gemm_a_ = std::max(gemm_a_, std::size_t{t.gemm_m} * t.gemm_k * batch);
          gemm_b_ = std::max(gemm_b_, std::size_t{t.gemm_k} * t.gemm_n * batch);
          gemm_c_ = std::max(gemm_c_, std::size_t{t.gemm_m} * t.gemm_n * batch);
          break;
        }
        case MEMORY_BOUND:
          move_half_ = std::max<std::size_t>(move_half_, std::min<std::size_t>(t.bytes / 2, kMoveHalfCap));
          break;
        case SEND:
        case RECV: {
          st.peer = transfer_peer(plan, t);
          const auto peer_stage = grid.stage(st.peer);
          if (grid.pipeline(st.peer) != grid.pipeline(rank_))
            throw std::logic_error(name() + ": pipeline peer " + std::to_string(st.peer) + " is in another pipeline");
          auto& table = t.kind == SEND ? send_comms_ : recv_comms_;
          const auto found = table.find(peer_stage);
          if (found == table.end())
            throw std::logic_error(name() + ": no pipeline communicator between stages " + std::to_string(grid.stage(rank_)) +
                                   " and " + std::to_string(peer_stage));
          st.comm = found->second;
          st.comm_peer = t.kind == SEND ? 1 : 0;
          if (t.kind == RECV) st.stream = recv_streams_.at(peer_stage);
          st.elem = elem_;
          st.count = t.bytes / gpu::elem_size(st.elem);
          st.root_base = verify_base(st.peer);
          need_comm(st.stream, st.count * gpu::elem_size(st.elem));
          if (t.kind == RECV) st.verify_slot = static_cast<int>(verify_count_++);
          break;
        }
        case COLLECTIVE: {
          const auto found = groups_.find(t.group);
          if (found == groups_.end())
            throw std::logic_error(name() + " runs on the " + group_name(t.group) + " communicator but rank " +
                                   std::to_string(rank_) + " is not in one");
          const auto& members = found->second.members;
          st.comm = found->second.comm;
          st.group_size = static_cast<std::uint32_t>(members.size());
          st.position = static_cast<std::uint32_t>(std::find(members.begin(), members.end(), rank_) - members.begin());
          const bool gradient = t.op == model::Op::DpGradAllReduce || t.op == model::Op::DpGradReduceScatter ||
                                t.op == model::Op::EmbeddingGradAllReduce;
          st.elem = gradient ? grad_elem_ : elem_;
          const std::size_t es = gpu::elem_size(st.elem);
          st.count = t.bytes / es;
          st.chunk = st.count / st.group_size;
          for (auto m : members) st.sum_bases += verify_base(m);
          st.root_base = verify_base(members.front());
          st.bases_offset = bases_of_group.at(t.group);
          std::size_t need = st.count * es;
          if (t.collective == REDUCE_SCATTER || t.collective == ALL_GATHER ||
              t.collective == GATHER || t.collective == SCATTER)
            need = st.chunk * st.group_size * es;
          if (t.collective == ALL_TO_ALL) need = 2 * round_up(st.chunk * st.group_size * es);
          need_comm(st.stream, need);
          st.verify_slot = static_cast<int>(verify_count_++);
          break;
        }
      }

      // Waits: the latest predecessor on every other stream (same-stream ones are stream-ordered).
      std::vector<std::int64_t> latest(streams_.size(), -1);
      for (auto p : local_predecessors(graph, plan, st.id)) {
        const auto found = index_of.find(p);
        if (found == index_of.end() || found->second >= i)
          throw std::logic_error(name() + ": predecessor " + std::to_string(p) + " does not come earlier in program order");
        const auto& pred = steps_[found->second];
        if (pred.stream != st.stream)
          latest[static_cast<std::size_t>(pred.stream)] =
              std::max<std::int64_t>(latest[static_cast<std::size_t>(pred.stream)], found->second);
      }
      for (auto l : latest)
        if (l >= 0) st.waits.push_back(static_cast<std::uint32_t>(l));
    }
  }

  void need_comm(int stream, std::size_t bytes) {
    if (comm_bytes_.size() < streams_.size()) comm_bytes_.resize(streams_.size(), 0);
    comm_bytes_[static_cast<std::size_t>(stream)] = std::max(comm_bytes_[static_cast<std::size_t>(stream)], round_up(bytes));
  }

  void* allocate(std::size_t bytes, const std::string& what) {
    if (bytes == 0) return nullptr;
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
      std::size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      char text[160];
      std::snprintf(text, sizeof text, "%.2f GiB for %s (%.2f of %.2f GiB free)", static_cast<double>(bytes) / (1 << 30),
                    what.c_str(), static_cast<double>(free_b) / (1 << 30), static_cast<double>(total_b) / (1 << 30));
      fail(where(-1) + ": cudaMalloc of " + text + " failed: " + cudaGetErrorString(e));
    }
    allocations_.push_back(p);
    return p;
  }

  void allocate_buffers() {
    const std::size_t es = gpu::elem_size(elem_);
    cudaStream_t s = streams_[kCompute];
    cublas_workspace_ = allocate(kCublasWorkspace, "cuBLAS workspace");
    gemm_a_ptr_ = allocate(round_up(gemm_a_ * es), "GEMM operand A");
    gemm_b_ptr_ = allocate(round_up(gemm_b_ * es), "GEMM operand B");
    gemm_c_ptr_ = allocate(round_up(gemm_c_ * es), "GEMM result C");
    if (gemm_a_) check(gpu::fill_random(gemm_a_ptr_, gemm_a_, elem_, 1, s), "fill GEMM operand A");
    if (gemm_b_) check(gpu::fill_random(gemm_b_ptr_, gemm_b_, elem_, 2, s), "fill GEMM operand B");
    if (gemm_c_) check(cudaMemsetAsync(gemm_c_ptr_, 0, gemm_c_ * es, s), "cudaMemsetAsync");
    move_half_ = round_up(move_half_);
    move_ptr_ = static_cast<char*>(allocate(2 * move_half_, "memory-bound tasks"));
    if (move_ptr_) check(cudaMemsetAsync(move_ptr_, 0, 2 * move_half_, s), "cudaMemsetAsync");
    comm_bytes_.resize(streams_.size(), 0);
    comm_ptr_.assign(streams_.size(), nullptr);
    for (std::size_t i = 0; i < streams_.size(); ++i) {
      comm_ptr_[i] = static_cast<char*>(allocate(comm_bytes_[i], "communication buffers (stream " + std::to_string(i) + ")"));
      if (comm_ptr_[i]) check(cudaMemsetAsync(comm_ptr_[i], 0, comm_bytes_[i], s), "cudaMemsetAsync");
    }
    check(layer_ops_.allocate([this](std::size_t bytes, const std::string& what) { return allocate(bytes, what); }, s),
          "layer op buffers");
    if (verify_) {
      results_ = static_cast<gpu::VerifyResult*>(allocate(std::max<std::size_t>(1, verify_count_) * sizeof(gpu::VerifyResult), "verify results"));
      bases_ = static_cast<float*>(allocate(std::max<std::size_t>(1, host_bases_.size()) * sizeof(float), "verify bases"));
      if (!host_bases_.empty())
        check(cudaMemcpy(bases_, host_bases_.data(), host_bases_.size() * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
    }
  }

  // Runs every kernel the iterations will use once, before any NCCL kernel runs. With CUDA's lazy
  // module loading (the default) a kernel's first launch may wait for the running kernels, and NCCL
  // kernels wait for peers: loading in the middle of an iteration can deadlock the job.
  void load_kernels() {
    cudaStream_t s = streams_[kCompute];
    std::set<std::tuple<std::uint32_t, std::uint32_t, std::uint32_t, std::uint32_t>> shapes;
    bool moved = false;
    check(layer_ops_.load(s), "layer op kernel launch");
    for (std::size_t i = 0; i < steps_.size(); ++i) {
      const model::Task& t = *steps_[i].task;
      if (layer_ops_.handles(i)) continue;
      if (t.kind == GEMM && shapes.emplace(t.gemm_m, t.gemm_n, t.gemm_k, t.gemm_batch).second)
        launch_gemm(t, s, static_cast<int>(i));
      if (t.kind == MEMORY_BOUND && !moved) {
        check(gpu::move_bytes(move_ptr_, move_ptr_, 0, s), "memory-bound kernel launch", static_cast<int>(i));
        moved = true;
      }
    }
    if (verify_) {
      for (Elem e : {Elem::F32, Elem::BF16, Elem::F16}) {
        gpu::Expectation none;
        none.block_len = 1;
        check(gpu::fill_pattern(bases_, 1, e, 0.0f, 0, s), "verify fill");
        check(gpu::check_pattern(bases_, e, none, results_, s), "verify check");
      }
      check(gpu::reset_results(results_, 1, s), "reset verify results");
      check(cudaMemcpyAsync(bases_, host_bases_.data(), host_bases_.size() * sizeof(float), cudaMemcpyHostToDevice, s),
            "cudaMemcpyAsync");
    }
    check(cudaDeviceSynchronize(), "cudaDeviceSynchronize (loading kernels)");
  }

  // NCCL connects peers on a communicator's first operation of each kind, a host-side handshake with
  // the peers. Done lazily inside an iteration, one rank could wait in a handshake on one communicator
  // while its peer waits in another: so every connection is made here, in an order all ranks share:
  // the collective groups (model::kCollectiveGroups) (each distinct kind and size once; the members of a group run the
  // same program), then the pipeline links round by round (each stage in at most one link per round).
  void connect() {
    for (CommGroup g : model::kCollectiveGroups) {
      std::set<std::tuple<int, std::size_t, int>> seen;
      for (std::size_t i = 0; i < steps_.size(); ++i) {
        const Step& st = steps_[i];
        if (st.task->kind != COLLECTIVE || st.task->group != g) continue;
        if (!seen.emplace(st.task->collective, st.count, static_cast<int>(st.elem)).second) continue;
        cudaStream_t s = streams_[static_cast<std::size_t>(st.stream)];
        launch_collective(st, s, static_cast<int>(i));
        check(cudaStreamSynchronize(s), "cudaStreamSynchronize (connecting)", static_cast<int>(i));
      }
    }
    for (ncclComm_t comm : round_comms_) {
      if (!comm) continue;
      for (std::size_t i = 0; i < steps_.size(); ++i) {
        const Step& st = steps_[i];
        if (st.comm != comm) continue;
        cudaStream_t s = streams_[static_cast<std::size_t>(st.stream)];
        const int step = static_cast<int>(i);
        if (st.count && st.task->kind == SEND)
          check_nccl(ncclSend(comm_buffer(st), st.count, nccl_type(st.elem), st.comm_peer, comm, s), "ncclSend", comm, step);
        if (st.count && st.task->kind == RECV)
          check_nccl(ncclRecv(comm_buffer(st), st.count, nccl_type(st.elem), st.comm_peer, comm, s), "ncclRecv", comm, step);
        check(cudaStreamSynchronize(s), "cudaStreamSynchronize (connecting)", step);
        break;
      }
    }
  }

  // ---- run ----

  // The plan index of the oldest task not yet finished (`issued` when all issued ones are).
  std::size_t oldest_unfinished(std::size_t issued) const {
    std::size_t oldest = issued;
    for (std::size_t s = 0; s < queues_.size(); ++s)
      if (heads_[s] < queues_[s].size()) oldest = std::min<std::size_t>(oldest, queues_[s][heads_[s]]);
    return oldest;
  }

  // Counts the tasks finished since the last poll (each stream completes in order).
  void poll(std::size_t issued, std::atomic<std::uint64_t>& progress) {
    for (std::size_t s = 0; s < queues_.size(); ++s) {
      while (heads_[s] < queues_[s].size() && queues_[s][heads_[s]] < issued) {
        const auto i = queues_[s][heads_[s]];
        const cudaError_t e = cudaEventQuery(end_[i]);
        if (e == cudaErrorNotReady) break;
        check(e, "task execution (cudaEventQuery)", static_cast<int>(i));
        ++heads_[s];
        ++done_;
        progress.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }

  void wait_a_little(std::size_t issued, std::atomic<std::uint64_t>& progress) {
    poll(issued, progress);
    const std::size_t oldest = oldest_unfinished(issued);
    check_async_errors(oldest < steps_.size() ? static_cast<int>(oldest) : -1);
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }

  char* comm_buffer(const Step& st) const { return comm_ptr_[static_cast<std::size_t>(st.stream)]; }

  void issue(std::uint32_t i) {
    const Step& st = steps_[i];
    const model::Task& t = *st.task;
    const int step = static_cast<int>(i);
    cudaStream_t s = streams_[static_cast<std::size_t>(st.stream)];
    for (auto w : st.waits) check(cudaStreamWaitEvent(s, end_[w], 0), "cudaStreamWaitEvent", step);
    if (verify_ && t.is_communication()) prefill(st, s, step);
    check(cudaEventRecord(start_[i], s), "cudaEventRecord", step);
    switch (t.kind) {
      case GEMM:
      case MEMORY_BOUND:
        if (layer_ops_.handles(i))
          check(layer_ops_.launch(i, s), "layer op kernel launch", step);
        else if (t.kind == GEMM)
          launch_gemm(t, s, step);
        else
          launch_move(t, s, step);
        break;
      case COLLECTIVE: launch_collective(st, s, step); break;
      case SEND:
        if (st.count)
          check_nccl(ncclSend(comm_buffer(st), st.count, nccl_type(st.elem), st.comm_peer, st.comm, s), "ncclSend", st.comm, step);
        break;
      case RECV:
        if (st.count)
          check_nccl(ncclRecv(comm_buffer(st), st.count, nccl_type(st.elem), st.comm_peer, st.comm, s), "ncclRecv", st.comm, step);
        break;
    }
    check(cudaEventRecord(end_[i], s), "cudaEventRecord", step);
    if (verify_ && st.verify_slot >= 0) check_result(st, s, step);
  }

  void launch_gemm(const model::Task& t, cudaStream_t s, int step) {
    if (!t.gemm_m || !t.gemm_n || !t.gemm_k) return;
    const int m = static_cast<int>(t.gemm_m), n = static_cast<int>(t.gemm_n), k = static_cast<int>(t.gemm_k);
    const int batch = static_cast<int>(std::max<std::uint32_t>(1, t.gemm_batch));
    const float alpha = 1.0f, beta = 0.0f;
    const cudaDataType_t type = cuda_type(elem_);
    // Column-major C (m x n) = A (m x k) * B (k x n), `batch` times. Overlapped with TP communication
    // (the plan's gemm_splits, sm_share) it runs as chunks of m / splits rows, on the share of the
    // SMs TE's communication kernels leave (cuBLAS's SM count target).
    use_stream(s, step);
    const int target = t.sm_share < 1.0f ? std::max(1, static_cast<int>(t.sm_share * static_cast<float>(device_sms_))) : 0;
    if (target != sm_target_) {
      check_cublas(cublasSetSmCountTarget(cublas_, target), "cublasSetSmCountTarget", step);
      sm_target_ = target;
    }
    const int splits = std::clamp<int>(t.gemm_splits, 1, m);
    for (int c = 0, row = 0; c < splits; ++c) {
      const int rows = m / splits + (c < m % splits ? 1 : 0);
      const std::size_t offset = static_cast<std::size_t>(row) * gpu::elem_size(elem_);
      check_cublas(cublasGemmStridedBatchedEx(cublas_, CUBLAS_OP_N, CUBLAS_OP_N, rows, n, k, &alpha,
                                              static_cast<const char*>(gemm_a_ptr_) + offset, type, m,
                                              static_cast<long long>(m) * k, gemm_b_ptr_, type, k,
                                              static_cast<long long>(k) * n, &beta,
                                              static_cast<char*>(gemm_c_ptr_) + offset, type, m,
                                              static_cast<long long>(m) * n, batch, compute_type_, CUBLAS_GEMM_DEFAULT),
                   "cublasGemmStridedBatchedEx", step);
      row += rows;
    }
  }

  // cublasSetStream resets the workspace to cuBLAS's own pool, so set ours again after each change.
  void use_stream(cudaStream_t s, int step) {
    if (cublas_stream_ == s) return;
    check_cublas(cublasSetStream(cublas_, s), "cublasSetStream", step);
    check_cublas(cublasSetWorkspace(cublas_, cublas_workspace_, kCublasWorkspace), "cublasSetWorkspace", step);
    cublas_stream_ = s;
  }

  void launch_move(const model::Task& t, cudaStream_t s, int step) {
    // Reads bytes/2 and writes bytes/2: the task's HBM traffic.
    const std::size_t half = t.bytes / 2;
    if (half < sizeof(float) * 4 || move_half_ == 0) {
      check(gpu::move_bytes(move_ptr_, move_ptr_, 0, s), "memory-bound kernel launch", step);
      return;
    }
    for (std::size_t done = 0; done < half; done += move_half_)
      check(gpu::move_bytes(move_ptr_, move_ptr_ + move_half_, std::min(move_half_, half - done), s),
            "memory-bound kernel launch", step);
  }

  void launch_collective(const Step& st, cudaStream_t s, int step) {
    char* buf = comm_buffer(st);
    const ncclDataType_t type = nccl_type(st.elem);
    const std::size_t es = gpu::elem_size(st.elem);
    switch (st.task->collective) {
      case ALL_REDUCE:
        if (st.count) check_nccl(ncclAllReduce(buf, buf, st.count, type, ncclSum, st.comm, s), "ncclAllReduce", st.comm, step);
        break;
      case REDUCE_SCATTER:  // in place: this rank's shard is its slice of the input
        if (st.chunk)
          check_nccl(ncclReduceScatter(buf, buf + st.position * st.chunk * es, st.chunk, type, ncclSum, st.comm, s),
                     "ncclReduceScatter", st.comm, step);
        break;
      case ALL_GATHER:  // in place: this rank's block is its slice of the output
        if (st.chunk)
          check_nccl(ncclAllGather(buf + st.position * st.chunk * es, buf, st.chunk, type, st.comm, s), "ncclAllGather",
                     st.comm, step);
        break;
      case BROADCAST:
        if (st.count) check_nccl(ncclBroadcast(buf, buf, st.count, type, 0, st.comm, s), "ncclBroadcast", st.comm, step);
        break;
      // Rooted collectives: the root is the communicator's first member (rank 0), as for broadcast.
      case REDUCE:  // in place on every rank; the sum lands on the root
        if (st.count)
          check_nccl(ncclReduce(buf, buf, st.count, type, ncclSum, 0, st.comm, s), "ncclReduce",
                     st.comm, step);
        break;
      // NCCL has no gather or scatter: one group of sends to (from) the root and the root's
      // receives (sends), as nccl-tests' gather and scatter. In place: member b's piece is block b
      // of the buffer; the root's own block stays where it is.
      case GATHER:
      case SCATTER: {
        if (!st.chunk) break;
        const bool gather = st.task->collective == GATHER;
        check_nccl(ncclGroupStart(), "ncclGroupStart", st.comm, step);
        if (st.position != 0) {
          char* mine = buf + st.position * st.chunk * es;
          if (gather) {
            check_nccl(ncclSend(mine, st.chunk, type, 0, st.comm, s), "ncclSend", st.comm, step);
          } else {
            check_nccl(ncclRecv(mine, st.chunk, type, 0, st.comm, s), "ncclRecv", st.comm, step);
          }
        } else {
          for (std::uint32_t b = 1; b < st.group_size; ++b) {
            char* block = buf + b * st.chunk * es;
            if (gather) {
              check_nccl(ncclRecv(block, st.chunk, type, static_cast<int>(b), st.comm, s),
                         "ncclRecv", st.comm, step);
            } else {
              check_nccl(ncclSend(block, st.chunk, type, static_cast<int>(b), st.comm, s),
                         "ncclSend", st.comm, step);
            }
          }
        }
        check_nccl(ncclGroupEnd(), "ncclGroupEnd", st.comm, step);
        break;
      }
      case ALL_TO_ALL: {
        if (!st.chunk) break;
        char* recv = buf + round_up(st.chunk * st.group_size * es);
        check_nccl(ncclGroupStart(), "ncclGroupStart", st.comm, step);
        for (std::uint32_t b = 0; b < st.group_size; ++b) {
          check_nccl(ncclSend(buf + b * st.chunk * es, st.chunk, type, static_cast<int>(b), st.comm, s), "ncclSend", st.comm, step);
          check_nccl(ncclRecv(recv + b * st.chunk * es, st.chunk, type, static_cast<int>(b), st.comm, s), "ncclRecv", st.comm, step);
        }
        check_nccl(ncclGroupEnd(), "ncclGroupEnd", st.comm, step);
        break;
      }
      default:
        fail(where(step) + ": unknown collective kind " + std::to_string(static_cast<int>(st.task->collective)));
    }
  }

  // ---- --verify ----

  // Inputs: every rank contributes verify_value(rank, i); outputs are cleared first so stale data
  // from an earlier task cannot pass the check.
  void prefill(const Step& st, cudaStream_t s, int step) {
    char* buf = comm_buffer(st);
    const std::size_t es = gpu::elem_size(st.elem);
    const float mine = verify_base(rank_);
    const auto fill = [&](void* p, std::size_t n) { check(gpu::fill_pattern(p, n, st.elem, mine, 0, s), "verify fill", step); };
    const auto clear = [&](void* p, std::size_t n) {
      if (n) check(cudaMemsetAsync(p, 0, n * es, s), "cudaMemsetAsync", step);
    };
    switch (st.task->kind) {
      case SEND: fill(buf, st.count); return;
      case RECV: clear(buf, st.count); return;
      default: break;
    }
    switch (st.task->collective) {
      case ALL_REDUCE: fill(buf, st.count); break;
      case REDUCE_SCATTER: fill(buf, st.chunk * st.group_size); break;
      case ALL_GATHER:
        clear(buf, st.chunk * st.group_size);
        fill(buf + st.position * st.chunk * es, st.chunk);
        break;
      case BROADCAST:
        if (st.position == 0) {
          fill(buf, st.count);
        } else {
          clear(buf, st.count);
        }
        break;
      case REDUCE:
        fill(buf, st.count);
        break;
      case GATHER:  // as all-gather: this rank's block holds its piece, the others are cleared
        clear(buf, st.chunk * st.group_size);
        fill(buf + st.position * st.chunk * es, st.chunk);
        break;
      case SCATTER:  // the root holds the whole tensor
        if (st.position == 0) {
          fill(buf, st.chunk * st.group_size);
        } else {
          clear(buf, st.chunk * st.group_size);
        }
        break;
      case ALL_TO_ALL:
        fill(buf, st.chunk * st.group_size);
        clear(buf + round_up(st.chunk * st.group_size * es), st.chunk * st.group_size);
        break;
      default: break;
    }
  }

  void check_result(const Step& st, cudaStream_t s, int step) {
    char* buf = comm_buffer(st);
    const std::size_t es = gpu::elem_size(st.elem);
    gpu::Expectation e;
    const void* data = buf;
    if (st.task->kind == RECV) {
      e.block_len = st.count;
      e.base0 = st.root_base;  // the peer's base
    } else {
      switch (st.task->collective) {
        case ALL_REDUCE:
          e.block_len = st.count;
          e.base0 = st.sum_bases;
          e.multiplier = static_cast<float>(st.group_size);
          e.tolerance = reduction_tolerance(st.elem, st.group_size);
          break;
        case REDUCE_SCATTER:
          data = buf + st.position * st.chunk * es;
          e.block_len = st.chunk;
          e.base0 = st.sum_bases;
          e.multiplier = static_cast<float>(st.group_size);
          e.offset = st.position * st.chunk;
          e.tolerance = reduction_tolerance(st.elem, st.group_size);
          break;
        case ALL_GATHER:
          e.block_len = st.chunk;
          e.blocks = st.group_size;
          e.block_base = bases_ + st.bases_offset;
          break;
        case BROADCAST:
          e.block_len = st.count;
          e.base0 = st.root_base;
          break;
        case REDUCE:  // only the root holds a result
          if (st.position != 0) return;
          e.block_len = st.count;
          e.base0 = st.sum_bases;
          e.multiplier = static_cast<float>(st.group_size);
          e.tolerance = reduction_tolerance(st.elem, st.group_size);
          break;
        case GATHER:  // only the root holds a result: block b is member b's piece
          if (st.position != 0) return;
          e.block_len = st.chunk;
          e.blocks = st.group_size;
          e.block_base = bases_ + st.bases_offset;
          break;
        case SCATTER:  // this rank's block of the root's tensor
          data = buf + st.position * st.chunk * es;
          e.block_len = st.chunk;
          e.base0 = st.root_base;
          e.offset = st.position * st.chunk;
          break;
        case ALL_TO_ALL:
          data = buf + round_up(st.chunk * st.group_size * es);
          e.block_len = st.chunk;
          e.blocks = st.group_size;
          e.block_base = bases_ + st.bases_offset;
          e.offset = st.position * st.chunk;
          break;
        default: return;
      }
    }
    check(gpu::check_pattern(data, st.elem, e, results_ + st.verify_slot, s), "verify check", step);
  }

  void check_results() {
    std::vector<gpu::VerifyResult> results(verify_count_);
    if (verify_count_)
      check(cudaMemcpy(results.data(), results_, verify_count_ * sizeof(gpu::VerifyResult), cudaMemcpyDeviceToHost), "cudaMemcpy");
    for (std::size_t i = 0; i < steps_.size(); ++i) {
      const Step& st = steps_[i];
      if (st.verify_slot < 0) continue;
      const auto& r = results[static_cast<std::size_t>(st.verify_slot)];
      if (r.index == gpu::kNoError) continue;
      char text[200];
      std::snprintf(text, sizeof text, ": wrong result at element %llu: expected %g, got %g", r.index,
                    static_cast<double>(r.expected), static_cast<double>(r.got));
      failed_ = true;
      throw std::runtime_error("--verify failed: " + where(static_cast<int>(i)) + text);
    }
  }

  struct GroupComm {
    ncclComm_t comm = nullptr;
    std::vector<std::uint32_t> members;
  };

  int device_ = 0;
  std::uint32_t rank_ = 0;
  std::string description_;
  const model::JobGraph* graph_ = nullptr;
  bool verify_ = false, failed_ = false, aborted_ = false;

  Elem elem_ = Elem::BF16, grad_elem_ = Elem::BF16;
  cublasComputeType_t compute_type_ = CUBLAS_COMPUTE_32F;
  cublasHandle_t cublas_ = nullptr;
  cudaStream_t cublas_stream_ = nullptr;
  int device_sms_ = 0;  // the GPU's SMs
  int sm_target_ = 0;   // cuBLAS's SM count target now (0: all)
  void* cublas_workspace_ = nullptr;

  ncclComm_t world_ = nullptr;
  std::vector<std::pair<std::string, ncclComm_t>> comms_;  // every communicator, creation order
  std::map<int, GroupComm> groups_;                         // by CommGroup
  std::map<std::int64_t, ncclComm_t> send_comms_, recv_comms_;  // by peer stage
  std::map<std::int64_t, int> recv_streams_;                     // by peer stage
  std::vector<ncclComm_t> round_comms_;  // per link round: this rank's link communicator or null

  std::vector<cudaStream_t> streams_;
  std::vector<Step> steps_;
  std::vector<std::vector<std::uint32_t>> queues_;
  std::vector<std::size_t> heads_;
  std::size_t done_ = 0;
  std::vector<cudaEvent_t> start_, end_;
  cudaEvent_t iteration_start_ = nullptr;

  std::vector<void*> allocations_;
  CudaLayerOps layer_ops_;
  std::size_t gemm_a_ = 0, gemm_b_ = 0, gemm_c_ = 0;  // elements
  void *gemm_a_ptr_ = nullptr, *gemm_b_ptr_ = nullptr, *gemm_c_ptr_ = nullptr;
  std::size_t move_half_ = 0;  // bytes per direction
  char* move_ptr_ = nullptr;
  std::vector<std::size_t> comm_bytes_;  // per stream
  std::vector<char*> comm_ptr_;
  std::size_t verify_count_ = 0;
  gpu::VerifyResult* results_ = nullptr;
  std::vector<float> host_bases_;
  float* bases_ = nullptr;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(const Environment& env) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0)
    throw InputError(std::string("no GPU visible: the cuda backend needs one GPU per rank; use --backend host") +
                     (e != cudaSuccess ? std::string(" (CUDA: ") + cudaGetErrorString(e) + ")" : std::string()));
  // A launcher that gives each rank only its own GPU (Slurm's --gpus-per-task, CUDA_VISIBLE_DEVICES per
  // rank) leaves one visible device per process: use it.
  if (count == 1 && env.local_size > 1 && std::getenv("CUDA_VISIBLE_DEVICES"))
    return std::make_unique<CudaBackend>(0, env.rank);
  if (count < env.local_size)
    throw InputError(std::to_string(env.local_size) + " local ranks but only " + std::to_string(count) +
                     " GPUs; NCCL before 2.30 refuses two ranks on one GPU: launch at most " + std::to_string(count) +
                     " ranks per node (mpirun -np ... --map-by ppr:" + std::to_string(count) + ":node)");
  if (env.local_rank < 0 || env.local_rank >= count)
    throw InputError("local rank " + std::to_string(env.local_rank) + " has no GPU (" + std::to_string(count) +
                     " visible); launch at most " + std::to_string(count) + " ranks per node");
  return std::make_unique<CudaBackend>(env.local_rank, env.rank);
}

}  // namespace parallax::exec
