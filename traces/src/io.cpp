#include "parallax/traces/io.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <fstream>
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

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path.string() + ": cannot open file (does it exist and is it readable?)");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace

void parse_text_or_json(const std::string& text, const std::string& name, bool json,
                        pb::Message& message, pb::TextFormat::ParseInfoTree* locations) {
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
  parse_text_or_json(read_file(path), path.string(), json, message, locations);
}

void read_binary(const std::filesystem::path& path, pb::Message& message) {
  parse_binary(read_file(path), path.string(), message);
}

void parse_binary(const std::string& bytes, const std::string& name, pb::Message& message) {
  message.Clear();
  if (!message.ParseFromString(bytes))
    throw InputError(name + ": not a valid " + message.GetDescriptor()->full_name() +
                     " (protobuf binary; truncated, or another kind of file?); was it written by this version of "
                     "parallax?");
}

void write_binary(const std::filesystem::path& path, const pb::Message& message) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw InputError(path.string() + ": cannot write file (does its directory exist?)");
  if (!message.SerializeToOstream(&out))
    throw InputError(path.string() + ": writing failed (disk full?)");
}

std::string to_text(const pb::Message& message) {
  std::string out;
  pb::TextFormat::PrintToString(message, &out);
  return out;
}

}  // namespace parallax::traces
