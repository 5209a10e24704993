// The timed loop shared by the layer benchmarks: forward + backward of a host layer on random inputs.
#pragma once
#include <benchmark/benchmark.h>

#include <longseq/core/context.hpp>
#include <longseq/core/parameters.hpp>
#include <longseq/core/rng.hpp>

namespace longseq::bench {

// Binds and initializes `layer`, then times forward + backward on x, dy ~ N(0, 1) of shape (B, L, H).
// One untimed call comes first, as the PyTorch peers do: FFT plans, scratch buffers and saved
// activations reach their final size on first use.
template <class Layer>
void time_forward_backward(benchmark::State& state, Layer& layer, index_t B, index_t L, index_t H) {
  ParamStore<float> store;
  store.bind(layer);
  Rng rng(7);
  layer.init(rng);
  Context<device::host> ctx;
  Tensor<float> x(Shape{B, L, H}), y(Shape{B, L, H}), dy(Shape{B, L, H}), dx(Shape{B, L, H});
  Rng data(11);
  for (index_t i = 0; i < x.numel(); ++i) {
    x[i] = float(data.normal());
    dy[i] = float(data.normal());
  }
  typename Layer::Saved saved;
  layer.forward(ctx, x.view(), y.view(), saved);
  layer.backward(ctx, saved, dy.view(), dx.view());
  for (auto _ : state) {
    layer.forward(ctx, x.view(), y.view(), saved);
    layer.backward(ctx, saved, dy.view(), dx.view());
    benchmark::ClobberMemory();
  }
  state.counters["threads"] = ctx.threads;
  state.SetItemsProcessed(state.iterations() * B * L);
}

}  // namespace longseq::bench
