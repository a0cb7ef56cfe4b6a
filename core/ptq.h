/* SPDX-License-Identifier: MIT
 * Post-training quantization of a finished run (methods.md 6.6): fold batch
 * norm into the layer before it, calibrate the activation ranges on training
 * batches with the FP model, then evaluate the test set with fake-quantized
 * weights and activations for every (weight bits, activation bits) pair of
 * a grid -- the same FP weights every time. The table goes into the run file
 * (group ptq/, docs/results-format.md) by an atomic rewrite.
 *
 * What is quantized: every conv/linear weight (symmetric, narrow range
 * [-(2^(b-1)-1), 2^(b-1)-1], per tensor or per output channel; biases stay
 * FP) and every activation entering a conv/linear layer except the network
 * input (unsigned [0, 2^b-1] from 0 to the calibrated maximum: the inputs of
 * these layers are post-ReLU). A quantized run is evaluated through its
 * latent FP weights (its own quantizers are not applied). */
#ifndef LB_PTQ_H
#define LB_PTQ_H

#define LB_PTQ_MAX_GRID 16

enum lb_ptq_calibration {
	LB_PTQ_CAL_MEAN,       /* mean over batches of each batch's maximum (default) */
	LB_PTQ_CAL_MINMAX,     /* maximum over all calibration batches */
	LB_PTQ_CAL_PERCENTILE  /* the p-th percentile of the pooled calibration values */
};

struct lb_ptq_opts {
	int w_bits[LB_PTQ_MAX_GRID], n_w;   /* weight bits, 2..16 */
	int a_bits[LB_PTQ_MAX_GRID], n_a;   /* activation bits, 1..16 */
	enum lb_ptq_calibration calibration;
	double percentile;     /* LB_PTQ_CAL_PERCENTILE (99.99); also the weight range when
				* weight_percentile is set */
	int weight_percentile; /* weight range = percentile of |W| instead of max |W| */
	int per_channel;       /* one weight scale per output channel */
	int batches;           /* calibration batches (10) */
	int batch_size;        /* calibration batch size (100) */
	int fold_bn;           /* fold batch norm first (1) */
	int fit_calibration;   /* fewer calibration batches when the training set is smaller
				* than batches x batch_size (else an error) */
	int quiet;
};

struct lb_ptq_result {
	double fp_acc;                                  /* FP accuracy (BN folded) */
	double acc[LB_PTQ_MAX_GRID][LB_PTQ_MAX_GRID];  /* [w][a] test accuracy (fraction) */
};

/* Defaults: W, A in {8, 6, 5, 4, 3, 2}, mean calibration, 10 x 100 samples,
 * per tensor, BN folded. */
void lb_ptq_opts_default(struct lb_ptq_opts *o);

/* Evaluate the grid on the finished run at run_path and record it there.
 * Errors (LB_ERR_CONFIG / LB_ERR_STATE / LB_ERR_IO, nothing written): the
 * file is not a run, the run is not done or has no final weights, bits out of
 * range, data missing. */
int lb_ptq_run(const char *run_path, const struct lb_ptq_opts *o, struct lb_ptq_result *res);

#endif
