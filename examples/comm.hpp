// The trainers' communicator: one type for the whole program (so fit is instantiated once per model), a single
// process, or MPI when the program was launched by mpirun with more than one rank. In a CUDA build with NCCL, a
// device model's gradients and parameters go between the GPUs through NCCL (use_gpu, on the first device stage);
// without NCCL, fit stages them through host memory (train::Staging).
#pragma once
#include <algorithm>
#include <cstdlib>
#include <memory>

#include <longseq/core/shape.hpp>
#include <longseq/train/distributed.hpp>
#ifdef LONGSEQ_WITH_MPI
#include <longseq/train/distributed_mpi.hpp>
#endif
#if defined(LONGSEQ_WITH_NCCL) && defined(__CUDACC__)
#define EXAMPLES_COMM_NCCL 1
#include <cuda_runtime.h>

#include <longseq/core/cuda/check.cuh>
#include <longseq/train/cuda/nccl_data_parallel.cuh>
#endif

namespace examples {

using longseq::index_t;
namespace train = longseq::train;

class Comm {
 public:
  Comm() {
#ifdef LONGSEQ_WITH_MPI
    if (launched_ranks() > 1) mpi_ = std::make_unique<train::MpiCommunicator>();
#endif
  }
  int rank() const {
#ifdef LONGSEQ_WITH_MPI
    if (mpi_) return mpi_->rank();
#endif
    return 0;
  }
  int size() const {
#ifdef LONGSEQ_WITH_MPI
    if (mpi_) return mpi_->size();
#endif
    return 1;
  }
  template <class T>
  void allreduce_sum(T* p, index_t n) {
#ifdef LONGSEQ_WITH_MPI
    if (mpi_) mpi_->allreduce_sum(p, n);
#endif
    (void)p, (void)n;
  }
  template <class T>
  void broadcast(T* p, index_t n, int root = 0) {
#ifdef LONGSEQ_WITH_MPI
    if (mpi_) mpi_->broadcast(p, n, root);
#endif
    (void)p, (void)n, (void)root;
  }
  void barrier() {
#ifdef LONGSEQ_WITH_MPI
    if (mpi_) mpi_->barrier();
#endif
  }
#ifdef EXAMPLES_COMM_NCCL
  // Several ranks training on the GPU: NCCL between the ranks' current devices (the trainers' dispatch has
  // selected each rank's), set up once. One process, or MPI without NCCL: nothing to do.
  void use_gpu() {
    if (!mpi_ || nccl_) return;
    int device = 0;
    LONGSEQ_CUDA_CHECK(cudaGetDevice(&device));
    nccl_ = std::make_unique<train::NcclCommunicator>(*mpi_, nullptr, device);
    gpus_ = std::make_unique<train::NcclDataParallel>(*mpi_, *nccl_);
  }
  // The device collectives use_gpu set up; fit needs them only on several ranks, after run_stage's use_gpu.
  train::NcclDataParallel& gpus() {
    LONGSEQ_CHECK(gpus_ != nullptr, "examples::Comm: a device model on ", size(),
                  " ranks needs use_gpu() before training (NCCL is set up there)");
    return *gpus_;
  }
#endif
  // Ranks announced by the launcher (Open MPI, MPICH/PMI); 1 when started directly.
  static int launched_ranks() {
    for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
      if (const char* e = std::getenv(v)) return std::max(1, std::atoi(e));
    return 1;
  }

 private:
#ifdef LONGSEQ_WITH_MPI
  std::unique_ptr<train::MpiCommunicator> mpi_;
#endif
#ifdef EXAMPLES_COMM_NCCL
  std::unique_ptr<train::NcclCommunicator> nccl_;  // after mpi_: destroyed before it
  std::unique_ptr<train::NcclDataParallel> gpus_;
#endif
};
static_assert(train::Communicator<Comm>, "Comm must satisfy train::Communicator");

#ifdef EXAMPLES_COMM_NCCL
// A device store's collectives, found by train::fit through argument-dependent lookup: NCCL in device memory.
template <class T>
void allreduce_gradients(Comm& c, longseq::ParamStore<T, longseq::device::cuda>& store) {
  train::allreduce_gradients(c.gpus(), store);
}
template <class T>
void broadcast_parameters(Comm& c, longseq::ParamStore<T, longseq::device::cuda>& store) {
  train::broadcast_parameters(c.gpus(), store);
}
#endif

}  // namespace examples
