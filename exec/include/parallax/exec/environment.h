// This process's place in the job, from the launcher: OpenMPI (OMPI_COMM_WORLD_*), Slurm
// (SLURM_PROCID, SLURM_LOCALID, SLURM_NTASKS) or torchrun-style (RANK, LOCAL_RANK, WORLD_SIZE).
#pragma once

#include <string>

namespace parallax::exec {

struct Environment {
  int rank = 0, world_size = 1, local_rank = 0, local_size = 1;
  std::string launcher;  // "openmpi", "slurm", "env", "none"
};

Environment detect_environment();

}  // namespace parallax::exec
