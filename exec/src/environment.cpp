#include "parallax/exec/environment.h"

#include <cstdlib>
#include <string>

namespace parallax::exec {

Environment detect_environment(const EnvironmentLookup& lookup) {
  const auto get = [&](const char* name) -> const char* {
    const char* v = lookup ? lookup(name) : std::getenv(name);
    return v && *v ? v : nullptr;
  };
  const auto read_int = [&](const char* name, int& out) {
    const char* v = get(name);
    if (!v) return false;
    try {
      out = std::stoi(v);
      return true;
    } catch (const std::exception&) {
      return false;
    }
  };
  Environment e;
  if (read_int("OMPI_COMM_WORLD_RANK", e.rank)) {
    e.launcher = "openmpi";
    read_int("OMPI_COMM_WORLD_SIZE", e.world_size);
    read_int("OMPI_COMM_WORLD_LOCAL_RANK", e.local_rank);
    read_int("OMPI_COMM_WORLD_LOCAL_SIZE", e.local_size);
  } else if (read_int("PMI_RANK", e.rank) || read_int("PMIX_RANK", e.rank)) {
    e.launcher = "pmi";
    read_int("PMI_SIZE", e.world_size);
    read_int("MPI_LOCALRANKID", e.local_rank);
    if (!read_int("MPI_LOCALNRANKS", e.local_size)) e.local_size = e.local_rank + 1;
  } else if (read_int("SLURM_PROCID", e.rank)) {
    e.launcher = "slurm";
    read_int("SLURM_NTASKS", e.world_size);
    read_int("SLURM_LOCALID", e.local_rank);
    if (!read_int("SLURM_NTASKS_PER_NODE", e.local_size)) e.local_size = e.local_rank + 1;
  } else if (read_int("RANK", e.rank)) {
    e.launcher = "torchrun";
    read_int("WORLD_SIZE", e.world_size);
    read_int("LOCAL_RANK", e.local_rank);
    if (!read_int("LOCAL_WORLD_SIZE", e.local_size)) e.local_size = e.local_rank + 1;
  }
  if (const char* v = get("OMPI_MCA_ess_base_jobid")) e.job_id = v;
  else if (const char* v2 = get("OMPI_MCA_orte_ess_jobid")) e.job_id = v2;
  else if (const char* v3 = get("PMIX_NAMESPACE")) e.job_id = v3;
  else if (const char* v4 = get("SLURM_JOB_ID")) e.job_id = std::string(v4) + "." + (get("SLURM_STEP_ID") ? get("SLURM_STEP_ID") : "0");
  else if (const char* v5 = get("TORCHELASTIC_RUN_ID")) e.job_id = v5;
  return e;
}

}  // namespace parallax::exec
