/* SPDX-License-Identifier: MIT
 * The training configuration: the structs libcyaml fills from YAML.
 *
 * core/config.c holds the libcyaml schema, which is the ONLY place a key is
 * named; loading, defaults, validation, --set overrides, the canonical dump
 * written to run files and the flat attribute list all come from it.
 * docs/config.md lists every key, its type, default and allowed values.
 *
 * Invariant: after lb_config_load* returns LB_OK every field holds a valid
 * value (defaults applied, ranges checked); consumers do not re-validate. */
#ifndef LB_CONFIG_H
#define LB_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

enum lb_arch {
	LB_ARCH_MLP,          /* 784-300-100-10 (hidden sizes configurable) */
	LB_ARCH_LENET5,       /* 32C5-MP2-64C5-MP2-512FC (methods.md 1.1) */
	LB_ARCH_LENET5_CAFFE, /* 20C5-MP2-50C5-MP2-500FC (methods.md 1.3) */
	LB_ARCH_SIMPLENET5,   /* 6C5-MP2-16C5-MP2-120-84 (methods.md 1.4) */
	LB_ARCH_VGG7,         /* 2x128C3-MP2-2x256C3-MP2-2x512C3-MP2-1024FC (1.2) */
	LB_ARCH_RESNET20,     /* CIFAR ResNet-20, option-B shortcuts (1.5) */
	LB_ARCH_CUSTOM        /* model.layers */
};

enum lb_op {
	LB_OP_INPUT,
	LB_OP_LINEAR,
	LB_OP_CONV,
	LB_OP_MAXPOOL,
	LB_OP_AVGPOOL,
	LB_OP_GAP,
	LB_OP_RELU,
	LB_OP_RELU6,
	LB_OP_BN,
	LB_OP_FLATTEN,
	LB_OP_ADD,
	LB_OP_DROPOUT,
	LB_OP_QUANT, /* activation quantizer inserted by the model (not a YAML op) */
	LB_OP__COUNT
};

enum lb_init { LB_INIT_TORCH, LB_INIT_KAIMING_NORMAL, LB_INIT_XAVIER_UNIFORM };

enum lb_dataset_kind { LB_DATA_FASHION_MNIST, LB_DATA_MNIST, LB_DATA_CIFAR10, LB_DATA_IDX };

enum lb_opt_kind { LB_OPT_SGD, LB_OPT_ADAM };

enum lb_sched_kind { LB_SCHED_CONSTANT, LB_SCHED_STEP, LB_SCHED_MULTISTEP, LB_SCHED_COSINE };

/* Data-parallel reduction: deterministic (bit-identical for every supported
 * rank count) or fast (MPI_Allreduce; reproducible for a fixed rank count). */
enum lb_parallel_mode { LB_PARALLEL_DETERMINISTIC, LB_PARALLEL_FAST };

/* One layer of a custom model (and the form the built-in models are built in).
 * The input of a layer is the previous layer unless `input` names another;
 * `add` sums its input with the layer named by `from`. */
struct lb_layer_spec {
	enum lb_op op;
	char *name;     /* optional; default "<op><n>" e.g. conv1, linear2, relu3 */
	char *input;    /* optional: name of the input layer */
	char *from;     /* add: the other operand */
	unsigned out;   /* linear: features; conv: channels */
	unsigned kernel;
	unsigned stride;  /* default 1 for conv, = kernel for pools */
	unsigned pad;
	bool bias;      /* linear/conv: default true */
	float p;        /* dropout probability */
};

struct lb_model_cfg {
	enum lb_arch arch;
	enum lb_init init;
	unsigned *hidden;      /* mlp hidden sizes, default [300, 100] */
	unsigned n_hidden;
	float dropout;         /* built-in models: dropout before the classifier (0 = none) */
	float bn_momentum;     /* 0.1 */
	float bn_eps;          /* 1e-5 */
	struct lb_layer_spec *layers; /* custom */
	unsigned n_layers;
};

struct lb_data_cfg {
	enum lb_dataset_kind dataset;
	char *dir;             /* default per dataset, e.g. /usr/share/datasets/fashion-mnist */
	char *train_images, *train_labels, *test_images, *test_labels; /* idx: file names in dir */
	unsigned validation;   /* training samples held out for validation (0 = none) */
	unsigned train_limit;  /* use only the first N training samples (0 = all) */
	unsigned test_limit;   /* use only the first N test samples (0 = all) */
	bool normalize;        /* subtract the per-channel mean, divide by std (training set) */
	bool augment;          /* random crop (crop_pad) + horizontal flip; CIFAR default true */
	unsigned crop_pad;     /* 4 */
};

struct lb_train_cfg {
	unsigned epochs;
	unsigned batch;        /* global batch */
	unsigned shards;       /* the global batch is cut into this many shards (data parallel) */
	unsigned eval_batch;   /* 1000 */
	unsigned threads;      /* OpenBLAS threads per rank (0 = 1) */
	unsigned log_every;    /* progress line every N steps (0 = per epoch only) */
	unsigned checkpoint_every; /* epochs between checkpoints (1) */
	unsigned max_steps;    /* stop after N steps in total (0 = no limit; for tests) */
	enum lb_parallel_mode parallel; /* deterministic (default) | fast */
	unsigned *snapshot_steps; /* keep the parameters after these steps (late rewinding) */
	unsigned n_snapshot_steps;
};

struct lb_param_group_cfg {
	char *match;           /* glob on parameter names: "*.bias", "bn*", "fc2.*" */
	float lr_scale;        /* multiplies the scheduled lr (1) */
	float weight_decay;    /* replaces optimizer.weight_decay; < 0 = inherit (-1) */
};

struct lb_optimizer_cfg {
	enum lb_opt_kind kind;
	float lr;
	float momentum;        /* sgd */
	bool nesterov;         /* sgd */
	float weight_decay;    /* L2 added to the gradient (sgd and adam) */
	float beta1, beta2, eps; /* adam */
	struct lb_param_group_cfg *groups; /* first matching group wins */
	unsigned n_groups;
};

struct lb_schedule_cfg {
	enum lb_sched_kind kind;
	unsigned step_size;    /* step: epochs between decays */
	float gamma;           /* step/multistep factor (0.1) */
	unsigned *milestones;  /* multistep: epochs */
	unsigned n_milestones;
	float warmup_epochs;   /* linear warm-up from 0 over this many epochs (may be fractional) */
	float min_lr;          /* cosine floor */
};

/* ---- quantization (docs/config.md "quant", docs/methods/) ---- */

/* Quantizer methods. Weights: uniform, dorefa, wrpn, lsq, sr, rq, rq-st,
 * srq, bsq; activations: uniform, dorefa, wrpn, pact, lsq, rq, rq-st, srq.
 * inherit (per-layer entries only): take the section default. */
enum lb_qmethod {
	LB_QM_NONE,
	LB_QM_UNIFORM,
	LB_QM_DOREFA,
	LB_QM_WRPN,
	LB_QM_PACT,
	LB_QM_LSQ,
	LB_QM_SR,
	LB_QM_RQ,
	LB_QM_RQ_ST,
	LB_QM_SRQ,
	LB_QM_BSQ,     /* weights only: bit planes (docs/methods/bsq.md) */
	LB_QM_INHERIT
};

enum lb_dropbits_granularity { LB_DROPBITS_ELEMENT, LB_DROPBITS_LAYER };
enum lb_gate_forward_cfg { LB_GATE_FWD_HARD, LB_GATE_FWD_RELAXED };
enum lb_pact_grad_cfg { LB_PACT_GRAD_PAPER, LB_PACT_GRAD_LSQ };
enum lb_rq_grid_cfg { LB_RQ_GRID_TWOS, LB_RQ_GRID_MIDRISE };

/* One quantizer: the weights of every conv/linear layer, or the activation
 * entering every conv/linear layer that does not read the network input. */
struct lb_quantizer_cfg {
	enum lb_qmethod method;  /* none */
	unsigned bits;           /* 4 */
	bool per_channel;        /* weights, uniform/lsq: one scale per output channel */
	bool clipped_ste;        /* uniform/sr: STE zero outside the clipping range (true) */
};

/* Per-layer override; the first entry whose glob matches a layer wins. */
struct lb_quant_layer_cfg {
	char *match;                    /* glob on conv/linear layer names: "conv*", "fc2" */
	enum lb_qmethod weights_method; /* inherit */
	unsigned weights_bits;          /* 0 = inherit */
	enum lb_qmethod activations_method;
	unsigned activations_bits;
};

struct lb_rq_cfg {
	float temperature;   /* RQ concrete temperature lambda (2) */
	float sigma_init;    /* sigma = sigma_init * alpha at initialisation (1) */
	float sigma_min;     /* sigma >= sigma_min * alpha after every step (1e-3) */
	float local_delta;   /* local grid +-delta sigma (0 = full grid) */
	float ste_tau;       /* SRQ multi-class STE temperature (1 = identity STE) */
	bool tempered;       /* SRQ backward through softmax(log pi / tau) (false) */
	enum lb_rq_grid_cfg grid; /* signed weight grid: alpha m (twos, RQ's) or
				   * alpha (m + 1/2) (midrise: RQ's offset beta = alpha/2) */
	float act_percentile; /* activation alpha init: this percentile of the calibration
			       * activations / (2^b - 1) (99.9) */
};

struct lb_dropbits_cfg {
	bool enabled;        /* false; weights with method srq only */
	enum lb_dropbits_granularity granularity; /* element */
	float p_top;         /* drop rate of the top bit level; level k: p_top 2^(k-bits) (0.2) */
};

struct lb_learn_bits_cfg {
	bool enabled;        /* false; weights with method srq only */
	float lambda;        /* bit-cost regulariser weight (0.01) */
	unsigned warmup_epochs; /* gates held on (2) */
	unsigned ramp_epochs;   /* lambda ramps linearly from 0 over these epochs (2) */
	unsigned freeze_epoch;  /* after this epoch the learned bits are frozen (0 = never) */
	float init_drop;     /* initial drop rate p0: log a = log((1-p0)/p0) (0.05) */
	float threshold;     /* level k kept when the test-time Zbar_k >= threshold (0.5) */
	enum lb_gate_forward_cfg gate_forward; /* hard */
	bool memory_weights; /* c_l = #W_l / #W (true); false: c_l = 1 */
	bool freeze_rescale; /* at the freeze, grow an RQ/SRQ layer's alpha and sigma by
			      * 2^(b_max - b*) so its b*-bit grid spans the b_max range
			      * (as bits_from does); false: keep alpha (the nested
			      * levels' inner grid) (false) */
};

/* WaveQ (docs/methods/waveq.md): a sinusoidal regulariser on the value the
 * weight quantizer rounds, with a learned (or fixed) period beta per layer. */
enum lb_waveq_align_cfg { LB_WAVEQ_ALIGN_DOREFA, LB_WAVEQ_ALIGN_WRPN };
enum lb_waveq_sched_cfg { LB_WAVEQ_CFG_STEP, LB_WAVEQ_CFG_PAPER, LB_WAVEQ_CFG_CONSTANT };
enum lb_waveq_bits_cfg { LB_WAVEQ_CFG_CEIL, LB_WAVEQ_CFG_ROUND };

struct lb_waveq_cfg {
	bool enabled;         /* false */
	enum lb_waveq_align_cfg align; /* dorefa: levels of DoReFa weights; wrpn */
	float lambda_q;       /* weight of the sinusoid (1), times the schedule's factor */
	float lambda_beta;    /* weight of sum beta, the bit-width pressure (0.03) */
	bool amplitude;       /* factor 2^-beta on the sinusoid (true: the paper's form) */
	bool learn_beta;      /* true: beta learned per layer; false: beta = bits - 1 fixed */
	float beta_init;      /* 8 */
	float beta_min, beta_max; /* beta clamped to [beta_min, beta_max] after a step (1, 8) */
	enum lb_waveq_sched_cfg schedule; /* step */
	float step_center;    /* step schedule: centre r as a fraction of the epochs (0.2) */
	float step_width;     /* step schedule: width s as a fraction of the epochs (0.02) */
	enum lb_waveq_bits_cfg bits_rule; /* beta -> bits: ceil(beta) + 1 (ceil) */
};

/* BSQ (docs/methods/bsq.md): weights method bsq learns bit planes;
 * quant.weights.bits is the starting precision. */
struct lb_bsq_cfg {
	float alpha;          /* bit-level group-Lasso strength (5e-3) */
	unsigned requant_every; /* epochs between re-quantizations (20) */
	float threshold;      /* precision adjustment: drop an LSB plane whose nonzero fraction
			       * is <= threshold (0) */
	unsigned max_bits;    /* precision may grow up to this at re-quantization (8) */
	bool memory_weights;  /* group weight #W_l N_l / total (true) */
	bool finetune;        /* false: learn bit planes; true: fine-tune w-hat with the
			       * precision fixed (bits from --stage-bits) */
};

struct lb_quant_cfg {
	struct lb_quantizer_cfg weights;
	struct lb_quantizer_cfg activations;
	struct lb_quant_layer_cfg *layers;
	unsigned n_layers;
	float pact_alpha;    /* PACT clip initial value (10) */
	enum lb_pact_grad_cfg pact_grad; /* paper */
	bool dorefa_through_max; /* DoReFa weights: differentiate M = max|tanh w| (false) */
	bool dorefa_scale;   /* DoReFa weights (k >= 2) times max|W| of the layer, so a network
			      * without batch norm keeps its weight scale (false: the paper's
			      * levels in [-1, 1]) */
	bool lsq_grad_scale; /* LSQ step gradient scale 1/sqrt(n Q_P) (true) */
	struct lb_rq_cfg rq;
	struct lb_dropbits_cfg dropbits;
	struct lb_learn_bits_cfg learn_bits;
	struct lb_waveq_cfg waveq;
	struct lb_bsq_cfg bsq;
};

/* Gradient-L1 regularisation (docs/methods/gradl1.md): lambda_w sum |dL/dw| +
 * lambda_a sum |dL/dy| over the inputs of conv/linear layers, its gradient
 * an exact Hessian-vector product (R-operator) or central differences. */
enum lb_hvp_kind { LB_HVP_ROP, LB_HVP_FD };

struct lb_gradl1_cfg {
	float lambda;         /* both terms (0 = off); or set lambda_w / lambda_a instead */
	float lambda_w;       /* weight-gradient term (0) */
	float lambda_a;       /* activation-gradient term (0) */
	unsigned start_epoch; /* epochs 1..start_epoch train without it (0) */
	enum lb_hvp_kind hvp; /* rop */
	float fd_eps;         /* fd: eps max(lambda_w, lambda_a) = fd_eps mean|w| (1e-3) */
};

struct lb_config {
	char *name;            /* run name (used in the run file name) */
	uint64_t seed;
	struct lb_model_cfg model;
	struct lb_data_cfg data;
	struct lb_train_cfg train;
	struct lb_optimizer_cfg optimizer;
	struct lb_schedule_cfg schedule;
	struct lb_quant_cfg quant;
	struct lb_gradl1_cfg gradl1;
};

/* Load a config file, apply `--set key=value` overrides (dotted keys such as
 * "optimizer.lr", values in YAML syntax: "0.1", "[60, 80]", "adam"), apply
 * defaults and validate. On error returns LB_ERR_CONFIG (LB_ERR_IO when the
 * file cannot be read) with one message naming the file, the key (and line
 * where the YAML gives one) and what is allowed. *out is owned by the caller:
 * free with lb_config_free. */
int lb_config_load(const char *path, const char *const *overrides, int n_overrides,
		   struct lb_config **out);
/* The same from YAML text; origin names it in messages (e.g. "runs/x.h5:config"). */
int lb_config_load_string(const char *yaml, const char *origin, const char *const *overrides,
			  int n_overrides, struct lb_config **out);
void lb_config_free(struct lb_config *cfg);
/* Add steps to train.snapshot_steps (kept sorted, without repeats): a sweep
 * asks the stage a rewind to step K reads from to keep step K. */
int lb_config_add_snapshot_steps(struct lb_config *cfg, const unsigned *steps, unsigned n);

/* Gradient-L1: is the regulariser configured, and its two weights
 * (lambda for both terms, or lambda_w and lambda_a). */
int lb_gradl1_on(const struct lb_gradl1_cfg *r);
void lb_gradl1_lambdas(const struct lb_gradl1_cfg *r, float *lambda_w, float *lambda_a);

/* Canonical YAML of the resolved config (every key, defaults filled), owned
 * by the caller (free()). Loading it gives an equal config. */
int lb_config_dump(const struct lb_config *cfg, char **yaml_out);

/* Identity of a config: hash of the canonical dump with the keys that cannot
 * change results removed (train.threads, train.log_every). Same value ->
 * same run. */
uint64_t lb_config_hash(const struct lb_config *cfg);

/* Flat "key = value" view of every leaf ("optimizer.lr" -> "0.02"), for HDF5
 * attributes and `lowbit train --print-config`. fn returns nonzero to stop. */
int lb_config_flatten(const struct lb_config *cfg,
		      int (*fn)(const char *key, const char *value, void *ctx), void *ctx);

/* Name of an enum value as written in YAML ("lenet5-caffe", "sgd", ...). */
const char *lb_arch_name(enum lb_arch a);
const char *lb_op_name(enum lb_op op);
const char *lb_dataset_name(enum lb_dataset_kind d);
const char *lb_qmethod_name(enum lb_qmethod q);

#endif
