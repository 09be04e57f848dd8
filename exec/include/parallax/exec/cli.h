// `parallax exec` (also the standalone `parallax-exec`, which links neither SimGrid nor Qt so it can
// be shipped to GPU nodes alone).
#pragma once

#include <string>
#include <vector>

namespace parallax::exec {

// Initialises MPI (thread multiple), runs, finalises. Returns the exit code.
int exec_command(const std::vector<std::string>& args);

}  // namespace parallax::exec
