// SSMConv: the S4-style sequence layer (B, L, H) -> (B, L, H): kernel from any KernelParameterization,
// per-channel FFT convolution (causal, or bidirectional with a second kernel on the reversed sequence),
// skip D, GELU, dropout, output Linear(H, 2H) + GLU. Explicit forward/backward, one template for every
// device policy: the steps that are loops here have device versions in cuda/ssm_conv.cuh.
#pragma once
#include <cstdint>
#include <type_traits>

#include "../nn/dropout.hpp"
#include "../nn/linear.hpp"
#include "../ops/activation.hpp"
#include "../ops/elementwise.hpp"
#include "../ops/fft_conv.hpp"
#include "kernel.hpp"

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // the device versions of the steps below
#include "cuda/ssm_conv.cuh"
#endif

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

namespace detail {
// The checks every SSMConv policy makes on its input x (B, L, H) with L >= 1 and output y.
template <class T, class D>
void check_conv_io(const TensorView<const T, D>& x, const TensorView<T, D>& y, index_t H) {
  expect_rank(x, 3, "x");
  LONGSEQ_CHECK(x.shape[2] == H, "SSMConv: tensor 'x' has shape ", x.shape, ", expected (B, L, ", H, ")");
  LONGSEQ_CHECK(x.shape[1] >= 1, "SSMConv: tensor 'x' has shape ", x.shape, ", expected L >= 1");
  expect_shape(y, x.shape, "y");
  expect_contiguous(x, "x");
  expect_contiguous(y, "y");
}

// The layer's tail after the activation a (B, L, H), written once for both policies so that they apply the
// same dropout mask in the same order: dropout (in place), the output Linear(H, 2H) into s.g, GLU into y.
template <class T, class D, class Layer, class Saved>
void output_forward(Context<D>& ctx, Layer& l, Saved& s, TensorView<T, D> a, TensorView<T, D> y) {
  s.dropped = ctx.training && l.cfg.dropout > 0;
  s.seed = ctx.seed;
  if (s.dropped) nn::dropout_forward<T>(ctx, a, a, l.cfg.dropout, l.cfg.dropout_mask, s.seed, l.cfg.stream);
  s.g.resize(Shape{a.size(0), a.size(1), 2 * a.size(2)});
  l.out.apply(ctx, a, s.g.view());
  ops::glu_forward<T>(ctx, s.g.view(), y);
}
// Its backward from dy to da (B, L, H), through dg (B, L, 2H); the output Linear's gradients accumulated.
template <class T, class D, class Layer, class Saved>
void output_backward(Context<D>& ctx, Layer& l, Saved& s, TensorView<const T, D> dy, TensorView<T, D> dg,
                     TensorView<T, D> da) {
  ops::glu_backward<T>(ctx, s.g.view(), dy, dg);
  l.out.backward(ctx, s.out, dg, da);
  if (s.dropped) nn::dropout_backward<T>(ctx, da, da, l.cfg.dropout, l.cfg.dropout_mask, s.seed, l.cfg.stream);
}

// The layer's steps on the host (each has a device version of the same name in cuda/ssm_conv.cuh).

// b[r, l] = a[r, L-1-l] on rows of length L: the time reversal.
template <class T>
void reverse_rows(Context<device::host>&, TensorView<const T> a, TensorView<T> b) {
  index_t rows = a.size(0) * a.size(1), L = a.size(2);
  for (index_t r = 0; r < rows; ++r)
    for (index_t l = 0; l < L; ++l) b.data[r * L + l] = a.data[r * L + (L - 1 - l)];
}

// z[b,l,h] = y[b,h,l] (+ the anti-causal part v[b,h,L-2-l]) + D[h] x[b,l,h] and a = gelu(z): the skip,
// the layout change back to (B, L, H) and the activation in one pass over tiles. (u, the input in the
// convolution's layout, is what the device version reads instead of x.)
template <bool Bidirectional, class T>
void skip_gelu_forward(Context<device::host>& ctx, TensorView<T> yt, TensorView<const T> v, TensorView<const T> x,
                       TensorView<const T>, TensorView<const T> Dv, TensorView<T> z, TensorView<T> a, ops::Gelu gelu) {
  index_t B = x.shape[0], L = x.shape[1], H = x.shape[2];
  const bool exact = gelu == ops::Gelu::exact;
  ops::detail::for_each_tile12(ctx, B, L, H, [&](index_t b, index_t l0, index_t l1, index_t h0, index_t h1) {
    const T* yb = yt.data + b * H * L;
    const T* vb = v.data + b * H * L;
    for (index_t l = l0; l < l1; ++l) {
      const T* xr = x.data + (b * L + l) * H;
      T* zr = z.data + (b * L + l) * H;
      for (index_t h = h0; h < h1; ++h) {
        T c = yb[h * L + l];
        if constexpr (Bidirectional)
          if (l + 1 < L) c += vb[h * L + (L - 2 - l)];
        zr[h] = c + Dv.data[h] * xr[h];
      }
      T* ar = a.data + (b * L + l) * H;
      if (exact)
        for (index_t h = h0; h < h1; ++h) ar[h] = ops::detail::gelu_exact(zr[h]);
      else
        for (index_t h = h0; h < h1; ++h) ar[h] = ops::detail::gelu_tanh(zr[h]);
    }
  });
}

// sum_i x[i] y[i] with 8 independent partial sums: the compiler vectorizes the lanes without
// reassociating, and the dependency chain is 8 times shorter.
template <class T>
T dot8(const T* x, const T* y, index_t n) {
  T part[8] = {};
  index_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) part[j] += x[i + j] * y[i + j];
  T s = 0;
  for (; i < n; ++i) s += x[i] * y[i];
  for (T p : part) s += p;
  return s;
}

// dyt[b,h,l] = da[b,l,h] gelu'(z[b,l,h]): the gradient of the pre-activation, computed a tile at a
// time into a local buffer and stored in the convolution's layout. Then D.grad[h] += sum_{b,l} dyt u,
// one channel per thread with the batch summed in order (the same result for any thread count). (ds, the
// skip's input gradient D dyt, is written only by the device version; the host adds it in input_grad.)
template <class T>
void skip_gelu_backward(Context<device::host>& ctx, TensorView<const T> z, TensorView<const T> da,
                        TensorView<const T> u, TensorView<const T>, TensorView<T> Dgrad, TensorView<T> dyt,
                        TensorView<T>, ops::Gelu gelu) {
  constexpr index_t tile = ops::detail::tile12;
  index_t B = z.shape[0], L = z.shape[1], H = z.shape[2];
  const bool exact = gelu == ops::Gelu::exact;
  ops::detail::for_each_tile12(ctx, B, L, H, [&](index_t b, index_t l0, index_t l1, index_t h0, index_t h1) {
    T buf[tile * tile];  // rows l - l0, columns h - h0
    for (index_t l = l0; l < l1; ++l) {
      const T *zr = z.data + (b * L + l) * H + h0, *gr = da.data + (b * L + l) * H + h0;
      T* br = buf + (l - l0) * tile;
      if (exact)
        for (index_t h = 0; h < h1 - h0; ++h) br[h] = gr[h] * ops::detail::gelu_exact_grad(zr[h]);
      else
        for (index_t h = 0; h < h1 - h0; ++h) br[h] = gr[h] * ops::detail::gelu_tanh_grad(zr[h]);
    }
    T* db = dyt.data + b * H * L;
    for (index_t h = h0; h < h1; ++h)
      for (index_t l = l0; l < l1; ++l) db[h * L + l] = buf[(l - l0) * tile + (h - h0)];
  });
  int nt = ops::detail::threads_for(ctx, B * H * L);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (index_t h = 0; h < H; ++h) {
    T acc = 0;
    for (index_t b = 0; b < B; ++b) acc += dot8(dyt.data + (b * H + h) * L, u.data + (b * H + h) * L, L);
    Dgrad.data[h] += acc;
  }
}

// dv[r, j] = dy[r, L-2-j] for j < L-1, dv[r, L-1] = 0: the gradient of the reversed convolution's output.
template <class T>
void shift_reverse(Context<device::host>&, TensorView<const T> dy, TensorView<T> dv) {
  index_t rows = dy.size(0) * dy.size(1), L = dy.size(2);
  for (index_t r = 0; r < rows; ++r) {
    for (index_t l = 0; l + 1 < L; ++l) dv.data[r * L + (L - 2 - l)] = dy.data[r * L + l];
    dv.data[r * L + L - 1] = T(0);
  }
}

// dx[b,l,h] = D[h] dyt[b,h,l] + du[b,h,l] (+ du_r[b,h,L-1-l], the anti-causal part): the skip's and
// the convolutions' input gradients, summed while changing the layout back to (B, L, H). (ds is the device
// version's D dyt; the host forms the product here.)
template <bool Bidirectional, class T>
void input_grad(Context<device::host>& ctx, TensorView<const T> dyt, TensorView<T>, TensorView<const T> du,
                TensorView<const T> du_r, TensorView<const T> Dv, TensorView<T> dx) {
  index_t B = dx.shape[0], L = dx.shape[1], H = dx.shape[2];
  ops::detail::for_each_tile12(ctx, B, L, H, [&](index_t b, index_t l0, index_t l1, index_t h0, index_t h1) {
    const T *gb = dyt.data + b * H * L, *ub = du.data + b * H * L, *rb = du_r.data + b * H * L;
    for (index_t l = l0; l < l1; ++l) {
      T* dr = dx.data + (b * L + l) * H;
      for (index_t h = h0; h < h1; ++h) {
        T d = Dv.data[h] * gb[h * L + l] + ub[h * L + l];
        if constexpr (Bidirectional) d += rb[h * L + (L - 1 - l)];
        dr[h] = d;
      }
    }
  });
}
}  // namespace detail

template <class D>
concept Direction = requires {
  { D::bidirectional } -> std::convertible_to<bool>;
  { D::channels } -> std::convertible_to<index_t>;
};

// The sizes and options of an SSMConv, one type for every storage type and device policy of its kernel.
template <class KernelConfig>
struct SSMConvConfig {
  KernelConfig kernel;  // its `channels` is set from the direction
  double dropout = 0.0;  // after the activation
  // per element, or tied: one mask per (batch, channel) over the sequence (the S4 reference's tie_dropout)
  nn::DropoutMask dropout_mask = nn::DropoutMask::element;
  ops::Gelu gelu = ops::Gelu::exact;
  std::uint64_t stream = 0;  // dropout stream, distinct per layer
  RandomInit random{};       // draw every parameter of the layer (kernel, D, out) from N(0, sigma)
};

// The layer on the device policy Dev. The kernel parameterization follows the layer: one named without a policy
// (`S4D<float>`, on the host by default) is moved to Dev (`S4D<float, ZOH, Dev>`), so the same Kernel argument
// serves a host and a CUDA model; one named on a policy must be on Dev, which is also the default. T, the
// kernel's value_type, is the storage type of every parameter and activation of the layer.
template <class Kernel, Direction Dir = Bidirectional, class Dev = kernel_device_t<Kernel>>
class SSMConv {
  static_assert(std::is_same_v<kernel_device_t<Kernel>, Dev> || on_host<kernel_device_t<Kernel>>,
                "SSMConv<Kernel, Dir, D>: Kernel::device_type and the layer's D differ; name the parameterization "
                "on D or without a device policy (it then follows D)");

 public:
  using kernel_type = kernel_on_t<Kernel, Dev>;
  static_assert(assert_kernel<kernel_type>(),
                "SSMConv<Kernel, Dir>: Kernel must satisfy ssm::KernelParameterization");
  using T = typename kernel_type::value_type;
  using value_type = T;
  using device_type = Dev;
  static_assert(on_host<Dev> ? std::is_floating_point_v<T>
                             : (std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, bf16>),
                "SSMConv: the kernel's value_type must be float or double (host), or float, double or bf16 (CUDA)");

  using Config = SSMConvConfig<typename kernel_type::Config>;
  struct Saved {
    typename kernel_type::Saved kernel;
    Tensor<T, Dev> K;      // (C, H, L)
    Tensor<T, Dev> u, ur;  // (B, H, L) input and its time reversal
    Tensor<T, Dev> z;      // (B, L, H) pre-activation
    Tensor<T, Dev> g;      // (B, L, 2H) output projection before GLU
    typename nn::Linear<T, Dev>::Saved out;
    std::uint64_t seed = 0;
    bool dropped = false;
  };

  Config cfg;
  kernel_type kernel;
  Param<T, Dev> D;
  nn::Linear<T, Dev> out;

  // Touches no device: the slots are bound (and allocated) by a ParamStore<T, Dev>.
  explicit SSMConv(Config c)
      : cfg(with_channels(c)),
        kernel(cfg.kernel),
        D(Shape{kernel.width()}, ParamGroup::weight),
        out(typename nn::Linear<T, Dev>::Config{kernel.width(), 2 * kernel.width(), true}) {
    LONGSEQ_CHECK(cfg.dropout >= 0 && cfg.dropout < 1, "SSMConv: dropout = ", cfg.dropout, ", expected [0, 1)");
  }
  index_t width() const { return kernel.width(); }

  template <class F>
  void parameters(F&& f) {
    kernel.parameters(prefixed("kernel", f));
    f("D", D);
    out.parameters(prefixed("out", f));
  }

  // Host-only, like nn::Linear's: a device layer is initialized on the host and its values copied.
  void init(Rng& rng) {
    static_assert(on_host<Dev>, "SSMConv<Kernel, Dir, device::cuda>::init: initialization is host-only; initialize "
                                "an SSMConv<Kernel, Dir> on the host and copy its parameter values to the device");
    if (cfg.random.enabled) return detail::random_init_all(*this, rng, cfg.random.sigma);
    Rng kr = rng.fork(1), orng = rng.fork(2), dr = rng.fork(3);
    kernel.init(kr);
    out.init(orng);
    for (index_t h = 0; h < D.value.numel(); ++h) D.value[h] = T(dr.normal());
  }

  void forward(Context<Dev>& ctx, TensorView<const T, Dev> x, TensorView<T, Dev> y, Saved& s) {
    detail::check_conv_io(x, y, width());
    check_bound();
    index_t B = x.shape[0], L = x.shape[1], H = width();
    s.K.resize(Shape{Dir::channels, H, L});
    kernel.kernel_forward(ctx, L, s.K.view(), s.kernel);
    s.u.resize(Shape{B, H, L});
    ops::transpose12<T>(ctx, x, s.u.view());
    Tensor<T, Dev>& yt = scratch_.a;
    yt.resize(Shape{B, H, L});
    ops::fft_conv_forward<T>(ctx, s.u.view(), channel(s.K, 0), yt.view());
    Tensor<T, Dev>& v = scratch_.b;
    if constexpr (Dir::bidirectional) {
      s.ur.resize(Shape{B, H, L});
      detail::reverse_rows<T>(ctx, s.u.view(), s.ur.view());
      v.resize(Shape{B, H, L});
      ops::fft_conv_forward<T>(ctx, s.ur.view(), channel(s.K, 1), v.view());
    }
    // The activation is written straight into the output projection's saved input (no copy there).
    s.z.resize(Shape{B, L, H});
    Tensor<T, Dev>& a = s.out.x;
    a.resize(Shape{B, L, H});
    detail::skip_gelu_forward<Dir::bidirectional, T>(ctx, yt.view(), v.view(), x, s.u.view(), D.value, s.z.view(),
                                                     a.view(), cfg.gelu);
    detail::output_forward<T>(ctx, *this, s, a.view(), y);
  }

  void backward(Context<Dev>& ctx, Saved& s, TensorView<const T, Dev> dy, TensorView<T, Dev> dx) {
    LONGSEQ_CHECK(s.u.shape().rank == 3, "SSMConv: backward needs the Saved of a forward call");
    index_t B = s.u.size(0), H = s.u.size(1), L = s.u.size(2);
    expect_shape(dy, Shape{B, L, H}, "dy");
    expect_shape(dx, Shape{B, L, H}, "dx");
    expect_contiguous(dy, "dy");
    expect_contiguous(dx, "dx");
    Tensor<T, Dev>&dg = scratch_.a, &da = scratch_.b, &dyt = scratch_.c, &ds = scratch_.d;
    dg.resize(Shape{B, L, 2 * H});
    da.resize(Shape{B, L, H});
    detail::output_backward<T>(ctx, *this, s, dy, dg.view(), da.view());
    dyt.resize(Shape{B, H, L});
    if constexpr (!on_host<Dev>) ds.resize(Shape{B, H, L});  // the device version writes D dyt here
    detail::skip_gelu_backward<T>(ctx, s.z.view(), da.view(), s.u.view(), D.value, D.grad, dyt.view(), ds.view(),
                                  cfg.gelu);
    // dg and da are free from here on: they hold the convolutions' input gradients.
    Tensor<T, Dev>&du = scratch_.a, &du_r = scratch_.b, &dK = scratch_.dK;
    du.resize(Shape{B, H, L});
    dK.resize(Shape{Dir::channels, H, L});
    ops::fill<T>(ctx, dK.view(), T(0));
    ops::fft_conv_backward<T>(ctx, s.u.view(), channel(s.K, 0), dyt.view(), du.view(), channel(dK, 0));
    if constexpr (Dir::bidirectional) {
      Tensor<T, Dev>& dv = scratch_.e;
      dv.resize(Shape{B, H, L});
      detail::shift_reverse<T>(ctx, dyt.view(), dv.view());
      du_r.resize(Shape{B, H, L});
      ops::fft_conv_backward<T>(ctx, s.ur.view(), channel(s.K, 1), dv.view(), du_r.view(), channel(dK, 1));
    }
    kernel.kernel_backward(ctx, s.kernel, dK.view());
    detail::input_grad<Dir::bidirectional, T>(ctx, dyt.view(), ds.view(), du.view(), du_r.view(), D.value, dx);
  }

 private:
  void check_bound() const {
    LONGSEQ_CHECK(D.bound() && out.weight.bound(), "SSMConv: parameters are not bound (call ParamStore<T, D>::bind)");
  }

  // Temporaries of one forward or backward call, reused so that steady-state calls do not allocate.
  struct Scratch {
    Tensor<T, Dev> a, b, c, d, e, dK;
  } scratch_;

  static Config with_channels(Config c) {
    c.kernel.channels = Dir::channels;
    return c;
  }
  static TensorView<T, Dev> channel(Tensor<T, Dev>& K, index_t c) {
    index_t H = K.size(1), L = K.size(2);
    return TensorView<T, Dev>(K.data() + c * H * L, Shape{H, L});
  }
};

}  // namespace longseq::ssm
