#include "parallax/analysis/calibrate.h"

#include "parallax/analysis/compare.h"
#include "parallax/analysis/timeline_analysis.h"
#include "parallax/model/cost_model.h"
#include "parallax/model/job_graph.h"
#include "parallax/model/rank_grid.h"
#include "parallax/model/scenario.h"
#include "parallax/netmodel/collective_cost.h"
#include "parallax/traces/io.h"
#include "statistics.h"

#include <google/protobuf/text_format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace parallax::analysis {

// Calibration fits the cost model's constants: it speaks the model's vocabulary throughout.
using namespace model;
// The job graph's types, not the plan file's messages of the same names.
using model::JobGraph;
using model::Task;

namespace {

std::string num(double v, int digits = 4) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

double round_to(double v, double step) { return std::round(v / step) * step; }

// Solves the symmetric positive definite system a x = b (Cholesky, in place); false if not SPD.
bool solve_spd(std::vector<double>& a, std::vector<double>& b, int n) {
  auto A = [&](int i, int j) -> double& { return a[static_cast<std::size_t>(i) * static_cast<std::size_t>(n) + static_cast<std::size_t>(j)]; };
  for (int j = 0; j < n; ++j) {
    double d = A(j, j);
    for (int k = 0; k < j; ++k) d -= A(j, k) * A(j, k);
    if (!(d > 0)) return false;
    A(j, j) = std::sqrt(d);
    for (int i = j + 1; i < n; ++i) {
      double s = A(i, j);
      for (int k = 0; k < j; ++k) s -= A(i, k) * A(j, k);
      A(i, j) = s / A(j, j);
    }
  }
  for (int i = 0; i < n; ++i) {  // L y = b
    double s = b[static_cast<std::size_t>(i)];
    for (int k = 0; k < i; ++k) s -= A(i, k) * b[static_cast<std::size_t>(k)];
    b[static_cast<std::size_t>(i)] = s / A(i, i);
  }
  for (int i = n - 1; i >= 0; --i) {  // L^T x = y
    double s = b[static_cast<std::size_t>(i)];
    for (int k = i + 1; k < n; ++k) s -= A(k, i) * b[static_cast<std::size_t>(k)];
    b[static_cast<std::size_t>(i)] = s / A(i, i);
  }
  return true;
}

// One communication sample: t = extra + steps * latency + wire_bytes / bandwidth.
struct NetSample {
  double steps, wire_bytes, t, extra;
  bool send;
};

struct NetFit {
  bool fitted_bandwidth = false, fitted_latency = false;
  double latency = 0, inv_bandwidth = 0;  // s, s/byte
  std::uint64_t used = 0;
  std::string how;
};

NetFit fit_network(const std::vector<NetSample>& samples, double prior_latency, int min_samples) {
  NetFit fit;
  fit.latency = prior_latency;
  if (static_cast<int>(samples.size()) < min_samples) return fit;
  // Latency and bandwidth together when the bytes per step vary enough to separate them.
  // and the latency is a visible part of some of them.
  double lo = std::numeric_limits<double>::infinity(), hi = 0, latency_share = 0;
  for (const auto& s : samples) {
    lo = std::min(lo, s.wire_bytes / s.steps);
    hi = std::max(hi, s.wire_bytes / s.steps);
    latency_share = std::max(latency_share, (s.extra + prior_latency * s.steps) / s.t);
  }
  const bool separable = hi >= 4 * lo && latency_share >= 0.2;
  bool ls_failed = false;
  if (static_cast<int>(samples.size()) >= 2 * min_samples && separable) {
    std::vector<bool> keep(samples.size(), true);
    double alpha = -1, beta = -1;
    std::uint64_t used = 0;
    for (int round = 0; round < 2; ++round) {
      // Relative least squares: minimise sum ((t - extra - a L - b X) / t)^2.
      double sll = 0, slx = 0, sxx = 0, sly = 0, sxy = 0;
      used = 0;
      for (std::size_t i = 0; i < samples.size(); ++i) {
        if (!keep[i]) continue;
        const auto& s = samples[i];
        const double w = 1.0 / (s.t * s.t);
        const double y = s.t - s.extra;
        sll += w * s.steps * s.steps;
        slx += w * s.steps * s.wire_bytes;
        sxx += w * s.wire_bytes * s.wire_bytes;
        sly += w * s.steps * y;
        sxy += w * s.wire_bytes * y;
        ++used;
      }
      const double det = sll * sxx - slx * slx;
      if (!(std::fabs(det) > 1e-300)) break;
      alpha = (sly * sxx - sxy * slx) / det;
      beta = (sll * sxy - slx * sly) / det;
      if (round == 1) break;
      // Drop outliers (transfers slowed by contention or waiting for peers) and refit.
      std::vector<double> res;
      for (const auto& s : samples) res.push_back(std::fabs(s.t - s.extra - alpha * s.steps - beta * s.wire_bytes) / s.t);
      const double cut = std::max(0.05, 3 * median(res));
      for (std::size_t i = 0; i < samples.size(); ++i) keep[i] = res[i] <= cut;
    }
    ls_failed = true;
    if (alpha >= 0 && beta > 0 && static_cast<int>(used) >= min_samples) {
      fit.fitted_bandwidth = fit.fitted_latency = true;
      fit.latency = alpha;
      fit.inv_bandwidth = beta;
      fit.used = used;
      fit.how = "least squares of duration = steps * latency + bytes / bandwidth";
      return fit;
    }
  }
  // Bandwidth alone, the latency kept: over transfers long enough for the latency to be a minor part,
  // the ratio of their summed (duration - latency) to their summed bytes, so that the model gives
  // their measured total time (sends and collectives can disagree: the big transfers weigh most).
  double time_sum = 0, bytes_sum = 0, send_time = 0, send_bytes = 0;
  std::uint64_t used = 0, used_sends = 0;
  for (const auto& s : samples) {
    const double lat = s.extra + prior_latency * s.steps;
    if (!(lat < 0.5 * s.t)) continue;
    time_sum += s.t - lat;
    bytes_sum += s.wire_bytes;
    ++used;
    if (s.send) {
      send_time += s.t - lat;
      send_bytes += s.wire_bytes;
      ++used_sends;
    }
  }
  if (static_cast<int>(used) < min_samples || !(time_sum > 0)) return fit;
  fit.fitted_bandwidth = true;
  fit.inv_bandwidth = time_sum / bytes_sum;
  fit.used = used;
  fit.how = !separable ? (hi >= 4 * lo ? "bandwidth alone, latency kept (every transfer is bandwidth-bound)"
                                        : "bandwidth alone, latency kept (transfer sizes too uniform to separate it)")
           : ls_failed ? "bandwidth alone, latency kept (least squares gave no positive latency and bandwidth)"
                       : "bandwidth alone, latency kept (too few transfers to fit it)";
  if (used_sends > 0 && used_sends < used)
    fit.how += "; sends alone " + num(send_bytes / send_time / 1e9) + " GB/s (" + std::to_string(used_sends) +
               "), ring collectives alone " + num((bytes_sum - send_bytes) / (time_sum - send_time) / 1e9) + " GB/s (" +
               std::to_string(used - used_sends) + ")";
  return fit;
}

// Doubles as people write them (0.6, not 0.59999999999999998).
class ShortDoubles : public google::protobuf::TextFormat::FastFieldValuePrinter {
 public:
  void PrintDouble(double v, google::protobuf::TextFormat::BaseTextGenerator* out) const override {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    out->PrintString(buf);
  }
};

struct KindAcc {
  std::uint64_t n = 0;
  double before = 0, after = 0, before_rel = 0, after_rel = 0;
  void add(double measured, double prior_model, double fitted_model) {
    ++n;
    before += std::fabs(prior_model - measured);
    after += std::fabs(fitted_model - measured);
    if (measured > 0) {
      before_rel += std::fabs(prior_model - measured) / measured;
      after_rel += std::fabs(fitted_model - measured) / measured;
    }
  }
};

}  // namespace

ClusterSpec apply_calibration(const ClusterSpec& base, const ClusterSpec& overlay) { return merge_cluster(base, overlay); }

Scenario calibrated_scenario(const Scenario& scenario, const ClusterSpec& overlay, const std::string& overlay_name) {
  Scenario sc = scenario;
  *sc.mutable_cluster() = apply_calibration(scenario.cluster(), overlay);
  // Resolved already: validate without looking presets up again.
  sc.mutable_cluster()->clear_preset();
  sc.mutable_cluster()->mutable_gpu()->clear_preset();
  const std::string name = "(calibrated scenario)";
  try {
    return parse_scenario(traces::to_text(sc), name, false, data_dir());
  } catch (const InputError& e) {
    // The message points into the generated text ("(calibrated scenario):19: cluster.gpu...: ..."): keep
    // the field and the problem.
    std::string what = e.what();
    if (what.rfind(name, 0) == 0) {
      const auto colon = what.find(": ", name.size());
      if (colon != std::string::npos) what = what.substr(colon + 2);
    }
    throw InputError(overlay_name + ": merged over the scenario's cluster, the calibration gives an invalid scenario: " +
                     what);
  }
}

ClusterSpec calibrate(const Timeline& measured, const ClusterSpec& prior, CalibrationSummary* summary_out,
                      const CalibrationOptions& options) {
  if (!measured.has_scenario())
    throw InputError("the measured timeline has no scenario: calibration rebuilds the job graph from it (the executor "
                     "embeds the scenario it ran; was the file written by another tool?)");
  if (measured.has_graph())
    throw InputError("the measured timeline is of a graph imported from an execution trace: its scenario has no "
                     "model, so there are no cost-model constants to fit (calibrate a run of a scenario)");
  validate_timeline(measured, "the measured timeline");
  const GpuSpec& gpu = prior.gpu();
  const Scenario& sc = measured.scenario();
  if (gpu.gemm_efficiency().efficiency_size() == 0 || !(peak_flops(gpu, sc.model().precision()) > 0) ||
      !(gpu.hbm_tb_per_s() > 0))
    throw InputError("the prior cluster has no GPU peak, HBM bandwidth or GEMM efficiency table to start from");
  CalibrationSummary summary;
  summary.scenario_name = sc.name();
  const JobGraph graph = graph_of(measured, "the measured timeline");
  // Fitting the wrong tasks' durations gives confident nonsense: the events must be this graph's.
  check_events_of_graph(graph, measured, "the measured timeline");
  const RankGrid grid = rank_grid(sc);
  const bool symmetric = graph.uses_symmetry();
  const auto n = static_cast<std::uint32_t>(graph.num_tasks());
  const auto world = grid.size();
  const CostModel prior_cost(gpu, sc.model().precision());
  const double peak = prior_cost.peak_flops(), bw = prior_cost.memory_bandwidth(), vpeak = prior_cost.vector_peak_flops();
  const int gpn = std::max(1, prior.gpus_per_node() > 0 ? prior.gpus_per_node() : sc.cluster().gpus_per_node());
  const netmodel::LinkParameters links(prior);
  const int nodes_per_leaf = links.nodes_per_leaf;
  const double switch_extra = links.upper_latency;
  auto node = [&](std::uint32_t r) { return static_cast<int>(r) / gpn; };

  // ---- samples ----
  std::vector<std::vector<double>> durations(n);
  std::vector<NetSample> intra, inter;
  // Collectives match by issue order on their communicator (as NCCL): the k-th collective of a group
  // type on every member is one collective.
  std::vector<std::uint32_t> sequence(n, 0);
  for (std::size_t i = 0; i < graph.ranks().size(); ++i) {
    std::map<int, std::uint32_t> issued;
    for (auto v : graph.rank_tasks(i))
      if (graph.tasks()[v].kind == COLLECTIVE) sequence[v] = issued[static_cast<int>(graph.tasks()[v].group)]++;
  }
  std::map<std::tuple<int, std::uint32_t, std::uint32_t>, std::pair<NetSample, bool>> collectives;
  struct PendingSend {
    NetSample sample;
    bool intra;
    std::uint32_t recv_task, recv_rank;
  };
  std::vector<PendingSend> sends;
  std::map<std::pair<std::uint32_t, std::uint32_t>, double> recv_durations;  // (task, real rank)
  std::uint64_t mixed = 0, tree_like = 0;
  for (const auto& e : measured.events()) {
    const std::uint32_t t = e.task_id();  // task ids and ranks were checked against the graph above
    const Task& task = graph.tasks()[t];
    const double d = e.end_s() - e.start_s();
    if (!(d > 0)) continue;
    ++summary.events;
    durations[t].push_back(d);
    const std::uint32_t r = e.rank();
    if (task.kind == SEND && task.peer >= 0) {
      const auto peer_rep = static_cast<std::uint32_t>(task.peer);
      const std::uint32_t peer = symmetric ? grid.with(r, model::GridDim::Pp, grid.stage(peer_rep)) : peer_rep;
      if (peer >= world || peer == r) continue;
      const bool same = node(r) == node(peer);
      const double extra = !same && node(r) / nodes_per_leaf != node(peer) / nodes_per_leaf ? switch_extra : 0;
      std::uint32_t recv = t;
      for (auto v : graph.successors(t))
        if (graph.tasks()[v].kind == RECV) recv = v;
      sends.push_back({{1.0, static_cast<double>(task.bytes), d, extra, true}, same, recv, peer});
    } else if (task.kind == RECV) {
      const auto [it, fresh] = recv_durations.try_emplace({t, r}, d);
      if (!fresh) it->second = std::min(it->second, d);
    } else if (task.kind == COLLECTIVE) {
      if (task.collective != ALL_REDUCE && task.collective != REDUCE_SCATTER && task.collective != ALL_GATHER) continue;
      const auto members = grid.members(task.group, r);
      const int m = static_cast<int>(members.size());
      if (m < 2) continue;
      std::map<int, int> per_node;
      for (auto x : members) ++per_node[node(x)];
      const bool in_node = per_node.size() == 1;
      const bool one_per_node = static_cast<int>(per_node.size()) == m;
      if (!in_node && !one_per_node) {
        ++mixed;
        continue;
      }
      const double S = static_cast<double>(task.bytes), nm = m;
      double steps = nm - 1, wire = (nm - 1) / nm * S;
      if (task.collective == ALL_REDUCE) {
        steps = 2 * (nm - 1);
        wire = 2 * (nm - 1) / nm * S;
        if (m >= 3) {
          // NCCL (and the simulator) run small all-reduces as a double binary tree: not a ring sample.
          const netmodel::GroupShape hops = netmodel::uniform_group_shape(
              m, in_node ? links.intra_bandwidth : links.nic_bandwidth, in_node ? links.intra_latency : links.nic_latency);
          if (netmodel::choose_algorithm(hops, ALL_REDUCE, S).algorithm == netmodel::CollectiveAlgorithm::Tree) {
            ++tree_like;
            continue;
          }
        }
      }
      double extra = 0;
      if (!in_node) {
        bool crosses = false;
        for (int i = 0; i < m; ++i)
          crosses |= node(members[static_cast<std::size_t>(i)]) / nodes_per_leaf !=
                     node(members[static_cast<std::size_t>((i + 1) % m)]) / nodes_per_leaf;
        extra = crosses ? steps * switch_extra : 0;
      }
      // One sample per collective: the duration of its fastest member, the last to arrive (the
      // others' include waiting for it).
      const auto key = std::make_tuple(static_cast<int>(task.group), members.front(), sequence[t]);
      const auto [it, fresh] = collectives.try_emplace(key, NetSample{steps, wire, d, extra, false}, in_node);
      if (!fresh) it->second.first.t = std::min(it->second.first.t, d);
    }
  }
  for (const auto& [key, sample] : collectives) (sample.second ? intra : inter).push_back(sample.first);
  // A transfer is timed on both sides: the send may wait for its receiver (a rendezvous), the recv
  // (posted ahead) for its sender; the shorter of the two is the transfer.
  for (auto& p : sends) {
    if (const auto it = recv_durations.find({p.recv_task, p.recv_rank}); it != recv_durations.end())
      p.sample.t = std::min(p.sample.t, it->second);
    (p.intra ? intra : inter).push_back(p.sample);
  }
  for (std::uint32_t t = 0; t < n; ++t)
    if (!durations[t].empty()) ++summary.tasks;
  if (mixed > 0)
    summary.notes.push_back(std::to_string(mixed) + " collective events on groups spanning nodes unevenly were not used "
                            "for the network fit");
  if (tree_like > 0)
    summary.notes.push_back(std::to_string(tree_like) + " all-reduce events small enough to run as a tree were not used "
                            "for the network fit");

  // Per task: the median over the ranks that ran it.
  std::vector<double> dur(n, 0);
  for (std::uint32_t t = 0; t < n; ++t)
    if (!durations[t].empty()) dur[t] = median(durations[t]);

  ClusterSpec overlay;
  GpuSpec* og = overlay.mutable_gpu();
  auto record = [&](const std::string& field, double before, double after, std::uint64_t samples, std::string detail) {
    summary.fitted.push_back({field, before, after, samples, std::move(detail)});
  };

  // ---- kernel overhead and memory-bound efficiency, to a fixed point ----
  double overhead = gpu.kernel_overhead_us() * 1e-6, mem_eff = gpu.memory_bound_efficiency();
  bool fit_overhead = false, fit_mem = false;
  std::uint64_t overhead_n = 0, mem_n = 0;
  for (int iter = 0; iter < 6; ++iter) {
    std::vector<double> residual, eff;
    for (std::uint32_t t = 0; t < n; ++t) {
      const Task& task = graph.tasks()[t];
      if (task.kind != MEMORY_BOUND || dur[t] <= 0) continue;
      const double d = dur[t], bytes = static_cast<double>(task.bytes);
      const double compute = task.flops / vpeak, memory = bytes / (bw * mem_eff);
      if (bytes / bw < 0.1 * d) residual.push_back(d - std::max(compute, memory));
      if (overhead < 0.5 * d && memory >= compute && bytes > 0) eff.push_back(bytes / (bw * (d - overhead)));
    }
    overhead_n = residual.size();
    mem_n = eff.size();
    fit_overhead = static_cast<int>(overhead_n) >= options.min_overhead_samples;
    if (fit_overhead) overhead = std::max(0.0, median(residual));
    fit_mem = static_cast<int>(mem_n) >= options.min_memory_samples;
    if (fit_mem) mem_eff = median(eff);
  }
  if (fit_overhead) {
    og->set_kernel_overhead_us(round_to(overhead * 1e6, 1e-3));
    record("gpu.kernel_overhead_us", gpu.kernel_overhead_us(), og->kernel_overhead_us(), overhead_n,
           "median of duration - modelled time over memory-bound tasks whose bytes / HBM bandwidth is under 10% of "
           "their duration");
  } else {
    overhead = gpu.kernel_overhead_us() * 1e-6;
    summary.skipped.push_back("gpu.kernel_overhead_us: " + std::to_string(overhead_n) +
                              " tiny memory-bound tasks (bytes / HBM bandwidth under 10% of the duration), need " +
                              std::to_string(options.min_overhead_samples));
  }
  if (fit_mem) {
    std::string detail = "median of bytes / (HBM bandwidth * (duration - overhead)) over memory-limited tasks";
    if (mem_eff > 1) {
      detail += "; the data says " + num(mem_eff) + " of the HBM spec (" + num(gpu.hbm_tb_per_s()) +
                " TB/s), capped at 1: check hbm_tb_per_s";
      mem_eff = 1;
    }
    og->set_memory_bound_efficiency(round_to(mem_eff, 1e-5));
    record("gpu.memory_bound_efficiency", gpu.memory_bound_efficiency(), og->memory_bound_efficiency(), mem_n, detail);
  } else {
    mem_eff = gpu.memory_bound_efficiency();
    summary.skipped.push_back("gpu.memory_bound_efficiency: " + std::to_string(mem_n) +
                              " memory-limited tasks with the kernel overhead under half their duration, need " +
                              std::to_string(options.min_memory_samples));
  }

  // ---- GEMM efficiency table ----
  const GemmEfficiencyTable& table = gpu.gemm_efficiency();
  const int points = table.efficiency_size();
  summary.gemm_support.assign(static_cast<std::size_t>(points), 0.0);
  {
    struct GemmSample {
      GemmTableWeights w;
      double e;
    };
    std::vector<GemmSample> samples;
    std::uint64_t gemms = 0, too_fast = 0;
    for (std::uint32_t t = 0; t < n; ++t) {
      const Task& task = graph.tasks()[t];
      if (task.kind != GEMM || dur[t] <= 0) continue;
      ++gemms;
      // As CostModel::duration (gemm_launch): the table holds the whole GPU's efficiency of one kernel.
      const GemmLaunch g = gemm_launch(task);
      const double d = dur[t], busy = d - g.kernels * overhead;
      if (busy < 0.5 * d) continue;                                                   // overhead-dominated
      if (static_cast<double>(task.bytes) / (bw * mem_eff) >= 0.9 * busy) continue;  // memory-limited
      const double e = task.flops / (peak * busy * g.sm_share);
      if (e > 1.5) {
        ++too_fast;
        continue;
      }
      samples.push_back({gemm_table_weights(table, g.m, task.gemm_n, task.gemm_k),
                         e});
    }
    if (too_fast > 0)
      summary.notes.push_back(std::to_string(too_fast) + " GEMMs ran faster than 1.5x the GPU's peak allows and were left "
                              "out: check the peak TFLOP/s");
    if (static_cast<int>(samples.size()) >= options.min_gemm_samples) {
      const auto P = static_cast<std::size_t>(points);
      std::vector<double> a(P * P, 0.0), b(P, 0.0);
      double prior_mean = 0;
      for (double p : table.efficiency()) prior_mean += p;
      prior_mean /= points;
      for (const auto& s : samples) {
        for (int i = 0; i < s.w.count; ++i) {
          const auto ii = static_cast<std::size_t>(s.w.index[static_cast<std::size_t>(i)]);
          const double wi = s.w.weight[static_cast<std::size_t>(i)];
          summary.gemm_support[ii] += wi;
          b[ii] += wi * s.e;
          for (int j = 0; j < s.w.count; ++j)
            a[ii * P + static_cast<std::size_t>(s.w.index[static_cast<std::size_t>(j)])] += wi * s.w.weight[static_cast<std::size_t>(j)];
        }
      }
      // The machine's overall ratio to the prior (median of achieved / prior-predicted efficiency):
      // grid points without data follow it instead of keeping a prior the data shows to be off
      // (a wrong peak, a slower clock), and points with data are pulled toward the scaled prior.
      std::vector<double> ratios;
      for (const auto& smp : samples) {
        double predicted = 0;
        for (int i = 0; i < smp.w.count; ++i)
          predicted += smp.w.weight[static_cast<std::size_t>(i)] *
                       table.efficiency(smp.w.index[static_cast<std::size_t>(i)]);
        if (predicted > 0) ratios.push_back(smp.e / predicted);
      }
      std::nth_element(ratios.begin(), ratios.begin() + static_cast<std::ptrdiff_t>(ratios.size() / 2), ratios.end());
      const double scale = ratios.empty() ? 1.0 : ratios[ratios.size() / 2];
      // Ridge toward the scaled prior, relative to each point's value: ridge * mean^2 * ((x - p) / p)^2.
      prior_mean *= scale;
      for (std::size_t j = 0; j < P; ++j) {
        const double p = std::clamp(table.efficiency(static_cast<int>(j)) * scale, 1e-3, 1.0);
        const double lambda = options.gemm_ridge * prior_mean * prior_mean / (p * p);
        a[j * P + j] += lambda;
        b[j] += lambda * p;
      }
      if (solve_spd(a, b, points)) {
        GemmEfficiencyTable* fitted = og->mutable_gemm_efficiency();
        *fitted->mutable_m() = table.m();
        *fitted->mutable_n() = table.n();
        *fitted->mutable_k() = table.k();
        std::uint64_t clamped = 0, supported = 0;
        double prior_sum = 0, fitted_sum = 0;
        for (std::size_t j = 0; j < P; ++j) {
          double x = b[j];
          if (x > 1 || x < 1e-3) {
            ++clamped;
            x = std::clamp(x, 1e-3, 1.0);
          }
          x = round_to(x, 1e-5);
          if (x <= 0) x = 1e-3;
          fitted->add_efficiency(x);
          if (summary.gemm_support[j] >= 0.5) {
            ++supported;
            prior_sum += table.efficiency(static_cast<int>(j));
            fitted_sum += x;
          }
        }
        fitted->set_source("parallax calibrate: refitted to " + std::to_string(samples.size()) + " measured GEMMs of " +
                           sc.name() + (measured.host().empty() ? "" : " on " + measured.host()) +
                           ", ridge toward the prior table scaled by " + num(scale, 3) + " (" + std::to_string(supported) + " of " +
                           std::to_string(points) + " grid points with data)");
        std::string detail = std::to_string(supported) + " of " + std::to_string(points) +
                             " grid points pinned by data (support >= 0.5), the rest scaled by the median "
                             "measured/prior ratio " + num(scale, 3) + "; mean fitted/prior " +
                             num(supported ? fitted_sum / prior_sum : 1.0, 3) +
                             "; regularised least squares on the interpolation weights";
        if (clamped) detail += "; " + std::to_string(clamped) + " values clamped to (0, 1]";
        record("gpu.gemm_efficiency", supported ? prior_sum / static_cast<double>(supported) : 0,
               supported ? fitted_sum / static_cast<double>(supported) : 0, samples.size(), detail);
      } else {
        summary.skipped.push_back("gpu.gemm_efficiency: the least-squares system could not be solved");
      }
    } else {
      summary.skipped.push_back("gpu.gemm_efficiency: " + std::to_string(samples.size()) + " of " + std::to_string(gemms) +
                                " GEMMs neither overhead- nor memory-dominated, need " +
                                std::to_string(options.min_gemm_samples));
    }
  }

  // ---- network ----
  const double intra_spec = prior.intra_node().gb_per_s() * 1e9;
  const double nic_spec = prior.nic_gbit_per_s() / 8 * 1e9;
  struct Domain {
    const char* name;
    std::vector<NetSample>* samples;
    double spec, prior_eff, prior_latency;
    const char* eff_field;
    const char* latency_field;
    const char* spec_field;
    NetFit fit;
    double eff = 0, latency = 0;
  };
  Domain domains[2] = {
      {"intra-node", &intra, intra_spec, prior.intra_node().bandwidth_efficiency(), prior.intra_node().latency_us() * 1e-6,
       "intra_node.bandwidth_efficiency", "intra_node.latency_us", "intra_node.gb_per_s", {}, 0, 0},
      {"inter-node", &inter, nic_spec, prior.nic_bandwidth_efficiency(), prior.nic_latency_us() * 1e-6,
       "nic_bandwidth_efficiency", "nic_latency_us", "nic_gbit_per_s", {}, 0, 0}};
  for (Domain& dom : domains) {
    dom.eff = dom.prior_eff;
    dom.latency = dom.prior_latency;
    if (!(dom.spec > 0)) {
      if (!dom.samples->empty())
        summary.skipped.push_back(std::string(dom.eff_field) + ": the prior has no " + dom.spec_field);
      continue;
    }
    dom.fit = fit_network(*dom.samples, dom.prior_latency, options.min_network_samples);
    if (!dom.fit.fitted_bandwidth) {
      summary.skipped.push_back(std::string(dom.eff_field) + ": " + std::to_string(dom.samples->size()) + " " +
                                dom.name + " transfers (sends, ring collectives), need " +
                                std::to_string(options.min_network_samples));
      continue;
    }
    const double bandwidth = 1.0 / dom.fit.inv_bandwidth;
    double eff = bandwidth / dom.spec;
    std::string detail = num(bandwidth / 1e9) + " GB/s: " + dom.fit.how;
    if (eff > 1) {
      detail += "; above the spec's " + num(dom.spec / 1e9) + " GB/s (" + dom.spec_field + "): capped at 1";
      summary.notes.push_back(std::string(dom.name) + " transfers reached " + num(bandwidth / 1e9) +
                              " GB/s, more than the spec's " + num(dom.spec / 1e9) + " GB/s; " + dom.eff_field +
                              " capped at 1 (check " + dom.spec_field + ")");
      eff = 1;
    }
    eff = round_to(eff, 1e-5);
    dom.eff = eff;
    if (dom.name == std::string("intra-node")) overlay.mutable_intra_node()->set_bandwidth_efficiency(eff);
    else overlay.set_nic_bandwidth_efficiency(eff);
    record(dom.eff_field, dom.prior_eff, eff, dom.fit.used, detail);
    if (dom.fit.fitted_latency) {
      const double us = round_to(dom.fit.latency * 1e6, 1e-4);
      dom.latency = us * 1e-6;
      if (dom.name == std::string("intra-node")) overlay.mutable_intra_node()->set_latency_us(us);
      else overlay.set_nic_latency_us(us);
      record(dom.latency_field, dom.prior_latency * 1e6, us, dom.fit.used, dom.fit.how);
    } else {
      summary.skipped.push_back(std::string(dom.latency_field) + ": " + dom.fit.how.substr(0, dom.fit.how.find(';')));
    }
  }

  // ---- errors before and after, under the models ----
  {
    const ClusterSpec after = apply_calibration(prior, overlay);
    const CostModel after_cost(after.gpu(), sc.model().precision());
    KindAcc gemm, mem;
    for (std::uint32_t t = 0; t < n; ++t) {
      const Task& task = graph.tasks()[t];
      if (!task.is_compute() || dur[t] <= 0) continue;
      (task.kind == GEMM ? gemm : mem).add(dur[t], prior_cost.duration(task), after_cost.duration(task));
    }
    auto push = [&](const std::string& kind, const KindAcc& acc) {
      if (acc.n == 0) return;
      const double k = static_cast<double>(acc.n);
      summary.errors.push_back({kind, acc.n, acc.before / k, acc.after / k, 100 * acc.before_rel / k, 100 * acc.after_rel / k});
    };
    push("gemm", gemm);
    push("memory-bound", mem);
    for (const Domain& dom : domains) {
      KindAcc send, coll;
      const double prior_inv = dom.spec > 0 ? 1.0 / (dom.spec * dom.prior_eff) : 0;
      const double after_inv = dom.spec > 0 ? 1.0 / (dom.spec * dom.eff) : 0;
      for (const auto& s : *dom.samples) {
        const double before = s.extra + dom.prior_latency * s.steps + s.wire_bytes * prior_inv;
        const double after_t = s.extra + dom.latency * s.steps + s.wire_bytes * after_inv;
        (s.send ? send : coll).add(s.t, before, after_t);
      }
      push(std::string("send ") + dom.name, send);
      push(std::string("collective ") + dom.name, coll);
    }
  }
  // The measured durations are finite (validate_timeline), so a non-finite number here comes from the
  // prior cluster (a zero bandwidth or efficiency, a NaN or inf the scenario check let through): refuse
  // rather than print "nan days" and write an overlay fitted to it.
  const auto finite_or_refuse = [&](double v, const std::string& what) {
    if (!std::isfinite(v))
      throw InputError("the prior cluster (the measured timeline's embedded scenario's, unless another was given) "
                       "gives " + num(v) + " for " + what +
                       ": one of its numbers is out of range (a zero bandwidth or efficiency, NaN or inf); fix the "
                       "cluster and run the measurement again");
  };
  for (const auto& e : summary.errors) {
    finite_or_refuse(e.mean_abs_error_before_s, "the modelled durations of the " + e.kind + " tasks");
    finite_or_refuse(e.mean_abs_error_after_s, "the calibrated durations of the " + e.kind + " tasks");
  }
  for (const auto& f : summary.fitted) {
    finite_or_refuse(f.prior, f.field + " before calibration");
    finite_or_refuse(f.fitted, "the fitted " + f.field);
  }
  if (overlay.gpu().ByteSizeLong() == 0) overlay.clear_gpu();
  if (summary_out) *summary_out = std::move(summary);
  return overlay;
}

namespace {

void list_fields(const google::protobuf::Message& m, const std::string& prefix, std::vector<std::string>& out) {
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  m.GetReflection()->ListFields(m, &fields);
  for (const auto* f : fields) {
    if (f->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE && !f->is_repeated() &&
        f->message_type()->name() != "GemmEfficiencyTable") {
      list_fields(m.GetReflection()->GetMessage(m, f), prefix + f->name() + ".", out);
    } else {
      out.push_back(prefix + f->name());
    }
  }
}

}  // namespace

std::vector<std::string> overlay_fields(const ClusterSpec& overlay) {
  std::vector<std::string> out;
  list_fields(overlay, "", out);
  return out;
}

std::string calibration_text(const ClusterSpec& overlay, const CalibrationSummary& s) {
  std::string out;
  out += std::string(kOverlayFirstLine) + "\n";
  out += "# The fields below are fitted to a measured timeline; apply with `parallax simulate SCENARIO --calibration\n";
  out += "# FILE` (merged over the cluster). The last line counts the fields: a file cut short is refused.\n";
  out += "# measured: " + s.scenario_name + ", " + std::to_string(s.events) + " events of " + std::to_string(s.tasks) +
         " tasks\n";
  if (s.fitted.empty()) out += "# fitted: nothing (the timeline does not support any parameter)\n";
  for (const auto& f : s.fitted)
    out += "# fitted " + f.field + ": " + num(f.prior) + " -> " + num(f.fitted) + " from " + std::to_string(f.samples) +
           " tasks (" + f.detail + ")\n";
  for (const auto& k : s.skipped) out += "# not fitted " + k + "\n";
  for (const auto& e : s.errors)
    out += "# mean abs error, " + e.kind + " (" + std::to_string(e.samples) + "): " + num(e.mean_abs_error_before_s * 1e6, 3) +
           " us (" + num(e.mean_abs_error_before_pct, 3) + "%) -> " + num(e.mean_abs_error_after_s * 1e6, 3) + " us (" +
           num(e.mean_abs_error_after_pct, 3) + "%)\n";
  for (const auto& note : s.notes) out += "# note: " + note + "\n";
  google::protobuf::TextFormat::Printer printer;
  printer.SetDefaultFieldValuePrinter(new ShortDoubles);  // the printer owns it
  printer.SetUseShortRepeatedPrimitives(true);
  // The GEMM table as in the GPU presets: one (m, n) pair per line, k along it.
  ClusterSpec rest = overlay;
  rest.mutable_gpu()->mutable_gemm_efficiency()->clear_efficiency();
  if (!overlay.has_gpu()) rest.clear_gpu();
  std::string fields;
  printer.PrintToString(rest, &fields);
  const GemmEfficiencyTable& t = overlay.gpu().gemm_efficiency();
  const auto k_line = fields.find("\n    k: [");
  if (t.efficiency_size() > 0 && k_line != std::string::npos) {
    std::string table = "    # One (m, n) pair per line; the values run along k.\n    efficiency: [\n";
    const int nk = std::max(1, t.k_size()), nn = std::max(1, t.n_size());
    for (int i = 0; i < t.efficiency_size(); i += nk) {
      table += "     ";
      for (int l = i; l < i + nk && l < t.efficiency_size(); ++l) {
        char buf[32];
        std::snprintf(buf, sizeof buf, " %.5f%s", t.efficiency(l), l + 1 < t.efficiency_size() ? "," : " ");
        table += buf;
      }
      const int pair = i / nk;
      if (pair / nn < t.m_size() && pair % nn < t.n_size())
        table += "  # m=" + std::to_string(t.m(pair / nn)) + " n=" + std::to_string(t.n(pair % nn));
      table += "\n";
    }
    table += "    ]\n";
    fields.insert(fields.find('\n', k_line + 1) + 1, table);
  }
  return out + fields + kOverlayLastLine + std::to_string(overlay_fields(overlay).size()) + " fields\n";
}

namespace {

// An overlay that `parallax calibrate` wrote starts with kOverlayFirstLine and ends with
// "# end of overlay: N fields". A file cut short at a block boundary still parses, with fewer
// fields: the last line is what tells. Hand-written overlays (no first line) are taken as they are.
void check_complete(const std::string& head, const std::string& tail, const ClusterSpec& overlay,
                    const std::string& name) {
  if (head.rfind(kOverlayFirstLine, 0) != 0) return;
  std::string last = tail;
  while (!last.empty() && (last.back() == '\n' || last.back() == '\r' || last.back() == ' ')) last.pop_back();
  last = last.substr(last.find_last_of('\n') == std::string::npos ? 0 : last.find_last_of('\n') + 1);
  const std::size_t fields = overlay_fields(overlay).size();
  const std::string expected = kOverlayLastLine + std::to_string(fields) + " fields";
  if (last.rfind(kOverlayLastLine, 0) != 0)
    throw InputError(name + ": incomplete calibration overlay: it starts as `parallax calibrate` writes one but lacks "
                            "its last line \"" + std::string(kOverlayLastLine) + "N fields\" (the file was cut short: "
                            "a full disk, an interrupted copy?); it would apply only " + std::to_string(fields) +
                            " fields. Write it again with `parallax calibrate MEASURED.pb -o " + name + "`");
  if (last != expected)
    throw InputError(name + ": incomplete calibration overlay: its last line says \"" + last + "\" but it has " +
                     std::to_string(fields) + " fields (edited or damaged?). Write it again with `parallax calibrate "
                     "MEASURED.pb -o " + name + "`, or delete its first line to use it as a hand-written overlay");
}

}  // namespace

ClusterSpec parse_calibration(const std::string& text, const std::string& name) {
  ClusterSpec overlay;
  traces::parse_text_or_json(text, name, false, overlay);
  check_complete(text.substr(0, 256), text.substr(text.size() > 256 ? text.size() - 256 : 0), overlay, name);
  return overlay;
}

ClusterSpec read_calibration(const std::filesystem::path& path) {
  // The one bounded reader: a directory, a device or an endless file is refused by name (a directory
  // once read as an empty overlay of no fields, applied without a word).
  const std::string text = traces::read_file(path, traces::kMaxTextFileBytes, "calibration overlay");
  if (path.extension() == ".json") {  // JSON has no comments to carry the marker
    ClusterSpec overlay;
    traces::parse_text_or_json(text, path.string(), true, overlay);
    return overlay;
  }
  return parse_calibration(text, path.string());
}

}  // namespace parallax::analysis
