// Data parallelism without a transport: the Communicator concept, the single-process default,
// deterministic batch sharding, rank-aware logging and the reduction of evaluation metrics.
// MPI lives in distributed_mpi.hpp, NCCL in distributed_nccl.cuh.
#pragma once
#include <algorithm>
#include <array>
#include <concepts>
#include <cstdarg>
#include <cstdio>
#include <string_view>

#include "../core/parameters.hpp"
#include "../heads/losses.hpp"

namespace longseq::train {

// What the trainer needs from a group of ranks. Buffers are (pointer, count) in the memory the
// communicator works on (host for MPI, device for NCCL). All ranks must call every collective in the
// same order with the same counts; a rank that stops calling is reported by the communicator's
// watchdog instead of hanging the others (see MpiCommunicator::Options::timeout_s).
template <class C>
concept Communicator = requires(C& c, const C& cc, float* f, double* d, index_t n, int root) {
  { cc.rank() } -> std::convertible_to<int>;
  { cc.size() } -> std::convertible_to<int>;
  c.allreduce_sum(f, n);  // in place; every rank gets the sum
  c.allreduce_sum(d, n);
  c.broadcast(f, n, root);  // in place; every rank gets root's values
  c.broadcast(d, n, root);
  c.barrier();
};

// One process, the default: every collective is the identity.
struct SingleProcess {
  int rank() const { return 0; }
  int size() const { return 1; }
  template <class T>
  void allreduce_sum(T*, index_t) {}
  template <class T>
  void broadcast(T*, index_t, int root = 0) {
    LONGSEQ_CHECK(root == 0, "SingleProcess::broadcast: root ", root, " does not exist (one rank)");
  }
  void barrier() {}
};
static_assert(Communicator<SingleProcess>, "SingleProcess must satisfy train::Communicator");

// A communicator that can reduce the gradients in buckets while the backward still runs (see
// MpiCommunicator::attach_gradients for the protocol). train::fit uses it when available.
template <class C, class T>
concept BucketedCommunicator = Communicator<C> && requires(C& c, ParamStore<T>& store, index_t offset) {
  c.attach_gradients(store);
  c.start_buckets_from(offset);
  c.poll();
  c.finish();
  c.detach_gradients();
};

// Flat offset of the first gradient element of `part` in `store` (the store's size when the part has
// no parameters). After part's backward, every element from there on is final when parts run their
// backward in reverse parameters() order (models::Model::backward's done hook).
template <class L, class T>
index_t first_grad_offset(L& part, ParamStore<T>& store) {
  const T* base = store.grads().data;
  index_t first = store.grads().numel();
  part.parameters([&](std::string_view, auto& p) {
    if (p.grad.data != nullptr) first = std::min(first, index_t(p.grad.data - base));
  });
  return first;
}

template <Communicator C>
bool is_root(const C& c) {
  return c.rank() == 0;
}

// ---- sharding -------------------------------------------------------------------------------------

// The part of a global batch one rank computes: rows [begin, begin + count) and the weight to put on
// the gradient of its per-shard MEAN loss so that the all-reduced SUM equals the gradient of the mean
// loss over the whole batch: weight = count / B.
struct Shard {
  index_t begin = 0, count = 0;
  double weight = 0;
  index_t end() const { return begin + count; }
};

// Rank r of R takes a fixed contiguous slice of a batch of B rows; the first B % R ranks take one row
// more, so slices differ by at most one row and the concatenation in rank order is the batch. A rank
// may get zero rows when B < R; it must still join every collective (its gradient is zero).
inline Shard shard(index_t batch, int ranks, int rank) {
  LONGSEQ_CHECK(ranks >= 1 && rank >= 0 && rank < ranks, "shard: rank ", rank, " of ", ranks, " does not exist");
  LONGSEQ_CHECK(batch >= 0, "shard: batch size must be >= 0, got ", batch);
  const index_t base = batch / ranks, extra = batch % ranks;
  Shard s;
  s.count = base + (rank < extra ? 1 : 0);
  s.begin = rank * base + std::min<index_t>(rank, extra);
  s.weight = batch > 0 ? double(s.count) / double(batch) : 0.0;
  return s;
}

template <Communicator C>
Shard shard(index_t batch, const C& c) {
  return shard(batch, c.size(), c.rank());
}

// When the loss is a mean over counted rows or positions and the counts differ between ranks (masked
// denoising positions, ignore_index targets, padding), the right weight of a rank's mean loss is its
// share of the counted items, local_count / (sum over ranks), not its share of rows. A scalar all-reduce
// per micro-batch, before the backward; 0 when no rank counted anything.
template <Communicator C>
double count_weight(C& c, double local_count) {
  double total = local_count;
  c.allreduce_sum(&total, 1);
  return total > 0 ? local_count / total : 0.0;
}

// ---- parameters and gradients ---------------------------------------------------------------------

// Makes every rank start from rank 0's parameters (call after init, before the first step).
template <Communicator C, class T>
void broadcast_parameters(C& c, ParamStore<T>& store) {
  auto v = store.values();
  c.broadcast(v.data, v.numel(), 0);
}

// Sums the flat gradient buffer over ranks. With each rank's backward scaled by its Shard::weight the
// sum is the gradient of the combined batch; with equal shards and unscaled backwards use
// allreduce_mean_gradients instead.
template <Communicator C, class T>
void allreduce_gradients(C& c, ParamStore<T>& store) {
  auto g = store.grads();
  c.allreduce_sum(g.data, g.numel());
}

template <Communicator C, class T>
void allreduce_mean_gradients(C& c, ParamStore<T>& store) {
  auto g = store.grads();
  c.allreduce_sum(g.data, g.numel());
  if (c.size() > 1) {
    const T inv = T(1) / T(c.size());
    for (index_t i = 0; i < g.numel(); ++i) g.data[i] *= inv;
  }
}

// ---- metrics --------------------------------------------------------------------------------------

// Combines every rank's statistics into those of the union of their examples (counts and sums add,
// the mean loss is re-weighted by counts); every rank gets the result.
template <Communicator C>
heads::LossStats allreduce_stats(C& c, const heads::LossStats& s) {
  std::array<double, 7> v{s.loss * s.count, s.count, s.correct, s.abs_err, s.sq_err, s.target_sum, s.target_sq};
  c.allreduce_sum(v.data(), index_t(v.size()));
  heads::LossStats r;
  r.count = v[1];
  r.loss = r.count > 0 ? v[0] / r.count : 0.0;
  r.correct = v[2];
  r.abs_err = v[3];
  r.sq_err = v[4];
  r.target_sum = v[5];
  r.target_sq = v[6];
  return r;
}

// Sum of one number over ranks (throughput, token counts).
template <Communicator C>
double allreduce_sum(C& c, double x) {
  c.allreduce_sum(&x, 1);
  return x;
}

// ---- logging --------------------------------------------------------------------------------------

// printf to stderr on rank 0 only; other ranks stay silent so a run prints one progress line.
template <Communicator C>
void root_printf(const C& c, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
template <Communicator C>
void root_printf(const C& c, const char* fmt, ...) {
  if (!is_root(c)) return;
  va_list args;
  va_start(args, fmt);
  std::vfprintf(stderr, fmt, args);
  va_end(args);
}

}  // namespace longseq::train
