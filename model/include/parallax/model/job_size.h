// The size of a job graph before it is built: what build_job_graph will store, in microseconds, so
// that a job too big for this machine is refused before any allocation instead of ending in
// std::bad_alloc after a minute of building.
#pragma once

#include "parallax/parallax.pb.h"

#include <cstdint>
#include <string>

namespace parallax::model {

struct JobSizeEstimate {
  std::uint64_t ranks = 0;           // representative ranks built (pp with symmetry, all without)
  std::uint64_t microbatches = 0;    // per pipeline per step
  std::uint64_t tasks = 0;           // tasks stored: exactly what build_job_graph stores
  std::uint64_t edges = 0;           // an upper bound on the edges stored (see job_size.cpp)
  std::uint64_t expanded_tasks = 0;  // tasks of the whole job, every rank counted
  double bytes = 0;                  // memory the build needs at its peak (upper estimate)
};

// For a validated scenario the counts are the builder's own (tasks exact, edges an upper bound).
// Any other scenario (the fuzz targets ask before validating) gets an estimate with every factor
// clamped to at least 1, never an exception or an overflow.
JobSizeEstimate estimate_job_size(const Scenario& scenario);

// Stored tasks a job graph may have: PARALLAX_MAX_TASKS if set (a whole number >= 1; anything else
// is an InputError naming the variable), else kDefaultMaxTasks.
inline constexpr std::uint64_t kDefaultMaxTasks = 20'000'000;
std::uint64_t max_stored_tasks();

// Throws InputError when the graph of `scenario` would store more than max_stored_tasks() tasks,
// naming `source`, the estimate (tasks, edges, memory), what drives it, the limit and how to raise
// it. build_job_graph calls it first; callers that know the file call it themselves to name it.
// `symmetry_optional`: false where the caller needs every rank (then the message does not suggest
// options.use_symmetry).
void check_job_size(const Scenario& scenario, const std::string& source,
                    bool symmetry_optional = true);

}  // namespace parallax::model
