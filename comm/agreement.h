// Startup agreement (DESIGN.md §5): rank 0's parameters and buffers are broadcast, then every rank checks
// that its config hash, its parameter layout and its parameter and buffer checksums equal rank 0's. A
// mismatch stops every rank with the same message, naming the ranks that differ.
#pragma once

#include <string>

#include "comm/communicator.h"
#include "ops/graph.h"

namespace convoy::comm {

// The parameter and buffer arenas of rank 0, on every rank.
void broadcast_model(Communicator& comm, ops::Graph& graph);
// The buffer arena (BN running statistics) of rank 0, on every rank.
void broadcast_buffers(Communicator& comm, ops::Graph& graph);
void check_startup_agreement(Communicator& comm, const std::string& config_hash, const ops::Graph& graph);

// 64-bit hash of bytes (for checksums that ranks compare).
uint64_t hash_bytes(const void* data, size_t bytes);

}  // namespace convoy::comm
