// The ssm::KernelParameterization concept: a type that owns SSM parameters and produces the (C, H, L)
// convolution kernel with an explicit backward; plus helpers shared by the parameterizations.
#pragma once
#include <cmath>
#include <complex>
#include <concepts>
#include <string_view>

#include "../core/context.hpp"
#include "../core/parameters.hpp"
#include "../core/rng.hpp"
#include "../core/tensor.hpp"

namespace longseq::ssm {

// A visitor of the shape every parameters() walk receives: f(name, Param&).
template <class T>
struct KernelParamVisitor {
  void operator()(std::string_view, Param<T>&) const {}
};

template <class K>
concept HasKernelTypes = requires {
  typename K::value_type;
  typename K::Config;
  typename K::Saved;
}
&&std::default_initializable<typename K::Saved>;

template <class K>
concept HasKernelShape = requires(const K& k) {
  { k.channels() } -> std::convertible_to<index_t>;  // C: 1, or 2 for a bidirectional layer
  { k.width() } -> std::convertible_to<index_t>;     // H
};

template <class K>
concept HasKernelParameters = requires(K& k, KernelParamVisitor<typename K::value_type> f, Rng& rng) {
  k.parameters(f);
  k.init(rng);
};

template <class K>
concept HasKernelForward = requires(K& k, Context<device::host>& ctx, index_t L, TensorView<typename K::value_type> out,
                                    typename K::Saved& s) {
  k.kernel_forward(ctx, L, out, s);
};

template <class K>
concept HasKernelBackward = requires(K& k, Context<device::host>& ctx, typename K::Saved& s,
                                     TensorView<const typename K::value_type> dK) {
  k.kernel_backward(ctx, s, dK);
};

// A kernel parameterization: Config of sizes/options, Param slots visited by parameters(f), init(Rng&),
// kernel_forward(ctx, L, K (C, H, L), saved) and kernel_backward(ctx, saved, dK (C, H, L)) which
// accumulates into every parameter's grad.
template <class K>
concept KernelParameterization =
    HasKernelTypes<K> && HasKernelShape<K> && HasKernelParameters<K> && HasKernelForward<K> && HasKernelBackward<K>;

// static_assert(assert_kernel<K>()) names the missing piece instead of printing one long diagnostic.
template <class K>
consteval bool assert_kernel() {
  static_assert(
      HasKernelTypes<K>,
      "ssm::KernelParameterization: the type must declare value_type, Config and a default-constructible Saved");
  if constexpr (HasKernelTypes<K>) {
    static_assert(HasKernelShape<K>,
                  "ssm::KernelParameterization: missing `index_t channels() const` and `index_t width() const`");
    static_assert(
        HasKernelParameters<K>,
        "ssm::KernelParameterization: missing `template <class F> void parameters(F&&)` or `void init(Rng&)`");
    static_assert(HasKernelForward<K>,
                  "ssm::KernelParameterization: missing `void kernel_forward(Context<host>&, index_t L, TensorView<T> "
                  "K, Saved&)`");
    static_assert(
        HasKernelBackward<K>,
        "ssm::KernelParameterization: missing `void kernel_backward(Context<host>&, Saved&, TensorView<const T> dK)`");
  }
  return KernelParameterization<K>;
}

// Options every parameterization shares: the paper's random-initialization ablation draws every
// parameter from N(0, sigma) instead of the structured initialization.
struct RandomInit {
  bool enabled = false;
  double sigma = 0.1;
};

namespace detail {

// Complex parameters are stored as real tensors with a trailing dimension of 2 (re, im).
template <class T>
std::complex<T>* as_complex(TensorView<T> v) {
  return reinterpret_cast<std::complex<T>*>(v.data);
}

template <class T>
void fill_normal(TensorView<T> v, Rng& rng, double mean, double sigma) {
  for (index_t i = 0; i < v.numel(); ++i) v.data[i] = T(rng.normal(mean, sigma));
}

// log dt per channel, log-uniform in [dt_min, dt_max].
template <class T>
void init_log_dt(TensorView<T> log_dt, Rng& rng, double dt_min, double dt_max) {
  for (index_t i = 0; i < log_dt.numel(); ++i) log_dt.data[i] = T(rng.uniform(std::log(dt_min), std::log(dt_max)));
}

template <class Model>
void random_init_all(Model& m, Rng& rng, double sigma) {
  m.parameters([&](std::string_view, auto& p) { fill_normal(p.value, rng, 0.0, sigma); });
}

inline void check_dt_range(double dt_min, double dt_max, const char* who) {
  LONGSEQ_CHECK(dt_min > 0 && dt_max >= dt_min, who, ": dt range [", dt_min, ", ", dt_max,
                "] is invalid, expected 0 < dt_min <= dt_max");
}

template <class T>
void check_kernel_out(const TensorView<T>& K, index_t C, index_t H, index_t L, const char* who,
                      std::source_location loc = std::source_location::current()) {
  LONGSEQ_CHECK(L >= 1, who, ": kernel length L = ", L, ", expected L >= 1");
  expect_shape(K, Shape{C, H, L}, "K", loc);
  expect_contiguous(K, "K", loc);
}

}  // namespace detail
}  // namespace longseq::ssm
