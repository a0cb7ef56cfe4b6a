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
	/* Stage inputs (sweep pipelines). A run file written by lb_train_run
	 * holds its initial parameters (init/params, init/buffers: theta0 before
	 * step 1) and its final ones (checkpoint/params when status is done). */
	const char *init_from;    /* run file to take the starting parameters from (NULL: fresh
				   * init from cfg->seed); the model shapes must match */
	int init_snapshot;        /* enum lb_snapshot: which parameters of init_from */
	const char *bits_from;    /* run file of a learned-bit-width run: its final per-layer
				   * weight bits (quant/learned_w_bits) replace this run's weight
				   * bits and learning of bits is switched off (NULL: none) */
};

enum lb_snapshot {
	LB_SNAPSHOT_INIT = 0,     /* the parameters before the first step (rewind to theta0) */
	LB_SNAPSHOT_FINAL = 1     /* the parameters after the last step (fine-tune, PTQ) */
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
