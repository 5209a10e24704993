// nn::Offload on the host policy: the adapter's parameter mirroring, value upload, gradient accumulation and
// type conversion, checked against the same model without it (the CUDA transfer is covered by offload.cu).
#include <doctest/doctest.h>

#include <cmath>
#include <longseq/nn/batch_norm.hpp>
#include <longseq/nn/offload.hpp>
#include <vector>

#include "train/toy.hpp"

using namespace longseq;
using testing::ToyBlock;
using testing::ToyTask;
using testing::Trained;
using Cls = heads::ClassificationHead<float>;
using Plain = testing::ToyNet<float, Cls>;

namespace {

template <class DevT>
using OffloadStack = nn::Offload<nn::Stack<ToyBlock<float>>, nn::Stack<ToyBlock<DevT>>>;
template <class DevT>
using OffNet = models::Model<models::LinearEncoder<float>, OffloadStack<DevT>, nn::LayerNorm<float>, Cls>;

template <class T>
typename nn::Stack<ToyBlock<T>>::Config stack_config(index_t h, index_t depth = 2) {
  return {.depth = depth, .block = {{.dim = h}, {.dim = h, .expand = 2}, 0.1}};
}

template <class DevT>
typename OffNet<DevT>::Config off_config(index_t h) {
  const auto plain = testing::toy_config<float, Cls>(h, {.dim = h, .classes = 2});
  return {plain.encoder, {stack_config<float>(h), stack_config<DevT>(h)}, plain.norm, plain.head};
}

}  // namespace

TEST_CASE("Offload exposes the host layer's parameters and trains bitwise like the plain model") {
  Trained<Plain> plain(testing::toy_config<float, Cls>(8, {.dim = 8, .classes = 2}));
  Trained<OffNet<float>> off(off_config<float>(8));
  // Same names, shapes and layout, so checkpoints and transfer see no difference.
  REQUIRE(plain.store.entries().size() == off.store.entries().size());
  for (std::size_t i = 0; i < plain.store.entries().size(); ++i) {
    CHECK(plain.store.entries()[i].name == off.store.entries()[i].name);
    CHECK(plain.store.entries()[i].offset == off.store.entries()[i].offset);
  }
  CHECK(plain.params() == off.params());  // the host layer initializes
  const auto a = plain.fit(), b = off.fit();
  CHECK(a.steps == b.steps);
  CHECK(a.best_val_loss == b.best_val_loss);
  CHECK(plain.params() == off.params());  // dropout, gradients (accumulated over 2 micro-batches) and updates agree
}

TEST_CASE("Offload converts to the device layer's type: double on the device matches float closely") {
  Trained<Plain> plain(testing::toy_config<float, Cls>(8, {.dim = 8, .classes = 2}));
  Trained<OffNet<double>> off(off_config<double>(8));
  ToyTask<float> task;
  task.load(train::Split::train, 0, 0);
  HostContext ctx;
  ctx.seed = 3;
  typename Plain::Saved sp;
  typename OffNet<double>::Saved so;
  const auto lp = plain.net.forward(ctx, task.inputs(), task.targets(), sp);
  const auto lo = off.net.forward(ctx, task.inputs(), task.targets(), so);
  CHECK(lo.loss == doctest::Approx(lp.loss).epsilon(1e-5));
  // Gradients accumulate into what is already there (the second backward doubles them).
  plain.net.backward(ctx, sp);
  off.net.backward(ctx, so);
  off.net.backward(ctx, so);
  auto gp = plain.store.grads(), go = off.store.grads();
  double scale = 0, err = 0;
  for (index_t i = 0; i < gp.numel(); ++i) {
    scale = std::max(scale, std::abs(double(gp[i])));
    err = std::max(err, std::abs(double(go[i]) - 2 * double(gp[i])));
  }
  CHECK(scale > 0);
  CHECK(err / scale < 1e-5);
}

TEST_CASE("Offload rejects a device layer that differs from the host layer") {
  using Off = OffloadStack<float>;
  CHECK_THROWS_WITH_AS(Off({stack_config<float>(8, 2), stack_config<float>(8, 3)}),
                       doctest::Contains("the host layer has 12 parameters, the device layer 18"), Error);
  CHECK_THROWS_WITH_AS(Off({stack_config<float>(8), stack_config<float>(16)}),
                       doctest::Contains("on the host but 'layers.0.norm.weight' (16) on the device"), Error);
}

TEST_CASE("Offload copies buffers back: BatchNorm's running statistics evolve as in the plain model") {
  using BnBlock = nn::PreNormResidual<nn::BatchNorm<float>, nn::FeedForward<float>>;
  using BnPlain = models::Model<models::LinearEncoder<float>, nn::Stack<BnBlock>, nn::LayerNorm<float>, Cls>;
  using BnOff = models::Model<models::LinearEncoder<float>, nn::Offload<nn::Stack<BnBlock>, nn::Stack<BnBlock>>,
                          nn::LayerNorm<float>, Cls>;
  const typename nn::Stack<BnBlock>::Config stack{.depth = 2, .block = {{.dim = 8}, {.dim = 8, .expand = 2}, 0.0}};
  const typename BnPlain::Config pc{{.channels = 1, .dim = 8}, stack, {.dim = 8}, {.dim = 8, .classes = 2}};
  Trained<BnPlain> plain(pc);
  Trained<BnOff> off(typename BnOff::Config{pc.encoder, {stack, stack}, pc.norm, pc.head});
  const auto a = plain.fit(), b = off.fit();
  // Evaluation normalizes with the running statistics, so equal validation losses need them copied back.
  CHECK(a.best_val_loss == b.best_val_loss);
  CHECK(plain.params() == off.params());
  const auto* rm = off.store.find("backbone.layers.1.norm.running_var");
  REQUIRE(rm != nullptr);
  CHECK(rm->param->buffer);
  CHECK(rm->param->value[0] != 1.0f);  // moved away from its initial value
}
