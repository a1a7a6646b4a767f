// Startup agreement: rank 0's parameters and buffers are broadcast on the data plane, then every rank
// checks on the control plane that its config hash, its parameter layout and its parameter and buffer
// checksums (over host copies of the arenas) equal rank 0's. A mismatch stops every rank with the same
// message, naming the ranks that differ.
#pragma once

#include <string>

#include "comm/communicator.h"
#include "ops/graph.h"

namespace convoy::comm {

// The parameter and buffer arenas of rank 0, on every rank (data plane).
void broadcast_model(Communicator& data, ops::Graph& graph);
// The buffer arena (BN running statistics) of rank 0, on every rank (data plane).
void broadcast_buffers(Communicator& data, ops::Graph& graph);
// Compares config hash, layouts and checksums over the control plane.
void check_startup_agreement(Communicator& control, const std::string& config_hash, ops::Graph& graph);

// 64-bit hash of bytes (for checksums that ranks compare).
uint64_t hash_bytes(const void* data, size_t bytes);

}  // namespace convoy::comm
