// This process's place in the job, from the launcher's environment variables. One reader for the
// executor and the planner's scale-out (which links SimGrid's MPI, so this part of the executor links
// no MPI):
//   OpenMPI   OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK, _LOCAL_SIZE
//   PMI/PMIx  PMI_RANK (or PMIX_RANK), PMI_SIZE, MPI_LOCALRANKID, MPI_LOCALNRANKS (MPICH's Hydra)
//   Slurm     SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE
//   torchrun  RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE
// checked in this order; the first launcher whose rank variable is set wins.
#pragma once

#include <functional>
#include <string>

namespace parallax::exec {

struct Environment {
  int rank = 0, world_size = 1, local_rank = 0, local_size = 1;
  std::string launcher = "none";  // "openmpi", "pmi", "slurm", "torchrun", "none"
  // The launcher's id of this job, the same on every rank (empty when there is none):
  // OMPI_MCA_ess_base_jobid, OMPI_MCA_orte_ess_jobid, PMIX_NAMESPACE, SLURM_JOB_ID.SLURM_STEP_ID
  // or TORCHELASTIC_RUN_ID, the first set.
  std::string job_id;
};

// `lookup` returns a variable's value, or null when it is not set (std::getenv by default).
using EnvironmentLookup = std::function<const char*(const char*)>;
Environment detect_environment(const EnvironmentLookup& lookup = {});

}  // namespace parallax::exec
