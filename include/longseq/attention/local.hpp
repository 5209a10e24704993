// Block-local attention for long inputs: the sequence is cut into blocks of `window` positions and each
// query block attends to its own block plus look_back blocks before and look_forward blocks after
// (only before when causal). Same flash kernel as full attention, with the key range limited per tile.
#pragma once
#include "mha.hpp"

namespace longseq::attention {

template <class T, class D = device::host, class Position = NoRotation>
struct LocalAttention : MultiHeadAttention<T, D, Position> {
  using Base = MultiHeadAttention<T, D, Position>;
  struct Config {
    index_t dim = 0;
    index_t heads = 1;
    index_t window = 0;
    index_t look_back = 1, look_forward = 1;
    bool causal = false;
    double dropout = 0.0;
    std::uint64_t stream = 0;
    bool bias = true;
    typename Position::Config position{};
    index_t block = 256;  // flash tile; see FlashArgs for measured sizes
  };
  explicit LocalAttention(Config c) : Base(to_base(c)) {}

 private:
  static typename Base::Config to_base(const Config& c) {
    LONGSEQ_CHECK(c.window > 0, "LocalAttention needs a window > 0, got ", c.window);
    typename Base::Config b;
    b.dim = c.dim;
    b.heads = c.heads;
    b.causal = c.causal;
    b.dropout = c.dropout;
    b.stream = c.stream;
    b.window = c.window;
    b.look_back = c.look_back;
    b.look_forward = c.look_forward;
    b.bias = c.bias;
    b.position = c.position;
    b.block = c.block;
    return b;
  }
};

static_assert(nn::assert_layer<LocalAttention<float>, float>());

}  // namespace longseq::attention
