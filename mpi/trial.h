/* SPDX-License-Identifier: MIT
 * One trial of a sweep, run by a group of ranks (design §6): its stages in
 * order, each a training run (core/train.h) with its own run file under the
 * sweep folder (sweeps/sweepdir.h), or the dummy backend's fake run. Used by
 * `lowbit sweep` through the coordinator and by `lowbit trial` directly. */
#ifndef LB_TRIAL_H
#define LB_TRIAL_H

#include <mpi.h>
#include <stddef.h>

#include "backend_dummy.h"
#include "sweeps/spec.h"
#include "sweeps/sweepdir.h"

/* Everything a trial needs; shared (read-only) by every rank's trials. */
struct lb_sweep_exec {
	const struct lb_sweep_plan *plan; /* the expanded spec */
	const struct lb_plan_rec *rec;    /* its record (paths) */
	const char *dir;                  /* the sweep folder */
	int dummy;                        /* 1: the dummy backend instead of training */
	struct lb_dummy_cfg dummy_cfg;
};

/* lb_trial_fn over struct lb_sweep_exec: collective over group. Every stage
 * resumes its run file when one exists (a done stage is skipped, a running
 * or preempted one continues from its checkpoint). The group's rank 0 writes
 * the run files and, for a trial that does not end DONE, the failure record
 * (trials/<id>.error); msg says what happened ("test accuracy 85.20%", or
 * "stage bits: <error>"). */
enum lb_trial_state lb_sweep_trial(int index, MPI_Comm group, void *ctx, char *msg,
				   size_t msg_len);

/* Rank counts a trial's configs allow (train.shards and train.parallel, the
 * rule of core/train.c): LB_OK, or LB_ERR_CONFIG naming the trial, stage and
 * what is allowed. Checked for every trial before a sweep starts. */
int lb_sweep_check_ranks(const struct lb_sweep_plan *plan, int ranks);

/* Stage graphs a sweep cannot run (a ptq_eval stage without input, a
 * rewind as the last stage): LB_OK or LB_ERR_CONFIG naming the stage. */
int lb_sweep_check_runnable(const struct lb_sweep_plan *plan);

#endif
