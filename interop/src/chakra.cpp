#include "parallax/interop/chakra.h"

#include "parallax/model/rank_grid.h"
#include "parallax/model/scenario.h"
#include "parallax/traces/io.h"
#include "parallax/traces/json_writer.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

namespace parallax::interop {

using model::data_dir;
using model::GemmRole;
using model::JobGraph;
using model::Op;
using model::op_name;
using model::RankClass;
using model::RankGrid;
using model::rank_grid;
using model::Task;

namespace {

namespace fs = std::filesystem;
using chakra::Node;

// Sizes above these are not real tensors or kernels but overflowed or corrupt fields: 2^48 bytes is
// 256 TiB, 2^40 us is 12.7 days.
constexpr std::uint64_t kMaxBytes = std::uint64_t{1} << 48;
constexpr std::uint64_t kMaxMicros = std::uint64_t{1} << 40;
constexpr double kMaxOps = 1152921504606846976.0;  // 2^60

// parallax's own task fields in an exported trace (ignored by other tools).
constexpr const char* kOpAttr = "parallax_op";
constexpr const char* kKindAttr = "parallax_kind";
constexpr const char* kPhaseAttr = "parallax_phase";
constexpr const char* kStreamAttr = "parallax_stream";
constexpr const char* kLayerAttr = "parallax_layer";
constexpr const char* kMicrobatchAttr = "parallax_microbatch";
constexpr const char* kFlopsAttr = "parallax_flops";
// A collective's S when comm_size * n does not give it back (S not a multiple of the members).
constexpr const char* kCommBytesAttr = "parallax_comm_bytes";

struct NodeContext {
  const std::string& source;
  const Node& node;
  std::size_t index;
  std::string where() const { return source + ": " + traces::describe_node(node, index); }
};

std::uint64_t checked_size(const NodeContext& c, std::string_view attr, std::uint64_t value) {
  if (value > kMaxBytes)
    throw InputError(c.where() + ": " + std::string(attr) + " " + std::to_string(value) +
                     " bytes is beyond any real tensor (over 2^48): an overflowed or corrupt size");
  return value;
}

std::optional<std::uint64_t> size_attribute(const NodeContext& c, std::string_view attr) {
  auto v = traces::unsigned_attribute(c.node, attr, c.where());
  if (v) checked_size(c, attr, *v);
  return v;
}

std::optional<std::int64_t> signed_attribute(const NodeContext& c, std::string_view attr) {
  const auto* a = traces::find_attribute(c.node, attr);
  if (!a) return std::nullopt;
  switch (a->value_case()) {
    case chakra::AttributeProto::kInt64Val:
      return a->int64_val();
    case chakra::AttributeProto::kInt32Val:
      return a->int32_val();
    case chakra::AttributeProto::kSint64Val:
      return a->sint64_val();
    case chakra::AttributeProto::kSint32Val:
      return a->sint32_val();
    default:
      break;
  }
  const auto u = traces::unsigned_attribute(c.node, attr, c.where());
  if (*u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    throw InputError(c.where() + ": attribute \"" + std::string(attr) +
                     "\" overflows a signed 64-bit integer");
  return static_cast<std::int64_t>(*u);
}

std::uint32_t rank_attribute(const NodeContext& c, std::string_view attr, std::uint32_t world) {
  const auto v = traces::unsigned_attribute(c.node, attr, c.where());
  if (!v)
    throw InputError(c.where() + ": a " +
                     (c.node.type() == chakra::COMM_SEND_NODE ? "send" : "recv") +
                     " needs the attribute " + std::string(attr) + " (the peer rank)");
  if (*v >= world)
    throw InputError(c.where() + ": " + std::string(attr) + " " + std::to_string(*v) +
                     " is not a rank of the job (0 to " + std::to_string(world - 1) +
                     ": one file per rank)");
  return static_cast<std::uint32_t>(*v);
}

// The one table between parallax's collective kinds and Chakra's comm_type, for import and export,
// with how comm_size relates to the task's bytes. comm_size is the size of the collective's input
// tensor on each rank, as Chakra's PyTorch converter (the sum of the NCCL kernel's input tensors) and
// the STG generator (the producer's output tensor) write it, and as ASTRA-sim reads it (its ring
// all-gather passes on comm_size per step for n - 1 steps, ending with comm_size * n). parallax's bytes
// are S, nccl-tests' size (parallax.proto, Task.bytes). So:
//   ALL_REDUCE, REDUCE, BROADCAST: the input is the whole buffer, S.
//   ALL_GATHER, GATHER: the input is one member's piece, S/n (n: the communicator's members).
//   REDUCE_SCATTER, ALL_TO_ALL: the input is the whole buffer, S (each member then gets S/n).
//   SCATTER: the root's input, all n pieces, S.
// REDUCE, GATHER and SCATTER carry no root attribute in Chakra (its PyTorch converter emits none of
// them, and ASTRA-sim runs none of them), so the root is chosen as for BROADCAST: the communicator's
// first member (pg_name's first rank in the comm-groups file, rank 0 without one), which is what
// every backend passes as root.
struct ChakraCollective {
  CollectiveKind kind;
  chakra::CollectiveCommType comm_type;
  bool input_is_one_piece;  // comm_size = S / n, else S
};
constexpr ChakraCollective kChakraCollectives[] = {
    {ALL_REDUCE, chakra::ALL_REDUCE, false},   {REDUCE, chakra::REDUCE, false},
    {ALL_GATHER, chakra::ALL_GATHER, true},    {GATHER, chakra::GATHER, true},
    {SCATTER, chakra::SCATTER, false},         {BROADCAST, chakra::BROADCAST, false},
    {ALL_TO_ALL, chakra::ALL_TO_ALL, false},   {REDUCE_SCATTER, chakra::REDUCE_SCATTER, false},
};

const ChakraCollective& chakra_collective(CollectiveKind kind) {
  for (const auto& c : kChakraCollectives)
    if (c.kind == kind) return c;
  if (kind == RING_EXCHANGE)
    throw InputError("the graph has context parallelism's K/V ring exchanges (RING_EXCHANGE: each "
                     "rank sends to the next cp rank and receives from the previous), which no Chakra collective "
                     "comm_type expresses; export a layout with cp 1");
  throw std::logic_error("export-chakra: collective kind " + std::to_string(static_cast<int>(kind)) +
                         " has no Chakra comm_type");
}

const ChakraCollective& chakra_collective(const NodeContext& c, std::uint64_t comm_type) {
  // torch.distributed.barrier is an all-reduce of one element under NCCL; comm_size gives its bytes.
  if (comm_type == chakra::BARRIER) return chakra_collective(ALL_REDUCE);
  for (const auto& k : kChakraCollectives)
    if (static_cast<std::uint64_t>(k.comm_type) == comm_type) return k;
  throw InputError(c.where() + ": unknown comm_type " + std::to_string(comm_type) +
                   "; valid: ALL_REDUCE=0, REDUCE=1, ALL_GATHER=2, GATHER=3, SCATTER=4, "
                   "BROADCAST=5, ALL_TO_ALL=6, "
                   "REDUCE_SCATTER=7, BARRIER=9");
}

// Node ids of a cycle through `start` among one file's dependencies, for the message.
std::string describe_cycle(const std::vector<std::vector<std::uint32_t>>& preds,
                           const std::vector<std::uint32_t>& left, std::uint32_t start,
                           const std::vector<Node>& nodes) {
  // Walk back through left-over predecessors until a node repeats: that stretch is a cycle.
  std::vector<std::int64_t> seen_at(nodes.size(), -1);
  std::vector<std::uint32_t> walk;
  std::uint32_t v = start;
  while (seen_at[v] < 0) {
    seen_at[v] = static_cast<std::int64_t>(walk.size());
    walk.push_back(v);
    for (auto p : preds[v])
      if (left[p] > 0) {
        v = p;
        break;
      }
  }
  std::vector<std::uint32_t> cycle(walk.begin() + seen_at[v], walk.end());
  std::reverse(cycle.begin(), cycle.end());
  std::string s;
  for (std::size_t i = 0; i < cycle.size() && i < 8; ++i)
    s += traces::describe_node(nodes[cycle[i]], cycle[i]) + " -> ";
  if (cycle.size() > 8) s += "... -> ";
  return s + traces::describe_node(nodes[cycle.front()], cycle.front());
}

// Tarjan's strongly connected components (iterative: real traces have chains of thousands of
// nodes) over the edges p -> i for p in data_preds[i] and ctrl_preds[i]; returns each node's
// component number.
std::vector<std::uint32_t> strongly_connected_components(
    const std::vector<std::vector<std::uint32_t>>& data_preds,
    const std::vector<std::vector<std::uint32_t>>& ctrl_preds) {
  const auto n = static_cast<std::uint32_t>(data_preds.size());
  std::vector<std::vector<std::uint32_t>> succ(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    for (auto p : data_preds[i]) succ[p].push_back(i);
    for (auto p : ctrl_preds[i]) succ[p].push_back(i);
  }
  constexpr std::uint32_t kUnvisited = ~0u;
  std::vector<std::uint32_t> index(n, kUnvisited), low(n, 0), component(n, kUnvisited), stack;
  std::vector<bool> on_stack(n, false);
  std::vector<std::pair<std::uint32_t, std::size_t>> call;  // node, next successor to visit
  std::uint32_t counter = 0, components = 0;
  for (std::uint32_t root = 0; root < n; ++root) {
    if (index[root] != kUnvisited) continue;
    call.push_back({root, 0});
    while (!call.empty()) {
      auto& [v, next] = call.back();
      if (next == 0 && index[v] == kUnvisited) {
        index[v] = low[v] = counter++;
        stack.push_back(v);
        on_stack[v] = true;
      }
      if (next < succ[v].size()) {
        const auto w = succ[v][next++];
        if (index[w] == kUnvisited) {
          call.push_back({w, 0});
        } else if (on_stack[w]) {
          low[v] = std::min(low[v], index[w]);
        }
        continue;
      }
      if (low[v] == index[v]) {
        std::uint32_t w;
        do {
          w = stack.back();
          stack.pop_back();
          on_stack[w] = false;
          component[w] = components;
        } while (w != v);
        ++components;
      }
      const auto done = v;
      call.pop_back();
      if (!call.empty()) low[call.back().first] = std::min(low[call.back().first], low[done]);
    }
  }
  return component;
}

}  // namespace

CommGroups parse_comm_groups(std::string_view json, std::string_view source_name,
                             std::uint32_t world) {
  const std::string source(source_name);
  google::protobuf::Struct root;
  const auto status = google::protobuf::util::JsonStringToMessage(std::string(json), &root);
  if (!status.ok())
    throw InputError(source + ": not a JSON object of communicator groups (" +
                     std::string(status.message()) +
                     "); expected {\"<pg_name>\": [rank, ...], ...}");
  CommGroups groups;
  for (const auto& [name, value] : root.fields()) {
    const std::string where = source + ": group \"" + name + "\"";
    if (!value.has_list_value()) throw InputError(where + ": not a list of ranks");
    std::vector<std::uint32_t> ranks;
    for (const auto& r : value.list_value().values()) {
      const double x = r.number_value();
      if (!r.has_number_value() || x < 0 || x != std::floor(x) || x >= world)
        throw InputError(
            where + ": member " +
            (r.has_number_value() ? std::to_string(x) : std::string("(not a number)")) +
            " is not a rank of the job (integers 0 to " + std::to_string(world - 1) +
            ": one file per rank)");
      const auto rank = static_cast<std::uint32_t>(x);
      if (std::find(ranks.begin(), ranks.end(), rank) != ranks.end())
        throw InputError(where + ": rank " + std::to_string(rank) + " is listed twice");
      ranks.push_back(rank);
    }
    if (ranks.empty()) throw InputError(where + ": has no ranks");
    groups.emplace(name, std::move(ranks));
  }
  return groups;
}

std::string comm_groups_json(const CommGroups& groups) {
  std::string out = "{";
  bool first = true;
  for (const auto& [name, ranks] : groups) {
    out += (first ? "\"" : ", \"") + name + "\": [";
    for (std::size_t i = 0; i < ranks.size(); ++i)
      out += (i ? ", " : "") + std::to_string(ranks[i]);
    out += "]";
    first = false;
  }
  return out + "}\n";
}

std::vector<fs::path> chakra_rank_files(const fs::path& prefix) {
  auto file_of = [&](std::size_t r) {
    return fs::path(prefix.string() + "." + std::to_string(r) + ".et");
  };
  if (!fs::is_regular_file(file_of(0)))
    throw InputError("--chakra " + prefix.string() + ": no file " + file_of(0).string() +
                     " (expected one file per rank: PREFIX.0.et, PREFIX.1.et, ...)");
  // The highest rank present in the directory, so that a gap is an error rather than a smaller job.
  const fs::path dir = prefix.has_parent_path() ? prefix.parent_path() : fs::path(".");
  const std::string stem = prefix.filename().string() + ".";
  std::size_t highest = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with(stem) || !name.ends_with(".et")) continue;
    const std::string middle = name.substr(stem.size(), name.size() - stem.size() - 3);
    if (middle.empty() || middle.size() > 9 ||
        !std::all_of(middle.begin(), middle.end(), ::isdigit))
      continue;
    highest = std::max<std::size_t>(highest, std::stoul(middle));
  }
  std::vector<fs::path> files;
  for (std::size_t r = 0; r <= highest; ++r) {
    if (!fs::is_regular_file(file_of(r)))
      throw InputError("--chakra " + prefix.string() + ": " + file_of(highest).string() +
                       " exists but " + file_of(r).string() +
                       " does not; every rank from 0 needs its file");
    files.push_back(file_of(r));
  }
  return files;
}

ChakraImport import_chakra(const fs::path& prefix, const ClusterSpec& cluster,
                           const ChakraImportOptions& options) {
  const auto files = chakra_rank_files(prefix);
  std::vector<traces::ChakraTrace> traces;
  std::vector<std::string> sources;
  for (const auto& f : files) {
    traces.push_back(traces::read_chakra_et(f));
    sources.push_back(f.string());
  }
  fs::path groups_file = options.comm_groups;
  if (groups_file.empty() && fs::is_regular_file(prefix.string() + ".comm_groups.json"))
    groups_file = prefix.string() + ".comm_groups.json";
  CommGroups groups;
  if (!groups_file.empty())
    groups = parse_comm_groups(
        traces::read_file(groups_file, traces::kMaxTextFileBytes, "comm_groups.json file"),
        groups_file.string(), static_cast<std::uint32_t>(files.size()));
  ChakraImport out =
      import_chakra_traces(traces, sources, cluster, groups_file.empty() ? nullptr : &groups,
                           options.strict, prefix.filename().string());
  if (!groups_file.empty())
    out.warnings.insert(out.warnings.begin(), "communicators from " + groups_file.string());
  return out;
}

ChakraImport import_chakra_traces(const std::vector<traces::ChakraTrace>& ranks,
                                  const std::vector<std::string>& sources,
                                  const ClusterSpec& cluster, const CommGroups* groups, bool strict,
                                  const std::string& job_name) {
  if (ranks.empty()) throw InputError("no Chakra trace files");
  const auto world = static_cast<std::uint32_t>(ranks.size());
  Scenario sc;
  sc.set_name(job_name);
  sc.set_description("imported from Chakra execution traces (" + std::to_string(world) + " ranks)");
  *sc.mutable_cluster() = cluster;
  const int gpn = std::max(1, cluster.gpus_per_node());
  sc.mutable_cluster()->set_num_nodes(static_cast<int>(
      (world + static_cast<std::uint32_t>(gpn) - 1) / static_cast<std::uint32_t>(gpn)));
  // Every rank explicit: a data-parallel-only grid of `world` ranks with no symmetry.
  sc.mutable_layout()->set_dp(static_cast<int>(world));
  sc.mutable_layout()->set_tp(1);
  sc.mutable_layout()->set_pp(1);
  sc.mutable_options()->set_use_symmetry(false);

  ChakraImport out{JobGraph(sc, {}, {}, {}, {}), {}, {}, {}};
  out.ranks.resize(world);
  std::vector<RankClass> rank_classes;
  std::vector<Task> tasks;
  std::vector<std::string> labels;
  std::vector<std::vector<std::uint32_t>> rank_tasks(world);
  std::vector<std::pair<std::uint32_t, std::uint32_t>> edges;
  std::vector<std::vector<std::uint32_t>> communicators;
  std::map<std::vector<std::uint32_t>, std::int32_t> communicator_of;
  std::map<std::string, std::int32_t> communicator_of_name;
  auto intern = [&](std::vector<std::uint32_t> members) {
    auto [it, fresh] =
        communicator_of.emplace(members, static_cast<std::int32_t>(communicators.size()));
    if (fresh) communicators.push_back(std::move(members));
    return it->second;
  };
  std::vector<std::uint32_t> everyone(world);
  for (std::uint32_t r = 0; r < world; ++r) everyone[r] = r;
  // Sends and recvs by (src, dst, tag), in file order.
  std::map<std::tuple<std::uint32_t, std::uint32_t, std::uint64_t>, std::deque<std::uint32_t>>
      sends, recvs;
  std::uint64_t dropped_total = 0;
  std::set<std::uint32_t> sizeless_recvs;

  for (std::uint32_t r = 0; r < world; ++r) {
    const auto& nodes = ranks[r].nodes;
    const std::string& source = sources[r];
    rank_classes.push_back({r, 1u, 0});
    const auto first = static_cast<std::uint32_t>(tasks.size());
    if (tasks.size() + nodes.size() > std::numeric_limits<std::uint32_t>::max() - 1)
      throw InputError(source + ": too many nodes in the job (over 2^32)");
    std::unordered_map<std::uint64_t, std::uint32_t> local_of_id;
    for (std::uint32_t i = 0; i < nodes.size(); ++i) local_of_id.emplace(nodes[i].id(), i);
    ChakraRankSummary& summary = out.ranks[r];
    std::vector<std::vector<std::uint32_t>> preds(nodes.size()), data_preds(nodes.size()),
        ctrl_preds(nodes.size());
    std::uint64_t first_dropped_id = 0;
    std::size_t first_dropped_node = 0, first_self_node = 0;
    for (std::uint32_t i = 0; i < nodes.size(); ++i) {
      const Node& node = nodes[i];
      const NodeContext c{source, node, i};
      ++summary.nodes_by_type[static_cast<std::size_t>(node.type())];
      Task t;
      t.rank = r;
      t.on_host = traces::bool_attribute(node, "is_cpu_op").value_or(false);
      if (node.duration_micros() > kMaxMicros)
        throw InputError(
            c.where() + ": duration_micros " + std::to_string(node.duration_micros()) +
            " is beyond any real kernel (over 2^40 us, 12.7 days): an overflowed or corrupt field");
      const auto num_ops = traces::unsigned_attribute(node, "num_ops", c.where());
      if (num_ops && static_cast<double>(*num_ops) > kMaxOps)
        throw InputError(c.where() + ": num_ops " + std::to_string(*num_ops) +
                         " is beyond any real kernel (over 2^60)");
      const auto tensor_size = size_attribute(c, "tensor_size");
      const bool measured = node.duration_micros() > 0;
      auto time_compute = [&] {
        if (measured || (!num_ops && t.flops == 0 && t.bytes == 0)) {
          t.measured_s = static_cast<double>(node.duration_micros()) * 1e-6;
          ++summary.measured;
        } else {
          ++summary.costed;
        }
      };
      switch (node.type()) {
        case chakra::COMP_NODE:
        case chakra::MEM_LOAD_NODE:
        case chakra::MEM_STORE_NODE:
        case chakra::METADATA_NODE: {
          t.stream = COMPUTE;
          t.bytes = tensor_size.value_or(0);
          if (node.type() == chakra::COMP_NODE && num_ops && *num_ops > 0) {
            // Chakra gives the operation count, not the GEMM shape: cost it as the square GEMM of
            // that many operations, so the efficiency table applies at a matching size (the
            // roofline's memory side still comes from tensor_size).
            t.kind = GEMM;
            t.op = Op::TraceCompute;
            t.flops = static_cast<double>(*num_ops);
            const auto side =
                static_cast<std::uint32_t>(std::max(1.0, std::round(std::cbrt(t.flops / 2))));
            t.gemm_m = t.gemm_n = t.gemm_k = side;
            t.gemm_batch = 1;
          } else {
            t.kind = MEMORY_BOUND;
            t.op = node.type() == chakra::COMP_NODE       ? Op::TraceCompute
                   : node.type() == chakra::METADATA_NODE ? Op::TraceBookkeeping
                                                          : Op::TraceMemory;
            if (node.type() == chakra::METADATA_NODE) t.bytes = 0;
          }
          time_compute();
          break;
        }
        case chakra::COMM_COLL_NODE: {
          const auto comm_type = traces::unsigned_attribute(node, "comm_type", c.where());
          const auto comm_size = size_attribute(c, "comm_size");
          if (!comm_type) {
            // PyTorch's CPU-side c10d calls (is_cpu_op) are typed COMM_COLL but carry no traffic:
            // the ncclKernel node they launch does. Keep them as bookkeeping tasks for the
            // dependencies.
            if (traces::bool_attribute(node, "is_cpu_op").value_or(false) && !comm_size) {
              t.kind = MEMORY_BOUND;
              t.op = Op::TraceBookkeeping;
              t.measured_s = static_cast<double>(node.duration_micros()) * 1e-6;
              ++summary.bookkeeping_collectives;
              ++summary.measured;
              break;
            }
            throw InputError(
                c.where() +
                ": a COMM_COLL_NODE needs the attribute comm_type (ALL_REDUCE=0, REDUCE=1, "
                "ALL_GATHER=2, GATHER=3, SCATTER=4, BROADCAST=5, ALL_TO_ALL=6, REDUCE_SCATTER=7, "
                "BARRIER=9)");
          }
          t.kind = COLLECTIVE;
          t.op = Op::TraceCollective;
          t.stream = DP_COMM;
          const ChakraCollective& collective = chakra_collective(c, *comm_type);
          t.collective = collective.kind;
          if (!comm_size && *comm_type != chakra::BARRIER)
            throw InputError(c.where() +
                             ": a COMM_COLL_NODE needs the attribute comm_size (bytes)");
          const auto pg = traces::string_attribute(node, "pg_name");
          std::vector<std::uint32_t> members = everyone;
          if (groups && pg) {
            const auto it = groups->find(*pg);
            if (it == groups->end())
              throw InputError(c.where() + ": pg_name \"" + *pg +
                               "\" is not in the comm-groups file; add it with its ranks, e.g. \"" +
                               *pg + "\": [0, 1]");
            members = it->second;
          }
          if (std::find(members.begin(), members.end(), r) == members.end())
            throw InputError(c.where() + ": runs on communicator \"" + pg.value_or("all ranks") +
                             "\" which does not include this file's rank " + std::to_string(r));
          // comm_size is the input tensor; S is n pieces where the input is one member's piece.
          const std::uint64_t n = collective.input_is_one_piece ? members.size() : 1;
          if (comm_size.value_or(0) > kMaxBytes / n)
            throw InputError(c.where() + ": comm_size " + std::to_string(*comm_size) + " bytes from each of " +
                             std::to_string(n) + " ranks is beyond any real tensor (over 2^48 in all): an "
                             "overflowed or corrupt size");
          t.bytes = comm_size.value_or(0) * n;
          t.communicator = intern(std::move(members));
          if (pg) communicator_of_name.emplace(*pg, t.communicator);
          break;
        }
        case chakra::COMM_SEND_NODE:
        case chakra::COMM_RECV_NODE: {
          const bool send = node.type() == chakra::COMM_SEND_NODE;
          t.kind = send ? SEND : RECV;
          t.op = send ? Op::TraceSend : Op::TraceRecv;
          t.stream = PP_COMM;
          const std::uint32_t peer = rank_attribute(c, send ? "comm_dst" : "comm_src", world);
          if (peer == r)
            throw InputError(c.where() + ": sends to or receives from its own rank " +
                             std::to_string(r));
          t.peer = static_cast<std::int32_t>(peer);
          const auto size = size_attribute(c, "comm_size");
          if (send && !size)
            throw InputError(c.where() +
                             ": a COMM_SEND_NODE needs the attribute comm_size (bytes)");
          t.bytes = size.value_or(0);
          if (!size) sizeless_recvs.insert(first + i);
          const std::uint64_t tag =
              traces::unsigned_attribute(node, "comm_tag", c.where()).value_or(0);
          const auto id = first + i;
          (send ? sends
                : recvs)[send ? std::make_tuple(r, peer, tag) : std::make_tuple(peer, r, tag)]
              .push_back(id);
          break;
        }
        default:
          break;  // the reader refused other types
      }
      // parallax's own fields (an exported graph read back): restore them exactly.
      if (const auto op = traces::string_attribute(node, kOpAttr)) {
        std::string name = *op;
        t.role = name.ends_with(".dgrad")   ? GemmRole::InputGrad
                 : name.ends_with(".wgrad") ? GemmRole::WeightGrad
                                            : GemmRole::Forward;
        if (const auto dot = name.find('.'); dot != std::string::npos) name.resize(dot);
        bool known = false;
        for (std::size_t k = 0; k < static_cast<std::size_t>(Op::kCount); ++k)
          if (op_name(static_cast<Op>(k)) == name) {
            t.op = static_cast<Op>(k);
            known = true;
          }
        if (!known) throw InputError(c.where() + ": unknown " + kOpAttr + " \"" + *op + "\"");
        t.gemm_m = t.gemm_n = t.gemm_k = t.gemm_batch = 0;
        auto enum_attr = [&](const char* attr, auto is_valid, auto& field) {
          if (const auto v = signed_attribute(c, attr)) {
            if (*v > std::numeric_limits<int>::max() || !is_valid(static_cast<int>(*v)))
              throw InputError(c.where() + ": " + attr + " " + std::to_string(*v) +
                               " is not a valid value");
            field = static_cast<std::remove_reference_t<decltype(field)>>(*v);
          }
        };
        enum_attr(kPhaseAttr, Phase_IsValid, t.phase);
        enum_attr(kStreamAttr, Stream_IsValid, t.stream);
        if (t.is_compute())
          enum_attr(
              kKindAttr, [](int k) { return k == GEMM || k == MEMORY_BOUND; }, t.kind);
        if (const auto v = signed_attribute(c, kLayerAttr)) {
          if (*v < std::numeric_limits<std::int16_t>::min() ||
              *v > std::numeric_limits<std::int16_t>::max())
            throw InputError(c.where() + ": " + kLayerAttr + " " + std::to_string(*v) +
                             " is out of range (a 16-bit layer index)");
          t.layer = static_cast<std::int16_t>(*v);
        }
        if (const auto v = signed_attribute(c, kMicrobatchAttr)) {
          if (*v < std::numeric_limits<std::int32_t>::min() ||
              *v > std::numeric_limits<std::int32_t>::max())
            throw InputError(c.where() + ": " + kMicrobatchAttr + " " + std::to_string(*v) +
                             " is out of range");
          t.microbatch = static_cast<std::int32_t>(*v);
        }
        if (t.kind == COLLECTIVE)
          if (const auto v = size_attribute(c, kCommBytesAttr)) t.bytes = *v;
        if (const auto* f = traces::find_attribute(node, kFlopsAttr)) {
          if (f->value_case() != chakra::AttributeProto::kDoubleVal ||
              !std::isfinite(f->double_val()) || f->double_val() < 0)
            throw InputError(c.where() + ": " + kFlopsAttr + " must be a finite double_val >= 0");
          t.flops = f->double_val();
        }
        for (auto [attr, field] : {std::pair{"gemm_m", &t.gemm_m},
                                   {"gemm_n", &t.gemm_n},
                                   {"gemm_k", &t.gemm_k},
                                   {"gemm_batch", &t.gemm_batch}})
          if (const auto v = traces::unsigned_attribute(node, attr, c.where())) {
            if (*v > std::numeric_limits<std::uint32_t>::max())
              throw InputError(c.where() + ": " + attr + " " + std::to_string(*v) +
                               " overflows 32 bits");
            *field = static_cast<std::uint32_t>(*v);
          }
      }
      tasks.push_back(t);
      labels.push_back(node.name().empty()
                           ? std::string(op_name(t.op)) + " id " + std::to_string(node.id())
                           : node.name());
      out.node_id.push_back(node.id());
      rank_tasks[r].push_back(first + i);

      // Dependencies: control and data alike order the node after its predecessors.
      std::set<std::uint32_t> data, ctrl;
      for (const auto* list : {&node.data_deps(), &node.ctrl_deps()})
        for (const std::uint64_t dep : *list) {
          const auto it = local_of_id.find(dep);
          if (it == local_of_id.end()) {
            if (summary.dropped_dependencies++ == 0) {
              first_dropped_id = dep;
              first_dropped_node = i;
            }
            continue;
          }
          if (it->second == i) {
            // PyTorch conversions list some nodes among their own dependencies; taken literally
            // the node could never run. Dropped like dangling ids (refused under strict).
            if (summary.self_dependencies++ == 0) first_self_node = i;
            continue;
          }
          (list == &node.data_deps() ? data : ctrl).insert(it->second);
        }
      for (auto d : data) ctrl.erase(d);
      data_preds[i].assign(data.begin(), data.end());
      ctrl_preds[i].assign(ctrl.begin(), ctrl.end());
    }
    if (summary.dropped_dependencies > 0) {
      const std::string what = std::to_string(summary.dropped_dependencies) +
                               " dependencies on node ids absent from the file, first id " +
                               std::to_string(first_dropped_id) + " of " +
                               traces::describe_node(nodes[first_dropped_node], first_dropped_node);
      if (strict)
        throw InputError(source + ": " + what +
                         " (--strict; without it they are dropped with a warning)");
      out.warnings.push_back(source + ": dropped " + what +
                             " (PyTorch conversions leave these; --strict refuses them)");
      dropped_total += summary.dropped_dependencies;
    }
    if (summary.self_dependencies > 0 && strict)
      throw InputError(source + ": " +
                       traces::describe_node(nodes[first_self_node], first_self_node) +
                       ": depends on itself (a dependency cycle; --strict), and " +
                       std::to_string(summary.self_dependencies - 1) +
                       " more nodes do; remove their own ids from their deps");
    if (summary.self_dependencies > 0)
      out.warnings.push_back(
          source + ": dropped " + std::to_string(summary.self_dependencies) +
          " self-dependencies (nodes listing their own id as a dependency, first " +
          traces::describe_node(nodes[first_self_node], first_self_node) +
          "); --strict refuses them");
    // Control dependencies on a cycle: PyTorch conversions write call-tree relations as ctrl_deps,
    // some of which contradict the data dependencies (the resnet trace has 2-cycles of a kernel and
    // its launching op). Data dependencies are authoritative: a ctrl dependency between two nodes
    // of one strongly connected component is dropped (counted; refused under strict). A cycle left
    // after that is made of data dependencies alone, and is an error below.
    {
      const auto component = strongly_connected_components(data_preds, ctrl_preds);
      std::uint64_t cyclic = 0;
      std::size_t first_node = 0;
      std::uint32_t first_dep = 0;
      for (std::uint32_t i = 0; i < nodes.size(); ++i) {
        auto& list = ctrl_preds[i];
        const auto kept = std::remove_if(list.begin(), list.end(), [&](std::uint32_t p) {
          if (component[p] != component[i]) return false;
          if (cyclic++ == 0) {
            first_node = i;
            first_dep = p;
          }
          return true;
        });
        list.erase(kept, list.end());
      }
      summary.cyclic_ctrl_dependencies = cyclic;
      if (cyclic > 0) {
        const std::string what = std::to_string(cyclic) +
                                 " ctrl_deps that close dependency cycles, first " +
                                 traces::describe_node(nodes[first_node], first_node) + " on " +
                                 traces::describe_node(nodes[first_dep], first_dep);
        if (strict) throw InputError(source + ": dependency cycle through " + what + " (--strict)");
        out.warnings.push_back(source + ": dropped " + what +
                               " (the data_deps order them; --strict refuses them)");
      }
      for (std::uint32_t i = 0; i < nodes.size(); ++i) {
        std::merge(data_preds[i].begin(), data_preds[i].end(), ctrl_preds[i].begin(),
                   ctrl_preds[i].end(), std::back_inserter(preds[i]));
        for (auto d : preds[i]) edges.emplace_back(first + d, first + i);
        summary.dependencies += preds[i].size();
      }
    }
    // Cycles within the file (Kahn's algorithm over the node order).
    std::vector<std::uint32_t> left(nodes.size(), 0);
    std::vector<std::vector<std::uint32_t>> succs(nodes.size());
    for (std::uint32_t i = 0; i < nodes.size(); ++i)
      for (auto p : preds[i]) {
        ++left[i];
        succs[p].push_back(i);
      }
    std::vector<std::uint32_t> ready;
    for (std::uint32_t i = 0; i < nodes.size(); ++i)
      if (left[i] == 0) ready.push_back(i);
    std::size_t done = 0;
    while (!ready.empty()) {
      const auto v = ready.back();
      ready.pop_back();
      ++done;
      for (auto s : succs[v])
        if (--left[s] == 0) ready.push_back(s);
    }
    if (done < nodes.size()) {
      std::uint32_t v = 0;
      while (left[v] == 0) ++v;
      throw InputError(source + ": dependency cycle: " + describe_cycle(preds, left, v, nodes) +
                       " (" + std::to_string(nodes.size() - done) +
                       " nodes can never run); remove one of these dependencies");
    }
  }

  // Point-to-point: the i-th send from a to b with a tag meets the i-th matching recv.
  for (auto& [key, list] : sends) {
    auto& matching = recvs[key];
    const auto [src, dst, tag] = key;
    if (matching.size() != list.size())
      throw InputError(sources[src] + " and " + sources[dst] + ": rank " + std::to_string(src) +
                       " sends " + std::to_string(list.size()) + " messages with tag " +
                       std::to_string(tag) + " to rank " + std::to_string(dst) +
                       ", which receives " + std::to_string(matching.size()) +
                       "; every COMM_SEND_NODE needs its COMM_RECV_NODE (same comm_tag)");
    for (std::size_t i = 0; i < list.size(); ++i) {
      edges.emplace_back(list[i], matching[i]);
      // A recv without comm_size receives what its send sends.
      if (sizeless_recvs.contains(matching[i])) tasks[matching[i]].bytes = tasks[list[i]].bytes;
    }
  }
  for (const auto& [key, list] : recvs) {
    if (list.empty() || sends.contains(key)) continue;
    const auto [src, dst, tag] = key;
    throw InputError(sources[dst] + ": rank " + std::to_string(dst) + " receives " +
                     std::to_string(list.size()) + " messages with tag " + std::to_string(tag) +
                     " from rank " + std::to_string(src) + " that never sends them (first " +
                     traces::describe_node(ranks[dst].nodes[list.front() - rank_tasks[dst].front()],
                                           list.front() - rank_tasks[dst].front()) +
                     ")");
  }
  // Collectives meet by issue order on their communicator: every member must issue as many, or the
  // job deadlocks.
  std::vector<std::map<std::uint32_t, std::uint64_t>> issued(communicators.size());
  for (const auto& t : tasks)
    if (t.kind == COLLECTIVE) ++issued[static_cast<std::size_t>(t.communicator)][t.rank];
  for (std::size_t g = 0; g < communicators.size(); ++g) {
    std::string name = "of ranks";
    for (const auto& [pg, index] : communicator_of_name)
      if (index == static_cast<std::int32_t>(g)) name = "\"" + pg + "\" of ranks";
    for (auto m : communicators[g]) name += " " + std::to_string(m);
    const auto expected = issued[g].begin()->second;
    for (auto m : communicators[g]) {
      const auto n = issued[g].contains(m) ? issued[g][m] : 0;
      if (n != expected)
        throw InputError(
            sources[m] + ": rank " + std::to_string(m) + " issues " + std::to_string(n) +
            " collectives on communicator " + name + " but rank " +
            std::to_string(issued[g].begin()->first) + " issues " + std::to_string(expected) +
            "; the job would deadlock (a missing rank file, or a wrong comm-groups entry?)");
    }
  }
  if (dropped_total > 0)
    out.warnings.push_back("dropped " + std::to_string(dropped_total) +
                           " dependencies on absent nodes in all");

  JobGraph graph(sc, std::move(rank_classes), std::move(tasks), std::move(rank_tasks), edges);
  graph.set_communicators(std::move(communicators));
  graph.set_task_labels(std::move(labels));
  // Cycles through sends and recvs across files.
  try {
    graph.topological_order();
  } catch (const std::logic_error&) {
    throw InputError(
        "the ranks' sends and recvs form a dependency cycle across files (each rank waits for a "
        "message "
        "that another sends only after its own recv); the job would deadlock");
  }
  out.graph = std::move(graph);
  return out;
}

ChakraExport export_chakra(const JobGraph& graph) {
  if (graph.uses_symmetry())
    throw InputError(
        "export-chakra needs every rank explicit; build the graph with options { use_symmetry: "
        "false }");
  const Scenario& sc = graph.scenario();
  const RankGrid grid = rank_grid(sc);
  const std::uint32_t world =
      graph.imported() ? static_cast<std::uint32_t>(graph.ranks().size()) : grid.size();
  if (graph.ranks().size() != world)
    throw InputError("export-chakra: the graph lists " + std::to_string(graph.ranks().size()) +
                     " ranks for a job of " + std::to_string(world));
  ChakraExport out;
  out.ranks.resize(world);
  std::map<std::vector<std::uint32_t>, std::string> name_of;
  auto pg_of = [&](const std::vector<std::uint32_t>& members) {
    auto [it, fresh] = name_of.emplace(members, std::to_string(name_of.size() + 1));
    if (fresh) out.groups.emplace(it->second, members);
    return it->second;
  };
  auto attr = [](Node& n, const char* name) {
    auto* a = n.add_attr();
    a->set_name(name);
    return a;
  };
  for (std::size_t i = 0; i < graph.ranks().size(); ++i) {
    const std::uint32_t rank = graph.ranks()[i].rank;
    traces::ChakraTrace& trace = out.ranks[rank];
    auto* schema = trace.metadata.add_attr();
    schema->set_name("schema");
    // Chakra's string fields are proto3 strings, which readers (parallax's too) reject unless they
    // are UTF-8; a scenario name may not be. Invalid bytes become U+FFFD, as in parallax's JSON
    // outputs, rather than refusing a scenario that every other command accepts.
    schema->set_string_val(traces::valid_utf8("parallax export of " + sc.name()));
    for (const auto v : graph.rank_tasks(i)) {
      const Task& t = graph.tasks()[v];
      Node& n = trace.nodes.emplace_back();
      n.set_id(v);
      n.set_name(traces::valid_utf8(graph.task_name(v)));
      for (const auto p : graph.predecessors(v)) {
        if (graph.tasks()[p].rank == rank) {
          n.add_ctrl_deps(p);
        } else if (!(t.kind == RECV && graph.tasks()[p].kind == SEND)) {
          throw std::logic_error("export-chakra: task " + graph.task_name(v) +
                                 " depends on another rank's task " + graph.task_name(p) +
                                 " other than through a send");
        }
      }
      if (t.measured_s >= 0)
        n.set_duration_micros(static_cast<std::uint64_t>(std::llround(t.measured_s * 1e6)));
      std::string op(op_name(t.op));
      if (t.role == GemmRole::InputGrad) op += ".dgrad";
      if (t.role == GemmRole::WeightGrad) op += ".wgrad";
      attr(n, kOpAttr)->set_string_val(op);
      attr(n, kPhaseAttr)->set_int64_val(t.phase);
      attr(n, kStreamAttr)->set_int64_val(t.stream);
      if (t.layer != -1) attr(n, kLayerAttr)->set_int64_val(t.layer);
      if (t.microbatch != -1) attr(n, kMicrobatchAttr)->set_int64_val(t.microbatch);
      switch (t.kind) {
        case GEMM:
        case MEMORY_BOUND:
          n.set_type(chakra::COMP_NODE);
          attr(n, kKindAttr)->set_int64_val(t.kind);
          // num_ops for other tools (ASTRA-sim's roofline); the exact value rides in
          // parallax_flops.
          attr(n, "num_ops")->set_uint64_val(static_cast<std::uint64_t>(std::llround(t.flops)));
          attr(n, kFlopsAttr)->set_double_val(t.flops);
          attr(n, "tensor_size")->set_uint64_val(t.bytes);
          if (t.kind == GEMM) {
            attr(n, "gemm_m")->set_uint64_val(t.gemm_m);
            attr(n, "gemm_n")->set_uint64_val(t.gemm_n);
            attr(n, "gemm_k")->set_uint64_val(t.gemm_k);
            attr(n, "gemm_batch")->set_uint64_val(t.gemm_batch);
          }
          break;
        case COLLECTIVE: {
          n.set_type(chakra::COMM_COLL_NODE);
          const auto members = t.communicator >= 0
                                   ? graph.communicators()[static_cast<std::size_t>(t.communicator)]
                                   : grid.members(t.group, t.rank);
          // comm_size is each member's input tensor (see kChakraCollectives). Where it is one piece
          // and S does not split evenly, the piece is rounded up (NCCL gathers equal pieces) and
          // the exact S rides along for parallax.
          const ChakraCollective& collective = chakra_collective(t.collective);
          const std::uint64_t pieces = collective.input_is_one_piece ? members.size() : 1;
          const std::uint64_t input = (t.bytes + pieces - 1) / pieces;
          attr(n, "comm_type")->set_int64_val(collective.comm_type);
          attr(n, "comm_size")->set_uint64_val(input);
          if (input * pieces != t.bytes) attr(n, kCommBytesAttr)->set_uint64_val(t.bytes);
          attr(n, "pg_name")->set_string_val(pg_of(members));
          break;
        }
        case SEND:
          n.set_type(chakra::COMM_SEND_NODE);
          attr(n, "comm_dst")->set_int64_val(t.peer);
          attr(n, "comm_size")->set_uint64_val(t.bytes);
          // The send's task id names the transfer on both sides.
          attr(n, "comm_tag")->set_uint64_val(v);
          break;
        case RECV: {
          n.set_type(chakra::COMM_RECV_NODE);
          attr(n, "comm_src")->set_int64_val(t.peer);
          attr(n, "comm_size")->set_uint64_val(t.bytes);
          std::int64_t tag = -1;
          for (const auto p : graph.predecessors(v))
            if (graph.tasks()[p].kind == SEND && graph.tasks()[p].rank != rank) tag = p;
          if (tag < 0)
            throw std::logic_error("export-chakra: recv " + graph.task_name(v) + " has no send");
          attr(n, "comm_tag")->set_uint64_val(static_cast<std::uint64_t>(tag));
          break;
        }
      }
    }
  }
  return out;
}

std::vector<fs::path> write_chakra(const ChakraExport& trace, const fs::path& prefix) {
  // PREFIX names files, not a folder: "-o out/" would otherwise write out/.0.et (hidden) and a
  // directory "-o out" would get siblings out.0.et; say how to write inside it instead.
  const std::string p = prefix.string();
  if (p.empty())
    throw InputError(
        "an empty output prefix was given; e.g. -o traces/job writes traces/job.0.et, ...");
  std::error_code ec;
  if (!prefix.has_filename() || fs::is_directory(prefix, ec))
    throw InputError(p + ": is a directory; the output is a file prefix: give " +
                     (fs::path(p) / "job").string() + " to write " +
                     (fs::path(p) / "job").string() + ".0.et, ... inside it");
  // All files or none: a failure part way (disk full) must not leave a mix of this run's and an
  // older export's ranks behind.
  std::vector<std::pair<fs::path, std::string>> out;
  for (std::size_t r = 0; r < trace.ranks.size(); ++r)
    out.emplace_back(p + "." + std::to_string(r) + ".et",
                     traces::serialize_chakra_et(trace.ranks[r]));
  out.emplace_back(p + ".comm_groups.json", comm_groups_json(trace.groups));
  traces::write_files_atomically(out);
  std::vector<fs::path> files;
  for (const auto& f : out) files.push_back(f.first);
  return files;
}

}  // namespace parallax::interop
