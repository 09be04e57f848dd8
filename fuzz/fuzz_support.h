// What every fuzz target shares: the one exception type bad input may end in, and a bound on job
// size.
#pragma once

#include "parallax/parallax.pb.h"

#include <algorithm>
#include <cstdint>

namespace parallax::fuzz {

// An upper estimate of the tasks build_job_graph stores for `sc`, from the raw fields (before
// validation, so every factor is clamped to at least 1 and the product saturates instead of
// overflowing). The targets build a job graph only below a bound: a valid scenario of a big job is
// legitimate input that takes seconds and gigabytes to build, which libFuzzer would report as a
// timeout or out-of-memory without it being a bug. Those sizes are covered by the model tests.
inline double stored_task_estimate(const Scenario& sc) {
  auto at_least_1 = [](double v) { return std::max(1.0, v); };
  const Layout& l = sc.layout();
  const ModelSpec& m = sc.model();
  const double dp = at_least_1(l.dp()), tp = at_least_1(l.tp()), pp = at_least_1(l.pp());
  const double ranks = sc.options().use_symmetry() ? pp : dp * tp * pp;
  const double microbatches =
      at_least_1(l.global_batch_size()) / (at_least_1(l.micro_batch_size()) * dp);
  const double layers = at_least_1(m.num_layers()) / pp + 2;
  // About 60 tasks per layer and micro-batch (forward, backward, recompute, collectives).
  return ranks * std::max(1.0, microbatches) * layers * 60 * at_least_1(l.virtual_stages());
}

constexpr double kMaxStoredTasks = 20000;

}  // namespace parallax::fuzz
