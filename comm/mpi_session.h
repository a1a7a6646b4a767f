// MPI for the length of one command that needs no communicator: the data conversions, which run on many
// ranks (each writes its own shards) or alone (MPI_Init works without mpirun: a singleton world). Plain
// blocking MPI on MPI_COMM_WORLD from the calling thread; conversions have no step to overlap.
#pragma once

#include <string>
#include <vector>

namespace convoy::comm {

class MpiSession {
 public:
  MpiSession();   // initializes MPI unless something already did
  ~MpiSession();  // finalizes it if this session initialized it
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  // One string from every rank on rank 0, in rank order; other ranks get an empty vector.
  std::vector<std::string> gather(const std::string& mine) const;
  // Rank 0's string, on every rank.
  std::string broadcast(const std::string& from_rank0) const;

 private:
  bool owner_ = false;
  int rank_ = 0, size_ = 1;
};

}  // namespace convoy::comm
