#include "parallax/traces/chakra.h"

#include "parallax/traces/io.h"

#include <google/protobuf/reflection.h>
#include <google/protobuf/unknown_field_set.h>
#include <zlib.h>

#include <fstream>
#include <limits>
#include <sstream>
#include <unordered_map>

namespace parallax::traces {
namespace {

// A trace larger than this after decompression is refused rather than exhausting memory (a gzip
// bomb or a corrupt length); real per-rank traces are megabytes.
constexpr std::size_t kMaxDecompressedBytes = std::size_t{2} << 30;

std::string quote_name(std::string_view s) {
  std::string out = "\"";
  for (char c : s.substr(0, 80))
    out += (c == '"' || c == '\\') ? std::string{'\\', c} : std::string{c};
  if (s.size() > 80) out += "...";
  return out + "\"";
}

bool is_gzip(std::string_view bytes) {
  return bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f &&
         static_cast<unsigned char>(bytes[1]) == 0x8b;
}

std::string gunzip(std::string_view bytes, std::string_view source) {
  z_stream z{};
  // 15 + 32: a zlib or gzip header, detected.
  if (inflateInit2(&z, 15 + 32) != Z_OK) throw std::runtime_error("zlib: inflateInit2 failed");
  std::string out;
  std::size_t consumed = 0;
  char buffer[1 << 16];
  int rc = Z_OK;
  while (true) {
    const std::size_t chunk =
        std::min<std::size_t>(bytes.size() - consumed, std::numeric_limits<uInt>::max());
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data() + consumed));
    z.avail_in = static_cast<uInt>(chunk);
    do {
      z.next_out = reinterpret_cast<Bytef*>(buffer);
      z.avail_out = sizeof buffer;
      rc = inflate(&z, Z_NO_FLUSH);
      if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
        const std::string why = z.msg ? z.msg : "error " + std::to_string(rc);
        inflateEnd(&z);
        throw InputError(std::string(source) + ": corrupt gzip data (" + why +
                         "); re-create the file or give it uncompressed");
      }
      out.append(buffer, sizeof buffer - z.avail_out);
      if (out.size() > kMaxDecompressedBytes) {
        inflateEnd(&z);
        throw InputError(std::string(source) + ": decompresses to more than " +
                         std::to_string(kMaxDecompressedBytes >> 30) +
                         " GiB; refusing (a corrupt or hostile gzip stream?)");
      }
    } while (z.avail_out == 0 && rc != Z_STREAM_END);
    consumed += chunk - z.avail_in;
    if (rc == Z_STREAM_END) {
      // Concatenated gzip members (as `cat a.gz b.gz` makes) decompress to the concatenation.
      if (consumed < bytes.size() && is_gzip(bytes.substr(consumed))) {
        inflateReset(&z);
        continue;
      }
      break;
    }
    if (consumed >= bytes.size()) {
      inflateEnd(&z);
      throw InputError(std::string(source) +
                       ": gzip stream truncated (ends before its end marker after " +
                       std::to_string(out.size()) + " decompressed bytes); the file was cut off");
    }
    if (rc == Z_BUF_ERROR && z.avail_in == chunk) {
      inflateEnd(&z);
      throw InputError(std::string(source) + ": corrupt gzip data (no progress)");
    }
  }
  inflateEnd(&z);
  return out;
}

// Reads a varint32 at `pos`; false when the bytes end inside it. Sets `overflow` for a varint
// longer than 5 bytes or above 2^32 - 1.
bool read_varint32(std::string_view b, std::size_t& pos, std::uint64_t& value, bool& overflow) {
  value = 0;
  overflow = false;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos >= b.size()) return false;
    const auto c = static_cast<unsigned char>(b[pos++]);
    if (shift >= 35) {
      overflow = true;
    } else {
      value |= static_cast<std::uint64_t>(c & 0x7f) << shift;
    }
    if (!(c & 0x80)) {
      if (value > std::numeric_limits<std::uint32_t>::max()) overflow = true;
      return true;
    }
  }
  overflow = true;
  return true;
}

void append_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

bool known_node_type(int type) {
  return type >= chakra::METADATA_NODE && type <= chakra::COMM_COLL_NODE;
}

}  // namespace

std::string describe_node(const chakra::Node& node, std::size_t index) {
  std::string s = "node " + std::to_string(index) + " (id " + std::to_string(node.id());
  if (!node.name().empty()) s += ", " + quote_name(node.name());
  return s + ")";
}

ChakraTrace parse_chakra_et(std::string_view input, std::string_view source_name) {
  quiet_protobuf_logging();
  const std::string source(source_name);
  std::string decompressed;
  std::string_view bytes = input;
  if (is_gzip(input)) {
    decompressed = gunzip(input, source);
    bytes = decompressed;
  }
  if (bytes.empty())
    throw InputError(source + ": empty file; a Chakra trace starts with a GlobalMetadata message");
  ChakraTrace trace;
  std::unordered_map<std::uint64_t, std::size_t> index_of_id;
  std::size_t pos = 0;
  for (std::size_t message = 0; pos < bytes.size(); ++message) {
    const std::size_t start = pos;
    const std::string where =
        source + ": byte " + std::to_string(start) +
        (message == 0 ? " (GlobalMetadata)" : " (node " + std::to_string(message - 1) + ")");
    std::uint64_t length = 0;
    bool overflow = false;
    if (!read_varint32(bytes, pos, length, overflow))
      throw InputError(where +
                       ": the file ends inside a length prefix; it was cut off (truncated)");
    if (overflow)
      throw InputError(where +
                       ": length prefix overflows a varint32; not a Chakra trace, or corrupt");
    if (length > bytes.size() - pos)
      throw InputError(where + ": message of " + std::to_string(length) + " bytes but only " +
                       std::to_string(bytes.size() - pos) +
                       " remain; the file was cut off mid-message (truncated)");
    const char* data = bytes.data() + pos;
    const int size = static_cast<int>(length);
    pos += length;
    if (message == 0) {
      if (!trace.metadata.ParseFromArray(data, size))
        throw InputError(where +
                         ": not a GlobalMetadata protobuf message; not a Chakra trace, or corrupt");
      // A Node first (its id and type are varints where GlobalMetadata has strings) parses with
      // unknown fields only: the metadata is missing.
      const auto& unknown = trace.metadata.GetReflection()->GetUnknownFields(trace.metadata);
      if (!unknown.empty() && trace.metadata.version().empty() && trace.metadata.attr().empty())
        throw InputError(where +
                         ": the first message is not a GlobalMetadata (it has none of its fields); "
                         "a Chakra trace starts with GlobalMetadata, then Nodes");
      continue;
    }
    chakra::Node node;
    if (!node.ParseFromArray(data, size))
      throw InputError(where + ": " + std::to_string(length) +
                       " bytes that are not a Chakra Node protobuf message; corrupt file");
    const std::size_t index = trace.nodes.size();
    if (!known_node_type(node.type()))
      throw InputError(source + ": " + describe_node(node, index) + ": unknown node type " +
                       std::to_string(node.type()) +
                       (node.type() == 0 ? " (INVALID_NODE, or no type set)" : "") +
                       "; valid: METADATA_NODE=1, MEM_LOAD_NODE=2, MEM_STORE_NODE=3, COMP_NODE=4, "
                       "COMM_SEND_NODE=5, "
                       "COMM_RECV_NODE=6, COMM_COLL_NODE=7");
    if (auto [it, fresh] = index_of_id.emplace(node.id(), index); !fresh)
      throw InputError(source + ": " + describe_node(node, index) + ": repeats the id of " +
                       describe_node(trace.nodes[it->second], it->second) +
                       "; node ids must be unique in a file");
    trace.nodes.push_back(std::move(node));
  }
  return trace;
}

ChakraTrace read_chakra_et(const std::filesystem::path& path) {
  return parse_chakra_et(read_file(path, kMaxBinaryFileBytes, "Chakra trace (.et file)"),
                         path.string());
}

std::string serialize_chakra_et(const ChakraTrace& trace) {
  std::string out;
  auto add = [&](const google::protobuf::Message& m) {
    const std::string bytes = m.SerializeAsString();
    append_varint(out, bytes.size());
    out += bytes;
  };
  add(trace.metadata);
  for (const auto& node : trace.nodes) add(node);
  return out;
}

void write_chakra_et(const std::filesystem::path& path, const ChakraTrace& trace) {
  write_file_atomically(path, serialize_chakra_et(trace));
}

std::string gzip_compress(std::string_view bytes) {
  z_stream z{};
  // 15 + 16: gzip header and trailer.
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::runtime_error("zlib: deflateInit2 failed");
  std::string out;
  out.resize(deflateBound(&z, static_cast<uLong>(bytes.size())));
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  z.avail_in = static_cast<uInt>(bytes.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) throw std::runtime_error("zlib: deflate did not finish");
  return out;
}

const chakra::AttributeProto* find_attribute(const chakra::Node& node, std::string_view name) {
  for (const auto& a : node.attr())
    if (a.name() == name) return &a;
  return nullptr;
}

std::optional<std::uint64_t> unsigned_attribute(const chakra::Node& node, std::string_view name,
                                                std::string_view source_name) {
  const auto* a = find_attribute(node, name);
  if (!a) return std::nullopt;
  std::int64_t signed_value = 0;
  switch (a->value_case()) {
    case chakra::AttributeProto::kUint64Val:
      return a->uint64_val();
    case chakra::AttributeProto::kUint32Val:
      return a->uint32_val();
    case chakra::AttributeProto::kFixed64Val:
      return a->fixed64_val();
    case chakra::AttributeProto::kFixed32Val:
      return a->fixed32_val();
    case chakra::AttributeProto::kBoolVal:
      return a->bool_val() ? 1 : 0;
    case chakra::AttributeProto::kInt64Val:
      signed_value = a->int64_val();
      break;
    case chakra::AttributeProto::kInt32Val:
      signed_value = a->int32_val();
      break;
    case chakra::AttributeProto::kSint64Val:
      signed_value = a->sint64_val();
      break;
    case chakra::AttributeProto::kSint32Val:
      signed_value = a->sint32_val();
      break;
    case chakra::AttributeProto::kSfixed64Val:
      signed_value = a->sfixed64_val();
      break;
    case chakra::AttributeProto::kSfixed32Val:
      signed_value = a->sfixed32_val();
      break;
    case chakra::AttributeProto::VALUE_NOT_SET:
      throw InputError(std::string(source_name) + ": node id " + std::to_string(node.id()) +
                       ": attribute \"" + std::string(name) +
                       "\" has no value; it needs an integer");
    default:
      throw InputError(std::string(source_name) + ": node id " + std::to_string(node.id()) +
                       ": attribute \"" + std::string(name) + "\" is not an integer (value field " +
                       std::to_string(a->value_case()) + "); write it as int64_val or uint64_val");
  }
  if (signed_value < 0)
    throw InputError(std::string(source_name) + ": node id " + std::to_string(node.id()) +
                     ": attribute \"" + std::string(name) + "\" is negative (" +
                     std::to_string(signed_value) +
                     "), or an unsigned size above 2^63 that overflowed a signed field");
  return static_cast<std::uint64_t>(signed_value);
}

std::optional<std::string> string_attribute(const chakra::Node& node, std::string_view name) {
  const auto* a = find_attribute(node, name);
  if (!a) return std::nullopt;
  switch (a->value_case()) {
    case chakra::AttributeProto::kStringVal:
      return a->string_val();
    case chakra::AttributeProto::kInt64Val:
      return std::to_string(a->int64_val());
    case chakra::AttributeProto::kUint64Val:
      return std::to_string(a->uint64_val());
    case chakra::AttributeProto::kInt32Val:
      return std::to_string(a->int32_val());
    case chakra::AttributeProto::kUint32Val:
      return std::to_string(a->uint32_val());
    default:
      return std::nullopt;
  }
}

std::optional<bool> bool_attribute(const chakra::Node& node, std::string_view name) {
  const auto* a = find_attribute(node, name);
  if (!a) return std::nullopt;
  if (a->value_case() == chakra::AttributeProto::kBoolVal) return a->bool_val();
  if (a->value_case() == chakra::AttributeProto::kInt64Val) return a->int64_val() != 0;
  if (a->value_case() == chakra::AttributeProto::kUint64Val) return a->uint64_val() != 0;
  return std::nullopt;
}

}  // namespace parallax::traces
