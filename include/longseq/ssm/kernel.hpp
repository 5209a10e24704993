// The ssm::KernelParameterization concept: a type that owns SSM parameters and produces the (C, H, L)
// convolution kernel with an explicit backward; its refinement ssm::DiagonalKernel, whose kernel is a
// Vandermonde sum of an exposed diagonal form; plus helpers shared by the parameterizations.
#pragma once
#include <cmath>
#include <complex>
#include <concepts>
#include <string_view>
#include <type_traits>
#include <vector>

#include "../core/context.hpp"
#include "../core/parameters.hpp"
#include "../core/rng.hpp"
#include "../core/tensor.hpp"
#include "vandermonde.hpp"

namespace longseq::ssm {

// The device policy a parameterization's parameters live on and its kernel is computed on: its `device_type`,
// or the host for a type that does not declare one.
template <class K>
struct kernel_device {
  using type = device::host;
};
template <class K>
  requires requires { typename K::device_type; }
struct kernel_device<K> {
  using type = typename K::device_type;
};
template <class K>
using kernel_device_t = typename kernel_device<K>::type;

template <class D>
inline constexpr bool on_host = std::is_same_v<D, device::host>;

// A visitor of the shape every parameters() walk receives: f(name, Param&).
template <class T, class D = device::host>
struct KernelParamVisitor {
  void operator()(std::string_view, Param<T, D>&) const {}
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
concept HasKernelParameters =
    requires(K& k, KernelParamVisitor<typename K::value_type, kernel_device_t<K>> f, Rng& rng) {
  k.parameters(f);
  k.init(rng);
};

template <class K>
concept HasKernelForward = requires(K& k, Context<kernel_device_t<K>>& ctx, index_t L,
                                    TensorView<typename K::value_type, kernel_device_t<K>> out, typename K::Saved& s) {
  k.kernel_forward(ctx, L, out, s);
};

template <class K>
concept HasKernelBackward = requires(K& k, Context<kernel_device_t<K>>& ctx, typename K::Saved& s,
                                     TensorView<const typename K::value_type, kernel_device_t<K>> dK) {
  k.kernel_backward(ctx, s, dK);
};

// A kernel parameterization on its device policy D: Config of sizes/options, Param<T, D> slots visited by
// parameters(f), init(Rng&) (host), kernel_forward(Context<D>&, L, K (C, H, L), saved) and
// kernel_backward(Context<D>&, saved, dK (C, H, L)) which accumulates into every parameter's grad.
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
                  "ssm::KernelParameterization: missing `void kernel_forward(Context<D>&, index_t L, TensorView<T, D> "
                  "K, Saved&)`");
    static_assert(HasKernelBackward<K>,
                  "ssm::KernelParameterization: missing `void kernel_backward(Context<D>&, Saved&, "
                  "TensorView<const T, D> dK)`");
  }
  return KernelParameterization<K>;
}

// The parameterization K on device policy D: K itself when it is already there, else K's `on_device<D>` (a
// parameterization named without a policy is on the host, so `S4D<float>` inside a CUDA layer means
// `S4D<float, ZOH, device::cuda>`).
template <class K, class D>
struct kernel_on {
  using type = typename K::template on_device<D>;
};
template <class K, class D>
  requires std::is_same_v<kernel_device_t<K>, D>
struct kernel_on<K, D> {
  using type = K;
};
template <class K, class D>
using kernel_on_t = typename kernel_on<K, D>::type;

// The parameterization K in storage type U (its `with_value<U>`, on K's own policy): the trainers name a kernel
// once, as `S4D<float>`, and build their bf16 models from it.
template <class K, class U>
using kernel_with_value_t = typename K::template with_value<U>;

// A kernel parameterization with a diagonal state: diagonal_form(L) gives the discretized DiagonalForm (the
// recurrent mode runs it step by step); kernel_forward is exactly diagonal_forward(L, d, saved) followed by
// vandermonde_forward(d, K), and kernel_backward is vandermonde_backward followed by
// diagonal_backward(saved, g_coef, g_log_z), which accumulates into the parameters' grads. A host concept (the
// recurrent mode runs it); on the device the same parameterizations build their form with device ops.
template <class K>
concept DiagonalKernel = KernelParameterization<K> && on_host<kernel_device_t<K>> &&
    requires(K& k, const K& ck, index_t L, DiagonalForm<typename K::value_type>& d, typename K::Saved& s,
             const std::vector<std::complex<typename K::value_type>>& g) {
  { ck.diagonal_form(L) } -> std::same_as<DiagonalForm<typename K::value_type>>;
  k.diagonal_forward(L, d, s);
  k.diagonal_backward(s, g, g);
};

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

// The gradients handed to diagonal_backward must have the form's sizes, and diagonal_forward must have
// filled the saved state (saved_hm entries per (h, m)).
inline void check_diagonal_grads(std::size_t g_coef, std::size_t g_log_z, index_t C, index_t H, index_t M,
                                 std::size_t saved_hm, const char* who) {
  LONGSEQ_CHECK(g_coef == std::size_t(C * H * M) && g_log_z == std::size_t(H * M), who,
                ": diagonal_backward got ", g_coef, " coef and ", g_log_z, " log_z gradients, expected C*H*M = ",
                C * H * M, " and H*M = ", H * M);
  LONGSEQ_CHECK(saved_hm == std::size_t(H * M), who, ": diagonal_backward needs the Saved of diagonal_forward (",
                saved_hm, " saved modes, expected ", H * M, ")");
}

template <class T, class D>
void check_kernel_out(const TensorView<T, D>& K, index_t C, index_t H, index_t L, const char* who,
                      std::source_location loc = std::source_location::current()) {
  LONGSEQ_CHECK(L >= 1, who, ": kernel length L = ", L, ", expected L >= 1");
  expect_shape(K, Shape{C, H, L}, "K", loc);
  expect_contiguous(K, "K", loc);
}

}  // namespace detail
}  // namespace longseq::ssm
