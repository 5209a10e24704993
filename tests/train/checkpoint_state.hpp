// A small parameter holder on any policy and helpers that read a store's and an optimizer's state to the
// host, for the checkpoint tests of both policies.
#pragma once
#include <cmath>
#include <cstring>
#include <vector>

#include <longseq/core/parameters.hpp>
#include <longseq/train/adamw.hpp>
#include <longseq/train/checkpoint.hpp>

namespace longseq::testing {

template <class T, class D = device::host>
struct TwoParams {
  Param<T, D> w{Shape{5, 3}, ParamGroup::weight};
  Param<T, D> b{Shape{7}, ParamGroup::no_decay};
  Param<T, D> dt{Shape{4}, ParamGroup::ssm};
  template <class F>
  void parameters(F&& f) {
    f("w", w);
    f("b", b);
    f("dt", dt);
  }
};

// Raw bytes of a view of either policy (to compare states bit for bit).
template <class U, class D>
std::vector<unsigned char> bytes_of(TensorView<U, D> v) {
  Tensor<U> h = train::detail::on_host(v);
  std::vector<unsigned char> out(std::size_t(h.numel()) * sizeof(U));
  if (!out.empty()) std::memcpy(out.data(), h.data(), out.size());
  return out;
}

// Everything a resumed update depends on: values, moments, masters (narrow storage) and the step count.
template <class T, class D>
std::vector<unsigned char> optimizer_state(ParamStore<T, D>& store, train::AdamW<T, D>& opt) {
  std::vector<unsigned char> all;
  auto add = [&](const std::vector<unsigned char>& v) { all.insert(all.end(), v.begin(), v.end()); };
  if constexpr (train::AdamW<T, D>::has_master) opt.sync_masters();
  for (const auto& e : store.entries()) {
    add(bytes_of(e.param->value));
    add(bytes_of(opt.exp_avg(e)));
    add(bytes_of(opt.exp_avg_sq(e)));
    if constexpr (train::AdamW<T, D>::has_master) add(bytes_of(opt.master(e)));
  }
  const auto t = opt.steps();
  all.insert(all.end(), reinterpret_cast<const unsigned char*>(&t), reinterpret_cast<const unsigned char*>(&t) + sizeof t);
  return all;
}

// Deterministic host values for a store's values (first call) or gradients.
template <class T>
std::vector<T> pattern(index_t n, double phase) {
  std::vector<T> v(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) v[std::size_t(i)] = T(float(0.37 * std::sin(1.3 * double(i) + phase) + 1e-3 * phase));
  return v;
}

}  // namespace longseq::testing
