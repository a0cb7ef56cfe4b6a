/* SPDX-License-Identifier: MIT
 * Relaxed Quantization (RQ / RQ-ST), Semi-Relaxed Quantization (SRQ) with the
 * multi-class STE, DropBits masks and hard-concrete bit gates (see rq.h).
 * References: Louizos et al., "Relaxed Quantization for Discretized Neural
 * Networks" (ICLR 2019) Algorithm 1 and eqs. 3-7; shared/docs/methods.md 2.1-2.4
 * (SRQ/DropBits/gates are reconstructions); docs/methods/srq.md for the
 * derivations of the fast paths used here. */
#include "rq.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#include "err.h"
#include "rng.h"

#define MAX_K (1 << LB_RQ_MAX_BITS)

/* ---- per-call constants ---- */

struct ctx {
	int bits, uns, K, m0, W;
	float alpha, sigma;
	float r;      /* alpha / sigma: edge spacing in noise scales */
	float rho;    /* exp(-r) */
	float omr;    /* 1 - rho, without cancellation */
	float rho_pow[MAX_K + 1]; /* rho^k, flushed to 0 below 1e-30/rho (no denormals) */
	int gate_level; /* levels kept by the hard gate threshold (bits without gates) */
	uint8_t lev[MAX_K]; /* level of grid point i */
};

static int clampi(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

void lb_rq_spec_default(struct lb_rq_spec *sp, int bits, int is_unsigned)
{
	memset(sp, 0, sizeof(*sp));
	sp->bits = bits;
	sp->is_unsigned = is_unsigned;
	sp->delta = 0.0f;
	sp->lambda = 2.0f;
	sp->straight_through = 0;
	sp->tempered = 0;
	sp->tau = 1.0f;
}

int lb_rq_spec_check(const struct lb_rq_spec *sp)
{
	if (sp->bits < 1 || sp->bits > LB_RQ_MAX_BITS)
		return lb_error(LB_ERR_CONFIG, "rq: bits: %d is out of range (allowed: 1..%d)",
				sp->bits, LB_RQ_MAX_BITS);
	if (!(sp->lambda > 0.0f))
		return lb_error(LB_ERR_CONFIG, "rq: lambda: %g is out of range (allowed: > 0)",
				(double)sp->lambda);
	if (!(sp->tau > 0.0f))
		return lb_error(LB_ERR_CONFIG, "rq: tau: %g is out of range (allowed: > 0)",
				(double)sp->tau);
	if (!(sp->delta >= 0.0f))
		return lb_error(LB_ERR_CONFIG, "rq: delta: %g is out of range (allowed: >= 0)",
				(double)sp->delta);
	return LB_OK;
}

int lb_rq_grid_min(const struct lb_rq_spec *sp)
{
	return sp->is_unsigned ? 0 : -(1 << (sp->bits - 1));
}

static int ilog2(unsigned v)
{
	int k = -1;
	while (v) {
		v >>= 1;
		k++;
	}
	return k;
}

int lb_rq_level_of(int m, int is_unsigned)
{
	if (is_unsigned)
		return m <= 1 ? 1 : ilog2((unsigned)m) + 1;
	if (m == 0 || m == -1)
		return 1;
	return ilog2((unsigned)(m > 0 ? m : -m - 1)) + 2;
}

void lb_rq_level_range(int *m_lo, int *m_hi, int level, int is_unsigned)
{
	if (is_unsigned) {
		*m_lo = 0;
		*m_hi = (1 << level) - 1;
	} else {
		*m_lo = -(1 << (level - 1));
		*m_hi = (1 << (level - 1)) - 1;
	}
}

int lb_rq_window(const struct lb_rq_spec *sp, float alpha, float sigma)
{
	const int K = 1 << sp->bits;
	float w;

	if (sp->delta <= 0.0f)
		return K - 1;
	w = sp->delta * sigma / alpha;
	if (!(w < (float)K)) /* also NaN */
		return K - 1;
	return clampi((int)floorf(w), 0, K - 1);
}

/* Highest level L with zbar[1..L] >= 0.5 (zbar is a running product, so
 * non-increasing for gates in [0, 1]); bits without gates. */
static int gate_level(const float *zbar, int bits)
{
	int L = 1;
	if (!zbar)
		return bits;
	while (L < bits && zbar[L + 1] >= 0.5f)
		L++;
	return L;
}

static void ctx_init(struct ctx *c, const struct lb_rq_spec *sp, float alpha, float sigma,
		     const struct lb_rq_mask *mask)
{
	assert(lb_rq_spec_check(sp) == LB_OK);
	assert(alpha > 0.0f && sigma > 0.0f);
	c->bits = sp->bits;
	c->uns = sp->is_unsigned;
	c->K = 1 << sp->bits;
	c->m0 = lb_rq_grid_min(sp);
	c->W = lb_rq_window(sp, alpha, sigma);
	c->alpha = alpha;
	c->sigma = sigma;
	c->r = alpha / sigma;
	c->rho = expf(-c->r);
	c->omr = -expm1f(-c->r);
	for (int k = 0; k <= c->K; k++) {
		const double v = exp(-(double)k * (double)c->r);
		c->rho_pow[k] = v * (double)c->rho < 1e-30 ? 0.0f : (float)v;
	}
	c->gate_level = gate_level(mask ? mask->zbar : NULL, sp->bits);
	for (int i = 0; i < c->K; i++)
		c->lev[i] = (uint8_t)lb_rq_level_of(c->m0 + i, c->uns);
}

/* Kept level of element e from the DropBits part of the mask. */
static int keep_level(const struct lb_rq_mask *mask, size_t e, int bits)
{
	int L;
	if (!mask)
		return bits;
	L = mask->level ? mask->level[e] : mask->keep;
	return L <= 0 || L > bits ? bits : L;
}

/* round half away from zero of q, clamped to [lo, hi]; NaN -> lo.
 * Clamping q first keeps the int conversion in range; a - k is exact.
 * Branch-free (selects), as the signs and fractions of x are random. */
static inline int round_clamp(float q, int lo, int hi)
{
	float a;
	int k;

	q = q > (float)lo - 1.0f ? q : (float)lo - 1.0f; /* NaN -> lo - 1 */
	q = q < (float)hi + 1.0f ? q : (float)hi + 1.0f;
	a = fabsf(q);
	k = (int)a;
	k += a - (float)k >= 0.5f;
	k = q < 0.0f ? -k : k;
	k = k < lo ? lo : k;
	return k > hi ? hi : k;
}

/* ---- edge CDFs, fast path ----
 * Points mlo .. mlo+npts-1 (integers), edges j = 0..npts at mu_j = mlo - 1/2 + j,
 * t_j = (mu_j - q) r. Since the edges are equally spaced, exp(-|t_j|) is a
 * geometric sequence with ratio rho away from the crossing edge jp (first
 * t_j >= 0): two expf per element instead of npts+1. With e_j = exp(-|t_j|),
 * inv_j = 1/(1+e_j):
 *   s_j = c_j (1-c_j) = e_j inv_j^2
 *   D_i = c_{i+1} - c_i = (1-rho) inv_i inv_{i+1} * (e_i | e_{i+1} | 1)
 * for edge pairs above, below and across the crossing: no cancellation.
 * [out] D:(npts) raw interval masses (no fuzz), s:(npts+1) */
/* e:(npts+1) = exp(-|t_j|); returns jp. One expf: across the crossing
 * exp(-t_jp) = rho / exp(t_{jp-1}) since t_jp = t_{jp-1} + r. */
static int edges_exp(float *e, float q, int mlo, int npts, const struct ctx *c)
{
	const float f = q - (float)mlo + 0.5f; /* jp = ceil(f) */
	float vl = 0.0f, vh = 0.0f;
	int jp, j;

	if (!(f > 0.0f))
		jp = 0;
	else if (f > (float)npts)
		jp = npts + 1;
	else {
		jp = (int)f;
		jp += (float)jp < f;
	}
	if (jp > 0)
		vl = expf((((float)(mlo + jp - 1) - 0.5f) - q) * c->r);
	if (jp <= npts)
		vh = jp > 0 && vl > 1e-30f ? c->rho / vl
					   : expf(-(((float)(mlo + jp) - 0.5f) - q) * c->r);
	/* independent products (no serial chain): e_j = v rho^|j - start| */
	vl = vl < 1e-30f ? 0.0f : vl;
	vh = vh < 1e-30f ? 0.0f : vh;
	for (j = jp; j <= npts; j++)
		e[j] = vh * c->rho_pow[j - jp];
	for (j = 0; j < jp; j++)
		e[j] = vl * c->rho_pow[jp - 1 - j];
	return jp;
}

/* [out] D:(npts) raw interval masses (no fuzz), s:(npts+1) */
static void edges_fast(float *D, float *s, float q, int mlo, int npts, const struct ctx *c)
{
	float e[MAX_K + 1], inv[MAX_K + 1];
	const int jp = edges_exp(e, q, mlo, npts, c);

	for (int j = 0; j <= npts; j++) {
		inv[j] = 1.0f / (1.0f + e[j]);
		s[j] = e[j] * inv[j] * inv[j];
	}
	for (int i = 0; i < npts; i++) {
		const float num = i >= jp ? e[i] : i + 1 < jp ? e[i + 1] : 1.0f;
		D[i] = c->omr * inv[i] * inv[i + 1] * num;
	}
}

/* The identity STE of one element over the contiguous points mlo..mlo+npts-1,
 * fused (see lb_srq_backward): S0 = g alpha *s0, S1 = g alpha *s1. The
 * distances of the mean to both ends, U/S = Mbar - mlo and V/S = mhi - Mbar,
 * are accumulated separately so that neither cancels. */
static void srq_plain(float *s0, float *s1, float q, int mlo, int npts, const struct ctx *c)
{
	float e[MAX_K + 1];
	const int jp = edges_exp(e, q, mlo, npts, c);
	const float last = (float)(npts - 1);
	float S = 0.0f, U = 0.0f, V = 0.0f, T0 = 0.0f, T1 = 0.0f, inv_prev, s_first, s_last, b0, b1;

	inv_prev = 1.0f / (1.0f + e[0]);
	s_first = e[0] * inv_prev * inv_prev;
	s_last = s_first;
	for (int j = 1; j <= npts; j++) {
		const float inv = 1.0f / (1.0f + e[j]), sj = e[j] * inv * inv;
		const float num = j - 1 >= jp ? e[j - 1] : j < jp ? e[j] : 1.0f;
		const float d = c->omr * inv_prev * inv * num + (float)LB_RQ_FUZZ;
		const float i = (float)(j - 1);
		S += d;
		U += d * i;
		V += d * (last - i);
		if (j < npts) {
			T0 += sj;
			T1 += sj * ((float)(mlo + j) - 0.5f);
		}
		inv_prev = inv;
		s_last = sj;
	}
	b0 = U / S * s_first;  /* -(mlo - Mbar) s_0 */
	b1 = V / S * s_last;   /* (mhi - Mbar) s_npts */
	*s0 = (b0 - T0 + b1) / S;
	*s1 = (b0 * ((float)mlo - 0.5f) - T1 + b1 * ((float)(mlo + npts) - 0.5f)) / S;
}

/* From a_i = dL/dD_i (i = 0..npts-1, a outside = 0) to the two edge sums
 * S0 = sum_j w_j s_j and S1 = sum_j w_j s_j mu_j with w_j = a_{j-1} - a_j:
 * dL/dx = -S0/sigma, dL/dalpha = S1/sigma, dL/dsigma = -(alpha/sigma^2)(S1 - q S0). */
static void edge_sums(float *S0, float *S1, const float *a, const float *s, int mlo, int npts)
{
	float s0 = 0.0f, s1 = 0.0f;
	for (int j = 0; j <= npts; j++) {
		const float w = (j > 0 ? a[j - 1] : 0.0f) - (j < npts ? a[j] : 0.0f);
		const float ws = w * s[j];
		s0 += ws;
		s1 += ws * ((float)(mlo + j) - 0.5f);
	}
	*S0 = s0;
	*S1 = s1;
}

/* Window of point indices around point index n, intersected with [ilo, ihi]. */
static void window_of(int *lo, int *hi, int n, int ilo, int ihi, const struct ctx *c)
{
	*lo = n - c->W < ilo ? ilo : n - c->W;
	*hi = n + c->W > ihi ? ihi : n + c->W;
}

/* ---- RQ (concrete relaxation) ---- */

static float gumbel_f(uint32_t word)
{
	float u = lb_u32_to_unit_float(word);
	u = u < (float)LB_RQ_U_MIN ? (float)LB_RQ_U_MIN : u;
	return -logf(-logf(u));
}

double lb_rq_gumbel(const struct lb_rq_key *key, size_t e, int i)
{
	uint32_t w[4];
	double u;
	lb_rng_block(key->seed, LB_RNG_QNOISE, key->step, ((key->base + e) << 6) | (uint64_t)(i >> 2),
		     w);
	u = (double)lb_u32_to_unit_float(w[i & 3]);
	u = u < LB_RQ_U_MIN ? LB_RQ_U_MIN : u > 1.0 - LB_RQ_U_MIN ? 1.0 - LB_RQ_U_MIN : u;
	return -log(-log(u));
}

/* One element of RQ: fills z over the window [lo, lo+npts) and returns the
 * forward value in grid units (sum z m, or m of the hard sample), *mh = m of
 * the hard sample. D, s as edges_fast. */
static float rq_elem(float *z, float *D, float *s, int *lo_out, int *npts_out, int *mh, float q,
		     size_t e, const struct lb_rq_spec *sp, const struct lb_rq_key *key,
		     const struct ctx *c)
{
	const int n = round_clamp(q, c->m0, c->m0 + c->K - 1) - c->m0;
	int lo, hi, npts, blk = -1, best = 0;
	uint32_t w[4] = {0, 0, 0, 0};
	float ymax = -INFINITY, zs = 0.0f, zm = 0.0f;
	const float il = 1.0f / sp->lambda;

	window_of(&lo, &hi, n, 0, c->K - 1, c);
	npts = hi - lo + 1;
	edges_fast(D, s, q, c->m0 + lo, npts, c);
	/* log pi_i = log D_i - log N: the shift by log N cancels in the softmax */
	for (int i = 0; i < npts; i++) {
		const int g = lo + i;
		if (g >> 2 != blk) {
			blk = g >> 2;
			lb_rng_block(key->seed, LB_RNG_QNOISE, key->step,
				     ((key->base + e) << 6) | (uint64_t)blk, w);
		}
		z[i] = (logf(D[i] + (float)LB_RQ_FUZZ) + gumbel_f(w[g & 3])) * il;
		if (z[i] > ymax) {
			ymax = z[i];
			best = i;
		}
	}
	for (int i = 0; i < npts; i++) {
		z[i] = expf(z[i] - ymax);
		zs += z[i];
	}
	for (int i = 0; i < npts; i++) {
		z[i] /= zs;
		zm += z[i] * (float)(c->m0 + lo + i);
	}
	*lo_out = lo;
	*npts_out = npts;
	*mh = c->m0 + lo + best;
	return sp->straight_through ? (float)*mh : zm;
}

void lb_rq_forward(float *y, const float *x, size_t n, const struct lb_rq_spec *sp, float alpha,
		   float sigma, const struct lb_rq_key *key)
{
	struct ctx c;
	float z[MAX_K], D[MAX_K], s[MAX_K + 1];
	ctx_init(&c, sp, alpha, sigma, NULL);
	for (size_t e = 0; e < n; e++) {
		int lo, npts, mh;
		y[e] = alpha * rq_elem(z, D, s, &lo, &npts, &mh, x[e] / alpha, e, sp, key, &c);
	}
}

/* dL/dy_i = z_i (dL/dz_i - sum z dL/dz), dL/dz_i = dy alpha m_i; with
 * log pi_i = log D_i - log N and sum dL/dy = 0 the N path cancels, so
 * a_i = dL/dD_i = dL/dy_i / (lambda D_i). */
void lb_rq_backward(float *dx, double *dalpha, double *dsigma, const float *dy, const float *x,
		    size_t n, const struct lb_rq_spec *sp, float alpha, float sigma,
		    const struct lb_rq_key *key)
{
	struct ctx c;
	float z[MAX_K], D[MAX_K], s[MAX_K + 1], a[MAX_K];
	double sum_s1 = 0.0, sum_qs0 = 0.0, sum_direct = 0.0;
	const float il = 1.0f / sp->lambda;

	ctx_init(&c, sp, alpha, sigma, NULL);
	for (size_t e = 0; e < n; e++) {
		const float q = x[e] / alpha;
		int lo, npts, mh;
		float zm, S0, S1, ga = dy[e] * alpha;
		zm = 0.0f;
		(void)rq_elem(z, D, s, &lo, &npts, &mh, q, e, sp, key, &c);
		for (int i = 0; i < npts; i++)
			zm += z[i] * (float)(c.m0 + lo + i);
		for (int i = 0; i < npts; i++)
			a[i] = ga * z[i] * ((float)(c.m0 + lo + i) - zm) * il /
			       (D[i] + (float)LB_RQ_FUZZ);
		edge_sums(&S0, &S1, a, s, c.m0 + lo, npts);
		if (dx)
			dx[e] += -S0 / sigma;
		sum_s1 += S1;
		sum_qs0 += (double)q * S0;
		sum_direct += (double)dy[e] * (sp->straight_through ? (float)mh : zm);
	}
	if (dalpha)
		*dalpha += sum_s1 / sigma + sum_direct;
	if (dsigma)
		*dsigma += -((double)alpha / ((double)sigma * sigma)) * (sum_s1 - sum_qs0);
}

/* ---- reference core (double, literal methods.md 2.1.1) ---- */

static double softplus(double v)
{
	return (v > 0.0 ? v : 0.0) + log1p(exp(-fabs(v)));
}

/* log(Sig(b) - Sig(a)), a < b, without cancellation:
 * Sig(b) - Sig(a) = Sig(b) Sig(-a) (1 - e^(a-b)). */
static double log_sig_diff(double a, double b)
{
	return -softplus(-b) - softplus(a) + log(-expm1(a - b));
}

/* Literal argmax over point indices [ilo, ihi] of the raw interval mass at the
 * grid coordinate q (the fuzz is a common shift). Exactly half-way (the only
 * case where the mode is not unique) goes away from zero, as round(). */
static int ref_argmax(double q, double r, int ilo, int ihi, const struct ctx *c)
{
	int best = ilo;
	double lbest = -INFINITY;
	for (int i = ilo; i <= ihi; i++) {
		const double mu = (double)(c->m0 + i) - 0.5;
		const double l = log_sig_diff((mu - q) * r, (mu + 1.0 - q) * r);
		if (l > lbest) {
			lbest = l;
			best = i;
		}
	}
	if (q - floor(q) == 0.5) {
		const int h = (int)floor(q) - c->m0; /* the tie is between h and h+1 */
		if (h >= ilo && h + 1 <= ihi && (best == h || best == h + 1))
			best = q > 0.0 ? h + 1 : h;
	}
	return best;
}

/* Edge CDFs over point indices [lo, hi] at x (double): c, sd (= c(1-c)), t, mu. */
static void ref_edges(double *cdf, double *sd, double *t, double *mu, double x, double alpha,
		      double sigma, int lo, int hi, int m0)
{
	for (int k = 0; k <= hi - lo + 1; k++) {
		mu[k] = (double)(m0 + lo + k) - 0.5;
		t[k] = (alpha * mu[k] - x) / sigma;
		cdf[k] = 1.0 / (1.0 + exp(-t[k]));
		sd[k] = cdf[k] * (1.0 - cdf[k]);
	}
}

void lb_rq_probs_ref(double *pi, double x, double alpha, double sigma,
		     const struct lb_rq_spec *sp, int lo, int hi)
{
	const int K = 1 << sp->bits, m0 = lb_rq_grid_min(sp);
	double cdf[MAX_K + 1], sd[MAX_K + 1], t[MAX_K + 1], mu[MAX_K + 1], N = 0.0;

	ref_edges(cdf, sd, t, mu, x, alpha, sigma, lo, hi, m0);
	for (int i = 0; i < K; i++)
		pi[i] = 0.0;
	for (int i = lo; i <= hi; i++) {
		pi[i] = cdf[i - lo + 1] - cdf[i - lo] + LB_RQ_FUZZ;
		N += pi[i];
	}
	for (int i = lo; i <= hi; i++)
		pi[i] /= N;
}

/* Given dL/dpi_i (i over the window) accumulate dL/dx, dL/dalpha (pi path)
 * and dL/dsigma literally: dpi_i/dth = (dD_i - pi_i dN)/N,
 * dc_k/dx = -s_k/sigma, dc_k/dsigma = -s_k t_k/sigma, dc_k/dalpha = s_k mu_k/sigma. */
static void ref_chain(double *gx, double *ga, double *gs, const double *dpi, const double *pi,
		      const double *sd, const double *t, const double *mu, double N, int npts,
		      double sigma)
{
	const int last = npts;
	*gx = *ga = *gs = 0.0;
	for (int i = 0; i < npts; i++) {
		const double dDx = -(sd[i + 1] - sd[i]) / sigma;
		const double dDs = -(sd[i + 1] * t[i + 1] - sd[i] * t[i]) / sigma;
		const double dDa = (sd[i + 1] * mu[i + 1] - sd[i] * mu[i]) / sigma;
		const double dNx = -(sd[last] - sd[0]) / sigma;
		const double dNs = -(sd[last] * t[last] - sd[0] * t[0]) / sigma;
		const double dNa = (sd[last] * mu[last] - sd[0] * mu[0]) / sigma;
		*gx += dpi[i] * (dDx - pi[i] * dNx) / N;
		*gs += dpi[i] * (dDs - pi[i] * dNs) / N;
		*ga += dpi[i] * (dDa - pi[i] * dNa) / N;
	}
}

/* One RQ element in double: window, pi, Gumbel, z (soft sample), hard index. */
struct rq_ref_elem {
	int lo, npts, h;
	double pi[MAX_K], z[MAX_K], cdf[MAX_K + 1], sd[MAX_K + 1], t[MAX_K + 1], mu[MAX_K + 1];
	double N;
};

static void rq_ref_elem(struct rq_ref_elem *E, float xf, size_t e, const struct lb_rq_spec *sp,
			const struct lb_rq_key *key, const struct ctx *c)
{
	const double x = xf, alpha = c->alpha, sigma = c->sigma, lambda = sp->lambda;
	const float q = xf / c->alpha;
	const int n = ref_argmax((double)q, alpha / sigma, 0, c->K - 1, c);
	int hi;
	double ymax = -INFINITY, zs = 0.0;

	window_of(&E->lo, &hi, n, 0, c->K - 1, c);
	E->npts = hi - E->lo + 1;
	ref_edges(E->cdf, E->sd, E->t, E->mu, x, alpha, sigma, E->lo, hi, c->m0);
	E->N = 0.0;
	for (int i = 0; i < E->npts; i++) {
		E->pi[i] = E->cdf[i + 1] - E->cdf[i] + LB_RQ_FUZZ; /* D_i */
		E->N += E->pi[i];
	}
	E->h = 0;
	for (int i = 0; i < E->npts; i++) {
		E->pi[i] /= E->N;
		E->z[i] = (log(E->pi[i]) + lb_rq_gumbel(key, e, E->lo + i)) / lambda;
		if (E->z[i] > ymax) {
			ymax = E->z[i];
			E->h = i;
		}
	}
	for (int i = 0; i < E->npts; i++) {
		E->z[i] = exp(E->z[i] - ymax);
		zs += E->z[i];
	}
	for (int i = 0; i < E->npts; i++)
		E->z[i] /= zs;
}

void lb_rq_forward_ref(float *y, const float *x, size_t n, const struct lb_rq_spec *sp,
		       float alpha, float sigma, const struct lb_rq_key *key)
{
	struct ctx c;
	struct rq_ref_elem E;
	ctx_init(&c, sp, alpha, sigma, NULL);
	for (size_t e = 0; e < n; e++) {
		double v = 0.0;
		rq_ref_elem(&E, x[e], e, sp, key, &c);
		if (sp->straight_through)
			v = (double)(c.m0 + E.lo + E.h);
		else
			for (int i = 0; i < E.npts; i++)
				v += E.z[i] * (double)(c.m0 + E.lo + i);
		y[e] = (float)((double)alpha * v);
	}
}

void lb_rq_backward_ref(float *dx, double *dalpha, double *dsigma, const float *dy,
			const float *x, size_t n, const struct lb_rq_spec *sp, float alpha,
			float sigma, const struct lb_rq_key *key)
{
	struct ctx c;
	struct rq_ref_elem E;
	double dpi[MAX_K], dz[MAX_K], ty[MAX_K];
	ctx_init(&c, sp, alpha, sigma, NULL);
	for (size_t e = 0; e < n; e++) {
		double zdz = 0.0, zm = 0.0, gx, ga, gs;
		rq_ref_elem(&E, x[e], e, sp, key, &c);
		for (int i = 0; i < E.npts; i++) {
			const double m = (double)(c.m0 + E.lo + i);
			dz[i] = (double)dy[e] * alpha * m; /* dL/dz_i (ST: dL/dh_i) */
			zdz += E.z[i] * dz[i];
			zm += E.z[i] * m;
		}
		for (int i = 0; i < E.npts; i++) {
			ty[i] = E.z[i] * (dz[i] - zdz);                 /* dL/dy_i */
			dpi[i] = ty[i] / (sp->lambda * E.pi[i]); /* dL/dpi_i */
		}
		ref_chain(&gx, &ga, &gs, dpi, E.pi, E.sd, E.t, E.mu, E.N, E.npts, sigma);
		if (dx)
			dx[e] += (float)gx;
		if (dalpha)
			*dalpha += ga + (double)dy[e] *
						(sp->straight_through ? (double)(c.m0 + E.lo + E.h) : zm);
		if (dsigma)
			*dsigma += gs;
	}
}

/* ---- SRQ ---- */

static float softplusf(float v)
{
	return (v > 0.0f ? v : 0.0f) + log1pf(expf(-fabsf(v)));
}

/* Hard selection (point index) of element e: round-and-clamp to the kept
 * range of min(DropBits level, gate level). Also returns that range. */
static int srq_hard(int *ilo, int *ihi, float q, int keep, const struct ctx *c)
{
	int mlo, mhi;
	lb_rq_level_range(&mlo, &mhi, keep < c->gate_level ? keep : c->gate_level, c->uns);
	*ilo = mlo - c->m0;
	*ihi = mhi - c->m0;
	return round_clamp(q, mlo, mhi) - c->m0;
}

/* General SRQ element (gates and/or tempered STE): masked weights w_i, window
 * around the hard selection, forward selection, and when g != 0 the
 * accumulations. Returns the selected m. a_i = dL/dD_i:
 *   identity: a_i = (w_i/Sw)(r_i - rbar),  dL/dw_i = (D_i/Sw)(r_i - rbar)
 *   tempered: a_i = s_i (r_i - rbar_s)/(tau D_i),  dL/dw_i = s_i (r_i - rbar_s)/(tau w_i)
 * with Sw = sum w D, rbar = sum (w D / Sw) r, s = softmax(log(w D)/tau). */
static int srq_general(float *S0, float *S1, double *dzbar, float q, float g, int keep,
		       const struct lb_rq_spec *sp, const struct lb_rq_mask *mask,
		       const struct ctx *c)
{
	float D[MAX_K], s[MAX_K + 1], w[MAX_K], p[MAX_K], a[MAX_K];
	int ilo, ihi, n, lo, hi, npts, sel, mlo, kmlo, kmhi;
	float Sw = 0.0f, rbar = 0.0f, best = -INFINITY, qs;
	const int relaxed = mask && mask->zbar && mask->gate_forward == LB_RQ_GATE_RELAXED;

	n = srq_hard(&ilo, &ihi, q, keep, c);
	lb_rq_level_range(&kmlo, &kmhi, keep, c->uns);
	if (relaxed) {
		/* the whole DropBits-kept grid (level 1 has weight 1, so Sw > 0);
		 * start from the nearest point: a point of equal or smaller weight
		 * can never have a larger w D, so only heavier points compete */
		lo = kmlo - c->m0;
		hi = kmhi - c->m0;
		n = round_clamp(q, kmlo, kmhi) - c->m0;
	} else
		window_of(&lo, &hi, n, kmlo - c->m0, kmhi - c->m0, c);
	npts = hi - lo + 1;
	mlo = c->m0 + lo;
	edges_fast(D, s, q, mlo, npts, c);
	sel = n - lo;
	/* Beyond 40 noise scales outside the grid every log D_i is linear in q
	 * with the same slope, so clamping q there keeps the mode and keeps the
	 * float differences of the scores exact. */
	qs = q < (float)mlo - 0.5f - 40.0f / c->r ? (float)mlo - 0.5f - 40.0f / c->r : q;
	qs = qs > (float)(mlo + npts) - 0.5f + 40.0f / c->r ? (float)(mlo + npts) - 0.5f + 40.0f / c->r
							     : qs;
	for (int i = 0; i < npts; i++) {
		D[i] += (float)LB_RQ_FUZZ;
		w[i] = mask && mask->zbar ? mask->zbar[c->lev[lo + i]] : 1.0f;
		p[i] = w[i] * D[i];
		Sw += p[i];
	}
	if (relaxed) {
		/* mode of w D_raw in logs: log(Sig(b) - Sig(a)) = -sp(-b) - sp(a) + log(1-rho) */
		float wsel = 1.0f;
		for (int i = 0; i < npts; i++)
			wsel = i == sel ? w[i] : wsel;
		for (int i = -1; i < npts; i++) {
			const int k = i < 0 ? sel : i; /* the nearest point first */
			const float ta = ((float)(mlo + k) - 0.5f - qs) * c->r, tb = ta + c->r;
			float score;
			if (i >= 0 && !(w[k] > wsel))
				continue;
			score = logf(w[k]) - softplusf(-tb) - softplusf(ta);
			if (i < 0 || score > best) {
				best = score;
				if (i >= 0)
					sel = k;
			}
		}
	}
	if (g == 0.0f || (!S0 && !dzbar))
		return mlo + sel;
	if (!sp->tempered) {
		for (int i = 0; i < npts; i++) {
			p[i] /= Sw;
			rbar += p[i] * (float)(mlo + i);
		}
		for (int i = 0; i < npts; i++) {
			const float dr = (float)(mlo + i) - rbar;
			a[i] = w[i] / Sw * dr;
			if (dzbar)
				dzbar[c->lev[lo + i]] += (double)(g * c->alpha * D[i] / Sw * dr);
		}
	} else {
		const float it = 1.0f / sp->tau;
		float lmax = -INFINITY, ssum = 0.0f;
		for (int i = 0; i < npts; i++) {
			p[i] = w[i] > 0.0f ? logf(w[i] * D[i]) * it : -INFINITY;
			lmax = p[i] > lmax ? p[i] : lmax;
		}
		for (int i = 0; i < npts; i++) {
			p[i] = w[i] > 0.0f ? expf(p[i] - lmax) : 0.0f;
			ssum += p[i];
		}
		for (int i = 0; i < npts; i++) {
			p[i] /= ssum;
			rbar += p[i] * (float)(mlo + i);
		}
		for (int i = 0; i < npts; i++) {
			const float v = p[i] * ((float)(mlo + i) - rbar) * it;
			a[i] = v / D[i];
			if (dzbar && w[i] > 0.0f)
				dzbar[c->lev[lo + i]] += (double)(g * c->alpha * v / w[i]);
		}
	}
	for (int i = 0; i < npts; i++)
		a[i] *= g * c->alpha;
	if (S0)
		edge_sums(S0, S1, a, s, mlo, npts);
	return mlo + sel;
}

static int needs_general(const struct lb_rq_spec *sp, const struct lb_rq_mask *mask)
{
	return sp->tempered || (mask && mask->zbar);
}

void lb_srq_forward(float *y, const float *x, size_t n, const struct lb_rq_spec *sp, float alpha,
		    float sigma, const struct lb_rq_mask *mask)
{
	struct ctx c;
	ctx_init(&c, sp, alpha, sigma, mask);
	if (mask && mask->zbar && mask->gate_forward == LB_RQ_GATE_RELAXED) {
		for (size_t e = 0; e < n; e++) {
			const int m = srq_general(NULL, NULL, NULL, x[e] / alpha, 0.0f,
						  keep_level(mask, e, c.bits), sp, mask, &c);
			y[e] = alpha * (float)m;
		}
		return;
	}
	if (!mask || (!mask->level && c.gate_level == c.bits &&
		      keep_level(mask, 0, c.bits) == c.bits)) {
		/* the common case: argmax pi = round(x/alpha) clamped to the grid */
		const int lo = c.m0, hi = c.m0 + c.K - 1;
		for (size_t e = 0; e < n; e++)
			y[e] = alpha * (float)round_clamp(x[e] / alpha, lo, hi);
		return;
	}
	for (size_t e = 0; e < n; e++) {
		int ilo, ihi;
		const int i = srq_hard(&ilo, &ihi, x[e] / alpha, keep_level(mask, e, c.bits), &c);
		y[e] = alpha * (float)(c.m0 + i);
	}
}

/* Identity STE over the contiguous kept window [mlo, mhi] (summation by parts
 * of sum_i r_i dpi_i, r_i = g alpha m_i, equal spacing):
 *   S0 = (g alpha / S) [-(mlo - Mbar) s_0 - sum_{0<j<npts} s_j + (mhi - Mbar) s_npts]
 *   S1 = same with every s_j multiplied by mu_j,
 * S = sum D, Mbar = sum m D / S (D with fuzz). */
void lb_srq_backward(float *dx, double *dalpha, double *dsigma, const float *dy, const float *x,
		     size_t n, const struct lb_rq_spec *sp, float alpha, float sigma,
		     const struct lb_rq_mask *mask)
{
	struct ctx c;
	double sum_s1 = 0.0, sum_qs0 = 0.0, sum_direct = 0.0;
	const int general = needs_general(sp, mask);

	ctx_init(&c, sp, alpha, sigma, mask);
	for (size_t e = 0; e < n; e++) {
		const float q = x[e] / alpha, g = dy[e];
		const int keep = keep_level(mask, e, c.bits);
		float S0, S1;
		int m;
		if (general) {
			m = srq_general(&S0, &S1, mask ? mask->dzbar : NULL, q, g, keep, sp, mask, &c);
			if (g == 0.0f)
				S0 = S1 = 0.0f;
		} else {
			int ilo, ihi, lo, hi;
			float s0, s1;
			m = srq_hard(&ilo, &ihi, q, keep, &c);
			window_of(&lo, &hi, m, ilo, ihi, &c);
			m += c.m0;
			srq_plain(&s0, &s1, q, c.m0 + lo, hi - lo + 1, &c);
			S0 = g * alpha * s0;
			S1 = g * alpha * s1;
		}
		if (dx)
			dx[e] += -S0 / sigma;
		sum_s1 += S1;
		sum_qs0 += (double)q * S0;
		sum_direct += (double)g * m;
	}
	if (dalpha)
		*dalpha += sum_s1 / sigma + sum_direct;
	if (dsigma)
		*dsigma += -((double)alpha / ((double)sigma * sigma)) * (sum_s1 - sum_qs0);
}

/* Reference SRQ element: full masked pi~ over the window in double, literal
 * argmax, literal STE and chain rule (methods.md 2.2, 2.3). Returns the
 * selected m; with dL (dy) given, accumulates into gx, ga, gs and dzbar. */
static int srq_ref_elem(double *gx, double *ga, double *gs, double *dzbar, float xf, double g,
			int keep, const struct lb_rq_spec *sp, const struct lb_rq_mask *mask,
			const struct ctx *c)
{
	const double x = xf, alpha = c->alpha, sigma = c->sigma;
	const float q = xf / c->alpha;
	const int hard = keep < c->gate_level ? keep : c->gate_level;
	double cdf[MAX_K + 1], sd[MAX_K + 1], t[MAX_K + 1], mu[MAX_K + 1];
	double pi[MAX_K], w[MAX_K], pt[MAX_K], G[MAX_K], dpi[MAX_K], N = 0.0, Swp = 0.0;
	double best = -INFINITY, gsum = 0.0;
	int mlo, mhi, n, lo, hi, npts, sel;

	const int relaxed = mask && mask->zbar && mask->gate_forward == LB_RQ_GATE_RELAXED;

	/* mode of pi over the hard-kept grid */
	lb_rq_level_range(&mlo, &mhi, hard, c->uns);
	n = ref_argmax((double)q, alpha / sigma, mlo - c->m0, mhi - c->m0, c);
	/* window around it, inside the DropBits-kept grid (relaxed gates: all of it) */
	lb_rq_level_range(&mlo, &mhi, keep, c->uns);
	if (relaxed) {
		lo = mlo - c->m0;
		hi = mhi - c->m0;
	} else
		window_of(&lo, &hi, n, mlo - c->m0, mhi - c->m0, c);
	npts = hi - lo + 1;
	ref_edges(cdf, sd, t, mu, x, alpha, sigma, lo, hi, c->m0);
	for (int i = 0; i < npts; i++) {
		pi[i] = cdf[i + 1] - cdf[i] + LB_RQ_FUZZ;
		N += pi[i];
	}
	sel = n - lo;
	for (int i = 0; i < npts; i++) {
		pi[i] /= N;
		w[i] = mask && mask->zbar ? (double)mask->zbar[c->lev[lo + i]] : 1.0;
		Swp += w[i] * pi[i];
	}
	for (int i = 0; i < npts; i++) {
		pt[i] = w[i] * pi[i] / Swp; /* pi~ */
		if (relaxed && w[i] > 0.0) {
			/* mode of w times the raw mass (the fuzz is not part of the mode) */
			const double me = (double)(c->m0 + lo + i) - 0.5, r = alpha / sigma;
			const double l = log(w[i]) + log_sig_diff((me - q) * r, (me + 1.0 - q) * r);
			if (l > best) {
				best = l;
				sel = i;
			}
		}
	}
	if (relaxed) {
		/* equal weights: the nearest point (ties as round()) */
		const int near = ref_argmax((double)q, alpha / sigma, lo, hi, c) - lo;
		if (w[sel] == w[near])
			sel = near;
	}
	if (!gx)
		return c->m0 + lo + sel;
	/* dL/dpi~ */
	for (int i = 0; i < npts; i++)
		G[i] = g * alpha * (double)(c->m0 + lo + i);
	if (sp->tempered) {
		double smax = -INFINITY, ssum = 0.0, rbar = 0.0, sv[MAX_K];
		for (int i = 0; i < npts; i++) {
			sv[i] = pt[i] > 0.0 ? log(pt[i]) / sp->tau : -INFINITY;
			smax = sv[i] > smax ? sv[i] : smax;
		}
		for (int i = 0; i < npts; i++) {
			sv[i] = pt[i] > 0.0 ? exp(sv[i] - smax) : 0.0;
			ssum += sv[i];
		}
		for (int i = 0; i < npts; i++) {
			sv[i] /= ssum;
			rbar += sv[i] * G[i];
		}
		for (int i = 0; i < npts; i++)
			G[i] = pt[i] > 0.0 ? sv[i] * (G[i] - rbar) / (sp->tau * pt[i]) : 0.0;
	}
	/* through pi~ = w pi / sum w pi */
	for (int i = 0; i < npts; i++)
		gsum += pt[i] * G[i];
	for (int i = 0; i < npts; i++) {
		dpi[i] = w[i] * (G[i] - gsum) / Swp;
		if (dzbar && mask && mask->zbar)
			dzbar[c->lev[lo + i]] += pi[i] * (G[i] - gsum) / Swp;
	}
	ref_chain(gx, ga, gs, dpi, pi, sd, t, mu, N, npts, sigma);
	return c->m0 + lo + sel;
}

void lb_srq_forward_ref(float *y, const float *x, size_t n, const struct lb_rq_spec *sp,
			float alpha, float sigma, const struct lb_rq_mask *mask)
{
	struct ctx c;
	ctx_init(&c, sp, alpha, sigma, mask);
	for (size_t e = 0; e < n; e++) {
		const int m = srq_ref_elem(NULL, NULL, NULL, NULL, x[e], 0.0,
					   keep_level(mask, e, c.bits), sp, mask, &c);
		y[e] = alpha * (float)m;
	}
}

void lb_srq_backward_ref(float *dx, double *dalpha, double *dsigma, const float *dy,
			 const float *x, size_t n, const struct lb_rq_spec *sp, float alpha,
			 float sigma, const struct lb_rq_mask *mask)
{
	struct ctx c;
	ctx_init(&c, sp, alpha, sigma, mask);
	for (size_t e = 0; e < n; e++) {
		double gx, ga, gs;
		const int m = srq_ref_elem(&gx, &ga, &gs, mask ? mask->dzbar : NULL, x[e], dy[e],
					   keep_level(mask, e, c.bits), sp, mask, &c);
		if (dx)
			dx[e] += (float)gx;
		if (dalpha)
			*dalpha += ga + (double)dy[e] * m;
		if (dsigma)
			*dsigma += gs;
	}
}

/* ---- DropBits ---- */

void lb_dropbits_probs(float *p, int bits, float p_top)
{
	p[0] = p[1] = 0.0f;
	for (int k = 2; k <= bits; k++)
		p[k] = ldexpf(p_top, k - bits);
}

static int dropbits_draw(int bits, const float *p, const struct lb_rq_key *key, size_t e)
{
	uint32_t w[4];
	int L = 1, blk = -1;
	for (int k = 2; k <= bits; k++) {
		const int j = k - 2;
		if (j >> 2 != blk) {
			blk = j >> 2;
			lb_rng_block(key->seed, LB_RNG_DROPBITS, key->step,
				     ((key->base + e) << 6) | (uint64_t)blk, w);
		}
		if (lb_u32_to_unit_float(w[j & 3]) < p[k])
			break;
		L = k;
	}
	return L;
}

void lb_dropbits_sample(uint8_t *level, size_t n, int bits, const float *p,
			const struct lb_rq_key *key, int train)
{
	for (size_t e = 0; e < n; e++)
		level[e] = (uint8_t)(train ? dropbits_draw(bits, p, key, e) : bits);
}

int lb_dropbits_sample_layer(int bits, const float *p, const struct lb_rq_key *key, int train)
{
	return train ? dropbits_draw(bits, p, key, 0) : bits;
}

/* ---- hard-concrete gates and the bit-cost regularizer ---- */

static double sigmoid(double v)
{
	return v >= 0.0 ? 1.0 / (1.0 + exp(-v)) : exp(v) / (1.0 + exp(v));
}

double lb_hc_gate(double log_a, double u, double *dz_dloga)
{
	const double uu = LB_HC_EPS_U + (1.0 - 2.0 * LB_HC_EPS_U) * u;
	const double s = sigmoid((log(uu) - log1p(-uu) + log_a) / LB_HC_BETA);
	const double sb = s * (LB_HC_ZETA - LB_HC_GAMMA) + LB_HC_GAMMA;
	if (dz_dloga)
		*dz_dloga = sb > 0.0 && sb < 1.0
				    ? (LB_HC_ZETA - LB_HC_GAMMA) * s * (1.0 - s) / LB_HC_BETA
				    : 0.0;
	return sb < 0.0 ? 0.0 : sb > 1.0 ? 1.0 : sb;
}

double lb_hc_gate_test(double log_a)
{
	const double sb = sigmoid(log_a) * (LB_HC_ZETA - LB_HC_GAMMA) + LB_HC_GAMMA;
	return sb < 0.0 ? 0.0 : sb > 1.0 ? 1.0 : sb;
}

double lb_hc_prob_nonzero(double log_a, double *dp_dloga)
{
	const double P = sigmoid(log_a - LB_HC_BETA * log(-LB_HC_GAMMA / LB_HC_ZETA));
	if (dp_dloga)
		*dp_dloga = P * (1.0 - P);
	return P;
}

void lb_bits_gates_sample(float *z, float *dz_dloga, const float *log_a, int bits,
			  const struct lb_rq_key *key, int train)
{
	z[0] = z[1] = 1.0f;
	if (dz_dloga)
		dz_dloga[0] = dz_dloga[1] = 0.0f;
	for (int k = 2; k <= bits; k++) {
		double d = 0.0, v;
		if (train) {
			const double u = lb_rng_uniform_double(key->seed, LB_RNG_GATES, key->step,
							       (key->base << 6) | (uint64_t)k);
			v = lb_hc_gate(log_a[k], u, &d);
		} else
			v = lb_hc_gate_test(log_a[k]);
		z[k] = (float)v;
		if (dz_dloga)
			dz_dloga[k] = (float)d;
	}
}

void lb_bits_zbar(float *zbar, const float *z, int bits)
{
	zbar[0] = zbar[1] = 1.0f;
	for (int k = 2; k <= bits; k++)
		zbar[k] = zbar[k - 1] * z[k];
}

void lb_bits_gates_backward(double *dlog_a, const double *dzbar, const float *z,
			    const float *dz_dloga, int bits)
{
	for (int k = 2; k <= bits; k++) {
		double sum = 0.0;
		for (int L = k; L <= bits; L++) {
			double prod = 1.0;
			for (int j = 2; j <= L; j++)
				if (j != k)
					prod *= z[j];
			sum += dzbar[L] * prod;
		}
		dlog_a[k] += (double)dz_dloga[k] * sum;
	}
}

double lb_bits_penalty(double *dlog_a, const float *log_a, const double *c, int n_layers,
		       int bits, double lambda)
{
	double R = 0.0;
	for (int l = 0; l < n_layers; l++)
		for (int k = 2; k <= bits; k++) {
			const size_t i = (size_t)l * (size_t)(bits + 1) + (size_t)k;
			double dp;
			R += c[l] * lb_hc_prob_nonzero(log_a[i], &dp);
			if (dlog_a)
				dlog_a[i] += lambda * c[l] * dp;
		}
	return lambda * R;
}

void lb_bits_memory_weights(double *c, const size_t *n_weights, int n_layers)
{
	double total = 0.0;
	for (int l = 0; l < n_layers; l++)
		total += (double)n_weights[l];
	for (int l = 0; l < n_layers; l++)
		c[l] = total > 0.0 ? (double)n_weights[l] / total : 0.0;
}

int lb_bits_learned(const float *log_a, int bits, float threshold)
{
	double zbar = 1.0;
	int L = 1;
	for (int k = 2; k <= bits; k++) {
		zbar *= lb_hc_gate_test(log_a[k]);
		if (threshold > 0.0f ? !(zbar >= threshold) : !(zbar > 0.0))
			break;
		L = k;
	}
	return L;
}

void lb_bits_clamp_log_a(float *log_a, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (log_a[i] < (float)LB_HC_LOG_A_MIN)
			log_a[i] = (float)LB_HC_LOG_A_MIN;
		if (log_a[i] > (float)LB_HC_LOG_A_MAX)
			log_a[i] = (float)LB_HC_LOG_A_MAX;
	}
}
