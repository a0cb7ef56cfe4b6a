/* SPDX-License-Identifier: MIT
 * BSQ, bit-level sparsity quantization (Yang, Duan, Chen, Li; ICLR 2021):
 * weights held as continuous bit planes, the STE forward/backward, the
 * bit-level group-Lasso regulariser, the post-step clamp, periodic
 * re-quantization with precision adjustment, and the fine-tuning stage.
 * Kernels only: no model wiring. Math: shared/docs/methods.md section 5.
 *
 * Storage of one layer of n weights (fixed size, so that the model's one
 * parameter block never changes shape; "a shape change" is a change of N):
 *   P:(max_bits, n), Nn:(max_bits, n)  positive / negative bit planes; row i
 *       is bit i of the CURRENT precision N (i = 0 is the MSB). Rows i >= N
 *       are unused and kept at exactly 0 by every function here.
 *   step (one float)  d = s / (2^N - 1), the weight of one integer level. The
 *       paper's trainable scale s (= max |w_q|) is d (2^N - 1)
 *       (lb_bsq_scale); see "Why the step is stored" below.
 *   N (an int, 0..max_bits)  current bits. N = 0: the layer was removed (its
 *       weights are exactly 0).
 *   exps[i] = 2^(N-1-i) / (2^N - 1) (lb_bsq_exps); the kernels use the exact
 *   equivalent u = (2^N - 1) w^ = sum_i (P_i - Nn_i) 2^(N-1-i) (power-of-two
 *   weights: no rounding in the products).
 *
 * Forward (the one function used in training, after re-quantization and, via
 * lb_bsq_ft_*, in fine-tuning), M = 2^N - 1:
 *   u = sum_{i<N} (P_i - Nn_i) 2^(N-1-i)            (float, i = 0..N-1 in order)
 *   R = round(min(|u|, M))                          (half away from zero; = clip(w^,-1,1))
 *   w_q = d * R * sign(u)                           (+0 when R = 0; N = 0: w_q = 0)
 * which is s Q_N(clip(w^, -1, 1)) with s = d M, Q_N(v) = sign(v) round(|v| M) / M.
 *
 * Why the step is stored, not s: re-quantization and precision adjustment
 * rescale s by (2^N' - 1)/(2^N - 1) (times 2^k for k dropped LSBs) while the
 * integers stay (or shift by k). With s stored, no float s' reproduces the
 * old weights in general: x -> fl(x / M') skips floats (for M' = 3 about 1 in
 * 6 targets has no preimage), so no forward written in terms of (s, N, R) can
 * keep every weight bit-identical. In terms of d every rescale of section 5.4
 * is d' = d 2^k (exact), and w_q = fl(d R) is reproduced bit for bit.
 * Training d instead of s: w_q is linear in both, dL/dd = M dL/ds. The
 * backward adds grad_scale * dL/dd to *dstep; grad_scale = 1/M^2
 * (lb_bsq_step_grad_scale) makes SGD on d (momentum, Nesterov, weight decay
 * included) the same update as SGD on s (d_new M = s_new, in exact
 * arithmetic), which is what the reference trains. Adam is not invariant to
 * this change of variable (an Adam step on d moves s by about M times lr).
 *
 * Conventions shared by every kernel:
 * - Backward ACCUMULATES (+=) into every gradient; NULL means "not wanted".
 *   The step gradient is summed over the layer in double, element order, then
 *   added to the float *dstep.
 * - Nothing allocates. The backward recomputes u from the planes.
 * - Rounding half away from zero (lb_quant_round). The fast kernels and their
 *   *_ref twins (per-element scalar loops, independent double rounding) agree
 *   bit for bit, gradients included. NaN planes give NaN weights.
 * - 1 <= max_bits <= LB_BSQ_MAX_BITS, 0 <= N <= max_bits, d >= 0 (asserted,
 *   not rejected: validation belongs to the configuration). */
#ifndef LB_BSQ_H
#define LB_BSQ_H

#include <stddef.h>

#define LB_BSQ_MAX_BITS 16
#define LB_BSQ_EPS	1e-8 /* inside the group-Lasso sqrt (methods.md 5.7 pitfall 5) */

/* ---- helpers ---- */

/* M = 2^N - 1 (0 for N = 0). */
int lb_bsq_levels(int N);
/* exps:(N), exps[i] = 2^(N-1-i) / (2^N - 1) (float of the double quotient). */
void lb_bsq_exps(float *exps, int N);
/* s = d (2^N - 1) (0 for N = 0), and back: d = s / (2^N - 1) (N >= 1). */
float lb_bsq_scale(float step, int N);
float lb_bsq_step(float s, int N);
/* 1 / (2^N - 1)^2: the grad_scale that makes SGD on the step equal to SGD on
 * s (see above); 0 for N = 0. */
float lb_bsq_step_grad_scale(int N);

/* ---- conversion from float weights (ini2bit, methods.md 5.1) ----
 * S = max |w|, M = 2^N - 1, 1 <= N <= max_bits:
 *   R+ = round(fl(fl(max(w,0) M) / S)),  R- likewise from max(-w, 0)
 *   (the reference's (w * step) / S, clipped to M), binary MSB first into
 *   rows 0..N-1 of P (R+) and Nn (R-); rows N..max_bits-1 are zeroed;
 *   *step = fl(S / M), so lb_bsq_forward gives fl(d R) ~ S R / M.
 * All-zero w (S = 0; also S not finite): planes all 0, N unchanged, s = 1
 * (*step = 1/M), so the planes still get gradients (d > 0) and the layer can
 * learn; the reference returns without setting s. w:(n); P, Nn:(max_bits, n). */
void lb_bsq_convert(float *P, float *Nn, float *step, const float *w, size_t n, int N,
		    int max_bits);

/* ---- forward and STE backward (methods.md 5.2) ----
 * forward: w_q:(n) as in the header comment. N = 0 writes zeros.
 * backward (STE, NOT masked by the clip, as the reference bit_STE), g = dL/dw_q:
 *   dP_i  += 2^(N-1-i) d g  (= exps_i s g)     for i < N
 *   dNn_i -= 2^(N-1-i) d g
 *   *dstep += grad_scale sum_e g_e R_e sign(u_e)   (dL/dd = M dL/ds,
 *             dL/ds = sum g Q_N(clip w^))
 * N = 0: nothing is added (no plane or step gradients). Rows >= N untouched.
 * P, Nn, dP, dNn: (max_bits, n) (only rows < N read/written); w_q, dwq: (n). */
void lb_bsq_forward(float *wq, const float *P, const float *Nn, float step, size_t n, int N);
void lb_bsq_backward(float *dP, float *dNn, float *dstep, const float *dwq, const float *P,
		     const float *Nn, float step, size_t n, int N, float grad_scale);
void lb_bsq_forward_ref(float *wq, const float *P, const float *Nn, float step, size_t n, int N);
void lb_bsq_backward_ref(float *dP, float *dNn, float *dstep, const float *dwq, const float *P,
			 const float *Nn, float step, size_t n, int N, float grad_scale);

/* ---- bit-level group Lasso (methods.md 5.3) ----
 * Returns c sum_{i<N} norm_i, norm_i = sqrt(sum_e (P_ie^2 + Nn_ie^2) + 1e-8)
 * (double sums), and adds dP_ie += c P_ie / norm_i, dNn_ie += c Nn_ie / norm_i
 * (dP/dNn NULL: value only). The caller passes the layer weight, e.g.
 * c = alpha / TP * #W_l * N_l (memory re-weighting) or alpha / TP * #W_l.
 * N = 0 returns 0 and adds nothing. */
double lb_bsq_group_lasso(float *dP, float *dNn, const float *P, const float *Nn, size_t n, int N,
			  double c);

/* ---- fused training-step kernels ----
 * Forward, STE backward and group Lasso in two passes over the planes instead
 * of four (lb_bsq_forward, lb_bsq_backward, lb_bsq_group_lasso's two), with
 * vectorised loops: about 13 ns per weight instead of about 49 for an 8-bit
 * layer of 524288 weights (bench_fused in tests/unit/test_bsq.c).
 * forward_norms: w_q:(n) bit for bit as lb_bsq_forward, and, in the same
 *   pass, sumsq:(N) (double), sumsq[i] = sum_e (P_ie^2 + Nn_ie^2): the group
 *   Lasso's squared plane norms without the 1e-8 (sumsq NULL: forward only).
 *   The sums are taken in a different order than lb_bsq_group_lasso's (a few
 *   ulp of a double apart).
 * backward_gl: lb_bsq_backward followed by lb_bsq_group_lasso(dP, dNn, P, Nn,
 *   n, N, c) in one pass, the norms from sumsq (norm_i = sqrt(sumsq[i] +
 *   LB_BSQ_EPS)), so the planes must not have changed since forward_norms.
 *   Returns c sum_{i<N} norm_i. Each plane gradient gets the same two float
 *   additions in the same order: dP += fl(c_i g) then dP += (float)(k_i P)
 *   with k_i = c / norm_i (double), so given the same sumsq the plane
 *   gradients and the value equal the two-call sequence bit for bit; the
 *   step gradient's double sum is taken in another order (within 1 float
 *   rounding of the two-call value). c = 0: the plain STE backward, value 0,
 *   sumsq not read (may be NULL). N = 0: nothing added, 0 returned.
 * Shapes and NULL conventions as lb_bsq_forward / lb_bsq_backward; 32 KiB of
 * stack. */
void lb_bsq_forward_norms(float *wq, double *sumsq, const float *P, const float *Nn, float step,
			  size_t n, int N);
double lb_bsq_backward_gl(float *dP, float *dNn, float *dstep, const float *dwq, const float *P,
			  const float *Nn, float step, size_t n, int N, float grad_scale, double c,
			  const double *sumsq);

/* lb_bsq_backward_gl for plane gradients that hold 0 (the trainer's zeroed
 * gradient), without reading them: rows < N are written, rows N..max_bits-1
 * set to 0 (all rows for N = 0); the step gradient still accumulates. The
 * same bits as zeroing dP, dNn and calling lb_bsq_backward_gl (the same
 * additions onto 0.0f), one pass less over the planes' gradient, and the
 * trainer skips zeroing them (LB_PARAM_GRAD_SET). dP, dNn, dstep: not NULL. */
double lb_bsq_backward_gl_set(float *dP, float *dNn, float *dstep, const float *dwq,
			      const float *P, const float *Nn, float step, size_t n, int N,
			      int max_bits, float grad_scale, double c, const double *sumsq);

/* ---- per-plane density ----
 * nz:(N), nz[i] = (number of elements whose forward integer R (above: the
 * clipped, rounded |u|) has bit N-1-i set) / n, i.e. the fraction of non-zero
 * entries of plane i of (P - Nn) after re-quantization without growth. After
 * lb_bsq_requantize (binary planes, at most one of P, Nn set) this is exactly
 * the reference's count_nonzero(P_i - Nn_i) / n (as a fraction, not %). */
void lb_bsq_density(double *nz, const float *P, const float *Nn, size_t n, int N);

/* ---- clamp after an optimizer step (methods.md 5.2) ----
 * Rows i < N to [0, 2] (NaN -> 0); rows N..max_bits-1 set to 0 (they should
 * be 0 already; weight decay keeps 0, stale momentum would not). */
void lb_bsq_clamp(float *P, float *Nn, size_t n, int N, int max_bits);
/* Only the second half: rows N..max_bits-1 set to 0. The trainer's optimizer
 * clamps the planes to [0, 2] in its update (LB_PARAM_CLAMP, the same values
 * as lb_bsq_clamp's first half) and then calls this. */
void lb_bsq_clear_unused(float *P, float *Nn, size_t n, int N, int max_bits);

/* ---- re-quantization and precision adjustment (methods.md 5.4) ----
 * What a call did. The return value of the functions below is
 * (N_after != N_before): the caller then resets the optimizer moments of
 * this layer's planes and step (the reference re-creates the optimizer after
 * every re-quantization, so it resets all moments whatever this says). */
struct lb_bsq_change {
	int N_before, N_after;
	int grew;	 /* (a): an element exceeded 2^N - 1 with N < max_bits: N + 1 */
	size_t clipped;	 /* (a): elements clipped to 2^N - 1 (N == max_bits) */
	int msb_dropped; /* (b): all-zero MSBs removed */
	int msb_folded;	 /* (b): sparse MSBs folded (thre > 0 only) */
	int lsb_dropped; /* (b): LSBs removed, d doubled for each */
	int zeroed;	 /* (b): a 1-bit all-zero layer became N = 0 */
};

/* (a) quant(maxbit = max_bits). R = round(|u|) (u as in the forward, NOT
 * clipped), sign from u. N == max_bits: R = min(R, M). Else if max R > M:
 * N <- N + 1 (R <= 2M < 2^(N+1) - 1 while the planes are in [0, 2]; larger R
 * is clipped to the new maximum). Then R is written back in binary, MSB
 * first, into P (u > 0) or Nn, rows >= N zeroed. d is unchanged (s' = s
 * (2^N'-1)/(2^N-1) in the reference: the same weight per level).
 * Effect on w_q: unchanged bit for bit for every element with round(|u|) <= M;
 * when N grew, the overflowing elements, which the forward clipped to d M,
 * take their unclipped value d round(|u|) (the reference's "overflow is
 * absorbed by adding a bit"). N = 0: planes zeroed, nothing else. ch may be
 * NULL. */
int lb_bsq_requantize(float *P, float *Nn, int *N, size_t n, int max_bits,
		      struct lb_bsq_change *ch);

/* (b) pruning(threshold = thre), for N > 1, on the forward integers R (so the
 * planes need not be binary; after (a) they are). cnt_i = elements with bit
 * i set; thre is a FRACTION of n (the reference's percentage / 100):
 *   MSB side, repeatedly on the current top bit: cnt == 0: drop it (N - 1);
 *     0 < cnt < thre n: fold it, i.e. drop it and saturate the elements that
 *     had it to all ones in the N-1 remaining bits (the reference's
 *     min(P_{i+1..} + P_i, 1)); else stop. Also stop at N == 1.
 *   LSB side, on the current bottom bit: cnt <= thre n: drop it (R >> 1,
 *     N - 1, d <- 2d); else stop. Also stop at N == 1.
 *   A layer ending at N == 1 with all R == 0 (also N == 1 on entry) becomes
 *   N = 0: weights exactly 0, no plane/step gradients; d is kept.
 * The planes are rewritten in binary (MSB first, rows >= N zeroed).
 * With thre = 0 only all-zero bits are dropped and w_q is unchanged bit for
 * bit (d R is the same real number: R' = R >> k, d' = d 2^k).
 * Deviation: the reference decides the MSB side on counts taken before any
 * fold and folds each MSB into the ORIGINAL lower planes (a second fold
 * undoes the saturation of the first); here counts are retaken after each
 * fold and folds compose. Irrelevant at thre = 0 (all README runs). */
int lb_bsq_adjust(float *P, float *Nn, float *step, int *N, size_t n, int max_bits, double thre,
		  struct lb_bsq_change *ch);

/* (a) then (b): what the reference runs every Prun_Int epochs and at the end. */
int lb_bsq_requant_adjust(float *P, float *Nn, float *step, int *N, size_t n, int max_bits,
			  double thre, struct lb_bsq_change *ch);

/* ---- fine-tuning with the scheme fixed (methods.md 5.5) ----
 * The layer's weights become a float tensor w^:(n) (same step d, same N):
 *   R = round(min(fl(|w^| M), M)),  w_q = d R sign(w^)  (+0 when R = 0; N = 0: 0)
 * i.e. s Q_N(clip(w^, -1, 1)) as the reference's fine-tune forward.
 * backward (STE, not masked by the clip): dw^ += s g with s = fl(d M);
 *   *dstep += grad_scale sum_e g_e R_e sign(w^_e). N = 0: nothing added.
 * lb_bsq_to_ft: w^_e = fl(r_e / M), r_e = the signed forward integer of the
 * planes, so lb_bsq_ft_forward(w^) == lb_bsq_forward(P, Nn) bit for bit
 * (fl(fl(r/M) M) rounds back to r, |r/M| <= 1); after re-quantization this is
 * the plane sum sum (P_i - Nn_i) exps_i. N = 0: w^ = 0.
 * lb_bsq_ft_clamp: w^ to [-1, 1] after each step (NaN -> 0). */
void lb_bsq_to_ft(float *what, const float *P, const float *Nn, size_t n, int N);
void lb_bsq_ft_forward(float *wq, const float *what, float step, size_t n, int N);
void lb_bsq_ft_backward(float *dwhat, float *dstep, const float *dwq, const float *what, float step,
			size_t n, int N, float grad_scale);
void lb_bsq_ft_forward_ref(float *wq, const float *what, float step, size_t n, int N);
void lb_bsq_ft_backward_ref(float *dwhat, float *dstep, const float *dwq, const float *what,
			    float step, size_t n, int N, float grad_scale);
void lb_bsq_ft_clamp(float *what, size_t n);

#endif
