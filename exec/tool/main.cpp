// parallax-exec: the executor alone (no SimGrid, no Qt), for GPU nodes.
#include "parallax/exec/cli.h"
#include "parallax/traces/io.h"

#include <cstdio>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
// Under AddressSanitizer (the ASan test run, tests/hardening/asan-tests.sh): unwind allocation
// stacks fully. OpenMPI's MCA components are dlclose()d before LeakSanitizer reports, so with the
// fast unwinder a leak inside OpenMPI shows only "<unknown module>" frames and its suppression
// (tests/hardening/lsan.supp: libmpi, libopen-pal, ...) cannot match; the full stack reaches the
// OpenMPI library that called the component. Only this binary runs MPI; ASAN_OPTIONS still
// override.
extern "C" const char* __asan_default_options() {
  return "fast_unwind_on_malloc=0";
}
#endif

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args.front() == "exec") args.erase(args.begin());
  try {
    return parallax::exec::exec_command(args);
  } catch (const parallax::InputError& e) {
    std::fprintf(stderr, "parallax exec: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "parallax exec: internal error: %s\n", e.what());
    return 70;
  }
}
