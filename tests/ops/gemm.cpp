#include <doctest/doctest.h>

#include <longseq/ops/gemm.hpp>

#include "ops/op_testing.hpp"

using namespace longseq;
using namespace longseq::ops;
using optest::random_tensor;

namespace {

// Naive triple loop over row-major storage with the same argument meaning as gemm.
void naive_gemm(Trans ta, Trans tb, index_t m, index_t n, index_t k, double alpha, const double* a, index_t lda,
                const double* b, index_t ldb, double beta, double* c, index_t ldc) {
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < n; ++j) {
      double s = 0;
      for (index_t p = 0; p < k; ++p) {
        double av = ta == Trans::N ? a[i * lda + p] : a[p * lda + i];
        double bv = tb == Trans::N ? b[p * ldb + j] : b[j * ldb + p];
        s += av * bv;
      }
      c[i * ldc + j] = alpha * s + (beta == 0 ? 0.0 : beta * c[i * ldc + j]);
    }
}

template <class T>
double run_case(Trans ta, Trans tb, index_t m, index_t n, index_t k, index_t batch, index_t pad, bool share_b,
                double alpha, double beta) {
  HostContext ctx;
  index_t lda = (ta == Trans::N ? k : m) + pad, ldb = (tb == Trans::N ? n : k) + pad, ldc = n + pad;
  index_t rows_a = ta == Trans::N ? m : k, rows_b = tb == Trans::N ? k : n;
  index_t sa = rows_a * lda + 3, sb = share_b ? 0 : rows_b * ldb + 1, sc = m * ldc + 2;
  auto A = random_tensor<double>(Shape{batch * sa}, 1), B = random_tensor<double>(Shape{batch * rows_b * ldb + batch}, 2);
  auto C = random_tensor<double>(Shape{batch * sc}, 3);
  auto ref = optest::cast<double>(C);
  for (index_t i = 0; i < batch; ++i)
    naive_gemm(ta, tb, m, n, k, alpha, A.data() + i * sa, lda, B.data() + i * sb, ldb, beta, ref.data() + i * sc,
               ldc);
  auto At = optest::cast<T>(A), Bt = optest::cast<T>(B), Ct = optest::cast<T>(C);
  gemm<T>(ctx, ta, tb, m, n, k, T(alpha), At.data(), lda, Bt.data(), ldb, T(beta), Ct.data(), ldc, batch, sa, sb,
          sc);
  return optest::rel_err(Ct, ref, Ct.numel());
}

}  // namespace

TEST_CASE("gemm matches a naive triple loop: every transpose pair, batched, strided, padded") {
  for (Trans ta : {Trans::N, Trans::T})
    for (Trans tb : {Trans::N, Trans::T}) {
      CAPTURE(int(ta));
      CAPTURE(int(tb));
      CHECK(run_case<double>(ta, tb, 5, 7, 3, 3, 2, false, 1.5, 0.0) < 1e-13);
      CHECK(run_case<double>(ta, tb, 4, 1, 6, 2, 0, true, -0.5, 0.75) < 1e-13);
      CHECK(run_case<float>(ta, tb, 9, 4, 11, 2, 1, false, 1.0, 1.0) < 1e-5);
      CHECK(run_case<half>(ta, tb, 3, 5, 4, 2, 1, false, 1.0, 0.5) < 2e-2);
      CHECK(run_case<bf16>(ta, tb, 3, 5, 4, 2, 1, true, 1.0, 0.0) < 2e-2);
    }
  CHECK(run_case<double>(Trans::N, Trans::N, 70, 65, 80, 2, 0, false, 1.0, 0.0) < 1e-12);  // BLAS-threaded path
}

TEST_CASE("gemm with k = 0 scales C by beta and with beta = 0 ignores NaN in C") {
  HostContext ctx;
  std::vector<double> a(1), b(1), c = {1.0, 2.0, 3.0, 4.0};
  gemm<double>(ctx, Trans::N, Trans::N, 2, 2, 0, 1.0, a.data(), 1, b.data(), 2, 0.5, c.data(), 2);
  CHECK(c == std::vector<double>{0.5, 1.0, 1.5, 2.0});
  std::vector<double> a2 = {1, 2}, b2 = {3, 4}, c2 = {std::nan(""), std::nan("")};
  gemm<double>(ctx, Trans::N, Trans::N, 1, 2, 1, 1.0, a2.data(), 1, b2.data(), 2, 0.0, c2.data(), 2);
  CHECK(c2[0] == 3.0);
  CHECK(c2[1] == 4.0);
}

TEST_CASE("gemm rejects bad sizes and leading dimensions with readable messages") {
  HostContext ctx;
  std::vector<float> a(64), b(64), c(64);
  CHECK_THROWS_WITH_AS(gemm<float>(ctx, Trans::N, Trans::N, 2, 3, 4, 1.f, a.data(), 3, b.data(), 3, 0.f, c.data(), 3),
                       doctest::Contains("leading dimension lda=3 of A (m x k = 2 x 4) must be >= 4"), Error);
  CHECK_THROWS_WITH_AS(gemm<float>(ctx, Trans::N, Trans::T, 2, 3, 4, 1.f, a.data(), 4, b.data(), 3, 0.f, c.data(), 3),
                       doctest::Contains("ldb=3 of B (n x k = 3 x 4) must be >= 4"), Error);
  CHECK_THROWS_WITH_AS(gemm<float>(ctx, Trans::N, Trans::N, 2, 3, 4, 1.f, a.data(), 4, b.data(), 3, 0.f, c.data(), 2),
                       doctest::Contains("ldc=2 of C (m x n = 2 x 3) must be >= 3"), Error);
  CHECK_THROWS_WITH_AS(gemm<float>(ctx, Trans::N, Trans::N, -1, 3, 4, 1.f, a.data(), 4, b.data(), 3, 0.f, c.data(), 3),
                       doctest::Contains("m=-1"), Error);
  CHECK_THROWS_WITH_AS(gemm<float>(ctx, Trans::N, Trans::N, 2, 3, 4, 1.f, a.data(), 4, b.data(), 3, 0.f, c.data(), 3,
                                   2, 8, 12, 0),
                       doctest::Contains("batch stride of C 0"), Error);
  CHECK_THROWS_WITH_AS(gemm<float>(ctx, Trans::N, Trans::N, 2, 3, 4, 1.f, nullptr, 4, b.data(), 3, 0.f, c.data(), 3),
                       doctest::Contains("A is null"), Error);
}

TEST_CASE("matmul over views: batched, shared right operand, column slices") {
  HostContext ctx;
  auto a = random_tensor<double>(Shape{2, 3, 4, 5}, 10), b = random_tensor<double>(Shape{2, 3, 5, 6}, 11);
  Tensor<double> c(Shape{2, 3, 4, 6});
  matmul<double>(ctx, a, b, c);
  for (index_t i = 0; i < 2; ++i)
    for (index_t j = 0; j < 3; ++j)
      for (index_t r = 0; r < 4; ++r)
        for (index_t q = 0; q < 6; ++q) {
          double s = 0;
          for (index_t p = 0; p < 5; ++p) s += a(i, j, r, p) * b(i, j, p, q);
          CHECK(c(i, j, r, q) == doctest::Approx(s).epsilon(1e-12));
        }
  // x (B, L, in) @ W^T with W (out, in) shared across the batch, as a linear layer does.
  auto x = random_tensor<double>(Shape{3, 4, 5}, 12), w = random_tensor<double>(Shape{6, 5}, 13);
  Tensor<double> y(Shape{3, 4, 6});
  matmul<double>(ctx, x, w, y, Trans::N, Trans::T);
  double s = 0;
  for (index_t p = 0; p < 5; ++p) s += x(2, 3, p) * w(5, p);
  CHECK(y(2, 3, 5) == doctest::Approx(s).epsilon(1e-12));
  // A view with a row stride larger than its width (columns 1..3 of a 4 x 6 matrix).
  auto big = random_tensor<double>(Shape{4, 6}, 14);
  TensorView<const double> cols(big.data() + 1, Shape{4, 3}, Shape{6, 1});
  auto m = random_tensor<double>(Shape{3, 2}, 15);
  Tensor<double> out(Shape{4, 2});
  matmul<double>(ctx, cols, m, out);
  CHECK(out(3, 1) == doctest::Approx(big(3, 1) * m(0, 1) + big(3, 2) * m(1, 1) + big(3, 3) * m(2, 1)));

  CHECK_THROWS_WITH_AS(matmul<double>(ctx, a, w, c), doctest::Contains("inner sizes differ"), Error);
  Tensor<double> wrong(Shape{2, 3, 4, 7});
  CHECK_THROWS_WITH_AS(matmul<double>(ctx, a, b, wrong),
                       doctest::Contains("tensor 'c' has shape (2, 3, 4, 7), expected (..., 4, 6)"), Error);
  auto a1 = random_tensor<double>(Shape{5}, 1);
  CHECK_THROWS_WITH_AS(matmul<double>(ctx, a1, b, c), doctest::Contains("tensor 'a' has shape (5), expected rank >= 2"),
                       Error);
}

TEST_CASE("matmul_backward matches finite differences for every transpose pair") {
  HostContext ctx;
  for (Trans ta : {Trans::N, Trans::T})
    for (Trans tb : {Trans::N, Trans::T})
      for (bool shared : {false, true}) {
        CAPTURE(int(ta));
        CAPTURE(int(tb));
        CAPTURE(shared);
        index_t m = 3, n = 4, k = 2, B = 2;
        Shape sa = ta == Trans::N ? Shape{B, m, k} : Shape{B, k, m};
        Shape sb = tb == Trans::N ? Shape{k, n} : Shape{n, k};
        if (!shared) sb = tb == Trans::N ? Shape{B, k, n} : Shape{B, n, k};
        auto a = random_tensor<double>(sa, 20), b = random_tensor<double>(sb, 21);
        auto w = random_tensor<double>(Shape{B, m, n}, 22);
        Tensor<double> c(Shape{B, m, n});
        double alpha = 0.7;
        auto loss = [&] {
          matmul<double>(ctx, a, b, c, ta, tb, alpha);
          return optest::dot(w, c);
        };
        auto na = optest::numeric_grad(a, loss), nb = optest::numeric_grad(b, loss);
        Tensor<double> da(sa, 5.0), db(sb, 1.0);
        matmul_backward<double>(ctx, a, b, w, da, db, ta, tb, alpha, GradMode::write, GradMode::accumulate);
        CHECK(optest::rel_err(da, na) < 1e-8);
        for (index_t i = 0; i < db.numel(); ++i) db[i] -= 1.0;  // db was accumulated onto ones
        CHECK(optest::rel_err(db, nb) < 1e-8);
      }
}

TEST_CASE("gemm spreads a product of many rows over the threads in fixed blocks: right, and the same bits for "
          "any thread count") {
#if defined(OPENBLAS_CONFIG_H)
  // The blocks are used when BLAS runs single-threaded (as the trainers run it).
  const int blas_threads = openblas_get_num_threads();
  openblas_set_num_threads(1);
#endif
  // Many rows (three row blocks, the last one short), and few rows with a long reduction (three depth blocks).
  struct Size {
    index_t m, n, k;
  };
  for (Size z : {Size{2 * ops::detail::gemm_block_rows + 37, 24, 19}, Size{24, 16, 2 * ops::detail::gemm_block_depth + 100}})
    for (Trans ta : {Trans::N, Trans::T})
      for (Trans tb : {Trans::N, Trans::T}) {
        const index_t m = z.m, n = z.n, k = z.k;
        CAPTURE(m);
        CAPTURE(int(ta));
        CAPTURE(int(tb));
        CHECK(run_case<double>(ta, tb, m, n, k, 2, 3, false, 1.25, 0.5) < 1e-13);
        CHECK(run_case<float>(ta, tb, m, n, k, 1, 0, false, 1.0, 0.0) < 1e-5);
        index_t lda = ta == Trans::N ? k : m, ldb = tb == Trans::N ? n : k;
        auto A = random_tensor<float>(Shape{m * k}, 4), B = random_tensor<float>(Shape{k * n}, 5);
        std::vector<float> c1(std::size_t(m * n), 1.0f), c3(std::size_t(m * n), 1.0f);
        HostContext one, three;
        one.threads = 1;
        three.threads = 3;
        gemm<float>(one, ta, tb, m, n, k, 0.5f, A.data(), lda, B.data(), ldb, 2.0f, c1.data(), n);
        gemm<float>(three, ta, tb, m, n, k, 0.5f, A.data(), lda, B.data(), ldb, 2.0f, c3.data(), n);
        CHECK(c1 == c3);
      }
#if defined(OPENBLAS_CONFIG_H)
  openblas_set_num_threads(blas_threads);
#endif
}
