/* SPDX-License-Identifier: MIT
 * One trial of a sweep (see trial.h): the stage executor. Stage inputs go
 * through struct lb_train_opts (core/train.h):
 *   train, learn_bits, fine_tune, retrain: a training run of the stage's
 *     config; with an input, it starts from the input's final parameters
 *     (init_from = input's run file, LB_SNAPSHOT_FINAL);
 *   rewind: no run of its own; a stage whose input is a rewind starts from
 *     the initial parameters of the rewind's input (LB_SNAPSHOT_INIT: the
 *     theta0 that stage started from), or with rewind_to: step:K from its
 *     parameters after step K (LB_SNAPSHOT_STEP: the plan adds K to that
 *     stage's train.snapshot_steps, sweeps/expand.c);
 *   retrain (and fine_tune when it names one): also bits_from = the run file
 *     of its bits_from stage (the weight bits it learned: SRQ gates, WaveQ
 *     beta, BSQ precision).
 *   ptq_eval: a copy of its input's run file with the post-training
 *     quantization grid of core/ptq.h (default grid and protocol) added; the
 *     copy is renamed into place only when the grid is complete.
 */
#include "trial.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "analysis/runfile.h"
#include "err.h"
#include "comm.h"
#include "ptq.h"
#include "signals.h"
#include "train.h"

/* Where stage s starts from: *from = stage index whose run file holds the
 * parameters (-1: fresh initialisation), *snapshot which of them, *step the
 * K of LB_SNAPSHOT_STEP. */
static void stage_source(const struct lb_sweep_spec *sp, int s, int *from, int *snapshot,
			 long *step)
{
	int in = lb_sweep_stage_index(sp, sp->stages[s].input);
	*from = -1;
	*snapshot = LB_SNAPSHOT_FINAL;
	*step = 0;
	if (in < 0)
		return;
	/* a rewind (of a rewind ...) goes back to the initial parameters of the
	 * stage before it, or to its step K when the nearest rewind says so */
	if (sp->stages[in].kind == LB_STAGE_REWIND) {
		*step = lb_sweep_rewind_step(&sp->stages[in]);
		*snapshot = *step ? LB_SNAPSHOT_STEP : LB_SNAPSHOT_INIT;
		in = lb_sweep_rewind_source(sp, in);
	}
	*from = in;
}

int lb_sweep_check_runnable(const struct lb_sweep_plan *plan)
{
	const struct lb_sweep_spec *sp = plan->sweep->spec;
	for (unsigned s = 0; s < sp->n_stages; s++) {
		const struct lb_sweep_stage *st = &sp->stages[s];
		if (st->kind == LB_STAGE_PTQ_EVAL && !st->input)
			return lb_error(LB_ERR_CONFIG,
					"%s: stages.%s: ptq_eval needs an input (allowed: input: <an "
					"earlier training stage>)",
					plan->sweep->origin, st->name);
		if (s + 1 == sp->n_stages && st->kind == LB_STAGE_REWIND)
			return lb_error(LB_ERR_CONFIG,
					"%s: stages.%s: a rewind cannot be the last stage (it trains "
					"nothing; allowed: a stage that takes it as input after it)",
					plan->sweep->origin, st->name);
	}
	return LB_OK;
}

/* The trainer's rule (lb_train_check_ranks), asked before any trial starts
 * so that a sweep is refused whole; its message is replaced by one naming
 * the trial and the spec key. */
static int ranks_ok(const struct lb_config *cfg, unsigned K)
{
	return lb_train_check_ranks(cfg, (int)K) == LB_OK;
}

int lb_sweep_check_ranks(const struct lb_sweep_plan *plan, int ranks)
{
	for (unsigned i = 0; i < plan->n_trials; i++) {
		const struct lb_sweep_trial *t = &plan->trials[i];
		for (int s = t->n_stages ? 0 : -1; s < (int)t->n_stages; s++) {
			const struct lb_config *c = s < 0 ? t->config : t->stages[s].config;
			if (s >= 0 && t->stages[s].stage->kind == LB_STAGE_REWIND)
				continue;
			if (ranks_ok(c, (unsigned)ranks))
				continue;
			int det = c->train.parallel == LB_PARALLEL_DETERMINISTIC;
			char list[256];
			size_t len = 0;
			list[0] = '\0';
			for (unsigned k = 1; k <= c->train.shards && len + 16 < sizeof list; k++)
				if (ranks_ok(c, k))
					len += (size_t)snprintf(list + len, sizeof list - len, "%s%u",
								len ? ", " : "", k);
			char where[300] = "";
			if (s >= 0)
				snprintf(where, sizeof where, ", stage %s", t->stages[s].stage->name);
			return lb_error(LB_ERR_CONFIG,
					"%s: resources.ranks_per_trial: trial %u (id %s%s) cannot train on "
					"%d ranks: train.shards is %u in %s mode (rank counts allowed: %s; "
					"raise train.shards in the base or change ranks_per_trial)",
					plan->sweep->origin, i, t->id, where, ranks, c->train.shards,
					det ? "deterministic" : "fast", list);
		}
	}
	return LB_OK;
}

static enum lb_trial_state state_of(int rc)
{
	return rc == LB_ERR_NUMERIC ? LB_TRIAL_DIVERGED
	       : rc == LB_ERR_SIGNAL ? LB_TRIAL_PREEMPTED : LB_TRIAL_FAILED;
}

/* Is the run file at path done? Read on the group's rank 0, agreed by all. */
static int stage_done(const char *path, MPI_Comm group)
{
	int grank, done = 0;
	MPI_Comm_rank(group, &grank);
	if (grank == 0) {
		struct stat st;
		struct lb_runfile *rf = NULL;
		if (stat(path, &st) == 0 && lb_runfile_read(path, &rf) == LB_OK) {
			const char *s = lb_runfile_get_attr_str(rf, "", "status");
			done = s && !strcmp(s, "done");
		}
		lb_runfile_free(rf);
	}
	MPI_Bcast(&done, 1, MPI_INT, 0, group);
	return done;
}

static int full_path(char *buf, size_t n, const struct lb_sweep_exec *x, unsigned trial, int stage)
{
	char rel[4096];
	if (lb_sweepdir_run_path(rel, sizeof rel, x->rec, trial, stage))
		return -1;
	int w = snprintf(buf, n, "%s/%s", x->dir, rel);
	return w < 0 || (size_t)w >= n ? -1 : 0;
}

static enum lb_trial_state run_dummy(const struct lb_sweep_exec *x, unsigned index,
				     MPI_Comm group, char *msg, size_t len)
{
	struct lb_dummy_cfg c = x->dummy_cfg;
	char path[8192];
	int grank, rc = LB_OK;
	const struct lb_plan_rec *p = x->rec;
	c.runs = NULL;
	enum lb_trial_state st = lb_dummy_trial((int)index, group, &c, msg, len);
	MPI_Comm_rank(group, &grank);
	for (int s = p->n_stages ? 0 : -1; grank == 0 && !rc && s < (int)p->n_stages; s++) {
		if (s >= 0 && !strcmp(p->stage_kinds[s], "rewind"))
			continue;
		if (full_path(path, sizeof path, x, index, s))
			rc = lb_error(LB_ERR_IO, "trial path too long");
		else
			rc = lb_dummy_write_run(path, (int)index, st, msg);
	}
	rc = lb_comm_agree(group, rc);
	if (rc) {
		snprintf(msg, len, "%s", lb_error_message());
		return LB_TRIAL_FAILED;
	}
	return st;
}

static enum lb_trial_state run_training(const struct lb_sweep_exec *x, unsigned index,
					MPI_Comm group, char *msg, size_t len)
{
	const struct lb_sweep_trial *t = &x->plan->trials[index];
	const struct lb_sweep_spec *sp = x->plan->sweep->spec;
	char path[8192], from_path[8192], bits_path[8192];
	struct lb_train_result res;
	memset(&res, 0, sizeof res);
	for (int s = t->n_stages ? 0 : -1; s < (int)t->n_stages; s++) {
		const struct lb_sweep_stage *st = s >= 0 ? t->stages[s].stage : NULL;
		if (st && st->kind == LB_STAGE_REWIND)
			continue;
		if (full_path(path, sizeof path, x, index, s)) {
			snprintf(msg, len, "trial path too long under '%s'", x->dir);
			return LB_TRIAL_FAILED;
		}
		if (stage_done(path, group))
			continue;
		if (st && st->kind == LB_STAGE_PTQ_EVAL) {
			int from, snap, grank, rc = LB_OK;
			long step;
			stage_source(sp, s, &from, &snap, &step);
			if (from < 0 || full_path(from_path, sizeof from_path, x, index, from) ||
			    snprintf(bits_path, sizeof bits_path, "%s.ptq-tmp", path) >=
				    (int)sizeof bits_path) {
				snprintf(msg, len, "stage %s: no input run file", st->name);
				return LB_TRIAL_FAILED;
			}
			MPI_Comm_rank(group, &grank);
			if (grank == 0) {
				struct lb_runfile *rf = NULL;
				struct lb_ptq_opts po;
				struct lb_ptq_result pr;
				lb_ptq_opts_default(&po);
				po.quiet = 1;
				po.fit_calibration = 1;
				rc = lb_runfile_read(from_path, &rf);
				rc = rc ? rc : lb_runfile_write(rf, bits_path);
				lb_runfile_free(rf);
				rc = rc ? rc : lb_ptq_run(bits_path, &po, &pr);
				if (!rc && rename(bits_path, path) != 0)
					rc = lb_error(LB_ERR_IO, "cannot rename '%s': %s", bits_path,
						      strerror(errno));
				if (rc)
					remove(bits_path);
			}
			rc = lb_comm_agree(group, rc);
			if (rc) {
				snprintf(msg, len, "stage %s: %s", st->name, lb_error_message());
				return LB_TRIAL_FAILED;
			}
			continue;
		}
		struct lb_config cfg = s >= 0 ? *t->stages[s].config : *t->config;
		/* resources.threads_per_rank unless the config names its threads;
		 * train.threads is not part of the config hash (results do not
		 * depend on it), so this keeps the run file resumable */
		if (!cfg.train.threads)
			cfg.train.threads = t->threads_per_rank;
		struct lb_train_opts opts = {.run_path = path, .resume = 1, .quiet = 1};
		if (st) {
			int from, snap;
			long step;
			stage_source(sp, s, &from, &snap, &step);
			if (from >= 0) {
				if (full_path(from_path, sizeof from_path, x, index, from)) {
					snprintf(msg, len, "trial path too long under '%s'", x->dir);
					return LB_TRIAL_FAILED;
				}
				opts.init_from = from_path;
				opts.init_snapshot = snap;
				opts.init_step = step;
			}
			int b = lb_sweep_stage_index(sp, st->bits_from);
			if ((st->kind == LB_STAGE_RETRAIN || st->kind == LB_STAGE_FINE_TUNE) && b >= 0) {
				if (full_path(bits_path, sizeof bits_path, x, index, b)) {
					snprintf(msg, len, "trial path too long under '%s'", x->dir);
					return LB_TRIAL_FAILED;
				}
				opts.bits_from = bits_path;
			}
		}
		int rc = lb_train_run(&cfg, &opts, group, &res);
		if (rc) {
			if (st)
				snprintf(msg, len, "stage %s: %s", st->name, lb_error_message());
			else
				snprintf(msg, len, "%s", lb_error_message());
			return state_of(rc);
		}
	}
	/* the result: the last training stage's run file */
	if (full_path(path, sizeof path, x, index, lb_sweepdir_result_stage(x->rec)) == 0) {
		int grank;
		double acc = -1;
		MPI_Comm_rank(group, &grank);
		if (grank == 0) {
			struct lb_runfile *rf = NULL;
			if (lb_runfile_read(path, &rf) == LB_OK)
				lb_runfile_get_attr_f64(rf, "", "final_test_acc", &acc);
			lb_runfile_free(rf);
		}
		if (acc >= 0)
			snprintf(msg, len, "test accuracy %.2f%%", 100.0 * acc);
		else
			snprintf(msg, len, "done");
	}
	return LB_TRIAL_DONE;
}

enum lb_trial_state lb_sweep_trial(int index, MPI_Comm group, void *ctx, char *msg,
				   size_t msg_len)
{
	const struct lb_sweep_exec *x = ctx;
	int grank;
	enum lb_trial_state st;
	msg[0] = '\0';
	MPI_Comm_rank(group, &grank);
	if (index < 0 || (unsigned)index >= x->plan->n_trials) {
		snprintf(msg, msg_len, "no trial %d in the plan", index);
		return LB_TRIAL_FAILED;
	}
	/* a preempted trial's record goes: it runs again, from its checkpoint */
	if (grank == 0)
		lb_sweepdir_set_outcome(x->dir, x->rec, (unsigned)index, LB_TRIAL_PENDING, NULL);
	/* a stop signal between two stages also stops the next one at its first
	 * step (lb_train_run installs the handlers only while it runs; nested
	 * installs chain to the command's own stop handler) */
	lb_signal_install();
	st = x->dummy ? run_dummy(x, (unsigned)index, group, msg, msg_len)
		      : run_training(x, (unsigned)index, group, msg, msg_len);
	lb_signal_restore();
	if (grank == 0 && st != LB_TRIAL_DONE &&
	    lb_sweepdir_set_outcome(x->dir, x->rec, (unsigned)index, st, msg)) {
		size_t n = strlen(msg);
		snprintf(msg + n, msg_len - n, " (and its failure record: %s)", lb_error_message());
	}
	return st;
}
