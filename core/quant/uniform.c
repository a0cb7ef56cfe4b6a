/* SPDX-License-Identifier: MIT
 * Baseline quantizers (see quant.h): uniform sym/asym with plain or clipped
 * STE, DoReFa (Zhou et al. 2016), WRPN (Mishra et al. 2017, as Distiller),
 * PACT (Choi et al. 2018), LSQ (Esser et al. 2020), SR+DR (Gupta et al.
 * 2015 stochastic rounding on a dynamic fixed-point grid), calibration
 * helpers, the level report and the size/BOPs metrics. Formulas:
 * shared/docs/methods.md section 6; conventions: docs/methods/baselines.md. */
#include "quant.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#include "rng.h"

/* ---- rounding and grids ---- */

float lb_quant_round(float q)
{
	return lb_quant_round_inline(q);
}

/* The twins' rounding: independent of roundf, exact in double for any float. */
static double round_ref(float q)
{
	const double d = q;
	return (d >= 0.0 ? floor(d + 0.5) : -floor(-d + 0.5)) + 0.0;
}

/* clamp(round(q) + zf, lo, hi) in float, by compares; NaN -> lo (as fmaxf
 * returns the number when one argument is NaN). */
static inline float round_clamp(float q, float zf, float lo, float hi)
{
	float v = lb_quant_round_inline(q) + zf;
	v = v > lo ? v : lo; /* NaN -> lo, as fmaxf; no -0 reaches here */
	return v < hi ? v : hi;
}

/* Twin of round_clamp: explicit branches, integer bounds. */
static double round_clamp_ref(float q, int z, int lo, int hi)
{
	double m;

	if (isnan(q))
		return lo;
	m = round_ref(q) + z;
	if (m < lo)
		return lo;
	if (m > hi)
		return hi;
	return m;
}

static void check_bits(int bits)
{
	(void)bits;
	assert(bits >= 1 && bits <= LB_QUANT_MAX_BITS);
}

void lb_quant_range_signed(int *lo, int *hi, int bits, int narrow)
{
	check_bits(bits);
	assert(!narrow || bits >= 2);
	*hi = (1 << (bits - 1)) - 1;
	*lo = narrow ? -*hi : -(1 << (bits - 1));
}

void lb_quant_range_unsigned(int *lo, int *hi, int bits)
{
	check_bits(bits);
	*lo = 0;
	*hi = (1 << bits) - 1;
}

/* ---- range and scale helpers ---- */

void lb_quant_minmax(float *mn, float *mx, const float *x, size_t n)
{
	float a, b;

	assert(n >= 1);
	a = b = x[0];
	for (size_t i = 1; i < n; i++) {
		a = fminf(a, x[i]);
		b = fmaxf(b, x[i]);
	}
	*mn = a;
	*mx = b;
}

float lb_quant_max_abs(const float *x, size_t n)
{
	float m = 0.0f;
	for (size_t i = 0; i < n; i++)
		m = fmaxf(m, fabsf(x[i]));
	return m;
}

void lb_quant_max_abs_rows(float *out, const float *x, int rows, size_t cols)
{
	for (int r = 0; r < rows; r++)
		out[r] = lb_quant_max_abs(x + (size_t)r * cols, cols);
}

void lb_quant_mean_abs_rows(float *out, const float *x, int rows, size_t cols)
{
	for (int r = 0; r < rows; r++) {
		const float *xr = x + (size_t)r * cols; /* (cols) */
		double sum = 0.0;
		for (size_t i = 0; i < cols; i++)
			sum += fabsf(xr[i]);
		out[r] = cols ? (float)(sum / (double)cols) : 0.0f;
	}
}

/* Nearest rank k (1-based) of the p-th percentile among n values. */
static size_t pct_rank(size_t n, double p)
{
	double k;

	assert(n >= 1 && p > 0.0 && p <= 100.0);
	k = ceil(p * (double)n / 100.0);
	if (k < 1.0)
		return 1;
	if (k > (double)n)
		return n;
	return (size_t)k;
}

static uint32_t abs_bits(float x)
{
	uint32_t u;
	memcpy(&u, &x, sizeof(u));
	return u & 0x7fffffffu; /* |x|; for non-negative floats the order of
				 * the bit patterns is the order of the values */
}

/* One radix-select pass: among the elements whose pattern >> (shift + width)
 * equals prefix, histogram the next `width` bits and find the bin holding
 * the rank-th (0-based) of them. Returns the bin; *rank becomes the rank
 * inside it. */
static uint32_t select_pass(const float *x, size_t n, uint32_t prefix, int shift, int width,
			    size_t *rank)
{
	size_t hist[2048];
	const uint32_t mask = (1u << width) - 1u;
	const int hs = shift + width;
	uint32_t b;

	memset(hist, 0, sizeof(hist));
	for (size_t i = 0; i < n; i++) {
		const uint32_t u = abs_bits(x[i]);
		if (hs >= 32 || (u >> hs) == prefix)
			hist[(u >> shift) & mask]++;
	}
	for (b = 0; b < mask; b++) {
		if (*rank < hist[b])
			break;
		*rank -= hist[b];
	}
	return b;
}

float lb_quant_percentile_abs(const float *x, size_t n, double p)
{
	size_t rank = pct_rank(n, p) - 1;
	uint32_t u, b;
	float v;

	/* 31 value bits: 10 + 11 + 10 (the sign bit is cleared) */
	b = select_pass(x, n, 0, 21, 11, &rank);
	u = b;
	b = select_pass(x, n, u, 10, 11, &rank);
	u = (u << 11) | b;
	b = select_pass(x, n, u, 0, 10, &rank);
	u = (u << 10) | b;
	memcpy(&v, &u, sizeof(v));
	return v;
}

static void sift_down(float *a, size_t i, size_t n)
{
	for (;;) {
		size_t c = 2 * i + 1;
		float t;
		if (c >= n)
			return;
		if (c + 1 < n && a[c + 1] > a[c])
			c++;
		if (!(a[c] > a[i]))
			return;
		t = a[c];
		a[c] = a[i];
		a[i] = t;
		i = c;
	}
}

float lb_quant_percentile_abs_ref(float *work, const float *x, size_t n, double p)
{
	const size_t k = pct_rank(n, p);

	for (size_t i = 0; i < n; i++)
		work[i] = fabsf(x[i]);
	/* heap sort, ascending (no allocation, unlike glibc qsort) */
	for (size_t i = n / 2; i-- > 0;)
		sift_down(work, i, n);
	for (size_t end = n; end-- > 1;) {
		const float t = work[0];
		work[0] = work[end];
		work[end] = t;
		sift_down(work, 0, end);
	}
	return work[k - 1];
}

void lb_quant_scale_sym(float *s, const float *max_abs, int rows, int hi)
{
	assert(hi >= 1);
	for (int r = 0; r < rows; r++)
		s[r] = max_abs[r] > 0.0f ? max_abs[r] / (float)hi : 1.0f;
}

void lb_quant_scale_asym(float *s, int32_t *z, float mn, float mx, int bits)
{
	const float m = fminf(mn, 0.0f), M = fmaxf(mx, 0.0f);
	const int top = (1 << bits) - 1;
	float zf;

	check_bits(bits);
	if (!(M > m)) {
		*s = 1.0f;
		*z = 0;
		return;
	}
	*s = (M - m) / (float)top;
	zf = lb_quant_round(-m / *s);
	*z = (int32_t)fminf(fmaxf(zf, 0.0f), (float)top);
}

float lb_quant_lsq_init(const float *x, size_t n, int Q_P)
{
	double sum = 0.0;

	assert(Q_P >= 1 && n >= 1);
	for (size_t i = 0; i < n; i++)
		sum += fabsf(x[i]);
	return (float)(2.0 * (sum / (double)n) / sqrt((double)Q_P));
}

float lb_quant_lsq_grad_scale(size_t n, int Q_P)
{
	assert(Q_P >= 1 && n >= 1);
	return (float)(1.0 / sqrt((double)n * (double)Q_P));
}

int lb_quant_dfp_frac_len(float max_abs, int bits)
{
	int e, c, f;
	float m;

	check_bits(bits);
	if (!(max_abs > 0.0f) || !isfinite(max_abs))
		return bits - 1;
	m = frexpf(max_abs, &e); /* max_abs = m 2^e, m in [0.5, 1) */
	c = m == 0.5f ? e - 1 : e; /* ceil(log2 max_abs), exactly */
	f = bits - 1 - c;
	return f < -120 ? -120 : f > 120 ? 120 : f;
}

/* ---- uniform ---- */

void lb_quant_uniform_forward(float *y, const float *x, const float *s, const int32_t *z,
			      int rows, size_t cols, int lo, int hi)
{
	assert(lo < hi);
	for (int r = 0; r < rows; r++) {
		const float *xr = x + (size_t)r * cols; /* (cols) */
		float *yr = y + (size_t)r * cols;        /* (cols) */
		const float sr = s[r], zf = z ? (float)z[r] : 0.0f;
		const float lof = (float)lo, hif = (float)hi;
		assert(sr > 0.0f);
		if (!z) {
			for (size_t i = 0; i < cols; i++)
				yr[i] = sr * round_clamp(xr[i] / sr, 0.0f, lof, hif);
		} else {
			for (size_t i = 0; i < cols; i++)
				yr[i] = sr * (round_clamp(xr[i] / sr, zf, lof, hif) - zf);
		}
	}
}

void lb_quant_uniform_forward_ref(float *y, const float *x, const float *s, const int32_t *z,
				  int rows, size_t cols, int lo, int hi)
{
	const size_t n = (size_t)rows * cols;

	for (size_t e = 0; e < n; e++) {
		const size_t r = e / cols;
		const int zr = z ? z[r] : 0;
		const float q = x[e] / s[r];
		const double m = round_clamp_ref(q, zr, lo, hi);
		y[e] = s[r] * (float)(m - zr);
	}
}

void lb_quant_uniform_backward(float *dx, const float *dy, const float *x, const float *s,
			       const int32_t *z, int rows, size_t cols, int lo, int hi, int ste)
{
	if (!dx)
		return;
	if (ste == LB_QUANT_STE_PLAIN) {
		const size_t n = (size_t)rows * cols;
		for (size_t e = 0; e < n; e++)
			dx[e] += dy[e];
		return;
	}
	assert(ste == LB_QUANT_STE_CLIPPED);
	for (int r = 0; r < rows; r++) {
		const size_t off = (size_t)r * cols;
		const float sr = s[r];
		const float a = (float)(lo - (z ? z[r] : 0)), b = (float)(hi - (z ? z[r] : 0));
		for (size_t i = 0; i < cols; i++) {
			const float q = x[off + i] / sr;
			dx[off + i] += (q >= a && q <= b) ? dy[off + i] : 0.0f;
		}
	}
}

void lb_quant_uniform_backward_ref(float *dx, const float *dy, const float *x, const float *s,
				   const int32_t *z, int rows, size_t cols, int lo, int hi,
				   int ste)
{
	const size_t n = (size_t)rows * cols;

	if (!dx)
		return;
	for (size_t e = 0; e < n; e++) {
		const size_t r = e / cols;
		const int zr = z ? z[r] : 0;
		const double q = x[e] / s[r];
		int inside = 1;
		if (ste == LB_QUANT_STE_CLIPPED)
			inside = q >= lo - zr && q <= hi - zr;
		if (inside)
			dx[e] += dy[e];
	}
}

/* ---- vectorised tanh (DoReFa weights here, WaveQ in waveq.c) ---- */

/* Elements per block: the vector loops run over whole blocks (a known trip
 * count lets -O2's very cheap vectoriser take them); a tail block is padded. */
#define QBLOCK 256
#define QLANES 8 /* partial maxima and double sums, combined in a fixed order */
/* x + 1.5 2^23 - 1.5 2^23 is x rounded to an integer for |x| < 2^22 */
#define QMAGIC 12582912.0f

/* tanh: Taylor coefficients (x^3 .. x^13); 2^f: (ln 2)^n / n! */
#define T3  (-0.333333333f)
#define T5  0.133333333f
#define T7  (-0.053968254f)
#define T9  0.0218694885f
#define T11 (-0.00886323553f)
#define T13 0.00359212804f
#define E1  0.693147181f
#define E2  0.240226507f
#define E3  0.0555041087f
#define E4  0.00961812911f
#define E5  0.00133335581f
#define E6  0.000154035304f
#define E7  1.52527338e-05f

/* c ? a : b on the bit patterns: a ?: on floats makes GCC sink the float ops
 * that follow into branches, which -O2's vectoriser then refuses. */
static inline float sel_bits(int c, float a, float b)
{
	const uint32_t mask = 0u - (uint32_t)c;
	uint32_t ua, ub;
	memcpy(&ua, &a, sizeof ua);
	memcpy(&ub, &b, sizeof ub);
	ua = (ua & mask) | (ub & ~mask);
	memcpy(&a, &ua, sizeof a);
	return a;
}

/* tanh over a whole block, vectorisable (libm tanhf is a scalar call, ~10 ns
 * an element). |x| < 0.4: Taylor to x^13 (truncation < 1e-8 relative); else
 * 1 - 2/(e + 1), e = exp(2|x|) = 2^k 2^f with k = nearest integer, |f| <= 1/2,
 * 2^f by Taylor to f^7 (< 6e-9) and 2^k added to the exponent bits; 2|x|
 * log2(e) is capped at 26 (|x| >= 9 gives 1 - 3e-8 -> 1.0f, as tanhf).
 * Within a few ulp of tanh; NaN gives NaN (through the polynomial). */
static void tanh_block(float *restrict t, const float *restrict x)
{
	for (int i = 0; i < QBLOCK; i++) {
		const float v = x[i], ax = fabsf(v), z = v * v;
		const float small =
		    v + v * z * (T3 + z * (T5 + z * (T7 + z * (T9 + z * (T11 + z * T13)))));
		const float y0 = 2.88539008f * ax; /* 2|x| log2(e) */
		const float y = sel_bits(y0 < 26.0f, y0, 26.0f);
		const float kf = (y + QMAGIC) - QMAGIC;
		const float f = y - kf;
		const float p =
		    1.0f + f * (E1 + f * (E2 + f * (E3 + f * (E4 + f * (E5 + f * (E6 + f * E7))))));
		uint32_t bits;
		float e;
		memcpy(&bits, &p, sizeof bits);
		bits += (uint32_t)(int32_t)kf << 23;
		memcpy(&e, &bits, sizeof e);
		const float large = copysignf(1.0f - 2.0f / (e + 1.0f), v);
		t[i] = sel_bits(!(ax >= 0.4f), small, large); /* NaN: small, i.e. NaN */
	}
}

/* t:(QBLOCK) = tanh of x:(m), m <= QBLOCK; t[m..] = tanh(0) = 0. */
static void tanh_part(float *restrict t, const float *restrict x, size_t m)
{
	float xb[QBLOCK];

	if (m == QBLOCK) {
		tanh_block(t, x);
		return;
	}
	memcpy(xb, x, m * sizeof(float));
	memset(xb + m, 0, (QBLOCK - m) * sizeof(float));
	tanh_block(t, xb);
}

void lb_quant_tanh(float *t, const float *x, size_t n)
{
	float tb[QBLOCK];

	for (size_t i0 = 0; i0 < n; i0 += QBLOCK) {
		const size_t m = n - i0 < QBLOCK ? n - i0 : QBLOCK;
		if (m == QBLOCK && t != x) {
			tanh_block(t + i0, x + i0);
			continue;
		}
		tanh_part(tb, x + i0, m); /* in place or a tail: through the buffer */
		memcpy(t + i0, tb, m * sizeof(float));
	}
}

/* max |t| of a padded block (padding is 0); NaN entries are skipped, as fmaxf. */
static float block_max_abs(const float *t)
{
	float mx[QLANES] = {0};

	for (int i = 0; i < QBLOCK; i += QLANES)
		for (int l = 0; l < QLANES; l++) {
			const float a = fabsf(t[i + l]);
			mx[l] = a > mx[l] ? a : mx[l];
		}
	for (int l = 1; l < QLANES; l++)
		mx[0] = mx[l] > mx[0] ? mx[l] : mx[0];
	return mx[0];
}

/* ---- DoReFa ---- */

float lb_quant_dorefa_w_max(const float *w, size_t n)
{
	float t[QBLOCK], M = 0.0f;

	for (size_t i0 = 0; i0 < n; i0 += QBLOCK) {
		const size_t m = n - i0 < QBLOCK ? n - i0 : QBLOCK;
		tanh_part(t, w + i0, m);
		const float b = block_max_abs(t);
		M = b > M ? b : M;
	}
	return M > 0.0f ? M : 1.0f;
}

/* y:(QBLOCK) from t:(QBLOCK): the rounding of round_clamp with the clamp
 * first, which gives the same m on [0, nf] (round is monotone, nf is an
 * integer; NaN -> 0) and lets the truncation run without the |q| >= 2^23 case. */
static void dorefa_w_block(float *restrict y, const float *restrict t, float twoM, float nf)
{
	for (int i = 0; i < QBLOCK; i++) {
		const float q0 = (t[i] / twoM + 0.5f) * nf;
		const float q1 = sel_bits(q0 > 0.0f, q0, 0.0f); /* NaN -> 0 */
		const float q = sel_bits(q1 < nf, q1, nf);
		float m = (float)(int32_t)q;
		m += (float)(q - m >= 0.5f);
		y[i] = (2.0f * m - nf) / nf;
	}
}

void lb_quant_dorefa_w_forward(float *y, const float *w, size_t n, int bits, float M)
{
	const int levels = (1 << bits) - 1;
	const float nf = (float)levels, twoM = 2.0f * M;
	float t[QBLOCK], yb[QBLOCK];

	assert(bits >= 2 && bits <= LB_QUANT_MAX_BITS && M > 0.0f);
	for (size_t i0 = 0; i0 < n; i0 += QBLOCK) {
		const size_t m = n - i0 < QBLOCK ? n - i0 : QBLOCK;
		tanh_part(t, w + i0, m); /* w is read into t first: y may be w */
		if (m == QBLOCK) {
			dorefa_w_block(y + i0, t, twoM, nf);
			continue;
		}
		dorefa_w_block(yb, t, twoM, nf);
		memcpy(y + i0, yb, m * sizeof(float));
	}
}

void lb_quant_dorefa_w_forward_ref(float *y, const float *w, size_t n, int bits, float M)
{
	const int levels = (1 << bits) - 1;

	for (size_t i = 0; i < n; i++) {
		const float t = tanhf(w[i]);
		const float v = t / (2.0f * M) + 0.5f;
		const double m = round_clamp_ref(v * (float)levels, 0, 0, levels);
		y[i] = (float)(2.0 * m - levels) / (float)levels;
	}
}

/* dw:(QBLOCK) += dy (1 - t^2) / M */
static void dorefa_w_grad_block(float *restrict dw, const float *restrict dy,
				const float *restrict t, float M)
{
	for (int i = 0; i < QBLOCK; i++)
		dw[i] += dy[i] * ((1.0f - t[i] * t[i]) / M);
}

/* through_max, per block: sum_i dy_i t_i in QLANES double lanes (padding: t = 0). */
static void dorefa_w_sum_block(double *restrict acc, const float *restrict dy,
			       const float *restrict t)
{
	for (int i = 0; i < QBLOCK; i += QLANES)
		for (int l = 0; l < QLANES; l++)
			acc[l] += (double)dy[i + l] * (double)t[i + l];
}

void lb_quant_dorefa_w_backward(float *dw, const float *dy, const float *w, size_t n, float M,
				int through_max)
{
	float t[QBLOCK], dyb[QBLOCK], dwb[QBLOCK];
	double acc[QLANES] = {0};
	size_t j = 0;
	float tj = 0.0f, best = 0.0f;

	if (!dw)
		return;
	assert(M > 0.0f);
	for (size_t i0 = 0; i0 < n; i0 += QBLOCK) {
		const size_t m = n - i0 < QBLOCK ? n - i0 : QBLOCK;
		const float *d = dy + i0;
		tanh_part(t, w + i0, m); /* w is read into t first: dw may be w */
		if (m < QBLOCK || dw == dy) { /* a padded copy (t = 0 there); restrict */
			memcpy(dyb, d, m * sizeof(float));
			memset(dyb + m, 0, (QBLOCK - m) * sizeof(float));
			d = dyb;
		}
		if (through_max) {
			/* first index of max|t|: the first block holding a new maximum,
			 * then the first entry there equal to it (NaN never is) */
			const float b = block_max_abs(t);
			if (b > best)
				for (size_t i = 0; i < m; i++)
					if (fabsf(t[i]) == b) {
						best = b;
						tj = t[i];
						j = i0 + i;
						break;
					}
			dorefa_w_sum_block(acc, d, t);
		}
		if (m == QBLOCK) {
			dorefa_w_grad_block(dw + i0, d, t, M);
			continue;
		}
		memcpy(dwb, dw + i0, m * sizeof(float));
		memset(dwb + m, 0, (QBLOCK - m) * sizeof(float));
		dorefa_w_grad_block(dwb, d, t, M);
		memcpy(dw + i0, dwb, m * sizeof(float));
	}
	if (through_max && best > 0.0f) { /* all-zero tensor: M is the fallback constant */
		const double sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) +
				   ((acc[4] + acc[5]) + (acc[6] + acc[7]));
		/* dL/dM = sum dy_i (-t_i / M^2); dM/dw_j = sign(t_j)(1 - t_j^2) */
		dw[j] += (float)(-sum / ((double)M * M) * (tj > 0.0f ? 1.0 : -1.0) *
				 (1.0 - (double)tj * tj));
	}
}

void lb_quant_dorefa_w_backward_ref(float *dw, const float *dy, const float *w, size_t n,
				    float M, int through_max)
{
	if (!dw)
		return;
	for (size_t i = 0; i < n; i++) {
		const float t = tanhf(w[i]);
		const float g = (1.0f - t * t) / M;
		dw[i] = dw[i] + dy[i] * g;
	}
	if (through_max) {
		/* literal: argmax first, then the sum */
		size_t j = 0;
		double sum = 0.0;
		for (size_t i = 1; i < n; i++)
			if (fabsf(tanhf(w[i])) > fabsf(tanhf(w[j])))
				j = i;
		for (size_t i = 0; i < n; i++)
			sum += (double)dy[i] * tanhf(w[i]);
		if (n && tanhf(w[j]) != 0.0f) {
			const double tj = tanhf(w[j]);
			const double dM = -sum / ((double)M * M);
			dw[j] += (float)(dM * (tj > 0.0 ? 1.0 : -1.0) * (1.0 - tj * tj));
		}
	}
}

void lb_quant_binary_forward(float *y, const float *w, const float *E, int rows, size_t cols)
{
	for (int r = 0; r < rows; r++) {
		const size_t off = (size_t)r * cols;
		const float pos = E[r], neg = -E[r];
		for (size_t i = 0; i < cols; i++)
			y[off + i] = w[off + i] >= 0.0f ? pos : neg;
	}
}

void lb_quant_binary_forward_ref(float *y, const float *w, const float *E, int rows,
				 size_t cols)
{
	const size_t n = (size_t)rows * cols;
	for (size_t e = 0; e < n; e++) {
		const float sgn = w[e] >= 0.0f ? 1.0f : -1.0f; /* sign(+-0) = +1; NaN -> -1 */
		y[e] = E[e / cols] * sgn;
	}
}

void lb_quant_binary_backward(float *dw, const float *dy, size_t n)
{
	if (!dw)
		return;
	for (size_t i = 0; i < n; i++)
		dw[i] += dy[i];
}

void lb_quant_binary_backward_ref(float *dw, const float *dy, size_t n)
{
	if (!dw)
		return;
	for (size_t i = 0; i < n; i++)
		dw[i] = dw[i] + dy[i];
}

void lb_quant_dorefa_a_forward(float *y, const float *x, size_t n, int bits)
{
	const float nf = (float)((1 << bits) - 1);

	check_bits(bits);
	for (size_t i = 0; i < n; i++) {
		const float c = fminf(fmaxf(x[i], 0.0f), 1.0f); /* NaN -> 0 */
		y[i] = lb_quant_round_inline(c * nf) / nf;
	}
}

void lb_quant_dorefa_a_forward_ref(float *y, const float *x, size_t n, int bits)
{
	const int levels = (1 << bits) - 1;

	for (size_t i = 0; i < n; i++) {
		float c = x[i];
		if (isnan(c) || c < 0.0f)
			c = 0.0f;
		else if (c > 1.0f)
			c = 1.0f;
		y[i] = (float)round_ref(c * (float)levels) / (float)levels;
	}
}

void lb_quant_dorefa_a_backward(float *dx, const float *dy, const float *x, size_t n)
{
	if (!dx)
		return;
	for (size_t i = 0; i < n; i++)
		dx[i] += (x[i] >= 0.0f && x[i] <= 1.0f) ? dy[i] : 0.0f;
}

void lb_quant_dorefa_a_backward_ref(float *dx, const float *dy, const float *x, size_t n)
{
	if (!dx)
		return;
	for (size_t i = 0; i < n; i++)
		if (!(x[i] < 0.0f) && !(x[i] > 1.0f) && !isnan(x[i]))
			dx[i] = dx[i] + dy[i];
}

/* ---- WRPN weights ---- */

void lb_quant_wrpn_w_forward(float *y, const float *w, size_t n, int bits)
{
	const float Q = (float)((1 << (bits - 1)) - 1);

	assert(bits >= 2 && bits <= LB_QUANT_MAX_BITS);
	for (size_t i = 0; i < n; i++) {
		const float c = fminf(fmaxf(w[i], -1.0f), 1.0f); /* NaN -> -1 */
		y[i] = lb_quant_round_inline(c * Q) / Q;
	}
}

void lb_quant_wrpn_w_forward_ref(float *y, const float *w, size_t n, int bits)
{
	const int Q = (1 << (bits - 1)) - 1;

	for (size_t i = 0; i < n; i++) {
		float c = w[i];
		if (isnan(c) || c < -1.0f)
			c = -1.0f;
		else if (c > 1.0f)
			c = 1.0f;
		y[i] = (float)round_ref(c * (float)Q) / (float)Q;
	}
}

void lb_quant_wrpn_w_backward(float *dw, const float *dy, const float *w, size_t n)
{
	if (!dw)
		return;
	for (size_t i = 0; i < n; i++)
		dw[i] += (w[i] >= -1.0f && w[i] <= 1.0f) ? dy[i] : 0.0f;
}

void lb_quant_wrpn_w_backward_ref(float *dw, const float *dy, const float *w, size_t n)
{
	if (!dw)
		return;
	for (size_t i = 0; i < n; i++)
		if (fabs((double)w[i]) <= 1.0)
			dw[i] = dw[i] + dy[i];
}

/* ---- PACT ---- */

void lb_quant_pact_forward(float *y, const float *x, size_t n, int bits, float alpha)
{
	const float nf = (float)((1 << bits) - 1), s = alpha / nf;

	check_bits(bits);
	assert(alpha > 0.0f);
	for (size_t i = 0; i < n; i++) {
		const float c = fminf(fmaxf(x[i], 0.0f), alpha); /* NaN -> 0 */
		y[i] = round_clamp(c / s, 0.0f, 0.0f, nf) * s;
	}
}

void lb_quant_pact_forward_ref(float *y, const float *x, size_t n, int bits, float alpha)
{
	const int levels = (1 << bits) - 1;
	const float s = alpha / (float)levels;

	for (size_t i = 0; i < n; i++) {
		float c = x[i];
		if (isnan(c) || c < 0.0f)
			c = 0.0f;
		else if (c > alpha)
			c = alpha;
		y[i] = (float)round_clamp_ref(c / s, 0, 0, levels) * s;
	}
}

void lb_quant_pact_backward(float *dx, float *dalpha, const float *dy, const float *x, size_t n,
			    int bits, float alpha, int grad)
{
	const float nf = (float)((1 << bits) - 1), s = alpha / nf;
	double sum = 0.0;

	check_bits(bits);
	assert(alpha > 0.0f);
	if (dx)
		for (size_t i = 0; i < n; i++)
			dx[i] += (x[i] >= 0.0f && x[i] < alpha) ? dy[i] : 0.0f;
	if (!dalpha)
		return;
	if (grad == LB_QUANT_PACT_PAPER) {
		for (size_t i = 0; i < n; i++)
			sum += x[i] >= alpha ? (double)dy[i] : 0.0;
	} else {
		assert(grad == LB_QUANT_PACT_LSQ);
		for (size_t i = 0; i < n; i++) {
			const float xi = x[i];
			if (xi >= alpha) {
				sum += dy[i];
			} else if (xi >= 0.0f) {
				const float yq = round_clamp(xi / s, 0.0f, 0.0f, nf) * s;
				sum += (double)dy[i] * (((double)yq - xi) / alpha);
			}
		}
	}
	*dalpha += (float)sum;
}

void lb_quant_pact_backward_ref(float *dx, float *dalpha, const float *dy, const float *x,
				size_t n, int bits, float alpha, int grad)
{
	const int levels = (1 << bits) - 1;
	const float s = alpha / (float)levels;
	double sum = 0.0;

	for (size_t i = 0; i < n; i++) {
		const int clipped = x[i] >= alpha, inside = x[i] >= 0.0f && x[i] < alpha;
		if (dx && inside)
			dx[i] = dx[i] + dy[i];
		if (clipped)
			sum += dy[i];
		else if (inside && grad == LB_QUANT_PACT_LSQ) {
			const float yq = (float)round_clamp_ref(x[i] / s, 0, 0, levels) * s;
			sum += (double)dy[i] * (((double)yq - x[i]) / alpha);
		}
	}
	if (dalpha)
		*dalpha = *dalpha + (float)sum;
}

/* ---- LSQ ---- */

void lb_quant_lsq_forward(float *y, const float *x, const float *s, int rows, size_t cols,
			  int lo, int hi)
{
	lb_quant_uniform_forward(y, x, s, NULL, rows, cols, lo, hi);
}

void lb_quant_lsq_forward_ref(float *y, const float *x, const float *s, int rows, size_t cols,
			      int lo, int hi)
{
	const size_t n = (size_t)rows * cols;

	/* v_bar = round(clamp(v/s, lo, hi)), the paper's order */
	for (size_t e = 0; e < n; e++) {
		const float sr = s[e / cols];
		float q = x[e] / sr;
		if (isnan(q) || q < (float)lo)
			q = (float)lo;
		else if (q > (float)hi)
			q = (float)hi;
		y[e] = (float)round_ref(q) * sr;
	}
}

void lb_quant_lsq_backward(float *dx, float *ds, const float *dy, const float *x,
			   const float *s, int rows, size_t cols, int lo, int hi,
			   float grad_scale)
{
	const float lof = (float)lo, hif = (float)hi;

	assert(lo < hi);
	for (int r = 0; r < rows; r++) {
		const size_t off = (size_t)r * cols;
		const float sr = s[r];
		double sum = 0.0;
		assert(sr > 0.0f);
		if (dx)
			for (size_t i = 0; i < cols; i++) {
				const float q = x[off + i] / sr;
				dx[off + i] += (q > lof && q < hif) ? dy[off + i] : 0.0f;
			}
		if (!ds)
			continue;
		for (size_t i = 0; i < cols; i++) {
			const float q = x[off + i] / sr;
			/* dv_hat/ds: the clamp bound outside, round(q) - q inside */
			const double g = q <= lof ? (double)lof
					 : q >= hif ? (double)hif
						    : (double)roundf(q) - (double)q;
			sum += (double)dy[off + i] * g;
		}
		ds[r] += (float)((double)grad_scale * sum);
	}
}

void lb_quant_lsq_backward_ref(float *dx, float *ds, const float *dy, const float *x,
			       const float *s, int rows, size_t cols, int lo, int hi,
			       float grad_scale)
{
	for (int r = 0; r < rows; r++) {
		double sum = 0.0;
		for (size_t i = 0; i < cols; i++) {
			const size_t e = (size_t)r * cols + i;
			const float q = x[e] / s[r];
			double g;
			if (q <= (float)lo)
				g = lo;
			else if (q >= (float)hi)
				g = hi;
			else {
				g = round_ref(q) - (double)q;
				if (dx && !isnan(q))
					dx[e] = dx[e] + dy[e];
			}
			sum += (double)dy[e] * g;
		}
		if (ds)
			ds[r] = ds[r] + (float)((double)grad_scale * sum);
	}
}

/* ---- SR + DR ---- */

void lb_quant_sr_forward(float *y, const float *x, size_t n, int bits, int frac_len,
			 const struct lb_quant_key *key)
{
	const float up = ldexpf(1.0f, frac_len), down = ldexpf(1.0f, -frac_len);
	const float lo = -(float)(1 << (bits - 1)), hi = (float)((1 << (bits - 1)) - 1);

	check_bits(bits);
	assert(frac_len >= -120 && frac_len <= 120);
	for (size_t e = 0; e < n; e++) {
		const float q = x[e] * up; /* exact: a power of two */
		const float fl = floorf(q);
		const float u = lb_rng_uniform(key->seed, LB_RNG_QNOISE, key->step, key->base + e);
		const float m = fl + (u < q - fl ? 1.0f : 0.0f); /* -0 -> +0 */
		y[e] = fminf(fmaxf(m, lo), hi) * down; /* NaN -> lo */
	}
}

void lb_quant_sr_forward_ref(float *y, const float *x, size_t n, int bits, int frac_len,
			     const struct lb_quant_key *key)
{
	const int lo = -(1 << (bits - 1)), hi = (1 << (bits - 1)) - 1;

	for (size_t e = 0; e < n; e++) {
		const double q = ldexp((double)x[e], frac_len);
		const double u = lb_rng_uniform(key->seed, LB_RNG_QNOISE, key->step, key->base + e);
		double m;
		if (isnan(q)) {
			m = lo;
		} else {
			m = floor(q);
			m += u < q - m ? 1.0 : 0.0; /* -0 -> +0 */
			if (m < lo)
				m = lo;
			if (m > hi)
				m = hi;
		}
		y[e] = (float)ldexp(m, -frac_len);
	}
}

void lb_quant_sr_backward(float *dx, const float *dy, const float *x, size_t n, int bits,
			  int frac_len, int ste)
{
	const float up = ldexpf(1.0f, frac_len);
	const float lo = -(float)(1 << (bits - 1)), hi = (float)((1 << (bits - 1)) - 1);

	check_bits(bits);
	if (!dx)
		return;
	if (ste == LB_QUANT_STE_PLAIN) {
		for (size_t e = 0; e < n; e++)
			dx[e] += dy[e];
		return;
	}
	assert(ste == LB_QUANT_STE_CLIPPED);
	for (size_t e = 0; e < n; e++) {
		const float q = x[e] * up;
		dx[e] += (q >= lo && q <= hi) ? dy[e] : 0.0f;
	}
}

void lb_quant_sr_backward_ref(float *dx, const float *dy, const float *x, size_t n, int bits,
			      int frac_len, int ste)
{
	const int lo = -(1 << (bits - 1)), hi = (1 << (bits - 1)) - 1;

	if (!dx)
		return;
	for (size_t e = 0; e < n; e++) {
		const double q = ldexp((double)x[e], frac_len);
		if (ste == LB_QUANT_STE_PLAIN || (q >= lo && q <= hi))
			dx[e] = dx[e] + dy[e];
	}
}

/* ---- level report ---- */

size_t lb_quant_levels(float *levels, size_t cap, const float *x, size_t n)
{
	size_t count = 0;

	for (size_t i = 0; i < n; i++) {
		const float v = x[i];
		size_t a = 0, b = count;
		if (isnan(v))
			continue;
		/* first index with levels[k] >= v */
		while (a < b) {
			const size_t mid = a + (b - a) / 2;
			if (levels[mid] < v)
				a = mid + 1;
			else
				b = mid;
		}
		if (a < count && levels[a] == v)
			continue;
		if (count == cap)
			return cap + 1;
		memmove(levels + a + 1, levels + a, (count - a) * sizeof(*levels));
		levels[a] = v == 0.0f ? 0.0f : v; /* -0 is stored as +0 */
		count++;
	}
	return count;
}

/* ---- metrics ---- */

double lb_quant_avg_bits(const struct lb_quant_layer *l, int n)
{
	double p = 0.0, pb = 0.0;
	for (int i = 0; i < n; i++) {
		p += l[i].params;
		pb += l[i].params * l[i].w_bits;
	}
	return p > 0.0 ? pb / p : 0.0;
}

double lb_quant_compression(const struct lb_quant_layer *l, int n)
{
	double p = 0.0, pb = 0.0;
	for (int i = 0; i < n; i++) {
		p += l[i].params;
		pb += l[i].params * l[i].w_bits;
	}
	return pb > 0.0 ? 32.0 * p / pb : 0.0;
}

double lb_quant_size_bytes(const struct lb_quant_layer *l, int n)
{
	double pb = 0.0;
	for (int i = 0; i < n; i++)
		pb += l[i].params * l[i].w_bits;
	return pb / 8.0;
}

double lb_quant_bops(const struct lb_quant_layer *l, int n)
{
	double b = 0.0;
	for (int i = 0; i < n; i++)
		b += l[i].macs * l[i].w_bits * l[i].a_bits;
	return b;
}
