/* SPDX-License-Identifier: MIT
 * Tests of core/config.c through its public API: defaults, the example
 * configs, one bad config per validation rule (code and message text),
 * --set overrides, dump/load round trip, hash and flatten; and the YAML
 * guards of core/cyaml_util.c that configs and sweep specs share (the
 * bounded file reader, the alias-expansion bound). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "cyaml_util.h"
#include "err.h"
#include "../tap.h"

static char tmpdir[256];

static const char *write_tmp(const char *name, const char *text)
{
	static char path[512];
	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	if (!f)
		return NULL;
	fputs(text, f);
	fclose(f);
	return path;
}

/* Load text from a temp file and expect failure with code and every needle
 * (NULL-terminated) in the message. */
static void expect_bad(const char *desc, const char *text, const char *const *sets, int n_sets,
		       int code, ...)
{
	struct lb_config *cfg = NULL;
	const char *path = write_tmp("bad.yaml", text);
	int rc = lb_config_load(path, sets, n_sets, &cfg);
	const char *msg = lb_error_message();
	int all = 1;
	va_list ap;
	va_start(ap, code);
	for (const char *needle = va_arg(ap, const char *); needle; needle = va_arg(ap, const char *))
		if (!strstr(msg, needle)) {
			diag("  missing '%s'", needle);
			all = 0;
		}
	va_end(ap);
	ok(rc == code && all && cfg == NULL && strstr(msg, path) == msg, "%s", desc);
	diag("  -> %s", msg);
	lb_config_free(cfg);
}

static struct lb_config *load_text(const char *text, const char *const *sets, int n_sets)
{
	struct lb_config *cfg = NULL;
	if (lb_config_load_string(text, "test", sets, n_sets, &cfg) != LB_OK)
		diag("  load failed: %s", lb_error_message());
	return cfg;
}

static void test_defaults(void)
{
	struct lb_config *c = load_text("{}", NULL, 0);
	ok(c != NULL, "'{}' loads");
	if (!c)
		return;
	ok(!strcmp(c->name, "run"), "name default");
	is_int(c->seed, 1, "seed default");
	is_int(c->model.arch, LB_ARCH_LENET5_CAFFE, "arch default");
	is_int(c->model.init, LB_INIT_TORCH, "init default");
	ok(c->model.n_hidden == 2 && c->model.hidden[0] == 300 && c->model.hidden[1] == 100,
	   "hidden default [300, 100]");
	is_near(c->model.dropout, 0, 0, "dropout default");
	is_near(c->model.bn_momentum, 0.1, 1e-7, "bn_momentum default");
	is_near(c->model.bn_eps, 1e-5, 1e-12, "bn_eps default");
	ok(c->model.n_layers == 0 && c->model.layers == NULL, "no layers");
	is_int(c->data.dataset, LB_DATA_FASHION_MNIST, "dataset default");
	ok(!strcmp(c->data.dir, "/usr/share/datasets/fashion-mnist"), "dir default");
	ok(!strcmp(c->data.train_images, "train-images-idx3-ubyte.gz") &&
		   !strcmp(c->data.train_labels, "train-labels-idx1-ubyte.gz") &&
		   !strcmp(c->data.test_images, "t10k-images-idx3-ubyte.gz") &&
		   !strcmp(c->data.test_labels, "t10k-labels-idx1-ubyte.gz"),
	   "IDX file names default");
	ok(c->data.validation == 0 && c->data.train_limit == 0 && c->data.test_limit == 0,
	   "limits default 0");
	ok(c->data.normalize && !c->data.augment && c->data.crop_pad == 4,
	   "normalize, augment, crop_pad defaults");
	ok(c->train.epochs == 5 && c->train.batch == 64 && c->train.shards == 1 &&
		   c->train.eval_batch == 256 && c->train.threads == 1 &&
		   c->train.log_every == 100 && c->train.checkpoint_every == 1 &&
		   c->train.max_steps == 0,
	   "train defaults");
	ok(c->optimizer.kind == LB_OPT_SGD && !c->optimizer.nesterov && c->optimizer.n_groups == 0,
	   "optimizer kind/nesterov/groups defaults");
	is_near(c->optimizer.lr, 0.02, 1e-8, "lr default");
	is_near(c->optimizer.momentum, 0.9, 1e-7, "momentum default");
	is_near(c->optimizer.weight_decay, 0, 0, "weight_decay default");
	ok(fabs(c->optimizer.beta1 - 0.9) < 1e-7 && fabs(c->optimizer.beta2 - 0.999) < 1e-7 &&
		   fabs(c->optimizer.eps - 1e-8) < 1e-14,
	   "adam defaults");
	ok(c->schedule.kind == LB_SCHED_CONSTANT && c->schedule.step_size == 30 &&
		   fabs(c->schedule.gamma - 0.1) < 1e-7 && c->schedule.n_milestones == 0 &&
		   c->schedule.warmup_epochs == 0 && c->schedule.min_lr == 0,
	   "schedule defaults");
	lb_config_free(c);

	c = load_text("", NULL, 0);
	ok(c && c->train.batch == 64, "empty text loads with defaults");
	lb_config_free(c);
	c = load_text("optimizer:\nname: ~\n", NULL, 0);
	ok(c && !strcmp(c->name, "run") && c->optimizer.lr > 0.0199f,
	   "null values mean 'the default'");
	lb_config_free(c);
}

static void test_dataset_and_layer_defaults(void)
{
	struct lb_config *c = load_text("data: {dataset: mnist}", NULL, 0);
	ok(c && !strcmp(c->data.dir, "/usr/share/datasets/mnist") && !c->data.augment,
	   "mnist dir default");
	lb_config_free(c);
	c = load_text("data: {dataset: cifar10, dir: /tmp/c10}", NULL, 0);
	ok(c && c->data.augment && !strcmp(c->data.dir, "/tmp/c10"), "cifar10 augments by default");
	lb_config_free(c);
	c = load_text("data: {dataset: cifar10, dir: /tmp/c10, augment: false}", NULL, 0);
	ok(c && !c->data.augment, "cifar10 augment: false is kept");
	lb_config_free(c);

	c = load_text("model:\n"
		      "  arch: custom\n"
		      "  layers:\n"
		      "    - {op: conv, out: 8, kernel: 3, pad: 1}\n"
		      "    - {op: relu}\n"
		      "    - {op: maxpool, kernel: 2}\n"
		      "    - {op: conv, out: 8, kernel: 3, stride: 2, bias: false, name: c2}\n"
		      "    - {op: add, from: relu1}\n"
		      "    - {op: avgpool, kernel: 3, stride: 1}\n"
		      "    - {op: flatten}\n"
		      "    - {op: dropout, p: 0.5}\n"
		      "    - {op: linear, out: 10}\n"
		      "optimizer:\n"
		      "  groups:\n"
		      "    - {match: \"*.bias\", weight_decay: 0}\n",
		      NULL, 0);
	ok(c != NULL, "custom model loads");
	if (c) {
		const struct lb_layer_spec *l = c->model.layers;
		is_int(c->model.n_layers, 9, "9 layers");
		ok(!strcmp(l[0].name, "conv1") && !strcmp(l[1].name, "relu1") &&
			   !strcmp(l[2].name, "maxpool1") && !strcmp(l[3].name, "c2") &&
			   !strcmp(l[4].name, "add1") && !strcmp(l[8].name, "linear1"),
		   "default layer names <op><n>");
		ok(l[0].stride == 1 && l[0].bias && l[0].pad == 1, "conv: stride 1, bias true");
		ok(l[2].stride == 2, "maxpool: stride = kernel");
		ok(l[3].stride == 2 && !l[3].bias, "explicit stride and bias kept");
		ok(l[5].stride == 1, "avgpool explicit stride kept");
		ok(l[0].input == NULL && !strcmp(l[4].from, "relu1"), "input/from");
		is_near(l[7].p, 0.5, 0, "dropout p");
		ok(c->optimizer.n_groups == 1 && !strcmp(c->optimizer.groups[0].match, "*.bias") &&
			   c->optimizer.groups[0].lr_scale == 1.0f &&
			   c->optimizer.groups[0].weight_decay == 0.0f,
		   "group defaults: lr_scale 1, explicit weight_decay");
	}
	lb_config_free(c);
	c = load_text("optimizer: {groups: [{match: \"bn*\"}]}", NULL, 0);
	ok(c && c->optimizer.groups[0].weight_decay == -1.0f, "group weight_decay default -1");
	lb_config_free(c);
}

static void test_examples(void)
{
	const char *top = getenv("top_srcdir");
	char path[512];
	struct lb_config *c = NULL;
	if (!top)
		top = "..";
	snprintf(path, sizeof path, "%s/examples/lenet5-fashion.yaml", top);
	int rc = lb_config_load(path, NULL, 0, &c);
	ok(rc == LB_OK, "examples/lenet5-fashion.yaml loads: %s", rc ? lb_error_message() : "");
	if (c)
		ok(c->model.arch == LB_ARCH_LENET5_CAFFE && c->train.epochs == 2 &&
			   c->train.batch == 64 && c->optimizer.kind == LB_OPT_SGD &&
			   fabsf(c->optimizer.lr - 0.02f) < 1e-8 &&
			   fabsf(c->optimizer.momentum - 0.9f) < 1e-7 &&
			   !strcmp(c->name, "lenet5-fashion"),
		   "lenet5 example values");
	else
		skip("lenet5 example did not load");
	lb_config_free(c);
	c = NULL;
	snprintf(path, sizeof path, "%s/examples/mlp-fashion.yaml", top);
	rc = lb_config_load(path, NULL, 0, &c);
	ok(rc == LB_OK, "examples/mlp-fashion.yaml loads: %s", rc ? lb_error_message() : "");
	ok(c && c->model.arch == LB_ARCH_MLP && c->train.epochs == 5, "mlp example values");
	lb_config_free(c);
}

static void test_errors(void)
{
	static const char *const set_unknown[] = {"optimizer.lrr=0.1"};
	static const char *const set_malformed[] = {"optimizer.lr"};
	static const char *const set_bad_value[] = {"train.batch=zero"};
	static const char *const set_bad_top[] = {"optimiser.lr=0.1"};
	static const char *const set_bad_index[] = {"model.layers[5].out=3"};
	struct lb_config *cfg = NULL;

	expect_bad("unknown top-level key", "name: x\nmodle: {arch: mlp}\n", NULL, 0, LB_ERR_CONFIG,
		   "modle", "line 2", "allowed: name, seed, model, data, train, optimizer, schedule",
		   NULL);
	expect_bad("unknown nested key", "optimizer:\n  kind: sgd\n  lrr: 0.1\n", NULL, 0,
		   LB_ERR_CONFIG, "optimizer.lrr", "unknown key 'lrr' in 'optimizer'", "line 3",
		   "allowed: kind, lr, momentum, nesterov, weight_decay, beta1, beta2, eps, groups",
		   NULL);
	expect_bad("unknown key in a layer",
		   "model:\n  arch: custom\n  layers:\n    - {op: relu, kernal: 3}\n", NULL, 0,
		   LB_ERR_CONFIG, "model.layers[0].kernal", "line 4", "allowed: op, name, input",
		   NULL);
	expect_bad("wrong type: lr: abc", "# comment\noptimizer:\n  lr: abc\n", NULL, 0,
		   LB_ERR_CONFIG, "optimizer.lr", "'abc'", "line 3", "allowed:", NULL);
	expect_bad("wrong type: epochs 1.5", "train: {epochs: 1.5}\n", NULL, 0, LB_ERR_CONFIG,
		   "train.epochs", "'1.5' is not an unsigned integer", "allowed:", NULL);
	expect_bad("wrong type: negative uint", "train: {batch: -4}\n", NULL, 0, LB_ERR_CONFIG,
		   "train.batch", "'-4'", NULL);
	expect_bad("wrong type: bool", "optimizer: {nesterov: maybe}\n", NULL, 0, LB_ERR_CONFIG,
		   "optimizer.nesterov", "'maybe'", "allowed: true, false", NULL);
	expect_bad("wrong kind: mapping for a number", "train:\n  epochs: {a: 1}\n", NULL, 0,
		   LB_ERR_CONFIG, "train.epochs", "line 2", "mapping", NULL);
	expect_bad("bad enum: arch lenet7", "model:\n  arch: lenet7\n", NULL, 0, LB_ERR_CONFIG,
		   "model.arch", "'lenet7'", "line 2",
		   "allowed: mlp, lenet5, lenet5-caffe, simplenet5, vgg7, resnet20, custom", NULL);
	expect_bad("bad enum in a layer", "model:\n  arch: custom\n  layers:\n    - op: conv2d\n",
		   NULL, 0, LB_ERR_CONFIG, "model.layers[0].op", "'conv2d'", "line 4",
		   "allowed: input, linear, conv", NULL);
	expect_bad("float overflow", "optimizer: {lr: 1e99}\n", NULL, 0, LB_ERR_CONFIG,
		   "optimizer.lr", "1e99", NULL);
	expect_bad("batch 0", "train:\n  batch: 0\n", NULL, 0, LB_ERR_CONFIG, "train.batch",
		   "line 2", "allowed: >= 1", NULL);
	expect_bad("epochs 0", "train: {epochs: 0}\n", NULL, 0, LB_ERR_CONFIG, "train.epochs",
		   "allowed: >= 1", NULL);
	expect_bad("negative lr", "optimizer: {lr: -0.1}\n", NULL, 0, LB_ERR_CONFIG,
		   "optimizer.lr", "-0.1", "allowed: > 0", NULL);
	expect_bad("shards not dividing batch", "train: {batch: 64, shards: 3}\n", NULL, 0,
		   LB_ERR_CONFIG, "train.shards", "does not divide", "allowed: a divisor", NULL);
	expect_bad("shards > batch", "train: {batch: 4, shards: 8}\n", NULL, 0, LB_ERR_CONFIG,
		   "train.shards", "allowed: 1 to batch 4", NULL);
	expect_bad("threads > 256", "train: {threads: 300}\n", NULL, 0, LB_ERR_CONFIG,
		   "train.threads", "allowed: 0 to 256", NULL);
	expect_bad("momentum 1", "optimizer: {momentum: 1}\n", NULL, 0, LB_ERR_CONFIG,
		   "optimizer.momentum", "allowed: 0 <= momentum < 1", NULL);
	expect_bad("nesterov without momentum", "optimizer: {momentum: 0, nesterov: true}\n", NULL,
		   0, LB_ERR_CONFIG, "optimizer.nesterov", "allowed:", NULL);
	expect_bad("beta2 1", "optimizer: {kind: adam, beta2: 1.0}\n", NULL, 0, LB_ERR_CONFIG,
		   "optimizer.beta2", "allowed: 0 <= beta2 < 1", NULL);
	expect_bad("eps 0", "optimizer: {eps: 0}\n", NULL, 0, LB_ERR_CONFIG, "optimizer.eps",
		   "allowed: > 0", NULL);
	expect_bad("weight_decay < 0", "optimizer: {weight_decay: -1e-4}\n", NULL, 0,
		   LB_ERR_CONFIG, "optimizer.weight_decay", "allowed: >= 0", NULL);
	expect_bad("dropout 1", "model: {dropout: 1}\n", NULL, 0, LB_ERR_CONFIG, "model.dropout",
		   "allowed: 0 <= dropout < 1", NULL);
	expect_bad("bn_momentum 0", "model: {bn_momentum: 0}\n", NULL, 0, LB_ERR_CONFIG,
		   "model.bn_momentum", "allowed: 0 < bn_momentum <= 1", NULL);
	expect_bad("bn_eps 0", "model: {bn_eps: 0}\n", NULL, 0, LB_ERR_CONFIG, "model.bn_eps",
		   "allowed: > 0", NULL);
	expect_bad("hidden size 0", "model: {arch: mlp, hidden: [300, 0]}\n", NULL, 0,
		   LB_ERR_CONFIG, "model.hidden[1]", "allowed: >= 1", NULL);
	expect_bad("17 hidden sizes",
		   "model: {hidden: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]}\n", NULL, 0,
		   LB_ERR_CONFIG, "model.hidden", "allowed: 1 to 16 sizes", NULL);
	expect_bad("gamma 0", "schedule: {kind: step, gamma: 0}\n", NULL, 0, LB_ERR_CONFIG,
		   "schedule.gamma", "allowed: 0 < gamma <= 1", NULL);
	expect_bad("milestones decreasing", "schedule:\n  kind: multistep\n  milestones: [80, 60]\n",
		   NULL, 0, LB_ERR_CONFIG, "schedule.milestones[1]", "line 3", "strictly increasing",
		   NULL);
	expect_bad("negative warmup", "schedule: {warmup_epochs: -1}\n", NULL, 0, LB_ERR_CONFIG,
		   "schedule.warmup_epochs", "allowed: >= 0", NULL);
	expect_bad("custom without layers", "model:\n  arch: custom\n", NULL, 0, LB_ERR_CONFIG,
		   "model.arch", "line 2", "custom", "allowed: a non-empty layer list", NULL);
	expect_bad("layers without custom", "model:\n  arch: mlp\n  layers: [{op: relu}]\n", NULL, 0,
		   LB_ERR_CONFIG, "model.layers", "line 3", "allowed: arch: custom", NULL);
	expect_bad("layer without op", "model:\n  arch: custom\n  layers:\n    - {out: 3}\n", NULL,
		   0, LB_ERR_CONFIG, "model.layers[0]", "missing key 'op'", "allowed: input, linear",
		   NULL);
	expect_bad("layer with missing out",
		   "model:\n  arch: custom\n  layers:\n    - op: flatten\n    - op: linear\n", NULL,
		   0, LB_ERR_CONFIG, "model.layers[1].out", "allowed: >= 1", NULL);
	expect_bad("conv without kernel", "model: {arch: custom, layers: [{op: conv, out: 4}]}\n",
		   NULL, 0, LB_ERR_CONFIG, "model.layers[0].kernel", "allowed: >= 1", NULL);
	expect_bad("add without from", "model: {arch: custom, layers: [{op: relu}, {op: add}]}\n",
		   NULL, 0, LB_ERR_CONFIG, "model.layers[1]", "add needs 'from'", NULL);
	expect_bad("from names no earlier layer",
		   "model: {arch: custom, layers: [{op: relu}, {op: add, from: relu9}]}\n", NULL, 0,
		   LB_ERR_CONFIG, "model.layers[1].from", "'relu9'", "allowed: input, relu1", NULL);
	expect_bad("dropout p 1", "model: {arch: custom, layers: [{op: dropout, p: 1}]}\n", NULL,
		   0, LB_ERR_CONFIG, "model.layers[0].p", "allowed: 0 <= p < 1", NULL);
	expect_bad("duplicate layer names",
		   "model:\n  arch: custom\n  layers:\n    - {op: relu, name: a}\n"
		   "    - {op: relu, name: a}\n",
		   NULL, 0, LB_ERR_CONFIG, "model.layers[1].name", "line 5", "'a' is used twice",
		   "allowed: unique names", NULL);
	expect_bad("cifar10 without dir", "data: {dataset: cifar10}\n", NULL, 0, LB_ERR_CONFIG,
		   "data.dir", "cifar10", "allowed: a directory", NULL);
	expect_bad("group without match", "optimizer: {groups: [{lr_scale: 2}]}\n", NULL, 0,
		   LB_ERR_CONFIG, "optimizer.groups[0]", "match", NULL);
	expect_bad("duplicate key", "seed: 1\nseed: 2\n", NULL, 0, LB_ERR_CONFIG, "line 2",
		   "duplicate key 'seed'", NULL);
	expect_bad("YAML syntax error", "name: x\ntrain:\n  batch: [64\n  epochs: 2\nseed: 1\n",
		   NULL, 0, LB_ERR_CONFIG, "YAML syntax error", "line ", NULL);
	expect_bad("not a mapping", "- 1\n- 2\n", NULL, 0, LB_ERR_CONFIG, "must be a mapping",
		   NULL);

	/* missing file */
	char missing[512];
	snprintf(missing, sizeof missing, "%s/no-such.yaml", tmpdir);
	int rc = lb_config_load(missing, NULL, 0, &cfg);
	ok(rc == LB_ERR_IO && cfg == NULL && strstr(lb_error_message(), missing) &&
		   strstr(lb_error_message(), "cannot open"),
	   "missing file: LB_ERR_IO");
	diag("  -> %s", lb_error_message());

	/* overrides */
	rc = lb_config_load_string("{}", "t", set_unknown, 1, &cfg);
	ok(rc == LB_ERR_CONFIG &&
		   strstr(lb_error_message(),
			  "--set optimizer.lrr=0.1: unknown key 'lrr' in 'optimizer' (allowed: kind, lr, "),
	   "override unknown key");
	diag("  -> %s", lb_error_message());
	rc = lb_config_load_string("{}", "t", set_bad_top, 1, &cfg);
	ok(rc == LB_ERR_CONFIG && strstr(lb_error_message(), "unknown key 'optimiser'") &&
		   strstr(lb_error_message(), "allowed: name, seed"),
	   "override unknown top-level key");
	diag("  -> %s", lb_error_message());
	rc = lb_config_load_string("{}", "t", set_malformed, 1, &cfg);
	ok(rc == LB_ERR_CONFIG && strstr(lb_error_message(), "--set optimizer.lr") &&
		   strstr(lb_error_message(), "key=value"),
	   "override without '='");
	diag("  -> %s", lb_error_message());
	rc = lb_config_load_string("{}", "t", set_bad_value, 1, &cfg);
	ok(rc == LB_ERR_CONFIG && strstr(lb_error_message(), "train.batch (from --set)") &&
		   strstr(lb_error_message(), "'zero'"),
	   "override with a bad value");
	diag("  -> %s", lb_error_message());
	rc = lb_config_load_string("{}", "t", set_bad_index, 1, &cfg);
	ok(rc == LB_ERR_CONFIG && strstr(lb_error_message(), "model.layers") &&
		   strstr(lb_error_message(), "no entries"),
	   "override index out of range");
	diag("  -> %s", lb_error_message());
	ok(cfg == NULL, "no config on errors");
}

static void test_overrides(void)
{
	static const char *const sets[] = {
		"optimizer.lr=0.1", "optimizer.kind=adam", "schedule.kind=multistep",
		"schedule.milestones=[60, 80]", "optimizer.nesterov=true", "name=over",
		"train.batch=128", "data.augment=true", "seed=18446744073709551615",
	};
	struct lb_config *c = load_text("optimizer: {lr: 0.5}\n", sets, (int)(sizeof sets / sizeof *sets));
	ok(c != NULL, "overrides load");
	if (c) {
		is_near(c->optimizer.lr, 0.1, 1e-8, "lr overridden over the file");
		ok(c->optimizer.kind == LB_OPT_ADAM && c->optimizer.nesterov, "kind, nesterov");
		ok(c->schedule.kind == LB_SCHED_MULTISTEP && c->schedule.n_milestones == 2 &&
			   c->schedule.milestones[0] == 60 && c->schedule.milestones[1] == 80,
		   "milestones [60, 80]");
		ok(!strcmp(c->name, "over") && c->train.batch == 128 && c->data.augment,
		   "name, batch, augment");
		ok(c->seed == UINT64_MAX, "seed takes any uint64");
	}
	lb_config_free(c);

	static const char *const reset[] = {"optimizer.lr="};
	c = load_text("optimizer: {lr: 0.5}\n", reset, 1);
	ok(c && fabsf(c->optimizer.lr - 0.02f) < 1e-8, "'key=' restores the default");
	lb_config_free(c);

	static const char *const layer[] = {"model.layers[1].out=7", "model.layers[0].name=first"};
	c = load_text("model: {arch: custom, layers: [{op: flatten}, {op: linear, out: 10}]}\n",
		      layer, 2);
	ok(c && c->model.layers[1].out == 7 && !strcmp(c->model.layers[0].name, "first"),
	   "override into a layer by index");
	lb_config_free(c);
}

/* Floats equal bit for bit, layers and strings equal. */
static int same_config(const struct lb_config *a, const struct lb_config *b)
{
	if (strcmp(a->name, b->name) || a->seed != b->seed || a->model.arch != b->model.arch ||
	    a->model.dropout != b->model.dropout || a->model.bn_eps != b->model.bn_eps ||
	    a->model.n_layers != b->model.n_layers || a->model.n_hidden != b->model.n_hidden ||
	    strcmp(a->data.dir, b->data.dir) || a->data.augment != b->data.augment ||
	    memcmp(&a->train, &b->train, sizeof a->train) || a->optimizer.lr != b->optimizer.lr ||
	    a->optimizer.momentum != b->optimizer.momentum || a->optimizer.eps != b->optimizer.eps ||
	    a->optimizer.weight_decay != b->optimizer.weight_decay ||
	    a->optimizer.n_groups != b->optimizer.n_groups ||
	    a->schedule.gamma != b->schedule.gamma ||
	    a->schedule.n_milestones != b->schedule.n_milestones ||
	    a->schedule.warmup_epochs != b->schedule.warmup_epochs)
		return 0;
	for (unsigned i = 0; i < a->model.n_layers; i++) {
		const struct lb_layer_spec *x = &a->model.layers[i], *y = &b->model.layers[i];
		if (x->op != y->op || strcmp(x->name, y->name) || x->out != y->out ||
		    x->kernel != y->kernel || x->stride != y->stride || x->pad != y->pad ||
		    x->bias != y->bias || x->p != y->p || !x->from != !y->from ||
		    (x->from && strcmp(x->from, y->from)) || !x->input != !y->input)
			return 0;
	}
	return 1;
}

static void roundtrip(const char *text, const char *desc)
{
	struct lb_config *a = load_text(text, NULL, 0), *b = NULL;
	char *da = NULL, *db = NULL;
	int good = 0;
	if (a && lb_config_dump(a, &da) == LB_OK)
		b = load_text(da, NULL, 0);
	if (b && lb_config_dump(b, &db) == LB_OK)
		good = !strcmp(da, db);
	ok(good, "load -> dump -> load -> dump gives the same text: %s", desc);
	ok(good && same_config(a, b) && lb_config_hash(a) == lb_config_hash(b),
	   "the reloaded config is equal: %s", desc);
	if (!good && da)
		diag("dump:\n%s", da);
	free(da);
	free(db);
	lb_config_free(a);
	lb_config_free(b);
}

static void test_dump(void)
{
	struct lb_config *c = load_text("{}", NULL, 0);
	char *d = NULL;
	ok(c && lb_config_dump(c, &d) == LB_OK && d, "dump of the defaults");
	if (d) {
		ok(strncmp(d, "---", 3) != 0, "no document delimiter");
		ok(strstr(d, "name: run\n") == d && strstr(d, "\n  lr: 0.02\n") &&
			   strstr(d, "hidden: [300, 100]") && strstr(d, "dataset: fashion-mnist"),
		   "canonical keys in schema order");
		diag("dump of '{}':\n%s", d);
	}
	free(d);
	lb_config_free(c);

	roundtrip("{}", "defaults");
	roundtrip("name: \"weird: name #1\"\nseed: 12345678901234\n"
		  "optimizer: {lr: 0.0123456789, weight_decay: 5e-4, eps: 1e-7,"
		  " groups: [{match: \"*.bias\", lr_scale: 2, weight_decay: 0}]}\n"
		  "schedule: {kind: multistep, milestones: [3, 7], gamma: 0.3333333, "
		  "warmup_epochs: 0.5}\n"
		  "data: {dataset: cifar10, dir: /tmp/cifar dir, validation: 5000}\n",
		  "odd values");
	roundtrip("model:\n  arch: custom\n  layers:\n"
		  "    - {op: conv, out: 8, kernel: 3, pad: 1}\n"
		  "    - {op: bn}\n    - {op: relu6}\n"
		  "    - {op: conv, out: 8, kernel: 3, pad: 1, input: conv1, bias: false}\n"
		  "    - {op: add, from: relu61}\n"
		  "    - {op: gap}\n    - {op: dropout, p: 0.25}\n    - {op: linear, out: 10}\n",
		  "custom layers");
}

static void test_hash(void)
{
	static const char *const lr[] = {"optimizer.lr=0.03"};
	static const char *const threads[] = {"train.threads=8", "train.log_every=7"};
	static const char *const epochs[] = {"train.epochs=6"};
	struct lb_config *a = load_text("{}", NULL, 0), *b = load_text("train: {batch: 64}", NULL, 0);
	struct lb_config *c = load_text("{}", lr, 1), *d = load_text("{}", threads, 2);
	struct lb_config *e = load_text("{}", epochs, 1);
	ok(a && b && c && d && e, "hash configs load");
	if (a && b && c && d && e) {
		ok(lb_config_hash(a) == lb_config_hash(b), "equal configs hash equal");
		ok(lb_config_hash(a) != lb_config_hash(c), "lr changes the hash");
		ok(lb_config_hash(a) != lb_config_hash(e), "epochs change the hash");
		ok(lb_config_hash(a) == lb_config_hash(d), "threads and log_every do not");
		ok(d->train.threads == 8 && d->train.log_every == 7, "hash leaves the config alone");
	}
	lb_config_free(a);
	lb_config_free(b);
	lb_config_free(c);
	lb_config_free(d);
	lb_config_free(e);
}

struct seen {
	int n, lr, hidden, layer_out, input_absent;
};

static int collect(const char *key, const char *value, void *ctx)
{
	struct seen *s = ctx;
	s->n++;
	if (!strcmp(key, "optimizer.lr") && !strcmp(value, "0.02"))
		s->lr = 1;
	if (!strcmp(key, "model.hidden") && !strcmp(value, "[300, 100]"))
		s->hidden = 1;
	if (!strcmp(key, "model.layers[2].out") && !strcmp(value, "10"))
		s->layer_out = 1;
	if (!strcmp(key, "model.layers[0].input"))
		s->input_absent = 0;
	return 0;
}

static int stop_early(const char *key, const char *value, void *ctx)
{
	(void)key;
	(void)value;
	return ++*(int *)ctx == 3 ? 42 : 0;
}

static void test_flatten(void)
{
	struct lb_config *c = load_text(
		"model: {arch: custom, layers: [{op: flatten}, {op: relu}, {op: linear, out: 10}]}",
		NULL, 0);
	struct seen s = {.input_absent = 1};
	int n = 0;
	ok(c && lb_config_flatten(c, collect, &s) == 0, "flatten runs");
	ok(s.lr, "flatten has optimizer.lr = 0.02");
	ok(s.hidden, "flatten has model.hidden = [300, 100]");
	ok(s.layer_out, "flatten has model.layers[2].out = 10");
	ok(s.input_absent && s.n > 50, "unset optional strings are left out (%d keys)", s.n);
	ok(c && lb_config_flatten(c, stop_early, &n) == 42 && n == 3, "nonzero from fn stops");
	lb_config_free(c);
}

/* A flow sequence whose node count once expanded is known by hand:
 *   [&s [x * 999], y * n_y, *s * 998]   (one alias a line)
 * = 1 (outer) + 1000 (the anchored list and its 999 x) + n_y
 *   + 998 * 1000 (each alias stands for the 1000 nodes of &s)
 * = 999001 + n_y: 999 y make exactly 10^6, checked at the last alias. */
static char *alias_doc(int n_y)
{
	size_t cap = 16 * 1024, n = 0;
	char *t = malloc(cap);
	if (!t)
		return NULL;
	n += (size_t)sprintf(t + n, "[&s [x");
	for (int i = 1; i < 999; i++)
		n += (size_t)sprintf(t + n, ",x");
	n += (size_t)sprintf(t + n, "]");
	for (int i = 0; i < n_y; i++)
		n += (size_t)sprintf(t + n, ",y");
	for (int i = 0; i < 998; i++)
		n += (size_t)sprintf(t + n, ",\n*s");
	sprintf(t + n, "]\n");
	return t;
}

static void test_yaml_guards(void)
{
	struct lb_yaml_refusal r;
	struct lb_config *c = NULL;
	int rc;

	/* the bound, counted without expanding: exactly at the limit passes */
	ok(LB_YAML_MAX_NODES == 1000000, "the alias bound is 10^6 nodes (the docs say so)");
	char *at = alias_doc(999), *over = alias_doc(1000);
	ok(at && over, "alias documents built");
	if (at && over) {
		rc = lb_yaml_check_aliases(at, strlen(at), &r);
		ok(rc == LB_OK, "10^6 nodes after expansion: accepted");
		rc = lb_yaml_check_aliases(over, strlen(over), &r);
		ok(rc == LB_ERR_CONFIG && r.line == 999 && r.column == 1 &&
			   strstr(r.what, "beyond 1000000 nodes"),
		   "10^6 + 1 nodes: refused at the last alias (line %u, column %u)", r.line,
		   r.column);
		diag("  -> %s", r.what);
		/* through the config loader: one message naming the file and line */
		rc = lb_config_load_string(over, "over.yaml", NULL, 0, &c);
		ok(rc == LB_ERR_CONFIG && c == NULL &&
			   !strcmp(lb_error_message(),
				   "over.yaml: line 999: YAML aliases expand the document beyond "
				   "1000000 nodes (alias bomb?); write the values out or use fewer "
				   "nested aliases"),
		   "the config loader refuses it with one message");
		diag("  -> %s", lb_error_message());
	}
	free(at);
	free(over);

	/* billion laughs: refused at the level that crosses 10^6 (a5 = 1111111) */
	char bomb[2048];
	size_t n = (size_t)sprintf(bomb, "a0: &a0 [x,x,x,x,x,x,x,x,x,x]\n");
	for (int i = 1; i <= 9; i++) {
		n += (size_t)sprintf(bomb + n, "a%d: &a%d [", i, i);
		for (int j = 0; j < 10; j++)
			n += (size_t)sprintf(bomb + n, "%s*a%d", j ? "," : "", i - 1);
		n += (size_t)sprintf(bomb + n, "]\n");
	}
	rc = lb_yaml_check_aliases(bomb, n, &r);
	ok(rc == LB_ERR_CONFIG && r.line == 6, "billion laughs: refused on line 6 (a5), not expanded");
	/* an alias inside the node it names would expand forever */
	rc = lb_yaml_check_aliases("a: &x [1, [2, *x]]\n", 19, &r);
	ok(rc == LB_ERR_CONFIG && r.line == 1 && r.column == 15 && strstr(r.what, "cycle"),
	   "a cyclic alias is refused");
	/* syntax errors and undefined aliases are left to the loader */
	ok(lb_yaml_check_aliases("a: [1,\n", 7, &r) == LB_OK &&
		   lb_yaml_check_aliases("a: *nowhere\n", 12, &r) == LB_OK,
	   "syntax errors are left to the loader");
	/* anchors are per document: *a in the second one names its own &a */
	ok(lb_yaml_check_aliases("--- &a [1]\n--- [*a]\n", 20, &r) == LB_OK,
	   "two documents scan");

	/* legit aliases, of a scalar and of a mapping, still load */
	c = load_text("model:\n"
		      "  arch: custom\n"
		      "  layers:\n"
		      "    - &lin {op: linear, out: &w 32}\n"
		      "    - {op: relu}\n"
		      "    - *lin\n"
		      "    - {op: relu}\n"
		      "    - {op: linear, out: 10}\n"
		      "optimizer: {groups: [{match: 'a*', lr_scale: &s 2}, {match: 'b*', lr_scale: *s}]}\n",
		      NULL, 0);
	ok(c && c->model.n_layers == 5 && c->model.layers[2].out == 32 &&
		   !strcmp(c->model.layers[2].name, "linear2") && c->optimizer.n_groups == 2 &&
		   c->optimizer.groups[1].lr_scale == 2.0f,
	   "aliases of a layer and of a scalar load");
	lb_config_free(c);

	/* the bounded reader */
	char *text = NULL;
	size_t len = 7;
	ok(lb_yaml_read_file("/dev/zero", &text, &len) == LB_YAML_FILE_NOT_REGULAR && !text &&
		   len == 0,
	   "/dev/zero is refused before it is read");
	ok(lb_yaml_read_file(tmpdir, &text, &len) == LB_YAML_FILE_NOT_REGULAR && !text,
	   "a folder is refused");
	ok(!strcmp(lb_yaml_file_strerror(LB_YAML_FILE_NOT_REGULAR),
		   "not a regular file of at most 16 MiB"),
	   "its wording");
	char missing[512];
	snprintf(missing, sizeof missing, "%s/no-such.yaml", tmpdir);
	ok(lb_yaml_read_file(missing, &text, &len) == LB_YAML_FILE_OPEN && errno == ENOENT &&
		   !strcmp(lb_yaml_file_strerror(LB_YAML_FILE_OPEN), strerror(ENOENT)),
	   "a missing file: errno kept");
	const char *path = write_tmp("bad.yaml", "a: 1\n");
	ok(path && lb_yaml_read_file(path, &text, &len) == LB_YAML_FILE_OK && text && len == 5 &&
		   !strcmp(text, "a: 1\n"),
	   "a regular file is read whole");
	free(text);
	FILE *f = fopen(path, "wb");
	if (f) {
		fwrite("a: 1\n\0b: 2\n", 1, 11, f);
		fclose(f);
	}
	ok(lb_yaml_read_file(path, &text, &len) == LB_YAML_FILE_NUL && !text,
	   "a NUL byte is refused");
	f = fopen(path, "wb");
	if (f) {
		fseek(f, LB_YAML_MAX_BYTES, SEEK_SET); /* a sparse file one byte over */
		fputc('\n', f);
		fclose(f);
	}
	ok(lb_yaml_read_file(path, &text, &len) == LB_YAML_FILE_NOT_REGULAR && !text,
	   "a file over 16 MiB is refused");
	unlink(path); /* not 16 MiB of zeros in a tmpdir left behind */
}

static void test_names(void)
{
	ok(!strcmp(lb_arch_name(LB_ARCH_LENET5_CAFFE), "lenet5-caffe") &&
		   !strcmp(lb_arch_name(LB_ARCH_RESNET20), "resnet20"),
	   "lb_arch_name");
	ok(!strcmp(lb_op_name(LB_OP_RELU6), "relu6") && !strcmp(lb_op_name(LB_OP_MAXPOOL), "maxpool"),
	   "lb_op_name");
	ok(!strcmp(lb_dataset_name(LB_DATA_FASHION_MNIST), "fashion-mnist") &&
		   !strcmp(lb_dataset_name(LB_DATA_IDX), "idx"),
	   "lb_dataset_name");
}

int main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/lb-test-config-XXXXXX");
	if (!mkdtemp(tmpdir))
		tap_skip_all("cannot create a temp directory");
	test_defaults();
	test_dataset_and_layer_defaults();
	test_examples();
	test_errors();
	test_overrides();
	test_dump();
	test_hash();
	test_flatten();
	test_names();
	test_yaml_guards();
	char path[512];
	snprintf(path, sizeof path, "%s/bad.yaml", tmpdir);
	unlink(path);
	rmdir(tmpdir);
	return done_testing();
}
