// HiPPO matrices, their NPLR form and the Hermitian Jacobi eigen-solver.
#include <doctest/doctest.h>

#include <complex>
#include <longseq/core/rng.hpp>
#include <longseq/ssm/hippo.hpp>

using namespace longseq;
using namespace longseq::ssm;
using C = std::complex<double>;

TEST_CASE("hermitian_eigen diagonalizes a random Hermitian matrix") {
  index_t n = 7;
  std::vector<C> H(static_cast<std::size_t>(n * n));
  Rng r(3);
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j <= i; ++j) {
      C v = i == j ? C(r.normal(), 0) : C(r.normal(), r.normal());
      H[i * n + j] = v;
      H[j * n + i] = std::conj(v);
    }
  auto e = hermitian_eigen(H, n);
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < n; ++j) {
      C rec = 0, id = 0;
      for (index_t k = 0; k < n; ++k) {
        rec += e.vectors[i * n + k] * e.values[k] * std::conj(e.vectors[j * n + k]);
        id += std::conj(e.vectors[k * n + i]) * e.vectors[k * n + j];
      }
      CHECK(std::abs(rec - H[i * n + j]) < 1e-12);
      CHECK(std::abs(id - (i == j ? 1.0 : 0.0)) < 1e-12);
    }
  H[1] += C(0.5, 0);
  CHECK_THROWS_WITH_AS(hermitian_eigen(H, n), doctest::Contains("not Hermitian at (0, 1)"), Error);
}

TEST_CASE("HiPPO LegS matrices follow the closed form") {
  auto t = hippo::transition(hippo::Measure::legs, 4);
  CHECK(t.A[0] == doctest::Approx(-1));
  CHECK(t.A[1 * 4 + 0] == doctest::Approx(-std::sqrt(3.0)));
  CHECK(t.A[3 * 4 + 1] == doctest::Approx(-std::sqrt(7.0 * 3.0)));
  CHECK(t.A[1 * 4 + 2] == 0);
  CHECK(t.A[2 * 4 + 2] == doctest::Approx(-3));
  CHECK(t.B[2] == doctest::Approx(std::sqrt(5.0)));
}

TEST_CASE("NPLR form reconstructs A and B for LegS, LegT and FouT") {
  for (auto m : {hippo::Measure::legs, hippo::Measure::legt, hippo::Measure::fout})
    for (index_t N : {4, 8, 16}) {
      CAPTURE(hippo::measure_name(m));
      CAPTURE(N);
      auto t = hippo::transition(m, N);
      auto rc = hippo::rank_correction(m, N);
      const auto& d = hippo::nplr(m, N);
      index_t h = d.half;
      REQUIRE(h == N / 2);
      double err = 0;
      for (index_t i = 0; i < N; ++i) {
        C b = 0;
        for (index_t k = 0; k < h; ++k) b += d.V[i * h + k] * d.B[k];
        err = std::max(err, std::abs(2 * b.real() - t.B[i]));
        for (index_t j = 0; j < N; ++j) {
          // A = V (diag(w) - P P^*) V^* over all N eigenvectors = 2 Re(V_h diag(w) V_h^*) - P^T P.
          C s = 0;
          for (index_t k = 0; k < h; ++k) s += d.V[i * h + k] * d.w[k] * std::conj(d.V[j * h + k]);
          double a = 2 * s.real();
          for (index_t r = 0; r < rc.rank; ++r) a -= rc.P[r * N + i] * rc.P[r * N + j];
          err = std::max(err, std::abs(a - t.A[i * N + j]));
        }
        for (index_t r = 0; r < rc.rank; ++r) {
          C p = 0;
          for (index_t k = 0; k < h; ++k) p += d.V[i * h + k] * d.P[r * h + k];
          err = std::max(err, std::abs(2 * p.real() - rc.P[r * N + i]));
        }
      }
      CHECK(err < 1e-10);
      for (index_t k = 0; k < h; ++k) CHECK(d.w[k].imag() <= 1e-12);
    }
  const auto& legs = hippo::nplr(hippo::Measure::legs, 8);
  for (auto w : legs.w) CHECK(w.real() == doctest::Approx(-0.5));
  CHECK_THROWS_WITH_AS(hippo::nplr(hippo::Measure::legs, 5), doctest::Contains("expected an even N >= 2"), Error);
}
