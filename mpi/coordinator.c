/* SPDX-License-Identifier: MIT
 * Dynamic trial dispatch over MPI (see coordinator.h). The message tags and
 * the wire format live here, in one place.
 *
 * Waiting without burning a core: Open MPI's blocking receive polls in a
 * loop, so the coordinator (and a leader waiting for its next trial) instead
 * posts MPI_Irecv and alternates MPI_Test with nanosleep. The sleep adapts:
 * it halves after a poll that found a message and doubles after one that did
 * not, between NAP_MIN and NAP_MAX, so it settles near the time between
 * messages. A message then waits about half a nap (well under a millisecond
 * while messages are frequent, NAP_MAX at worst) and an idle coordinator
 * polls NAP_MAX^-1 times a second. */
#include "coordinator.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "util.h"

enum lb_tag {
	LB_TAG_REPORT = 101, /* leader -> coordinator: struct report (index -1: first request) */
	LB_TAG_ASSIGN = 102  /* coordinator -> leader: int trial index, -1 = stop */
};

#define LB_MSG_LEN 512
#define NAP_MIN_NS 10000L   /* 10 us */
#define NAP_MAX_NS 1000000L /* 1 ms */

/* A finished trial and the request for the next one. */
struct report {
	int32_t group;
	int32_t index; /* -1: nothing finished yet (the group's first request) */
	int32_t state;
	char msg[LB_MSG_LEN];
};

static void nap(long ns)
{
	struct timespec ts = {0, ns};
	nanosleep(&ts, NULL);
}

static long nap_more(long ns)
{
	return ns * 2 > NAP_MAX_NS ? NAP_MAX_NS : ns * 2;
}

static long nap_less(long ns)
{
	return ns / 2 < NAP_MIN_NS ? NAP_MIN_NS : ns / 2;
}

/* Wait for req without spinning; *ns carries the adapted nap between calls. */
static void wait_quietly(MPI_Request *req, MPI_Status *status, long *ns)
{
	int flag = 0;
	MPI_Test(req, &flag, status);
	if (flag) {
		*ns = nap_less(*ns);
		return;
	}
	while (!flag) {
		nap(*ns);
		MPI_Test(req, &flag, status);
		if (!flag)
			*ns = nap_more(*ns);
	}
}

int lb_coordinator_check(int size, int k)
{
	if (k < 1 || size < 2 || (size - 1) % k != 0)
		return lb_error(LB_ERR_CONFIG,
				"resources.ranks_per_trial: %d does not divide the %d worker ranks "
				"(%d ranks minus the coordinator); use mpirun -n 1+%d*N",
				k, size - 1, size, k);
	return LB_OK;
}

static void coordinate(MPI_Comm world, const struct lb_coord_opts *o, int n_groups,
		       enum lb_trial_state *states, struct lb_coord_stats *st)
{
	int next = 0, active = n_groups, reports = 0;
	long ns = NAP_MIN_NS;
	double t0 = lb_now(), c0 = lb_cpu_time();
	struct report r;
	MPI_Request req;
	MPI_Irecv(&r, (int)sizeof r, MPI_BYTE, MPI_ANY_SOURCE, LB_TAG_REPORT, world, &req);
	while (active > 0) {
		MPI_Status status;
		wait_quietly(&req, &status, &ns);
		double ta = lb_now();
		struct report got = r;
		int src = status.MPI_SOURCE, idx = -1;
		/* repost at once so the next report can land while we answer */
		MPI_Irecv(&r, (int)sizeof r, MPI_BYTE, MPI_ANY_SOURCE, LB_TAG_REPORT, world, &req);
		got.msg[LB_MSG_LEN - 1] = '\0';
		if (got.index >= 0) {
			for (int i = 0; i < o->n_todo; i++)
				if (o->todo[i] == got.index && states)
					states[i] = (enum lb_trial_state)got.state;
			if (o->event)
				o->event(got.index, (enum lb_trial_state)got.state, got.msg, -1, o->event_ctx);
			reports++;
		}
		if (next < o->n_todo && !(o->stop && *o->stop)) {
			idx = o->todo[next];
			if (states)
				states[next] = LB_TRIAL_RUNNING;
			if (o->event)
				o->event(idx, LB_TRIAL_RUNNING, "", got.group, o->event_ctx);
			next++;
		} else {
			active--;
		}
		MPI_Send(&idx, 1, MPI_INT, src, LB_TAG_ASSIGN, world);
		st->dispatch_s += lb_now() - ta;
	}
	MPI_Cancel(&req);
	MPI_Wait(&req, MPI_STATUS_IGNORE);
	st->trials_run = reports;
	st->wall_s = lb_now() - t0;
	st->coordinator_cpu_s = lb_cpu_time() - c0;
}

static void work(MPI_Comm world, MPI_Comm group, int group_index,
		 const struct lb_coord_opts *o, struct lb_coord_stats *st)
{
	int grank;
	struct report r;
	memset(&r, 0, sizeof r);
	r.group = group_index;
	r.index = -1;
	MPI_Comm_rank(group, &grank);
	for (;;) {
		int idx = -1;
		if (grank == 0) {
			MPI_Request req;
			long ns = NAP_MIN_NS; /* the answer comes soon after the request */
			double t = lb_now();
			MPI_Send(&r, (int)sizeof r, MPI_BYTE, 0, LB_TAG_REPORT, world);
			MPI_Irecv(&idx, 1, MPI_INT, 0, LB_TAG_ASSIGN, world, &req);
			wait_quietly(&req, MPI_STATUS_IGNORE, &ns);
			if (r.index >= 0) { /* not the first request: start-up skew is not dispatch */
				st->leader_wait_s += lb_now() - t;
				st->requests++;
			}
		}
		MPI_Bcast(&idx, 1, MPI_INT, 0, group);
		if (idx < 0)
			break;
		memset(r.msg, 0, sizeof r.msg);
		r.index = idx;
		r.state = (int32_t)o->run(idx, group, o->ctx, r.msg, sizeof r.msg);
	}
}

int lb_coordinator_run(MPI_Comm world, const struct lb_coord_opts *o, enum lb_trial_state *states,
		       struct lb_coord_stats *stats)
{
	int rank, size, k = o->ranks_per_trial, rc;
	struct lb_coord_stats st;
	memset(&st, 0, sizeof st);
	MPI_Comm_rank(world, &rank);
	MPI_Comm_size(world, &size);
	if ((rc = lb_coordinator_check(size, k)))
		return rc;
	for (int i = 0; states && i < o->n_todo; i++)
		states[i] = LB_TRIAL_PENDING;
	/* rank 0 gets its own (unused) colour so the groups are exactly the workers */
	int color = rank == 0 ? 0 : 1 + (rank - 1) / k;
	MPI_Comm group;
	MPI_Comm_split(world, color, rank, &group);
	if (rank == 0)
		coordinate(world, o, (size - 1) / k, states, &st);
	else
		work(world, group, color - 1, o, &st);
	MPI_Comm_free(&group);
	/* the groups' waits to rank 0 (also the barrier the sweep ends with) */
	double wait = st.leader_wait_s, wait_sum = 0;
	long req = st.requests, req_sum = 0;
	MPI_Reduce(&wait, &wait_sum, 1, MPI_DOUBLE, MPI_SUM, 0, world);
	MPI_Reduce(&req, &req_sum, 1, MPI_LONG, MPI_SUM, 0, world);
	st.leader_wait_s = rank == 0 ? wait_sum : wait;
	st.requests = rank == 0 ? req_sum : req;
	MPI_Barrier(world);
	if (stats)
		*stats = st;
	return LB_OK;
}
