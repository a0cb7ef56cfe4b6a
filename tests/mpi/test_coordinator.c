/* SPDX-License-Identifier: MIT
 * The coordinator with the dummy backend, under mpirun (tests/cli/mpi-coordinator.sh
 * and bench/coordinator-scale launch it):
 *   test_coordinator N_TRIALS RANKS_PER_TRIAL SLEEP_MS [FAIL_INDEX DIVERGE_INDEX]
 * Rank 0 prints TAP: every trial ran exactly once on a whole group, the
 * injected failure and divergence are recorded and the rest are done, and
 * the dispatch overhead per trial and the coordinator's CPU share. */
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "../../mpi/backend_dummy.h"
#include "../../mpi/coordinator.h"
#include "err.h"

int main(int argc, char **argv)
{
	int rank, size;
	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	if (argc < 4) {
		if (rank == 0)
			fprintf(stderr, "usage: test_coordinator N K SLEEP_MS [FAIL DIVERGE]\n");
		MPI_Finalize();
		return 2;
	}
	int n = atoi(argv[1]), k = atoi(argv[2]);
	struct lb_dummy_cfg cfg = {.sleep_s = atof(argv[3]) / 1000.0,
				   .fail_index = argc > 4 ? atoi(argv[4]) : -1,
				   .diverge_index = argc > 5 ? atoi(argv[5]) : -1};
	int *todo = malloc((size_t)n * sizeof *todo), *runs = calloc((size_t)n, sizeof *runs);
	int *total = calloc((size_t)n, sizeof *total);
	enum lb_trial_state *states = malloc((size_t)n * sizeof *states);
	for (int i = 0; i < n; i++)
		todo[i] = i;
	cfg.runs = runs;
	struct lb_coord_opts o = {.ranks_per_trial = k, .n_todo = n, .todo = todo,
				  .run = lb_dummy_trial, .ctx = &cfg};
	struct lb_coord_stats st;
	int rc = lb_coordinator_run(MPI_COMM_WORLD, &o, states, &st);
	if (rc) {
		if (rank == 0) {
			printf("1..1\n");
			ok(strstr(lb_error_message(), "ranks_per_trial") != NULL,
			   "refused before any trial: %s", lb_error_message());
		}
		MPI_Finalize();
		return rank == 0 ? done_testing() : 0;
	}
	MPI_Reduce(runs, total, n, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
	int status = 0;
	if (rank == 0) {
		int once = 1, right = 1;
		for (int i = 0; i < n; i++) {
			if (total[i] != 1)
				once = 0;
			enum lb_trial_state want = i == cfg.fail_index      ? LB_TRIAL_FAILED
						   : i == cfg.diverge_index ? LB_TRIAL_DIVERGED
									    : LB_TRIAL_DONE;
			if (states[i] != want)
				right = 0;
		}
		ok(st.trials_run == n, "%d ranks, %d per trial: %d of %d trials reported", size, k,
		   st.trials_run, n);
		ok(once, "every trial ran exactly once");
		ok(right, "states: injected failure and divergence recorded, the rest done");
		int groups = (size - 1) / k, rounds = (n + groups - 1) / groups;
		ok(st.requests == n, "the groups reported %ld finished trials and asked for more "
		   "(%d trials)", st.requests, n);
		/* ideal: n trials spread evenly; the bound: whole rounds of trials */
		double ideal = (double)n * cfg.sleep_s / groups, bound = rounds * cfg.sleep_s;
		diag("wall %.3f s (ideal %.3f s, %d rounds %.3f s), coordinator answers in %.3f "
		     "ms, leaders wait %.3f ms per request, coordinator CPU %.1f%% of wall",
		     st.wall_s, ideal, rounds, bound, 1e3 * st.dispatch_s / n,
		     1e3 * st.leader_wait_s / (double)st.requests,
		     100.0 * st.coordinator_cpu_s / st.wall_s);
		printf("# overhead_per_trial_ms %.3f rounds_overhead_per_trial_ms %.3f "
		       "leader_wait_ms %.3f cpu_share_percent %.2f\n",
		       1e3 * (st.wall_s - ideal) / ((double)n / groups),
		       1e3 * (st.wall_s - bound) / rounds,
		       1e3 * st.leader_wait_s / (double)st.requests,
		       100.0 * st.coordinator_cpu_s / st.wall_s);
		status = done_testing();
	}
	free(todo);
	free(runs);
	free(total);
	free(states);
	MPI_Finalize();
	return status;
}
