/* SPDX-License-Identifier: MIT
 * Dynamic dispatch of trials to groups of ranks (design §7).
 *
 * Rank 0 of `world` coordinates; the other ranks are split into groups of
 * ranks_per_trial consecutive ranks (MPI_Comm_split). A group's leader asks
 * for work when the group is free (its first request, then each report of a
 * finished trial doubles as the next request), the coordinator answers with
 * the next pending trial, the whole group runs it on its own communicator,
 * and the leader reports the outcome. No batch barrier: a slow trial holds
 * only its group. Neither the coordinator nor a waiting leader spins a core:
 * both poll a nonblocking receive and sleep between polls, the sleep
 * adapting to the rate at which messages arrive (coordinator.c). A trial
 * that fails is recorded with its message and the sweep goes on. */
#ifndef LB_COORDINATOR_H
#define LB_COORDINATOR_H

#include <mpi.h>
#include <stddef.h>

#include "sweeps/sweepdir.h" /* enum lb_trial_state */

/* Runs trial `index` on the group communicator `group` (collective over it).
 * Returns the trial's final state (DONE, FAILED, DIVERGED or PREEMPTED) and,
 * at least on the group's rank 0, a message in msg. */
typedef enum lb_trial_state (*lb_trial_fn)(int index, MPI_Comm group, void *ctx, char *msg,
					   size_t msg_len);

/* Called on the coordinator when a trial starts (state RUNNING, group >= 0)
 * and when it ends (group -1); may be NULL. Lets the caller log and persist
 * status as the sweep runs; it runs inside the dispatch loop, so it should
 * be quick. */
typedef void (*lb_trial_event_fn)(int index, enum lb_trial_state state, const char *msg,
				  int group, void *ctx);

struct lb_coord_opts {
	int ranks_per_trial;  /* >= 1; (world size - 1) must be a multiple of it */
	int n_todo;           /* trials to run, in this order */
	const int *todo;      /* their indices */
	lb_trial_fn run;
	void *ctx;            /* of run */
	lb_trial_event_fn event;
	void *event_ctx;      /* of event */
	/* Polled by the coordinator between messages (may be NULL): nonzero
	 * stops handing out trials; running ones finish and report. */
	volatile int *stop;
};

struct lb_coord_stats {
	int trials_run;
	double wall_s;            /* coordinator: from start to the last report */
	double coordinator_cpu_s; /* CPU time of the coordinator process meanwhile */
	double dispatch_s;        /* total time between a request's arrival and its answer */
	/* Seen from the groups: the total time a group leader waited between
	 * reporting a finished trial (and asking for the next) and receiving the
	 * answer, over all groups (summed to rank 0), and the number of such
	 * requests (a group's first request, which waits for the coordinator to
	 * start, is not counted). Per request this is the dispatch latency
	 * between two trials of a group. */
	double leader_wait_s;
	long requests;
};

/* Collective over world (size >= 2). On rank 0, states[i] (n_todo entries,
 * may be NULL) receives the final state of todo[i] (PENDING for a trial not
 * handed out because of *stop) and stats (may be NULL) the coordinator's
 * accounting. Returns LB_OK, or LB_ERR_CONFIG when the rank count does not
 * fit ranks_per_trial (checked before any trial, on every rank). */
int lb_coordinator_run(MPI_Comm world, const struct lb_coord_opts *o, enum lb_trial_state *states,
		       struct lb_coord_stats *stats);

/* The message of lb_coordinator_run's LB_ERR_CONFIG, for checks made before
 * MPI starts a sweep: LB_OK when world_size fits ranks_per_trial. */
int lb_coordinator_check(int world_size, int ranks_per_trial);

#endif
