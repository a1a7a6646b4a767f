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
// Weights that drifted apart (comm.verify_every): every rank applies the same averaged gradients, so
// after an optimizer step the parameters (not the BN running buffers, which are per rank) are equal
// bit for bit. One 8-byte checksum per rank on the control plane; where they differ, a second exchange
// of per-tensor checksums names the ranks and the first differing tensor, and every rank stops with
// that message. Every rank must call it at the same step.
void check_weights_agree(Communicator& control, ops::Graph& graph, int64_t step);

// 64-bit hash of bytes (for checksums that ranks compare).
uint64_t hash_bytes(const void* data, size_t bytes);

}  // namespace convoy::comm
