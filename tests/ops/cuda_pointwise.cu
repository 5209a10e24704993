// GPU tests of the pointwise and row-wise ops: activations, glu, softmax, norms, elementwise, reductions,
// dropout. Each is compared with the host op on the same random inputs.
#include <doctest/doctest.h>

#include <longseq/ops/activation.hpp>
#include <longseq/ops/cuda/activation.cuh>
#include <longseq/ops/cuda/ops.cuh>
#include <longseq/ops/dropout.hpp>
#include <longseq/ops/elementwise.hpp>
#include <longseq/ops/norm.hpp>
#include <longseq/ops/reduce.hpp>
#include <longseq/ops/softmax.hpp>

#include "cuda_helpers.cuh"

using namespace longseq;
using namespace longseq::test;
using doctest::Contains;
using DView = TensorView<float, device::cuda>;

namespace {

// Runs the host and the CUDA version of one activation pair on the same inputs and compares y and dx.
template <class T, class HostF, class HostB, class DevF, class DevB>
void check_activation(const char* name, HostF hf, HostB hb, DevF df, DevB db) {
  CAPTURE(name);
  Context<device::host> hctx;
  Context<device::cuda> dctx;
  auto x = random_tensor<T>(Shape{3, 7, 11}, 21, -4.0, 4.0);
  auto dy = random_tensor<T>(Shape{3, 7, 11}, 22);
  Tensor<T> y(x.shape()), dx(x.shape());
  hf(hctx, x.view(), y.view());
  hb(hctx, x.view(), dy.view(), dx.view());
  auto gx = to_device(x), gdy = to_device(dy);
  Tensor<T, device::cuda> gy(x.shape()), gdx(x.shape());
  df(dctx, gx.view(), gy.view());
  db(dctx, gx.view(), gdy.view(), gdx.view());
  CHECK(max_rel_error(download(dctx, gy), y) < 4 * tol<T>());
  CHECK(max_rel_error(download(dctx, gdx), dx) < 4 * tol<T>());
}

template <class T>
void check_all_activations() {
  using HV = TensorView<T>;
  using HC = TensorView<const T>;
  using GV = TensorView<T, device::cuda>;
  using GC = TensorView<const T, device::cuda>;
  using HCtx = Context<device::host>;
  using GCtx = Context<device::cuda>;
  for (ops::Gelu g : {ops::Gelu::exact, ops::Gelu::tanh})
    check_activation<T>(
        g == ops::Gelu::exact ? "gelu exact" : "gelu tanh",
        [g](HCtx& c, HC x, HV y) { ops::gelu_forward<T>(c, x, y, g); },
        [g](HCtx& c, HC x, HC dy, HV dx) { ops::gelu_backward<T>(c, x, dy, dx, g); },
        [g](GCtx& c, GC x, GV y) { ops::gelu_forward<T>(c, x, y, g); },
        [g](GCtx& c, GC x, GC dy, GV dx) { ops::gelu_backward<T>(c, x, dy, dx, g); });
  check_activation<T>(
      "relu", [](HCtx& c, HC x, HV y) { ops::relu_forward<T>(c, x, y); },
      [](HCtx& c, HC x, HC dy, HV dx) { ops::relu_backward<T>(c, x, dy, dx); },
      [](GCtx& c, GC x, GV y) { ops::relu_forward<T>(c, x, y); },
      [](GCtx& c, GC x, GC dy, GV dx) { ops::relu_backward<T>(c, x, dy, dx); });
  check_activation<T>(
      "silu", [](HCtx& c, HC x, HV y) { ops::silu_forward<T>(c, x, y); },
      [](HCtx& c, HC x, HC dy, HV dx) { ops::silu_backward<T>(c, x, dy, dx); },
      [](GCtx& c, GC x, GV y) { ops::silu_forward<T>(c, x, y); },
      [](GCtx& c, GC x, GC dy, GV dx) { ops::silu_backward<T>(c, x, dy, dx); });
  check_activation<T>(
      "sigmoid", [](HCtx& c, HC x, HV y) { ops::sigmoid_forward<T>(c, x, y); },
      [](HCtx& c, HC x, HC dy, HV dx) { ops::sigmoid_backward<T>(c, x, dy, dx); },
      [](GCtx& c, GC x, GV y) { ops::sigmoid_forward<T>(c, x, y); },
      [](GCtx& c, GC x, GC dy, GV dx) { ops::sigmoid_backward<T>(c, x, dy, dx); });
  check_activation<T>(
      "tanh", [](HCtx& c, HC x, HV y) { ops::tanh_forward<T>(c, x, y); },
      [](HCtx& c, HC x, HC dy, HV dx) { ops::tanh_backward<T>(c, x, dy, dx); },
      [](GCtx& c, GC x, GV y) { ops::tanh_forward<T>(c, x, y); },
      [](GCtx& c, GC x, GC dy, GV dx) { ops::tanh_backward<T>(c, x, dy, dx); });
  // glu: x (..., 2H) -> y (..., H); wrapped to the same (x, y) / (x, dy, dx) form on shapes of its own.
  Context<device::host> hctx;
  Context<device::cuda> dctx;
  auto x = random_tensor<T>(Shape{5, 3, 8}, 23, -3.0, 3.0);
  auto dy = random_tensor<T>(Shape{5, 3, 4}, 24);
  Tensor<T> y(Shape{5, 3, 4}), dx(x.shape());
  ops::glu_forward<T>(hctx, x.view(), y.view());
  ops::glu_backward<T>(hctx, x.view(), dy.view(), dx.view());
  auto gx = to_device(x), gdy = to_device(dy);
  Tensor<T, device::cuda> gy(Shape{5, 3, 4}), gdx(x.shape());
  ops::glu_forward<T>(dctx, gx.view(), gy.view());
  ops::glu_backward<T>(dctx, gx.view(), gdy.view(), gdx.view());
  CHECK(max_rel_error(download(dctx, gy), y) < 4 * tol<T>());
  CHECK(max_rel_error(download(dctx, gdx), dx) < 4 * tol<T>());
}

}  // namespace

TEST_CASE("cuda activations and glu agree with the host ops (float, double, bf16)") {
  check_all_activations<float>();
  check_all_activations<double>();
  check_all_activations<longseq::bf16>();
}

TEST_CASE("cuda activations: a known value and bad shapes") {
  Context<device::cuda> ctx;
  Tensor<double> x(Shape{2});
  x[0] = 1.0;
  x[1] = -2.0;
  auto gx = to_device(x);
  Tensor<double, device::cuda> gy(Shape{2});
  ops::gelu_forward<double>(ctx, gx.view(), gy.view());
  auto y = download(ctx, gy);
  CHECK(y[0] == doctest::Approx(0.8413447460685429).epsilon(1e-14));  // Phi(1)
  CHECK(y[1] == doctest::Approx(-2.0 * 0.022750131948179195).epsilon(1e-13));

  Tensor<float, device::cuda> a(Shape{2, 3}), b(Shape{3, 2}), odd(Shape{2, 5}), half_out(Shape{2, 3});
  CHECK_THROWS_WITH_AS(ops::relu_forward<float>(ctx, a.view(), b.view()),
                       Contains("tensor 'y' has shape (3, 2), expected (2, 3)"), Error);
  CHECK_THROWS_WITH_AS(ops::glu_forward<float>(ctx, odd.view(), half_out.view()),
                       Contains("expected an even last dimension"), Error);
}

namespace {

template <class T>
void check_softmax(Shape shape, double spread) {
  CAPTURE(shape);
  Context<device::host> hctx;
  Context<device::cuda> dctx;
  auto x = random_tensor<T>(shape, 31, -spread, spread);
  auto dy = random_tensor<T>(shape, 32);
  auto gx = to_device(x), gdy = to_device(dy);
  for (bool log : {false, true}) {
    CAPTURE(log);
    Tensor<T> y(shape), dx(shape);
    Tensor<T, device::cuda> gy(shape), gdx(shape);
    if (log) {
      ops::log_softmax_forward<T>(hctx, x.view(), y.view());
      ops::log_softmax_backward<T>(hctx, y.view(), dy.view(), dx.view());
      ops::log_softmax_forward<T>(dctx, gx.view(), gy.view());
      ops::log_softmax_backward<T>(dctx, gy.view(), gdy.view(), gdx.view());
    } else {
      ops::softmax_forward<T>(hctx, x.view(), y.view());
      ops::softmax_backward<T>(hctx, y.view(), dy.view(), dx.view());
      ops::softmax_forward<T>(dctx, gx.view(), gy.view());
      ops::softmax_backward<T>(dctx, gy.view(), gdy.view(), gdx.view());
    }
    // Sums of up to C terms in a different order: the tolerance grows with the row length.
    double t = sum_tol<T>(shape[shape.rank - 1]);
    CHECK(max_rel_error(download(dctx, gy), y) < t);
    CHECK(max_rel_error(download(dctx, gdx), dx) < t);
  }
}

}  // namespace

TEST_CASE("cuda softmax and log_softmax agree with the host ops, short and long rows") {
  check_softmax<float>(Shape{4, 5, 37}, 3.0);
  check_softmax<float>(Shape{3, 1000}, 3.0);
  check_softmax<float>(Shape{6, 1}, 3.0);
  check_softmax<float>(Shape{2, 300}, 80.0);  // large logits: the max shift keeps exp finite
  check_softmax<double>(Shape{7, 129}, 5.0);
  check_softmax<longseq::bf16>(Shape{5, 64}, 3.0);
}

TEST_CASE("cuda softmax rows sum to one and bad shapes are rejected") {
  Context<device::cuda> ctx;
  auto x = to_device(random_tensor<double>(Shape{3, 513}, 33, -10.0, 10.0));
  Tensor<double, device::cuda> y(Shape{3, 513});
  ops::softmax_forward<double>(ctx, x.view(), y.view());
  auto h = download(ctx, y);
  for (index_t r = 0; r < 3; ++r) {
    double s = 0;
    for (index_t c = 0; c < 513; ++c) s += h(r, c);
    CHECK(s == doctest::Approx(1.0).epsilon(1e-12));
  }
  Tensor<double, device::cuda> wrong(Shape{3, 512});
  CHECK_THROWS_WITH_AS(ops::softmax_forward<double>(ctx, x.view(), wrong.view()),
                       Contains("tensor 'y' has shape (3, 512), expected (3, 513)"), Error);
}

namespace {

// Host and CUDA layernorm/rmsnorm on the same inputs: y, the saved statistics, dx, and dgamma/dbeta
// accumulated onto non-zero starting values. With alias_dx the CUDA backward writes dx over dy.
template <class T>
void check_norms(index_t rows, index_t H, bool alias_dx = false) {
  CAPTURE(rows);
  CAPTURE(H);
  using W = accum_t<T>;
  Context<device::host> hctx;
  Context<device::cuda> dctx;
  Shape shape{rows, H};
  auto x = random_tensor<T>(shape, 41, -2.0, 3.0);
  auto dy = random_tensor<T>(shape, 42);
  auto gamma = random_tensor<T>(Shape{H}, 43, 0.5, 1.5);
  auto beta = random_tensor<T>(Shape{H}, 44);
  auto gx = to_device(x), gg = to_device(gamma), gb = to_device(beta);
  double t = sum_tol<T>(H), tp = sum_tol<T>(rows);
  const W eps = W(1e-5);
  {
    Tensor<T> y(shape), dx(shape);
    Tensor<W> mean(Shape{rows}), rstd(Shape{rows});
    auto dgamma = random_tensor<T>(Shape{H}, 45), dbeta = random_tensor<T>(Shape{H}, 46);
    auto gdgamma = to_device(dgamma), gdbeta = to_device(dbeta);
    ops::layernorm_forward<T>(hctx, x.view(), gamma.view(), beta.view(), y.view(), mean.view(), rstd.view(), eps);
    ops::layernorm_backward<T>(hctx, x.view(), gamma.view(), mean.view(), rstd.view(), dy.view(), dx.view(),
                               dgamma.view(), dbeta.view());
    Tensor<T, device::cuda> gy(shape), gdx(shape);
    Tensor<W, device::cuda> gmean(Shape{rows}), grstd(Shape{rows});
    auto gdy = to_device(dy);
    ops::layernorm_forward<T>(dctx, gx.view(), gg.view(), gb.view(), gy.view(), gmean.view(), grstd.view(), eps);
    auto out = alias_dx ? gdy.view() : gdx.view();
    ops::layernorm_backward<T>(dctx, gx.view(), gg.view(), gmean.view(), grstd.view(), gdy.view(), out,
                               gdgamma.view(), gdbeta.view());
    CHECK(max_rel_error(download(dctx, gy), y) < t);
    CHECK(max_rel_error(download(dctx, gmean), mean) < t);
    CHECK(max_rel_error(download(dctx, grstd), rstd) < t);
    CHECK(max_rel_error(download(dctx, alias_dx ? gdy : gdx), dx) < t);
    CHECK(max_rel_error(download(dctx, gdgamma), dgamma) < tp);
    CHECK(max_rel_error(download(dctx, gdbeta), dbeta) < tp);
  }
  {
    Tensor<T> y(shape), dx(shape);
    Tensor<W> rstd(Shape{rows});
    auto dgamma = random_tensor<T>(Shape{H}, 47);
    auto gdgamma = to_device(dgamma);
    ops::rmsnorm_forward<T>(hctx, x.view(), gamma.view(), y.view(), rstd.view(), eps);
    ops::rmsnorm_backward<T>(hctx, x.view(), gamma.view(), rstd.view(), dy.view(), dx.view(), dgamma.view());
    Tensor<T, device::cuda> gy(shape), gdx(shape);
    Tensor<W, device::cuda> grstd(Shape{rows});
    auto gdy = to_device(dy);
    ops::rmsnorm_forward<T>(dctx, gx.view(), gg.view(), gy.view(), grstd.view(), eps);
    auto out = alias_dx ? gdy.view() : gdx.view();
    ops::rmsnorm_backward<T>(dctx, gx.view(), gg.view(), grstd.view(), gdy.view(), out, gdgamma.view());
    CHECK(max_rel_error(download(dctx, gy), y) < t);
    CHECK(max_rel_error(download(dctx, grstd), rstd) < t);
    CHECK(max_rel_error(download(dctx, alias_dx ? gdy : gdx), dx) < t);
    CHECK(max_rel_error(download(dctx, gdgamma), dgamma) < tp);
  }
}

}  // namespace

TEST_CASE("cuda layernorm and rmsnorm agree with the host ops, dgamma/dbeta accumulate") {
  check_norms<float>(300, 37);
  check_norms<float>(5, 1000);
  check_norms<float>(129, 64, true);
  check_norms<double>(260, 33);
  check_norms<longseq::bf16>(70, 48);
}

TEST_CASE("cuda norms reject a gamma of the wrong length and statistics of the wrong size") {
  Context<device::cuda> ctx;
  Tensor<float, device::cuda> x(Shape{4, 8}), y(Shape{4, 8}), g7(Shape{7}), g8(Shape{8}), r3(Shape{3});
  CHECK_THROWS_WITH_AS(ops::rmsnorm_forward<float>(ctx, x.view(), g7.view(), y.view(), r3.view(), 1e-5f),
                       Contains("tensor 'gamma' has shape (7), expected (8)"), Error);
  CHECK_THROWS_WITH_AS(ops::rmsnorm_forward<float>(ctx, x.view(), g8.view(), y.view(), r3.view(), 1e-5f),
                       Contains("tensor 'rstd' has shape (3) (3 elements), expected one value per row of 'x' (4)"),
                       Error);
}

namespace {

template <class T>
void check_elementwise() {
  Context<device::host> hctx;
  Context<device::cuda> dctx;
  using W = accum_t<T>;
  const index_t B = 3, L = 45, H = 37;
  Shape shape{B, L, H};
  auto a = random_tensor<T>(shape, 51), b = random_tensor<T>(shape, 52), dy = random_tensor<T>(shape, 53);
  auto bias = random_tensor<T>(Shape{H}, 54);
  auto ga = to_device(a), gb = to_device(b), gdy = to_device(dy), gbias = to_device(bias);
  double t = 2 * tol<T>();

  Tensor<T> y(shape);
  Tensor<T, device::cuda> gy(shape);
  ops::fill<T>(hctx, y.view(), T(W(0.75)));
  ops::fill<T>(dctx, gy.view(), T(W(0.75)));
  CHECK(max_rel_error(download(dctx, gy), y) == 0.0);

  ops::add<T>(hctx, a.view(), b.view(), y.view());
  ops::add<T>(dctx, ga.view(), gb.view(), gy.view());
  CHECK(max_rel_error(download(dctx, gy), y) < t);

  ops::add_inplace<T>(hctx, y.view(), a.view());
  ops::add_inplace<T>(dctx, gy.view(), ga.view());
  CHECK(max_rel_error(download(dctx, gy), y) < t);

  ops::axpy<T>(hctx, W(-0.5), b.view(), y.view());
  ops::axpy<T>(dctx, W(-0.5), gb.view(), gy.view());
  CHECK(max_rel_error(download(dctx, gy), y) < t);

  ops::scale<T>(hctx, y.view(), W(3));
  ops::scale<T>(dctx, gy.view(), W(3));
  CHECK(max_rel_error(download(dctx, gy), y) < t);

  ops::add_bias<T>(hctx, y.view(), bias.view());
  ops::add_bias<T>(dctx, gy.view(), gbias.view());
  CHECK(max_rel_error(download(dctx, gy), y) < t);

  ops::mul<T>(hctx, a.view(), b.view(), y.view());
  ops::mul<T>(dctx, ga.view(), gb.view(), gy.view());
  CHECK(max_rel_error(download(dctx, gy), y) < t);

  Tensor<T> da(shape), db(shape);
  Tensor<T, device::cuda> gda(shape), gdb(shape);
  ops::mul_backward<T>(hctx, a.view(), b.view(), dy.view(), da.view(), db.view());
  ops::mul_backward<T>(dctx, ga.view(), gb.view(), gdy.view(), gda.view(), gdb.view());
  CHECK(max_rel_error(download(dctx, gda), da) < t);
  CHECK(max_rel_error(download(dctx, gdb), db) < t);
  ops::mul_backward<T>(dctx, ga.view(), gb.view(), gdy.view(), TensorView<T, device::cuda>(), gdb.view());
  CHECK(max_rel_error(download(dctx, gdb), db) < t);

  // A transpose moves values exactly; twice is the identity.
  Tensor<T> tr(Shape{B, H, L});
  Tensor<T, device::cuda> gtr(Shape{B, H, L}), gback(shape);
  ops::transpose12<T>(hctx, a.view(), tr.view());
  ops::transpose12<T>(dctx, ga.view(), gtr.view());
  ops::transpose12<T>(dctx, gtr.view(), gback.view());
  CHECK(max_rel_error(download(dctx, gtr), tr) == 0.0);
  CHECK(max_rel_error(download(dctx, gback), a) == 0.0);

  // copy from a strided view (the (L, H) -> (H, L) permutation of batch 0 read through strides).
  TensorView<const T> pv(a.data(), Shape{H, L}, Shape{1, H});
  TensorView<const T, device::cuda> gpv(ga.data(), Shape{H, L}, Shape{1, H});
  Tensor<T> pc(Shape{H, L});
  Tensor<T, device::cuda> gpc(Shape{H, L});
  ops::copy<T, T>(hctx, pv, pc.view());
  ops::copy<T, T>(dctx, gpv, gpc.view());
  CHECK(max_rel_error(download(dctx, gpc), pc) == 0.0);
}

}  // namespace

TEST_CASE("cuda elementwise ops and transpose12 agree with the host ops (float, double, bf16)") {
  check_elementwise<float>();
  check_elementwise<double>();
  check_elementwise<longseq::bf16>();
}

TEST_CASE("cuda copy converts element types as the host does, and elementwise ops check shapes") {
  Context<device::host> hctx;
  Context<device::cuda> dctx;
  auto x = random_tensor<double>(Shape{4, 9}, 55, -100.0, 100.0);
  auto gx = to_device(x);
  Tensor<longseq::bf16> hb(Shape{4, 9});
  Tensor<longseq::bf16, device::cuda> gbf(Shape{4, 9});
  ops::copy<longseq::bf16, double>(hctx, x.view(), hb.view());
  ops::copy<longseq::bf16, double>(dctx, gx.view(), gbf.view());
  auto got = download(dctx, gbf);
  int differ = 0;
  for (index_t i = 0; i < got.numel(); ++i) differ += got[i].bits != hb[i].bits;
  CHECK(differ == 0);

  Tensor<float, device::cuda> a(Shape{2, 3}), b(Shape{3, 2});
  CHECK_THROWS_WITH_AS(ops::add<float>(dctx, a.view(), b.view(), a.view()),
                       Contains("tensor 'b' has shape (3, 2), expected (2, 3)"), Error);
  CHECK_THROWS_WITH_AS(ops::transpose12<float>(dctx, a.view(), a.view()), Contains("tensor 'x' has rank 2"), Error);
}

namespace {

template <class T>
void check_reductions() {
  Context<device::host> hctx;
  Context<device::cuda> dctx;
  // sum_rows over 300 rows (three chunks), overwritten and accumulated.
  auto x = random_tensor<T>(Shape{3, 100, 37}, 61);
  auto y0 = random_tensor<T>(Shape{37}, 62);
  auto gx = to_device(x);
  for (bool acc : {false, true}) {
    auto y = random_tensor<T>(Shape{37}, 62);
    auto gy = to_device(y0);
    ops::sum_rows<T>(hctx, x.view(), y.view(), acc);
    ops::sum_rows<T>(dctx, gx.view(), gy.view(), acc);
    CHECK(max_rel_error(download(dctx, gy), y) < sum_tol<T>(300));
  }
  // mean and max over each axis of a (4, 5, 6) tensor with many ties (values from {0, 1, 2}).
  Tensor<T> z(Shape{4, 5, 6});
  Rng rng(63);
  for (index_t i = 0; i < z.numel(); ++i) z[i] = T(float(rng.below(3)));
  auto gz = to_device(z);
  for (int axis : {0, 1, -1}) {
    CAPTURE(axis);
    Shape out = z.shape();
    int a = axis < 0 ? axis + 3 : axis;
    out.dims[a] = 1;
    Tensor<T> m(out), mx(out), dy = random_tensor<T>(out, 64), dxm(z.shape()), dxx(z.shape());
    Tensor<std::int64_t> am(out);
    Tensor<T, device::cuda> gm(out), gmx(out), gdxm(z.shape()), gdxx(z.shape());
    Tensor<std::int64_t, device::cuda> gam(out);
    auto gdy = to_device(dy);
    ops::mean_forward<T>(hctx, z.view(), m.view(), axis);
    ops::mean_forward<T>(dctx, gz.view(), gm.view(), axis);
    ops::mean_backward<T>(hctx, dy.view(), dxm.view(), axis);
    ops::mean_backward<T>(dctx, gdy.view(), gdxm.view(), axis);
    ops::max_forward<T>(hctx, z.view(), mx.view(), am.view(), axis);
    ops::max_forward<T>(dctx, gz.view(), gmx.view(), gam.view(), axis);
    ops::max_backward<T>(hctx, am.view(), dy.view(), dxx.view(), axis);
    ops::max_backward<T>(dctx, gam.view(), gdy.view(), gdxx.view(), axis);
    CHECK(max_rel_error(download(dctx, gm), m) < 2 * tol<T>());
    CHECK(max_rel_error(download(dctx, gdxm), dxm) < 2 * tol<T>());
    CHECK(max_rel_error(download(dctx, gmx), mx) == 0.0);
    CHECK(max_rel_error(download(dctx, gdxx), dxx) == 0.0);
    auto got_am = download(dctx, gam);
    int differ = 0;
    for (index_t i = 0; i < am.numel(); ++i) differ += got_am[i] != am[i];
    CHECK(differ == 0);
  }
}

}  // namespace

TEST_CASE("cuda sum_rows, mean and max/argmax agree with the host ops (float, double)") {
  check_reductions<float>();
  check_reductions<double>();
}

TEST_CASE("cuda reductions reject an output of the wrong shape") {
  Context<device::cuda> ctx;
  Tensor<float, device::cuda> x(Shape{4, 5}), y(Shape{3});
  CHECK_THROWS_WITH_AS(ops::sum_rows<float>(ctx, x.view(), y.view()), Contains("tensor 'y' has shape (3), expected (5)"),
                       Error);
  CHECK_THROWS_WITH_AS(ops::mean_forward<float>(ctx, x.view(), y.view(), 0),
                       Contains("reduce: tensor 'y' has shape (3), expected (5) or (1, 5)"), Error);
}

TEST_CASE("cuda dropout drops exactly the host's elements and the backward regenerates the mask") {
  Context<device::host> hctx;
  Context<device::cuda> dctx;
  const index_t n = 1001;  // not a multiple of four: the last Philox block is partly used
  auto x = random_tensor<float>(Shape{n}, 71, 0.5, 1.5);  // never zero, so zeros in y are dropped elements
  auto gx = to_device(x);
  for (double p : {0.1, 0.5, 0.9}) {
    CAPTURE(p);
    const std::uint64_t seed = 0x1234567890abcdefull, stream = 77;
    Tensor<float> y(Shape{n}), dx(Shape{n});
    Tensor<float, device::cuda> gy(Shape{n}), gdx(Shape{n});
    ops::dropout_forward<float>(hctx, x.view(), y.view(), p, seed, stream);
    ops::dropout_forward<float>(dctx, gx.view(), gy.view(), p, seed, stream);
    ops::dropout_backward<float>(hctx, x.view(), dx.view(), p, seed, stream);
    ops::dropout_backward<float>(dctx, gx.view(), gdx.view(), p, seed, stream);
    auto got = download(dctx, gy), got_dx = download(dctx, gdx);
    int mask_differs = 0, value_differs = 0, dropped = 0, keep_rule = 0;
    for (index_t i = 0; i < n; ++i) {
      bool kept = got[i] != 0.0f;
      mask_differs += kept != (y[i] != 0.0f);
      value_differs += got[i] != y[i] || got_dx[i] != got[i];
      keep_rule += kept != ops::dropout_keeps(seed, stream, std::uint64_t(i), float(p));
      dropped += !kept;
    }
    CHECK(mask_differs == 0);
    CHECK(value_differs == 0);
    CHECK(keep_rule == 0);
    CHECK(std::abs(double(dropped) / double(n) - p) < 0.08);  // about five standard deviations
  }
  // p = 0 copies; a probability outside [0, 1) is rejected.
  Tensor<float, device::cuda> gy(Shape{n});
  ops::dropout_forward<float>(dctx, gx.view(), gy.view(), 0.0, 1, 2);
  CHECK(max_rel_error(download(dctx, gy), x) == 0.0);
  CHECK_THROWS_WITH_AS(ops::dropout_forward<float>(dctx, gx.view(), gy.view(), 1.0, 1, 2),
                       Contains("dropout: probability p = 1 must lie in [0, 1)"), Error);
}

TEST_CASE("cuda dropout in bf16 keeps the same mask as float") {
  Context<device::cuda> ctx;
  const index_t n = 257;
  Tensor<float> ones(Shape{n}, 1.0f);
  Tensor<longseq::bf16> ones_b(Shape{n});
  for (index_t i = 0; i < n; ++i) ones_b[i] = longseq::bf16(1.0f);
  auto gf = to_device(ones);
  auto gbf = to_device(ones_b);
  Tensor<float, device::cuda> yf(Shape{n});
  Tensor<longseq::bf16, device::cuda> yb(Shape{n});
  ops::dropout_forward<float>(ctx, gf.view(), yf.view(), 0.3, 5, 6);
  ops::dropout_forward<longseq::bf16>(ctx, gbf.view(), yb.view(), 0.3, 5, 6);
  auto hf = download(ctx, yf);
  auto hb = download(ctx, yb);
  int differ = 0;
  for (index_t i = 0; i < n; ++i) differ += (hf[i] != 0.0f) != (float(hb[i]) != 0.0f);
  CHECK(differ == 0);
}
