// The command-line options of every program (parallax's subcommands, parallax-exec, parallax-gui
// --screenshot): each declares its flags, valued options and positionals here, and one parser reads
// its arguments in order. A library of its own that needs neither SimGrid nor Qt, so parallax-exec
// can link it and ship alone. Every problem is an InputError (exit code 2) in one style:
//   unknown option "--foo"; see `parallax compare --help`
//   --timeline needs a file name, e.g. --timeline predicted.pb     (the value is missing)
//   --top needs a non-negative whole number (got "x")
//   --json takes no value (got "yes")                              (--json=yes)
//   more than one scenario given ("a.pbtxt", "b.pbtxt")
// A valued option takes the next argument, whatever it is, or the part after '=' in
// `--name=value`; given twice, the last one counts. -h and --help print the help.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

namespace parallax::cli {

class Options {
 public:
  // One option's spellings: "--json", or {"-o", "--output"}.
  struct Names {
    Names(const char* name) : list{name} {}  // implicit: flag("--json", json)
    Names(std::initializer_list<const char*> names) : list(names.begin(), names.end()) {}
    std::vector<std::string> list;
  };
  enum class Sign { kPositive, kNonNegative };

  // `program` is the command as typed ("parallax export-chakra", "parallax-gui"), for the messages
  // that point to its --help.
  Options(std::string program, std::string help);
  Options(std::string program, std::function<std::string()> help);  // help built only when asked

  Options& flag(Names names, bool& target);
  // `what` completes "NAME needs ..." when the value is missing: "a file name, e.g. -o plan.pb".
  Options& text(Names names, std::string& target, std::string what);
  // An output file name: as text(), but an empty value (-o '', an unset shell variable) is refused
  // rather than silently writing nothing.
  Options& output(Names names, std::string& target, std::string what);
  Options& value(Names names, std::function<void(const std::string&)> apply, std::string what);
  // A whole number from `min` (0 or 1 in practice) to kMaxWhole.
  Options& whole(Names names, int& target, int min, std::string what);
  // A whole number from `min` to 2^63 - 1, for sizes in bytes.
  Options& whole(Names names, std::uint64_t& target, std::uint64_t min, std::string what);
  // A finite number; `unit` reads "a positive number of <unit>" in the bad-number message.
  Options& number(Names names, double& target, Sign sign, std::string what, std::string unit = "");
  // The one positional argument. A second one is "more than one <noun> given (...)"; none at all
  // is an error only when `missing` (the whole message) is given.
  Options& positional(std::string& target, std::string noun, std::string missing = "");
  // Every positional argument, in order; the subcommand checks how many.
  Options& positionals(std::vector<std::string>& target);

  // Reads `args`; false when it printed the help (the subcommand then returns 0 at once).
  bool parse(const std::vector<std::string>& args);

  static constexpr int kMaxWhole = 1 << 30;

 private:
  struct Option {
    std::vector<std::string> names;
    bool takes_value = false;
    std::string what;
    std::function<void(const std::string& name, const std::string& value)> apply;
  };
  Options& add(Names names, bool takes_value, std::string what,
               std::function<void(const std::string&, const std::string&)> apply);
  const Option* find(const std::string& name) const;

  std::string program_;
  std::function<std::string()> help_;
  std::vector<Option> options_;
  std::string* positional_ = nullptr;
  std::string noun_, missing_;
  std::vector<std::string>* positionals_ = nullptr;
};

// A file a command reads or writes, for check_files; `what` names it in messages ("--chrome",
// "the scenario"). An empty path (option not given) is skipped.
struct FileArg {
  std::string what;
  std::string path;
};

// Refuses, before anything is read or written, an output that names one of the inputs (writing it
// would destroy the input) and two outputs that name one file (only the last would survive). Two
// paths are the same file when they are the same file on disk (device and inode, through links)
// where both exist, and the same normalised absolute path otherwise. Outputs that exist and are not
// regular files (/dev/null, /dev/stdout) may repeat: nothing is lost there.
void check_files(const std::vector<FileArg>& inputs, const std::vector<FileArg>& outputs);

}  // namespace parallax::cli
