/* SPDX-License-Identifier: MIT
 * GEMM over OpenBLAS and its reference twin (see gemm.h). */
#include "gemm.h"

#include <cblas.h>

/* OpenBLAS extensions (declared in its cblas.h, repeated for other BLAS headers). */
char *openblas_get_corename(void);
char *openblas_get_config(void);
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

void lb_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
	     const float *B, float beta, float *C)
{
	cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
		    trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A,
		    trans_a ? M : K, B, trans_b ? K : N, beta, C, N);
}

void lb_gemm_ref(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
		 const float *B, float beta, float *C)
{
	for (int i = 0; i < M; i++)
		for (int j = 0; j < N; j++) {
			double s = 0.0;
			for (int k = 0; k < K; k++) {
				float a = trans_a ? A[(long)k * M + i] : A[(long)i * K + k];
				float b = trans_b ? B[(long)j * K + k] : B[(long)k * N + j];
				s += (double)a * b;
			}
			float c = beta == 0.0f ? 0.0f : beta * C[(long)i * N + j];
			C[(long)i * N + j] = c + alpha * (float)s;
		}
}

const char *lb_blas_corename(void) { return openblas_get_corename(); }
const char *lb_blas_config(void) { return openblas_get_config(); }
void lb_blas_set_threads(int n) { openblas_set_num_threads(n); }
int lb_blas_get_threads(void) { return openblas_get_num_threads(); }
