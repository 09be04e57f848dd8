// Reading and writing parallax's protobuf files: text format and JSON for what people write
// (scenarios, presets), binary for what programs exchange (plans, timelines).
#pragma once

#include <google/protobuf/message.h>
#include <google/protobuf/text_format.h>

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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
// Writes the message with write_file_atomically.
void write_binary(const std::filesystem::path& path, const google::protobuf::Message& message);

// What parallax reads at most. Text that people write (scenarios, presets, calibration overlays,
// tables, comm_groups.json) is a few KiB; 64 MiB leaves room for generated files and still stops
// /dev/zero or a wrong file long before memory runs out.
inline constexpr std::uint64_t kMaxTextFileBytes = std::uint64_t{64} << 20;
// Protobuf parses at most 2 GiB - 1 bytes (its sizes are int), so a larger plan, timeline or Chakra
// trace cannot be valid anyway.
inline constexpr std::uint64_t kMaxBinaryFileBytes = (std::uint64_t{2} << 30) - 1;

// Reads the regular file `path` whole. `kind` names what it should be ("scenario file") in messages.
// Throws InputError, naming the file, for a missing or unreadable file, a directory, a FIFO, device
// or socket (never read: they may never end), and a file over `max_bytes` (checked while reading
// too, since a file can grow or its size can lie).
std::string read_file(const std::filesystem::path& path, std::uint64_t max_bytes,
                      std::string_view kind = "file");

// Replaces `path` with `bytes` so that it holds either the old or the whole new content, never a
// part: the bytes go to a temporary file beside it (same directory, permissions of the old file or
// 0666 & ~umask), which is flushed, fsync'd and renamed over `path`; on any failure the temporary
// file is removed and the old file stays. A target that exists and is not a regular file (/dev/null,
// /dev/stdout, a FIFO) is written directly, since a rename cannot apply. Through a symbolic link the
// file it points to is replaced. Every failure is an InputError naming the file and the reason
// ("writing out.json failed: no space left on device").
void write_file_atomically(const std::filesystem::path& path, std::string_view bytes);
// Whether write_file_atomically(path, ...) can work, checked before a long computation whose result
// it will write: the name is not empty and not a directory, and its directory exists and is
// writable (or the target is an existing non-regular file such as /dev/null). Throws InputError
// with the message the write would give. A disk that fills up meanwhile still fails the write.
void check_output_path(const std::filesystem::path& path);
// Several files as one: all are written to temporary files first and renamed only when every one
// was written, so a failure leaves none of them (and no old file) changed.
void write_files_atomically(const std::vector<std::pair<std::filesystem::path, std::string>>& files);

// Keeps protobuf's own log lines (such as "String field ... contains invalid UTF-8") off stderr:
// parallax reports every parse failure itself, and the first line a user reads should be its
// message. Other protobuf messages still go to stderr. Idempotent; the readers call it.
void quiet_protobuf_logging();

std::string to_text(const google::protobuf::Message& message);

}  // namespace parallax::traces
