// Chakra execution traces (MLCommons ET, as ASTRA-sim and PARAM use them) in and out of the job
// graph.
//
// Collective sizes: a COMM_COLL_NODE's comm_size is the size of the collective's input tensor on each
// rank, as Chakra's PyTorch converter and the STG generator write it and ASTRA-sim reads it (for
// ALL_GATHER and GATHER one member's piece, S/n; for the other types the full buffer S). Inside
// parallax a collective's bytes are S, nccl-tests' size; import multiplies, export divides
// (the table per comm_type is in docs/architecture.md, "Collective sizes").
//
// Import: one file per rank, PREFIX.<rank>.et. Each node becomes a task on its rank; ctrl_deps and
// data_deps become edges; collectives run on explicit communicators (rank lists from a comm-groups
// JSON keyed by the nodes' pg_name, or all ranks); sends and recvs are matched by (src, dst, tag)
// in file order. Every rank is explicit (no symmetry). Compute nodes with a measured
// duration_micros take it; others are costed by the cost model from num_ops and tensor_size.
//
// Export: a scenario's job graph, every rank explicit, as PREFIX.<rank>.et plus
// PREFIX.comm_groups.json; parallax's own task fields ride along as extra attributes so that
// importing the export gives the same graph.
#pragma once

#include "parallax/model/job_graph.h"
#include "parallax/traces/chakra.h"

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace parallax::interop {

// Communicator name (a pg_name) -> its global ranks, in communicator rank order.
using CommGroups = std::map<std::string, std::vector<std::uint32_t>>;

// Parses `{"<pg_name>": [ranks], ...}`. Throws InputError naming `source_name`, the group and the
// problem (not an object, not a list of integers, a rank outside 0..world-1, a rank listed twice).
CommGroups parse_comm_groups(std::string_view json, std::string_view source_name,
                             std::uint32_t world);
std::string comm_groups_json(const CommGroups& groups);

// PREFIX.0.et, PREFIX.1.et, ... Throws InputError when there is no PREFIX.0.et or the ranks have a
// gap.
std::vector<std::filesystem::path> chakra_rank_files(const std::filesystem::path& prefix);

struct ChakraImportOptions {
  // Comm-groups JSON; empty: PREFIX.comm_groups.json when it exists, else every collective runs on
  // all ranks.
  std::filesystem::path comm_groups;
  // Dependencies on node ids absent from the file are an error instead of a counted warning.
  bool strict = false;
};

struct ChakraRankSummary {
  std::array<std::uint64_t, 8> nodes_by_type{};  // indexed by chakra::NodeType
  std::uint64_t dependencies = 0;                // distinct (dep, node) pairs kept as edges
  std::uint64_t dropped_dependencies = 0;        // ids not in the file (dropped with a warning)
  std::uint64_t self_dependencies = 0;           // a node's own id among its deps (dropped too)
  std::uint64_t cyclic_ctrl_dependencies = 0;    // ctrl_deps closing a cycle (dropped too)
  std::uint64_t bookkeeping_collectives = 0;     // CPU-side COMM_COLL nodes without comm_type
  std::uint64_t measured = 0;                    // compute tasks timed by duration_micros
  std::uint64_t costed = 0;                      // compute tasks timed by the cost model
};

struct ChakraImport {
  model::JobGraph graph;
  std::vector<ChakraRankSummary> ranks;  // per rank
  std::vector<std::uint64_t> node_id;    // per task: its node's id in its rank's file
  std::vector<std::string> warnings;     // also added to the simulation report's notes by the CLI
};

// Reads PREFIX.<rank>.et for every rank and builds the graph on `cluster` (its node count is set to
// hold the ranks). Throws InputError naming the file, the node and the problem for: a cycle, an
// unknown node type or comm_type, a missing or overflowing size, a send without its recv, a
// communicator the rank is not in or whose members issue different numbers of collectives, and
// (under strict) a dependency on an absent node.
ChakraImport import_chakra(const std::filesystem::path& prefix, const ClusterSpec& cluster,
                           const ChakraImportOptions& options = {});

// The same from parsed traces (one per rank, `sources` names them in messages).
ChakraImport import_chakra_traces(const std::vector<traces::ChakraTrace>& ranks,
                                  const std::vector<std::string>& sources,
                                  const ClusterSpec& cluster, const CommGroups* groups, bool strict,
                                  const std::string& job_name);

struct ChakraExport {
  std::vector<traces::ChakraTrace> ranks;  // per global rank
  CommGroups groups;                       // pg_name -> ranks, as written to comm_groups.json
};

// The graph as Chakra traces. Needs every rank explicit (build it with options.use_symmetry false):
// throws InputError otherwise.
ChakraExport export_chakra(const model::JobGraph& graph);
// Writes PREFIX.<rank>.et and PREFIX.comm_groups.json; returns the files written.
std::vector<std::filesystem::path> write_chakra(const ChakraExport& trace,
                                                const std::filesystem::path& prefix);

}  // namespace parallax::interop
