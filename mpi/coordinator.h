/* SPDX-License-Identifier: MIT
 * Dynamic dispatch of trials to groups of ranks (design §7).
 *
 * Rank 0 of `world` coordinates; the other ranks are split into groups of
 * ranks_per_trial consecutive ranks (MPI_Comm_split). A group's leader asks
 * for work when the group is free, the coordinator answers with the next
 * pending trial, the whole group runs it on its own communicator, and the
 * leader reports the outcome. No batch barrier: a slow trial holds only its
 * group. The coordinator waits with MPI_Iprobe and short sleeps, so it does
 * not spin a core. A trial that fails is recorded with its message and the
 * sweep goes on. */
#ifndef LB_COORDINATOR_H
#define LB_COORDINATOR_H

#include <mpi.h>
#include <stddef.h>

enum lb_trial_state {
	LB_TRIAL_PENDING,
	LB_TRIAL_RUNNING,
	LB_TRIAL_DONE,
	LB_TRIAL_FAILED,
	LB_TRIAL_DIVERGED,
	LB_TRIAL_PREEMPTED,
	LB_TRIAL__COUNT
};

const char *lb_trial_state_name(enum lb_trial_state s);

/* Runs trial `index` on the group communicator `group` (collective over it).
 * Returns the trial's final state (DONE, FAILED, DIVERGED or PREEMPTED) and,
 * on every rank or at least on the group's rank 0, a message in msg. */
typedef enum lb_trial_state (*lb_trial_fn)(int index, MPI_Comm group, void *ctx, char *msg,
					   size_t msg_len);

/* Called on the coordinator when a trial starts and when it ends (may be NULL):
 * lets the caller persist status as the sweep runs. */
typedef void (*lb_trial_event_fn)(int index, enum lb_trial_state state, const char *msg,
				  int group, void *ctx);

struct lb_coord_opts {
	int ranks_per_trial;  /* >= 1; (world size - 1) must be a multiple of it */
	int n_todo;           /* trials to run, in this order */
	const int *todo;      /* their indices */
	lb_trial_fn run;
	lb_trial_event_fn event;
	void *ctx;
};

struct lb_coord_stats {
	int trials_run;
	double wall_s;            /* coordinator: from start to the last report */
	double coordinator_cpu_s; /* CPU time of the coordinator process meanwhile */
	double dispatch_s;        /* total time between a request's arrival and its answer */
};

/* Collective over world (size >= 2). On rank 0, states[i] (n_todo entries,
 * may be NULL) receives the final state of todo[i] and stats (may be NULL)
 * the coordinator's accounting. Returns LB_OK, or LB_ERR_CONFIG when the
 * rank count does not fit ranks_per_trial (checked before any trial). */
int lb_coordinator_run(MPI_Comm world, const struct lb_coord_opts *o, enum lb_trial_state *states,
		       struct lb_coord_stats *stats);

#endif
