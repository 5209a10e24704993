// train::NcclDataParallel: the communicator train::fit takes to train a device model on several GPUs, one
// process per GPU. fit's own collectives (loss sums, counts, barriers) are host scalars and go through MPI;
// the store's gradients and parameters stay in device memory and go through NCCL on the stream the model's
// work is ordered with, so no gradient crosses PCIe (train::Staging is the path without NCCL).
#pragma once
#include "../../core/device.hpp"
#include "../../core/dtype.hpp"
#include "../../core/parameters.hpp"
#include "distributed_nccl.cuh"

namespace longseq::train {

class NcclDataParallel {
 public:
  // Both must outlive this object and span the same ranks in the same order.
  NcclDataParallel(MpiCommunicator& mpi, NcclCommunicator& nccl) : mpi_(&mpi), nccl_(&nccl) {
    LONGSEQ_CHECK(mpi.size() == nccl.size() && mpi.rank() == nccl.rank(), "NcclDataParallel: MPI has rank ",
                  mpi.rank(), " of ", mpi.size(), ", NCCL rank ", nccl.rank(), " of ", nccl.size(),
                  "; both must span the same ranks");
  }
  int rank() const { return mpi_->rank(); }
  int size() const { return mpi_->size(); }
  // Host memory: fit's scalars.
  template <class T>
  void allreduce_sum(T* host_data, index_t n) {
    mpi_->allreduce_sum(host_data, n);
  }
  template <class T>
  void broadcast(T* host_data, index_t n, int root = 0) {
    mpi_->broadcast(host_data, n, root);
  }
  // The device's queued collectives first, then the processes.
  void barrier() {
    nccl_->synchronize("barrier");
    mpi_->barrier();
  }
  NcclCommunicator& nccl() { return *nccl_; }

 private:
  MpiCommunicator* mpi_;
  NcclCommunicator* nccl_;
};
static_assert(Communicator<NcclDataParallel>, "NcclDataParallel must satisfy train::Communicator");

// A device store's gradients summed over ranks, and rank 0's parameters on every rank, in device memory
// (found by train::fit through argument-dependent lookup). Narrow storage is reduced in its own type, as
// NCCL does (PyTorch's DistributedDataParallel does the same by default).
template <class T>
void allreduce_gradients(NcclDataParallel& c, ParamStore<T, device::cuda>& store) {
  auto g = store.grads();
  c.nccl().allreduce_sum(g.data, g.numel());
}
template <class T>
void broadcast_parameters(NcclDataParallel& c, ParamStore<T, device::cuda>& store) {
  auto v = store.values();
  c.nccl().broadcast(v.data, v.numel(), 0);
}

}  // namespace longseq::train
