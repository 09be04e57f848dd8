#include "report_json.h"

#include <algorithm>
#include <vector>

namespace parallax::cli {

void write_critical_path_fields(traces::JsonWriter& w, const CriticalPath& cp) {
  w.field("tasks", cp.tasks()).field("compute_s", cp.compute_s()).field("comm_s", cp.comm_s()).field("wait_s", cp.wait_s());
  w.key("by_op").begin_object();
  std::vector<std::pair<std::string, double>> ops(cp.by_op().begin(), cp.by_op().end());
  std::sort(ops.begin(), ops.end());
  for (const auto& [op, t] : ops) w.field(op, t);
  w.end_object();
  w.key("segments").begin_array();
  for (const auto& s : cp.segments()) {
    w.begin_object();
    w.field("rank", s.rank()).field("start_s", s.start_s()).field("end_s", s.end_s()).field("tasks", s.tasks());
    w.field("compute_s", s.compute_s()).field("comm_s", s.comm_s());
    w.field("first_task", s.first_task()).field("last_task", s.last_task());
    w.end_object();
  }
  w.end_array();
}

void write_report(traces::JsonWriter& w, const Report& r) {
  w.begin_object();
  w.field("scenario", r.scenario_name());
  w.field("gpus", r.gpus());
  w.field("step_time_s", r.step_time_s());
  w.field("tflops_per_gpu", r.tflops_per_gpu());
  w.field("mfu", r.mfu());
  w.field("hfu", r.hfu());
  w.field("tokens_per_s", r.tokens_per_s());
  if (r.has_time_to_train_s()) {
    w.field("token_budget", r.token_budget());
    w.field("time_to_train_s", r.time_to_train_s());
  }
  w.field("parameters", r.parameters());
  w.field("model_flops", r.model_flops());
  w.field("hardware_flops", r.hardware_flops());
  w.field("microbatches", r.microbatches());
  w.field("bubble_fraction", r.bubble_fraction());
  w.key("breakdown").begin_array();
  for (const auto& b : r.breakdown()) {
    w.begin_object();
    w.field("rank", b.rank()).field("pp_stage", b.pp_stage()).field("multiplicity", b.multiplicity());
    w.field("compute_s", b.compute_s()).field("exposed_comm_s", b.exposed_comm_s());
    w.field("overlapped_comm_s", b.overlapped_comm_s()).field("bubble_s", b.bubble_s()).field("idle_s", b.idle_s());
    w.end_object();
  }
  w.end_array();
  w.key("critical_path").begin_object();
  write_critical_path_fields(w, r.critical_path());
  w.end_object();
  w.key("links").begin_array();
  for (const auto& l : r.links()) {
    w.begin_object();
    w.field("name", l.name()).field("bandwidth_bytes_per_s", l.bandwidth_bytes_per_s());
    w.field("bytes", l.bytes()).field("utilisation", l.utilisation());
    w.end_object();
  }
  w.end_array();
  w.field("contention_delay_s", r.contention_delay_s());
  w.field("peak_memory_bytes", r.peak_memory_bytes());
  w.field("memory_capacity_bytes", r.memory_capacity_bytes());
  w.field("fits", r.fits());
  w.key("collective_algorithms").begin_object();
  std::vector<std::pair<std::string, std::uint64_t>> algos(r.collective_algorithms().begin(), r.collective_algorithms().end());
  std::sort(algos.begin(), algos.end());
  for (const auto& [name, n] : algos) w.field(name, n);
  w.end_object();
  w.key("notes").begin_array();
  for (const auto& n : r.notes()) w.value(n);
  w.end_array();
  w.key("simulation").begin_object();
  w.field("wall_s", r.wall_s()).field("flows", r.flows()).field("activities", r.activities());
  w.field("tasks", r.tasks()).field("edges", r.edges());
  w.end_object();
  w.end_object();
}

std::string report_json(const Report& r) {
  traces::JsonWriter w;
  write_report(w, r);
  return w.str();
}

}  // namespace parallax::cli
