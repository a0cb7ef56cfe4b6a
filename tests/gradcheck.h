/* SPDX-License-Identifier: MIT
 * Gradient checking by central differences, robust to float32 kernels: the
 * scalar loss is accumulated in double, the step actually taken is measured
 * after rounding the perturbed value to float, and the verdict is the relative
 * error of the whole gradient vector, ||g_a - g_n|| / max(||g_a||, ||g_n||),
 * which is not thrown by single tiny components (ggml test-grad0, cs231n notes).
 * Header-only: a test includes it once. */
#ifndef LB_GRADCHECK_H
#define LB_GRADCHECK_H

#include <math.h>
#include <stddef.h>
#include <stdlib.h>

/* A scalar loss evaluated at the current contents of the parameters in ctx
 * (typically: run the forward, return <r, y> in double). */
typedef double (*gc_loss_fn)(void *ctx);

struct gc_result {
	double norm_rel;  /* ||g_a - g_n|| / max(||g_a||, ||g_n||) (0 when both are 0) */
	double max_rel;   /* max_i |g_a - g_n| / max(|g_a|, |g_n|, floor), floor = 1e-3 max|g| */
	double max_abs;   /* max_i |g_a - g_n| */
	size_t worst;     /* index of the largest max_rel */
};

/* <r, y> in double: the loss whose gradient with respect to y is r. */
static inline double gc_dot(const float *r, const float *y, size_t n)
{
	double s = 0.0;
	for (size_t i = 0; i < n; i++)
		s += (double)r[i] * y[i];
	return s;
}

/* Compare the analytic gradient ga:(n) of loss(ctx) with respect to p:(n)
 * against central differences with step eps. p is perturbed in place and
 * restored bit for bit. [in,out] p  [in] ga  Both borrowed. On allocation
 * failure every error field is +inf (the check fails). */
static inline struct gc_result gc_check(gc_loss_fn loss, void *ctx, float *p, const float *ga,
					size_t n, double eps)
{
	struct gc_result res = {0.0, 0.0, 0.0, 0};
	double d2 = 0.0, a2 = 0.0, n2 = 0.0, gmax = 0.0;
	double *gn = malloc((n ? n : 1) * sizeof(*gn));

	if (!gn) {
		res.norm_rel = res.max_rel = res.max_abs = INFINITY;
		return res;
	}
	for (size_t i = 0; i < n; i++) {
		const float save = p[i];
		const float hi = (float)(save + eps), lo = (float)(save - eps);
		p[i] = hi;
		const double lp = loss(ctx);
		p[i] = lo;
		const double lm = loss(ctx);
		p[i] = save;
		/* divide by the step taken, not the one asked for */
		gn[i] = (lp - lm) / ((double)hi - (double)lo);
		const double d = (double)ga[i] - gn[i];
		d2 += d * d;
		a2 += (double)ga[i] * ga[i];
		n2 += gn[i] * gn[i];
		res.max_abs = fmax(res.max_abs, fabs(d));
		gmax = fmax(gmax, fmax(fabs(gn[i]), fabs((double)ga[i])));
	}
	/* element-wise ratio, with a floor so exact zeros do not divide by zero */
	const double floor_ = fmax(1e-3 * gmax, 1e-12);
	for (size_t i = 0; i < n; i++) {
		const double den = fmax(fmax(fabs((double)ga[i]), fabs(gn[i])), floor_);
		const double r = fabs((double)ga[i] - gn[i]) / den;
		if (r > res.max_rel) {
			res.max_rel = r;
			res.worst = i;
		}
	}
	const double den = sqrt(fmax(a2, n2));
	res.norm_rel = den > 0.0 ? sqrt(d2) / den : 0.0;
	free(gn);
	return res;
}

#endif
