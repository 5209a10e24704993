// SSMConv<Kernel, Dir, device::cuda>: the S4-style sequence layer on the GPU, with the host layer's Config, parameter
// names, groups and order, and the same math (kernel, FFT convolution, bidirectional shift, skip D, GELU, dropout,
// Linear(H, 2H), GLU). The kernel parameterizations are host types: the layer keeps a host twin of its Kernel, copies
// the (small) kernel parameters into it every forward, and either evaluates the diagonal form's Vandermonde sums on the
// device (ssm::DiagonalKernel) or the whole kernel on the host.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <complex>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "../../core/cuda/context.cuh"
#include "../../core/cuda/launch.cuh"
#include "../../core/cuda/memory.cuh"
#include "../../nn/layer.hpp"
#include "../../nn/linear.hpp"
#include "../../ops/cuda/activation.cuh"
#include "../../ops/cuda/dropout.cuh"
#include "../../ops/cuda/elementwise.cuh"
#include "../../ops/cuda/fft_conv.cuh"
#include "../kernel.hpp"
#include "../s4d.hpp"
#include "../skip_gelu.cuh"
#include "../ssm_conv.hpp"
#include "../vandermonde.cuh"

namespace longseq::ssm {

namespace ssm_conv_cuda_detail {

// Rows of length L of a (B, H, L) tensor, one element per index i = r L + l.

// out[r, l] = in[r, L-1-l]: the time reversal.
template <class T>
struct ReverseRows {
  const T* in;
  T* out;
  index_t L;
  __device__ void operator()(index_t i) const {
    index_t r = i / L, l = i % L;
    out[i] = in[r * L + (L - 1 - l)];
  }
};

// y[r, l] += v[r, L-2-l] for l < L-1: the anti-causal part, shifted one step so u[l] is counted once.
template <class T>
struct AddAnticausal {
  T* y;
  const T* v;
  index_t L;
  __device__ void operator()(index_t i) const {
    index_t r = i / L, l = i % L;
    if (l + 1 < L) y[i] = y[i] + v[r * L + (L - 2 - l)];
  }
};

// dv[r, j] = dy[r, L-2-j] for j < L-1, dv[r, L-1] = 0: the gradient of the reversed convolution's output.
template <class T>
struct ShiftReverse {
  const T* dy;
  T* dv;
  index_t L;
  __device__ void operator()(index_t i) const {
    index_t r = i / L, j = i % L;
    dv[i] = j + 1 < L ? dy[r * L + (L - 2 - j)] : T(0);
  }
};

// d[r, l] = (d + du)[r, l] (+ du_r[r, L-1-l]): the skip's and the convolutions' input gradients, in the host layer's
// order of summation.
template <class T, bool Bidirectional>
struct SumInputGrads {
  T* d;
  const T* du;
  const T* du_r;
  index_t L;
  __device__ void operator()(index_t i) const {
    T g = d[i] + du[i];
    if constexpr (Bidirectional) {
      index_t r = i / L, l = i % L;
      g += du_r[r * L + (L - 1 - l)];
    }
    d[i] = g;
  }
};

template <class T>
inline constexpr bool dependent_false = false;

}  // namespace ssm_conv_cuda_detail

template <class Kernel, Direction Dir>
class SSMConv<Kernel, Dir, device::cuda> {
  static_assert(assert_kernel<Kernel>(), "SSMConv<Kernel, Dir>: Kernel must satisfy ssm::KernelParameterization");
  using HostLayer = SSMConv<Kernel, Dir, device::host>;

 public:
  using kernel_type = Kernel;
  using T = typename Kernel::value_type;
  using value_type = T;
  using device_type = device::cuda;
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "SSMConv<Kernel, Dir, device::cuda>: the kernel's value_type must be float or double");
  // Diagonal kernels run their Vandermonde sums on the device; any other kernel is evaluated on the host.
  static constexpr bool device_vandermonde = DiagonalKernel<Kernel>;

  using Config = typename HostLayer::Config;
  struct Saved {
    typename Kernel::Saved kernel;        // the host twin's state (modes, factors, ...)
    Tensor<T, device::cuda> coef, log_z;  // the diagonal form, (C, H, M, 2) and (H, M, 2) (diagonal kernels)
    Tensor<T, device::cuda> K;            // (C, H, L)
    Tensor<T, device::cuda> u, ur;        // (B, H, L) input and its time reversal
    Tensor<T, device::cuda> z;            // (B, L, H) pre-activation
    Tensor<T, device::cuda> g;            // (B, L, 2H) output projection before GLU
    typename nn::Linear<T, device::cuda>::Saved out;
    std::uint64_t seed = 0;
    bool dropped = false;
  };

 private:
  // Declared first: the parameter slots below are sized from it.
  Kernel twin_;
  ParamStore<T> twin_store_;

 public:
  Config cfg;
  Param<T, device::cuda> D;
  nn::Linear<T, device::cuda> out;

  // Touches no device: the slots are bound (and allocated) by a ParamStore<T, device::cuda>.
  explicit SSMConv(Config c)
      : twin_(with_channels(c).kernel),
        cfg(with_channels(c)),
        D(Shape{twin_.width()}, ParamGroup::weight),
        out(typename nn::Linear<T, device::cuda>::Config{twin_.width(), 2 * twin_.width(), true}) {
    LONGSEQ_CHECK(cfg.dropout >= 0 && cfg.dropout < 1, "SSMConv: dropout = ", cfg.dropout, ", expected [0, 1)");
    twin_store_.bind(twin_);
    twin_.parameters([&](std::string_view name, Param<T>& p) {
      kernel_names_.emplace_back(name);
      kernel_params_.emplace_back(p.shape, p.group);
    });
  }

  index_t width() const { return twin_.width(); }

  // The host twin of the kernel parameterization: its values are those of the last forward.
  const Kernel& host_kernel() const { return twin_; }

  // The host layer's names and order: "kernel.<name>"..., "D", "out.weight", "out.bias".
  template <class F>
  void parameters(F&& f) {
    auto kf = prefixed("kernel", f);
    for (std::size_t i = 0; i < kernel_params_.size(); ++i) kf(kernel_names_[i], kernel_params_[i]);
    f("D", D);
    out.parameters(prefixed("out", f));
  }

  // Host-only, like nn::Linear<T, device::cuda>::init: initialize a host layer and copy its values.
  void init(Rng&) {
    static_assert(ssm_conv_cuda_detail::dependent_false<Kernel>,
                  "SSMConv<Kernel, Dir, device::cuda>::init: initialization is host-only; initialize an "
                  "SSMConv<Kernel, Dir> on the host and copy its parameter values to the device");
  }

  void forward(Context<device::cuda>& ctx, TensorView<const T, device::cuda> x, TensorView<T, device::cuda> y,
               Saved& s) {
    detail::check_conv_io(x, y, width());
    index_t B = x.shape[0], L = x.shape[1], H = width();
    check_bound();
    kernel_forward(ctx, L, s);
    s.u.resize(Shape{B, H, L});
    ops::transpose12<T>(ctx, x, s.u.view());
    Tensor<T, device::cuda>& yt = scratch_.a;
    yt.resize(Shape{B, H, L});
    ops::fft_conv_forward<T>(ctx, s.u.view(), channel(s.K, 0), yt.view());
    if constexpr (Dir::bidirectional) {
      s.ur.resize(Shape{B, H, L});
      longseq::cuda::for_each(ctx.stream(), B * H * L, ssm_conv_cuda_detail::ReverseRows<T>{s.u.data(), s.ur.data(), L},
                              "ssm_conv_reverse");
      Tensor<T, device::cuda>& v = scratch_.b;
      v.resize(Shape{B, H, L});
      ops::fft_conv_forward<T>(ctx, s.ur.view(), channel(s.K, 1), v.view());
      longseq::cuda::for_each(ctx.stream(), B * H * L, ssm_conv_cuda_detail::AddAnticausal<T>{yt.data(), v.data(), L},
                              "ssm_conv_add_anticausal");
    }
    // The activation is written straight into the output projection's saved input (no copy there).
    s.z.resize(Shape{B, L, H});
    Tensor<T, device::cuda>& a = s.out.x;
    a.resize(Shape{B, L, H});
    cuda::skip_gelu_forward<T>(ctx, yt.view(), s.u.view(), D.value, s.z.view(), a.view(), cfg.gelu);
    detail::output_forward<T>(ctx, *this, s, a.view(), y);
  }

  void backward(Context<device::cuda>& ctx, Saved& s, TensorView<const T, device::cuda> dy,
                TensorView<T, device::cuda> dx) {
    LONGSEQ_CHECK(s.u.shape().rank == 3, "SSMConv: backward needs the Saved of a forward call");
    index_t B = s.u.size(0), H = s.u.size(1), L = s.u.size(2);
    expect_shape(dy, Shape{B, L, H}, "dy");
    expect_shape(dx, Shape{B, L, H}, "dx");
    expect_contiguous(dy, "dy");
    expect_contiguous(dx, "dx");
    Tensor<T, device::cuda>&dg = scratch_.a, &da = scratch_.b;
    dg.resize(Shape{B, L, 2 * H});
    da.resize(Shape{B, L, H});
    detail::output_backward<T>(ctx, *this, s, dy, dg.view(), da.view());
    // dyt = da gelu'(z) and ds = D dyt in the convolution's layout; D.grad accumulated.
    Tensor<T, device::cuda>&dyt = scratch_.c, &ds = scratch_.d;
    dyt.resize(Shape{B, H, L});
    ds.resize(Shape{B, H, L});
    cuda::skip_gelu_backward<T>(ctx, s.z.view(), da.view(), s.u.view(), D.value, dyt.view(), ds.view(), D.grad,
                                cfg.gelu);
    // dg and da are free from here on: they hold the convolutions' input gradients.
    Tensor<T, device::cuda>&du = scratch_.a, &du_r = scratch_.b, &dK = scratch_.dK;
    du.resize(Shape{B, H, L});
    dK.resize(Shape{Dir::channels, H, L});
    ops::fill<T>(ctx, dK.view(), T(0));
    ops::fft_conv_backward<T>(ctx, s.u.view(), channel(s.K, 0), dyt.view(), du.view(), channel(dK, 0));
    if constexpr (Dir::bidirectional) {
      Tensor<T, device::cuda>& dv = scratch_.e;
      dv.resize(Shape{B, H, L});
      longseq::cuda::for_each(ctx.stream(), B * H * L, ssm_conv_cuda_detail::ShiftReverse<T>{dyt.data(), dv.data(), L},
                              "ssm_conv_shift_reverse");
      du_r.resize(Shape{B, H, L});
      ops::fft_conv_backward<T>(ctx, s.ur.view(), channel(s.K, 1), dv.view(), du_r.view(), channel(dK, 1));
    }
    kernel_backward(ctx, s, dK);
    longseq::cuda::for_each(
        ctx.stream(), B * H * L,
        ssm_conv_cuda_detail::SumInputGrads<T, Dir::bidirectional>{ds.data(), du.data(), du_r.data(), L},
        "ssm_conv_input_grad");
    ops::transpose12<T>(ctx, ds.view(), dx);
  }

 private:
  // K (C, H, L) on the device from the current kernel parameters.
  void kernel_forward(Context<device::cuda>& ctx, index_t L, Saved& s) {
    pull_kernel_values();
    const index_t C = Dir::channels, H = width();
    s.K.resize(Shape{C, H, L});
    if constexpr (device_vandermonde) {
      DiagonalForm<T>& d = s.kernel.diag;
      twin_.diagonal_forward(L, d, s.kernel);
      LONGSEQ_CHECK(d.C == C && d.H == H, "SSMConv: the kernel's diagonal form has C = ", d.C, ", H = ", d.H,
                    ", expected C = ", C, ", H = ", H);
      s.coef.resize(Shape{d.C, d.H, d.M, 2});
      s.log_z.resize(Shape{d.H, d.M, 2});
      copy_to_device<T>(complex_view(d.coef, s.coef.shape()), s.coef.view());
      copy_to_device<T>(complex_view(d.log_z, s.log_z.shape()), s.log_z.view());
      cuda::vandermonde_forward<T>(ctx.stream(), s.coef.data(), s.log_z.data(), d.C, d.H, d.M, L, accum_t<T>(d.scale),
                                   s.K.data());
    } else {
      host_K_.resize(Shape{C, H, L});
      twin_.kernel_forward(host_ctx_, L, host_K_.view(), s.kernel);
      copy_to_device<T>(host_K_.view(), s.K.view());
    }
  }

  // Accumulates dK (C, H, L) into the kernel parameters' device grads, through the host twin.
  void kernel_backward(Context<device::cuda>& ctx, Saved& s, Tensor<T, device::cuda>& dK) {
    auto tg = twin_store_.grads();
    std::fill(tg.data, tg.data + tg.numel(), T(0));
    if constexpr (device_vandermonde) {
      const DiagonalForm<T>& d = s.kernel.diag;
      index_t L = dK.size(2);
      g_coef_dev_.resize(s.coef.shape());
      g_log_z_dev_.resize(s.log_z.shape());
      cuda::vandermonde_backward<T>(ctx.stream(), s.coef.data(), s.log_z.data(), dK.data(), d.C, d.H, d.M, L,
                                    accum_t<T>(d.scale), g_coef_dev_.data(), g_log_z_dev_.data());
      g_coef_.resize(d.coef.size());
      g_log_z_.resize(d.log_z.size());
      copy_to_host<T>(g_coef_dev_.view(), complex_view(g_coef_, g_coef_dev_.shape()));
      copy_to_host<T>(g_log_z_dev_.view(), complex_view(g_log_z_, g_log_z_dev_.shape()));
      twin_.diagonal_backward(s.kernel, g_coef_, g_log_z_);
    } else {
      host_K_.resize(dK.shape());
      copy_to_host<T>(dK.view(), host_K_.view());
      twin_.kernel_backward(host_ctx_, s.kernel, TensorView<const T>(host_K_.view()));
    }
    push_kernel_grads(ctx);
  }

  // Device kernel parameter values -> the host twin (each copy waits for the device).
  void pull_kernel_values() {
    std::size_t i = 0;
    twin_.parameters([&](std::string_view, Param<T>& p) {
      copy_to_host<T>(TensorView<const T, device::cuda>(kernel_params_[i++].value), p.value);
    });
  }

  // The twin's gradients (fresh for this call) are uploaded in one copy and added to the device grads.
  void push_kernel_grads(Context<device::cuda>& ctx) {
    auto tg = twin_store_.grads();
    grad_stage_.resize(tg.shape);
    copy_to_device<T>(TensorView<const T>(tg), grad_stage_.view());
    const auto& entries = twin_store_.entries();
    for (std::size_t i = 0; i < kernel_params_.size(); ++i) {
      Param<T, device::cuda>& p = kernel_params_[i];
      TensorView<const T, device::cuda> g(grad_stage_.data() + entries[i].offset, p.shape);
      ops::add_inplace<T>(ctx, p.grad, g);
    }
  }

  void check_bound() const {
    bool bound = D.bound() && out.weight.bound();
    for (const auto& p : kernel_params_) bound = bound && p.bound();
    LONGSEQ_CHECK(bound, "SSMConv: parameters are not bound (call ParamStore<T, device::cuda>::bind)");
  }

  static TensorView<const T> complex_view(const std::vector<std::complex<T>>& v, const Shape& s) {
    return TensorView<const T>(reinterpret_cast<const T*>(v.data()), s);
  }
  static TensorView<T> complex_view(std::vector<std::complex<T>>& v, const Shape& s) {
    return TensorView<T>(reinterpret_cast<T*>(v.data()), s);
  }
  static Config with_channels(Config c) {
    c.kernel.channels = Dir::channels;
    return c;
  }
  static TensorView<T, device::cuda> channel(Tensor<T, device::cuda>& K, index_t c) {
    index_t H = K.size(1), L = K.size(2);
    return TensorView<T, device::cuda>(K.data() + c * H * L, Shape{H, L});
  }

  // Device mirrors of the twin's parameter slots, in its parameters() order (sized at construction, never resized
  // afterwards: a ParamStore keeps pointers to them). The twin's own store is used only through its flat buffers and
  // offsets, so moving the layer (before binding it, like any layer) keeps it valid.
  std::vector<std::string> kernel_names_;
  std::vector<Param<T, device::cuda>> kernel_params_;

  // Temporaries of one call, reused so that steady-state calls do not allocate.
  struct Scratch {
    Tensor<T, device::cuda> a, b, c, d, e, dK;
  } scratch_;
  Tensor<T, device::cuda> g_coef_dev_, g_log_z_dev_, grad_stage_;
  std::vector<std::complex<T>> g_coef_, g_log_z_;
  Tensor<T> host_K_;
  Context<device::host> host_ctx_;
};

static_assert(nn::assert_layer<SSMConv<S4D<float>, Bidirectional, device::cuda>, float, device::cuda>());

}  // namespace longseq::ssm
