// Batched strided row-major GEMM on the host through CBLAS, and matmul over tensor views with its backward.
#pragma once
#include <cblas.h>

#include <algorithm>
#include <concepts>
#include <type_traits>
#include <vector>

#include "common.hpp"

namespace longseq::ops {

enum class Trans : bool { N, T };

inline constexpr Trans flip(Trans t) { return t == Trans::N ? Trans::T : Trans::N; }

namespace detail {

inline CBLAS_TRANSPOSE cblas_trans(Trans t) { return t == Trans::N ? CblasNoTrans : CblasTrans; }

inline void check_gemm_args(Trans ta, Trans tb, index_t m, index_t n, index_t k, const void* a, index_t lda,
                            const void* b, index_t ldb, const void* c, index_t ldc, index_t batch,
                            index_t stride_a, index_t stride_b, index_t stride_c) {
  LONGSEQ_CHECK(m >= 0 && n >= 0 && k >= 0, "gemm: sizes m=", m, ", n=", n, ", k=", k,
                " must be non-negative");
  LONGSEQ_CHECK(batch >= 0, "gemm: batch ", batch, " must be non-negative");
  // Row-major: op(A) is m x k, so A is stored m x k (N) or k x m (T); its rows have lda >= columns.
  index_t a_cols = ta == Trans::N ? k : m, b_cols = tb == Trans::N ? n : k;
  LONGSEQ_CHECK(lda >= std::max<index_t>(1, a_cols), "gemm: leading dimension lda=", lda, " of A (",
                ta == Trans::N ? "m x k = " : "k x m = ", ta == Trans::N ? m : k, " x ", a_cols,
                ") must be >= ", std::max<index_t>(1, a_cols));
  LONGSEQ_CHECK(ldb >= std::max<index_t>(1, b_cols), "gemm: leading dimension ldb=", ldb, " of B (",
                tb == Trans::N ? "k x n = " : "n x k = ", tb == Trans::N ? k : n, " x ", b_cols,
                ") must be >= ", std::max<index_t>(1, b_cols));
  LONGSEQ_CHECK(ldc >= std::max<index_t>(1, n), "gemm: leading dimension ldc=", ldc, " of C (m x n = ", m,
                " x ", n, ") must be >= ", std::max<index_t>(1, n));
  LONGSEQ_CHECK(stride_a >= 0 && stride_b >= 0 && stride_c >= 0, "gemm: batch strides (", stride_a, ", ",
                stride_b, ", ", stride_c, ") must be non-negative");
  LONGSEQ_CHECK(batch <= 1 || m * n == 0 || stride_c >= (m - 1) * ldc + n, "gemm: batch stride of C ",
                stride_c, " makes the ", batch, " outputs of ", m, " x ", n, " (ldc ", ldc,
                ") overlap; it must be >= ", (m - 1) * ldc + n);
  if (batch > 0 && m * n > 0) LONGSEQ_CHECK(c != nullptr, "gemm: C is null for an output of ", m, " x ", n);
  if (batch > 0 && m * n * k > 0)
    LONGSEQ_CHECK(a != nullptr && b != nullptr, "gemm: ", a == nullptr ? "A" : "B", " is null for m=", m,
                  ", n=", n, ", k=", k);
  LONGSEQ_CHECK(m <= index_t(1) << 31 && n <= index_t(1) << 31 && k <= index_t(1) << 31 &&
                    lda < index_t(1) << 31 && ldb < index_t(1) << 31 && ldc < index_t(1) << 31,
                "gemm: sizes exceed the 32-bit BLAS interface");
}

inline void cblas_gemm(Trans ta, Trans tb, index_t m, index_t n, index_t k, float alpha, const float* a,
                       index_t lda, const float* b, index_t ldb, float beta, float* c, index_t ldc) {
  cblas_sgemm(CblasRowMajor, cblas_trans(ta), cblas_trans(tb), int(m), int(n), int(k), alpha, a, int(lda), b,
              int(ldb), beta, c, int(ldc));
}
inline void cblas_gemm(Trans ta, Trans tb, index_t m, index_t n, index_t k, double alpha, const double* a,
                       index_t lda, const double* b, index_t ldb, double beta, double* c, index_t ldc) {
  cblas_dgemm(CblasRowMajor, cblas_trans(ta), cblas_trans(tb), int(m), int(n), int(k), alpha, a, int(lda), b,
              int(ldb), beta, c, int(ldc));
}

// Rows of C per block when one large product is spread over the OpenMP threads: large enough that BLAS's
// packing of B per block stays a few percent of the block's work.
inline constexpr index_t gemm_block_rows = 1024;
// Depth (k) per block of a product with few rows and a long reduction (a weight gradient summed over the
// B*L rows of a batch): each block's product goes to scratch and the blocks are added in order.
inline constexpr index_t gemm_block_depth = 4096;

// Whether BLAS threads a product itself (OpenBLAS built with threads and not told to use one).
inline bool blas_threads_itself() {
#if defined(OPENBLAS_CONFIG_H)
  return openblas_get_num_threads() > 1;
#else
  return false;
#endif
}
inline bool in_parallel_region() {
#if defined(_OPENMP)
  return omp_in_parallel() != 0;
#else
  return false;
#endif
}

// One product spread over the context's threads when BLAS runs single-threaded (as the trainers and the
// benchmarks run it, inside the library's OpenMP loops): many rows of C are cut into blocks of
// gemm_block_rows (a projection of (B*L, H) rows), a long reduction with a small C into blocks of
// gemm_block_depth summed in a fixed order (a weight gradient). The blocks do not depend on the number of
// threads, so neither do the results.
template <class T>
void cblas_gemm_blocked(Context<device::host>& ctx, Trans ta, Trans tb, index_t m, index_t n, index_t k, T alpha,
                        const T* a, index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc) {
  const index_t row_blocks = m >= 2 * gemm_block_rows ? (m + gemm_block_rows - 1) / gemm_block_rows : 1;
  const index_t depth_blocks =
      row_blocks == 1 && k >= 2 * gemm_block_depth && m * n <= (index_t(1) << 20) && ctx.arena.mark() == 0
          ? (k + gemm_block_depth - 1) / gemm_block_depth
          : 1;
  const bool outer = !in_parallel_region();
  if ((row_blocks == 1 && depth_blocks == 1) || blas_threads_itself())
    return cblas_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  if (row_blocks > 1) {
    const int nt = outer ? int(std::min<index_t>(ctx.threads, row_blocks)) : 1;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (index_t i = 0; i < row_blocks; ++i) {
      const index_t r0 = i * gemm_block_rows, rows = std::min(gemm_block_rows, m - r0);
      cblas_gemm(ta, tb, rows, n, k, alpha, ta == Trans::N ? a + r0 * lda : a + r0, lda, b, ldb, beta,
                 c + r0 * ldc, ldc);
    }
    return;
  }
  using A = Arena<device::host>;
  const std::size_t per = A::bytes_for<T>(std::size_t(m * n)) / sizeof(T);
  auto scope = ctx.arena.scope(std::size_t(depth_blocks) * per * sizeof(T));
  T* part = scope.template take<T>(std::size_t(depth_blocks) * per);
  const int nt = outer ? int(std::min<index_t>(ctx.threads, depth_blocks)) : 1;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (index_t i = 0; i < depth_blocks; ++i) {
    const index_t p0 = i * gemm_block_depth, depth = std::min(gemm_block_depth, k - p0);
    cblas_gemm(ta, tb, m, n, depth, T(1), ta == Trans::N ? a + p0 : a + p0 * lda, lda,
               tb == Trans::N ? b + p0 * ldb : b + p0, ldb, T(0), part + std::size_t(i) * per, n);
  }
  for (index_t r = 0; r < m; ++r)
    for (index_t j = 0; j < n; ++j) {
      T sum = part[r * n + j];
      for (index_t i = 1; i < depth_blocks; ++i) sum += part[std::size_t(i) * per + std::size_t(r * n + j)];
      T& x = c[r * ldc + j];
      x = beta == T(0) ? alpha * sum : alpha * sum + beta * x;
    }
}

// Copies a rows x cols row-major block with leading dimension ld into a packed float buffer and back.
template <class T>
void widen(const T* src, index_t rows, index_t cols, index_t ld, float* dst) {
  for (index_t r = 0; r < rows; ++r)
    for (index_t j = 0; j < cols; ++j) dst[r * cols + j] = float(src[r * ld + j]);
}

}  // namespace detail

// Row-major batched strided GEMM: C[i] = alpha*op(A[i])*op(B[i]) + beta*C[i] for i < batch, where
// X[i] starts at x + i*stride_x (a stride of 0 shares one matrix across the batch; C's may not be 0).
// float/double go straight to CBLAS; half/bf16 are widened to float, multiplied and rounded back.
// With beta == 0, C is not read (NaNs in it do not propagate), as in BLAS.
template <class T>
void gemm(Context<device::host>& ctx, Trans ta, Trans tb, index_t m, index_t n, index_t k, T alpha, const T* a,
          index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc, index_t batch = 1,
          index_t stride_a = 0, index_t stride_b = 0, index_t stride_c = 0) {
  static_assert(Real<T>, "gemm: T must be float, double, half or bf16");
  detail::check_gemm_args(ta, tb, m, n, k, a, lda, b, ldb, c, ldc, batch, stride_a, stride_b, stride_c);
  if (batch == 0 || m == 0 || n == 0) return;
  if (k == 0) {  // an empty product: C = beta * C, without reading C when beta is 0
    for (index_t i = 0; i < batch; ++i)
      for (index_t r = 0; r < m; ++r)
        for (index_t j = 0; j < n; ++j) {
          T& x = c[i * stride_c + r * ldc + j];
          x = float(beta) == 0.0f ? T(0) : T(detail::acc<T>(beta) * detail::acc<T>(x));
        }
    return;
  }
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    // Small products run one per OpenMP thread (BLAS would use one thread for each anyway); large ones
    // run in sequence, each spread over the threads in blocks (or threaded by BLAS itself).
    bool small = m * n * std::max<index_t>(k, 1) <= 32 * 32 * 32;
    if (small && batch > 1 && ctx.threads > 1) {
#pragma omp parallel for num_threads(ctx.threads) schedule(static)
      for (index_t i = 0; i < batch; ++i)
        detail::cblas_gemm(ta, tb, m, n, k, alpha, a + i * stride_a, lda, b + i * stride_b, ldb, beta,
                           c + i * stride_c, ldc);
    } else {
      for (index_t i = 0; i < batch; ++i)
        detail::cblas_gemm_blocked(ctx, ta, tb, m, n, k, alpha, a + i * stride_a, lda, b + i * stride_b, ldb, beta,
                                c + i * stride_c, ldc);
    }
  } else {
    index_t ar = ta == Trans::N ? m : k, ac = ta == Trans::N ? k : m;
    index_t br = tb == Trans::N ? k : n, bc = tb == Trans::N ? n : k;
    // The float copies of one product come from the context's arena (reused by every later call).
    using A = Arena<device::host>;
    const auto na = std::size_t(ar * ac), nb = std::size_t(br * bc), nc = std::size_t(m * n);
    auto scope = ctx.arena.scope(A::bytes_for<float>(na) + A::bytes_for<float>(nb) + A::bytes_for<float>(nc));
    float *fa = scope.take<float>(na), *fb = scope.take<float>(nb), *fc = scope.take<float>(nc);
    float fal = float(alpha), fbe = float(beta);
    for (index_t i = 0; i < batch; ++i) {
      detail::widen(a + i * stride_a, ar, ac, lda, fa);
      detail::widen(b + i * stride_b, br, bc, ldb, fb);
      T* ci = c + i * stride_c;
      if (fbe != 0.0f) detail::widen(ci, m, n, ldc, fc);
      detail::cblas_gemm(ta, tb, m, n, k, fal, fa, std::max<index_t>(ac, 1), fb, std::max<index_t>(bc, 1), fbe, fc,
                         n);
      for (index_t r = 0; r < m; ++r)
        for (index_t j = 0; j < n; ++j) ci[r * ldc + j] = T(fc[r * n + j]);
    }
  }
}

namespace detail {

// A view seen as a batch of matrices: batch count, the stride between matrices, rows, cols, ld.
struct MatrixBatch {
  index_t batch = 1, stride = 0, rows = 0, cols = 0, ld = 0;
};

template <class T>
MatrixBatch as_matrix_batch(const TensorView<T>& t, std::string_view name) {
  LONGSEQ_CHECK(t.rank() >= 2, "matmul: tensor '", name, "' has shape ", t.shape,
                ", expected rank >= 2 (..., rows, cols)");
  MatrixBatch mb;
  int r = t.rank();
  mb.rows = t.shape[r - 2];
  mb.cols = t.shape[r - 1];
  LONGSEQ_CHECK(t.strides[r - 1] == 1 || mb.cols <= 1, "matmul: tensor '", name, "' with shape ", t.shape,
                " and strides ", t.strides, " must have a unit stride in its last dimension");
  mb.ld = mb.rows <= 1 ? std::max<index_t>(mb.cols, 1) : t.strides[r - 2];
  LONGSEQ_CHECK(mb.ld >= mb.cols, "matmul: tensor '", name, "' has row stride ", mb.ld, " < ", mb.cols,
                " columns");
  // The leading dimensions must collapse into one evenly strided batch dimension.
  mb.batch = 1;
  for (int i = 0; i < r - 2; ++i) mb.batch *= t.shape[i];
  index_t expect = -1;
  for (int i = r - 3; i >= 0; --i) {
    if (t.shape[i] == 1) continue;
    if (expect < 0) {
      mb.stride = t.strides[i];
    } else {
      LONGSEQ_CHECK(t.strides[i] == expect, "matmul: the batch dimensions of tensor '", name, "' (shape ",
                    t.shape, ", strides ", t.strides, ") cannot be merged into one strided batch");
    }
    expect = t.strides[i] * t.shape[i];
  }
  return mb;
}

}  // namespace detail

// c = alpha * op(a) @ op(b) + beta * c over tensor views (..., rows, cols). a and c share their batch
// dimensions; b either has the same batch count or is a single matrix (rank 2) shared by all.
// Each view needs a unit stride along its last axis and batch dimensions that merge into one stride.
template <class T>
void matmul(Context<device::host>& ctx, TensorView<const T> a, TensorView<const T> b, TensorView<T> c,
            Trans ta = Trans::N, Trans tb = Trans::N, T alpha = T(1), T beta = T(0)) {
  auto A = detail::as_matrix_batch(a, "a"), B = detail::as_matrix_batch(b, "b");
  auto C = detail::as_matrix_batch(c, "c");
  index_t m = ta == Trans::N ? A.rows : A.cols, k = ta == Trans::N ? A.cols : A.rows;
  index_t kb = tb == Trans::N ? B.rows : B.cols, n = tb == Trans::N ? B.cols : B.rows;
  LONGSEQ_CHECK(k == kb, "matmul: inner sizes differ: op(a) of tensor 'a' ", a.shape, " is ", m, " x ", k,
                " but op(b) of tensor 'b' ", b.shape, " is ", kb, " x ", n);
  LONGSEQ_CHECK(C.rows == m && C.cols == n, "matmul: tensor 'c' has shape ", c.shape, ", expected (..., ", m,
                ", ", n, ")");
  LONGSEQ_CHECK(A.batch == C.batch, "matmul: tensor 'a' ", a.shape, " has ", A.batch,
                " matrices but tensor 'c' ", c.shape, " has ", C.batch);
  LONGSEQ_CHECK(B.batch == C.batch || b.rank() == 2, "matmul: tensor 'b' ", b.shape, " has ", B.batch,
                " matrices; expected ", C.batch, " or a single (rank 2) matrix");
  gemm<T>(ctx, ta, tb, m, n, k, alpha, a.data, A.ld, b.data, B.ld, beta, c.data, C.ld, C.batch,
          A.batch > 1 ? A.stride : 0, B.batch > 1 ? B.stride : 0, C.batch > 1 ? C.stride : 0);
}

// Gradients of c = alpha * op(a) @ op(b): da and db are written (GradMode::accumulate adds instead).
// A view with null data skips that gradient. When b is one matrix shared across the batch, db sums over it.
template <class T>
void matmul_backward(Context<device::host>& ctx, TensorView<const T> a, TensorView<const T> b,
                     TensorView<const T> dc, TensorView<T> da, TensorView<T> db, Trans ta = Trans::N,
                     Trans tb = Trans::N, T alpha = T(1), GradMode mode_a = GradMode::write,
                     GradMode mode_b = GradMode::write) {
  auto A = detail::as_matrix_batch(a, "a"), B = detail::as_matrix_batch(b, "b");
  auto DC = detail::as_matrix_batch(dc, "dc");
  index_t m = ta == Trans::N ? A.rows : A.cols, k = ta == Trans::N ? A.cols : A.rows;
  index_t n = tb == Trans::N ? B.cols : B.rows;
  LONGSEQ_CHECK(DC.rows == m && DC.cols == n && DC.batch == A.batch, "matmul_backward: tensor 'dc' has shape ",
                dc.shape, ", expected ", A.batch, " matrices of (", m, ", ", n, ")");
  index_t sa = A.batch > 1 ? A.stride : 0, sb = B.batch > 1 ? B.stride : 0, sc = DC.batch > 1 ? DC.stride : 0;
  if (da.data != nullptr) {
    expect_shape(da, a.shape, "da");
    auto DA = detail::as_matrix_batch(TensorView<const T>(da), "da");
    T beta = mode_a == GradMode::accumulate ? T(1) : T(0);
    index_t sda = DA.batch > 1 ? DA.stride : 0;
    // ta == N: dA = dC op(B)^T (m x k); ta == T: dA = op(B) dC^T (k x m).
    if (ta == Trans::N)
      gemm<T>(ctx, Trans::N, flip(tb), m, k, n, alpha, dc.data, DC.ld, b.data, B.ld, beta, da.data, DA.ld,
              A.batch, sc, sb, sda);
    else
      gemm<T>(ctx, tb, Trans::T, k, m, n, alpha, b.data, B.ld, dc.data, DC.ld, beta, da.data, DA.ld, A.batch,
              sb, sc, sda);
  }
  if (db.data != nullptr) {
    expect_shape(db, b.shape, "db");
    auto DB = detail::as_matrix_batch(TensorView<const T>(db), "db");
    bool shared = B.batch == 1 && A.batch > 1;
    index_t sdb = shared ? 0 : (DB.batch > 1 ? DB.stride : 0);
    index_t calls = shared ? A.batch : 1, per_call = shared ? 1 : A.batch;
    // A shared b gets one product per batch item, each adding to db after the first.
    for (index_t i = 0; i < calls; ++i) {
      T beta = (mode_b == GradMode::accumulate || i > 0) ? T(1) : T(0);
      const T* ai = a.data + i * sa;
      const T* ci = dc.data + i * sc;
      // tb == N: dB = op(A)^T dC (k x n); tb == T: dB = dC^T op(A) (n x k).
      if (tb == Trans::N)
        gemm<T>(ctx, flip(ta), Trans::N, k, n, m, alpha, ai, A.ld, ci, DC.ld, beta, db.data, DB.ld, per_call,
                sa, sc, sdb);
      else
        gemm<T>(ctx, Trans::T, ta, n, k, m, alpha, ci, DC.ld, ai, A.ld, beta, db.data, DB.ld, per_call, sc, sa,
                sdb);
    }
  }
}

}  // namespace longseq::ops

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // CUDA overloads, visible wherever the host op is
#include "cuda/gemm.cuh"
#endif
