// The job graph: every task of one training step on every rank, and their dependencies.
#pragma once

#include "parallax/parallax.pb.h"

#include <boost/graph/compressed_sparse_row_graph.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace parallax::model {

// What a task computes or communicates (kept as a small enum: the graph of a 1000-GPU job has
// millions of tasks; the name is rebuilt from it on demand).
enum class Op : std::uint8_t {
  Embedding,
  LayerNorm,
  Qkv,
  AttnScores,
  Softmax,
  AttnDropout,
  AttnContext,
  AttnProj,
  DropoutResidual,
  Fc1,
  Gelu,
  Fc2,
  FinalLayerNorm,
  Logits,
  CrossEntropy,
  TpAllReduce,
  SpAllGather,
  SpReduceScatter,
  PpSend,
  PpRecv,
  DpGradAllReduce,
  DpGradReduceScatter,
  DpParamAllGather,
  EmbeddingGradAllReduce,
  OptimizerStep,
  // Modern layers (model::LayerDescription). FlashAttention is one fused kernel of kind GEMM:
  // gemm_m = query tokens (s), gemm_n = key tokens (s), gemm_k = head_dim, gemm_batch = b x query
  // heads on this rank; flops count the causal half (forward 2 matmuls: 4 b s^2 d heads / 2;
  // backward 5 matmuls with the recompute of the scores inside the kernel). The cost model times it
  // from the GPU's flash_attention_efficiency table.
  RmsNorm,
  FinalRmsNorm,
  Rope,
  FlashAttention,
  Swiglu,
  SquaredRelu,
  // FP8 training (Transformer Engine): the casts of a linear's input (forward) and output gradient
  // (backward) to FP8 with their transposes, and of its weight once per step; the amax pass of
  // current scaling.
  Fp8Cast,
  // Context parallelism: one step of the K/V ring (a send to the next cp rank and a receive from the
  // previous, overlapped with the partial attention on the block already there), and in backward
  // the K/V and dK/dV moving together.
  CpKvExchange,
  // Tasks of an imported execution trace (Chakra), which says what kind of work a node is but not
  // which layer operation; the trace's own node name is kept in JobGraph::task_label.
  TraceCompute,
  TraceMemory,
  TraceBookkeeping,  // metadata nodes and CPU-side collective calls: no work, no traffic
  TraceCollective,
  TraceSend,
  TraceRecv,
  // Mixture of Experts (model::describe_layer with moe): the router GEMM, its softmax / top-k, the
  // permutation into expert order, the dispatch all-to-all, the routed experts' grouped GEMMs, the
  // combine all-to-all, the un-permutation, and the shared experts' FFN.
  MoeRouter,
  MoeTopK,
  MoePermute,
  MoeDispatch,
  ExpertFc1,
  ExpertFc2,
  MoeCombine,
  MoeUnpermute,
  SharedExpertFc1,
  SharedExpertFc2,
  // Multi-head latent attention (model::describe_layer with kv_lora_rank): the down-projection of
  // the hidden state to the q and kv latents (and the shared RoPE key), the latents' norms, and the
  // up-projections of the q latent to the queries and of the kv latent to the keys and values.
  MlaDownProj,
  MlaLatentNorm,
  MlaQUpProj,
  MlaKvUpProj,
  // Expert tensor parallelism (layout.etp): the tokens an expert rank received all-gathered over
  // its etp group before the experts, and the partial expert outputs reduce-scattered after them.
  ExpertTpGather,
  ExpertTpReduceScatter,
  // Multi-token prediction (model.mtp_layers): eh_proj, the projection of the normalised hidden
  // state and embedding (2h) to h.
  MtpProjection,
  kCount
};
std::string_view op_name(Op op);

// Which GEMM of a backward pass a task is: the input gradient or the weight gradient.
enum class GemmRole : std::uint8_t { Forward, InputGrad, WeightGrad };

// Transformer Engine's userbuffer overlap of the sequence-parallel collectives with their GEMMs
// (layout.tp_comm_overlap), with the defaults TE's initialize_ub gives each GEMM
// (transformer_engine/pytorch/module/base.py, get_default_config), which NeMo uses unless a model's
// config overrides them:
//  - ring_exchange (qkv and fc1 forward, attention projection and fc2 dgrad): the all-gathered input
//    arrives one TP shard at a time over the copy engines, and the GEMM runs as tp chunks of m / tp
//    rows, each on the shard already there (num_splits = tp; 1 SM, no margin).
//  - pipeline (attention projection and fc2 forward): the GEMM runs as 4 chunks and each chunk's
//    reduce-scatter runs beside the next; the communication kernels keep 16 SMs (set_sm_margin)
//    and the GEMM runs on the others.
//  - bulk (qkv and fc1 dgrad, wgrad): the whole all-gather (reduce-scatter) beside the dgrad
//    (wgrad), its kernels keeping 16 SMs from that GEMM.
inline constexpr int kTpOverlapCommSms = 16;
inline constexpr int kTpOverlapPipelineSplits = 4;
// The MoE all-to-all overlap (layout.moe_a2a_overlap): NCCL's send/recv kernels of the all-to-all
// run one CTA per channel, up to NCCL_MAX_CTAS (32 by default since NCCL 2.17), each holding an SM,
// so the GEMMs of the other micro-batch that run beside it have the remaining SMs.
inline constexpr int kEpOverlapCommSms = 32;

struct Task {
  double flops = 0;          // GEMMs: 2 m n k batch; memory-bound ops: elementwise work
  std::uint64_t bytes = 0;   // compute: HBM traffic; communication: full tensor size S (nccl-tests)
  std::uint32_t gemm_m = 0, gemm_n = 0, gemm_k = 0, gemm_batch = 0;
  // GEMMs overlapped with TP communication (kTpOverlapCommSms): run as gemm_splits chunks of
  // gemm_m / gemm_splits rows, on the sm_share of the GPU's SMs the communication leaves.
  std::uint16_t gemm_splits = 1;
  float sm_share = 1.0f;
  bool fp8 = false;          // GEMMs: on the FP8 tensor cores (model precision FP8: the linears)
  std::uint32_t rank = 0;    // global rank of the (representative) rank running it
  std::int32_t peer = -1;    // send/recv: the other global rank
  std::int32_t microbatch = -1;
  // Global layer index, -1 outside layers; pipeline transfers: the first layer above the stage
  // boundary they cross.
  std::int16_t layer = -1;
  Op op = Op::Embedding;
  GemmRole role = GemmRole::Forward;
  TaskKind kind = GEMM;
  Stream stream = COMPUTE;
  Phase phase = FORWARD;
  CollectiveKind collective = ALL_REDUCE;
  CommGroup group = GROUP_NONE;
  // Imported graphs only: the communicator (index into JobGraph::communicators()) a collective runs
  // on, for rank lists that no layout grid describes; -1 = `group` on the layout grid.
  std::int32_t communicator = -1;
  // Imported graphs only: a measured duration that replaces the cost model; negative = none.
  double measured_s = -1;
  // Imported graphs only: a CPU-side op (Chakra is_cpu_op), which runs on its rank's host rather
  // than its GPU.
  bool on_host = false;

  bool is_compute() const { return kind == GEMM || kind == MEMORY_BOUND; }
  bool is_communication() const { return !is_compute(); }
};

// One representative rank and the ranks it stands for.
struct RankClass {
  std::uint32_t rank;          // global rank: tp + t * (dp + d * pp), Megatron's order
  std::uint32_t multiplicity;  // ranks with an identical task list (itself included)
  std::int32_t pp_stage;
};

class JobGraph {
 public:
  using Csr = boost::compressed_sparse_row_graph<boost::bidirectionalS, boost::no_property,
                                                 boost::no_property, boost::no_property,
                                                 std::uint32_t, std::uint32_t>;

  JobGraph(Scenario scenario, std::vector<RankClass> ranks, std::vector<Task> tasks,
           std::vector<std::vector<std::uint32_t>> rank_tasks,
           const std::vector<std::pair<std::uint32_t, std::uint32_t>>& edges);

  const Scenario& scenario() const { return scenario_; }
  const std::vector<Task>& tasks() const { return tasks_; }
  const std::vector<RankClass>& ranks() const { return ranks_; }
  const Csr& graph() const { return csr_; }
  std::size_t num_tasks() const { return tasks_.size(); }
  std::size_t num_edges() const { return boost::num_edges(csr_); }

  // Tasks of representative `rank_index` (index into ranks()) in program order.
  std::span<const std::uint32_t> rank_tasks(std::size_t rank_index) const {
    return rank_tasks_[rank_index];
  }
  std::vector<std::uint32_t> successors(std::uint32_t task) const;
  std::vector<std::uint32_t> predecessors(std::uint32_t task) const;

  // All tasks, every task after its predecessors (Boost.Graph's topological_sort).
  // Throws std::logic_error if the graph has a cycle (a schedule that would deadlock).
  std::vector<std::uint32_t> topological_order() const;

  // Counts over the whole job, every representative counted for the ranks it stands for.
  std::uint64_t expanded_tasks() const;
  std::uint64_t expanded_edges() const;
  bool uses_symmetry() const;

  // Imported graphs (execution traces): explicit communicator rank lists, and each task's name in
  // the trace. Built graphs have neither (communicators() empty, task_label() empty).
  const std::vector<std::vector<std::uint32_t>>& communicators() const { return communicators_; }
  void set_communicators(std::vector<std::vector<std::uint32_t>> communicators) {
    communicators_ = std::move(communicators);
  }
  std::string_view task_label(std::uint32_t task) const {
    return task < task_labels_.size() ? std::string_view(task_labels_[task]) : std::string_view();
  }
  void set_task_labels(std::vector<std::string> labels) { task_labels_ = std::move(labels); }
  // A graph imported from an execution trace: no model in its scenario (only the cluster and the
  // rank count), so model-derived numbers (parameters, memory, tokens) do not exist for it.
  bool imported() const { return !scenario_.has_model(); }

  // "fwd mb3 L12 qkv", "bwd mb0 L5 fc1 wgrad", "dp_grad_reduce_scatter bucket" ...
  std::string task_name(std::uint32_t task) const;

  // Hardware FLOPs of one step summed over all ranks (recompute included), and the same without
  // recompute (model FLOPs; the flash attention backward counted without its recompute of the
  // scores, 4 of its 5 matmuls).
  double hardware_flops() const;
  double model_flops() const;

  // The plan file form. from_proto checks everything later code indexes with: the embedded scenario
  // (validated as a scenario file is), rank classes inside the job and its stages, task ids, ranks,
  // peers, layers and GEMM sizes in range, edges between existing tasks and no dependency cycle.
  // Throws InputError naming `source` (the file), the task or rank, and the problem.
  parallax::JobGraph to_proto() const;
  static JobGraph from_proto(const parallax::JobGraph& proto, const std::string& source = "plan");

 private:
  Scenario scenario_;
  std::vector<RankClass> ranks_;
  std::vector<Task> tasks_;
  std::vector<std::vector<std::uint32_t>> rank_tasks_;
  Csr csr_;
  std::vector<std::vector<std::uint32_t>> communicators_;
  std::vector<std::string> task_labels_;
};

// Builds the per-rank task DAG of one training step (docs/architecture.md, "What the builder
// emits") for a validated scenario. First refuses, with an InputError naming `source` (default: the
// scenario's name), a graph over max_stored_tasks() (check_job_size in job_size.h).
JobGraph build_job_graph(const Scenario& scenario, const std::string& source = {});

}  // namespace parallax::model
