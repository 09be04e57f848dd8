// The subprocess runner behind simulate_in_subprocess, the planner's pool and the GUI: results come
// back, a crash is reported with its signal, cancellation kills and reaps every child, many jobs run
// concurrently and from several threads at once.
#include "parallax/sim/runner.h"
#include "parallax/traces/io.h"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <set>
#include <thread>

namespace parallax::sim {
namespace {

using Clock = std::chrono::steady_clock;

TEST(Runner, ReturnsWhatTheJobReturned) {
  const pid_t parent = ::getpid();
  const JobOutcome out = run_job([&] {
    // In another process; a part may hold any bytes, an empty one included.
    return std::vector<std::string>{std::to_string(::getpid() != parent), std::string("a\0b", 3), "",
                                    std::string(1 << 20, 'x')};
  });
  ASSERT_TRUE(out.ok()) << out.error;
  ASSERT_EQ(out.parts.size(), 4u);
  EXPECT_EQ(out.parts[0], "1");
  EXPECT_EQ(out.parts[1], std::string("a\0b", 3));
  EXPECT_EQ(out.parts[2], "");
  EXPECT_EQ(out.parts[3].size(), 1u << 20);
}

TEST(Runner, ExceptionsComeBackWithTheirKind) {
  JobOutcome out = run_job([]() -> std::vector<std::string> { throw InputError("bad.pbtxt:3: layout.tp: no"); });
  EXPECT_EQ(out.status, JobOutcome::Status::InputError);
  EXPECT_EQ(out.error, "bad.pbtxt:3: layout.tp: no");
  out = run_job([]() -> std::vector<std::string> { throw std::runtime_error("deadlock"); });
  EXPECT_EQ(out.status, JobOutcome::Status::Failed);
  EXPECT_EQ(out.error, "deadlock");
}

TEST(Runner, ACrashIsReportedWithItsSignal) {
  // SIGKILL, not SIGSEGV: under AddressSanitizer a SIGSEGV is caught by its handler and becomes exit
  // status 1, and SIGKILL is what the out-of-memory killer sends to a simulation that grew too large.
  JobOutcome out = run_job([]() -> std::vector<std::string> {
    ::kill(::getpid(), SIGKILL);
    return {"unreachable"};
  });
  EXPECT_EQ(out.status, JobOutcome::Status::Crashed);
  EXPECT_EQ(out.signal, SIGKILL);
  EXPECT_NE(out.error.find("killed by signal " + std::to_string(SIGKILL)), std::string::npos) << out.error;
  EXPECT_TRUE(out.parts.empty());
  // Exiting without a result is a crash too, with the exit status.
  out = run_job([]() -> std::vector<std::string> { ::_exit(7); });
  EXPECT_EQ(out.status, JobOutcome::Status::Crashed);
  EXPECT_EQ(out.signal, 0);
  EXPECT_NE(out.error.find("ended without a result (exit status 7)"), std::string::npos) << out.error;
}

TEST(Runner, CancellationKillsAndReapsEveryChild) {
  const int kJobs = 4;
  const auto t0 = Clock::now();
  // Each job sleeps far longer than the test.
  const bool finished = run_jobs(
      kJobs, kJobs,
      [](std::size_t) -> std::vector<std::string> {
        ::sleep(60);
        return {};
      },
      [](std::size_t, JobOutcome&&) { ADD_FAILURE() << "a job finished"; },
      [&] { return Clock::now() - t0 > std::chrono::milliseconds(300); });
  EXPECT_FALSE(finished);
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5));
  // Reaped: this process has no child left (waitpid on any child fails with ECHILD).
  errno = 0;
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST(Runner, ManyConcurrentJobsEachReportOnce) {
  const std::size_t kJobs = 40;
  std::vector<int> results(kJobs, -1);
  std::set<std::string> pids;
  std::size_t calls = 0;
  const auto t0 = Clock::now();
  const bool finished = run_jobs(
      kJobs, 8,
      [](std::size_t i) -> std::vector<std::string> {
        ::usleep(200'000);
        return {std::to_string(i * i), std::to_string(::getpid())};
      },
      [&](std::size_t i, JobOutcome&& out) {
        ++calls;
        ASSERT_TRUE(out.ok()) << out.error;
        results[i] = std::stoi(out.parts[0]);
        pids.insert(out.parts[1]);
      });
  EXPECT_TRUE(finished);
  EXPECT_EQ(calls, kJobs);
  for (std::size_t i = 0; i < kJobs; ++i) EXPECT_EQ(results[i], static_cast<int>(i * i)) << i;
  EXPECT_EQ(pids.size(), kJobs);  // one process per job
  // 40 jobs of 200 ms, 8 at a time: about 1 s, far below the 8 s of running them one by one.
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5));
}

TEST(Runner, PoolsInSeveralThreadsDoNotHoldEachOthersPipes) {
  // Quick jobs in three threads while a fourth forks long jobs: a quick job must never wait for a
  // long one (it would if a long job's child had inherited the quick job's pipe, forked between that
  // pipe's creation and its parent closing the write end).
  std::atomic<bool> stop{false};
  std::atomic<long> slowest_ms{0};
  std::vector<std::thread> quick;
  for (int t = 0; t < 3; ++t)
    quick.emplace_back([&] {
      while (!stop) {
        const auto t0 = Clock::now();
        const JobOutcome out = run_job([] { return std::vector<std::string>{"quick"}; });
        EXPECT_TRUE(out.ok()) << out.error;
        const long ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
        for (long seen = slowest_ms; ms > seen && !slowest_ms.compare_exchange_weak(seen, ms);) {
        }
      }
    });
  std::thread slow([] {
    run_jobs(
        24, 24,
        [](std::size_t) -> std::vector<std::string> {
          ::sleep(4);
          return {};
        },
        [](std::size_t, JobOutcome&& out) { EXPECT_TRUE(out.ok()) << out.error; });
  });
  std::this_thread::sleep_for(std::chrono::seconds(2));
  stop = true;
  for (auto& t : quick) t.join();
  slow.join();
  EXPECT_LT(slowest_ms.load(), 3000);
}

// Whether `pid` is gone: no such process, or a zombie waiting for whoever adopted it to reap it.
bool gone(pid_t pid) {
  if (::kill(pid, 0) != 0) return true;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const auto paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z';
}

// A helper process runs a job that reports its pid and sleeps; the helper is killed with `sig`.
// Returns the job's pid and whether it was gone within 2 s.
std::pair<pid_t, bool> job_after_parent_killed_by(int sig) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  const pid_t helper = ::fork();
  if (helper == 0) {
    ::close(fds[0]);
    run_job([&]() -> std::vector<std::string> {
      const pid_t me = ::getpid();
      if (::write(fds[1], &me, sizeof me) != sizeof me) ::_exit(1);
      ::sleep(60);
      return {};
    });
    ::_exit(0);
  }
  ::close(fds[1]);
  pid_t job = 0;
  const bool got = ::read(fds[0], &job, sizeof job) == sizeof job;
  ::close(fds[0]);
  EXPECT_TRUE(got);
  ::kill(helper, sig);
  int status = 0;
  ::waitpid(helper, &status, 0);
  // The helper dies of the signal (a shell reports 128 + n), whatever the runner did first.
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == sig) << status;
  if (!got) return {0, false};
  const auto t0 = Clock::now();
  while (!gone(job) && Clock::now() - t0 < std::chrono::seconds(2))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const bool ended = gone(job);
  if (!ended) ::kill(job, SIGKILL);  // leave nothing behind when the test fails
  return {job, ended};
}

TEST(Runner, ChildDiesWhenItsParentIsKilled) {
  // SIGKILL cannot be handled: the kernel's parent-death signal ends the child.
  EXPECT_TRUE(job_after_parent_killed_by(SIGKILL).second);
}

TEST(Runner, ChildDiesWhenItsParentIsTerminatedOrInterrupted) {
  // A supervisor's SIGTERM, a CI cancel's SIGINT or a closed terminal's SIGHUP sent to the parent's
  // pid only.
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) EXPECT_TRUE(job_after_parent_killed_by(sig).second) << sig;
}

}  // namespace
}  // namespace parallax::sim
