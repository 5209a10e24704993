// A cache of FFTW plans for batched real transforms, keyed by (precision, direction, n, batch).
#pragma once
#include <complex>
#include <cstddef>
#include <map>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <utility>

#include <fftw3.h>

#include "error.hpp"
#include "shape.hpp"

namespace longseq {

// FFTW's planner (and plan destruction) is not thread safe, whichever cache or context calls it;
// executing a finished plan is. One process-wide mutex therefore guards every planner call.
inline std::mutex& fftw_planner_mutex() {
  static std::mutex m;
  return m;
}

// The FFTW entry points for one precision.
template <class T> struct fftw_api;
template <> struct fftw_api<float> {
  using plan = fftwf_plan;
  using complex = fftwf_complex;
  static constexpr int precision = 1;
  static plan r2c(int n, int howmany, float* in, complex* out, unsigned flags) {
    return fftwf_plan_many_dft_r2c(1, &n, howmany, in, nullptr, 1, n, out, nullptr, 1, n / 2 + 1, flags);
  }
  static plan c2r(int n, int howmany, complex* in, float* out, unsigned flags) {
    return fftwf_plan_many_dft_c2r(1, &n, howmany, in, nullptr, 1, n / 2 + 1, out, nullptr, 1, n, flags);
  }
  static void exec_r2c(plan p, float* in, std::complex<float>* out) {
    fftwf_execute_dft_r2c(p, in, reinterpret_cast<complex*>(out));
  }
  static void exec_c2r(plan p, std::complex<float>* in, float* out) {
    fftwf_execute_dft_c2r(p, reinterpret_cast<complex*>(in), out);
  }
  static void destroy(plan p) { fftwf_destroy_plan(p); }
  static void* malloc(std::size_t bytes) { return fftwf_malloc(bytes); }
  static void free(void* p) { fftwf_free(p); }
};
template <> struct fftw_api<double> {
  using plan = fftw_plan;
  using complex = fftw_complex;
  static constexpr int precision = 2;
  static plan r2c(int n, int howmany, double* in, complex* out, unsigned flags) {
    return fftw_plan_many_dft_r2c(1, &n, howmany, in, nullptr, 1, n, out, nullptr, 1, n / 2 + 1, flags);
  }
  static plan c2r(int n, int howmany, complex* in, double* out, unsigned flags) {
    return fftw_plan_many_dft_c2r(1, &n, howmany, in, nullptr, 1, n / 2 + 1, out, nullptr, 1, n, flags);
  }
  static void exec_r2c(plan p, double* in, std::complex<double>* out) {
    fftw_execute_dft_r2c(p, in, reinterpret_cast<complex*>(out));
  }
  static void exec_c2r(plan p, std::complex<double>* in, double* out) {
    fftw_execute_dft_c2r(p, reinterpret_cast<complex*>(in), out);
  }
  static void destroy(plan p) { fftw_destroy_plan(p); }
  static void* malloc(std::size_t bytes) { return fftw_malloc(bytes); }
  static void free(void* p) { fftw_free(p); }
};

// Which transform a plan performs: real -> half spectrum (n/2+1 bins), or back (unnormalized).
enum class FftDir : int { r2c, c2r };

// Plans are made with FFTW_ESTIMATE (no timing runs, arrays untouched) and FFTW_UNALIGNED so that
// they can be executed on any arrays of the planned layout through the new-array execute calls.
// Aligned plans (aligned = true) leave FFTW_UNALIGNED out, so FFTW may use its SIMD codelets (about
// twice as fast); they must only be executed on arrays aligned to fft_alignment bytes.
// Rows are contiguous: row b of the real side starts at b*n, of the complex side at b*(n/2+1).
// The c2r plans may overwrite their complex input (FFTW's default for c2r).
inline constexpr std::size_t fft_alignment = 64;  // at least FFTW's SIMD alignment on every target

class FftwPlans {
 public:
  FftwPlans() = default;
  FftwPlans(const FftwPlans&) = delete;
  FftwPlans& operator=(const FftwPlans&) = delete;
  FftwPlans(FftwPlans&& o) noexcept {
    std::lock_guard lock(fftw_planner_mutex());
    plans_ = std::move(o.plans_);
    o.plans_.clear();
  }
  FftwPlans& operator=(FftwPlans&& o) noexcept {
    if (this != &o) {
      std::lock_guard lock(fftw_planner_mutex());
      destroy_all();
      plans_ = std::move(o.plans_);
      o.plans_.clear();
    }
    return *this;
  }
  ~FftwPlans() {
    std::lock_guard lock(fftw_planner_mutex());
    destroy_all();
  }

  // The plan for `batch` transforms of length n in direction dir, made on first use.
  template <class T>
  typename fftw_api<T>::plan get(FftDir dir, index_t n, index_t batch, bool aligned = false) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "FFTW plans exist for float and double only; convert reduced precision first");
    using api = fftw_api<T>;
    LONGSEQ_CHECK(n >= 1 && batch >= 1, "FFT of length ", n, " and batch ", batch,
                  " requested; both must be positive");
    LONGSEQ_CHECK(n <= index_t(1) << 30 && batch <= index_t(1) << 30, "FFT of length ", n, " and batch ",
                  batch, " exceeds FFTW's int sizes");
    Key key{api::precision, int(dir), n, batch, aligned};
    std::lock_guard lock(fftw_planner_mutex());
    if (auto it = plans_.find(key); it != plans_.end()) return static_cast<typename api::plan>(it->second.plan);
    // Planning with FFTW_ESTIMATE reads no data; scratch arrays only fix the layout.
    std::size_t real = std::size_t(n * batch), cplx = std::size_t((n / 2 + 1) * batch);
    T* r = static_cast<T*>(api::malloc(real * sizeof(T)));
    auto* c = static_cast<typename api::complex*>(api::malloc(cplx * sizeof(typename api::complex)));
    unsigned flags = aligned ? FFTW_ESTIMATE : FFTW_ESTIMATE | FFTW_UNALIGNED;
    typename api::plan p = dir == FftDir::r2c ? api::r2c(int(n), int(batch), r, c, flags)
                                              : api::c2r(int(n), int(batch), c, r, flags);
    api::free(r);
    api::free(c);
    LONGSEQ_CHECK(p != nullptr, "FFTW could not plan a ", dir == FftDir::r2c ? "r2c" : "c2r",
                  " transform of length ", n, " and batch ", batch);
    plans_.emplace(key, Entry{static_cast<void*>(p), api::precision});
    return p;
  }
  std::size_t size() const {
    std::lock_guard lock(fftw_planner_mutex());
    return plans_.size();
  }

 private:
  using Key = std::tuple<int, int, index_t, index_t, bool>;
  struct Entry {
    void* plan;
    int precision;
  };
  void destroy_all() {
    for (auto& [key, e] : plans_) {
      if (e.precision == 1) fftw_api<float>::destroy(static_cast<fftwf_plan>(e.plan));
      else fftw_api<double>::destroy(static_cast<fftw_plan>(e.plan));
    }
    plans_.clear();
  }
  std::map<Key, Entry> plans_;
};

}  // namespace longseq
