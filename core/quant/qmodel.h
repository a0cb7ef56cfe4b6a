/* SPDX-License-Identifier: MIT
 * Quantizers attached to a model (the `quant:` section of the config):
 * one weight quantizer per conv/linear layer and one activation quantizer
 * per conv/linear layer that does not read the network input (a quant node
 * inserted in front of the layer). The kernels are core/quant/quant.h and
 * rq.h; this file decides which runs where, owns their state and learnable
 * parameters, and reports bits, size and BOPs. docs/methods/ says what each
 * method computes; docs/config.md lists the keys.
 *
 * Invariants:
 * - Learnable quantizer parameters (LSQ steps, PACT alpha, RQ/SRQ log alpha
 *   and log sigma, hard-concrete gate logits) are ordinary model parameters
 *   ("<layer>.wq.*", "<layer>.aq.*") in the one parameter block, so the
 *   optimizer, checkpoints, broadcasts and the gradient reduction treat them
 *   like weights. Quantizer state that is not learned (calibrated ranges,
 *   the "initialised" flag) lives in the buffer block.
 * - A training step is: lb_model_quant_begin (fake-quantize every weight
 *   tensor once, drawing masks and gates from (seed, step): identical on
 *   every rank and shard) -> shard forwards/backwards (layers read the
 *   quantized weights and write dL/dwq into g past n_weights; activation
 *   quantizers are nodes and accumulate their own gradients) -> reduction of
 *   g over n_grad floats -> lb_model_quant_weights_backward (the estimator of
 *   each method, once per step, on the reduced dL/dwq; plus the bit-cost
 *   regulariser) -> optimizer -> lb_model_quant_after_step (clamps).
 *   So quantized training is bit-identical for every rank count in
 *   deterministic mode, like FP training.
 * - Evaluation (train = 0) uses the test-time quantizers: deterministic
 *   rounding, no DropBits, learned bits from the test-time gates. */
#ifndef LB_QMODEL_H
#define LB_QMODEL_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "models/model.h"

#define LB_QM_MAX_LEVELS 17 /* bits + 1 entries per gate array (bits <= 16) */

struct lb_qstate {
	enum lb_qmethod method;
	int is_act;
	int bits;            /* configured bits (b_max when bits are learned) */
	int level;           /* bits in force at test time (bits, learned or frozen level) */
	int frozen;          /* level fixed (learn_bits frozen, or bits_from) */
	int node;            /* weights: the conv/linear node; activations: the quant node */
	int layer;           /* the conv/linear node this quantizer serves */
	int per_channel, clipped;
	int rows;            /* weights: C_out (per channel) or 1; activations 1 */
	size_t cols, count;  /* weights: elements per row and in total */
	int p_a, p_b;        /* parameters: rq/srq log alpha, log sigma; lsq step; pact alpha */
	int p_gate;          /* learned bits: gate logits (bits+1), else -1 */
	int b_state;         /* buffer: [0] initialised flag, [1] calibrated scale */
	float *wq;           /* weights: fake-quantized copy (count) */
	size_t gq;           /* weights: offset of dL/dwq in m->g */
	float *scale;        /* uniform weights: per-row scales (rows) */
	float dorefa_M;      /* dorefa weights: max |tanh w| of this step */
	int frac_len;        /* sr: dynamic fixed-point fractional length of this step */
	uint8_t *lvl;        /* dropbits per-element kept levels (count), or NULL */
	float *xs;           /* rq.grid midrise weights: w - alpha/2 and its dL/d (2 count), or NULL */
	int keep;            /* kept level for every element (per-layer dropbits, frozen) */
	int use_gates;       /* this step samples gates */
	float z[LB_QM_MAX_LEVELS], zbar[LB_QM_MAX_LEVELS], dz[LB_QM_MAX_LEVELS];
	double dzbar[LB_QM_MAX_LEVELS];
	double penalty;      /* bit-cost regulariser of this layer, this step */
	int waveq;           /* WaveQ regularises this layer's weights */
	int p_beta;          /* WaveQ learned beta (1), or -1 (beta = level - 1) */
	int p_bp, p_bn;      /* BSQ: positive / negative bit planes (max_bits x count), or -1 */
	int p_what;          /* BSQ fine-tune: w-hat (count), or -1 */
	int p_step;          /* BSQ: the step d = s / (2^N - 1) (1), or -1; N = buffer state[1] */
	double sumsq[16];    /* BSQ: squared norm of each bit plane, from this step's forward */
};

struct lb_qmodel {
	struct lb_quant_cfg cfg;  /* borrowed strings; a copy of the scalar settings */
	int n_w, n_a;             /* weight and activation quantizers */
	struct lb_qstate *w;      /* (n_w) */
	struct lb_qstate *a;      /* (n_a) */
	uint64_t seed;            /* randomness of every quantizer */
	int train;                /* the mode of the last lb_model_quant_begin */
	uint32_t step;
	int gates_on;             /* learn_bits: gates sampled and learned this epoch */
	double lambda_now;        /* bit-cost weight this epoch (ramped) */
	int calibrating;          /* quant nodes initialise their range from this forward */
	int bypass;               /* quant nodes copy their input (PTQ calibration: FP statistics) */
	uint64_t first_sample;    /* of the last training forward (keys RQ noise in backward) */
	int epochs, steps_per_epoch; /* of the run (WaveQ schedules; set by the trainer) */
	float waveq_fq, waveq_fb; /* WaveQ schedule factors of this step */
	double bsq_tp;            /* BSQ: weights of all bit-plane layers (the Lasso's TP) */
};

/* Build-time: called by lb_model_build before parameters are laid out.
 * Inserts the activation quant nodes into the layer list (*specs, *n are
 * replaced; the caller frees them with lb_arch_specs_free) and checks every
 * glob of quant.layers against the conv/linear layer names: LB_ERR_CONFIG
 * naming the entry when a glob matches no conv/linear layer, or sets
 * activations on a layer that reads the network input. */
int lb_qmodel_expand_specs(const struct lb_quant_cfg *q, struct lb_layer_spec **specs, int *n);
/* After shape inference of node i (conv/linear, or a quant node): add its
 * quantizer and the quantizer's parameters/buffers. */
int lb_qmodel_add_node(struct lb_model *m, const struct lb_quant_cfg *q, int i);
/* After the block sizes are known: allocate quantized-weight copies and lay
 * the dL/dwq regions out past n_weights (sets m->n_grad). */
int lb_qmodel_alloc(struct lb_model *m);
void lb_qmodel_free(struct lb_model *m);

/* Initial values of the quantizer parameters that do not need data (LSQ
 * weight steps, RQ/SRQ weight grids, gate logits); called by
 * lb_model_init_params. */
void lb_model_quant_init_params(struct lb_model *m);
/* Data-dependent initialisation: run a forward of B samples already in the
 * model input (train = 0), with quant nodes recording their input, and set
 * every activation quantizer not yet initialised (calibrated scale, LSQ
 * step, RQ/SRQ grid). Deterministic given the batch. */
void lb_model_quant_calibrate(struct lb_model *m, int B);

/* Per-epoch schedule of learned bits (warm-up, ramp, freeze) for the epoch
 * about to run (0-based). Freezing fixes every layer's level at its learned
 * value. */
void lb_model_quant_epoch(struct lb_model *m, int epoch);

/* Initialisation that needs the loaded weights (after --stage-init and
 * --stage-bits, before training; a resumed run's checkpoint overrides it):
 * BSQ converts each layer's weights to bit planes at quant.weights.bits and
 * drops empty planes (methods.md 5.1, 5.4b), or, fine-tuning, takes w-hat
 * from the weights and the step it was given. Deterministic. */
void lb_model_quant_setup(struct lb_model *m);

/* BSQ re-quantization and precision adjustment (methods.md 5.4): at the start
 * of every epoch that is a multiple of quant.bsq.requant_every (not epoch 0:
 * lb_model_quant_setup did it) and, final = 1, after the last epoch. Returns
 * 1 when it ran: the caller then resets the optimizer's moments (the
 * reference re-creates its optimizer). Must not run again when a mid-epoch
 * checkpoint resumes inside that epoch. */
int lb_model_quant_requantize(struct lb_model *m, int epoch, int final);

/* BSQ: the nonzero fraction of each bit plane of the l-th conv/linear layer
 * (lb_bsq_density of its current planes; MSB first) into nz:(max_bits), NaN
 * past the layer's bits; returns max_bits, or 0 when layer l has no BSQ
 * bit planes. */
int lb_model_quant_bsq_density(const struct lb_model *m, int l, double *nz);
/* Fake-quantize the weights for a training step (train = 1, masks and
 * gates keyed by step) or for evaluation (train = 0). */
void lb_model_quant_begin(struct lb_model *m, int train, uint32_t step);
/* After the gradient reduction: fold dL/dwq into the weight gradients
 * through each method's estimator, add quantizer-parameter gradients and
 * the bit-cost regulariser. Returns the regulariser's value. */
double lb_model_quant_weights_backward(struct lb_model *m);
/* After the optimizer step: clamp gate logits and sigma >= sigma_min alpha. */
void lb_model_quant_after_step(struct lb_model *m);

/* Activation quant node forward/backward (called by the model). x, y, dx,
 * dy: (B, size); first_sample keys the RQ noise. */
void lb_qnode_forward(struct lb_model *m, int node, int B, uint64_t first_sample);
void lb_qnode_backward(struct lb_model *m, int node, int B); /* same first_sample as the forward */

/* Fix the weight bits of the conv/linear layers from a learned-bits run:
 * bits[l] for the l-th conv/linear layer in network order (n entries). Turns
 * learning of bits off. LB_ERR_CONFIG when n or a value does not fit. */
int lb_model_quant_fix_bits(struct lb_model *m, const int *bits, int n);

/* ---- report (methods.md 6.8) ---- */

/* Per conv/linear layer in network order: name, #weights, MACs, the weight
 * and activation bits in force (32 = not quantized; activations of a layer
 * reading the network input count as 32). Returns the number of layers;
 * arrays may be NULL (only counting). */
int lb_model_quant_layers(const struct lb_model *m, const char **names, double *params,
			  double *macs, int *w_bits, int *a_bits);

struct lb_quant_summary {
	double avg_w_bits;    /* parameter-weighted, all conv/linear layers (FP = 32) */
	double avg_a_bits;    /* MAC-weighted over conv/linear inputs (FP = 32) */
	double size_bytes;    /* weight storage, sum #W b_w / 8 */
	double compression;   /* 32 sum #W / sum #W b_w */
	double bops;          /* sum MACs b_w b_a per sample */
};
void lb_model_quant_summary(const struct lb_model *m, struct lb_quant_summary *s);

#endif
