#include "parallax/traces/io.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/util/json_util.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <mutex>
#include <regex>
#include <sstream>

namespace parallax::traces {
namespace {

namespace pb = google::protobuf;

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i) out += ", ";
    out += names[i];
  }
  return out;
}

// Protobuf says what is wrong; a user also wants to know what would be right.
std::string explain(const std::string& error, const pb::Descriptor* root) {
  static const std::regex no_field(R"re(Message type "([\w.]+)" has no field named "(\w+)")re");
  static const std::regex bad_enum(R"re(Unknown enumeration value of "(\w+)" for field "(\w+)")re");
  std::smatch m;
  const pb::DescriptorPool* pool = root->file()->pool();
  if (std::regex_search(error, m, no_field)) {
    const pb::Descriptor* type = pool->FindMessageTypeByName(m[1].str());
    if (!type) return error;
    const std::string wrong = m[2].str();
    std::vector<std::string> fields;
    std::string best;
    std::size_t best_distance = 3;  // suggest only close matches
    for (int i = 0; i < type->field_count(); ++i) {
      const std::string& name = type->field(i)->name();
      fields.push_back(name);
      const std::size_t d = edit_distance(wrong, name);
      if (d < best_distance) {
        best_distance = d;
        best = name;
      }
    }
    std::string out = error + ".";
    if (!best.empty()) out += " Did you mean \"" + best + "\"?";
    out += " Valid fields of " + type->name() + ": " + join_names(fields) + ".";
    return out;
  }
  if (std::regex_search(error, m, bad_enum)) {
    // The message does not name the enclosing type: look for an enum field of that name reachable
    // from the root message.
    const std::string field_name = m[2].str();
    std::vector<const pb::Descriptor*> todo{root};
    std::vector<const pb::Descriptor*> seen;
    while (!todo.empty()) {
      const pb::Descriptor* d = todo.back();
      todo.pop_back();
      if (std::find(seen.begin(), seen.end(), d) != seen.end()) continue;
      seen.push_back(d);
      for (int i = 0; i < d->field_count(); ++i) {
        const pb::FieldDescriptor* f = d->field(i);
        if (f->message_type()) todo.push_back(f->message_type());
        if (f->name() == field_name && f->enum_type()) {
          std::vector<std::string> values;
          for (int v = 0; v < f->enum_type()->value_count(); ++v)
            values.push_back(f->enum_type()->value(v)->name());
          return error + ". Valid values: " + join_names(values) + ".";
        }
      }
    }
  }
  return error;
}

class CollectErrors : public pb::io::ErrorCollector {
 public:
  CollectErrors(std::string name, const pb::Descriptor* root) : name_(std::move(name)), root_(root) {}
  void AddError(int line, pb::io::ColumnNumber column, const std::string& message) override {
    if (!first_.empty()) return;
    std::ostringstream out;
    // Protobuf counts from 0; editors count from 1.
    out << name_ << ":" << line + 1 << ":" << column + 1 << ": " << explain(message, root_);
    first_ = out.str();
  }
  void AddWarning(int, pb::io::ColumnNumber, const std::string&) override {}
  const std::string& first() const { return first_; }

 private:
  std::string name_;
  const pb::Descriptor* root_;
  std::string first_;
};

// "Scenario" -> "scenario file", "ClusterSpec" -> "cluster spec file": what a reader expected.
std::string kind_of(const pb::Descriptor* type) {
  std::string out;
  for (const char c : type->name()) {
    if (std::isupper(static_cast<unsigned char>(c)) && !out.empty()) out += ' ';
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out + " file";
}

// strerror, starting lower case to follow a colon: "no space left on device".
std::string reason(int error) {
  std::string out = std::strerror(error);
  if (!out.empty()) out[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(out[0])));
  return out;
}

// "3.0 GiB (3221225472 bytes)"
std::string size_text(std::uint64_t bytes) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 6) {
    v /= 1024;
    ++u;
  }
  if (u == 0) return std::to_string(bytes) + " bytes";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f %s (%llu bytes)", v, units[u],
                static_cast<unsigned long long>(bytes));
  return buf;
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // Closes now, returning close's errno (0 when it succeeded): on NFS a write error may only show
  // here.
  int close() {
    const int fd = fd_;
    fd_ = -1;
    return fd >= 0 && ::close(fd) != 0 ? errno : 0;
  }

 private:
  int fd_;
};

// Writes all of `bytes`, retrying after signals and short writes; 0 or the errno of the failure.
int write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n =
        ::write(fd, bytes.data(), std::min<std::size_t>(bytes.size(), std::size_t{1} << 30));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return 0;
}

[[noreturn]] void write_failed(const std::string& name, int error) {
  throw InputError("writing " + name + " failed: " + reason(error) +
                   (error == ENOSPC || error == EDQUOT ? ""
                    : error == EFBIG                   ? " (a file size limit, ulimit -f?)"
                                                       : ""));
}

[[noreturn]] void cannot_create(const std::string& name, const std::filesystem::path& dir,
                                int error) {
  const std::string where = dir.string();
  switch (error) {
    case ENOENT:
      throw InputError(name + ": cannot write file: the directory " + where + " does not exist");
    case ENOTDIR:
      throw InputError(name + ": cannot write file: " + where + " is not a directory");
    case EACCES:
    case EPERM:
      throw InputError(name + ": cannot write file: permission denied (is the directory " + where +
                       " writable?)");
    case EROFS:
      throw InputError(name + ": cannot write file: " + where + " is on a read-only file system");
    case ENOSPC:
    case EDQUOT:
      write_failed(name, error);
    default:
      throw InputError(name + ": cannot write file: " + reason(error));
  }
}

bool is_special_tree(const std::string& name) {
  return name.starts_with("/dev/") || name.starts_with("/proc/");
}

// One output on its way: written to a temporary file beside the target, renamed by commit().
class PendingFile {
 public:
  PendingFile(const std::filesystem::path& path, std::string_view bytes) : name_(path.string()) {
    if (name_.empty())
      throw InputError("an empty output file name was given; name the file to write");
    struct stat st {};
    const bool exists = ::stat(name_.c_str(), &st) == 0;
    if (exists && S_ISDIR(st.st_mode))
      throw InputError(name_ + ": cannot write file: it is a directory; give the name of a file");
    if (exists && (!S_ISREG(st.st_mode) || is_special_tree(name_))) {
      // /dev/null, /dev/stdout, a FIFO, a terminal: nothing to rename over; write straight to it.
      Fd fd(::open(name_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666));
      if (fd.get() < 0) cannot_create(name_, path.parent_path(), errno);
      if (const int e = write_all(fd.get(), bytes)) write_failed(name_, e);
      if (const int e = fd.close()) write_failed(name_, e);
      return;
    }
    target_ = path;
    std::error_code ec;
    if (exists) {
      // Through a symbolic link: replace the file it points to and keep the link.
      const auto real = std::filesystem::canonical(path, ec);
      if (!ec) target_ = real;
    }
    std::filesystem::path dir = target_.parent_path();
    if (dir.empty()) dir = ".";
    // Hidden, unique within this process and among processes; the name is cut so that the
    // temporary name stays within NAME_MAX.
    static std::atomic<unsigned> counter{0};
    const std::string base = target_.filename().string().substr(0, 128);
    for (int attempt = 0;; ++attempt) {
      temp_ = dir / ("." + base + "." + std::to_string(::getpid()) + "." +
                     std::to_string(counter++) + ".tmp");
      // 0666 with O_CREAT: the kernel applies the umask, as for any new file.
      fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ >= 0) break;
      if (errno != EEXIST || attempt > 100) {
        const int e = errno;
        temp_.clear();
        cannot_create(name_, dir, e);
      }
    }
    if (exists) (void)::fchmod(fd_, st.st_mode & 07777);  // best effort: keep the old permissions
    int e = write_all(fd_, bytes);
    if (!e && ::fsync(fd_) != 0) e = errno;
    const int c = ::close(fd_);
    fd_ = -1;
    if (!e && c != 0) e = errno;
    if (e) {
      // A constructor that throws runs no destructor: remove the temporary file here.
      ::unlink(temp_.c_str());
      temp_.clear();
      write_failed(name_, e);
    }
    dir_ = dir;
  }
  PendingFile(const PendingFile&) = delete;
  PendingFile& operator=(const PendingFile&) = delete;
  PendingFile(PendingFile&& o) noexcept
      : name_(std::move(o.name_)),
        target_(std::move(o.target_)),
        temp_(std::move(o.temp_)),
        dir_(std::move(o.dir_)),
        fd_(o.fd_) {
    o.temp_.clear();
    o.fd_ = -1;
  }
  PendingFile& operator=(PendingFile&&) = delete;

  void commit() {
    if (temp_.empty()) return;  // written directly
    if (::rename(temp_.c_str(), target_.c_str()) != 0) {
      const int e = errno;
      if (e == EISDIR)
        throw InputError(name_ + ": cannot write file: it is a directory; give the name of a file");
      throw InputError(name_ + ": cannot write file: " + reason(e));
    }
    temp_.clear();
    // So that the rename itself survives a power loss; a failure here loses nothing written.
    const int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      (void)::fsync(dfd);
      ::close(dfd);
    }
  }

  ~PendingFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!temp_.empty()) ::unlink(temp_.c_str());
  }

 private:
  std::string name_;
  std::filesystem::path target_, temp_, dir_;
  int fd_ = -1;
};

void log_handler(pb::LogLevel level, const char* filename, int line, const std::string& message) {
  // A string field with invalid UTF-8 makes the parse fail, and the reader says so itself.
  if (message.find("UTF-8") != std::string::npos) return;
  static const char* const names[] = {"INFO", "WARNING", "ERROR", "FATAL"};
  std::cerr << "[libprotobuf " << names[std::clamp(static_cast<int>(level), 0, 3)] << " "
            << filename << ":" << line << "] " << message << std::endl;
}

}  // namespace

void quiet_protobuf_logging() {
  static std::once_flag once;
  std::call_once(once, [] { pb::SetLogHandler(&log_handler); });
}

std::string read_file(const std::filesystem::path& path, std::uint64_t max_bytes,
                      std::string_view kind_view) {
  const std::string name = path.string();
  const std::string kind(kind_view);
  if (name.empty()) throw InputError("an empty file name was given for a " + kind);
  // O_NONBLOCK: opening a FIFO without a writer would otherwise wait forever.
  Fd fd(::open(name.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (fd.get() < 0) {
    switch (errno) {
      case ENOENT:
        throw InputError(name + ": cannot open file: it does not exist (check the path)");
      case EACCES:
        throw InputError(name + ": cannot open file: permission denied (is it readable?)");
      case ENOTDIR:
        throw InputError(name + ": cannot open file: a part of the path is not a directory");
      default:
        throw InputError(name + ": cannot open file: " + reason(errno));
    }
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw InputError(name + ": cannot open file: " + reason(errno));
  if (S_ISDIR(st.st_mode)) throw InputError(name + ": is a directory, not a " + kind);
  if (!S_ISREG(st.st_mode)) {
    const char* what = S_ISFIFO(st.st_mode)                         ? "a FIFO (named pipe)"
                       : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                       : S_ISSOCK(st.st_mode)                       ? "a socket"
                                                                    : "not a regular file";
    throw InputError(name + ": is " + what + ", not a " + kind +
                     "; parallax reads regular files only (save the data to a file first)");
  }
  const auto too_big = [&](std::uint64_t size) {
    return InputError(name + ": is " +
                      (size > max_bytes ? size_text(size) : "over " + size_text(max_bytes)) +
                      ", more than a " + kind + " may be (at most " + size_text(max_bytes) +
                      "); is it the right file?");
  };
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size > max_bytes) throw too_big(size);
  std::string out;
  out.reserve(static_cast<std::size_t>(size));
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw InputError(name + ": reading failed: " + reason(errno));
    }
    if (n == 0) break;
    // The file grew since fstat (or lied about its size): stop at the limit all the same.
    if (out.size() + static_cast<std::size_t>(n) > max_bytes)
      throw too_big(out.size() + static_cast<std::size_t>(n));
    out.append(buffer, static_cast<std::size_t>(n));
  }
  return out;
}

void check_output_path(const std::filesystem::path& path) {
  const std::string name = path.string();
  if (name.empty()) throw InputError("an empty output file name was given; name the file to write");
  struct stat st {};
  if (::stat(name.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode))
      throw InputError(name + ": cannot write file: it is a directory; give the name of a file");
    if (!S_ISREG(st.st_mode)) {
      if (::access(name.c_str(), W_OK) != 0) cannot_create(name, path.parent_path(), errno);
      return;
    }
  }
  std::error_code ec;
  std::filesystem::path target = path;
  if (const auto real = std::filesystem::canonical(path, ec); !ec) target = real;
  std::filesystem::path dir = target.parent_path();
  if (dir.empty()) dir = ".";
  if (::stat(dir.c_str(), &st) != 0) cannot_create(name, dir, errno);
  if (!S_ISDIR(st.st_mode)) cannot_create(name, dir, ENOTDIR);
  if (::access(dir.c_str(), W_OK) != 0) cannot_create(name, dir, errno);
}

void write_files_atomically(
    const std::vector<std::pair<std::filesystem::path, std::string>>& files) {
  std::vector<PendingFile> pending;
  pending.reserve(files.size());
  for (const auto& [path, bytes] : files) pending.emplace_back(path, bytes);
  for (auto& p : pending) p.commit();
}

void write_file_atomically(const std::filesystem::path& path, std::string_view bytes) {
  PendingFile file(path, bytes);
  file.commit();
}

void parse_text_or_json(const std::string& text, const std::string& name, bool json,
                        pb::Message& message, pb::TextFormat::ParseInfoTree* locations) {
  quiet_protobuf_logging();
  message.Clear();
  if (json) {
    pb::util::JsonParseOptions options;
    options.ignore_unknown_fields = false;
    const auto status = pb::util::JsonStringToMessage(text, &message, options);
    if (!status.ok())
      throw InputError(name + ": " + explain(std::string(status.message()), message.GetDescriptor()));
    return;
  }
  CollectErrors errors(name, message.GetDescriptor());
  pb::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (locations) parser.WriteLocationsTo(locations);
  if (!parser.ParseFromString(text, &message)) {
    throw InputError(errors.first().empty() ? name + ": not a valid " +
                                                  message.GetDescriptor()->name() + " in text format"
                                            : errors.first());
  }
}

void read_text_or_json(const std::filesystem::path& path, pb::Message& message,
                       pb::TextFormat::ParseInfoTree* locations) {
  const bool json = path.extension() == ".json";
  parse_text_or_json(read_file(path, kMaxTextFileBytes, kind_of(message.GetDescriptor())),
                     path.string(), json, message, locations);
}

void read_binary(const std::filesystem::path& path, pb::Message& message) {
  parse_binary(read_file(path, kMaxBinaryFileBytes, kind_of(message.GetDescriptor())),
               path.string(), message);
}

void parse_binary(const std::string& bytes, const std::string& name, pb::Message& message) {
  quiet_protobuf_logging();
  message.Clear();
  if (!message.ParseFromString(bytes))
    throw InputError(name + ": not a valid " + message.GetDescriptor()->full_name() +
                     " (protobuf binary; truncated, or another kind of file?); was it written by this version of "
                     "parallax?");
}

void write_binary(const std::filesystem::path& path, const pb::Message& message) {
  std::string bytes;
  if (!message.SerializeToString(&bytes))
    throw InputError("writing " + path.string() + " failed: the " +
                     message.GetDescriptor()->name() +
                     " is too large for protobuf (2 GiB at most)");
  write_file_atomically(path, bytes);
}

std::string to_text(const pb::Message& message) {
  std::string out;
  pb::TextFormat::PrintToString(message, &out);
  return out;
}

}  // namespace parallax::traces
