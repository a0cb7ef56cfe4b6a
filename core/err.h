/* SPDX-License-Identifier: MIT
 * Error codes and the last error message.
 *
 * Library code never exits: it records a message with lb_error() and returns
 * the code; programs decide to die (libcyaml's cyaml_err_t, git's error()).
 * Messages say what failed first and quote the subject:
 *   "examples/x.yaml: optimizer.lr: -1 is out of range (allowed: > 0)". */
#ifndef LB_ERR_H
#define LB_ERR_H

enum lb_err {
	LB_OK = 0,
	LB_ERR_OOM,      /* allocation failed */
	LB_ERR_SHAPE,    /* inconsistent shapes at model build */
	LB_ERR_IO,       /* file system */
	LB_ERR_CONFIG,   /* bad configuration or command line */
	LB_ERR_DATA,     /* bad or missing dataset */
	LB_ERR_MPI,      /* MPI call failed */
	LB_ERR_HDF5,     /* HDF5 call failed or foreign file */
	LB_ERR_STATE,    /* e.g. --resume of another config */
	LB_ERR_NUMERIC,  /* NaN/Inf */
	LB_ERR_SIGNAL,   /* stopped by a signal, state saved */
	LB_ERR__COUNT
};

/* Short name of an error code ("configuration error"). */
const char *lb_strerror(int err);

/* Record a formatted message for the calling thread and return err.
 * The message replaces the previous one. */
int lb_error(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefix the recorded message with "prefix: " (adds context while unwinding). */
int lb_error_prefix(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The last recorded message ("" when none). Borrowed; valid until the next lb_error. */
const char *lb_error_message(void);
void lb_error_clear(void);

#endif
