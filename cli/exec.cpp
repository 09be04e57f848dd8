// parallax exec: hands over to parallax-exec. The executor cannot live in this binary: libsimgrid
// exports its own MPI (SMPI) symbols, so MPI_Init here would start SimGrid's MPI instead of OpenMPI.
// parallax-exec links neither SimGrid nor Qt (it is also what ships to GPU nodes); this process
// replaces itself with it, so `mpirun -np N parallax exec ...` behaves exactly like
// `mpirun -np N parallax-exec ...`.
#include "commands.h"

#include "parallax/traces/io.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace parallax::cli {

int exec(const std::vector<std::string>& args) {
  namespace fs = std::filesystem;
  std::vector<fs::path> candidates;
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    candidates.push_back(self.parent_path() / "parallax-exec");                // installed side by side
    candidates.push_back(self.parent_path().parent_path() / "exec" / "parallax-exec");  // build tree
  }
  candidates.push_back(PARALLAX_EXEC_BINARY);
  for (const auto& c : candidates) {
    if (!fs::is_regular_file(c, ec)) continue;
    std::vector<std::string> owned{c.string()};
    owned.insert(owned.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : owned) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(c.c_str(), argv.data());
    throw InputError("cannot start " + c.string() + ": " + std::strerror(errno));
  }
  throw InputError("parallax-exec not found next to parallax or in the build tree; build it (cmake --build build "
                   "--target parallax-exec) or run it directly");
}

}  // namespace parallax::cli
