// NcclCommunicator: data-parallel collectives between GPUs through NCCL, one process per GPU, launched
// and bootstrapped through MPI (rank 0 makes the ncclUniqueId and broadcasts it). Needs CUDA and NCCL.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <type_traits>

#include "../../core/cuda/check.cuh"
#include "../../core/dtype.hpp"
#include "../distributed_mpi.hpp"

namespace longseq::train {

namespace detail {
template <class T>
ncclDataType_t nccl_type() {
  if constexpr (std::is_same_v<T, float>) return ncclFloat32;
  else if constexpr (std::is_same_v<T, double>) return ncclFloat64;
  else if constexpr (std::is_same_v<T, __half> || std::is_same_v<T, longseq::half>) return ncclFloat16;
  else if constexpr (std::is_same_v<T, longseq::bf16>) return ncclBfloat16;  // the top half of a float's bits
  else if constexpr (std::is_same_v<T, std::int32_t>) return ncclInt32;
  else if constexpr (std::is_same_v<T, std::int64_t>) return ncclInt64;
  else static_assert(sizeof(T) == 0, "NcclCommunicator: element type must be float, double, half, bf16, int32 or "
                                     "int64");
}
}  // namespace detail

class NcclCommunicator {
 public:
  static constexpr bool device_memory = true;  // collectives take device pointers (train::Staging is not used)
  // device < 0: the node-local rank modulo the visible GPUs (one process per GPU under mpirun).
  // stream: where collectives are enqueued (the training Context's stream, so they follow the backward).
  explicit NcclCommunicator(MpiCommunicator& mpi, cudaStream_t stream = nullptr, int device = -1)
      : mpi_(&mpi), stream_(stream) {
    MPI_Comm node;
    MPI_Comm_split_type(mpi.comm(), MPI_COMM_TYPE_SHARED, mpi.rank(), MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &local_rank_);
    MPI_Comm_free(&node);
    int n = 0;
    LONGSEQ_CUDA_CHECK(cudaGetDeviceCount(&n));
    LONGSEQ_CHECK(n > 0, "NcclCommunicator (rank ", mpi.rank(), "): no CUDA device is visible");
    device_ = device >= 0 ? device : local_rank_ % n;
    LONGSEQ_CUDA_CHECK(cudaSetDevice(device_));
    ncclUniqueId id;
    if (mpi.rank() == 0) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    mpi.broadcast(reinterpret_cast<std::int32_t*>(&id), index_t(sizeof(id) / sizeof(std::int32_t)), 0);
    static_assert(sizeof(ncclUniqueId) % sizeof(std::int32_t) == 0, "ncclUniqueId is sent as int32 words");
    check(ncclCommInitRank(&comm_, mpi.size(), id, mpi.rank()), "ncclCommInitRank");
  }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;
  ~NcclCommunicator() {
    if (comm_) ncclCommDestroy(comm_);
  }

  int rank() const { return mpi_->rank(); }
  int size() const { return mpi_->size(); }
  int device() const { return device_; }
  int local_rank() const { return local_rank_; }
  cudaStream_t stream() const { return stream_; }
  void set_stream(cudaStream_t s) { stream_ = s; }

  // Enqueue on the stream and return (overlap with later kernels); synchronize() waits for them.
  template <class T>
  void allreduce_sum_async(T* device_data, index_t n) {
    check(ncclAllReduce(device_data, device_data, std::size_t(n), detail::nccl_type<T>(), ncclSum, comm_, stream_),
          "ncclAllReduce");
  }
  template <class T>
  void broadcast_async(T* device_data, index_t n, int root = 0) {
    LONGSEQ_CHECK(root >= 0 && root < size(), "NcclCommunicator::broadcast: root ", root, " is not a rank of ", size());
    check(ncclBroadcast(device_data, device_data, std::size_t(n), detail::nccl_type<T>(), root, comm_, stream_),
          "ncclBroadcast");
  }

  // Communicator interface (device pointers): enqueue, then wait under the watchdog.
  template <class T>
  void allreduce_sum(T* device_data, index_t n) {
    allreduce_sum_async(device_data, n);
    synchronize("allreduce");
  }
  template <class T>
  void broadcast(T* device_data, index_t n, int root = 0) {
    broadcast_async(device_data, n, root);
    synchronize("broadcast");
  }
  void barrier() {
    synchronize("barrier");
    mpi_->barrier();
  }

  // Waits for the stream while watching NCCL's asynchronous errors and the deadline of the MPI
  // communicator's timeout; a peer that died leaves NCCL kernels spinning, so past the deadline the
  // NCCL communicator is aborted and the job ended with a message naming the operation.
  void synchronize(const char* op = "synchronize") {
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    const double timeout = mpi_->options().timeout_s;
    auto sleep = std::chrono::microseconds(1);
    for (;;) {
      const cudaError_t q = cudaStreamQuery(stream_);
      if (q == cudaSuccess) return;
      if (q != cudaErrorNotReady) LONGSEQ_CUDA_CHECK(q);
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm_, &async);
      if (async != ncclSuccess) {
        ncclCommAbort(comm_);
        comm_ = nullptr;
        mpi_->abort(std::string("NCCL ") + op + " failed: " + ncclGetErrorString(async));
      }
      if (timeout > 0 && std::chrono::duration<double>(clock::now() - t0).count() > timeout) {
        ncclCommAbort(comm_);
        comm_ = nullptr;
        char msg[256];
        std::snprintf(msg, sizeof msg, "NCCL %s on GPU %d did not complete within %.1f s; another rank has died or "
                      "stopped calling collectives", op, device_, timeout);
        mpi_->abort(msg, 3);
      }
      std::this_thread::sleep_for(sleep);
      sleep = std::min(sleep * 2, std::chrono::microseconds(1000));
    }
  }

 private:
  void check(ncclResult_t r, const char* call) const {
    LONGSEQ_CHECK(r == ncclSuccess, "NcclCommunicator (rank ", mpi_->rank(), "): ", call, " failed: ",
                  ncclGetErrorString(r));
  }

  MpiCommunicator* mpi_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  int device_ = 0, local_rank_ = 0;
};

static_assert(Communicator<NcclCommunicator>, "NcclCommunicator must satisfy train::Communicator");

}  // namespace longseq::train
