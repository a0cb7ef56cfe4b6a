/* SPDX-License-Identifier: MIT
 * `lowbit report`: tables and figures of a sweep folder, a folder of run
 * files, or one run file (docs/report.md).
 *
 * Invariants: every value in the tables is read from the run files
 * (analysis/runfile.h; the axes from the sweep's plan.tsv), never
 * recomputed; every output is written to a temporary name and renamed, so a
 * file under its final name is complete; figures are rendered by an
 * external gnuplot from a data file and a script written beside them, and a
 * missing or failing gnuplot never stops the tables. No MPI here. */
#ifndef LB_REPORT_H
#define LB_REPORT_H

#include <stddef.h>

/* Output formats (flags). Figures (png, svg) also write their .dat and .gp. */
enum {
	LB_REPORT_MD = 1u << 0,	 /* summary.md (and lottery.md) */
	LB_REPORT_CSV = 1u << 1, /* summary.csv (and summary_seeds.csv) */
	LB_REPORT_PNG = 1u << 2,
	LB_REPORT_SVG = 1u << 3,
	LB_REPORT_ALL = 0xfu,
};

struct lb_report_opts {
	const char *out_dir; /* NULL: the default (docs/report.md) */
	unsigned formats;    /* LB_REPORT_* flags, nonzero */
	const char *gnuplot; /* program to run; NULL: "gnuplot" from PATH */
};

/* What a report did (for the command's messages and exit status). */
struct lb_report_outcome {
	char out_dir[4096];
	int rows;      /* table rows (trials x training stages, or runs) */
	int rows_read; /* rows whose run file was read */
	int rows_done;
	int rows_unreadable; /* run files that exist but could not be read */
	int figures;	     /* figures rendered (each in every asked format) */
	int figures_failed;  /* gnuplot ran and failed (scripts kept) */
	int gnuplot_missing; /* figures asked for, gnuplot not found */
	int lottery;	     /* lottery.md written (a lottery-ticket study) */
};

/* "md,csv,png,svg" -> flags. LB_ERR_CONFIG naming the unknown word. */
int lb_report_parse_formats(const char *s, unsigned *out);

/* The default output folder for path: DIR/report for a folder (or for
 * DIR/sweep.h5), X-report for a run file X.h5. -1 when buf is too small. */
int lb_report_default_out(char *buf, size_t n, const char *path, int is_dir);

/* Write the report of path (a sweep folder, a folder of run files, a sweep.h5
 * or a run file). LB_OK when the tables (and the figures gnuplot could
 * render) are written; errors (nothing written): LB_ERR_IO (missing path,
 * unwritable output), LB_ERR_HDF5 (a run file given alone that cannot be
 * read: truncated, foreign, newer format), LB_ERR_STATE (no results: no run
 * file could be read), LB_ERR_OOM. Warnings (unreadable trial files, gnuplot
 * failures) go to lb_log. [out] *out always filled. */
int lb_report_write(const char *path, const struct lb_report_opts *o,
		    struct lb_report_outcome *out);

/* Pareto front of (acc up, cost down): on_front[i] = 1 when acc[i] and
 * cost[i] are finite and no j has acc[j] >= acc[i] and cost[j] <= cost[i]
 * with one of them strict; else 0 (NaN rows never are, and do not
 * dominate). Equal points are all on the front. Returns the count. */
int lb_report_pareto(int n, const double *acc, const double *cost, int *on_front);

#endif
