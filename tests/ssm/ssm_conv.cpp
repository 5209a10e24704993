// SSMConv: finite-difference gradients for every kernel type and direction, direct references, names.
#include <doctest/doctest.h>

#include <longseq/ssm/ssm.hpp>
#include <set>
#include <string>
#include <type_traits>

#include "grad_check.hpp"

using namespace longseq;
using namespace longseq::ssm;

// The device policy flows from the layer: a parameterization named without one follows it, one named on a
// policy gives the layer its default; the layer's Config is one type for every policy and storage type.
static_assert(std::is_same_v<SSMConv<S4D<double>, Causal>::kernel_type, S4D<double>>);
static_assert(std::is_same_v<kernel_on_t<S4D<float>, device::cuda>, S4D<float, ZOH, device::cuda>>);
static_assert(std::is_same_v<kernel_on_t<DSS<float, DSSVariant::softmax>, device::cuda>,
                             DSS<float, DSSVariant::softmax, device::cuda>>);
static_assert(std::is_same_v<kernel_on_t<ConvKernel<double>, device::host>, ConvKernel<double>>);
static_assert(std::is_same_v<kernel_device_t<S4<float, device::cuda>>, device::cuda>);
static_assert(std::is_same_v<SSMConv<DLR<float>, Bidirectional>::Config,
                             SSMConvConfig<DLR<double, device::cuda>::Config>>);
static_assert(!DiagonalKernel<S4D<float, ZOH, device::cuda>>, "the diagonal form (recurrent mode) is a host concept");
// The trainers build their bf16 models from the float parameterization they name (kernel_with_value_t): the
// storage type changes, the discretization, variant and policy stay.
static_assert(std::is_same_v<kernel_with_value_t<S4D<float, Bilinear, device::cuda>, bf16>,
                             S4D<bf16, Bilinear, device::cuda>>);
static_assert(std::is_same_v<kernel_with_value_t<DSS<float, DSSVariant::softmax>, bf16>, DSS<bf16, DSSVariant::softmax>>);
static_assert(std::is_same_v<kernel_with_value_t<S4<float>, bf16>, S4<bf16>>);
static_assert(std::is_same_v<kernel_with_value_t<DLR<float>, float>, DLR<float>>);
static_assert(std::is_same_v<kernel_with_value_t<ConvKernel<float, device::cuda>, bf16>, ConvKernel<bf16, device::cuda>>);

namespace {

// Checks dx and every parameter gradient of layer(x) against central differences of <y, W>.
template <class Layer>
void check_layer(Layer& layer, index_t B, index_t L, std::uint64_t seed, bool training = false) {
  index_t H = layer.width();
  ParamStore<double> store;
  store.bind(layer);
  Rng rng(seed);
  layer.init(rng);
  HostContext ctx;
  ctx.training = training;
  ctx.seed = 1234;
  auto xv = test::random_vec(B * L * H, seed + 1);
  auto W = test::random_vec(B * L * H, seed + 2);
  TensorView<double> x(xv.data(), Shape{B, L, H});
  Tensor<double> y(Shape{B, L, H}), dx(Shape{B, L, H});
  typename Layer::Saved s;
  auto loss = [&] {
    layer.forward(ctx, x, y.view(), s);
    double acc = 0;
    for (index_t i = 0; i < y.numel(); ++i) acc += y[i] * W[std::size_t(i)];
    return acc;
  };
  loss();
  layer.backward(ctx, s, TensorView<const double>(W.data(), Shape{B, L, H}), dx.view());
  CHECK(test::check_param_grads(store, loss, 1e-6, 2e-6) == 0);
  int bad = 0;
  for (index_t i = 0; i < x.numel(); ++i) {
    double keep = x[i];
    x[i] = keep + 1e-6;
    double p = loss();
    x[i] = keep - 1e-6;
    double m = loss();
    x[i] = keep;
    double num = (p - m) / 2e-6;
    if (std::abs(num - dx[i]) > 2e-6 * (1 + std::abs(num))) {
      ++bad;
      MESSAGE("dx[", i, "]: analytic ", dx[i], ", numeric ", num);
    }
  }
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("SSMConv gradients match finite differences for every kernel type and direction") {
  SSMConv<S4D<double>, Bidirectional> a({.kernel = {.H = 3, .N = 4, .dt_min = 0.05, .dt_max = 0.5}});
  check_layer(a, 2, 7, 1);
  SSMConv<S4D<double, Bilinear>, Causal> b({.kernel = {.H = 2, .N = 4}});
  check_layer(b, 2, 6, 2);
  SSMConv<DLR<double>, Causal> c({.kernel = {.H = 2, .N = 3}});
  check_layer(c, 1, 8, 3);
  SSMConv<DSS<double>, Bidirectional> d({.kernel = {.H = 2, .N = 3}});
  check_layer(d, 1, 6, 4);
  SSMConv<S4<double>, Bidirectional> e({.kernel = {.H = 2, .N = 4, .l_max = 8, .dt_min = 0.05, .dt_max = 0.5}});
  check_layer(e, 2, 8, 5);
  SSMConv<ConvKernel<double>, Bidirectional> f({.kernel = {.H = 2, .l_max = 8}, .dropout = 0.3});
  check_layer(f, 2, 5, 6, /*training=*/true);
}

TEST_CASE("SSMConv pre-activation equals the direct causal + anti-causal convolution plus D u") {
  index_t B = 2, L = 9, H = 3;
  SSMConv<S4D<double>, Bidirectional> layer({.kernel = {.H = H, .N = 6}});
  ParamStore<double> store;
  store.bind(layer);
  Rng rng(8);
  layer.init(rng);
  HostContext ctx;
  auto xv = test::random_vec(B * L * H, 3);
  TensorView<const double> x(xv.data(), Shape{B, L, H});
  Tensor<double> y(Shape{B, L, H});
  decltype(layer)::Saved s;
  layer.forward(ctx, x, y.view(), s);
  REQUIRE(s.K.shape() == Shape{2, H, L});
  double err = 0;
  for (index_t b = 0; b < B; ++b)
    for (index_t l = 0; l < L; ++l)
      for (index_t h = 0; h < H; ++h) {
        double ref = layer.D.value[h] * x(b, l, h);
        for (index_t j = 0; j <= l; ++j) ref += s.K(0, h, j) * x(b, l - j, h);
        for (index_t t = 1; l + t < L; ++t) ref += s.K(1, h, t - 1) * x(b, l + t, h);
        err = std::max(err, std::abs(ref - s.z(b, l, h)));
      }
  CHECK(err < 1e-12);
  // Output = GLU(Linear(GELU(z))).
  double e2 = 0;
  for (index_t b = 0; b < B; ++b)
    for (index_t l = 0; l < L; ++l)
      for (index_t o = 0; o < H; ++o) {
        double g[2];
        for (int half = 0; half < 2; ++half) {
          index_t row = o + half * H;
          double acc = layer.out.bias.value[row];
          for (index_t h = 0; h < H; ++h) {
            double zz = s.z(b, l, h);
            acc += layer.out.weight.value(row, h) * 0.5 * zz * (1 + std::erf(zz / std::sqrt(2.0)));
          }
          g[half] = acc;
        }
        e2 = std::max(e2, std::abs(g[0] / (1 + std::exp(-g[1])) - y(b, l, o)));
      }
  CHECK(e2 < 1e-12);
}

TEST_CASE("SSMConv names its parameters and groups the SSM dynamics") {
  SSMConv<S4D<float>, Bidirectional> layer({.kernel = {.H = 4, .N = 8}});
  std::set<std::string> names;
  int ssm = 0;
  ParamGroup dt_group = ParamGroup::weight;
  layer.parameters([&](std::string_view n, Param<float>& p) {
    names.insert(std::string(n));
    ssm += p.group == ParamGroup::ssm;
    if (n == "kernel.log_dt") dt_group = p.group;
  });
  CHECK(names == std::set<std::string>{"kernel.log_dt", "kernel.log_A_real", "kernel.A_imag", "kernel.B", "kernel.C",
                                       "D", "out.weight", "out.bias"});
  CHECK(ssm == 3);  // A (real, imaginary) and B; dt has its own group (global lr in the reference)
  CHECK(dt_group == ParamGroup::dt);
  CHECK(layer.kernel.C.shape == Shape{2, 4, 4, 2});
  // The random-init ablation draws every parameter of the layer, not only the kernel's.
  SSMConv<S4D<double>, Causal> r({.kernel = {.H = 8, .N = 8}, .random = {.enabled = true, .sigma = 0.1}});
  ParamStore<double> store;
  store.bind(r);
  Rng rng(3);
  r.init(rng);
  double ss = 0;
  index_t n = 0;
  for (const auto& e : store.entries())
    for (index_t i = 0; i < e.param->value.numel(); ++i, ++n) ss += e.param->value[i] * e.param->value[i];
  CHECK(std::sqrt(ss / double(n)) == doctest::Approx(0.1).epsilon(0.15));
  CHECK(r.out.weight.value[0] != 0.0);
  static_assert(!KernelParameterization<int>);
  static_assert(KernelParameterization<S4<float>> && KernelParameterization<ConvKernel<double>>);
}

TEST_CASE("SSMConv float forward runs and rejects bad shapes") {
  SSMConv<DLR<float>, Causal> layer({.kernel = {.H = 4, .N = 8}});
  ParamStore<float> store;
  store.bind(layer);
  Rng rng(2);
  layer.init(rng);
  HostContext ctx;
  Tensor<float> x(Shape{2, 16, 4}, 0.5f), y(Shape{2, 16, 4});
  decltype(layer)::Saved s;
  layer.forward(ctx, x.view(), y.view(), s);
  for (index_t i = 0; i < y.numel(); ++i) CHECK(std::isfinite(y[i]));
  Tensor<float> bad(Shape{2, 16, 5});
  CHECK_THROWS_WITH_AS(layer.forward(ctx, bad.view(), bad.view(), s),
                       doctest::Contains("SSMConv: tensor 'x' has shape (2, 16, 5), expected (B, L, 4)"), Error);
  CHECK_THROWS_WITH_AS((SSMConv<DLR<float>, Causal>({.kernel = {.H = 4}, .dropout = 1.0})),
                       doctest::Contains("dropout = 1, expected [0, 1)"), Error);
}

namespace {

// One forward + backward of `layer` on (B, L): the output, the input gradient and the parameter gradients
// (zeroed first), all copied out.
template <class Layer>
std::vector<float> run_once(Layer& layer, ParamStore<float>& store, typename Layer::Saved& s, index_t B, index_t L,
                            int threads) {
  HostContext ctx;
  ctx.threads = threads;
  index_t H = layer.width();
  auto xv = test::random_vec(B * L * H, 100 + std::uint64_t(B * 1000 + L)), wv = test::random_vec(B * L * H, 7);
  Tensor<float> x(Shape{B, L, H}), w(Shape{B, L, H}), y(Shape{B, L, H}), dx(Shape{B, L, H});
  for (index_t i = 0; i < x.numel(); ++i) {
    x[i] = float(xv[std::size_t(i)]);
    w[i] = float(wv[std::size_t(i)]);
  }
  auto g = store.grads();
  std::fill(g.data, g.data + g.numel(), 0.0f);
  layer.forward(ctx, x.view(), y.view(), s);
  layer.backward(ctx, s, w.view(), dx.view());
  std::vector<float> out(y.data(), y.data() + y.numel());
  out.insert(out.end(), dx.data(), dx.data() + dx.numel());
  out.insert(out.end(), g.data, g.data + g.numel());
  return out;
}

template <class Layer>
void check_reuse(typename Layer::Config cfg) {
  Layer layer(cfg);
  ParamStore<float> store;
  store.bind(layer);
  Rng r1(5);
  layer.init(r1);
  typename Layer::Saved s;
  // Shapes that grow, shrink (buffers larger than needed) and grow again, on one thread and two (the
  // largest is big enough for the parallel loops); each compared with a fresh layer's first call.
  const index_t shapes[][2] = {{3, 70}, {1, 17}, {4, 300}, {2, 129}, {3, 70}};
  for (int threads : {1, 2})
    for (const auto& sh : shapes) {
      CAPTURE(sh[0]);
      CAPTURE(sh[1]);
      typename Layer::Saved s_fresh;
      Layer once(cfg);
      ParamStore<float> once_store;
      once_store.bind(once);
      Rng r3(5);
      once.init(r3);
      auto reused = run_once(layer, store, s, sh[0], sh[1], threads);
      auto first = run_once(once, once_store, s_fresh, sh[0], sh[1], threads);
      CHECK(reused == first);
    }
}

}  // namespace

TEST_CASE("SSMConv reuses its buffers across calls of other shapes with identical results") {
  check_reuse<SSMConv<S4D<float>, Causal>>({.kernel = {.H = 40, .N = 8}});
  check_reuse<SSMConv<S4D<float>, Bidirectional>>({.kernel = {.H = 33, .N = 4}});
  check_reuse<SSMConv<S4D<float>, Bidirectional>>({.kernel = {.H = 8, .N = 4}, .gelu = ops::Gelu::tanh});
}

TEST_CASE("SSMConv with tied dropout drops whole channels of the activation, and its gradients hold") {
  static_assert(SSMConvConfig<S4DConfig>{}.dropout_mask == nn::DropoutMask::element, "the default stays per element");
  const index_t B = 3, L = 9, H = 6;
  const double p = 0.5;
  SSMConv<S4D<double>, Bidirectional> layer(
      {.kernel = {.H = H, .N = 4}, .dropout = p, .dropout_mask = nn::DropoutMask::tied, .stream = 5});
  ParamStore<double> store;
  store.bind(layer);
  Rng rng(8);
  layer.init(rng);
  auto xv = test::random_vec(B * L * H, 9);
  TensorView<double> x(xv.data(), Shape{B, L, H});
  Tensor<double> y(Shape{B, L, H});
  HostContext ctx;
  ctx.seed = 31;
  decltype(layer)::Saved eval, train;
  ctx.training = false;
  layer.forward(ctx, x, y.view(), eval);
  ctx.training = true;
  layer.forward(ctx, x, y.view(), train);
  // The output projection's saved input is the activation after dropout: per (b, h) it is the activation
  // times 0 or 1 / (1 - p) at every step, never a mix.
  index_t mixed = 0, dropped = 0;
  for (index_t b = 0; b < B; ++b)
    for (index_t h = 0; h < H; ++h) {
      const bool keep = ops::dropout_keeps(31, 5, std::uint64_t(b * H + h), float(p));
      dropped += !keep;
      for (index_t l = 0; l < L; ++l) {
        const index_t i = (b * L + l) * H + h;
        const double want = keep ? eval.out.x[i] / (1 - p) : 0.0;
        mixed += std::abs(train.out.x[i] - want) > 1e-12 * (1 + std::abs(want));
      }
    }
  CHECK(mixed == 0);
  CHECK(dropped > 0);
  CHECK(dropped < B * H);
  SSMConv<S4D<double>, Bidirectional> g({.kernel = {.H = 3, .N = 4, .dt_min = 0.05, .dt_max = 0.5},
                                         .dropout = 0.3,
                                         .dropout_mask = nn::DropoutMask::tied});
  check_layer(g, 2, 7, 12, /*training=*/true);
}
