// Batched strided row-major GEMM on the GPU through cuBLAS (float, double; half and bf16 with fp32 compute).
#pragma once
#include <type_traits>

#include "../../core/cuda/context.cuh"
#include "../../core/cuda/launch.cuh"
#include "../gemm.hpp"

namespace longseq::ops {

namespace cuda_detail {

inline cublasOperation_t cublas_op(Trans t) { return t == Trans::N ? CUBLAS_OP_N : CUBLAS_OP_T; }

template <class T> struct cublas_type;
template <> struct cublas_type<float> { static constexpr cudaDataType_t value = CUDA_R_32F; };
template <> struct cublas_type<double> { static constexpr cudaDataType_t value = CUDA_R_64F; };
template <> struct cublas_type<half> { static constexpr cudaDataType_t value = CUDA_R_16F; };
template <> struct cublas_type<bf16> { static constexpr cudaDataType_t value = CUDA_R_16BF; };

// C[i] = beta * C[i] over a batch of m x n blocks with leading dimension ldc; beta == 0 writes zeros
// without reading C (an empty product, k == 0).
template <class T>
struct ScaleBlocks {
  T* c;
  index_t m, n, ldc, stride_c;
  accum_t<T> beta;
  __device__ void operator()(index_t idx) const {
    index_t per = m * n, i = idx / per, r = (idx % per) / n, j = idx % n;
    T& x = c[i * stride_c + r * ldc + j];
    x = beta == accum_t<T>(0) ? T(accum_t<T>(0)) : T(beta * accum_t<T>(x));
  }
};

}  // namespace cuda_detail

// Row-major C = alpha op(A) op(B) + beta C is column-major C^T = alpha op(B)^T op(A)^T: cuBLAS gets the
// operands swapped, each with its own transpose flag, and m, n exchanged. Same contract and checks as the
// host gemm; with beta == 0, C is not read.
template <class T>
void gemm(Context<device::cuda>& ctx, Trans ta, Trans tb, index_t m, index_t n, index_t k, T alpha, const T* a,
          index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc, index_t batch = 1,
          index_t stride_a = 0, index_t stride_b = 0, index_t stride_c = 0) {
  static_assert(Real<T>, "gemm: T must be float, double, half or bf16");
  detail::check_gemm_args(ta, tb, m, n, k, a, lda, b, ldb, c, ldc, batch, stride_a, stride_b, stride_c);
  LONGSEQ_CHECK(batch < index_t(1) << 31, "gemm: batch ", batch, " exceeds cuBLAS's 32-bit batch count");
  if (batch == 0 || m == 0 || n == 0) return;
  if (k == 0) {
    cuda::for_each(ctx.stream(), batch * m * n,
                   cuda_detail::ScaleBlocks<T>{c, m, n, ldc, stride_c, accum_t<T>(beta)}, "gemm_scale_c");
    return;
  }
  cublasHandle_t h = ctx.cublas();
  auto opa = cuda_detail::cublas_op(ta), opb = cuda_detail::cublas_op(tb);
  int M = int(n), N = int(m), K = int(k);
  if constexpr (std::is_same_v<T, float>) {
    LONGSEQ_CUBLAS_CHECK(cublasSgemmStridedBatched(h, opb, opa, M, N, K, &alpha, b, int(ldb), stride_b, a,
                                                   int(lda), stride_a, &beta, c, int(ldc), stride_c, int(batch)));
  } else if constexpr (std::is_same_v<T, double>) {
    LONGSEQ_CUBLAS_CHECK(cublasDgemmStridedBatched(h, opb, opa, M, N, K, &alpha, b, int(ldb), stride_b, a,
                                                   int(lda), stride_a, &beta, c, int(ldc), stride_c, int(batch)));
  } else {
    // Reduced-precision storage, float products and sums (the longseq half/bf16 structs share the bit
    // layout of CUDA's __half/__nv_bfloat16).
    float fa = float(alpha), fb = float(beta);
    constexpr cudaDataType_t dt = cuda_detail::cublas_type<T>::value;
    LONGSEQ_CUBLAS_CHECK(cublasGemmStridedBatchedEx(h, opb, opa, M, N, K, &fa, b, dt, int(ldb), stride_b, a, dt,
                                                    int(lda), stride_a, &fb, c, dt, int(ldc), stride_c,
                                                    int(batch), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
}

}  // namespace longseq::ops
