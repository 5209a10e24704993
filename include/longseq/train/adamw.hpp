// train::AdamW: decoupled weight decay Adam (Loshchilov & Hutter) over a ParamStore, with per-group
// learning rate and decay: weights decayed, no_decay undecayed, SSM dynamics with their own lr and no decay.
#pragma once
#include <cmath>

#include "../core/parameters.hpp"

namespace longseq::train {

struct AdamWConfig {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;  // ParamGroup::weight only
  double ssm_lr = -1;          // ParamGroup::ssm; < 0: the global lr
  double ssm_weight_decay = 0;  // the reference S4 code registers SSM tensors with weight decay 0
};

template <class T>
class AdamW {
 public:
  AdamW(ParamStore<T>& store, AdamWConfig cfg) : store_(&store), cfg_(cfg) {
    LONGSEQ_CHECK(cfg.lr >= 0 && cfg.eps > 0 && cfg.beta1 >= 0 && cfg.beta1 < 1 && cfg.beta2 >= 0 && cfg.beta2 < 1,
                  "AdamW: invalid hyperparameters lr=", cfg.lr, " betas=(", cfg.beta1, ", ", cfg.beta2, ") eps=", cfg.eps);
    const index_t n = store.values().numel();
    m_ = Tensor<T>(Shape{n});
    v_ = Tensor<T>(Shape{n});
  }

  const AdamWConfig& config() const { return cfg_; }
  double group_lr(ParamGroup g) const { return g == ParamGroup::ssm && cfg_.ssm_lr >= 0 ? cfg_.ssm_lr : cfg_.lr; }
  double group_decay(ParamGroup g) const {
    switch (g) {
      case ParamGroup::weight: return cfg_.weight_decay;
      case ParamGroup::no_decay: return 0.0;
      case ParamGroup::ssm: return cfg_.ssm_weight_decay;
    }
    return 0.0;
  }

  // One update with every group's lr multiplied by lr_scale (the schedule's factor), as PyTorch's AdamW:
  // p -= lr wd p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr/(1-b1^t) m / (sqrt(v)/sqrt(1-b2^t) + eps).
  void step(double lr_scale = 1.0) {
    ++t_;
    const double bc1 = 1.0 - std::pow(cfg_.beta1, double(t_));
    const double sqrt_bc2 = std::sqrt(1.0 - std::pow(cfg_.beta2, double(t_)));
    for (const auto& e : store_->entries()) {
      const double lr = group_lr(e.param->group) * lr_scale, wd = group_decay(e.param->group);
      T* p = e.param->value.data;
      const T* g = e.param->grad.data;
      T* m = m_.data() + e.offset;
      T* v = v_.data() + e.offset;
      const index_t n = e.param->shape.numel();
      for (index_t i = 0; i < n; ++i) {
        double pi = double(p[i]);
        const double gi = double(g[i]);
        pi *= 1.0 - lr * wd;
        const double mi = cfg_.beta1 * double(m[i]) + (1.0 - cfg_.beta1) * gi;
        const double vi = cfg_.beta2 * double(v[i]) + (1.0 - cfg_.beta2) * gi * gi;
        m[i] = T(mi);
        v[i] = T(vi);
        pi -= (lr / bc1) * double(m[i]) / (std::sqrt(double(v[i])) / sqrt_bc2 + cfg_.eps);
        p[i] = T(pi);
      }
    }
  }
  void zero_grad() {
    auto g = store_->grads();
    std::fill(g.data, g.data + g.numel(), T(0));
  }

  index_t steps() const { return t_; }
  void set_steps(index_t t) { t_ = t; }
  // First and second moments, laid out like the store's flat value buffer.
  TensorView<T> exp_avg(const typename ParamStore<T>::Entry& e) { return {m_.data() + e.offset, e.param->shape}; }
  TensorView<T> exp_avg_sq(const typename ParamStore<T>::Entry& e) { return {v_.data() + e.offset, e.param->shape}; }
  ParamStore<T>& store() { return *store_; }

 private:
  ParamStore<T>* store_;
  AdamWConfig cfg_;
  Tensor<T> m_, v_;
  index_t t_ = 0;
};

}  // namespace longseq::train
