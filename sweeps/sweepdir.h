/* SPDX-License-Identifier: MIT
 * A sweep's results folder (design §8, docs/results-format.md "Sweep
 * folder"): the recorded plan (DIR/plan.tsv), one run file per trial (or
 * per stage), the failure records, and the index DIR/sweep.h5 rebuilt from
 * them. No MPI here: the commands in mpi/cmd_sweep.c decide who writes.
 *
 * Invariants: the trial files are the truth and sweep.h5 is derived from
 * them (lb_sweepdir_write_index can rebuild it at any time); a trial's id is
 * the hash of its resolved config (sweeps/spec.h), so the same id in two
 * plans is the same trial; plan.tsv is written before any trial runs, and
 * every file this module writes is replaced atomically (tmp, fsync, rename). */
#ifndef LB_SWEEPDIR_H
#define LB_SWEEPDIR_H

#include <stddef.h>
#include <stdint.h>

#include "spec.h"

enum lb_trial_state {
	LB_TRIAL_PENDING,
	LB_TRIAL_RUNNING,
	LB_TRIAL_DONE,
	LB_TRIAL_FAILED,
	LB_TRIAL_DIVERGED,
	LB_TRIAL_PREEMPTED,
	LB_TRIAL__COUNT
};

/* "pending", "running", ... ("unknown" out of range). */
const char *lb_trial_state_name(enum lb_trial_state s);

/* The plan as recorded in DIR/plan.tsv: enough to find, judge and index the
 * trial files without the spec. */
struct lb_plan_rec_trial {
	char id[13];
	unsigned point, replicate;
	uint64_t seed;
	char **values;           /* one YAML text per axis */
};

struct lb_plan_rec {
	char *name;
	char hash[17];           /* 16 hex digits: the name and the ordered trial ids */
	unsigned ranks_per_trial, threads_per_rank;
	char **axes;             /* axis keys */
	unsigned n_axes;
	char **stage_names, **stage_kinds; /* kinds as in YAML ("learn_bits") */
	unsigned n_stages;
	struct lb_plan_rec_trial *trials;
	unsigned n_trials;
};

/* [out] *out owned by the caller (lb_plan_rec_free). LB_OK or LB_ERR_OOM. */
int lb_plan_rec_from_plan(const struct lb_sweep_plan *plan, struct lb_plan_rec **out);
void lb_plan_rec_free(struct lb_plan_rec *p);

/* DIR/plan.tsv. read: LB_ERR_IO when missing (errno ENOENT) or unreadable,
 * LB_ERR_STATE when it is not a plan this lowbit wrote. */
int lb_plan_rec_write(const struct lb_plan_rec *p, const char *dir);
int lb_plan_rec_read(const char *dir, struct lb_plan_rec **out);

/* Write text to path atomically (path.tmp.<pid>, fsync, rename). */
int lb_sweepdir_write_text(const char *path, const char *text);

/* Paths relative to DIR: "trials/<id>.h5" (no stages) or
 * "trials/<id>/<stage>.h5"; the failure record "trials/<id>.error".
 * stage is an index into p->stage_names, or -1 for a trial without stages.
 * Return -1 when the buffer is too small. */
int lb_sweepdir_run_path(char *buf, size_t n, const struct lb_plan_rec *p, unsigned trial,
			 int stage);
int lb_sweepdir_error_path(char *buf, size_t n, const struct lb_plan_rec *p, unsigned trial);
/* The stage whose run file holds the trial's result: -1 without stages,
 * else the last stage that trains (not a rewind). */
int lb_sweepdir_result_stage(const struct lb_plan_rec *p);

/* What the files say of one trial. */
struct lb_trial_result {
	enum lb_trial_state state;
	char msg[512];            /* failure message, or "" */
	double final_test_acc, final_test_loss, best_test_acc, train_time_s; /* NaN when unknown */
	int64_t epochs;           /* metrics rows of the result run file (0 when none) */
	char finished_at[32];
	double *stage_acc;        /* n_stages final test accuracies (NaN: none); owned */
};

/* Judge trial `trial` from the files under dir: its failure record, then its
 * run files (docs/results-format.md "States"). Never fails for a missing or
 * unreadable trial file (that is a state); LB_ERR_OOM only. Release with
 * lb_trial_result_release. */
int lb_sweepdir_trial_result(const char *dir, const struct lb_plan_rec *p, unsigned trial,
			     struct lb_trial_result *r);
void lb_trial_result_release(struct lb_trial_result *r);

/* Record a failed, diverged or preempted trial (atomic), or remove the record
 * (state DONE or PENDING). Never touches the run files. */
int lb_sweepdir_set_outcome(const char *dir, const struct lb_plan_rec *p, unsigned trial,
			    enum lb_trial_state state, const char *msg);
/* Remove a trial's failure record and run files (a retried failed trial
 * starts from scratch). */
int lb_sweepdir_forget(const char *dir, const struct lb_plan_rec *p, unsigned trial);

/* Rebuild DIR/sweep.h5 (kind "sweep") from plan.tsv's record p and the trial
 * files: plan, status and summary tables and external links to the trial
 * files. results (p->n_trials, may be NULL: judged here) are the trials'
 * states. Atomic. */
int lb_sweepdir_write_index(const char *dir, const struct lb_plan_rec *p,
			    const struct lb_trial_result *results);

/* Compact ranges of the ascending indices v[0..n): "3,7-9". Owned by the
 * caller; NULL when out of memory. */
char *lb_sweepdir_ranges(const unsigned *v, unsigned n);

#endif
