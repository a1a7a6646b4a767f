// World: who this process is among the ranks. Rank and size come from MPI; the local rank (and so the
// GPU a rank drives) from MPI_Comm_split_type(MPI_COMM_TYPE_SHARED), the ground truth, cross-checked
// against what the launcher says (OMPI_COMM_WORLD_LOCAL_RANK under mpirun, SLURM_LOCALID under srun).
// Works under mpirun, under srun --mpi=pmix, and as one process with no launcher (an MPI singleton).
#pragma once

#include <mpi.h>

#include <string>

namespace convoy::comm {

class World {
 public:
  // Initializes MPI unless something already did (thread level MULTIPLE: one communication thread makes
  // the collective calls while a watchdog thread may diagnose a stuck one; SERIALIZED is the minimum);
  // finalizes it on destruction if it initialized it.
  World();
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }
  int node() const { return node_; }          // index of this rank's node, 0 .. nodes()-1
  int nodes() const { return nodes_; }
  int device() const { return local_rank_; }  // the GPU this rank drives, when there are GPUs
  const std::string& host() const { return host_; }
  const char* launcher() const { return launcher_; }  // "mpirun", "srun" or "none"
  int thread_level() const { return thread_level_; }  // what MPI provides (MPI_THREAD_MULTIPLE wanted)
  // A duplicate of MPI_COMM_WORLD that only stall diagnoses use: every communicator of the process
  // sends and answers status queries on it, so a rank stuck on one plane is found by a peer stuck on
  // the other.
  MPI_Comm diagnosis_comm() const { return diagnosis_; }

  // Leaves MPI without finalizing (after a fatal error, when peers may be gone): MPI_Abort.
  [[noreturn]] static void abort(int code);

 private:
  bool owns_mpi_ = false;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1, node_ = 0, nodes_ = 1;
  std::string host_;
  const char* launcher_ = "none";
  int thread_level_ = MPI_THREAD_SINGLE;
  MPI_Comm diagnosis_ = MPI_COMM_NULL;
};

// The launcher's idea of the local rank, checked against MPI's: throws naming both values on a mismatch.
void check_local_rank(int mpi_local_rank, const char* env_name, const char* env_value);

}  // namespace convoy::comm
