/* SPDX-License-Identifier: MIT
 * Row-major single-precision GEMM: C = alpha * op(A) op(B) + beta * C.
 * op(A) is (M, K), op(B) is (K, N), C is (M, N); trans_a/trans_b say whether
 * A/B are stored transposed. lb_gemm goes to OpenBLAS's cblas_sgemm;
 * lb_gemm_ref is the plain-loop twin the tests hold it equal to (within
 * float rounding: BLAS reorders the sums). */
#ifndef LB_GEMM_H
#define LB_GEMM_H

void lb_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
	     const float *B, float beta, float *C);
void lb_gemm_ref(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
		 const float *B, float beta, float *C);

/* OpenBLAS introspection for provenance and thread control. */
const char *lb_blas_corename(void);
const char *lb_blas_config(void);
void lb_blas_set_threads(int n);
int lb_blas_get_threads(void);

#endif
