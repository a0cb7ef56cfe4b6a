/* SPDX-License-Identifier: MIT
 * Batch normalisation over channels (Ioffe & Szegedy, ICML 2015), PyTorch
 * torch.nn.BatchNorm2d semantics: biased variance normalises, the running
 * variance is updated with the unbiased one, running = (1-m) running + m batch.
 * Rows are the N = B*H*W NHWC pixels; statistics accumulate in double, a block
 * of channels at a time. Derivation of the backward: docs/layers/batchnorm.md. */
#include "layers.h"

#include <math.h>

enum { BLOCK = 64 }; /* channels per pass (stack accumulators, no allocation) */

/* mean = (1/N) sum x;  var = (1/N) sum (x - mean)^2 (two passes);
 * y = gamma (x - mean) rstd + beta, rstd = 1/sqrt(var + eps).
 * gamma/beta may be NULL (affine = False: 1 and 0). */
void lb_batchnorm_forward_train(float *y, float *mean, float *rstd, const float *x,
				const float *gamma, const float *beta, float *running_mean,
				float *running_var, float momentum, float eps, size_t N, int C)
{
	double s[BLOCK], mu[BLOCK];
	float a[BLOCK], m[BLOCK], sh[BLOCK];

	for (int c0 = 0; c0 < C; c0 += BLOCK) {
		const int n = C - c0 < BLOCK ? C - c0 : BLOCK;
		for (int j = 0; j < n; j++)
			s[j] = 0.0;
		for (size_t r = 0; r < N; r++) {
			const float *xr = x + r * C + c0;
			for (int j = 0; j < n; j++)
				s[j] += xr[j];
		}
		for (int j = 0; j < n; j++) {
			mu[j] = s[j] / (double)N;
			s[j] = 0.0;
		}
		for (size_t r = 0; r < N; r++) {
			const float *xr = x + r * C + c0;
			for (int j = 0; j < n; j++) {
				const double d = xr[j] - mu[j];
				s[j] += d * d;
			}
		}
		for (int j = 0; j < n; j++) {
			const int c = c0 + j;
			const double var = s[j] / (double)N;
			const double unbiased = N > 1 ? s[j] / (double)(N - 1) : var;
			const double r = 1.0 / sqrt(var + eps);
			mean[c] = (float)mu[j];
			rstd[c] = (float)r;
			/* y = a (x - mean) + beta, a = gamma rstd (no a x + shift: it cancels) */
			a[j] = (float)((gamma ? gamma[c] : 1.0) * r);
			m[j] = (float)mu[j];
			sh[j] = beta ? beta[c] : 0.0f;
			if (running_mean)
				running_mean[c] = (float)((1.0 - momentum) * running_mean[c] +
							  momentum * mu[j]);
			if (running_var)
				running_var[c] = (float)((1.0 - momentum) * running_var[c] +
							 momentum * unbiased);
		}
		for (size_t r = 0; r < N; r++) {
			const float *xr = x + r * C + c0;
			float *yr = y + r * C + c0;
			for (int j = 0; j < n; j++)
				yr[j] = a[j] * (xr[j] - m[j]) + sh[j];
		}
	}
}

/* y = gamma (x - running_mean) / sqrt(running_var + eps) + beta */
void lb_batchnorm_forward_eval(float *y, const float *x, const float *gamma, const float *beta,
			       const float *running_mean, const float *running_var, float eps,
			       size_t N, int C)
{
	float a[BLOCK], sh[BLOCK];

	for (int c0 = 0; c0 < C; c0 += BLOCK) {
		const int n = C - c0 < BLOCK ? C - c0 : BLOCK;
		const float *m = running_mean + c0;
		for (int j = 0; j < n; j++) {
			const int c = c0 + j;
			const double r = 1.0 / sqrt((double)running_var[c] + eps);
			a[j] = (float)((gamma ? gamma[c] : 1.0) * r);
			sh[j] = beta ? beta[c] : 0.0f;
		}
		for (size_t r = 0; r < N; r++) {
			const float *xr = x + r * C + c0;
			float *yr = y + r * C + c0;
			for (int j = 0; j < n; j++)
				yr[j] = a[j] * (xr[j] - m[j]) + sh[j];
		}
	}
}

/* xhat = (x - mean) rstd (from the forward's caches)
 * dx += (gamma rstd / N)(N dy - sum dy - xhat sum dy xhat)
 * dgamma += sum dy xhat;  dbeta += sum dy */
void lb_batchnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy,
			   const float *x, const float *mean, const float *rstd,
			   const float *gamma, size_t N, int C)
{
	double sdy[BLOCK], sdyx[BLOCK];
	float k[BLOCK], m1[BLOCK], m2[BLOCK];

	for (int c0 = 0; c0 < C; c0 += BLOCK) {
		const int n = C - c0 < BLOCK ? C - c0 : BLOCK;
		for (int j = 0; j < n; j++)
			sdy[j] = sdyx[j] = 0.0;
		for (size_t r = 0; r < N; r++) {
			const float *xr = x + r * C + c0, *gr = dy + r * C + c0;
			for (int j = 0; j < n; j++) {
				const double xh = ((double)xr[j] - mean[c0 + j]) * rstd[c0 + j];
				sdy[j] += gr[j];
				sdyx[j] += gr[j] * xh;
			}
		}
		for (int j = 0; j < n; j++) {
			const int c = c0 + j;
			if (dgamma)
				dgamma[c] += (float)sdyx[j];
			if (dbeta)
				dbeta[c] += (float)sdy[j];
			/* dx = k (dy - m1 - xhat m2), k = gamma rstd, m1 = mean dy, m2 = mean dy xhat */
			k[j] = (gamma ? gamma[c] : 1.0f) * rstd[c];
			m1[j] = (float)(sdy[j] / (double)N);
			m2[j] = (float)(sdyx[j] / (double)N);
		}
		if (!dx)
			continue;
		for (size_t r = 0; r < N; r++) {
			const float *xr = x + r * C + c0, *gr = dy + r * C + c0;
			float *dr = dx + r * C + c0;
			for (int j = 0; j < n; j++) {
				const float xh = (xr[j] - mean[c0 + j]) * rstd[c0 + j];
				dr[j] += k[j] * (gr[j] - m1[j] - xh * m2[j]);
			}
		}
	}
}
