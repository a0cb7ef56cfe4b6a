/* SPDX-License-Identifier: MIT
 * Tests for core/quant/waveq.c: hand-computed values; the zeros of the
 * sinusoid are the base quantizer's k-bit grid at beta = k - 1 (levels from
 * lb_quant_dorefa_w_forward / lb_quant_wrpn_w_forward and from the level
 * formulas) and the half-way points are maxima; gradients of the *_ref twins
 * with respect to w and beta against float64 central differences of the
 * *_ref forward (both alignments, amplitude on/off, beta 1.3 .. 8; M held
 * fixed); accumulation, coef and NULL outputs; fast == ref within the
 * documented tolerance (block tails, clamp edges, NaN); the lambda schedules
 * against their closed forms, endpoints and monotonicity; the bits rule.
 * Diagnostics: measured fast/ref errors and ns/element of each kernel. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/quant.h"
#include "quant/waveq.h"
#include "rng.h"
#include "util.h"
#include "../gradcheck.h"
#include "../tap.h"

#define SEED 20240917ULL
#define PI   3.14159265358979323846
#define LN2  0.69314718055994530942

static float unif(uint32_t tag, uint64_t i, float lo, float hi)
{
	return lo + (hi - lo) * lb_rng_uniform(SEED, LB_RNG_TEST, tag, i);
}

static const char *alname(enum lb_waveq_align al)
{
	return al == LB_WAVEQ_DOREFA ? "dorefa" : "wrpn";
}

/* Test weights: DoReFa in [-2, 2]; WRPN in [-0.95, 0.95] with every 8th
 * element outside the clamp (|w| in [1.05, 1.6]), so no element sits at a
 * kink within the finite-difference step. */
static void fill_w(float *w, size_t n, enum lb_waveq_align al, uint32_t tag)
{
	for (size_t i = 0; i < n; i++) {
		if (al == LB_WAVEQ_DOREFA) {
			w[i] = unif(tag, i, -2.0f, 2.0f);
		} else if (i % 8 == 3) {
			const float m = unif(tag, i, 1.05f, 1.6f);
			w[i] = i % 16 == 3 ? m : -m;
		} else {
			w[i] = unif(tag, i, -0.95f, 0.95f);
		}
	}
}

/* ---- hand-computed values ---- */

static void test_values(void)
{
	/* WRPN beta = 1: step 1, A = 1/2; sin^2(pi/4) = 1/2, sin^2(0) = 0 */
	const float w1[2] = {0.25f, 0.0f};
	is_near(lb_waveq_step(1.0f, LB_WAVEQ_WRPN), 1.0, 0.0, "wrpn step(1) = 1");
	is_near(lb_waveq_forward_ref(w1, 2, 1.0f, LB_WAVEQ_WRPN, 1, 1.0f), 0.125, 1e-15,
		"wrpn beta 1: R = (1/2)(1/2)(1/2 + 0)");
	is_near(lb_waveq_forward(w1, 2, 1.0f, LB_WAVEQ_WRPN, 0, 1.0f), 0.25, 1e-7,
		"wrpn beta 1, no amplitude: R = (1/2)(1/2 + 0) (fast)");
	/* DoReFa beta = 1: step 2/3, shift 1/3; u = 0 -> theta = pi/2 -> sin^2 = 1 */
	const float w0 = 0.0f;
	is_near(lb_waveq_step(1.0f, LB_WAVEQ_DOREFA), 2.0 / 3.0, 1e-16, "dorefa step(1) = 2/3");
	is_near(lb_waveq_shift(1.0f, LB_WAVEQ_DOREFA), 1.0 / 3.0, 1e-16, "dorefa shift(1) = 1/3");
	is_near(lb_waveq_forward_ref(&w0, 1, 1.0f, LB_WAVEQ_DOREFA, 1, 0.5f), 0.5, 1e-15,
		"dorefa beta 1: R(0) = A = 1/2 (0 is half-way between levels +-1/3)");
	is_near(lb_waveq_forward(&w0, 1, 1.0f, LB_WAVEQ_DOREFA, 1, 0.5f), 0.5, 1e-7,
		"dorefa beta 1: R(0) = 1/2 (fast)");
	/* n = 0 */
	double db = 0.5;
	float dw = 3.0f;
	ok(lb_waveq_forward(NULL, 0, 3.0f, LB_WAVEQ_WRPN, 1, 1.0f) == 0.0 &&
	       lb_waveq_backward(&dw, &db, NULL, 0, 3.0f, LB_WAVEQ_WRPN, 1, 1.0f, 1.0f) == 0.0 &&
	       lb_waveq_backward_ref(&dw, &db, NULL, 0, 3.0f, LB_WAVEQ_WRPN, 1, 1.0f, 1.0f) ==
		   0.0 &&
	       db == 0.5 && dw == 3.0f,
	   "n = 0: R = 0, gradients untouched");
}

/* ---- zeros on the quantizer grid ---- */

static void test_zeros(void)
{
	enum { N = 1000 };
	float *w = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
	float lv[1100];
	double worst_q[2] = {0, 0}, worst_l[2] = {0, 0}, least_mid[2] = {2, 2},
	       least_rand[2] = {2, 2};

	for (int k = 2; k <= 9; k++) {
		const float beta = (float)(k - 1);
		const int n = (1 << k) - 1, Q = (1 << (k - 1)) - 1;
		double A = ldexp(1.0, -(k - 1)), R;
		int cnt;

		/* DoReFa: quantize random w at k bits, map the levels back to w */
		for (size_t i = 0; i < N; i++)
			w[i] = unif(10, i, -2.5f, 2.5f);
		const float M = lb_quant_dorefa_w_max(w, N);
		R = lb_waveq_forward_ref(w, N, beta, LB_WAVEQ_DOREFA, 1, M) / A;
		least_rand[0] = fmin(least_rand[0], R);
		lb_quant_dorefa_w_forward(y, w, N, k, M);
		for (size_t i = 0; i < N; i++)
			w[i] = (float)atanh((double)y[i] * M);
		R = lb_waveq_forward_ref(w, N, beta, LB_WAVEQ_DOREFA, 1, M) / A;
		worst_q[0] = fmax(worst_q[0], R);
		R = lb_waveq_forward(w, N, beta, LB_WAVEQ_DOREFA, 1, M) / A;
		worst_q[0] = fmax(worst_q[0], R);
		/* every level (2i - n)/n, and every half-way point between two */
		cnt = 0;
		for (int i = 0; i <= n; i++)
			lv[cnt++] = (float)atanh((double)(2 * i - n) / n * 0.75);
		R = lb_waveq_forward_ref(lv, (size_t)cnt, beta, LB_WAVEQ_DOREFA, 1, 0.75f) / A;
		worst_l[0] = fmax(worst_l[0], R);
		cnt = 0;
		for (int i = 0; i < n; i++)
			lv[cnt++] = (float)atanh((double)(2 * i + 1 - n) / n * 0.75);
		R = lb_waveq_forward_ref(lv, (size_t)cnt, beta, LB_WAVEQ_DOREFA, 1, 0.75f) / A;
		least_mid[0] = fmin(least_mid[0], R);

		/* WRPN */
		for (size_t i = 0; i < N; i++)
			w[i] = unif(11, i, -1.5f, 1.5f);
		R = lb_waveq_forward_ref(w, N, beta, LB_WAVEQ_WRPN, 1, 1.0f) / A;
		least_rand[1] = fmin(least_rand[1], R);
		lb_quant_wrpn_w_forward(y, w, N, k);
		R = lb_waveq_forward_ref(y, N, beta, LB_WAVEQ_WRPN, 1, 1.0f) / A;
		worst_q[1] = fmax(worst_q[1], R);
		R = lb_waveq_forward(y, N, beta, LB_WAVEQ_WRPN, 1, 1.0f) / A;
		worst_q[1] = fmax(worst_q[1], R);
		cnt = 0;
		for (int i = -Q; i <= Q; i++)
			lv[cnt++] = (float)((double)i / Q);
		R = lb_waveq_forward_ref(lv, (size_t)cnt, beta, LB_WAVEQ_WRPN, 1, 1.0f) / A;
		worst_l[1] = fmax(worst_l[1], R);
		cnt = 0;
		for (int i = -Q; i < Q; i++)
			lv[cnt++] = (float)((i + 0.5) / Q);
		R = lb_waveq_forward_ref(lv, (size_t)cnt, beta, LB_WAVEQ_WRPN, 1, 1.0f) / A;
		least_mid[1] = fmin(least_mid[1], R);
	}
	for (int a = 0; a < 2; a++) {
		const char *nm = a ? "wrpn" : "dorefa";
		diag("%s k = 2..9: max R/A on quantized w %.3g, on the levels %.3g; min R/A on "
		     "half-way points %.9f, on random w %.3f",
		     nm, worst_q[a], worst_l[a], least_mid[a], least_rand[a]);
		ok(worst_q[a] < 1e-6, "%s: R ~ 0 on the base quantizer's k-bit output (beta = k-1)",
		   nm);
		ok(worst_l[a] < 1e-6, "%s: R ~ 0 on every k-bit level (beta = k-1)", nm);
		ok(least_mid[a] > 1.0 - 1e-6, "%s: R = A on the half-way points (maxima)", nm);
		ok(least_rand[a] > 0.25, "%s: R/A >> 0 on random weights", nm);
	}
	/* non-integer beta: DoReFa zeros at odd multiples of 1/(2^(beta+1) - 1) */
	{
		const float beta = 2.7f;
		const double d = 1.0 / (exp2(beta + 1.0) - 1.0);
		int cnt = 0;
		for (int i = -6; i <= 6; i++)
			lv[cnt++] = (float)atanh((2 * i - 1) * d * 0.9);
		const double R =
		    lb_waveq_forward_ref(lv, (size_t)cnt, beta, LB_WAVEQ_DOREFA, 0, 0.9f);
		ok(R < 1e-9,
		   "dorefa beta 2.7: zeros at odd multiples of 1/(2^(beta+1) - 1) (R %.3g)", R);
	}
	free(w);
	free(y);
}

/* ---- gradient checks (float64 twin, central differences) ---- */

struct gctx {
	float *w;
	size_t n;
	float *beta;
	enum lb_waveq_align al;
	int amp;
	float M;
};

static double loss_ref(void *p)
{
	const struct gctx *c = p;
	return lb_waveq_forward_ref(c->w, c->n, *c->beta, c->al, c->amp, c->M);
}

static void test_gradcheck(void)
{
	enum { N = 48 };
	static const float betas[] = {1.3f, 2.7f, 5.5f, 8.0f};
	float w[N], dw[N], dw0[N];
	double worst_w = 0.0, worst_b = 0.0;
	int fails_w = 0, fails_b = 0, fails_acc = 0;

	for (int al = 0; al < 2; al++)
		for (int amp = 0; amp < 2; amp++)
			for (size_t bi = 0; bi < sizeof betas / sizeof *betas; bi++) {
				float beta = betas[bi];
				fill_w(w, N, (enum lb_waveq_align)al, 20 + (uint32_t)bi);
				const float M =
				    al == LB_WAVEQ_DOREFA ? lb_quant_dorefa_w_max(w, N) : 1.0f;
				struct gctx c = {w, N, &beta, (enum lb_waveq_align)al, amp, M};
				double db = 0.0;
				memset(dw, 0, sizeof dw);
				lb_waveq_backward_ref(dw, &db, w, N, beta, c.al, amp, M, 1.0f);
				/* steps: powers of two, so w +- eps and beta +- h are exact
				 * floats (a central difference with unequal sides is only
				 * first order); small against the period 2^-beta */
				const double eps = ldexp(1.0, -(int)fmin(22.0, ceil(beta) + 13.0));
				struct gc_result r = gc_check(loss_ref, &c, w, dw, N, eps);
				/* beta: 4-point stencil, h = 2^-16 */
				const float b0 = beta, h = 0x1p-16f;
				double f[4];
				const float bs[4] = {b0 - 2 * h, b0 - h, b0 + h, b0 + 2 * h};
				for (int q = 0; q < 4; q++) {
					beta = bs[q];
					f[q] = loss_ref(&c);
				}
				beta = b0;
				const double gnum =
				    (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12.0 * h);
				struct gc_result rb = {0};
				rb.max_rel = fabs(db - gnum) / fmax(fabs(db), fabs(gnum));
				worst_w = fmax(worst_w, r.norm_rel);
				worst_b = fmax(worst_b, rb.max_rel);
				if (!(r.norm_rel < 1e-6 && r.max_rel < 1e-4)) {
					fails_w++;
					diag("  %s amp %d beta %g: dw norm_rel %.3g max_rel %.3g",
					     alname(c.al), amp, beta, r.norm_rel, r.max_rel);
				}
				if (!(rb.max_rel < 1e-6)) {
					fails_b++;
					diag("  %s amp %d beta %g: dbeta %.9g rel %.3g",
					     alname(c.al), amp, beta, db, rb.max_rel);
				}
				/* accumulation and coef, fast and ref */
				for (int fast = 0; fast < 2; fast++) {
					double db2 = 0.25;
					for (size_t i = 0; i < N; i++)
						dw0[i] = dw[i] = unif(30, i, -1.0f, 1.0f);
					if (fast)
						lb_waveq_backward(dw, &db2, w, N, beta, c.al, amp,
								  M, -0.7f);
					else
						lb_waveq_backward_ref(dw, &db2, w, N, beta, c.al,
								      amp, M, -0.7f);
					double e = fabs((db2 - 0.25) - (-0.7 * db)) / fabs(db);
					/* |dR/dw| <= (A/N) pi 2^beta / M */
					const double scale = 0.7 * (amp ? exp2(-beta) : 1.0) / N *
							     PI * exp2(beta) / M;
					for (size_t i = 0; i < N; i++) {
						float one = 0.0f;
						lb_waveq_backward_ref(&one, NULL, w + i, 1, beta,
								      c.al, amp, M, 1.0f);
						/* one element alone: dR/dw scales by 1/N */
						const double dref = -0.7 * (double)one / N;
						e = fmax(e, fabs((double)(dw[i] - dw0[i]) - dref) /
								scale);
					}
					if (!(e < 1e-3)) {
						fails_acc++;
						diag("  %s amp %d beta %g fast %d: accumulate err "
						     "%.3g",
						     alname(c.al), amp, beta, fast, e);
					}
				}
			}
	diag("gradient check: worst dw norm_rel %.3g, worst dbeta rel %.3g", worst_w, worst_b);
	ok(fails_w == 0, "dR/dw of the ref twin == central differences (16 cases)");
	ok(fails_b == 0, "dR/dbeta of the ref twin == central differences (16 cases)");
	ok(fails_acc == 0, "backward accumulates coef * gradient (fast and ref)");
}

/* ---- fast == ref ---- */

static double tol_at(float beta)
{
	return LB_WAVEQ_TOL * fmax(1.0, exp2(beta));
}

static void test_fast_ref(void)
{
	static const size_t sizes[] = {1, 7, 255, 256, 257, 1000, 4099};
	static const float betas[] = {0.6f, 1.0f, 1.3f, 2.7f, 4.0f, 5.5f, 8.0f, 12.0f, 16.0f};
	enum { NMAX = 4099 };
	float *w = malloc(NMAX * sizeof(float)), *d1 = malloc(NMAX * sizeof(float));
	float *d2 = malloc(NMAX * sizeof(float)), *d3 = malloc(NMAX * sizeof(float));
	double emax_R = 0, emax_w = 0, emax_b = 0;
	int fails = 0, same = 1, nulls = 1;

	for (int al = 0; al < 2; al++)
		for (int amp = 0; amp < 2; amp++)
			for (size_t bi = 0; bi < sizeof betas / sizeof *betas; bi++)
				for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
					const size_t n = sizes[si];
					const float beta = betas[bi];
					for (size_t i = 0; i < n; i++)
						w[i] = unif(40 + (uint32_t)si, i, -2.0f, 2.0f);
					if (n > 10) { /* clamp edges and beyond */
						w[1] = 1.0f;
						w[2] = -1.0f;
						w[3] = nextafterf(1.0f, 2.0f);
						w[4] = nextafterf(-1.0f, 0.0f);
						w[5] = 0.0f;
					}
					const enum lb_waveq_align a = (enum lb_waveq_align)al;
					const float M = a == LB_WAVEQ_DOREFA
							    ? lb_quant_dorefa_w_max(w, n)
							    : 1.0f;
					double b1 = 0.0, b2 = 0.0, b3 = 0.0;
					memset(d1, 0, n * sizeof(float));
					memset(d2, 0, n * sizeof(float));
					memset(d3, 0, n * sizeof(float));
					const double Rf = lb_waveq_forward(w, n, beta, a, amp, M);
					const double Rb =
					    lb_waveq_backward(d1, &b1, w, n, beta, a, amp, M, 1.0f);
					const double Rr = lb_waveq_backward_ref(d2, &b2, w, n, beta,
										a, amp, M, 1.0f);
					same &= Rf == Rb &&
						Rr == lb_waveq_forward_ref(w, n, beta, a, amp, M);
					/* NULL outputs give the same other output */
					lb_waveq_backward(d3, NULL, w, n, beta, a, amp, M, 1.0f);
					lb_waveq_backward(NULL, &b3, w, n, beta, a, amp, M, 1.0f);
					nulls &= b3 == b1 && memcmp(d1, d3, n * sizeof(float)) == 0;
					/* natural scales (waveq.h, LB_WAVEQ_TOL) */
					const double A = amp ? exp2(-beta) : 1.0;
					const double sw = A / n * PI * exp2(beta) / M;
					double su = 0.0, ew = 0.0;
					for (size_t i = 0; i < n; i++) {
						su += a == LB_WAVEQ_DOREFA
							  ? fabs(tanh((double)w[i]) / M)
							  : fmin(1.0, fabs((double)w[i]));
						ew = fmax(ew, fabs((double)d1[i] - d2[i]));
					}
					const double sb =
					    A * PI * exp2(beta) * LN2 * su / n + LN2 * A;
					const double eR = fabs(Rf - Rr) / A;
					ew /= sw;
					const double eb = fabs(b1 - b2) / sb;
					const double tol = tol_at(beta);
					emax_R = fmax(emax_R, eR / tol * LB_WAVEQ_TOL);
					emax_w = fmax(emax_w, ew / tol * LB_WAVEQ_TOL);
					emax_b = fmax(emax_b, eb / tol * LB_WAVEQ_TOL);
					if (!(eR <= tol && ew <= tol && eb <= tol)) {
						fails++;
						diag("  %s amp %d beta %g n %zu: R %.3g dw %.3g "
						     "dbeta "
						     "%.3g (tol %.3g)",
						     alname(a), amp, beta, n, eR, ew, eb, tol);
					}
				}
	diag("fast vs ref, error / (natural scale max(1, 2^beta)): max R %.3g, dw %.3g, "
	     "dbeta %.3g (LB_WAVEQ_TOL %.3g)",
	     emax_R, emax_w, emax_b, LB_WAVEQ_TOL);
	ok(fails == 0, "fast == ref within LB_WAVEQ_TOL max(1, 2^beta) (252 cases)");
	ok(same, "backward returns forward's R bit for bit (fast and ref)");
	ok(nulls, "NULL dw / NULL dbeta leave the other output unchanged");

	/* WRPN special inputs: exactly +-1 are inside (du = 1), NaN -> -1 with du = 0 */
	{
		const float ws[5] = {1.0f, -1.0f, NAN, 1.5f, -1.5f};
		float g1[5] = {0}, g2[5] = {0};
		double Rf = lb_waveq_backward(g1, NULL, ws, 5, 2.3f, LB_WAVEQ_WRPN, 1, 1.0f, 1.0f);
		double Rr =
		    lb_waveq_backward_ref(g2, NULL, ws, 5, 2.3f, LB_WAVEQ_WRPN, 1, 1.0f, 1.0f);
		const float wsub[4] = {1.0f, -1.0f, -1.0f, 1.0f};
		double Rs = lb_waveq_forward_ref(wsub, 4, 2.3f, LB_WAVEQ_WRPN, 1, 1.0f);
		ok(isfinite(Rf) && fabs(Rf - Rr) <= 1e-5 * Rr &&
		       fabs(Rr -
			    (Rs * 4 + lb_waveq_forward_ref(wsub, 1, 2.3f, LB_WAVEQ_WRPN, 1, 1.0f)) /
				5) < 1e-12 &&
		       g1[0] != 0.0f && g1[1] != 0.0f && g1[2] == 0.0f && g1[3] == 0.0f &&
		       g1[4] == 0.0f && g2[2] == 0.0f && g2[3] == 0.0f && g2[4] == 0.0f &&
		       fabsf(g1[0] - g2[0]) <= 1e-4f * fabsf(g2[0]),
		   "wrpn: +-1 inside the clamp, NaN and |w| > 1 clamped with zero dw");
	}
	free(w);
	free(d1);
	free(d2);
	free(d3);
}

/* ---- schedules ---- */

static void test_schedules(void)
{
	const double T = 60.0, r = 12.0, s = 1.2;
	int mono = 1, inrange = 1, closed = 1, bell = 1;
	float prev = -1.0f, prevb = -1.0f;

	/* step-like: (1 + tanh x)/2 is the logistic 1/(1 + e^-2x) */
	for (int i = 0; i <= 600; i++) {
		const double t = i * 0.1;
		const float q = lb_waveq_lambda_q(LB_WAVEQ_SCHED_STEP, t, T, r, s);
		closed &= fabs(q - 1.0 / (1.0 + exp(-2.0 * (t - r) / s))) < 1e-7;
		mono &= q >= prev;
		inrange &= q >= 0.0f && q <= 1.0f &&
			   lb_waveq_lambda_beta(LB_WAVEQ_SCHED_STEP, t, T, r, s) == 1.0f;
		prev = q;
	}
	ok(closed && mono && inrange, "step-like: logistic form, nondecreasing, lambda_beta = 1");
	ok(lb_waveq_lambda_q(LB_WAVEQ_SCHED_STEP, r, T, r, s) == 0.5f &&
	       lb_waveq_lambda_q(LB_WAVEQ_SCHED_STEP, r - 10 * s, T, r, s) < 1e-8f &&
	       lb_waveq_lambda_q(LB_WAVEQ_SCHED_STEP, r + 10 * s, T, r, s) > 1.0f - 1e-7f,
	   "step-like: 1/2 at r, ~0 before, ~1 after");

	/* paper figure */
	const double th = tanh(1.5 * PI), sech_end = 2.0 / (exp(1.5 * PI) + exp(-1.5 * PI));
	mono = inrange = closed = 1;
	prev = -1.0f;
	for (int i = 0; i <= 600; i++) {
		const double t = i * 0.1;
		const float q = lb_waveq_lambda_q(LB_WAVEQ_SCHED_PAPER, t, T, r, s);
		const float b = lb_waveq_lambda_beta(LB_WAVEQ_SCHED_PAPER, t, T, r, s);
		const double x = 3.0 * PI * (t - T / 2) / T;
		closed &= fabs(q - (tanh(x) + th) / 2) < 1e-7 &&
			  fabs(b - 2.0 / (exp(x) + exp(-x))) < 1e-7;
		mono &= q >= prev;
		bell &= t <= T / 2 ? b >= prevb : b <= prevb;
		inrange &= q >= 0.0f && q <= 1.0f && b > 0.0f && b <= 1.0f;
		prev = q;
		prevb = b;
	}
	ok(closed && mono && bell && inrange,
	   "paper: lambda_q S-curve nondecreasing, lambda_beta bell peaking at T/2, in [0, 1]");
	ok(lb_waveq_lambda_q(LB_WAVEQ_SCHED_PAPER, 0.0, T, r, s) == 0.0f &&
	       fabs(lb_waveq_lambda_q(LB_WAVEQ_SCHED_PAPER, T / 2, T, r, s) - th / 2) < 1e-7 &&
	       fabs(lb_waveq_lambda_q(LB_WAVEQ_SCHED_PAPER, T, T, r, s) - th) < 1e-7 &&
	       lb_waveq_lambda_beta(LB_WAVEQ_SCHED_PAPER, T / 2, T, r, s) == 1.0f &&
	       fabs(lb_waveq_lambda_beta(LB_WAVEQ_SCHED_PAPER, 0.0, T, r, s) - sech_end) < 1e-8 &&
	       fabs(lb_waveq_lambda_beta(LB_WAVEQ_SCHED_PAPER, T, T, r, s) - sech_end) < 1e-8,
	   "paper: endpoints 0 / tanh(3pi/2)/2 / tanh(3pi/2); sech bell 1 at T/2, sech(3pi/2) at "
	   "0, T");
	ok(lb_waveq_lambda_q(LB_WAVEQ_SCHED_PAPER, -5.0, T, r, s) == 0.0f &&
	       lb_waveq_lambda_q(LB_WAVEQ_SCHED_PAPER, T + 5.0, T, r, s) ==
		   lb_waveq_lambda_q(LB_WAVEQ_SCHED_PAPER, T, T, r, s) &&
	       lb_waveq_lambda_beta(LB_WAVEQ_SCHED_PAPER, T + 5.0, T, r, s) ==
		   lb_waveq_lambda_beta(LB_WAVEQ_SCHED_PAPER, T, T, r, s),
	   "paper: t clamped to [0, T]");
	ok(lb_waveq_lambda_q(LB_WAVEQ_SCHED_CONST, 3.0, T, r, s) == 1.0f &&
	       lb_waveq_lambda_beta(LB_WAVEQ_SCHED_CONST, 3.0, T, r, s) == 1.0f,
	   "const: 1 and 1");
}

/* ---- bits ---- */

static void test_bits(void)
{
	int all = 1;
	for (int k = 2; k <= 16; k++)
		all &= lb_waveq_bits((float)(k - 1), LB_WAVEQ_BITS_CEIL) == k &&
		       lb_waveq_bits((float)(k - 1), LB_WAVEQ_BITS_ROUND) == k;
	ok(all, "beta = k - 1 gives k bits under both rules (k = 2..16)");
	ok(lb_waveq_bits(1.3f, LB_WAVEQ_BITS_CEIL) == 3 && lb_waveq_bits(2.7f, 0) == 4 &&
	       lb_waveq_bits(1.3f, LB_WAVEQ_BITS_ROUND) == 2 &&
	       lb_waveq_bits(2.5f, LB_WAVEQ_BITS_ROUND) == 4 &&
	       lb_waveq_bits(2.49f, LB_WAVEQ_BITS_ROUND) == 3,
	   "ceil(beta) + 1 and round-half-away(beta) + 1");
	ok(lb_waveq_bits(0.2f, 0) == 2 && lb_waveq_bits(-3.0f, 0) == 2 &&
	       lb_waveq_bits(0.4f, LB_WAVEQ_BITS_ROUND) == 2 && lb_waveq_bits(15.2f, 0) == 16 &&
	       lb_waveq_bits(40.0f, 1) == 16 && lb_waveq_bits(NAN, 0) == 16,
	   "clamped to [2, 16]; NaN -> 16");
}

/* ---- speed (diagnostic only) ---- */

static double best_of(double *best, double t0)
{
	const double dt = lb_now() - t0;
	*best = fmin(*best, dt);
	return dt;
}

static void test_speed(void)
{
	const size_t n = 1600000; /* LeNet-5 fc1 */
	float *w = malloc(n * sizeof(float)), *dw = calloc(n, sizeof(float));
	float *y = malloc(n * sizeof(float));
	double sink = 0.0, db = 0.0;

	if (!w || !dw || !y) {
		skip("no memory for the timing run");
		free(w);
		free(dw);
		free(y);
		return;
	}
	memset(y, 0, n * sizeof(float));
	for (int al = 0; al < 2; al++) {
		const enum lb_waveq_align a = (enum lb_waveq_align)al;
		double tf = INFINITY, tb = INFINITY, tr = INFINITY, tq = INFINITY, t0;
		for (size_t i = 0; i < n; i++)
			w[i] = unif(50, i, -0.2f, 0.2f);
		const float M = a == LB_WAVEQ_DOREFA ? lb_quant_dorefa_w_max(w, n) : 1.0f;
		for (int rep = 0; rep < 5; rep++) { /* best of 5: the machine is shared */
			t0 = lb_now();
			sink += lb_waveq_forward(w, n, 4.0f, a, 1, M);
			best_of(&tf, t0);
			t0 = lb_now();
			sink += lb_waveq_backward(dw, &db, w, n, 4.0f, a, 1, M, 1.0f);
			best_of(&tb, t0);
			t0 = lb_now();
			if (a == LB_WAVEQ_DOREFA)
				lb_quant_dorefa_w_forward(y, w, n, 5, M);
			else
				lb_quant_wrpn_w_forward(y, w, n, 5);
			best_of(&tq, t0);
		}
		t0 = lb_now();
		sink += lb_waveq_backward_ref(dw, &db, w, n, 4.0f, a, 1, M, 1.0f);
		best_of(&tr, t0);
		diag("%s, n = %zu: forward %.2f ns/elt, backward (R + dw + dbeta) %.2f ns/elt, "
		     "backward_ref %.2f ns/elt; for scale, the %s 5-bit quantizer forward %.2f "
		     "ns/elt",
		     alname(a), n, tf / n * 1e9, tb / n * 1e9, tr / n * 1e9, alname(a),
		     tq / n * 1e9);
	}
	ok(isfinite(sink) && isfinite(db) && isfinite(y[7]), "timing run finite");
	free(w);
	free(dw);
	free(y);
}

int main(void)
{
	test_values();
	test_zeros();
	test_gradcheck();
	test_fast_ref();
	test_schedules();
	test_bits();
	test_speed();
	return done_testing();
}
