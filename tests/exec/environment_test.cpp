// The one launcher-environment reader (exec::detect_environment), used by parallax-exec and by the
// planner's scale-out: each launcher's variables, their precedence, and the job id.
#include "parallax/exec/environment.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace parallax::exec {
namespace {

Environment read(const std::map<std::string, std::string>& vars) {
  return detect_environment([&](const char* name) -> const char* {
    const auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

TEST(LauncherEnvironment, OpenMpi) {
  const Environment e = read({{"OMPI_COMM_WORLD_RANK", "5"}, {"OMPI_COMM_WORLD_SIZE", "16"},
                              {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"},
                              {"OMPI_MCA_ess_base_jobid", "4242"}});
  EXPECT_EQ(e.launcher, "openmpi");
  EXPECT_EQ(e.rank, 5);
  EXPECT_EQ(e.world_size, 16);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_size, 4);
  EXPECT_EQ(e.job_id, "4242");
  EXPECT_EQ(read({{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_MCA_orte_ess_jobid", "77"}}).job_id, "77");  // OpenMPI 4
}

TEST(LauncherEnvironment, PmiAndPmix) {
  Environment e = read({{"PMI_RANK", "3"}, {"PMI_SIZE", "8"}, {"MPI_LOCALRANKID", "3"}, {"MPI_LOCALNRANKS", "4"},
                        {"PMIX_NAMESPACE", "mpich-job-9"}});
  EXPECT_EQ(e.launcher, "pmi");
  EXPECT_EQ(e.rank, 3);
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.local_rank, 3);
  EXPECT_EQ(e.local_size, 4);
  EXPECT_EQ(e.job_id, "mpich-job-9");
  e = read({{"PMIX_RANK", "2"}, {"PMI_SIZE", "4"}});
  EXPECT_EQ(e.launcher, "pmi");
  EXPECT_EQ(e.rank, 2);
  EXPECT_EQ(e.world_size, 4);
}

TEST(LauncherEnvironment, Slurm) {
  const Environment e = read({{"SLURM_PROCID", "9"}, {"SLURM_NTASKS", "12"}, {"SLURM_LOCALID", "1"},
                              {"SLURM_NTASKS_PER_NODE", "2"}, {"SLURM_JOB_ID", "1001"}, {"SLURM_STEP_ID", "3"}});
  EXPECT_EQ(e.launcher, "slurm");
  EXPECT_EQ(e.rank, 9);
  EXPECT_EQ(e.world_size, 12);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_size, 2);
  EXPECT_EQ(e.job_id, "1001.3");
  EXPECT_EQ(read({{"SLURM_PROCID", "0"}, {"SLURM_JOB_ID", "1001"}}).job_id, "1001.0");
}

TEST(LauncherEnvironment, Torchrun) {
  const Environment e = read({{"RANK", "6"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "2"}, {"LOCAL_WORLD_SIZE", "4"},
                              {"TORCHELASTIC_RUN_ID", "run-1"}});
  EXPECT_EQ(e.launcher, "torchrun");
  EXPECT_EQ(e.rank, 6);
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.local_rank, 2);
  EXPECT_EQ(e.local_size, 4);
  EXPECT_EQ(e.job_id, "run-1");
}

TEST(LauncherEnvironment, PrecedenceAndNone) {
  // srun --mpi=pmi2 sets both PMI and Slurm variables; an MPI launcher's own variables win.
  EXPECT_EQ(read({{"PMI_RANK", "1"}, {"PMI_SIZE", "2"}, {"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}}).launcher, "pmi");
  EXPECT_EQ(read({{"OMPI_COMM_WORLD_RANK", "1"}, {"SLURM_PROCID", "7"}}).rank, 1);
  // No launcher: one process; an empty or non-numeric rank is no launcher either.
  Environment e = read({});
  EXPECT_EQ(e.launcher, "none");
  EXPECT_EQ(e.rank, 0);
  EXPECT_EQ(e.world_size, 1);
  EXPECT_EQ(e.job_id, "");
  EXPECT_EQ(read({{"OMPI_COMM_WORLD_RANK", ""}, {"RANK", "x"}}).launcher, "none");
  // Missing local sizes: at least the local rank's.
  EXPECT_EQ(read({{"SLURM_PROCID", "3"}, {"SLURM_LOCALID", "3"}}).local_size, 4);
}

}  // namespace
}  // namespace parallax::exec
