// What every fuzz target shares: the one exception type bad input may end in, and a bound on job
// size.
#pragma once

#include "parallax/model/job_size.h"
#include "parallax/parallax.pb.h"

#include <cstdint>

namespace parallax::fuzz {

constexpr double kMaxStoredTasks = 20000;

// The targets build a job graph only below a bound on its stored tasks
// (model::estimate_job_size, which works on unvalidated fields too): a valid scenario of a big job
// is legitimate input that takes seconds and gigabytes to build, which libFuzzer would report as a
// timeout or out-of-memory without it being a bug. Those sizes are covered by the model tests.
inline bool small_enough_to_build(const Scenario& sc) {
  return static_cast<double>(model::estimate_job_size(sc).tasks) <= kMaxStoredTasks;
}

}  // namespace parallax::fuzz
