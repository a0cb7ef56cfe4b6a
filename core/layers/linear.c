/* SPDX-License-Identifier: MIT
 * Fully connected layer, y = x W^T + b, on sgemm (llm.c matmul_forward layout:
 * W is (C_out, C_in) as in PyTorch torch.nn.Linear), with a plain-loop twin. */
#include "layers.h"

#include <string.h>

#include "gemm.h"

/* y = x W^T + b      x:(B,C_in)  W:(C_out,C_in)  b:(C_out)  y:(B,C_out) */
void lb_linear_forward(float *y, const float *x, const float *w, const float *b, int B, int C_in,
		       int C_out)
{
	if (b) {
		for (int i = 0; i < B; i++)
			memcpy(y + (size_t)i * C_out, b, (size_t)C_out * sizeof(float));
	}
	/* y (B,C_out) = x (B,C_in) * W^T (C_in,C_out) [+ y holding the bias] */
	lb_gemm(0, 1, B, C_out, C_in, 1.0f, x, w, b ? 1.0f : 0.0f, y);
}

/* dx += dy W         dW += dy^T x               db += sum_B dy */
void lb_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
			const float *w, int B, int C_in, int C_out)
{
	if (dw) /* dW (C_out,C_in) += dy^T (C_out,B) * x (B,C_in) */
		lb_gemm(1, 0, C_out, C_in, B, 1.0f, dy, x, 1.0f, dw);
	if (db) {
		for (int o = 0; o < C_out; o++) {
			double acc = 0.0;
			for (int i = 0; i < B; i++)
				acc += dy[(size_t)i * C_out + o];
			db[o] += (float)acc;
		}
	}
	if (dx) /* dx (B,C_in) += dy (B,C_out) * W (C_out,C_in) */
		lb_gemm(0, 0, B, C_in, C_out, 1.0f, dy, w, 1.0f, dx);
}

/* ---- reference twin: plain loops, double accumulators ---- */

void lb_linear_forward_ref(float *y, const float *x, const float *w, const float *b, int B,
			   int C_in, int C_out)
{
	for (int i = 0; i < B; i++)
		for (int o = 0; o < C_out; o++) {
			double acc = b ? b[o] : 0.0;
			for (int k = 0; k < C_in; k++)
				acc += (double)x[(size_t)i * C_in + k] * w[(size_t)o * C_in + k];
			y[(size_t)i * C_out + o] = (float)acc;
		}
}

void lb_linear_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
			    const float *w, int B, int C_in, int C_out)
{
	if (dw)
		for (int o = 0; o < C_out; o++)
			for (int k = 0; k < C_in; k++) {
				double acc = 0.0;
				for (int i = 0; i < B; i++)
					acc += (double)dy[(size_t)i * C_out + o] * x[(size_t)i * C_in + k];
				dw[(size_t)o * C_in + k] += (float)acc;
			}
	if (db)
		for (int o = 0; o < C_out; o++) {
			double acc = 0.0;
			for (int i = 0; i < B; i++)
				acc += dy[(size_t)i * C_out + o];
			db[o] += (float)acc;
		}
	if (dx)
		for (int i = 0; i < B; i++)
			for (int k = 0; k < C_in; k++) {
				double acc = 0.0;
				for (int o = 0; o < C_out; o++)
					acc += (double)dy[(size_t)i * C_out + o] * w[(size_t)o * C_in + k];
				dx[(size_t)i * C_in + k] += (float)acc;
			}
}
