// Stack<Block>: a runtime number of identical blocks applied in sequence, named "layers.<i>.".
#pragma once
#include <string>
#include <vector>

#include "layer.hpp"

namespace longseq::nn {

template <class Block>
struct Stack {
  using T = typename Block::value_type;
  using D = typename Block::device_type;
  using value_type = T;
  using device_type = D;
  using block_type = Block;
  struct Config {
    index_t depth = 1;
    typename Block::Config block;
  };
  struct Saved {
    std::vector<typename Block::Saved> blocks;
    std::vector<Tensor<T, D>> acts;  // output of block i for i < depth - 1 (input of block i + 1)
    Tensor<T, D> g0, g1;             // ping-pong gradient buffers
  };

  Config cfg;
  std::vector<Block> layers;

  explicit Stack(Config c) : cfg(c) {
    LONGSEQ_CHECK(c.depth >= 1, "Stack needs depth >= 1, got ", c.depth);
    layers.reserve(std::size_t(c.depth));
    for (index_t i = 0; i < c.depth; ++i) {
      auto bc = c.block;
      // Blocks with a dropout stream get distinct ones so their masks are independent.
      if constexpr (requires { bc.stream; }) bc.stream = c.block.stream * 1000003ull + std::uint64_t(i) + 1;
      layers.emplace_back(bc);
    }
  }
  index_t depth() const { return index_t(layers.size()); }

  template <class F>
  void parameters(F&& f) {
    for (std::size_t i = 0; i < layers.size(); ++i) layers[i].parameters(prefixed("layers." + std::to_string(i), f));
  }
  void init(Rng& rng) {
    for (auto& l : layers) l.init(rng);
  }
  // Hands a key padding mask to every block that takes one.
  template <class M>
  void set_key_padding(M m) requires requires(Block& b) {
    b.set_key_padding(m);
  }
  {
    for (auto& l : layers) l.set_key_padding(m);
  }

  void forward(Context<D>& ctx, TensorView<const T, D> x, TensorView<T, D> y, Saved& s) {
    expect_shape(y, x.shape, "y");
    const std::size_t n = layers.size();
    s.blocks.resize(n);
    s.acts.resize(n - 1);
    TensorView<const T, D> in = x;
    for (std::size_t i = 0; i < n; ++i) {
      TensorView<T, D> out = y;
      if (i + 1 < n) {
        s.acts[i].resize(x.shape);
        out = s.acts[i].view();
      }
      layers[i].forward(ctx, in, out, s.blocks[i]);
      in = out;
    }
  }

  void backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dy, TensorView<T, D> dx) {
    backward(ctx, s, dy, dx, [](Block&) {});
  }
  // Calls done(block) right after each block's backward, top block first: from then on that block's
  // parameter gradients (and those of the blocks above it) are final (see models::Model::backward).
  template <class F>
  void backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dy, TensorView<T, D> dx, F&& done) {
    expect_shape(dx, dy.shape, "dx");
    const std::size_t n = layers.size();
    LONGSEQ_CHECK(s.blocks.size() == n, "Stack::backward called without a matching forward");
    s.g0.resize(dy.shape);
    s.g1.resize(dy.shape);
    TensorView<const T, D> g = dy;
    for (std::size_t k = n; k-- > 0;) {
      TensorView<T, D> out = k == 0 ? dx : ((n - 1 - k) % 2 == 0 ? s.g0.view() : s.g1.view());
      layers[k].backward(ctx, s.blocks[k], g, out);
      done(layers[k]);
      g = out;
    }
  }
};

}  // namespace longseq::nn
