/* SPDX-License-Identifier: MIT
 * Tests for core/quant/rq.c: RQ concrete gradients against float64 central
 * differences with the noise held fixed; the SRQ multi-class STE against the
 * surrogate d E_pi[g] and the tempered (tau = 1) variant; SRQ forward ==
 * round-and-clamp bit for bit (fast and reference); DropBits nesting, rates
 * and determinism; hard-concrete gates and the bit-cost penalty against
 * central differences; fast kernels == their *_ref twins (SRQ gradients
 * within LB_RQ_GRAD_TOL); the vector SRQ kernels and DropBits sampling give
 * the same bits on every ISA the CPU has and for any position in a block. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/rq.h"
#include "rng.h"
#include "util.h"
#include "../tap.h"

#define SEED 20240611ULL
#define MAXK 256
/* fast identity-STE SRQ backward vs its double twin (rq.h: LB_RQ_GRAD_TOL) */
#define SRQ_TOL LB_RQ_GRAD_TOL

static float *fnew(size_t n)
{
	return calloc(n ? n : 1, sizeof(float));
}

static float unif(uint32_t tag, uint64_t i, float lo, float hi)
{
	return lo + (hi - lo) * lb_rng_uniform(SEED, LB_RNG_TEST, tag, i);
}

/* ||a - b|| / max(||a||, ||b||) */
static double rel_err(const double *a, const double *b, size_t n)
{
	double d = 0.0, na = 0.0, nb = 0.0;
	for (size_t i = 0; i < n; i++) {
		d += (a[i] - b[i]) * (a[i] - b[i]);
		na += a[i] * a[i];
		nb += b[i] * b[i];
	}
	na = fmax(sqrt(na), sqrt(nb));
	return na > 0.0 ? sqrt(d) / na : 0.0;
}

static double rel1(double a, double b)
{
	const double m = fmax(fabs(a), fabs(b));
	return m > 0.0 ? fabs(a - b) / m : 0.0;
}

static double rel_errf(const float *a, const float *b, size_t n)
{
	double d = 0.0, na = 0.0, nb = 0.0;
	for (size_t i = 0; i < n; i++) {
		d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
		na += (double)a[i] * a[i];
		nb += (double)b[i] * b[i];
	}
	na = fmax(sqrt(na), sqrt(nb));
	return na > 0.0 ? sqrt(d) / na : 0.0;
}

/* independent round-half-away-from-zero of fl(x/alpha), clamped */
static float round_clamp_ref(float x, float alpha, int lo, int hi)
{
	const double q = (double)(x / alpha);
	double m = q >= 0.0 ? floor(q + 0.5) : -floor(-q + 0.5);
	if (isnan(q))
		m = lo;
	m = m < lo ? lo : m > hi ? hi : m;
	return alpha * (float)m;
}

/* Test inputs: uniform over 1.5x the grid range, plus near-boundary points
 * (half-way +- a few ulps, exactly half-way), grid points and far outliers. */
static void fill_inputs(float *x, size_t n, float alpha, int m0, int K, uint32_t tag)
{
	for (size_t i = 0; i < n; i++) {
		const float lo = alpha * ((float)m0 - 0.5f * K), hi = alpha * ((float)(m0 + K) + 0.5f * K);
		const int kind = (int)(i % 8);
		const int m = m0 - 2 + (int)lb_rng_below(SEED, LB_RNG_TEST, tag + 1, i, (uint32_t)K + 4);
		float v = alpha * ((float)m + 0.5f);
		switch (kind) {
		case 0:
		case 1:
		case 2:
			x[i] = unif(tag, i, lo, hi);
			break;
		case 3:
			x[i] = v;
			break;
		case 4:
			for (int k = 0; k < 1 + (int)(i % 3); k++)
				v = nextafterf(v, INFINITY);
			x[i] = v;
			break;
		case 5:
			for (int k = 0; k < 1 + (int)(i % 3); k++)
				v = nextafterf(v, -INFINITY);
			x[i] = v;
			break;
		case 6:
			x[i] = alpha * (float)m;
			break;
		default:
			x[i] = (i & 8 ? 1.0f : -1.0f) * unif(tag, i, 10.0f, 1e6f) * alpha * (float)K;
		}
	}
}

/* ---- grid helpers ---- */

static void test_levels(void)
{
	static const int want_s[8] = {3, 3, 2, 1, 1, 2, 3, 3}; /* m = -4..3 */
	static const int want_u[8] = {1, 1, 2, 2, 3, 3, 3, 3}; /* m = 0..7 */
	int ok_s = 1, ok_u = 1, nested = 1;
	for (int i = 0; i < 8; i++) {
		ok_s &= lb_rq_level_of(i - 4, 0) == want_s[i];
		ok_u &= lb_rq_level_of(i, 1) == want_u[i];
	}
	ok(ok_s, "signed levels n(m) of the 3-bit grid");
	ok(ok_u, "unsigned levels n(m) of the 3-bit grid");
	/* {m : n(m) <= L} is exactly the L-bit grid, for every b and L */
	for (int uns = 0; uns < 2; uns++)
		for (int b = 1; b <= LB_RQ_MAX_BITS; b++) {
			struct lb_rq_spec sp;
			lb_rq_spec_default(&sp, b, uns);
			for (int L = 1; L <= b; L++) {
				int lo, hi;
				lb_rq_level_range(&lo, &hi, L, uns);
				for (int i = 0; i < (1 << b); i++) {
					const int m = lb_rq_grid_min(&sp) + i;
					nested &= (lb_rq_level_of(m, uns) <= L) == (m >= lo && m <= hi);
				}
				nested &= hi - lo + 1 == (1 << L);
			}
		}
	ok(nested, "surviving set of every level is a full lower-bit grid (2^L points)");
	{
		struct lb_rq_spec sp;
		lb_rq_spec_default(&sp, 4, 0);
		is_int(lb_rq_window(&sp, 1.0f, 1.0f), 15, "full grid window");
		sp.delta = 3.0f;
		is_int(lb_rq_window(&sp, 1.0f, 0.5f), 1, "window floor(3*0.5/1)");
		is_int(lb_rq_window(&sp, 0.1f, 1.0f), 15, "window capped at K-1");
		ok(lb_rq_spec_check(&sp) == 0, "spec check accepts defaults");
		sp.bits = 9;
		ok(lb_rq_spec_check(&sp) != 0, "spec check rejects 9 bits");
	}
}

/* ---- SRQ forward ---- */

static void test_srq_forward(void)
{
	const size_t n = 4096;
	float *x = fnew(n), *y = fnew(n), *yr = fnew(n), *y2 = fnew(n);
	int fast_ok = 1, ref_ok = 1, idem = 1, levels_ok = 1, zero_ok = 1;
	for (int uns = 0; uns < 2; uns++)
		for (int b = 1; b <= 4; b++)
			for (int si = 0; si < 3; si++) {
				struct lb_rq_spec sp;
				const float alpha = 0.037f * (float)(b + 1), sig[3] = {0.3f, 1.0f, 3.0f};
				const float sigma = sig[si] * alpha;
				int lo, hi, seen[MAXK] = {0}, count = 0;
				lb_rq_spec_default(&sp, b, uns);
				lo = lb_rq_grid_min(&sp);
				hi = lo + (1 << b) - 1;
				fill_inputs(x, n, alpha, lo, 1 << b, (uint32_t)(100 + 10 * b + uns));
				lb_srq_forward(y, x, n, &sp, alpha, sigma, NULL);
				lb_srq_forward_ref(yr, x, n, &sp, alpha, sigma, NULL);
				for (size_t i = 0; i < n; i++) {
					const float want = round_clamp_ref(x[i], alpha, lo, hi);
					if (y[i] != want && fast_ok) {
						diag("fast b=%d uns=%d x=%.9g got %.9g want %.9g", b, uns,
						     (double)x[i], (double)y[i], (double)want);
						fast_ok = 0;
					}
					if (yr[i] != want && ref_ok) {
						diag("ref b=%d uns=%d sigma/alpha=%g x=%.9g got %.9g want %.9g",
						     b, uns, (double)sig[si], (double)x[i], (double)yr[i],
						     (double)want);
						ref_ok = 0;
					}
					{
						const int m = (int)lrintf(y[i] / alpha) - lo;
						if (m >= 0 && m < MAXK && !seen[m]) {
							seen[m] = 1;
							count++;
						}
					}
				}
				levels_ok &= count <= (1 << b);
				lb_srq_forward(y2, y, n, &sp, alpha, sigma, NULL);
				idem &= memcmp(y, y2, n * sizeof(float)) == 0;
				x[0] = 0.0f;
				lb_srq_forward(y2, x, 1, &sp, alpha, sigma, NULL);
				zero_ok &= y2[0] == 0.0f;
			}
	ok(fast_ok, "SRQ forward == round-and-clamp exactly (bits 1-4, signed/unsigned, near-boundary, out of range)");
	ok(ref_ok, "SRQ forward_ref (argmax of full pi) == round-and-clamp exactly");
	ok(idem, "SRQ forward is idempotent");
	ok(levels_ok, "at most 2^b distinct outputs");
	ok(zero_ok, "zero maps to zero");
	free(x);
	free(y);
	free(yr);
	free(y2);
}

/* ---- SRQ backward: surrogate derivative ---- */

/* E(x) = sum_i alpha m_i pi_i(x) over [lo, hi] (full grid: 0..K-1) */
static double expect_g(double x, double alpha, double sigma, const struct lb_rq_spec *sp, int lo,
		       int hi, const float *zbar)
{
	double pi[MAXK], E = 0.0, S = 0.0;
	const int m0 = lb_rq_grid_min(sp);
	lb_rq_probs_ref(pi, x, alpha, sigma, sp, lo, hi);
	for (int i = lo; i <= hi; i++) {
		const double w = zbar ? zbar[lb_rq_level_of(m0 + i, sp->is_unsigned)] : 1.0;
		E += w * pi[i] * alpha * (m0 + i);
		S += w * pi[i];
	}
	return E / S;
}

struct srq_case {
	int bits, uns;
	float alpha, sigma, delta;
	const char *name;
};

/* Elements with fl(x/alpha) not within 0.02 of a half-way point, so the hard
 * selection and the window do not move under the central differences. */
static void fill_smooth(float *x, size_t n, float alpha, int m0, int K, uint32_t tag)
{
	for (size_t i = 0; i < n; i++) {
		float v;
		do {
			v = unif(tag, i, alpha * ((float)m0 - 2.0f), alpha * ((float)(m0 + K) + 1.0f));
			tag += 7919;
		} while (fabs(fmod(fabs((double)v / alpha) + 0.5, 1.0) - 0.0) < 0.02 ||
			 fabs(fmod(fabs((double)v / alpha) + 0.5, 1.0) - 1.0) < 0.02);
		x[i] = v;
	}
}

static void test_srq_surrogate(void)
{
	static const struct srq_case cases[] = {
		{2, 0, 0.5f, 0.5f, 0.0f, "2-bit signed sigma=alpha"},
		{4, 0, 0.1f, 0.03f, 0.0f, "4-bit signed sigma=0.3 alpha"},
		{4, 1, 0.2f, 0.6f, 0.0f, "4-bit unsigned sigma=3 alpha"},
		{4, 0, 0.1f, 0.13f, 3.0f, "4-bit signed local window W=3"},
		{3, 1, 0.25f, 0.25f, 0.0f, "3-bit unsigned sigma=alpha"},
	};
	const size_t n = 64;
	float *x = fnew(n), *dy = fnew(n), *dxf = fnew(n), *dxr = fnew(n);
	double *ga = calloc(n, sizeof(double)), *gn = calloc(n, sizeof(double));
	double *gr = calloc(n, sizeof(double));
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		const struct srq_case *C = &cases[c];
		struct lb_rq_spec sp;
		double da = 0.0, ds = 0.0, dar = 0.0, dsr = 0.0, na = 0.0, ns = 0.0, direct = 0.0;
		int m0, K, W;
		lb_rq_spec_default(&sp, C->bits, C->uns);
		sp.delta = C->delta;
		m0 = lb_rq_grid_min(&sp);
		K = 1 << C->bits;
		W = lb_rq_window(&sp, C->alpha, C->sigma);
		fill_smooth(x, n, C->alpha, m0, K, (uint32_t)(300 + c));
		for (size_t i = 0; i < n; i++) {
			dy[i] = unif(400, i, -1.0f, 1.0f);
			dxf[i] = dxr[i] = 0.0f;
		}
		lb_srq_backward(dxf, &da, &ds, dy, x, n, &sp, C->alpha, C->sigma, NULL);
		lb_srq_backward_ref(dxr, &dar, &dsr, dy, x, n, &sp, C->alpha, C->sigma, NULL);
		/* numeric: L = sum_e dy_e E(x_e) with the window of each element fixed */
		for (size_t i = 0; i < n; i++) {
			const double xi = x[i], h = 1e-6 * C->alpha;
			const int sel = (int)lrintf(round_clamp_ref(x[i], C->alpha, m0, m0 + K - 1) /
						    C->alpha) - m0;
			const int lo = sel - W < 0 ? 0 : sel - W, hi = sel + W > K - 1 ? K - 1 : sel + W;
			const double ha = 1e-6 * C->alpha, hs = 1e-6 * C->sigma;
			gn[i] = dy[i] * (expect_g(xi + h, C->alpha, C->sigma, &sp, lo, hi, NULL) -
					 expect_g(xi - h, C->alpha, C->sigma, &sp, lo, hi, NULL)) /
				(2 * h);
			na += dy[i] * (expect_g(xi, C->alpha + ha, C->sigma, &sp, lo, hi, NULL) -
				       expect_g(xi, C->alpha - ha, C->sigma, &sp, lo, hi, NULL)) /
			      (2 * ha);
			ns += dy[i] * (expect_g(xi, C->alpha, C->sigma + hs, &sp, lo, hi, NULL) -
				       expect_g(xi, C->alpha, C->sigma - hs, &sp, lo, hi, NULL)) /
			      (2 * hs);
			/* kernel: dy (m_sel + alpha sum m dpi/dalpha); E: dy (E_pi[m] + same) */
			direct += (double)dy[i] * ((m0 + sel) - expect_g(xi, C->alpha, C->sigma, &sp, lo, hi,
									   NULL) / C->alpha);
			ga[i] = dxf[i];
			gr[i] = dxr[i];
		}
		{
			const double ex = rel_err(ga, gn, n), exr = rel_err(gr, gn, n);
			const double ea = rel1(da - direct, na), ear = rel1(dar - direct, na);
			const double es = rel1(ds, ns), esr = rel1(dsr, ns);
			diag("%s: dx rel %.2e (ref %.2e), dalpha %.2e (%.2e), dsigma %.2e (%.2e)",
			     C->name, ex, exr, ea, ear, es, esr);
			ok(exr < 1e-6 && ear < 1e-6 && esr < 1e-6,
			   "SRQ ref backward == d E_pi[g] (x, alpha, sigma) by central differences: %s",
			   C->name);
			ok(ex < 2e-4 && ea < 2e-4 && es < 2e-4,
			   "SRQ fast backward == d E_pi[g] (x, alpha, sigma): %s", C->name);
		}
	}
	free(x);
	free(dy);
	free(dxf);
	free(dxr);
	free(ga);
	free(gn);
	free(gr);
}

/* Analytic identity STE for one element: dL/dx = g sum_i g_i dpi_i/dx with
 * dpi_i/dx from central differences of each pi_i separately. */
static void test_srq_formula(void)
{
	struct lb_rq_spec sp;
	const float alpha = 0.2f, sigma = 0.17f, g = -0.7f;
	double worst = 0.0;
	lb_rq_spec_default(&sp, 3, 0);
	for (int t = 0; t < 16; t++) {
		const float x = unif(500, (uint64_t)t, -1.2f, 1.0f);
		double pp[MAXK], pm[MAXK], ana = 0.0, dA = 0.0, dS = 0.0;
		float dx = 0.0f;
		const double h = 1e-7;
		lb_rq_probs_ref(pp, (double)x + h, alpha, sigma, &sp, 0, 7);
		lb_rq_probs_ref(pm, (double)x - h, alpha, sigma, &sp, 0, 7);
		for (int i = 0; i < 8; i++)
			ana += g * (alpha * (i - 4)) * (pp[i] - pm[i]) / (2 * h);
		lb_srq_backward_ref(&dx, &dA, &dS, &g, &x, 1, &sp, alpha, sigma, NULL);
		worst = fmax(worst, fabs(dx - ana) / fmax(fabs(ana), 1e-3));
	}
	ok(worst < 1e-5, "SRQ backward == g sum_i g_i dpi_i/dx (max rel %.2e)", worst);
}

/* tempered STE with tau = 1 == identity STE; tau = 0.5 fast == ref */
static void test_srq_tempered(void)
{
	const size_t n = 512;
	float *x = fnew(n), *dy = fnew(n), *d1 = fnew(n), *d2 = fnew(n), *d3 = fnew(n), *d4 = fnew(n);
	float z[9], zbar[9];
	struct lb_rq_spec sp;
	const float alpha = 0.1f, sigma = 0.08f;
	double a1 = 0, s1 = 0, a2 = 0, s2 = 0, a3 = 0, s3 = 0, a4 = 0, s4 = 0;
	double zb1[9] = {0}, zb2[9] = {0};
	struct lb_rq_mask mask;
	lb_rq_spec_default(&sp, 4, 0);
	fill_inputs(x, n, alpha, -8, 16, 600);
	for (size_t i = 0; i < n; i++)
		dy[i] = unif(601, i, -1.0f, 1.0f);
	/* fast: identity vs tempered tau = 1 */
	lb_srq_backward(d1, &a1, &s1, dy, x, n, &sp, alpha, sigma, NULL);
	sp.tempered = 1;
	sp.tau = 1.0f;
	lb_srq_backward(d2, &a2, &s2, dy, x, n, &sp, alpha, sigma, NULL);
	ok(rel_errf(d1, d2, n) < 1e-5 && rel1(a1, a2) < 1e-5 && rel1(s1, s2) < 1e-5,
	   "fast: tempered STE at tau = 1 == identity STE (dx %.1e, dalpha %.1e, dsigma %.1e)",
	   rel_errf(d1, d2, n), rel1(a1, a2), rel1(s1, s2));
	/* ref */
	sp.tempered = 0;
	lb_srq_backward_ref(d3, &a3, &s3, dy, x, n, &sp, alpha, sigma, NULL);
	sp.tempered = 1;
	lb_srq_backward_ref(d4, &a4, &s4, dy, x, n, &sp, alpha, sigma, NULL);
	ok(rel_errf(d3, d4, n) < 1e-9 && rel1(a3, a4) < 1e-9 && rel1(s3, s4) < 1e-9,
	   "ref: tempered STE at tau = 1 == identity STE");
	/* with relaxed gates: the dzbar gradients agree too */
	z[0] = z[1] = 1.0f;
	z[2] = 0.9f;
	z[3] = 0.7f;
	z[4] = 0.4f;
	lb_bits_zbar(zbar, z, 4);
	memset(&mask, 0, sizeof(mask));
	mask.zbar = zbar;
	mask.dzbar = zb1;
	memset(d1, 0, n * sizeof(float));
	memset(d2, 0, n * sizeof(float));
	a1 = s1 = a2 = s2 = 0.0;
	sp.tempered = 0;
	lb_srq_backward(d1, &a1, &s1, dy, x, n, &sp, alpha, sigma, &mask);
	sp.tempered = 1;
	mask.dzbar = zb2;
	lb_srq_backward(d2, &a2, &s2, dy, x, n, &sp, alpha, sigma, &mask);
	ok(rel_errf(d1, d2, n) < 1e-5 && rel1(a1, a2) < 1e-5 && rel1(s1, s2) < 1e-5 &&
		   rel_err(zb1 + 2, zb2 + 2, 3) < 1e-5,
	   "fast with gates: tempered tau = 1 == identity (dzbar %.1e)", rel_err(zb1 + 2, zb2 + 2, 3));
	/* tau = 0.5, fast == ref */
	sp.tau = 0.5f;
	memset(d1, 0, n * sizeof(float));
	memset(d2, 0, n * sizeof(float));
	memset(zb1, 0, sizeof(zb1));
	memset(zb2, 0, sizeof(zb2));
	a1 = s1 = a2 = s2 = 0.0;
	mask.dzbar = zb1;
	lb_srq_backward(d1, &a1, &s1, dy, x, n, &sp, alpha, sigma, &mask);
	mask.dzbar = zb2;
	lb_srq_backward_ref(d2, &a2, &s2, dy, x, n, &sp, alpha, sigma, &mask);
	ok(rel_errf(d1, d2, n) < 1e-4 && rel1(a1, a2) < 1e-4 && rel1(s1, s2) < 1e-4 &&
		   rel_err(zb1 + 2, zb2 + 2, 3) < 1e-4,
	   "tempered tau = 0.5 with gates: fast == ref (dx %.1e, dalpha %.1e, dsigma %.1e, dzbar %.1e)",
	   rel_errf(d1, d2, n), rel1(a1, a2), rel1(s1, s2), rel_err(zb1 + 2, zb2 + 2, 3));
	free(x);
	free(dy);
	free(d1);
	free(d2);
	free(d3);
	free(d4);
}

/* fast == ref over many configurations, and accumulation */
static void test_srq_fast_ref(void)
{
	static const struct srq_case cases[] = {
		{2, 0, 0.5f, 0.5f, 0.0f, "2-bit signed"},
		{4, 0, 0.1f, 0.03f, 0.0f, "4-bit signed sigma=0.3a"},
		{4, 1, 0.2f, 0.6f, 0.0f, "4-bit unsigned sigma=3a"},
		{4, 0, 0.1f, 0.05f, 3.0f, "4-bit window W=1"},
		{8, 0, 0.01f, 0.02f, 3.0f, "8-bit window W=6"},
		{1, 0, 0.3f, 0.3f, 0.0f, "1-bit"},
	};
	const size_t n = 2000;
	float *x = fnew(n), *dy = fnew(n), *d1 = fnew(n), *d2 = fnew(n);
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		const struct srq_case *C = &cases[c];
		struct lb_rq_spec sp;
		double a1 = 0, s1 = 0, a2 = 0, s2 = 0;
		lb_rq_spec_default(&sp, C->bits, C->uns);
		sp.delta = C->delta;
		fill_inputs(x, n, C->alpha, lb_rq_grid_min(&sp), 1 << C->bits, (uint32_t)(700 + c));
		for (size_t i = 0; i < n; i++) {
			dy[i] = unif(701, i, -1.0f, 1.0f);
			d1[i] = d2[i] = 0.0f;
		}
		lb_srq_backward(d1, &a1, &s1, dy, x, n, &sp, C->alpha, C->sigma, NULL);
		lb_srq_backward_ref(d2, &a2, &s2, dy, x, n, &sp, C->alpha, C->sigma, NULL);
		ok(rel_errf(d1, d2, n) < SRQ_TOL && rel1(a1, a2) < SRQ_TOL && rel1(s1, s2) < SRQ_TOL,
		   "SRQ backward fast == ref, %s (dx %.1e, dalpha %.1e, dsigma %.1e)", C->name,
		   rel_errf(d1, d2, n), rel1(a1, a2), rel1(s1, s2));
	}
	{
		/* accumulation: twice = 2x */
		struct lb_rq_spec sp;
		double a1 = 0, s1 = 0, a2 = 0, s2 = 0;
		int acc = 1;
		lb_rq_spec_default(&sp, 4, 0);
		memset(d1, 0, n * sizeof(float));
		memset(d2, 0, n * sizeof(float));
		lb_srq_backward(d1, &a1, &s1, dy, x, n, &sp, 0.1f, 0.1f, NULL);
		lb_srq_backward(d2, &a2, &s2, dy, x, n, &sp, 0.1f, 0.1f, NULL);
		lb_srq_backward(d2, &a2, &s2, dy, x, n, &sp, 0.1f, 0.1f, NULL);
		for (size_t i = 0; i < n; i++)
			acc &= d2[i] == 2.0f * d1[i];
		ok(acc && a2 == 2.0 * a1 && s2 == 2.0 * s1, "SRQ backward accumulates (+=)");
	}
	free(x);
	free(dy);
	free(d1);
	free(d2);
}

/* The vector SRQ kernels: every ISA gives the same bits; an element's
 * result does not depend on where it sits in a block; the chunked exp
 * (large alpha/sigma, several restarts, one exp per edge) still == ref. */
static void test_srq_isa(void)
{
	const size_t n = 1000 + 13; /* not a multiple of any vector width */
	float *x = fnew(n), *dy = fnew(n), *y0 = fnew(n), *y1 = fnew(n), *d0 = fnew(n), *d1 = fnew(n);
	uint8_t *lv = malloc(n);
	const int best = lb_rq_set_isa(LB_RQ_ISA_AUTO);
	const struct lb_rq_key key = {SEED, 5, 0};
	float p[9];
	int same = 1, shifted = 1, nisa = 0;
	lb_dropbits_probs(p, 4, 0.3f);
	lb_dropbits_sample(lv, n, 4, p, &key, 1);
	for (size_t i = 0; i < n; i++)
		dy[i] = unif(1600, i, -1.0f, 1.0f);
	for (int cfg = 0; cfg < 5; cfg++) {
		struct lb_rq_spec sp;
		struct lb_rq_mask mask, *mp = NULL;
		const float alpha = 0.1f, sigma = cfg == 1 ? 0.004f : 0.11f;
		double a0 = 0, s0 = 0;
		lb_rq_spec_default(&sp, cfg == 4 ? 8 : 4, cfg == 3);
		memset(&mask, 0, sizeof(mask));
		if (cfg == 2) { /* per-element DropBits + window */
			mask.level = lv;
			mp = &mask;
			sp.delta = 3.0f;
		}
		if (cfg == 4) /* 8 bits, window */
			sp.delta = 3.0f;
		fill_inputs(x, n, alpha, lb_rq_grid_min(&sp), 1 << sp.bits, (uint32_t)(1610 + cfg));
		for (int isa = LB_RQ_ISA_GENERIC; isa <= best; isa++) {
			double a1 = 0, s1 = 0;
			if (lb_rq_set_isa(isa) != isa)
				continue;
			nisa += cfg == 0;
			memset(d1, 0, n * sizeof(float));
			lb_srq_forward(y1, x, n, &sp, alpha, sigma, mp);
			lb_srq_backward(d1, &a1, &s1, dy, x, n, &sp, alpha, sigma, mp);
			if (isa == LB_RQ_ISA_GENERIC) {
				memcpy(y0, y1, n * sizeof(float));
				memcpy(d0, d1, n * sizeof(float));
				a0 = a1;
				s0 = s1;
			} else if (memcmp(y0, y1, n * sizeof(float)) || memcmp(d0, d1, n * sizeof(float)) ||
				   a0 != a1 || s0 != s1) {
				diag("cfg %d: isa %d differs from generic (dalpha %.17g vs %.17g)", cfg, isa, a1, a0);
				same = 0;
			}
			/* the same elements 3 places later in their blocks */
			memset(d1, 0, n * sizeof(float));
			if (cfg == 2)
				mask.level = lv + 3;
			lb_srq_backward(d1, NULL, NULL, dy + 3, x + 3, n - 3, &sp, alpha, sigma, mp);
			mask.level = lv;
			shifted &= memcmp(d0 + 3, d1, (n - 3) * sizeof(float)) == 0;
		}
		if (cfg == 1) { /* alpha/sigma = 25: chunks of 1 edge, fast == ref */
			double a2 = 0, s2 = 0;
			memset(d1, 0, n * sizeof(float));
			lb_srq_backward_ref(d1, &a2, &s2, dy, x, n, &sp, alpha, sigma, mp);
			ok(rel_errf(d0, d1, n) < SRQ_TOL && rel1(a0, a2) < SRQ_TOL && rel1(s0, s2) < SRQ_TOL,
			   "SRQ backward alpha/sigma = 25 (one exp per edge): fast == ref (dx %.1e, dalpha %.1e, dsigma %.1e)",
			   rel_errf(d0, d1, n), rel1(a0, a2), rel1(s0, s2));
		}
	}
	lb_rq_set_isa(LB_RQ_ISA_AUTO);
	diag("vector code tested: %d of generic/avx2/avx512 (this CPU's best: %d)", nisa, best);
	ok(nisa >= 1 && same, "SRQ forward and backward: the same bits on every vector ISA the CPU has");
	ok(shifted, "SRQ backward of an element does not depend on its position in a block");
	{
		/* several chunks (alpha/sigma = 3: 13 edges per exp on a 6-bit grid) */
		struct lb_rq_spec sp;
		double a1 = 0, s1 = 0, a2 = 0, s2 = 0;
		lb_rq_spec_default(&sp, 6, 0);
		fill_inputs(x, n, 0.03f, -32, 64, 1620);
		memset(d0, 0, n * sizeof(float));
		memset(d1, 0, n * sizeof(float));
		lb_srq_backward(d0, &a1, &s1, dy, x, n, &sp, 0.03f, 0.01f, NULL);
		lb_srq_backward_ref(d1, &a2, &s2, dy, x, n, &sp, 0.03f, 0.01f, NULL);
		ok(rel_errf(d0, d1, n) < SRQ_TOL && rel1(a1, a2) < SRQ_TOL && rel1(s1, s2) < SRQ_TOL,
		   "SRQ backward 6 bits, alpha/sigma = 3 (5 exp restarts): fast == ref (dx %.1e, dalpha %.1e, dsigma %.1e)",
		   rel_errf(d0, d1, n), rel1(a1, a2), rel1(s1, s2));
	}
	free(x);
	free(dy);
	free(y0);
	free(y1);
	free(d0);
	free(d1);
	free(lv);
}

/* ---- RQ ---- */

/* V(x) = alpha sum_i z_i m_i, z = softmax((log pi + u)/lambda), u fixed */
static double rq_value(double x, double alpha, double sigma, const struct lb_rq_spec *sp,
		       const struct lb_rq_key *key, size_t e, int lo, int hi)
{
	double pi[MAXK], y[MAXK], ymax = -INFINITY, zs = 0.0, v = 0.0;
	const int m0 = lb_rq_grid_min(sp);
	lb_rq_probs_ref(pi, x, alpha, sigma, sp, lo, hi);
	for (int i = lo; i <= hi; i++) {
		y[i] = (log(pi[i]) + lb_rq_gumbel(key, e, i)) / sp->lambda;
		ymax = fmax(ymax, y[i]);
	}
	for (int i = lo; i <= hi; i++) {
		y[i] = exp(y[i] - ymax);
		zs += y[i];
	}
	for (int i = lo; i <= hi; i++)
		v += y[i] / zs * alpha * (m0 + i);
	return v;
}

static void test_rq(void)
{
	static const struct srq_case cases[] = {
		{2, 0, 0.5f, 0.5f, 0.0f, "2-bit signed lambda 2"},
		{4, 1, 0.1f, 0.07f, 0.0f, "4-bit unsigned lambda 0.5"},
		{4, 0, 0.1f, 0.13f, 3.0f, "4-bit local window W=3 lambda 1"},
	};
	static const float lambdas[] = {2.0f, 0.5f, 1.0f};
	const size_t n = 48;
	const struct lb_rq_key key = {SEED, 17, 1000};
	float *x = fnew(n), *dy = fnew(n), *dxf = fnew(n), *dxr = fnew(n), *y = fnew(n),
	      *yr = fnew(n);
	double *gf = calloc(n, sizeof(double)), *gr = calloc(n, sizeof(double)),
	       *gn = calloc(n, sizeof(double));
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		const struct srq_case *C = &cases[c];
		struct lb_rq_spec sp;
		double da = 0, ds = 0, dar = 0, dsr = 0, na = 0, ns = 0;
		int m0, K, W;
		lb_rq_spec_default(&sp, C->bits, C->uns);
		sp.delta = C->delta;
		sp.lambda = lambdas[c];
		m0 = lb_rq_grid_min(&sp);
		K = 1 << C->bits;
		W = lb_rq_window(&sp, C->alpha, C->sigma);
		fill_smooth(x, n, C->alpha, m0, K, (uint32_t)(800 + c));
		for (size_t i = 0; i < n; i++) {
			dy[i] = unif(801, i, -1.0f, 1.0f);
			dxf[i] = dxr[i] = 0.0f;
		}
		lb_rq_backward(dxf, &da, &ds, dy, x, n, &sp, C->alpha, C->sigma, &key);
		lb_rq_backward_ref(dxr, &dar, &dsr, dy, x, n, &sp, C->alpha, C->sigma, &key);
		for (size_t i = 0; i < n; i++) {
			const double xi = x[i], h = 1e-6 * C->alpha, ha = 1e-6 * C->alpha,
				     hs = 1e-6 * C->sigma;
			const int sel = (int)lrintf(round_clamp_ref(x[i], C->alpha, m0, m0 + K - 1) /
						    C->alpha) - m0;
			const int lo = sel - W < 0 ? 0 : sel - W, hi = sel + W > K - 1 ? K - 1 : sel + W;
			gn[i] = dy[i] * (rq_value(xi + h, C->alpha, C->sigma, &sp, &key, i, lo, hi) -
					 rq_value(xi - h, C->alpha, C->sigma, &sp, &key, i, lo, hi)) /
				(2 * h);
			na += dy[i] * (rq_value(xi, C->alpha + ha, C->sigma, &sp, &key, i, lo, hi) -
				       rq_value(xi, C->alpha - ha, C->sigma, &sp, &key, i, lo, hi)) /
			      (2 * ha);
			ns += dy[i] * (rq_value(xi, C->alpha, C->sigma + hs, &sp, &key, i, lo, hi) -
				       rq_value(xi, C->alpha, C->sigma - hs, &sp, &key, i, lo, hi)) /
			      (2 * hs);
			gf[i] = dxf[i];
			gr[i] = dxr[i];
		}
		diag("RQ %s: dx rel %.2e (ref %.2e), dalpha %.2e (%.2e), dsigma %.2e (%.2e)", C->name,
		     rel_err(gf, gn, n), rel_err(gr, gn, n), rel1(da, na), rel1(dar, na),
		     rel1(ds, ns), rel1(dsr, ns));
		ok(rel_err(gr, gn, n) < 1e-6 && rel1(dar, na) < 1e-6 && rel1(dsr, ns) < 1e-6,
		   "RQ ref backward == central differences (x, alpha, sigma; noise fixed): %s", C->name);
		ok(rel_err(gf, gn, n) < 1e-3 && rel1(da, na) < 1e-3 && rel1(ds, ns) < 1e-3,
		   "RQ fast backward == central differences: %s", C->name);
		lb_rq_forward(y, x, n, &sp, C->alpha, C->sigma, &key);
		lb_rq_forward_ref(yr, x, n, &sp, C->alpha, C->sigma, &key);
		ok(rel_errf(y, yr, n) < 1e-5, "RQ forward fast == ref: %s (%.1e)", C->name,
		   rel_errf(y, yr, n));
	}
	free(gf);
	free(gr);
	free(gn);
	free(x);
	free(dy);
	free(dxf);
	free(dxr);
	free(y);
	free(yr);
}

/* RQ-ST: hard forward on the grid, soft backward; noise keyed per element */
static void test_rq_st(void)
{
	const size_t n = 4000;
	const struct lb_rq_key key = {SEED, 3, 5000};
	float *x = fnew(n), *y = fnew(n), *yr = fnew(n), *ys = fnew(n), *dy = fnew(n),
	      *d1 = fnew(n), *d2 = fnew(n);
	struct lb_rq_spec sp;
	const float alpha = 0.1f, sigma = 0.1f;
	double a1 = 0, s1 = 0, a2 = 0, s2 = 0, direct = 0.0;
	size_t mism = 0;
	int on_grid = 1, slice_ok;
	lb_rq_spec_default(&sp, 4, 0);
	sp.lambda = 1.0f;
	fill_inputs(x, n, alpha, -8, 16, 900);
	for (size_t i = 0; i < n; i++)
		dy[i] = unif(901, i, -1.0f, 1.0f);
	sp.straight_through = 1;
	lb_rq_forward(y, x, n, &sp, alpha, sigma, &key);
	lb_rq_forward_ref(yr, x, n, &sp, alpha, sigma, &key);
	for (size_t i = 0; i < n; i++) {
		const float m = y[i] / alpha;
		on_grid &= m == rintf(m) && m >= -8.0f && m <= 7.0f;
		mism += y[i] != yr[i];
	}
	ok(on_grid, "RQ-ST forward lies on the grid");
	ok(mism <= n / 1000, "RQ-ST forward fast == ref (%zu of %zu differ: float vs double ties)",
	   mism, n);
	lb_rq_backward(d1, &a1, &s1, dy, x, n, &sp, alpha, sigma, &key);
	sp.straight_through = 0;
	lb_rq_forward(ys, x, n, &sp, alpha, sigma, &key);
	lb_rq_backward(d2, &a2, &s2, dy, x, n, &sp, alpha, sigma, &key);
	for (size_t i = 0; i < n; i++)
		direct += (double)dy[i] * ((double)y[i] - ys[i]) / alpha;
	ok(memcmp(d1, d2, n * sizeof(float)) == 0 && s1 == s2,
	   "RQ-ST backward dx, dsigma == soft RQ backward (soft backward)");
	ok(fabs((a1 - a2) - direct) < 1e-6 * fmax(1.0, fabs(a1)),
	   "RQ-ST dalpha differs from RQ only by the direct grid path dy (m_h - sum z m)");
	/* noise keyed by (seed, step, base + e): a slice redraws the same values */
	{
		struct lb_rq_key k2 = key;
		k2.base += 100;
		lb_rq_forward(yr, x + 100, 50, &sp, alpha, sigma, &k2);
		slice_ok = memcmp(yr, ys + 100, 50 * sizeof(float)) == 0;
		ok(slice_ok, "RQ noise is a function of (seed, step, global element index)");
		k2 = key;
		k2.step++;
		lb_rq_forward(yr, x, n, &sp, alpha, sigma, &k2);
		ok(memcmp(yr, ys, n * sizeof(float)) != 0, "another step draws other noise");
	}
	free(x);
	free(y);
	free(yr);
	free(ys);
	free(dy);
	free(d1);
	free(d2);
}

/* ---- DropBits ---- */

static void test_dropbits(void)
{
	const size_t n = 200000;
	const int bits = 4;
	uint8_t *lv = malloc(n), *lv2 = malloc(n);
	float p[9];
	struct lb_rq_key key = {SEED, 42, 0};
	size_t cnt[10] = {0};
	int stat_ok = 1, det, diff, test_ok = 1;
	lb_dropbits_probs(p, bits, 0.3f);
	ok(p[1] == 0.0f && fabsf(p[2] - 0.075f) < 1e-7f && fabsf(p[3] - 0.15f) < 1e-7f &&
		   p[4] == 0.3f,
	   "drop probabilities p_k = p_b 2^(k-b)");
	lb_dropbits_sample(lv, n, bits, p, &key, 1);
	for (size_t i = 0; i < n; i++)
		cnt[lv[i]]++;
	for (int k = 2; k <= bits; k++) {
		/* P(level >= k) = prod_{j<=k} (1 - p_j) */
		double want = 1.0, got = 0.0, sd;
		for (int j = 2; j <= k; j++)
			want *= 1.0 - p[j];
		for (int L = k; L <= bits; L++)
			got += (double)cnt[L];
		got /= (double)n;
		sd = sqrt(want * (1.0 - want) / (double)n);
		if (fabs(got - want) > 5.0 * sd) {
			diag("level >= %d: got %.5f want %.5f (sd %.5f)", k, got, want, sd);
			stat_ok = 0;
		}
	}
	ok(stat_ok && cnt[0] == 0, "per-element drop rates match the configured probabilities");
	lb_dropbits_sample(lv2, n, bits, p, &key, 1);
	det = memcmp(lv, lv2, n) == 0;
	key.step++;
	lb_dropbits_sample(lv2, n, bits, p, &key, 1);
	diff = memcmp(lv, lv2, n) != 0;
	ok(det && diff, "masks are a function of (seed, step): same step same masks, next step other");
	lb_dropbits_sample(lv2, n, bits, p, &key, 0);
	for (size_t i = 0; i < n; i++)
		test_ok &= lv2[i] == bits;
	ok(test_ok && lb_dropbits_sample_layer(bits, p, &key, 0) == bits,
	   "test time: no dropping");
	{
		/* per-layer granularity: rate over steps */
		size_t top = 0, steps = 20000;
		double want = (1 - p[2]) * (1 - p[3]) * (1 - p[4]), sd;
		for (size_t s = 0; s < steps; s++) {
			struct lb_rq_key k = {SEED, (uint32_t)s, 7};
			top += lb_dropbits_sample_layer(bits, p, &k, 1) == bits;
		}
		sd = sqrt(want * (1 - want) / (double)steps);
		ok(fabs((double)top / steps - want) < 5 * sd,
		   "per-layer drop rate matches (full grid kept %.4f, want %.4f)", (double)top / steps,
		   want);
	}
	{
		/* masked forward: on the element's lower-bit grid, = round-and-clamp there */
		const size_t m = 5000;
		float *x = fnew(m), *y = fnew(m), *yr = fnew(m);
		struct lb_rq_spec sp;
		struct lb_rq_mask mask;
		int fwd_ok = 1, ref_ok;
		const float alpha = 0.1f;
		lb_rq_spec_default(&sp, bits, 0);
		memset(&mask, 0, sizeof(mask));
		mask.level = lv;
		fill_inputs(x, m, alpha, -8, 16, 1000);
		lb_srq_forward(y, x, m, &sp, alpha, 0.1f, &mask);
		lb_srq_forward_ref(yr, x, m, &sp, alpha, 0.1f, &mask);
		for (size_t i = 0; i < m; i++) {
			int lo, hi;
			lb_rq_level_range(&lo, &hi, lv[i], 0);
			fwd_ok &= y[i] == round_clamp_ref(x[i], alpha, lo, hi);
		}
		ref_ok = memcmp(y, yr, m * sizeof(float)) == 0;
		ok(fwd_ok, "DropBits forward = round-and-clamp to the surviving lower-bit grid");
		ok(ref_ok, "DropBits forward fast == ref (argmax of the masked pi)");
		free(x);
		free(y);
		free(yr);
	}
	{
		/* keep level L of a b-bit grid == the plain L-bit quantizer (signed and
		 * unsigned), forward and backward; and masked backward fast == ref */
		const size_t m = 3000;
		float *x = fnew(m), *dy = fnew(m), *d1 = fnew(m), *d2 = fnew(m);
		int same = 1;
		double worst = 0.0;
		for (int uns = 0; uns < 2; uns++)
			for (int L = 1; L <= 3; L++) {
				struct lb_rq_spec sp, spL;
				struct lb_rq_mask mask;
				double a1 = 0, s1 = 0, a2 = 0, s2 = 0;
				lb_rq_spec_default(&sp, 4, uns);
				lb_rq_spec_default(&spL, L, uns);
				memset(&mask, 0, sizeof(mask));
				mask.keep = L;
				fill_inputs(x, m, 0.1f, lb_rq_grid_min(&sp), 16, (uint32_t)(1100 + L));
				for (size_t i = 0; i < m; i++) {
					dy[i] = unif(1101, i, -1, 1);
					d1[i] = d2[i] = 0.0f;
				}
				lb_srq_backward(d1, &a1, &s1, dy, x, m, &sp, 0.1f, 0.12f, &mask);
				lb_srq_backward(d2, &a2, &s2, dy, x, m, &spL, 0.1f, 0.12f, NULL);
				same &= memcmp(d1, d2, m * sizeof(float)) == 0 && a1 == a2 && s1 == s2;
				memset(d2, 0, m * sizeof(float));
				a2 = s2 = 0;
				lb_srq_backward_ref(d2, &a2, &s2, dy, x, m, &sp, 0.1f, 0.12f, &mask);
				worst = fmax(worst, fmax(rel_errf(d1, d2, m), fmax(rel1(a1, a2), rel1(s1, s2))));
			}
		ok(same, "keeping L of b bits == the L-bit quantizer (backward, bit for bit)");
		ok(worst < SRQ_TOL, "masked backward fast == ref (worst %.1e)", worst);
		/* per-element masks: fast == ref */
		{
			struct lb_rq_spec sp;
			struct lb_rq_mask mask;
			double a1 = 0, s1 = 0, a2 = 0, s2 = 0;
			lb_rq_spec_default(&sp, 4, 0);
			sp.delta = 3.0f;
			memset(&mask, 0, sizeof(mask));
			mask.level = lv;
			memset(d1, 0, m * sizeof(float));
			memset(d2, 0, m * sizeof(float));
			lb_srq_backward(d1, &a1, &s1, dy, x, m, &sp, 0.1f, 0.07f, &mask);
			lb_srq_backward_ref(d2, &a2, &s2, dy, x, m, &sp, 0.1f, 0.07f, &mask);
			ok(rel_errf(d1, d2, m) < SRQ_TOL && rel1(a1, a2) < SRQ_TOL && rel1(s1, s2) < SRQ_TOL,
			   "per-element DropBits + local window backward: fast == ref (dx %.1e, dalpha %.1e, dsigma %.1e)",
			   rel_errf(d1, d2, m), rel1(a1, a2), rel1(s1, s2));
		}
		free(x);
		free(dy);
		free(d1);
		free(d2);
	}
	free(lv);
	free(lv2);
}

/* vectorised DropBits sampling == the scalar draw of each element (the
 * per-layer sampler draws element 0 of its key with lb_rng_block), on every
 * ISA, for 2..8 bits, across a carry of the 64-bit rng index */
static void test_dropbits_exact(void)
{
	const size_t n = 300 + 5;
	uint8_t *lv = malloc(n);
	const int best = lb_rq_set_isa(LB_RQ_ISA_AUTO);
	int same = 1, checked = 0;
	for (int isa = LB_RQ_ISA_GENERIC; isa <= best; isa++) {
		if (lb_rq_set_isa(isa) != isa)
			continue;
		for (int bits = 2; bits <= 8; bits++) {
			float p[9];
			const struct lb_rq_key key = {SEED + (uint64_t)bits, 11, (1ULL << 26) - 150};
			lb_dropbits_probs(p, bits, 0.5f);
			lb_dropbits_sample(lv, n, bits, p, &key, 1);
			for (size_t e = 0; e < n; e++) {
				const struct lb_rq_key k1 = {key.seed, key.step, key.base + e};
				same &= lv[e] == lb_dropbits_sample_layer(bits, p, &k1, 1);
				checked++;
			}
		}
	}
	lb_rq_set_isa(LB_RQ_ISA_AUTO);
	ok(same && checked > 0, "vector DropBits masks == the scalar per-element draw (%d checked)", checked);
	free(lv);
}

/* ---- hard-concrete gates, penalty, learned bits ---- */

static void test_gates(void)
{
	double worst_z = 0.0, worst_p = 0.0;
	int n_inside = 0;
	for (int t = 0; t < 40; t++) {
		const double la = -3.0 + 6.0 * lb_rng_uniform_double(SEED, LB_RNG_TEST, 1200, (uint64_t)t);
		const double u = lb_rng_uniform_double(SEED, LB_RNG_TEST, 1201, (uint64_t)t);
		const double h = 1e-6;
		double dz, dp, zp, zm;
		const double z = lb_hc_gate(la, u, &dz);
		zp = lb_hc_gate(la + h, u, NULL);
		zm = lb_hc_gate(la - h, u, NULL);
		if (z > 1e-3 && z < 1 - 1e-3) {
			n_inside++;
			worst_z = fmax(worst_z, fabs(dz - (zp - zm) / (2 * h)) / fmax(fabs(dz), 1e-6));
		} else if (z == 0.0 || z == 1.0)
			worst_z = fmax(worst_z, fabs(dz));
		lb_hc_prob_nonzero(la, &dp);
		worst_p = fmax(worst_p, fabs(dp - (lb_hc_prob_nonzero(la + h, NULL) -
						   lb_hc_prob_nonzero(la - h, NULL)) / (2 * h)));
	}
	ok(n_inside > 5 && worst_z < 1e-6, "dZ/dlog a == central differences (%d inside, %.1e)",
	   n_inside, worst_z);
	ok(worst_p < 1e-8, "dP(Z != 0)/dlog a = P(1-P) == central differences (%.1e)", worst_p);
	ok(fabs(lb_hc_gate(0.0, 0.5, NULL) - 0.5) < 1e-12 && lb_hc_gate_test(10.0) == 1.0 &&
		   lb_hc_gate_test(-10.0) == 0.0 && fabs(lb_hc_gate_test(0.0) - 0.5) < 1e-12,
	   "hard-concrete values: median 0.5, test-time clips to 0 and 1");
	{
		/* P(Z != 0) against the sample frequency */
		const double la = -0.5;
		int nz = 0;
		for (int t = 0; t < 20000; t++)
			nz += lb_hc_gate(la, lb_rng_uniform_double(SEED, LB_RNG_TEST, 1202, (uint64_t)t),
					 NULL) > 0.0;
		ok(fabs(nz / 20000.0 - lb_hc_prob_nonzero(la, NULL)) < 0.015,
		   "P(Z != 0) matches the sampled frequency (%.4f vs %.4f)", nz / 20000.0,
		   lb_hc_prob_nonzero(la, NULL));
	}
	{
		/* penalty and its gradient */
		float la[2 * 5];
		double c[2], g[10] = {0}, worst = 0.0;
		const size_t nw[2] = {500, 1500};
		lb_bits_memory_weights(c, nw, 2);
		ok(c[0] == 0.25 && c[1] == 0.75, "memory-aware weights #W_l / #W");
		for (int i = 0; i < 10; i++)
			la[i] = -2.0f + 0.4f * (float)i;
		(void)lb_bits_penalty(g, la, c, 2, 4, 0.01);
		for (int l = 0; l < 2; l++)
			for (int k = 2; k <= 4; k++) {
				const int i = l * 5 + k;
				const float keep = la[i], h = 1e-3f;
				double rp, rm;
				la[i] = keep + h;
				rp = lb_bits_penalty(NULL, la, c, 2, 4, 0.01);
				la[i] = keep - h;
				rm = lb_bits_penalty(NULL, la, c, 2, 4, 0.01);
				la[i] = keep;
				worst = fmax(worst, fabs(g[i] - (rp - rm) / (2.0 * (double)h)) / fabs(g[i]));
			}
		ok(worst < 1e-4 && g[0] == 0.0 && g[1] == 0.0,
		   "bit penalty gradient == central differences (%.1e)", worst);
	}
	{
		/* learned bits on constructed gates */
		float a[9] = {0, 0, 5, 5, -5, 0, 0, 0, 0};
		int r1, r2, r3, r4, r5;
		r1 = lb_bits_learned(a, 4, 0.5f);
		a[2] = -5;
		r2 = lb_bits_learned(a, 4, 0.5f);
		a[2] = 5;
		a[3] = -5;
		a[4] = 5;
		r3 = lb_bits_learned(a, 4, 0.5f);
		a[3] = -1; /* Z = 0.22: on for threshold 0, off for 0.5 */
		r4 = lb_bits_learned(a, 4, 0.5f);
		r5 = lb_bits_learned(a, 4, 0.0f);
		ok(r1 == 3 && r2 == 1 && r3 == 2 && r4 == 2 && r5 == 4,
		   "learned bit-width = 1 + consecutive on levels (%d %d %d %d %d)", r1, r2, r3, r4, r5);
		a[2] = 100;
		a[3] = -100;
		lb_bits_clamp_log_a(a, 9);
		ok(a[2] == (float)LB_HC_LOG_A_MAX && a[3] == (float)LB_HC_LOG_A_MIN && a[0] == 0.0f,
		   "log a clamp to [log 1e-2, log 1e2]");
	}
	{
		/* gate sampling: deterministic, test mode */
		const float la[6] = {0, 0, 0.3f, -0.2f, 1.0f, 2.0f};
		float z1[6], z2[6], d1[6];
		struct lb_rq_key key = {SEED, 9, 3};
		int det, tst = 1;
		lb_bits_gates_sample(z1, d1, la, 5, &key, 1);
		lb_bits_gates_sample(z2, NULL, la, 5, &key, 1);
		det = memcmp(z1, z2, sizeof(z1)) == 0;
		lb_bits_gates_sample(z2, d1, la, 5, &key, 0);
		for (int k = 2; k <= 5; k++)
			tst &= z2[k] == (float)lb_hc_gate_test(la[k]) && d1[k] == 0.0f;
		ok(det && tst && z1[1] == 1.0f, "gate samples are deterministic; test mode uses the test value");
	}
}

/* gated SRQ: dzbar and dlog a through the masked distribution vs central
 * differences of sum_e dy_e E_pi~[g](x_e), plus the dx surrogate */
struct gate_ctx {
	const float *x, *dy;
	size_t n;
	const struct lb_rq_spec *sp;
	float alpha, sigma;
};

static double gated_loss(const struct gate_ctx *G, const float *zbar)
{
	double L = 0.0;
	const int K = 1 << G->sp->bits;
	for (size_t i = 0; i < G->n; i++)
		L += G->dy[i] * expect_g(G->x[i], G->alpha, G->sigma, G->sp, 0, K - 1, zbar);
	return L;
}

static void test_gated_srq(void)
{
	const size_t n = 64;
	const int bits = 4;
	float *x = fnew(n), *dy = fnew(n), *d1 = fnew(n), *d2 = fnew(n);
	float la[5] = {0, 0, 0.8f, -0.1f, 0.3f}, z[5], dz[5], zbar[5];
	struct lb_rq_spec sp;
	struct lb_rq_mask mask;
	struct lb_rq_key key = {SEED, 77, 2};
	double dzb[5] = {0}, dzbr[5] = {0}, nzb[5] = {0}, dla[5] = {0}, nla[5] = {0};
	double a1 = 0, s1 = 0, a2 = 0, s2 = 0;
	struct gate_ctx G;
	lb_rq_spec_default(&sp, bits, 0);
	fill_smooth(x, n, 0.1f, -8, 16, 1300);
	for (size_t i = 0; i < n; i++)
		dy[i] = unif(1301, i, -1, 1);
	/* choose a step where every gate is strictly inside (0, 1) */
	for (;; key.step++) {
		int inside = 1;
		lb_bits_gates_sample(z, dz, la, bits, &key, 1);
		for (int k = 2; k <= bits; k++)
			inside &= z[k] > 0.05f && z[k] < 0.95f;
		if (inside)
			break;
	}
	lb_bits_zbar(zbar, z, bits);
	G = (struct gate_ctx){x, dy, n, &sp, 0.1f, 0.09f};
	memset(&mask, 0, sizeof(mask));
	mask.zbar = zbar;
	mask.gate_forward = LB_RQ_GATE_RELAXED;
	mask.dzbar = dzb;
	lb_srq_backward(d1, &a1, &s1, dy, x, n, &sp, G.alpha, G.sigma, &mask);
	mask.dzbar = dzbr;
	lb_srq_backward_ref(d2, &a2, &s2, dy, x, n, &sp, G.alpha, G.sigma, &mask);
	for (int L = 2; L <= bits; L++) {
		float zp[5], zm[5];
		const float h = 1e-3f;
		memcpy(zp, zbar, sizeof(zp));
		memcpy(zm, zbar, sizeof(zm));
		zp[L] += h;
		zm[L] -= h;
		nzb[L] = (gated_loss(&G, zp) - gated_loss(&G, zm)) / ((double)zp[L] - (double)zm[L]);
	}
	ok(rel_err(dzbr + 2, nzb + 2, 3) < 1e-5,
	   "gated SRQ ref: dL/dZbar == central differences of E_pi~[g] (%.1e)",
	   rel_err(dzbr + 2, nzb + 2, 3));
	ok(rel_err(dzb + 2, nzb + 2, 3) < 1e-4, "gated SRQ fast: dL/dZbar == central differences (%.1e)",
	   rel_err(dzb + 2, nzb + 2, 3));
	ok(rel_errf(d1, d2, n) < 1e-4 && rel1(a1, a2) < 1e-4 && rel1(s1, s2) < 1e-4,
	   "gated SRQ backward fast == ref (dx %.1e)", rel_errf(d1, d2, n));
	/* dx against the surrogate with weights */
	{
		double *gn = calloc(n, sizeof(double)), *ga = calloc(n, sizeof(double));
		for (size_t i = 0; i < n; i++) {
			const double h = 1e-6;
			gn[i] = dy[i] * (expect_g(x[i] + h, G.alpha, G.sigma, &sp, 0, 15, zbar) -
					 expect_g(x[i] - h, G.alpha, G.sigma, &sp, 0, 15, zbar)) / (2 * h);
			ga[i] = d2[i];
		}
		ok(rel_err(ga, gn, n) < 1e-5, "gated SRQ dx == d E_pi~[g]/dx (%.1e)", rel_err(ga, gn, n));
		free(gn);
		free(ga);
	}
	/* chain to log a */
	lb_bits_gates_backward(dla, dzbr, z, dz, bits);
	for (int k = 2; k <= bits; k++) {
		float lp[5], lm[5], zp[5], zm[5], zbp[5], zbm[5];
		const float h = 1e-3f;
		memcpy(lp, la, sizeof(lp));
		memcpy(lm, la, sizeof(lm));
		lp[k] += h;
		lm[k] -= h;
		lb_bits_gates_sample(zp, NULL, lp, bits, &key, 1);
		lb_bits_gates_sample(zm, NULL, lm, bits, &key, 1);
		lb_bits_zbar(zbp, zp, bits);
		lb_bits_zbar(zbm, zm, bits);
		nla[k] = (gated_loss(&G, zbp) - gated_loss(&G, zbm)) / (2.0 * (double)h);
	}
	ok(rel_err(dla + 2, nla + 2, 3) < 1e-3,
	   "dL/dlog a through gates and the masked distribution == central differences (%.1e)",
	   rel_err(dla + 2, nla + 2, 3));
	/* forward modes */
	{
		const size_t m = 2000;
		float *xx = fnew(m), *y = fnew(m), *yr = fnew(m);
		float zz[5] = {1, 1, 0.9f, 0.6f, 0.4f}, zb[5];
		int hard_ok = 1;
		size_t mism = 0;
		lb_bits_zbar(zb, zz, bits); /* 1 1 .9 .54 .216: levels 1..3 kept */
		mask.zbar = zb;
		mask.dzbar = NULL;
		mask.gate_forward = LB_RQ_GATE_HARD;
		fill_inputs(xx, m, 0.1f, -8, 16, 1400);
		lb_srq_forward(y, xx, m, &sp, 0.1f, 0.1f, &mask);
		lb_srq_forward_ref(yr, xx, m, &sp, 0.1f, 0.1f, &mask);
		for (size_t i = 0; i < m; i++)
			hard_ok &= y[i] == round_clamp_ref(xx[i], 0.1f, -4, 3) && yr[i] == y[i];
		ok(hard_ok, "hard gate forward: levels with Zbar < 0.5 dropped (3-bit grid), fast == ref");
		mask.gate_forward = LB_RQ_GATE_RELAXED;
		lb_srq_forward(y, xx, m, &sp, 0.1f, 0.1f, &mask);
		lb_srq_forward_ref(yr, xx, m, &sp, 0.1f, 0.1f, &mask);
		for (size_t i = 0; i < m; i++)
			if (y[i] != yr[i] && ++mism < 8)
				diag("x=%.9g q=%.9g fast %g ref %g", (double)xx[i], (double)(xx[i] / 0.1f), (double)y[i], (double)yr[i]);
		ok(mism <= m / 1000, "relaxed gate forward (argmax Zbar pi): fast == ref (%zu differ)",
		   mism);
		free(xx);
		free(y);
		free(yr);
	}
	free(x);
	free(dy);
	free(d1);
	free(d2);
}

/* The vector kernel of the gated identity-STE backward (hard gate forward):
 * == the _ref twin (dx, dalpha, dsigma, dL/dZbar) and == the scalar per-element
 * code (lb_srq_gated_scalar) within LB_RQ_GRAD_TOL, over 2, 4 and 8 bits,
 * signed and unsigned, gates dropping levels in the forward, per-element
 * DropBits levels, local windows and alpha/sigma up to 25; the same bits on
 * every vector ISA and wherever an element sits in a block. */
static void test_gated_vector(void)
{
	const size_t n = 777; /* not a multiple of any vector width */
	float *x = fnew(n), *dy = fnew(n), *d0 = fnew(n), *d1 = fnew(n), *d2 = fnew(n);
	uint8_t *lv = malloc(n);
	const int best = lb_rq_set_isa(LB_RQ_ISA_AUTO);
	int ref_ok = 1, scalar_ok = 1, same = 1, shifted = 1;
	double worst = 0;
	for (size_t i = 0; i < n; i++)
		dy[i] = unif(1700, i, -1.0f, 1.0f);
	for (int cfg = 0; cfg < 7; cfg++) {
		static const int bits_of[7] = {2, 4, 4, 4, 8, 3, 4};
		const int bits = bits_of[cfg], uns = cfg == 5;
		const float alpha = 0.1f, sigma = cfg == 3 ? 0.004f : cfg == 6 ? 0.3f : 0.09f;
		float z[LB_RQ_MAX_BITS + 1], zbar[LB_RQ_MAX_BITS + 1], p[LB_RQ_MAX_BITS + 1];
		double zb0[LB_RQ_MAX_BITS + 1] = {0}, zb1[LB_RQ_MAX_BITS + 1] = {0},
		       zb2[LB_RQ_MAX_BITS + 1] = {0};
		double a0 = 0, s0 = 0, a1 = 0, s1 = 0, a2 = 0, s2 = 0;
		struct lb_rq_spec sp;
		struct lb_rq_mask mask;
		const struct lb_rq_key key = {SEED, (uint32_t)(9 + cfg), 0};
		lb_rq_spec_default(&sp, bits, uns);
		if (cfg == 2 || cfg == 4)
			sp.delta = 3.0f;
		/* gates: 1, then 0.95, 0.8, 0.45 (drops the levels above 3 in the
		 * forward), 0.3, ... */
		z[0] = z[1] = 1.0f;
		for (int k = 2; k <= bits; k++)
			z[k] = k == 2 ? 0.95f : k == 3 ? 0.8f : k == 4 ? 0.45f : 0.3f;
		lb_bits_zbar(zbar, z, bits);
		memset(&mask, 0, sizeof(mask));
		mask.zbar = zbar;
		mask.gate_forward = LB_RQ_GATE_HARD;
		if (cfg == 1 || cfg == 2 || cfg == 5) {
			lb_dropbits_probs(p, bits, 0.3f);
			lb_dropbits_sample(lv, n, bits, p, &key, 1);
			mask.level = lv;
		}
		fill_inputs(x, n, alpha, lb_rq_grid_min(&sp), 1 << bits, (uint32_t)(1710 + cfg));
		memset(d1, 0, n * sizeof(float));
		memset(d2, 0, n * sizeof(float));
		mask.dzbar = zb2;
		lb_srq_backward_ref(d2, &a2, &s2, dy, x, n, &sp, alpha, sigma, &mask);
		lb_srq_gated_scalar(1);
		mask.dzbar = zb1;
		lb_srq_backward(d1, &a1, &s1, dy, x, n, &sp, alpha, sigma, &mask);
		lb_srq_gated_scalar(0);
		for (int isa = LB_RQ_ISA_GENERIC; isa <= best; isa++) {
			double a = 0, s = 0, zb[LB_RQ_MAX_BITS + 1] = {0};
			if (lb_rq_set_isa(isa) != isa)
				continue;
			float *d = isa == LB_RQ_ISA_GENERIC ? d0 : fnew(n);
			memset(d, 0, n * sizeof(float));
			mask.dzbar = zb;
			lb_srq_backward(d, &a, &s, dy, x, n, &sp, alpha, sigma, &mask);
			if (isa == LB_RQ_ISA_GENERIC) {
				a0 = a;
				s0 = s;
				memcpy(zb0, zb, sizeof zb0);
			} else {
				if (memcmp(d0, d, n * sizeof(float)) || a0 != a || s0 != s ||
				    memcmp(zb0, zb, sizeof zb0)) {
					diag("cfg %d: isa %d differs from generic", cfg, isa);
					same = 0;
				}
				free(d);
			}
			/* the same elements 5 places later in their blocks */
			float *e = fnew(n);
			memset(e, 0, n * sizeof(float));
			if (mask.level)
				mask.level = lv + 5;
			mask.dzbar = NULL;
			lb_srq_backward(e, NULL, NULL, dy + 5, x + 5, n - 5, &sp, alpha, sigma, &mask);
			if (mask.level)
				mask.level = lv;
			shifted &= memcmp(d0 + 5, e, (n - 5) * sizeof(float)) == 0;
			free(e);
		}
		lb_rq_set_isa(LB_RQ_ISA_AUTO);
		const double er[4] = {rel_errf(d0, d2, n), rel1(a0, a2), rel1(s0, s2),
				      rel_err(zb0 + 2, zb2 + 2, (size_t)bits - 1)};
		const double es[4] = {rel_errf(d0, d1, n), rel1(a0, a1), rel1(s0, s1),
				      rel_err(zb0 + 2, zb1 + 2, (size_t)bits - 1)};
		for (int i = 0; i < 4; i++) {
			worst = fmax(worst, er[i]);
			ref_ok &= er[i] < LB_RQ_GRAD_TOL;
			scalar_ok &= es[i] < LB_RQ_GRAD_TOL;
		}
		diag("gated cfg %d (%d-bit%s%s%s, alpha/sigma %.3g): vs ref dx %.1e dalpha %.1e dsigma %.1e dzbar %.1e; vs scalar dx %.1e",
		     cfg, bits, uns ? " unsigned" : "", mask.level ? " dropbits" : "",
		     sp.delta > 0 ? " window" : "", (double)(alpha / sigma), er[0], er[1], er[2], er[3], es[0]);
	}
	ok(ref_ok, "gated SRQ vector backward == ref within LB_RQ_GRAD_TOL (worst %.1e)", worst);
	ok(scalar_ok, "gated SRQ vector backward == the scalar per-element code");
	ok(same, "gated SRQ vector backward: the same bits on every vector ISA the CPU has");
	ok(shifted, "gated SRQ vector backward of an element does not depend on its place in a block");
	free(x);
	free(dy);
	free(d0);
	free(d1);
	free(d2);
	free(lv);
}

/* ---- timing (informational) ---- */

static void test_timing(void)
{
	const size_t n = 524288;
	float *x = fnew(n), *y = fnew(n), *dy = fnew(n), *dx = fnew(n);
	double t0, tc, a = 0, s = 0;
	for (size_t i = 0; i < n; i++) {
		x[i] = 0.05f * lb_rng_normal(SEED, LB_RNG_TEST, 1500, i);
		dy[i] = 1e-3f * lb_rng_normal(SEED, LB_RNG_TEST, 1501, i);
	}
	memcpy(y, x, n * sizeof(float)); /* first touch outside the timing */
	t0 = lb_now();
	for (int r = 0; r < 10; r++)
		memcpy(y, x, n * sizeof(float));
	tc = (lb_now() - t0) / 10;
	for (int b = 2; b <= 4; b += 2) {
		struct lb_rq_spec sp;
		double tf, tb;
		const float alpha = 0.15f / (float)(1 << (b - 1));
		lb_rq_spec_default(&sp, b, 0);
		t0 = lb_now();
		for (int r = 0; r < 3; r++)
			lb_srq_forward(y, x, n, &sp, alpha, alpha, NULL);
		tf = (lb_now() - t0) / 3;
		t0 = lb_now();
		for (int r = 0; r < 3; r++)
			lb_srq_backward(dx, &a, &s, dy, x, n, &sp, alpha, alpha, NULL);
		tb = (lb_now() - t0) / 3;
		diag("SRQ %d-bit on %zu weights: forward %.2f ms, backward %.2f ms; memcpy %.3f ms", b, n,
		     tf * 1e3, tb * 1e3, tc * 1e3);
	}
	ok(isfinite(a) && isfinite(s), "timing run produced finite gradients");
	free(x);
	free(y);
	free(dy);
	free(dx);
}

int main(void)
{
	test_levels();
	test_srq_forward();
	test_srq_surrogate();
	test_srq_formula();
	test_srq_tempered();
	test_srq_fast_ref();
	test_srq_isa();
	test_rq();
	test_rq_st();
	test_dropbits();
	test_dropbits_exact();
	test_gates();
	test_gated_srq();
	test_gated_vector();
	test_timing();
	return done_testing();
}
