// The Chakra ET reader: every shared real trace parses with the node counts its sources document;
// malformed files give a clear error naming the file and the problem, never a crash.
#include "chakra_test_util.h"

#include "parallax/traces/io.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace parallax::testing {
namespace {

std::string file_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The InputError message of parsing `bytes`, or "" when it parses.
std::string parse_error(const std::string& bytes, const std::string& name = "bad.0.et") {
  try {
    traces::parse_chakra_et(bytes, name);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

std::array<int, 8> counts(const traces::ChakraTrace& t) {
  std::array<int, 8> c{};
  for (const auto& n : t.nodes) ++c[static_cast<std::size_t>(n.type())];
  return c;
}

TEST(ChakraReader, SharedTracesHaveTheDocumentedNodeCounts) {
  // SOURCES.md, per rank file.
  struct Expect {
    const char* file;
    int comp, coll;
  };
  for (const auto& e : {Expect{"gpt-stg-dp2-tp2/workload.0.et", 2492, 884},
                        {"gpt-stg-dp2-tp2/workload.3.et", 2492, 884},
                        {"resnet50-ddp-pytorch/chakra.0.et", 3643, 21},
                        {"mlp-model-parallel-32/MLP_ModelParallel.0.et", 18, 11},
                        {"mlp-model-parallel-32/MLP_ModelParallel.31.et", 18, 11},
                        {"fsdp-mlp-pytorch-2/chakra_trace.1.et", 1632, 2}}) {
    SCOPED_TRACE(e.file);
    const auto t = traces::read_chakra_et(chakra_data() / e.file);
    const auto c = counts(t);
    EXPECT_EQ(c[chakra::COMP_NODE], e.comp);
    EXPECT_EQ(c[chakra::COMM_COLL_NODE], e.coll);
    EXPECT_EQ(t.nodes.size(), static_cast<std::size_t>(e.comp + e.coll));
  }
  // Metadata: the schema attribute, the version empty except in text-converted traces.
  const auto resnet = traces::read_chakra_et(chakra_data() / "resnet50-ddp-pytorch/chakra.0.et");
  EXPECT_EQ(resnet.metadata.version(), "");
  ASSERT_GT(resnet.metadata.attr_size(), 0);
  EXPECT_EQ(resnet.metadata.attr(0).name(), "schema");
  EXPECT_EQ(resnet.metadata.attr(0).string_val(), "1.0.1");
}

TEST(ChakraReader, AttributesDecodeAsWritten) {
  const auto t = traces::read_chakra_et(chakra_data() / "gpt-stg-dp2-tp2/workload.0.et");
  // Node id 8 in the raw dump: an all-gather of 134217728 bytes on pg "3".
  const auto it =
      std::find_if(t.nodes.begin(), t.nodes.end(), [](const auto& n) { return n.id() == 8; });
  ASSERT_NE(it, t.nodes.end());
  EXPECT_EQ(it->type(), chakra::COMM_COLL_NODE);
  EXPECT_EQ(traces::unsigned_attribute(*it, "comm_type", "x"), std::optional<std::uint64_t>(2));
  EXPECT_EQ(traces::unsigned_attribute(*it, "comm_size", "x"),
            std::optional<std::uint64_t>(134217728));
  EXPECT_EQ(traces::string_attribute(*it, "pg_name"), std::optional<std::string>("3"));
  ASSERT_EQ(it->data_deps_size(), 1);
  EXPECT_EQ(it->data_deps(0), 2u);
}

TEST(ChakraReader, GzipAndPlainReadTheSame) {
  const std::string plain =
      file_bytes(chakra_data() / "mlp-model-parallel-32/MLP_ModelParallel.4.et");
  const std::string gz = traces::gzip_compress(plain);
  ASSERT_NE(gz, plain);
  const auto a = traces::parse_chakra_et(plain, "plain");
  const auto b = traces::parse_chakra_et(gz, "gz");
  EXPECT_EQ(traces::serialize_chakra_et(a), traces::serialize_chakra_et(b));
  // Our writer reproduces the file byte for byte (field order and packing as Chakra writes them).
  EXPECT_EQ(traces::serialize_chakra_et(a), plain);
}

TEST(ChakraReader, WriteThenReadIsIdentity) {
  auto t = empty_trace();
  auto& n = add_node(t, 7, chakra::COMP_NODE, {}, 12);
  set_uint(n, "num_ops", 1u << 20);
  add_node(t, 9, chakra::COMM_COLL_NODE, {7});
  const testing::TempDir dir;
  const auto path = dir / "rw.0.et";
  traces::write_chakra_et(path, t);
  const auto back = traces::read_chakra_et(path);
  ASSERT_EQ(back.nodes.size(), 2u);
  EXPECT_EQ(back.nodes[1].data_deps(0), 7u);
  EXPECT_EQ(back.nodes[0].duration_micros(), 12u);
  EXPECT_EQ(traces::serialize_chakra_et(back), traces::serialize_chakra_et(t));
}

TEST(ChakraReaderBadInput, TruncatedMidMessageNamesFileAndOffset) {
  const std::string bytes =
      file_bytes(chakra_data() / "mlp-model-parallel-32/MLP_ModelParallel.0.et");
  // Every cut inside the stream: an error (never a crash, never a shorter trace taken as whole).
  int errors = 0;
  for (std::size_t cut = 1; cut < bytes.size(); ++cut) {
    const std::string e = parse_error(bytes.substr(0, cut), "cut.0.et");
    if (e.empty()) continue;  // a cut exactly between two messages is a valid shorter stream
    ++errors;
    EXPECT_NE(e.find("cut.0.et: byte "), std::string::npos) << e;
    EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  }
  // 30 messages: only the 29 cuts at message boundaries parse.
  EXPECT_EQ(errors, static_cast<int>(bytes.size()) - 1 - 29);
  const std::string e = parse_error(bytes.substr(0, bytes.size() - 3), "cut.0.et");
  EXPECT_NE(e.find("(node 28)"), std::string::npos) << e;
  EXPECT_NE(e.find("cut off mid-message"), std::string::npos) << e;
}

TEST(ChakraReaderBadInput, LengthPrefixOverflow) {
  const std::string e = parse_error(std::string("\xff\xff\xff\xff\xff\x7f", 6));
  EXPECT_NE(e.find("bad.0.et: byte 0 (GlobalMetadata): length prefix overflows a varint32"),
            std::string::npos)
      << e;
  // A 5-byte varint above 2^32 - 1 overflows too.
  const std::string e2 = parse_error(std::string("\xff\xff\xff\xff\x1f", 5));
  EXPECT_NE(e2.find("overflows"), std::string::npos) << e2;
}

TEST(ChakraReaderBadInput, UnknownNodeTypeNamesTheNode) {
  auto t = empty_trace();
  add_node(t, 1, chakra::COMP_NODE);
  add_node(t, 77, static_cast<chakra::NodeType>(42));
  const std::string e = parse_error(traces::serialize_chakra_et(t));
  EXPECT_NE(e.find("bad.0.et: node 1 (id 77, \"node77\"): unknown node type 42"), std::string::npos)
      << e;
  auto invalid = empty_trace();
  add_node(invalid, 3, chakra::INVALID_NODE);
  EXPECT_NE(parse_error(traces::serialize_chakra_et(invalid)).find("INVALID_NODE"),
            std::string::npos);
}

TEST(ChakraReaderBadInput, NotAProtobufStream) {
  // A length prefix of 5 followed by bytes that are not a message (a field with wire type 7).
  const std::string e = parse_error(std::string("\x00\x05\x0f\xff\xff\xff\xff", 7));
  EXPECT_NE(e.find("bad.0.et: byte 1 (node 0): 5 bytes that are not a Chakra Node"),
            std::string::npos)
      << e;
  EXPECT_NE(parse_error("").find("bad.0.et: empty file"), std::string::npos);
  EXPECT_NE(parse_error("hello world, not a trace").find("bad.0.et"), std::string::npos);
}

TEST(ChakraReaderBadInput, NodeWhereMetadataBelongs) {
  traces::ChakraTrace t;
  add_node(t, 1, chakra::COMP_NODE);
  // Serialise the node as the first message (no metadata).
  std::string bytes = traces::serialize_chakra_et(t);
  bytes.erase(0, 1);  // drop the empty metadata's zero length
  const std::string e = parse_error(bytes);
  EXPECT_NE(e.find("not a GlobalMetadata"), std::string::npos) << e;
}

TEST(ChakraReaderBadInput, RepeatedNodeId) {
  auto t = empty_trace();
  add_node(t, 5, chakra::COMP_NODE);
  add_node(t, 5, chakra::COMP_NODE);
  const std::string e = parse_error(traces::serialize_chakra_et(t));
  EXPECT_NE(e.find("node 1 (id 5, \"node5\"): repeats the id of node 0 (id 5"), std::string::npos)
      << e;
}

TEST(ChakraReaderBadInput, TruncatedAndCorruptGzip) {
  const std::string gz = traces::gzip_compress(
      file_bytes(chakra_data() / "mlp-model-parallel-32/MLP_ModelParallel.0.et"));
  const std::string e = parse_error(gz.substr(0, gz.size() / 2), "t.0.et");
  EXPECT_NE(e.find("t.0.et: gzip stream truncated"), std::string::npos) << e;
  std::string corrupt = gz;
  for (std::size_t i = 12; i < 40 && i < corrupt.size(); ++i)
    corrupt[i] = static_cast<char>(corrupt[i] ^ 0x5a);
  const std::string e2 = parse_error(corrupt, "t.0.et");
  EXPECT_NE(e2.find("t.0.et: "), std::string::npos) << e2;
  EXPECT_FALSE(e2.empty());
}

TEST(ChakraReaderBadInput, AttributeOfTheWrongType) {
  auto t = empty_trace();
  auto& n = add_node(t, 1, chakra::COMM_COLL_NODE);
  set_string(n, "comm_size", "lots");
  set_int(n, "comm_type", -3);
  try {
    traces::unsigned_attribute(n, "comm_size", "f.0.et");
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(
        std::string(e.what()).find("f.0.et: node id 1: attribute \"comm_size\" is not an integer"),
        std::string::npos)
        << e.what();
  }
  EXPECT_THROW(traces::unsigned_attribute(n, "comm_type", "f.0.et"), InputError);
}

TEST(ChakraReaderBadInput, MissingFile) {
  try {
    traces::read_chakra_et("/nonexistent/x.0.et");
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/x.0.et: cannot open file"),
              std::string::npos);
  }
}

}  // namespace
}  // namespace parallax::testing
