#include "parallax/model/schedule.h"

#include "parallax/model/scenario.h"
#include "parallax/model/stage_partition.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

namespace parallax::model {

namespace {

// One stage's order as a function of the step index, so that callers which need only a bounded
// prefix of it (the peak of what the stage holds) never build the whole list.
struct StageOrder {
  Layout::Schedule schedule;
  std::int64_t p, v, total, warmup, remaining;

  StageOrder(Layout::Schedule s, int p_in, int v_in, int m, int stage, int extra_warmup = 0)
      : schedule(s), p(p_in), v(v_in) {
    if (schedule != Layout::INTERLEAVED_1F1B) v = 1;
    total = static_cast<std::int64_t>(m) * v;
    if (schedule == Layout::GPIPE) {
      // All forwards, then all backwards.
      warmup = total;
    } else {
      // megatron/core/pipeline_parallel/schedules.py, forward_backward_pipelining_with_interleaving
      // (and the non-interleaved 1F1B as its v = 1 case).
      warmup = v == 1 ? p - stage - 1 : (p - stage - 1) * 2 + (v - 1) * p;
      if (v > 1 && m == p) warmup = total;  // Megatron runs all forwards first in that case
      warmup = std::min(warmup + extra_warmup, total);
    }
    remaining = total - warmup;
  }

  std::int64_t size() const { return 2 * total; }

  // The k-th forward (or backward) of the stage.
  PipelineStep nth(std::int64_t k, bool forward) const {
    if (schedule == Layout::GPIPE) {
      // The last micro-batch to finish its forward is the first whose gradient arrives
      // (torchgpipe's order).
      return {static_cast<std::int32_t>(forward ? k : total - 1 - k), 0, forward};
    }
    if (v == 1) return {static_cast<std::int32_t>(k), 0, forward};  // micro-batches in order
    const std::int64_t in_group = k % (p * v);
    std::int64_t chunk = in_group / p;
    if (!forward) chunk = v - 1 - chunk;
    const std::int64_t microbatch = (k / (p * v)) * p + k % p;
    return {static_cast<std::int32_t>(microbatch), static_cast<std::int32_t>(chunk), forward};
  }

  // Warm-up forwards, steady 1F1B pairs, cool-down backwards.
  PipelineStep operator[](std::int64_t i) const {
    if (i < warmup) return nth(i, true);
    const std::int64_t j = i - warmup;
    if (j < 2 * remaining) return j % 2 == 0 ? nth(warmup + j / 2, true) : nth(j / 2, false);
    return nth(remaining + (j - 2 * remaining), false);
  }
};

}  // namespace

std::vector<PipelineStep> stage_order(Layout::Schedule schedule, int p, int v, int m, int stage, int extra_warmup) {
  const StageOrder order(schedule, p, v, m, stage, extra_warmup);
  std::vector<PipelineStep> steps;
  steps.reserve(static_cast<std::size_t>(order.size()));
  for (std::int64_t i = 0; i < order.size(); ++i) steps.push_back(order[i]);
  return steps;
}

HeldPeak peak_held(Layout::Schedule schedule, int p, int v, int m, int stage,
                   const std::vector<double>& chunk_weight) {
  const StageOrder order(schedule, p, v, m, stage);
  HeldPeak peak;
  if (order.v == 1) {
    // One chunk: the count held rises through the warm-up, reaches warm-up + 1 at the first steady
    // forward (GPipe: all m forwards) and never exceeds it.
    if (!(chunk_weight.at(0) > 0)) return peak;  // nothing held ever exceeds the start
    peak.chunks = order.remaining > 0 ? order.warmup + 1 : order.total;
    peak.weight = static_cast<double>(peak.chunks) * chunk_weight[0];
    return peak;
  }
  // Interleaved: the warm-up only adds, the cool-down only removes. In the steady state, forward k
  // and backward k both cycle through the chunks with period p v, so what is held after each
  // steady forward repeats with that period: its first period holds the peak. That bounds the walk
  // to warm-up + 2 p v steps, whatever m is.
  const std::int64_t steady = std::min(order.remaining, order.p * order.v);
  const std::int64_t end = order.warmup + 2 * steady;
  double held = 0;
  std::int64_t chunks = 0;
  for (std::int64_t i = 0; i < end; ++i) {
    const PipelineStep s = order[i];
    const double w = chunk_weight.at(static_cast<std::size_t>(s.chunk));
    held += s.forward ? w : -w;
    chunks += s.forward ? 1 : -1;
    if (held > peak.weight) {
      peak.weight = held;
      peak.chunks = chunks;
    }
  }
  return peak;
}

int peak_chunks_in_flight(Layout::Schedule schedule, int p, int v, int m, int stage) {
  const int chunks = schedule == Layout::INTERLEAVED_1F1B ? v : 1;
  return static_cast<int>(peak_held(schedule, p, v, m, stage,
                                    std::vector<double>(static_cast<std::size_t>(chunks), 1.0))
                              .chunks);
}

namespace {

// The schedule's makespan with virtual stage vs's forward taking tf(vs) and its backward tb(vs).
template <class Forward, class Backward>
double schedule_makespan(Layout::Schedule schedule, int p, int v, int m, Forward tf, Backward tb) {
  const int virtual_stages = p * v;
  // finish[(j * virtual_stages + vs) * 2 + backward]
  std::vector<double> finish(static_cast<std::size_t>(m) * virtual_stages * 2, -1.0);
  auto at = [&](int j, int vs, bool backward) -> double& {
    return finish[(static_cast<std::size_t>(j) * virtual_stages + vs) * 2 + (backward ? 1 : 0)];
  };
  std::vector<std::vector<PipelineStep>> orders;
  for (int stage = 0; stage < p; ++stage) orders.push_back(stage_order(schedule, p, v, m, stage));
  std::vector<std::size_t> next(p, 0);
  std::vector<double> free_at(p, 0.0);
  std::size_t done = 0, total = 0;
  for (const auto& o : orders) total += o.size();
  while (done < total) {
    bool progressed = false;
    for (int stage = 0; stage < p; ++stage) {
      while (next[stage] < orders[stage].size()) {
        const PipelineStep s = orders[stage][next[stage]];
        const int vs = s.chunk * p + stage;
        double ready;
        if (s.forward) {
          ready = vs == 0 ? 0.0 : at(s.microbatch, vs - 1, false);
        } else {
          ready = vs == virtual_stages - 1 ? at(s.microbatch, vs, false)
                                           : at(s.microbatch, vs + 1, true);
        }
        if (ready < 0) break;  // its input has not been produced yet
        const double start = std::max(ready, free_at[stage]);
        free_at[stage] = start + (s.forward ? tf(vs) : tb(vs));
        at(s.microbatch, vs, !s.forward) = free_at[stage];
        ++next[stage];
        ++done;
        progressed = true;
      }
    }
    if (!progressed)
      throw std::logic_error("pipeline schedule deadlocks (p=" + std::to_string(p) +
                             ", v=" + std::to_string(v) + ", m=" + std::to_string(m) + ")");
  }
  return *std::max_element(free_at.begin(), free_at.end());
}

}  // namespace

double schedule_bubble_fraction(Layout::Schedule schedule, int p, int v, int m,
                                double forward_time, double backward_time) {
  if (schedule != Layout::INTERLEAVED_1F1B) v = 1;
  const double tf = forward_time / v, tb = backward_time / v;
  const double makespan =
      schedule_makespan(schedule, p, v, m, [tf](int) { return tf; }, [tb](int) { return tb; });
  const double busy = m * (forward_time + backward_time);
  return (makespan - busy) / busy;
}

double schedule_bubble_fraction(Layout::Schedule schedule, int p, int v, int m,
                                const std::vector<double>& chunk_weight, double backward_ratio) {
  if (schedule != Layout::INTERLEAVED_1F1B) v = 1;
  const auto w = [&](int vs) { return chunk_weight.at(static_cast<std::size_t>(vs)); };
  const double makespan = schedule_makespan(
      schedule, p, v, m, w, [&](int vs) { return backward_ratio * w(vs); });
  double busy = 0;  // the busiest stage's work
  for (int stage = 0; stage < p; ++stage) {
    double work = 0;
    for (int c = 0; c < v; ++c) work += (1 + backward_ratio) * w(c * p + stage);
    busy = std::max(busy, m * work);
  }
  return busy > 0 ? (makespan - busy) / busy : 0.0;
}

double layout_bubble_fraction(const Scenario& sc) {
  const Dims d = dims(sc);
  const StagePartition partition = stage_partition(sc);
  const auto p = static_cast<int>(d.p), v = static_cast<int>(d.v), m = static_cast<int>(d.m);
  if (partition.even()) return schedule_bubble_fraction(sc.layout().schedule(), p, v, m);
  std::vector<double> weight;
  for (std::int64_t vs = 0; vs < partition.virtual_stages(); ++vs) weight.push_back(static_cast<double>(partition.layers(vs)));
  return schedule_bubble_fraction(sc.layout().schedule(), p, v, m, weight);
}

int max_chunks_in_flight(const std::vector<PipelineStep>& order) {
  int in_flight = 0, peak = 0;
  for (const PipelineStep& s : order) {
    in_flight += s.forward ? 1 : -1;
    peak = std::max(peak, in_flight);
  }
  return peak;
}

}  // namespace parallax::model
