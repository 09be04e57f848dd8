// Running jobs in forked child processes: SimGrid's engine runs once per process, so every
// simulation after the first needs a fresh process. One pool for every front end (the planner's top
// K, simulate_in_subprocess, the GUI's worker threads).
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace parallax::sim {

// What a job run in a child process came back with.
struct JobOutcome {
  enum class Status {
    Ok,          // the job returned: `parts` holds what it returned
    InputError,  // it threw parallax::InputError: `error` holds the message
    Failed,      // it threw another exception: `error` holds the message
    Crashed,     // the process ended without a result: `error` says how (`signal` when killed by one)
  };
  Status status = Status::Crashed;
  std::vector<std::string> parts;
  std::string error;
  int signal = 0;
  bool ok() const { return status == Status::Ok; }
};

// Runs `job(0)` .. `job(count - 1)`, each in its own forked child process, at most `parallel` at a
// time, and calls `done(index, outcome)` in the calling thread as each finishes (in the order they
// finish). The job's return value (any bytes, e.g. serialized messages) travels back through a pipe.
// When `cancelled` is given it is polled at least every 100 ms; once it returns true every running
// child is killed and reaped and run_jobs returns false (jobs not started are not run). Returns true
// when every job finished. If `done` throws, the running children are killed and reaped before the
// exception leaves. Safe to call from several threads at once: the pipes and forks of different
// calls are serialized so that no child inherits another call's pipe (which would keep that pipe open
// until the unrelated child exits).
bool run_jobs(std::size_t count, int parallel, const std::function<std::vector<std::string>(std::size_t)>& job,
              const std::function<void(std::size_t, JobOutcome&&)>& done,
              const std::function<bool()>& cancelled = {});

// One job in a child process, waited for: a pool of one.
JobOutcome run_job(const std::function<std::vector<std::string>()>& job);

}  // namespace parallax::sim
