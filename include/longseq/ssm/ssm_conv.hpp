// SSMConv: the S4-style sequence layer (B, L, H) -> (B, L, H): kernel from any KernelParameterization,
// per-channel FFT convolution (causal, or bidirectional with a second kernel on the reversed sequence),
// skip D, GELU, dropout, output Linear(H, 2H) + GLU. Explicit forward/backward.
#pragma once
#include <cstdint>
#include <type_traits>

#include "../nn/linear.hpp"
#include "../ops/activation.hpp"
#include "../ops/dropout.hpp"
#include "../ops/elementwise.hpp"
#include "../ops/fft_conv.hpp"
#include "kernel.hpp"

namespace longseq::ssm {

// Direction policies. Bidirectional follows the reference layer: y[l] = sum_{j<=l} k0[j] u[l-j] +
// sum_{s>=1} k1[s-1] u[l+s] (the reversed kernel starts one step ahead, so u[l] is counted once).
struct Causal {
  static constexpr bool bidirectional = false;
  static constexpr index_t channels = 1;
};
struct Bidirectional {
  static constexpr bool bidirectional = true;
  static constexpr index_t channels = 2;
};

template <class D>
concept Direction = requires {
  { D::bidirectional } -> std::convertible_to<bool>;
  { D::channels } -> std::convertible_to<index_t>;
};

template <class Kernel, Direction Dir = Bidirectional>
class SSMConv {
  static_assert(assert_kernel<Kernel>(), "SSMConv<Kernel, Dir>: Kernel must satisfy ssm::KernelParameterization");

 public:
  using kernel_type = Kernel;
  using T = typename Kernel::value_type;
  using value_type = T;
  using device_type = device::host;  // the FFT convolution path is host-only for now
  static_assert(std::is_floating_point_v<T>, "SSMConv: the kernel's value_type must be float or double");

  struct Config {
    typename Kernel::Config kernel;  // its `channels` is set from Dir
    double dropout = 0.0;            // after the activation
    ops::Gelu gelu = ops::Gelu::exact;
    std::uint64_t stream = 0;  // dropout stream, distinct per layer
    RandomInit random{};       // draw every parameter of the layer (kernel, D, out) from N(0, sigma)
  };
  struct Saved {
    typename Kernel::Saved kernel;
    Tensor<T> K;      // (C, H, L)
    Tensor<T> u, ur;  // (B, H, L) input and its time reversal
    Tensor<T> z;      // (B, L, H) pre-activation
    Tensor<T> g;      // (B, L, 2H) output projection before GLU
    typename nn::Linear<T>::Saved out;
    std::uint64_t seed = 0;
    bool dropped = false;
  };

  Config cfg;
  Kernel kernel;
  Param<T> D;
  nn::Linear<T> out;

  explicit SSMConv(Config c)
      : cfg(with_channels(c)),
        kernel(cfg.kernel),
        D(Shape{kernel.width()}, ParamGroup::weight),
        out(typename nn::Linear<T>::Config{kernel.width(), 2 * kernel.width(), true}) {
    LONGSEQ_CHECK(cfg.dropout >= 0 && cfg.dropout < 1, "SSMConv: dropout = ", cfg.dropout, ", expected [0, 1)");
  }
  index_t width() const { return kernel.width(); }

  template <class F>
  void parameters(F&& f) {
    kernel.parameters(prefixed("kernel", f));
    f("D", D);
    out.parameters(prefixed("out", f));
  }

  void init(Rng& rng) {
    if (cfg.random.enabled) return detail::random_init_all(*this, rng, cfg.random.sigma);
    Rng kr = rng.fork(1), orng = rng.fork(2), dr = rng.fork(3);
    kernel.init(kr);
    out.init(orng);
    for (index_t h = 0; h < D.value.numel(); ++h) D.value[h] = T(dr.normal());
  }

  void forward(Context<device::host>& ctx, TensorView<const T> x, TensorView<T> y, Saved& s) {
    expect_rank(x, 3, "x");
    index_t B = x.shape[0], L = x.shape[1], H = width();
    LONGSEQ_CHECK(x.shape[2] == H, "SSMConv: tensor 'x' has shape ", x.shape, ", expected (B, L, ", H, ")");
    LONGSEQ_CHECK(L >= 1, "SSMConv: tensor 'x' has shape ", x.shape, ", expected L >= 1");
    expect_shape(y, x.shape, "y");
    expect_contiguous(x, "x");
    s.K.resize(Shape{Dir::channels, H, L});
    kernel.kernel_forward(ctx, L, s.K.view(), s.kernel);
    s.u.resize(Shape{B, H, L});
    ops::transpose12<T>(ctx, x, s.u.view());
    Tensor<T>& yt = scratch_.a;
    yt.resize(Shape{B, H, L});
    ops::fft_conv_forward<T>(ctx, s.u.view(), channel(s.K, 0), yt.view());
    if constexpr (Dir::bidirectional) {
      s.ur.resize(Shape{B, H, L});
      reverse(s.u.view(), s.ur.view());
      Tensor<T>& v = scratch_.b;
      v.resize(Shape{B, H, L});
      ops::fft_conv_forward<T>(ctx, s.ur.view(), channel(s.K, 1), v.view());
      for (index_t r = 0; r < B * H; ++r)
        for (index_t l = 0; l + 1 < L; ++l) yt[r * L + l] += v[r * L + (L - 2 - l)];
    }
    for (index_t b = 0; b < B; ++b)
      for (index_t h = 0; h < H; ++h)
        for (index_t l = 0; l < L; ++l) yt(b, h, l) += D.value[h] * s.u(b, h, l);
    s.z.resize(Shape{B, L, H});
    ops::transpose12<T>(ctx, yt.view(), s.z.view());
    Tensor<T>& a = scratch_.b;
    a.resize(Shape{B, L, H});
    ops::gelu_forward<T>(ctx, s.z.view(), a.view(), cfg.gelu);
    s.dropped = ctx.training && cfg.dropout > 0;
    s.seed = ctx.seed;
    if (s.dropped) ops::dropout_forward<T>(ctx, a.view(), a.view(), cfg.dropout, s.seed, cfg.stream);
    s.g.resize(Shape{B, L, 2 * H});
    out.forward(ctx, a.view(), s.g.view(), s.out);
    ops::glu_forward<T>(ctx, s.g.view(), y);
  }

  void backward(Context<device::host>& ctx, Saved& s, TensorView<const T> dy, TensorView<T> dx) {
    index_t B = s.u.size(0), H = s.u.size(1), L = s.u.size(2);
    expect_shape(dy, Shape{B, L, H}, "dy");
    expect_shape(dx, Shape{B, L, H}, "dx");
    Tensor<T>&dg = scratch_.a, &da = scratch_.b, &dz = scratch_.c;
    dg.resize(Shape{B, L, 2 * H});
    da.resize(Shape{B, L, H});
    dz.resize(Shape{B, L, H});
    ops::glu_backward<T>(ctx, s.g.view(), dy, dg.view());
    out.backward(ctx, s.out, dg.view(), da.view());
    if (s.dropped) ops::dropout_backward<T>(ctx, da.view(), da.view(), cfg.dropout, s.seed, cfg.stream);
    ops::gelu_backward<T>(ctx, s.z.view(), da.view(), dz.view(), cfg.gelu);
    // dz is free once transposed, so it holds the convolution's input gradient (tmp) below.
    Tensor<T>&dyt = scratch_.a, &du = scratch_.b, &tmp = scratch_.c;
    dyt.resize(Shape{B, H, L});
    ops::transpose12<T>(ctx, dz.view(), dyt.view());
    du.resize(Shape{B, H, L});
    tmp.resize(Shape{B, H, L});
    for (index_t b = 0; b < B; ++b)
      for (index_t h = 0; h < H; ++h) {
        T acc = 0;
        for (index_t l = 0; l < L; ++l) {
          acc += dyt(b, h, l) * s.u(b, h, l);
          du(b, h, l) = D.value[h] * dyt(b, h, l);
        }
        D.grad[h] += acc;
      }
    Tensor<T>& dK = scratch_.dK;
    dK.resize(Shape{Dir::channels, H, L});
    std::fill(dK.data(), dK.data() + dK.numel(), T(0));
    ops::fft_conv_backward<T>(ctx, s.u.view(), channel(s.K, 0), dyt.view(), tmp.view(), channel(dK, 0));
    for (index_t i = 0; i < du.numel(); ++i) du[i] += tmp[i];
    if constexpr (Dir::bidirectional) {
      Tensor<T>& dv = scratch_.d;
      dv.resize(Shape{B, H, L});
      std::fill(dv.data(), dv.data() + dv.numel(), T(0));
      for (index_t r = 0; r < B * H; ++r)
        for (index_t l = 0; l + 1 < L; ++l) dv[r * L + (L - 2 - l)] = dyt[r * L + l];
      ops::fft_conv_backward<T>(ctx, s.ur.view(), channel(s.K, 1), dv.view(), tmp.view(), channel(dK, 1));
      for (index_t r = 0; r < B * H; ++r)
        for (index_t l = 0; l < L; ++l) du[r * L + l] += tmp[r * L + (L - 1 - l)];
    }
    kernel.kernel_backward(ctx, s.kernel, dK.view());
    ops::transpose12<T>(ctx, du.view(), dx);
  }

 private:
  // Temporaries of one forward or backward call, reused so that steady-state calls do not allocate.
  struct Scratch {
    Tensor<T> a, b, c, d, dK;
  } scratch_;

  static Config with_channels(Config c) {
    c.kernel.channels = Dir::channels;
    return c;
  }
  static TensorView<T> channel(Tensor<T>& K, index_t c) {
    index_t H = K.size(1), L = K.size(2);
    return TensorView<T>(K.data() + c * H * L, Shape{H, L});
  }
  static void reverse(TensorView<const T> a, TensorView<T> b) {
    index_t rows = a.size(0) * a.size(1), L = a.size(2);
    for (index_t r = 0; r < rows; ++r)
      for (index_t l = 0; l < L; ++l) b.data[r * L + l] = a.data[r * L + (L - 1 - l)];
  }
};

}  // namespace longseq::ssm
