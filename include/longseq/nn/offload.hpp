// nn::Offload<HostLayer, DeviceLayer>: a host layer whose forward and backward run DeviceLayer (e.g. a
// Stack of CUDA residual blocks) on another device policy, possibly in a narrower storage type.
//
// The parameters stay where the rest of the model keeps them: Offload exposes HostLayer's parameter slots
// (same names, shapes and groups), so the optimizer, checkpoints, transfer and data parallelism work as for
// a host model, and with a bf16 device layer the host values are the float master weights of mixed
// precision. Each forward uploads the values (converted to the device type) and the input; each backward
// uploads the output gradient and downloads the input gradient and the parameter gradients, which are
// added to the host gradients (accumulation as for any layer). Buffers a training forward updates on the
// device (Param::buffer, e.g. BatchNorm's running statistics) are copied back after it.
#pragma once
#include <algorithm>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "layer.hpp"

namespace longseq::nn {

// How Offload moves a flat buffer between the host and device policy D: upload(ctx, host, dev),
// download(ctx, dev, host), zero(ctx, dev), all complete when they return; select(ordinal) makes a device
// current (ordinal < 0: leaves the current one), so that what is allocated next lands on it. The host
// specialization is here (it lets the tests run the whole adapter on the host); the CUDA one is in
// nn/cuda/offload.cuh.
template <class D>
struct Transfer;

template <>
struct Transfer<device::host> {
  template <class U>
  static void upload(Context<device::host>&, const U* src, U* dst, index_t n) { std::copy(src, src + n, dst); }
  template <class U>
  static void download(Context<device::host>&, const U* src, U* dst, index_t n) { std::copy(src, src + n, dst); }
  template <class U>
  static void zero(Context<device::host>&, U* dst, index_t n) { std::fill(dst, dst + n, U(0)); }
  static void select(int) {}  // one host
};

// Context<D> for the device side: the host context is plain; a device context binds to an ordinal.
template <class D>
std::unique_ptr<Context<D>> make_offload_context(int ordinal) {
  if constexpr (requires { Context<D>(ordinal); })
    return std::make_unique<Context<D>>(ordinal);
  else
    return std::make_unique<Context<D>>();
}

template <class HostLayer, class DeviceLayer>
class Offload {
 public:
  using T = typename HostLayer::value_type;   // host (master) type
  using Td = typename DeviceLayer::value_type;  // device storage type
  using Dev = typename DeviceLayer::device_type;
  using value_type = T;
  using device_type = device::host;
  static_assert(Layer<HostLayer, T, device::host>,
                "nn::Offload<HostLayer, DeviceLayer>: HostLayer must be a host nn::Layer (it holds the parameters)");
  static_assert(Layer<DeviceLayer, Td, Dev>,
                "nn::Offload<HostLayer, DeviceLayer>: DeviceLayer must be an nn::Layer on its own device policy");
  static_assert(requires { sizeof(Transfer<Dev>); },
                "nn::Offload: no nn::Transfer for this device policy; CUDA's is compiled by nvcc only (a .cu "
                "translation unit, or a source file set to LANGUAGE CUDA)");

  struct Config {
    typename HostLayer::Config host;      // the parameter holder (and initializer)
    typename DeviceLayer::Config device;  // the same architecture on the device
    int ordinal = -1;                     // device to run on (-1: the current one)
  };
  struct Saved {
    typename DeviceLayer::Saved dev;
    Tensor<Td, Dev> x, y, dy, dx;
  };

  Config cfg;
  HostLayer host;

 private:
  // Constructed before `dev`: the device layer and its store allocate on cfg.ordinal, not on whatever
  // device happens to be current (constructing a Context on an ordinal makes it current the same way).
  struct Select {
    explicit Select(int ordinal) { Transfer<Dev>::select(ordinal); }
  } select_;

 public:
  DeviceLayer dev;

  explicit Offload(Config c) : cfg(c), host(c.host), select_(c.ordinal), dev(c.device) {
    store_.bind(dev);
    // The two layers must describe the same parameters, in the same order: that is what makes a host
    // checkpoint load into the device layer.
    std::vector<std::pair<std::string, Shape>> names;
    host.parameters([&](std::string_view n, Param<T>& p) { names.emplace_back(std::string(n), p.shape); });
    const auto& e = store_.entries();
    LONGSEQ_CHECK(names.size() == e.size(), "nn::Offload: the host layer has ", names.size(),
                  " parameters, the device layer ", e.size(), "; they must describe the same architecture");
    for (std::size_t i = 0; i < e.size(); ++i)
      LONGSEQ_CHECK(names[i].first == e[i].name && names[i].second == e[i].param->shape,
                    "nn::Offload: parameter ", i, " is '", names[i].first, "' ", names[i].second,
                    " on the host but '", e[i].name, "' ", e[i].param->shape, " on the device");
  }
  Offload(const Offload&) = delete;
  Offload& operator=(const Offload&) = delete;

  template <class F>
  void parameters(F&& f) { host.parameters(f); }
  void init(Rng& rng) { host.init(rng); }

  // Hands a (B, L) key padding mask (1 = padded) to a device layer that takes one, as a device copy.
  void set_key_padding(TensorView<const std::uint8_t> m)
    requires requires(DeviceLayer& d, TensorView<const std::uint8_t, Dev> v) { d.set_key_padding(v); }
  {
    activate(context());
    padding_.resize(m.shape);
    expect_contiguous(m, "key_padding");
    Transfer<Dev>::upload(context(), m.data, padding_.data(), m.numel());
    dev.set_key_padding(TensorView<const std::uint8_t, Dev>(padding_.data(), m.shape));
  }

  void forward(HostContext& hctx, TensorView<const T> x, TensorView<T> y, Saved& s) {
    expect_contiguous(x, "x");
    expect_contiguous(y, "y");
    Context<Dev>& ctx = context();
    activate(ctx);  // the saved tensors below are allocated on the current device
    ctx.training = hctx.training;
    ctx.seed = hctx.seed;
    upload_values(ctx);
    s.x.resize(x.shape);
    s.y.resize(y.shape);
    to_device(ctx, x, s.x);
    dev.forward(ctx, s.x.view(), s.y.view(), s.dev);
    to_host(ctx, s.y, y);
    if (ctx.training) download_buffers(ctx);
  }

  void backward(HostContext&, Saved& s, TensorView<const T> dy, TensorView<T> dx) {
    expect_contiguous(dy, "dy");
    expect_contiguous(dx, "dx");
    Context<Dev>& ctx = context();
    activate(ctx);
    Transfer<Dev>::zero(ctx, store_.grads().data, store_.grads().numel());
    s.dy.resize(dy.shape);
    s.dx.resize(dx.shape);
    to_device(ctx, dy, s.dy);
    dev.backward(ctx, s.dev, s.dy.view(), s.dx.view());
    to_host(ctx, s.dx, dx);
    add_grads(ctx);
  }

  // The device side's own context (created on first use, so building a model needs no device).
  Context<Dev>& context() {
    if (!ctx_) ctx_ = make_offload_context<Dev>(cfg.ordinal);
    return *ctx_;
  }

 private:
  static void activate(Context<Dev>& ctx) {
    if constexpr (requires { ctx.activate(); }) ctx.activate();
  }
  // Host values -> staging (converted, padding left zero) -> one copy into the device's flat buffer.
  void upload_values(Context<Dev>& ctx) {
    stage_.resize(Shape{store_.values().numel()});
    const auto& e = store_.entries();
    std::size_t i = 0;
    host.parameters([&](std::string_view, Param<T>& p) {
      LONGSEQ_CHECK(p.bound(), "nn::Offload: parameter '", e[i].name,
                    "' is not bound; bind the model to a ParamStore before running it");
      std::transform(p.value.data, p.value.data + p.value.numel(), stage_.data() + e[i].offset,
                     [](T v) { return Td(v); });
      ++i;
    });
    Transfer<Dev>::upload(ctx, stage_.data(), store_.values().data, stage_.numel());
  }
  // Buffers the device forward updated (running statistics) -> host values.
  void download_buffers(Context<Dev>& ctx) {
    const auto& e = store_.entries();
    std::size_t i = 0;
    host.parameters([&](std::string_view, Param<T>& p) {
      const auto& d = e[i++];
      if (!d.param->buffer) return;
      stage_.resize(p.shape);
      Transfer<Dev>::download(ctx, d.param->value.data, stage_.data(), p.value.numel());
      std::transform(stage_.data(), stage_.data() + p.value.numel(), p.value.data, [](Td v) { return T(v); });
    });
  }
  // Device gradients -> staging -> added (converted) to the host gradients.
  void add_grads(Context<Dev>& ctx) {
    stage_.resize(Shape{store_.grads().numel()});
    Transfer<Dev>::download(ctx, store_.grads().data, stage_.data(), stage_.numel());
    const auto& e = store_.entries();
    std::size_t i = 0;
    host.parameters([&](std::string_view, Param<T>& p) {
      const Td* g = stage_.data() + e[i++].offset;
      for (index_t k = 0; k < p.grad.numel(); ++k) p.grad.data[k] += T(g[k]);
    });
  }
  void to_device(Context<Dev>& ctx, TensorView<const T> h, Tensor<Td, Dev>& d) {
    if constexpr (std::is_same_v<T, Td>) {
      Transfer<Dev>::upload(ctx, h.data, d.data(), h.numel());
    } else {
      act_.resize(h.shape);
      std::transform(h.data, h.data + h.numel(), act_.data(), [](T v) { return Td(v); });
      Transfer<Dev>::upload(ctx, act_.data(), d.data(), h.numel());
    }
  }
  void to_host(Context<Dev>& ctx, const Tensor<Td, Dev>& d, TensorView<T> h) {
    if constexpr (std::is_same_v<T, Td>) {
      Transfer<Dev>::download(ctx, d.data(), h.data, h.numel());
    } else {
      act_.resize(h.shape);
      Transfer<Dev>::download(ctx, d.data(), act_.data(), h.numel());
      std::transform(act_.data(), act_.data() + h.numel(), h.data, [](Td v) { return T(float(v)); });
    }
  }

  ParamStore<Td, Dev> store_;            // the device layer's parameters and gradients
  std::unique_ptr<Context<Dev>> ctx_;
  Tensor<Td> stage_, act_;               // host staging in the device type
  Tensor<std::uint8_t, Dev> padding_;
};

}  // namespace longseq::nn

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // the CUDA transfer, visible wherever the adapter is
#include "cuda/offload.cuh"
#endif
