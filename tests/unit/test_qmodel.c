/* SPDX-License-Identifier: MIT
 * Quantizers in a model (core/quant/qmodel.c): where quant nodes go and what
 * their parameters are called; the quantized weights of each method at test
 * time (SRQ == round-and-clamp on its grid, DoReFa on its exact levels, at
 * most 2^b levels per tensor for every method, fixed learned bits shrink the
 * grid, idempotence); 16-bit uniform quantizers give the FP gradients
 * through the dL/dwq path; the size/BOPs report on a hand-computed case. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "config.h"
#include "err.h"
#include "models/model.h"
#include "quant/qmodel.h"
#include "quant/quant.h"
#include "rng.h"

static struct lb_config *load(const char *yaml)
{
	struct lb_config *cfg = NULL;
	if (lb_config_load_string(yaml, "test", NULL, 0, &cfg)) {
		diag("config: %s", lb_error_message());
		return NULL;
	}
	return cfg;
}

static struct lb_model *build(const struct lb_config *cfg, int B)
{
	struct lb_model *m = NULL;
	if (lb_model_build(cfg, 28, 28, 1, 10, B, B, &m)) {
		diag("build: %s", lb_error_message());
		return NULL;
	}
	lb_model_init_params(m, cfg->model.init, 3);
	m->seed = 5;
	if (m->q)
		m->q->seed = 9;
	return m;
}

static void fill(struct lb_model *m, int B, int32_t *labels)
{
	float *x = lb_model_input(m);
	size_t n = (size_t)B * 28 * 28;
	for (size_t i = 0; i < n; i++)
		x[i] = lb_rng_normal(11, LB_RNG_TEST, 1, i);
	for (int b = 0; b < B; b++)
		labels[b] = (int32_t)lb_rng_below(11, LB_RNG_TEST, 2, (uint64_t)b, 10);
}

static int node_named(const struct lb_model *m, const char *name)
{
	for (int i = 0; i < m->n_nodes; i++)
		if (!strcmp(m->nodes[i].name, name))
			return i;
	return -1;
}

static void test_layout(void)
{
	struct lb_config *cfg = load("model: {arch: lenet5}\n"
				     "quant: {weights: {method: srq, bits: 3}, activations: {method: pact, bits: 4},\n"
				     "        learn_bits: {enabled: true},\n"
				     "        layers: [{match: fc2, weights_method: lsq, weights_bits: 8}]}\n");
	struct lb_model *m = cfg ? build(cfg, 4) : NULL;
	ok(m != NULL, "LeNet-5 with SRQ weights, PACT activations, an LSQ classifier builds");
	if (!m) {
		lb_config_free(cfg);
		return;
	}
	int c1 = node_named(m, "conv1"), c2 = node_named(m, "conv2"), q2 = node_named(m, "conv2.aq");
	ok(c1 > 0 && node_named(m, "conv1.aq") < 0, "no quant node in front of conv1 (reads the input)");
	ok(q2 > 0 && m->nodes[c2].in == q2 && m->nodes[q2].op == LB_OP_QUANT,
	   "conv2 reads its quant node conv2.aq");
	ok(node_named(m, "fc1.aq") > 0 && node_named(m, "fc2.aq") > 0, "fc1.aq and fc2.aq inserted");
	ok(m->q->n_w == 4 && m->q->n_a == 3, "4 weight and 3 activation quantizers (%d, %d)", m->q->n_w,
	   m->q->n_a);
	ok(lb_model_find_param(m, "conv1.wq.log_alpha") >= 0 &&
		   lb_model_find_param(m, "conv1.wq.log_sigma") >= 0 &&
		   lb_model_find_param(m, "conv1.wq.gate_log_a") >= 0,
	   "SRQ grid and gate parameters are named <layer>.wq.*");
	ok(lb_model_find_param(m, "fc2.wq.step") >= 0 && lb_model_find_param(m, "fc2.wq.gate_log_a") < 0,
	   "the fc2 override: an LSQ step, no gates");
	int pa = lb_model_find_param(m, "conv2.aq.alpha");
	ok(pa >= 0 && m->w[m->params[pa].offset] == 10.0f && (m->params[pa].flags & LB_PARAM_QDECAY),
	   "PACT alpha conv2.aq.alpha starts at 10 and takes weight decay");
	ok(m->n_grad > m->n_weights, "the gradient block holds dL/dwq past the parameters");
	lb_model_free(m);
	lb_config_free(cfg);
}

/* The test-time quantized weights of each method at 3 bits. */
static void test_levels(void)
{
	static const char *methods[] = {"uniform", "dorefa", "wrpn", "lsq", "sr", "rq", "rq-st", "srq"};
	char yaml[256];
	for (unsigned k = 0; k < sizeof methods / sizeof *methods; k++) {
		snprintf(yaml, sizeof yaml, "model: {arch: lenet5}\nquant: {weights: {method: %s, bits: 3}}\n",
			 methods[k]);
		struct lb_config *cfg = load(yaml);
		struct lb_model *m = cfg ? build(cfg, 2) : NULL;
		if (!m) {
			ok(0, "%s builds", methods[k]);
			lb_config_free(cfg);
			continue;
		}
		lb_model_quant_begin(m, 0, 0);
		int fine = 1, idem = 1;
		for (int l = 0; l < m->q->n_w; l++) {
			struct lb_qstate *s = &m->q->w[l];
			float lv[16];
			size_t n = lb_quant_levels(lv, 15, s->wq, s->count);
			if (n > 8) {
				fine = 0;
				diag("%s layer %d: %zu levels", methods[k], l, n);
			}
			/* idempotence: quantizing the quantized weights changes nothing
			 * (methods with a data-dependent range or grid excluded) */
			if (!strcmp(methods[k], "wrpn") || !strcmp(methods[k], "lsq") ||
			    !strcmp(methods[k], "srq") || !strcmp(methods[k], "rq")) {
				float *w = m->w + m->params[m->nodes[s->node].w].offset;
				float *keep = malloc(s->count * sizeof *keep);
				memcpy(keep, w, s->count * sizeof *keep);
				memcpy(w, s->wq, s->count * sizeof *w);
				float *again = malloc(s->count * sizeof *again);
				memcpy(again, s->wq, s->count * sizeof *again);
				lb_model_quant_begin(m, 0, 0);
				if (memcmp(again, s->wq, s->count * sizeof *again))
					idem = 0;
				memcpy(w, keep, s->count * sizeof *w);
				lb_model_quant_begin(m, 0, 0);
				free(keep);
				free(again);
			}
		}
		ok(fine, "%s at 3 bits: every weight tensor has at most 8 levels", methods[k]);
		if (!strcmp(methods[k], "wrpn") || !strcmp(methods[k], "lsq") || !strcmp(methods[k], "srq") ||
		    !strcmp(methods[k], "rq"))
			ok(idem, "%s: quantizing the quantized weights changes nothing", methods[k]);
		if (!strcmp(methods[k], "dorefa")) {
			struct lb_qstate *s = &m->q->w[1];
			float lv[16];
			size_t n = lb_quant_levels(lv, 15, s->wq, s->count);
			int exact = n == 8;
			for (size_t i = 0; exact && i < 8; i++)
				exact = lv[i] == (float)(2.0 * (double)i - 7.0) / 7.0f;
			ok(exact, "DoReFa 3-bit weights are exactly {(2i - 7)/7}");
		}
		if (!strcmp(methods[k], "srq") || !strcmp(methods[k], "rq")) {
			/* test time: round-and-clamp of w / alpha on [-4, 3] */
			int same = 1;
			for (int l = 0; l < m->q->n_w; l++) {
				struct lb_qstate *s = &m->q->w[l];
				float alpha = expf(m->w[m->params[s->p_a].offset]);
				float *ref = malloc(s->count * sizeof *ref);
				lb_quant_uniform_forward(ref, m->w + m->params[m->nodes[s->node].w].offset,
							 &alpha, NULL, 1, s->count, -4, 3);
				same &= !memcmp(ref, s->wq, s->count * sizeof *ref);
				free(ref);
			}
			ok(same, "%s test-time weights == round-and-clamp on the grid alpha * [-4, 3]",
			   methods[k]);
		}
		if (!strcmp(methods[k], "srq")) {
			int bits[4] = {2, 3, 1, 3}, fewer = 1;
			ok(lb_model_quant_fix_bits(m, bits, 4) == LB_OK, "fix learned bits (2, 3, 1, 3)");
			lb_model_quant_begin(m, 0, 0);
			for (int l = 0; l < 4; l++) {
				float lv[16];
				size_t n = lb_quant_levels(lv, 15, m->q->w[l].wq, m->q->w[l].count);
				fewer &= n <= (size_t)(1 << bits[l]);
			}
			ok(fewer, "... each layer then has at most 2^b* levels");
			int bad[4] = {2, 3, 4, 3};
			ok(lb_model_quant_fix_bits(m, bad, 4) == LB_ERR_CONFIG &&
				   strstr(lb_error_message(), "has 4 bits (allowed: 1 to 3 with srq weights)"),
			   "more bits than the run's grid is refused");
			ok(lb_model_quant_fix_bits(m, bad, 3) == LB_ERR_CONFIG, "a wrong layer count is refused");
		}
		lb_model_free(m);
		lb_config_free(cfg);
	}
}

/* 16-bit uniform weights and activations: the gradient through dL/dwq and
 * the quant nodes is the FP gradient up to the 16-bit rounding. */
static void test_gradient_path(void)
{
	struct lb_config *fp = load("model: {arch: lenet5}\n");
	struct lb_config *q = load("model: {arch: lenet5}\n"
				   "quant: {weights: {method: uniform, bits: 16}, activations: {method: uniform, bits: 16}}\n");
	struct lb_model *a = fp ? build(fp, 8) : NULL, *b = q ? build(q, 8) : NULL;
	int32_t labels[8];
	if (!a || !b) {
		ok(0, "FP and 16-bit models build");
		goto out;
	}
	fill(a, 8, labels);
	fill(b, 8, labels);
	lb_model_quant_calibrate(b, 8);
	lb_model_zero_grad(a);
	lb_model_zero_grad(b);
	lb_model_quant_begin(b, 1, 0);
	double la = lb_model_forward(a, 8, labels, 1, 0, 0, NULL);
	double lq = lb_model_forward(b, 8, labels, 1, 0, 0, NULL);
	lb_model_backward(a, 8, labels, 1.0f / 8);
	lb_model_backward(b, 8, labels, 1.0f / 8);
	lb_model_quant_weights_backward(b);
	ok(fabs(la - lq) < 1e-2 * fabs(la), "16-bit loss == FP loss (%.6f vs %.6f)", la, lq);
	int same = 1;
	for (int p = 0; p < a->n_params; p++) {
		int pq = lb_model_find_param(b, a->params[p].name);
		double d = 0, n = 0;
		for (size_t i = 0; i < a->params[p].count; i++) {
			double x = a->g[a->params[p].offset + i], y = b->g[b->params[pq].offset + i];
			d += (x - y) * (x - y);
			n += x * x;
		}
		if (!(sqrt(d) <= 2e-2 * sqrt(n) + 1e-6)) {
			same = 0;
			diag("%s: relative gradient error %.3g", a->params[p].name, sqrt(d / (n + 1e-30)));
		}
	}
	ok(same, "16-bit uniform W/A: every parameter gradient == FP gradient (2%%)");
out:
	lb_model_free(a);
	lb_model_free(b);
	lb_config_free(fp);
	lb_config_free(q);
}

static void test_report(void)
{
	struct lb_config *cfg = load("model: {arch: mlp, hidden: [8]}\n"
				     "quant: {weights: {method: uniform, bits: 4}, activations: {method: uniform, bits: 2},\n"
				     "        layers: [{match: fc2, weights_bits: 8}]}\n");
	struct lb_model *m = cfg ? build(cfg, 2) : NULL;
	if (!m) {
		ok(0, "MLP builds");
		lb_config_free(cfg);
		return;
	}
	int wb[4], ab[4];
	double params[4], macs[4];
	const char *names[4];
	int L = lb_model_quant_layers(m, names, params, macs, wb, ab);
	ok(L == 2 && !strcmp(names[0], "fc1") && !strcmp(names[1], "fc2"), "two layers fc1, fc2");
	ok(wb[0] == 4 && wb[1] == 8 && ab[0] == 32 && ab[1] == 2,
	   "bits: fc1 W4 (input FP: A32), fc2 W8/A2");
	struct lb_quant_summary s;
	lb_model_quant_summary(m, &s);
	/* fc1 784x8 = 6272 weights, fc2 8x10 = 80 */
	double want_avg = (6272.0 * 4 + 80.0 * 8) / 6352.0;
	ok(fabs(s.avg_w_bits - want_avg) < 1e-9, "average weight bits %.6f", s.avg_w_bits);
	ok(fabs(s.size_bytes - (6272.0 * 4 + 80.0 * 8) / 8) < 1e-9, "size %.1f bytes", s.size_bytes);
	ok(fabs(s.bops - (6272.0 * 4 * 32 + 80.0 * 8 * 2)) < 1e-6, "BOPs %.0f", s.bops);
	ok(fabs(s.compression - 32.0 * 6352 / (6272.0 * 4 + 80.0 * 8)) < 1e-9, "compression %.3f",
	   s.compression);
	lb_model_free(m);
	lb_config_free(cfg);
}

/* quant.rq.grid: midrise, the signed grid alpha (m + 1/2). At test time SRQ
 * weights are the nearest point of {-3.5 .. 3.5} alpha (3 bits), a set closed
 * under negation; with per-layer DropBits keeping level 1 the points are
 * +-alpha/2 (the sign survives). RQ's soft training forward (fixed noise)
 * gives a finite-difference check of dL/dw and dL/dlog alpha through the
 * shift y = Q(w - alpha/2) + alpha/2. */
static void test_midrise(void)
{
	struct lb_config *cfg = load("model: {arch: lenet5}\n"
				     "quant: {weights: {method: srq, bits: 3}, rq: {grid: midrise}}\n");
	struct lb_model *m = cfg ? build(cfg, 2) : NULL;
	if (!m) {
		ok(0, "SRQ with the midrise grid builds");
		lb_config_free(cfg);
		return;
	}
	lb_model_quant_begin(m, 0, 0);
	int nearest = 1, symmetric = 1;
	for (int l = 0; l < m->q->n_w; l++) {
		struct lb_qstate *s = &m->q->w[l];
		double alpha = exp((double)m->w[m->params[s->p_a].offset]);
		const float *w = m->w + m->params[m->nodes[s->node].w].offset;
		float lv[16];
		size_t n = lb_quant_levels(lv, 15, s->wq, s->count);
		for (size_t i = 0; i < s->count && nearest; i++) {
			double u = (double)s->wq[i] / alpha - 0.5, d = fabs((double)w[i] - s->wq[i]);
			int on_grid = fabs(u - nearbyint(u)) < 1e-4 && u > -4.5 && u < 3.5;
			int inside = fabs(w[i]) <= 3.5 * alpha;
			if (!on_grid || (inside && d > 0.5 * alpha * (1 + 1e-5)) ||
			    (!inside && fabs(fabs(s->wq[i]) - 3.5 * alpha) > 1e-5 * alpha)) {
				nearest = 0;
				diag("layer %d weight %zu: w %g -> %g (alpha %g)", l, i, w[i], s->wq[i], alpha);
			}
		}
		for (size_t i = 0; i < n; i++)
			symmetric &= fabsf(lv[i] + lv[n - 1 - i]) <= 1e-6f * fabsf(lv[i]);
	}
	ok(nearest, "midrise SRQ at 3 bits: test-time weights are the nearest point of alpha (m + 1/2), "
		    "m in [-4, 3], clamped to +-3.5 alpha");
	ok(symmetric, "... and every layer's levels are symmetric about zero");
	int one[4] = {1, 1, 1, 1};
	ok(lb_model_quant_fix_bits(m, one, 4) == LB_OK, "fix 1 bit in every layer");
	lb_model_quant_begin(m, 0, 0);
	int binary = 1;
	for (int l = 0; l < 4; l++) {
		struct lb_qstate *s = &m->q->w[l];
		float lv[16];
		size_t n = lb_quant_levels(lv, 15, s->wq, s->count);
		binary &= n == 2 && lv[0] == -lv[1] && lv[1] > 0;
	}
	ok(binary, "... at 1 bit (level 1 kept) every layer is {-a, +a}: no sign is lost");
	lb_model_free(m);
	lb_config_free(cfg);

	cfg = load("model: {arch: lenet5}\n"
		   "quant: {weights: {method: rq, bits: 2}, rq: {grid: midrise, temperature: 2}}\n");
	m = cfg ? build(cfg, 2) : NULL;
	if (!m) {
		ok(0, "RQ with the midrise grid builds");
		lb_config_free(cfg);
		return;
	}
	struct lb_qstate *s = &m->q->w[0]; /* conv1: 800 weights */
	float *la = m->w + m->params[s->p_a].offset, *w = m->w + m->params[m->nodes[s->node].w].offset;
	float *c = malloc(s->count * sizeof *c);
	for (size_t i = 0; i < s->count; i++)
		c[i] = lb_rng_normal(13, LB_RNG_TEST, 3, i);
	double L0 = 0;
	lb_model_zero_grad(m);
	lb_model_quant_begin(m, 1, 7);
	for (size_t i = 0; i < s->count; i++) {
		m->g[s->gq + i] = c[i];
		L0 += (double)c[i] * s->wq[i];
	}
	for (int l = 1; l < m->q->n_w; l++)
		memset(m->g + m->q->w[l].gq, 0, m->q->w[l].count * sizeof(float));
	lb_model_quant_weights_backward(m);
	double ga = m->g[m->params[s->p_a].offset];
	const double h = 1e-2;
	double Lp = 0, Lm = 0;
	float a0 = *la;
	*la = a0 + (float)h;
	lb_model_quant_begin(m, 1, 7);
	for (size_t i = 0; i < s->count; i++)
		Lp += (double)c[i] * s->wq[i];
	*la = a0 - (float)h;
	lb_model_quant_begin(m, 1, 7);
	for (size_t i = 0; i < s->count; i++)
		Lm += (double)c[i] * s->wq[i];
	*la = a0;
	double fd = (Lp - Lm) / (2 * h);
	ok(fabs(fd - ga) <= 2e-2 * fabs(fd) + 1e-3, "midrise RQ: dL/dlog alpha %.6g == central difference %.6g",
	   ga, fd);
	int dw_ok = 1;
	for (size_t i = 0; i < s->count; i += 97) {
		double g = m->g[m->params[m->nodes[s->node].w].offset + i], e = 1e-3;
		float w0 = w[i];
		w[i] = w0 + (float)e;
		lb_model_quant_begin(m, 1, 7);
		double yp = s->wq[i];
		w[i] = w0 - (float)e;
		lb_model_quant_begin(m, 1, 7);
		double ym = s->wq[i];
		w[i] = w0;
		double d = c[i] * (yp - ym) / (2 * e);
		if (!(fabs(d - g) <= 2e-2 * fabs(d) + 2e-3)) {
			dw_ok = 0;
			diag("weight %zu: dL/dw %g, central difference %g", i, g, d);
		}
	}
	ok(dw_ok, "midrise RQ: dL/dw == central differences (every 97th weight of conv1)");
	(void)L0;
	free(c);
	lb_model_free(m);
	lb_config_free(cfg);
}

/* learn_bits.freeze_rescale: at the freeze, a layer that learned b* < b_max
 * bits gets alpha and sigma grown by 2^(b_max - b*), once (a resumed run,
 * which freezes again from the gate logits, does not grow them twice); off,
 * they stay. */
static void test_freeze_rescale(void)
{
	for (int on = 0; on <= 1; on++) {
		char yaml[512];
		snprintf(yaml, sizeof yaml,
			 "model: {arch: lenet5}\n"
			 "quant: {weights: {method: srq, bits: 4}, learn_bits: {enabled: true, "
			 "warmup_epochs: 1, freeze_epoch: 3, freeze_rescale: %s}}\n",
			 on ? "true" : "false");
		struct lb_config *cfg = load(yaml);
		struct lb_model *m = cfg ? build(cfg, 2) : NULL;
		if (!m) {
			ok(0, "SRQ with learned bits builds");
			lb_config_free(cfg);
			continue;
		}
		struct lb_qstate *fc1 = &m->q->w[2], *c1 = &m->q->w[0];
		float *la = m->w + m->params[fc1->p_gate].offset;
		la[3] = la[4] = -10.0f; /* fc1: levels 3 and 4 off at test time -> 2 bits */
		const float a0 = m->w[m->params[fc1->p_a].offset], s0 = m->w[m->params[fc1->p_b].offset];
		const float c0 = m->w[m->params[c1->p_a].offset];
		lb_model_quant_epoch(m, 3);
		const float a1 = m->w[m->params[fc1->p_a].offset], s1 = m->w[m->params[fc1->p_b].offset];
		const float up = on ? 2.0f * logf(2.0f) : 0.0f;
		ok(fc1->frozen && fc1->level == 2 && a1 == a0 + up && s1 == s0 + up &&
			   m->w[m->params[c1->p_a].offset] == c0,
		   "freeze_rescale %s: fc1 frozen at 2 bits, log alpha and log sigma %s (conv1, 4 bits, "
		   "unchanged)", on ? "true" : "false", on ? "+ 2 ln 2" : "unchanged");
		for (int k = 0; k < m->q->n_w; k++) /* a resumed run: rebuilt, not frozen */
			m->q->w[k].frozen = 0;
		lb_model_quant_epoch(m, 4);
		ok(fc1->frozen && m->w[m->params[fc1->p_a].offset] == a1,
		   "... freezing again after a resume does not rescale twice");
		if (on) {
			lb_model_quant_begin(m, 0, 0);
			float lv[16];
			size_t n = lb_quant_levels(lv, 15, fc1->wq, fc1->count);
			ok(n == 4 && fabsf(lv[0] + 2.0f * expf(a1)) <= 1e-6f * expf(a1) &&
				   fabsf(2.0f * expf(a1) - 8.0f * expf(a0)) <= 1e-5f * expf(a0),
			   "... fc1's 2-bit grid reaches -2 alpha' = -8 alpha, the 4-bit grid's end (%zu levels)",
			   n);
		}
		lb_model_free(m);
		lb_config_free(cfg);
	}
}

int main(void)
{
	test_layout();
	test_levels();
	test_gradient_path();
	test_report();
	test_midrise();
	test_freeze_rescale();
	return done_testing();
}
