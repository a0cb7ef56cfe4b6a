/* SPDX-License-Identifier: MIT
 * The training configuration (config.h): libcyaml schema, defaults, --set
 * overrides, validation, canonical dump, hash and flat view; docs/config.md.
 * libyaml parses the text into a node tree with lines; overrides and the
 * built-in defaults document are merged there, the tree is checked against
 * the schema, re-emitted and loaded by libcyaml, then ranges are checked. */
#include "config.h"

#include <cyaml/cyaml.h>
#include <yaml.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cyaml_util.h"
#include "err.h"
#include "util.h"

/* ---- enum spellings (the only list of them) ---- */

static const cyaml_strval_t arch_strings[] = {
	{"mlp", LB_ARCH_MLP},
	{"lenet5", LB_ARCH_LENET5},
	{"lenet5-caffe", LB_ARCH_LENET5_CAFFE},
	{"simplenet5", LB_ARCH_SIMPLENET5},
	{"vgg7", LB_ARCH_VGG7},
	{"resnet20", LB_ARCH_RESNET20},
	{"custom", LB_ARCH_CUSTOM},
};

static const cyaml_strval_t init_strings[] = {
	{"torch", LB_INIT_TORCH},
	{"kaiming-normal", LB_INIT_KAIMING_NORMAL},
	{"xavier-uniform", LB_INIT_XAVIER_UNIFORM},
};

static const cyaml_strval_t op_strings[] = {
	{"input", LB_OP_INPUT},
	{"linear", LB_OP_LINEAR},
	{"conv", LB_OP_CONV},
	{"maxpool", LB_OP_MAXPOOL},
	{"avgpool", LB_OP_AVGPOOL},
	{"gap", LB_OP_GAP},
	{"relu", LB_OP_RELU},
	{"relu6", LB_OP_RELU6},
	{"bn", LB_OP_BN},
	{"flatten", LB_OP_FLATTEN},
	{"add", LB_OP_ADD},
	{"dropout", LB_OP_DROPOUT},
};

static const cyaml_strval_t dataset_strings[] = {
	{"fashion-mnist", LB_DATA_FASHION_MNIST},
	{"mnist", LB_DATA_MNIST},
	{"cifar10", LB_DATA_CIFAR10},
	{"idx", LB_DATA_IDX},
};

static const cyaml_strval_t opt_strings[] = {
	{"sgd", LB_OPT_SGD},
	{"adam", LB_OPT_ADAM},
};

static const cyaml_strval_t parallel_strings[] = {
	{"deterministic", LB_PARALLEL_DETERMINISTIC},
	{"fast", LB_PARALLEL_FAST},
};

static const cyaml_strval_t sched_strings[] = {
	{"constant", LB_SCHED_CONSTANT},
	{"step", LB_SCHED_STEP},
	{"multistep", LB_SCHED_MULTISTEP},
	{"cosine", LB_SCHED_COSINE},
};

static const cyaml_strval_t qmethod_strings[] = {
	{"none", LB_QM_NONE},     {"uniform", LB_QM_UNIFORM}, {"dorefa", LB_QM_DOREFA},
	{"wrpn", LB_QM_WRPN},     {"pact", LB_QM_PACT},       {"lsq", LB_QM_LSQ},
	{"sr", LB_QM_SR},         {"rq", LB_QM_RQ},           {"rq-st", LB_QM_RQ_ST},
	{"srq", LB_QM_SRQ},       {"bsq", LB_QM_BSQ},         {"inherit", LB_QM_INHERIT},
};

static const cyaml_strval_t waveq_align_strings[] = {
	{"dorefa", LB_WAVEQ_ALIGN_DOREFA},
	{"wrpn", LB_WAVEQ_ALIGN_WRPN},
};

static const cyaml_strval_t waveq_sched_strings[] = {
	{"step", LB_WAVEQ_CFG_STEP},
	{"paper", LB_WAVEQ_CFG_PAPER},
	{"constant", LB_WAVEQ_CFG_CONSTANT},
};

static const cyaml_strval_t waveq_bits_strings[] = {
	{"ceil", LB_WAVEQ_CFG_CEIL},
	{"round", LB_WAVEQ_CFG_ROUND},
};

static const cyaml_strval_t hvp_strings[] = {
	{"rop", LB_HVP_ROP},
	{"fd", LB_HVP_FD},
};

static const cyaml_strval_t granularity_strings[] = {
	{"element", LB_DROPBITS_ELEMENT},
	{"layer", LB_DROPBITS_LAYER},
};

static const cyaml_strval_t gate_forward_strings[] = {
	{"hard", LB_GATE_FWD_HARD},
	{"relaxed", LB_GATE_FWD_RELAXED},
};

static const cyaml_strval_t rq_grid_strings[] = {
	{"twos", LB_RQ_GRID_TWOS},
	{"midrise", LB_RQ_GRID_MIDRISE},
};

static const cyaml_strval_t pact_grad_strings[] = {
	{"paper", LB_PACT_GRAD_PAPER},
	{"lsq", LB_PACT_GRAD_LSQ},
};

#define N_OF(a) ((uint32_t)CYAML_ARRAY_LEN(a))

/* ---- the schema: the only place keys are named ---- */

#define OPT CYAML_FLAG_OPTIONAL
#define STRICT_ENUM (CYAML_FLAG_OPTIONAL | CYAML_FLAG_STRICT)
#define FLT(key, st, m) CYAML_FIELD_FLOAT(key, CYAML_FLAG_OPTIONAL | CYAML_FLAG_STRICT, st, m)
#define STR(key, st, m) CYAML_FIELD_STRING_PTR(key, OPT, st, m, 0, CYAML_UNLIMITED)

static const cyaml_schema_value_t uint_entry = {CYAML_VALUE_UINT(CYAML_FLAG_DEFAULT, unsigned)};

static const cyaml_schema_field_t layer_fields[] = {
	CYAML_FIELD_ENUM("op", STRICT_ENUM, struct lb_layer_spec, op, op_strings, N_OF(op_strings)),
	STR("name", struct lb_layer_spec, name),
	STR("input", struct lb_layer_spec, input),
	STR("from", struct lb_layer_spec, from),
	CYAML_FIELD_UINT("out", OPT, struct lb_layer_spec, out),
	CYAML_FIELD_UINT("kernel", OPT, struct lb_layer_spec, kernel),
	CYAML_FIELD_UINT("stride", OPT, struct lb_layer_spec, stride),
	CYAML_FIELD_UINT("pad", OPT, struct lb_layer_spec, pad),
	CYAML_FIELD_BOOL("bias", OPT, struct lb_layer_spec, bias),
	FLT("p", struct lb_layer_spec, p),
	CYAML_FIELD_END
};
static const cyaml_schema_value_t layer_entry = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_FLOW, struct lb_layer_spec, layer_fields)
};

static const cyaml_schema_field_t model_fields[] = {
	CYAML_FIELD_ENUM("arch", STRICT_ENUM, struct lb_model_cfg, arch, arch_strings,
			 N_OF(arch_strings)),
	CYAML_FIELD_ENUM("init", STRICT_ENUM, struct lb_model_cfg, init, init_strings,
			 N_OF(init_strings)),
	CYAML_FIELD_SEQUENCE_COUNT("hidden", OPT | CYAML_FLAG_POINTER | CYAML_FLAG_FLOW,
				   struct lb_model_cfg, hidden, n_hidden, &uint_entry, 0,
				   CYAML_UNLIMITED),
	FLT("dropout", struct lb_model_cfg, dropout),
	FLT("bn_momentum", struct lb_model_cfg, bn_momentum),
	FLT("bn_eps", struct lb_model_cfg, bn_eps),
	CYAML_FIELD_SEQUENCE_COUNT("layers", OPT | CYAML_FLAG_POINTER, struct lb_model_cfg, layers,
				   n_layers, &layer_entry, 0, CYAML_UNLIMITED),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t data_fields[] = {
	CYAML_FIELD_ENUM("dataset", STRICT_ENUM, struct lb_data_cfg, dataset, dataset_strings,
			 N_OF(dataset_strings)),
	STR("dir", struct lb_data_cfg, dir),
	STR("train_images", struct lb_data_cfg, train_images),
	STR("train_labels", struct lb_data_cfg, train_labels),
	STR("test_images", struct lb_data_cfg, test_images),
	STR("test_labels", struct lb_data_cfg, test_labels),
	CYAML_FIELD_UINT("validation", OPT, struct lb_data_cfg, validation),
	CYAML_FIELD_UINT("train_limit", OPT, struct lb_data_cfg, train_limit),
	CYAML_FIELD_UINT("test_limit", OPT, struct lb_data_cfg, test_limit),
	CYAML_FIELD_BOOL("normalize", OPT, struct lb_data_cfg, normalize),
	CYAML_FIELD_BOOL("augment", OPT, struct lb_data_cfg, augment),
	CYAML_FIELD_UINT("crop_pad", OPT, struct lb_data_cfg, crop_pad),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t train_fields[] = {
	CYAML_FIELD_UINT("epochs", OPT, struct lb_train_cfg, epochs),
	CYAML_FIELD_UINT("batch", OPT, struct lb_train_cfg, batch),
	CYAML_FIELD_UINT("shards", OPT, struct lb_train_cfg, shards),
	CYAML_FIELD_UINT("eval_batch", OPT, struct lb_train_cfg, eval_batch),
	CYAML_FIELD_UINT("threads", OPT, struct lb_train_cfg, threads),
	CYAML_FIELD_UINT("log_every", OPT, struct lb_train_cfg, log_every),
	CYAML_FIELD_UINT("checkpoint_every", OPT, struct lb_train_cfg, checkpoint_every),
	CYAML_FIELD_UINT("max_steps", OPT, struct lb_train_cfg, max_steps),
	CYAML_FIELD_ENUM("parallel", STRICT_ENUM, struct lb_train_cfg, parallel, parallel_strings,
			 N_OF(parallel_strings)),
	CYAML_FIELD_SEQUENCE_COUNT("snapshot_steps", OPT | CYAML_FLAG_POINTER | CYAML_FLAG_FLOW,
				   struct lb_train_cfg, snapshot_steps, n_snapshot_steps, &uint_entry,
				   0, CYAML_UNLIMITED),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t group_fields[] = {
	STR("match", struct lb_param_group_cfg, match),
	FLT("lr_scale", struct lb_param_group_cfg, lr_scale),
	FLT("weight_decay", struct lb_param_group_cfg, weight_decay),
	CYAML_FIELD_END
};
static const cyaml_schema_value_t group_entry = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_FLOW, struct lb_param_group_cfg, group_fields)
};

static const cyaml_schema_field_t optimizer_fields[] = {
	CYAML_FIELD_ENUM("kind", STRICT_ENUM, struct lb_optimizer_cfg, kind, opt_strings,
			 N_OF(opt_strings)),
	FLT("lr", struct lb_optimizer_cfg, lr),
	FLT("momentum", struct lb_optimizer_cfg, momentum),
	CYAML_FIELD_BOOL("nesterov", OPT, struct lb_optimizer_cfg, nesterov),
	FLT("weight_decay", struct lb_optimizer_cfg, weight_decay),
	FLT("beta1", struct lb_optimizer_cfg, beta1),
	FLT("beta2", struct lb_optimizer_cfg, beta2),
	FLT("eps", struct lb_optimizer_cfg, eps),
	CYAML_FIELD_SEQUENCE_COUNT("groups", OPT | CYAML_FLAG_POINTER, struct lb_optimizer_cfg,
				   groups, n_groups, &group_entry, 0, CYAML_UNLIMITED),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t schedule_fields[] = {
	CYAML_FIELD_ENUM("kind", STRICT_ENUM, struct lb_schedule_cfg, kind, sched_strings,
			 N_OF(sched_strings)),
	CYAML_FIELD_UINT("step_size", OPT, struct lb_schedule_cfg, step_size),
	FLT("gamma", struct lb_schedule_cfg, gamma),
	CYAML_FIELD_SEQUENCE_COUNT("milestones", OPT | CYAML_FLAG_POINTER | CYAML_FLAG_FLOW,
				   struct lb_schedule_cfg, milestones, n_milestones, &uint_entry, 0,
				   CYAML_UNLIMITED),
	FLT("warmup_epochs", struct lb_schedule_cfg, warmup_epochs),
	FLT("min_lr", struct lb_schedule_cfg, min_lr),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t quantizer_fields[] = {
	CYAML_FIELD_ENUM("method", STRICT_ENUM, struct lb_quantizer_cfg, method, qmethod_strings,
			 N_OF(qmethod_strings)),
	CYAML_FIELD_UINT("bits", OPT, struct lb_quantizer_cfg, bits),
	CYAML_FIELD_BOOL("per_channel", OPT, struct lb_quantizer_cfg, per_channel),
	CYAML_FIELD_BOOL("clipped_ste", OPT, struct lb_quantizer_cfg, clipped_ste),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t qlayer_fields[] = {
	STR("match", struct lb_quant_layer_cfg, match),
	CYAML_FIELD_ENUM("weights_method", STRICT_ENUM, struct lb_quant_layer_cfg, weights_method,
			 qmethod_strings, N_OF(qmethod_strings)),
	CYAML_FIELD_UINT("weights_bits", OPT, struct lb_quant_layer_cfg, weights_bits),
	CYAML_FIELD_ENUM("activations_method", STRICT_ENUM, struct lb_quant_layer_cfg,
			 activations_method, qmethod_strings, N_OF(qmethod_strings)),
	CYAML_FIELD_UINT("activations_bits", OPT, struct lb_quant_layer_cfg, activations_bits),
	CYAML_FIELD_END
};
static const cyaml_schema_value_t qlayer_entry = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_FLOW, struct lb_quant_layer_cfg, qlayer_fields)
};

static const cyaml_schema_field_t rq_fields[] = {
	FLT("temperature", struct lb_rq_cfg, temperature),
	FLT("sigma_init", struct lb_rq_cfg, sigma_init),
	FLT("sigma_min", struct lb_rq_cfg, sigma_min),
	FLT("local_delta", struct lb_rq_cfg, local_delta),
	FLT("ste_tau", struct lb_rq_cfg, ste_tau),
	CYAML_FIELD_BOOL("tempered", OPT, struct lb_rq_cfg, tempered),
	CYAML_FIELD_ENUM("grid", STRICT_ENUM, struct lb_rq_cfg, grid, rq_grid_strings,
			 N_OF(rq_grid_strings)),
	FLT("act_percentile", struct lb_rq_cfg, act_percentile),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t dropbits_fields[] = {
	CYAML_FIELD_BOOL("enabled", OPT, struct lb_dropbits_cfg, enabled),
	CYAML_FIELD_ENUM("granularity", STRICT_ENUM, struct lb_dropbits_cfg, granularity,
			 granularity_strings, N_OF(granularity_strings)),
	FLT("p_top", struct lb_dropbits_cfg, p_top),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t learn_bits_fields[] = {
	CYAML_FIELD_BOOL("enabled", OPT, struct lb_learn_bits_cfg, enabled),
	FLT("lambda", struct lb_learn_bits_cfg, lambda),
	CYAML_FIELD_UINT("warmup_epochs", OPT, struct lb_learn_bits_cfg, warmup_epochs),
	CYAML_FIELD_UINT("ramp_epochs", OPT, struct lb_learn_bits_cfg, ramp_epochs),
	CYAML_FIELD_UINT("freeze_epoch", OPT, struct lb_learn_bits_cfg, freeze_epoch),
	FLT("init_drop", struct lb_learn_bits_cfg, init_drop),
	FLT("threshold", struct lb_learn_bits_cfg, threshold),
	CYAML_FIELD_ENUM("gate_forward", STRICT_ENUM, struct lb_learn_bits_cfg, gate_forward,
			 gate_forward_strings, N_OF(gate_forward_strings)),
	CYAML_FIELD_BOOL("memory_weights", OPT, struct lb_learn_bits_cfg, memory_weights),
	CYAML_FIELD_BOOL("freeze_rescale", OPT, struct lb_learn_bits_cfg, freeze_rescale),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t waveq_fields[] = {
	CYAML_FIELD_BOOL("enabled", OPT, struct lb_waveq_cfg, enabled),
	CYAML_FIELD_ENUM("align", STRICT_ENUM, struct lb_waveq_cfg, align, waveq_align_strings,
			 N_OF(waveq_align_strings)),
	FLT("lambda_q", struct lb_waveq_cfg, lambda_q),
	FLT("lambda_beta", struct lb_waveq_cfg, lambda_beta),
	CYAML_FIELD_BOOL("amplitude", OPT, struct lb_waveq_cfg, amplitude),
	CYAML_FIELD_BOOL("learn_beta", OPT, struct lb_waveq_cfg, learn_beta),
	FLT("beta_init", struct lb_waveq_cfg, beta_init),
	FLT("beta_min", struct lb_waveq_cfg, beta_min),
	FLT("beta_max", struct lb_waveq_cfg, beta_max),
	CYAML_FIELD_ENUM("schedule", STRICT_ENUM, struct lb_waveq_cfg, schedule,
			 waveq_sched_strings, N_OF(waveq_sched_strings)),
	FLT("step_center", struct lb_waveq_cfg, step_center),
	FLT("step_width", struct lb_waveq_cfg, step_width),
	CYAML_FIELD_ENUM("bits_rule", STRICT_ENUM, struct lb_waveq_cfg, bits_rule,
			 waveq_bits_strings, N_OF(waveq_bits_strings)),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t bsq_fields[] = {
	FLT("alpha", struct lb_bsq_cfg, alpha),
	CYAML_FIELD_UINT("requant_every", OPT, struct lb_bsq_cfg, requant_every),
	FLT("threshold", struct lb_bsq_cfg, threshold),
	CYAML_FIELD_UINT("max_bits", OPT, struct lb_bsq_cfg, max_bits),
	CYAML_FIELD_BOOL("memory_weights", OPT, struct lb_bsq_cfg, memory_weights),
	CYAML_FIELD_BOOL("finetune", OPT, struct lb_bsq_cfg, finetune),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t gradl1_fields[] = {
	FLT("lambda", struct lb_gradl1_cfg, lambda),
	FLT("lambda_w", struct lb_gradl1_cfg, lambda_w),
	FLT("lambda_a", struct lb_gradl1_cfg, lambda_a),
	CYAML_FIELD_UINT("start_epoch", OPT, struct lb_gradl1_cfg, start_epoch),
	CYAML_FIELD_ENUM("hvp", STRICT_ENUM, struct lb_gradl1_cfg, hvp, hvp_strings,
			 N_OF(hvp_strings)),
	FLT("fd_eps", struct lb_gradl1_cfg, fd_eps),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t quant_fields[] = {
	CYAML_FIELD_MAPPING("weights", OPT, struct lb_quant_cfg, weights, quantizer_fields),
	CYAML_FIELD_MAPPING("activations", OPT, struct lb_quant_cfg, activations, quantizer_fields),
	CYAML_FIELD_SEQUENCE_COUNT("layers", OPT | CYAML_FLAG_POINTER, struct lb_quant_cfg, layers,
				   n_layers, &qlayer_entry, 0, CYAML_UNLIMITED),
	FLT("pact_alpha", struct lb_quant_cfg, pact_alpha),
	CYAML_FIELD_ENUM("pact_grad", STRICT_ENUM, struct lb_quant_cfg, pact_grad,
			 pact_grad_strings, N_OF(pact_grad_strings)),
	CYAML_FIELD_BOOL("dorefa_through_max", OPT, struct lb_quant_cfg, dorefa_through_max),
	CYAML_FIELD_BOOL("dorefa_scale", OPT, struct lb_quant_cfg, dorefa_scale),
	CYAML_FIELD_BOOL("lsq_grad_scale", OPT, struct lb_quant_cfg, lsq_grad_scale),
	CYAML_FIELD_MAPPING("rq", OPT, struct lb_quant_cfg, rq, rq_fields),
	CYAML_FIELD_MAPPING("dropbits", OPT, struct lb_quant_cfg, dropbits, dropbits_fields),
	CYAML_FIELD_MAPPING("learn_bits", OPT, struct lb_quant_cfg, learn_bits, learn_bits_fields),
	CYAML_FIELD_MAPPING("waveq", OPT, struct lb_quant_cfg, waveq, waveq_fields),
	CYAML_FIELD_MAPPING("bsq", OPT, struct lb_quant_cfg, bsq, bsq_fields),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t config_fields[] = {
	STR("name", struct lb_config, name),
	CYAML_FIELD_UINT("seed", OPT, struct lb_config, seed),
	CYAML_FIELD_MAPPING("model", OPT, struct lb_config, model, model_fields),
	CYAML_FIELD_MAPPING("data", OPT, struct lb_config, data, data_fields),
	CYAML_FIELD_MAPPING("train", OPT, struct lb_config, train, train_fields),
	CYAML_FIELD_MAPPING("optimizer", OPT, struct lb_config, optimizer, optimizer_fields),
	CYAML_FIELD_MAPPING("schedule", OPT, struct lb_config, schedule, schedule_fields),
	CYAML_FIELD_MAPPING("quant", OPT, struct lb_config, quant, quant_fields),
	CYAML_FIELD_MAPPING("gradl1", OPT, struct lb_config, gradl1, gradl1_fields),
	CYAML_FIELD_END
};

static const cyaml_schema_value_t config_schema = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, struct lb_config, config_fields)
};

/* ---- the defaults: the only list of them ----
 * `config` mirrors the schema; the other sections fill entries whose
 * defaults depend on another value: `dataset.<name>` is merged into `data`
 * once the dataset is known, `layer` into every layer after `op.<op>`,
 * `group` into every optimizer group. Pools default their stride to their
 * kernel (resolved in code, as it is not a constant). */
static const char config_defaults[] =
	"config:\n"
	"  name: run\n"
	"  seed: 1\n"
	"  model:\n"
	"    arch: lenet5-caffe\n"
	"    init: torch\n"
	"    hidden: [300, 100]\n"
	"    dropout: 0\n"
	"    bn_momentum: 0.1\n"
	"    bn_eps: 1e-5\n"
	"    layers: []\n"
	"  data:\n"
	"    dataset: fashion-mnist\n"
	"    train_images: train-images-idx3-ubyte.gz\n"
	"    train_labels: train-labels-idx1-ubyte.gz\n"
	"    test_images: t10k-images-idx3-ubyte.gz\n"
	"    test_labels: t10k-labels-idx1-ubyte.gz\n"
	"    validation: 0\n"
	"    train_limit: 0\n"
	"    test_limit: 0\n"
	"    normalize: true\n"
	"    crop_pad: 4\n"
	"  train:\n"
	"    epochs: 5\n"
	"    batch: 64\n"
	"    shards: 1\n"
	"    eval_batch: 256\n"
	"    threads: 1\n"
	"    log_every: 100\n"
	"    checkpoint_every: 1\n"
	"    max_steps: 0\n"
	"    parallel: deterministic\n"
	"    snapshot_steps: []\n"
	"  optimizer:\n"
	"    kind: sgd\n"
	"    lr: 0.02\n"
	"    momentum: 0.9\n"
	"    nesterov: false\n"
	"    weight_decay: 0\n"
	"    beta1: 0.9\n"
	"    beta2: 0.999\n"
	"    eps: 1e-8\n"
	"    groups: []\n"
	"  schedule:\n"
	"    kind: constant\n"
	"    step_size: 30\n"
	"    gamma: 0.1\n"
	"    milestones: []\n"
	"    warmup_epochs: 0\n"
	"    min_lr: 0\n"
	"  quant:\n"
	"    weights: {method: none, bits: 4, per_channel: false, clipped_ste: true}\n"
	"    activations: {method: none, bits: 4, per_channel: false, clipped_ste: true}\n"
	"    layers: []\n"
	"    pact_alpha: 10\n"
	"    pact_grad: paper\n"
	"    dorefa_through_max: false\n"
	"    dorefa_scale: false\n"
	"    lsq_grad_scale: true\n"
	"    rq: {temperature: 2, sigma_init: 1, sigma_min: 1e-3, local_delta: 0, ste_tau: 1,\n"
	"         tempered: false, grid: twos, act_percentile: 99.9}\n"
	"    dropbits: {enabled: false, granularity: element, p_top: 0.2}\n"
	"    learn_bits: {enabled: false, lambda: 0.01, warmup_epochs: 2, ramp_epochs: 2,\n"
	"                 freeze_epoch: 0, init_drop: 0.05, threshold: 0.5, gate_forward: hard,\n"
	"                 memory_weights: true, freeze_rescale: false}\n"
	"    waveq: {enabled: false, align: dorefa, lambda_q: 1, lambda_beta: 0.03, amplitude: true,\n"
	"            learn_beta: true, beta_init: 8, beta_min: 1, beta_max: 8, schedule: step,\n"
	"            step_center: 0.2, step_width: 0.02, bits_rule: ceil}\n"
	"    bsq: {alpha: 5e-3, requant_every: 20, threshold: 0, max_bits: 8, memory_weights: true,\n"
	"          finetune: false}\n"
	"  gradl1: {lambda: 0, lambda_w: 0, lambda_a: 0, start_epoch: 0, hvp: rop, fd_eps: 1e-3}\n"
	"dataset:\n"
	"  fashion-mnist: {dir: /usr/share/datasets/fashion-mnist, augment: false}\n"
	"  mnist: {dir: /usr/share/datasets/mnist, augment: false}\n"
	"  cifar10: {augment: true}\n"
	"  idx: {augment: false}\n"
	"op:\n"
	"  conv: {stride: 1}\n"
	"layer: {out: 0, kernel: 0, stride: 0, pad: 0, bias: true, p: 0}\n"
	"group: {lr_scale: 1, weight_decay: -1}\n"
	"qlayer: {weights_method: inherit, weights_bits: 0, activations_method: inherit,\n"
	"         activations_bits: 0}\n";

/* ---- enum names ---- */


const char *lb_arch_name(enum lb_arch a)
{
	return lb_cyaml_strval_name(arch_strings, N_OF(arch_strings), a);
}

const char *lb_op_name(enum lb_op op)
{
	if (op == LB_OP_QUANT)
		return "quant";
	return lb_cyaml_strval_name(op_strings, N_OF(op_strings), op);
}

const char *lb_dataset_name(enum lb_dataset_kind d)
{
	return lb_cyaml_strval_name(dataset_strings, N_OF(dataset_strings), d);
}

const char *lb_qmethod_name(enum lb_qmethod q)
{
	return lb_cyaml_strval_name(qmethod_strings, N_OF(qmethod_strings), q);
}

/* ---- a small YAML tree with line numbers ---- */

enum node_kind { NODE_SCALAR, NODE_MAP, NODE_SEQ };
enum node_origin { FROM_DEFAULT, FROM_TEXT, FROM_SET };

struct node;
struct entry {
	char *key;          /* NULL in sequences */
	struct node *val;
};

struct node {
	enum node_kind kind;
	enum node_origin origin;
	unsigned line;      /* 1-based line of the key (mappings) or item; 0 = unknown */
	char *text;         /* scalars */
	int quoted;         /* scalar was quoted or block-style in the source */
	struct entry *e;    /* mapping entries / sequence items */
	size_t n, cap;
};

static void node_free(struct node *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n; i++) {
		free(n->e[i].key);
		node_free(n->e[i].val);
	}
	free(n->e);
	free(n->text);
	free(n);
}

static struct node *node_new(enum node_kind kind, enum node_origin origin, unsigned line)
{
	struct node *n = calloc(1, sizeof *n);
	if (n) {
		n->kind = kind;
		n->origin = origin;
		n->line = line;
	}
	return n;
}

static struct node *scalar_new(const char *text, enum node_origin origin, unsigned line)
{
	struct node *n = node_new(NODE_SCALAR, origin, line);
	if (n && !(n->text = strdup(text))) {
		free(n);
		return NULL;
	}
	return n;
}

/* Append; takes ownership of val (freed on failure). */
static int node_push(struct node *n, const char *key, struct node *val)
{
	if (!val)
		return LB_ERR_OOM;
	if (n->n == n->cap) {
		size_t cap = n->cap ? 2 * n->cap : 8;
		struct entry *e = realloc(n->e, cap * sizeof *e);
		if (!e) {
			node_free(val);
			return LB_ERR_OOM;
		}
		n->e = e;
		n->cap = cap;
	}
	char *k = NULL;
	if (key && !(k = strdup(key))) {
		node_free(val);
		return LB_ERR_OOM;
	}
	n->e[n->n].key = k;
	n->e[n->n].val = val;
	n->n++;
	return LB_OK;
}

static struct entry *map_find(const struct node *m, const char *key)
{
	if (!m || m->kind != NODE_MAP)
		return NULL;
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->e[i].key, key) == 0)
			return &m->e[i];
	return NULL;
}

static struct node *map_get(const struct node *m, const char *key)
{
	struct entry *e = map_find(m, key);
	return e ? e->val : NULL;
}

static void map_remove(struct node *m, size_t i)
{
	free(m->e[i].key);
	node_free(m->e[i].val);
	memmove(&m->e[i], &m->e[i + 1], (m->n - i - 1) * sizeof *m->e);
	m->n--;
}

static struct node *node_copy(const struct node *s, enum node_origin origin, unsigned line)
{
	struct node *n = node_new(s->kind, origin, line);
	if (!n)
		return NULL;
	n->quoted = s->quoted;
	if (s->text && !(n->text = strdup(s->text)))
		goto oom;
	for (size_t i = 0; i < s->n; i++)
		if (node_push(n, s->e[i].key, node_copy(s->e[i].val, origin, line)))
			goto oom;
	return n;
oom:
	node_free(n);
	return NULL;
}

static int is_null_scalar(const struct node *n)
{
	if (n->kind != NODE_SCALAR || n->quoted)
		return 0;
	const char *t = n->text;
	return !t[0] || !strcmp(t, "~") || !strcmp(t, "null") || !strcmp(t, "Null") ||
	       !strcmp(t, "NULL");
}

/* ---- one load: context for messages ---- */

struct load {
	const char *origin;     /* file name for messages */
	struct node *root;      /* the user's document, then merged */
	struct node *defaults;  /* parsed config_defaults */
	const char *set;        /* the --set being applied, or NULL */
};

/* Canonical key path of components; "model.layers[2].out". */
struct path {
	char s[256];
};

/* Paths longer than the buffer are cut (only messages can see them). */
static int path_join(struct path *out, const char *base, const char *key)
{
	if (!base || !base[0])
		return snprintf(out->s, sizeof out->s, "%.250s", key);
	return snprintf(out->s, sizeof out->s, "%.190s.%.60s", base, key);
}

static int path_index(struct path *out, const char *base, size_t i)
{
	return snprintf(out->s, sizeof out->s, "%.230s[%zu]", base, i);
}

/* Walk "a.b[2].c" in the tree; NULL when absent. */
static struct node *tree_find(struct node *root, const char *path)
{
	struct node *n = root;
	const char *p = path;
	while (n && *p) {
		char key[128];
		size_t k = strcspn(p, ".[");
		if (k >= sizeof key)
			return NULL;
		if (k) {
			memcpy(key, p, k);
			key[k] = '\0';
			n = map_get(n, key);
			p += k;
		}
		while (n && *p == '[') {
			char *end;
			unsigned long i = strtoul(p + 1, &end, 10);
			if (*end != ']' || n->kind != NODE_SEQ || i >= n->n)
				return NULL;
			n = n->e[i].val;
			p = end + 1;
		}
		if (*p == '.')
			p++;
	}
	return n;
}

/* " (line 12)", " (from --set)" or "" for the node at path; a key that came
 * from the defaults is placed at its nearest written ancestor. */
static void where(const struct load *ld, const char *path, char *buf, size_t size)
{
	char p[256];
	buf[0] = '\0';
	snprintf(p, sizeof p, "%s", path);
	while (ld->root && p[0]) {
		struct node *n = tree_find(ld->root, p);
		if (n && n->origin == FROM_TEXT && n->line) {
			snprintf(buf, size, " (line %u)", n->line);
			return;
		}
		if (n && n->origin == FROM_SET) {
			snprintf(buf, size, " (from --set)");
			return;
		}
		char *cut = strrchr(p, '.'), *br = strrchr(p, '[');
		if (br > cut)
			cut = br;
		if (!cut)
			return;
		*cut = '\0';
	}
}

/* Record "<origin>: <key> (line L): <what>" and return LB_ERR_CONFIG. */
static int bad(const struct load *ld, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int bad(const struct load *ld, const char *key, const char *fmt, ...)
{
	char what[1024], loc[64];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	where(ld, key, loc, sizeof loc);
	return lb_error(LB_ERR_CONFIG, "%s: %s%s: %s", ld->origin, key, loc, what);
}

/* Schema of the value at a tree path (sequence indices step into entries). */
static const cyaml_schema_value_t *schema_find(const char *path)
{
	const cyaml_schema_value_t *v = &config_schema;
	const char *p = path;
	while (v && *p) {
		char key[128];
		size_t k = strcspn(p, ".[");
		if (k >= sizeof key)
			return NULL;
		if (k) {
			memcpy(key, p, k);
			key[k] = '\0';
			if (v->type != CYAML_MAPPING)
				return NULL;
			const cyaml_schema_field_t *f = lb_cyaml_field_find(v->mapping.fields, key);
			v = f ? &f->value : NULL;
			p += k;
		}
		while (v && *p == '[') {
			if (v->type != CYAML_SEQUENCE)
				return NULL;
			v = v->sequence.entry;
			p = strchr(p, ']');
			if (!p)
				return NULL;
			p++;
		}
		if (*p == '.')
			p++;
	}
	return v;
}

/* ---- libyaml document -> tree ---- */

static int build_node(yaml_document_t *doc, yaml_node_t *yn, enum node_origin origin, int depth,
		      struct node **out, const char *origin_name)
{
	unsigned line = (unsigned)yn->start_mark.line + 1;
	struct node *n = NULL;
	*out = NULL;
	if (depth > 32)
		return lb_error(LB_ERR_CONFIG, "%s: line %u: nesting too deep", origin_name, line);
	switch (yn->type) {
	case YAML_SCALAR_NODE:
		n = node_new(NODE_SCALAR, origin, line);
		if (!n || !(n->text = strndup((const char *)yn->data.scalar.value,
					      yn->data.scalar.length))) {
			free(n);
			return lb_error(LB_ERR_OOM, "out of memory");
		}
		n->quoted = yn->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
		break;
	case YAML_SEQUENCE_NODE:
		n = node_new(NODE_SEQ, origin, line);
		if (!n)
			return lb_error(LB_ERR_OOM, "out of memory");
		for (yaml_node_item_t *it = yn->data.sequence.items.start;
		     it < yn->data.sequence.items.top; it++) {
			struct node *c;
			int rc = build_node(doc, yaml_document_get_node(doc, *it), origin,
					    depth + 1, &c, origin_name);
			if (!rc && node_push(n, NULL, c))
				rc = lb_error(LB_ERR_OOM, "out of memory");
			if (rc) {
				node_free(n);
				return rc;
			}
		}
		break;
	case YAML_MAPPING_NODE:
		n = node_new(NODE_MAP, origin, line);
		if (!n)
			return lb_error(LB_ERR_OOM, "out of memory");
		for (yaml_node_pair_t *pr = yn->data.mapping.pairs.start;
		     pr < yn->data.mapping.pairs.top; pr++) {
			yaml_node_t *k = yaml_document_get_node(doc, pr->key);
			unsigned kline = (unsigned)k->start_mark.line + 1;
			const char *key = (const char *)k->data.scalar.value;
			int rc = LB_OK;
			struct node *c = NULL;
			if (k->type != YAML_SCALAR_NODE)
				rc = lb_error(LB_ERR_CONFIG, "%s: line %u: mapping keys must be plain words",
					      origin_name, kline);
			else if (map_find(n, key))
				rc = lb_error(LB_ERR_CONFIG, "%s: line %u: duplicate key '%s'",
					      origin_name, kline, key);
			if (!rc)
				rc = build_node(doc, yaml_document_get_node(doc, pr->value), origin,
						depth + 1, &c, origin_name);
			if (!rc) {
				c->line = kline;
				if (node_push(n, key, c))
					rc = lb_error(LB_ERR_OOM, "out of memory");
			}
			if (rc) {
				node_free(n);
				return rc;
			}
		}
		break;
	default:
		return lb_error(LB_ERR_CONFIG, "%s: line %u: unsupported YAML node", origin_name, line);
	}
	*out = n;
	return LB_OK;
}

/* Parse YAML text into a tree; an empty document gives NULL. what names the
 * text in messages ("<file>" or "--set k=v"). */
static int parse_tree(const char *text, size_t len, const char *what, enum node_origin origin,
		      struct node **out)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	struct lb_yaml_refusal why;
	int rc = LB_OK;
	*out = NULL;
	/* build_node copies every alias out: bound that before anything is built */
	rc = lb_yaml_check_aliases(text, len, &why);
	if (rc == LB_ERR_OOM)
		return lb_error(LB_ERR_OOM, "out of memory");
	if (rc)
		return lb_error(LB_ERR_CONFIG, "%s: line %u: %s", what, why.line, why.what);
	if (!yaml_parser_initialize(&parser))
		return lb_error(LB_ERR_OOM, "out of memory");
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		if (parser.error == YAML_MEMORY_ERROR)
			rc = lb_error(LB_ERR_OOM, "out of memory");
		else if (parser.context)
			rc = lb_error(LB_ERR_CONFIG,
				      "%s: line %zu, column %zu: YAML syntax error: %s (%s at line %zu)",
				      what, parser.problem_mark.line + 1,
				      parser.problem_mark.column + 1, parser.problem,
				      parser.context, parser.context_mark.line + 1);
		else
			rc = lb_error(LB_ERR_CONFIG, "%s: line %zu, column %zu: YAML syntax error: %s",
				      what, parser.problem_mark.line + 1,
				      parser.problem_mark.column + 1,
				      parser.problem ? parser.problem : "unknown");
		yaml_parser_delete(&parser);
		return rc;
	}
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (root)
		rc = build_node(&doc, root, origin, 0, out, what);
	yaml_document_delete(&doc);
	/* one document per config: a second one would be ignored silently */
	if (!rc && !yaml_parser_load(&parser, &doc)) {
		rc = lb_error(LB_ERR_CONFIG,
			      "%s: line %zu: YAML syntax error after the first document: %s (allowed: "
			      "one document)",
			      what, parser.problem_mark.line + 1,
			      parser.problem ? parser.problem : "unknown");
	} else if (!rc) {
		yaml_node_t *more = yaml_document_get_root_node(&doc);
		if (more)
			rc = lb_error(LB_ERR_CONFIG,
				      "%s: line %zu: a second YAML document (allowed: one document; "
				      "remove the '---' and what follows, or merge it)",
				      what, more->start_mark.line + 1);
		yaml_document_delete(&doc);
	}
	if (rc) {
		node_free(*out);
		*out = NULL;
	}
	yaml_parser_delete(&parser);
	return rc;
}

/* Drop `key:` entries with an empty / null value: they mean "the default". */
static void drop_nulls(struct node *n)
{
	for (size_t i = 0; i < n->n;) {
		if (n->kind == NODE_MAP && is_null_scalar(n->e[i].val)) {
			map_remove(n, i);
			continue;
		}
		drop_nulls(n->e[i].val);
		i++;
	}
}

/* ---- --set overrides ---- */

static int apply_override(struct load *ld, const char *set)
{
	const char *eq = strchr(set, '=');
	char keys[256];
	if (!eq || eq == set)
		return lb_error(LB_ERR_CONFIG,
				"--set %s: expected key=value, e.g. optimizer.lr=0.1 "
				"(allowed: dotted keys of the config, see docs/config.md)",
				set);
	size_t klen = (size_t)(eq - set);
	if (klen >= sizeof keys)
		return lb_error(LB_ERR_CONFIG, "--set %s: key too long", set);
	memcpy(keys, set, klen);
	keys[klen] = '\0';

	struct node *val;
	char what[300];
	snprintf(what, sizeof what, "--set %s", set);
	int rc = parse_tree(eq + 1, strlen(eq + 1), what, FROM_SET, &val);
	if (rc)
		return rc;
	if (!val && !(val = scalar_new("", FROM_SET, 0)))
		return lb_error(LB_ERR_OOM, "out of memory");

	/* Walk key components through the schema, creating mappings as needed. */
	const cyaml_schema_value_t *sv = &config_schema;
	struct node *n = ld->root;
	char parent[256] = "";
	char *save = NULL;
	for (char *tok = strtok_r(keys, ".", &save); tok; tok = strtok_r(NULL, ".", &save)) {
		long index = -1;
		char *br = strchr(tok, '[');
		if (br) {
			char *end;
			index = strtol(br + 1, &end, 10);
			if (index < 0 || end == br + 1 || strcmp(end, "]") != 0) {
				rc = lb_error(LB_ERR_CONFIG, "--set %s: bad index in '%s'", set, tok);
				goto out;
			}
			*br = '\0';
		}
		if (sv->type != CYAML_MAPPING) {
			rc = lb_error(LB_ERR_CONFIG, "--set %s: '%s' is not a mapping", set, parent);
			goto out;
		}
		const cyaml_schema_field_t *f = lb_cyaml_field_find(sv->mapping.fields, tok);
		if (!f) {
			char allowed[512];
			lb_cyaml_allowed_keys(sv->mapping.fields, NULL, allowed, sizeof allowed);
			if (parent[0])
				rc = lb_error(LB_ERR_CONFIG,
					      "--set %s: unknown key '%s' in '%s' (allowed: %s)", set,
					      tok, parent, allowed);
			else
				rc = lb_error(LB_ERR_CONFIG,
					      "--set %s: unknown key '%s' at the top level (allowed: %s)",
					      set, tok, allowed);
			goto out;
		}
		struct path p;
		path_join(&p, parent, tok);
		snprintf(parent, sizeof parent, "%s", p.s);
		if (n->kind != NODE_MAP) {
			rc = lb_error(LB_ERR_CONFIG, "--set %s: the config's '%s' is not a mapping", set,
				      parent);
			goto out;
		}
		int last = save == NULL || *save == '\0';
		struct entry *e = map_find(n, tok);
		if (index >= 0) {
			if (f->value.type != CYAML_SEQUENCE) {
				rc = lb_error(LB_ERR_CONFIG, "--set %s: '%s' is not a sequence", set,
					      parent);
				goto out;
			}
			if (!e || e->val->kind != NODE_SEQ || (size_t)index >= e->val->n) {
				size_t have = e && e->val->kind == NODE_SEQ ? e->val->n : 0;
				if (have)
					rc = lb_error(LB_ERR_CONFIG,
						      "--set %s: '%s' has no entry %ld (allowed: 0 to %zu)",
						      set, parent, index, have - 1);
				else
					rc = lb_error(LB_ERR_CONFIG,
						      "--set %s: '%s' has no entries in the config file "
						      "(allowed: set the whole list, e.g. %s=[...])",
						      set, parent, parent);
				goto out;
			}
			path_index(&p, parent, (size_t)index);
			snprintf(parent, sizeof parent, "%s", p.s);
			sv = f->value.sequence.entry;
			if (last) {
				val->line = 0;
				node_free(e->val->e[index].val);
				e->val->e[index].val = val;
				val = NULL;
				goto out;
			}
			n = e->val->e[index].val;
			continue;
		}
		sv = &f->value;
		if (last) {
			if (e) {
				node_free(e->val);
				e->val = val;
			} else if (node_push(n, tok, val)) {
				val = NULL;
				rc = lb_error(LB_ERR_OOM, "out of memory");
				goto out;
			}
			val = NULL;
			goto out;
		}
		if (!e) {
			if (node_push(n, tok, node_new(NODE_MAP, FROM_SET, 0))) {
				rc = lb_error(LB_ERR_OOM, "out of memory");
				goto out;
			}
			e = &n->e[n->n - 1];
		}
		n = e->val;
	}
	rc = lb_error(LB_ERR_CONFIG, "--set %s: empty key", set);
out:
	node_free(val);
	return rc;
}

/* ---- defaults ---- */

/* Copy every key of def missing from dst; recurse where both are mappings. */
static int fill_missing(struct node *dst, const struct node *def)
{
	if (!dst || !def || dst->kind != NODE_MAP || def->kind != NODE_MAP)
		return LB_OK;
	for (size_t i = 0; i < def->n; i++) {
		struct entry *e = map_find(dst, def->e[i].key);
		if (e) {
			if (fill_missing(e->val, def->e[i].val))
				return LB_ERR_OOM;
		} else if (node_push(dst, def->e[i].key, node_copy(def->e[i].val, FROM_DEFAULT, 0))) {
			return LB_ERR_OOM;
		}
	}
	return LB_OK;
}

static int add_scalar(struct node *m, const char *key, const char *text)
{
	return node_push(m, key, scalar_new(text, FROM_DEFAULT, 0));
}

static int fill_layers(struct load *ld, struct node *layers)
{
	int count[LB_OP__COUNT] = {0};
	const struct node *op_def = map_get(ld->defaults, "op");
	for (size_t i = 0; i < layers->n; i++) {
		struct node *l = layers->e[i].val;
		struct path p;
		char allowed[256];
		if (l->kind != NODE_MAP)
			continue; /* the schema check reports it */
		struct node *op = map_get(l, "op");
		path_index(&p, "model.layers", i);
		if (!op) {
			lb_cyaml_allowed_enum(&layer_fields[0].value, allowed, sizeof allowed);
			return bad(ld, p.s, "missing key 'op' (allowed: %s)", allowed);
		}
		if (op->kind != NODE_SCALAR)
			continue;
		int k = -1;
		for (uint32_t j = 0; j < N_OF(op_strings); j++)
			if (strcmp(op_strings[j].str, op->text) == 0)
				k = (int)op_strings[j].val;
		if (k < 0)
			continue; /* libcyaml reports the bad enum */
		count[k]++;
		if (!map_find(l, "name")) {
			char name[64];
			snprintf(name, sizeof name, "%s%d", op->text, count[k]);
			if (add_scalar(l, "name", name))
				return LB_ERR_OOM;
		}
		if ((k == LB_OP_MAXPOOL || k == LB_OP_AVGPOOL) && !map_find(l, "stride")) {
			struct node *kern = map_get(l, "kernel");
			if (kern && kern->kind == NODE_SCALAR && add_scalar(l, "stride", kern->text))
				return LB_ERR_OOM;
		}
		if (fill_missing(l, map_get(op_def, op->text)) ||
		    fill_missing(l, map_get(ld->defaults, "layer")))
			return LB_ERR_OOM;
	}
	return LB_OK;
}

static int apply_defaults(struct load *ld)
{
	struct node *root = ld->root;
	if (fill_missing(root, map_get(ld->defaults, "config")))
		return lb_error(LB_ERR_OOM, "out of memory");

	struct node *data = map_get(root, "data");
	struct node *ds = map_get(data, "dataset");
	if (ds && ds->kind == NODE_SCALAR &&
	    fill_missing(data, map_get(map_get(ld->defaults, "dataset"), ds->text)))
		return lb_error(LB_ERR_OOM, "out of memory");

	struct node *layers = map_get(map_get(root, "model"), "layers");
	if (layers && layers->kind == NODE_SEQ) {
		int rc = fill_layers(ld, layers);
		if (rc == LB_ERR_OOM)
			return lb_error(LB_ERR_OOM, "out of memory");
		if (rc)
			return rc;
	}
	struct node *groups = map_get(map_get(root, "optimizer"), "groups");
	if (groups && groups->kind == NODE_SEQ)
		for (size_t i = 0; i < groups->n; i++)
			if (fill_missing(groups->e[i].val, map_get(ld->defaults, "group")))
				return lb_error(LB_ERR_OOM, "out of memory");
	struct node *ql = map_get(map_get(root, "quant"), "layers");
	if (ql && ql->kind == NODE_SEQ)
		for (size_t i = 0; i < ql->n; i++)
			if (fill_missing(ql->e[i].val, map_get(ld->defaults, "qlayer")))
				return lb_error(LB_ERR_OOM, "out of memory");
	return LB_OK;
}

/* ---- schema check on the tree (what libcyaml 1.3 does not check) ---- */

static const char *kind_name(enum node_kind k)
{
	return k == NODE_MAP ? "a mapping" : k == NODE_SEQ ? "a sequence" : "a scalar";
}

static int check_uint(const struct load *ld, const char *path, const struct node *n,
		      uint32_t size)
{
	const char *t = n->text;
	uint64_t max = size >= 8 ? UINT64_MAX : size == 4 ? UINT32_MAX : size == 2 ? 0xffff : 0xff;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(t, &end, 0);
	if (!t[0] || t[0] == '-' || t[0] == '+' || *end || errno || v > max)
		return bad(ld, path, "'%s' is not an unsigned integer (allowed: 0 to %" PRIu64 ")", t,
			   max);
	return LB_OK;
}

static int check_tree(const struct load *ld, const cyaml_schema_value_t *sv, struct node *n,
		      const char *path)
{
	const char *shown = path[0] ? path : "<top level>";
	switch (sv->type) {
	case CYAML_MAPPING:
		if (n->kind != NODE_MAP)
			return bad(ld, shown, "expected a mapping, found %s", kind_name(n->kind));
		for (size_t i = 0; i < n->n; i++) {
			const cyaml_schema_field_t *f = lb_cyaml_field_find(sv->mapping.fields, n->e[i].key);
			struct path p;
			path_join(&p, path, n->e[i].key);
			if (!f) {
				char allowed[512];
				lb_cyaml_allowed_keys(sv->mapping.fields, NULL, allowed, sizeof allowed);
				if (path[0])
					return bad(ld, p.s, "unknown key '%s' in '%s' (allowed: %s)",
						   n->e[i].key, path, allowed);
				return bad(ld, p.s, "unknown key '%s' at the top level (allowed: %s)",
					   n->e[i].key, allowed);
			}
			int rc = check_tree(ld, &f->value, n->e[i].val, p.s);
			if (rc)
				return rc;
		}
		return LB_OK;
	case CYAML_SEQUENCE:
		if (n->kind != NODE_SEQ)
			return bad(ld, shown, "expected a sequence, found %s (allowed: [a, b, ...])",
				   kind_name(n->kind));
		for (size_t i = 0; i < n->n; i++) {
			struct path p;
			path_index(&p, path, i);
			int rc = check_tree(ld, sv->sequence.entry, n->e[i].val, p.s);
			if (rc)
				return rc;
		}
		return LB_OK;
	default:
		break;
	}
	if (n->kind != NODE_SCALAR)
		return bad(ld, shown, "expected a single value, found %s", kind_name(n->kind));
	if (sv->type == CYAML_UINT)
		return check_uint(ld, shown, n, sv->data_size);
	if (sv->type == CYAML_BOOL) {
		static const char *const words[] = {"true", "false", "yes", "no", "on", "off"};
		for (size_t i = 0; i < sizeof words / sizeof *words; i++)
			if (strcasecmp(n->text, words[i]) == 0)
				return LB_OK;
		return bad(ld, shown, "'%s' is not a boolean (allowed: true, false)", n->text);
	}
	return LB_OK; /* floats, enums and strings: libcyaml checks them */
}

/* ---- tree -> YAML text for libcyaml ---- */

struct buf {
	char *p;
	size_t n, cap;
	int oom;
};

static int buf_write(void *data, unsigned char *bytes, size_t size)
{
	struct buf *b = data;
	if (b->n + size + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->n + size + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = 1;
			return 0;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, bytes, size);
	b->n += size;
	b->p[b->n] = '\0';
	return 1;
}

static int emit_node(yaml_emitter_t *em, const struct node *n)
{
	yaml_event_t ev;
	switch (n->kind) {
	case NODE_SCALAR:
		if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)n->text,
						  (int)strlen(n->text), 1, 1,
						  n->quoted ? YAML_DOUBLE_QUOTED_SCALAR_STYLE
							    : YAML_PLAIN_SCALAR_STYLE))
			return 0;
		return yaml_emitter_emit(em, &ev);
	case NODE_SEQ:
		if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
							  YAML_BLOCK_SEQUENCE_STYLE) ||
		    !yaml_emitter_emit(em, &ev))
			return 0;
		for (size_t i = 0; i < n->n; i++)
			if (!emit_node(em, n->e[i].val))
				return 0;
		yaml_sequence_end_event_initialize(&ev);
		return yaml_emitter_emit(em, &ev);
	case NODE_MAP:
		if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
							 YAML_BLOCK_MAPPING_STYLE) ||
		    !yaml_emitter_emit(em, &ev))
			return 0;
		for (size_t i = 0; i < n->n; i++) {
			if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)n->e[i].key,
							  (int)strlen(n->e[i].key), 1, 1,
							  YAML_ANY_SCALAR_STYLE) ||
			    !yaml_emitter_emit(em, &ev) || !emit_node(em, n->e[i].val))
				return 0;
		}
		yaml_mapping_end_event_initialize(&ev);
		return yaml_emitter_emit(em, &ev);
	}
	return 0;
}

static int emit_tree(const struct node *root, struct buf *b)
{
	yaml_emitter_t em;
	yaml_event_t ev;
	int ok;
	if (!yaml_emitter_initialize(&em))
		return lb_error(LB_ERR_OOM, "out of memory");
	yaml_emitter_set_output(&em, buf_write, b);
	yaml_emitter_set_unicode(&em, 1);
	yaml_emitter_set_width(&em, -1);
	ok = yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) &&
	     yaml_emitter_emit(&em, &ev) &&
	     yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) &&
	     yaml_emitter_emit(&em, &ev) && emit_node(&em, root) &&
	     yaml_document_end_event_initialize(&ev, 1) && yaml_emitter_emit(&em, &ev) &&
	     yaml_stream_end_event_initialize(&ev) && yaml_emitter_emit(&em, &ev);
	const char *problem = em.problem;
	yaml_emitter_delete(&em);
	if (b->oom)
		return lb_error(LB_ERR_OOM, "out of memory");
	if (!ok)
		return lb_error(LB_ERR_CONFIG, "cannot emit the config: %s",
				problem ? problem : "libyaml emitter error");
	return LB_OK;
}

/* ---- libcyaml with a captured log ---- */


/* Turn libcyaml's log ("Load: Invalid FLOAT value: abc" / "Load: Backtrace:"
 * / "  in mapping field 'lr' (line: 3, column: 7)" / "  in sequence entry
 * '2' ..." innermost first) into one message on the key path. */
static int cyaml_message(const struct load *ld, cyaml_err_t err, const char *log)
{
	char problem[512] = "";
	const char *parts[32];
	size_t n_parts = 0;
	char copy[sizeof ((struct lb_cylog *)0)->text];
	snprintf(copy, sizeof copy, "%s", log);
	char *save = NULL;
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "  in ", 5) == 0) {
			if (n_parts < 32)
				parts[n_parts++] = line + 5;
		} else if (strncmp(line, "Load: ", 6) == 0 && strcmp(line, "Load: Backtrace:") != 0 &&
			   !problem[0]) {
			snprintf(problem, sizeof problem, "%s", line + 6);
		}
	}
	char path[256] = "";
	for (size_t i = n_parts; i-- > 0;) {
		const char *q = strchr(parts[i], '\'');
		const char *q2 = q ? strchr(q + 1, '\'') : NULL;
		if (!q2)
			continue; /* "mapping (line: ...)" */
		size_t len = strlen(path);
		if (strncmp(parts[i], "mapping field", 13) == 0)
			snprintf(path + len, sizeof path - len, "%s%.*s", len ? "." : "",
				 (int)(q2 - q - 1), q + 1);
		else if (strncmp(parts[i], "sequence entry", 14) == 0) /* 1-based */
			snprintf(path + len, sizeof path - len, "[%ld]", strtol(q + 1, NULL, 10) - 1);
	}
	if (!problem[0])
		snprintf(problem, sizeof problem, "%s", cyaml_strerror(err));
	if (!path[0])
		return lb_error(LB_ERR_CONFIG, "%s: %s", ld->origin, problem);

	const cyaml_schema_value_t *sv = schema_find(path);
	const struct node *n = tree_find(ld->root, path);
	const char *text = n && n->kind == NODE_SCALAR ? n->text : NULL;
	if (sv && sv->type == CYAML_FLOAT && text &&
	    (strstr(problem, "overflow") || strstr(problem, "underflow")))
		return bad(ld, path, "'%s' is out of the float range (allowed: a finite number)", text);
	if (sv && text && err == CYAML_ERR_INVALID_VALUE) {
		char allowed[512];
		switch (sv->type) {
		case CYAML_ENUM:
			lb_cyaml_allowed_enum(sv, allowed, sizeof allowed);
			return bad(ld, path, "'%s' is not a known value (allowed: %s)", text, allowed);
		case CYAML_FLOAT:
			return bad(ld, path, "'%s' is not a number (allowed: a finite number such as 0.1 or 1e-5)",
				   text);
		default:
			break;
		}
	}
	return bad(ld, path, "%s", problem);
}

/* ---- post-load: float canonicalisation and semantic checks ---- */

typedef int (*leaf_fn)(const cyaml_schema_value_t *v, void *p, unsigned count, int is_seq,
		       const char *path, void *ctx);

/* Visit every leaf of data under a mapping schema. Scalars: count 1, is_seq 0;
 * sequences of scalars: v is the entry schema, p the array; an empty sequence
 * of mappings is reported as a leaf with count 0. */
static int walk(const cyaml_schema_field_t *fields, void *base, const char *path, leaf_fn fn,
		void *ctx)
{
	for (const cyaml_schema_field_t *f = fields; f->key; f++) {
		struct path p;
		char *at = (char *)base + f->data_offset;
		int rc;
		path_join(&p, path, f->key);
		if (f->value.type == CYAML_MAPPING) {
			rc = walk(f->value.mapping.fields, at, p.s, fn, ctx);
		} else if (f->value.type == CYAML_SEQUENCE) {
			char *arr = *(char **)at;
			unsigned count = 0;
			const cyaml_schema_value_t *ev = f->value.sequence.entry;
			memcpy(&count, (char *)base + f->count_offset, sizeof count);
			if (ev->type == CYAML_MAPPING && count) {
				rc = LB_OK;
				for (unsigned i = 0; i < count && !rc; i++) {
					struct path q;
					path_index(&q, p.s, i);
					rc = walk(ev->mapping.fields, arr + (size_t)i * ev->data_size, q.s,
						  fn, ctx);
				}
			} else {
				rc = fn(ev, arr, count, 1, p.s, ctx);
			}
		} else if ((f->value.flags & CYAML_FLAG_POINTER) && f->value.type != CYAML_STRING) {
			rc = fn(&f->value, *(void **)at, 1, 0, p.s, ctx);
		} else {
			rc = fn(&f->value, at, 1, 0, p.s, ctx);
		}
		if (rc)
			return rc;
	}
	return LB_OK;
}

/* libcyaml writes floats with "%g"; round every float through it at load so
 * the dump reloads to the identical value, and reject non-finite values. */
static int canon_float(const cyaml_schema_value_t *v, void *p, unsigned count, int is_seq,
		       const char *path, void *ctx)
{
	(void)is_seq;
	if (v->type != CYAML_FLOAT || !p)
		return LB_OK;
	for (unsigned i = 0; i < count; i++) {
		float *f = (float *)p + i;
		char s[48];
		if (!isfinite(*f))
			return bad(ctx, path, "%g is not finite (allowed: a finite number)", (double)*f);
		snprintf(s, sizeof s, "%g", (double)*f);
		*f = strtof(s, NULL);
	}
	return LB_OK;
}

static int in01(float v)
{
	return v >= 0.0f && v < 1.0f;
}

static const struct lb_layer_spec *layer_named(const struct lb_model_cfg *m, unsigned before,
					       const char *name)
{
	for (unsigned j = 0; j < before; j++)
		if (m->layers[j].name && strcmp(m->layers[j].name, name) == 0)
			return &m->layers[j];
	return NULL;
}

static int check_ref(const struct load *ld, const struct lb_model_cfg *m, unsigned i,
		     const char *key, const char *ref)
{
	struct path p;
	char names[512];
	size_t len;
	if (!ref || strcmp(ref, "input") == 0 || layer_named(m, i, ref))
		return LB_OK;
	len = (size_t)snprintf(names, sizeof names, "input");
	for (unsigned j = 0; j < i && len < sizeof names; j++)
		len += (size_t)snprintf(names + len, sizeof names - len, ", %s", m->layers[j].name);
	snprintf(p.s, sizeof p.s, "model.layers[%u].%s", i, key);
	return bad(ld, p.s, "'%s' is not the name of an earlier layer (allowed: %s)", ref, names);
}

static int check_layers(const struct load *ld, const struct lb_model_cfg *m)
{
	for (unsigned i = 0; i < m->n_layers; i++) {
		const struct lb_layer_spec *l = &m->layers[i];
		char k[96];
		int rc;
#define LK(field) (snprintf(k, sizeof k, "model.layers[%u].%s", i, field), k)
		if (!l->name || !l->name[0])
			return bad(ld, LK("name"), "empty name (allowed: a unique non-empty name)");
		if (strcmp(l->name, "input") == 0 || layer_named(m, i, l->name))
			return bad(ld, LK("name"),
				   "'%s' is used twice (allowed: unique names; 'input' is reserved)",
				   l->name);
		if ((l->op == LB_OP_LINEAR || l->op == LB_OP_CONV) && l->out < 1)
			return bad(ld, LK("out"), "%s needs out >= 1 (allowed: >= 1)",
				   lb_op_name(l->op));
		if (l->op == LB_OP_CONV || l->op == LB_OP_MAXPOOL || l->op == LB_OP_AVGPOOL) {
			if (l->kernel < 1)
				return bad(ld, LK("kernel"), "%s needs kernel >= 1 (allowed: >= 1)",
					   lb_op_name(l->op));
			if (l->stride < 1)
				return bad(ld, LK("stride"), "%u is out of range (allowed: >= 1)",
					   l->stride);
		}
		if (l->op == LB_OP_ADD && (!l->from || !l->from[0]))
			return bad(ld, LK("op"),
				   "add needs 'from' (allowed: the name of an earlier layer)");
		if (l->op == LB_OP_DROPOUT && !in01(l->p))
			return bad(ld, LK("p"), "%g is out of range (allowed: 0 <= p < 1)",
				   (double)l->p);
		if ((rc = check_ref(ld, m, i, "input", l->input)) ||
		    (rc = check_ref(ld, m, i, "from", l->from)))
			return rc;
#undef LK
	}
	return LB_OK;
}

/* 1 when the user gave (in the file or a --set) a value at or under path
 * that differs from the built-in default (so a canonical dump, which writes
 * every key, does not count as setting anything). */
static int same_scalar(const char *a, const char *b)
{
	char *ea, *eb;
	if (strcmp(a, b) == 0)
		return 1;
	double x = strtod(a, &ea), y = strtod(b, &eb);
	return ea != a && eb != b && !*ea && !*eb && (float)x == (float)y;
}

static int node_changed(const struct node *n, const struct node *def)
{
	if (!n)
		return 0;
	if (n->kind == NODE_SCALAR)
		return n->origin != FROM_DEFAULT &&
		       (!def || def->kind != NODE_SCALAR || !same_scalar(n->text, def->text));
	for (size_t i = 0; i < n->n; i++) {
		const struct node *d = NULL;
		if (def && def->kind == NODE_MAP && n->kind == NODE_MAP)
			d = map_get(def, n->e[i].key);
		if (node_changed(n->e[i].val, d))
			return 1;
	}
	return 0;
}

static int user_wrote(const struct load *ld, const char *path)
{
	return node_changed(tree_find(ld->root, path),
			    tree_find(map_get(ld->defaults, "config"), path));
}

static int qm_weights_ok(enum lb_qmethod q)
{
	return q != LB_QM_PACT && q != LB_QM_INHERIT;
}

static int qm_acts_ok(enum lb_qmethod q)
{
	return q != LB_QM_SR && q != LB_QM_BSQ && q != LB_QM_INHERIT;
}

/* Bits allowed for a method: [lo, hi]. */
static void qm_bits_range(enum lb_qmethod q, int is_act, unsigned *lo, unsigned *hi)
{
	*lo = 1;
	*hi = 16;
	switch (q) {
	case LB_QM_RQ:
	case LB_QM_RQ_ST:
	case LB_QM_SRQ:
		*hi = 8; /* LB_RQ_MAX_BITS: 2^b grid points per element */
		if (!is_act)
			*lo = 2;
		break;
	case LB_QM_WRPN:
		if (!is_act)
			*lo = 2;
		break;
	case LB_QM_UNIFORM:
	case LB_QM_LSQ:
	case LB_QM_SR:
		if (!is_act)
			*lo = 2;
		break;
	default:
		break;
	}
}

static int check_qbits(const struct load *ld, const char *key, enum lb_qmethod q, unsigned bits,
		       int is_act)
{
	unsigned lo, hi;
	if (q == LB_QM_NONE || q == LB_QM_INHERIT)
		return LB_OK;
	qm_bits_range(q, is_act, &lo, &hi);
	if (bits < lo || bits > hi)
		return bad(ld, key, "%u is out of range for %s %s (allowed: %u to %u)", bits,
			   lb_qmethod_name(q), is_act ? "activations" : "weights", lo, hi);
	return LB_OK;
}

/* Does any quantizer (section default or layer entry) use method q? */
static int q_uses(const struct lb_quant_cfg *q, int weights, int acts, const enum lb_qmethod *m,
		  int nm)
{
	for (int k = 0; k < nm; k++) {
		if ((weights && q->weights.method == m[k]) || (acts && q->activations.method == m[k]))
			return 1;
		for (unsigned i = 0; i < q->n_layers; i++)
			if ((weights && q->layers[i].weights_method == m[k]) ||
			    (acts && q->layers[i].activations_method == m[k]))
				return 1;
	}
	return 0;
}

static int validate_waveq(const struct load *ld, const struct lb_quant_cfg *q)
{
	const struct lb_waveq_cfg *wv = &q->waveq;
	enum lb_qmethod base = wv->align == LB_WAVEQ_ALIGN_WRPN ? LB_QM_WRPN : LB_QM_DOREFA;
	const char *bn = lb_qmethod_name(base);
	if (!wv->enabled) {
		if (user_wrote(ld, "quant.waveq"))
			return bad(ld, "quant.waveq", "settings given but WaveQ is off (allowed: add "
				   "quant.waveq.enabled: true)");
		return LB_OK;
	}
	/* learned beta: the full-precision phase (the released code regularises FP
	 * weights); fixed beta = bits - 1: the base quantizer's forward */
	enum lb_qmethod want = wv->learn_beta ? LB_QM_NONE : base;
	if (q->weights.method != want)
		return bad(ld, "quant.weights.method",
			   wv->learn_beta ? "'%s' while WaveQ learns beta (allowed: none: beta is learned "
					    "on full-precision weights; or quant.waveq.learn_beta: "
					    "false with weights method %s)"
					  : "'%s' while WaveQ keeps beta = bits - 1 (allowed: %s, the "
					    "quantizer quant.waveq.align names)",
			   lb_qmethod_name(q->weights.method), bn);
	for (unsigned i = 0; i < q->n_layers; i++) {
		enum lb_qmethod w = q->layers[i].weights_method;
		if (w != LB_QM_INHERIT && w != LB_QM_NONE && w != base) {
			char k[96];
			snprintf(k, sizeof k, "quant.layers[%u].weights_method", i);
			return bad(ld, k, "'%s' with WaveQ aligned to %s (allowed: inherit, none, %s)",
				   lb_qmethod_name(w), bn, bn);
		}
		if (wv->learn_beta && w == base) {
			char k[96];
			snprintf(k, sizeof k, "quant.layers[%u].weights_method", i);
			return bad(ld, k, "'%s' while WaveQ learns beta on full-precision weights "
				   "(allowed: inherit, none)", lb_qmethod_name(w));
		}
	}
	if (!(wv->lambda_q >= 0.0f))
		return bad(ld, "quant.waveq.lambda_q", "%g is out of range (allowed: >= 0)",
			   (double)wv->lambda_q);
	if (!(wv->lambda_beta >= 0.0f))
		return bad(ld, "quant.waveq.lambda_beta", "%g is out of range (allowed: >= 0)",
			   (double)wv->lambda_beta);
	if (!(wv->beta_min >= 1.0f && wv->beta_min <= 15.0f))
		return bad(ld, "quant.waveq.beta_min", "%g is out of range (allowed: 1 to 15)",
			   (double)wv->beta_min);
	if (!(wv->beta_max > wv->beta_min && wv->beta_max <= 15.0f))
		return bad(ld, "quant.waveq.beta_max",
			   "%g is out of range (allowed: beta_min %g < beta_max <= 15)",
			   (double)wv->beta_max, (double)wv->beta_min);
	if (!(wv->beta_init >= wv->beta_min && wv->beta_init <= wv->beta_max))
		return bad(ld, "quant.waveq.beta_init",
			   "%g is out of range (allowed: beta_min %g to beta_max %g)",
			   (double)wv->beta_init, (double)wv->beta_min, (double)wv->beta_max);
	if (!(wv->step_center >= 0.0f && wv->step_center <= 1.0f))
		return bad(ld, "quant.waveq.step_center",
			   "%g is out of range (allowed: 0 to 1, a fraction of train.epochs)",
			   (double)wv->step_center);
	if (!(wv->step_width > 0.0f && wv->step_width <= 1.0f))
		return bad(ld, "quant.waveq.step_width",
			   "%g is out of range (allowed: 0 < width <= 1, a fraction of train.epochs)",
			   (double)wv->step_width);
	return LB_OK;
}

static int validate_bsq(const struct load *ld, const struct lb_quant_cfg *q)
{
	static const enum lb_qmethod bsq[] = {LB_QM_BSQ};
	const struct lb_bsq_cfg *b = &q->bsq;
	if (!q_uses(q, 1, 0, bsq, 1)) {
		if (user_wrote(ld, "quant.bsq"))
			return bad(ld, "quant.bsq", "set, but no weights use bsq (allowed: only with "
				   "weights method bsq)");
		return LB_OK;
	}
	if (!(b->alpha >= 0.0f))
		return bad(ld, "quant.bsq.alpha", "%g is out of range (allowed: >= 0)", (double)b->alpha);
	if (b->requant_every < 1)
		return bad(ld, "quant.bsq.requant_every",
			   "0 is out of range (allowed: >= 1 epochs between re-quantizations)");
	if (!(b->threshold >= 0.0f && b->threshold < 1.0f))
		return bad(ld, "quant.bsq.threshold",
			   "%g is out of range (allowed: 0 <= threshold < 1, a fraction of the weights)",
			   (double)b->threshold);
	unsigned top = q->weights.method == LB_QM_BSQ ? q->weights.bits : 1;
	for (unsigned i = 0; i < q->n_layers; i++)
		if (q->layers[i].weights_method == LB_QM_BSQ && q->layers[i].weights_bits > top)
			top = q->layers[i].weights_bits;
	if (b->max_bits < top || b->max_bits > 16)
		return bad(ld, "quant.bsq.max_bits",
			   "%u is out of range (allowed: the starting bits %u to 16)", b->max_bits, top);
	if (q->waveq.enabled)
		return bad(ld, "quant.waveq.enabled",
			   "WaveQ and BSQ cannot be combined (allowed: false with weights method bsq)");
	return LB_OK;
}

static int validate_gradl1(const struct load *ld, const struct lb_config *c)
{
	const struct lb_gradl1_cfg *r = &c->gradl1;
	const struct lb_quant_cfg *q = &c->quant;
	if (!(r->lambda >= 0.0f))
		return bad(ld, "gradl1.lambda", "%g is out of range (allowed: >= 0)", (double)r->lambda);
	if (!(r->lambda_w >= 0.0f))
		return bad(ld, "gradl1.lambda_w", "%g is out of range (allowed: >= 0)",
			   (double)r->lambda_w);
	if (!(r->lambda_a >= 0.0f))
		return bad(ld, "gradl1.lambda_a", "%g is out of range (allowed: >= 0)",
			   (double)r->lambda_a);
	if (r->lambda > 0.0f && (r->lambda_w > 0.0f || r->lambda_a > 0.0f))
		return bad(ld, r->lambda_w > 0.0f ? "gradl1.lambda_w" : "gradl1.lambda_a",
			   "set together with gradl1.lambda (allowed: lambda for both terms, or "
			   "lambda_w and lambda_a, not both)");
	if (!(r->fd_eps > 0.0f && r->fd_eps < 1.0f))
		return bad(ld, "gradl1.fd_eps", "%g is out of range (allowed: 0 < fd_eps < 1)",
			   (double)r->fd_eps);
	if (!lb_gradl1_on(r)) {
		if (user_wrote(ld, "gradl1.start_epoch") || user_wrote(ld, "gradl1.hvp") ||
		    user_wrote(ld, "gradl1.fd_eps"))
			return bad(ld, "gradl1", "settings given but the regulariser is off (allowed: "
				   "set gradl1.lambda > 0)");
		return LB_OK;
	}
	if (r->start_epoch >= c->train.epochs)
		return bad(ld, "gradl1.start_epoch",
			   "%u leaves no epoch with the regulariser (allowed: < train.epochs %u)",
			   r->start_epoch, c->train.epochs);
	if (q->weights.method != LB_QM_NONE || q->activations.method != LB_QM_NONE || q->n_layers)
		return bad(ld, "gradl1.lambda",
			   "Gradient-L1 trains a full-precision model for post-training quantization "
			   "(allowed: quant.weights.method and quant.activations.method none and no "
			   "quant.layers; evaluate with lowbit ptq)");
	return LB_OK;
}

int lb_gradl1_on(const struct lb_gradl1_cfg *r)
{
	return r->lambda > 0.0f || r->lambda_w > 0.0f || r->lambda_a > 0.0f;
}

void lb_gradl1_lambdas(const struct lb_gradl1_cfg *r, float *lambda_w, float *lambda_a)
{
	*lambda_w = r->lambda > 0.0f ? r->lambda : r->lambda_w;
	*lambda_a = r->lambda > 0.0f ? r->lambda : r->lambda_a;
}

static int validate_quant(const struct load *ld, const struct lb_quant_cfg *q)
{
	static const enum lb_qmethod rq_family[] = {LB_QM_RQ, LB_QM_RQ_ST, LB_QM_SRQ};
	static const enum lb_qmethod srq[] = {LB_QM_SRQ};
	static const enum lb_qmethod pact[] = {LB_QM_PACT};
	static const enum lb_qmethod dorefa[] = {LB_QM_DOREFA};
	static const enum lb_qmethod lsq[] = {LB_QM_LSQ};
	const char *wm = lb_qmethod_name(q->weights.method), *am = lb_qmethod_name(q->activations.method);
	int rc;
	if (!qm_weights_ok(q->weights.method))
		return bad(ld, "quant.weights.method",
			   "'%s' cannot quantize weights (allowed: none, uniform, dorefa, wrpn, lsq, sr, "
			   "rq, rq-st, srq, bsq)", wm);
	if (!qm_acts_ok(q->activations.method))
		return bad(ld, "quant.activations.method",
			   "'%s' cannot quantize activations (allowed: none, uniform, dorefa, wrpn, "
			   "pact, lsq, rq, rq-st, srq)", am);
	if ((rc = check_qbits(ld, "quant.weights.bits", q->weights.method, q->weights.bits, 0)) ||
	    (rc = check_qbits(ld, "quant.activations.bits", q->activations.method,
			      q->activations.bits, 1)))
		return rc;
	if (q->activations.per_channel)
		return bad(ld, "quant.activations.per_channel",
			   "activations are quantized per tensor (allowed: false)");
	if (q->weights.per_channel && q->weights.method != LB_QM_UNIFORM &&
	    q->weights.method != LB_QM_LSQ && q->weights.method != LB_QM_NONE)
		return bad(ld, "quant.weights.per_channel",
			   "%s has one scale per tensor (allowed: true only with uniform or lsq)", wm);
	for (unsigned i = 0; i < q->n_layers; i++) {
		const struct lb_quant_layer_cfg *l = &q->layers[i];
		char k[96];
		if (!l->match || !l->match[0]) {
			snprintf(k, sizeof k, "quant.layers[%u]", i);
			return bad(ld, k, "missing key 'match' (allowed: a glob on conv/linear layer "
				   "names, e.g. \"conv*\" or fc2)");
		}
		enum lb_qmethod w = l->weights_method == LB_QM_INHERIT ? q->weights.method : l->weights_method;
		enum lb_qmethod a = l->activations_method == LB_QM_INHERIT ? q->activations.method
									   : l->activations_method;
		snprintf(k, sizeof k, "quant.layers[%u].weights_method", i);
		if (l->weights_method != LB_QM_INHERIT && !qm_weights_ok(w))
			return bad(ld, k, "'%s' cannot quantize weights (allowed: inherit, none, uniform, "
				   "dorefa, wrpn, lsq, sr, rq, rq-st, srq, bsq)", lb_qmethod_name(w));
		snprintf(k, sizeof k, "quant.layers[%u].activations_method", i);
		if (l->activations_method != LB_QM_INHERIT && !qm_acts_ok(a))
			return bad(ld, k, "'%s' cannot quantize activations (allowed: inherit, none, "
				   "uniform, dorefa, wrpn, pact, lsq, rq, rq-st, srq)", lb_qmethod_name(a));
		snprintf(k, sizeof k, "quant.layers[%u].weights_bits", i);
		if ((rc = check_qbits(ld, k, w, l->weights_bits ? l->weights_bits : q->weights.bits, 0)))
			return rc;
		snprintf(k, sizeof k, "quant.layers[%u].activations_bits", i);
		if ((rc = check_qbits(ld, k, a, l->activations_bits ? l->activations_bits
								     : q->activations.bits, 1)))
			return rc;
		if (l->weights_bits && w == LB_QM_NONE) {
			snprintf(k, sizeof k, "quant.layers[%u].weights_bits", i);
			return bad(ld, k, "set for a layer whose weights are not quantized (allowed: "
				   "also set weights_method, or quant.weights.method)");
		}
		if (l->activations_bits && a == LB_QM_NONE) {
			snprintf(k, sizeof k, "quant.layers[%u].activations_bits", i);
			return bad(ld, k, "set for a layer whose activations are not quantized "
				   "(allowed: also set activations_method, or quant.activations.method)");
		}
	}
	/* settings of one method need that method somewhere */
	if (user_wrote(ld, "quant.rq") && !q_uses(q, 1, 1, rq_family, 3))
		return bad(ld, "quant.rq", "set, but no quantizer uses rq, rq-st or srq (allowed: "
			   "only with one of those methods)");
	if (q->rq.grid == LB_RQ_GRID_MIDRISE && !q_uses(q, 1, 0, rq_family, 3))
		return bad(ld, "quant.rq.grid", "midrise shifts signed weight grids, but no weights "
			   "use rq, rq-st or srq (allowed: twos, or weights method rq, rq-st or srq)");
	if ((user_wrote(ld, "quant.pact_alpha") || user_wrote(ld, "quant.pact_grad")) &&
	    !q_uses(q, 0, 1, pact, 1))
		return bad(ld, user_wrote(ld, "quant.pact_alpha") ? "quant.pact_alpha" : "quant.pact_grad",
			   "set, but no activations use pact (allowed: only with activations method pact)");
	if (user_wrote(ld, "quant.dorefa_through_max") && !q_uses(q, 1, 0, dorefa, 1))
		return bad(ld, "quant.dorefa_through_max",
			   "set, but no weights use dorefa (allowed: only with weights method dorefa)");
	if (user_wrote(ld, "quant.dorefa_scale") && !q_uses(q, 1, 0, dorefa, 1))
		return bad(ld, "quant.dorefa_scale",
			   "set, but no weights use dorefa (allowed: only with weights method dorefa)");
	if (user_wrote(ld, "quant.lsq_grad_scale") && !q_uses(q, 1, 1, lsq, 1))
		return bad(ld, "quant.lsq_grad_scale",
			   "set, but no quantizer uses lsq (allowed: only with method lsq)");
	if (q->dropbits.enabled && !q_uses(q, 1, 0, srq, 1))
		return bad(ld, "quant.dropbits.enabled",
			   "DropBits needs weights quantized with srq (allowed: false, or set "
			   "quant.weights.method: srq)");
	if (q->learn_bits.enabled && !q_uses(q, 1, 0, srq, 1))
		return bad(ld, "quant.learn_bits.enabled",
			   "learned bit-widths need weights quantized with srq (allowed: false, or set "
			   "quant.weights.method: srq)");
	if (!q->dropbits.enabled && user_wrote(ld, "quant.dropbits") &&
	    (user_wrote(ld, "quant.dropbits.p_top") || user_wrote(ld, "quant.dropbits.granularity")))
		return bad(ld, "quant.dropbits", "settings given but DropBits is off (allowed: add "
			   "quant.dropbits.enabled: true)");
	if (!(q->pact_alpha > 0.0f))
		return bad(ld, "quant.pact_alpha", "%g is out of range (allowed: > 0)", (double)q->pact_alpha);
	if (!(q->rq.temperature > 0.0f))
		return bad(ld, "quant.rq.temperature", "%g is out of range (allowed: > 0)",
			   (double)q->rq.temperature);
	if (!(q->rq.sigma_init > 0.0f))
		return bad(ld, "quant.rq.sigma_init", "%g is out of range (allowed: > 0)",
			   (double)q->rq.sigma_init);
	if (!(q->rq.sigma_min > 0.0f && q->rq.sigma_min <= q->rq.sigma_init))
		return bad(ld, "quant.rq.sigma_min", "%g is out of range (allowed: 0 < sigma_min <= "
			   "sigma_init %g)", (double)q->rq.sigma_min, (double)q->rq.sigma_init);
	if (!(q->rq.local_delta >= 0.0f))
		return bad(ld, "quant.rq.local_delta", "%g is out of range (allowed: >= 0; 0 = full grid)",
			   (double)q->rq.local_delta);
	if (!(q->rq.ste_tau > 0.0f))
		return bad(ld, "quant.rq.ste_tau", "%g is out of range (allowed: > 0)", (double)q->rq.ste_tau);
	if (!(q->rq.act_percentile > 0.0f && q->rq.act_percentile <= 100.0f))
		return bad(ld, "quant.rq.act_percentile", "%g is out of range (allowed: 0 < p <= 100)",
			   (double)q->rq.act_percentile);
	if (!(q->dropbits.p_top >= 0.0f && q->dropbits.p_top < 1.0f))
		return bad(ld, "quant.dropbits.p_top", "%g is out of range (allowed: 0 <= p_top < 1)",
			   (double)q->dropbits.p_top);
	if (!(q->learn_bits.lambda >= 0.0f))
		return bad(ld, "quant.learn_bits.lambda", "%g is out of range (allowed: >= 0)",
			   (double)q->learn_bits.lambda);
	if (!(q->learn_bits.init_drop > 0.0f && q->learn_bits.init_drop < 1.0f))
		return bad(ld, "quant.learn_bits.init_drop", "%g is out of range (allowed: 0 < p0 < 1)",
			   (double)q->learn_bits.init_drop);
	if (!(q->learn_bits.threshold >= 0.0f && q->learn_bits.threshold < 1.0f))
		return bad(ld, "quant.learn_bits.threshold", "%g is out of range (allowed: 0 <= t < 1)",
			   (double)q->learn_bits.threshold);
	if (q->learn_bits.freeze_epoch && q->learn_bits.freeze_epoch <= q->learn_bits.warmup_epochs)
		return bad(ld, "quant.learn_bits.freeze_epoch",
			   "%u is not after the warm-up (allowed: 0 = never, or > warmup_epochs %u)",
			   q->learn_bits.freeze_epoch, q->learn_bits.warmup_epochs);
	if (q->learn_bits.freeze_rescale && !(q->learn_bits.enabled && q->learn_bits.freeze_epoch))
		return bad(ld, "quant.learn_bits.freeze_rescale",
			   "true, but no learned bits are frozen (allowed: only with "
			   "quant.learn_bits.enabled: true and freeze_epoch > 0)");
	if ((rc = validate_waveq(ld, q)))
		return rc;
	return validate_bsq(ld, q);
}

static int validate(const struct load *ld, const struct lb_config *c)
{
	const struct lb_model_cfg *m = &c->model;
	const struct lb_data_cfg *d = &c->data;
	const struct lb_train_cfg *t = &c->train;
	const struct lb_optimizer_cfg *o = &c->optimizer;
	const struct lb_schedule_cfg *s = &c->schedule;
	int rc;

	if (!c->name || !c->name[0] || strchr(c->name, '/'))
		return bad(ld, "name", "'%s' is not a valid run name (allowed: a non-empty name without '/')",
			   c->name ? c->name : "");

	/* model */
	if (m->n_hidden < 1 || m->n_hidden > 16)
		return bad(ld, "model.hidden", "%u sizes given (allowed: 1 to 16 sizes)", m->n_hidden);
	for (unsigned i = 0; i < m->n_hidden; i++)
		if (m->hidden[i] < 1) {
			char k[64];
			snprintf(k, sizeof k, "model.hidden[%u]", i);
			return bad(ld, k, "0 is out of range (allowed: >= 1)");
		}
	if (!in01(m->dropout))
		return bad(ld, "model.dropout", "%g is out of range (allowed: 0 <= dropout < 1)",
			   (double)m->dropout);
	if (!(m->bn_momentum > 0.0f && m->bn_momentum <= 1.0f))
		return bad(ld, "model.bn_momentum", "%g is out of range (allowed: 0 < bn_momentum <= 1)",
			   (double)m->bn_momentum);
	if (!(m->bn_eps > 0.0f))
		return bad(ld, "model.bn_eps", "%g is out of range (allowed: > 0)", (double)m->bn_eps);
	if (m->arch == LB_ARCH_CUSTOM && m->n_layers == 0)
		return bad(ld, "model.arch", "custom needs model.layers (allowed: a non-empty layer list)");
	if (m->arch != LB_ARCH_CUSTOM && m->n_layers > 0)
		return bad(ld, "model.layers",
			   "layers are only read for arch custom (allowed: arch: custom, or no layers)");
	if ((rc = check_layers(ld, m)))
		return rc;

	/* data */
	if (!d->dir || !d->dir[0])
		return bad(ld, "data.dir", "required for dataset %s (allowed: a directory)",
			   lb_dataset_name(d->dataset));
	if (!d->train_images[0] || !d->train_labels[0] || !d->test_images[0] || !d->test_labels[0])
		return bad(ld, "data", "empty IDX file name (allowed: file names in data.dir)");
	if (d->train_limit && d->validation >= d->train_limit)
		return bad(ld, "data.validation", "%u is out of range (allowed: < train_limit %u)",
			   d->validation, d->train_limit);

	/* train */
	if (t->epochs < 1)
		return bad(ld, "train.epochs", "0 is out of range (allowed: >= 1)");
	if (t->batch < 1)
		return bad(ld, "train.batch", "0 is out of range (allowed: >= 1)");
	if (t->shards < 1 || t->shards > t->batch)
		return bad(ld, "train.shards", "%u is out of range (allowed: 1 to batch %u)", t->shards,
			   t->batch);
	if (t->batch % t->shards)
		return bad(ld, "train.shards", "%u does not divide batch %u (allowed: a divisor of batch)",
			   t->shards, t->batch);
	if (t->eval_batch < 1)
		return bad(ld, "train.eval_batch", "0 is out of range (allowed: >= 1)");
	if (t->threads > 256)
		return bad(ld, "train.threads", "%u is out of range (allowed: 0 to 256)", t->threads);

	/* optimizer */
	if (!(o->lr > 0.0f))
		return bad(ld, "optimizer.lr", "%g is out of range (allowed: > 0)", (double)o->lr);
	if (!in01(o->momentum))
		return bad(ld, "optimizer.momentum", "%g is out of range (allowed: 0 <= momentum < 1)",
			   (double)o->momentum);
	if (o->nesterov && o->momentum == 0.0f)
		return bad(ld, "optimizer.nesterov",
			   "needs momentum > 0 (allowed: false, or set optimizer.momentum)");
	if (!(o->weight_decay >= 0.0f))
		return bad(ld, "optimizer.weight_decay", "%g is out of range (allowed: >= 0)",
			   (double)o->weight_decay);
	if (!in01(o->beta1))
		return bad(ld, "optimizer.beta1", "%g is out of range (allowed: 0 <= beta1 < 1)",
			   (double)o->beta1);
	if (!in01(o->beta2))
		return bad(ld, "optimizer.beta2", "%g is out of range (allowed: 0 <= beta2 < 1)",
			   (double)o->beta2);
	if (!(o->eps > 0.0f))
		return bad(ld, "optimizer.eps", "%g is out of range (allowed: > 0)", (double)o->eps);
	for (unsigned i = 0; i < o->n_groups; i++) {
		const struct lb_param_group_cfg *g = &o->groups[i];
		char k[96];
		if (!g->match || !g->match[0]) {
			snprintf(k, sizeof k, "optimizer.groups[%u]", i);
			return bad(ld, k, "missing key 'match' (allowed: a glob on parameter names, e.g. \"*.bias\")");
		}
		if (!(g->lr_scale >= 0.0f)) {
			snprintf(k, sizeof k, "optimizer.groups[%u].lr_scale", i);
			return bad(ld, k, "%g is out of range (allowed: >= 0)", (double)g->lr_scale);
		}
	}

	for (unsigned i = 0; i < c->train.n_snapshot_steps; i++) {
		const unsigned *k = c->train.snapshot_steps;
		if (k[i] < 1 || (i && k[i] <= k[i - 1])) {
			char key[64];
			snprintf(key, sizeof key, "train.snapshot_steps[%u]", i);
			return bad(ld, key, "%u breaks the order (allowed: strictly increasing steps >= 1)",
				   k[i]);
		}
	}

	/* schedule */
	if (s->step_size < 1)
		return bad(ld, "schedule.step_size", "0 is out of range (allowed: >= 1)");
	if (!(s->gamma > 0.0f && s->gamma <= 1.0f))
		return bad(ld, "schedule.gamma", "%g is out of range (allowed: 0 < gamma <= 1)",
			   (double)s->gamma);
	for (unsigned i = 0; i < s->n_milestones; i++)
		if (s->milestones[i] < 1 || (i && s->milestones[i] <= s->milestones[i - 1])) {
			char k[64];
			snprintf(k, sizeof k, "schedule.milestones[%u]", i);
			return bad(ld, k, "%u breaks the order (allowed: strictly increasing epochs >= 1)",
				   s->milestones[i]);
		}
	if (s->kind == LB_SCHED_MULTISTEP && s->n_milestones == 0)
		return bad(ld, "schedule.milestones", "multistep needs milestones (allowed: e.g. [60, 80])");
	if (!(s->warmup_epochs >= 0.0f))
		return bad(ld, "schedule.warmup_epochs", "%g is out of range (allowed: >= 0)",
			   (double)s->warmup_epochs);
	if (!(s->min_lr >= 0.0f))
		return bad(ld, "schedule.min_lr", "%g is out of range (allowed: >= 0)", (double)s->min_lr);
	if ((rc = validate_quant(ld, &c->quant)))
		return rc;
	return validate_gradl1(ld, c);
}

/* ---- load ---- */

int lb_config_load_string(const char *yaml, const char *origin, const char *const *overrides,
			  int n_overrides, struct lb_config **out)
{
	struct load ld = {.origin = origin ? origin : "<config>"};
	struct buf text = {0};
	struct lb_cylog log = {.n = 0};
	cyaml_config_t cc;
	struct lb_config *cfg = NULL;
	int rc;

	*out = NULL;
	if (!yaml)
		yaml = "";
	rc = parse_tree(config_defaults, strlen(config_defaults), "built-in defaults", FROM_DEFAULT,
			&ld.defaults);
	if (rc)
		goto out;
	rc = parse_tree(yaml, strlen(yaml), ld.origin, FROM_TEXT, &ld.root);
	if (rc)
		goto out;
	if (!ld.root || is_null_scalar(ld.root)) {
		node_free(ld.root);
		ld.root = node_new(NODE_MAP, FROM_TEXT, 1);
		if (!ld.root) {
			rc = lb_error(LB_ERR_OOM, "out of memory");
			goto out;
		}
	}
	if (ld.root->kind != NODE_MAP) {
		rc = lb_error(LB_ERR_CONFIG, "%s: line %u: the config must be a mapping of keys "
			      "(allowed: name, seed, model, data, train, optimizer, schedule)",
			      ld.origin, ld.root->line);
		goto out;
	}
	drop_nulls(ld.root);
	for (int i = 0; i < n_overrides; i++) {
		rc = apply_override(&ld, overrides[i]);
		if (rc)
			goto out;
		drop_nulls(ld.root);
	}
	if ((rc = check_tree(&ld, &config_schema, ld.root, "")))
		goto out;
	if ((rc = apply_defaults(&ld)))
		goto out;
	if ((rc = check_tree(&ld, &config_schema, ld.root, "")))
		goto out;
	if ((rc = emit_tree(ld.root, &text)))
		goto out;

	lb_cyaml_config(&cc, &log, CYAML_CFG_STYLE_BLOCK);
	cyaml_err_t err = cyaml_load_data((const uint8_t *)text.p, text.n, &cc, &config_schema,
					  (cyaml_data_t **)&cfg, NULL);
	if (err == CYAML_ERR_OOM) {
		rc = lb_error(LB_ERR_OOM, "out of memory");
		goto out;
	}
	if (err != CYAML_OK) {
		log.text[log.n] = '\0';
		rc = cyaml_message(&ld, err, log.text);
		goto out;
	}
	if (!cfg) {
		rc = lb_error(LB_ERR_CONFIG, "%s: the config is empty", ld.origin);
		goto out;
	}
	if ((rc = walk(config_fields, cfg, "", canon_float, &ld)))
		goto out;
	if ((rc = validate(&ld, cfg)))
		goto out;
	*out = cfg;
	cfg = NULL;
out:
	lb_config_free(cfg);
	free(text.p);
	node_free(ld.root);
	node_free(ld.defaults);
	return rc;
}

int lb_config_load(const char *path, const char *const *overrides, int n_overrides,
		   struct lb_config **out)
{
	char *text;
	size_t n;
	int rc;
	*out = NULL;
	switch (lb_yaml_read_file(path, &text, &n)) {
	case LB_YAML_FILE_OK:
		break;
	case LB_YAML_FILE_OPEN:
		return lb_error(LB_ERR_IO, "cannot open config '%s': %s", path, strerror(errno));
	case LB_YAML_FILE_NOT_REGULAR:
		return lb_error(LB_ERR_CONFIG, "config '%s' is not a regular file of at most %d MiB "
				"(allowed: a YAML file)", path, LB_YAML_MAX_BYTES >> 20);
	case LB_YAML_FILE_READ:
		return lb_error(LB_ERR_IO, "cannot read config '%s': %s", path, strerror(errno));
	case LB_YAML_FILE_NUL:
		return lb_error(LB_ERR_CONFIG, "%s: contains a NUL byte (allowed: YAML text)", path);
	default:
		return lb_error(LB_ERR_OOM, "out of memory");
	}
	rc = lb_config_load_string(text, path, overrides, n_overrides, out);
	free(text);
	return rc;
}

void lb_config_free(struct lb_config *cfg)
{
	cyaml_config_t cc;
	if (!cfg)
		return;
	lb_cyaml_config(&cc, NULL, CYAML_CFG_STYLE_BLOCK);
	cyaml_free(&cc, &config_schema, cfg, 0);
}

static int cmp_unsigned(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
	return (x > y) - (x < y);
}

int lb_config_add_snapshot_steps(struct lb_config *cfg, const unsigned *steps, unsigned n)
{
	struct lb_train_cfg *t = &cfg->train;
	/* realloc: the array belongs to libcyaml's allocator (realloc/free) */
	unsigned *k = realloc(t->snapshot_steps, (t->n_snapshot_steps + n + 1) * sizeof *k);
	unsigned m = 0;
	if (!k)
		return lb_error(LB_ERR_OOM, "out of memory");
	memcpy(k + t->n_snapshot_steps, steps, n * sizeof *k);
	t->snapshot_steps = k;
	t->n_snapshot_steps += n;
	qsort(k, t->n_snapshot_steps, sizeof *k, cmp_unsigned);
	for (unsigned i = 0; i < t->n_snapshot_steps; i++)
		if (!m || k[i] != k[m - 1])
			k[m++] = k[i];
	t->n_snapshot_steps = m;
	return LB_OK;
}

/* ---- dump, hash, flatten ---- */

int lb_config_dump(const struct lb_config *cfg, char **yaml_out)
{
	cyaml_config_t cc;
	struct lb_cylog log = {.n = 0};
	char *data = NULL;
	size_t len = 0;
	*yaml_out = NULL;
	lb_cyaml_config(&cc, &log, CYAML_CFG_STYLE_BLOCK);
	cyaml_err_t err = cyaml_save_data(&data, &len, &cc, &config_schema, cfg, 0);
	if (err != CYAML_OK) {
		log.text[log.n] = '\0';
		return lb_error(err == CYAML_ERR_OOM ? LB_ERR_OOM : LB_ERR_CONFIG,
				"cannot write the config: %s%s%s", cyaml_strerror(err),
				log.n ? ": " : "", log.text);
	}
	char *s = malloc(len + 1);
	if (!s) {
		free(data);
		return lb_error(LB_ERR_OOM, "out of memory");
	}
	memcpy(s, data, len);
	s[len] = '\0';
	free(data);
	*yaml_out = s;
	return LB_OK;
}

uint64_t lb_config_hash(const struct lb_config *cfg)
{
	struct lb_config copy = *cfg;
	char *yaml;
	/* Keys that cannot change results are neutralised (set to 0). */
	copy.train.threads = 0;
	copy.train.log_every = 0;
	if (lb_config_dump(&copy, &yaml) != LB_OK)
		return 0;
	uint64_t h = lb_hash64(LB_HASH_INIT, yaml, strlen(yaml));
	free(yaml);
	return h;
}

struct flat {
	int (*fn)(const char *key, const char *value, void *ctx);
	void *ctx;
};

static size_t format_scalar(const cyaml_schema_value_t *v, const void *p, char *buf, size_t size)
{
	switch (v->type) {
	case CYAML_UINT:
		if (v->data_size == 8)
			return (size_t)snprintf(buf, size, "%" PRIu64, *(const uint64_t *)p);
		return (size_t)snprintf(buf, size, "%u", *(const unsigned *)p);
	case CYAML_INT:
		return (size_t)snprintf(buf, size, "%d", *(const int *)p);
	case CYAML_BOOL:
		return (size_t)snprintf(buf, size, "%s", *(const bool *)p ? "true" : "false");
	case CYAML_ENUM:
		return (size_t)snprintf(buf, size, "%s",
					lb_cyaml_strval_name(v->enumeration.strings, v->enumeration.count,
						    *(const int *)p));
	case CYAML_FLOAT:
		return (size_t)snprintf(buf, size, "%g", (double)*(const float *)p);
	case CYAML_STRING:
		return (size_t)snprintf(buf, size, "%s", *(char *const *)p ? *(char *const *)p : "");
	default:
		return (size_t)snprintf(buf, size, "?");
	}
}

static int flat_leaf(const cyaml_schema_value_t *v, void *p, unsigned count, int is_seq,
		     const char *path, void *ctx)
{
	struct flat *fl = ctx;
	char buf[4096];
	if (!is_seq) {
		if (v->type == CYAML_STRING && !*(char **)p)
			return 0; /* unset optional string (layer input/from) */
		format_scalar(v, p, buf, sizeof buf);
		return fl->fn(path, buf, fl->ctx);
	}
	size_t len = (size_t)snprintf(buf, sizeof buf, "[");
	for (unsigned i = 0; i < count && len < sizeof buf; i++) {
		if (i)
			len += (size_t)snprintf(buf + len, sizeof buf - len, ", ");
		if (len < sizeof buf)
			len += format_scalar(v, (const char *)p + (size_t)i * v->data_size, buf + len,
					     sizeof buf - len);
	}
	if (len < sizeof buf)
		snprintf(buf + len, sizeof buf - len, "]");
	return fl->fn(path, buf, fl->ctx);
}

int lb_config_flatten(const struct lb_config *cfg,
		      int (*fn)(const char *key, const char *value, void *ctx), void *ctx)
{
	struct flat fl = {fn, ctx};
	return walk(config_fields, (void *)cfg, "", flat_leaf, &fl);
}
