/* SPDX-License-Identifier: MIT
 * The dummy trial backend (see backend_dummy.h). */
#include "backend_dummy.h"

#include <stdio.h>
#include <time.h>

enum lb_trial_state lb_dummy_trial(int index, MPI_Comm group, void *ctx, char *msg,
				   size_t msg_len)
{
	const struct lb_dummy_cfg *c = ctx;
	struct timespec ts = {(time_t)c->sleep_s, (long)((c->sleep_s - (time_t)c->sleep_s) * 1e9)};
	int one = 1, n = 0, grank;
	nanosleep(&ts, NULL);
	MPI_Allreduce(&one, &n, 1, MPI_INT, MPI_SUM, group);
	MPI_Comm_rank(group, &grank);
	if (grank == 0 && c->runs)
		c->runs[index]++;
	if (index == c->fail_index) {
		snprintf(msg, msg_len, "injected failure in trial %d", index);
		return LB_TRIAL_FAILED;
	}
	if (index == c->diverge_index) {
		snprintf(msg, msg_len, "loss is not finite (injected) in trial %d", index);
		return LB_TRIAL_DIVERGED;
	}
	snprintf(msg, msg_len, "ok: %d ranks, synthetic accuracy %.3f", n, 0.5 + 0.001 * index);
	return LB_TRIAL_DONE;
}
