#include "comm/mpi_session.h"

#include <mpi.h>

#include "comm/mpi_check.h"

namespace convoy::comm {

MpiSession::MpiSession() {
  int initialized = 0;
  MPI_CHECK(MPI_Initialized(&initialized));
  if (!initialized) {
    MPI_CHECK(MPI_Init(nullptr, nullptr));
    owner_ = true;
  }
  MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
  MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
  set_error_rank(size_ > 1 ? rank_ : -1);
}

MpiSession::~MpiSession() {
  if (owner_) MPI_Finalize();
}

std::vector<std::string> MpiSession::gather(const std::string& s) const {
  int len = static_cast<int>(s.size());
  std::vector<int> lens(static_cast<size_t>(size_)), displs(static_cast<size_t>(size_));
  MPI_CHECK(MPI_Gather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, 0, MPI_COMM_WORLD));
  int total = 0;
  for (int r = 0; r < size_; ++r) displs[static_cast<size_t>(r)] = total, total += lens[static_cast<size_t>(r)];
  std::string all(rank_ == 0 ? static_cast<size_t>(total) : 0, '\0');
  MPI_CHECK(MPI_Gatherv(s.data(), len, MPI_CHAR, all.data(), lens.data(), displs.data(), MPI_CHAR, 0, MPI_COMM_WORLD));
  std::vector<std::string> out;
  if (rank_ == 0)
    for (int r = 0; r < size_; ++r)
      out.push_back(all.substr(static_cast<size_t>(displs[static_cast<size_t>(r)]),
                               static_cast<size_t>(lens[static_cast<size_t>(r)])));
  return out;
}

std::string MpiSession::broadcast(const std::string& s) const {
  int len = static_cast<int>(s.size());
  MPI_CHECK(MPI_Bcast(&len, 1, MPI_INT, 0, MPI_COMM_WORLD));
  std::string out = rank_ == 0 ? s : std::string(static_cast<size_t>(len), '\0');
  MPI_CHECK(MPI_Bcast(out.data(), len, MPI_CHAR, 0, MPI_COMM_WORLD));
  return out;
}

}  // namespace convoy::comm
