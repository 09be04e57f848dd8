#include "parallax/sim/runner.h"

#include "parallax/traces/io.h"  // InputError

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace parallax::sim {
namespace {

// Held from a pool's pipe() to its parent closing the pipe's write end, and around every fork: a
// fork in another thread in between would give that thread's child a copy of the write end, and the
// reader would see end-of-file only when that unrelated child exits too. A pthread mutex because the
// child re-initializes its copy (POSIX allows that after fork; a std::mutex copied locked could never
// be unlocked, and a job that itself runs jobs would deadlock).
pthread_mutex_t fork_mutex = PTHREAD_MUTEX_INITIALIZER;

// Children must not outlive the process that started them: a simulation left running with no one to
// read its result holds its memory (gigabytes for a large one) until it ends on its own. Two
// mechanisms, because either alone has a gap:
// - In the child, prctl(PR_SET_PDEATHSIG, SIGKILL): the kernel kills it when its parent dies, by
//   whatever signal, SIGKILL included. The death signal is tied to the *thread* that forked, not the
//   process; that thread is the one inside run_jobs, which does not return (normally, by exception or
//   cancelled) before every child it started is reaped, so the thread outlives its children and the
//   signal fires only when the whole process dies. A parent that died between fork and prctl is seen
//   by getppid() no longer being the pid recorded before fork.
// - In the parent, SIGTERM, SIGINT and SIGHUP (the signals a supervisor, a CI cancel or a closed
//   terminal send to one pid) kill the running children before the process dies of the signal, so
//   its exit status stays 128 + n. Installed at the first fork and only for signals whose action is
//   still the default, so a program's own handlers (and the GUI's event loop, which installs none
//   for them) are left alone. The handler does only async-signal-safe work: it reads the pids of the
//   live children from a fixed table of atomics and kills them.
constexpr int kFatalSignals[] = {SIGTERM, SIGINT, SIGHUP};
constexpr std::size_t kSlots = 1024;  // more children at once are still covered by the death signal
std::atomic<pid_t> live_children[kSlots];
std::atomic<bool> handlers_installed{false};
bool handler_owns[sizeof kFatalSignals / sizeof kFatalSignals[0]] = {};

void kill_children_and_die(int sig) {
  for (auto& slot : live_children) {
    const pid_t pid = slot.load();
    if (pid > 0) ::kill(pid, SIGKILL);
  }
  // SA_RESETHAND restored the default action; the signal, blocked while this handler runs, is
  // delivered again on return and ends the process with it.
  ::raise(sig);
}

void install_handlers() {
  if (handlers_installed.exchange(true)) return;
  for (std::size_t i = 0; i < std::size(kFatalSignals); ++i) {
    struct sigaction old {};
    if (::sigaction(kFatalSignals[i], nullptr, &old) != 0 || old.sa_handler != SIG_DFL) continue;
    struct sigaction action {};
    action.sa_handler = kill_children_and_die;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESETHAND;
    handler_owns[i] = ::sigaction(kFatalSignals[i], &action, nullptr) == 0;
  }
}

// In a fresh child: its parent's table and handlers are not its own (a job that runs jobs installs
// them again for its children).
void forget_parent_handlers() {
  for (auto& slot : live_children) slot.store(0);
  for (std::size_t i = 0; i < std::size(kFatalSignals); ++i)
    if (handler_owns[i]) {
      ::signal(kFatalSignals[i], SIG_DFL);
      handler_owns[i] = false;
    }
  handlers_installed.store(false);
}

void remember_child(pid_t pid) {
  for (auto& slot : live_children) {
    pid_t empty = 0;
    if (slot.compare_exchange_strong(empty, pid)) return;
  }
}

// Before the child is reaped: afterwards its pid may belong to an unrelated process.
void forget_child(pid_t pid) {
  for (auto& slot : live_children) {
    pid_t expected = pid;
    if (slot.compare_exchange_strong(expected, 0)) return;
  }
}

// Frames on the pipe: a tag byte, a 64-bit length, the bytes.
constexpr char kPart = 'P', kInputError = 'I', kFailed = 'E', kDone = 'D';
constexpr std::size_t kHeader = 1 + sizeof(std::uint64_t);

bool write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

bool write_frame(int fd, char tag, const std::string& bytes) {
  char header[kHeader];
  header[0] = tag;
  const std::uint64_t size = bytes.size();
  std::memcpy(header + 1, &size, sizeof size);
  return write_all(fd, header, sizeof header) && write_all(fd, bytes.data(), bytes.size());
}

// In the child: run the job, send its result, never return.
[[noreturn]] void run_child(int fd, const std::function<std::vector<std::string>(std::size_t)>& job,
                            std::size_t index) {
  bool sent = true;
  try {
    for (const std::string& part : job(index)) sent = sent && write_frame(fd, kPart, part);
    sent = sent && write_frame(fd, kDone, {});
  } catch (const InputError& e) {
    sent = write_frame(fd, kInputError, e.what());
  } catch (const std::exception& e) {
    sent = write_frame(fd, kFailed, e.what());
  }
  ::close(fd);
  ::_exit(sent ? 0 : 3);
}

void reap(pid_t pid, int* status) {
  while (::waitpid(pid, status, 0) < 0 && errno == EINTR) {
  }
}

JobOutcome outcome_of(const std::string& data, int status) {
  JobOutcome out;
  std::size_t pos = 0;
  while (pos + kHeader <= data.size()) {
    const char tag = data[pos];
    std::uint64_t size = 0;
    std::memcpy(&size, data.data() + pos + 1, sizeof size);
    pos += kHeader;
    if (size > data.size() - pos) break;
    std::string payload = data.substr(pos, size);
    pos += size;
    if (tag == kPart) out.parts.push_back(std::move(payload));
    if (tag == kDone) {
      out.status = JobOutcome::Status::Ok;
      return out;
    }
    if (tag == kInputError || tag == kFailed) {
      out.status = tag == kInputError ? JobOutcome::Status::InputError : JobOutcome::Status::Failed;
      out.parts.clear();
      out.error = std::move(payload);
      return out;
    }
  }
  out.parts.clear();
  out.status = JobOutcome::Status::Crashed;
  if (WIFSIGNALED(status)) {
    out.signal = WTERMSIG(status);
    out.error = "the simulation process was killed by signal " + std::to_string(out.signal) + " (" +
                ::strsignal(out.signal) + ")";
  } else {
    out.error = "the simulation process ended without a result" +
                (WIFEXITED(status) ? " (exit status " + std::to_string(WEXITSTATUS(status)) + ")" : std::string());
  }
  return out;
}

struct Child {
  pid_t pid;
  int fd;
  std::size_t index;
  std::string data;
};

// Kills and reaps whatever is still running when the pool is left early (cancelled, or an exception
// from `done` or from fork).
struct Running {
  std::vector<Child> children;
  ~Running() {
    for (const Child& c : children) {
      ::kill(c.pid, SIGKILL);
      ::close(c.fd);
      forget_child(c.pid);
      reap(c.pid, nullptr);
    }
  }
};

Child start(const std::function<std::vector<std::string>(std::size_t)>& job, std::size_t index,
            const std::vector<Child>& siblings) {
  std::fflush(nullptr);  // no buffered output written twice
  install_handlers();
  const pid_t parent = ::getpid();
  pthread_mutex_lock(&fork_mutex);
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    const int err = errno;
    pthread_mutex_unlock(&fork_mutex);
    throw std::runtime_error(std::string("pipe failed: ") + std::strerror(err));
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(3);  // the parent died before prctl
    forget_parent_handlers();
    pthread_mutex_init(&fork_mutex, nullptr);
    ::close(fds[0]);
    for (const Child& c : siblings) ::close(c.fd);
    run_child(fds[1], job, index);
  }
  const int err = errno;
  if (pid > 0) remember_child(pid);
  ::close(fds[1]);
  pthread_mutex_unlock(&fork_mutex);
  if (pid < 0) {
    ::close(fds[0]);
    throw std::runtime_error(std::string("fork failed: ") + std::strerror(err));
  }
  return Child{pid, fds[0], index, {}};
}

}  // namespace

bool run_jobs(std::size_t count, int parallel, const std::function<std::vector<std::string>(std::size_t)>& job,
              const std::function<void(std::size_t, JobOutcome&&)>& done, const std::function<bool()>& cancelled) {
  if (parallel < 1) parallel = 1;
  Running running;
  std::vector<Child>& children = running.children;
  std::size_t next = 0;
  std::vector<char> buffer(1 << 16);
  while (next < count || !children.empty()) {
    while (static_cast<int>(children.size()) < parallel && next < count) children.push_back(start(job, next++, children));
    if (cancelled && cancelled()) return false;  // ~Running kills and reaps the children
    std::vector<pollfd> polls;
    for (const Child& c : children) polls.push_back(pollfd{c.fd, POLLIN, 0});
    if (::poll(polls.data(), polls.size(), cancelled ? 100 : -1) < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("poll failed: ") + std::strerror(errno));
    }
    for (std::size_t i = polls.size(); i-- > 0;) {
      if (polls[i].revents == 0) continue;
      Child& c = children[i];
      const ssize_t n = ::read(c.fd, buffer.data(), buffer.size());
      if (n < 0 && errno == EINTR) continue;
      if (n > 0) {
        c.data.append(buffer.data(), static_cast<std::size_t>(n));
        continue;
      }
      // End of file (or a read error): the child is done.
      ::close(c.fd);
      int status = 0;
      forget_child(c.pid);
      reap(c.pid, &status);
      JobOutcome outcome = outcome_of(c.data, status);
      const std::size_t index = c.index;
      children.erase(children.begin() + static_cast<std::ptrdiff_t>(i));
      done(index, std::move(outcome));
    }
  }
  return true;
}

JobOutcome run_job(const std::function<std::vector<std::string>()>& job) {
  JobOutcome result;
  run_jobs(
      1, 1, [&](std::size_t) { return job(); }, [&](std::size_t, JobOutcome&& out) { result = std::move(out); });
  return result;
}

}  // namespace parallax::sim
