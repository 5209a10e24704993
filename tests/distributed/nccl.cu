// NCCL collectives across one process per GPU (launched with mpirun -np 2), and train::NcclDataParallel's
// collectives on device stores in float, bf16 and half. Exits 77 (skipped) when
// the job has fewer GPUs than ranks; always compiled where CUDA and NCCL exist, so CI checks the code.
#include <cstdio>
#include <string>
#include <vector>

#include <longseq/nn/linear.hpp>
#include <longseq/train/cuda/nccl_data_parallel.cuh>

using namespace longseq;

namespace {
int failures = 0;
void expect(bool ok, const char* what, int rank) {
  if (!ok) {
    std::fprintf(stderr, "rank %d: FAILED: %s\n", rank, what);
    ++failures;
  }
}
// train::NcclDataParallel on a device store of storage T: the gradients summed over ranks, rank 0's
// parameters everywhere (small integers, exact in bf16 too).
template <class T>
void check_store(train::NcclDataParallel& dp, const char* type) {
  const int r = dp.rank(), n = dp.size();
  nn::Linear<T, device::cuda> layer({5, 3, true});
  ParamStore<T, device::cuda> store;
  store.bind(layer);
  const index_t m = store.count();
  std::vector<T> h(static_cast<std::size_t>(m));
  const auto bytes = sizeof(T) * std::size_t(m);
  for (index_t i = 0; i < m; ++i) h[std::size_t(i)] = T(float(i % 5) * float(r + 1));
  LONGSEQ_CUDA_CHECK(cudaMemcpy(store.grads().data, h.data(), bytes, cudaMemcpyHostToDevice));
  train::allreduce_gradients(dp, store);
  LONGSEQ_CUDA_CHECK(cudaMemcpy(h.data(), store.grads().data, bytes, cudaMemcpyDeviceToHost));
  bool ok = true;
  for (index_t i = 0; i < m; ++i) ok = ok && float(h[std::size_t(i)]) == float(i % 5) * float(n * (n + 1) / 2);
  expect(ok, (std::string("NcclDataParallel: gradients summed, ") + type).c_str(), r);
  for (auto& v : h) v = T(float(r + 1));
  LONGSEQ_CUDA_CHECK(cudaMemcpy(store.values().data, h.data(), bytes, cudaMemcpyHostToDevice));
  train::broadcast_parameters(dp, store);
  LONGSEQ_CUDA_CHECK(cudaMemcpy(h.data(), store.values().data, bytes, cudaMemcpyDeviceToHost));
  ok = true;
  for (auto v : h) ok = ok && float(v) == 1.0f;
  expect(ok, (std::string("NcclDataParallel: rank 0's parameters, ") + type).c_str(), r);
}
}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int code = 0;
  {
    train::MpiCommunicator mpi({.timeout_s = 120});
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess) devices = 0;
    MPI_Comm node;
    MPI_Comm_split_type(mpi.comm(), MPI_COMM_TYPE_SHARED, mpi.rank(), MPI_INFO_NULL, &node);
    int local = 0;
    MPI_Comm_rank(node, &local);
    MPI_Comm_free(&node);
    std::int32_t has_own_gpu = local < devices ? 1 : 0;  // NCCL needs distinct GPUs per rank
    mpi.allreduce_sum(&has_own_gpu, 1);
    if (has_own_gpu < mpi.size()) {
      if (train::is_root(mpi)) std::fprintf(stderr, "skipped: NCCL test needs one GPU per rank\n");
      code = 77;
    } else {
      train::NcclCommunicator nccl(mpi);
      const int r = nccl.rank(), n = nccl.size();
      const index_t len = 1000;
      std::vector<float> h(static_cast<std::size_t>(len));
      for (index_t i = 0; i < len; ++i) h[std::size_t(i)] = float(i % 7) * float(r + 1);
      float* d = nullptr;
      LONGSEQ_CUDA_CHECK(cudaMalloc(&d, sizeof(float) * std::size_t(len)));
      LONGSEQ_CUDA_CHECK(cudaMemcpy(d, h.data(), sizeof(float) * std::size_t(len), cudaMemcpyHostToDevice));
      nccl.allreduce_sum(d, len);
      LONGSEQ_CUDA_CHECK(cudaMemcpy(h.data(), d, sizeof(float) * std::size_t(len), cudaMemcpyDeviceToHost));
      const float sum_ranks = float(n * (n + 1) / 2);
      bool ok = true;
      for (index_t i = 0; i < len; ++i) ok = ok && h[std::size_t(i)] == float(i % 7) * sum_ranks;
      expect(ok, "allreduce_sum of a device buffer", r);
      for (auto& v : h) v = float(r);
      LONGSEQ_CUDA_CHECK(cudaMemcpy(d, h.data(), sizeof(float) * std::size_t(len), cudaMemcpyHostToDevice));
      nccl.broadcast(d, len, n - 1);
      LONGSEQ_CUDA_CHECK(cudaMemcpy(h.data(), d, sizeof(float) * std::size_t(len), cudaMemcpyDeviceToHost));
      ok = true;
      for (auto v : h) ok = ok && v == float(n - 1);
      expect(ok, "broadcast from the last rank", r);
      train::NcclDataParallel dp(mpi, nccl);
      check_store<float>(dp, "float");
      check_store<longseq::bf16>(dp, "bf16");
      check_store<longseq::half>(dp, "half");
      dp.barrier();
      cudaFree(d);
      int failed = failures;
      mpi.allreduce_sum(&failed, 1);
      code = failed ? 1 : 0;
      if (train::is_root(mpi)) std::fprintf(stderr, "NCCL test on %d ranks: %s\n", n, code ? "FAILED" : "passed");
    }
  }
  MPI_Finalize();
  return code;
}
