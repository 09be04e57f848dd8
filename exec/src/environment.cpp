#include "parallax/exec/environment.h"

#include <cstdlib>
#include <string>

namespace parallax::exec {
namespace {

bool read_int(const char* name, int& out) {
  const char* v = std::getenv(name);
  if (!v || !*v) return false;
  try {
    out = std::stoi(v);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

Environment detect_environment() {
  Environment e;
  if (read_int("OMPI_COMM_WORLD_RANK", e.rank)) {
    e.launcher = "openmpi";
    read_int("OMPI_COMM_WORLD_SIZE", e.world_size);
    read_int("OMPI_COMM_WORLD_LOCAL_RANK", e.local_rank);
    read_int("OMPI_COMM_WORLD_LOCAL_SIZE", e.local_size);
  } else if (read_int("SLURM_PROCID", e.rank)) {
    e.launcher = "slurm";
    read_int("SLURM_NTASKS", e.world_size);
    read_int("SLURM_LOCALID", e.local_rank);
    if (!read_int("SLURM_NTASKS_PER_NODE", e.local_size)) e.local_size = e.local_rank + 1;
  } else if (read_int("RANK", e.rank)) {
    e.launcher = "env";
    read_int("WORLD_SIZE", e.world_size);
    read_int("LOCAL_RANK", e.local_rank);
    if (!read_int("LOCAL_WORLD_SIZE", e.local_size)) e.local_size = e.local_rank + 1;
  } else {
    e.launcher = "none";
  }
  return e;
}

}  // namespace parallax::exec
