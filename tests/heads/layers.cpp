// Embedding, BatchNorm and pooling: finite-difference gradients, reference values, bad inputs.
#include <doctest/doctest.h>

#include <longseq/nn/batch_norm.hpp>
#include <longseq/nn/embedding.hpp>
#include <longseq/nn/pooling.hpp>

#include "nn/grad_check.hpp"

using namespace longseq;
using testing::compare_fd;
using testing::fill_normal;

TEST_CASE("Embedding looks up rows, skips the padding row in backward, rejects bad ids") {
  nn::Embedding<double> emb({.vocab = 5, .dim = 3, .padding_idx = 1});
  ParamStore<double> store;
  store.bind(emb);
  Rng rng(7);
  emb.init(rng);
  for (index_t k = 0; k < 3; ++k) CHECK(emb.weight.value(1, k) == 0.0);
  Tensor<std::int32_t> ids(Shape{2, 3});
  const std::int32_t raw[] = {0, 1, 4, 4, 2, 1};
  for (int i = 0; i < 6; ++i) ids[i] = raw[i];
  Tensor<double> y(Shape{2, 3, 3}), w(Shape{2, 3, 3});
  HostContext ctx;
  nn::Embedding<double>::Saved s;
  emb.forward(ctx, ids.view(), y.view(), s);
  CHECK(y(0, 2, 1) == emb.weight.value(4, 1));
  CHECK(y(1, 1, 2) == emb.weight.value(2, 2));
  fill_normal(w.view(), rng);
  emb.backward(ctx, s, w.view());
  // Row 4 was used twice: its gradient is the sum; the padding row gets nothing.
  CHECK(emb.weight.grad(4, 0) == doctest::Approx(w(0, 2, 0) + w(1, 0, 0)));
  CHECK(emb.weight.grad(1, 0) == 0.0);
  CHECK(emb.weight.grad(3, 0) == 0.0);
  auto loss = [&] {
    nn::Embedding<double>::Saved t;
    emb.forward(ctx, ids.view(), y.view(), t);
    return testing::dot(y.view(), w.view());
  };
  // The padding row's numeric gradient is nonzero; compare only the other rows.
  for (index_t r : {0, 2, 3, 4})
    compare_fd("d weight row", emb.weight.value.select(r), emb.weight.grad.select(r), loss, 1e-7);
  ids[3] = 5;
  CHECK_THROWS_WITH_AS(emb.forward(ctx, ids.view(), y.view(), s),
                       doctest::Contains("tensor 'ids' holds id 5 at flat index 3, expected 0 <= id < 5"), Error);
  ids[3] = 0;
  Tensor<double> bad(Shape{2, 3, 4});
  CHECK_THROWS_WITH_AS(emb.forward(ctx, ids.view(), bad.view(), s),
                       doctest::Contains("tensor 'y' has shape (2, 3, 4), expected (2, 3, 3)"), Error);
}

TEST_CASE("BatchNorm matches the batch-statistics formula, updates running stats, and has exact gradients") {
  const index_t b = 3, l = 4, h = 5;
  nn::BatchNorm<double> bn({.dim = h, .eps = 1e-5, .momentum = 0.1});
  ParamStore<double> store;
  store.bind(bn);
  Rng rng(11);
  bn.init(rng);
  for (index_t c = 0; c < h; ++c) {
    bn.weight.value[c] = 1.0 + 0.1 * double(c);
    bn.bias.value[c] = 0.05 * double(c);
  }
  Tensor<double> x(Shape{b, l, h}), y(Shape{b, l, h});
  fill_normal(x.view(), rng, 2.0);
  HostContext ctx;
  nn::BatchNorm<double>::Saved s;
  bn.forward(ctx, x.view(), y.view(), s);
  for (index_t c = 0; c < h; ++c) {
    double mu = 0, var = 0;
    for (index_t r = 0; r < b * l; ++r) mu += x[r * h + c];
    mu /= double(b * l);
    for (index_t r = 0; r < b * l; ++r) var += (x[r * h + c] - mu) * (x[r * h + c] - mu);
    const double biased = var / double(b * l), unbiased = var / double(b * l - 1);
    CHECK(y[7 * h + c] == doctest::Approx((x[7 * h + c] - mu) / std::sqrt(biased + 1e-5) * bn.weight.value[c] +
                                          bn.bias.value[c]).epsilon(1e-12));
    CHECK(bn.running_mean.value[c] == doctest::Approx(0.1 * mu).epsilon(1e-12));
    CHECK(bn.running_var.value[c] == doctest::Approx(0.9 + 0.1 * unbiased).epsilon(1e-12));
  }
  SUBCASE("training-mode gradients") {
    testing::check_layer_gradients(bn, store, x, x.shape(), rng, 1e-6, &ctx);
  }
  SUBCASE("evaluation uses the running statistics") {
    ctx.training = false;
    bn.forward(ctx, x.view(), y.view(), s);
    const double want = (x[5] - bn.running_mean.value[0]) / std::sqrt(bn.running_var.value[0] + 1e-5) *
                            bn.weight.value[0] + bn.bias.value[0];
    CHECK(y[5] == doctest::Approx(want).epsilon(1e-12));
    // Running statistics are constants here (they affect y but are not trained): check x, gamma, beta.
    Tensor<double> w(x.shape()), dx(x.shape());
    fill_normal(w.view(), rng);
    auto g = store.grads();
    for (index_t i = 0; i < g.numel(); ++i) g[i] = 0;
    bn.backward(ctx, s, w.view(), dx.view());
    auto loss = [&] {
      nn::BatchNorm<double>::Saved t;
      bn.forward(ctx, x.view(), y.view(), t);
      return testing::dot(y.view(), w.view());
    };
    compare_fd("d x (eval)", x.view(), dx.view(), loss, 1e-6);
    compare_fd("d weight (eval)", bn.weight.value, bn.weight.grad, loss, 1e-6);
    compare_fd("d bias (eval)", bn.bias.value, bn.bias.grad, loss, 1e-6);
    CHECK(bn.running_mean.grad[0] == 0.0);
  }
  Tensor<double> wrong(Shape{b, l, h + 1});
  CHECK_THROWS_WITH_AS(bn.forward(ctx, wrong.view(), wrong.view(), s),
                       doctest::Contains("BatchNorm: tensor 'x' has shape (3, 4, 6), expected (..., 5)"), Error);
}

TEST_CASE("pooling: mean over non-pad positions, max, last; gradients") {
  const index_t b = 2, l = 5, h = 3;
  Rng rng(3);
  Tensor<double> x(Shape{b, l, h}), y(Shape{b, h}), w(Shape{b, h}), dx(Shape{b, l, h});
  fill_normal(x.view(), rng);
  fill_normal(w.view(), rng);
  Tensor<std::int32_t> len(Shape{b});
  len[0] = 3;
  len[1] = 5;
  HostContext ctx;
  for (auto mode : {nn::PoolMode::mean, nn::PoolMode::max, nn::PoolMode::last}) {
    CAPTURE(nn::pool_name(mode));
    nn::Pool<double> pool({mode});
    nn::Pool<double>::Saved s;
    pool.forward(ctx, x.view(), y.view(), s, len.view());
    for (index_t c = 0; c < h; ++c) {
      double want = 0;
      if (mode == nn::PoolMode::mean) want = (x(0, 0, c) + x(0, 1, c) + x(0, 2, c)) / 3.0;
      if (mode == nn::PoolMode::max) want = std::max({x(0, 0, c), x(0, 1, c), x(0, 2, c)});
      if (mode == nn::PoolMode::last) want = x(0, 2, c);
      CHECK(y(0, c) == doctest::Approx(want).epsilon(1e-14));
    }
    pool.backward(ctx, s, w.view(), dx.view());
    for (index_t c = 0; c < h; ++c) CHECK(dx(0, 4, c) == 0.0);  // padding gets no gradient
    auto loss = [&] {
      nn::Pool<double>::Saved t;
      pool.forward(ctx, x.view(), y.view(), t, len.view());
      return testing::dot(y.view(), w.view());
    };
    compare_fd("d x", x.view(), dx.view(), loss, 1e-7, 100);
  }
  nn::Pool<double> pool({nn::PoolMode::mean});
  nn::Pool<double>::Saved s;
  len[1] = 6;
  CHECK_THROWS_WITH_AS(pool.forward(ctx, x.view(), y.view(), s, len.view()),
                       doctest::Contains("tensor 'lengths' holds 6 at batch 1, expected 1 <= length <= 5"), Error);
  CHECK_THROWS_WITH_AS(nn::parse_pool("avg"), doctest::Contains("unknown pooling 'avg'"), Error);
}
