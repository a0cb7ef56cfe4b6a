/* SPDX-License-Identifier: MIT
 * One training run: data, model, optimizer, epochs, evaluation and the run
 * file (analysis/runfile.h) with checkpoints every train.checkpoint_every
 * epochs. The only core file that speaks MPI: the run takes an explicit
 * communicator (a sweep gives each trial its own). */
#ifndef LB_TRAIN_H
#define LB_TRAIN_H

#include <mpi.h>
#include <stddef.h>

#include "config.h"

struct lb_train_opts {
	const char *out_dir;      /* folder of the run file (created if missing) */
	const char *run_path;     /* explicit run file path (overrides out_dir/<name>.h5) */
	int resume;               /* continue the run file's checkpoint if it exists */
	long crash_at_step;       /* tests: _exit(9) when this global step starts (0 = off) */
	int quiet;                /* no per-step progress lines */
};

struct lb_train_result {
	char path[4096];          /* the run file */
	double test_acc;          /* final test accuracy (fraction) */
	double test_loss;
	int epochs_done;
	int already_done;         /* --resume found a finished run */
};

/* Run (or resume) training as configured. Collective over comm; comm may be
 * MPI_COMM_NULL for a single process without MPI initialised. Returns LB_OK,
 * or an error code with lb_error_message() set; on configuration, data or
 * output-folder errors nothing is written. */
int lb_train_run(const struct lb_config *cfg, const struct lb_train_opts *opts, MPI_Comm comm,
		 struct lb_train_result *res);

#endif
