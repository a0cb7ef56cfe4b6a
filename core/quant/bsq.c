/* SPDX-License-Identifier: MIT
 * BSQ bit-plane kernels (see bsq.h): conversion, STE forward/backward,
 * group Lasso, clamp, re-quantization and precision adjustment, fine-tuning.
 * Math: shared/docs/methods.md section 5. */
#include "bsq.h"
#include "quant.h"

#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Elements per block of the fast backward's step-gradient pass (u on the
 * stack, so that the planes are read row by row). */
#define BLK 256

static void check_bits(int N, int max_bits)
{
	(void)N;
	(void)max_bits;
	assert(max_bits >= 1 && max_bits <= LB_BSQ_MAX_BITS);
	assert(N >= 0 && N <= max_bits);
}


/* The twins' rounding: double floor, exact for any float. */
static double round_ref(double a)
{
	return (a >= 0.0 ? floor(a + 0.5) : -floor(-a + 0.5)) + 0.0;
}

int lb_bsq_levels(int N)
{
	assert(N >= 0 && N <= LB_BSQ_MAX_BITS);
	return (int)((1u << N) - 1u);
}

void lb_bsq_exps(float *exps, int N)
{
	const double M = lb_bsq_levels(N);
	for (int i = 0; i < N; i++)
		exps[i] = (float)(ldexp(1.0, N - 1 - i) / M);
}

float lb_bsq_scale(float step, int N)
{
	return step * (float)lb_bsq_levels(N);
}

float lb_bsq_step(float s, int N)
{
	assert(N >= 1);
	return s / (float)lb_bsq_levels(N);
}

float lb_bsq_step_grad_scale(int N)
{
	const double M = lb_bsq_levels(N);
	return N ? (float)(1.0 / (M * M)) : 0.0f;
}

/* ---- per-element helpers (re-quantization, density, conversion) ---- */

/* u_e = sum_{i<N} (P_i - Nn_i) 2^(N-1-i), in float, i in order: the same
 * operations, in the same order, as the row-wise accumulation of the fast
 * forward (so the integers agree with the forward bit for bit). N >= 1. */
static inline float elem_u(const float *P, const float *Nn, size_t n, int N, size_t e)
{
	float u = (P[e] - Nn[e]) * ldexpf(1.0f, N - 1);
	for (int i = 1; i < N; i++)
		u += (P[(size_t)i * n + e] - Nn[(size_t)i * n + e]) * ldexpf(1.0f, N - 1 - i);
	return u;
}

/* round(min(|u|, cap)) as an integer; NaN -> 0 (integer ops have no NaN). */
static inline uint32_t int_of(float u, float cap)
{
	float a = fabsf(u);
	if (!(a <= cap))
		a = a > cap ? cap : 0.0f;
	return (uint32_t)lb_quant_round_inline(a);
}

/* Write magnitude R (< 2^N) with sign neg into element e: rows i < N get bit
 * N-1-i in P (neg == 0) or Nn, rows N..max_bits-1 get 0. */
static void put_elem(float *P, float *Nn, size_t n, int N, int max_bits, size_t e, uint32_t R,
		     int neg)
{
	for (int i = 0; i < max_bits; i++) {
		const float b = i < N ? (float)((R >> (N - 1 - i)) & 1u) : 0.0f;
		P[(size_t)i * n + e] = neg ? 0.0f : b;
		Nn[(size_t)i * n + e] = neg ? b : 0.0f;
	}
}

static void zero_rows(float *P, float *Nn, size_t n, int from, int to)
{
	if (to > from) {
		memset(P + (size_t)from * n, 0, (size_t)(to - from) * n * sizeof(*P));
		memset(Nn + (size_t)from * n, 0, (size_t)(to - from) * n * sizeof(*Nn));
	}
}

/* ---- conversion ---- */

void lb_bsq_convert(float *P, float *Nn, float *step, const float *w, size_t n, int N, int max_bits)
{
	const int M = lb_bsq_levels(N);
	const float Mf = (float)M;
	float S = 0.0f;

	check_bits(N, max_bits);
	assert(N >= 1);
	for (size_t e = 0; e < n; e++) {
		const float a = fabsf(w[e]);
		if (a > S)
			S = a; /* NaN never wins */
	}
	if (!(S > 0.0f) || !isfinite(S)) {
		zero_rows(P, Nn, n, 0, max_bits);
		*step = 1.0f / Mf; /* s = 1 */
		return;
	}
	for (size_t e = 0; e < n; e++) {
		/* (w * step) / S, as ini2bit; clipped to M (|w| <= S) */
		const uint32_t R = int_of((fabsf(w[e]) * Mf) / S, Mf);
		put_elem(P, Nn, n, N, max_bits, e, R, w[e] < 0.0f);
	}
	*step = S / Mf;
}

/* ---- forward / backward ---- */

void lb_bsq_forward(float *wq, const float *P, const float *Nn, float step, size_t n, int N)
{
	check_bits(N, LB_BSQ_MAX_BITS);
	if (N == 0) {
		memset(wq, 0, n * sizeof(*wq));
		return;
	}
	const float Mf = (float)lb_bsq_levels(N);
	/* u accumulated in wq, row by row (contiguous; power-of-two weights) */
	{
		const float c = ldexpf(1.0f, N - 1);
		for (size_t e = 0; e < n; e++)
			wq[e] = (P[e] - Nn[e]) * c;
	}
	for (int i = 1; i < N; i++) {
		const float c = ldexpf(1.0f, N - 1 - i);
		const float *p = P + (size_t)i * n, *q = Nn + (size_t)i * n; /* (n) */
		for (size_t e = 0; e < n; e++)
			wq[e] += (p[e] - q[e]) * c;
	}
	for (size_t e = 0; e < n; e++) {
		const float u = wq[e];
		float a = fabsf(u);
		a = a > Mf ? Mf : a; /* clip(w^, -1, 1); NaN stays */
		const float R = lb_quant_round_inline(a);
		const float r = u < 0.0f ? -R : R;
		wq[e] = step * r + 0.0f; /* + 0: no -0 weights */
	}
}

void lb_bsq_forward_ref(float *wq, const float *P, const float *Nn, float step, size_t n, int N)
{
	check_bits(N, LB_BSQ_MAX_BITS);
	const double M = lb_bsq_levels(N);
	for (size_t e = 0; e < n; e++) {
		float u, w;
		double a, R;

		if (N == 0) {
			wq[e] = 0.0f;
			continue;
		}
		u = (P[e] - Nn[e]) * (float)(1 << (N - 1));
		for (int i = 1; i < N; i++)
			u += (P[(size_t)i * n + e] - Nn[(size_t)i * n + e]) *
			     (float)(1 << (N - 1 - i));
		if (isnan(u)) {
			wq[e] = u;
			continue;
		}
		a = fabs((double)u);
		if (a > M)
			a = M;
		R = round_ref(a);
		if (R == 0.0) {
			wq[e] = 0.0f;
			continue;
		}
		w = (float)((double)step * R); /* exact product, one rounding */
		wq[e] = u < 0.0f ? -w : w;
	}
}

void lb_bsq_backward(float *dP, float *dNn, float *dstep, const float *dwq, const float *P,
		     const float *Nn, float step, size_t n, int N, float grad_scale)
{
	check_bits(N, LB_BSQ_MAX_BITS);
	if (N == 0)
		return;
	/* planes: the STE passes g straight through the rounding and the clip */
	for (int i = 0; i < N; i++) {
		const float c = ldexpf(step, N - 1 - i); /* exps_i s, exactly */
		float *dp = dP ? dP + (size_t)i * n : NULL, *dn = dNn ? dNn + (size_t)i * n : NULL;
		if (dp)
			for (size_t e = 0; e < n; e++)
				dp[e] += c * dwq[e];
		if (dn)
			for (size_t e = 0; e < n; e++)
				dn[e] -= c * dwq[e];
	}
	if (!dstep)
		return;
	const float Mf = (float)lb_bsq_levels(N);
	double acc = 0.0;
	for (size_t b0 = 0; b0 < n; b0 += BLK) {
		const size_t nb = n - b0 < BLK ? n - b0 : BLK;
		float u[BLK];
		{
			const float c = ldexpf(1.0f, N - 1);
			for (size_t e = 0; e < nb; e++)
				u[e] = (P[b0 + e] - Nn[b0 + e]) * c;
		}
		for (int i = 1; i < N; i++) {
			const float c = ldexpf(1.0f, N - 1 - i);
			const float *p = P + (size_t)i * n + b0, *q = Nn + (size_t)i * n + b0;
			for (size_t e = 0; e < nb; e++)
				u[e] += (p[e] - q[e]) * c;
		}
		for (size_t e = 0; e < nb; e++) {
			float a = fabsf(u[e]);
			a = a > Mf ? Mf : a;
			const float R = lb_quant_round_inline(a);
			acc += (double)dwq[b0 + e] * (u[e] < 0.0f ? -R : R);
		}
	}
	*dstep += (float)((double)grad_scale * acc);
}

void lb_bsq_backward_ref(float *dP, float *dNn, float *dstep, const float *dwq, const float *P,
			 const float *Nn, float step, size_t n, int N, float grad_scale)
{
	check_bits(N, LB_BSQ_MAX_BITS);
	if (N == 0)
		return;
	const double M = lb_bsq_levels(N);
	double acc = 0.0;
	for (size_t e = 0; e < n; e++) {
		const double g = dwq[e];
		float u = 0.0f;
		for (int i = 0; i < N; i++) {
			const size_t k = (size_t)i * n + e;
			const double sc = (double)step * (double)(1 << (N - 1 - i));
			const float d = (float)(sc * g); /* exact product, one rounding */
			if (dP)
				dP[k] += d;
			if (dNn)
				dNn[k] -= d;
			if (i == 0)
				u = (P[k] - Nn[k]) * (float)(1 << (N - 1));
			else
				u += (P[k] - Nn[k]) * (float)(1 << (N - 1 - i));
		}
		double a = fabs((double)u);
		if (a > M)
			a = M;
		const double R = round_ref(a);
		acc += g * (u < 0.0f ? -R : R);
	}
	if (dstep)
		*dstep += (float)((double)grad_scale * acc);
}

/* ---- group Lasso, density, clamp ---- */

double lb_bsq_group_lasso(float *dP, float *dNn, const float *P, const float *Nn, size_t n, int N,
			  double c)
{
	double v = 0.0;

	check_bits(N, LB_BSQ_MAX_BITS);
	for (int i = 0; i < N; i++) {
		const float *p = P + (size_t)i * n, *q = Nn + (size_t)i * n; /* (n) */
		double s2 = 0.0;
		for (size_t e = 0; e < n; e++)
			s2 += (double)p[e] * p[e] + (double)q[e] * q[e];
		const double norm = sqrt(s2 + LB_BSQ_EPS);
		v += norm;
		const double k = c / norm;
		if (dP) {
			float *dp = dP + (size_t)i * n;
			for (size_t e = 0; e < n; e++)
				dp[e] += (float)(k * p[e]);
		}
		if (dNn) {
			float *dn = dNn + (size_t)i * n;
			for (size_t e = 0; e < n; e++)
				dn[e] += (float)(k * q[e]);
		}
	}
	return c * v;
}

void lb_bsq_density(double *nz, const float *P, const float *Nn, size_t n, int N)
{
	size_t cnt[LB_BSQ_MAX_BITS] = {0};

	check_bits(N, LB_BSQ_MAX_BITS);
	if (N == 0)
		return;
	const float Mf = (float)lb_bsq_levels(N);
	for (size_t e = 0; e < n; e++) {
		const uint32_t R = int_of(elem_u(P, Nn, n, N, e), Mf);
		for (int i = 0; i < N; i++)
			cnt[i] += (R >> (N - 1 - i)) & 1u;
	}
	for (int i = 0; i < N; i++)
		nz[i] = n ? (double)cnt[i] / (double)n : 0.0;
}

/* x to [0, 2], NaN and -0 to +0 (> 0 is false for both). Branch-free on
 * purpose: after an optimizer step the values at 0 straddle it at random, and
 * the branches of the plain loop mispredicted (measured: ~70 ns per weight of
 * an 8-bit layer against ~5 for this, which runs at memory speed). restrict
 * and a constant m for the vectoriser. */
static inline __attribute__((always_inline)) void clamp_run(float *restrict x, size_t m)
{
	for (size_t k = 0; k < m; k++) {
		const float v = x[k];
		x[k] = v > 2.0f ? 2.0f : v > 0.0f ? v : 0.0f;
	}
}

void lb_bsq_clamp(float *P, float *Nn, size_t n, int N, int max_bits)
{
	enum { B = 1024 };
	const size_t m = (size_t)N * n;
	size_t k = 0;

	check_bits(N, max_bits);
	for (; k + B <= m; k += B) {
		clamp_run(P + k, B);
		clamp_run(Nn + k, B);
	}
	for (; k < m; k++) { /* the same expression, scalar */
		const float p = P[k], q = Nn[k];
		P[k] = p > 2.0f ? 2.0f : p > 0.0f ? p : 0.0f;
		Nn[k] = q > 2.0f ? 2.0f : q > 0.0f ? q : 0.0f;
	}
	zero_rows(P, Nn, n, N, max_bits);
}

void lb_bsq_clear_unused(float *P, float *Nn, size_t n, int N, int max_bits)
{
	check_bits(N, max_bits);
	zero_rows(P, Nn, n, N, max_bits);
}

/* ---- fused training-step kernels ----
 * Layout of the work: element blocks of FBLK weights; inside a block, plane
 * row by plane row, ONE constant-length, branch-free loop over restrict
 * pointers per row (what GCC's -O2 vectoriser accepts), which reads the row
 * segments p, q once and updates u and, in the backward, dp and dn. The u of
 * the block (the forward's integer before rounding) stays on the stack, so the
 * planes are read once per call. Large blocks: the rows are 4 n bytes apart,
 * every row segment is a separate stream, and short segments leave the
 * hardware prefetchers little to work with (measured with bench_fused in
 * test_bsq: 8 KiB segments 1.3x the time per weight of 32 KiB ones; 64 KiB
 * gained another 7%, not worth 64 KiB of stack). Double reductions go to
 * LANES partial sums (element e of a block to lane e % LANES, lanes added at
 * the end): the compiler may not reassociate one double sum itself. */

#define FBLK  8192 /* 32 KiB of u on the stack */
#define LANES 4

#define AI static inline __attribute__((always_inline))

/* The signed forward integer r = sign(u) round(min(|u|, M)) of lb_bsq_forward,
 * in a form the vectoriser if-converts: trunc + (frac >= 0.5) is lb_quant_round_inline for
 * 0 <= b <= 65535; the clip of b also maps NaN to M (so that the integer
 * conversion is defined) and the last select puts the NaN back (fabsf(u):
 * the same NaN as lb_quant_round_inline's); the sign is a product with +-1 (exact; u < 0
 * and t = 0 give -0, as -R does). */
AI float r_of(float u, float Mf)
{
	const float a = fabsf(u);
	const float b = a < Mf ? a : Mf;
	float t = (float)(int32_t)b;
	t += (float)(b - t >= 0.5f);
	t *= u < 0.0f ? -1.0f : 1.0f;
	return a == a ? t : a;
}

/* forward, one row: u = (p - q) c (first row) or u += (p - q) c, the
 * row-wise accumulation of lb_bsq_forward; with s: s[e % LANES] += p^2 + q^2
 * (exact products, double sums). first and s are constants after inlining. */
AI void row_fwd(float *restrict u, double *restrict s, const float *restrict p,
		const float *restrict q, float c, int first, size_t nb)
{
	size_t e = 0;
	if (s) {
		double a[LANES];
		for (int j = 0; j < LANES; j++)
			a[j] = s[j];
		for (; e + LANES <= nb; e += LANES)
			for (int j = 0; j < LANES; j++) {
				const float pv = p[e + j], qv = q[e + j];
				const float d = (pv - qv) * c;
				u[e + j] = first ? d : u[e + j] + d;
				a[j] += (double)pv * pv + (double)qv * qv;
			}
		for (int j = 0; j < LANES; j++)
			s[j] = a[j];
	}
	for (; e < nb; e++) {
		const float pv = p[e], qv = q[e];
		const float d = (pv - qv) * c;
		u[e] = first ? d : u[e] + d;
		if (s)
			s[e % LANES] += (double)pv * pv + (double)qv * qv;
	}
}

/* backward, one row, all outputs wanted: u as row_fwd; dp += c g, dn -= c g
 * (the STE terms, one rounding each as lb_bsq_backward), then with gl dp +=
 * (float)(k p), dn += (float)(k q) (lb_bsq_group_lasso's terms). ow: dp, dn
 * are taken as 0 without being read (the same additions onto 0.0f, so the
 * same bits as accumulating onto a zeroed row) */
AI void row_bwd(float *restrict u, float *restrict dp, float *restrict dn, const float *restrict g,
		const float *restrict p, const float *restrict q, float cu, float c, double k,
		int first, int gl, int ow, size_t nb)
{
	for (size_t e = 0; e < nb; e++) {
		const float pv = p[e], qv = q[e], cg = c * g[e];
		const float d = (pv - qv) * cu;
		const float dp0 = ow ? 0.0f : dp[e], dn0 = ow ? 0.0f : dn[e];
		u[e] = first ? d : u[e] + d;
		if (gl) {
			dp[e] = (dp0 + cg) + (float)(k * pv);
			dn[e] = (dn0 - cg) + (float)(k * qv);
		} else {
			dp[e] = dp0 + cg;
			dn[e] = dn0 - cg;
		}
	}
}

/* backward, one plane-gradient row alone (some output NULL): d += c g
 * (c < 0 for dNn: d + (-c) g == d - c g exactly), then (float)(k x) */
AI void row_grad(float *restrict d, const float *restrict g, const float *restrict x, float c,
		 double k, int gl, size_t nb)
{
	for (size_t e = 0; e < nb; e++) {
		const float t = d[e] + c * g[e];
		d[e] = gl ? t + (float)(k * x[e]) : t;
	}
}

AI void blk_forward(float *restrict wq, double (*restrict ss)[LANES], const float *restrict P,
		    const float *restrict Nn, float step, size_t n, int N, size_t nb)
{
	float u[FBLK];
	const float Mf = (float)lb_bsq_levels(N);

	row_fwd(u, ss ? ss[0] : NULL, P, Nn, ldexpf(1.0f, N - 1), 1, nb);
	for (int i = 1; i < N; i++) {
		const size_t o = (size_t)i * n;
		row_fwd(u, ss ? ss[i] : NULL, P + o, Nn + o, ldexpf(1.0f, N - 1 - i), 0, nb);
	}
	for (size_t e = 0; e < nb; e++)
		wq[e] = step * r_of(u[e], Mf) + 0.0f; /* + 0: no -0 weights */
}

/* acc[e % LANES] += g r over the block */
AI void blk_step_grad(double *restrict acc, float *restrict u, const float *restrict g, float Mf,
		      size_t nb)
{
	double a[LANES];
	size_t e = 0;
	for (e = 0; e < nb; e++)
		u[e] = r_of(u[e], Mf);
	for (int j = 0; j < LANES; j++)
		a[j] = acc[j];
	for (e = 0; e + LANES <= nb; e += LANES)
		for (int j = 0; j < LANES; j++)
			a[j] += (double)g[e + j] * u[e + j];
	for (int j = 0; j < LANES; j++)
		acc[j] = a[j];
	for (; e < nb; e++)
		acc[e % LANES] += (double)g[e] * u[e];
}

/* one block of lb_bsq_backward_gl with dP, dNn, acc all wanted */
AI void blk_backward(float *restrict dP, float *restrict dNn, double *restrict acc,
		     const float *restrict g, const float *restrict P, const float *restrict Nn,
		     float step, size_t n, int N, int gl, int ow, const double *k, size_t nb)
{
	float u[FBLK];

	row_bwd(u, dP, dNn, g, P, Nn, ldexpf(1.0f, N - 1), ldexpf(step, N - 1), k[0], 1, gl, ow,
		nb);
	for (int i = 1; i < N; i++) {
		const size_t o = (size_t)i * n;
		/* ldexpf(step, .) = exps_i s, exactly */
		row_bwd(u, dP + o, dNn + o, g, P + o, Nn + o, ldexpf(1.0f, N - 1 - i),
			ldexpf(step, N - 1 - i), k[i], 0, gl, ow, nb);
	}
	blk_step_grad(acc, u, g, (float)lb_bsq_levels(N), nb);
}

/* the same with some of dP, dNn, acc NULL (not the training path) */
AI void blk_backward_some(float *dP, float *dNn, double *acc, const float *g, const float *P,
			  const float *Nn, float step, size_t n, int N, int gl, const double *k,
			  size_t nb)
{
	float u[FBLK];

	for (int i = 0; i < N; i++) {
		const size_t o = (size_t)i * n;
		const float c = ldexpf(step, N - 1 - i);
		/* constant flags in each call: branch-free loops */
		if (acc && i == 0)
			row_fwd(u, NULL, P + o, Nn + o, ldexpf(1.0f, N - 1 - i), 1, nb);
		else if (acc)
			row_fwd(u, NULL, P + o, Nn + o, ldexpf(1.0f, N - 1 - i), 0, nb);
		if (dP && gl)
			row_grad(dP + o, g, P + o, c, k[i], 1, nb);
		else if (dP)
			row_grad(dP + o, g, P + o, c, k[i], 0, nb);
		if (dNn && gl)
			row_grad(dNn + o, g, Nn + o, -c, k[i], 1, nb);
		else if (dNn)
			row_grad(dNn + o, g, Nn + o, -c, k[i], 0, nb);
	}
	if (acc)
		blk_step_grad(acc, u, g, (float)lb_bsq_levels(N), nb);
}

/* The drivers: whole FBLK blocks, then SBLK blocks (small layers and the
 * tail of large ones: blocks are independent, any partition of the elements
 * gives the same results), then the rest (< SBLK) in a scalar loop. Every
 * block function is inlined with a constant nb and constant flags. */
#define SBLK 256

AI void forward_all(float *wq, double (*ss)[LANES], const float *P, const float *Nn, float step,
		    size_t n, int N)
{
	size_t b0 = 0;
	for (; b0 + FBLK <= n; b0 += FBLK)
		blk_forward(wq + b0, ss, P + b0, Nn + b0, step, n, N, FBLK);
	for (; b0 + SBLK <= n; b0 += SBLK)
		blk_forward(wq + b0, ss, P + b0, Nn + b0, step, n, N, SBLK);
	if (b0 < n)
		blk_forward(wq + b0, ss, P + b0, Nn + b0, step, n, N, n - b0);
}

AI void backward_all(float *dP, float *dNn, double *acc, const float *g, const float *P,
		     const float *Nn, float step, size_t n, int N, int gl, int ow, const double *k)
{
	size_t b0 = 0;
	for (; b0 + FBLK <= n; b0 += FBLK)
		blk_backward(dP + b0, dNn + b0, acc, g + b0, P + b0, Nn + b0, step, n, N, gl, ow,
			     k, FBLK);
	for (; b0 + SBLK <= n; b0 += SBLK)
		blk_backward(dP + b0, dNn + b0, acc, g + b0, P + b0, Nn + b0, step, n, N, gl, ow,
			     k, SBLK);
	if (b0 < n)
		blk_backward(dP + b0, dNn + b0, acc, g + b0, P + b0, Nn + b0, step, n, N, gl, ow,
			     k, n - b0);
}

static void backward_some(float *dP, float *dNn, double *acc, const float *g, const float *P,
			  const float *Nn, float step, size_t n, int N, int gl, const double *k)
{
	size_t b0 = 0, nb;
	for (; b0 < n; b0 += nb) {
		nb = n - b0 >= FBLK ? FBLK : n - b0 >= SBLK ? SBLK : n - b0;
		float *dp = dP ? dP + b0 : NULL, *dn = dNn ? dNn + b0 : NULL;
		if (nb == FBLK)
			blk_backward_some(dp, dn, acc, g + b0, P + b0, Nn + b0, step, n, N, gl, k,
					  FBLK);
		else if (nb == SBLK)
			blk_backward_some(dp, dn, acc, g + b0, P + b0, Nn + b0, step, n, N, gl, k,
					  SBLK);
		else
			blk_backward_some(dp, dn, acc, g + b0, P + b0, Nn + b0, step, n, N, gl, k,
					  nb);
	}
}

void lb_bsq_forward_norms(float *wq, double *sumsq, const float *P, const float *Nn, float step,
			  size_t n, int N)
{
	double ss[LB_BSQ_MAX_BITS][LANES] = {{0}};

	check_bits(N, LB_BSQ_MAX_BITS);
	if (N == 0) {
		memset(wq, 0, n * sizeof(*wq));
		return;
	}
	if (!sumsq) {
		forward_all(wq, NULL, P, Nn, step, n, N); /* the plain forward's own loops */
		return;
	}
	forward_all(wq, ss, P, Nn, step, n, N);
	for (int i = 0; i < N; i++)
		sumsq[i] = (ss[i][0] + ss[i][1]) + (ss[i][2] + ss[i][3]);
}

static double backward_gl(float *dP, float *dNn, float *dstep, const float *dwq, const float *P,
			  const float *Nn, float step, size_t n, int N, float grad_scale, double c,
			  const double *sumsq, int ow)
{
	double k[LB_BSQ_MAX_BITS] = {0}, v = 0.0, acc[LANES] = {0};
	const int gl = c != 0.0;

	check_bits(N, LB_BSQ_MAX_BITS);
	assert(!gl || sumsq);
	if (N == 0)
		return 0.0;
	for (int i = 0; i < N && gl; i++) {
		const double norm = sqrt(sumsq[i] + LB_BSQ_EPS);
		v += norm;
		k[i] = c / norm;
	}
	/* constant flags in each call: branch-free loops */
	if (dP && dNn && dstep && gl && ow)
		backward_all(dP, dNn, acc, dwq, P, Nn, step, n, N, 1, 1, k);
	else if (dP && dNn && dstep && ow)
		backward_all(dP, dNn, acc, dwq, P, Nn, step, n, N, 0, 1, k);
	else if (dP && dNn && dstep && gl)
		backward_all(dP, dNn, acc, dwq, P, Nn, step, n, N, 1, 0, k);
	else if (dP && dNn && dstep)
		backward_all(dP, dNn, acc, dwq, P, Nn, step, n, N, 0, 0, k);
	else
		backward_some(dP, dNn, dstep ? acc : NULL, dwq, P, Nn, step, n, N, gl, k);
	if (dstep)
		*dstep += (float)((double)grad_scale * ((acc[0] + acc[1]) + (acc[2] + acc[3])));
	return c * v;
}

double lb_bsq_backward_gl(float *dP, float *dNn, float *dstep, const float *dwq, const float *P,
			  const float *Nn, float step, size_t n, int N, float grad_scale, double c,
			  const double *sumsq)
{
	return backward_gl(dP, dNn, dstep, dwq, P, Nn, step, n, N, grad_scale, c, sumsq, 0);
}

double lb_bsq_backward_gl_set(float *dP, float *dNn, float *dstep, const float *dwq,
			      const float *P, const float *Nn, float step, size_t n, int N,
			      int max_bits, float grad_scale, double c, const double *sumsq)
{
	assert(dP && dNn && dstep);
	check_bits(N, max_bits);
	zero_rows(dP, dNn, n, N, max_bits);
	return backward_gl(dP, dNn, dstep, dwq, P, Nn, step, n, N, grad_scale, c, sumsq, 1);
}

/* ---- re-quantization and precision adjustment ---- */

int lb_bsq_requantize(float *P, float *Nn, int *N, size_t n, int max_bits, struct lb_bsq_change *ch)
{
	struct lb_bsq_change c;
	const int N0 = *N;
	int N1 = N0;

	check_bits(N0, max_bits);
	memset(&c, 0, sizeof(c));
	c.N_before = c.N_after = N0;
	if (N0 == 0) {
		zero_rows(P, Nn, n, 0, max_bits);
		if (ch)
			*ch = c;
		return 0;
	}
	const uint32_t M = (uint32_t)lb_bsq_levels(N0);
	/* unclipped magnitudes; the cap only keeps the integer conversion defined
	 * for planes far outside [0, 2] */
	const float big = ldexpf(1.0f, LB_BSQ_MAX_BITS + 1);
	uint32_t maxR = 0, cap = M;
	for (size_t e = 0; e < n; e++) {
		const uint32_t R = int_of(elem_u(P, Nn, n, N0, e), big);
		if (R > maxR)
			maxR = R;
		c.clipped += R > M;
	}
	if (N0 >= max_bits) {
		cap = M;
	} else {
		c.clipped = 0;
		if (maxR > M) {
			N1 = N0 + 1;
			c.grew = 1;
			cap = (uint32_t)lb_bsq_levels(N1);
		}
	}
	for (size_t e = 0; e < n; e++) {
		const float u = elem_u(P, Nn, n, N0, e); /* read all rows of e before writing */
		uint32_t R = int_of(u, big);
		if (R > cap)
			R = cap;
		put_elem(P, Nn, n, N1, max_bits, e, R, u < 0.0f);
	}
	*N = N1;
	c.N_after = N1;
	if (ch)
		*ch = c;
	return N1 != N0;
}

/* Number of elements whose effective integer min(R_e, cap) has bit b set. */
static size_t count_bit(const float *P, const float *Nn, size_t n, int N0, float Mf, uint32_t cap,
			int b)
{
	size_t cnt = 0;
	for (size_t e = 0; e < n; e++) {
		uint32_t R = int_of(elem_u(P, Nn, n, N0, e), Mf);
		R = R < cap ? R : cap;
		cnt += (R >> b) & 1u;
	}
	return cnt;
}

int lb_bsq_adjust(float *P, float *Nn, float *step, int *N, size_t n, int max_bits, double thre,
		  struct lb_bsq_change *ch)
{
	struct lb_bsq_change c;
	const int N0 = *N;
	int Nc = N0, k = 0;

	check_bits(N0, max_bits);
	memset(&c, 0, sizeof(c));
	c.N_before = c.N_after = N0;
	if (N0 == 0) {
		zero_rows(P, Nn, n, 0, max_bits);
		if (ch)
			*ch = c;
		return 0;
	}
	const float Mf = (float)lb_bsq_levels(N0);
	const double lim = thre * (double)n; /* thre is a fraction of the elements */
	/* effective integer of element e: min(R_e, cap) >> k, R_e the forward
	 * integer at N0; cap = 2^Nc - 1 covers dropped zero MSBs and folds */
	uint32_t cap = (uint32_t)lb_bsq_levels(N0);
	if (Nc > 1) {
		/* MSB side: the top bit of the current Nc bits */
		for (;;) {
			const size_t cnt = count_bit(P, Nn, n, N0, Mf, cap, Nc - 1);
			if (cnt == 0)
				c.msb_dropped++;
			else if ((double)cnt < lim)
				c.msb_folded++; /* saturate: min(R, 2^(Nc-1) - 1) */
			else
				break;
			Nc--;
			cap = (uint32_t)lb_bsq_levels(Nc);
			if (Nc == 1)
				break;
		}
	}
	if (Nc > 1) {
		/* LSB side: bit counts do not change when lower bits are dropped */
		size_t cnt[LB_BSQ_MAX_BITS] = {0};
		for (size_t e = 0; e < n; e++) {
			uint32_t R = int_of(elem_u(P, Nn, n, N0, e), Mf);
			R = R < cap ? R : cap;
			for (int b = 0; b < Nc; b++)
				cnt[b] += (R >> b) & 1u;
		}
		while (Nc > 1 && (double)cnt[k] <= lim) {
			k++;
			Nc--;
		}
		c.lsb_dropped = k;
	}
	/* a 1-bit all-zero layer is removed */
	if (Nc == 1 && count_bit(P, Nn, n, N0, Mf, cap, k) == 0) {
		Nc = 0;
		c.zeroed = 1;
	}
	for (size_t e = 0; e < n; e++) {
		const float u = elem_u(P, Nn, n, N0, e); /* read all rows of e before writing */
		uint32_t R = int_of(u, Mf);
		R = (R < cap ? R : cap) >> k;
		put_elem(P, Nn, n, Nc, max_bits, e, R, u < 0.0f);
	}
	*step = ldexpf(*step, k); /* s 2^k (2^Nc - 1)/(2^N0 - 1) in terms of s */
	*N = Nc;
	c.N_after = Nc;
	if (ch)
		*ch = c;
	return Nc != N0;
}

int lb_bsq_requant_adjust(float *P, float *Nn, float *step, int *N, size_t n, int max_bits,
			  double thre, struct lb_bsq_change *ch)
{
	struct lb_bsq_change a, b;
	const int N0 = *N;

	lb_bsq_requantize(P, Nn, N, n, max_bits, &a);
	lb_bsq_adjust(P, Nn, step, N, n, max_bits, thre, &b);
	if (ch) {
		*ch = b;
		ch->N_before = N0;
		ch->grew = a.grew;
		ch->clipped = a.clipped;
	}
	return *N != N0;
}

/* ---- fine-tuning ---- */

void lb_bsq_to_ft(float *what, const float *P, const float *Nn, size_t n, int N)
{
	check_bits(N, LB_BSQ_MAX_BITS);
	if (N == 0) {
		memset(what, 0, n * sizeof(*what));
		return;
	}
	const float Mf = (float)lb_bsq_levels(N);
	for (size_t e = 0; e < n; e++) {
		const float u = elem_u(P, Nn, n, N, e);
		const float R = (float)int_of(u, Mf);
		const float v = R / Mf; /* correctly rounded r / M, <= 1 */
		what[e] = (u < 0.0f ? -v : v) + 0.0f;
	}
}

void lb_bsq_ft_forward(float *wq, const float *what, float step, size_t n, int N)
{
	check_bits(N, LB_BSQ_MAX_BITS);
	if (N == 0) {
		memset(wq, 0, n * sizeof(*wq));
		return;
	}
	const float Mf = (float)lb_bsq_levels(N);
	for (size_t e = 0; e < n; e++) {
		float a = fabsf(what[e]) * Mf;
		a = a > Mf ? Mf : a;
		const float R = lb_quant_round_inline(a);
		wq[e] = step * (what[e] < 0.0f ? -R : R) + 0.0f;
	}
}

void lb_bsq_ft_forward_ref(float *wq, const float *what, float step, size_t n, int N)
{
	check_bits(N, LB_BSQ_MAX_BITS);
	const double M = lb_bsq_levels(N);
	for (size_t e = 0; e < n; e++) {
		const float x = what[e];
		if (N == 0) {
			wq[e] = 0.0f;
			continue;
		}
		if (isnan(x)) {
			wq[e] = x;
			continue;
		}
		/* clip first, as the reference: fl(min(|x|, 1) M) */
		const float c = fabsf(x) > 1.0f ? 1.0f : fabsf(x);
		const double R = round_ref((double)(c * (float)M));
		const float w = (float)((double)step * R);
		wq[e] = R == 0.0 ? 0.0f : x < 0.0f ? -w : w;
	}
}

void lb_bsq_ft_backward(float *dwhat, float *dstep, const float *dwq, const float *what, float step,
			size_t n, int N, float grad_scale)
{
	check_bits(N, LB_BSQ_MAX_BITS);
	if (N == 0)
		return;
	const float Mf = (float)lb_bsq_levels(N);
	const float s = step * Mf;
	if (dwhat)
		for (size_t e = 0; e < n; e++)
			dwhat[e] += s * dwq[e];
	if (dstep) {
		double acc = 0.0;
		for (size_t e = 0; e < n; e++) {
			float a = fabsf(what[e]) * Mf;
			a = a > Mf ? Mf : a;
			const float R = lb_quant_round_inline(a);
			acc += (double)dwq[e] * (what[e] < 0.0f ? -R : R);
		}
		*dstep += (float)((double)grad_scale * acc);
	}
}

void lb_bsq_ft_backward_ref(float *dwhat, float *dstep, const float *dwq, const float *what,
			    float step, size_t n, int N, float grad_scale)
{
	check_bits(N, LB_BSQ_MAX_BITS);
	if (N == 0)
		return;
	const double M = lb_bsq_levels(N);
	const float s = (float)((double)step * M);
	double acc = 0.0;
	for (size_t e = 0; e < n; e++) {
		const float x = what[e];
		if (dwhat)
			dwhat[e] += (float)((double)s * dwq[e]);
		const float c = fabsf(x) > 1.0f ? 1.0f : fabsf(x);
		const double R = round_ref((double)(c * (float)M));
		acc += (double)dwq[e] * (x < 0.0f ? -R : R);
	}
	if (dstep)
		*dstep += (float)((double)grad_scale * acc);
}

void lb_bsq_ft_clamp(float *what, size_t n)
{
	for (size_t e = 0; e < n; e++) {
		const float x = what[e];
		what[e] = x > 1.0f ? 1.0f : x < -1.0f ? -1.0f : x == x ? x + 0.0f : 0.0f;
	}
}
