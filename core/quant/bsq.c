/* SPDX-License-Identifier: MIT
 * BSQ bit-plane kernels (see bsq.h): conversion, STE forward/backward,
 * group Lasso, clamp, re-quantization and precision adjustment, fine-tuning.
 * Math: shared/docs/methods.md section 5. */
#include "bsq.h"

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

/* lb_quant_round's body (half away from zero, never -0; NaN passes), inlined
 * here because the forward calls it once per weight. */
static inline float qround(float q)
{
	const float a = fabsf(q);
	float t;
	if (!(a < 8388608.0f))
		return q + 0.0f;
	t = (float)(int32_t)a;
	t += (float)(a - t >= 0.5f);
	return copysignf(t, q) + 0.0f;
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
	return (uint32_t)qround(a);
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
		const float R = qround(a);
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
			const float R = qround(a);
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

void lb_bsq_clamp(float *P, float *Nn, size_t n, int N, int max_bits)
{
	check_bits(N, max_bits);
	for (size_t k = 0; k < (size_t)N * n; k++) {
		const float p = P[k], q = Nn[k];
		/* > 0 is false for NaN and -0: both become +0 */
		P[k] = p > 2.0f ? 2.0f : p > 0.0f ? p : 0.0f;
		Nn[k] = q > 2.0f ? 2.0f : q > 0.0f ? q : 0.0f;
	}
	zero_rows(P, Nn, n, N, max_bits);
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
		const float R = qround(a);
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
			const float R = qround(a);
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
