/* SPDX-License-Identifier: MIT
 * A fake trial for coordinator tests (IOR's DUMMY backend): sleeps, makes up
 * metrics, and fails or diverges on request, without touching a dataset. */
#ifndef LB_BACKEND_DUMMY_H
#define LB_BACKEND_DUMMY_H

#include "coordinator.h"

struct lb_dummy_cfg {
	double sleep_s;   /* per trial */
	int fail_index;   /* this trial fails (-1: none) */
	int diverge_index;/* this trial diverges (-1: none) */
	int *runs;        /* on the group leader: runs[index]++ (may be NULL) */
};

/* lb_trial_fn over struct lb_dummy_cfg: every rank of the group sleeps, the
 * group agrees with an allreduce (so it really is collective), and the state
 * is DONE unless the index is the failing or diverging one. */
enum lb_trial_state lb_dummy_trial(int index, MPI_Comm group, void *ctx, char *msg,
				   size_t msg_len);

/* The fake run file of a dummy trial at path (kind "run", as a training run
 * would leave it): status (done, diverged, or running for a failed or
 * preempted trial), synthetic metrics (one epoch, test accuracy 0.5 +
 * 0.001 index), final_test_acc when done, and the attribute dummy_attempts:
 * 1 + its value in the file already there, so tests can see that a done
 * trial is never run again. One writer: the group leader. */
int lb_dummy_write_run(const char *path, int index, enum lb_trial_state state, const char *msg);

#endif
