// Parameters: each layer declares named Param slots; a ParamStore owns one flat buffer for values and
// one for gradients and binds every slot to its views. Optimizers, checkpoints and interop all walk
// the same names (e.g. "encoder.layers.3.mixer.kernel.log_dt").
#pragma once
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "buffer.hpp"
#include "tensor.hpp"

namespace longseq {

// How the optimizer treats a parameter: decayed weights, undecayed (biases, norms, embeddings as
// configured), SSM dynamics (A, B, P, Lambda) with their own learning rate and no decay, or the SSM step
// size dt, which the reference configs train at the global lr without decay (so it needs its own group).
enum class ParamGroup : std::uint8_t { weight, no_decay, ssm, dt };
inline constexpr int param_group_count = 4;

inline const char* group_name(ParamGroup g) {
  switch (g) {
    case ParamGroup::weight: return "weight";
    case ParamGroup::no_decay: return "no_decay";
    case ParamGroup::ssm: return "ssm";
    case ParamGroup::dt: return "dt";
  }
  return "?";
}

template <class T, class D = device::host>
struct Param {
  Shape shape;
  ParamGroup group = ParamGroup::weight;
  // A buffer is state the forward itself updates (BatchNorm's running statistics) rather than the
  // optimizer: it gets no gradient, and code that runs a layer on a copy of its values (nn::Offload)
  // copies buffers back after a training forward.
  bool buffer = false;
  TensorView<T, D> value;  // bound by ParamStore
  TensorView<T, D> grad;   // bound by ParamStore; backward accumulates (+=) into it

  Param() = default;
  Param(Shape s, ParamGroup g = ParamGroup::weight) : shape(s), group(g) {}
  bool bound() const { return value.data != nullptr || shape.numel() == 0; }
};

// Wraps a visitor so that names of a child's parameters get "prefix." in front.
template <class F>
auto prefixed(std::string prefix, F& f) {
  return [prefix = std::move(prefix), &f](std::string_view name, auto& p) {
    f(prefix + "." + std::string(name), p);
  };
}

// Layers provide parameters(F&& f), calling f(name, Param&) for each slot (children through prefixed).
template <class L, class T, class D>
concept HasParameters = requires(L& l, std::function<void(std::string_view, Param<T, D>&)> f) {
  l.parameters(f);
};

template <class T, class D = device::host>
class ParamStore {
 public:
  struct Entry {
    std::string name;
    Param<T, D>* param;
    index_t offset;
  };

  // Binds every Param slot of `model` to views of freshly allocated (zeroed) buffers.
  template <class Model>
  void bind(Model& model) {
    entries_.clear();
    index_t total = 0;
    model.parameters([&](std::string_view name, Param<T, D>& p) {
      for (const auto& e : entries_)
        LONGSEQ_CHECK(e.name != name, "parameter name '", name, "' is declared twice");
      entries_.push_back({std::string(name), &p, total});
      // Round each tensor to 16 elements so views stay aligned for vector loads.
      total += (p.shape.numel() + 15) / 16 * 16;
    });
    values_ = Buffer<T, D>(std::size_t(total));
    grads_ = Buffer<T, D>(std::size_t(total));
    // Device buffers come uninitialized: zero both, so gradients start at 0 and padding stays 0.
    D::zero(values_.data(), std::size_t(total) * sizeof(T));
    D::zero(grads_.data(), std::size_t(total) * sizeof(T));
    total_ = total;
    for (auto& e : entries_) {
      e.param->value = TensorView<T, D>(values_.data() + e.offset, e.param->shape);
      e.param->grad = TensorView<T, D>(grads_.data() + e.offset, e.param->shape);
    }
  }
  const std::vector<Entry>& entries() const { return entries_; }
  const Entry* find(std::string_view name) const {
    for (const auto& e : entries_)
      if (e.name == name) return &e;
    return nullptr;
  }
  // Flat storage (padding slots stay zero in both buffers).
  TensorView<T, D> values() { return TensorView<T, D>(values_.data(), Shape{total_}); }
  TensorView<T, D> grads() { return TensorView<T, D>(grads_.data(), Shape{total_}); }
  index_t count() const {
    index_t n = 0;
    for (const auto& e : entries_) n += e.param->shape.numel();
    return n;
  }

 private:
  std::vector<Entry> entries_;
  Buffer<T, D> values_, grads_;
  index_t total_ = 0;
};

}  // namespace longseq
