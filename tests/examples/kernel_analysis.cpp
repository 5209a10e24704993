// Tests of the kernel analysis (examples/kernel_analysis.hpp): finding kernel layers in a safetensors file,
// rebuilding their kernels against direct evaluation and the DLR formula, K_max and the decay length.
#include <doctest/doctest.h>

#include <cmath>
#include <complex>
#include <filesystem>
#include <string>

#include "../../examples/kernel_analysis.hpp"

using namespace longseq;
namespace fs = std::filesystem;

namespace {

// Binds and initializes a kernel parameterization, stores its parameters under `prefix` in st, and returns
// its kernel at length L evaluated directly.
template <class Kern>
Tensor<double> store_layer(Kern& k, ParamStore<double>& store, interop::Safetensors& st, const std::string& prefix,
                           index_t L, std::uint64_t seed) {
  store.bind(k);
  Rng rng(seed);
  k.init(rng);
  for (const auto& e : store.entries()) st.put<double>(prefix + e.name, TensorView<const double>(e.param->value));
  Tensor<double> K(Shape{k.channels(), k.width(), L});
  typename Kern::Saved s;
  HostContext ctx;
  k.kernel_forward(ctx, L, K.view(), s);
  return K;
}

std::string temp_file(const char* name) { return (fs::temp_directory_path() / name).string(); }

}  // namespace

TEST_CASE("decay_length and kmax on hand-made kernels") {
  CHECK(analysis::decay_length({4, 3, 2, 1}, 0.9) == 3);  // 4 + 3 + 2 = 9 = 0.9 * 10
  CHECK(analysis::decay_length({4, 3, 2, 1}, 0.5) == 2);  // 4 < 5 <= 7
  CHECK(analysis::decay_length({1, 1, 1, 1}, 0.9) == 4);
  CHECK(analysis::decay_length({0, 0, 5, 0}, 0.9) == 3);
  CHECK(analysis::decay_length({0, 0, 0}, 0.9) == 0);
  // K (C=2, H=2, L=3): the maximum over both directions and channels, of absolute values.
  Tensor<double> K(Shape{2, 2, 3});
  const double v[12] = {1, -5, 0, 2, 1, 0.5, -3, 0, 0, 0, 2, -0.25};
  for (index_t i = 0; i < 12; ++i) K[i] = v[i];
  const auto all = analysis::kmax(K.view());
  CHECK(all == std::vector<double>{3, 5, 0.5});
  CHECK(analysis::kmax(K.view(), 0) == std::vector<double>{2, 5, 0.5});
  CHECK(analysis::kmax(K.view(), 1) == std::vector<double>{3, 2, 0.25});
  CHECK_THROWS_WITH_AS(analysis::decay_length({1, 2}, 1.5), doctest::Contains("fraction = 1.5, expected (0, 1]"),
                       Error);
  CHECK_THROWS_WITH_AS(analysis::kmax(K.view(), 2), doctest::Contains("direction 2 out of range"), Error);
}

TEST_CASE("kernel layers are found by name, classified and rebuilt exactly") {
  const index_t L = 24;
  interop::Safetensors st;
  ssm::S4D<double> s4d({.H = 3, .N = 8, .channels = 2});
  ssm::DLR<double> dlr({.H = 2, .N = 5, .channels = 1});
  ssm::ConvKernel<double> conv({.H = 2, .l_max = 32, .channels = 2});
  ParamStore<double> a, b, c;
  const Tensor<double> K_s4d = store_layer(s4d, a, st, "model.backbone.layers.1.mixer.kernel.", L, 11);
  const Tensor<double> K_dlr = store_layer(dlr, b, st, "model.backbone.layers.0.mixer.kernel.", L, 12);
  const Tensor<double> K_conv = store_layer(conv, c, st, "net.layers.2.mixer.kernel.", L, 13);
  // Optimizer moments share the parameter names; they must not be taken for layers.
  st.put<double>("optim.exp_avg.backbone.layers.1.mixer.kernel.C", TensorView<const double>(s4d.C.value));
  st.put<double>("model.backbone.layers.1.mixer.out.weight", TensorView<const double>(s4d.C.value));
  const std::string path = temp_file("longseq_kernel_analysis_test.safetensors");
  st.save(path);
  const auto loaded = interop::Safetensors::load(path);
  fs::remove(path);

  const auto layers = analysis::find_kernel_layers(loaded, path);
  REQUIRE(layers.size() == 3);
  CHECK(layers[0].layer == 0);
  CHECK(layers[0].kind == analysis::KernelKind::dlr);
  CHECK(layers[1].layer == 1);
  CHECK(layers[1].kind == analysis::KernelKind::s4d);
  CHECK(layers[1].prefix == "model.backbone.layers.1.mixer.kernel.");
  CHECK(layers[2].kind == analysis::KernelKind::conv);
  const auto sz = analysis::kernel_size(layers[1]);
  CHECK(sz.H == 3);
  CHECK(sz.N == 8);
  CHECK(sz.channels == 2);

  auto max_diff = [](const Tensor<double>& x, const Tensor<double>& y) {
    REQUIRE(x.shape() == y.shape());
    double m = 0;
    for (index_t i = 0; i < x.numel(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
    return m;
  };
  CHECK(max_diff(analysis::learned_kernel(layers[1], L), K_s4d) == 0.0);
  CHECK(max_diff(analysis::learned_kernel(layers[2], L), K_conv) == 0.0);
  const Tensor<double> Kd = analysis::learned_kernel(layers[0], L);
  CHECK(max_diff(Kd, K_dlr) == 0.0);
  // DLR against its formula K[h,l] = Re sum_n W[h,n] exp(Lambda_n l), Lambda_n = -r_n^2 + i theta_n.
  double err = 0;
  for (index_t h = 0; h < 2; ++h)
    for (index_t l = 0; l < L; ++l) {
      std::complex<double> acc = 0;
      for (index_t n = 0; n < 5; ++n) {
        const std::complex<double> lam(-dlr.Lambda_r.value[n] * dlr.Lambda_r.value[n], dlr.Lambda_theta.value[n]);
        acc += std::complex<double>(dlr.W.value(0, h, n, 0), dlr.W.value(0, h, n, 1)) * std::exp(lam * double(l));
      }
      err = std::max(err, std::abs(acc.real() - Kd(0, h, l)));
    }
  CHECK(err < 1e-12);

  // The HiPPO baseline has the layer's H and directions, and differs from the trained kernel.
  const Tensor<double> K0 = analysis::hippo_kernel(layers[1], L, 0);
  CHECK(K0.shape() == Shape{2, 3, L});
  CHECK(max_diff(K0, K_s4d) > 1e-3);
  CHECK(analysis::hippo_kernel(layers[0], L, 0).shape() == Shape{1, 2, L});

  CHECK_THROWS_WITH_AS(analysis::learned_kernel(layers[2], 40), doctest::Contains("exceeds the stored kernel's 32 taps"),
                       Error);
}

TEST_CASE("S4 and DSS layers are rebuilt exactly at the length S4's C was corrected for") {
  const index_t L = 16;
  interop::Safetensors st;
  ssm::S4<double> s4({.H = 2, .N = 6, .l_max = L, .channels = 2});
  ssm::DSS<double, ssm::DSSVariant::exp> dss({.H = 3, .N = 4, .channels = 1});
  ParamStore<double> a, b;
  const Tensor<double> K_s4 = store_layer(s4, a, st, "encoder.layers.4.mixer.kernel.", L, 21);
  const Tensor<double> K_dss = store_layer(dss, b, st, "encoder.layers.5.mixer.kernel.", L, 22);
  const auto layers = analysis::find_kernel_layers(st, "mem");
  REQUIRE(layers.size() == 2);
  CHECK(layers[0].kind == analysis::KernelKind::s4);
  CHECK(layers[0].layer == 4);
  CHECK(layers[1].kind == analysis::KernelKind::dss_exp);
  const Tensor<double> K0 = analysis::learned_kernel(layers[0], L), K1 = analysis::learned_kernel(layers[1], L);
  double e0 = 0, e1 = 0;
  for (index_t i = 0; i < K0.numel(); ++i) e0 = std::max(e0, std::abs(K0[i] - K_s4[i]));
  for (index_t i = 0; i < K1.numel(); ++i) e1 = std::max(e1, std::abs(K1[i] - K_dss[i]));
  CHECK(e0 < 1e-12);
  CHECK(e1 == 0.0);
  // The S4 baseline is a fresh S4 of the same size.
  CHECK(analysis::hippo_kernel(layers[0], L, 3).shape() == Shape{2, 2, L});
}

TEST_CASE("kernel analysis rejects tensors that are no known parameterization") {
  interop::Safetensors st;
  Tensor<double> t(Shape{4}, 1.0);
  st.put<double>("m.layers.0.mixer.kernel.mystery", t.view());
  CHECK_THROWS_WITH_AS(analysis::find_kernel_layers(st, "x.safetensors"),
                       doctest::Contains("'m.layers.0.mixer.kernel.' (mystery) match no kernel parameterization"),
                       Error);

  // An S4D layer whose C has the wrong rank.
  interop::Safetensors bad;
  bad.put<double>("k.kernel.log_dt", t.view());
  bad.put<double>("k.kernel.log_A_real", Tensor<double>(Shape{4, 2}).view());
  bad.put<double>("k.kernel.A_imag", Tensor<double>(Shape{4, 2}).view());
  bad.put<double>("k.kernel.B", Tensor<double>(Shape{4, 2, 2}).view());
  bad.put<double>("k.kernel.C", Tensor<double>(Shape{4, 2, 2}).view());
  const auto layers = analysis::find_kernel_layers(bad, "bad.safetensors");
  REQUIRE(layers.size() == 1);
  CHECK(layers[0].layer == -1);
  CHECK_THROWS_WITH_AS(analysis::learned_kernel(layers[0], 8),
                       doctest::Contains("tensor 'C' has shape (4, 2, 2), expected rank 4"), Error);
}

TEST_CASE("reference state_dicts are analyzed directly: the reference code's kernels, alone or in a model") {
  // Fixtures written from the state-spaces/s4 PyTorch code (tests/fixtures/ssm/make_reference_fixtures.py):
  // each .in file is a kernel module's state_dict, each .expected file holds its kernel k (channels, H, L).
  const std::string dir = std::string(LONGSEQ_TEST_DATA_DIR) + "/../fixtures/ssm/";
  struct Case {
    const char* name;
    analysis::KernelKind kind;
    const char* origin;
  };
  const Case cases[] = {{"s4d_kernel", analysis::KernelKind::s4d, "reference S4DKernel"},
                        {"s4d_kernel_diag", analysis::KernelKind::s4d, "reference SSMKernelDiag"},
                        {"s4_kernel", analysis::KernelKind::s4, "reference SSMKernelDPLR"},
                        {"s4_kernel_fresh", analysis::KernelKind::s4, "reference SSMKernelDPLR"},
                        {"s4_kernel_double", analysis::KernelKind::s4, "reference SSMKernelDPLR"}};
  for (const auto& c : cases) {
    CAPTURE(c.name);
    const auto in = interop::Safetensors::load(dir + c.name + ".in.safetensors");
    const auto k_ref = interop::Safetensors::load(dir + c.name + ".expected.safetensors").get<double>("k");
    const index_t L = k_ref.size(2);
    auto rel_err = [&](const Tensor<double>& K) {
      REQUIRE(K.shape() == k_ref.shape());
      double num = 0, den = 0;
      for (index_t i = 0; i < K.numel(); ++i) {
        num = std::max(num, std::abs(K[i] - k_ref[i]));
        den = std::max(den, std::abs(k_ref[i]));
      }
      return num / den;
    };
    // The kernel's own state_dict (bare names).
    const auto alone = analysis::find_kernel_layers(in, c.name, L);
    REQUIRE(alone.size() == 1);
    CHECK(alone[0].kind == c.kind);
    CHECK(alone[0].origin == c.origin);
    CHECK(rel_err(analysis::learned_kernel(alone[0], L)) < 1e-9);
    // The same tensors inside a model's state_dict, next to a tensor that is not the kernel's.
    interop::Safetensors model;
    for (auto rec : in.tensors) {
      rec.name = "model.layers.2.layer.kernel." + rec.name;
      model.tensors.push_back(std::move(rec));
    }
    Tensor<double> D(Shape{k_ref.size(1)}, 1.0);
    model.put<double>("model.layers.2.layer.D", D.view());
    const auto inside = analysis::find_kernel_layers(model, c.name, L);
    REQUIRE(inside.size() == 1);
    CHECK(inside[0].layer == 2);
    CHECK(inside[0].prefix == "model.layers.2.layer.kernel.");
    CHECK(rel_err(analysis::learned_kernel(inside[0], L)) < 1e-9);
    // The HiPPO baseline of the same size exists for it.
    CHECK(analysis::hippo_kernel(inside[0], L, 1).shape() == k_ref.shape());
  }
}
