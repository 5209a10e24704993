// ssm::DiagonalKernel: for S4D, DSS and DLR the kernel is exactly diagonal_forward then vandermonde_forward, its
// backward exactly vandermonde_backward then diagonal_backward (bit for bit), diagonal_backward alone matches finite
// differences of the diagonal form, and it rejects gradients of the wrong size.
#include <doctest/doctest.h>

#include <complex>
#include <longseq/ssm/conv_kernel.hpp>
#include <longseq/ssm/dlr.hpp>
#include <longseq/ssm/dss.hpp>
#include <longseq/ssm/s4.hpp>
#include <longseq/ssm/s4d.hpp>
#include <vector>

#include "grad_check.hpp"

using namespace longseq;
using namespace longseq::ssm;
using Cd = std::complex<double>;

static_assert(DiagonalKernel<S4D<double>> && DiagonalKernel<S4D<float, Bilinear>>);
static_assert(DiagonalKernel<DSS<double, DSSVariant::exp>> && DiagonalKernel<DSS<double, DSSVariant::softmax>>);
static_assert(DiagonalKernel<DLR<double>>);
static_assert(!DiagonalKernel<S4<double>> && !DiagonalKernel<ConvKernel<double>>,
              "kernels without a diagonal form use the generic kernel_forward / kernel_backward");

namespace {

// Every value moved off its structured initialization, so that no term of the chain rule vanishes.
template <class K>
void bind_and_init(K& k, ParamStore<double>& store, std::uint64_t seed) {
  store.bind(k);
  Rng rng(seed);
  k.init(rng);
  auto v = store.values();
  for (index_t i = 0; i < v.numel(); ++i) v[i] += rng.uniform(-0.05, 0.05);
}

std::vector<double> grads_of(ParamStore<double>& store) {
  auto g = store.grads();
  return std::vector<double>(g.data, g.data + g.numel());
}

void zero_grads(ParamStore<double>& store) {
  auto g = store.grads();
  for (index_t i = 0; i < g.numel(); ++i) g[i] = 0;
}

// kernel_forward / kernel_backward against the two-stage path through the DiagonalForm, compared exactly.
template <class K>
void check_split(K& k, index_t L, std::uint64_t seed) {
  ParamStore<double> store;
  bind_and_init(k, store, seed);
  HostContext ctx;
  const index_t C = k.channels(), H = k.width();
  Tensor<double> K1(Shape{C, H, L}), K2(Shape{C, H, L});
  typename K::Saved s1, s2;
  k.kernel_forward(ctx, L, K1.view(), s1);
  DiagonalForm<double> d;
  k.diagonal_forward(L, d, s2);
  vandermonde_forward(d, K2.view());
  int differ = 0;
  for (index_t i = 0; i < K1.numel(); ++i) differ += K1[i] != K2[i];
  CHECK(differ == 0);

  auto dK = test::random_vec(C * H * L, seed + 1);
  TensorView<const double> dKv(dK.data(), Shape{C, H, L});
  zero_grads(store);
  k.kernel_backward(ctx, s1, dKv);
  const auto g1 = grads_of(store);
  zero_grads(store);
  std::vector<Cd> g_coef, g_log_z;
  vandermonde_backward(d, dKv, g_coef, g_log_z);
  k.diagonal_backward(s2, g_coef, g_log_z);
  const auto g2 = grads_of(store);
  CHECK(g1 == g2);
  double largest = 0;
  for (double g : g1) largest = std::max(largest, std::abs(g));
  CHECK(largest > 0);  // the comparison is not between two zero vectors
}

// loss = sum Re(conj(Wc) coef) + Re(conj(Wz) log_z), whose gradient in the form is (Wc, Wz): diagonal_backward with
// those gradients must give the parameters' gradients of the loss, checked by central differences.
template <class K>
int diagonal_backward_mismatches(K& k, index_t L, std::uint64_t seed) {
  ParamStore<double> store;
  bind_and_init(k, store, seed);
  typename K::Saved s;
  DiagonalForm<double> d;
  k.diagonal_forward(L, d, s);
  auto wr = test::random_vec(2 * index_t(d.coef.size() + d.log_z.size()), seed + 2);
  std::vector<Cd> wc(d.coef.size()), wz(d.log_z.size());
  for (std::size_t i = 0; i < wc.size(); ++i) wc[i] = {wr[2 * i], wr[2 * i + 1]};
  for (std::size_t i = 0; i < wz.size(); ++i) wz[i] = {wr[2 * (wc.size() + i)], wr[2 * (wc.size() + i) + 1]};
  auto loss = [&] {
    typename K::Saved sl;
    DiagonalForm<double> dl;
    k.diagonal_forward(L, dl, sl);
    double acc = 0;
    for (std::size_t i = 0; i < wc.size(); ++i) acc += (std::conj(wc[i]) * dl.coef[i]).real();
    for (std::size_t i = 0; i < wz.size(); ++i) acc += (std::conj(wz[i]) * dl.log_z[i]).real();
    return acc;
  };
  zero_grads(store);
  k.diagonal_backward(s, wc, wz);
  return test::check_param_grads(store, loss, 1e-6, 1e-6);
}

}  // namespace

TEST_CASE("DiagonalKernel: kernel_forward/backward equal the diagonal form's two stages exactly") {
  S4D<double> s4d({.H = 3, .N = 8, .channels = 2, .n_ssm = 1, .dt_min = 0.01, .dt_max = 0.2});
  check_split(s4d, 37, 1);
  S4D<double, Bilinear> s4d_bil({.H = 2, .N = 6, .init = S4DInit::lin});
  check_split(s4d_bil, 20, 2);
  DSS<double, DSSVariant::exp> dss({.H = 3, .N = 5, .channels = 2, .dt_min = 0.01, .dt_max = 0.3});
  check_split(dss, 29, 3);
  DSS<double, DSSVariant::softmax> dss_sm({.H = 2, .N = 4, .channels = 2, .dt_min = 0.01, .dt_max = 0.3});
  check_split(dss_sm, 17, 4);
  DLR<double> dlr({.H = 3, .N = 6, .channels = 2});
  check_split(dlr, 41, 5);
}

TEST_CASE("DiagonalKernel: diagonal_backward matches finite differences of the diagonal form") {
  S4D<double> s4d({.H = 3, .N = 6, .channels = 2, .n_ssm = 1, .dt_min = 0.01, .dt_max = 0.2});
  CHECK(diagonal_backward_mismatches(s4d, 16, 11) == 0);
  S4D<double, Bilinear> s4d_bil({.H = 2, .N = 4, .init = S4DInit::inv});
  CHECK(diagonal_backward_mismatches(s4d_bil, 16, 12) == 0);
  DSS<double, DSSVariant::softmax> dss_sm({.H = 2, .N = 3, .channels = 2, .dt_min = 0.01, .dt_max = 0.3});
  CHECK(diagonal_backward_mismatches(dss_sm, 12, 13) == 0);
  DLR<double> dlr({.H = 2, .N = 4});
  CHECK(diagonal_backward_mismatches(dlr, 12, 14) == 0);
}

TEST_CASE("DiagonalKernel: diagonal_backward rejects gradients of the wrong size and a missing forward") {
  S4D<double> k({.H = 2, .N = 4});
  ParamStore<double> store;
  bind_and_init(k, store, 7);
  S4D<double>::Saved s;
  DiagonalForm<double> d;
  std::vector<Cd> gc(4), gz(4);  // C H M = 1 * 2 * 2
  CHECK_THROWS_WITH_AS(
      k.diagonal_backward(s, gc, gz),
      doctest::Contains("S4D: diagonal_backward needs the Saved of diagonal_forward (0 saved modes, expected 4)"),
      Error);
  k.diagonal_forward(8, d, s);
  std::vector<Cd> short_gc(3);
  CHECK_THROWS_WITH_AS(
      k.diagonal_backward(s, short_gc, gz),
      doctest::Contains("S4D: diagonal_backward got 3 coef and 4 log_z gradients, expected C*H*M = 4 and H*M = 4"),
      Error);
  DLR<double> dlr({.H = 2, .N = 3});
  DLR<double>::Saved ds;
  std::vector<Cd> g6(6), g5(5);
  CHECK_THROWS_WITH_AS(dlr.diagonal_backward(ds, g6, g5), doctest::Contains("DLR: diagonal_backward got 6 coef and 5"),
                       Error);
}
