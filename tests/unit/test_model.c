/* SPDX-License-Identifier: MIT
 * Whole-model tests (core/models, core/optim): random-direction gradient
 * check of the full loss for every architecture, "gradient of a batch = sum
 * over its halves", backward accumulation, a tiny batch overfit, build
 * errors, optimizer fast path == reference, and the schedules. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "config.h"
#include "err.h"
#include "models/model.h"
#include "optim/optim.h"
#include "quant/bsq.h"
#include "rng.h"
#include "util.h"

static unsigned hidden_small[2] = {16, 12};

static void base_config(struct lb_config *c, enum lb_arch arch)
{
	memset(c, 0, sizeof *c);
	c->name = "test";
	c->seed = 7;
	c->model.arch = arch;
	c->model.init = LB_INIT_TORCH;
	c->model.hidden = hidden_small;
	c->model.n_hidden = 2;
	c->model.bn_momentum = 0.1f;
	c->model.bn_eps = 1e-5f;
	c->optimizer.kind = LB_OPT_SGD;
	c->optimizer.lr = 0.05f;
	c->optimizer.momentum = 0.9f;
	c->optimizer.beta1 = 0.9f;
	c->optimizer.beta2 = 0.999f;
	c->optimizer.eps = 1e-8f;
	c->schedule.gamma = 0.1f;
}

static void fill_input(struct lb_model *m, int B, int32_t *labels, uint32_t salt)
{
	float *x = lb_model_input(m);
	size_t n = (size_t)B * m->in_H * m->in_W * m->in_C;
	for (size_t i = 0; i < n; i++)
		x[i] = lb_rng_normal(11, LB_RNG_TEST, salt, i);
	for (int b = 0; b < B; b++)
		labels[b] = (int32_t)lb_rng_below(11, LB_RNG_TEST, salt + 1000, (uint64_t)b, 10);
}

/* Directional derivative of the summed loss along a random unit direction:
 * analytic <g, d> against central differences (loss summed in double). */
static void check_direction(const char *what, const struct lb_config *cfg, int H, int W, int C,
			    int B)
{
	struct lb_model *m = NULL;
	int32_t labels[64];
	if (lb_model_build(cfg, H, W, C, 10, B, B, &m)) {
		ok(0, "%s: build (%s)", what, lb_error_message());
		return;
	}
	lb_model_init_params(m, cfg->model.init, 3);
	m->seed = 5;
	/* move BN away from its init so gamma/beta gradients are generic */
	for (size_t i = 0; i < m->n_weights; i++)
		m->w[i] += 0.05f * lb_rng_normal(4, LB_RNG_TEST, 9, i);
	float *d = malloc(m->n_weights * sizeof *d);
	float *w0 = malloc(m->n_weights * sizeof *w0);
	float *buf0 = malloc((m->n_buffer_floats + 1) * sizeof *buf0);
	double dn = 0, ga = 0;
	for (size_t i = 0; i < m->n_weights; i++) {
		d[i] = lb_rng_normal(5, LB_RNG_TEST, 1, i);
		dn += (double)d[i] * d[i];
	}
	for (size_t i = 0; i < m->n_weights; i++)
		d[i] /= (float)sqrt(dn);
	memcpy(w0, m->w, m->n_weights * sizeof *w0);
	memcpy(buf0, m->buf, m->n_buffer_floats * sizeof *buf0);
	fill_input(m, B, labels, 1);
	lb_model_zero_grad(m);
	lb_model_forward(m, B, labels, 1, 0, 0, NULL);
	lb_model_backward(m, B, labels, 1.0f);
	for (size_t i = 0; i < m->n_weights; i++)
		ga += (double)m->g[i] * d[i];
	/* float32 forward: the loss difference carries rounding noise at small
	 * eps and ReLU/max-pool kinks at large eps, so several eps are tried and
	 * the best agreement counts; a wrong gradient disagrees at every eps. */
	double best = 1e30, best_gn = 0;
	for (double eps = 5e-2; eps > 1e-3; eps /= 2) {
		double lp, lm, gn, rel;
		for (size_t i = 0; i < m->n_weights; i++)
			m->w[i] = w0[i] + (float)eps * d[i];
		lp = lb_model_forward(m, B, labels, 1, 0, 0, NULL);
		for (size_t i = 0; i < m->n_weights; i++)
			m->w[i] = w0[i] - (float)eps * d[i];
		lm = lb_model_forward(m, B, labels, 1, 0, 0, NULL);
		gn = (lp - lm) / (2 * eps);
		rel = fabs(gn - ga) / fmax(fabs(ga), 1e-3);
		if (rel < best) {
			best = rel;
			best_gn = gn;
		}
	}
	ok(best < 1e-2, "%s: random-direction check, analytic %.6g numeric %.6g (rel %.2g)", what,
	   ga, best_gn, best);
	memcpy(m->w, w0, m->n_weights * sizeof *w0);
	free(d);
	free(w0);
	free(buf0);
	lb_model_free(m);
}

static int grads_close(const float *a, const float *b, size_t n, double tol, double *worst)
{
	double num = 0, den = 0;
	for (size_t i = 0; i < n; i++) {
		num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
		den += (double)a[i] * a[i];
	}
	*worst = sqrt(num / fmax(den, 1e-30));
	return *worst < tol;
}

static void test_halves(void)
{
	struct lb_config cfg;
	struct lb_model *m = NULL;
	int32_t labels[16];
	base_config(&cfg, LB_ARCH_LENET5_CAFFE);
	if (lb_model_build(&cfg, 28, 28, 1, 10, 16, 16, &m)) {
		ok(0, "halves: build");
		return;
	}
	lb_model_init_params(m, LB_INIT_TORCH, 1);
	fill_input(m, 16, labels, 2);
	float *x = malloc((size_t)16 * 784 * sizeof *x), *g = malloc(m->n_weights * sizeof *g);
	memcpy(x, lb_model_input(m), (size_t)16 * 784 * sizeof *x);
	lb_model_zero_grad(m);
	lb_model_forward(m, 16, labels, 1, 0, 0, NULL);
	lb_model_backward(m, 16, labels, 1.0f / 16);
	memcpy(g, m->g, m->n_weights * sizeof *g);
	lb_model_zero_grad(m);
	for (int h = 0; h < 2; h++) {
		memcpy(lb_model_input(m), x + (size_t)h * 8 * 784, (size_t)8 * 784 * sizeof *x);
		lb_model_forward(m, 8, labels + h * 8, 1, 0, 0, NULL);
		lb_model_backward(m, 8, labels + h * 8, 1.0f / 16);
	}
	double rel;
	int close = grads_close(g, m->g, m->n_weights, 1e-5, &rel);
	ok(close, "gradient of a batch equals the sum over its halves (rel %.2g)", rel);
	/* backward twice accumulates twice */
	memcpy(lb_model_input(m), x, (size_t)16 * 784 * sizeof *x);
	lb_model_zero_grad(m);
	lb_model_forward(m, 16, labels, 1, 0, 0, NULL);
	lb_model_backward(m, 16, labels, 1.0f / 16);
	lb_model_backward(m, 16, labels, 1.0f / 16);
	for (size_t i = 0; i < m->n_weights; i++)
		g[i] *= 2.0f;
	close = grads_close(g, m->g, m->n_weights, 1e-6, &rel);
	ok(close, "backward twice gives twice the gradient (rel %.2g)", rel);
	free(x);
	free(g);
	lb_model_free(m);
}

static void test_overfit(void)
{
	struct lb_config cfg;
	struct lb_model *m = NULL;
	struct lb_optimizer *o = NULL;
	int32_t labels[16];
	base_config(&cfg, LB_ARCH_LENET5_CAFFE);
	if (lb_model_build(&cfg, 28, 28, 1, 10, 16, 16, &m) ||
	    lb_optim_new(&cfg.optimizer, m, &o)) {
		ok(0, "overfit: build");
		lb_model_free(m);
		return;
	}
	lb_model_init_params(m, LB_INIT_TORCH, 1);
	fill_input(m, 16, labels, 3);
	double loss = 0, first = 0;
	for (int step = 0; step < 150; step++) {
		lb_model_zero_grad(m);
		loss = lb_model_forward(m, 16, labels, 1, (uint32_t)step, 0, NULL) / 16;
		if (step == 0)
			first = loss;
		lb_model_backward(m, 16, labels, 1.0f / 16);
		lb_optim_step(o, m->w, m->g, 0.02f);
	}
	ok(loss < 0.01, "tiny batch overfit: loss %.4f -> %.5f in 150 steps", first, loss);
	lb_optim_free(o);
	lb_model_free(m);
}

static void test_build_errors(void)
{
	struct lb_config cfg;
	struct lb_model *m = NULL;
	struct lb_layer_spec big[2] = {
		{.op = LB_OP_CONV, .name = "c1", .out = 4, .kernel = 31, .stride = 1, .bias = true},
		{.op = LB_OP_LINEAR, .name = "fc", .out = 10, .bias = true},
	};
	struct lb_layer_spec add[4] = {
		{.op = LB_OP_CONV, .name = "c1", .out = 4, .kernel = 3, .stride = 1, .bias = true},
		{.op = LB_OP_CONV, .name = "c2", .out = 5, .kernel = 3, .stride = 1, .pad = 1, .bias = true},
		{.op = LB_OP_ADD, .name = "sum", .from = "c1"},
		{.op = LB_OP_LINEAR, .name = "fc", .out = 10, .bias = true},
	};
	struct lb_layer_spec last[1] = {{.op = LB_OP_LINEAR, .name = "fc", .out = 7, .bias = true}};
	struct lb_layer_spec noin[2] = {
		{.op = LB_OP_RELU, .name = "r", .input = "nowhere"},
		{.op = LB_OP_LINEAR, .name = "fc", .out = 10, .bias = true},
	};
	struct {
		struct lb_layer_spec *l;
		unsigned n;
		const char *want;
	} cases[] = {
		{big, 2, "kernel 31 is larger"},
		{add, 4, "shapes differ"},
		{last, 1, "has 7 outputs"},
		{noin, 2, "'nowhere' is not an earlier layer"},
	};
	base_config(&cfg, LB_ARCH_CUSTOM);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cfg.model.layers = cases[i].l;
		cfg.model.n_layers = cases[i].n;
		int rc = lb_model_build(&cfg, 28, 28, 1, 10, 4, 4, &m);
		ok(rc == LB_ERR_CONFIG && m == NULL && strstr(lb_error_message(), cases[i].want),
		   "build error: %s", lb_error_message());
		lb_model_free(m);
		m = NULL;
	}
}

static void test_optim(void)
{
	struct lb_config cfg;
	struct lb_model *m = NULL;
	struct lb_param_group_cfg groups[1] = {{.match = "*.bias", .lr_scale = 2.0f, .weight_decay = 0}};
	base_config(&cfg, LB_ARCH_MLP);
	if (lb_model_build(&cfg, 4, 4, 1, 10, 2, 2, &m)) {
		ok(0, "optim: build");
		return;
	}
	for (int kg = 0; kg < 6; kg++) {
		int kind = kg % 3, use_groups = kg < 3;
		struct lb_optimizer *a = NULL, *b = NULL;
		cfg.optimizer.kind = kind == 2 ? LB_OPT_ADAM : LB_OPT_SGD;
		cfg.optimizer.nesterov = kind == 1;
		cfg.optimizer.weight_decay = 1e-3f;
		cfg.optimizer.groups = groups;
		cfg.optimizer.n_groups = use_groups;
		lb_optim_new(&cfg.optimizer, m, &a);
		lb_optim_new(&cfg.optimizer, m, &b);
		float *w1 = malloc(m->n_weights * sizeof *w1), *w2 = malloc(m->n_weights * sizeof *w2);
		float *g = malloc(m->n_weights * sizeof *g);
		for (size_t i = 0; i < m->n_weights; i++)
			w1[i] = w2[i] = lb_rng_normal(1, LB_RNG_TEST, 50, i);
		int fin = 1;
		for (int t = 0; t < 5; t++) {
			for (size_t i = 0; i < m->n_weights; i++)
				g[i] = lb_rng_normal(1, LB_RNG_TEST, 60 + t, i);
			fin &= lb_optim_step(a, w1, g, 0.01f) == 1;
			fin &= lb_optim_step_ref(b, w2, g, 0.01f) == 1;
		}
		ok(memcmp(w1, w2, m->n_weights * sizeof *w1) == 0 && fin,
		   "optimizer %s%s: fast path equals the reference bit for bit",
		   kind == 0 ? "sgd" : kind == 1 ? "sgd-nesterov" : "adam",
		   use_groups ? " with parameter groups" : "");
		free(w1);
		free(w2);
		free(g);
		lb_optim_free(a);
		lb_optim_free(b);
	}
	/* A clamped parameter (LB_PARAM_CLAMP, what BSQ's planes use): the update
	 * clamps it in the same pass. Held against the reference twin and against
	 * the unclamped update followed by lb_bsq_clamp's expression, for SGD,
	 * Nesterov and Adam, with and without groups; gradients include NaN and
	 * values that push past both bounds. Parameter 0 is larger than the
	 * optimizer's chunk only in the lenet model, so build one. */
	{
		struct lb_model *mc = NULL;
		struct lb_config c2;
		base_config(&c2, LB_ARCH_LENET5);
		if (lb_model_build(&c2, 28, 28, 1, 10, 2, 2, &mc)) {
			ok(0, "optim clamp: build");
		} else {
			struct lb_param *pc = &mc->params[2]; /* conv2.weight: 51200 floats */
			size_t off = pc->offset, cnt = pc->count, n = mc->n_weights;
			for (int kg = 0; kg < 6; kg++) {
				int kind = kg % 3;
				struct lb_optimizer *a = NULL, *b = NULL, *u = NULL;
				c2.optimizer.kind = kind == 2 ? LB_OPT_ADAM : LB_OPT_SGD;
				c2.optimizer.nesterov = kind == 1;
				c2.optimizer.momentum = 0.9f;
				c2.optimizer.weight_decay = 1e-3f;
				c2.optimizer.groups = groups;
				c2.optimizer.n_groups = kg < 3;
				pc->flags &= ~LB_PARAM_CLAMP;
				lb_optim_new(&c2.optimizer, mc, &u);
				pc->flags |= LB_PARAM_CLAMP;
				pc->lo = 0.0f;
				pc->hi = 2.0f;
				lb_optim_new(&c2.optimizer, mc, &a);
				lb_optim_new(&c2.optimizer, mc, &b);
				float *w1 = malloc(n * sizeof *w1), *w2 = malloc(n * sizeof *w2);
				float *w3 = malloc(n * sizeof *w3), *g = malloc(n * sizeof *g);
				float *sc = malloc(cnt * sizeof *sc);
				for (size_t i = 0; i < n; i++)
					w1[i] = w2[i] = w3[i] = 1.0f + lb_rng_normal(1, LB_RNG_TEST, 70, i);
				size_t outside = 0;
				int nonfin = 0;
				for (int t = 0; t < 4; t++) {
					for (size_t i = 0; i < n; i++)
						g[i] = 30.0f * lb_rng_normal(1, LB_RNG_TEST, 80 + t, i);
					g[off + 7] = NAN;
					if (t == 3)
						g[n - 1] = -INFINITY; /* the last float, the scalar tail */
					nonfin += !lb_optim_step(a, w1, g, 0.05f);
					nonfin += !lb_optim_step_ref(b, w2, g, 0.05f);
					nonfin += !lb_optim_step(u, w3, g, 0.05f);
					for (size_t i = off; i < off + cnt; i++)
						outside += !(w3[i] >= 0.0f && w3[i] <= 2.0f);
					/* BSQ's own clamp (one plane row; Nn a scratch row) */
					memcpy(sc, w3 + off, cnt * sizeof *sc);
					lb_bsq_clamp(w3 + off, sc, cnt, 1, 1);
				}
				int inside = 1;
				for (size_t i = 0; i < n; i++)
					if (memcmp(&w1[i], &w2[i], 4) || memcmp(&w1[i], &w3[i], 4)) {
						diag("first difference at %zu (param from %zu): %a %a %a", i, off, w1[i], w2[i], w3[i]);
						break;
					}
				for (size_t i = off; i < off + cnt; i++)
					inside &= w1[i] >= 0.0f && w1[i] <= 2.0f;
				ok(!memcmp(w1, w2, n * sizeof *w1) && !memcmp(w1, w3, n * sizeof *w1) &&
					   inside && outside > cnt / 2 && w1[off + 7] == 0.0f && nonfin == 12,
				   "optimizer %s%s with a clamped parameter (%zu floats): fast path = "
				   "reference = update then lb_bsq_clamp, bit for bit (%zu "
				   "values clamped, NaN -> 0; both report the NaN gradient)",
				   kind == 0 ? "sgd" : kind == 1 ? "sgd-nesterov" : "adam",
				   kg < 3 ? " with parameter groups" : "", cnt, outside);
				free(w1);
				free(w2);
				free(w3);
				free(g);
				free(sc);
				lb_optim_free(a);
				lb_optim_free(b);
				lb_optim_free(u);
			}
			lb_model_free(mc);
		}
	}
	/* one SGD step by hand: w=1, g=0.5, wd=0.1 -> d=0.6, buf=0.6, w=1-0.1*0.6 */
	{
		struct lb_optimizer *o = NULL;
		cfg.optimizer.kind = LB_OPT_SGD;
		cfg.optimizer.nesterov = false;
		cfg.optimizer.weight_decay = 0.1f;
		cfg.optimizer.n_groups = 0;
		lb_optim_new(&cfg.optimizer, m, &o);
		float *w = calloc(m->n_weights, sizeof *w), *g = calloc(m->n_weights, sizeof *g);
		w[0] = 1.0f;
		g[0] = 0.5f;
		lb_optim_step(o, w, g, 0.1f);
		lb_optim_step(o, w, g, 0.1f);
		/* step 2: d = 0.5 + 0.1*0.94 = 0.594; buf = 0.9*0.6 + 0.594 = 1.134; w = 0.94 - 0.1134 */
		is_near(w[0], 0.94 - 0.1134, 1e-6, "sgd momentum by hand (PyTorch semantics)");
		free(w);
		free(g);
		lb_optim_free(o);
	}
	struct lb_param_group_cfg none[1] = {{.match = "conv*", .lr_scale = 1, .weight_decay = -1}};
	struct lb_optimizer *o = NULL;
	cfg.optimizer.groups = none;
	cfg.optimizer.n_groups = 1;
	int rc = lb_optim_new(&cfg.optimizer, m, &o);
	ok(rc == LB_ERR_CONFIG && strstr(lb_error_message(), "'conv*' matches no parameter"),
	   "group matching nothing is an error: %s", lb_error_message());
	lb_optim_free(o);
	lb_model_free(m);
}

static void test_schedules(void)
{
	struct lb_schedule_cfg s = {0};
	unsigned ms[2] = {2, 4};
	s.gamma = 0.1f;
	s.kind = LB_SCHED_STEP;
	s.step_size = 3;
	is_near(lb_schedule_lr(&s, 1.0f, 10, 2, 5, 10), 1.0, 1e-7, "step: before the first decay");
	is_near(lb_schedule_lr(&s, 1.0f, 10, 3, 0, 10), 0.1, 1e-7, "step: after");
	s.kind = LB_SCHED_MULTISTEP;
	s.milestones = ms;
	s.n_milestones = 2;
	is_near(lb_schedule_lr(&s, 1.0f, 10, 4, 0, 10), 0.01, 1e-8, "multistep: two decays");
	s.kind = LB_SCHED_COSINE;
	s.min_lr = 0.0f;
	is_near(lb_schedule_lr(&s, 1.0f, 10, 5, 0, 10), 0.5, 1e-6, "cosine: half way");
	is_near(lb_schedule_lr(&s, 1.0f, 10, 0, 0, 10), 1.0, 1e-7, "cosine: start");
	s.kind = LB_SCHED_CONSTANT;
	s.warmup_epochs = 1.0f;
	is_near(lb_schedule_lr(&s, 1.0f, 10, 0, 4, 10), 0.5, 1e-7, "warm-up: linear per step");
	is_near(lb_schedule_lr(&s, 1.0f, 10, 1, 0, 10), 1.0, 1e-7, "warm-up: done");
}

int main(void)
{
	struct lb_config cfg;
	static struct lb_layer_spec custom[] = {
		{.op = LB_OP_CONV, .name = "c1", .out = 4, .kernel = 3, .stride = 1, .pad = 1, .bias = true},
		{.op = LB_OP_BN, .name = "bn1"},
		{.op = LB_OP_RELU6, .name = "r1"},
		{.op = LB_OP_CONV, .name = "c2", .out = 4, .kernel = 3, .stride = 1, .pad = 1, .bias = false},
		{.op = LB_OP_ADD, .name = "sum", .from = "r1"},
		{.op = LB_OP_AVGPOOL, .name = "ap", .kernel = 2, .stride = 2},
		{.op = LB_OP_CONV, .name = "c3", .out = 6, .kernel = 3, .stride = 2, .pad = 1, .bias = true},
		{.op = LB_OP_RELU, .name = "r2"},
		{.op = LB_OP_DROPOUT, .name = "do", .p = 0.25f},
		{.op = LB_OP_GAP, .name = "gap"},
		{.op = LB_OP_LINEAR, .name = "fc", .out = 10, .bias = true},
	};
	base_config(&cfg, LB_ARCH_MLP);
	check_direction("mlp", &cfg, 6, 6, 1, 4);
	base_config(&cfg, LB_ARCH_LENET5_CAFFE);
	check_direction("lenet5-caffe", &cfg, 28, 28, 1, 3);
	base_config(&cfg, LB_ARCH_LENET5);
	check_direction("lenet5", &cfg, 28, 28, 1, 2);
	base_config(&cfg, LB_ARCH_SIMPLENET5);
	check_direction("simplenet5", &cfg, 28, 28, 1, 3);
	base_config(&cfg, LB_ARCH_RESNET20);
	cfg.model.init = LB_INIT_KAIMING_NORMAL;
	check_direction("resnet20 (8x8x3 input)", &cfg, 8, 8, 3, 4);
	base_config(&cfg, LB_ARCH_VGG7);
	cfg.model.init = LB_INIT_XAVIER_UNIFORM;
	check_direction("vgg7 (8x8x3 input)", &cfg, 8, 8, 3, 2);
	base_config(&cfg, LB_ARCH_CUSTOM);
	cfg.model.layers = custom;
	cfg.model.n_layers = sizeof custom / sizeof custom[0];
	check_direction("custom (bn, relu6, add, avgpool, stride 2, dropout, gap)", &cfg, 8, 8, 2, 4);
	test_halves();
	test_overfit();
	test_build_errors();
	test_optim();
	test_schedules();
	return done_testing();
}
