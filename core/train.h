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
	long signal_at_step;      /* tests: the last rank raises SIGTERM just before this global
				   * step starts (0 = off); the run stops as on a real signal */
	int signal_in_checkpoint; /* tests: SIGTERM every 100 us while the preemption checkpoint
				   * is written (a second signal must not damage it) */
	int quiet;                /* no per-step progress lines */
	/* Stage inputs (sweep pipelines). A run file written by lb_train_run
	 * holds its initial parameters (init/params, init/buffers: theta0 before
	 * step 1) and its final ones (checkpoint/params when status is done). */
	const char *init_from;    /* run file to take the starting parameters from (NULL: fresh
				   * init from cfg->seed); the model shapes must match */
	int init_snapshot;        /* enum lb_snapshot: which parameters of init_from */
	long init_step;           /* LB_SNAPSHOT_STEP: K, a step in init_from's
				   * train.snapshot_steps (snapshots/step_K/) */
	const char *bits_from;    /* run file of a learned-bit-width run: its final per-layer
				   * weight bits (quant/learned_w_bits) replace this run's weight
				   * bits and learning of bits is switched off (NULL: none) */
};

enum lb_snapshot {
	LB_SNAPSHOT_INIT = 0,     /* the parameters before the first step (rewind to theta0) */
	LB_SNAPSHOT_FINAL = 1,    /* the parameters after the last step (fine-tune, PTQ) */
	LB_SNAPSHOT_STEP = 2      /* the parameters after step init_step (late rewinding) */
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
/* Stop signals (core/signals.h): lb_train_run installs the handlers for its
 * duration (chained to the ones in place). When SIGTERM, SIGUSR1 or SIGUSR2
 * has arrived, the ranks agree at the next step boundary (MPI_Allreduce MAX
 * of the flag over comm, every step), rank 0 writes a checkpoint at that
 * exact step (checkpoint/epoch_step: the steps done inside the epoch) with
 * status "preempted", and every rank returns LB_ERR_SIGNAL. --resume then
 * continues from that step; the result is bit-identical to an uninterrupted
 * run. A non-finite loss or gradient norm returns LB_ERR_NUMERIC with status
 * "diverged"; the metrics of the completed epochs stay in the run file. */

/* Whether K ranks can train cfg (train.shards, train.parallel): in
 * deterministic mode K must be a power of two dividing train.shards with
 * train.shards / K a power of two; in fast mode any K dividing it. LB_OK, or
 * LB_ERR_CONFIG with a message listing the rank counts allowed. */
int lb_train_check_ranks(const struct lb_config *cfg, int K);

/* The datasets of cfg->data as a run loads them (limits, validation split,
 * normalisation statistics of the training set). Release each with
 * lb_dataset_release. (PTQ and other evaluations outside a run.) */
struct lb_dataset;
struct lb_normalize;
int lb_train_load_data(const struct lb_config *cfg, struct lb_dataset *train,
		       struct lb_dataset *val, struct lb_dataset *test, struct lb_normalize *norm);

#endif
