#include "test_support.h"

#include "parallax/model/rank_grid.h"

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>

namespace parallax::testing {

std::string file_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string small_scenario_text(const std::string& layout_fields, int nodes, const std::string& extra) {
  // 8 layers, 8 heads: divisible by every tp, pp and pp*v used in the tests.
  return R"(
name: "small"
model { num_layers: 8 hidden_size: 512 num_heads: 8 seq_length: 256 vocab_size: 1024 precision: BF16 }
cluster { preset: "dgx-a100-80g" num_nodes: )" +
         std::to_string(nodes) + R"( }
layout { )" + layout_fields + R"( }
)" + extra;
}

std::vector<ValidationRow> validation_rows() {
  std::ifstream in(source_dir() / "validation" / "public.tsv");
  if (!in) throw std::runtime_error("validation/public.tsv missing");
  std::vector<ValidationRow> rows;
  std::string line;
  bool header = true;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (header) {  // column names
      header = false;
      continue;
    }
    std::istringstream f(line);
    std::vector<std::string> c;
    std::string cell;
    while (std::getline(f, cell, '\t')) c.push_back(cell);
    if (c.size() < 23) throw std::runtime_error("validation/public.tsv: short row: " + line);
    ValidationRow r;
    r.id = c[0];
    r.layers = std::stoi(c[1]);
    r.hidden = std::stoi(c[2]);
    r.heads = std::stoi(c[3]);
    r.seq = std::stoi(c[4]);
    r.vocab = std::stoi(c[5]);
    r.gbs = std::stoi(c[6]);
    r.mbs = std::stoi(c[7]);
    r.tp = std::stoi(c[8]);
    r.pp = std::stoi(c[9]);
    r.dp = std::stoi(c[10]);
    r.vpp = std::stoi(c[11]);
    r.sp = c[12] == "1";
    r.recompute = c[13];
    r.zero = std::stoi(c[14]);
    r.gpu = c[15];
    r.gpus_per_node = std::stoi(c[16]);
    r.precision = c[19];
    r.measured_iter_s = std::stod(c[20]);
    r.flops_convention = c[22];
    rows.push_back(r);
  }
  return rows;
}

std::string validation_scenario_text(const ValidationRow& r) {
  const int gpus = r.tp * r.pp * r.dp;
  std::ostringstream s;
  s << "name: \"" << r.id << "\"\n"
    << "model { num_layers: " << r.layers << " hidden_size: " << r.hidden << " num_heads: " << r.heads
    << " seq_length: " << r.seq << " vocab_size: " << r.vocab << " precision: " << (r.precision == "fp16" ? "FP16" : "BF16")
    << " }\n"
    << "cluster { preset: \"dgx-a100-80g\" num_nodes: " << gpus / r.gpus_per_node << " }\n"
    << "layout { dp: " << r.dp << " tp: " << r.tp << " pp: " << r.pp << " virtual_stages: " << r.vpp
    << " schedule: " << (r.vpp > 1 ? "INTERLEAVED_1F1B" : "ONE_F_ONE_B") << " sequence_parallel: " << (r.sp ? "true" : "false")
    << " micro_batch_size: " << r.mbs << " global_batch_size: " << r.gbs << " recompute: "
    << (r.recompute == "full" ? "FULL" : r.recompute == "selective" ? "SELECTIVE" : "NO_RECOMPUTE")
    << " zero_stage: " << r.zero << " }\n";
  return s.str();
}

Timeline as_measured(const Timeline& timeline, const Scenario& run) {
  Timeline m = timeline;
  m.clear_events();
  m.clear_ranks();
  m.set_source(Timeline::MEASURED);
  m.set_backend("synthetic");
  *m.mutable_scenario() = run;
  const model::RankGrid grid = model::rank_grid(run);
  const bool symmetric = run.options().use_symmetry();
  for (std::uint32_t r = 0; r < grid.size(); ++r) {
    auto* tr = m.add_ranks();
    tr->set_rank(r);
    tr->set_multiplicity(1);
    tr->set_label("rank " + std::to_string(r));
  }
  for (const auto& e : timeline.events()) {
    if (!symmetric) {
      *m.add_events() = e;
      continue;
    }
    for (std::uint32_t r : grid.stage_ranks(grid.stage(e.rank()))) {
      auto* x = m.add_events();
      *x = e;
      x->set_rank(r);
    }
  }
  return m;
}

CommandResult run_command(const std::string& command) {
  std::string err_file = (std::filesystem::temp_directory_path() / "parallax-test-stderr-XXXXXX").string();
  const int fd = ::mkstemp(err_file.data());
  if (fd < 0) throw std::runtime_error("mkstemp failed");
  ::close(fd);
  FILE* pipe = ::popen((command + " 2>" + err_file).c_str(), "r");
  if (!pipe) throw std::runtime_error("popen failed: " + command);
  std::string out;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
  const int status = ::pclose(pipe);
  std::ifstream e(err_file);
  std::stringstream err;
  err << e.rdbuf();
  std::remove(err_file.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out, err.str()};
}

TempDir::TempDir() {
  std::string name = "parallax";
  if (const auto* test = ::testing::UnitTest::GetInstance()->current_test_info())
    name += std::string("-") + test->test_suite_name() + "." + test->name();
  // Parameterised tests are named Prefix/Suite.Test/param: no directory separators in the name.
  std::replace(name.begin(), name.end(), '/', '_');
  std::string pattern = (std::filesystem::temp_directory_path() / (name + "-XXXXXX")).string();
  if (!::mkdtemp(pattern.data()))
    throw std::runtime_error("cannot create a temporary directory like " + pattern);
  path_ = pattern;
}

TempDir::~TempDir() {
  if (::testing::Test::HasFailure()) {
    std::cerr << "the failed test's files are kept in " << path_.string() << "\n";
    return;
  }
  std::error_code ignored;  // a test's leftovers must not turn a pass into a crash
  std::filesystem::remove_all(path_, ignored);
}

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The lines that differ, for the failure message: the common head and tail are dropped; what is
// left is shown line by line when both sides kept the same number of lines (numbers that changed
// in place, the usual case), else as the removed and the added block. At most kShown lines each.
std::string line_diff(const std::string& expected, const std::string& got) {
  constexpr std::size_t kShown = 40;
  const auto want = lines_of(expected), have = lines_of(got);
  std::size_t head = 0;
  while (head < want.size() && head < have.size() && want[head] == have[head]) ++head;
  std::size_t tail = 0;
  while (tail < want.size() - head && tail < have.size() - head &&
         want[want.size() - 1 - tail] == have[have.size() - 1 - tail])
    ++tail;
  std::ostringstream out;
  const std::size_t removed = want.size() - head - tail, added = have.size() - head - tail;
  if (removed == 0 && added == 0) {
    out << "  (the lines are equal: the files differ in a line ending or the final newline)\n";
    return out.str();
  }
  if (removed == added) {
    std::size_t shown = 0;
    for (std::size_t i = head; i < head + removed && shown < kShown; ++i) {
      if (want[i] == have[i]) continue;
      out << "  line " << i + 1 << ":\n  - " << want[i] << "\n  + " << have[i] << "\n";
      ++shown;
    }
    return out.str();
  }
  out << "  from line " << head + 1 << ", " << removed << " golden line(s) became " << added
      << " line(s):\n";
  for (std::size_t i = 0; i < std::min(removed, kShown); ++i) out << "  - " << want[head + i] << "\n";
  if (removed > kShown) out << "  - ... (" << removed - kShown << " more)\n";
  for (std::size_t i = 0; i < std::min(added, kShown); ++i) out << "  + " << have[head + i] << "\n";
  if (added > kShown) out << "  + ... (" << added - kShown << " more)\n";
  return out.str();
}

}  // namespace

void expect_golden(const std::filesystem::path& golden, const std::string& text) {
  const char* update = std::getenv("PARALLAX_UPDATE_GOLDEN");
  if (update && *update && std::string(update) != "0") {
    std::filesystem::create_directories(golden.parent_path());
    std::ofstream(golden, std::ios::binary) << text;
    std::cout << "golden file updated: " << golden.string() << "\n";
    return;
  }
  std::ifstream in(golden, std::ios::binary);
  if (!in) {
    ADD_FAILURE() << "missing golden file " << golden.string()
                  << " (write it with PARALLAX_UPDATE_GOLDEN=1 and review it)";
    return;
  }
  std::stringstream expected;
  expected << in.rdbuf();
  if (expected.str() == text) return;
  ADD_FAILURE() << "output differs from the golden file " << golden.string() << " (- golden, + now):\n"
                << line_diff(expected.str(), text)
                << "If the change is intended, rerun with PARALLAX_UPDATE_GOLDEN=1 and review the "
                   "diff in git.";
}

std::string mpirun_command(int np, const std::string& executable, const std::string& env) {
  return "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 " + env +
         " mpirun --oversubscribe -np " + std::to_string(np) + " " + executable + " ";
}

}  // namespace parallax::testing
