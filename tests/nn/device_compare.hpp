// Helpers for the GPU tests: random host tensors, host -> device parameter copies, the largest error of a
// device result against the host result (relative to the host result's largest magnitude), and a whole
// layer run on both policies from the same parameters and inputs.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <longseq/core/cuda/context.cuh>
#include <longseq/core/cuda/memory.cuh>
#include <longseq/core/parameters.hpp>
#include <longseq/core/rng.hpp>
#include <longseq/core/tensor.hpp>
#include <string>

namespace longseq::testing {

template <class T>
void fill_uniform(TensorView<T> t, Rng& rng, double amp = 1.0) {
  for (index_t i = 0; i < t.numel(); ++i) t[i] = T(rng.uniform(-amp, amp));
}

// The device store gets the host store's values and gradients (both walk the same parameter names in the
// same order, so the flat layouts agree; checked by name and offset).
template <class T>
void copy_store(ParamStore<T>& host, ParamStore<T, device::cuda>& dev) {
  REQUIRE(host.entries().size() == dev.entries().size());
  for (std::size_t i = 0; i < host.entries().size(); ++i) {
    REQUIRE(host.entries()[i].name == dev.entries()[i].name);
    REQUIRE(host.entries()[i].offset == dev.entries()[i].offset);
  }
  copy_to_device<T>(host.values(), dev.values());
  copy_to_device<T>(host.grads(), dev.grads());
}

// max |dev - host| / max(1e-3, max |host|) over all elements; NaN or inf in dev gives infinity.
template <class T>
double rel_error(TensorView<const T, device::cuda> dev, TensorView<const T> host) {
  REQUIRE(dev.shape == host.shape);
  const Tensor<T> got = to_host(dev);
  double scale = 1e-3, err = 0.0;
  for (index_t i = 0; i < host.numel(); ++i) scale = std::max(scale, std::abs(double(host[i])));
  for (index_t i = 0; i < host.numel(); ++i) {
    const double d = std::abs(double(got[i]) - double(host[i]));
    if (!(d <= err)) err = std::isfinite(d) ? d : INFINITY;
  }
  return err / scale;
}

// Every parameter gradient of the device store against the host store's, each by name.
template <class T>
void check_grads(ParamStore<T>& host, ParamStore<T, device::cuda>& dev, double tol) {
  for (std::size_t i = 0; i < host.entries().size(); ++i) {
    const auto& h = host.entries()[i];
    const auto& d = dev.entries()[i];
    const double e = rel_error<T>(d.param->grad, h.param->grad);
    INFO("gradient of '", h.name, "': relative error ", e);
    CHECK(e < tol);
  }
}

// Runs HostL (on device::host) and DevL (on device::cuda), built from the same configuration, forward and
// backward on the same random parameters, input x (in) and output gradient dy (out): compares y, dx and
// every parameter gradient (which start nonzero, so accumulation is checked too). Both contexts share the
// seed and the training flag, so dropout masks agree.
template <class HostL, class DevL>
void compare_layer(HostL& h, DevL& d, Shape in, Shape out, double tol, std::uint64_t seed = 5,
                   bool training = true) {
  ParamStore<float> hs;
  ParamStore<float, device::cuda> ds;
  hs.bind(h);
  ds.bind(d);
  Rng rng(seed);
  h.init(rng);
  // Move every value off its initial constant (norms start at ones and zeros).
  for (index_t i = 0; i < hs.values().numel(); ++i) hs.values()[i] += float(rng.uniform(-0.2, 0.2));
  fill_uniform(hs.grads(), rng, 0.5);
  copy_store(hs, ds);

  Tensor<float> x(in), dy(out), y(out), dx(in);
  fill_uniform(x.view(), rng);
  fill_uniform(dy.view(), rng);
  HostContext hctx;
  Context<device::cuda> dctx;
  hctx.seed = dctx.seed = seed + 100;
  hctx.training = dctx.training = training;
  typename HostL::Saved hsaved;
  typename DevL::Saved dsaved;
  h.forward(hctx, x.view(), y.view(), hsaved);
  h.backward(hctx, hsaved, dy.view(), dx.view());

  auto xd = to_device(x), dyd = to_device(dy);
  Tensor<float, device::cuda> yd(out), dxd(in);
  d.forward(dctx, xd.view(), yd.view(), dsaved);
  d.backward(dctx, dsaved, dyd.view(), dxd.view());
  dctx.synchronize();

  const double ey = rel_error<float>(yd.view(), y.view()), edx = rel_error<float>(dxd.view(), dx.view());
  INFO("relative errors: y ", ey, ", dx ", edx);
  CHECK(ey < tol);
  CHECK(edx < tol);
  check_grads(hs, ds, tol);
}

}  // namespace longseq::testing
