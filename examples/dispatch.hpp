// The trainers' dispatch, the one place where their strings become types: --model (and --position) become
// the blocks' kernel parameterization or attention position scheme, --device / --precision the model's
// (storage type, device policy) pair, and everything below is compiled for that choice. Also what a model
// on that pair needs from the host: its initial values, drawn on a float host twin.
#pragma once
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

#include <longseq/attention/position.hpp>
#include <longseq/attention/rotary.hpp>
#include <longseq/core/dtype.hpp>
#include <longseq/core/error.hpp>
#include <longseq/core/parameters.hpp>
#include <longseq/core/rng.hpp>
#include <longseq/core/tensor.hpp>
#include <longseq/models/family.hpp>
#include <longseq/ssm/conv_kernel.hpp>
#include <longseq/ssm/dlr.hpp>
#include <longseq/ssm/dss.hpp>
#include <longseq/ssm/s4.hpp>
#include <longseq/ssm/s4d.hpp>
#include <longseq/train/checkpoint.hpp>
#include <longseq/train/device_batch.hpp>
#include <longseq/train/init.hpp>
#if defined(__CUDACC__)
#include <longseq/core/cuda/context.cuh>
#endif

namespace examples {

// The model names both trainers accept.
inline constexpr const char* model_names = "s4, s4d, dss, dlr, conv or transformer";

// Calls transformer(std::type_identity<Position>{}) for --model transformer (Position: attention::Rotary with
// --position rotary, else NoRotation) and ssm(std::type_identity<Kernel>{}) for an SSM model, Kernel being its
// float parameterization (moved to the layer's device by SSMConv). With AllKernels = false only S4D is compiled
// (a trainer that bounds its instantiations; it refuses the other names before calling this).
template <bool AllKernels = true, class SsmFn, class TransformerFn>
void dispatch_model(const std::string& model, const std::string& position, SsmFn&& ssm, TransformerFn&& transformer) {
  namespace ls = longseq;
  if (model == "transformer") {
    if (position == "rotary") return transformer(std::type_identity<ls::attention::Rotary>{});
    return transformer(std::type_identity<ls::attention::NoRotation>{});
  }
  if (model == "s4d") return ssm(std::type_identity<ls::ssm::S4D<float>>{});
  if constexpr (AllKernels) {
    if (model == "s4") return ssm(std::type_identity<ls::ssm::S4<float>>{});
    if (model == "dss") return ssm(std::type_identity<ls::ssm::DSS<float>>{});
    if (model == "dlr") return ssm(std::type_identity<ls::ssm::DLR<float>>{});
    if (model == "conv") return ssm(std::type_identity<ls::ssm::ConvKernel<float>>{});
  }
  LONGSEQ_FAIL("unknown model '", model, "', expected ", model_names);
}

// The encoders' position scheme (attention::AnyPosition, models::AnyPositionTokenEncoder / LinearEncoder) for
// --position: sinusoidal codes by default for a Transformer without rotary or learned positions, on request
// (--position sinusoidal) for an SSM; --position learned: a learned table; else none. `length` is the longest
// input: the table's rows, and the longest input the sinusoidal code accepts.
inline longseq::attention::AnyPositionConfig position_config(const std::string& model, const std::string& position,
                                                             longseq::index_t length) {
  namespace at = longseq::attention;
  if (position == "learned") return at::LearnedPositionConfig{.max_len = length};
  const bool transformer_default = model == "transformer" && position != "rotary" && position != "none";
  if (position == "sinusoidal" || transformer_default) return at::SinusoidalPositionConfig{.max_len = length};
  return at::NoPositionConfig{};
}

// Calls fn(std::type_identity<T>{}, std::type_identity<D>{}) for the pair the options name: float on the
// host, or float / bf16 / half on CUDA (only in a translation unit nvcc compiles; main's check_device has
// already refused --device cuda elsewhere). On CUDA, device `gpu` (>= 0) is the current one while fn runs,
// so the model's buffers and fit's context land on it. `Narrow::value<T>` says whether the model has a device
// path in the narrow type T; a model that has none is refused here, naming the model and the precision.
template <class Narrow, class Fn>
void dispatch_device(const std::string& device, [[maybe_unused]] int gpu, const std::string& precision,
                     const std::string& model, Narrow narrow, Fn&& fn) {
  using longseq::device::host;
  if (device == "host") {
    LONGSEQ_CHECK(precision == "fp32", "--precision ", precision, " needs --device cuda (the host runs in fp32)");
    return fn(std::type_identity<float>{}, std::type_identity<host>{});
  }
#if defined(__CUDACC__)
  using longseq::device::cuda;
  const longseq::cuda::DeviceGuard on(gpu);
  if (precision == "fp32") return fn(std::type_identity<float>{}, std::type_identity<cuda>{});
  auto narrowed = [&]<class T>(std::type_identity<T> t, const char* why) {
    if constexpr (Narrow::template value<T>) {
      fn(t, std::type_identity<cuda>{});
    } else {
      LONGSEQ_FAIL("--precision ", precision, " with model ", model, ": ", why, "; use --precision fp32",
                   std::is_same_v<T, longseq::half> ? " or bf16" : "");
    }
  };
  if (precision == "bf16") return narrowed(std::type_identity<longseq::bf16>{}, "the model has no bf16 device path");
  if (precision == "fp16") return narrowed(std::type_identity<longseq::half>{}, "the model has no fp16 device path");
  LONGSEQ_FAIL("--precision ", precision, ": expected fp32, bf16 or fp16");
#else
  (void)narrow, (void)model;
  LONGSEQ_FAIL("--device ", device, ": this binary was built without CUDA");
#endif
}

// A predicate for dispatch_device: which narrow storage types a model family runs in on the device.
template <bool Bf16, bool Half>
struct NarrowTypes {
  template <class T>
  static constexpr bool value = (std::is_same_v<T, longseq::bf16> && Bf16) || (std::is_same_v<T, longseq::half> && Half);
};
// The trainers' models: Transformers take bf16 and fp16 on the device; SSM blocks bf16 only (ssm::SSMConv's
// device path stores float, double or bf16, with its kernel and FFTs in float32), so fp16 is refused by name.

// Draws a model's initial parameters: each layer's own init from Philox (seed, stream 1), then, with
// `redraw`, every parameter of the model (encoder, norms, mixers, head) from N(0, 0.1): the paper's
// random-initialization ablation. init is host-only, so a model on another (T, D) is drawn as its float host
// twin HostNet, built from make_host_config(), and copied over: every device and precision starts from the
// parameters of the host run.
template <class HostNet, class Net, class T, class D, class MakeHostConfig>
void init_model(Net& model, longseq::ParamStore<T, D>& store, std::uint64_t seed, bool redraw,
                MakeHostConfig&& make_host_config) {
  auto draw = [&](auto& net, auto& st) {
    longseq::Rng rng(seed, 1);
    net.init(rng);
    if (redraw) longseq::train::redraw_normal(st, rng, 0.1);
  };
  if constexpr (std::is_same_v<Net, HostNet>) {
    draw(model, store);
  } else {
    HostNet twin(make_host_config());
    longseq::ParamStore<float> host;
    host.bind(twin);
    draw(twin, host);
    longseq::train::copy_parameters(host, store);  // rounded once to T
  }
}

}  // namespace examples
