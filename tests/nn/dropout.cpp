// Tied dropout: its mask statistics (one decision per (batch, channel), shared over the sequence), its
// finite-difference gradient in double with the mask fixed, the Dropout layer, and the residual wrapper's use.
#include <doctest/doctest.h>

#include <cmath>
#include <longseq/nn/dropout.hpp>
#include <longseq/nn/feed_forward.hpp>
#include <longseq/nn/norm_layers.hpp>
#include <longseq/nn/residual.hpp>

#include "grad_check.hpp"

using namespace longseq;

TEST_CASE("tied dropout keeps or drops a whole channel of a batch row, at rate p, scaled by 1 / (1 - p)") {
  const index_t B = 48, L = 17, H = 130;  // H not a multiple of 4: the last Philox block is partly used
  const double p = 0.3;
  HostContext ctx;
  Tensor<double> x(Shape{B, L, H}), y(Shape{B, L, H});
  Rng rng(5);
  testing::fill_normal(x.view(), rng);
  nn::tied_dropout_forward<double>(ctx, x.view(), y.view(), p, 11, 3);
  index_t dropped = 0, mismatched = 0, rows_equal = 0;
  for (index_t b = 0; b < B; ++b)
    for (index_t h = 0; h < H; ++h) {
      const bool keep = ops::dropout_keeps(11, 3, std::uint64_t(b * H + h), float(p));
      dropped += !keep;
      for (index_t l = 0; l < L; ++l) {
        const index_t i = (b * L + l) * H + h;
        const double want = keep ? x[i] / (1 - p) : 0.0;
        mismatched += std::abs(y[i] - want) > 1e-15 * (1 + std::abs(want));
      }
    }
  CHECK(mismatched == 0);  // every step of the sequence follows its channel's decision, the documented rule
  // Binomial(B H, p): 6240 draws, standard deviation 0.0058 of the rate; 4 of them.
  const double rate = double(dropped) / double(B * H);
  CHECK(std::abs(rate - p) < 4 * std::sqrt(p * (1 - p) / double(B * H)));
  // The mask differs between batch rows (not one (1, 1, H) mask for the batch).
  for (index_t b = 1; b < B; ++b) {
    bool same = true;
    for (index_t h = 0; h < H; ++h)
      same = same && ((y[(b * L) * H + h] == 0) == (y[0 * L * H + h] == 0));
    rows_equal += same;
  }
  CHECK(rows_equal == 0);
  // The expectation is kept: the mean of y over a constant input of ones stays near one.
  Tensor<double> ones(Shape{B, L, H}), yo(Shape{B, L, H});
  for (index_t i = 0; i < ones.numel(); ++i) ones[i] = 1.0;
  nn::tied_dropout_forward<double>(ctx, ones.view(), yo.view(), p, 12, 3);
  double mean = 0;
  for (index_t i = 0; i < yo.numel(); ++i) mean += yo[i];
  mean /= double(yo.numel());
  CHECK(std::abs(mean - 1.0) < 4 * std::sqrt(p / (1 - p) / double(B * H)));
  // Another seed or stream draws another mask; p = 0 copies.
  Tensor<double> y2(Shape{B, L, H});
  nn::tied_dropout_forward<double>(ctx, x.view(), y2.view(), p, 11, 4);
  index_t differ = 0;
  for (index_t i = 0; i < y.numel(); ++i) differ += (y[i] == 0) != (y2[i] == 0);
  CHECK(differ > 0);
  nn::tied_dropout_forward<double>(ctx, x.view(), y2.view(), 0.0, 11, 3);
  for (index_t i = 0; i < y.numel(); i += 97) CHECK(y2[i] == x[i]);
}

TEST_CASE("tied dropout in place, in float, matches the out-of-place result; bad input is named") {
  const index_t B = 3, L = 5, H = 300;  // two channel chunks
  HostContext ctx;
  Tensor<float> x(Shape{B, L, H}), y(Shape{B, L, H});
  Rng rng(7);
  for (index_t i = 0; i < x.numel(); ++i) x[i] = float(rng.normal());
  nn::tied_dropout_forward<float>(ctx, x.view(), y.view(), 0.5, 1, 2);
  nn::tied_dropout_forward<float>(ctx, x.view(), x.view(), 0.5, 1, 2);
  for (index_t i = 0; i < x.numel(); ++i) REQUIRE(x[i] == y[i]);
  Tensor<float> flat(Shape{B * L, H});
  CHECK_THROWS_WITH_AS(nn::tied_dropout_forward<float>(ctx, flat.view(), flat.view(), 0.5, 1, 2),
                       doctest::Contains("tensor 'x' has shape (15, 300), expected (B, L, H)"), Error);
  CHECK_THROWS_WITH_AS(nn::tied_dropout_backward<float>(ctx, x.view(), flat.view(), 0.5, 1, 2),
                       doctest::Contains("tensor 'dx' has shape (15, 300), expected (3, 5, 300)"), Error);
  CHECK_THROWS_WITH_AS(nn::tied_dropout_forward<float>(ctx, x.view(), y.view(), 1.0, 1, 2),
                       doctest::Contains("must lie in [0, 1)"), Error);
  CHECK_THROWS_WITH_AS(nn::Dropout<float>({.p = -0.1}), doctest::Contains("p = -0.1, expected [0, 1)"), Error);
}

TEST_CASE("Dropout layer gradients match finite differences with the mask fixed by the seed (double)") {
  for (auto mask : {nn::DropoutMask::tied, nn::DropoutMask::element}) {
    INFO("tied ", mask == nn::DropoutMask::tied);
    nn::Dropout<double> drop({.p = 0.4, .mask = mask, .stream = 9});
    ParamStore<double> store;
    store.bind(drop);
    HostContext ctx;
    ctx.seed = 77;  // the same mask on every forward of the finite differences
    Rng rng(3);
    Tensor<double> x(Shape{3, 6, 5});
    testing::fill_normal(x.view(), rng);
    testing::check_layer_gradients(drop, store, x, Shape{3, 6, 5}, rng, 1e-7, &ctx);
    // The backward is the forward's mask: zero gradient exactly where the output was dropped.
    Tensor<double> y(x.shape()), dy(x.shape()), dx(x.shape());
    for (index_t i = 0; i < dy.numel(); ++i) dy[i] = 1.0;
    nn::Dropout<double>::Saved s;
    drop.forward(ctx, x.view(), y.view(), s);
    drop.backward(ctx, s, dy.view(), dx.view());
    index_t zeros = 0;
    for (index_t i = 0; i < x.numel(); ++i) {
      CHECK((y[i] == 0) == (dx[i] == 0));
      zeros += dx[i] == 0;
    }
    CHECK(zeros > 0);
    // Outside training the layer is the identity.
    ctx.training = false;
    drop.forward(ctx, x.view(), y.view(), s);
    for (index_t i = 0; i < x.numel(); ++i) CHECK(y[i] == x[i]);
  }
}

TEST_CASE("a residual block with tied dropout drops whole channels of the mixer's output") {
  using Block = nn::PreNormResidual<nn::LayerNorm<double>, nn::FeedForward<double>>;
  const index_t B = 4, L = 7, H = 8;
  Block::Config c;
  c.norm = {.dim = H};
  c.mixer.dim = H;
  c.mixer.expand = 2;
  c.dropout = 0.5;
  c.dropout_mask = nn::DropoutMask::tied;
  c.stream = 21;
  Block block(c);
  ParamStore<double> store;
  store.bind(block);
  Rng rng(4);
  block.init(rng);
  Tensor<double> x(Shape{B, L, H}), y_eval(Shape{B, L, H}), y_train(Shape{B, L, H}), m(Shape{B, L, H});
  testing::fill_normal(x.view(), rng);
  HostContext ctx;
  ctx.seed = 5;
  Block::Saved s;
  ctx.training = false;
  block.forward(ctx, x.view(), y_eval.view(), s);
  ctx.training = true;
  block.forward(ctx, x.view(), y_train.view(), s);
  // y_train - x = TiedDrop(M(N(x))) with the block's stream, M(N(x)) = y_eval - x.
  for (index_t i = 0; i < x.numel(); ++i) m[i] = y_eval[i] - x[i];
  nn::tied_dropout_forward<double>(ctx, m.view(), m.view(), 0.5, 5, 21);
  for (index_t i = 0; i < x.numel(); ++i) CHECK(y_train[i] - x[i] == doctest::Approx(m[i]).epsilon(1e-12));
  testing::check_layer_gradients(block, store, x, Shape{B, L, H}, rng, 1e-6, &ctx);
}
