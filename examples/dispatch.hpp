// The trainers' device and precision dispatch: the --device / --precision strings become the model's
// (storage type, device policy) pair once, and everything below is compiled for that pair. Also what a
// model on that pair needs from the host: a host twin's initial values, and batches in its storage type.
#pragma once
#include <string>
#include <type_traits>
#include <utility>

#include <longseq/core/dtype.hpp>
#include <longseq/core/error.hpp>
#include <longseq/core/parameters.hpp>
#include <longseq/core/tensor.hpp>
#include <longseq/train/checkpoint.hpp>
#include <longseq/train/device_batch.hpp>
#if defined(__CUDACC__)
#include <longseq/core/cuda/context.cuh>
#endif

namespace examples {

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
  if (precision == "bf16") return narrowed(std::type_identity<longseq::bf16>{}, "the whole model has no bf16 device path");
  if (precision == "fp16") return narrowed(std::type_identity<longseq::half>{}, "the whole model has no fp16 device path");
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
// Today's trainer models: the encoders' device kernels (models/cuda/encoders.cuh) take float only, and an
// SSM block's storage type is its kernel's, so a whole model on the GPU is fp32; --precision bf16 / fp16 is
// refused by name until both take the narrow types.
using FloatOnly = NarrowTypes<false, false>;

// Copies a float host twin's parameters (init runs on the host) into a store of storage type T on policy D,
// by name; the values are rounded to T once. For T = float this is train::copy_parameters.
template <class T, class D>
void copy_initial(longseq::ParamStore<float>& from, longseq::ParamStore<T, D>& to) {
  if constexpr (std::is_same_v<T, float>) {
    longseq::train::copy_parameters(from, to);
  } else {
    for (const auto& e : to.entries()) {
      const auto* src = from.find(e.name);
      LONGSEQ_CHECK(src != nullptr, "copy_initial: the host twin lacks parameter '", e.name, "'");
      LONGSEQ_CHECK(src->param->shape == e.param->shape, "copy_initial: parameter '", e.name, "' has shape ",
                    src->param->shape, " on the host twin and ", e.param->shape, " in the model");
      longseq::Tensor<T> t(e.param->shape);
      for (longseq::index_t i = 0; i < t.numel(); ++i) t.data()[i] = T(float(src->param->value.data[i]));
      if constexpr (D::is_gpu) {
#if defined(__CUDACC__)
        longseq::copy_to_device<T>(longseq::TensorView<const T>(t.view()), e.param->value);
#endif
      } else {
        std::copy(t.data(), t.data() + t.numel(), e.param->value.data);
      }
    }
    LONGSEQ_CHECK(from.entries().size() == to.entries().size(), "copy_initial: the host twin has ",
                  from.entries().size(), " parameters, the model ", to.entries().size());
  }
}

// A task of float batches for a model in storage type T: each loaded batch's values are rounded to T on the
// host once (before fit stages them); ids, lengths, labels and masks are passed through. For T = float the
// task itself is used (see `typed_task`).
template <class T, class K>
class TypedTask {
 public:
  explicit TypedTask(K& task) : task_(task) {}
  void set_shard(int rank, int ranks)
    requires requires(K& k) { k.set_shard(rank, ranks); }
  {
    task_.set_shard(rank, ranks);
  }
  longseq::index_t num_batches(longseq::train::Split s, longseq::index_t epoch) { return task_.num_batches(s, epoch); }
  void load(longseq::train::Split s, longseq::index_t epoch, longseq::index_t i) {
    task_.load(s, epoch, i);
    in_ = task_.inputs();
    tg_ = task_.targets();
    convert(in_.values, values_);
    convert(tg_.values, target_values_);
  }
  bool empty() const { return longseq::train::detail::shard_empty(task_); }
  longseq::models::Inputs<T> inputs() const {
    return {in_.ids, in_.values.data ? values_.view() : longseq::TensorView<const T>{}, in_.lengths};
  }
  longseq::heads::Targets<T> targets() const {
    return {tg_.classes, tg_.values.data ? target_values_.view() : longseq::TensorView<const T>{}, tg_.mask,
            tg_.lengths};
  }
  longseq::index_t tokens() const { return longseq::index_t(task_.tokens()); }

 private:
  static void convert(longseq::TensorView<const float> v, longseq::Tensor<T>& out) {
    if (!v.data) return;
    out.resize(v.shape);
    for (longseq::index_t i = 0; i < out.numel(); ++i) out.data()[i] = T(v.data[i]);
  }
  K& task_;
  longseq::models::Inputs<float> in_;
  longseq::heads::Targets<float> tg_;
  longseq::Tensor<T> values_, target_values_;
};

}  // namespace examples
