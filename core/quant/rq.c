/* SPDX-License-Identifier: MIT
 * Relaxed Quantization (RQ / RQ-ST), Semi-Relaxed Quantization (SRQ) with the
 * multi-class STE, DropBits masks and hard-concrete bit gates (see rq.h).
 * References: Louizos et al., "Relaxed Quantization for Discretized Neural
 * Networks" (ICLR 2019) Algorithm 1 and eqs. 3-7; shared/docs/methods.md 2.1-2.4
 * (SRQ/DropBits/gates are reconstructions); docs/methods/srq.md for the
 * derivations of the fast paths used here.
 *
 * Layout: the scalar kernels and references first; the vector SRQ kernels
 * ("vectorised across elements") are written once, at the end of this file
 * under LB_RQ_VEC_PASS, and this file includes itself once per vector width
 * (4, 8, 16 lanes) to instantiate them. */
#ifndef LB_RQ_VEC_PASS
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

/* lb_srq_gated_scalar: the gated backward per element (srq_general) even where
 * the vector kernel applies (tests and benchmarks compare the two) */
static int srq_gated_scalar;

void lb_srq_gated_scalar(int on)
{
	srq_gated_scalar = on != 0;
}

static int needs_general(const struct lb_rq_spec *sp, const struct lb_rq_mask *mask)
{
	return sp->tempered || (mask && mask->zbar);
}

/* ---- SRQ identity STE, vectorised across elements ----
 * The no-gate, identity-STE backward and the hard forwards run a block of VL
 * elements at a time in GCC vector extensions: VL = 4 as generic code (SSE2 on
 * any x86-64), VL = 8 as an AVX2 clone, VL = 16 (8 for per-lane ranges) as an
 * AVX-512 clone; the best the CPU has is picked at run time (lb_rq_set_isa). Only IEEE +, -, *, / and
 * compares are used and nothing is contracted into FMAs, an element's result
 * does not depend on the other elements of its block (chunk bases below are
 * fixed by the grid, not the block), and the tensor sums are formed in the
 * same order for every VL (16 virtual lanes: element e in lane e mod 16, float
 * partial sums over 256 elements, then double per lane, lanes in order): every
 * ISA gives the same bits.
 *
 * Per element with kept/windowed points lo..hi (n = hi-lo+1), edges
 * mu_j = j - 1/2 (j = lo..hi+1), t_j = (mu_j - q) r, U_j = exp(-t_j):
 *   c_j = 1/(1 + U_j),  1 - c_j = c_j U_j,  s_j = c_j (1 - c_j),
 * the smaller tail w_j = min(c_j, 1 - c_j), signed + below q (mu_j < q) and -
 * above, so that over the interior edges sum c_j = N_a + W with N_a the number
 * of interior edges above q (counted exactly from q) and W = sum of signed
 * tails. Summation by parts of S = sum D, U = sum D (m - lo), V = sum D (hi - m)
 * (D with fuzz) then needs only W, N_a, T0 = sum s_j, T1 = sum s_j (mu_j - mu_0)
 * over the interior edges and the two end edges, with every small quantity
 * taken from a tail (no cancellation against 1):
 *   S = c_n - c_0 + n eps,  U = (n-1) c_n - N_a - W + eps n(n-1)/2,
 *   V = N_a + W - (n-1) c_0 + eps n(n-1)/2,
 * then s0 = (U/S s_0 - T0 + V/S s_n)/S, s1 likewise with mu (as srq_general).
 * Per edge: one division and ~12 vector operations, no exp: along the equally
 * spaced edges U_j = U_base rho^k with rho^k tabulated per call (one
 * rounding), U_base one vector exp at every LB_RQ_CHUNK_T / r edges.
 *
 * Error bound of the chunking: t at a chunk base is clamped to [-86, 86] (the
 * exp stays a normal float) and chunk * r <= 40, so an edge whose smaller tail
 * (c or 1 - c) is below e^-46 (1e-20) may get another value below e^-46 (or
 * underflow); every larger tail, and s, are exact to float rounding. */

#define LB_RQ_CHUNK_T 40.0f /* chunk length * r: U = U_base rho^k >= e^-40 U_base */
#define AI static inline __attribute__((always_inline))
/* every function taking or returning a vector is always inlined, so the
 * vector calling convention (which differs with and without AVX) is never
 * used; GCC still notes it (at the end of the file, hence no pop) */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

/* per-call constants of the vector kernels */
struct vctx {
	float alpha, sigma, r;
	float inv_sigma, neg_inv_sigma; /* 1/sigma, -1/sigma */
	int chunk;                /* edges per exp restart: chunk * r <= 40, >= 1 */
	float rpow[MAX_K + 2];    /* rho^k, k < chunk */
	int W;                    /* window half-width (K-1: full grid) */
	int bits, uns, m0;
	/* gated backward (srq_gated_body) only */
	float omr;                /* 1 - exp(-r) */
	int gate_level;           /* levels the hard gate forward keeps */
	uint8_t lev[MAX_K];       /* level of grid point i */
	float wz[MAX_K];          /* gate weight Zbar of grid point i */
};

static void vctx_init(struct vctx *v, const struct ctx *c)
{
	int chunk = MAX_K + 2;
	if (c->r * (float)(MAX_K + 2) > LB_RQ_CHUNK_T) /* else (int) could overflow */
		chunk = (int)(LB_RQ_CHUNK_T / c->r);
	v->alpha = c->alpha;
	v->sigma = c->sigma;
	v->inv_sigma = 1.0f / c->sigma;
	v->neg_inv_sigma = -v->inv_sigma;
	v->r = c->r;
	v->chunk = chunk < 1 ? 1 : chunk;
	for (int k = 0; k < v->chunk; k++)
		v->rpow[k] = (float)exp(-(double)k * (double)c->r);
	v->W = c->W;
	v->bits = c->bits;
	v->uns = c->uns;
	v->m0 = c->m0;
	v->omr = c->omr;
	v->gate_level = c->gate_level;
	memcpy(v->lev, c->lev, sizeof v->lev);
}

/* Whether the lanes of a block can have different points: per-element
 * DropBits levels, or a window narrower than the kept grid. */
static int srq_ranged(const uint8_t *level, int keep, const struct vctx *v)
{
	int lo, hi;
	lb_rq_level_range(&lo, &hi, keep, v->uns);
	return level != NULL || v->W < hi - lo;
}

/* the template below, once per vector width */
#define LB_RQ_VEC_PASS 4
#include "rq.c"
#undef LB_RQ_VEC_PASS
#define LB_RQ_VEC_PASS 8
#include "rq.c"
#undef LB_RQ_VEC_PASS
#define LB_RQ_VEC_PASS 16
#include "rq.c"
#undef LB_RQ_VEC_PASS

static void srq_backward_generic(float *dx, double *sums, const float *dy, const float *x,
				 size_t n, const uint8_t *level, int keep, const struct vctx *v)
{
	srq_backward_body_4(dx, sums, dy, x, n, level, keep, v);
}

static void srq_forward_generic(float *y, const float *x, size_t n, const uint8_t *level,
				int keep, const struct vctx *v)
{
	srq_forward_body_4(y, x, n, level, keep, v);
}

static void srq_gated_generic(float *dx, double *sums, double *dzbar, const float *dy,
			      const float *x, size_t n, const uint8_t *level, int keep,
			      const struct vctx *v)
{
	srq_gated_body_4(dx, sums, dzbar, dy, x, n, level, keep, v);
}

static void dropbits_generic(uint8_t *level, size_t n, int bits, const float *p,
			     const struct lb_rq_key *key)
{
	dropbits_body_4(level, n, bits, p, key);
}

#if defined(__GNUC__) && defined(__x86_64__)
#define LB_RQ_AVX512 "avx512f,avx512dq,avx512bw,avx512vl"
__attribute__((target("avx2"))) static void srq_backward_avx2(float *dx, double *sums,
							      const float *dy, const float *x,
							      size_t n, const uint8_t *level,
							      int keep, const struct vctx *v)
{
	srq_backward_body_8(dx, sums, dy, x, n, level, keep, v);
}

__attribute__((target("avx2"))) static void srq_forward_avx2(float *y, const float *x, size_t n,
							     const uint8_t *level, int keep,
							     const struct vctx *v)
{
	srq_forward_body_8(y, x, n, level, keep, v);
}

__attribute__((target(LB_RQ_AVX512))) static void srq_backward_avx512(
	float *dx, double *sums, const float *dy, const float *x, size_t n, const uint8_t *level,
	int keep, const struct vctx *v)
{
	/* per-lane ranges (DropBits levels, windows): 8 lanes measured faster
	 * (the union of 16 lanes' ranges is wider; masks, two exps per lane) */
	if (srq_ranged(level, keep, v))
		srq_backward_body_8(dx, sums, dy, x, n, level, keep, v);
	else
		srq_backward_body_16(dx, sums, dy, x, n, level, keep, v);
}

__attribute__((target(LB_RQ_AVX512))) static void srq_forward_avx512(
	float *y, const float *x, size_t n, const uint8_t *level, int keep, const struct vctx *v)
{
	if (level)
		srq_forward_body_8(y, x, n, level, keep, v);
	else
		srq_forward_body_16(y, x, n, level, keep, v);
}

__attribute__((target("avx2"))) static void srq_gated_avx2(float *dx, double *sums,
							    double *dzbar, const float *dy,
							    const float *x, size_t n,
							    const uint8_t *level, int keep,
							    const struct vctx *v)
{
	srq_gated_body_8(dx, sums, dzbar, dy, x, n, level, keep, v);
}

/* 8 lanes with AVX-512 too: the lanes' ranges differ (gate weights, DropBits) */
__attribute__((target(LB_RQ_AVX512))) static void srq_gated_avx512(
	float *dx, double *sums, double *dzbar, const float *dy, const float *x, size_t n,
	const uint8_t *level, int keep, const struct vctx *v)
{
	srq_gated_body_8(dx, sums, dzbar, dy, x, n, level, keep, v);
}

__attribute__((target("avx2"))) static void dropbits_avx2(uint8_t *level, size_t n, int bits,
							  const float *p,
							  const struct lb_rq_key *key)
{
	dropbits_body_8(level, n, bits, p, key);
}

__attribute__((target(LB_RQ_AVX512))) static void dropbits_avx512(uint8_t *level, size_t n,
								  int bits, const float *p,
								  const struct lb_rq_key *key)
{
	dropbits_body_16(level, n, bits, p, key);
}

static int isa_best(void)
{
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
	    __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
		return LB_RQ_ISA_AVX512;
	return __builtin_cpu_supports("avx2") ? LB_RQ_ISA_AVX2 : LB_RQ_ISA_GENERIC;
}
#else
#define srq_backward_avx2 srq_backward_generic
#define srq_forward_avx2 srq_forward_generic
#define srq_backward_avx512 srq_backward_generic
#define srq_forward_avx512 srq_forward_generic
#define dropbits_avx2 dropbits_generic
#define dropbits_avx512 dropbits_generic
#define srq_gated_avx2 srq_gated_generic
#define srq_gated_avx512 srq_gated_generic
static int isa_best(void)
{
	return LB_RQ_ISA_GENERIC;
}
#endif

static int rq_isa = LB_RQ_ISA_AUTO;

int lb_rq_set_isa(int isa)
{
	const int best = isa_best();
	rq_isa = isa > LB_RQ_ISA_AUTO && isa <= best ? isa : LB_RQ_ISA_AUTO;
	return rq_isa == LB_RQ_ISA_AUTO ? best : rq_isa;
}

int lb_rq_isa(void)
{
	return rq_isa == LB_RQ_ISA_AUTO ? isa_best() : rq_isa;
}

typedef void (*srq_backward_fn)(float *, double *, const float *, const float *, size_t,
				const uint8_t *, int, const struct vctx *);
typedef void (*srq_forward_fn)(float *, const float *, size_t, const uint8_t *, int,
			       const struct vctx *);

static srq_backward_fn srq_backward_kernel(void)
{
	switch (lb_rq_isa()) {
	case LB_RQ_ISA_AVX512:
		return srq_backward_avx512;
	case LB_RQ_ISA_AVX2:
		return srq_backward_avx2;
	default:
		return srq_backward_generic;
	}
}

typedef void (*srq_gated_fn)(float *, double *, double *, const float *, const float *, size_t,
			     const uint8_t *, int, const struct vctx *);

static srq_gated_fn srq_gated_kernel(void)
{
	switch (lb_rq_isa()) {
	case LB_RQ_ISA_AVX512:
		return srq_gated_avx512;
	case LB_RQ_ISA_AVX2:
		return srq_gated_avx2;
	default:
		return srq_gated_generic;
	}
}

static srq_forward_fn srq_forward_kernel(void)
{
	switch (lb_rq_isa()) {
	case LB_RQ_ISA_AVX512:
		return srq_forward_avx512;
	case LB_RQ_ISA_AVX2:
		return srq_forward_avx2;
	default:
		return srq_forward_generic;
	}
}

void lb_srq_forward(float *y, const float *x, size_t n, const struct lb_rq_spec *sp, float alpha,
		    float sigma, const struct lb_rq_mask *mask)
{
	struct ctx c;
	struct vctx v;
	ctx_init(&c, sp, alpha, sigma, mask);
	if (mask && mask->zbar && mask->gate_forward == LB_RQ_GATE_RELAXED) {
		for (size_t e = 0; e < n; e++) {
			const int m = srq_general(NULL, NULL, NULL, x[e] / alpha, 0.0f,
						  keep_level(mask, e, c.bits), sp, mask, &c);
			y[e] = alpha * (float)m;
		}
		return;
	}
	if (!mask || !mask->zbar) {
		/* argmax pi~ = round(x/alpha) clamped to the kept grid */
		vctx_init(&v, &c);
		srq_forward_kernel()(
			y, x, n, mask ? mask->level : NULL, keep_level(mask, 0, c.bits), &v);
		return;
	}
	for (size_t e = 0; e < n; e++) {
		int ilo, ihi;
		const int i = srq_hard(&ilo, &ihi, x[e] / alpha, keep_level(mask, e, c.bits), &c);
		y[e] = alpha * (float)(c.m0 + i);
	}
}

/* Identity STE: the vector kernel above (srq_vblock). Gates or the tempered
 * STE: srq_general per element. */
void lb_srq_backward(float *dx, double *dalpha, double *dsigma, const float *dy, const float *x,
		     size_t n, const struct lb_rq_spec *sp, float alpha, float sigma,
		     const struct lb_rq_mask *mask)
{
	struct ctx c;
	double sum_s1 = 0.0, sum_qs0 = 0.0, sum_direct = 0.0;

	ctx_init(&c, sp, alpha, sigma, mask);
	if (!sp->tempered && mask && mask->zbar && mask->gate_forward == LB_RQ_GATE_HARD &&
	    !srq_gated_scalar) {
		struct vctx v;
		double sums[2] = {0.0, 0.0};
		vctx_init(&v, &c);
		for (int i = 0; i < c.K; i++)
			v.wz[i] = mask->zbar[c.lev[i]];
		srq_gated_kernel()(dx, sums, mask->dzbar, dy, x, n, mask->level,
				   keep_level(mask, 0, c.bits), &v);
		if (dalpha)
			*dalpha += sums[0];
		if (dsigma)
			*dsigma += -((double)alpha / ((double)sigma * sigma)) * sums[1];
		return;
	}
	if (!needs_general(sp, mask)) {
		struct vctx v;
		double sums[2];
		vctx_init(&v, &c);
		srq_backward_kernel()(
			dx, sums, dy, x, n, mask ? mask->level : NULL, keep_level(mask, 0, c.bits),
			&v);
		if (dalpha)
			*dalpha += sums[0];
		if (dsigma)
			*dsigma += -((double)alpha / ((double)sigma * sigma)) * sums[1];
		return;
	}
	for (size_t e = 0; e < n; e++) {
		const float q = x[e] / alpha, g = dy[e];
		float S0, S1;
		const int m = srq_general(&S0, &S1, mask ? mask->dzbar : NULL, q, g,
					  keep_level(mask, e, c.bits), sp, mask, &c);
		if (g == 0.0f)
			S0 = S1 = 0.0f;
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

/* Vectorised (the Philox blocks of VL elements at once, rq.c "vectorised");
 * the same levels as dropbits_draw per element (tested). */
void lb_dropbits_sample(uint8_t *level, size_t n, int bits, const float *p,
			const struct lb_rq_key *key, int train)
{
	if (!train) {
		memset(level, bits, n);
		return;
	}
	switch (lb_rq_isa()) {
	case LB_RQ_ISA_AVX512:
		dropbits_avx512(level, n, bits, p, key);
		break;
	case LB_RQ_ISA_AVX2:
		dropbits_avx2(level, n, bits, p, key);
		break;
	default:
		dropbits_generic(level, n, bits, p, key);
	}
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
#else /* LB_RQ_VEC_PASS: the vector kernels of width VL (included above) */

#define VL LB_RQ_VEC_PASS
#define RQ_CAT2(a, b) a##_##b
#define RQ_CAT(a, b) RQ_CAT2(a, b)
#define RQ_N(x) RQ_CAT(x, LB_RQ_VEC_PASS)
#define vf RQ_N(vf)
#define vi RQ_N(vi)
#define vd RQ_N(vd)
#define vu8 RQ_N(vu8)
#define vu32 RQ_N(vu32)
#define vu64 RQ_N(vu64)
#define vphilox RQ_N(vphilox)
#define dropbits_body RQ_N(dropbits_body)
#define vb RQ_N(vb)
#define vsel RQ_N(vsel)
#define vload RQ_N(vload)
#define vstore RQ_N(vstore)
#define vexp RQ_N(vexp)
#define vexp_neg_clamped RQ_N(vexp_neg_clamped)
#define vround_clamp RQ_N(vround_clamp)
#define vlevel_range RQ_N(vlevel_range)
#define vedge_neg RQ_N(vedge_neg)
#define vhmin RQ_N(vhmin)
#define srq_vblock RQ_N(srq_vblock)
#define srq_backward_body RQ_N(srq_backward_body)
#define srq_forward_body RQ_N(srq_forward_body)
#define srq_gated_body RQ_N(srq_gated_body)
#define vblock_load RQ_N(vblock_load)
#define vblock_add_dx RQ_N(vblock_add_dx)

typedef float vf __attribute__((vector_size(4 * VL)));
typedef int32_t vi __attribute__((vector_size(4 * VL)));
typedef double vd __attribute__((vector_size(8 * VL)));
typedef uint8_t vu8 __attribute__((vector_size(VL)));
typedef uint32_t vu32 __attribute__((vector_size(4 * VL)));
typedef uint64_t vu64 __attribute__((vector_size(8 * VL)));

AI vf vb(float s)
{
	return (vf){0} + s;
}
AI vf vsel(vi m, vf a, vf b)
{
	return (vf)((m & (vi)a) | (~m & (vi)b));
}
AI vf vload(const float *p)
{
	vf v;
	memcpy(&v, p, sizeof(v));
	return v;
}
AI void vstore(float *p, vf v)
{
	memcpy(p, &v, sizeof(v));
}

/* exp(x) for x in [-86, 86] (Cephes expf: Cody-Waite reduction, degree-5
 * polynomial, ~1 ulp), the exponent added to the bits (kept normal). */
AI vf vexp(vf x)
{
	const vf magic = vb(12582912.0f); /* 1.5 * 2^23: round to nearest integer */
	const vf t = x * 1.44269504088896341f + magic;
	const vf fx = t - magic;
	const vi n = (vi)t - (vi)magic;
	vf r = x - fx * 0.693359375f;
	vf y;
	r = r - fx * -2.12194440e-4f;
	y = vb(1.9875691500e-4f);
	y = y * r + 1.3981999507e-3f;
	y = y * r + 8.3334519073e-3f;
	y = y * r + 4.1665795894e-2f;
	y = y * r + 1.6666665459e-1f;
	y = y * r + 5.0000001201e-1f;
	y = y * (r * r) + r + 1.0f;
	return (vf)((vi)y + (vi)((vu32)n << 23)); /* unsigned: no signed-shift UB */
}

/* exp(-t) with t clamped to [-86, 86] (NaN -> -86) */
AI vf vexp_neg_clamped(vf t)
{
	t = vsel(t > -86.0f, t, vb(-86.0f));
	t = vsel(t < 86.0f, t, vb(86.0f));
	return vexp(-t);
}

/* round half away from zero of q, clamped to [lo, hi] (integers as floats);
 * NaN -> lo. The same integer as round_clamp, never -0. */
AI vf vround_clamp(vf q, vf lo, vf hi)
{
	const vf lo1 = lo - 1.0f, hi1 = hi + 1.0f;
	vf a, k;
	q = vsel(q > lo1, q, lo1);
	q = vsel(q < hi1, q, hi1);
	a = (vf)((vi)q & 0x7fffffff);
	k = __builtin_convertvector(__builtin_convertvector(a, vi), vf);
	k = k + (vf)((a - k >= 0.5f) & (vi)vb(1.0f));
	k = vsel(q < 0.0f, 0.0f - k, k);
	k = vsel(k < lo, lo, k);
	return vsel(k > hi, hi, k);
}

/* Kept range [lo, hi] of the levels L (0 or > bits: bits) of VL elements. */
AI void vlevel_range(vf *lo, vf *hi, const uint8_t *level, int bits, int uns)
{
	vu8 b8;
	vi L, half, ok;
	memcpy(&b8, level, VL);
	L = __builtin_convertvector(b8, vi);
	ok = (L > 0) & (L <= bits);
	L = (ok & L) | (~ok & ((vi){0} + bits));
	half = (vi)(((vu32){0} + 1) << (vu32)(L - 1));
	if (uns) {
		*lo = vb(0.0f);
		*hi = __builtin_convertvector(2 * half - 1, vf);
	} else {
		*lo = __builtin_convertvector(-half, vf);
		*hi = __builtin_convertvector(half - 1, vf);
	}
}

/* smallest lane */
AI float vhmin(vf a)
{
	for (int i = 1; i < VL; i++)
		a[0] = a[i] < a[0] ? a[i] : a[0];
	return a[0];
}

/* c, -(1 - c) and -s at an edge, from -U (U = exp(-t)): the negated forms
 * let one select give the signed tail (+c below q, -(1 - c) above). */
AI void vedge_neg(vf *c, vf *ncu, vf *ns, vf Un)
{
	*c = 1.0f / (1.0f - Un);
	*ncu = *c * Un;
	*ns = *c * *ncu;
}

/* One block: S0 = g alpha s0, S1 = g alpha s1 - ref S0 with ref = mu_0 the
 * lane's first edge (so that the caller's S1 - q S0 does not cancel in
 * float) and the selected m of VL elements with kept ranges [klo, khi].
 * ranged == 0: every lane has the same points [span_lo, span_hi] (= klo, khi,
 * no window cut), chunks start at span_lo and the end edges come from the
 * same recurrence; ranged == 1: the loop runs over the interior edges of the
 * union [span_lo, span_hi] of the lanes' windows, masks each lane to its own
 * interior, chunk bases are m0 + i chunk (fixed by the grid) and the end
 * edges are evaluated directly; ranged == 2 (windows narrower than the kept
 * grid): as 1, but edges are counted from each lane's window start m - W
 * (span 0 .. 2W, chunk bases 0 + i chunk), so only 2W interior edges run. */
AI void srq_vblock(vf *S0o, vf *S1o, vf *refo, vf *mo, vf q, vf g, vf klo, vf khi, int span_lo,
		   int span_hi, const struct vctx *v, const int ranged)
{
	const float r = v->r;
	const vi sgn = (vi){0} + INT32_MIN;
	const vf m = vround_clamp(q, klo, khi);
	vf lo = klo, hi = khi, mu0, mun, c0, ncu0, ns0, cn, ncun, nsn, Usn = vb(0.0f);
	vf Wt = vb(0.0f), T0n = vb(0.0f), T1n = vb(0.0f), n, nm1, Na, S, U, V, b0, b1, fu;
	vf cu0, cun, s0e, sne;
	vi a0, an;
	int base, last = span_lo;

	if (ranged) {
		lo = m - (float)v->W;
		hi = m + (float)v->W;
		lo = vsel(lo > klo, lo, klo);
		hi = vsel(hi < khi, hi, khi);
	}
	mu0 = lo - 0.5f;
	mun = hi + 0.5f;
	if (ranged)
		vedge_neg(&c0, &ncu0, &ns0, -vexp_neg_clamped((mu0 - q) * r));
	else {
		Usn = -vexp_neg_clamped(((float)span_lo - 0.5f - q) * r);
		vedge_neg(&c0, &ncu0, &ns0, Usn);
	}
	/* chunks of edges base .. base+chunk-1, U restarted by one exp at each
	 * base; the interior edges are span_lo+1 .. span_hi */
	/* edge j is at mu = org + j - 1/2: org = 0 (ranged 0, 1) or the lane's
	 * window start m - W (ranged 2, span 0 .. 2W) */
	base = ranged == 1 ? v->m0 + (span_lo - v->m0) / v->chunk * v->chunk : span_lo;
	for (; base <= span_hi; base += v->chunk) {
		const int k0 = span_lo + 1 - base > 0 ? span_lo + 1 - base : 0;
		const int k1 = span_hi - base < v->chunk - 1 ? span_hi - base : v->chunk - 1;
		const vf in_lo = lo + 0.5f, in_hi = hi - 0.5f;
		vf muv = (ranged == 2 ? m - (float)v->W : vb(0.0f)) + ((float)(base + k0) - 1.5f), dv;
		if (k0 > k1)
			continue;
		last = base;
		dv = muv - mu0; /* muv = mu_j, dv = mu_j - mu_0 (both exact) */
		if (ranged || base > span_lo)
			Usn = -vexp_neg_clamped((muv + 1.0f - (float)k0 - q) * r);
		for (int k = k0; k <= k1; k++) {
			const vf Un = Usn * v->rpow[k];
			const vf c = 1.0f / (1.0f - Un);
			const vf ncu = c * Un;
			vf ns = c * ncu, w;
			vi above;
			muv += 1.0f;
			dv += 1.0f;
			above = muv >= q;
			w = vsel(above, ncu, c);
			if (ranged) {
				const vi in = (muv >= in_lo) & (muv <= in_hi);
				w = (vf)((vi)w & in);
				ns = (vf)((vi)ns & in);
			}
			Wt += w;
			T0n += ns;
			T1n += ns * dv;
		}
	}
	if (ranged)
		vedge_neg(&cn, &ncun, &nsn, -vexp_neg_clamped((mun - q) * r));
	else {
		if (span_hi + 1 - last == v->chunk) {
			last = span_hi + 1;
			Usn = -vexp_neg_clamped(((float)span_hi + 0.5f - q) * r);
		}
		vedge_neg(&cn, &ncun, &nsn, Usn * v->rpow[span_hi + 1 - last]);
	}
	cu0 = (vf)((vi)ncu0 ^ sgn);
	cun = (vf)((vi)ncun ^ sgn);
	s0e = (vf)((vi)ns0 ^ sgn);
	sne = (vf)((vi)nsn ^ sgn);
	n = hi - lo + 1.0f;
	nm1 = n - 1.0f;
	{
		/* interior edges above q: j in [lo+1, hi] with j - 1/2 >= q (the
		 * loop's predicate), i.e. j >= jq = floor(q) + 1 + [floor(q) + 1/2 < q];
		 * q clamped first, so the conversions and floor(q) + 1/2 are exact */
		vf qc = vsel(q > lo - 1.0f, q, lo - 1.0f), jq, fl;
		qc = vsel(qc < hi + 1.0f, qc, hi + 1.0f);
		fl = __builtin_convertvector(__builtin_convertvector(qc, vi), vf); /* trunc */
		fl = fl - (vf)((fl > qc) & (vi)vb(1.0f));                          /* floor */
		jq = fl + 1.0f + (vf)((fl + 0.5f < qc) & (vi)vb(1.0f));
		jq = vsel(jq > lo + 1.0f, jq, lo + 1.0f);
		jq = vsel(jq < hi + 1.0f, jq, hi + 1.0f);
		Na = hi + 1.0f - jq;
	}
	a0 = mu0 >= q;
	an = mun >= q;
	S = vsel(a0, cu0 - cun, vsel(an, (1.0f - cun) - c0, cn - c0)) + n * (float)LB_RQ_FUZZ;
	fu = (float)LB_RQ_FUZZ * (n * nm1 * 0.5f);
	U = vsel(an, ((nm1 - Na) - nm1 * cun) - Wt, (nm1 * cn - Na) - Wt) + fu;
	V = vsel(a0, nm1 * cu0 + Wt, (Na + Wt) - nm1 * c0) + fu;
	S = 1.0f / S;
	b0 = U * S * s0e;
	b1 = V * S * sne;
	*S0o = g * v->alpha * ((b0 + T0n + b1) * S);
	*S1o = g * v->alpha * ((T1n + b1 * (mun - mu0)) * S); /* b0 (mu0 - mu0) = 0 */
	*refo = mu0;
	*mo = m;
}

/* The block of cnt <= VL elements at e0 of the SRQ backwards: q = x/alpha,
 * g = dy and, with per-element levels, each lane's kept range; a tail is
 * padded with x = dy = 0 (contributes exactly 0). */
AI void vblock_load(vf *q, vf *g, vf *klo, vf *khi, const float *x, const float *dy,
		    const uint8_t *level, size_t e0, size_t cnt, const struct vctx *v)
{
	if (cnt == VL) {
		*q = vload(x + e0) / v->alpha;
		*g = vload(dy + e0);
		if (level)
			vlevel_range(klo, khi, level + e0, v->bits, v->uns);
		return;
	}
	float xb[VL] = {0}, gb[VL] = {0};
	uint8_t lb[VL] = {0};
	for (size_t i = 0; i < cnt; i++) {
		xb[i] = x[e0 + i];
		gb[i] = dy[e0 + i];
		lb[i] = level ? level[e0 + i] : 0;
	}
	*q = vload(xb) / v->alpha;
	*g = vload(gb);
	if (level)
		vlevel_range(klo, khi, lb, v->bits, v->uns);
}

/* dx[e0 .. e0+cnt) += -S0/sigma */
AI void vblock_add_dx(float *dx, size_t e0, size_t cnt, vf S0, const struct vctx *v)
{
	if (cnt == VL) {
		vstore(dx + e0, vload(dx + e0) + S0 * v->neg_inv_sigma);
		return;
	}
	float d[VL];
	vstore(d, S0 * v->neg_inv_sigma);
	for (size_t i = 0; i < cnt; i++)
		dx[e0 + i] += d[i];
}

/* The backward over all elements (no gates, identity STE). keep: the kept
 * level of every element when level == NULL. [out] sums[0] = dL/dalpha,
 * sums[1] = sum (S1 - q S0) (dL/dsigma = -(alpha/sigma^2) sums[1]). */
AI void srq_backward_body(float *dx, double *sums, const float *dy, const float *x, size_t n,
			  const uint8_t *level, int keep, const struct vctx *v)
{
	/* 16 virtual lanes = 16/VL blocks; float partials over 256 elements */
	enum { NSUB = 16 / VL };
	vd acc_a[NSUB], acc_s[NSUB];
	vf fa[NSUB], fs[NSUB];
	int klo_i, khi_i, ranged;
	vf klo, khi;
	size_t blk = 0;

	for (int i = 0; i < NSUB; i++) {
		acc_a[i] = acc_s[i] = (vd){0};
		fa[i] = fs[i] = vb(0.0f);
	}
	lb_rq_level_range(&klo_i, &khi_i, keep, v->uns);
	klo = vb((float)klo_i);
	khi = vb((float)khi_i);
	ranged = srq_ranged(level, keep, v);
	for (size_t e0 = 0; e0 < n; e0 += VL, blk++) {
		const size_t cnt = n - e0 < VL ? n - e0 : VL;
		const int sub = (int)(blk % NSUB);
		vf q, g, S0, S1, ref, m;
		vblock_load(&q, &g, &klo, &khi, x, dy, level, e0, cnt, v);
		if (ranged && 2 * v->W < khi_i - klo_i) /* narrow windows: relative */
			srq_vblock(&S0, &S1, &ref, &m, q, g, klo, khi, 0, 2 * v->W, v, 2);
		else if (ranged) {
			/* the union of the lanes' windows */
			const vf mm = vround_clamp(q, klo, khi);
			vf l = mm - (float)v->W, h = mm + (float)v->W;
			l = vsel(l > klo, l, klo);
			h = vsel(h < khi, h, khi);
			srq_vblock(&S0, &S1, &ref, &m, q, g, klo, khi, (int)vhmin(l), -(int)vhmin(-h),
				   v, 1);
		} else
			srq_vblock(&S0, &S1, &ref, &m, q, g, klo, khi, klo_i, khi_i, v, 0);
		if (dx)
			vblock_add_dx(dx, e0, cnt, S0, v);
		/* per element in float: dalpha gets S1/sigma + g m, dsigma
		 * S1 - q S0 = S1rel + (mu_0 - q) S0 (no cancellation) */
		fa[sub] += (S1 + ref * S0) * v->inv_sigma + g * m;
		fs[sub] += S1 + (ref - q) * S0;
		if ((blk + 1) % (16 * NSUB) == 0)
			for (int i = 0; i < NSUB; i++) {
				acc_a[i] += __builtin_convertvector(fa[i], vd);
				acc_s[i] += __builtin_convertvector(fs[i], vd);
				fa[i] = fs[i] = vb(0.0f);
			}
	}
	sums[0] = sums[1] = 0.0;
	for (int i = 0; i < NSUB; i++) {
		acc_a[i] += __builtin_convertvector(fa[i], vd);
		acc_s[i] += __builtin_convertvector(fs[i], vd);
		for (int j = 0; j < VL; j++) {
			sums[0] += acc_a[i][j];
			sums[1] += acc_s[i][j];
		}
	}
}

/* y = alpha m, m = round-and-clamp to the kept range of each element */
AI void srq_forward_body(float *y, const float *x, size_t n, const uint8_t *level, int keep,
			 const struct vctx *v)
{
	int klo_i, khi_i;
	vf klo, khi;
	lb_rq_level_range(&klo_i, &khi_i, keep, v->uns);
	klo = vb((float)klo_i);
	khi = vb((float)khi_i);
	for (size_t e0 = 0; e0 < n; e0 += VL) {
		const size_t cnt = n - e0 < VL ? n - e0 : VL;
		float xb[VL] = {0}, yb[VL];
		uint8_t lb[VL] = {0};
		if (cnt == VL) {
			if (level)
				vlevel_range(&klo, &khi, level + e0, v->bits, v->uns);
			vstore(y + e0, v->alpha * vround_clamp(vload(x + e0) / v->alpha, klo, khi));
			continue;
		}
		for (size_t i = 0; i < cnt; i++) {
			xb[i] = x[e0 + i];
			lb[i] = level ? level[e0 + i] : 0;
		}
		if (level)
			vlevel_range(&klo, &khi, lb, v->bits, v->uns);
		vstore(yb, v->alpha * vround_clamp(vload(xb) / v->alpha, klo, khi));
		for (size_t i = 0; i < cnt; i++)
			y[e0 + i] = yb[i];
	}
}

/* Gated SRQ backward with the identity STE and the hard gate forward
 * (methods.md 2.3-2.4): srq_general for these settings, VL elements at a
 * time. Each lane's points are its window [wl, wh] (its DropBits-kept range
 * cut to +-W around the hard selection, which rounds to the kept range capped
 * at the gate level), weighted by Zbar of their level. The loop runs over the
 * union of the lanes' windows and computes every edge once: e = exp(-|t|)
 * (one vector exp per edge), s = e/(1+e)^2 and D from the smaller tails (as
 * edges_fast, no cancellation); with p = w (D + eps):
 *   Sw = sum p, rbar = sum p m / Sw, a = g alpha w (m - rbar) / Sw,
 *   dL/dZbar_n(m) += g alpha (D + eps) (m - rbar) / Sw   (points in the window),
 *   S0 = sum_j (a_{j-1} - a_j) s_j, S1q = sum_j (a_{j-1} - a_j) s_j (mu_j - q).
 * dx += -S0/sigma; sums[0] += sum (S1q + q S0)/sigma + g m (dL/dalpha),
 * sums[1] += sum S1q (S1 - q S0, for dL/dsigma); dzbar[k] += dL/dZbar_k.
 * Tensor sums use 16 virtual lanes as srq_backward_body: the same bits for
 * every VL. */
AI void srq_gated_body(float *dx, double *sums, double *dzbar, const float *dy, const float *x,
		       size_t n, const uint8_t *level, int keep, const struct vctx *v)
{
	enum { NSUB = 16 / VL, NL = LB_RQ_MAX_BITS + 1 };
	vd acc_a[NSUB], acc_s[NSUB], acc_z[NSUB][NL];
	vf fa[NSUB], fs[NSUB], fz[NSUB][NL];
	vf Dv[MAX_K], Wv[MAX_K], Sv[MAX_K + 1];
	int klo_i, khi_i, glo_i, ghi_i;
	vf klo, khi, glo, ghi;
	size_t blk = 0;

	for (int i = 0; i < NSUB; i++) {
		acc_a[i] = acc_s[i] = (vd){0};
		fa[i] = fs[i] = vb(0.0f);
		for (int k = 0; k < NL; k++) {
			acc_z[i][k] = (vd){0};
			fz[i][k] = vb(0.0f);
		}
	}
	lb_rq_level_range(&klo_i, &khi_i, keep, v->uns);
	lb_rq_level_range(&glo_i, &ghi_i, v->gate_level, v->uns);
	klo = vb((float)klo_i);
	khi = vb((float)khi_i);
	glo = vb((float)glo_i);
	ghi = vb((float)ghi_i);
	for (size_t e0 = 0; e0 < n; e0 += VL, blk++) {
		const size_t cnt = n - e0 < VL ? n - e0 : VL;
		const int sub = (int)(blk % NSUB);
		vf q, g;
		vblock_load(&q, &g, &klo, &khi, x, dy, level, e0, cnt, v);
		const vf hl = vsel(klo > glo, klo, glo), hh = vsel(khi < ghi, khi, ghi);
		const vf m = vround_clamp(q, hl, hh), gal = g * v->alpha;
		vf wl = m - (float)v->W, wh = m + (float)v->W;
		wl = vsel(wl > klo, wl, klo);
		wh = vsel(wh < khi, wh, khi);
		const int lo = (int)vhmin(wl), hi = -(int)vhmin(-wh), np = hi - lo + 1;
		vf t = (((float)lo - 0.5f) - q) * v->r;
		vf e = vexp_neg_clamped((vf)((vi)t & 0x7fffffff)), inv = 1.0f / (1.0f + e);
		vi above = t >= 0.0f;
		vf Sw = vb(0.0f), Sm = vb(0.0f);
		Sv[0] = e * inv * inv;
		for (int j = 0; j < np; j++) {
			const float mf = (float)(lo + j);
			const vf t1 = ((mf + 0.5f) - q) * v->r;
			const vf e1 = vexp_neg_clamped((vf)((vi)t1 & 0x7fffffff));
			const vf inv1 = 1.0f / (1.0f + e1);
			const vi above1 = t1 >= 0.0f;
			const vf num = vsel(above, e, vsel(above1, vb(1.0f), e1));
			const vf D = v->omr * inv * inv1 * num + (float)LB_RQ_FUZZ;
			const vi act = (mf >= wl) & (mf <= wh);
			const vf w = vsel(act, vb(v->wz[lo + j - v->m0]), vb(0.0f)), p = w * D;
			Dv[j] = D;
			Wv[j] = w;
			Sv[j + 1] = e1 * inv1 * inv1;
			Sw += p;
			Sm += p * mf;
			e = e1;
			inv = inv1;
			above = above1;
		}
		const vf rbar = Sm / Sw;
		vf aprev = vb(0.0f), S0 = vb(0.0f), S1q = vb(0.0f);
		for (int j = 0; j < np; j++) {
			const float mf = (float)(lo + j);
			const vf dr = mf - rbar;
			const vf a = gal * (Wv[j] / Sw * dr), ws = (aprev - a) * Sv[j];
			const vi act = (mf >= wl) & (mf <= wh);
			S0 += ws;
			S1q += ws * ((mf - 0.5f) - q);
			fz[sub][v->lev[lo + j - v->m0]] += vsel(act, gal * (Dv[j] / Sw * dr), vb(0.0f));
			aprev = a;
		}
		{
			const vf ws = aprev * Sv[np];
			S0 += ws;
			S1q += ws * (((float)hi + 0.5f) - q);
		}
		if (dx)
			vblock_add_dx(dx, e0, cnt, S0, v);
		fa[sub] += (S1q + q * S0) * v->inv_sigma + g * m;
		fs[sub] += S1q;
		if ((blk + 1) % (16 * NSUB) == 0)
			for (int i = 0; i < NSUB; i++) {
				acc_a[i] += __builtin_convertvector(fa[i], vd);
				acc_s[i] += __builtin_convertvector(fs[i], vd);
				fa[i] = fs[i] = vb(0.0f);
				for (int k = 1; k <= v->bits; k++) {
					acc_z[i][k] += __builtin_convertvector(fz[i][k], vd);
					fz[i][k] = vb(0.0f);
				}
			}
	}
	for (int i = 0; i < NSUB; i++) {
		acc_a[i] += __builtin_convertvector(fa[i], vd);
		acc_s[i] += __builtin_convertvector(fs[i], vd);
		for (int k = 1; k <= v->bits; k++)
			acc_z[i][k] += __builtin_convertvector(fz[i][k], vd);
		for (int j = 0; j < VL; j++) {
			sums[0] += acc_a[i][j];
			sums[1] += acc_s[i][j];
			for (int k = 1; k <= v->bits && dzbar; k++)
				dzbar[k] += acc_z[i][k][j];
		}
	}
}

/* Philox4x32-10 (Random123, as lb_rng_block) of VL counters that differ in
 * words 2 and 3 only: out[w] = word w of block (seed, purpose, epoch, index). */
AI void vphilox(vu32 out[4], uint64_t seed, uint32_t purpose, uint32_t epoch, vu32 c2, vu32 c3)
{
	vu32 c0 = (vu32){0} + purpose, c1 = (vu32){0} + epoch;
	uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
	for (int round = 0; round < 10; round++) {
		const vu64 p0 = __builtin_convertvector(c0, vu64) * 0xD2511F53u;
		const vu64 p1 = __builtin_convertvector(c2, vu64) * 0xCD9E8D57u;
		const vu32 hi0 = __builtin_convertvector(p0 >> 32, vu32);
		const vu32 hi1 = __builtin_convertvector(p1 >> 32, vu32);
		const vu32 lo0 = __builtin_convertvector(p0, vu32);
		const vu32 lo1 = __builtin_convertvector(p1, vu32);
		if (round > 0) {
			k0 += 0x9E3779B9u;
			k1 += 0xBB67AE85u;
		}
		c0 = hi1 ^ c1 ^ k0;
		c1 = lo1;
		c2 = hi0 ^ c3 ^ k1;
		c3 = lo0;
	}
	out[0] = c0;
	out[1] = c1;
	out[2] = c2;
	out[3] = c3;
}

/* lb_dropbits_sample (train) for elements [0, n) */
AI void dropbits_body(uint8_t *level, size_t n, int bits, const float *p,
		      const struct lb_rq_key *key)
{
	vu32 lane;
	for (int i = 0; i < VL; i++)
		lane[i] = (uint32_t)i;
	for (size_t e0 = 0; e0 < n; e0 += VL) {
		const size_t cnt = n - e0 < VL ? n - e0 : VL;
		vu32 w[4], idx_lo, idx_hi;
		vi L = (vi){0} + 1, alive = (vi){0} - 1;
		uint8_t out[VL];
		int blk = -1;
		{
			/* index = ((base + e) << 6) | blk: 64-bit, split in words */
			const uint64_t b0 = (key->base + e0) << 6;
			const vu32 off = lane << 6;
			idx_lo = (vu32){0} + (uint32_t)b0;
			idx_hi = (vu32){0} + (uint32_t)(b0 >> 32);
			idx_hi += (vu32)((idx_lo + off) < idx_lo) & 1u; /* carry */
			idx_lo += off;
		}
		for (int k = 2; k <= bits; k++) {
			const int j = k - 2;
			vf u;
			vi on;
			if (j >> 2 != blk) {
				blk = j >> 2;
				vphilox(w, key->seed, LB_RNG_DROPBITS, key->step, idx_lo | (uint32_t)blk,
					idx_hi);
			}
			u = (__builtin_convertvector(w[j & 3] >> 8, vf) + 0.5f) * (1.0f / 16777216.0f);
			on = alive & (u >= p[k]);
			L = (on & k) | (~on & L);
			alive = on;
		}
		for (int i = 0; i < VL; i++)
			out[i] = (uint8_t)L[i];
		memcpy(level + e0, out, cnt);
	}
}

#undef vf
#undef vi
#undef vd
#undef vu8
#undef vu32
#undef vu64
#undef vphilox
#undef dropbits_body
#undef vb
#undef vsel
#undef vload
#undef vstore
#undef vexp
#undef vexp_neg_clamped
#undef vround_clamp
#undef vlevel_range
#undef vedge_neg
#undef vhmin
#undef srq_vblock
#undef srq_backward_body
#undef srq_forward_body
#undef srq_gated_body
#undef vblock_load
#undef vblock_add_dx
#undef RQ_N
#undef RQ_CAT
#undef RQ_CAT2
#undef VL
#endif /* LB_RQ_VEC_PASS */
