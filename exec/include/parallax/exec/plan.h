// What one rank executes: its task list (its stage representative's, under symmetry) and the
// concrete peers of each communication task. Shared by every backend.
#pragma once

#include "parallax/model/job_graph.h"
#include "parallax/model/rank_grid.h"

#include <cstdint>
#include <unordered_map>
#include <vector>

namespace parallax::exec {

struct RankPlan {
  std::uint32_t rank = 0;            // this process's global rank
  std::size_t representative = 0;    // index into graph.ranks() whose task list this rank runs
  std::vector<std::uint32_t> tasks;  // graph task ids in program order
  model::RankGrid grid;
  // Imported graphs (Chakra): the rank runs its own explicit task list, peers are the tasks' own,
  // and each send/recv is tagged with its place among the sends from its source to its
  // destination (the importer's (src, dst, comm_tag) matching, read back from the send -> recv
  // edge), since imported transfers have no layer or micro-batch to build a tag from.
  bool imported = false;
  std::unordered_map<std::uint32_t, int> transfer_tags;  // task id -> tag, imported graphs only
};

// The side an imported shapeless GEMM runs with: the importer's cube root of num_ops / 2, capped at
// `cap` (ExecOptions::trace_gemm_side_cap).
std::uint32_t trace_gemm_side(const model::Task& task, std::uint32_t cap);
// Whether a task runs for its measured duration rather than its own work (imported compute tasks
// with Chakra duration_micros).
inline bool runs_measured_duration(const model::Task& task) { return task.is_compute() && task.measured_s >= 0; }

// Bytes of host memory the buffers of one task take in the host backend: a GEMM's three fp32
// operands (flash attention: its query and kv tensors and their gradients, no seq x seq matrix), a memory-bound task's source and destination, a collective's message with its
// temporaries (three copies), a transfer's message. Imported graphs (`imported`) run capped sizes
// (ExecOptions::trace_gemm_side_cap and trace_bytes_cap); tasks replaying a measured duration take
// none.
double task_buffer_bytes(const model::Task& task, bool imported, std::uint32_t gemm_side_cap,
                         std::uint64_t bytes_cap);
// Physical memory of this machine in bytes (sysconf).
double host_memory_bytes();
// Throws InputError naming `source`, the first task whose buffers exceed `memory_bytes` (the host's
// memory), its sizes and both numbers, before any buffer is allocated: a plan may ask for a GEMM
// of 10^9 rows or a message of 2^60 bytes, which would end in std::bad_alloc on every rank.
void check_task_buffers(const model::JobGraph& graph, std::uint32_t gemm_side_cap,
                        std::uint64_t bytes_cap, double memory_bytes, const std::string& source);

// Throws InputError when the graph has no tasks for `rank` (a world size that does not match the
// plan's rank count is caught before this by check_world_size).
RankPlan plan_for_rank(const model::JobGraph& graph, std::uint32_t rank);

// InputError naming both numbers and the fix when `world_size` differs from the plan's GPU count.
void check_world_size(const model::JobGraph& graph, int world_size);

// The peer of a send/recv task for this rank (the task's peer is the representative's).
std::uint32_t transfer_peer(const RankPlan& plan, const model::Task& task);

// A tag that identifies one pipeline transfer on both sides: (microbatch, direction, virtual stage
// boundary). Unique within one iteration between two ranks.
int transfer_tag(const model::Task& task);
// The tag of transfer task `id` on this rank: transfer_tag for built graphs, the send's sequence
// number for imported ones.
int transfer_tag(const RankPlan& plan, std::uint32_t id, const model::Task& task);

// Within-rank dependencies of a task (cross-rank ones, i.e. a recv's send, are left out), as graph
// task ids.
std::vector<std::uint32_t> local_predecessors(const model::JobGraph& graph, const RankPlan& plan, std::uint32_t task);

// --verify: the value element i of the buffer rank r contributes to a collective / sends in a
// transfer: small integers, so sums of up to thousands of ranks stay exact in fp32.
inline float verify_value(std::uint32_t rank, std::uint64_t i) { return static_cast<float>((rank % 13) + 1 + (i % 7)); }

}  // namespace parallax::exec
