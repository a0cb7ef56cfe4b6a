/* SPDX-License-Identifier: MIT
 * Tests for core/quant/uniform.c (baseline quantizers, quant.h): fast ==
 * *_ref bit for bit on boundary-heavy inputs; idempotence, level counts,
 * zero, per-channel scales and an RMSE budget for the uniform quantizer;
 * DoReFa level set; lb_quant_tanh within 4 ulp; DoReFa weights fast vs ref
 * (one level off only at rounding boundaries within the tanh's error; the
 * backward within 2^-21 of its scale); STE masks; PACT / LSQ / DoReFa
 * gradients against their definitions and central differences; stochastic
 * rounding determinism, neighbours and bias; calibration helpers, level
 * report and metrics on hand-computed examples. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/quant.h"
#include "rng.h"
#include "../tap.h"

#define SEED 20240917ULL

static float *fnew(size_t n)
{
	return calloc(n ? n : 1, sizeof(float));
}

static float unif(uint32_t tag, uint64_t i, float lo, float hi)
{
	return lo + (hi - lo) * lb_rng_uniform(SEED, LB_RNG_TEST, tag, i);
}

static float gauss(uint32_t tag, uint64_t i)
{
	return lb_rng_normal(SEED, LB_RNG_TEST, tag, i);
}

static int same(const float *a, const float *b, size_t n)
{
	return memcmp(a, b, n * sizeof(float)) == 0;
}

/* Independent round half away from zero (long double) */
static double rnd(double q)
{
	return q >= 0.0 ? floorl((long double)q + 0.5L) : -floorl(-(long double)q + 0.5L);
}

/* Inputs for grid [lo, hi] with step s: uniform over a wider range, exact
 * half-way points and their float neighbours, grid points, +-0, huge values
 * and (with specials) inf/NaN. */
static void fill_grid(float *x, size_t n, float s, int lo, int hi, uint32_t tag, int specials)
{
	for (size_t i = 0; i < n; i++) {
		const int k = lo - 2 + (int)lb_rng_below(SEED, LB_RNG_TEST, tag + 1, i,
							 (uint32_t)(hi - lo + 5));
		float v = s * ((float)k + 0.5f);
		switch (i % 10) {
		case 0:
		case 1:
		case 2:
			x[i] = unif(tag, i, s * ((float)lo - 3.0f), s * ((float)hi + 3.0f));
			break;
		case 3:
			x[i] = v;
			break;
		case 4:
			x[i] = nextafterf(v, INFINITY);
			break;
		case 5:
			x[i] = nextafterf(v, -INFINITY);
			break;
		case 6:
			x[i] = s * (float)k;
			break;
		case 7:
			x[i] = (i & 16) ? 0.0f : -0.0f;
			break;
		case 8:
			x[i] = (i & 16 ? 1.0f : -1.0f) * unif(tag, i, 10.0f, 1e6f) * s * (float)(hi - lo + 1);
			break;
		default:
			if (specials) {
				static const float sp[4] = {INFINITY, -INFINITY, NAN, 1e30f};
				x[i] = sp[(i / 10) % 4];
			} else {
				x[i] = unif(tag, i, s * (float)lo, s * (float)hi);
			}
		}
	}
}

/* ---- rounding, grids, helpers ---- */

static void test_round_ranges(void)
{
	int lo, hi, good;

	good = lb_quant_round(0.5f) == 1.0f && lb_quant_round(-0.5f) == -1.0f &&
	       lb_quant_round(1.5f) == 2.0f && lb_quant_round(2.5f) == 3.0f &&
	       lb_quant_round(-2.5f) == -3.0f && lb_quant_round(0.49999997f) == 0.0f &&
	       lb_quant_round(-1.4999999f) == -1.0f;
	ok(good, "round: half away from zero, no double-rounding at 0.49999997");
	ok(!signbit(lb_quant_round(-0.3f)), "round: -0.3 gives +0");
	lb_quant_range_signed(&lo, &hi, 3, 0);
	ok(lo == -4 && hi == 3, "signed full range b=3 is [-4, 3]");
	lb_quant_range_signed(&lo, &hi, 3, 1);
	ok(lo == -3 && hi == 3, "signed narrow range b=3 is [-3, 3]");
	lb_quant_range_signed(&lo, &hi, 1, 0);
	ok(lo == -1 && hi == 0, "signed full range b=1 is [-1, 0]");
	lb_quant_range_unsigned(&lo, &hi, 16);
	ok(lo == 0 && hi == 65535, "unsigned range b=16 is [0, 65535]");
}

static void test_calibration(void)
{
	static const float x[8] = {0.5f, -3.0f, 2.0f, 0.0f, 1.0f, -1.0f, 2.5f, -0.25f};
	float mn, mx, rows[2], s[3], sa;
	int32_t z;

	lb_quant_minmax(&mn, &mx, x, 8);
	ok(mn == -3.0f && mx == 2.5f, "minmax");
	ok(lb_quant_max_abs(x, 8) == 3.0f, "max_abs");
	lb_quant_max_abs_rows(rows, x, 2, 4);
	ok(rows[0] == 3.0f && rows[1] == 2.5f, "per-row max_abs");
	lb_quant_mean_abs_rows(rows, x, 2, 4);
	ok(rows[0] == 1.375f && rows[1] == 1.1875f, "per-row mean_abs (5.5/4, 4.75/4)");
	{
		const float ma[3] = {3.0f, 0.0f, 7.0f};
		lb_quant_scale_sym(s, ma, 3, 7);
		ok(s[0] == 3.0f / 7.0f && s[1] == 1.0f && s[2] == 1.0f,
		   "scale_sym = max/hi, 1 for an all-zero row");
	}
	lb_quant_scale_asym(&sa, &z, -1.0f, 3.0f, 2);
	ok(sa == 4.0f / 3.0f && z == 1, "scale_asym [-1,3] b=2: s=4/3, z=round(0.75)=1");
	{
		float y0, x0 = 0.0f, yl, yh, xl = -1.0f, xh = 3.0f;
		lb_quant_uniform_forward(&y0, &x0, &sa, &z, 1, 1, 0, 3);
		lb_quant_uniform_forward(&yl, &xl, &sa, &z, 1, 1, 0, 3);
		lb_quant_uniform_forward(&yh, &xh, &sa, &z, 1, 1, 0, 3);
		ok(y0 == 0.0f && fabsf(yl + 4.0f / 3.0f) < 1e-6f && fabsf(yh - 8.0f / 3.0f) < 1e-6f,
		   "asym: 0 exact, min -> -z s, max -> (3-z) s (got %g %g %g)", (double)y0, (double)yl,
		   (double)yh);
	}
	lb_quant_scale_asym(&sa, &z, 0.5f, 2.0f, 2);
	ok(sa == 2.0f / 3.0f && z == 0, "scale_asym widens [0.5,2] to [0,2]");
	lb_quant_scale_asym(&sa, &z, 0.0f, 0.0f, 4);
	ok(sa == 1.0f && z == 0, "scale_asym of an all-zero range");
	{
		const float v[4] = {1.0f, -2.0f, 3.0f, -4.0f};
		is_near(lb_quant_lsq_init(v, 4, 4), 2.5, 1e-7, "lsq init 2*2.5/sqrt(4)");
		is_near(lb_quant_lsq_grad_scale(100, 4), 0.05, 1e-8, "lsq grad scale 1/sqrt(400)");
	}
	{
		int good = lb_quant_dfp_frac_len(1.0f, 8) == 7 && lb_quant_dfp_frac_len(1.5f, 8) == 6 &&
			   lb_quant_dfp_frac_len(0.3f, 8) == 8 && lb_quant_dfp_frac_len(0.25f, 8) == 9 &&
			   lb_quant_dfp_frac_len(4.0f, 4) == 1 && lb_quant_dfp_frac_len(5.0f, 4) == 0 &&
			   lb_quant_dfp_frac_len(0.0f, 6) == 5 && lb_quant_dfp_frac_len(NAN, 6) == 5;
		ok(good, "dfp fractional length b - 1 - ceil(log2 max)");
	}
	{
		/* max|x| / 2^-f <= 2^(b-1) for many maxima */
		int good = 1;
		for (int i = 0; i < 2000; i++) {
			const float m = expf(unif(3, (uint64_t)i, -20.0f, 20.0f));
			for (int b = 2; b <= 16; b += 7) {
				const int f = lb_quant_dfp_frac_len(m, b);
				const double r = ldexp(m, f);
				good &= r <= ldexp(1.0, b - 1) && r > ldexp(1.0, b - 2);
			}
		}
		ok(good, "dfp: max fits the b-bit grid and uses its top bit");
	}
}

static void test_percentile(void)
{
	const size_t n = 100003;
	float *x = fnew(n), *work = fnew(n);
	static const double ps[7] = {0.001, 25.0, 50.0, 99.0, 99.9, 99.99, 100.0};
	int good = 1, good_q = 1;

	for (size_t i = 0; i < n; i++)
		x[i] = gauss(10, i) * (i % 7 == 0 ? -3.0f : 1.0f);
	for (int k = 0; k < 7; k++) {
		const float a = lb_quant_percentile_abs(x, n, ps[k]);
		const float b = lb_quant_percentile_abs_ref(work, x, n, ps[k]);
		if (a != b) {
			diag("p=%g: radix %.9g, sort %.9g", ps[k], (double)a, (double)b);
			good = 0;
		}
	}
	ok(good, "percentile |x|: radix select == sort on N(0,1), 7 percentiles");
	ok(lb_quant_percentile_abs(x, n, 100.0) == lb_quant_max_abs(x, n), "100th percentile is max|x|");
	/* many ties (a quantized tensor) */
	for (size_t i = 0; i < n; i++)
		x[i] = 0.25f * (float)(int)(gauss(11, i) * 3.0f);
	for (int k = 0; k < 7; k++)
		good_q &= lb_quant_percentile_abs(x, n, ps[k]) ==
			  lb_quant_percentile_abs_ref(work, x, n, ps[k]);
	ok(good_q, "percentile with heavy ties == sort");
	{
		const float one = -2.5f, four[4] = {4.0f, -1.0f, 3.0f, 2.0f};
		ok(lb_quant_percentile_abs(&one, 1, 50.0) == 2.5f, "percentile of one value");
		ok(lb_quant_percentile_abs(four, 4, 50.0) == 2.0f &&
			   lb_quant_percentile_abs(four, 4, 50.1) == 3.0f &&
			   lb_quant_percentile_abs(four, 4, 75.0) == 3.0f,
		   "nearest rank: ceil(p n / 100)");
	}
	free(x);
	free(work);
}

static void test_levels_helper(void)
{
	const float x[9] = {3.0f, -0.0f, 1.0f, 0.0f, 1.0f, NAN, 3.0f, 2.0f, -5.0f};
	float lv[8];
	size_t c = lb_quant_levels(lv, 8, x, 9);

	ok(c == 5 && lv[0] == -5.0f && lv[1] == 0.0f && !signbit(lv[1]) && lv[2] == 1.0f &&
		   lv[3] == 2.0f && lv[4] == 3.0f,
	   "levels: distinct sorted values, -0 == +0, NaN skipped (count %zu)", c);
	ok(lb_quant_levels(lv, 3, x, 9) == 4, "levels: cap 3 reports cap + 1");
	ok(lb_quant_levels(lv, 0, x, 0) == 0, "levels of an empty tensor");
}

static void test_metrics(void)
{
	const struct lb_quant_layer l[2] = {{100.0, 1000.0, 2, 4}, {300.0, 5000.0, 4, 8}};

	/* sum #W b = 200 + 1200 = 1400, sum #W = 400 */
	is_near(lb_quant_avg_bits(l, 2), 3.5, 1e-12, "average bits 1400/400");
	is_near(lb_quant_compression(l, 2), 32.0 * 400.0 / 1400.0, 1e-12, "compression 32*400/1400");
	is_near(lb_quant_size_bytes(l, 2), 175.0, 1e-12, "size 1400/8 bytes");
	is_near(lb_quant_bops(l, 2), 1000.0 * 8 + 5000.0 * 32, 1e-9, "BOPs 1000*2*4 + 5000*4*8");
	is_near(lb_quant_avg_bits(l, 0), 0.0, 0.0, "average bits of no layers");
}

/* ---- uniform ---- */

struct ucase {
	int bits, kind; /* 0 signed full, 1 signed narrow, 2 unsigned, 3 asymmetric */
};

static void grid_of(int *lo, int *hi, int bits, int kind)
{
	if (kind <= 1)
		lb_quant_range_signed(lo, hi, bits, kind);
	else
		lb_quant_range_unsigned(lo, hi, bits);
}

static void test_uniform_twins(void)
{
	const int rows = 3;
	const size_t cols = 1000, n = (size_t)rows * cols;
	float *x = fnew(n), *y = fnew(n), *yr = fnew(n), *dy = fnew(n), *dx = fnew(n),
	      *dxr = fnew(n);
	int fwd = 1, bwd = 1, cases = 0;

	for (int bits = 1; bits <= 16; bits++)
		for (int kind = 0; kind < 4; kind++) {
			int lo, hi;
			float s[3] = {0.013f * (float)bits, 0.7f, 3.1f};
			int32_t z[3] = {0, 1, 0};
			if (kind == 1 && bits < 2)
				continue;
			grid_of(&lo, &hi, bits, kind);
			z[1] = (hi - lo) / 3 + lo;
			z[2] = hi;
			for (int r = 0; r < rows; r++)
				fill_grid(x + (size_t)r * cols, cols, s[r], lo - (kind == 3 ? z[r] : 0),
					  hi - (kind == 3 ? z[r] : 0), (uint32_t)(bits * 8 + kind + r * 200),
					  1);
			for (size_t i = 0; i < n; i++) {
				dy[i] = unif(5, i, -1.0f, 1.0f);
				dx[i] = dxr[i] = unif(6, i, -1.0f, 1.0f);
			}
			for (int pc = 0; pc < 2; pc++) {
				const int R = pc ? rows : 1;
				const size_t C = pc ? cols : n;
				const int32_t *zz = kind == 3 ? z : NULL;
				lb_quant_uniform_forward(y, x, s, zz, R, C, lo, hi);
				lb_quant_uniform_forward_ref(yr, x, s, zz, R, C, lo, hi);
				if (!same(y, yr, n) && fwd) {
					for (size_t i = 0; i < n; i++)
						if (memcmp(&y[i], &yr[i], sizeof(float))) {
							diag("b=%d kind=%d x=%.9g fast %.9g ref %.9g", bits,
							     kind, (double)x[i], (double)y[i], (double)yr[i]);
							break;
						}
					fwd = 0;
				}
				for (int ste = 0; ste < 2; ste++) {
					lb_quant_uniform_backward(dx, dy, x, s, zz, R, C, lo, hi, ste);
					lb_quant_uniform_backward_ref(dxr, dy, x, s, zz, R, C, lo, hi, ste);
					bwd &= same(dx, dxr, n);
				}
				cases++;
			}
		}
	ok(fwd, "uniform forward fast == ref bit for bit (%d cases, b=1..16, sym/narrow/unsigned/asym, per-tensor and per-channel)", cases);
	ok(bwd, "uniform backward fast == ref bit for bit (plain and clipped)");
	free(x);
	free(y);
	free(yr);
	free(dy);
	free(dx);
	free(dxr);
}

static void test_uniform_properties(void)
{
	const size_t n = 20000;
	float *x = fnew(n), *y = fnew(n), *y2 = fnew(n), lv[257];
	int idem = 1, count_ok = 1, zero_ok = 1, grid_ok = 1;

	for (int bits = 1; bits <= 8; bits++)
		for (int kind = 0; kind < 4; kind++) {
			int lo, hi;
			float s, zero = 0.0f, yz;
			int32_t z = 0;
			size_t c;
			if (kind == 1 && bits < 2)
				continue;
			grid_of(&lo, &hi, bits, kind);
			for (size_t i = 0; i < n; i++)
				x[i] = gauss((uint32_t)(20 + bits), i) * 2.0f + (kind == 3 ? 1.0f : 0.0f);
			if (kind == 3) {
				float mn, mx;
				lb_quant_minmax(&mn, &mx, x, n);
				lb_quant_scale_asym(&s, &z, mn, mx, bits);
			} else {
				const float m = lb_quant_max_abs(x, n);
				lb_quant_scale_sym(&s, &m, 1, hi > 0 ? hi : 1);
			}
			{
				const int32_t *zz = kind == 3 ? &z : NULL;
				lb_quant_uniform_forward(y, x, &s, zz, 1, n, lo, hi);
				lb_quant_uniform_forward(y2, y, &s, zz, 1, n, lo, hi);
				idem &= same(y, y2, n);
				c = lb_quant_levels(lv, (size_t)1 << bits, y, n);
				count_ok &= c <= ((size_t)1 << bits);
				for (size_t k = 0; k < c && k < 257; k++) {
					const double m = (double)lv[k] / s + z;
					grid_ok &= fabs(m - rnd(m)) < 1e-3 && rnd(m) >= lo && rnd(m) <= hi;
				}
				lb_quant_uniform_forward(&yz, &zero, &s, zz, 1, 1, lo, hi);
				zero_ok &= yz == 0.0f && !signbit(yz);
			}
		}
	ok(idem, "uniform: Q(Q(x)) == Q(x) bit for bit, b=1..8, all grids");
	ok(count_ok, "uniform: at most 2^b distinct levels");
	ok(grid_ok, "uniform: every level is s (m - z) with m in [lo, hi]");
	ok(zero_ok, "uniform: 0 -> +0 (symmetric, unsigned and asymmetric with zero point)");
	free(x);
	free(y);
	free(y2);
}

static void test_uniform_rmse(void)
{
	const size_t n = 100000;
	float *x = fnew(n), *y = fnew(n);
	int budget = 1, decreasing = 1;

	for (size_t i = 0; i < n; i++)
		x[i] = gauss(30, i);
	for (int narrow = 0; narrow < 2; narrow++) {
		double prev = INFINITY;
		for (int bits = 2; bits <= 8; bits++) {
			int lo, hi;
			const float m = lb_quant_max_abs(x, n);
			float s;
			double se = 0.0, rmse, bound;
			lb_quant_range_signed(&lo, &hi, bits, narrow);
			lb_quant_scale_sym(&s, &m, 1, hi);
			lb_quant_uniform_forward(y, x, &s, NULL, 1, n, lo, hi);
			for (size_t i = 0; i < n; i++)
				se += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
			rmse = sqrt(se / (double)n);
			bound = s / sqrt(12.0) * 1.1;
			diag("narrow=%d b=%d s=%.5f rmse=%.6f bound=%.6f", narrow, bits, (double)s, rmse,
			     bound);
			budget &= rmse < bound;
			decreasing &= rmse < prev;
			prev = rmse;
		}
	}
	ok(budget, "uniform sym min-max on N(0,1): RMSE < 1.1 s/sqrt(12) for b=2..8");
	ok(decreasing, "uniform sym: RMSE strictly decreases with bits");
	free(x);
	free(y);
}

static void test_uniform_ste(void)
{
	const size_t n = 5000;
	float *x = fnew(n), *dy = fnew(n), *dx = fnew(n), *dx0 = fnew(n);
	const float s = 0.1f;
	const int lo = -8, hi = 7;
	const int32_t z = 3;
	int plain = 1, clipped = 1, asym = 1, twice = 1, nmask = 0;

	fill_grid(x, n, s, lo, hi, 40, 0);
	for (size_t i = 0; i < n; i++) {
		dy[i] = unif(41, i, -1.0f, 1.0f);
		dx0[i] = unif(42, i, -1.0f, 1.0f);
	}
	memcpy(dx, dx0, n * sizeof(float));
	lb_quant_uniform_backward(dx, dy, x, &s, NULL, 1, n, lo, hi, LB_QUANT_STE_PLAIN);
	for (size_t i = 0; i < n; i++)
		plain &= dx[i] == dx0[i] + dy[i];
	memcpy(dx, dx0, n * sizeof(float));
	lb_quant_uniform_backward(dx, dy, x, &s, NULL, 1, n, lo, hi, LB_QUANT_STE_CLIPPED);
	for (size_t i = 0; i < n; i++) {
		const double q = (double)(x[i] / s);
		const int in = q >= lo && q <= hi;
		nmask += in;
		clipped &= dx[i] == (in ? dx0[i] + dy[i] : dx0[i]);
	}
	memcpy(dx, dx0, n * sizeof(float));
	lb_quant_uniform_backward(dx, dy, x, &s, &z, 1, n, 0, 15, LB_QUANT_STE_CLIPPED);
	for (size_t i = 0; i < n; i++) {
		const double q = (double)(x[i] / s);
		const int in = q >= -3 && q <= 12;
		asym &= dx[i] == (in ? dx0[i] + dy[i] : dx0[i]);
	}
	memset(dx, 0, n * sizeof(float));
	lb_quant_uniform_backward(dx, dy, x, &s, NULL, 1, n, lo, hi, LB_QUANT_STE_CLIPPED);
	lb_quant_uniform_backward(dx, dy, x, &s, NULL, 1, n, lo, hi, LB_QUANT_STE_CLIPPED);
	for (size_t i = 0; i < n; i++) {
		const double q = (double)(x[i] / s);
		twice &= dx[i] == ((q >= lo && q <= hi) ? 2.0f * dy[i] : 0.0f);
	}
	ok(plain, "plain STE: dx == dx0 + dy exactly");
	ok(clipped && nmask > 0 && nmask < (int)n, "clipped STE: dx == dx0 + dy [lo <= x/s <= hi] (%d of %zu inside)", nmask, n);
	ok(asym, "clipped STE with zero point: mask [lo - z <= x/s <= hi - z]");
	ok(twice, "backward twice accumulates 2 dy");
	lb_quant_uniform_backward(NULL, dy, x, &s, NULL, 1, n, lo, hi, LB_QUANT_STE_CLIPPED);
	ok(1, "NULL dx is accepted");
	free(x);
	free(dy);
	free(dx);
	free(dx0);
}

static void test_per_channel(void)
{
	enum { R = 4 };
	const size_t C = 3000, n = R * C;
	float *x = fnew(n), *y = fnew(n), *yt = fnew(n), ma[R], s[R], lv[16];
	const float scale[R] = {0.01f, 0.1f, 1.0f, 10.0f};
	int own = 1, maxrep = 1, levels = 1;
	int lo, hi;

	lb_quant_range_signed(&lo, &hi, 4, 1);
	for (int r = 0; r < R; r++)
		for (size_t i = 0; i < C; i++)
			x[r * C + i] = gauss(50, r * C + i) * scale[r];
	lb_quant_max_abs_rows(ma, x, R, C);
	lb_quant_scale_sym(s, ma, R, hi);
	lb_quant_uniform_forward(y, x, s, NULL, R, C, lo, hi);
	for (int r = 0; r < R; r++) {
		size_t c;
		lb_quant_uniform_forward(yt + r * C, x + r * C, &s[r], NULL, 1, C, lo, hi);
		own &= same(y + r * C, yt + r * C, C);
		maxrep &= fabsf(lb_quant_max_abs(y + r * C, C) - ma[r]) <= 1e-6f * ma[r];
		c = lb_quant_levels(lv, 16, y + r * C, C);
		levels &= c >= 11 && c <= 15; /* narrow 4-bit grid: 15 points */
	}
	ok(own, "per-channel: row r == per-tensor quantization of row r with s[r]");
	ok(maxrep, "per-channel min-max: each row's max|x| maps to hi s_r");
	ok(levels, "per-channel: every row uses its own grid (11..15 of 15 levels each)");
	{
		/* one shared scale (the largest) collapses the small rows to zero */
		float smax = s[R - 1];
		size_t c;
		lb_quant_uniform_forward(yt, x, &smax, NULL, 1, n, lo, hi);
		c = lb_quant_levels(lv, 16, yt, C);
		ok(c == 1 && lv[0] == 0.0f, "per-tensor with the largest scale: row 0 all zero");
	}
	free(x);
	free(y);
	free(yt);
}

/* ---- the vectorised tanh (lb_quant_tanh) ---- */

static double ulp_err(float got, double want)
{
	const float wf = (float)want;
	const double ulp = fmax((double)nextafterf(fabsf(wf), INFINITY) - fabsf(wf), 1e-45);
	return fabs((double)got - want) / ulp;
}

static void test_tanh(void)
{
	enum { N = 200003 };
	float *x = malloc(N * sizeof(float)), *t = malloc(N * sizeof(float));
	double worst = 0.0;
	float wx = 0.0f;
	size_t i;

	for (i = 0; i < N - 12; i++) /* dense on [-10, 10] plus a log sweep */
		x[i] = i % 2 ? -20.0f + 40.0f * (float)i / N
			     : (float)(i % 4 == 0 ? 1 : -1) * ldexpf(1.0f, -40 + (int)(i % 46)) *
				   (1.0f + (float)i / N);
	x[i++] = 0.4f;
	x[i++] = nextafterf(0.4f, 0.0f);
	x[i++] = -0.4f;
	x[i++] = 0.0f;
	x[i++] = -0.0f;
	x[i++] = 9.0f;
	x[i++] = 1e-40f;
	x[i++] = 88.0f;
	x[i++] = -1e30f;
	x[i++] = INFINITY;
	x[i++] = -INFINITY;
	x[i++] = NAN;
	lb_quant_tanh(t, x, N);
	for (i = 0; i < N - 3; i++) {
		const double e = ulp_err(t[i], tanh((double)x[i]));
		if (e > worst) {
			worst = e;
			wx = x[i];
		}
	}
	diag("lb_quant_tanh: max error %.2f ulp (at x = %.9g)", worst, wx);
	ok(worst <= 4.0, "lb_quant_tanh within 4 ulp of tanh on [-20, 20] and 2^-40 .. 2^5");
	ok(t[N - 3] == 1.0f && t[N - 2] == -1.0f && isnan(t[N - 1]) && t[N - 9] == 0.0f &&
	       t[N - 8] == 0.0f && t[N - 6] == 1e-40f && t[N - 4] == -1.0f,
	   "lb_quant_tanh: +-inf -> +-1, NaN -> NaN, +-0 -> 0, denormals pass");
	memcpy(t, x, N * sizeof(float));
	lb_quant_tanh(t, t, 1000);
	lb_quant_tanh(x, x, 1000);
	ok(memcmp(t, x, 1000 * sizeof(float)) == 0 && t[1] != x[N - 1], "lb_quant_tanh in place");
	free(x);
	free(t);
}

/* ---- DoReFa, binary, WRPN ---- */

/* Level index of a DoReFa weight output y = (2m - L)/L. */
static long dorefa_level(float y, int L)
{
	return lround(((double)y * L + L) / 2.0);
}

/* DoReFa weights of w:(n) at bits k = 2..16 against the twin. The fast
 * kernel's tanh (lb_quant_tanh) and the twin's (libm tanhf) differ by a few
 * ulp, so the levels may differ, by one, where the twin's coordinate
 * q = (t/(2M) + 1/2) L is that close to a rounding boundary (a half-integer):
 * |dq| <= (4 ulp(t) / (2M)) L for the tanh plus < 2^-22 L for the float
 * ops, which both run in the same monotone order. Everywhere else: bit for
 * bit. Also checks fast == that float formula applied to lb_quant_tanh's t
 * with an independent rounding (long double floor), bit for bit. */
static void dorefa_twins(const float *w, size_t n, int *twins, int *exact, size_t *tolerated,
			 double *worst)
{
	float *y = fnew(n), *yr = fnew(n), *t = fnew(n);

	lb_quant_tanh(t, w, n);
	for (int k = 2; k <= 16; k++) {
		const float M = lb_quant_dorefa_w_max(w, n);
		const int L = (1 << k) - 1;
		lb_quant_dorefa_w_forward(y, w, n, k, M);
		lb_quant_dorefa_w_forward_ref(yr, w, n, k, M);
		for (size_t i = 0; i < n; i++) {
			const float tr = tanhf(w[i]);
			const float q = (tr / (2.0f * M) + 0.5f) * (float)L;
			const double dist = fabs((double)q - (floor((double)q) + 0.5));
			const float tf = fabsf(tr);
			const double tol =
			    (4.0 * (double)(nextafterf(tf, INFINITY) - tf) / (2.0 * M) + 0x1p-22) * L;
			/* the fast kernel's own coordinate, rounded independently */
			const float qf = (t[i] / (2.0f * M) + 0.5f) * (float)L;
			const double mf = isnan(qf) ? 0.0 : fmin(fmax(rnd(qf), 0.0), (double)L);
			*exact &= y[i] == (float)(2.0 * mf - L) / (float)L;
			if (y[i] == yr[i])
				continue;
			if (labs(dorefa_level(y[i], L) - dorefa_level(yr[i], L)) == 1 && dist <= tol) {
				++*tolerated;
				*worst = fmax(*worst, dist / tol);
				continue;
			}
			if (*twins)
				diag("k=%d w=%.9g: fast %.9g ref %.9g, q %.9g is %.3g from a boundary "
				     "(allowed %.3g)",
				     k, w[i], y[i], yr[i], q, dist, tol);
			*twins = 0;
		}
	}
	free(y);
	free(yr);
	free(t);
}

static void test_dorefa_w(void)
{
	const size_t n = 100000;
	float *w = fnew(n), *y = fnew(n), *yr = fnew(n), lv[32];
	int sets = 1, twins = 1, exact = 1;
	size_t tolerated = 0;
	double worst = 0.0;

	for (size_t i = 0; i < n; i++)
		w[i] = gauss(60, i) * 0.5f;
	for (int k = 2; k <= 4; k++) {
		const float M = lb_quant_dorefa_w_max(w, n);
		const int L = (1 << k) - 1;
		size_t c;
		int match = 1;
		lb_quant_dorefa_w_forward(y, w, n, k, M);
		c = lb_quant_levels(lv, 32, y, n);
		match = c == (size_t)(L + 1);
		for (int i = 0; i <= L && match; i++)
			match &= lv[i] == (float)(2 * i - L) / (float)L;
		if (!match)
			diag("k=%d: %zu levels", k, c);
		sets &= match;
	}
	ok(sets, "DoReFa weights: level set is exactly {(2i - (2^k-1))/(2^k-1)} for k=2,3,4");
	/* n = 100000 (a tail block of 160), the block edges, and specials */
	dorefa_twins(w, n, &twins, &exact, &tolerated, &worst);
	for (int e = 0; e < 9; e++)
		dorefa_twins(w + 7, (size_t[]){0, 1, 2, 255, 256, 257, 511, 512, 513}[e], &twins,
			     &exact, &tolerated, &worst);
	{
		float sp[300];
		for (int i = 0; i < 300; i++)
			sp[i] = gauss(61, (uint64_t)i) * 3.0f;
		sp[3] = NAN;
		sp[10] = 0.0f;
		sp[11] = -0.0f;
		sp[20] = 1e30f;
		sp[21] = -INFINITY;
		sp[290] = 9.5f; /* saturated tanh, in the tail */
		sp[291] = -8.7f;
		dorefa_twins(sp, 300, &twins, &exact, &tolerated, &worst);
	}
	diag("DoReFa weights forward: %zu outputs one level off the twin's at a rounding "
	     "boundary, the farthest at %.2f of the allowed distance",
	     tolerated, worst);
	ok(twins, "DoReFa weights forward fast == ref, k=2..16, except one level within the "
		  "tanh's error of a rounding boundary");
	ok(tolerated < 2000, "DoReFa weights forward: such boundary cases are rare (%zu of ~1.6M)",
	   tolerated);
	ok(exact, "DoReFa weights forward == clamp(round((t/(2M) + 1/2) n)) of lb_quant_tanh's t, "
		  "bit for bit (NaN -> lowest level)");
	{
		float zw = 0.0f, zy;
		lb_quant_dorefa_w_forward(&zy, &zw, 1, 2, 1.0f);
		ok(zy == 1.0f / 3.0f, "DoReFa weights: w = 0 maps to the level +1/3 at k=2 (no zero level)");
	}
	{
		/* M == max |lb_quant_tanh(w)| (NaN skipped), 1 for none or all-zero;
		 * the unique maximum sits in the tail block */
		float t[300], m0 = 0.0f, wz[5] = {0};
		int good = 1;
		for (int i = 0; i < 300; i++)
			t[i] = w[i] * 0.3f;
		t[100] = NAN;
		t[280] = -2.0f;
		lb_quant_tanh(t, t, 300);
		for (int i = 0; i < 300; i++)
			m0 = fmaxf(m0, fabsf(t[i]));
		good &= m0 == -t[280] && ulp_err(m0, tanh(2.0)) <= 4.0;
		for (int i = 0; i < 300; i++)
			t[i] = w[i] * 0.3f;
		t[100] = NAN;
		t[280] = -2.0f;
		good &= lb_quant_dorefa_w_max(t, 300) == m0;
		good &= lb_quant_dorefa_w_max(wz, 5) == 1.0f && lb_quant_dorefa_w_max(wz, 0) == 1.0f;
		ok(good, "DoReFa M = max|lb_quant_tanh(w)| (NaN skipped, block tail), 1 if all zero");
	}
	{
		/* in place: y may be w */
		memcpy(y, w, n * sizeof(float));
		lb_quant_dorefa_w_forward(y, y, n, 3, 0.9f);
		lb_quant_dorefa_w_forward(yr, w, n, 3, 0.9f);
		ok(same(y, yr, n), "DoReFa weights forward in place (y == w)");
	}
	free(w);
	free(y);
	free(yr);
}

static double tanh_max(const double *w, size_t n)
{
	double m = 0.0;
	for (size_t i = 0; i < n; i++)
		m = fmax(m, fabs(tanh(w[i])));
	return m;
}

/* DoReFa weights backward fast vs ref on w, dy:(n), dw starting at dw0, both
 * M modes. The tanh differs by a few ulp and the through-max sum runs in 8
 * lanes, so: |dw - dw_ref| <= 2^-21 (|dw0| + |dy|/M) per element, plus
 * 2^-21 S/M^2 at the argmax j (S = sum |dy_i t_i|, the scale of its extra
 * term). Returns the worst error / allowed. */
static double dorefa_grad_twins(const float *w, const float *dy, size_t n, float dw0, int tm,
				int *good)
{
	float *dw = fnew(n), *dwr = fnew(n);
	const float M = lb_quant_dorefa_w_max(w, n);
	double S = 0.0, worst = 0.0;
	size_t j = 0;

	for (size_t i = 0; i < n; i++) {
		dw[i] = dwr[i] = dw0;
		S += fabs((double)dy[i] * tanh((double)w[i]));
		if (fabsf(w[i]) > fabsf(w[j]))
			j = i;
	}
	lb_quant_dorefa_w_backward(dw, dy, w, n, M, tm);
	lb_quant_dorefa_w_backward_ref(dwr, dy, w, n, M, tm);
	for (size_t i = 0; i < n; i++) {
		const double tol = 0x1p-21 * (fabs(dw0) + fabs(dy[i]) / M +
					      (tm && i == j ? S / ((double)M * M) : 0.0));
		const double e = fabs((double)dw[i] - (double)dwr[i]) / tol;
		if (!(e <= 1.0) && *good)
			diag("n=%zu tm=%d i=%zu: fast %.9g ref %.9g (allowed %.3g)", n, tm, i,
			     dw[i], dwr[i], tol);
		*good &= e <= 1.0;
		worst = fmax(worst, e);
	}
	free(dw);
	free(dwr);
	return worst;
}

static void test_dorefa_w_grad(void)
{
	enum { N = 64 };
	float w[N], dy[N], dw[N];
	double wd[N], worst = 0.0;
	int twins = 1;

	for (int i = 0; i < N; i++) {
		w[i] = gauss(70, (uint64_t)i) * 0.7f;
		dy[i] = unif(71, (uint64_t)i, -1.0f, 1.0f);
	}
	w[17] = 3.0f; /* a clear, unique maximum of |tanh w| */
	for (int tm = 0; tm < 2; tm++) {
		const float M = lb_quant_dorefa_w_max(w, N);
		double num[N], d2 = 0.0, a2 = 0.0;
		/* surrogate w_q ~ 2 (t/(2M) + 1/2) - 1 in double; M fixed or max|tanh| */
		for (int i = 0; i < N; i++)
			wd[i] = w[i];
		for (int i = 0; i < N; i++) {
			const double eps = 1e-5, save = wd[i];
			double lp = 0.0, lm = 0.0, Mp, Mm;
			wd[i] = save + eps;
			Mp = tm ? tanh_max(wd, N) : (double)M;
			for (int j = 0; j < N; j++)
				lp += dy[j] * (2.0 * (tanh(wd[j]) / (2.0 * Mp) + 0.5) - 1.0);
			wd[i] = save - eps;
			Mm = tm ? tanh_max(wd, N) : (double)M;
			for (int j = 0; j < N; j++)
				lm += dy[j] * (2.0 * (tanh(wd[j]) / (2.0 * Mm) + 0.5) - 1.0);
			wd[i] = save;
			num[i] = (lp - lm) / (2.0 * eps);
		}
		for (int i = 0; i < N; i++)
			dw[i] = 0.25f;
		lb_quant_dorefa_w_backward(dw, dy, w, N, M, tm);
		for (int i = 0; i < N; i++) {
			const double d = ((double)dw[i] - 0.25) - num[i];
			d2 += d * d;
			a2 += num[i] * num[i];
		}
		diag("DoReFa w backward (through_max=%d): rel err %.3g", tm, sqrt(d2 / a2));
		ok(sqrt(d2 / a2) < 1e-5, "DoReFa weights backward%s == central differences of the surrogate t/M",
		   tm ? " through M = max|tanh|" : " (M constant)");
		worst = fmax(worst, dorefa_grad_twins(w, dy, N, 0.25f, tm, &twins));
	}
	{
		/* 100000 weights (a tail block of 160) with the unique max in a middle
		 * block, then in the tail; and the block edges */
		const size_t n = 100000;
		float *wl = fnew(n), *dl = fnew(n);
		for (size_t i = 0; i < n; i++) {
			wl[i] = gauss(72, i) * 0.5f;
			dl[i] = gauss(73, i) * 1e-3f;
		}
		for (int tm = 0; tm < 2; tm++) {
			wl[40000] = -3.5f;
			worst = fmax(worst, dorefa_grad_twins(wl, dl, n, 0.0f, tm, &twins));
			wl[99990] = 4.0f;
			worst = fmax(worst, dorefa_grad_twins(wl, dl, n, -0.01f, tm, &twins));
			for (int e = 0; e < 8; e++)
				worst = fmax(worst,
					     dorefa_grad_twins(wl + 3, dl + 5,
							       (size_t[]){1, 2, 255, 256, 257, 511,
									  512, 513}[e],
							       0.5f, tm, &twins));
			wl[40000] = wl[99990] = 0.1f;
		}
		diag("DoReFa w backward fast vs ref: worst error %.3g of the allowed", worst);
		ok(twins, "DoReFa weights backward fast == ref within 2^-21 of the gradient's scale "
			  "(both M modes, block tails)");
		{
			/* dw may be dy (or w): the same array as in and out */
			float *a = fnew(1000), *b = fnew(1000);
			const float M = lb_quant_dorefa_w_max(wl, 1000);
			int good = 1;
			for (int tm = 0; tm < 2; tm++) {
				memcpy(a, dl, 1000 * sizeof(float));
				memcpy(b, dl, 1000 * sizeof(float));
				lb_quant_dorefa_w_backward(a, a, wl, 1000, M, tm);
				lb_quant_dorefa_w_backward(b, dl, wl, 1000, M, tm);
				good &= same(a, b, 1000);
				memcpy(a, wl, 1000 * sizeof(float));
				memcpy(b, wl, 1000 * sizeof(float));
				lb_quant_dorefa_w_backward(a, dl, a, 1000, M, tm);
				lb_quant_dorefa_w_backward(b, dl, wl, 1000, M, tm);
				good &= same(a, b, 1000);
			}
			ok(good, "DoReFa weights backward with dw == dy and dw == w");
			free(a);
			free(b);
		}
		{
			float z[3] = {0}, g[3] = {1.0f, 2.0f, 3.0f}, d[3] = {0};
			lb_quant_dorefa_w_backward(d, g, z, 3, 1.0f, 1);
			ok(d[0] == 1.0f && d[1] == 2.0f && d[2] == 3.0f,
			   "DoReFa through_max: an all-zero tensor has no M term (M is the fallback)");
		}
		free(wl);
		free(dl);
	}
}

static void test_binary(void)
{
	enum { R = 2, C = 500 };
	float *w = fnew(R * C), *y = fnew(R * C), *yr = fnew(R * C), *y2 = fnew(R * C), E[R], lv[4];
	float dy[8], dw[8], dwr[8];
	int good = 1;

	for (size_t i = 0; i < R * C; i++)
		w[i] = gauss(80, i) * (i < C ? 0.1f : 2.0f);
	w[3] = 0.0f;
	w[4] = -0.0f;
	w[5] = 1.0f;
	lb_quant_mean_abs_rows(E, w, R, C);
	w[5] = NAN;
	lb_quant_binary_forward(y, w, E, R, C);
	lb_quant_binary_forward_ref(yr, w, E, R, C);
	ok(same(y, yr, R * C), "binary forward fast == ref");
	for (int r = 0; r < R; r++) {
		const size_t c = lb_quant_levels(lv, 4, y + r * C, C);
		good &= c == 2 && lv[0] == -E[r] && lv[1] == E[r];
	}
	ok(good, "binary: each row has exactly the levels {-E_r, +E_r}, E_r = mean|w_r|");
	ok(y[3] == E[0] && y[4] == E[0], "binary: sign(+-0) = +1");
	ok(y[5] == -E[0], "binary: NaN -> the lowest level -E");
	lb_quant_binary_forward(y2, y, E, R, C);
	ok(same(y, y2, R * C), "binary: idempotent with the same E");
	for (int i = 0; i < 8; i++) {
		dy[i] = (float)i - 3.5f;
		dw[i] = dwr[i] = 1.0f;
	}
	lb_quant_binary_backward(dw, dy, 8);
	lb_quant_binary_backward_ref(dwr, dy, 8);
	good = same(dw, dwr, 8);
	for (int i = 0; i < 8; i++)
		good &= dw[i] == 1.0f + dy[i];
	ok(good, "binary backward: plain STE dw += dy (fast == ref)");
	free(w);
	free(y);
	free(yr);
	free(y2);
}

/* Twins, idempotence, level count, zero and STE mask of the elementwise
 * quantizers that have a fixed grid: DoReFa activations and WRPN weights. */
static void test_dorefa_a_wrpn(void)
{
	const size_t n = 20000;
	float *x = fnew(n), *y = fnew(n), *yr = fnew(n), *y2 = fnew(n), *dy = fnew(n), *dx = fnew(n),
	      *dxr = fnew(n);
	float *lv = fnew(65537);
	int twins = 1, idem = 1, count = 1, zero = 1, grid = 1, mask = 1, btwins = 1;

	for (int which = 0; which < 2; which++)
		for (int k = 1; k <= 16; k++) {
			const int L = which ? (1 << (k - 1)) - 1 : (1 << k) - 1;
			float zx = 0.0f, zy;
			size_t c;
			if (which && k < 2)
				continue;
			fill_grid(x, n, 1.0f / (float)L, which ? -L : 0, L, (uint32_t)(90 + k), which == 0);
			for (size_t i = 0; i < n; i++) {
				dy[i] = unif(91, i, -1.0f, 1.0f);
				dx[i] = dxr[i] = unif(92, i, -1.0f, 1.0f);
			}
			if (which) {
				lb_quant_wrpn_w_forward(y, x, n, k);
				lb_quant_wrpn_w_forward_ref(yr, x, n, k);
				lb_quant_wrpn_w_forward(y2, y, n, k);
				lb_quant_wrpn_w_forward(&zy, &zx, 1, k);
				lb_quant_wrpn_w_backward(dx, dy, x, n);
				lb_quant_wrpn_w_backward_ref(dxr, dy, x, n);
			} else {
				lb_quant_dorefa_a_forward(y, x, n, k);
				lb_quant_dorefa_a_forward_ref(yr, x, n, k);
				lb_quant_dorefa_a_forward(y2, y, n, k);
				lb_quant_dorefa_a_forward(&zy, &zx, 1, k);
				lb_quant_dorefa_a_backward(dx, dy, x, n);
				lb_quant_dorefa_a_backward_ref(dxr, dy, x, n);
			}
			twins &= same(y, yr, n);
			btwins &= same(dx, dxr, n);
			idem &= same(y, y2, n);
			zero &= zy == 0.0f && !signbit(zy);
			c = lb_quant_levels(lv, 65537, y, n);
			count &= c <= (size_t)(which ? 2 * L + 1 : L + 1);
			for (size_t i = 0; i < c; i++) {
				const double m = (double)lv[i] * L;
				grid &= fabs(m - rnd(m)) < 1e-3 * (1 + fabs(m)) &&
					lv[i] == (float)rnd(m) / (float)L;
			}
			/* mask: [0 <= x <= 1] (DoReFa a) or [-1 <= x <= 1] (WRPN w) */
			for (size_t i = 0; i < n; i++) {
				const float base = unif(92, i, -1.0f, 1.0f);
				const int in = x[i] >= (which ? -1.0f : 0.0f) && x[i] <= 1.0f;
				mask &= dx[i] == (in ? base + dy[i] : base);
			}
		}
	ok(twins, "DoReFa activations (k=1..16) and WRPN weights (k=2..16): forward fast == ref");
	ok(btwins, "DoReFa activations and WRPN weights: backward fast == ref");
	ok(idem, "DoReFa activations and WRPN weights: Q(Q(x)) == Q(x)");
	ok(count, "DoReFa a: at most 2^k levels; WRPN w: at most 2^k - 1 levels");
	ok(grid, "levels are m/(2^k-1) (DoReFa a) and m/(2^(k-1)-1) (WRPN), one rounding");
	ok(zero, "DoReFa a and WRPN w: 0 -> +0");
	ok(mask, "STE: dx == dx0 + dy inside the clamp range, dx0 outside");
	free(x);
	free(y);
	free(yr);
	free(y2);
	free(dy);
	free(dx);
	free(dxr);
	free(lv);
}

/* ---- PACT ---- */

struct pact_ctx {
	const float *x, *r;
	size_t n;
	int bits;
};

static double pact_loss(const struct pact_ctx *c, float alpha, float *y)
{
	double l = 0.0;
	lb_quant_pact_forward(y, c->x, c->n, c->bits, alpha);
	for (size_t i = 0; i < c->n; i++)
		l += (double)c->r[i] * y[i];
	return l;
}

static void test_pact(void)
{
	const size_t n = 4000;
	float *x = fnew(n), *y = fnew(n), *yr = fnew(n), *y2 = fnew(n), *r = fnew(n), *dx = fnew(n),
	      *dxr = fnew(n), lv[64];
	const float alpha = 2.5f;
	int twins = 1, idem = 1, count = 1, zero = 1, mask = 1;

	for (int k = 1; k <= 16; k++) {
		const float s = alpha / (float)((1 << k) - 1);
		float zx = 0.0f, zy, da = 0.0f, dar = 0.0f;
		fill_grid(x, n, s, -3, (1 << k) + 2, (uint32_t)(100 + k), 1);
		for (size_t i = 0; i < n; i++) {
			r[i] = unif(101, i, -1.0f, 1.0f);
			dx[i] = dxr[i] = unif(102, i, -1.0f, 1.0f);
		}
		lb_quant_pact_forward(y, x, n, k, alpha);
		lb_quant_pact_forward_ref(yr, x, n, k, alpha);
		twins &= same(y, yr, n);
		lb_quant_pact_forward(y2, y, n, k, alpha);
		idem &= same(y, y2, n);
		if (k <= 5)
			count &= lb_quant_levels(lv, 64, y, n) <= (size_t)1 << k;
		lb_quant_pact_forward(&zy, &zx, 1, k, alpha);
		zero &= zy == 0.0f && !signbit(zy);
		for (size_t i = 0; i < n; i++)
			if (isnan(x[i]))
				x[i] = 0.5f; /* gradients of NaN inputs are not compared */
		for (int g = 0; g < 2; g++) {
			lb_quant_pact_backward(dx, &da, r, x, n, k, alpha, g);
			lb_quant_pact_backward_ref(dxr, &dar, r, x, n, k, alpha, g);
			twins &= same(dx, dxr, n) && da == dar;
		}
	}
	ok(twins, "PACT forward and backward (both alpha modes) fast == ref, k=1..16");
	ok(idem, "PACT: Q(Q(x)) == Q(x)");
	ok(count, "PACT: at most 2^k levels (k=1..5)");
	ok(zero, "PACT: 0 -> +0");

	/* gradients at k = 4, points away from rounding boundaries and alpha */
	{
		const int k = 4, L = 15;
		const float s = alpha / (float)L;
		struct pact_ctx c = {x, r, n, k};
		double def = 0.0, clip_def = 0.0, inside_x = 0.0, fd_all, fd_clip;
		float da = 0.0f, da_lsq = 0.0f;
		size_t nclip = 0;
		for (size_t i = 0; i < n; i++) {
			const int kind = (int)(i % 4);
			const float frac = unif(103, i, 0.1f, 0.4f) * (i & 4 ? 1.0f : -1.0f);
			const float m = (float)(int)unif(104, i, 0.0f, (float)L - 0.01f) + (frac < 0 ? 1.0f : 0.0f);
			if (kind == 0)
				x[i] = alpha * unif(105, i, 1.2f, 4.0f); /* clipped at alpha */
			else if (kind == 1)
				x[i] = -unif(105, i, 0.1f, 3.0f); /* clipped at 0 */
			else
				x[i] = s * (m + frac); /* inside, |frac| in [0.1, 0.4] */
			if (x[i] >= alpha) {
				def += r[i];
				clip_def += r[i];
				nclip++;
			} else if (x[i] >= 0.0f) {
				inside_x += (double)r[i] * x[i] / alpha;
			}
			dx[i] = 0.0f;
		}
		lb_quant_pact_backward(dx, &da, r, x, n, k, alpha, LB_QUANT_PACT_PAPER);
		for (size_t i = 0; i < n; i++)
			mask &= dx[i] == ((x[i] >= 0.0f && x[i] < alpha) ? r[i] : 0.0f);
		ok(mask, "PACT: dx == dy [0 <= x < alpha] exactly");
		is_near(da, def, 1e-5 * fabs(def) + 1e-6,
			"PACT dL/dalpha == sum dy [x >= alpha] (%zu clipped)", nclip);
		/* numerical: perturb alpha; inside points keep their rounding */
		{
			const double eps = 1e-3 * alpha;
			float *yy = y;
			struct pact_ctx cc = c;
			double lp, lm;
			lp = pact_loss(&c, (float)(alpha + eps), yy);
			lm = pact_loss(&c, (float)(alpha - eps), yy);
			fd_all = (lp - lm) / ((double)(float)(alpha + eps) - (double)(float)(alpha - eps));
			/* the clipping part alone: loss over clipped and negative points */
			for (size_t i = 0; i < n; i++)
				y2[i] = (x[i] >= alpha || x[i] < 0.0f) ? r[i] : 0.0f;
			cc.r = y2;
			lp = pact_loss(&cc, (float)(alpha + eps), yy);
			lm = pact_loss(&cc, (float)(alpha - eps), yy);
			fd_clip = (lp - lm) / ((double)(float)(alpha + eps) - (double)(float)(alpha - eps));
		}
		is_near(da, fd_clip, 1e-4 * fabs(fd_clip),
			"PACT dalpha == central difference of the clipped part (%.6g)", fd_clip);
		lb_quant_pact_backward(NULL, &da_lsq, r, x, n, k, alpha, LB_QUANT_PACT_LSQ);
		/* LSQ mode: d/dalpha of y with rounding fixed, plus the STE term -x/alpha inside */
		is_near(da_lsq, fd_all - inside_x, 1e-4 * fabs(fd_all - inside_x) + 1e-4,
			"PACT LSQ-mode dalpha == central difference + STE term (%.6g)", fd_all - inside_x);
		ok(fabs(fd_all - clip_def) > 1e-2, "inside points do move y with alpha (FD %.4g vs clip %.4g)",
		   fd_all, clip_def);
		{
			float d2 = 0.0f;
			lb_quant_pact_backward(NULL, &d2, r, x, n, k, alpha, LB_QUANT_PACT_PAPER);
			lb_quant_pact_backward(NULL, &d2, r, x, n, k, alpha, LB_QUANT_PACT_PAPER);
			is_near(d2, 2.0 * da, 1e-6 * fabs(da), "PACT dalpha accumulates (+=)");
		}
	}
	free(x);
	free(y);
	free(yr);
	free(y2);
	free(r);
	free(dx);
	free(dxr);
}

/* ---- LSQ ---- */

static double lsq_loss(const float *x, const float *r, size_t n, float s, int lo, int hi, float *y)
{
	double l = 0.0;
	lb_quant_lsq_forward(y, x, &s, 1, n, lo, hi);
	for (size_t i = 0; i < n; i++)
		l += (double)r[i] * y[i];
	return l;
}

static void test_lsq(void)
{
	enum { R = 3 };
	const size_t C = 3000, n = R * C;
	float *x = fnew(n), *y = fnew(n), *yr = fnew(n), *y2 = fnew(n), *r = fnew(n), *dx = fnew(n),
	      *dxr = fnew(n), lv[300];
	float s[R] = {0.05f, 0.3f, 1.7f};
	int twins = 1, idem = 1, count = 1, zero = 1;

	for (int kind = 0; kind < 2; kind++)
		for (int b = 1; b <= 16; b++) {
			int lo, hi;
			float ds[R] = {0.5f, 0.5f, 0.5f}, dsr[R] = {0.5f, 0.5f, 0.5f}, zx = 0.0f, zy;
			if (kind == 0)
				lb_quant_range_signed(&lo, &hi, b, 0);
			else
				lb_quant_range_unsigned(&lo, &hi, b);
			for (int rr = 0; rr < R; rr++)
				fill_grid(x + rr * C, C, s[rr], lo, hi, (uint32_t)(110 + b + 20 * kind + 50 * rr), 0);
			for (size_t i = 0; i < n; i++) {
				r[i] = unif(111, i, -1.0f, 1.0f);
				dx[i] = dxr[i] = unif(112, i, -1.0f, 1.0f);
			}
			lb_quant_lsq_forward(y, x, s, R, C, lo, hi);
			lb_quant_lsq_forward_ref(yr, x, s, R, C, lo, hi);
			twins &= same(y, yr, n);
			lb_quant_lsq_forward(y2, y, s, R, C, lo, hi);
			idem &= same(y, y2, n);
			if (b <= 8)
				count &= lb_quant_levels(lv, 300, y, C) <= (size_t)1 << b;
			lb_quant_lsq_forward(&zy, &zx, s, 1, 1, lo, hi);
			zero &= zy == 0.0f && !signbit(zy);
			lb_quant_lsq_backward(dx, ds, r, x, s, R, C, lo, hi, 0.01f);
			lb_quant_lsq_backward_ref(dxr, dsr, r, x, s, R, C, lo, hi, 0.01f);
			twins &= same(dx, dxr, n) && same(ds, dsr, R);
		}
	ok(twins, "LSQ forward and backward fast == ref (b=1..16, signed and unsigned, 3 rows)");
	ok(idem, "LSQ: Q(Q(x)) == Q(x)");
	ok(count, "LSQ: at most 2^b levels");
	ok(zero, "LSQ: 0 -> +0");

	/* gradients: signed 3-bit, per-channel steps */
	{
		const int lo = -4, hi = 3;
		float ds[R] = {0}, ds2[R] = {0};
		double want[R] = {0}, ste[R] = {0};
		int mask = 1, formula = 1, numeric = 1;
		for (int rr = 0; rr < R; rr++)
			for (size_t i = 0; i < C; i++) {
				const size_t e = rr * C + i;
				const float frac = unif(113, e, 0.1f, 0.4f) * (e & 2 ? 1.0f : -1.0f);
				const int m = lo + (int)lb_rng_below(SEED, LB_RNG_TEST, 114, e, (uint32_t)(hi - lo));
				if (e % 5 == 0)
					x[e] = s[rr] * (e & 8 ? unif(115, e, hi + 1.2f, hi + 6.0f)
							      : unif(115, e, lo - 6.0f, lo - 1.2f));
				else
					x[e] = s[rr] * ((float)m + (frac < 0 ? 1.0f : 0.0f) + frac);
				dx[e] = 0.0f;
			}
		lb_quant_lsq_backward(dx, ds, r, x, s, R, C, lo, hi, 1.0f);
		for (int rr = 0; rr < R; rr++) {
			double fd;
			for (size_t i = 0; i < C; i++) {
				const size_t e = rr * C + i;
				const double q = (double)(x[e] / s[rr]);
				const double g = q <= lo ? lo : q >= hi ? hi : rnd(q) - q;
				want[rr] += (double)r[e] * g;
				if (q > lo && q < hi)
					ste[rr] -= (double)r[e] * q;
				mask &= dx[e] == ((q > lo && q < hi) ? r[e] : 0.0f);
			}
			formula &= fabs(ds[rr] - want[rr]) <= 1e-5 * fabs(want[rr]) + 1e-6;
			{
				const double eps = 1e-3 * s[rr];
				const float sp = (float)(s[rr] + eps), sm = (float)(s[rr] - eps);
				fd = (lsq_loss(x + rr * C, r + rr * C, C, sp, lo, hi, y) -
				      lsq_loss(x + rr * C, r + rr * C, C, sm, lo, hi, y)) /
				     ((double)sp - (double)sm);
			}
			/* FD with rounding held fixed gives sum r round(q) inside and the
			 * bound outside; LSQ adds the STE term sum r (-q) inside */
			diag("LSQ row %d: ds %.7g, FD %.7g + STE %.7g = %.7g", rr, (double)ds[rr], fd,
			     ste[rr], fd + ste[rr]);
			numeric &= fabs(ds[rr] - (fd + ste[rr])) <= 1e-4 * (fabs(fd) + fabs(ste[rr]));
		}
		ok(mask, "LSQ: dx == dy [-Q_N < x/s < Q_P] exactly (strict)");
		ok(formula, "LSQ ds == sum dy {-Q_N | Q_P | round(v/s) - v/s} per row");
		ok(numeric, "LSQ ds == central difference in s (rounding fixed) + STE term, per row");
		{
			const float g = lb_quant_lsq_grad_scale(C, hi);
			lb_quant_lsq_backward(NULL, ds2, r, x, s, R, C, lo, hi, g);
			lb_quant_lsq_backward(NULL, ds2, r, x, s, R, C, lo, hi, g);
			is_near(ds2[1], 2.0 * g * want[1], 1e-5 * fabs(2.0 * g * want[1]),
				"LSQ ds scaled by g and accumulated twice");
		}
	}
	free(x);
	free(y);
	free(yr);
	free(y2);
	free(r);
	free(dx);
	free(dxr);
}

/* ---- SR + DR ---- */

static void test_sr(void)
{
	const size_t n = 20000;
	float *x = fnew(n), *y = fnew(n), *yr = fnew(n), *y2 = fnew(n), *dy = fnew(n), *dx = fnew(n),
	      *dxr = fnew(n), lv[300];
	struct lb_quant_key key = {SEED, 7, (5ULL << 40)};
	int twins = 1, det = 1, differ = 0, neigh = 1, idem = 1, count = 1, zero = 1;

	for (int b = 1; b <= 16; b++) {
		const int lo = -(1 << (b - 1)), hi = (1 << (b - 1)) - 1;
		float mx, zx = 0.0f, zy;
		int f;
		for (size_t i = 0; i < n; i++)
			x[i] = gauss((uint32_t)(120 + b), i) * 3.0f;
		mx = lb_quant_max_abs(x, n);
		f = lb_quant_dfp_frac_len(mx, b);
		fill_grid(x, n, ldexpf(1.0f, -f), lo, hi, (uint32_t)(140 + b), 0);
		for (size_t i = 0; i < n; i++) {
			dy[i] = unif(121, i, -1.0f, 1.0f);
			dx[i] = dxr[i] = unif(122, i, -1.0f, 1.0f);
		}
		key.step = 7;
		lb_quant_sr_forward(y, x, n, b, f, &key);
		lb_quant_sr_forward_ref(yr, x, n, b, f, &key);
		twins &= same(y, yr, n);
		lb_quant_sr_forward(y2, x, n, b, f, &key);
		det &= same(y, y2, n);
		for (size_t i = 0; i < n; i++) {
			const double q = ldexp(x[i], f), fl = floor(q);
			const double a = fmin(fmax(fl, lo), hi), c = fmin(fmax(fl + 1.0, lo), hi);
			const double m = ldexp(y[i], f);
			if (!(m == a || m == c) && neigh) {
				diag("b=%d f=%d x=%.9g y=%.9g (q=%.9g)", b, f, (double)x[i], (double)y[i], q);
				neigh = 0;
			}
		}
		if (b <= 8)
			count &= lb_quant_levels(lv, 300, y, n) <= (size_t)1 << b;
		key.step = 8;
		lb_quant_sr_forward(y2, y, n, b, f, &key);
		idem &= same(y, y2, n);
		lb_quant_sr_forward(y2, x, n, b, f, &key);
		differ += !same(y, y2, n);
		lb_quant_sr_forward(&zy, &zx, 1, b, f, &key);
		zero &= zy == 0.0f && !signbit(zy);
		for (int ste = 0; ste < 2; ste++) {
			lb_quant_sr_backward(dx, dy, x, n, b, f, ste);
			lb_quant_sr_backward_ref(dxr, dy, x, n, b, f, ste);
			twins &= same(dx, dxr, n);
		}
	}
	ok(twins, "SR forward and backward fast == ref, b=1..16");
	ok(det, "SR: same (seed, step, index) gives the same draws");
	ok(differ == 16, "SR: another step gives other draws (%d of 16)", differ);
	ok(neigh, "SR: every output is one of the two grid neighbours (clamped)");
	ok(idem, "SR: grid values stay put under re-quantization with new noise");
	ok(count, "SR: at most 2^b levels");
	ok(zero, "SR: 0 -> +0");
	{
		/* unbiased: mean over 20000 draws (different steps) of 8 values */
		enum { V = 8, D = 20000 };
		const int b = 6, f = 4; /* step 1/16, range [-2, 2) */
		int unbiased = 1;
		double worst = 0.0;
		float xv[V], yv[V];
		double sum[V] = {0};
		for (int v = 0; v < V; v++)
			xv[v] = unif(130, (uint64_t)v, -1.9f, 1.9f);
		xv[0] = 0.0625f * 3.0f + 0.0625f * 0.5f;
		for (uint32_t d = 0; d < D; d++) {
			struct lb_quant_key k2 = {SEED + 1, d, 0};
			lb_quant_sr_forward(yv, xv, V, b, f, &k2);
			for (int v = 0; v < V; v++)
				sum[v] += yv[v];
		}
		for (int v = 0; v < V; v++) {
			const double mean = sum[v] / D, q = ldexp(xv[v], f);
			const double p = q - floor(q);
			const double sd = 0.0625 * sqrt(p * (1.0 - p) / D);
			const double z = sd > 0.0 ? fabs(mean - xv[v]) / sd : fabs(mean - xv[v]) * 1e9;
			worst = fmax(worst, z);
			unbiased &= z < 4.5;
		}
		diag("SR bias: worst |mean - x| = %.2f standard errors", worst);
		ok(unbiased, "SR: mean of 20000 draws == x within 4.5 standard errors (8 values)");
	}
	free(x);
	free(y);
	free(yr);
	free(y2);
	free(dy);
	free(dx);
	free(dxr);
}

int main(void)
{
	test_round_ranges();
	test_calibration();
	test_percentile();
	test_levels_helper();
	test_metrics();
	test_uniform_twins();
	test_uniform_properties();
	test_uniform_rmse();
	test_uniform_ste();
	test_per_channel();
	test_tanh();
	test_dorefa_w();
	test_dorefa_w_grad();
	test_binary();
	test_dorefa_a_wrpn();
	test_pact();
	test_lsq();
	test_sr();
	return done_testing();
}
