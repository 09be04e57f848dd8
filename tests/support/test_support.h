// Helpers shared by the test suites.
#pragma once

#include "parallax/model/scenario.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

namespace parallax::testing {

// A file's bytes, whole ("" when it cannot be read).
std::string file_text(const std::filesystem::path& path);

// The message of the InputError `f` throws; fails the test when it throws nothing. Anything else it
// throws escapes, and fails the test too.
template <typename F>
std::string input_error(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no InputError";
  return "";
}

inline std::filesystem::path source_dir() { return PARALLAX_SOURCE_DIR; }
inline std::filesystem::path scenarios_dir() { return source_dir() / "scenarios"; }

// A scenario from text, with presets looked up in the bundled scenarios/ directory.
inline Scenario scenario_from_text(const std::string& text, const std::string& name = "test.pbtxt") {
  return model::parse_scenario(text, name, false, scenarios_dir());
}

// A small GPT on a DGX A100 preset: tweak the layout with `layout_fields` (text format).
std::string small_scenario_text(const std::string& layout_fields, int nodes = 1,
                                const std::string& extra = "");

// One row of validation/public.tsv.
struct ValidationRow {
  std::string id;
  int layers, hidden, heads, seq, vocab, gbs, mbs, tp, pp, dp, vpp;
  bool sp;
  std::string recompute;  // none | selective | full
  int zero;
  std::string gpu;
  int gpus_per_node;
  std::string precision;
  double measured_iter_s;
  std::string flops_convention;
};
std::vector<ValidationRow> validation_rows();
// GoogleTest prints a row by its id instead of its bytes.
inline void PrintTo(const ValidationRow& row, std::ostream* os) { *os << row.id; }
// The row as a scenario on DGX A100 80GB nodes.
std::string validation_scenario_text(const ValidationRow& row);

// A timeline as the executor writes a measurement: source MEASURED, `run` (the scenario that ran)
// embedded, and under symmetry every rank of a pipeline stage carrying a copy of its representative's
// events (rank = the real rank, task_id = the representative's task).
Timeline as_measured(const Timeline& timeline, const Scenario& run);

// Runs a shell command; returns its exit status and what it wrote to stdout and stderr.
struct CommandResult {
  int exit_code;
  std::string out;
  std::string err;
};
CommandResult run_command(const std::string& command);
// The command prefix that starts `np` ranks of `executable` under mpirun: root may run OpenMPI only
// when it says so, and more ranks than this machine's cores need --oversubscribe. `env` (VAR=value
// ...) is set for every rank.
std::string mpirun_command(int np, const std::string& executable, const std::string& env = "");

// A directory of the running test's own, unique to this process (<system temp>/parallax-<Suite>.<Test>-
// XXXXXX), removed with everything in it at the end of the scope; kept, and its path printed, when
// the test failed, so the files can be inspected. Two test runs on one machine never share a file.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// Golden files, as SimGrid's .tesh files: `text` must equal the file `golden` byte for byte, or the
// test fails with the lines that differ. With PARALLAX_UPDATE_GOLDEN=1 in the environment the file
// is (re)written instead; review its diff in git before committing it.
void expect_golden(const std::filesystem::path& golden, const std::string& text);

}  // namespace parallax::testing
