/* SPDX-License-Identifier: MIT
 * Baseline quantizer kernels (fake-quantize forward, estimator backward):
 * uniform symmetric/asymmetric with plain or clipped STE, DoReFa weights
 * (k >= 2 and 1-bit) and activations, WRPN, PACT, LSQ, stochastic rounding
 * with dynamic fixed point (SR+DR); range/scale helpers, a level report and
 * the size/BOPs metrics. Math: shared/docs/methods.md section 6; what is
 * implemented, with every convention and switch: docs/methods/baselines.md.
 *
 * Invariants shared by every kernel here:
 * - Rounding is half away from zero (C roundf), applied to the grid
 *   coordinate q computed in float exactly as each block below writes it
 *   (q = fl(x / s) for the scaled quantizers). NaN inputs map to the lowest
 *   level. Outputs are therefore deterministic bit for bit.
 * - Weight tensors are (C_out, rest) row-major: "rows, cols" below with
 *   rows = C_out for per-output-channel scales, rows = 1 for per-tensor.
 *   Activations (NHWC) are per-tensor: rows = 1, cols = n.
 * - Integer grids are [lo, hi] (lo = -Q_N, hi = Q_P); see lb_quant_range_*.
 * - Backward ACCUMULATES (+=) into every gradient it writes; NULL means "not
 *   wanted". Learned-parameter gradients (PACT alpha, LSQ step) are summed
 *   over their elements in double, then added to the float gradient.
 * - Nothing allocates. Backward recomputes what it needs from x and the
 *   parameters (a rounding or a tanh), so no cache is required.
 * - Bits are runtime values; kernels assert their preconditions (1 <= bits
 *   <= LB_QUANT_MAX_BITS, positive scales) but reject nothing: validation
 *   belongs to the configuration.
 * - Every kernel has a *_ref twin: a literal scalar transcription of the
 *   formula with an independent rounding routine (double floor), per-element
 *   branches and per-element row lookup. The fast kernels hoist constants and
 *   use branch-free clamps. Twins agree bit for bit, gradients included
 *   (sums run in the same order in double); DoReFa weights excepted (their
 *   fast tanh, see there).
 * - Randomness (stochastic rounding) is a pure function of (seed, step,
 *   element index) through core/rng.h with purpose LB_RNG_QNOISE. */
#ifndef LB_QUANT_H
#define LB_QUANT_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define LB_QUANT_MAX_BITS 16

/* Straight-through estimator used by backward kernels that offer a choice. */
enum lb_quant_ste {
	LB_QUANT_STE_PLAIN = 0,   /* dx += dy everywhere */
	LB_QUANT_STE_CLIPPED = 1  /* dx += dy inside the clipping range only */
};

/* ---- rounding and integer grids ---- */

/* Round half away from zero (the rounding every kernel uses). */
float lb_quant_round(float q);
/* The body of lb_quant_round, inlined where it runs once per element
 * (uniform.c, bsq.c). C roundf: halfway cases away from zero; + 0 turns a
 * -0 result into +0 so that outputs never carry a negative zero. Bit for bit
 * roundf(q) + 0.0f without the libm call (baseline x86-64 has no rounding
 * instruction):
 * |q| >= 2^23, inf and NaN are returned as they are (already integers); else
 * truncate |q| and add 1 when the dropped fraction (exact) is >= 1/2. */
static inline float lb_quant_round_inline(float q)
{
	const float a = fabsf(q);
	float t;
	if (!(a < 8388608.0f))
		return q + 0.0f;
	t = (float)(int32_t)a;
	t += (float)(a - t >= 0.5f); /* branch-free: signs and fractions are random */
	return copysignf(t, q) + 0.0f;
}

/* Signed grid of b bits: full range [-2^(b-1), 2^(b-1)-1] (b >= 1), or
 * narrow range [-(2^(b-1)-1), 2^(b-1)-1] (b >= 2). [out] *lo, *hi */
void lb_quant_range_signed(int *lo, int *hi, int bits, int narrow);
/* Unsigned grid of b bits: [0, 2^b - 1]. [out] *lo, *hi */
void lb_quant_range_unsigned(int *lo, int *hi, int bits);

/* t:(n) = tanh(x:(n)) in float, vectorised (blocks of 256 that -O2 takes;
 * libm tanhf is a scalar call): within 4 ulp of tanh (tests/unit/test_quant.c
 * measures ~2.4), +-inf -> +-1, NaN -> NaN, +-0 -> +-0. t == x allowed, no
 * partial overlap. The tanh of the DoReFa weight kernels and of WaveQ. */
void lb_quant_tanh(float *t, const float *x, size_t n);

/* ---- range and scale helpers (calibration) ---- */

/* min and max of x:(n), n >= 1. [out] *mn, *mx */
void lb_quant_minmax(float *mn, float *mx, const float *x, size_t n);
/* max |x| of x:(n) (0 for n == 0). */
float lb_quant_max_abs(const float *x, size_t n);
/* Per-row (per-output-channel) max |x|: out:(rows), x:(rows, cols). */
void lb_quant_max_abs_rows(float *out, const float *x, int rows, size_t cols);
/* Per-row mean |x| in double: out:(rows), x:(rows, cols). */
void lb_quant_mean_abs_rows(float *out, const float *x, int rows, size_t cols);
/* p-th percentile of |x| by the nearest-rank rule: the k-th smallest |x| with
 * k = ceil(p n / 100) (in double) clamped to [1, n]; 0 < p <= 100, n >= 1,
 * no NaN. Exact, O(n), no allocation: three radix-select passes over the
 * bit patterns of |x| (2048 counters on the stack). */
float lb_quant_percentile_abs(const float *x, size_t n, double p);
/* Twin: copy |x| into work:(n) (caller's), heap-sort it, index it. */
float lb_quant_percentile_abs_ref(float *work, const float *x, size_t n, double p);
/* Symmetric min-max scales s[r] = max_abs[r] / hi (hi >= 1; 1 when
 * max_abs[r] <= 0). s, max_abs:(rows); s may alias max_abs. */
void lb_quant_scale_sym(float *s, const float *max_abs, int rows, int hi);
/* Asymmetric b-bit range: the range is widened to contain 0 (m = min(mn, 0),
 * M = max(mx, 0)); s = (M - m)/(2^b - 1), z = round(-m/s) in [0, 2^b - 1], so
 * 0 is exactly representable. s = 1, z = 0 when M == m. [out] *s, *z */
void lb_quant_scale_asym(float *s, int32_t *z, float mn, float mx, int bits);
/* LSQ step init 2 mean|x| / sqrt(Q_P) (mean in double); Q_P >= 1. */
float lb_quant_lsq_init(const float *x, size_t n, int Q_P);
/* LSQ gradient scale 1/sqrt(n Q_P): n = #weights of the layer, or #features
 * per sample for activations. */
float lb_quant_lsq_grad_scale(size_t n, int Q_P);
/* Dynamic fixed point: fractional length f = b - 1 - ceil(log2 max_abs)
 * (exact, via frexp), step 2^-f. max_abs <= 0 or not finite gives b - 1.
 * Clamped to [-120, 120] so 2^f is a normal float. */
int lb_quant_dfp_frac_len(float max_abs, int bits);

/* ---- uniform (methods.md 6.1) ----
 * q = fl(x / s_r);  m = clamp(round(q) + z_r, lo, hi);  y = s_r (m - z_r)
 * Symmetric: z = NULL (all zero), [lo, hi] from lb_quant_range_signed;
 * post-ReLU unsigned: z = NULL, lb_quant_range_unsigned; asymmetric: z from
 * lb_quant_scale_asym with the unsigned grid. Row r of x:(rows, cols) uses
 * s[r] (> 0) and z[r]; rows = 1 is per-tensor.
 * backward: dx += dy                                       (PLAIN)
 *           dx += dy [lo - z_r <= q <= hi - z_r]           (CLIPPED)
 * s is a constant here (for a learned step use LSQ). */
void lb_quant_uniform_forward(float *y, const float *x, const float *s, const int32_t *z,
			      int rows, size_t cols, int lo, int hi);
void lb_quant_uniform_backward(float *dx, const float *dy, const float *x, const float *s,
			       const int32_t *z, int rows, size_t cols, int lo, int hi, int ste);
void lb_quant_uniform_forward_ref(float *y, const float *x, const float *s, const int32_t *z,
				  int rows, size_t cols, int lo, int hi);
void lb_quant_uniform_backward_ref(float *dx, const float *dy, const float *x, const float *s,
				   const int32_t *z, int rows, size_t cols, int lo, int hi,
				   int ste);

/* ---- DoReFa (methods.md 6.2) ----
 * Weights, k >= 2, n = 2^k - 1, M = lb_quant_dorefa_w_max(w) (per layer):
 *   t = tanh(w);  v = t / (2M) + 1/2;  m = clamp(round(v n), 0, n);
 *   y = (2m - n) / n           (the float nearest the level, computed once)
 * backward, M constant (through_max = 0):  dw += dy (1 - t^2) / M
 * through_max = 1 also differentiates M = |t_j| (j = first index of the
 * max): dw_j += sign(t_j)(1 - t_j^2) sum_i dy_i (-t_i / M^2), the autograd
 * behaviour of implementations that do not detach M.
 * w, y, dw, dy: (n); y may be w, dw may be w or dy, no partial overlap.
 * The fast kernels take t from lb_quant_tanh, in blocks of 256 on the stack
 * (the backward recomputes it; nothing allocates), and sum dy_i t_i in 8
 * double lanes; M = max of those t, so |v - 1/2| <= 1/2 exactly. The twins
 * use libm tanhf and a sequential sum, so unlike the rest of this file they
 * are not bit for bit equal: t differs by a few ulp, which moves the forward
 * by one level only where v n lies that close to a rounding boundary, and
 * the backward by a few float ulps of its scale |dy|/M (tests/unit/test_quant.c
 * bounds both). Cost (1.6M weights, LeNet-5 fc1, -O2 x86-64 baseline, ns per
 * element): max 1.9, forward 2.5, backward 2.0 (2.4 through_max); with libm
 * tanhf they were 9.7, 14.5, 9.2 (18.3). */
float lb_quant_dorefa_w_max(const float *w, size_t n); /* max|tanh w|, 1 if that is 0 */
void lb_quant_dorefa_w_forward(float *y, const float *w, size_t n, int bits, float M);
void lb_quant_dorefa_w_backward(float *dw, const float *dy, const float *w, size_t n, float M,
				int through_max);
void lb_quant_dorefa_w_forward_ref(float *y, const float *w, size_t n, int bits, float M);
void lb_quant_dorefa_w_backward_ref(float *dw, const float *dy, const float *w, size_t n,
				    float M, int through_max);
/* 1-bit weights: y = E_r sign(w) with sign(+-0) = +1 (two levels always; NaN -> -E),
 * E_r = mean|w| of row r (lb_quant_mean_abs_rows; rows = 1 per-tensor).
 * backward: plain STE, dw += dy (E treated as constant). */
void lb_quant_binary_forward(float *y, const float *w, const float *E, int rows, size_t cols);
void lb_quant_binary_backward(float *dw, const float *dy, size_t n);
void lb_quant_binary_forward_ref(float *y, const float *w, const float *E, int rows,
				 size_t cols);
void lb_quant_binary_backward_ref(float *dw, const float *dy, size_t n);
/* Activations (also WRPN's, Distiller clip-to-[0,1]), k >= 1, n = 2^k - 1:
 *   c = clamp(a, 0, 1);  m = round(c n);  y = m / n
 * backward: dx += dy [0 <= a <= 1]. x, y, dx, dy: (n). */
void lb_quant_dorefa_a_forward(float *y, const float *x, size_t n, int bits);
void lb_quant_dorefa_a_backward(float *dx, const float *dy, const float *x, size_t n);
void lb_quant_dorefa_a_forward_ref(float *y, const float *x, size_t n, int bits);
void lb_quant_dorefa_a_backward_ref(float *dx, const float *dy, const float *x, size_t n);

/* ---- WRPN weights (methods.md 6.3, Distiller) ----
 * k >= 2, Q = 2^(k-1) - 1:  c = clamp(w, -1, 1);  y = round(c Q) / Q
 * backward: dw += dy [-1 <= w <= 1] (STE through the rounding, the clamp
 * zeroes the rest). Activations: lb_quant_dorefa_a_*. */
void lb_quant_wrpn_w_forward(float *y, const float *w, size_t n, int bits);
void lb_quant_wrpn_w_backward(float *dw, const float *dy, const float *w, size_t n);
void lb_quant_wrpn_w_forward_ref(float *y, const float *w, size_t n, int bits);
void lb_quant_wrpn_w_backward_ref(float *dw, const float *dy, const float *w, size_t n);

/* ---- PACT activations (methods.md 6.4) ----
 * k >= 1, n = 2^k - 1, alpha > 0 learned, step s = fl(alpha / n):
 *   c = clamp(x, 0, alpha);  m = clamp(round(c / s), 0, n);  y = m s
 * backward: dx += dy [0 <= x < alpha]
 *   PAPER: dalpha += sum dy [x >= alpha]
 *   LSQ:   dalpha += sum dy ([x >= alpha] + [0 <= x < alpha] (y - c) / alpha)
 *          (the LSQ-style derivative of s round(c/s) with STE rounding)
 * The L2 penalty on alpha is the optimizer's weight decay, not done here. */
enum lb_quant_pact_grad {
	LB_QUANT_PACT_PAPER = 0,
	LB_QUANT_PACT_LSQ = 1
};
void lb_quant_pact_forward(float *y, const float *x, size_t n, int bits, float alpha);
void lb_quant_pact_backward(float *dx, float *dalpha, const float *dy, const float *x, size_t n,
			    int bits, float alpha, int grad);
void lb_quant_pact_forward_ref(float *y, const float *x, size_t n, int bits, float alpha);
void lb_quant_pact_backward_ref(float *dx, float *dalpha, const float *dy, const float *x,
				size_t n, int bits, float alpha, int grad);

/* ---- LSQ (methods.md 6.5) ----
 * Learned step s_r > 0 per row (rows = 1: per tensor), grid [lo, hi] =
 * [-Q_N, Q_P] (weights: lb_quant_range_signed full range; activations:
 * lb_quant_range_unsigned). q = fl(x / s_r):
 *   forward: y = s_r clamp(round(q), lo, hi)   (== lb_quant_uniform_forward)
 *   dx += dy [lo < q < hi]                     (strict, as the paper)
 *   ds_r += g sum_row dy * { lo if q <= lo;  hi if q >= hi;  round(q) - q }
 * with g = grad_scale (lb_quant_lsq_grad_scale, or 1). s, ds: (rows). */
void lb_quant_lsq_forward(float *y, const float *x, const float *s, int rows, size_t cols,
			  int lo, int hi);
void lb_quant_lsq_backward(float *dx, float *ds, const float *dy, const float *x,
			   const float *s, int rows, size_t cols, int lo, int hi,
			   float grad_scale);
void lb_quant_lsq_forward_ref(float *y, const float *x, const float *s, int rows, size_t cols,
			      int lo, int hi);
void lb_quant_lsq_backward_ref(float *dx, float *ds, const float *dy, const float *x,
			       const float *s, int rows, size_t cols, int lo, int hi,
			       float grad_scale);

/* ---- SR + DR: stochastic rounding on a dynamic fixed-point grid (6.7) ----
 * Step 2^-f (f = lb_quant_dfp_frac_len), signed b-bit grid [-2^(b-1), 2^(b-1)-1]:
 *   q = x 2^f (exact);  m = clamp(floor(q) + [u_e < q - floor(q)], lo, hi);
 *   y = m 2^-f,  u_e = lb_rng_uniform(key.seed, LB_RNG_QNOISE, key.step, key.base + e)
 * so y is one of the two grid neighbours of x, E[y] = x inside the range (to
 * the 2^-24 resolution of u), and values on the grid stay put.
 * backward: PLAIN dx += dy, or CLIPPED dx += dy [lo <= q <= hi].
 * Suggested key.base: (tensor_id << 40) | global index of element 0 (the RQ
 * kernels use ((base + e) << 6) | block on the same purpose: give a tensor
 * one quantizer per run). */
struct lb_quant_key {
	uint64_t seed;
	uint32_t step; /* global step: the rng epoch field */
	uint64_t base;
};
void lb_quant_sr_forward(float *y, const float *x, size_t n, int bits, int frac_len,
			 const struct lb_quant_key *key);
void lb_quant_sr_backward(float *dx, const float *dy, const float *x, size_t n, int bits,
			  int frac_len, int ste);
void lb_quant_sr_forward_ref(float *y, const float *x, size_t n, int bits, int frac_len,
			     const struct lb_quant_key *key);
void lb_quant_sr_backward_ref(float *dx, const float *dy, const float *x, size_t n, int bits,
			      int frac_len, int ste);

/* ---- level report ----
 * The distinct values of x:(n) in ascending order (+0 and -0 are one value,
 * NaN is skipped) into levels[0 .. min(count, cap)); returns count, or cap + 1
 * as soon as more than cap distinct values are seen. O(n log cap) plus
 * O(cap) per new level; levels:(cap) is the caller's. */
size_t lb_quant_levels(float *levels, size_t cap, const float *x, size_t n);

/* ---- metrics (methods.md 6.8), over per-layer records ----
 * Weights-only sums over the n layers given (pass the quantized ones). */
struct lb_quant_layer {
	double params; /* #W_l */
	double macs;   /* multiply-accumulates per sample */
	int w_bits, a_bits;
};
/* sum #W b_w / sum #W (0 when there are no parameters) */
double lb_quant_avg_bits(const struct lb_quant_layer *l, int n);
/* 32 sum #W / sum #W b_w */
double lb_quant_compression(const struct lb_quant_layer *l, int n);
/* weight storage in bytes, sum #W b_w / 8 (no per-layer padding) */
double lb_quant_size_bytes(const struct lb_quant_layer *l, int n);
/* BOPs = sum MACs b_w b_a (Baskin et al. without accumulator terms) */
double lb_quant_bops(const struct lb_quant_layer *l, int n);

#endif
