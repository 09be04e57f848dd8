// Reading and writing MLCommons Chakra execution traces (ET): one file per rank, a stream of
// protobuf messages each preceded by its length as a varint32, GlobalMetadata first, then Nodes.
// Files may be gzip-compressed (recognised by their magic bytes, not their name).
#pragma once

#include "parallax/chakra.pb.h"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace parallax::traces {

struct ChakraTrace {
  chakra::GlobalMetadata metadata;
  std::vector<chakra::Node> nodes;  // in file order
};

// Parses one rank's file from memory; `source_name` names it in messages. Throws InputError naming
// the file, the message (byte offset, node index and id where known) and the problem for: a length
// prefix that is truncated or overflows 32 bits, a message cut off by the end of the file, bytes
// that are not a protobuf message, a missing GlobalMetadata, an unknown node type, a repeated node
// id, a gzip stream that is corrupt or truncated. Never reads outside `bytes`. This is the entry
// point for fuzzing.
ChakraTrace parse_chakra_et(std::string_view bytes, std::string_view source_name);

// Reads and parses `path` (gzip or not).
ChakraTrace read_chakra_et(const std::filesystem::path& path);

// The stream form of `trace` (uncompressed).
std::string serialize_chakra_et(const ChakraTrace& trace);
void write_chakra_et(const std::filesystem::path& path, const ChakraTrace& trace);

// gzip-compressed copy of `bytes` (for tests and for writers that want .et.gz-style files).
std::string gzip_compress(std::string_view bytes);

// Attribute lookup: the first attribute named `name`, or nothing.
const chakra::AttributeProto* find_attribute(const chakra::Node& node, std::string_view name);
// Integer value of an attribute in any of the integer encodings writers use (int64, uint64, int32,
// uint32, sint*, fixed*, bool); nothing when absent. Throws InputError when it holds another type
// or a negative value where `non_negative` asks for none.
std::optional<std::uint64_t> unsigned_attribute(const chakra::Node& node, std::string_view name,
                                                std::string_view source_name);
// String value of an attribute (string_val), or nothing; integers are rendered in decimal (some
// writers store pg_name as a number).
std::optional<std::string> string_attribute(const chakra::Node& node, std::string_view name);
std::optional<bool> bool_attribute(const chakra::Node& node, std::string_view name);

// "node 12 (id 4711, \"aten::mm\")" for messages.
std::string describe_node(const chakra::Node& node, std::size_t index);

}  // namespace parallax::traces
