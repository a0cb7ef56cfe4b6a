/* SPDX-License-Identifier: MIT
 * Dynamic trial dispatch over MPI (see coordinator.h). Message tags and the
 * wire format of a report live here, in one place. */
#include "coordinator.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "util.h"

enum lb_tag {
	LB_TAG_REQUEST = 101, /* leader -> coordinator: int group */
	LB_TAG_ASSIGN = 102,  /* coordinator -> leader: int trial index, -1 = stop */
	LB_TAG_REPORT = 103   /* leader -> coordinator: struct report */
};

#define LB_MSG_LEN 512

struct report {
	int32_t index;
	int32_t state;
	char msg[LB_MSG_LEN];
};

static const char *const state_names[LB_TRIAL__COUNT] = {
	"pending", "running", "done", "failed", "diverged", "preempted",
};

const char *lb_trial_state_name(enum lb_trial_state s)
{
	return (unsigned)s < LB_TRIAL__COUNT ? state_names[s] : "unknown";
}

/* Sleep between polls: short while messages keep coming, up to 1 ms when idle. */
static void nap(long *ns)
{
	struct timespec ts = {0, *ns};
	nanosleep(&ts, NULL);
	if (*ns < 1000000)
		*ns *= 2;
}

static void coordinate(MPI_Comm world, const struct lb_coord_opts *o, int n_groups,
		       enum lb_trial_state *states, struct lb_coord_stats *st)
{
	int next = 0, active = n_groups, reports = 0;
	long ns = 20000;
	double t0 = lb_now(), c0 = lb_cpu_time();
	while (active > 0) {
		int flag = 0;
		MPI_Status status;
		MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, world, &flag, &status);
		if (!flag) {
			nap(&ns);
			continue;
		}
		ns = 20000;
		if (status.MPI_TAG == LB_TAG_REQUEST) {
			int group, idx = -1;
			double ta = lb_now();
			MPI_Recv(&group, 1, MPI_INT, status.MPI_SOURCE, LB_TAG_REQUEST, world,
				 MPI_STATUS_IGNORE);
			if (next < o->n_todo) {
				idx = o->todo[next];
				if (states)
					states[next] = LB_TRIAL_RUNNING;
				if (o->event)
					o->event(idx, LB_TRIAL_RUNNING, "", group, o->ctx);
				next++;
			} else {
				active--;
			}
			MPI_Send(&idx, 1, MPI_INT, status.MPI_SOURCE, LB_TAG_ASSIGN, world);
			st->dispatch_s += lb_now() - ta;
		} else if (status.MPI_TAG == LB_TAG_REPORT) {
			struct report r;
			MPI_Recv(&r, (int)sizeof r, MPI_BYTE, status.MPI_SOURCE, LB_TAG_REPORT, world,
				 MPI_STATUS_IGNORE);
			r.msg[LB_MSG_LEN - 1] = '\0';
			for (int i = 0; i < o->n_todo; i++)
				if (o->todo[i] == r.index && states)
					states[i] = (enum lb_trial_state)r.state;
			if (o->event)
				o->event(r.index, (enum lb_trial_state)r.state, r.msg, -1, o->ctx);
			reports++;
		} else {
			/* not ours: drain it so the loop cannot stall */
			MPI_Recv(NULL, 0, MPI_BYTE, status.MPI_SOURCE, status.MPI_TAG, world,
				 MPI_STATUS_IGNORE);
		}
	}
	st->trials_run = reports;
	st->wall_s = lb_now() - t0;
	st->coordinator_cpu_s = lb_cpu_time() - c0;
}

static void work(MPI_Comm world, MPI_Comm group, int group_index,
		 const struct lb_coord_opts *o)
{
	int grank;
	MPI_Comm_rank(group, &grank);
	for (;;) {
		int idx = -1;
		if (grank == 0) {
			MPI_Send(&group_index, 1, MPI_INT, 0, LB_TAG_REQUEST, world);
			MPI_Recv(&idx, 1, MPI_INT, 0, LB_TAG_ASSIGN, world, MPI_STATUS_IGNORE);
		}
		MPI_Bcast(&idx, 1, MPI_INT, 0, group);
		if (idx < 0)
			break;
		struct report r;
		memset(&r, 0, sizeof r);
		r.index = idx;
		r.state = (int32_t)o->run(idx, group, o->ctx, r.msg, sizeof r.msg);
		if (grank == 0)
			MPI_Send(&r, (int)sizeof r, MPI_BYTE, 0, LB_TAG_REPORT, world);
	}
}

int lb_coordinator_run(MPI_Comm world, const struct lb_coord_opts *o, enum lb_trial_state *states,
		       struct lb_coord_stats *stats)
{
	int rank, size, k = o->ranks_per_trial;
	struct lb_coord_stats st;
	memset(&st, 0, sizeof st);
	MPI_Comm_rank(world, &rank);
	MPI_Comm_size(world, &size);
	if (k < 1 || size < 2 || (size - 1) % k != 0)
		return lb_error(LB_ERR_CONFIG,
				"resources.ranks_per_trial: %d does not divide the %d worker ranks "
				"(%d ranks minus the coordinator); use mpirun -n 1+%d*N",
				k, size - 1, size, k);
	for (int i = 0; states && i < o->n_todo; i++)
		states[i] = LB_TRIAL_PENDING;
	/* rank 0 gets its own (unused) colour so the groups are exactly the workers */
	int color = rank == 0 ? 0 : 1 + (rank - 1) / k;
	MPI_Comm group;
	MPI_Comm_split(world, color, rank, &group);
	if (rank == 0)
		coordinate(world, o, (size - 1) / k, states, &st);
	else
		work(world, group, color - 1, o);
	MPI_Comm_free(&group);
	MPI_Barrier(world);
	if (stats)
		*stats = st;
	return LB_OK;
}
