// Reading and writing parallax's protobuf files: text format and JSON for what people write
// (scenarios, presets), binary for what programs exchange (plans, timelines).
#pragma once

#include <google/protobuf/message.h>
#include <google/protobuf/text_format.h>

#include <filesystem>
#include <stdexcept>
#include <string>

namespace parallax {

// Bad input from a file or the command line. The message is complete and meant for the user: it
// names the file (and line where known), the field and what would be valid. Tools exit with 2.
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace parallax

namespace parallax::traces {

// Parses `path` into `message`: JSON (protobuf's JSON mapping) when the name ends in .json, protobuf
// text format otherwise. For text format, field locations are recorded into `locations` when given.
// Throws InputError "path:line:column: what went wrong (and the valid choices)".
void read_text_or_json(const std::filesystem::path& path, google::protobuf::Message& message,
                       google::protobuf::TextFormat::ParseInfoTree* locations = nullptr);

// Same, from a string; `name` stands for the file in messages. `json` selects the JSON mapping.
void parse_text_or_json(const std::string& text, const std::string& name, bool json,
                        google::protobuf::Message& message,
                        google::protobuf::TextFormat::ParseInfoTree* locations = nullptr);

// Protobuf binary. Throws InputError "path: not a valid <type> ..." when the bytes do not parse
// (truncated mid-message, wrong type, corrupt).
void read_binary(const std::filesystem::path& path, google::protobuf::Message& message);
// Same, from bytes in memory; `name` stands for the file in messages.
void parse_binary(const std::string& bytes, const std::string& name, google::protobuf::Message& message);
void write_binary(const std::filesystem::path& path, const google::protobuf::Message& message);

std::string to_text(const google::protobuf::Message& message);

}  // namespace parallax::traces
