#include "parallax/cli/options.h"

#include "parallax/traces/io.h"

#include <sys/stat.h>

#include <charconv>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <limits>
#include <optional>
#include <stdexcept>
#include <utility>

namespace parallax::cli {
namespace {

std::string in_quotes(const std::string& s) {
  return "\"" + s + "\"";
}

// The whole number `value` spells exactly (no sign, space or fraction), when it fits a long long.
std::optional<long long> whole_number(const std::string& value) {
  long long v = 0;
  const char* end = value.data() + value.size();
  const auto [stop, error] = std::from_chars(value.data(), end, v);
  if (error != std::errc() || stop != end) return std::nullopt;
  return v;
}

long long parse_whole(const std::string& name, const std::string& value, long long min,
                      long long max) {
  const std::optional<long long> v = whole_number(value);
  const std::string kind = min == 0   ? "a non-negative whole number"
                           : min == 1 ? "a positive whole number"
                                      : "a whole number >= " + std::to_string(min);
  if (!v || *v < min) throw InputError(name + " needs " + kind + " (got " + in_quotes(value) + ")");
  if (*v > max)
    throw InputError(name + " needs " + kind + " up to " + std::to_string(max) + " (got " +
                     in_quotes(value) + ")");
  return *v;
}

double parse_number(const std::string& name, const std::string& value, Options::Sign sign,
                    const std::string& unit) {
  try {
    std::size_t used = 0;
    const double v = std::stod(value, &used);
    const bool in_range = sign == Options::Sign::kPositive ? v > 0 : v >= 0;
    if (used == value.size() && std::isfinite(v) && in_range) return v;
  } catch (const std::exception&) {
  }
  throw InputError(name + " needs a " +
                   (sign == Options::Sign::kPositive ? "positive" : "non-negative") + " number" +
                   (unit.empty() ? "" : " of " + unit) + " (got " + in_quotes(value) + ")");
}

}  // namespace

Options::Options(std::string program, std::string help)
    : Options(std::move(program), [help = std::move(help)] { return help; }) {}

Options::Options(std::string program, std::function<std::string()> help)
    : program_(std::move(program)), help_(std::move(help)) {}

Options& Options::add(Names names, bool takes_value, std::string what,
                      std::function<void(const std::string&, const std::string&)> apply) {
  options_.push_back({std::move(names.list), takes_value, std::move(what), std::move(apply)});
  return *this;
}

Options& Options::flag(Names names, bool& target) {
  return add(std::move(names), false, "",
             [&target](const std::string&, const std::string&) { target = true; });
}

Options& Options::text(Names names, std::string& target, std::string what) {
  return add(std::move(names), true, std::move(what),
             [&target](const std::string&, const std::string& v) { target = v; });
}

Options& Options::output(Names names, std::string& target, std::string what) {
  return add(std::move(names), true, what,
             [&target, what](const std::string& name, const std::string& v) {
               if (v.empty()) throw InputError(name + " needs " + what + " (got an empty value)");
               target = v;
             });
}

Options& Options::value(Names names, std::function<void(const std::string&)> apply,
                        std::string what) {
  return add(std::move(names), true, std::move(what),
             [apply = std::move(apply)](const std::string&, const std::string& v) { apply(v); });
}

Options& Options::whole(Names names, int& target, int min, std::string what) {
  return add(std::move(names), true, std::move(what),
             [&target, min](const std::string& name, const std::string& v) {
               target = static_cast<int>(parse_whole(name, v, min, kMaxWhole));
             });
}

Options& Options::whole(Names names, std::uint64_t& target, std::uint64_t min, std::string what) {
  return add(std::move(names), true, std::move(what),
             [&target, min](const std::string& name, const std::string& v) {
               target = static_cast<std::uint64_t>(
                   parse_whole(name, v, static_cast<long long>(min),
                               std::numeric_limits<long long>::max()));
             });
}

Options& Options::number(Names names, double& target, Sign sign, std::string what,
                         std::string unit) {
  return add(
      std::move(names), true, std::move(what),
      [&target, sign, unit = std::move(unit)](const std::string& name, const std::string& v) {
        target = parse_number(name, v, sign, unit);
      });
}

Options& Options::positional(std::string& target, std::string noun, std::string missing) {
  positional_ = &target;
  noun_ = std::move(noun);
  missing_ = std::move(missing);
  return *this;
}

Options& Options::positionals(std::vector<std::string>& target) {
  positionals_ = &target;
  return *this;
}

const Options::Option* Options::find(const std::string& name) const {
  for (const auto& o : options_)
    for (const auto& n : o.names)
      if (n == name) return &o;
  return nullptr;
}

bool Options::parse(const std::vector<std::string>& args) {
  bool have_positional = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.empty() || a[0] != '-') {
      if (positionals_) {
        positionals_->push_back(a);
      } else if (positional_ && !have_positional) {
        *positional_ = a;
        have_positional = true;
      } else if (positional_) {
        throw InputError("more than one " + noun_ + " given (" + in_quotes(*positional_) + ", " +
                         in_quotes(a) + ")");
      } else {
        throw InputError("unexpected argument " + in_quotes(a) + "; see `" + program_ + " --help`");
      }
      continue;
    }
    // --name=value
    std::string name = a;
    std::optional<std::string> inline_value;
    if (const auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      name = a.substr(0, eq);
      inline_value = a.substr(eq + 1);
    }
    const bool help = name == "-h" || name == "--help";
    const Option* option = help ? nullptr : find(name);
    if (!help && !option)
      throw InputError("unknown option " + in_quotes(name) + "; see `" + program_ + " --help`");
    if ((help || !option->takes_value) && inline_value)
      throw InputError(name + " takes no value (got " + in_quotes(*inline_value) + ")");
    if (help) {
      std::cout << help_();
      return false;
    }
    if (!option->takes_value) {
      option->apply(name, "");
    } else if (inline_value) {
      option->apply(name, *inline_value);
    } else if (i + 1 < args.size()) {
      option->apply(name, args[++i]);
    } else {
      throw InputError(name + " needs " + option->what);
    }
  }
  if (positional_ && !have_positional && !missing_.empty()) throw InputError(missing_);
  return true;
}

namespace {

bool same_file(const std::string& a, const std::string& b) {
  namespace fs = std::filesystem;
  std::error_code ec;
  struct stat sa {
  }, sb{};
  const bool a_exists = ::stat(a.c_str(), &sa) == 0, b_exists = ::stat(b.c_str(), &sb) == 0;
  if (a_exists && b_exists) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  if (a_exists != b_exists) return false;
  const fs::path pa = fs::weakly_canonical(fs::absolute(a, ec), ec);
  const fs::path pb = fs::weakly_canonical(fs::absolute(b, ec), ec);
  return pa.lexically_normal() == pb.lexically_normal();
}

bool is_special(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode);
}

}  // namespace

void check_files(const std::vector<FileArg>& inputs, const std::vector<FileArg>& outputs) {
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const FileArg& out = outputs[i];
    if (out.path.empty()) continue;
    for (const FileArg& in : inputs)
      if (!in.path.empty() && same_file(out.path, in.path))
        throw InputError(out.what + " " + in_quotes(out.path) + " is " + in.what + " " +
                         in_quotes(in.path) +
                         ": writing it would destroy the input; choose another output file");
    if (is_special(out.path)) continue;
    for (std::size_t j = 0; j < i; ++j)
      if (!outputs[j].path.empty() && same_file(out.path, outputs[j].path))
        throw InputError(out.what + " " + in_quotes(out.path) + " and " + outputs[j].what + " " +
                         in_quotes(outputs[j].path) +
                         " name the same file; give each output its own file");
  }
}

}  // namespace parallax::cli
