/* SPDX-License-Identifier: MIT
 * Tests of sweeps/spec.c and sweeps/expand.c through their API: grid order
 * and count, zip, value axes, random draws (deterministic, within bounds),
 * replicates and derived seeds, stages and stage axes, stable and unique
 * ids, the example specs, and one bad spec per error rule with its
 * file:line:column checked in the message. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "rng.h"
#include "err.h"
#include "analysis/runfile.h"
#include "sweeps/spec.h"
#include "sweeps/sweepdir.h"
#include "../tap.h"

/* Load and expand text named "t.yaml"; NULL plan (and a diag) on error. */
static struct lb_sweep_plan *plan_of(const char *yaml, struct lb_sweep **sw)
{
	struct lb_sweep_plan *plan = NULL;
	*sw = NULL;
	if (lb_sweep_load_string(yaml, "t.yaml", NULL, sw) || lb_sweep_expand(*sw, &plan)) {
		diag("unexpected error: %s", lb_error_message());
		lb_sweep_free(*sw);
		*sw = NULL;
		return NULL;
	}
	return plan;
}

static void done(struct lb_sweep_plan *plan, struct lb_sweep *sw)
{
	lb_sweep_plan_free(plan);
	lb_sweep_free(sw);
}

/* Expect the spec to fail (at load or expansion) with every needle in the
 * message. */
static void expect_bad(const char *desc, const char *yaml, ...)
{
	struct lb_sweep *sw = NULL;
	struct lb_sweep_plan *plan = NULL;
	int rc = lb_sweep_load_string(yaml, "t.yaml", NULL, &sw);
	if (!rc) {
		rc = lb_sweep_expand(sw, &plan);
		done(plan, sw);
	}
	const char *msg = rc ? lb_error_message() : "";
	int all = rc == LB_ERR_CONFIG;
	va_list ap;
	va_start(ap, yaml);
	for (const char *needle = va_arg(ap, const char *); needle; needle = va_arg(ap, const char *))
		if (!strstr(msg, needle)) {
			diag("missing '%s'", needle);
			all = 0;
		}
	va_end(ap);
	if (!ok(all, "rejects %s", desc))
		diag("rc %d, message:\n%s", rc, msg);
}

static const char *axis_of(const struct lb_sweep_trial *t, const struct lb_sweep *sw,
			   const char *key)
{
	for (unsigned a = 0; a < sw->spec->n_axes; a++)
		if (!strcmp(sw->spec->axes[a].key, key))
			return t->axis_values[a];
	return "?";
}

static void test_grid(void)
{
	struct lb_sweep *sw;
	struct lb_sweep_plan *p = plan_of("name: g\n"
					  "base: {train: {epochs: 1}}\n"
					  "axes:\n"
					  "  optimizer.lr: {values: [0.1, 0.2]}\n"
					  "  train.batch: {values: [16, 32, 64]}\n"
					  "  data.train_limit: {value: 500}\n"
					  "seeds: [7, 8]\n",
					  &sw);
	if (!ok(p != NULL, "grid spec loads and expands")) {
		skip("grid");
		return;
	}
	is_int(p->n_trials, 12, "2 x 3 x 1 points x 2 seeds = 12 trials");
	int order = 1, cfg_ok = 1;
	for (unsigned i = 0; i < p->n_trials; i++) {
		const struct lb_sweep_trial *t = &p->trials[i];
		static const char *lr[] = {"0.1", "0.2"}, *batch[] = {"16", "32", "64"};
		unsigned point = i / 2;
		order &= !strcmp(axis_of(t, sw, "optimizer.lr"), lr[point / 3]) &&
			 !strcmp(axis_of(t, sw, "train.batch"), batch[point % 3]) &&
			 t->seed == (i % 2 ? 8u : 7u) && t->index == i && t->point == point &&
			 t->replicate == i % 2;
		cfg_ok &= fabsf(t->config->optimizer.lr - (point / 3 ? 0.2f : 0.1f)) < 1e-7f &&
			  t->config->train.batch == 16u << (point % 3) &&
			  t->config->data.train_limit == 500 && t->config->train.epochs == 1 &&
			  t->config->seed == t->seed;
	}
	ok(order, "spec order, last axis fastest, seeds innermost");
	ok(cfg_ok, "each trial's config has its axis values and seed");
	is_int(p->trials[3].n_overrides, 4, "overrides: 3 axes + seed");
	ok(!strcmp(p->trials[3].overrides[0], "optimizer.lr=0.1") &&
		   !strcmp(p->trials[3].overrides[3], "seed=8"),
	   "overrides are key=value in order, seed last");
	ok(strlen(p->trials[0].id) == 12 && strspn(p->trials[0].id, "0123456789abcdef") == 12,
	   "id is 12 hex digits");
	done(p, sw);
}

static void test_zip(void)
{
	struct lb_sweep *sw;
	struct lb_sweep_plan *p = plan_of("axes:\n"
					  "  optimizer.lr: {values: [0.1, 0.2, 0.4]}\n"
					  "  train.epochs: {values: [1, 2]}\n"
					  "  train.batch: {values: [16, 32, 64]}\n"
					  "zip:\n"
					  "  - [optimizer.lr, train.batch]\n",
					  &sw);
	if (!ok(p != NULL, "zip spec loads")) {
		skip("zip");
		return;
	}
	is_int(p->n_trials, 6, "a zip group of 3 counts once: 3 x 2 = 6 trials");
	int pairs = 1;
	for (unsigned i = 0; i < p->n_trials; i++) {
		const struct lb_sweep_trial *t = &p->trials[i];
		unsigned k = i / 2;
		static const char *lr[] = {"0.1", "0.2", "0.4"}, *batch[] = {"16", "32", "64"};
		pairs &= !strcmp(axis_of(t, sw, "optimizer.lr"), lr[k]) &&
			 !strcmp(axis_of(t, sw, "train.batch"), batch[k]) &&
			 !strcmp(axis_of(t, sw, "train.epochs"), i % 2 ? "2" : "1");
	}
	ok(pairs, "zipped axes move together at the first member's place");
	done(p, sw);
}

static const char random_spec[] = "method: random\n"
				  "samples: 200\n"
				  "seed: %d\n"
				  "axes:\n"
				  "  optimizer.lr: {distribution: uniform, min: 0.01, max: 0.02}\n"
				  "  optimizer.weight_decay: {distribution: log_uniform, min: 1e-6, max: 1e-3}\n"
				  "  train.epochs: {distribution: int_uniform, min: 2, max: 4}\n"
				  "  model.arch: {distribution: choice, values: [mlp, lenet5]}\n"
				  "  train.batch: {values: [8, 16]}\n";

static void test_random(void)
{
	char text[1024];
	struct lb_sweep *s1, *s2, *s3;
	snprintf(text, sizeof text, random_spec, 5);
	struct lb_sweep_plan *a = plan_of(text, &s1), *b = plan_of(text, &s2);
	snprintf(text, sizeof text, random_spec, 6);
	struct lb_sweep_plan *c = plan_of(text, &s3);
	if (!ok(a && b && c, "random specs load")) {
		done(a, s1);
		done(b, s2);
		done(c, s3);
		skip("random");
		return;
	}
	is_int(a->n_trials, 200, "samples: 200 -> 200 trials");
	int same = 1, differ = 0, bounds = 1, low_wd = 0, high_wd = 0, ep[5] = {0}, arch[2] = {0};
	for (unsigned i = 0; i < a->n_trials; i++) {
		const struct lb_config *x = a->trials[i].config;
		for (unsigned k = 0; k < s1->spec->n_axes; k++) {
			same &= !strcmp(a->trials[i].axis_values[k], b->trials[i].axis_values[k]);
			differ += !!strcmp(a->trials[i].axis_values[k], c->trials[i].axis_values[k]);
		}
		same &= !strcmp(a->trials[i].id, b->trials[i].id);
		bounds &= x->optimizer.lr >= 0.01f && x->optimizer.lr <= 0.02f;
		bounds &= x->optimizer.weight_decay >= 1e-6f && x->optimizer.weight_decay <= 1e-3f;
		bounds &= x->train.epochs >= 2 && x->train.epochs <= 4;
		bounds &= x->train.batch == 8 || x->train.batch == 16;
		low_wd += x->optimizer.weight_decay < 1e-5f;
		high_wd += x->optimizer.weight_decay > 1e-4f;
		if (x->train.epochs <= 4)
			ep[x->train.epochs]++;
		arch[x->model.arch == LB_ARCH_MLP]++;
	}
	ok(same, "the same spec draws the same values and ids");
	ok(differ > 100, "another spec seed draws other values (%d differ)", differ);
	ok(bounds, "every draw within its bounds (uniform, log_uniform, int_uniform, choice)");
	ok(low_wd > 40 && high_wd > 40,
	   "log_uniform spreads over decades (%d below 1e-5, %d above 1e-4)", low_wd, high_wd);
	ok(ep[2] > 40 && ep[3] > 40 && ep[4] > 40, "int_uniform includes both ends (%d %d %d)", ep[2],
	   ep[3], ep[4]);
	ok(arch[0] > 60 && arch[1] > 60, "choice draws every value (%d %d)", arch[0], arch[1]);
	done(a, s1);
	done(b, s2);
	done(c, s3);
}

static void test_seeds(void)
{
	struct lb_sweep *sw, *sw2;
	struct lb_sweep_plan *p = plan_of("seed: 11\naxes:\n  optimizer.lr: {values: [0.1, 0.2]}\n"
					  "repeats: 3\n",
					  &sw);
	if (!ok(p != NULL, "repeats spec loads")) {
		skip("repeats");
		return;
	}
	is_int(p->n_trials, 6, "repeats: 3 -> 6 trials");
	ok(p->trials[0].seed == p->trials[3].seed && p->trials[2].seed == p->trials[5].seed,
	   "replicate r has the same seed at every point (paired)");
	ok(p->trials[0].seed != p->trials[1].seed && p->trials[1].seed != p->trials[2].seed,
	   "replicates differ in seed");
	done(p, sw);

	p = plan_of("seed: 11\naxes:\n  optimizer.lr: {values: [0.1, 0.2]}\n", &sw);
	struct lb_sweep_plan *q = plan_of("seed: 12\naxes:\n  optimizer.lr: {values: [0.1, 0.2]}\n",
					  &sw2);
	if (ok(p && q, "derived-seed specs load")) {
		ok(p->trials[0].seed != p->trials[1].seed, "derived seeds differ between trials");
		ok(p->trials[0].seed != q->trials[0].seed, "derived seeds follow the spec seed");
		ok(p->trials[0].config->seed == p->trials[0].seed, "config seed is the trial seed");
	} else {
		skip("derived");
	}
	done(p, sw);
	done(q, sw2);

	p = plan_of("axes:\n  seed: {values: [3, 4]}\n", &sw);
	if (ok(p != NULL, "seed axis loads"))
		ok(p->trials[0].seed == 3 && p->trials[1].seed == 4, "an axis on seed sets it as is");
	else
		skip("seed axis");
	done(p, sw);
}

static void test_ids(void)
{
	const char *a = "axes:\n  optimizer.lr: {values: [0.1, 0.2, 0.3]}\n  train.epochs: {values: [1, 2]}\n";
	const char *b = "axes:\n  optimizer.lr: {values: [0.1, 0.25, 0.3]}\n  train.epochs: {values: [1, 2]}\n";
	struct lb_sweep *s1, *s2, *s3;
	struct lb_sweep_plan *p = plan_of(a, &s1), *q = plan_of(a, &s2), *r = plan_of(b, &s3);
	if (!ok(p && q && r, "id specs load")) {
		done(p, s1);
		done(q, s2);
		done(r, s3);
		skip("ids");
		return;
	}
	int same = 1, changed = 0, others = 1;
	for (unsigned i = 0; i < p->n_trials; i++) {
		same &= !strcmp(p->trials[i].id, q->trials[i].id) && p->trials[i].hash == q->trials[i].hash;
		if (i == 2 || i == 3)
			changed += !!strcmp(p->trials[i].id, r->trials[i].id);
		else
			others &= !strcmp(p->trials[i].id, r->trials[i].id);
	}
	ok(same, "the same spec twice gives the same ids");
	is_int(changed, 2, "changing one lr changes the ids of its two trials");
	ok(others, "... and no other id");
	done(p, s1);
	done(q, s2);
	done(r, s3);
}

static void test_stages(void)
{
	struct lb_sweep *sw;
	struct lb_sweep_plan *p = plan_of(
		"base: {train: {epochs: 3}}\n"
		"axes:\n"
		"  stages.tune.optimizer.lr: {values: [0.001, 0.002]}\n"
		"layers:\n"
		"  - {match: \"conv*\", w_bits: 4}\n"
		"stages:\n"
		"  - {name: pre, kind: train}\n"
		"  - {name: bits, kind: learn_bits, input: pre, set: {train.epochs: 2}}\n"
		"  - {name: back, kind: rewind, input: bits, rewind_to: \"step:100\"}\n"
		"  - {name: re, kind: retrain, input: back, bits_from: bits}\n"
		"  - {name: tune, kind: fine_tune, input: re}\n"
		"  - {name: ptq, kind: ptq_eval, input: tune}\n",
		&sw);
	if (!ok(p != NULL, "stage spec loads")) {
		skip("stages");
		return;
	}
	const struct lb_sweep_trial *t = &p->trials[1];
	is_int(p->n_trials, 2, "a stage axis is an axis: 2 trials");
	is_int(t->n_stages, 6, "six stages");
	ok(t->stages[1].config->train.epochs == 2 && t->stages[0].config->train.epochs == 3,
	   "a stage's set applies to that stage only");
	ok(fabsf(t->stages[4].config->optimizer.lr - 0.002f) < 1e-9f &&
		   fabsf(t->config->optimizer.lr - 0.02f) < 1e-9f,
	   "a stage axis sets the stage's config, not the trial's");
	ok(!strcmp(t->stages[2].stage->rewind_to, "step:100") &&
		   !strcmp(t->stages[3].stage->bits_from, "bits") && !t->stages[0].stage->input &&
		   t->stages[1].stage->kind == LB_STAGE_LEARN_BITS,
	   "stage fields kept");
	ok(t->n_layers == 1 && !strcmp(t->layers[0].match, "conv*") &&
		   t->layers[0].n_settings == 1 && !strcmp(t->layers[0].settings[0].key, "w_bits") &&
		   !strcmp(t->layers[0].settings[0].value, "4"),
	   "layers kept in the trial");
	ok(strcmp(p->trials[0].id, p->trials[1].id) != 0, "stage axis values change the id");
	ok(t->stages[4].config->seed == t->seed, "stages share the trial's seed");
	ok(t->stages[1].config->train.n_snapshot_steps == 1 &&
		   t->stages[1].config->train.snapshot_steps[0] == 100 &&
		   t->stages[0].config->train.n_snapshot_steps == 0 &&
		   t->stages[3].config->train.n_snapshot_steps == 0,
	   "rewind_to step:100 adds step 100 to its input stage's train.snapshot_steps only");
	done(p, sw);

	/* a stage's own seed: derived from it and the trial's seed */
	p = plan_of("seeds: [7, 8]\n"
		    "base: {train: {snapshot_steps: [5]}}\n"
		    "stages:\n"
		    "  - {name: a, kind: train}\n"
		    "  - {name: r, kind: rewind, input: a, rewind_to: \"step:5\"}\n"
		    "  - {name: b, kind: fine_tune, input: r, set: {seed: 1001}}\n"
		    "  - {name: c, kind: train, set: {seed: 1001}}\n",
		    &sw);
	if (!ok(p != NULL && p->n_trials == 2, "a spec with a stage seed loads")) {
		skip("stage seeds");
		return;
	}
	const struct lb_sweep_trial *t0 = &p->trials[0], *t1 = &p->trials[1];
	ok(t0->stages[2].config->seed == lb_rng_derive(1001, 7) &&
		   t1->stages[2].config->seed == lb_rng_derive(1001, 8) &&
		   t0->stages[3].config->seed == t0->stages[2].config->seed &&
		   t0->stages[0].config->seed == 7 && t1->stages[0].config->seed == 8,
	   "a stage's own seed S runs as lb_rng_derive(S, trial seed): another per replicate");
	ok(t0->stages[0].config->train.n_snapshot_steps == 1 &&
		   t0->stages[0].config->train.snapshot_steps[0] == 5,
	   "a rewind step the stage already keeps is not added twice");
	done(p, sw);
}

static void test_files(void)
{
	const char *top = getenv("top_srcdir");
	char path[1024], dir[] = "/tmp/lowbit-sweep-XXXXXX";
	struct lb_sweep *sw = NULL;
	struct lb_sweep_plan *p = NULL;
	snprintf(path, sizeof path, "%s/sweeps/examples/quick.yaml", top ? top : "..");
	if (!lb_sweep_load(path, &sw) && !lb_sweep_expand(sw, &p)) {
		is_int(p->n_trials, 4, "quick.yaml: 4 trials");
		ok(p->trials[0].config->model.arch == LB_ARCH_LENET5_CAFFE &&
			   p->trials[0].config->data.train_limit == 2000 &&
			   p->trials[0].config->data.test_limit == 500 &&
			   p->trials[0].config->train.epochs == 1,
		   "quick.yaml: Caffe LeNet-5, 2000/500 samples, 1 epoch");
	} else {
		ok(0, "quick.yaml loads: %s", lb_error_message());
		skip("quick");
	}
	done(p, sw);
	p = NULL;
	snprintf(path, sizeof path, "%s/sweeps/examples/grid.yaml", top ? top : "..");
	if (!lb_sweep_load(path, &sw) && !lb_sweep_expand(sw, &p))
		is_int(p->n_trials, 54, "grid.yaml: 54 trials (base_file relative to the spec)");
	else
		ok(0, "grid.yaml loads: %s", lb_error_message());
	done(p, sw);

	/* base_file errors name the base file with line:column */
	if (!mkdtemp(dir)) {
		skip("no temp dir");
		return;
	}
	snprintf(path, sizeof path, "%s/b.yaml", dir);
	FILE *f = fopen(path, "w");
	if (f) {
		fputs("train:\n  batch: 8\noptimizer:\n  momentum: 1.5\n", f);
		fclose(f);
	}
	int rc = lb_sweep_load_string("base_file: b.yaml\n", "s.yaml", dir, &sw);
	char want[1100];
	snprintf(want, sizeof want, "%s/b.yaml:4:3: optimizer.momentum", dir);
	ok(rc == LB_ERR_CONFIG && strstr(lb_error_message(), want),
	   "an error in base_file names that file, line and column");
	lb_sweep_free(sw);
	rc = lb_sweep_load_string("base_file: nope.yaml\n", "s.yaml", dir, &sw);
	ok(rc == LB_ERR_CONFIG && strstr(lb_error_message(), "s.yaml:1:12: base_file: cannot read"),
	   "a missing base_file is reported at its key");
	lb_sweep_free(sw);
	unlink(path);
	rmdir(dir);
	ok(lb_sweep_load("/nonexistent/x.yaml", &sw) == LB_ERR_IO &&
		   strstr(lb_error_message(), "/nonexistent/x.yaml"),
	   "an unreadable spec is an I/O error naming it");
}

static void test_errors(void)
{
	expect_bad("a YAML syntax error", "name: x\naxes: {a: [1, 2\n",
		   "t.yaml:3:1: YAML syntax error", NULL);
	expect_bad("an unknown key", "name: x\nsampels: 3\n",
		   "t.yaml:2:1: sampels: unknown key 'sampels' at the top level (allowed: name, seed,",
		   NULL);
	expect_bad("an unknown nested key", "resources: {ranks: 2}\n",
		   "t.yaml:1:13: resources.ranks: unknown key 'ranks' in 'resources' (allowed: ranks_per_trial, threads_per_rank)",
		   NULL);
	expect_bad("an unknown axis key", "axes:\n  optimizer.lr: {valeus: [1]}\n",
		   "t.yaml:2:18: axes.optimizer.lr.valeus: unknown key 'valeus'", "allowed: value, values, distribution, min, max",
		   NULL);
	expect_bad("a wrong type", "seed: abc\n", "t.yaml:1:7: seed: 'abc' is not an unsigned integer",
		   NULL);
	expect_bad("a wrong type (mapping for a list)", "seeds: {a: 1}\n",
		   "t.yaml:1:8: seeds: expected a sequence, found a mapping", NULL);
	expect_bad("an unknown method", "method: bayes\n",
		   "t.yaml:1:9: method: 'bayes' is not a known value (allowed: grid, random)", NULL);
	expect_bad("an axis with none of value/values/distribution", "axes:\n  optimizer.lr: {}\n",
		   "t.yaml:2:17: axes.optimizer.lr: give exactly one of value, values, distribution (found none",
		   NULL);
	expect_bad("an axis with two forms", "axes:\n  optimizer.lr: {value: 0.1, values: [0.2]}\n",
		   "t.yaml:2:17: axes.optimizer.lr: give exactly one of value, values, distribution (found value, values",
		   NULL);
	expect_bad("an axis that is not a mapping", "axes:\n  optimizer.lr: 0.1\n",
		   "t.yaml:2:17: axes.optimizer.lr: expected a mapping", NULL);
	expect_bad("an empty values list", "axes:\n  optimizer.lr: {values: []}\n",
		   "t.yaml:2:26: axes.optimizer.lr.values: empty list", NULL);
	expect_bad("min > max",
		   "method: random\nsamples: 2\naxes:\n  optimizer.lr: {distribution: uniform, min: 0.5, max: 0.1}\n",
		   "t.yaml:4:46: axes.optimizer.lr: min 0.5 > max 0.1 (allowed: min <= max)", NULL);
	expect_bad("log_uniform with min <= 0",
		   "method: random\nsamples: 2\naxes:\n  optimizer.lr: {distribution: log_uniform, min: 0, max: 0.1}\n",
		   "t.yaml:4:50: axes.optimizer.lr: log_uniform needs min > 0", NULL);
	expect_bad("a zip row the config rejects (with the base)",
		   "base:\n  train: {batch: 10}\naxes:\n  optimizer.lr: {values: [0.1, 0.2]}\n"
		   "  train.shards: {values: [1, 4]}\nzip:\n  - [optimizer.lr, train.shards]\n",
		   ": zip row 1 {optimizer.lr: 0.2, train.shards: 4}: 4 does not divide batch 10", NULL);
	expect_bad("a distribution in a grid",
		   "axes:\n  optimizer.lr: {distribution: uniform, min: 0.1, max: 0.2}\n",
		   "t.yaml:2:18: axes.optimizer.lr: a distribution needs method: random", NULL);
	expect_bad("random without samples", "method: random\n",
		   "t.yaml:1:9: method: random needs samples", NULL);
	const char *zip_axes = "axes:\n"
			       "  optimizer.lr: {values: [0.1, 0.2]}\n"
			       "  train.epochs: {values: [1, 2, 3]}\n"
			       "  train.batch: {values: [8, 16]}\n";
	char text[1024];
	snprintf(text, sizeof text, "%szip:\n  - [optimizer.lr, train.epochz]\n", zip_axes);
	expect_bad("a zip group naming an unknown axis", text,
		   "t.yaml:6:20: zip[0][1]: 'train.epochz' is not an axis (allowed: optimizer.lr, train.epochs, train.batch)",
		   NULL);
	snprintf(text, sizeof text, "%szip:\n  - [optimizer.lr, train.epochs]\n", zip_axes);
	expect_bad("a zip group of unequal lengths", text,
		   "t.yaml:6:20: zip[0][1]: axis 'train.epochs' has 3 values but 'optimizer.lr' has 2 (allowed: equal lengths)",
		   NULL);
	snprintf(text, sizeof text,
		 "%szip:\n  - [optimizer.lr, train.batch]\n  - [train.batch, train.epochs]\n", zip_axes);
	expect_bad("an axis in two zip groups", text,
		   "t.yaml:7:6: zip[1][0]: axis 'train.batch' is already in zip[0]", NULL);
	expect_bad("a stage naming a missing input",
		   "stages:\n  - {name: a, kind: train}\n  - {name: b, kind: fine_tune, input: c}\n",
		   "t.yaml:3:39: stages[1].input: 'c' is not an earlier stage (allowed: a)", NULL);
	expect_bad("a stage naming a later input",
		   "stages:\n  - {name: a, kind: train}\n  - {name: b, kind: fine_tune, input: c}\n"
		   "  - {name: c, kind: train, input: a}\n",
		   "t.yaml:3:39: stages[1].input: 'c' is not an earlier stage (it comes later)", NULL);
	expect_bad("a fine_tune stage without input",
		   "stages:\n  - {name: a, kind: train}\n  - {name: b, kind: fine_tune}\n",
		   "t.yaml:3:5: stages[1]: missing key 'input' (allowed: an earlier stage: a; only train "
		   "and retrain may start fresh)", NULL);
	expect_bad("duplicate stage names",
		   "stages:\n  - {name: a, kind: train}\n  - {name: a, kind: train, input: a}\n",
		   "t.yaml:3:12: stages[1].name: duplicate stage name 'a'", NULL);
	expect_bad("an unknown stage kind", "stages:\n  - {name: a, kind: pretrain}\n",
		   "t.yaml:2:21: stages[0].kind: 'pretrain' is not a known value (allowed: train, learn_bits, rewind, retrain, fine_tune, ptq_eval)",
		   NULL);
	expect_bad("retrain with bits_from a non-learn_bits stage",
		   "stages:\n  - {name: a, kind: train}\n  - {name: b, kind: retrain, input: a, bits_from: a}\n",
		   "t.yaml:3:51: stages[1].bits_from: 'a' is not an earlier learn_bits stage", NULL);
	expect_bad("a bad rewind point",
		   "stages:\n  - {name: a, kind: train}\n  - {name: b, kind: rewind, input: a, rewind_to: never}\n",
		   "t.yaml:3:50: stages[1].rewind_to: 'never' is not a rewind point (allowed: init, step:K with K >= 1)",
		   NULL);
	expect_bad("ranks_per_trial < 1", "resources:\n  ranks_per_trial: 0\n",
		   "t.yaml:2:20: resources.ranks_per_trial: 0 is out of range (allowed: >= 1)", NULL);
	expect_bad("repeats and seeds", "repeats: 2\nseeds: [1, 2]\n",
		   "t.yaml:2:1: seeds: give repeats or seeds, not both", NULL);
	expect_bad("a layer override without match", "layers:\n  - {match: \"\", w_bits: 4}\n",
		   "t.yaml:2:13: layers[0].match: empty", NULL);
	expect_bad("an axis that is not a config key", "axes:\n  optimizer.lrr: {values: [0.1]}\n",
		   "t.yaml:2:3: axes.optimizer.lrr: not a config key: unknown key 'lrr' in 'optimizer' (allowed: kind, lr,",
		   NULL);
	expect_bad("an axis value the config rejects",
		   "axes:\n  optimizer.lr: {values: [0.1, -0.2]}\n",
		   "t.yaml:2:32: axes.optimizer.lr: values[1] = -0.2: -0.2 is out of range (allowed: > 0)",
		   NULL);
	expect_bad("an enum axis value the config rejects", "axes:\n  model.arch: {value: lenet7}\n",
		   "t.yaml:2:23: axes.model.arch: value lenet7: 'lenet7' is not a known value (allowed: mlp,",
		   NULL);
	expect_bad("a trial the config rejects (combination of axes)",
		   "axes:\n  train.batch: {values: [64, 10]}\n  train.shards: {values: [1, 4]}\n",
		   "t.yaml:3:30: axes.train.shards: trial 3 {train.batch: 10, train.shards: 4}: 4 does not divide batch 10",
		   NULL);
	expect_bad("a bad base value", "base:\n  optimizer:\n    lr: -1\n",
		   "t.yaml:3:5: base.optimizer.lr: -1 is out of range (allowed: > 0)", NULL);
	expect_bad("a bad stage setting", "stages:\n  - {name: a, kind: train, set: {train.epochs: 0}}\n",
		   "t.yaml:2:48: stages.a.set.train.epochs: stage a: 0 is out of range (allowed: >= 1)", NULL);
	expect_bad("a stage axis on a missing stage", "axes:\n  stages.x.optimizer.lr: {values: [0.1]}\n",
		   "t.yaml:2:3: axes.stages.x.optimizer.lr: 'x' is not a stage", NULL);
	expect_bad("duplicate trials", "axes:\n  optimizer.lr: {values: [0.1, 0.2, 0.10]}\n",
		   "t.yaml:2:37: axes.optimizer.lr: trial 0 {optimizer.lr: 0.1} and trial 2 {optimizer.lr: 0.10} are the same trial",
		   NULL);
	expect_bad("every error, not only the first", "seed: x\nmethod: y\n", "t.yaml:1:7: seed",
		   "\nt.yaml:2:9: method", NULL);
}

#include "util.h"
static void mkdir_p(const char *p)
{
	if (lb_mkdir_p(p))
		diag("cannot create %s", p);
}

/* ---- the results folder (sweeps/sweepdir.h) and the sweep kind of runfile ---- */

static void test_ranges(void)
{
	static const unsigned a[] = {3, 7, 8, 9}, b[] = {0, 1, 2, 5, 7, 8}, c[] = {4};
	char *r;
	r = lb_sweepdir_ranges(a, 4);
	ok(r && !strcmp(r, "3,7-9"), "ranges: 3,7,8,9 -> 3,7-9 (%s)", r ? r : "NULL");
	free(r);
	r = lb_sweepdir_ranges(b, 6);
	ok(r && !strcmp(r, "0-2,5,7-8"), "ranges: 0,1,2,5,7,8 -> 0-2,5,7-8 (%s)", r ? r : "NULL");
	free(r);
	r = lb_sweepdir_ranges(c, 1);
	ok(r && !strcmp(r, "4"), "ranges: one index");
	free(r);
	r = lb_sweepdir_ranges(NULL, 0);
	ok(r && !strcmp(r, ""), "ranges: none -> empty text");
	free(r);
}

static char *scratch(void)
{
	char tmpl[] = "/tmp/lb-sweep-XXXXXX";
	char *d = mkdtemp(tmpl);
	return d ? strdup(d) : NULL;
}

static void test_plan_record(void)
{
	static const char *spec = "name: rec\n"
				  "axes:\n"
				  "  optimizer.lr: {values: [0.01, 0.02]}\n"
				  "  model.arch: {values: [lenet5, lenet5-caffe]}\n"
				  "stages:\n"
				  "  - {name: pre, kind: train}\n"
				  "  - {name: back, kind: rewind, input: pre}\n"
				  "  - {name: re, kind: fine_tune, input: back}\n";
	struct lb_sweep *sw, *sw2;
	struct lb_sweep_plan *p = plan_of(spec, &sw), *p2;
	struct lb_plan_rec *rec = NULL, *back = NULL, *rec2 = NULL;
	char *dir = scratch();
	if (!ok(p && dir, "record: plan and scratch folder")) {
		free(dir);
		return;
	}
	ok(lb_plan_rec_from_plan(p, &rec) == LB_OK && rec->n_trials == 4 && rec->n_stages == 3,
	   "record from the plan: 4 trials, 3 stages");
	ok(lb_plan_rec_write(rec, dir) == LB_OK, "plan.tsv written");
	ok(lb_plan_rec_read(dir, &back) == LB_OK, "plan.tsv read back (%s)", lb_error_message());
	int same = back && !strcmp(back->name, "rec") && !strcmp(back->hash, rec->hash) &&
		   back->n_trials == 4 && back->n_axes == 2 && back->n_stages == 3 &&
		   !strcmp(back->axes[1], "model.arch") && !strcmp(back->stage_names[2], "re") &&
		   !strcmp(back->stage_kinds[1], "rewind");
	for (unsigned i = 0; same && i < 4; i++)
		same = !strcmp(back->trials[i].id, p->trials[i].id) &&
		       back->trials[i].seed == p->trials[i].seed &&
		       !strcmp(back->trials[i].values[0], p->trials[i].axis_values[0]) &&
		       !strcmp(back->trials[i].values[1], p->trials[i].axis_values[1]);
	ok(same, "the record round-trips: name, hash, axes, stages, ids, seeds, values");
	ok(lb_sweepdir_result_stage(rec) == 2, "result stage: the last one that trains");
	char path[512];
	ok(lb_sweepdir_run_path(path, sizeof path, rec, 1, 0) == 0 &&
		   !strcmp(path + 7 + 12, "/pre.h5") && !strncmp(path, "trials/", 7),
	   "stage run file path: trials/<id>/pre.h5 (%s)", path);
	/* a changed spec changes the hash */
	p2 = plan_of("name: rec\naxes:\n  optimizer.lr: {values: [0.01, 0.03]}\n"
		     "  model.arch: {values: [lenet5, lenet5-caffe]}\n"
		     "stages:\n  - {name: pre, kind: train}\n  - {name: back, kind: rewind, input: pre}\n"
		     "  - {name: re, kind: fine_tune, input: back}\n",
		     &sw2);
	ok(p2 && lb_plan_rec_from_plan(p2, &rec2) == LB_OK && strcmp(rec2->hash, rec->hash),
	   "a changed axis value changes the plan hash");
	/* trial states from files */
	struct lb_trial_result r;
	ok(lb_sweepdir_trial_result(dir, rec, 0, &r) == LB_OK && r.state == LB_TRIAL_PENDING,
	   "no files: pending");
	lb_trial_result_release(&r);
	char full[1024];
	snprintf(full, sizeof full, "%s/trials", dir);
	mkdir_p(full);
	ok(lb_sweepdir_set_outcome(dir, rec, 0, LB_TRIAL_FAILED, "boom\tbang") == LB_OK,
	   "failure record written");
	ok(lb_sweepdir_trial_result(dir, rec, 0, &r) == LB_OK && r.state == LB_TRIAL_FAILED &&
		   !strcmp(r.msg, "boom bang"),
	   "failure record read: failed, message kept (%s)", r.msg);
	lb_trial_result_release(&r);
	struct lb_runfile *rf = NULL;
	snprintf(full, sizeof full, "%s/trials/%s", dir, p->trials[1].id);
	mkdir_p(full);
	lb_sweepdir_run_path(path, sizeof path, rec, 1, 0);
	snprintf(full, sizeof full, "%s/%s", dir, path);
	int w = lb_runfile_new(&rf) == LB_OK && !lb_runfile_set_attr_str(rf, "", "status", "done") &&
		!lb_runfile_write(rf, full);
	ok(w && lb_sweepdir_trial_result(dir, rec, 1, &r) == LB_OK && r.state == LB_TRIAL_RUNNING,
	   "first stage done, last not started: running");
	lb_trial_result_release(&r);
	lb_sweepdir_run_path(path, sizeof path, rec, 1, 2);
	snprintf(full, sizeof full, "%s/%s", dir, path);
	w = !lb_runfile_set_attr_f64(rf, "", "final_test_acc", 0.75) && !lb_runfile_write(rf, full);
	ok(w && lb_sweepdir_trial_result(dir, rec, 1, &r) == LB_OK && r.state == LB_TRIAL_DONE &&
		   r.final_test_acc == 0.75 && r.stage_acc && r.stage_acc[2] == 0.75,
	   "last stage done: done, with its accuracy");
	lb_trial_result_release(&r);
	lb_runfile_free(rf);
	/* the index */
	struct lb_runfile *ix = NULL;
	snprintf(full, sizeof full, "%s/sweep.h5", dir);
	ok(lb_sweepdir_write_index(dir, rec, NULL) == LB_OK, "index written (%s)", lb_error_message());
	ok(lb_runfile_read_kind(full, "sweep", &ix) == LB_OK, "index read as kind sweep");
	int n = 0;
	const char *const *state = lb_runfile_get_strings(ix, "summary/state", &n);
	ok(state && n == 4 && !strcmp(state[0], "failed") && !strcmp(state[1], "done") &&
		   !strcmp(state[2], "pending"),
	   "summary/state: failed, done, pending, pending");
	const char *obj = NULL;
	char want[64];
	snprintf(want, sizeof want, "trials/%s/re.h5", p->trials[1].id);
	snprintf(path, sizeof path, "trials/%s/re", p->trials[1].id);
	const char *file = lb_runfile_get_link(ix, path, &obj);
	ok(file && !strcmp(file, want) && !strcmp(obj, "/"), "external link to the stage file kept");
	ok(lb_runfile_get_array(ix, "summary/optimizer.lr", NULL, NULL, NULL) != NULL &&
		   lb_runfile_get_strings(ix, "summary/model.arch", NULL) != NULL,
	   "axis columns: numbers as float64, names as strings");
	struct lb_runfile *as_run = NULL;
	ok(lb_runfile_read(full, &as_run) == LB_ERR_HDF5 &&
		   strstr(lb_error_message(), "lowbit_kind is 'sweep'"),
	   "a sweep index is not read as a run file");
	lb_runfile_free(ix);
	ok(lb_sweepdir_forget(dir, rec, 0) == LB_OK && lb_sweepdir_forget(dir, rec, 1) == LB_OK &&
		   lb_sweepdir_trial_result(dir, rec, 1, &r) == LB_OK && r.state == LB_TRIAL_PENDING,
	   "forget: the trial is pending again");
	lb_trial_result_release(&r);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		diag("could not remove %s", dir);
	free(dir);
	lb_plan_rec_free(rec);
	lb_plan_rec_free(rec2);
	lb_plan_rec_free(back);
	done(p2, sw2);
	done(p, sw);
}

static void test_runfile_kinds(void)
{
	struct lb_runfile *a = NULL, *b = NULL, *bad = NULL;
	char *dir = scratch(), path[512];
	if (!ok(dir != NULL, "kinds: scratch folder"))
		return;
	snprintf(path, sizeof path, "%s/x.h5", dir);
	ok(lb_runfile_new_kind(&bad, "bogus") == LB_ERR_CONFIG && !bad, "unknown kind refused");
	ok(lb_runfile_new_kind(&a, "sweep") == LB_OK && !strcmp(lb_runfile_kind(a), "sweep"),
	   "kind sweep");
	int rc = lb_runfile_put_link(a, "trials/t1", "trials/t1.h5", "/");
	rc = rc ? rc : lb_runfile_set_axis(a, "metrics", "epoch"); /* no series yet */
	rc = rc ? rc : lb_runfile_write(a, path);
	rc = rc ? rc : lb_runfile_read_kind(path, NULL, &b);
	ok(rc == LB_OK, "write and read a sweep file with a link and a pending axis (%s)",
	   lb_error_message());
	ok(b && lb_runfile_diff(a, b) == LB_OK, "read image equals the written one (%s)",
	   lb_error_message());
	double one = 1;
	lb_runfile_free(b);
	b = NULL;
	rc = lb_runfile_read_kind(path, "sweep", &b);
	rc = rc ? rc : lb_runfile_append(b, "metrics/epoch", &one, 1);
	rc = rc ? rc : lb_runfile_append(b, "metrics/loss", &one, 1);
	rc = rc ? rc : lb_runfile_write(b, path);
	lb_runfile_free(a);
	a = NULL;
	rc = rc ? rc : lb_runfile_read_kind(path, "sweep", &a);
	ok(rc == LB_OK && lb_runfile_diff(a, b) == LB_OK,
	   "the axis kept across a read becomes the dimension scale once its series exists");
	lb_runfile_free(a);
	lb_runfile_free(b);
	unlink(path);
	rmdir(dir);
	free(dir);
}

int main(void)
{
	test_grid();
	test_zip();
	test_random();
	test_seeds();
	test_ids();
	test_stages();
	test_files();
	test_errors();
	test_ranges();
	test_plan_record();
	test_runfile_kinds();
	return done_testing();
}
