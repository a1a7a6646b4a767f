// SyncBN's sum over ranks (ops::CrossRankSum) on a communicator: the batch-norm layers' per-channel
// moments, a few KB per layer, summed in place. Device tensors move through a host buffer when the
// communicator takes host memory (MPI; the control plane). Called from the training thread, in layer
// order, which is the same on every rank.
#pragma once

#include "comm/communicator.h"
#include "ops/backend.h"

namespace convoy::comm {

class CommunicatorSum final : public ops::CrossRankSum {
 public:
  // Both must outlive this object.
  CommunicatorSum(Communicator& comm, ops::Backend& backend) : comm_(comm), backend_(backend) {}
  int ranks() const override { return comm_.size(); }
  void sum(ops::ExecContext& ctx, ops::Tensor& t, const char* what) override;

 private:
  Communicator& comm_;
  ops::Backend& backend_;
  ops::Tensor host_;  // staging for device tensors; grows to the largest layer's sums during the first step
};

}  // namespace convoy::comm
