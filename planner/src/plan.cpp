// plan(): estimate every surviving layout, simulate the best K in a pool of processes (or spread over
// the ranks of an mpirun job), re-rank by simulated step time, and explain the winner.
#include "parallax/planner/plan.h"

#include "parallax/model/rank_grid.h"

#include "parallax/exec/environment.h"
#include "parallax/model/formulas.h"
#include "parallax/model/job_graph.h"
#include "parallax/model/memory_model.h"
#include "parallax/model/scenario.h"
#include "parallax/sim/runner.h"
#include "parallax/sim/simulate.h"
#include "parallax/traces/io.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace parallax::planner {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string duration(double s) {
  char buf[32];
  if (s < 1e-3) {
    std::snprintf(buf, sizeof buf, "%.3g us", s * 1e6);
  } else if (s < 1) {
    std::snprintf(buf, sizeof buf, "%.3g ms", s * 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.3g s", s);
  }
  return buf;
}

// Any value, NaN and inf included, for messages about times that are not times.
std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g s", s);
  return buf;
}

std::string pct(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100 * fraction);
  return buf;
}

std::string gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / (1024.0 * 1024 * 1024));
  return buf;
}

// ---- the process pool ----

struct SimOutcome {
  bool ok = false;
  Report report;
  std::string error;
};

// Runs one simulation per scenario, at most `jobs` child processes at a time (sim::run_jobs), and calls
// `done` (in this thread) as each finishes. Each child builds the job graph and runs sim::simulate:
// SimGrid's engine is once per process, so every simulation gets a fresh process. Building the graph
// in the child also builds the graphs in parallel and keeps them out of this process.
void run_pool(const std::vector<const Scenario*>& work, int jobs,
              const std::function<void(std::size_t, SimOutcome&&)>& done,
              const std::function<bool()>& cancelled = {}) {
  const auto simulate_one = [&](std::size_t i) {
    const model::JobGraph graph = model::build_job_graph(*work[i]);
    return std::vector<std::string>{sim::simulate(graph).report.SerializeAsString()};
  };
  const auto finished = [&](std::size_t i, sim::JobOutcome&& result) {
    SimOutcome out;
    if (result.ok()) {
      out.ok = result.parts.size() == 1 && out.report.ParseFromString(result.parts[0]);
      if (!out.ok) out.error = "the simulation's report could not be read";
    } else {
      out.error = result.error;
      if (result.signal == SIGKILL) out.error += " (out of memory? try fewer --jobs)";
    }
    done(i, std::move(out));
  };
  // Cancelled: the runner has killed and reaped every child, so no process or pipe is left behind.
  if (!sim::run_jobs(work.size(), jobs, simulate_one, finished, cancelled)) throw Cancelled("the plan was cancelled");
}

// ---- scale-out over mpirun ranks ----
//
// `mpirun -np P parallax plan ...` cannot use MPI: libsimgrid, which the parallax binary links, exports
// its own MPI symbols (SMPI), so MPI_Init here would start SimGrid's MPI rather than the launcher's
// (see cli/exec.cpp). The ranks need no messages anyway: each reads its rank and the job size from
// the launcher's environment, all of them enumerate and estimate identically (deterministic: the same
// ranking on every rank), rank r simulates the entries i of the top K with i % P == r, and writes each
// result (a serialized Report) into a scratch directory that all ranks share. Rank 0 waits, bounded,
// for the others' files and prints the ranking. Ranks on several nodes need a scratch directory on a
// shared filesystem (--scratch).

// "part-<entry>-<fingerprint of the entry's scenario>.pb": a file left by another run with other inputs
// in the same directory never passes for this run's.
std::string part_key(std::size_t index, const Scenario& sc) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "-%016zx", std::hash<std::string>{}(traces::to_text(sc)));
  return std::to_string(index) + buf;
}

std::string part_name(const std::string& key, bool error) { return "part-" + key + (error ? ".err" : ".pb"); }

void write_part(const fs::path& dir, const std::string& key, const SimOutcome& outcome) {
  // Atomic (the one writer: a temporary file renamed into place): rank 0 sees the whole file or none.
  try {
    traces::write_file_atomically(dir / part_name(key, !outcome.ok),
                                  outcome.ok ? outcome.report.SerializeAsString() : outcome.error);
  } catch (const InputError& e) {
    throw InputError(std::string(e.what()) + " (is --scratch a writable directory shared by all ranks?)");
  }
}

std::optional<SimOutcome> read_part(const fs::path& dir, const std::string& key) {
  std::error_code ec;
  if (const fs::path file = dir / part_name(key, false); fs::is_regular_file(file, ec)) {
    SimOutcome out;
    out.ok = out.report.ParseFromString(traces::read_file(file, traces::kMaxBinaryFileBytes, "result file"));
    if (!out.ok) out.error = "unreadable result file " + file.string();
    return out;
  }
  if (const fs::path file = dir / part_name(key, true); fs::is_regular_file(file, ec)) {
    SimOutcome out;
    out.error = traces::read_file(file, traces::kMaxTextFileBytes, "result file");
    return out;
  }
  return std::nullopt;
}

// ---- rows ----

struct Shares {
  double compute = 0, exposed = 0, overlapped = 0, bubble = 0, idle = 0;
};

// Averages over the GPUs of the per-rank breakdown, in seconds.
Shares average_breakdown(const Report& r) {
  Shares s;
  double weight = 0;
  for (const auto& b : r.breakdown()) {
    const double w = std::max(1u, b.multiplicity());
    s.compute += w * b.compute_s();
    s.exposed += w * b.exposed_comm_s();
    s.overlapped += w * b.overlapped_comm_s();
    s.bubble += w * b.bubble_s();
    s.idle += w * b.idle_s();
    weight += w;
  }
  if (weight > 0) {
    s.compute /= weight;
    s.exposed /= weight;
    s.overlapped /= weight;
    s.bubble /= weight;
    s.idle /= weight;
  }
  return s;
}

// The critical path by op, grouped into what a person would name.
std::vector<std::pair<std::string, double>> path_categories(const Report& r) {
  static const std::map<std::string, std::string> group = {
      {"qkv", "GEMMs"},
      {"attn_scores", "GEMMs"},
      {"attn_context", "GEMMs"},
      {"attn_proj", "GEMMs"},
      {"fc1", "GEMMs"},
      {"fc2", "GEMMs"},
      {"logits", "GEMMs"},
      {"moe_router", "GEMMs"},
      {"expert_fc1", "GEMMs"},
      {"expert_fc2", "GEMMs"},
      {"shared_expert_fc1", "GEMMs"},
      {"shared_expert_fc2", "GEMMs"},
      {"mla_down_proj", "GEMMs"},
      {"mla_q_up_proj", "GEMMs"},
      {"mla_kv_up_proj", "GEMMs"},
      {"moe_dispatch", "expert all-to-all"},
      {"moe_combine", "expert all-to-all"},
      {"expert_tp_all_gather", "expert tp exchange"},
      {"expert_tp_reduce_scatter", "expert tp exchange"},
      {"tp_all_reduce", "TP communication"},
      {"sp_all_gather", "TP communication"},
      {"sp_reduce_scatter", "TP communication"},
      {"pp_send", "pipeline transfers"},
      {"pp_recv", "pipeline transfers"},
      {"dp_grad_all_reduce", "DP gradient reduction"},
      {"dp_grad_reduce_scatter", "DP gradient reduction"},
      {"dp_param_all_gather", "ZeRO parameter gathers"},
      {"embedding_grad_all_reduce", "embedding all-reduce"},
      {"optimizer_step", "optimizer"},
  };
  std::map<std::string, double> sums;
  for (const auto& [op, t] : r.critical_path().by_op()) {
    const auto it = group.find(op);
    sums[it == group.end() ? "memory-bound kernels" : it->second] += t;
  }
  if (r.critical_path().wait_s() > 0) sums["waiting"] += r.critical_path().wait_s();
  std::vector<std::pair<std::string, double>> out(sums.begin(), sums.end());
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  return out;
}

bool is_comm_category(const std::string& c) {
  return c == "TP communication" || c == "expert all-to-all" || c == "expert tp exchange" || c == "pipeline transfers" ||
         c == "DP gradient reduction" ||
         c == "ZeRO parameter gathers" || c == "embedding all-reduce";
}

// Which communication of this layout leaves a node.
std::string across_nodes(const std::string& category, const Scenario& sc) {
  const model::Dims d = model::dims(sc);
  const std::int64_t per_node = sc.cluster().gpus_per_node();
  if (category == "TP communication" && d.t > per_node) return " (tp " + std::to_string(d.t) + " spans nodes)";
  if (category == "expert all-to-all" || category == "expert tp exchange") {
    const CommGroup group = category == "expert all-to-all" ? GROUP_EP : GROUP_EXPERT_TP;
    const model::RankGrid grid = model::rank_grid(sc);
    if (!grid.has_group(group)) return "";
    const auto members = grid.members(group, 0);
    bool one_node = true;
    for (auto r : members) one_node &= r / per_node == members.front() / per_node;
    return std::string(group == GROUP_EP ? " (ep " : " (etp ") + std::to_string(members.size()) +
           (one_node ? " within a node)" : " spans nodes)");
  }
  if ((category == "DP gradient reduction" || category == "ZeRO parameter gathers") && d.t * d.d > per_node &&
      sc.cluster().num_nodes() > 1)
    return " (dp " + std::to_string(d.d) + " spans nodes)";
  if (category == "pipeline transfers" && d.t * d.d >= per_node && sc.cluster().num_nodes() > 1)
    return " (stages on different nodes)";
  return "";
}

std::string bottleneck_words(const PlanRow& row) {
  const Scenario& sc = row.scenario;
  const model::Dims d = model::dims(sc);
  const auto cats = row.simulated ? path_categories(row.report) : std::vector<std::pair<std::string, double>>{};
  double cp_total = 0;
  for (const auto& c : cats) cp_total += c.second;
  const double loss = std::max({row.bubble_fraction, row.exposed_comm_fraction, row.idle_fraction});
  std::ostringstream s;
  if (loss >= 0.10 && loss == row.bubble_fraction) {
    s << "pipeline bubble " << pct(row.bubble_fraction) << " of the step (pp " << d.p << ", " << d.m
      << " micro-batches" << (d.v > 1 ? ", v " + std::to_string(d.v) : "") << ")";
  } else if (loss >= 0.10 && loss == row.exposed_comm_fraction) {
    std::string what = "communication";
    for (const auto& c : cats)
      if (is_comm_category(c.first)) {
        what = c.first + across_nodes(c.first, sc);
        break;
      }
    s << "exposed " << what << ": " << pct(row.exposed_comm_fraction) << " of the step";
  } else if (loss >= 0.10) {
    s << "waiting " << pct(row.idle_fraction) << " of the step (stage imbalance, collective rendezvous)";
  } else if (cp_total > 0) {
    // Under 10% exposed, yet the critical path may run through communication that compute overlaps
    // (ZeRO-3's gathers pacing each layer): say so rather than call it compute-bound.
    if (is_comm_category(cats.front().first))
      s << "paced by overlapped communication (" << pct(row.exposed_comm_fraction) << " of the step exposed):";
    else
      s << "compute-bound:";
    int shown = 0;
    for (const auto& [name, t] : cats) {
      if (shown == 2 || t < 0.05 * cp_total) break;
      s << (shown ? ", " : " ") << name << " " << pct(t / cp_total);
      ++shown;
    }
    s << " of the critical path";
    if (row.recompute_fraction > 0.01) s << " (" << pct(row.recompute_fraction) << " of FLOPs recomputed)";
  } else {
    s << (row.estimate.bottleneck.empty() ? "compute" : row.estimate.bottleneck);
  }
  return s.str();
}

void fill_from_estimate(PlanRow& row) {
  const model::Dims d = model::dims(row.scenario);
  const StepEstimate& e = row.estimate;
  row.step_s = e.step_s;
  const bool full = row.scenario.layout().recompute() == Layout::FULL;
  const double hw = model::formulas::flops_per_iteration(d, full);
  const double mf = model::formulas::flops_per_iteration(d, false);
  const double peak = model::mfu_peak_flops(row.scenario.cluster().gpu(), row.scenario.model().precision());
  if (e.step_s > 0) {
    row.tflops_per_gpu = hw / (static_cast<double>(d.gpus) * e.step_s) / 1e12;
    row.mfu = mf / (static_cast<double>(d.gpus) * e.step_s * peak);
    row.compute_fraction = e.compute_s / e.step_s;
    row.bubble_fraction = e.bubble_s / e.step_s;
    row.exposed_comm_fraction = e.exposed_comm_s / e.step_s;
  }
  row.recompute_fraction = hw > 0 ? (hw - mf) / hw : 0;
  const model::MemoryEstimate memory = model::estimate_memory(row.scenario);
  row.memory_bytes = memory.peak().total();
  row.capacity_bytes = memory.capacity;
  row.headroom_bytes = row.capacity_bytes - row.memory_bytes;
  row.bottleneck = e.bottleneck;
}

void fill_from_report(PlanRow& row) {
  const Report& r = row.report;
  row.simulated = true;
  row.step_s = r.step_time_s();
  row.tflops_per_gpu = r.tflops_per_gpu();
  row.mfu = r.mfu();
  row.memory_bytes = r.peak_memory_bytes();
  row.capacity_bytes = r.memory_capacity_bytes();
  row.headroom_bytes = row.capacity_bytes - row.memory_bytes;
  const Shares shares = average_breakdown(r);
  if (row.step_s > 0) {
    row.compute_fraction = shares.compute / row.step_s;
    row.bubble_fraction = shares.bubble / row.step_s;
    row.exposed_comm_fraction = shares.exposed / row.step_s;
    row.idle_fraction = shares.idle / row.step_s;
  }
  row.recompute_fraction = r.hardware_flops() > 0 ? (r.hardware_flops() - r.model_flops()) / r.hardware_flops() : 0;
  row.bottleneck = bottleneck_words(row);
  // Estimate vs simulation.
  const StepEstimate& e = row.estimate;
  row.disagreement = row.step_s > 0 ? (row.step_s - e.step_s) / row.step_s : 0;
  if (std::fabs(row.disagreement) <= 0.05) return;
  // The busiest stage (most compute), the one the estimate describes.
  const RankBreakdown* busiest = nullptr;
  for (const auto& b : r.breakdown())
    if (!busiest || b.compute_s() > busiest->compute_s()) busiest = &b;
  if (!busiest) return;
  struct Term {
    const char* name;
    double simulated, estimated;
  };
  const Term terms[] = {{"compute", busiest->compute_s(), e.compute_s},
                        {"bubble", busiest->bubble_s(), e.bubble_s},
                        {"exposed communication", busiest->exposed_comm_s(), e.exposed_comm_s},
                        {"waiting", busiest->idle_s(), 0.0}};
  const Term* top = &terms[0];
  for (const auto& t : terms)
    if (std::fabs(t.simulated - t.estimated) > std::fabs(top->simulated - top->estimated)) top = &t;
  const double contention = r.contention_delay_s();
  const bool contended = contention > 0.01 * row.step_s;
  std::ostringstream s;
  s << "simulated " << (row.disagreement > 0 ? "+" : "") << pct(row.disagreement) << " vs the estimate: ";
  const std::string name = top->name;
  if (name == "exposed communication" || name == "waiting" || name == "bubble") {
    if (contended) {
      s << "contention: transfers sharing links lost " << duration(contention)
        << " (summed over transfers), which the estimate does not model; ";
    } else if (name == "exposed communication") {
      s << "overlap: ";
    }
    s << name << " " << duration(top->simulated) << " simulated vs " << duration(top->estimated) << " estimated";
    if (name == "exposed communication")
      s << " (" << duration(busiest->overlapped_comm_s()) << " overlapped with compute in the simulation)";
  } else {
    s << "compute " << duration(top->simulated) << " simulated vs " << duration(top->estimated) << " estimated";
  }
  s << " on the busiest stage";
  row.note = s.str();
}

std::string differences(const Scenario& sa, const Scenario& sb) {
  const Layout &a = sa.layout(), &b = sb.layout();
  std::vector<std::string> out;
  if (sa.model().precision() != sb.model().precision())
    out.push_back("precision " + Precision_Name(sa.model().precision()) + " vs " + Precision_Name(sb.model().precision()));
  auto cmp = [&](const char* name, long long x, long long y) {
    if (x != y) out.push_back(std::string(name) + " " + std::to_string(x) + " vs " + std::to_string(y));
  };
  cmp("tp", a.tp(), b.tp());
  cmp("pp", a.pp(), b.pp());
  cmp("dp", a.dp(), b.dp());
  const auto v = [](const Layout& l) { return l.schedule() == Layout::INTERLEAVED_1F1B ? l.virtual_stages() : 1; };
  cmp("v", v(a), v(b));
  const auto sched = [](const Layout& l) {
    return l.schedule() == Layout::GPIPE ? "GPipe" : l.schedule() == Layout::INTERLEAVED_1F1B ? "interleaved" : "1F1B";
  };
  if (a.schedule() != b.schedule()) out.push_back(std::string("schedule ") + sched(a) + " vs " + sched(b));
  cmp("micro-batch", a.micro_batch_size(), b.micro_batch_size());
  if ((a.sequence_parallel() && a.tp() > 1) != (b.sequence_parallel() && b.tp() > 1))
    out.push_back(std::string("sequence parallel ") + (a.sequence_parallel() ? "on" : "off") + " vs " +
                  (b.sequence_parallel() ? "on" : "off"));
  const auto rec = [](const Layout& l) {
    return l.recompute() == Layout::FULL ? "full" : l.recompute() == Layout::SELECTIVE ? "selective" : "none";
  };
  if (a.recompute() != b.recompute()) out.push_back(std::string("recompute ") + rec(a) + " vs " + rec(b));
  cmp("ZeRO", a.zero_stage(), b.zero_stage());
  cmp("cp", a.cp(), b.cp());
  if (a.zero_stage() >= 3 && b.zero_stage() >= 3 && a.reshard_after_forward() != b.reshard_after_forward())
    out.push_back(std::string("parameters ") + (a.reshard_after_forward() ? "resharded" : "kept gathered") + " vs " +
                  (b.reshard_after_forward() ? "resharded" : "kept gathered") + " after forward");
  if ((a.tp_comm_overlap() && a.tp() > 1) != (b.tp_comm_overlap() && b.tp() > 1))
    out.push_back(std::string("TP overlap ") + (a.tp_comm_overlap() ? "on" : "off") + " vs " + (b.tp_comm_overlap() ? "on" : "off"));
  if (a.selective_policy() != b.selective_policy() && a.recompute() == Layout::SELECTIVE && b.recompute() == Layout::SELECTIVE)
    out.push_back(std::string("selective policy ") + Layout::SelectivePolicy_Name(a.selective_policy()) + " vs " +
                  Layout::SelectivePolicy_Name(b.selective_policy()));
  {
    std::string pa, pb;
    for (int x : a.stage_layers()) pa += (pa.empty() ? "" : ",") + std::to_string(x);
    for (int x : b.stage_layers()) pb += (pb.empty() ? "" : ",") + std::to_string(x);
    if (pa != pb || a.embedding_in_pipeline_split() != b.embedding_in_pipeline_split() ||
        a.loss_in_pipeline_split() != b.loss_in_pipeline_split())
      out.push_back("the layer split");
  }
  std::string s;
  for (std::size_t i = 0; i < out.size(); ++i) s += (i ? ", " : "") + out[i];
  return s;
}

std::string explain(const PlanRow& w, const PlanRow& r) {
  std::ostringstream s;
  const double gain = r.step_s - w.step_s;
  const double rel = r.step_s > 0 ? gain / r.step_s : 0;
  const char* source = w.simulated && r.simulated ? "simulated" : "estimated";
  s << w.layout << " beats the runner-up " << r.layout << " by " << pct(rel) << " (" << duration(w.step_s) << " vs "
    << duration(r.step_s) << " per step, " << source << "; they differ in " << differences(w.scenario, r.scenario)
    << "). ";
  const model::Dims dw = model::dims(w.scenario), dr = model::dims(r.scenario);
  struct Term {
    std::string name;
    double winner, runner;  // seconds per step, averaged over GPUs
    std::string detail;
  };
  std::vector<Term> terms;
  // Each term's detail names the layout parameters behind it that differ.
  const auto pair = [](const char* name, auto a, auto b) -> std::string {
    std::ostringstream d;
    if (a != b) d << name << " " << a << " vs " << b;
    return d.str();
  };
  const auto joined = [](std::initializer_list<std::string> parts, const char* otherwise) {
    std::string out;
    for (const auto& p : parts)
      if (!p.empty()) out += (out.empty() ? "" : ", ") + p;
    return out.empty() ? std::string(otherwise) : out;
  };
  const auto sched = [](const Scenario& sc) {
    const auto k = sc.layout().schedule();
    return std::string(k == Layout::GPIPE ? "GPipe" : k == Layout::INTERLEAVED_1F1B ? "interleaved" : "1F1B");
  };
  const auto rec = [](const Scenario& sc) {
    const auto k = sc.layout().recompute();
    return std::string(k == Layout::FULL ? "full" : k == Layout::SELECTIVE ? "selective" : "none");
  };
  terms.push_back({"pipeline bubble", w.bubble_fraction * w.step_s, r.bubble_fraction * r.step_s,
                   joined({pair("pp", dw.p, dr.p), pair("micro-batches", dw.m, dr.m), pair("v", dw.v, dr.v),
                           pair("schedule", sched(w.scenario), sched(r.scenario))},
                          "the same pipeline")});
  terms.push_back({"exposed communication", w.exposed_comm_fraction * w.step_s, r.exposed_comm_fraction * r.step_s,
                   joined({pair("tp", dw.t, dr.t), pair("dp", dw.d, dr.d), pair("pp", dw.p, dr.p),
                           pair("ZeRO", w.scenario.layout().zero_stage(), r.scenario.layout().zero_stage()),
                           pair("sequence parallel", dw.sp ? "on" : "off", dr.sp ? "on" : "off"),
                           pair("micro-batch", dw.b, dr.b)},
                          "the same communication groups")});
  terms.push_back({"compute", w.compute_fraction * w.step_s, r.compute_fraction * r.step_s,
                   joined({pair("recompute", rec(w.scenario), rec(r.scenario)),
                           w.scenario.layout().recompute() != r.scenario.layout().recompute()
                               ? pair("recomputed FLOPs", pct(w.recompute_fraction), pct(r.recompute_fraction))
                               : std::string(),
                           pair("micro-batch", dw.b, dr.b), pair("tp", dw.t, dr.t),
                           pair("sequence parallel", dw.sp ? "on" : "off", dr.sp ? "on" : "off")},
                          "the same work per GPU")});
  terms.push_back({"waiting", w.idle_fraction * w.step_s, r.idle_fraction * r.step_s, "stage imbalance, rendezvous"});
  std::stable_sort(terms.begin(), terms.end(),
                   [](const Term& a, const Term& b) { return a.runner - a.winner > b.runner - b.winner; });
  if (std::fabs(rel) < 0.001) {
    s << "The two are equivalent here (the same step time to 0.1%): what differs does not change this step. Memory per GPU "
      << gib(w.memory_bytes) << " (" << gib(w.headroom_bytes) << " headroom) vs " << gib(r.memory_bytes) << " ("
      << gib(r.headroom_bytes) << ")" << (w.headroom_bytes < r.headroom_bytes ? ": the runner-up leaves more room." : ".");
    return s.str();
  }
  if (std::fabs(rel) < 0.01) s << "A near tie (within 1%). ";
  s << "Per GPU and step: ";
  int shown = 0;
  for (const auto& t : terms) {
    const double delta = t.runner - t.winner;
    if (shown > 0 && std::fabs(delta) < 0.005 * std::max(w.step_s, 1e-12)) continue;
    s << (shown ? "; " : "") << t.name << " " << duration(std::fabs(delta)) << (delta >= 0 ? " less" : " more") << " ("
      << pct(t.winner / std::max(w.step_s, 1e-12)) << " vs " << pct(t.runner / std::max(r.step_s, 1e-12))
      << " of the step; " << t.detail << ")";
    ++shown;
  }
  s << ". Memory per GPU " << gib(w.memory_bytes) << " (" << gib(w.headroom_bytes) << " headroom) vs "
    << gib(r.memory_bytes) << " (" << gib(r.headroom_bytes) << ")";
  if (w.headroom_bytes < r.headroom_bytes && std::fabs(rel) < 0.01) s << ": the runner-up leaves more room";
  s << ".";
  return s.str();
}

bool same_candidate(const Layout& a, const Layout& b) {
  const auto v = [](const Layout& l) { return l.schedule() == Layout::INTERLEAVED_1F1B ? l.virtual_stages() : 1; };
  return a.tp() == b.tp() && a.pp() == b.pp() && a.dp() == b.dp() && a.cp() == b.cp() && v(a) == v(b) &&
         a.schedule() == b.schedule() &&
         a.micro_batch_size() == b.micro_batch_size() &&
         (a.sequence_parallel() && a.tp() > 1) == (b.sequence_parallel() && b.tp() > 1) &&
         a.recompute() == b.recompute() && a.zero_stage() == b.zero_stage() &&
         (a.zero_stage() < 3 || a.reshard_after_forward()) == (b.zero_stage() < 3 || b.reshard_after_forward()) &&
         (a.tp_comm_overlap() && a.sequence_parallel() && a.tp() > 1) ==
             (b.tp_comm_overlap() && b.sequence_parallel() && b.tp() > 1) &&
         std::equal(a.stage_layers().begin(), a.stage_layers().end(), b.stage_layers().begin(), b.stage_layers().end()) &&
         a.first_stage_layers() == b.first_stage_layers() && a.last_stage_layers() == b.last_stage_layers() &&
         a.embedding_in_pipeline_split() == b.embedding_in_pipeline_split() &&
         a.loss_in_pipeline_split() == b.loss_in_pipeline_split() && std::max(1, a.ep()) == std::max(1, b.ep()) &&
         a.moe_a2a_overlap() == b.moe_a2a_overlap() && a.moe_dispatcher() == b.moe_dispatcher() &&
         std::max(1, a.etp()) == std::max(1, b.etp());
}

}  // namespace

Distribution detect_distribution(const std::string& scratch_dir) {
  const exec::Environment launched = exec::detect_environment();
  Distribution d;
  d.rank = launched.rank;
  d.size = std::max(1, launched.world_size);
  d.launcher = launched.launcher;
  if (d.rank < 0 || d.rank >= d.size)
    throw InputError("launcher rank " + std::to_string(d.rank) + " is outside 0.." + std::to_string(d.size - 1));
  std::string job = launched.job_id.empty() ? "ppid" + std::to_string(::getppid()) : launched.job_id;
  for (auto& c : job)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') c = '_';
  const fs::path root = scratch_dir.empty() ? fs::temp_directory_path() : fs::path(scratch_dir);
  d.scratch = root / ("parallax-plan-" + job);
  return d;
}

PlanResult plan(const PlanRequest& request, const PlanOptions& options) {
  if (options.top_k < 1) throw InputError("--top must be at least 1 (got " + std::to_string(options.top_k) + ")");
  if (options.jobs < 1) throw InputError("--jobs must be at least 1 (got " + std::to_string(options.jobs) + ")");
  const Distribution& dist = options.distribution;
  PlanResult result;
  result.jobs = options.jobs;
  result.ranks = dist.size;
  result.is_root = dist.rank == 0;

  std::vector<Scenario> layouts = enumerate_layouts(request, &result.pruning);

  // Estimate every survivor.
  const auto t_estimate = Clock::now();
  std::vector<StepEstimate> estimates(layouts.size());
  const std::size_t tick = std::max<std::size_t>(1, layouts.size() / 200);
  for (std::size_t i = 0; i < layouts.size(); ++i) {
    if (options.cancelled && i % 64 == 0 && options.cancelled()) throw Cancelled("the plan was cancelled");
    estimates[i] = estimate_step(layouts[i]);
    if (options.progress && (i % tick == 0 || i + 1 == layouts.size()))
      options.progress(Progress{Progress::Phase::Estimate, i + 1, layouts.size()});
  }
  // A step estimated at 0, NaN or inf is not a time to rank on ("inf days" would name a winner): it
  // comes from a cluster or model number out of range (a zero bandwidth or efficiency, NaN, inf).
  for (std::size_t i = 0; i < layouts.size(); ++i)
    if (!std::isfinite(estimates[i].step_s) || !(estimates[i].step_s > 0))
      throw InputError("the estimated step time of layout " + layout_summary(layouts[i]) + " is " +
                       seconds_text(estimates[i].step_s) +
                       ", not a positive finite time: a number of the cluster or model is out of range (a zero "
                       "bandwidth or efficiency, NaN or inf); check them with `parallax simulate` on the scenario");
  result.estimated = layouts.size();
  result.estimate_seconds = seconds_since(t_estimate);
  result.layouts_per_s =
      result.estimate_seconds > 0 ? static_cast<double>(layouts.size()) / result.estimate_seconds : 0;
  std::vector<std::size_t> order(layouts.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  // Equal estimates (e.g. GPipe and 1F1B without a pipeline): the one needing less memory first.
  std::vector<double> memory(layouts.size(), -1.0);
  const auto peak_memory = [&](std::size_t i) {
    if (memory[i] < 0) memory[i] = model::estimate_memory(layouts[i]).peak().total();
    return memory[i];
  };
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    if (estimates[a].step_s != estimates[b].step_s) return estimates[a].step_s < estimates[b].step_s;
    return peak_memory(a) < peak_memory(b);
  });
  result.ranking.reserve(order.size());
  for (std::size_t i : order) result.ranking.push_back({layout_summary(layouts[i]), estimates[i].step_s});

  // The work: the top K, then the reference layout when it is not among them.
  const std::size_t k = std::min<std::size_t>(static_cast<std::size_t>(options.top_k), order.size());
  std::vector<PlanRow> work(k);
  for (std::size_t i = 0; i < k; ++i) {
    work[i].scenario = layouts[order[i]];
    work[i].estimate = estimates[order[i]];
    work[i].estimate_rank = static_cast<int>(i + 1);
  }
  std::optional<std::size_t> reference_index;
  if (request.reference) {
    result.has_reference = true;
    result.reference_layout = layout_summary(*request.reference) + (request.model.precision() == FP8 ? " fp8" : "");
    for (std::size_t i = 0; i < order.size(); ++i)
      if (layouts[order[i]].model().precision() == request.model.precision() &&
          same_candidate(layouts[order[i]].layout(), *request.reference)) {
        result.reference_estimate_rank = static_cast<int>(i + 1);
        if (i < k) {
          reference_index = i;
        } else {
          PlanRow row;
          row.scenario = layouts[order[i]];
          row.estimate = estimates[order[i]];
          row.estimate_rank = static_cast<int>(i + 1);
          reference_index = work.size();
          work.push_back(std::move(row));
        }
        break;
      }
    if (!result.reference_estimate_rank) {
      const Layout& ref = *request.reference;
      if (static_cast<long long>(ref.tp()) * ref.pp() * ref.dp() == request.gpus) {
        result.reference_pruned = check_layout(request, ref);
        if (!result.reference_pruned) {
          // Valid and fits, but outside the searched space: simulate it anyway.
          result.reference_outside_space = true;
          PlanRow row;
          row.scenario = layout_scenario(request, ref);
          row.estimate = estimate_step(row.scenario);
          reference_index = work.size();
          work.push_back(std::move(row));
        }
      } else {
        result.reference_outside_space = true;  // another GPU count
      }
    }
  }
  for (auto& row : work) row.layout = layout_summary(row.scenario);

  // Simulate: this rank's share, in a pool of `jobs` processes.
  const auto t_simulate = Clock::now();
  std::vector<std::size_t> mine;
  for (std::size_t i = 0; i < work.size(); ++i)
    if (static_cast<int>(i % static_cast<std::size_t>(dist.size)) == dist.rank) mine.push_back(i);
  std::vector<const Scenario*> scenarios;
  for (std::size_t i : mine) scenarios.push_back(&work[i].scenario);
  std::vector<std::optional<SimOutcome>> outcomes(work.size());
  std::size_t finished = 0;
  double slowest = 0;
  if (dist.size > 1) {
    std::error_code ec;
    fs::create_directories(dist.scratch, ec);
    if (!fs::is_directory(dist.scratch))
      throw InputError("cannot create the scratch directory " + dist.scratch.string() + ": " + ec.message() +
                       " (give --scratch DIR, a directory all ranks can write; on several nodes a shared filesystem)");
  }
  // Announced before the first simulation ends, which may take minutes on a big job.
  if (options.progress) options.progress(Progress{Progress::Phase::Simulate, 0, work.size()});
  run_pool(scenarios, options.jobs, [&](std::size_t j, SimOutcome&& out) {
    const std::size_t i = mine[j];
    if (out.ok) slowest = std::max(slowest, out.report.wall_s());
    if (dist.size > 1 && dist.rank != 0) write_part(dist.scratch, part_key(i, work[i].scenario), out);
    outcomes[i] = std::move(out);
    ++finished;
    if (options.progress) options.progress(Progress{Progress::Phase::Simulate, finished, work.size()});
  }, options.cancelled);
  if (dist.size > 1 && dist.rank != 0) {
    result.simulate_seconds = seconds_since(t_simulate);
    for (std::size_t i : mine) {
      PlanRow& row = work[i];
      if (outcomes[i] && outcomes[i]->ok) {
        row.report = outcomes[i]->report;
        fill_from_report(row);
      }
      result.rows.push_back(row);
    }
    return result;
  }
  if (dist.size > 1) {
    // Rank 0 gathers the others' results.
    const double timeout =
        dist.gather_timeout_s > 0 ? dist.gather_timeout_s : std::max(300.0, 4 * slowest + 60);
    const auto t_wait = Clock::now();
    while (true) {
      std::vector<std::size_t> missing;
      for (std::size_t i = 0; i < work.size(); ++i) {
        if (outcomes[i]) continue;
        if (auto part = read_part(dist.scratch, part_key(i, work[i].scenario))) {
          outcomes[i] = std::move(*part);
          ++finished;
          if (options.progress) options.progress(Progress{Progress::Phase::Simulate, finished, work.size()});
        } else {
          missing.push_back(i);
        }
      }
      if (missing.empty()) break;
      if (seconds_since(t_wait) > timeout) {
        std::ostringstream s;
        s << "rank 0 waited " << static_cast<int>(timeout) << " s for the simulations of the other ranks and "
          << missing.size() << " are still missing (";
        for (std::size_t m = 0; m < missing.size() && m < 4; ++m)
          s << (m ? ", " : "") << (dist.scratch / part_name(part_key(missing[m], work[missing[m]].scenario), false)).string()
            << " from rank "
            << missing[m] % static_cast<std::size_t>(dist.size);
        s << (missing.size() > 4 ? ", ..." : "")
          << "). Did every rank start, and do all ranks see the same --scratch directory? Ranks on several nodes need "
             "--scratch on a shared filesystem; --gather-timeout S waits longer";
        throw InputError(s.str());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::error_code ec;
    fs::remove_all(dist.scratch, ec);
  }
  result.simulate_seconds = seconds_since(t_simulate);

  std::string first_failure;  // "layout: why", for the message when none could be simulated
  for (std::size_t i = 0; i < work.size(); ++i) {
    PlanRow& row = work[i];
    SimOutcome& out = *outcomes[i];
    // A report without a positive finite step time is a failed simulation: ranked on it, a layout at
    // "0 us" would win.
    if (out.ok && (!std::isfinite(out.report.step_time_s()) || !(out.report.step_time_s() > 0))) {
      out.ok = false;
      out.error = "it gave a step time of " + seconds_text(out.report.step_time_s());
    }
    if (out.ok && out.report.scenario_name() != row.scenario.name()) {
      row.note = "rank " + std::to_string(i % static_cast<std::size_t>(dist.size)) + " simulated \"" +
                 out.report.scenario_name() + "\" for this entry: the ranks ranked differently (same binary and inputs?)";
      fill_from_estimate(row);
    } else if (out.ok) {
      row.report = out.report;
      fill_from_report(row);
    } else {
      fill_from_estimate(row);
      row.note = "simulation failed: " + out.error + " (estimated numbers shown)";
    }
    if (!row.simulated && first_failure.empty())
      first_failure = row.layout + ": " + (out.ok ? row.note : out.error);
  }
  // Estimates alone are no plan: the simulations check them, and when none ran there is no winner.
  if (std::none_of(work.begin(), work.end(), [](const PlanRow& r) { return r.simulated; }))
    throw InputError("no layout could be simulated: all " + std::to_string(work.size()) +
                     " simulations failed (" + first_failure +
                     "), so there is no simulated step time to rank on; run `parallax simulate` on the scenario to "
                     "see why (usually a cluster or model number out of range)");
  // The reference stays among the rows even when the estimate ranked it below the top K: simulated,
  // it may well beat them.
  if (reference_index) work[*reference_index].is_reference = true;
  // Re-rank by simulated step time; layouts whose simulation failed go last, by estimate. Step times
  // equal to 0.1% (the same bucket of a 0.1% log grid) are a tie, and the one needing less memory wins.
  const auto bucket = [](double step) { return std::floor(std::log(std::max(step, 1e-12)) / std::log1p(1e-3)); };
  std::stable_sort(work.begin(), work.end(), [&](const PlanRow& a, const PlanRow& b) {
    if (a.simulated != b.simulated) return a.simulated;
    const double ka = bucket(a.step_s), kb = bucket(b.step_s);
    if (ka != kb) return ka < kb;
    return a.memory_bytes < b.memory_bytes;
  });
  result.rows = std::move(work);
  for (const auto& row : result.rows)
    if (row.is_reference) result.reference = row;
  if (result.rows.size() >= 2) {
    result.explanation = explain(result.rows[0], result.rows[1]);
  } else if (result.rows.size() == 1) {
    result.explanation = result.rows[0].layout + " is the only layout that satisfies the constraints and fits.";
    if (result.pruning.survivors > 1)
      result.explanation = result.rows[0].layout + " is the best estimated layout, the only one simulated (--top 1).";
  }
  return result;
}

}  // namespace parallax::planner
