#include "parallax/model/schedule.h"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>

namespace parallax::model {

std::vector<PipelineStep> stage_order(Layout::Schedule schedule, int p, int v, int m, int stage) {
  std::vector<PipelineStep> order;
  order.reserve(static_cast<std::size_t>(2 * m * v));
  if (schedule == Layout::GPIPE) {
    // All forwards, then all backwards; the last micro-batch to finish its forward is the first
    // whose gradient arrives (torchgpipe's order).
    for (int j = 0; j < m; ++j) order.push_back({j, 0, true});
    for (int j = m - 1; j >= 0; --j) order.push_back({j, 0, false});
    return order;
  }
  if (schedule == Layout::ONE_F_ONE_B) v = 1;
  // megatron/core/pipeline_parallel/schedules.py, forward_backward_pipelining_with_interleaving
  // (and the non-interleaved 1F1B as its v = 1 case).
  const int total = m * v;
  int warmup = v == 1 ? p - stage - 1 : (p - stage - 1) * 2 + (v - 1) * p;
  if (v > 1 && m == p) warmup = total;  // Megatron runs all forwards first in that case
  warmup = std::min(warmup, total);
  const int remaining = total - warmup;
  auto step = [&](int k, bool forward) {
    const int in_group = k % (p * v);
    int chunk = in_group / p;
    if (!forward) chunk = v - 1 - chunk;
    const int microbatch = (k / (p * v)) * p + k % p;
    return PipelineStep{microbatch, chunk, forward};
  };
  if (v == 1) {
    // Non-interleaved: micro-batches in order, chunk 0.
    for (int k = 0; k < warmup; ++k) order.push_back({k, 0, true});
    for (int k = 0; k < remaining; ++k) {
      order.push_back({warmup + k, 0, true});
      order.push_back({k, 0, false});
    }
    for (int k = remaining; k < total; ++k) order.push_back({k, 0, false});
    return order;
  }
  for (int k = 0; k < warmup; ++k) order.push_back(step(k, true));
  for (int k = 0; k < remaining; ++k) {
    order.push_back(step(warmup + k, true));
    order.push_back(step(k, false));
  }
  for (int k = remaining; k < total; ++k) order.push_back(step(k, false));
  return order;
}

double schedule_bubble_fraction(Layout::Schedule schedule, int p, int v, int m,
                                double forward_time, double backward_time) {
  if (schedule != Layout::INTERLEAVED_1F1B) v = 1;
  const int virtual_stages = p * v;
  const double tf = forward_time / v, tb = backward_time / v;
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
        free_at[stage] = start + (s.forward ? tf : tb);
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
  const double makespan = *std::max_element(free_at.begin(), free_at.end());
  const double busy = m * (forward_time + backward_time);
  return (makespan - busy) / busy;
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
