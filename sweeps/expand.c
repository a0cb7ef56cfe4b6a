/* SPDX-License-Identifier: MIT
 * Sweep expansion (spec.h, docs/sweep-spec.md §Expansion): spec -> the
 * ordered list of trials. Grid: the cartesian product of the axes in spec
 * order, last axis fastest, a zip group counting as one axis at its first
 * member; random: `samples` points drawn with core/rng.h purpose
 * LB_RNG_SWEEP; replicates (seeds / repeats) innermost. Every trial's config
 * is loaded through lb_config_load_string; ids hash the resolved configs. */
#include "spec.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "rng.h"
#include "util.h"

/* Trial errors reported before giving up on the rest. */
#define MAX_TRIAL_ERRORS 10

/* ---- shape of the sweep ---- */

static unsigned replicates(const struct lb_sweep_spec *sp)
{
	return sp->n_seeds ? sp->n_seeds : sp->repeats ? sp->repeats : 1;
}

/* Zip group of axis a, or -1. */
static int zip_of(const struct lb_sweep_spec *sp, unsigned a)
{
	for (unsigned g = 0; g < sp->n_zip; g++)
		for (unsigned k = 0; k < sp->zip[g].n_axes; k++)
			if (!strcmp(sp->zip[g].axes[k], sp->axes[a].key))
				return (int)g;
	return -1;
}

/* The axis that leads a's grid dimension: a itself, or the first axis (in
 * spec order) of its zip group. */
static unsigned leader(const struct lb_sweep_spec *sp, unsigned a)
{
	int g = zip_of(sp, a);
	if (g < 0)
		return a;
	for (unsigned b = 0; b < a; b++)
		if (zip_of(sp, b) == g)
			return b;
	return a;
}

static unsigned axis_size(const struct lb_sweep_axis *ax)
{
	return ax->value ? 1 : ax->n_values;
}

unsigned long long lb_sweep_count(const struct lb_sweep *sw)
{
	const struct lb_sweep_spec *sp = sw->spec;
	unsigned long long n = sp->method == LB_SWEEP_RANDOM ? sp->samples : 1;
	if (sp->method == LB_SWEEP_GRID)
		for (unsigned a = 0; a < sp->n_axes; a++) {
			if (leader(sp, a) != a)
				continue;
			n *= axis_size(&sp->axes[a]);
			if (n > LB_SWEEP_MAX_TRIALS)
				return 0;
		}
	n *= replicates(sp);
	return n > LB_SWEEP_MAX_TRIALS ? 0 : n;
}

/* ---- one trial's axis values ---- */

/* Value of axis a at point p: text (owned) and index into values (-1 for
 * value and continuous draws). */
static char *axis_value(const struct lb_sweep_spec *sp, unsigned a, unsigned p,
			const unsigned *digit, int *index)
{
	const struct lb_sweep_axis *ax = &sp->axes[a];
	char buf[64];
	*index = -1;
	if (ax->value)
		return strdup(ax->value);
	if (sp->method == LB_SWEEP_GRID) {
		*index = (int)digit[leader(sp, a)];
		return strdup(ax->values[*index]);
	}
	/* random: epoch = the axis (its zip leader) in spec order, index = the point */
	uint32_t epoch = leader(sp, a);
	double u, lo = ax->min, hi = ax->max;
	switch (ax->distribution) {
	case LB_SWEEP_DIST_NONE:
	case LB_SWEEP_DIST_CHOICE:
		*index = (int)lb_rng_below(sp->seed, LB_RNG_SWEEP, epoch, p, ax->n_values);
		return strdup(ax->values[*index]);
	case LB_SWEEP_DIST_UNIFORM:
		u = lb_rng_uniform_double(sp->seed, LB_RNG_SWEEP, epoch, p);
		snprintf(buf, sizeof buf, "%g", lo + u * (hi - lo));
		break;
	case LB_SWEEP_DIST_LOG_UNIFORM:
		u = lb_rng_uniform_double(sp->seed, LB_RNG_SWEEP, epoch, p);
		snprintf(buf, sizeof buf, "%g", exp(log(lo) + u * (log(hi) - log(lo))));
		break;
	case LB_SWEEP_DIST_INT_UNIFORM: {
		uint32_t span = (uint32_t)(hi - lo) + 1u; /* 1 to 2^32 - 1 (checked at load) */
		uint32_t k = lb_rng_below(sp->seed, LB_RNG_SWEEP, epoch, p, span);
		snprintf(buf, sizeof buf, "%.0f", lo + (double)k);
		break;
	}
	}
	return strdup(buf);
}

/* ---- strings ---- */

struct strs {
	char **s;
	unsigned n, cap;
};

static int strs_push(struct strs *v, char *s)
{
	if (!s)
		return LB_ERR_OOM;
	if (v->n == v->cap) {
		unsigned cap = v->cap ? 2 * v->cap : 8;
		char **p = realloc(v->s, cap * sizeof *p);
		if (!p) {
			free(s);
			return LB_ERR_OOM;
		}
		v->s = p;
		v->cap = cap;
	}
	v->s[v->n++] = s;
	return LB_OK;
}

static void strs_release(char **s, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		free(s[i]);
	free(s);
}

static char *fmt_set(const char *key, const char *value)
{
	size_t n = strlen(key) + strlen(value) + 2;
	char *s = malloc(n);
	if (s)
		snprintf(s, n, "%s=%s", key, value);
	return s;
}

/* ---- identity ---- */

static uint64_t hash_u64(uint64_t h, uint64_t v)
{
	unsigned char b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	return lb_hash64(h, b, sizeof b);
}

static uint64_t hash_str(uint64_t h, const char *s)
{
	return lb_hash64(h, s ? s : "", s ? strlen(s) + 1 : 1);
}

/* The trial's config hash, then each stage (name, kind, input, rewind
 * point, bits source, its config hash), then the layer overrides. */
static uint64_t identity(const struct lb_sweep_trial *t)
{
	uint64_t h = hash_u64(LB_HASH_INIT, lb_config_hash(t->config));
	for (unsigned i = 0; i < t->n_stages; i++) {
		const struct lb_sweep_stage *st = t->stages[i].stage;
		h = hash_str(h, st->name);
		h = hash_str(h, lb_stage_kind_name(st->kind));
		h = hash_str(h, st->input);
		h = hash_str(h, st->rewind_to);
		h = hash_str(h, st->bits_from);
		h = hash_u64(h, lb_config_hash(t->stages[i].config));
	}
	for (unsigned i = 0; i < t->n_layers; i++) {
		h = hash_str(h, t->layers[i].match);
		for (unsigned k = 0; k < t->layers[i].n_settings; k++) {
			h = hash_str(h, t->layers[i].settings[k].key);
			h = hash_str(h, t->layers[i].settings[k].value);
		}
	}
	return h;
}

/* ---- building one trial ---- */

struct ctx {
	const struct lb_sweep *sw;
	struct lb_sweep_errs_ *errs;
	unsigned n_errors;
	int *value_index;          /* [trial * n_axes + axis] for messages */
};

static void release_trial(struct lb_sweep_trial *t, unsigned n_axes)
{
	if (t->axis_values)
		strs_release(t->axis_values, n_axes);
	strs_release(t->overrides, t->n_overrides);
	lb_config_free(t->config);
	for (unsigned i = 0; t->stages && i < t->n_stages; i++) {
		strs_release(t->stages[i].overrides, t->stages[i].n_overrides);
		lb_config_free(t->stages[i].config);
	}
	free(t->stages);
	memset(t, 0, sizeof *t);
}

/* "trial 3 {optimizer.lr: 0.05, seed: 2}" */
static void describe(const struct lb_sweep *sw, const struct lb_sweep_trial *t, int with_seed,
		     char *buf, size_t size)
{
	size_t len = (size_t)snprintf(buf, size, "trial %u {", t->index);
	for (unsigned a = 0; a < sw->spec->n_axes && len < size; a++)
		len += (size_t)snprintf(buf + len, size - len, "%s%s: %s", a ? ", " : "",
					sw->spec->axes[a].key, t->axis_values[a]);
	if (with_seed && len < size)
		len += (size_t)snprintf(buf + len, size - len, "%sseed: %" PRIu64,
					sw->spec->n_axes ? ", " : "", t->seed);
	if (len < size)
		snprintf(buf + len, size - len, "}");
}

/* Load base + sets; on a config error blame it and return LB_ERR_CONFIG. */
static int load_blamed(struct ctx *c, const struct lb_sweep_trial *t, const char *const *sets,
		       const struct lb_sweep_pos_ *kpos, const struct lb_sweep_pos_ *vpos,
		       const char *const *labels, int n, const char *stage, struct lb_config **out)
{
	int rc = lb_config_load_string(c->sw->base_yaml, c->sw->base_origin, sets, n, out);
	if (rc == LB_ERR_CONFIG) {
		char what[2048], ctx[2200];
		describe(c->sw, t, c->sw->spec->n_seeds || c->sw->spec->repeats, what, sizeof what);
		if (stage)
			snprintf(ctx, sizeof ctx, "%s, stage %s", what, stage);
		else
			snprintf(ctx, sizeof ctx, "%s", what);
		lb_sweep_blame_(c->sw, c->errs, lb_error_message(), sets, kpos, vpos, labels, n, ctx);
		c->n_errors++;
	}
	return rc;
}

/* Fill trial t (index, point, replicate and axis_values set). Returns LB_OK,
 * LB_ERR_OOM, or LB_ERR_CONFIG after recording the message. */
/* A rewind to step K reads stage s's snapshot at step K: s keeps it
 * (train.snapshot_steps; part of the stage's config, so of the trial id). */
static int add_rewind_steps(const struct lb_sweep_spec *sp, unsigned s, struct lb_config *cfg)
{
	for (unsigned r = 0; r < sp->n_stages; r++) {
		unsigned k = lb_sweep_rewind_step(&sp->stages[r]);
		if (k && lb_sweep_rewind_source(sp, (int)r) == (int)s) {
			int rc = lb_config_add_snapshot_steps(cfg, &k, 1);
			if (rc)
				return rc;
		}
	}
	return LB_OK;
}

static int build_trial(struct ctx *c, struct lb_sweep_trial *t, const int *vidx)
{
	const struct lb_sweep *sw = c->sw;
	const struct lb_sweep_spec *sp = sw->spec;
	struct strs ov = {0};
	unsigned n_max = sp->n_axes + 2;
	for (unsigned s = 0; s < sp->n_stages; s++)
		n_max += sp->stages[s].n_set;
	const char **sets = calloc(n_max, sizeof *sets), **labels = calloc(n_max, sizeof *labels);
	struct lb_sweep_pos_ *kpos = calloc(n_max, sizeof *kpos), *vpos = calloc(n_max, sizeof *vpos);
	char **own_labels = calloc(n_max, sizeof *own_labels);
	int rc = LB_ERR_OOM, n = 0, seed_axis = 0;

	if (!sets || !labels || !kpos || !vpos || !own_labels)
		goto out;
	t->ranks_per_trial = sp->resources.ranks_per_trial;
	t->threads_per_rank = sp->resources.threads_per_rank;
	t->layers = sp->layers;
	t->n_layers = sp->n_layers;

	/* the trial's overrides: axes in spec order, then the checkpoint cadence */
	for (unsigned a = 0; a < sp->n_axes; a++) {
		const char *key = sp->axes[a].key;
		if (!strncmp(key, "stages.", 7))
			continue;
		seed_axis |= !strcmp(key, "seed");
		if ((rc = strs_push(&ov, fmt_set(key, t->axis_values[a]))))
			goto out;
		sets[n] = ov.s[n];
		if (!(own_labels[n] = fmt_set("axes", key)))
			goto oom;
		own_labels[n][4] = '.';
		labels[n] = own_labels[n];
		kpos[n] = lb_sweep_axis_key_pos_(sw, a);
		vpos[n] = lb_sweep_axis_value_pos_(sw, a, vidx[a]);
		n++;
	}
	if (sp->checkpoint.every_epochs) {
		char v[32];
		snprintf(v, sizeof v, "%u", sp->checkpoint.every_epochs);
		if ((rc = strs_push(&ov, fmt_set("train.checkpoint_every", v))))
			goto out;
		sets[n] = ov.s[n];
		labels[n] = "checkpoint.every_epochs";
		kpos[n] = vpos[n] = lb_sweep_axes_pos_(sw);
		n++;
	}
	if ((rc = load_blamed(c, t, sets, kpos, vpos, labels, n, NULL, &t->config)))
		goto out;

	/* stages: the trial's overrides, the stage's set, then its axes */
	if (sp->n_stages && !(t->stages = calloc(sp->n_stages, sizeof *t->stages)))
		goto oom;
	t->n_stages = sp->n_stages;
	for (unsigned s = 0; s < sp->n_stages; s++) {
		const struct lb_sweep_stage *st = &sp->stages[s];
		struct lb_sweep_trial_stage *ts = &t->stages[s];
		struct strs so = {0};
		int m = n;
		char prefix[200];
		ts->stage = st;
		snprintf(prefix, sizeof prefix, "stages.%s.", st->name);
		for (unsigned k = 0; k < st->n_set; k++) {
			if (strs_push(&so, fmt_set(st->set[k].key, st->set[k].value)))
				goto stage_oom;
			sets[m] = so.s[so.n - 1];
			labels[m] = own_labels[m] = malloc(strlen(prefix) + strlen(st->set[k].key) + 5);
			if (!own_labels[m])
				goto stage_oom;
			sprintf(own_labels[m], "%sset.%s", prefix, st->set[k].key);
			lb_sweep_stage_set_pos_(sw, s, k, &kpos[m], &vpos[m]);
			m++;
		}
		for (unsigned a = 0; a < sp->n_axes; a++) {
			const char *key = sp->axes[a].key;
			if (strncmp(key, prefix, strlen(prefix)))
				continue;
			if (strs_push(&so, fmt_set(key + strlen(prefix), t->axis_values[a])))
				goto stage_oom;
			sets[m] = so.s[so.n - 1];
			labels[m] = own_labels[m] = fmt_set("axes", key);
			if (!own_labels[m])
				goto stage_oom;
			own_labels[m][4] = '.';
			kpos[m] = lb_sweep_axis_key_pos_(sw, a);
			vpos[m] = lb_sweep_axis_value_pos_(sw, a, vidx[a]);
			m++;
		}
		ts->overrides = so.s;
		ts->n_overrides = so.n;
		rc = load_blamed(c, t, sets, kpos, vpos, labels, m, st->name, &ts->config);
		for (int i = n; i < m; i++) {
			free(own_labels[i]);
			own_labels[i] = NULL;
		}
		if (!rc)
			rc = add_rewind_steps(sp, s, ts->config);
		if (rc)
			goto out;
		continue;
stage_oom:
		ts->overrides = so.s;
		ts->n_overrides = so.n;
		goto oom;
	}

	/* a stage's own seed (set before the seeds are replaced below) */
	uint64_t *stage_seed = calloc(t->n_stages + 1, sizeof *stage_seed);
	if (!stage_seed)
		goto oom;
	for (unsigned s = 0; s < t->n_stages; s++)
		for (unsigned k = 0; k < t->stages[s].n_overrides; k++)
			if (!strncmp(t->stages[s].overrides[k], "seed=", 5))
				stage_seed[s] = t->stages[s].config->seed;

	/* the seed: an axis, a replicate seed, or derived from the base seed and
	 * the identity of the trial with every seed 0 */
	uint64_t seed;
	if (seed_axis)
		seed = t->config->seed;
	else if (sp->n_seeds)
		seed = sp->seeds[t->replicate];
	else if (sp->repeats)
		seed = lb_rng_derive(sp->seed, t->replicate);
	else {
		t->config->seed = 0;
		for (unsigned s = 0; s < t->n_stages; s++)
			t->stages[s].config->seed = 0;
		seed = lb_rng_derive(sp->seed, identity(t));
	}
	t->seed = seed;
	t->config->seed = seed;
	/* A stage that sets its own seed S (a re-initialisation control) gets
	 * lb_rng_derive(S, trial seed): another stream than the trial's, and
	 * another one in every replicate. */
	for (unsigned s = 0; s < t->n_stages; s++) {
		int own = 0;
		for (unsigned k = 0; k < t->stages[s].n_overrides; k++)
			own |= !strncmp(t->stages[s].overrides[k], "seed=", 5);
		t->stages[s].config->seed = own ? lb_rng_derive(stage_seed[s], seed) : seed;
	}
	free(stage_seed);
	char v[32];
	snprintf(v, sizeof v, "%" PRIu64, seed);
	if ((rc = strs_push(&ov, fmt_set("seed", v))))
		goto out;
	t->hash = identity(t);
	snprintf(t->id, sizeof t->id, "%012" PRIx64, t->hash >> 16);
	rc = LB_OK;
	goto out;
oom:
	rc = LB_ERR_OOM;
out:
	t->overrides = ov.s;
	t->n_overrides = ov.n;
	if (own_labels)
		for (unsigned i = 0; i < n_max; i++)
			free(own_labels[i]);
	free(own_labels);
	free(sets);
	free(labels);
	free(kpos);
	free(vpos);
	return rc;
}

/* ---- duplicates ---- */

struct order {
	uint64_t hash;
	unsigned index;
};

static int by_hash(const void *pa, const void *pb)
{
	const struct order *a = pa, *b = pb;
	if (a->hash != b->hash)
		return a->hash < b->hash ? -1 : 1;
	return a->index < b->index ? -1 : a->index > b->index;
}

static int check_unique(struct ctx *c, const struct lb_sweep_plan *plan)
{
	const struct lb_sweep *sw = c->sw;
	unsigned n = plan->n_trials, n_axes = sw->spec->n_axes;
	struct order *o = malloc((n ? n : 1) * sizeof *o);
	if (!o)
		return LB_ERR_OOM;
	for (unsigned i = 0; i < n; i++) {
		o[i].hash = plan->trials[i].hash;
		o[i].index = i;
	}
	qsort(o, n, sizeof *o, by_hash);
	for (unsigned i = 1; i < n && c->n_errors < MAX_TRIAL_ERRORS; i++) {
		if (o[i].hash != o[i - 1].hash)
			continue;
		const struct lb_sweep_trial *a = &plan->trials[o[i - 1].index];
		const struct lb_sweep_trial *b = &plan->trials[o[i].index];
		char da[1024], db[1024];
		struct lb_sweep_pos_ pos = lb_sweep_axes_pos_(sw);
		const char *label = "axes";
		int reps = sw->spec->n_seeds || sw->spec->repeats;
		for (unsigned x = 0; x < n_axes; x++) {
			int ia = c->value_index[(size_t)a->index * n_axes + x];
			int ib = c->value_index[(size_t)b->index * n_axes + x];
			if (ia != ib || strcmp(a->axis_values[x], b->axis_values[x])) {
				pos = lb_sweep_axis_value_pos_(sw, x, ib);
				label = sw->spec->axes[x].key;
				break;
			}
		}
		if (!strcmp(label, "axes") && a->replicate != b->replicate) {
			pos = lb_sweep_seeds_pos_(sw, (int)b->replicate);
			label = sw->spec->n_seeds ? "seeds" : "repeats";
		}
		describe(sw, a, reps, da, sizeof da);
		describe(sw, b, reps, db, sizeof db);
		lb_sweep_err_add_(c->errs, sw->origin, pos,
				  "%s%s: %s and %s are the same trial (id %s) (allowed: distinct trials; "
				  "remove the repeated value%s)",
				  strcmp(label, "axes") && strcmp(label, "seeds") && strcmp(label, "repeats")
					  ? "axes." : "",
				  label, da, db, a->id,
				  sw->spec->method == LB_SWEEP_RANDOM ? ", or draw fewer samples" : "");
		c->n_errors++;
	}
	free(o);
	return LB_OK;
}

/* ---- the plan ---- */

void lb_sweep_plan_free(struct lb_sweep_plan *plan)
{
	if (!plan)
		return;
	for (unsigned i = 0; i < plan->n_trials; i++)
		release_trial(&plan->trials[i], plan->sweep->spec->n_axes);
	free(plan->trials);
	free(plan);
}

int lb_sweep_expand(const struct lb_sweep *sw, struct lb_sweep_plan **out)
{
	const struct lb_sweep_spec *sp = sw->spec;
	struct lb_sweep_errs_ errs = {0};
	struct ctx c = {sw, &errs, 0, NULL};
	struct lb_sweep_plan *plan = NULL;
	unsigned long long total = lb_sweep_count(sw);
	unsigned reps = replicates(sp), n_axes = sp->n_axes;
	unsigned *digit = NULL;
	int rc = LB_ERR_OOM;

	*out = NULL;
	if (!total)
		return lb_error(LB_ERR_CONFIG, "%s: the sweep has more than %u trials (allowed: up to %u)",
				sw->origin, LB_SWEEP_MAX_TRIALS, LB_SWEEP_MAX_TRIALS);
	if (!(plan = calloc(1, sizeof *plan)) ||
	    !(plan->trials = calloc(total, sizeof *plan->trials)) ||
	    !(digit = calloc(n_axes + 1, sizeof *digit)) ||
	    !(c.value_index = calloc(total * (n_axes + 1), sizeof *c.value_index)))
		goto out;
	plan->sweep = sw;
	for (unsigned i = 0; i < total; i++) {
		struct lb_sweep_trial *t = &plan->trials[i];
		int *vidx = &c.value_index[(size_t)i * n_axes];
		unsigned point = i / reps;
		t->index = i;
		t->point = point;
		t->replicate = i % reps;
		plan->n_trials = i + 1;
		if (sp->method == LB_SWEEP_GRID) {
			/* point -> one digit per dimension, the last dimension fastest */
			unsigned rest = point;
			for (unsigned a = n_axes; a-- > 0;)
				if (leader(sp, a) == a) {
					unsigned size = axis_size(&sp->axes[a]);
					digit[a] = rest % size;
					rest /= size;
				}
		}
		if (!(t->axis_values = calloc(n_axes ? n_axes : 1, sizeof *t->axis_values)))
			goto out;
		for (unsigned a = 0; a < n_axes; a++)
			if (!(t->axis_values[a] = axis_value(sp, a, point, digit, &vidx[a])))
				goto out;
		rc = build_trial(&c, t, vidx);
		if (rc == LB_ERR_OOM)
			goto out;
		if (c.n_errors >= MAX_TRIAL_ERRORS) {
			if (i + 1 < total)
				lb_sweep_err_add_(&errs, sw->origin, lb_sweep_axes_pos_(sw),
						  "stopped after %u rejected trials (of %llu)", c.n_errors,
						  total);
			break;
		}
	}
	if (!errs.n && (rc = check_unique(&c, plan)))
		goto out;
	rc = LB_OK;
out:
	free(digit);
	free(c.value_index);
	if (rc == LB_ERR_OOM || errs.oom) {
		free(errs.text);
		lb_sweep_plan_free(plan);
		return lb_error(LB_ERR_OOM, "out of memory");
	}
	if ((rc = lb_sweep_err_finish_(&errs))) {
		lb_sweep_plan_free(plan);
		return rc;
	}
	*out = plan;
	return LB_OK;
}
