// Checkpoints as safetensors files: parameters ("model.<name>"), AdamW moments ("optim.exp_avg.<name>",
// "optim.exp_avg_sq.<name>", in the optimizer's state type), the float32 masters of bf16/half storage
// ("optim.master.<name>") and, as string metadata, the step, epoch, position in the epoch, early-
// stopping state, RNG state, loss-scaler state (when scaling is on) and the model configuration. Written
// atomically; loading is strict (except for entries older files lack, which get their defaults). One layout
// for every device policy: a device store is read back to the host for writing and filled from it on
// loading, so a run saved on the GPU resumes on the host and the other way round.
#pragma once
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <type_traits>

#include "../core/rng.hpp"
#include "../core/tensor.hpp"
#include "../interop/safetensors.hpp"
#include "adamw.hpp"
#include "loss_scale.hpp"

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)
#include "../core/cuda/memory.cuh"
#endif

namespace longseq::train {

inline constexpr const char* checkpoint_format = "longseq-checkpoint-1";

// Everything besides tensors that a resumed run needs to continue exactly where it stopped.
struct TrainState {
  index_t step = 0;         // optimizer updates done
  index_t epoch = 0;        // current epoch
  index_t batch = 0;        // next training batch within the epoch
  double best_metric = -std::numeric_limits<double>::infinity();  // higher is better
  index_t best_epoch = -1;
  index_t bad_epochs = 0;   // epochs since the best (early stopping)
  double best_val_loss = 0, best_val_acc = 0, best_test_loss = 0, best_test_acc = 0;  // at best_epoch
  Rng rng;                  // the run's generator (restored exactly)
  LossScaleState loss_scale;  // dynamic loss scaling (scale 0: off, nothing stored)
};

namespace detail {
inline std::string fmt_double(double x) {
  if (std::isnan(x)) return "nan";
  std::ostringstream os;
  os.precision(17);
  os << x;
  return os.str();
}
inline std::string meta(const interop::Safetensors& st, const std::string& path, const std::string& key) {
  auto it = st.metadata.find(key);
  LONGSEQ_CHECK(it != st.metadata.end(), "checkpoint '", path, "' lacks metadata entry '", key, "'");
  return it->second;
}
inline bool has_meta(const interop::Safetensors& st, const std::string& key) { return st.metadata.count(key) > 0; }
template <class I>
I meta_int(const interop::Safetensors& st, const std::string& path, const std::string& key) {
  const std::string s = meta(st, path, key);
  I v{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  LONGSEQ_CHECK(ec == std::errc() && p == s.data() + s.size(), "checkpoint '", path, "': metadata entry '", key,
                "' = '", s, "' is not an integer");
  return v;
}
// An integer entry that must lie in [lo, hi]: values outside would load and then break the resumed run
// (an RNG position past its block reads out of bounds; negative counters index batches and epochs).
template <class I>
I meta_int_in(const interop::Safetensors& st, const std::string& path, const std::string& key, I lo, I hi) {
  const I v = meta_int<I>(st, path, key);
  LONGSEQ_CHECK(v >= lo && v <= hi, "checkpoint '", path, "': metadata entry '", key, "' = ", v,
                " is out of range (expected ", lo, "..", hi, ")");
  return v;
}
inline double meta_double(const interop::Safetensors& st, const std::string& path, const std::string& key) {
  const std::string s = meta(st, path, key);
  if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
  if (s == "-inf") return -std::numeric_limits<double>::infinity();
  if (s == "inf") return std::numeric_limits<double>::infinity();
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  LONGSEQ_CHECK(end && *end == '\0' && !s.empty(), "checkpoint '", path, "': metadata entry '", key, "' = '", s,
                "' is not a number");
  return v;
}
// A view's values on the host: the view itself there, a downloaded copy from a device.
template <class T, class D>
Tensor<T> on_host(TensorView<T, D> v) {
  Tensor<T> h(v.shape);
  if constexpr (D::is_gpu) {
    copy_to_host<T>(TensorView<const T, D>(v), h.view());
  } else {
    std::copy(v.data, v.data + v.numel(), h.data());
  }
  return h;
}
// Copies a stored tensor into a bound view (of any policy), checking the shape; the error names file and
// tensor. The stored dtype is converted to T (a float checkpoint loads into a bf16 model).
template <class T, class D = device::host>
void restore(const interop::Safetensors& st, const std::string& path, const std::string& key, TensorView<T, D> dst) {
  LONGSEQ_CHECK(st.contains(key), "checkpoint '", path, "' lacks tensor '", key, "'");
  const auto& rec = st.record(key);
  LONGSEQ_CHECK(rec.shape == dst.shape, "checkpoint '", path, "': tensor '", key, "' has shape ", rec.shape,
                ", the model expects ", dst.shape);
  Tensor<T> t = st.get<T>(key);
  if constexpr (D::is_gpu) {
    copy_to_device<T>(TensorView<const T>(t.view()), dst);
  } else {
    std::copy(t.data(), t.data() + t.numel(), dst.data);
  }
}
}  // namespace detail

// Copies every parameter value from one store to another of the same architecture, by name, across
// policies: e.g. a model initialized on the host (init is host-only) into its device twin's store.
// Between storage types (a float host twin into a bf16 device model) each value is rounded once, through
// float for the 16-bit types; the same type is copied bit for bit.
template <class T1, class D1, class T2, class D2>
void copy_parameters(ParamStore<T1, D1>& from, ParamStore<T2, D2>& to) {
  for (const auto& e : to.entries()) {
    const auto* src = from.find(e.name);
    LONGSEQ_CHECK(src != nullptr, "copy_parameters: the source store lacks parameter '", e.name, "'");
    LONGSEQ_CHECK(src->param->shape == e.param->shape, "copy_parameters: parameter '", e.name, "' has shape ",
                  src->param->shape, " in the source and ", e.param->shape, " in the destination");
    auto put = [&](const Tensor<T2>& h) {
      if constexpr (D2::is_gpu) {
        copy_to_device<T2>(h.view(), e.param->value);
      } else {
        std::copy(h.data(), h.data() + h.numel(), e.param->value.data);
      }
    };
    const Tensor<T1> h1 = detail::on_host(src->param->value);
    if constexpr (std::is_same_v<T1, T2>) {
      put(h1);
    } else {
      using Via = std::conditional_t<std::is_floating_point_v<T1> && std::is_floating_point_v<T2>, T2, float>;
      Tensor<T2> h(h1.shape());
      for (index_t i = 0; i < h1.numel(); ++i) h.data()[i] = T2(Via(h1.data()[i]));
      put(h);
    }
  }
  LONGSEQ_CHECK(from.entries().size() == to.entries().size(), "copy_parameters: the source store has ",
                from.entries().size(), " parameters, the destination ", to.entries().size());
}

// Writes parameters, optimizer state (when given) and the training state to `path` atomically.
template <class T, class D>
void save_checkpoint(const std::string& path, ParamStore<T, D>& store, std::type_identity_t<AdamW<T, D>>* opt,
                     const TrainState& state,
                     const std::map<std::string, std::string>& extra_metadata = {}) {
  interop::Safetensors st;
  st.metadata = extra_metadata;
  st.metadata["format"] = checkpoint_format;
  st.metadata["dtype"] = std::string(dtype_name(dtype_v<T>));
  st.metadata["step"] = std::to_string(state.step);
  st.metadata["epoch"] = std::to_string(state.epoch);
  st.metadata["batch"] = std::to_string(state.batch);
  st.metadata["best_metric"] = std::isinf(state.best_metric) ? (state.best_metric < 0 ? "-inf" : "inf")
                                                              : detail::fmt_double(state.best_metric);
  st.metadata["best_epoch"] = std::to_string(state.best_epoch);
  st.metadata["bad_epochs"] = std::to_string(state.bad_epochs);
  st.metadata["best_val_loss"] = detail::fmt_double(state.best_val_loss);
  st.metadata["best_val_acc"] = detail::fmt_double(state.best_val_acc);
  st.metadata["best_test_loss"] = detail::fmt_double(state.best_test_loss);
  st.metadata["best_test_acc"] = detail::fmt_double(state.best_test_acc);
  st.metadata["rng.seed"] = std::to_string(state.rng.seed());
  st.metadata["rng.stream"] = std::to_string(state.rng.stream());
  st.metadata["rng.counter"] = std::to_string(state.rng.counter());
  st.metadata["rng.index"] = std::to_string(state.rng.index());
  if (state.loss_scale.scale != 0) {  // only with loss scaling on, so other checkpoints stay as they were
    st.metadata["loss_scale.scale"] = detail::fmt_double(state.loss_scale.scale);
    st.metadata["loss_scale.good_steps"] = std::to_string(state.loss_scale.good_steps);
    st.metadata["loss_scale.skipped"] = std::to_string(state.loss_scale.skipped);
  }
  using S = typename AdamW<T, D>::state_type;
  for (const auto& e : store.entries()) st.put<T>("model." + e.name, detail::on_host(e.param->value).view());
  if (opt) {
    st.metadata["optim.steps"] = std::to_string(opt->steps());
    // Narrow storage: the masters are what the next update starts from (the values are them rounded).
    if constexpr (AdamW<T, D>::has_master) opt->sync_masters();
    for (const auto& e : store.entries()) {
      st.put<S>("optim.exp_avg." + e.name, detail::on_host(opt->exp_avg(e)).view());
      st.put<S>("optim.exp_avg_sq." + e.name, detail::on_host(opt->exp_avg_sq(e)).view());
      if constexpr (AdamW<T, D>::has_master)
        st.put<float>("optim.master." + e.name, detail::on_host(opt->master(e)).view());
    }
  }
  st.save(path);
}

// Restores a checkpoint written by save_checkpoint into a model of the same architecture. Every model
// tensor must be present with the same shape, and the file may not hold model tensors the model lacks.
// Returns the file's metadata (e.g. "config").
template <class T, class D>
std::map<std::string, std::string> load_checkpoint(const std::string& path, ParamStore<T, D>& store,
                                                   std::type_identity_t<AdamW<T, D>>* opt,
                                                   TrainState* state) {
  const interop::Safetensors st = interop::Safetensors::load(path);
  constexpr index_t max_count = std::numeric_limits<index_t>::max();
  LONGSEQ_CHECK(detail::meta(st, path, "format") == checkpoint_format, "checkpoint '", path, "' has format '",
                detail::meta(st, path, "format"), "', expected '", checkpoint_format, "'");
  for (const auto& rec : st.tensors)
    if (rec.name.rfind("model.", 0) == 0)
      LONGSEQ_CHECK(store.find(rec.name.substr(6)) != nullptr, "checkpoint '", path, "' holds tensor '", rec.name,
                    "' that the model does not have (a different architecture?)");
  using S = typename AdamW<T, D>::state_type;
  for (const auto& e : store.entries()) detail::restore<T, D>(st, path, "model." + e.name, e.param->value);
  if (opt) {
    opt->set_steps(detail::meta_int_in<index_t>(st, path, "optim.steps", 0, max_count));
    for (const auto& e : store.entries()) {
      detail::restore<S, D>(st, path, "optim.exp_avg." + e.name, opt->exp_avg(e));
      detail::restore<S, D>(st, path, "optim.exp_avg_sq." + e.name, opt->exp_avg_sq(e));
    }
    if constexpr (AdamW<T, D>::has_master) {
      // A file written from wider storage has no masters: the next step takes them from the loaded values.
      bool all = true;
      for (const auto& e : store.entries()) all = all && st.contains("optim.master." + e.name);
      if (all) {
        for (const auto& e : store.entries()) detail::restore<float, D>(st, path, "optim.master." + e.name, opt->master(e));
        opt->masters_restored();
      } else {
        opt->reload_masters();
      }
    }
  }
  if (state) {
    state->step = detail::meta_int_in<index_t>(st, path, "step", 0, max_count);
    state->epoch = detail::meta_int_in<index_t>(st, path, "epoch", 0, max_count);
    state->batch = detail::meta_int_in<index_t>(st, path, "batch", 0, max_count);
    state->best_metric = detail::meta_double(st, path, "best_metric");
    state->best_epoch = detail::meta_int_in<index_t>(st, path, "best_epoch", -1, max_count);
    state->bad_epochs = detail::meta_int_in<index_t>(st, path, "bad_epochs", 0, max_count);
    state->best_val_loss = detail::meta_double(st, path, "best_val_loss");
    state->best_val_acc = detail::meta_double(st, path, "best_val_acc");
    state->best_test_loss = detail::meta_double(st, path, "best_test_loss");
    state->best_test_acc = detail::meta_double(st, path, "best_test_acc");
    const auto counter = detail::meta_int<std::uint64_t>(st, path, "rng.counter");
    const int index = detail::meta_int_in<int>(st, path, "rng.index", 0, 4);
    // A position inside a block (index < 4) means that block, number counter - 1, was drawn.
    LONGSEQ_CHECK(index == 4 || counter > 0, "checkpoint '", path, "': metadata entry 'rng.index' = ", index,
                  " needs 'rng.counter' of at least 1, got 0");
    state->rng.restore(detail::meta_int<std::uint64_t>(st, path, "rng.seed"),
                       detail::meta_int<std::uint64_t>(st, path, "rng.stream"), counter, index);
    state->loss_scale = {};  // files without loss-scaler entries: no saved scale
    if (detail::has_meta(st, "loss_scale.scale")) {
      state->loss_scale.scale = detail::meta_double(st, path, "loss_scale.scale");
      LONGSEQ_CHECK(std::isfinite(state->loss_scale.scale) && state->loss_scale.scale > 0, "checkpoint '", path,
                    "': metadata entry 'loss_scale.scale' = ", state->loss_scale.scale,
                    " is not a positive finite number");
      state->loss_scale.good_steps = detail::meta_int_in<index_t>(st, path, "loss_scale.good_steps", 0, max_count);
      state->loss_scale.skipped = detail::meta_int_in<index_t>(st, path, "loss_scale.skipped", 0, max_count);
    }
  }
  return st.metadata;
}

}  // namespace longseq::train
