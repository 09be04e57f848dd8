// libFuzzer target: one rank's Chakra execution trace (varint32-framed protobuf stream, gzip or
// not) through traces::parse_chakra_et, the reader's byte-buffer entry point, then what an importer
// asks of every node (its description and attributes). Bad input must end in parallax::InputError;
// anything else (another exception, a crash, a sanitizer report, a hang) is a finding.
#include "parallax/interop/chakra.h"
#include "parallax/model/presets.h"
#include "parallax/traces/chakra.h"
#include "parallax/traces/io.h"

#include <google/protobuf/stubs/logging.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

// Protobuf logs every string field with invalid UTF-8 it rejects; the reader already turns that
// into an InputError, and millions of log lines would slow the fuzzer down.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(
      [](google::protobuf::LogLevel, const char*, int, const std::string&) {});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    const parallax::traces::ChakraTrace trace = parallax::traces::parse_chakra_et(bytes, "fuzz.et");
    for (std::size_t i = 0; i < trace.nodes.size(); ++i) {
      const auto& node = trace.nodes[i];
      (void)parallax::traces::describe_node(node, i);
      (void)parallax::traces::string_attribute(node, "pg_name");
      (void)parallax::traces::bool_attribute(node, "is_cpu_op");
      try {
        (void)parallax::traces::unsigned_attribute(node, "comm_size", "fuzz.et");
        (void)parallax::traces::unsigned_attribute(node, "comm_type", "fuzz.et");
      } catch (const parallax::InputError&) {
      }
    }
    // The importer on this trace as a one-rank job (the graph the simulator would run).
    static const parallax::ClusterSpec cluster = parallax::model::resolve_cluster("dgx-h100");
    const parallax::interop::ChakraImport imported = parallax::interop::import_chakra_traces(
        {trace}, {"fuzz.et"}, cluster, nullptr, false, "fuzz");
    (void)imported.graph.topological_order();
    // What the reader accepted, the writer must write and the reader read back.
    (void)parallax::traces::parse_chakra_et(parallax::traces::serialize_chakra_et(trace),
                                            "fuzz.et (rewritten)");
  } catch (const parallax::InputError&) {
    // The reader's answer to bad input.
  }
  return 0;
}
