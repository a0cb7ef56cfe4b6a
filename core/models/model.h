/* SPDX-License-Identifier: MIT
 * A model: a list of nodes (layers) evaluated in order, each reading the
 * output of earlier nodes; built from a list of layer specs (the built-in
 * architectures are such lists, see archs.c).
 *
 * Invariants:
 * - All parameters live in ONE float block (w), their gradients in another
 *   (g) with the same offsets; BN running statistics in a third (buf).
 *   struct lb_param entries are views (offset, count) into them.
 * - Activations y and their gradients dy are (B_max, size) buffers sized at
 *   build; forward/backward allocate nothing. A ReLU whose input feeds nothing
 *   else works in place (its y is the input's y: backward only needs the
 *   ReLU's output, and no other layer reads the overwritten input).
 * - Backward accumulates into g; lb_model_zero_grad is the only place it is
 *   cleared, except the gradients of LB_PARAM_GRAD_SET parameters, which
 *   their producer writes whole once per step (lb_model_quant_weights_backward
 *   for BSQ's planes) while m->grad_set_pending says they count as zero.
 *   Node gradients dy are cleared by lb_model_backward itself.
 * - The loss is the SUM over the batch of cross-entropies times `scale`
 *   (scale = 1/global batch), so shard gradients add up to the batch gradient. */
#ifndef LB_MODEL_H
#define LB_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "layers/layers.h"

enum lb_param_flags {
	LB_PARAM_WEIGHT = 1u << 0, /* conv/linear weight */
	LB_PARAM_BIAS = 1u << 1,   /* conv/linear bias */
	LB_PARAM_BN = 1u << 2,     /* batch-norm gamma/beta */
	LB_PARAM_QUANT = 1u << 3,  /* quantizer parameter (step, log alpha, gate logits): no
				    * weight decay unless an optimizer group sets one */
	LB_PARAM_QDECAY = 1u << 4, /* quantizer parameter that takes optimizer.weight_decay
				    * (PACT alpha: the paper's L2 on alpha) */
	LB_PARAM_CLAMP = 1u << 5,  /* the optimizer clamps it to [lo, hi] after each update
				    * (BSQ bit planes: [0, 2]) */
	LB_PARAM_GRAD_SET = 1u << 6 /* lb_model_zero_grad leaves its gradient alone and sets
				     * m->grad_set_pending: its producer writes it whole
				     * instead of adding (BSQ planes, 16 floats a weight) */
};

struct lb_qstate; /* a quantizer attached to the model (core/quant/qmodel.h) */

struct lb_param {
	char name[64];     /* "conv1.weight", "fc2.bias", "layer1.0.bn1.gamma" */
	size_t offset;     /* into the block */
	size_t count;
	int rank;
	int dims[4];       /* conv weight (C_out, K, K, C_in); linear (C_out, C_in); vectors (n) */
	int node;          /* owning node */
	unsigned flags;
	float lo, hi;      /* bounds of LB_PARAM_CLAMP */
	int fan_in, fan_out;
};

struct lb_node {
	enum lb_op op;
	char name[48];
	int in, in2;          /* input nodes (-1 = none); node 0 is the network input */
	int H, W, C;          /* output shape of one sample */
	size_t size;          /* H*W*C */
	float *y, *dy;        /* (B_max, size); flatten aliases its input's buffers */
	int alias;            /* 1: y/dy are the input's buffers (flatten) */
	int inplace;          /* 1: y and dy are the input's buffers (ReLU/ReLU6 on a
			       * single-consumer input; backward masks dy in place) */
	int w, b;             /* parameter indices or -1 (bn: w = gamma, b = beta) */
	int rmean, rvar;      /* bn: buffer indices */
	int K, stride, pad, out, has_bias;
	float p;              /* dropout */
	int index;            /* this node's position (dropout stream id) */
	float *col;           /* conv: cached im2col (B_train rows) or NULL = shared workspace */
	int col_fresh;        /* col holds im2col of the last training forward */
	int32_t *argmax;      /* maxpool */
	float *mean, *rstd;   /* bn caches */
	uint8_t *mask;        /* dropout */
	int64_t macs;         /* multiply-accumulates per sample (conv, linear) */
	size_t bn_off;        /* bn: offset of this layer's (mean, var) in the shard statistics */
	struct lb_qstate *wq; /* conv/linear: weight quantizer, or NULL (FP weights) */
	struct lb_qstate *aq; /* quant node: its activation quantizer */
};

struct lb_model {
	int n_nodes;
	struct lb_node *nodes;
	int n_params;
	struct lb_param *params;
	size_t n_weights;     /* floats in w (parameters the optimizer updates) */
	size_t n_grad;        /* floats in g: n_weights, then dL/d(quantized weights) of every
			       * weight-quantized layer (reduced across shards and ranks with
			       * the rest; lb_model_quant_weights_backward folds them into g) */
	float *w, *g;
	int grad_set_pending; /* the LB_PARAM_GRAD_SET gradients count as 0 (not yet written
			       * since lb_model_zero_grad) */
	int n_buffers;
	struct lb_param *buffers;
	size_t n_buffer_floats;
	float *buf;
	int B_train, B_max;   /* max batch for training (dy, caches) and for any forward */
	int in_H, in_W, in_C, n_classes;
	float *probs;         /* (B_max, n_classes) */
	float *work;          /* shared im2col workspace */
	size_t work_floats;
	float bn_momentum, bn_eps;
	uint64_t seed;        /* for dropout masks */
	size_t bn_stats_floats; /* floats of batch-norm statistics per shard (2 C per BN layer) */
	struct lb_qmodel *q;  /* quantization state (NULL: no quantizer configured) */
	float *bn_stats;      /* when set, training forwards write each BN layer's batch mean
			       * and unbiased variance here instead of updating the running
			       * statistics; lb_model_apply_bn_stats applies them later in a
			       * fixed shard order (data parallelism, ghost batch norm) */
	/* Gradient-L1 regularizer hooks (core/models/gradl1.h); NULL (the default) = off, at
	 * no cost. Entries for node 0 and for aliases (flatten) must stay NULL. */
	float **dy_tap;       /* (n_nodes) or NULL: lb_model_backward copies node i's complete
			       * dL/dy_i (B x size, before an in-place ReLU masks the shared
			       * buffer) into dy_tap[i] when its reverse loop reaches node i */
	const float *const *y_add; /* (n_nodes) or NULL: every forward adds
			       * y_add_scale * y_add[i] (B x size) to node i's output once the node
			       * has computed it; lb_model_backward subtracts it again just before
			       * node i's own backward (its consumers are done with it by then), so
			       * a ReLU's mask is that of its un-injected output */
	float y_add_scale;
};

/* Build the model described by cfg->model for inputs (H, W, C) and n_classes
 * outputs; buffers sized for B_train-sample training steps and B_eval-sample
 * evaluation. LB_ERR_CONFIG with a message naming the layer for shape
 * errors (kernel larger than its input, add of unequal shapes, last layer
 * not producing n_classes outputs, unknown input name). */
int lb_model_build(const struct lb_config *cfg, int H, int W, int C, int n_classes, int B_train,
		   int B_eval, struct lb_model **out);
void lb_model_free(struct lb_model *m);

/* Initialise every parameter from (seed, LB_RNG_INIT, param index, element)
 * with the scheme of cfg->model.init; BN gamma 1, beta 0, running var 1. */
void lb_model_init_params(struct lb_model *m, enum lb_init init, uint64_t seed);
void lb_model_zero_grad(struct lb_model *m);

/* The (B_max, H*W*C) input buffer to fill before forward. */
float *lb_model_input(struct lb_model *m);

/* Forward B samples (B <= B_train when train, <= B_max otherwise) and the
 * softmax cross-entropy against labels. Returns the SUM of the B losses;
 * *correct (may be NULL) gets the number of correct argmax predictions.
 * train: batch-norm batch statistics (and running-stat update) and dropout
 * with masks keyed by (seed, step, node, first_sample + element). */
double lb_model_forward(struct lb_model *m, int B, const int32_t *labels, int train,
			uint32_t step, uint64_t first_sample, int *correct);
/* Backward of the last training forward: g += scale * d(sum loss)/dw. */
void lb_model_backward(struct lb_model *m, int B, const int32_t *labels, float scale);

/* Update the running statistics from n_shards consecutive blocks of
 * bn_stats_floats (as written by training forwards with m->bn_stats set), in
 * block order: running = (1 - momentum) running + momentum batch. */
void lb_model_apply_bn_stats(struct lb_model *m, const float *stats, int n_shards);

/* For the quantizer wiring (core/quant/qmodel.c): add a parameter (or, with
 * is_buffer, a buffer) "<node name>.<suffix>" of the given shape to the
 * block being laid out. Returns its index, or -1 when out of memory. */
int lb_model_add_param(struct lb_model *m, int node, const char *suffix, unsigned flags, int rank,
		       const int *dims, int is_buffer);

/* Index of the parameter called name, or -1. */
int lb_model_find_param(const struct lb_model *m, const char *name);

/* Parameter count and MACs per sample of the conv/linear layers. */
int64_t lb_model_param_total(const struct lb_model *m);
int64_t lb_model_macs_total(const struct lb_model *m);

/* Print a per-layer table (name, op, output shape, params, MACs) via lb_log. */
void lb_model_log_summary(const struct lb_model *m);

/* The built-in architectures as layer lists (archs.c). *specs is owned by the
 * caller: free with lb_arch_specs_free. */
int lb_arch_specs(const struct lb_model_cfg *mc, int n_classes, struct lb_layer_spec **specs,
		  int *n);
void lb_arch_specs_free(struct lb_layer_spec *specs, int n);

#endif
