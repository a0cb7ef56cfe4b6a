/* SPDX-License-Identifier: MIT
 * WaveQ sinusoidal regularizer with a learned per-layer period (see waveq.h;
 * math: shared/docs/methods.md section 4). */
#include "waveq.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#include "quant.h"

#define WQ_PI  3.14159265358979323846
#define WQ_LN2 0.69314718055994530942
/* Elements per block: the vector loops run over whole blocks (a known trip
 * count lets -O2's cheap vectoriser take them); the tail block is padded. */
#define WQ_BLOCK 256
#define WQ_LANES 8 /* double partial sums, combined in a fixed order */
/* x + 1.5 2^23 - 1.5 2^23 is x rounded to an integer for |x| < 2^22 */
#define WQ_MAGIC 12582912.0f

/* Taylor coefficients of sin(pi r) / r and cos(pi r) in z = r^2, |r| <= 1/2:
 * truncation below 6e-8 (sin) and 7e-9 (cos) at r = 1/2. */
#define S1  3.14159265f
#define S3  (-5.16771278f)
#define S5  2.55016404f
#define S7  (-0.599264529f)
#define S9  0.0821458866f
#define S11 (-0.00737043095f)
#define C2  (-4.93480220f)
#define C4  4.05871213f
#define C6  (-1.33526277f)
#define C8  0.235330630f
#define C10 (-0.0258068914f)
#define C12 0.00192957431f

struct wq_par {
	float a;      /* 2^beta - kappa: theta = pi (a u + c) */
	float c;      /* shift / step: 1/2 (DoReFa) or 0 */
	float invM;   /* 1/M (DoReFa) */
	double A;     /* amplitude */
	double two_a; /* 2^beta */
	int dorefa;
};

static struct wq_par wq_params(float beta, enum lb_waveq_align al, int amplitude, float M)
{
	struct wq_par p;
	const double two = exp2((double)beta);
	const double kappa = al == LB_WAVEQ_DOREFA ? 0.5 : 1.0;

	assert(beta <= LB_WAVEQ_MAX_BETA && two - kappa > 0.0);
	assert(al != LB_WAVEQ_DOREFA || M > 0.0f);
	p.a = (float)(two - kappa);
	p.c = al == LB_WAVEQ_DOREFA ? 0.5f : 0.0f;
	p.invM = al == LB_WAVEQ_DOREFA ? 1.0f / M : 1.0f;
	p.A = amplitude ? 1.0 / two : 1.0;
	p.two_a = two;
	p.dorefa = al == LB_WAVEQ_DOREFA;
	return p;
}

double lb_waveq_step(float beta, enum lb_waveq_align al)
{
	return 1.0 / (exp2((double)beta) - (al == LB_WAVEQ_DOREFA ? 0.5 : 1.0));
}

double lb_waveq_shift(float beta, enum lb_waveq_align al)
{
	return al == LB_WAVEQ_DOREFA ? lb_waveq_step(beta, al) / 2.0 : 0.0;
}

/* ---- fast path ---- */

/* u:(m) and du/dw:(m) of one block; entries m..WQ_BLOCK-1 are padded with
 * u = 0, du = 0 (their sinusoid values are masked by the caller). */
static void wq_u(float *restrict u, float *restrict du, const float *restrict w, size_t m,
		 const struct wq_par *p)
{
	size_t i;

	if (p->dorefa) {
		const float invM = p->invM;
		float wb[WQ_BLOCK], t[WQ_BLOCK];
		const float *src = w;
		if (m < WQ_BLOCK) {
			memcpy(wb, w, m * sizeof(float));
			memset(wb + m, 0, (WQ_BLOCK - m) * sizeof(float));
			src = wb;
		}
		lb_quant_tanh(t, src, WQ_BLOCK); /* quant.h, shared with DoReFa */
		for (i = 0; i < WQ_BLOCK; i++) {
			u[i] = t[i] * invM;
			du[i] = (1.0f - t[i] * t[i]) * invM;
		}
		if (m == WQ_BLOCK)
			return;
	} else if (m == WQ_BLOCK) {
		for (i = 0; i < WQ_BLOCK; i++) {
			const float x = w[i];
			const float c = x > -1.0f ? x : -1.0f; /* NaN -> -1 */
			const float v = c < 1.0f ? c : 1.0f;
			u[i] = v;
			du[i] = v == x ? 1.0f : 0.0f; /* -1 <= x <= 1, NaN excluded */
		}
		return;
	} else {
		for (i = 0; i < m; i++) {
			const float x = w[i];
			const float c = x > -1.0f ? x : -1.0f;
			const float v = c < 1.0f ? c : 1.0f;
			u[i] = v;
			du[i] = v == x ? 1.0f : 0.0f;
		}
	}
	for (i = m; i < WQ_BLOCK; i++) {
		u[i] = 0.0f;
		du[i] = 0.0f;
	}
}

/* s2 = sin^2(theta), and if sn2, sn2 = sin(2 theta), theta = pi (a u + c),
 * over a whole block: x = a u + c = k + r with k an integer, |r| <= 1/2, and
 * sin^2, sin 2theta have period pi in theta, so only sin(pi r), cos(pi r) are
 * needed. */
static void wq_sin(float *restrict s2, float *restrict sn2, const float *restrict u, float a,
		   float c)
{
	/* two copies: -O2 does not unswitch loops, and the vectoriser wants no
	 * conditional store */
	if (!sn2) {
		for (int i = 0; i < WQ_BLOCK; i++) {
			const float x = a * u[i] + c;
			const float r = x - ((x + WQ_MAGIC) - WQ_MAGIC);
			const float z = r * r;
			const float s =
			    r * (S1 + z * (S3 + z * (S5 + z * (S7 + z * (S9 + z * S11)))));
			s2[i] = s * s;
		}
		return;
	}
	for (int i = 0; i < WQ_BLOCK; i++) {
		const float x = a * u[i] + c;
		const float r = x - ((x + WQ_MAGIC) - WQ_MAGIC);
		const float z = r * r;
		const float s = r * (S1 + z * (S3 + z * (S5 + z * (S7 + z * (S9 + z * S11)))));
		const float co =
		    1.0f + z * (C2 + z * (C4 + z * (C6 + z * (C8 + z * (C10 + z * C12)))));
		s2[i] = s * s;
		sn2[i] = 2.0f * s * co;
	}
}

static double lanes_total(const double *acc)
{
	return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* One pass for both entry points, so backward returns forward's R bit for bit. */
static double wq_run(float *dw, double *dbeta, const float *w, size_t n, float beta,
		     enum lb_waveq_align al, int amplitude, float M, float coef)
{
	const struct wq_par p = wq_params(beta, al, amplitude, M);
	const int grad = dw || dbeta;
	float u[WQ_BLOCK], du[WQ_BLOCK], s2[WQ_BLOCK], sn2[WQ_BLOCK];
	double acc[WQ_LANES] = {0}, accb[WQ_LANES] = {0};

	if (n == 0)
		return 0.0;
	const double AoN = p.A / (double)n;
	/* dR/dw_j = (A/N) pi (2^beta - kappa) sin(2 theta_j) du_j */
	const float gw = (float)((double)coef * AoN * WQ_PI * (double)p.a);

	for (size_t i0 = 0; i0 < n; i0 += WQ_BLOCK) {
		const size_t m = n - i0 < WQ_BLOCK ? n - i0 : WQ_BLOCK;
		wq_u(u, du, w + i0, m, &p);
		wq_sin(s2, grad ? sn2 : NULL, u, p.a, p.c);
		for (size_t i = m; i < WQ_BLOCK; i++)
			s2[i] = 0.0f; /* padding: du = 0 and u = 0 mask the rest */
		for (int i = 0; i < WQ_BLOCK; i += WQ_LANES)
			for (int l = 0; l < WQ_LANES; l++)
				acc[l] += (double)s2[i + l];
		if (dbeta) {
			for (int i = 0; i < WQ_BLOCK; i += WQ_LANES)
				for (int l = 0; l < WQ_LANES; l++)
					accb[l] += (double)(u[i + l] * sn2[i + l]);
		}
		if (dw) {
			float *d = dw + i0;
			if (m == WQ_BLOCK) {
				for (int i = 0; i < WQ_BLOCK; i++)
					d[i] += gw * (sn2[i] * du[i]);
			} else {
				for (size_t i = 0; i < m; i++)
					d[i] += gw * (sn2[i] * du[i]);
			}
		}
	}
	const double R = AoN * lanes_total(acc);
	if (dbeta) {
		double g = AoN * WQ_PI * p.two_a * WQ_LN2 * lanes_total(accb);
		if (amplitude)
			g -= WQ_LN2 * R;
		*dbeta += (double)coef * g;
	}
	return R;
}

double lb_waveq_forward(const float *w, size_t n, float beta, enum lb_waveq_align al, int amplitude,
			float M)
{
	return wq_run(NULL, NULL, w, n, beta, al, amplitude, M, 0.0f);
}

double lb_waveq_backward(float *dw, double *dbeta, const float *w, size_t n, float beta,
			 enum lb_waveq_align al, int amplitude, float M, float coef)
{
	return wq_run(dw, dbeta, w, n, beta, al, amplitude, M, coef);
}

/* ---- reference twins: the formulas of waveq.h, literally, in double ---- */

static double u_ref(float w, enum lb_waveq_align al, float M, double *du)
{
	if (al == LB_WAVEQ_DOREFA) {
		const double t = tanh((double)w);
		*du = (1.0 - t * t) / M;
		return t / M;
	}
	*du = fabs((double)w) <= 1.0 ? 1.0 : 0.0;
	if (isnan(w) || w < -1.0f)
		return -1.0;
	if (w > 1.0f)
		return 1.0;
	return w;
}

double lb_waveq_forward_ref(const float *w, size_t n, float beta, enum lb_waveq_align al,
			    int amplitude, float M)
{
	const double step = lb_waveq_step(beta, al), shift = lb_waveq_shift(beta, al);
	const double A = amplitude ? pow(2.0, -(double)beta) : 1.0;
	double sum = 0.0, du;

	if (n == 0)
		return 0.0;
	for (size_t j = 0; j < n; j++) {
		const double theta = WQ_PI * (u_ref(w[j], al, M, &du) + shift) / step;
		sum += sin(theta) * sin(theta);
	}
	return A / (double)n * sum;
}

double lb_waveq_backward_ref(float *dw, double *dbeta, const float *w, size_t n, float beta,
			     enum lb_waveq_align al, int amplitude, float M, float coef)
{
	const double step = lb_waveq_step(beta, al), shift = lb_waveq_shift(beta, al);
	const double A = amplitude ? pow(2.0, -(double)beta) : 1.0;
	const double two = pow(2.0, (double)beta);
	double sum = 0.0, sumb = 0.0, du;

	if (n == 0)
		return 0.0;
	for (size_t j = 0; j < n; j++) {
		const double u = u_ref(w[j], al, M, &du);
		const double theta = WQ_PI * (u + shift) / step;
		sum += sin(theta) * sin(theta);
		/* dtheta/dbeta = pi u 2^beta ln2 (shift/step is constant) */
		sumb += sin(2.0 * theta) * WQ_PI * u * two * WQ_LN2;
		if (dw)
			dw[j] = dw[j] + (float)((double)coef * A / (double)n * (WQ_PI / step) *
						sin(2.0 * theta) * du);
	}
	const double R = A / (double)n * sum;
	if (dbeta) {
		/* d(A)/dbeta = -ln2 A when A = 2^-beta */
		const double g = A / (double)n * sumb - (amplitude ? WQ_LN2 * R : 0.0);
		*dbeta += (double)coef * g;
	}
	return R;
}

/* ---- schedules ---- */

float lb_waveq_lambda_q(enum lb_waveq_sched kind, double t, double total, double r, double s)
{
	switch (kind) {
	case LB_WAVEQ_SCHED_STEP:
		assert(s > 0.0);
		return (float)(0.5 * (1.0 + tanh((t - r) / s)));
	case LB_WAVEQ_SCHED_PAPER: {
		assert(total > 0.0);
		const double tc = t < 0.0 ? 0.0 : t > total ? total : t;
		const double x = 3.0 * WQ_PI * (tc - total / 2.0) / total;
		return (float)(0.5 * (tanh(x) + tanh(1.5 * WQ_PI)));
	}
	case LB_WAVEQ_SCHED_CONST:
	default:
		return 1.0f;
	}
}

float lb_waveq_lambda_beta(enum lb_waveq_sched kind, double t, double total, double r, double s)
{
	if (kind == LB_WAVEQ_SCHED_PAPER) {
		assert(total > 0.0);
		const double tc = t < 0.0 ? 0.0 : t > total ? total : t;
		const double x = 3.0 * WQ_PI * (tc - total / 2.0) / total;
		return (float)(1.0 / cosh(x));
	}
	return 1.0f;
}

/* ---- bits ---- */

int lb_waveq_bits(float beta, int rule)
{
	double b;

	if (isnan(beta))
		return LB_QUANT_MAX_BITS;
	b = rule == LB_WAVEQ_BITS_ROUND ? round((double)beta) : ceil((double)beta);
	b += 1.0;
	if (b < 2.0)
		return 2;
	if (b > LB_QUANT_MAX_BITS)
		return LB_QUANT_MAX_BITS;
	return (int)b;
}
