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

#endif
