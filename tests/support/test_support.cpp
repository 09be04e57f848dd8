#include "test_support.h"

#include "parallax/model/rank_grid.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace parallax::testing {

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
    const auto stage = grid.stage(e.rank());
    for (std::int64_t dp = 0; dp < grid.d; ++dp)
      for (std::int64_t tp = 0; tp < grid.t; ++tp) {
        auto* x = m.add_events();
        *x = e;
        x->set_rank(grid.rank(tp, dp, stage));
      }
  }
  return m;
}

CommandResult run_command(const std::string& command) {
  char err_template[] = "/tmp/parallax-test-stderr-XXXXXX";
  const int fd = ::mkstemp(err_template);
  if (fd < 0) throw std::runtime_error("mkstemp failed");
  ::close(fd);
  const std::string err_file = err_template;
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

}  // namespace parallax::testing
