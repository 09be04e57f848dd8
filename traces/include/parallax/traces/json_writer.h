// A small streaming JSON writer for reports and trace exports: numbers stay numbers (protobuf's JSON
// mapping turns 64-bit integers into strings, which scripts then cannot compare).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace parallax::traces {

class JsonWriter {
 public:
  explicit JsonWriter(int indent = 2) : indent_(indent) {}

  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(std::string_view name);

  JsonWriter& value(std::string_view s);
  JsonWriter& value(const char* s) { return value(std::string_view(s)); }
  JsonWriter& value(double d);
  JsonWriter& value(std::int64_t i);
  JsonWriter& value(std::uint64_t u);
  JsonWriter& value(int i) { return value(static_cast<std::int64_t>(i)); }
  JsonWriter& value(unsigned u) { return value(static_cast<std::uint64_t>(u)); }
  JsonWriter& value(bool b);

  template <typename T>
  JsonWriter& field(std::string_view name, const T& v) {
    key(name);
    return value(v);
  }

  const std::string& str() const { return out_; }

 private:
  void before_value();
  void newline();
  void close(char bracket);

  std::string out_;
  int indent_;
  // Per open container: whether it already holds an element.
  std::vector<bool> has_element_;
  bool after_key_ = false;
};

// Escapes for a JSON string; bytes that are not valid UTF-8 become U+FFFD (see valid_utf8).
std::string json_escape(std::string_view s);

// `s` with every byte that is not part of a valid UTF-8 sequence (a stray continuation byte, a
// truncated or overlong sequence, a surrogate, beyond U+10FFFF) replaced by U+FFFD. JSON and
// protobuf string fields must be UTF-8, and names from files (a scenario name, a table id, a byte
// flipped in a timeline) may not be: replacing keeps the output readable by every parser and the
// rest of the name recognisable.
std::string valid_utf8(std::string_view s);

}  // namespace parallax::traces
