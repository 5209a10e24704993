// The joint objective: JointHead routes by targets, joint_step's gradient is that of
// supervised + weight * denoising (finite differences in double on a whole tiny model), bad weights refused.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>

#include <longseq/heads/classification.hpp>
#include <longseq/heads/denoising.hpp>
#include <longseq/heads/joint.hpp>
#include <longseq/models/model.hpp>
#include <longseq/nn/feed_forward.hpp>
#include <longseq/nn/norm_layers.hpp>
#include <longseq/nn/residual.hpp>
#include <longseq/nn/stack.hpp>

using namespace longseq;

namespace {
using Block = nn::PreNormResidual<nn::LayerNorm<double>, nn::FeedForward<double>>;
using Joint = heads::JointHead<heads::ClassificationHead<double>, heads::MaskedDenoisingHead<double>>;
using Net = models::Model<models::LinearEncoder<double>, nn::Stack<Block>, nn::LayerNorm<double>, Joint>;
static_assert(heads::assert_head<Joint, double>());

constexpr index_t B = 3, L = 5, H = 4, C = 3;

struct Batch {
  Tensor<double> clean{Shape{B, L, 2}}, masked{Shape{B, L, 2}}, values{Shape{B, L}};
  Tensor<std::int32_t> labels{Shape{B}};
  Tensor<std::uint8_t> mask{Shape{B, L}};
  Batch() {
    Rng rng(17, 3);
    for (index_t b = 0; b < B; ++b) {
      labels[b] = std::int32_t(b % C);
      for (index_t l = 0; l < L; ++l) {
        const double v = rng.normal();
        const bool m = (b + 2 * l) % 3 == 0;  // some masked positions in every row
        values(b, l) = v;
        mask(b, l) = m;
        clean(b, l, 0) = v;
        clean(b, l, 1) = 0;  // the mask-indicator channel is 0 where nothing is masked
        masked(b, l, 0) = m ? 0.0 : v;
        masked(b, l, 1) = m ? 1.0 : 0.0;
      }
    }
  }
  models::Inputs<double> clean_in() const { return {{}, clean.view(), {}}; }
  models::Inputs<double> masked_in() const { return {{}, masked.view(), {}}; }
  heads::Targets<double> label_targets() const { return {labels.view(), {}, {}, {}}; }
  heads::Targets<double> denoise_targets() const { return {{}, values.view(), mask.view(), {}}; }
};

Net::Config config() {
  return {{.channels = 1, .dim = H, .mask_channel = true},
          {.depth = 2, .block = {{.dim = H}, {.dim = H, .expand = 2}, 0.0}},
          {.dim = H},
          {{.dim = H, .classes = C}, {.dim = H, .loss = heads::DenoiseLoss::l1}}};
}
}  // namespace

TEST_CASE("JointHead: the targets choose the head; the names keep both heads apart") {
  Net net(config());
  ParamStore<double> store;
  store.bind(net);
  CHECK(store.find("head.task.decoder.linear.weight") != nullptr);
  CHECK(store.find("head.denoise.proj.weight") != nullptr);
  Rng rng(5);
  net.init(rng);
  Batch batch;
  HostContext ctx;
  Net::Saved s;
  net.forward(ctx, batch.clean_in(), batch.label_targets(), s);
  CHECK_FALSE(s.head.denoising);
  const auto d = net.forward(ctx, batch.masked_in(), batch.denoise_targets(), s);
  CHECK(s.head.denoising);
  index_t masked = 0;
  for (index_t i = 0; i < B * L; ++i) masked += batch.mask.data()[i];
  CHECK(d.count == double(masked));  // the L1 loss is taken at masked positions only
}

TEST_CASE("joint_step: gradients of supervised + weight * denoising match finite differences") {
  Net net(config());
  ParamStore<double> store;
  store.bind(net);
  Rng rng(9);
  net.init(rng);
  Batch batch;
  HostContext ctx;
  const double weight = 0.7;
  Net::Saved s1, s2;
  const heads::JointStats st = heads::joint_step(net, ctx, batch.clean_in(), batch.label_targets(), batch.masked_in(),
                                                 batch.denoise_targets(), weight, s1, s2);
  CHECK(st.loss == doctest::Approx(st.supervised.loss + weight * st.denoising.loss).epsilon(1e-15));
  CHECK(st.supervised.count == double(B));
  CHECK(st.denoising.loss > 0);

  auto combined = [&] {
    Net::Saved a, b;
    const double ls = net.forward(ctx, batch.clean_in(), batch.label_targets(), a).loss;
    const double ld = net.forward(ctx, batch.masked_in(), batch.denoise_targets(), b).loss;
    return ls + weight * ld;
  };
  CHECK(combined() == doctest::Approx(st.loss).epsilon(1e-14));
  // Every parameter element, central differences; the worst relative error over all of them.
  auto values = store.values(), grads = store.grads();
  const double h = 1e-6;
  double worst = 0;
  index_t checked = 0;
  for (const auto& e : store.entries()) {
    for (index_t i = 0; i < e.param->shape.numel(); ++i) {
      double& p = values.data[e.offset + i];
      const double p0 = p;
      p = p0 + h;
      const double up = combined();
      p = p0 - h;
      const double down = combined();
      p = p0;
      const double fd = (up - down) / (2 * h), g = grads.data[e.offset + i];
      worst = std::max(worst, std::abs(fd - g) / std::max(1e-3, std::abs(fd) + std::abs(g)));
      ++checked;
    }
  }
  CHECK(checked == store.count());
  CHECK(worst < 1e-5);
  // Both terms contribute: the denoising head got gradient, and so did the classifier.
  double den = 0, cls = 0;
  for (const auto& e : store.entries()) {
    double n = 0;
    for (index_t i = 0; i < e.param->shape.numel(); ++i) n += std::abs(e.param->grad.data[i]);
    if (e.name.starts_with("head.denoise.")) den += n;
    if (e.name.starts_with("head.task.")) cls += n;
  }
  CHECK(den > 0);
  CHECK(cls > 0);
}

TEST_CASE("joint_step refuses a weight that is not > 0 and targets in the wrong places") {
  Net net(config());
  ParamStore<double> store;
  store.bind(net);
  Rng rng(2);
  net.init(rng);
  Batch batch;
  HostContext ctx;
  Net::Saved s1, s2;
  for (double w : {0.0, -1.0, std::nan("")})
    CHECK_THROWS_WITH_AS(heads::joint_step(net, ctx, batch.clean_in(), batch.label_targets(), batch.masked_in(),
                                           batch.denoise_targets(), w, s1, s2),
                         doctest::Contains("expected a finite number > 0"), Error);
  CHECK_THROWS_WITH_AS(heads::joint_step(net, ctx, batch.clean_in(), batch.label_targets(), batch.masked_in(),
                                         batch.label_targets(), 1.0, s1, s2),
                       doctest::Contains("denoising targets need a mask"), Error);
  CHECK_THROWS_WITH_AS(heads::joint_step(net, ctx, batch.clean_in(), batch.denoise_targets(), batch.masked_in(),
                                         batch.denoise_targets(), 1.0, s1, s2),
                       doctest::Contains("supervised targets carry a mask"), Error);
}
