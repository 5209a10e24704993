// train::AdamW: decoupled weight decay Adam (Loshchilov & Hutter) over a ParamStore, with per-group
// learning rate and decay: weights decayed, no_decay undecayed (or decayed, as the reference does), SSM
// dynamics with their own lr and no decay, the SSM step size dt at the global lr without decay.
// One template for both policies: the host loops over the entries; on CUDA one fused kernel walks the flat
// buffer (train/cuda/adamw.cuh). With bf16 or half storage the moments and float32 master weights are kept
// beside the store, and the stored values are the masters rounded.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "../core/dtype.hpp"
#include "../core/parameters.hpp"
#include "optimizer.hpp"

namespace longseq::train {

struct AdamWConfig {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;  // ParamGroup::weight
  // ParamGroup::no_decay (biases, norm scales): PyTorch-style code usually exempts them; the paper's code
  // does not (its optimizer decays every tensor without an own setting), so its presets set weight_decay here.
  double no_decay_weight_decay = 0;
  double ssm_lr = -1;          // ParamGroup::ssm; < 0: the global lr
  double ssm_weight_decay = 0;  // the reference S4 code registers SSM tensors with weight decay 0
  double dt_lr = -1;            // ParamGroup::dt; < 0: the global lr (the reference configs' `dt: null`)
  double dt_weight_decay = 0;
};

// Device-side inputs of one update, decided on the device without a host round trip (train/step.hpp): the
// factor every gradient is multiplied by (loss-scale undoing times the clipping coefficient) and whether the
// update is skipped (an overflow under loss scaling). Null pointers: factor 1, never skipped.
struct UpdateGate {
  const double* grad_factor = nullptr;
  const int* skip = nullptr;
};

namespace detail {
// Per-group learning rate and decay for one update; index = ParamGroup, the last row is padding (no update).
struct GroupTable {
  double lr[param_group_count + 1];
  double wd[param_group_count + 1];
};
template <class T>
inline constexpr bool narrow_storage = std::is_same_v<T, bf16> || std::is_same_v<T, half>;
}  // namespace detail

template <class T, class D = device::host>
class AdamW {
 public:
  using value_type = T;
  using device_type = D;
  // Moments (and masters) in float32 for narrow storage, otherwise in the storage type itself.
  using state_type = std::conditional_t<detail::narrow_storage<T>, float, T>;
  static constexpr bool has_master = detail::narrow_storage<T>;

  AdamW(ParamStore<T, D>& store, AdamWConfig cfg) : store_(&store), cfg_(cfg) {
    LONGSEQ_CHECK(cfg.lr >= 0 && cfg.eps > 0 && cfg.beta1 >= 0 && cfg.beta1 < 1 && cfg.beta2 >= 0 && cfg.beta2 < 1,
                  "AdamW: invalid hyperparameters lr=", cfg.lr, " betas=(", cfg.beta1, ", ", cfg.beta2, ") eps=", cfg.eps);
    LONGSEQ_CHECK(cfg.weight_decay >= 0 && cfg.no_decay_weight_decay >= 0 && cfg.ssm_weight_decay >= 0 &&
                      cfg.dt_weight_decay >= 0,
                  "AdamW: weight decays must be >= 0 (weight_decay=", cfg.weight_decay, ", no_decay_weight_decay=",
                  cfg.no_decay_weight_decay, ", ssm_weight_decay=", cfg.ssm_weight_decay, ", dt_weight_decay=",
                  cfg.dt_weight_decay, ")");
    const index_t n = store.values().numel();
    m_ = Tensor<state_type, D>(Shape{n});
    v_ = Tensor<state_type, D>(Shape{n});
    if constexpr (D::is_gpu) {
      D::zero(m_.data(), std::size_t(n) * sizeof(state_type));
      D::zero(v_.data(), std::size_t(n) * sizeof(state_type));
      device_setup();
    }
    if constexpr (has_master) master_ = Tensor<float, D>(Shape{n});
  }

  const AdamWConfig& config() const { return cfg_; }
  double base_lr() const { return cfg_.lr; }
  double group_lr(ParamGroup g) const {
    if (g == ParamGroup::ssm && cfg_.ssm_lr >= 0) return cfg_.ssm_lr;
    if (g == ParamGroup::dt && cfg_.dt_lr >= 0) return cfg_.dt_lr;
    return cfg_.lr;
  }
  double group_decay(ParamGroup g) const {
    switch (g) {
      case ParamGroup::weight: return cfg_.weight_decay;
      case ParamGroup::no_decay: return cfg_.no_decay_weight_decay;
      case ParamGroup::ssm: return cfg_.ssm_weight_decay;
      case ParamGroup::dt: return cfg_.dt_weight_decay;
    }
    return 0.0;
  }

  // One update with every group's lr multiplied by lr_scale (the schedule's factor), as PyTorch's AdamW:
  // p -= lr wd p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr/(1-b1^t) m / (sqrt(v)/sqrt(1-b2^t) + eps).
  // On CUDA the gate's factor scales g first and its skip flag turns the whole update (t included) into a no-op.
  void step(double lr_scale = 1.0, UpdateGate gate = {}) {
    load_masters_once();
    if constexpr (D::is_gpu) {
      device_step(lr_scale, gate);
    } else {
      LONGSEQ_CHECK(gate.grad_factor == nullptr && gate.skip == nullptr,
                    "AdamW: an UpdateGate is for device stores; on the host, scale the gradients and decide "
                    "the skip before step()");
      host_step(lr_scale);
    }
  }
  void zero_grad() {
    auto g = store_->grads();
    if constexpr (D::is_gpu) {
      D::zero(g.data, std::size_t(g.numel()) * sizeof(T));
    } else {
      std::fill(g.data, g.data + g.numel(), T(0));
    }
  }

  // Updates taken (on CUDA the count lives on the device: reading it synchronizes).
  index_t steps() const {
    if constexpr (D::is_gpu) return device_steps();
    else return t_;
  }
  void set_steps(index_t t) {
    if constexpr (D::is_gpu) device_set_steps(t);
    else t_ = t;
  }
  // First and second moments, laid out like the store's flat value buffer.
  TensorView<state_type, D> exp_avg(const typename ParamStore<T, D>::Entry& e) { return {m_.data() + e.offset, e.param->shape}; }
  TensorView<state_type, D> exp_avg_sq(const typename ParamStore<T, D>::Entry& e) { return {v_.data() + e.offset, e.param->shape}; }
  ParamStore<T, D>& store() { return *store_; }
  // Narrow storage: the float32 masters, taken from the stored values before the first step. Call after
  // changing the values yourself (loading a checkpoint), so the next step starts from them.
  void reload_masters() { masters_loaded_ = false; }
  TensorView<float, D> masters() requires has_master { return master_.view(); }
  TensorView<float, D> master(const typename ParamStore<T, D>::Entry& e) requires has_master {
    return {master_.data() + e.offset, e.param->shape};
  }
  // Checkpoints: sync_masters() takes them from the values if no step has yet; masters_restored() says the
  // masters were written from a file, so the next step starts from them rather than the rounded values.
  void sync_masters() { load_masters_once(); }
  void masters_restored() { masters_loaded_ = true; }

 private:
  void host_step(double lr_scale) {
    ++t_;
    const double bc1 = 1.0 - std::pow(cfg_.beta1, double(t_));
    const double sqrt_bc2 = std::sqrt(1.0 - std::pow(cfg_.beta2, double(t_)));
    for (const auto& e : store_->entries()) {
      // Running statistics get no gradient (their update would be exactly 0): skipped, as on the device.
      if (e.param->buffer) continue;
      const double lr = group_lr(e.param->group) * lr_scale, wd = group_decay(e.param->group);
      T* p = e.param->value.data;
      float* pm = nullptr;
      if constexpr (has_master) pm = master_.data() + e.offset;
      const T* g = e.param->grad.data;
      state_type* m = m_.data() + e.offset;
      state_type* v = v_.data() + e.offset;
      const index_t n = e.param->shape.numel();
      for (index_t i = 0; i < n; ++i) {
        double pi = has_master ? double(pm[i]) : double(p[i]);
        const double gi = double(g[i]);
        pi *= 1.0 - lr * wd;
        const double mi = cfg_.beta1 * double(m[i]) + (1.0 - cfg_.beta1) * gi;
        const double vi = cfg_.beta2 * double(v[i]) + (1.0 - cfg_.beta2) * gi * gi;
        m[i] = state_type(mi);
        v[i] = state_type(vi);
        pi -= (lr / bc1) * double(m[i]) / (std::sqrt(double(v[i])) / sqrt_bc2 + cfg_.eps);
        if constexpr (has_master) {
          pm[i] = float(pi);
          p[i] = T(pm[i]);
        } else {
          p[i] = T(pi);
        }
      }
    }
  }
  void load_masters_once() {
    if constexpr (has_master) {
      if (masters_loaded_) return;
      if constexpr (D::is_gpu) {
        device_load_masters();
      } else {
        auto v = store_->values();
        for (index_t i = 0; i < v.numel(); ++i) master_[i] = float(v.data[i]);
      }
      masters_loaded_ = true;
    }
  }
  detail::GroupTable table(double lr_scale) const {
    detail::GroupTable t{};
    for (ParamGroup g : {ParamGroup::weight, ParamGroup::no_decay, ParamGroup::ssm, ParamGroup::dt}) {
      t.lr[int(g)] = group_lr(g) * lr_scale;
      t.wd[int(g)] = group_decay(g);
    }
    return t;  // the padding row stays 0, and the kernel leaves padding alone anyway
  }

  // Defined in train/cuda/adamw.cuh (compiled by nvcc only).
  void device_setup();
  void device_step(double lr_scale, UpdateGate gate);
  void device_load_masters();
  index_t device_steps() const;
  void device_set_steps(index_t t);

  ParamStore<T, D>* store_;
  AdamWConfig cfg_;
  Tensor<state_type, D> m_, v_;
  Tensor<float, D> master_;           // narrow storage only
  bool masters_loaded_ = false;
  index_t t_ = 0;                     // host: updates taken
  Tensor<std::uint8_t, D> group_;     // CUDA: ParamGroup of every flat entry, param_group_count for padding
  Tensor<double, D> tstate_;          // CUDA: {t, 1 - b1^t, sqrt(1 - b2^t)}
};

}  // namespace longseq::train

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // the device update, visible wherever AdamW is
#include "cuda/adamw.cuh"
#endif
