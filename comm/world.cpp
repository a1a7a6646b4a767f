#include "comm/world.h"

#include <cstdlib>
#include <vector>

#include "comm/mpi_check.h"

namespace convoy::comm {

void check_local_rank(int mpi_local_rank, const char* env_name, const char* env_value) {
  if (!env_value || !*env_value) return;
  char* end = nullptr;
  long v = std::strtol(env_value, &end, 10);
  CONVOY_CHECK(end && *end == '\0', env_name << "='" << env_value << "' is not a number");
  CONVOY_CHECK(v == mpi_local_rank, "the launcher says this is local rank " << v << " (" << env_name << "=" << env_value
                                                                            << ") but MPI's shared-memory split says "
                                                                            << mpi_local_rank
                                                                            << ": check the launcher's binding and "
                                                                               "tasks-per-node options");
}

World::World() {
  int initialized = 0;
  MPI_CHECK(MPI_Initialized(&initialized));
  if (!initialized) {
    MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &thread_level_));
    owns_mpi_ = true;
  } else {
    MPI_CHECK(MPI_Query_thread(&thread_level_));
  }
  CONVOY_CHECK(thread_level_ >= MPI_THREAD_SERIALIZED,
               "this MPI library gives thread level " << thread_level_
                                                      << ", below MPI_THREAD_SERIALIZED, which convoy's "
                                                         "communication thread needs: use Open MPI 4.1 or newer");
  MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
  MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
  set_error_rank(size_ > 1 ? rank_ : -1);

  MPI_Comm local;
  MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local));
  MPI_CHECK(MPI_Comm_rank(local, &local_rank_));
  MPI_CHECK(MPI_Comm_size(local, &local_size_));
  // Nodes: the local rank 0s, numbered in rank order.
  MPI_Comm leaders;
  MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, local_rank_ == 0 ? 0 : MPI_UNDEFINED, rank_, &leaders));
  if (local_rank_ == 0) {
    MPI_CHECK(MPI_Comm_rank(leaders, &node_));
    MPI_CHECK(MPI_Comm_size(leaders, &nodes_));
    MPI_Comm_free(&leaders);
  }
  MPI_CHECK(MPI_Bcast(&node_, 1, MPI_INT, 0, local));
  MPI_CHECK(MPI_Bcast(&nodes_, 1, MPI_INT, 0, local));
  MPI_Comm_free(&local);
  MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &diagnosis_));
  MPI_CHECK(MPI_Comm_set_errhandler(diagnosis_, MPI_ERRORS_RETURN));
  host_ = host_name();

  if (const char* v = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK")) {
    launcher_ = "mpirun";
    check_local_rank(local_rank_, "OMPI_COMM_WORLD_LOCAL_RANK", v);
  } else if (const char* s = std::getenv("SLURM_LOCALID"); s && std::getenv("SLURM_STEP_ID")) {
    launcher_ = "srun";
    check_local_rank(local_rank_, "SLURM_LOCALID", s);
  }
}

World::~World() {
  if (diagnosis_ != MPI_COMM_NULL) MPI_Comm_free(&diagnosis_);
  if (owns_mpi_) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
}

void World::abort(int code) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

}  // namespace convoy::comm
