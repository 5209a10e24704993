// Test helpers for kernel parameterizations: loss = <K, W> with its finite-difference gradient check.
#pragma once
#include <longseq/core/context.hpp>
#include <longseq/ssm/kernel.hpp>

#include "grad_check.hpp"

namespace longseq::test {

template <class K>
int kernel_grad_mismatches(K& k, index_t L, std::uint64_t seed, double rtol = 1e-6) {
  static_assert(ssm::assert_kernel<K>());
  ParamStore<double> store;
  store.bind(k);
  Rng rng(seed);
  k.init(rng);
  HostContext ctx;
  index_t C = k.channels(), H = k.width();
  Tensor<double> out(Shape{C, H, L});
  auto W = random_vec(C * H * L, seed + 1);
  typename K::Saved s;
  auto loss = [&] {
    k.kernel_forward(ctx, L, out.view(), s);
    double acc = 0;
    for (index_t i = 0; i < out.numel(); ++i) acc += out[i] * W[std::size_t(i)];
    return acc;
  };
  loss();
  for (index_t i = 0; i < store.grads().numel(); ++i) store.grads()[i] = 0;
  k.kernel_backward(ctx, s, TensorView<const double>(W.data(), Shape{C, H, L}));
  return check_param_grads(store, loss, 1e-6, rtol);
}

}  // namespace longseq::test
