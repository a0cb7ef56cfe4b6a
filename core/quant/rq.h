/* SPDX-License-Identifier: MIT
 * Relaxed Quantization (RQ, RQ-ST; Louizos et al., ICLR 2019), Semi-Relaxed
 * Quantization with the multi-class straight-through estimator (SRQ/CPQ; Lee et
 * al., arXiv 1911.12990 / ICCV 2021), DropBits nested bit masks and learned
 * per-layer bit-widths through hard-concrete gates (Louizos et al., ICLR 2018).
 * Kernels only: no model wiring. Math and every reconstructed detail with its
 * switch: docs/methods/srq.md (from shared/docs/methods.md section 2).
 *
 * Invariants shared by every kernel here:
 * - Grid: K = 2^bits points alpha*m_i, m_i = m0 + i (i = 0..K-1), with
 *   m0 = -2^(bits-1) (signed, weights) or 0 (unsigned, post-ReLU). Interval
 *   edges alpha*(m0 - 1/2 + k), k = 0..K. The logistic CDF with scale sigma
 *   is truncated to the outer edges of the points in use and renormalised,
 *   with fuzz LB_RQ_FUZZ on every interval (RQ Algorithm 1).
 * - Everything is evaluated on the grid coordinate q = fl(x / alpha) (float
 *   division), so the hard forward is exactly round-half-away-from-zero of q
 *   clamped to the kept range, and the *_ref twins agree with it bit for bit.
 * - alpha and sigma are values (> 0); gradients with respect to them are
 *   summed over the tensor in double and ADDED to *dalpha / *dsigma. For the
 *   log-parametrisation the caller adds alpha * dalpha to the gradient of
 *   log alpha (sigma * dsigma for log sigma).
 * - Backward accumulates (+=) into dx; NULL means "not wanted". Nothing is
 *   allocated; backward recomputes the edge CDFs from x (K+1 values).
 * - Randomness is a pure function of (seed, purpose, step, index): element e
 *   of a call uses rng index ((key.base + e) << 6) | block, so any rank or a
 *   resumed run redraws the same noise (core/rng.h).
 * - Every fast kernel has a *_ref twin (double precision, the literal
 *   formulas of methods.md 2.1.1/2.2/2.3): hard forwards equal bit for bit,
 *   gradients to float rounding (SRQ: within LB_RQ_GRAD_TOL).
 * - The SRQ kernels without gates, and the identity-STE backward with gates
 *   in the hard gate forward, run vectorised (lb_rq_set_isa); their results
 *   are the same bits on every ISA and do not depend on an element's position
 *   in the tensor. The tempered STE and the relaxed gate forward run per
 *   element (srq_general). */
#ifndef LB_RQ_H
#define LB_RQ_H

#include <stddef.h>
#include <stdint.h>

#define LB_RQ_MAX_BITS 8      /* K <= 256 points, grid index fits 6 rng block bits */
#define LB_RQ_FUZZ 1e-6       /* eps_f added to every interval mass */
#define LB_RQ_U_MIN 1e-10     /* uniform clamp for the Gumbel noise */
/* Tolerance of lb_srq_backward (identity STE, no gates) against
 * lb_srq_backward_ref: ||dx - dx_ref|| / ||dx_ref|| and the relative errors of
 * dalpha and dsigma stay below this in tests/unit/test_rq.c (inputs with
 * half-way points, +-1-3 ulp neighbours and outliers 1e6 grids away; 1 to 8
 * bits, alpha/sigma 0.33 to 25, windows, DropBits). Measured: dx 1e-7 to
 * 2e-6; dalpha, dsigma (float sums with cancellation) up to 1.4e-5 at
 * alpha/sigma = 25, where the previous scalar float kernel had 9e-6. Not
 * bit-identical: the fast kernel works in float with a recurrence for the
 * edge exponentials (rq.c, "vectorised across elements"). */
#define LB_RQ_GRAD_TOL 3e-5

/* hard-concrete constants (AMLab-Amsterdam/L0_regularization, l0_layers.py) */
#define LB_HC_BETA (2.0 / 3.0)
#define LB_HC_GAMMA (-0.1)
#define LB_HC_ZETA 1.1
#define LB_HC_EPS_U 1e-6
#define LB_HC_LOG_A_MIN (-4.605170185988091) /* log 1e-2 */
#define LB_HC_LOG_A_MAX 4.605170185988091    /* log 1e2 */

/* Quantizer settings (runtime fields, one per quantizer).
 * Invariant: 1 <= bits <= LB_RQ_MAX_BITS, lambda > 0, tau > 0, delta >= 0. */
struct lb_rq_spec {
	int bits;             /* b: K = 2^b grid points */
	int is_unsigned;      /* 0: m in [-2^(b-1), 2^(b-1)-1]; 1: m in [0, 2^b-1] */
	float delta;          /* local grid: keep points within +-delta*sigma of the
			       * selected one (RQ eqs. 6-7; 3 is the paper's); 0 = full grid */
	float lambda;         /* RQ concrete temperature */
	int straight_through; /* RQ-ST: one-hot forward, soft backward */
	int tempered;         /* SRQ backward: 0 = identity STE dL/dpi_i = g g_i;
			       * 1 = through s = softmax(log pi / tau) */
	float tau;            /* temperature of the tempered STE (1 = same gradients) */
};

/* Where the random numbers of a call come from. Element e uses rng index
 * ((base + e) << 6) | block at (seed, purpose, step); base + e < 2^58.
 * Suggested base: (tensor_id << 40) | global index of element 0. */
struct lb_rq_key {
	uint64_t seed;
	uint32_t step;  /* global step: the rng epoch field */
	uint64_t base;
};

/* How the gates enter the SRQ forward (methods.md 2.4). */
enum lb_rq_gate_forward {
	LB_RQ_GATE_HARD = 0,    /* forward drops levels whose Zbar < 0.5 (ST on the gates) */
	LB_RQ_GATE_RELAXED = 1  /* forward argmax of Zbar_m pi_m (relaxed gates) */
};

/* DropBits / gate mask for the SRQ kernels (all optional; NULL mask = none).
 * A grid point m has level n(m) (lb_rq_level_of). Its weight in the masked
 * distribution pi~_m = w_m pi_m / sum_j w_j pi_j is
 *   w_m = [n(m) <= keep_e] * (zbar ? zbar[n(m)] : 1),
 * keep_e = level[e] when level is given, else keep (0 means bits). */
struct lb_rq_mask {
	const uint8_t *level; /* (n) kept level of each element (1..bits) or NULL; borrowed */
	int keep;             /* kept level of every element when level == NULL */
	const float *zbar;    /* (bits+1) gate products Zbar_k = Z_2...Z_k (zbar[1] = 1), or NULL */
	int gate_forward;     /* enum lb_rq_gate_forward (used when zbar is set) */
	double *dzbar;        /* (bits+1) accumulates dL/dZbar_k over the tensor, or NULL */
};

/* ---- grid helpers ---- */

/* Defaults: full grid, lambda 2, identity STE (tau 1), RQ (not ST). */
void lb_rq_spec_default(struct lb_rq_spec *sp, int bits, int is_unsigned);
/* LB_OK, or LB_ERR_CONFIG with a message naming the bad field. */
int lb_rq_spec_check(const struct lb_rq_spec *sp);
/* m0: the integer of grid point 0. */
int lb_rq_grid_min(const struct lb_rq_spec *sp);
/* Level n(m) of integer grid point m: the bits it needs (methods.md 2.3). */
int lb_rq_level_of(int m, int is_unsigned);
/* [*m_lo, *m_hi]: the integers kept when levels 1..level survive (a full
 * level-bit grid). */
void lb_rq_level_range(int *m_lo, int *m_hi, int level, int is_unsigned);
/* Half-width of the local window in grid points, floor(delta*sigma/alpha)
 * (K-1 for the full grid, delta == 0). */
int lb_rq_window(const struct lb_rq_spec *sp, float alpha, float sigma);

/* ---- RQ: concrete (Gumbel-softmax) relaxation, training forward ----
 * pi_i = D_i / sum_j D_j,  D_i = c_{i+1} - c_i + eps_f,  c_k = Sig((e_k - x)/sigma)
 * z = softmax((log pi + u)/lambda), u_i Gumbel(0,1) at (key, LB_RNG_QNOISE, e, i)
 * RQ:    y = sum_i z_i alpha m_i          RQ-ST: y = alpha m_{argmax(log pi + u)}
 * Backward (methods.md 2.1.1): dL/dz_i = dy alpha m_i, through the softmax and
 * pi to x, alpha, sigma; direct grid path dL/dalpha += dy sum_i z_i m_i (RQ) or
 * dy m_h (RQ-ST). The noise is redrawn in backward: pass the same key.
 * x, y, dx, dy: (n). [out] y  [in,out] dx, *dalpha, *dsigma (+=, NULL ok). */
void lb_rq_forward(float *y, const float *x, size_t n, const struct lb_rq_spec *sp, float alpha,
		   float sigma, const struct lb_rq_key *key);
void lb_rq_backward(float *dx, double *dalpha, double *dsigma, const float *dy, const float *x,
		    size_t n, const struct lb_rq_spec *sp, float alpha, float sigma,
		    const struct lb_rq_key *key);
void lb_rq_forward_ref(float *y, const float *x, size_t n, const struct lb_rq_spec *sp,
		       float alpha, float sigma, const struct lb_rq_key *key);
void lb_rq_backward_ref(float *dx, double *dalpha, double *dsigma, const float *dy,
			const float *x, size_t n, const struct lb_rq_spec *sp, float alpha,
			float sigma, const struct lb_rq_key *key);

/* ---- SRQ: hard forward (mode of pi~), multi-class STE backward ----
 * forward: y = alpha m*, m* = argmax_m pi~_m = round(q) clamped to the kept
 *          range (relaxed gate mode: argmax of zbar_m pi_m in the window).
 *          Without a mask this is also RQ's test-time quantizer (Algorithm 2).
 * backward: r_m = dy alpha m; identity STE dL/dpi~_m = r_m (tempered:
 *          (1/(tau pi~_m)) s_m (r_m - sum s r), s = softmax(log pi~ / tau)),
 *          then through pi~ to pi, x, alpha, sigma (and Zbar), plus the direct
 *          grid path dL/dalpha += dy m*.
 * sigma is used by the forward only for the window and the relaxed gate mode.
 * [out] y  [in,out] dx, *dalpha, *dsigma, mask->dzbar (+=, NULL ok). */
void lb_srq_forward(float *y, const float *x, size_t n, const struct lb_rq_spec *sp, float alpha,
		    float sigma, const struct lb_rq_mask *mask);
void lb_srq_backward(float *dx, double *dalpha, double *dsigma, const float *dy, const float *x,
		     size_t n, const struct lb_rq_spec *sp, float alpha, float sigma,
		     const struct lb_rq_mask *mask);
/* Twins: full pi~ in double, literal argmax (ties of the measure-zero
 * half-way case resolved away from zero, as round()) and literal chain rule. */
void lb_srq_forward_ref(float *y, const float *x, size_t n, const struct lb_rq_spec *sp,
			float alpha, float sigma, const struct lb_rq_mask *mask);
void lb_srq_backward_ref(float *dx, double *dalpha, double *dsigma, const float *dy,
			 const float *x, size_t n, const struct lb_rq_spec *sp, float alpha,
			 float sigma, const struct lb_rq_mask *mask);

/* Vector code of the SRQ kernels (lb_srq_forward without gates, the
 * identity-STE lb_srq_backward without gates and with gates in the hard gate
 * forward): every choice gives the same bits. AUTO (the default) is the best
 * the CPU has. */
enum lb_rq_isa {
	LB_RQ_ISA_AUTO = 0,
	LB_RQ_ISA_GENERIC = 1, /* 4 lanes, SSE2 (any CPU) */
	LB_RQ_ISA_AVX2 = 2,    /* 8 lanes */
	LB_RQ_ISA_AVX512 = 3   /* 16 lanes (8 with per-element ranges); F, DQ, BW, VL */
};
/* on != 0: the gated identity-STE backward per element (the scalar float
 * code of the tempered and relaxed-gate cases) instead of its vector kernel;
 * process-wide, for tests and benchmarks (both are held to the _ref twin). */
void lb_srq_gated_scalar(int on);
/* Use isa from now on (process-wide; for tests and benchmarks): one the CPU
 * lacks, or AUTO, selects the best. Returns the ISA in force. */
int lb_rq_set_isa(int isa);
/* The ISA in force (never AUTO). */
int lb_rq_isa(void);

/* ---- scalar references (tests, documentation) ---- */

/* pi:(K) = RQ categorical of x renormalised over grid points [lo, hi]
 * (0 outside), in double with x used unrounded. */
void lb_rq_probs_ref(double *pi, double x, double alpha, double sigma,
		     const struct lb_rq_spec *sp, int lo, int hi);
/* The Gumbel noise RQ uses for element e, grid point i (double). */
double lb_rq_gumbel(const struct lb_rq_key *key, size_t e, int i);

/* ---- DropBits (methods.md 2.3) ---- */

/* p:(bits+1) per-level drop probabilities p[k] = p_top 2^(k-bits), k = 2..bits;
 * p[0] = p[1] = 0 (level 1 is never dropped). Any other p array may be used. */
void lb_dropbits_probs(float *p, int bits, float p_top);
/* Per-element masks: gate Z_k = [u_k >= p[k]] from (key.seed, LB_RNG_DROPBITS,
 * key.step, ((base+e) << 6) | (k-2)/4, word (k-2)%4); level[e] = 1 + the number
 * of consecutive gates k = 2, 3, ... that are on. train == 0: no dropping
 * (level[e] = bits, no draws). [out] level:(n). */
void lb_dropbits_sample(uint8_t *level, size_t n, int bits, const float *p,
			const struct lb_rq_key *key, int train);
/* Per-layer granularity: one gate vector for the whole tensor (drawn at
 * element 0 of key: the caller sets base to the layer index). Returns the kept
 * level for lb_rq_mask.keep; bits when train == 0. */
int lb_dropbits_sample_layer(int bits, const float *p, const struct lb_rq_key *key, int train);

/* ---- learned bit-widths: hard-concrete gates (methods.md 2.4) ----
 * Per layer, levels k = 2..bits; arrays are indexed by level: log_a, z, zbar,
 * dz_dloga, dlog_a have bits+1 entries per layer, entries 0 and 1 unused (z
 * and zbar hold 1 there). */

/* Z = min(1, max(0, Sig((log u - log(1-u) + log_a)/beta)(zeta-gamma) + gamma)),
 * u in (0,1) is mapped to [eps_U, 1-eps_U]. *dz_dloga (NULL ok) = dZ/dlog_a
 * = (zeta-gamma) s(1-s)/beta inside (0,1), else 0. */
double lb_hc_gate(double log_a, double u, double *dz_dloga);
/* Test-time gate min(1, max(0, Sig(log_a)(zeta-gamma) + gamma)). */
double lb_hc_gate_test(double log_a);
/* P(Z != 0) = Sig(log_a - beta log(-gamma/zeta)); *dp_dloga = P(1-P) (NULL ok). */
double lb_hc_prob_nonzero(double log_a, double *dp_dloga);
/* One layer's gates for this step: z[k] (k = 2..bits) sampled with u from
 * (key.seed, LB_RNG_GATES, key.step, (key.base << 6) | k) (base = layer), or
 * the test-time value when train == 0 (dz_dloga then 0). [out] z, dz_dloga
 * (NULL ok):(bits+1). */
void lb_bits_gates_sample(float *z, float *dz_dloga, const float *log_a, int bits,
			  const struct lb_rq_key *key, int train);
/* zbar[k] = z[2] ... z[k], zbar[0] = zbar[1] = 1. [out] zbar:(bits+1) */
void lb_bits_zbar(float *zbar, const float *z, int bits);
/* dlog_a[k] += dz_dloga[k] sum_{L >= k} dzbar[L] prod_{j=2..L, j != k} z[j]. */
void lb_bits_gates_backward(double *dlog_a, const double *dzbar, const float *z,
			    const float *dz_dloga, int bits);
/* R = lambda sum_l c[l] sum_{k=2..bits} P(Z_{l,k} != 0); dlog_a (NULL ok) +=
 * lambda c[l] P(1-P). log_a, dlog_a: (n_layers, bits+1). Returns R. */
double lb_bits_penalty(double *dlog_a, const float *log_a, const double *c, int n_layers,
		       int bits, double lambda);
/* Memory-aware weights c[l] = n_weights[l] / sum n_weights. */
void lb_bits_memory_weights(double *c, const size_t *n_weights, int n_layers);
/* Learned bit-width: 1 + the number of consecutive levels k = 2, 3, ... that
 * are on at test time, level k on iff Zbar_k = Z_2...Z_k (test-time gates)
 * >= threshold. threshold 0.5 (recommended) is exactly the level the
 * LB_RQ_GATE_HARD forward keeps; threshold 0 means Zbar_k > 0 (every gate
 * non-zero: the L0 reading "bit k kept iff Z > 0"). */
int lb_bits_learned(const float *log_a, int bits, float threshold);
/* Clamp each log_a into [log 1e-2, log 1e2] (the reference code does this
 * after every optimizer step). */
void lb_bits_clamp_log_a(float *log_a, size_t n);

#endif
