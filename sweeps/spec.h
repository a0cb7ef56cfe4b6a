/* SPDX-License-Identifier: MIT
 * Sweep specs (design §6, docs/sweep-spec.md): a base training config, the
 * axes to vary (grid, random draws, zip groups, replicate seeds), per-layer
 * overrides, resources, checkpoint cadence and an optional stage pipeline.
 * spec.c loads and validates a spec (libyaml for line:column, libcyaml for
 * the typed structs); expand.c turns it into the ordered list of trials.
 *
 * Invariants: after lb_sweep_load* returns LB_OK the spec is valid: every
 * key is known and typed, every axis has exactly one of value / values /
 * distribution with sane bounds, zip groups and stage references resolve,
 * and the base config and every single axis value load through
 * lb_config_load_string. After lb_sweep_expand returns LB_OK every trial's
 * config (and each stage's) is a resolved, valid lb_config and trial ids are
 * unique. Errors are LB_ERR_CONFIG with one line per problem:
 *   "<file>:<line>:<column>: <key>: <what> (allowed: <what>)". */
#ifndef LB_SPEC_H
#define LB_SPEC_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

enum lb_sweep_method { LB_SWEEP_GRID, LB_SWEEP_RANDOM };

enum lb_sweep_dist {
	LB_SWEEP_DIST_NONE,        /* not a distribution: value or values */
	LB_SWEEP_DIST_UNIFORM,     /* min + u (max - min) */
	LB_SWEEP_DIST_LOG_UNIFORM, /* exp(log min + u (log max - log min)), min > 0 */
	LB_SWEEP_DIST_INT_UNIFORM, /* an integer in [min, max], both ends included */
	LB_SWEEP_DIST_CHOICE       /* one of values, equally likely */
};

enum lb_stage_kind {
	LB_STAGE_TRAIN,
	LB_STAGE_LEARN_BITS,
	LB_STAGE_REWIND,
	LB_STAGE_RETRAIN,
	LB_STAGE_FINE_TUNE,
	LB_STAGE_PTQ_EVAL
};

/* One "dotted.key: value" pair; value is YAML text ("0.1", "[60, 80]"). */
struct lb_sweep_setting {
	char *key;
	char *value;
};

/* One axis. Exactly one of: value (a constant), values (a list; crossed in
 * a grid, drawn from in random), distribution (random only). */
struct lb_sweep_axis {
	char *key;             /* dotted config key, or stages.<name>.<dotted key> */
	char *value;           /* YAML text, or NULL */
	char **values;         /* YAML texts (values, or the choices of `choice`) */
	unsigned n_values;
	enum lb_sweep_dist distribution;
	double min, max;       /* uniform, log_uniform, int_uniform */
};

struct lb_sweep_zip {
	char **axes;           /* axis keys that vary together */
	unsigned n_axes;
};

/* Per-layer overrides, kept for the quantizers (not applied yet). */
struct lb_sweep_layer {
	char *match;           /* glob on layer names, non-empty */
	struct lb_sweep_setting *settings;
	unsigned n_settings;
};

struct lb_sweep_stage {
	char *name;            /* unique; letters, digits, '_' and '-' */
	enum lb_stage_kind kind;
	char *input;           /* an earlier stage; NULL for the first stage */
	char *rewind_to;       /* rewind: "init" (default) or "step:K"; else NULL */
	char *bits_from;       /* retrain: an earlier learn_bits stage; else NULL */
	struct lb_sweep_setting *set; /* overrides of this stage, in order */
	unsigned n_set;
};

struct lb_sweep_resources {
	unsigned ranks_per_trial;  /* >= 1 (1) */
	unsigned threads_per_rank; /* >= 1 (1) */
};

struct lb_sweep_checkpoint {
	unsigned every_epochs;     /* 0 = the base config's train.checkpoint_every */
};

/* The spec as libcyaml loads it (sweeps/spec.c holds the schema). */
struct lb_sweep_spec {
	char *name;                /* default: the spec file name without .yaml */
	uint64_t seed;             /* base seed (1) */
	char *base;                /* the base config, YAML text (NULL with base_file) */
	char *base_file;           /* as written, relative to the spec's folder */
	enum lb_sweep_method method; /* grid */
	unsigned samples;          /* random: points drawn */
	struct lb_sweep_axis *axes;
	unsigned n_axes;
	struct lb_sweep_zip *zip;
	unsigned n_zip;
	unsigned repeats;          /* 0 = not given */
	uint64_t *seeds;
	unsigned n_seeds;
	struct lb_sweep_layer *layers;
	unsigned n_layers;
	struct lb_sweep_resources resources;
	struct lb_sweep_checkpoint checkpoint;
	struct lb_sweep_stage *stages;
	unsigned n_stages;
};

struct lb_sweep_priv_;

/* A loaded spec. Owned by the caller; free with lb_sweep_free. */
struct lb_sweep {
	char *origin;              /* the spec's name in messages (its path) */
	char *text;                /* the spec text as read */
	struct lb_sweep_spec *spec;
	char *base_yaml;           /* the base config text given to lb_config_load_string */
	char *base_origin;         /* its name in messages: the spec or the base_file path */
	struct lb_sweep_priv_ *priv; /* source positions for messages */
};

/* Load and validate the spec at path; base_file is relative to its folder.
 * [out] *out owned by the caller (lb_sweep_free). Returns LB_OK,
 * LB_ERR_IO (unreadable file), LB_ERR_OOM or LB_ERR_CONFIG with every
 * problem found, one per line, in lb_error_message(). */
int lb_sweep_load(const char *path, struct lb_sweep **out);

/* The same from text. origin names it in messages; dir is the folder that
 * base_file is relative to (NULL: the current folder). */
int lb_sweep_load_string(const char *yaml, const char *origin, const char *dir,
			 struct lb_sweep **out);

void lb_sweep_free(struct lb_sweep *sw);

/* ---- expansion (expand.c) ---- */

struct lb_sweep_trial_stage {
	const struct lb_sweep_stage *stage; /* borrowed from the spec */
	char **overrides;          /* this stage's "key=value" on top of the trial's */
	unsigned n_overrides;
	struct lb_config *config;  /* resolved config of this stage */
};

struct lb_sweep_trial {
	unsigned index;            /* position in the plan, from 0 */
	unsigned point;            /* grid point or random sample */
	unsigned replicate;        /* entry of seeds / repeat, from 0 */
	char id[13];               /* first 12 hex digits of hash */
	uint64_t hash;             /* identity: config hash, stages and layers */
	uint64_t seed;             /* the config's seed */
	char **axis_values;        /* YAML text of this trial's value, one per spec axis */
	char **overrides;          /* "key=value" applied on the base, in order; the last is
				    * seed=N (the trial's seed, however it was chosen) */
	unsigned n_overrides;
	struct lb_config *config;  /* resolved config (base + overrides) */
	struct lb_sweep_trial_stage *stages;
	unsigned n_stages;
	const struct lb_sweep_layer *layers; /* borrowed from the spec */
	unsigned n_layers;
	unsigned ranks_per_trial, threads_per_rank;
};

/* Trials borrow from the spec: free the plan before the spec. */
struct lb_sweep_plan {
	const struct lb_sweep *sweep;
	struct lb_sweep_trial *trials;
	unsigned n_trials;
};

/* Expand a loaded spec into its trials (a pure function of the spec), load
 * and validate every trial's config through lb_config_load_string, derive
 * seeds and ids, and reject duplicate trials. [out] *out owned by the
 * caller (lb_sweep_plan_free). Returns LB_OK, LB_ERR_OOM or LB_ERR_CONFIG
 * (messages as lb_sweep_load's). */
int lb_sweep_expand(const struct lb_sweep *sw, struct lb_sweep_plan **out);
void lb_sweep_plan_free(struct lb_sweep_plan *plan);

/* Number of trials the spec expands to, without loading any config
 * (0 when it overflows the limit). */
unsigned long long lb_sweep_count(const struct lb_sweep *sw);

/* Names as written in YAML ("learn_bits", "log_uniform", "random"). */
const char *lb_stage_kind_name(enum lb_stage_kind k);
const char *lb_sweep_dist_name(enum lb_sweep_dist d);
/* A rewind stage's step K for rewind_to "step:K"; 0 for "init" or another kind. */
unsigned lb_sweep_rewind_step(const struct lb_sweep_stage *st);
/* The training stage whose run file a stage starting from stage `in` reads:
 * `in` itself, or, when `in` is a rewind (of a rewind ...), the first stage
 * before it that is not a rewind; -1 when none. */
int lb_sweep_rewind_source(const struct lb_sweep_spec *sp, int in);
/* The index of the stage named name, or -1. */
int lb_sweep_stage_index(const struct lb_sweep_spec *sp, const char *name);
const char *lb_sweep_method_name(enum lb_sweep_method m);

/* Most trials a plan may hold. */
#define LB_SWEEP_MAX_TRIALS 1000000u

/* ---- internal: shared by spec.c and expand.c only ---- */

struct lb_sweep_pos_ {
	unsigned line, col;        /* 1-based; 0 = unknown */
};

/* Messages collected while checking, one per line. */
struct lb_sweep_errs_ {
	char *text;
	size_t len, cap;
	unsigned n;
	int oom;
};

void lb_sweep_err_add_(struct lb_sweep_errs_ *e, const char *file, struct lb_sweep_pos_ pos,
		       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* LB_OK when nothing was added, else records the lines with lb_error and
 * returns LB_ERR_CONFIG (LB_ERR_OOM when they could not be kept); frees. */
int lb_sweep_err_finish_(struct lb_sweep_errs_ *e);

/* Positions of what a trial may blame. */
struct lb_sweep_pos_ lb_sweep_axis_key_pos_(const struct lb_sweep *sw, unsigned axis);
struct lb_sweep_pos_ lb_sweep_axis_value_pos_(const struct lb_sweep *sw, unsigned axis,
					      int value_index); /* -1: value / distribution */
struct lb_sweep_pos_ lb_sweep_seeds_pos_(const struct lb_sweep *sw, int seed_index);
struct lb_sweep_pos_ lb_sweep_axes_pos_(const struct lb_sweep *sw);
void lb_sweep_stage_set_pos_(const struct lb_sweep *sw, unsigned stage, unsigned k,
			     struct lb_sweep_pos_ *kpos, struct lb_sweep_pos_ *vpos);

/* Report an error of lb_config_load_string (message msg, loaded from the
 * base with overrides) at the right place: the override whose key names it
 * (sets[i] -> set_pos[i], set_label[i]) or the base key. context is put
 * between the key and the explanation ("trial 3 {optimizer.lr: 0.1}"). */
void lb_sweep_blame_(const struct lb_sweep *sw, struct lb_sweep_errs_ *e, const char *msg,
		     const char *const *sets, const struct lb_sweep_pos_ *set_key_pos,
		     const struct lb_sweep_pos_ *set_pos, const char *const *set_label, int n_sets,
		     const char *context);

#endif
