/* SPDX-License-Identifier: MIT
 * Tests for core/quant/bsq.c (BSQ bit planes): conversion against the
 * double-precision N-bit quantization of the float weights; the forward
 * against the paper's formula s Q_N(clip(sum (P - Nn) exps)) in double; fast
 * kernels == their *_ref twins bit for bit (forward, STE backward, fine-tune);
 * STE gradients against central differences of the straight-through
 * surrogate (what an STE gradient is: the derivative of the forward with Q_N
 * and the clip replaced by the identity) and the step gradient against
 * central differences of the real forward (linear in the step); the group
 * Lasso value and gradient; density; clamps; re-quantization + precision
 * adjustment keeping w_q bit-identical at thre = 0 on thousands of random
 * layers (growth, clipping at max_bits, MSB and LSB drops, layers going to 0
 * bits) with the expected N computed independently; a hand-made thre > 0
 * case; fine-tune conversion reproducing the BSQ weights bit for bit; the
 * fused kernels (forward_norms, backward_gl) against the separate ones (bit
 * for bit where the order of operations is the same, else within one float
 * rounding) and against central differences; a timing of the step's plane
 * passes (TAP diagnostics; LB_BSQ_BENCH_REPS=0 skips it). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quant/bsq.h"
#include "rng.h"
#include "../gradcheck.h"
#include "../tap.h"

#define SEED 20250101ULL
#define MB   8 /* max_bits of most tests */

static uint64_t g_idx;

static float rnd(float lo, float hi)
{
	return lo + (hi - lo) * lb_rng_uniform(SEED, LB_RNG_TEST, 1, g_idx++);
}

static uint32_t rnd_below(uint32_t n)
{
	return lb_rng_below(SEED, LB_RNG_TEST, 2, g_idx++, n);
}

static float *fnew(size_t n)
{
	return calloc(n ? n : 1, sizeof(float));
}

/* u = sum_i (P_i - Nn_i) 2^(N-1-i) in double (independent of the kernels) */
static double u_dbl(const float *P, const float *Nn, size_t n, int N, size_t e)
{
	double u = 0.0;
	for (int i = 0; i < N; i++)
		u += ((double)P[(size_t)i * n + e] - Nn[(size_t)i * n + e]) * ldexp(1.0, N - 1 - i);
	return u;
}

/* distance of x to the nearest half-integer */
static double tie_dist(double x)
{
	x = fabs(x);
	return fabs(x - floor(x) - 0.5);
}

/* bound on |u_float - u_double| for planes in [0, 2] (a few ulps of 2^(N+1)):
 * closer than this to a half-integer, float and double may round apart */
static double tie_tol(int N)
{
	return 32.0 * ldexp(1.0, N + 1 - 24);
}

static int same_bits(const float *a, const float *b, size_t n)
{
	return memcmp(a, b, n * sizeof(float)) == 0;
}

/* planes hold 0/1 only, at most one of P, Nn set per element and bit, rows >= N zero */
static int canonical(const float *P, const float *Nn, size_t n, int N, int max_bits)
{
	for (int i = 0; i < max_bits; i++)
		for (size_t e = 0; e < n; e++) {
			const float p = P[(size_t)i * n + e], q = Nn[(size_t)i * n + e];
			if (i >= N && (p != 0.0f || q != 0.0f || signbit(p) || signbit(q)))
				return 0;
			if ((p != 0.0f && p != 1.0f) || (q != 0.0f && q != 1.0f) ||
			    (p == 1.0f && q == 1.0f))
				return 0;
		}
	return 1;
}

static void fill_planes(float *P, float *Nn, size_t n, int N, int max_bits, float lo, float hi)
{
	for (size_t k = 0; k < (size_t)max_bits * n; k++) {
		const int used = k < (size_t)N * n;
		P[k] = used ? rnd(lo, hi) : 0.0f;
		Nn[k] = used ? rnd(lo, hi) : 0.0f;
	}
}

/* ---- helpers ---- */

static void test_helpers(void)
{
	int good = 1;
	for (int N = 1; N <= LB_BSQ_MAX_BITS; N++) {
		float ex[LB_BSQ_MAX_BITS];
		double sum = 0.0;
		const int M = lb_bsq_levels(N);
		lb_bsq_exps(ex, N);
		for (int i = 0; i < N; i++) {
			sum += ex[i];
			good &= fabs((double)ex[i] * M - ldexp(1.0, N - 1 - i)) <=
				1e-6 * ldexp(1.0, N - i);
		}
		good &= M == (1 << N) - 1 && fabs(sum - 1.0) < 1e-6;
		good &= lb_bsq_step_grad_scale(N) == (float)(1.0 / ((double)M * M));
		good &= fabsf(lb_bsq_scale(lb_bsq_step(0.7f, N), N) - 0.7f) <= 1e-6f;
	}
	good &= lb_bsq_levels(0) == 0 && lb_bsq_scale(3.0f, 0) == 0.0f &&
		lb_bsq_step_grad_scale(0) == 0.0f;
	ok(good, "levels, exps (sum 1, exps M = 2^(N-1-i)), scale <-> step, grad scale 1/M^2");
}

/* ---- conversion ---- */

static void test_convert(void)
{
	const size_t n = 777;
	float *w = fnew(n), *P = fnew(MB * n), *Nn = fnew(MB * n), *wq = fnew(n);
	int good_R = 1, good_w = 1, canon = 1, good_step = 1, good_sign = 1;
	size_t ties = 0, checked = 0;

	for (int N = 1; N <= MB; N++) {
		const double M = lb_bsq_levels(N);
		float step, S = 0.0f;
		for (size_t e = 0; e < n; e++) {
			w[e] = e % 50 == 0 ? 0.0f : rnd(-0.3f, 0.25f);
			S = fmaxf(S, fabsf(w[e]));
		}
		for (size_t k = 0; k < MB * n; k++)
			P[k] = Nn[k] = 7.0f; /* garbage: convert must overwrite every row */
		lb_bsq_convert(P, Nn, &step, w, n, N, MB);
		canon &= canonical(P, Nn, n, N, MB);
		good_step &= step == S / (float)M;
		lb_bsq_forward(wq, P, Nn, step, n, N);
		for (size_t e = 0; e < n; e++) {
			const double q = fabs((double)w[e]) * M / S; /* exact-ish, double */
			const double R = floor(q + 0.5);
			const double got = fabs(u_dbl(P, Nn, n, N, e));
			checked++;
			if (got != R) {
				if (tie_dist(q) < 1e-5)
					ties++;
				else
					good_R = 0;
			}
			/* w_q = S R / M up to the two roundings of fl(fl(S/M) R) */
			const double want = (w[e] < 0 ? -1.0 : 1.0) * S * got / M;
			good_w &= fabs((double)wq[e] - want) <= 2.5e-7 * fabs(want);
			good_sign &= got == 0.0 || (w[e] > 0) == (u_dbl(P, Nn, n, N, e) > 0);
		}
	}
	ok(canon, "convert: binary planes, one of P/Nn per bit, rows >= N zeroed");
	ok(good_R, "convert: integers = round(|w| M / max|w|) (double), %zu of %zu at ties", ties,
	   checked);
	ok(good_step && good_sign, "convert: step = max|w| / M, positive w -> P, negative -> Nn");
	ok(good_w,
	   "convert -> forward reproduces the N-bit quantized weights S R / M (2.5e-7 rel)");

	/* all-zero layer: planes 0, s = 1, weights 0 */
	{
		float step = -1.0f;
		int z = 1;
		memset(w, 0, n * sizeof(*w));
		w[3] = -0.0f;
		lb_bsq_convert(P, Nn, &step, w, n, 5, MB);
		lb_bsq_forward(wq, P, Nn, step, n, 5);
		for (size_t k = 0; k < MB * n; k++)
			z &= P[k] == 0.0f && Nn[k] == 0.0f;
		for (size_t e = 0; e < n; e++)
			z &= wq[e] == 0.0f && !signbit(wq[e]);
		ok(z && step == 1.0f / 31.0f && lb_bsq_scale(step, 5) == 1.0f,
		   "convert all-zero w: planes 0, s = 1 (step 1/M), forward +0");
	}
	free(w);
	free(P);
	free(Nn);
	free(wq);
}

/* ---- forward / backward twins, paper formula ---- */

static void test_twins(void)
{
	static const size_t sizes[] = {1, 7, 255, 256, 257, 1000};
	int fwd = 1, bwd = 1, paper = 1;
	size_t cases = 0, ties = 0, elems = 0;

	for (int kind = 0; kind < 3; kind++)
		for (size_t si = 0; si < sizeof(sizes) / sizeof(*sizes); si++)
			for (int N = 0; N <= 9; N++) {
				const int mb = N == 9 ? LB_BSQ_MAX_BITS : MB;
				const int Nu = N == 9 ? LB_BSQ_MAX_BITS : N;
				const size_t n = sizes[si];
				float *P = fnew(mb * n), *Nn = fnew(mb * n), *a = fnew(n),
				      *b = fnew(n);
				float *dPa = fnew(mb * n), *dPb = fnew(mb * n), *dNa = fnew(mb * n),
				      *dNb = fnew(mb * n), *g = fnew(n);
				const float step = rnd(1e-3f, 0.5f), gs = rnd(0.1f, 2.0f);
				float dsa = 0.25f, dsb = 0.25f;

				if (kind == 0)
					fill_planes(P, Nn, n, Nu, mb, 0.0f,
						    2.0f); /* overflow often */
				else if (kind == 1)
					fill_planes(P, Nn, n, Nu, mb, 0.0f, 1.0f);
				else
					for (size_t k = 0; k < (size_t)Nu * n; k++) {
						P[k] = (float)rnd_below(5) *
						       0.5f; /* exact half-integer ties */
						Nn[k] = k % 3 ? 0.0f : -0.0f;
					}
				for (size_t k = 0; k < (size_t)mb * n; k++) {
					dPa[k] = dPb[k] = rnd(-1.0f, 1.0f);
					dNa[k] = dNb[k] = rnd(-1.0f, 1.0f);
				}
				for (size_t e = 0; e < n; e++)
					g[e] = rnd(-1.0f, 1.0f);
				lb_bsq_forward(a, P, Nn, step, n, Nu);
				lb_bsq_forward_ref(b, P, Nn, step, n, Nu);
				fwd &= same_bits(a, b, n);
				lb_bsq_backward(dPa, dNa, &dsa, g, P, Nn, step, n, Nu, gs);
				lb_bsq_backward_ref(dPb, dNb, &dsb, g, P, Nn, step, n, Nu, gs);
				bwd &= same_bits(dPa, dPb, mb * n) && same_bits(dNa, dNb, mb * n) &&
				       memcmp(&dsa, &dsb, sizeof(float)) == 0;
				cases++;
				/* the paper: s Q_N(clip(w^, -1, 1)), w^ = sum (P - Nn) exps, in
				 * double */
				for (size_t e = 0; e < n && Nu > 0; e++) {
					const double M = lb_bsq_levels(Nu), s = (double)step * M;
					double wh = 0.0;
					for (int i = 0; i < Nu; i++)
						wh += ((double)P[(size_t)i * n + e] -
						       Nn[(size_t)i * n + e]) *
						      (ldexp(1.0, Nu - 1 - i) / M);
					const double c = fmin(fabs(wh), 1.0);
					const double R = floor(c * M + 0.5);
					const double want = (wh < 0 ? -1.0 : 1.0) * s * R / M;
					elems++;
					if (fabs((double)a[e] - want) > 2.5e-7 * fabs(want) ||
					    (want == 0.0 && (a[e] != 0.0f || signbit(a[e])))) {
						if (tie_dist(c * M) < tie_tol(Nu))
							ties++;
						else
							paper = 0;
					}
				}
				for (size_t e = 0; e < n && Nu == 0; e++)
					paper &= a[e] == 0.0f && !signbit(a[e]);
				free(P);
				free(Nn);
				free(a);
				free(b);
				free(dPa);
				free(dPb);
				free(dNa);
				free(dNb);
				free(g);
			}
	ok(fwd, "forward == forward_ref bit for bit (%zu layers, N = 0..8 and 16)", cases);
	ok(bwd, "backward == backward_ref bit for bit (dP, dNn accumulated, dstep)");
	ok(paper, "forward == s Q_N(clip(sum (P-Nn) exps)) in double, %zu elements, %zu near ties",
	   elems, ties);
}

/* ---- STE gradient checks ---- */

struct ste_ctx {
	const float *P, *Nn;
	const float *r; /* dL/dw_q */
	size_t n;
	int N;
	float *step;
	float *wq;
};

/* surrogate loss <r, s w^> = <r, d u>: Q_N and the clip replaced by identity */
static double ste_surrogate(void *vc)
{
	const struct ste_ctx *c = vc;
	double L = 0.0;
	for (size_t e = 0; e < c->n; e++)
		L += (double)c->r[e] * (double)*c->step * u_dbl(c->P, c->Nn, c->n, c->N, e);
	return L;
}

/* the real loss <r, w_q> (w_q is linear in the step) */
static double ste_real(void *vc)
{
	const struct ste_ctx *c = vc;
	lb_bsq_forward(c->wq, c->P, c->Nn, *c->step, c->n, c->N);
	return gc_dot(c->r, c->wq, c->n);
}

static void test_ste_grad(void)
{
	const size_t n = 40;
	int good_p = 1, good_s = 1, good_sgd = 1;
	double worst = 0.0, worst_s = 0.0;

	for (int N = 1; N <= MB; N++) {
		float *P = fnew(MB * n), *Nn = fnew(MB * n), *r = fnew(n), *wq = fnew(n);
		float *dP = fnew(MB * n), *dNn = fnew(MB * n);
		float step = rnd(0.01f, 0.2f), dstep = 0.0f, dstep2 = 0.0f;
		struct ste_ctx c = {P, Nn, r, n, N, &step, wq};

		fill_planes(P, Nn, n, N, MB, 0.05f, 1.95f); /* clipped elements included */
		for (size_t e = 0; e < n; e++)
			r[e] = rnd(-1.0f, 1.0f);
		lb_bsq_backward(dP, dNn, &dstep, r, P, Nn, step, n, N, 1.0f);
		const struct gc_result gp = gc_check(ste_surrogate, &c, P, dP, (size_t)N * n, 1e-2);
		const struct gc_result gn =
		    gc_check(ste_surrogate, &c, Nn, dNn, (size_t)N * n, 1e-2);
		worst = fmax(worst, fmax(gp.norm_rel, gn.norm_rel));
		good_p &= gp.norm_rel < 1e-5 && gn.norm_rel < 1e-5;
		/* step: central difference of the real forward */
		const struct gc_result gsr = gc_check(ste_real, &c, &step, &dstep, 1, 0.05 * step);
		worst_s = fmax(worst_s, gsr.norm_rel);
		good_s &= gsr.norm_rel < 1e-4;
		/* grad scale 1/M^2: dstep = (dL/ds) / M, dL/ds = sum g Q_N(clip w^) (double) */
		{
			const double M = lb_bsq_levels(N);
			double dLds = 0.0;
			for (size_t e = 0; e < n; e++) {
				const double u = u_dbl(P, Nn, n, N, e);
				dLds +=
				    r[e] * (u < 0 ? -1.0 : 1.0) * floor(fmin(fabs(u), M) + 0.5) / M;
			}
			lb_bsq_backward(NULL, NULL, &dstep2, r, P, Nn, step, n, N,
					lb_bsq_step_grad_scale(N));
			good_sgd &= fabs(dstep2 - dLds / M) <= 1e-5 * fabs(dLds / M) + 1e-12;
		}
		free(P);
		free(Nn);
		free(r);
		free(wq);
		free(dP);
		free(dNn);
	}
	ok(good_p, "STE dP, dNn == central differences of <r, s w^> (surrogate), worst %.2e",
	   worst);
	ok(good_s, "dstep == central difference of the real forward in the step, worst %.2e",
	   worst_s);
	ok(good_sgd, "grad scale 1/M^2: dstep == (sum g Q_N(clip w^)) / M (SGD on s equivalent)");

	/* N = 0: nothing accumulated; forward +0 */
	{
		float P[4] = {1, 1, 1, 1}, Nn[4] = {0}, g[4] = {1, 2, 3, 4}, wq[4],
		      dP[4] = {5, 5, 5, 5};
		float dN[4] = {6, 6, 6, 6}, ds = 7.0f;
		int z = 1;
		lb_bsq_forward(wq, P, Nn, 0.5f, 4, 0);
		lb_bsq_backward(dP, dN, &ds, g, P, Nn, 0.5f, 4, 0, 1.0f);
		for (int e = 0; e < 4; e++)
			z &= wq[e] == 0.0f && !signbit(wq[e]) && dP[e] == 5.0f && dN[e] == 6.0f;
		ok(z && ds == 7.0f && lb_bsq_group_lasso(dP, dN, P, Nn, 4, 0, 1.0) == 0.0,
		   "N = 0: forward 0, no plane/step gradients, group Lasso 0");
	}
}

/* ---- group Lasso ---- */

struct gl_ctx {
	const float *P, *Nn;
	size_t n;
	int N;
	double c;
};

static double gl_value(void *vc) /* independent double transcription */
{
	const struct gl_ctx *g = vc;
	double v = 0.0;
	for (int i = 0; i < g->N; i++) {
		double s2 = 1e-8;
		for (size_t e = 0; e < g->n; e++) {
			const double p = g->P[(size_t)i * g->n + e],
				     q = g->Nn[(size_t)i * g->n + e];
			s2 += p * p + q * q;
		}
		v += sqrt(s2);
	}
	return g->c * v;
}

static void test_group_lasso(void)
{
	const size_t n = 30;
	const int N = 5;
	float *P = fnew(MB * n), *Nn = fnew(MB * n), *dP = fnew(MB * n), *dNn = fnew(MB * n);
	struct gl_ctx g = {P, Nn, n, N, 0.37};

	fill_planes(P, Nn, n, N, MB, 0.1f, 1.9f);
	const double v = lb_bsq_group_lasso(dP, dNn, P, Nn, n, N, g.c);
	ok(fabs(v - gl_value(&g)) <= 1e-12 * v,
	   "group Lasso value == c sum sqrt(sum P^2+Nn^2+1e-8)");
	const struct gc_result a = gc_check(gl_value, &g, P, dP, (size_t)N * n, 1e-3);
	const struct gc_result b = gc_check(gl_value, &g, Nn, dNn, (size_t)N * n, 1e-3);
	ok(a.norm_rel < 1e-4 && b.norm_rel < 1e-4,
	   "group Lasso gradient == central differences (rel %.2e, %.2e)", a.norm_rel, b.norm_rel);
	/* rows >= N untouched; a zero plane: value c sqrt(1e-8), gradient 0 */
	{
		int good = 1;
		for (size_t k = (size_t)N * n; k < MB * n; k++)
			good &= dP[k] == 0.0f && dNn[k] == 0.0f;
		memset(P + 2 * n, 0, n * sizeof(float));
		memset(Nn + 2 * n, 0, n * sizeof(float));
		memset(dP, 0, MB * n * sizeof(float));
		const double v2 = lb_bsq_group_lasso(dP, NULL, P, Nn, n, N, g.c);
		for (size_t e = 0; e < n; e++)
			good &= dP[2 * n + e] == 0.0f;
		ok(good && fabs(v2 - gl_value(&g)) <= 1e-12 * v2,
		   "group Lasso: zero plane gives c 1e-4 and no gradient; rows >= N untouched");
	}
	free(P);
	free(Nn);
	free(dP);
	free(dNn);
}

/* ---- fused kernels: forward_norms, backward_gl, against the separate ones ---- */

/* group Lasso's squared norms in lb_bsq_group_lasso's order (serial double) */
static void sumsq_serial(double *s, const float *P, const float *Nn, size_t n, int N)
{
	for (int i = 0; i < N; i++) {
		double s2 = 0.0;
		for (size_t e = 0; e < n; e++) {
			const float p = P[(size_t)i * n + e], q = Nn[(size_t)i * n + e];
			s2 += (double)p * p + (double)q * q;
		}
		s[i] = s2;
	}
}

/* bits equal, or both NaN (NaN payloads of double sums depend on the order) */
static int same_or_nan(const float *a, const float *b, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (memcmp(a + k, b + k, sizeof(float)) != 0 && !(isnan(a[k]) && isnan(b[k])))
			return 0;
	return 1;
}

/* |a - b| <= 2^-23 (|b| + |extra|) + tiny, elementwise: one float rounding of
 * the group-Lasso term (extra = k x) and one of the sum apart */
static int near_gl(const float *a, const float *b, const float *x, const double *k, size_t n, int N,
		   double *worst)
{
	int good = 1;
	for (int i = 0; i < N; i++)
		for (size_t e = 0; e < n; e++) {
			const size_t o = (size_t)i * n + e;
			const double d = fabs((double)a[o] - b[o]);
			const double tol =
			    0x1p-23 * (fabs((double)b[o]) + fabs(k[i] * x[o])) + 1e-37;
			if (isnan(a[o]) || isnan(b[o])) {
				good &= isnan(a[o]) && isnan(b[o]);
				continue;
			}
			*worst = fmax(*worst, d / tol);
			good &= d <= tol;
		}
	return good;
}

struct fused_stats {
	int fwd, norms, rows, gl_bits, gl_near, ste_bits, nulls, dstep, set_bits;
	double worst_ds, worst_gl, worst_ss;
	size_t cases;
};

/* planes of kind 0: [0, 2] (overflow often), 1: [0, 1], 2: exact half-integer
 * ties and -0, 3: kind 0 with NaN, inf, 3e38 and -0 sprinkled in (returns 1
 * when a non-finite or huge value went in) */
static int fused_planes(float *P, float *Nn, size_t n, int Nu, int mb, int kind)
{
	int special = 0;
	if (kind == 1)
		fill_planes(P, Nn, n, Nu, mb, 0.0f, 1.0f);
	else if (kind != 2)
		fill_planes(P, Nn, n, Nu, mb, 0.0f, 2.0f);
	else
		for (size_t q = 0; q < (size_t)Nu * n; q++) {
			P[q] = (float)rnd_below(5) * 0.5f;
			Nn[q] = q % 3 ? 0.0f : -0.0f;
		}
	for (size_t e = 0; kind == 3 && Nu > 0 && e < n; e += 97) {
		static const float sp[] = {NAN, INFINITY, 3e38f, -0.0f, -NAN};
		const size_t o = (size_t)rnd_below((uint32_t)Nu) * n + e;
		const float v = sp[rnd_below(5)];
		*(rnd_below(2) ? &P[o] : &Nn[o]) = v;
		special |= !isfinite(v) || v > 1e30f;
	}
	return special;
}

/* one layer: the fused kernels against the separate ones */
static void fused_case(struct fused_stats *st, int kind, size_t n, int Nu, int mb)
{
	const size_t m = (size_t)mb * n, mu = (size_t)Nu * n;
	float *P = fnew(m), *Nn = fnew(m), *a = fnew(n), *b = fnew(n), *g = fnew(n);
	float *dPa = fnew(m), *dPb = fnew(m), *dNa = fnew(m), *dNb = fnew(m);
	float *dP0 = fnew(m), *dN0 = fnew(m);
	double ss[LB_BSQ_MAX_BITS + 1], ser[LB_BSQ_MAX_BITS], k[LB_BSQ_MAX_BITS];
	const float step = rnd(1e-3f, 0.5f), gs = rnd(0.1f, 2.0f);
	const double c = rnd(0.05f, 3.0f);
	const int special = fused_planes(P, Nn, n, Nu, mb, kind);
	const size_t fsz = m * sizeof(float);
	float dsa = 0.25f, dsb = 0.25f;

	for (size_t q = 0; q < m; q++) {
		dP0[q] = rnd(-1.0f, 1.0f);
		dN0[q] = rnd(-1.0f, 1.0f);
	}
	for (size_t e = 0; e < n; e++)
		g[e] = rnd(-1.0f, 1.0f);
	st->cases++;

	/* forward: bit for bit; norms: the double sums in any order */
	for (int i = 0; i <= LB_BSQ_MAX_BITS; i++)
		ss[i] = -1.0;
	lb_bsq_forward_norms(a, ss, P, Nn, step, n, Nu);
	lb_bsq_forward(b, P, Nn, step, n, Nu);
	st->fwd &= same_bits(a, b, n);
	sumsq_serial(ser, P, Nn, n, Nu);
	for (int i = 0; i < Nu; i++) {
		if (!isfinite(ser[i])) { /* inf or NaN planes in this row */
			st->norms &= (isnan(ss[i]) && isnan(ser[i])) || ss[i] == ser[i];
			continue;
		}
		const double d = fabs(ss[i] - ser[i]) / fmax(ser[i], 1e-300);
		st->worst_ss = fmax(st->worst_ss, d);
		st->norms &= d <= 1e-13;
	}
	for (int i = Nu; i <= LB_BSQ_MAX_BITS; i++)
		st->rows &= ss[i] == -1.0;
	lb_bsq_forward_norms(a, NULL, P, Nn, step, n, Nu);
	st->fwd &= same_bits(a, b, n);

	/* the two calls */
	memcpy(dPb, dP0, fsz);
	memcpy(dNb, dN0, fsz);
	lb_bsq_backward(dPb, dNb, &dsb, g, P, Nn, step, n, Nu, gs);
	const double vb = lb_bsq_group_lasso(dPb, dNb, P, Nn, n, Nu, c);
	/* fused, with the norms in group_lasso's order: dP, dNn, value bit for bit */
	memcpy(dPa, dP0, fsz);
	memcpy(dNa, dN0, fsz);
	const double va = lb_bsq_backward_gl(dPa, dNa, &dsa, g, P, Nn, step, n, Nu, gs, c, ser);
	st->gl_bits &= same_or_nan(dPa, dPb, m) && same_or_nan(dNa, dNb, m) &&
		       (va == vb || (isnan(va) && isnan(vb)));
	/* dstep: the double sum in another order, then one float rounding */
	{
		const double M = lb_bsq_levels(Nu);
		double sa = 0.0;
		for (size_t e = 0; e < n && Nu; e++)
			sa += fabs(g[e]) * fmin(floor(fabs(u_dbl(P, Nn, n, Nu, e)) + 0.5), M);
		const double tol = 0x1p-23 * (fabs((double)dsb) + gs * sa) + 1e-30;
		if (isnan(dsa) || isnan(dsb) || isinf(sa)) {
			st->dstep &= isnan(dsa) == isnan(dsb);
		} else {
			st->worst_ds = fmax(st->worst_ds, fabs((double)dsa - dsb) / tol);
			st->dstep &= fabs((double)dsa - dsb) <= tol;
		}
	}
	/* fused with forward_norms' sums (the training path): within one rounding */
	if (Nu > 0 && !special) {
		for (int i = 0; i < Nu; i++)
			k[i] = c / sqrt(ser[i] + LB_BSQ_EPS);
		memcpy(dPa, dP0, fsz);
		memcpy(dNa, dN0, fsz);
		lb_bsq_forward_norms(a, ss, P, Nn, step, n, Nu);
		const double v2 =
		    lb_bsq_backward_gl(dPa, dNa, NULL, g, P, Nn, step, n, Nu, gs, c, ss);
		st->gl_near &= near_gl(dPa, dPb, P, k, n, Nu, &st->worst_gl) &&
			       near_gl(dNa, dNb, Nn, k, n, Nu, &st->worst_gl) &&
			       fabs(v2 - vb) <= 1e-13 * vb;
		st->gl_near &=
		    same_bits(dPa + mu, dP0 + mu, m - mu) && same_bits(dNa + mu, dN0 + mu, m - mu);
	}
	/* c = 0: lb_bsq_backward bit for bit, value 0, sumsq not read */
	{
		float d1 = 0.25f;
		memcpy(dPa, dP0, fsz);
		memcpy(dNa, dN0, fsz);
		memcpy(dPb, dP0, fsz);
		memcpy(dNb, dN0, fsz);
		lb_bsq_backward(dPb, dNb, NULL, g, P, Nn, step, n, Nu, gs);
		st->ste_bits &=
		    lb_bsq_backward_gl(dPa, dNa, &d1, g, P, Nn, step, n, Nu, gs, 0.0, NULL) == 0.0;
		st->ste_bits &= same_bits(dPa, dPb, m) && same_bits(dNa, dNb, m);
		st->ste_bits &= memcmp(&d1, &dsa, sizeof(float)) == 0; /* same dstep as above */
	}
	/* _set (the trainer's path): dP, dNn full of garbage are written as if
	 * zeroed, rows >= N cleared, the step gradient still accumulated; bit for
	 * bit the zero-then-accumulate sequence, with c and with c = 0 */
	for (int gl = 0; gl < 2; gl++) {
		const double cc = gl ? c : 0.0;
		float d1 = 0.25f, d2 = 0.25f;
		memset(dPb, 0, fsz);
		memset(dNb, 0, fsz);
		const double v1 =
		    lb_bsq_backward_gl(dPb, dNb, &d1, g, P, Nn, step, n, Nu, gs, cc, ser);
		memcpy(dPa, dP0, fsz);
		memcpy(dNa, dN0, fsz);
		const double v2 = lb_bsq_backward_gl_set(dPa, dNa, &d2, g, P, Nn, step, n, Nu, mb,
							 gs, cc, ser);
		st->set_bits &= same_or_nan(dPa, dPb, m) && same_or_nan(dNa, dNb, m) &&
				same_or_nan(&d1, &d2, 1) &&
				(v1 == v2 || (isnan(v1) && isnan(v2)));
	}
	/* NULL outputs: the others as with all present */
	{
		float d1 = 0.25f;
		memcpy(dPa, dP0, fsz);
		memcpy(dPb, dP0, fsz);
		lb_bsq_backward(dPb, NULL, NULL, g, P, Nn, step, n, Nu, gs);
		lb_bsq_group_lasso(dPb, NULL, P, Nn, n, Nu, c);
		const double v1 =
		    lb_bsq_backward_gl(dPa, NULL, NULL, g, P, Nn, step, n, Nu, gs, c, ser);
		st->nulls &= same_or_nan(dPa, dPb, m) && (v1 == vb || (isnan(v1) && isnan(vb)));
		memcpy(dNa, dN0, fsz);
		memcpy(dNb, dN0, fsz);
		lb_bsq_backward(NULL, dNb, NULL, g, P, Nn, step, n, Nu, gs);
		lb_bsq_group_lasso(NULL, dNb, P, Nn, n, Nu, c);
		lb_bsq_backward_gl(NULL, dNa, &d1, g, P, Nn, step, n, Nu, gs, c, ser);
		st->nulls &= same_or_nan(dNa, dNb, m) && memcmp(&d1, &dsa, sizeof(float)) == 0;
		d1 = 0.25f;
		lb_bsq_backward_gl(NULL, NULL, &d1, g, P, Nn, step, n, Nu, gs, 0.0, NULL);
		st->nulls &= memcmp(&d1, &dsa, sizeof(float)) == 0;
	}
	free(P);
	free(Nn);
	free(a);
	free(b);
	free(g);
	free(dPa);
	free(dPb);
	free(dNa);
	free(dNb);
	free(dP0);
	free(dN0);
}

static void test_fused(void)
{
	/* below, at and above the kernels' blocks (256, 8192 elements) */
	static const size_t sizes[] = {1, 3, 5, 255, 256, 257, 1000, 8192, 8451};
	struct fused_stats st = {1, 1, 1, 1, 1, 1, 1, 1, 1, 0.0, 0.0, 0.0, 0};
	int zero = 1;

	for (int kind = 0; kind < 4; kind++)
		for (size_t si = 0; si < sizeof(sizes) / sizeof(*sizes); si++)
			for (int N = 0; N <= 9; N++)
				fused_case(&st, kind, sizes[si], N == 9 ? LB_BSQ_MAX_BITS : N,
					   N == 9 ? LB_BSQ_MAX_BITS : MB);
	ok(st.fwd, "forward_norms: w_q == lb_bsq_forward bit for bit (%zu layers, NaN/inf incl.)",
	   st.cases);
	ok(st.norms && st.rows,
	   "forward_norms: sumsq == serial double sum of P^2 + Nn^2 (rel %.1e <= 1e-13), "
	   "sumsq[i >= N] untouched",
	   st.worst_ss);
	ok(st.gl_bits, "backward_gl(sumsq in group_lasso's order) == backward + group_lasso: "
		       "dP, dNn, value bit for bit");
	ok(st.dstep, "backward_gl dstep within 2^-23 (|dstep| + gs sum |g r|) (worst %.2g of tol)",
	   st.worst_ds);
	ok(st.gl_near,
	   "backward_gl(sumsq of forward_norms): dP, dNn within 2^-23 (|d| + |k x|) (worst %.2g "
	   "of tol), value 1e-13, rows >= N untouched",
	   st.worst_gl);
	ok(st.ste_bits, "backward_gl c = 0 == lb_bsq_backward bit for bit, value 0, sumsq NULL");
	ok(st.nulls, "backward_gl with dP / dNn / dstep NULL: the others unchanged");
	ok(st.set_bits, "backward_gl_set on gradients full of garbage == zeroing them and "
			"backward_gl: dP, dNn (rows >= N cleared), dstep, value bit for bit");

	/* N = 0 */
	{
		float P[4] = {1, 1, 1, 1}, Nn[4] = {0}, g[4] = {1, 2, 3, 4}, wq[4] = {9, 9, 9, 9};
		float dP[4] = {5, 5, 5, 5}, dN[4] = {6, 6, 6, 6}, ds = 7.0f;
		double s2 = -1.0;
		lb_bsq_forward_norms(wq, &s2, P, Nn, 0.5f, 4, 0);
		zero &=
		    lb_bsq_backward_gl(dP, dN, &ds, g, P, Nn, 0.5f, 4, 0, 1.0f, 1.0, &s2) == 0.0;
		for (int e = 0; e < 4; e++)
			zero &= wq[e] == 0.0f && !signbit(wq[e]) && dP[e] == 5.0f && dN[e] == 6.0f;
		ok(zero && ds == 7.0f && s2 == -1.0,
		   "fused N = 0: forward +0, sumsq untouched, nothing added, value 0");
	}
}

/* gradient check of backward_gl: L = <r, s w^> (the STE surrogate) + group Lasso */
struct fz_ctx {
	struct ste_ctx s;
	struct gl_ctx g;
};

static double fz_value(void *vc)
{
	struct fz_ctx *c = vc;
	return ste_surrogate(&c->s) + gl_value(&c->g);
}

static void test_fused_grad(void)
{
	const size_t n = 37;
	const int N = 6;
	float *P = fnew(MB * n), *Nn = fnew(MB * n), *r = fnew(n), *wq = fnew(n);
	float *dP = fnew(MB * n), *dNn = fnew(MB * n);
	float step = 0.07f;
	double ss[LB_BSQ_MAX_BITS];
	struct fz_ctx c = {{P, Nn, r, n, N, &step, wq}, {P, Nn, n, N, 0.8}};

	fill_planes(P, Nn, n, N, MB, 0.05f, 1.95f);
	for (size_t e = 0; e < n; e++)
		r[e] = rnd(-1.0f, 1.0f);
	lb_bsq_forward_norms(wq, ss, P, Nn, step, n, N);
	const double v = lb_bsq_backward_gl(dP, dNn, NULL, r, P, Nn, step, n, N, 1.0f, c.g.c, ss);
	const struct gc_result a = gc_check(fz_value, &c, P, dP, (size_t)N * n, 1e-3);
	const struct gc_result b = gc_check(fz_value, &c, Nn, dNn, (size_t)N * n, 1e-3);
	ok(fabs(v - gl_value(&c.g)) <= 1e-12 * v && a.norm_rel < 1e-4 && b.norm_rel < 1e-4,
	   "backward_gl gradient == central differences of <r, s w^> + group Lasso (rel %.2e, "
	   "%.2e), value",
	   a.norm_rel, b.norm_rel);
	free(P);
	free(Nn);
	free(r);
	free(wq);
	free(dP);
	free(dNn);
}

/* the clamp's vectorised blocks (1024 floats) and tail, against the rule
 * written out: rows < N to [0, 2], -0 and NaN to +0; rows >= N to +0 */
static void test_clamp_blocks(void)
{
	static const float sp[] = {NAN, -NAN, INFINITY, -INFINITY, -0.0f, 0.0f, 2.0f, 2.0000002f};
	const size_t n = 700;
	const int N = 3, mb = 5;
	float *P = fnew(mb * n), *Nn = fnew(mb * n), *P0 = fnew(mb * n), *N0 = fnew(mb * n);
	int good = 1;

	for (size_t k = 0; k < (size_t)mb * n; k++) {
		P[k] = k % 13 == 0 ? sp[rnd_below(8)] : rnd(-1.0f, 3.0f);
		Nn[k] = k % 11 == 0 ? sp[rnd_below(8)] : rnd(-1.0f, 3.0f);
	}
	memcpy(P0, P, mb * n * sizeof(float));
	memcpy(N0, Nn, mb * n * sizeof(float));
	lb_bsq_clamp(P, Nn, n, N, mb);
	for (size_t k = 0; k < (size_t)mb * n; k++)
		for (int w = 0; w < 2; w++) {
			const float x = w ? N0[k] : P0[k], y = w ? Nn[k] : P[k];
			float want;
			if (k >= (size_t)N * n || isnan(x) || x <= 0.0f)
				want = 0.0f;
			else
				want = x >= 2.0f ? 2.0f : x;
			good &= memcmp(&want, &y, sizeof(float)) == 0;
		}
	ok(good, "clamp on %zu x %d planes (vector blocks and tail) == the rule, bit for bit", n,
	   N);
	free(P);
	free(Nn);
	free(P0);
	free(N0);
}

/* ---- timing (TAP diagnostics only) ---- */

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* lb_bsq_clamp as it was before it was made branch-free, for the timing
 * (noinline: compiled as a library function, not specialised for the call) */
static __attribute__((noinline)) void clamp_branchy(float *P, float *Nn, size_t n, int N)
{
	for (size_t k = 0; k < (size_t)N * n; k++) {
		const float p = P[k], q = Nn[k];
		P[k] = p > 2.0f ? 2.0f : p > 0.0f ? p : 0.0f;
		Nn[k] = q > 2.0f ? 2.0f : q > 0.0f ? q : 0.0f;
	}
}

/* LeNet-5 fc1 (n = 524288, N = max_bits = 8): ns per weight of the BSQ plane
 * passes of one training step, separate kernels vs fused. Thread CPU time,
 * best of LB_BSQ_BENCH_REPS (default 3; 0 skips). */
static void bench_fused(void)
{
	const char *env = getenv("LB_BSQ_BENCH_REPS");
	const int reps = env ? atoi(env) : 3;
	const size_t n = 524288;
	const int N = 8;
	const size_t m = (size_t)N * n;
	double t[8];
	uint64_t x = 88172645463325252ULL;

	if (reps <= 0) {
		diag("timing skipped (LB_BSQ_BENCH_REPS=0)");
		return;
	}
	float *P = fnew(m), *Nn = fnew(m), *dP = fnew(m), *dNn = fnew(m), *wq = fnew(n),
	      *g = fnew(n);
	double ss[LB_BSQ_MAX_BITS];
	float ds = 0.0f;
	if (!P || !Nn || !dP || !dNn || !wq || !g) {
		diag("timing skipped (out of memory)");
		goto out;
	}
	for (size_t k = 0; k < m; k++) { /* xorshift: planes in [0, 2), a third at 0 */
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		P[k] = (x >> 40) % 3 ? (float)(x >> 40) * 0x1p-23f : 0.0f;
		Nn[k] = (x & 0xffffff) % 3 ? (float)(x & 0xffffff) * 0x1p-23f : 0.0f;
	}
	for (size_t e = 0; e < n; e++)
		g[e] = (float)(e % 17) * 1e-3f - 8e-3f;
	for (int j = 0; j < 8; j++)
		t[j] = 1e30;
	for (int r = 0; r < reps; r++) {
		double t0 = cpu_now(), t1, t2, t3, t4;
		lb_bsq_forward(wq, P, Nn, 0.01f, n, N);
		t1 = cpu_now();
		lb_bsq_backward(dP, dNn, &ds, g, P, Nn, 0.01f, n, N, 1e-5f);
		t2 = cpu_now();
		lb_bsq_group_lasso(dP, dNn, P, Nn, n, N, 1e-4);
		t3 = cpu_now();
		clamp_branchy(P, Nn, n, N);
		t4 = cpu_now();
		t[0] = fmin(t[0], t1 - t0);
		t[1] = fmin(t[1], t2 - t1);
		t[2] = fmin(t[2], t3 - t2);
		t[3] = fmin(t[3], t4 - t3);
		t0 = cpu_now();
		lb_bsq_forward_norms(wq, ss, P, Nn, 0.01f, n, N);
		t1 = cpu_now();
		lb_bsq_backward_gl(dP, dNn, &ds, g, P, Nn, 0.01f, n, N, 1e-5f, 1e-4, ss);
		t2 = cpu_now();
		lb_bsq_clamp(P, Nn, n, N, N);
		t3 = cpu_now();
		t[4] = fmin(t[4], t1 - t0);
		t[5] = fmin(t[5], t2 - t1);
		t[6] = fmin(t[6], t3 - t2);
	}
	const double k = 1e9 / (double)n, old = t[0] + t[1] + t[2] + t[3],
		     fused = t[4] + t[5] + t[6];
	diag("BSQ step passes, n = %zu, N = 8, ns per weight (thread CPU, best of %d):", n, reps);
	diag("  separate: forward %.2f + backward %.2f + group_lasso %.2f + clamp (old, branchy) "
	     "%.2f = %.2f",
	     k * t[0], k * t[1], k * t[2], k * t[3], k * old);
	diag("  fused:    forward_norms %.2f + backward_gl %.2f + clamp %.2f = %.2f (%.2fx)",
	     k * t[4], k * t[5], k * t[6], k * fused, old / fused);
out:
	free(P);
	free(Nn);
	free(dP);
	free(dNn);
	free(wq);
	free(g);
}

/* ---- density, clamp ---- */

static void test_density_clamp(void)
{
	const size_t n = 123;
	const int N = 6;
	float *P = fnew(MB * n), *Nn = fnew(MB * n);
	double nz[MB];
	size_t cnt[MB] = {0};
	int good = 1;

	/* multiples of 1/4: u is exact in float and double (ties included) */
	for (size_t k = 0; k < (size_t)N * n; k++) {
		P[k] = (float)rnd_below(9) * 0.25f;
		Nn[k] = (float)rnd_below(9) * 0.25f;
	}
	for (size_t e = 0; e < n; e++) {
		const double u = u_dbl(P, Nn, n, N, e);
		const unsigned R = (unsigned)floor(fmin(fabs(u), 63.0) + 0.5);
		for (int i = 0; i < N; i++)
			cnt[i] += (R >> (N - 1 - i)) & 1u;
	}
	lb_bsq_density(nz, P, Nn, n, N);
	for (int i = 0; i < N; i++)
		good &= nz[i] == (double)cnt[i] / (double)n;
	ok(good, "density == fraction of elements with bit i of the forward integer set");

	{
		static const float in[8] = {-1.0f, -0.0f, 0.5f, 2.5f, 2.0f, INFINITY, NAN, 1e-30f};
		static const float out[8] = {0.0f, 0.0f, 0.5f, 2.0f, 2.0f, 2.0f, 0.0f, 1e-30f};
		float p[3 * 8], q[3 * 8];
		int c = 1;
		for (int i = 0; i < 24; i++)
			p[i] = q[i] = i < 16 ? in[i % 8] : 9.0f;
		lb_bsq_clamp(p, q, 8, 2, 3);
		for (int i = 0; i < 24; i++) {
			const float w = i < 16 ? out[i % 8] : 0.0f;
			c &= memcmp(&p[i], &w, sizeof(float)) == 0 &&
			     memcmp(&q[i], &w, sizeof(float)) == 0;
		}
		lb_bsq_clamp(p, q, 8, 0, 3);
		for (int i = 0; i < 24; i++)
			c &= p[i] == 0.0f && q[i] == 0.0f;
		ok(c,
		   "clamp: rows < N to [0, 2] (-0, NaN -> +0), rows >= N (and all at N = 0) -> 0");
	}
	{
		float w[7] = {-3.0f, -1.0f, -0.5f, -0.0f, 0.99f, 1.5f, NAN};
		static const float want[7] = {-1.0f, -1.0f, -0.5f, 0.0f, 0.99f, 1.0f, 0.0f};
		lb_bsq_ft_clamp(w, 7);
		ok(memcmp(w, want, sizeof(want)) == 0, "ft clamp: w^ to [-1, 1] (-0, NaN -> +0)");
	}
	free(P);
	free(Nn);
}

/* ---- re-quantization + precision adjustment: bit identity at thre = 0 ---- */

struct rq_stats {
	size_t cases, elems, ties, ambiguous, grew, clipped_cases, capped, msb, lsb, zeroed, same_N;
};

/* Expected N after (a)+(b) at thre = 0 from the double integers; k = LSBs dropped. */
static int expect_N(const double *R, size_t n, int N0, int max_bits, int *k)
{
	double mx = 0.0;
	int top, tz = 64;

	/* R is already clipped at 2^N0 - 1 when N0 == max_bits; otherwise an
	 * overflow (R <= 2M) grows N by one, and then the MSB side keeps exactly
	 * the bit length of the largest integer */
	(void)N0;
	(void)max_bits;
	for (size_t e = 0; e < n; e++)
		mx = fmax(mx, R[e]);
	*k = 0;
	/* MSB: bit length of the largest integer, at least 1 */
	top = 0;
	{
		double c = mx;
		while (c >= 1.0) {
			top++;
			c = floor(c / 2);
		}
	}
	if (top == 0)
		return 0; /* all zero: down to 1 bit, then removed */
	for (size_t e = 0; e < n; e++) {
		if (R[e] == 0.0)
			continue;
		unsigned long long v = (unsigned long long)R[e];
		int t = 0;
		while (!(v & 1ull)) {
			v >>= 1;
			t++;
		}
		tz = t < tz ? t : tz;
	}
	*k = tz < top - 1 ? tz : top - 1;
	return top - *k;
}

static void rq_case(struct rq_stats *st, int kind, int N0, int max_bits, size_t n, int *good_id,
		    int *good_ovf, int *good_N, int *good_canon, int *good_idem, int *good_dens)
{
	float *P = fnew(max_bits * n), *Nn = fnew(max_bits * n), *w0 = fnew(n), *w1 = fnew(n);
	double *R = calloc(n, sizeof(double));
	char *amb = calloc(n, 1);
	float step = rnd(1e-4f, 1.0f);
	const float step0 = step;
	const double M0 = lb_bsq_levels(N0);
	int N = N0, ambiguous = 0, k = 0;
	struct lb_bsq_change ch;

	switch (kind) {
	case 0: /* continuous [0, 2]: growth (N0 < max_bits) or clipping */
		fill_planes(P, Nn, n, N0, max_bits, 0.0f, 2.0f);
		break;
	case 1: /* continuous [0, 1]: |u| <= M, no overflow */
		fill_planes(P, Nn, n, N0, max_bits, 0.0f, 1.0f);
		break;
	case 2: { /* upper planes zero: MSB drops */
		const int z = (int)rnd_below((uint32_t)N0 + 1);
		fill_planes(P, Nn, n, N0, max_bits, 0.0f, 1.0f);
		memset(P, 0, (size_t)z * n * sizeof(float));
		memset(Nn, 0, (size_t)z * n * sizeof(float));
		break;
	}
	case 3: { /* binary, lowest planes zero: LSB drops (P = Nn = 1 cancels) */
		const int z = (int)rnd_below((uint32_t)N0 + 1);
		for (size_t k2 = 0; k2 < (size_t)N0 * n; k2++) {
			const int row = (int)(k2 / n);
			P[k2] = row >= N0 - z ? 0.0f : (float)rnd_below(2);
			Nn[k2] = row >= N0 - z ? 0.0f : (float)(rnd_below(3) == 0);
		}
		break;
	}
	case 4: /* tiny: every integer 0 -> the layer goes to 0 bits */
		fill_planes(P, Nn, n, N0, max_bits, 0.0f, 0.4f / (float)(1 << N0));
		break;
	case 5: { /* integers near the overflow boundary (M, M + 1, 2M) and sparse */
		for (size_t e = 0; e < n; e++) {
			const uint32_t pick = rnd_below(6);
			const int neg = (int)rnd_below(2);
			float *X = neg ? Nn : P;
			if (pick == 0)
				for (int i = 0; i < N0; i++)
					X[(size_t)i * n + e] = 1.0f; /* M */
			else if (pick == 1)
				for (int i = 0; i < N0; i++)
					X[(size_t)i * n + e] = 2.0f; /* 2M */
			else if (pick == 2) {
				for (int i = 0; i < N0; i++)
					X[(size_t)i * n + e] = 1.0f;
				X[(size_t)(N0 - 1) * n + e] = 2.0f; /* M + 1 */
			} else if (pick == 3)
				X[(size_t)(N0 - 1) * n + e] = rnd(0.0f, 1.49f);
		}
		break;
	}
	default: /* mixture per element: continuous [0,2], zeros, small values */
		for (size_t e = 0; e < n; e++) {
			const uint32_t pick = rnd_below(3);
			for (int i = 0; i < N0; i++) {
				const float hi = pick == 0 ? 2.0f : pick == 1 ? 0.0f : 0.3f;
				P[(size_t)i * n + e] =
				    i < N0 / 2 && pick == 2 ? 0.0f : rnd(0.0f, hi);
				Nn[(size_t)i * n + e] =
				    i < N0 / 2 && pick == 2 ? 0.0f : rnd(0.0f, hi);
			}
		}
	}

	/* double integers; near-tie elements make the expectations ambiguous */
	for (size_t e = 0; e < n; e++) {
		const double u = u_dbl(P, Nn, n, N0, e);
		R[e] = floor(fabs(u) + 0.5);
		if (tie_dist(u) < tie_tol(N0)) {
			amb[e] = 1;
			ambiguous = 1;
			st->ties++;
		}
		if (N0 >= max_bits)
			R[e] = fmin(R[e], M0);
	}
	lb_bsq_forward(w0, P, Nn, step, n, N0);
	const int changed = lb_bsq_requant_adjust(P, Nn, &step, &N, n, max_bits, 0.0, &ch);
	lb_bsq_forward(w1, P, Nn, step, n, N);

	st->cases++;
	st->elems += n;
	st->ambiguous += ambiguous;
	st->grew += ch.grew;
	st->clipped_cases += ch.clipped > 0;
	st->capped += N0 == max_bits && ch.clipped > 0;
	st->msb += ch.msb_dropped > 0;
	st->lsb += ch.lsb_dropped > 0;
	st->zeroed += ch.zeroed;
	st->same_N += N == N0;

	*good_canon &= canonical(P, Nn, n, N, max_bits) && N >= 0 && N <= max_bits;
	*good_canon &= changed == (N != N0) && ch.N_before == N0 && ch.N_after == N;
	*good_canon &= step == ldexpf(step0, ch.lsb_dropped) && ch.msb_folded == 0;
	for (size_t e = 0; e < n; e++) {
		const int ovf = N0 < max_bits && R[e] > M0;
		if (!ovf) {
			/* not overflowing: the very same float */
			if (memcmp(&w0[e], &w1[e], sizeof(float)) != 0 && !amb[e])
				*good_id = 0;
		} else {
			/* overflowing element (the forward clipped it to d M): now d R, R unclipped
			 */
			const float v = (float)((double)step0 * R[e]), want = w0[e] < 0.0f ? -v : v;
			if ((memcmp(&want, &w1[e], sizeof(float)) != 0 || !ch.grew) && !amb[e])
				*good_ovf = 0;
			*good_ovf &= fabsf(w0[e]) == step0 * (float)M0 || amb[e];
		}
	}
	if (!ambiguous) {
		const int wantN = expect_N(R, n, N0, max_bits, &k);
		*good_N &=
		    N == wantN && (wantN == 0 || ch.lsb_dropped == k) && ch.zeroed == (wantN == 0);
	}
	/* canonical after: MSB and LSB both used (N > 1) */
	if (N > 1) {
		double nz[LB_BSQ_MAX_BITS];
		lb_bsq_density(nz, P, Nn, n, N);
		*good_N &= nz[0] > 0.0 && nz[N - 1] > 0.0;
		/* density == count_nonzero(P_i - Nn_i) / n on the requantized planes */
		for (int i = 0; i < N; i++) {
			size_t c = 0;
			for (size_t e = 0; e < n; e++)
				c += P[(size_t)i * n + e] - Nn[(size_t)i * n + e] != 0.0f;
			*good_dens &= nz[i] == (double)c / (double)n;
		}
	}
	/* idempotent: a second pass changes nothing */
	{
		float *P2 = fnew(max_bits * n), *N2 = fnew(max_bits * n);
		float step2 = step;
		int Nb = N;
		memcpy(P2, P, max_bits * n * sizeof(float));
		memcpy(N2, Nn, max_bits * n * sizeof(float));
		*good_idem &=
		    lb_bsq_requant_adjust(P2, N2, &step2, &Nb, n, max_bits, 0.0, NULL) == 0;
		*good_idem &= Nb == N && step2 == step && same_bits(P2, P, max_bits * n) &&
			      same_bits(N2, Nn, max_bits * n);
		free(P2);
		free(N2);
	}
	free(P);
	free(Nn);
	free(w0);
	free(w1);
	free(R);
	free(amb);
}

static void test_requant(void)
{
	struct rq_stats st;
	int good_id = 1, good_ovf = 1, good_N = 1, good_canon = 1, good_idem = 1, good_dens = 1;

	memset(&st, 0, sizeof(st));
	for (int c = 0; c < 4000; c++) {
		const int kind = c % 7;
		const int max_bits = c % 11 == 0 ? 1 + (int)rnd_below(MB) : MB;
		const int N0 = 1 + (int)rnd_below((uint32_t)max_bits);
		const size_t n = 1 + rnd_below(c % 5 == 0 ? 600 : 60);
		rq_case(&st, kind, N0, max_bits, n, &good_id, &good_ovf, &good_N, &good_canon,
			&good_idem, &good_dens);
	}
	/* named: N = max_bits = 8 overflowing ("9 bits capped at 8"); 7 -> 8; 0 bits */
	for (int c = 0; c < 50; c++) {
		rq_case(&st, 0, 8, 8, 100, &good_id, &good_ovf, &good_N, &good_canon, &good_idem,
			&good_dens);
		rq_case(&st, 5, 7, 8, 100, &good_id, &good_ovf, &good_N, &good_canon, &good_idem,
			&good_dens);
		rq_case(&st, 4, 1 + c % 8, 8, 100, &good_id, &good_ovf, &good_N, &good_canon,
			&good_idem, &good_dens);
	}
	diag("requant+adjust: %zu random layers, %zu weights; grew %zu, clipped at max_bits %zu "
	     "(N = max_bits %zu), MSB drops %zu, LSB drops %zu, to 0 bits %zu, N unchanged %zu",
	     st.cases, st.elems, st.grew, st.clipped_cases, st.capped, st.msb, st.lsb, st.zeroed,
	     st.same_N);
	diag("near-tie elements %zu (their layers' %zu expectations skipped)", st.ties,
	     st.ambiguous);
	ok(good_id, "thre = 0: w_q bit-identical for every non-overflowing weight");
	ok(good_ovf,
	   "overflow (N < max_bits): N + 1, weight d round(|u|) exactly (was clipped to d M)");
	ok(good_N,
	   "N after = independent expectation (growth/cap, MSB, LSB, 0 bits); MSB and LSB used");
	ok(good_canon, "canonical planes, step = step0 2^k, return = N changed, change record");
	ok(good_idem, "requant+adjust is idempotent");
	ok(good_dens, "density after requant == count_nonzero(P_i - Nn_i) / n");
	ok(st.grew > 100 && st.capped > 20 && st.msb > 100 && st.lsb > 100 && st.zeroed > 50,
	   "every path exercised");

	/* 0-bit layer afterwards: forward 0, backward adds nothing, to_ft 0 */
	{
		const size_t n = 9;
		float P[MB * 9], Nn[MB * 9], wq[9], g[9], dP[MB * 9], what[9];
		float step = 0.3f, ds = 1.5f;
		int N = 3, z = 1;
		for (size_t k = 0; k < MB * n; k++) {
			P[k] = k < 3 * n ? 0.01f : 0.0f;
			Nn[k] = 0.0f;
			dP[k] = 2.0f;
		}
		for (size_t e = 0; e < n; e++)
			g[e] = 1.0f;
		lb_bsq_requant_adjust(P, Nn, &step, &N, n, MB, 0.0, NULL);
		lb_bsq_forward(wq, P, Nn, step, n, N);
		lb_bsq_backward(dP, NULL, &ds, g, P, Nn, step, n, N, 1.0f);
		lb_bsq_to_ft(what, P, Nn, n, N);
		for (size_t e = 0; e < n; e++)
			z &= wq[e] == 0.0f && what[e] == 0.0f;
		for (size_t k = 0; k < MB * n; k++)
			z &= dP[k] == 2.0f && P[k] == 0.0f;
		ok(N == 0 && z && ds == 1.5f && step == 0.3f,
		   "layer at 0 bits: weights 0, no gradients, step kept");
	}
}

/* thre > 0: fold of a sparse MSB, drop of a sparse (non-zero) LSB */
static void test_threshold(void)
{
	const size_t n = 100;
	float *P = fnew(MB * n), *Nn = fnew(MB * n), *w0 = fnew(n), *w1 = fnew(n);
	unsigned R[100];
	float step = 0.125f;
	int N = 4, good = 1;
	struct lb_bsq_change ch;

	R[0] = 9; /* 1001: the only MSB and the only LSB */
	for (size_t e = 1; e < n; e++)
		R[e] = 2u * (1u + (unsigned)(e % 3)); /* 2, 4, 6 */
	for (size_t e = 0; e < n; e++)
		for (int i = 0; i < N; i++)
			(e % 2 ? Nn : P)[(size_t)i * n + e] = (float)((R[e] >> (N - 1 - i)) & 1u);
	lb_bsq_forward(w0, P, Nn, step, n, N);
	const int changed = lb_bsq_adjust(P, Nn, &step, &N, n, MB, 0.05, &ch);
	lb_bsq_forward(w1, P, Nn, step, n, N);
	good &=
	    changed && N == 2 && ch.msb_folded == 1 && ch.msb_dropped == 0 && ch.lsb_dropped == 1;
	good &= step == 0.25f && canonical(P, Nn, n, N, MB);
	good &= w1[0] == 0.125f * 6.0f; /* 9 -> saturated to 7 -> 7 >> 1 = 3, step 2d */
	for (size_t e = 1; e < n; e++)
		good &= w1[e] == w0[e];
	ok(good,
	   "thre 5%%: sparse MSB folded (9 -> 7), sparse LSB dropped (-> 3, step 2d), rest same");
	free(P);
	free(Nn);
	free(w0);
	free(w1);
}

/* ---- fine-tuning ---- */

struct ft_ctx {
	float *what;
	const float *r;
	size_t n;
	int N;
	float *step;
	float *wq;
};

static double ft_surrogate(void *vc) /* <r, s w^>, s = fl(d M) */
{
	const struct ft_ctx *c = vc;
	const double s = (float)(*c->step * (float)lb_bsq_levels(c->N));
	double L = 0.0;
	for (size_t e = 0; e < c->n; e++)
		L += (double)c->r[e] * s * c->what[e];
	return L;
}

static double ft_real(void *vc)
{
	const struct ft_ctx *c = vc;
	lb_bsq_ft_forward(c->wq, c->what, *c->step, c->n, c->N);
	return gc_dot(c->r, c->wq, c->n);
}

static void test_finetune(void)
{
	const size_t n = 500;
	int conv = 1, conv_rq = 1, fwd = 1, bwd = 1, grad = 1;
	size_t cases = 0;

	for (int N = 0; N <= MB; N++)
		for (int rep = 0; rep < 6; rep++) {
			float *P = fnew(MB * n), *Nn = fnew(MB * n), *what = fnew(n), *a = fnew(n),
			      *b = fnew(n), *g = fnew(n), *da = fnew(n), *db = fnew(n);
			float step = rnd(1e-3f, 0.3f), dsa = 0.5f, dsb = 0.5f;
			int Nr = N;

			fill_planes(P, Nn, n, N, MB, 0.0f, rep % 2 ? 2.0f : 1.0f);
			/* conversion from arbitrary continuous planes */
			lb_bsq_to_ft(what, P, Nn, n, N);
			lb_bsq_forward(a, P, Nn, step, n, N);
			lb_bsq_ft_forward(b, what, step, n, N);
			conv &= same_bits(a, b, n);
			for (size_t e = 0; e < n; e++)
				conv &= fabsf(what[e]) <= 1.0f;
			/* and from the final requantized representation (plane sum exps) */
			lb_bsq_requant_adjust(P, Nn, &step, &Nr, n, MB, 0.0, NULL);
			lb_bsq_to_ft(what, P, Nn, n, Nr);
			lb_bsq_forward(a, P, Nn, step, n, Nr);
			lb_bsq_ft_forward(b, what, step, n, Nr);
			conv_rq &= same_bits(a, b, n);
			for (size_t e = 0; e < n && Nr > 0; e++) {
				double sum = 0.0;
				for (int i = 0; i < Nr; i++)
					sum +=
					    ((double)P[(size_t)i * n + e] - Nn[(size_t)i * n + e]) *
					    ldexp(1.0, Nr - 1 - i);
				conv_rq &= what[e] == (float)(sum / lb_bsq_levels(Nr));
			}
			/* twins on arbitrary w^ (outside [-1, 1], +-1, 0, -0, ties) */
			for (size_t e = 0; e < n; e++) {
				const uint32_t pick = rnd_below(8);
				const float M = (float)lb_bsq_levels(N ? N : 1);
				what[e] = pick == 0   ? 1.0f
					  : pick == 1 ? -0.0f
					  : pick == 2
					      ? ((float)rnd_below(2 * (uint32_t)M) + 0.5f) / M
					      : rnd(-1.3f, 1.3f);
				g[e] = rnd(-1.0f, 1.0f);
				da[e] = db[e] = rnd(-1.0f, 1.0f);
			}
			lb_bsq_ft_forward(a, what, step, n, N);
			lb_bsq_ft_forward_ref(b, what, step, n, N);
			fwd &= same_bits(a, b, n);
			lb_bsq_ft_backward(da, &dsa, g, what, step, n, N, 0.7f);
			lb_bsq_ft_backward_ref(db, &dsb, g, what, step, n, N, 0.7f);
			bwd &= same_bits(da, db, n) && dsa == dsb;
			cases++;
			if (N > 0 && rep == 0) {
				float *d2 = fnew(n), ds2 = 0.0f;
				struct ft_ctx c = {what, g, n, N, &step, a};
				lb_bsq_ft_backward(d2, &ds2, g, what, step, n, N, 1.0f);
				const struct gc_result x =
				    gc_check(ft_surrogate, &c, what, d2, n, 1e-2);
				const struct gc_result y =
				    gc_check(ft_real, &c, &step, &ds2, 1, 0.05 * step);
				grad &= x.norm_rel < 1e-5 && y.norm_rel < 1e-4;
				free(d2);
			}
			free(P);
			free(Nn);
			free(what);
			free(a);
			free(b);
			free(g);
			free(da);
			free(db);
		}
	ok(conv, "to_ft then ft_forward == BSQ forward bit for bit (continuous planes), |w^| <= 1");
	ok(conv_rq, "after requant: w^ = plane sum (P - Nn) exps exactly, ft_forward == forward");
	ok(fwd, "ft_forward == ft_forward_ref bit for bit (%zu layers)", cases);
	ok(bwd, "ft_backward == ft_backward_ref bit for bit");
	ok(grad, "ft STE dw^ == central differences of <r, s w^>; dstep == real forward's");
}

int main(void)
{
	test_helpers();
	test_convert();
	test_twins();
	test_ste_grad();
	test_group_lasso();
	test_fused();
	test_fused_grad();
	test_density_clamp();
	test_clamp_blocks();
	test_requant();
	test_threshold();
	test_finetune();
	bench_fused();
	return done_testing();
}
