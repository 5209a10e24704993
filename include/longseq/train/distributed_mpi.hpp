// MpiCommunicator: data-parallel collectives between host processes through MPI (Open MPI), with
// bucketed non-blocking gradient all-reduce and a watchdog that aborts the job, with a message naming
// the operation and the waiting rank, when a collective does not complete in time (a dead or stuck peer).
#pragma once
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "distributed.hpp"

namespace longseq::train {

namespace detail {

template <class T>
MPI_Datatype mpi_type() {
  if constexpr (std::is_same_v<T, float>) return MPI_FLOAT;
  else if constexpr (std::is_same_v<T, double>) return MPI_DOUBLE;
  else if constexpr (std::is_same_v<T, std::int32_t>) return MPI_INT32_T;
  else if constexpr (std::is_same_v<T, std::int64_t>) return MPI_INT64_T;
  else static_assert(sizeof(T) == 0, "MpiCommunicator: element type must be float, double, int32 or int64");
}

inline std::string mpi_error_string(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, buf, &len);
  return std::string(buf, std::size_t(len));
}

// Seconds from LONGSEQ_DIST_TIMEOUT_S when set, else 600 (long enough for rank 0 to write a checkpoint
// while the others already wait in the next collective).
inline double default_dist_timeout() {
  if (const char* e = std::getenv("LONGSEQ_DIST_TIMEOUT_S")) {
    char* end = nullptr;
    const double v = std::strtod(e, &end);
    if (end != e) return v;
  }
  return 600.0;
}

}  // namespace detail

class MpiCommunicator {
 public:
  struct Options {
    MPI_Comm comm = MPI_COMM_WORLD;               // duplicated, so our traffic never matches the caller's
    double timeout_s = detail::default_dist_timeout();  // per collective; <= 0 waits forever
    std::size_t bucket_bytes = std::size_t(4) << 20;     // gradient all-reduce granularity
  };

  MpiCommunicator() : MpiCommunicator(Options{}) {}
  // Initializes MPI when the caller has not (and then finalizes it in the destructor).
  explicit MpiCommunicator(Options o) : opt_(o) {
    int init = 0;
    MPI_Initialized(&init);
    if (!init) {
      int provided = 0;
      MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
      owns_mpi_ = true;
    }
    LONGSEQ_CHECK(opt_.bucket_bytes > 0, "MpiCommunicator: bucket_bytes must be > 0");
    check(MPI_Comm_dup(opt_.comm, &comm_), "MPI_Comm_dup");
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;
  ~MpiCommunicator() {
    int fin = 0;
    MPI_Finalized(&fin);
    if (fin) return;
    detach_gradients();
    if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
    if (owns_mpi_) MPI_Finalize();
  }

  int rank() const { return rank_; }
  int size() const { return size_; }
  MPI_Comm comm() const { return comm_; }
  const Options& options() const { return opt_; }
  void set_timeout(double seconds) { opt_.timeout_s = seconds; }

  // ---- blocking collectives (each waits under the watchdog) ----

  template <class T>
  void allreduce_sum(T* data, index_t n) {
    expect_idle("allreduce");
    for (index_t off = 0; off < n; off += chunk_limit) {
      const int c = int(std::min<index_t>(chunk_limit, n - off));
      MPI_Request req;
      check(MPI_Iallreduce(MPI_IN_PLACE, data + off, c, detail::mpi_type<T>(), MPI_SUM, comm_, &req), "MPI_Iallreduce");
      wait(&req, 1, "allreduce");
    }
  }
  template <class T>
  void broadcast(T* data, index_t n, int root = 0) {
    expect_idle("broadcast");
    check_root(root, "broadcast");
    for (index_t off = 0; off < n; off += chunk_limit) {
      const int c = int(std::min<index_t>(chunk_limit, n - off));
      MPI_Request req;
      check(MPI_Ibcast(data + off, c, detail::mpi_type<T>(), root, comm_, &req), "MPI_Ibcast");
      wait(&req, 1, "broadcast");
    }
  }
  // Sum onto `root` only (others' buffers are unchanged).
  template <class T>
  void reduce_sum(T* data, index_t n, int root = 0) {
    expect_idle("reduce");
    check_root(root, "reduce");
    for (index_t off = 0; off < n; off += chunk_limit) {
      const int c = int(std::min<index_t>(chunk_limit, n - off));
      MPI_Request req;
      const void* send = rank_ == root ? MPI_IN_PLACE : static_cast<const void*>(data + off);
      check(MPI_Ireduce(send, data + off, c, detail::mpi_type<T>(), MPI_SUM, root, comm_, &req), "MPI_Ireduce");
      wait(&req, 1, "reduce");
    }
  }
  void barrier() {
    expect_idle("barrier");
    MPI_Request req;
    check(MPI_Ibarrier(comm_, &req), "MPI_Ibarrier");
    wait(&req, 1, "barrier");
  }

  // Prints `why` and ends every rank of the job (use when this rank cannot continue, so that its peers
  // do not wait for it until their timeout).
  [[noreturn]] void abort(const std::string& why, int code = 1) {
    std::fprintf(stderr, "longseq: rank %d of %d: %s; aborting all ranks\n", rank_, size_, why.c_str());
    std::fflush(stderr);
    MPI_Abort(comm_ != MPI_COMM_NULL ? comm_ : MPI_COMM_WORLD, code);
    std::abort();
  }

  // ---- bucketed gradient all-reduce ----
  //
  // attach_gradients splits the flat gradient buffer into buckets of Options::bucket_bytes. Per step:
  // start_bucket(i) (or start_buckets_from(offset)) as soon as bucket i's gradients are final, then
  // finish() starts the rest and waits for all; afterwards every rank holds the sum over ranks.
  // Layer-order condition: ParamStore lays parameters out in the order parameters() visits them (input
  // side first) and backward visits layers in reverse, so after the backward of the layer whose first
  // parameter sits at flat offset o (and of every layer after it) all elements >= o are final, and
  // start_buckets_from(o) may start every bucket lying wholly at or after o. A bucket must not start
  // before its last micro-batch's backward (gradient accumulation), shared weights must be final, and
  // every rank must start buckets in the same order (same model, same calls), as MPI requires of
  // non-blocking collectives. Open MPI moves data mostly inside MPI calls, so poll() between layers
  // lets started buckets progress during the remaining backward.

  template <class T>
  void attach_gradients(T* data, index_t n) {
    expect_idle("attach_gradients");
    attached_ = true;
    grad_ = data;
    grad_type_ = detail::mpi_type<T>();
    grad_elem_ = sizeof(T);
    grad_n_ = n;
    bucket_elems_ = std::max<index_t>(1, index_t(opt_.bucket_bytes / sizeof(T)));
    bucket_elems_ = std::min<index_t>(bucket_elems_, chunk_limit);
    const index_t nb = n == 0 ? 0 : (n + bucket_elems_ - 1) / bucket_elems_;
    requests_.assign(std::size_t(nb), MPI_REQUEST_NULL);
    started_.assign(std::size_t(nb), 0);
    in_flight_ = 0;
  }
  template <class T>
  void attach_gradients(ParamStore<T>& store) {
    auto g = store.grads();
    attach_gradients(g.data, g.numel());
  }

  index_t num_buckets() const { return index_t(requests_.size()); }
  // Flat element range [first, second) of bucket i.
  std::pair<index_t, index_t> bucket_range(index_t i) const {
    check_bucket(i);
    return {i * bucket_elems_, std::min(grad_n_, (i + 1) * bucket_elems_)};
  }

  void start_bucket(index_t i) {
    check_bucket(i);
    LONGSEQ_CHECK(!started_[std::size_t(i)], "MpiCommunicator::start_bucket: bucket ", i,
                  " was already started in this step (call finish() first)");
    const auto [b, e] = bucket_range(i);
    char* p = static_cast<char*>(grad_) + std::size_t(b) * grad_elem_;
    check(MPI_Iallreduce(MPI_IN_PLACE, p, int(e - b), grad_type_, MPI_SUM, comm_, &requests_[std::size_t(i)]),
          "MPI_Iallreduce");
    started_[std::size_t(i)] = 1;
    ++in_flight_;
  }
  // Starts, from the last bucket down, every not yet started bucket that lies wholly at or after `offset`.
  void start_buckets_from(index_t offset) {
    for (index_t i = num_buckets() - 1; i >= 0; --i) {
      if (bucket_range(i).first < offset) break;
      if (!started_[std::size_t(i)]) start_bucket(i);
    }
  }
  // Lets started buckets progress (cheap; call between layers of the backward).
  void poll() {
    if (in_flight_ == 0) return;
    int flag = 0;
    MPI_Testall(int(requests_.size()), requests_.data(), &flag, MPI_STATUSES_IGNORE);
  }
  // Starts the buckets not started yet (last to first) and waits for every bucket.
  void finish() {
    LONGSEQ_CHECK(attached_, "MpiCommunicator::finish: call attach_gradients first");
    stats_.early += in_flight_;
    stats_.buckets += num_buckets();
    ++stats_.steps;
    for (index_t i = num_buckets() - 1; i >= 0; --i)
      if (!started_[std::size_t(i)]) start_bucket(i);
    wait(requests_.data(), int(requests_.size()), "bucketed gradient allreduce");
    std::fill(started_.begin(), started_.end(), 0);
    in_flight_ = 0;
  }
  // Forgets the attached buffer. Buckets still in flight (an exception left a step early) point into
  // it, so they are completed first.
  void detach_gradients() {
    if (in_flight_ > 0) {
      for (index_t i = num_buckets() - 1; i >= 0; --i)
        if (!started_[std::size_t(i)]) start_bucket(i);
      wait(requests_.data(), int(requests_.size()), "bucketed gradient allreduce (left unfinished)");
    }
    attached_ = false;
    grad_ = nullptr;
    grad_n_ = 0;
    requests_.clear();
    started_.clear();
    in_flight_ = 0;
  }
  // Counts since construction: finished steps, buckets reduced, and how many of those were started
  // before finish(), i.e. overlapped with the backward.
  struct BucketStats {
    index_t steps = 0, buckets = 0, early = 0;
  };
  const BucketStats& bucket_stats() const { return stats_; }

 private:
  static constexpr index_t chunk_limit = index_t(1) << 30;  // MPI counts are int

  void check(int rc, const char* call) const {
    LONGSEQ_CHECK(rc == MPI_SUCCESS, "MpiCommunicator (rank ", rank_, " of ", size_, "): ", call, " failed: ",
                  detail::mpi_error_string(rc));
  }
  void check_root(int root, const char* op) const {
    LONGSEQ_CHECK(root >= 0 && root < size_, "MpiCommunicator::", op, ": root ", root, " is not a rank of ", size_);
  }
  void check_bucket(index_t i) const {
    LONGSEQ_CHECK(i >= 0 && i < num_buckets(), "MpiCommunicator: bucket ", i, " does not exist (", num_buckets(),
                  " buckets; call attach_gradients first)");
  }
  // Collectives on one communicator must be issued in the same order on every rank; mixing a blocking
  // one into a step whose buckets are in flight would make that order depend on timing.
  void expect_idle(const char* op) const {
    LONGSEQ_CHECK(in_flight_ == 0, "MpiCommunicator::", op, ": ", in_flight_,
                  " gradient buckets are still in flight; call finish() first");
  }

  // Polls until all requests complete; past the deadline, names the operation and aborts the job:
  // a peer that died or stopped calling collectives would otherwise leave this rank waiting forever.
  void wait(MPI_Request* reqs, int n, const char* op) {
    ++collective_;
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    auto sleep = std::chrono::microseconds(1);
    for (;;) {
      int flag = 0;
      const int rc = MPI_Testall(n, reqs, &flag, MPI_STATUSES_IGNORE);
      if (rc != MPI_SUCCESS)
        abort("MPI " + std::string(op) + " (collective #" + std::to_string(collective_) +
              ") failed: " + detail::mpi_error_string(rc));
      if (flag) return;
      const double waited = std::chrono::duration<double>(clock::now() - t0).count();
      if (opt_.timeout_s > 0 && waited > opt_.timeout_s) {
        char msg[512];
        std::snprintf(msg, sizeof msg,
                      "MPI %s (collective #%lld) did not complete within %.1f s; another rank has died or "
                      "stopped calling collectives (timeout: MpiCommunicator::Options::timeout_s or "
                      "LONGSEQ_DIST_TIMEOUT_S)",
                      op, static_cast<long long>(collective_), opt_.timeout_s);
        abort(msg, 3);
      }
      std::this_thread::sleep_for(sleep);
      sleep = std::min(sleep * 2, std::chrono::microseconds(1000));
    }
  }

  Options opt_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  bool owns_mpi_ = false;
  std::int64_t collective_ = 0;

  bool attached_ = false;
  void* grad_ = nullptr;
  MPI_Datatype grad_type_ = MPI_DATATYPE_NULL;
  std::size_t grad_elem_ = 0;
  index_t grad_n_ = 0, bucket_elems_ = 1;
  std::vector<MPI_Request> requests_;
  std::vector<char> started_;
  index_t in_flight_ = 0;
  BucketStats stats_;
};

static_assert(Communicator<MpiCommunicator>, "MpiCommunicator must satisfy train::Communicator");

}  // namespace longseq::train
