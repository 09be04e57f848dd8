// Building small Chakra traces in tests, and where the real ones are.
#pragma once

#include "parallax/interop/chakra.h"
#include "parallax/traces/chakra.h"
#include "test_support.h"

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <string>

namespace parallax::testing {

inline std::filesystem::path chakra_data() {
  return source_dir() / "tests" / "data" / "chakra";
}

inline traces::ChakraTrace empty_trace() {
  traces::ChakraTrace t;
  auto* schema = t.metadata.add_attr();
  schema->set_name("schema");
  schema->set_string_val("test");
  return t;
}

inline chakra::Node& add_node(traces::ChakraTrace& t, std::uint64_t id, chakra::NodeType type,
                              std::initializer_list<std::uint64_t> deps = {},
                              std::uint64_t duration_us = 0) {
  auto& n = t.nodes.emplace_back();
  n.set_id(id);
  n.set_name("node" + std::to_string(id));
  n.set_type(type);
  for (auto d : deps) n.add_data_deps(d);
  n.set_duration_micros(duration_us);
  return n;
}

inline void set_int(chakra::Node& n, const std::string& name, std::int64_t v) {
  auto* a = n.add_attr();
  a->set_name(name);
  a->set_int64_val(v);
}
inline void set_uint(chakra::Node& n, const std::string& name, std::uint64_t v) {
  auto* a = n.add_attr();
  a->set_name(name);
  a->set_uint64_val(v);
}
inline void set_string(chakra::Node& n, const std::string& name, const std::string& v) {
  auto* a = n.add_attr();
  a->set_name(name);
  a->set_string_val(v);
}

// REDUCE, GATHER and SCATTER (comm_type 1, 3, 4; or the `types` given), one after another (node
// ids 1, 2, 3), on 4 ranks, on the communicator "rooted" = [2, 0, 1, 3]: its first member, rank 2,
// is the root. `bytes` is each one's size S as parallax counts it (nccl-tests'); comm_size is the
// input tensor, S/4 for a GATHER or ALL_GATHER (one member's piece), else S.
inline interop::ChakraExport rooted_collectives_trace(
    std::uint64_t bytes, std::initializer_list<chakra::CollectiveCommType> types = {
                             chakra::REDUCE, chakra::GATHER, chakra::SCATTER}) {
  interop::ChakraExport out;
  out.groups["rooted"] = {2, 0, 1, 3};
  out.ranks.assign(4, empty_trace());
  for (auto& t : out.ranks) {
    std::uint64_t id = 1;
    for (const auto type : types) {
      auto& n = id == 1 ? add_node(t, id, chakra::COMM_COLL_NODE)
                        : add_node(t, id, chakra::COMM_COLL_NODE, {id - 1});
      set_int(n, "comm_type", type);
      const bool one_piece = type == chakra::GATHER || type == chakra::ALL_GATHER;
      set_uint(n, "comm_size", one_piece ? bytes / 4 : bytes);
      set_string(n, "pg_name", "rooted");
      ++id;
    }
  }
  return out;
}

}  // namespace parallax::testing
