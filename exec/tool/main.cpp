// parallax-exec: the executor alone (no SimGrid, no Qt), for GPU nodes.
#include "parallax/exec/cli.h"
#include "parallax/traces/io.h"

#include <cstdio>
#include <string>
#include <vector>

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
