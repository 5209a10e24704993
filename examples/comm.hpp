// The trainers' communicator: one type for the whole program (so fit is instantiated once per model), a single
// process, or MPI when the program was launched by mpirun with more than one rank.
#pragma once
#include <algorithm>
#include <cstdlib>
#include <memory>

#include <longseq/core/shape.hpp>
#include <longseq/train/distributed.hpp>
#ifdef LONGSEQ_WITH_MPI
#include <longseq/train/distributed_mpi.hpp>
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
};
static_assert(train::Communicator<Comm>, "Comm must satisfy train::Communicator");

}  // namespace examples
