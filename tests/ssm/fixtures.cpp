// Kernels compared with tests/ssm/fixtures/kernels.txt, written by fixtures/make_fixtures.py (numpy).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <longseq/ssm/dlr.hpp>
#include <longseq/ssm/dss.hpp>
#include <longseq/ssm/s4.hpp>
#include <longseq/ssm/s4d.hpp>
#include <map>
#include <sstream>
#include <string>

using namespace longseq;
using namespace longseq::ssm;

namespace {

const std::map<std::string, std::vector<double>>& fixtures() {
  static const auto data = [] {
    std::map<std::string, std::vector<double>> m;
    auto path = std::filesystem::path(__FILE__).parent_path() / "fixtures" / "kernels.txt";
    std::ifstream in(path);
    REQUIRE_MESSAGE(in.good(), "cannot open ", path.string());
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream is(line);
      std::string name;
      std::size_t n = 0;
      is >> name >> n;
      std::vector<double> v(n);
      for (auto& x : v) is >> x;
      m[name] = v;
    }
    return m;
  }();
  return data;
}

const std::vector<double>& fx(const std::string& name) {
  auto it = fixtures().find(name);
  REQUIRE_MESSAGE(it != fixtures().end(), "fixture '", name, "' missing");
  return it->second;
}

void load(Param<double>& p, const std::string& name) {
  const auto& v = fx(name);
  REQUIRE(index_t(v.size()) == p.value.numel());
  std::copy(v.begin(), v.end(), p.value.data);
}

template <class K>
double max_kernel_error(K& k, index_t L, const std::string& name) {
  HostContext ctx;
  Tensor<double> out(Shape{k.channels(), k.width(), L});
  typename K::Saved s;
  k.kernel_forward(ctx, L, out.view(), s);
  const auto& ref = fx(name);
  REQUIRE(index_t(ref.size()) == out.numel());
  double err = 0, mx = 0;
  for (index_t i = 0; i < out.numel(); ++i) {
    err = std::max(err, std::abs(out[i] - ref[std::size_t(i)]));
    mx = std::max(mx, std::abs(ref[std::size_t(i)]));
  }
  CHECK(mx > 1e-3);
  return err / mx;
}

}  // namespace

TEST_CASE("fixture: HiPPO-LegS matrices and NPLR invariants") {
  auto t = hippo::transition(hippo::Measure::legs, 8);
  const auto& A = fx("hippo_legs_A");
  for (std::size_t i = 0; i < A.size(); ++i) CHECK(t.A[i] == doctest::Approx(A[i]).epsilon(1e-14));
  const auto& d = hippo::nplr(hippo::Measure::legs, 8);
  const auto &w = fx("hippo_legs_w"), &pb = fx("hippo_legs_PconjB"), &p2 = fx("hippo_legs_absP2");
  for (index_t n = 0; n < 4; ++n) {
    CHECK(d.w[n].real() == doctest::Approx(w[2 * n]).epsilon(1e-12));
    CHECK(d.w[n].imag() == doctest::Approx(w[2 * n + 1]).epsilon(1e-12));
    std::complex<double> v = d.P[n] * std::conj(d.B[n]);
    CHECK(v.real() == doctest::Approx(pb[2 * n]).epsilon(1e-10));
    CHECK(std::abs(v.imag() - pb[2 * n + 1]) < 1e-10);
    CHECK(std::norm(d.P[n]) == doctest::Approx(p2[n]).epsilon(1e-10));
  }
}

TEST_CASE("fixture: S4D (ZOH, bilinear), DLR, DSS (exp, softmax) and S4 kernels") {
  const index_t L = 16;
  {
    S4D<double, ZOH> z({.H = 2, .N = 4, .n_ssm = 1});
    S4D<double, Bilinear> b({.H = 2, .N = 4, .n_ssm = 1});
    ParamStore<double> s1, s2;
    s1.bind(z);
    s2.bind(b);
    load(z.log_dt, "s4d_log_dt");
    load(z.log_A_real, "s4d_log_A_real");
    load(z.A_imag, "s4d_A_imag");
    load(z.B, "s4d_B");
    load(z.C, "s4d_C");
    load(b.log_dt, "s4d_log_dt");
    load(b.log_A_real, "s4d_log_A_real");
    load(b.A_imag, "s4d_A_imag");
    load(b.B, "s4d_B");
    load(b.C, "s4d_C");
    CHECK(max_kernel_error(z, L, "s4d_zoh_K") < 1e-12);
    CHECK(max_kernel_error(b, L, "s4d_bilinear_K") < 1e-12);
  }
  {
    DLR<double> k({.H = 2, .N = 3});
    ParamStore<double> s;
    s.bind(k);
    load(k.Lambda_r, "dlr_Lambda_r");
    load(k.Lambda_theta, "dlr_Lambda_theta");
    load(k.W, "dlr_W");
    CHECK(max_kernel_error(k, L, "dlr_K") < 1e-12);
  }
  {
    DSS<double, DSSVariant::exp> e({.H = 2, .N = 3});
    DSS<double, DSSVariant::softmax> m({.H = 2, .N = 3});
    ParamStore<double> s1, s2;
    s1.bind(e);
    s2.bind(m);
    load(e.log_dt, "dss_log_dt");
    load(e.Lambda_re, "dss_Lambda_re");
    load(e.Lambda_im, "dss_Lambda_im");
    load(e.W, "dss_W");
    load(m.log_dt, "dss_log_dt");
    load(m.Lambda_re, "dss_Lambda_re");
    load(m.Lambda_im, "dss_Lambda_im");
    load(m.W, "dss_W");
    CHECK(max_kernel_error(e, L, "dss_exp_K") < 1e-12);
    CHECK(max_kernel_error(m, L, "dss_softmax_K") < 1e-12);
  }
  {
    S4<double> k({.H = 1, .N = 4, .l_max = L});
    ParamStore<double> s;
    s.bind(k);
    load(k.log_dt, "s4_log_dt");
    load(k.log_A_real, "s4_log_A_real");
    load(k.A_imag, "s4_A_imag");
    load(k.P, "s4_P");
    load(k.B, "s4_B");
    load(k.C, "s4_Ctilde");
    CHECK(max_kernel_error(k, L, "s4_K") < 1e-11);
  }
}
