/* SPDX-License-Identifier: MIT
 * WaveQ (Elthakeb et al., arXiv 2003.00146): a sinusoidal regularizer whose
 * period is a learned, continuous per-layer bit-width beta. Kernels only (no
 * model wiring): the regularizer value and its gradients with respect to the
 * weights and beta, the two lambda schedules of the released code and the
 * beta -> integer bits rule. Math: shared/docs/methods.md section 4.
 *
 * The sinusoid is applied to exactly the value the base quantizer rounds
 * (methods.md 4.5 pitfall 3), u_j = u(w_j), with an alignment:
 *   DoReFa (6.2): u = tanh(w) / M, M = max|tanh w| of the layer
 *                 (lb_quant_dorefa_w_max), held constant like
 *                 lb_quant_dorefa_w_backward; du/dw = (1 - tanh^2 w) / M.
 *                 kappa = 1/2, c = 1/2 (shift = step/2).
 *   WRPN   (6.3): u = clamp(w, -1, 1) (NaN -> -1, as the quantizer);
 *                 du/dw = [-1 <= w <= 1]. kappa = 1, c = 0 (no shift).
 * With a = 2^beta:
 *   step  = 1 / (a - kappa),  shift = c step,  A = 2^-beta (amplitude on) or 1
 *   theta_j = pi (u_j + shift) / step = pi ((a - kappa) u_j + c)
 *   R = (A / N) sum_j sin^2(theta_j)
 *   dR/dw_j = (A / N) pi (a - kappa) sin(2 theta_j) du_j/dw_j
 *   dR/dbeta = (A / N) pi a ln2 sum_j u_j sin(2 theta_j)  -  [amplitude] ln2 R
 *            = (pi ln2 / N) sum_j u_j sin(2 theta_j) - ln2 R      (amplitude on)
 *            = (pi a ln2 / N) sum_j u_j sin(2 theta_j)            (amplitude off)
 * (shift/step = c does not depend on beta, so the shift drops out of
 * dtheta/dbeta = pi a ln2 u_j; the clamp does not zero the beta term: a
 * clamped u = +-1 still moves relative to the grid.)
 *
 * DoReFa check: with v = t/(2M) + 1/2 (what lb_quant_dorefa_w_forward rounds
 * after scaling by n' = 2^(beta+1) - 1), (a - 1/2) u + 1/2 = n' v - (n' - 1)/2,
 * i.e. theta/pi is the quantizer's grid coordinate up to an integer.
 *
 * Bits: beta counts magnitude bits (the code's B). The zeros of sin^2 are, at
 * beta = k - 1, exactly the k-bit grid of the base quantizer: DoReFa levels
 * (2i - (2^k - 1)) / (2^k - 1) (odd multiples of 1/(2^k - 1)), WRPN levels
 * i / (2^(k-1) - 1). Real bits = magnitude bits + the sign bit: k = beta + 1.
 *
 * Conventions: N = n (the mean over the layer); n = 0 gives R = 0 and no
 * gradient. Backward ACCUMULATES: dw += coef dR/dw, *dbeta += coef dR/dbeta
 * (double); NULL means "not wanted". Nothing allocates. Preconditions
 * (asserted): a - kappa > 0, beta <= LB_WAVEQ_MAX_BETA, M > 0 for DoReFa;
 * |u| <= 1 is assumed (M >= max|tanh w|); M is ignored for WRPN.
 *
 * Every kernel has a *_ref twin: the literal formulas above in double
 * (tanh in double, step and shift computed from beta as written, libm sin).
 * The fast kernels work in float, in blocks of 256 that -O2 vectorises: tanh
 * is lb_quant_tanh (quant.h), theta is reduced to pi r, |r| <= 1/2, and
 * sin(pi r), cos(pi r) are polynomials; sums run in double over 8 fixed lanes
 * (deterministic, independent of the ISA). They agree with the twins within
 * LB_WAVEQ_TOL (below). Cost (test_waveq diagnostics, 1.6M weights, -O2
 * x86-64 baseline): DoReFa ~2.9 ns/element forward, ~3.8 backward (R, dw and
 * dbeta in one pass); WRPN ~1.2 and ~2.1. */
#ifndef LB_WAVEQ_H
#define LB_WAVEQ_H

#include <stddef.h>

/* Largest beta accepted: 2^beta u stays far below 2^22 (the float range
 * reduction of the fast path). */
#define LB_WAVEQ_MAX_BETA 16.0f

/* Fast vs *_ref, with tol = LB_WAVEQ_TOL max(1, 2^beta), each error against
 * its natural scale:
 *   |R - R_ref| <= tol A
 *   max_j |dw_j - dw_ref_j| <= tol (A/N) pi 2^beta max(du/dw)   (max du/dw = 1/M or 1)
 *   |dbeta - dbeta_ref| <= tol A ln2 (pi 2^beta mean|u| + 1)
 * The float coordinate (2^beta - kappa) u carries an absolute error ~ 2^beta
 * times a few float ulps (the vectorised tanh, the products), which the
 * sinusoid passes on. Measured in tests/unit/test_waveq.c (252 cases, beta 0.6
 * to 16): <= 6.4e-7 (dw, DoReFa), <= 2.5e-7 (dbeta), <= 8e-8 (R). */
#define LB_WAVEQ_TOL 2e-6

enum lb_waveq_align {
	LB_WAVEQ_DOREFA = 0, /* u = tanh(w)/M, step = 1/(2^beta - 1/2), shift = step/2 */
	LB_WAVEQ_WRPN = 1    /* u = clamp(w, -1, 1), step = 1/(2^beta - 1), shift = 0 */
};

/* step and shift of the alignment at beta (in double, as the twins use them). */
double lb_waveq_step(float beta, enum lb_waveq_align al);
double lb_waveq_shift(float beta, enum lb_waveq_align al);

/* R_l of w:(n) (see above). amplitude: 1 = A = 2^-beta (the paper form,
 * sinareq_code.py), 0 = A = 1 (the CIFAR training script). */
double lb_waveq_forward(const float *w, size_t n, float beta, enum lb_waveq_align al, int amplitude,
			float M);
/* dw:(n) += coef dR/dw (NULL: skip), *dbeta += coef dR/dbeta (NULL: skip).
 * Returns R_l, bit for bit what lb_waveq_forward returns for the same inputs
 * (one pass gives the loss term and the gradients). */
double lb_waveq_backward(float *dw, double *dbeta, const float *w, size_t n, float beta,
			 enum lb_waveq_align al, int amplitude, float M, float coef);
double lb_waveq_forward_ref(const float *w, size_t n, float beta, enum lb_waveq_align al,
			    int amplitude, float M);
double lb_waveq_backward_ref(float *dw, double *dbeta, const float *w, size_t n, float beta,
			     enum lb_waveq_align al, int amplitude, float M, float coef);

/* ---- lambda schedules (methods.md 4.1) ----
 * Factors in [0, 1]; the caller multiplies by its lambda_q max and lambda_f
 * (lambda_beta) max. Time t in epochs, fractional allowed:
 * t = epoch + step / steps_per_epoch.
 *   CONST: lambda_q = 1, lambda_beta = 1.
 *   STEP  ("step-like", the CIFAR training script): lambda_q = (1 + tanh((t - r)/s)) / 2,
 *         lambda_beta = 1. The code uses r = 0.2 total, s = 20 epochs; s > 0.
 *   PAPER ("paper-figure", lambda_plot.py), T = total > 0, t clamped to [0, T],
 *         x = 3 pi (t - T/2) / T:
 *         lambda_q = (tanh(x) + tanh(3 pi / 2)) / 2   (0 at t = 0, tanh(3 pi/2) ~ 0.99984 at T)
 *         lambda_beta = sech(x)                        (1 at T/2, sech(3 pi/2) ~ 0.018 at 0 and T)
 * Arguments a kind does not use are ignored. */
enum lb_waveq_sched { LB_WAVEQ_SCHED_CONST = 0, LB_WAVEQ_SCHED_STEP = 1, LB_WAVEQ_SCHED_PAPER = 2 };
float lb_waveq_lambda_q(enum lb_waveq_sched kind, double t, double total, double r, double s);
float lb_waveq_lambda_beta(enum lb_waveq_sched kind, double t, double total, double r, double s);

/* ---- continuous beta -> integer bits (methods.md 4.3) ----
 * bits = ceil(beta) + 1 (CEIL, the safe default) or round-half-away(beta) + 1
 * (ROUND): magnitude bits + the sign bit, clamped to [2, LB_QUANT_MAX_BITS]
 * (16). beta = k - 1 exactly gives k under both rules. NaN gives 16. */
enum lb_waveq_bits_rule { LB_WAVEQ_BITS_CEIL = 0, LB_WAVEQ_BITS_ROUND = 1 };
int lb_waveq_bits(float beta, int rule);

#endif
