/* SPDX-License-Identifier: MIT
 * `lowbit report PATH [-o OUTDIR] [--format LIST]`: tables and figures of a
 * sweep folder, a folder of run files or one run file (analysis/report.h,
 * docs/report.md). Exit status: 0 when everything asked was written (or only
 * gnuplot is missing: the tables are written and a line says how to get the
 * figures); 1 when nothing could be reported, or gnuplot failed on some
 * figure (the tables and its script are written); 2 usage. */
#include <getopt.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/report.h"
#include "cli.h"
#include "err.h"
#include "log.h"

static const char usage[] =
    "usage: lowbit report PATH [-o OUTDIR] [--format LIST]\n"
    "\n"
    "Tables and figures of a sweep folder (DIR with plan.tsv, or DIR/sweep.h5), a\n"
    "folder of run files, or one run file RUN.h5: summary.md, summary.csv\n"
    "(summary_seeds.csv when trials differ only by seed) and figures rendered by\n"
    "gnuplot, each beside its data (.dat) and script (.gp).\n"
    "\n"
    "  -o, --output OUTDIR   where to write (default DIR/report, or RUN-report/)\n"
    "  -f, --format LIST     any of md,csv,png,svg (default all)\n"
    "  -q, --quiet           no summary line on stderr\n"
    "  -h, --help            this text\n"
    "\n"
    "The environment variable LOWBIT_GNUPLOT names the gnuplot program (default:\n"
    "gnuplot from PATH).\n";

int lb_cmd_report(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"output", required_argument, NULL, 'o'},
	    {"format", required_argument, NULL, 'f'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct lb_report_opts o = {NULL, LB_REPORT_ALL, NULL};
	struct lb_report_outcome res;
	int c, rank = 0, quiet = 0;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":o:f:qh", longopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			o.out_dir = optarg;
			break;
		case 'f':
			if (lb_report_parse_formats(optarg, &o.formats)) {
				lb_cli_error("report: %s", lb_error_message());
				return LB_EXIT_USAGE;
			}
			break;
		case 'q':
			quiet = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			return LB_EXIT_OK;
		case ':':
			lb_cli_error("report: option '%s' needs a value (see lowbit report --help)",
				     argv[optind - 1]);
			return LB_EXIT_USAGE;
		default:
			lb_cli_error("report: unknown option '%s' (see lowbit report --help)",
				     argv[optind - 1]);
			return LB_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc) {
		lb_cli_error("report: give exactly one sweep folder or run file\n\n%s", usage);
		return LB_EXIT_USAGE;
	}
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	if (rank != 0) /* one process does the work */
		return LB_EXIT_OK;
	if (quiet)
		lb_log_set_level(LB_LOG_WARN);
	o.gnuplot = getenv("LOWBIT_GNUPLOT");
	if (o.gnuplot && !*o.gnuplot)
		o.gnuplot = NULL;
	if (lb_report_write(argv[optind], &o, &res)) {
		lb_cli_error("%s", lb_error_message());
		return LB_EXIT_ERROR;
	}
	if (!quiet)
		fprintf(stderr,
			"lowbit: report: %d rows (%d done, %d read, %d unreadable); %d figures "
			"rendered%s\n",
			res.rows, res.rows_done, res.rows_read, res.rows_unreadable, res.figures,
			res.lottery ? "; lottery.md (a lottery-ticket study)" : "");
	if (res.gnuplot_missing)
		fprintf(stderr,
			"lowbit: report: figures not rendered: gnuplot not found (%s); their "
			"data and scripts are in %s; to get the figures: apt-get install "
			"gnuplot-nox, then lowbit report again\n",
			o.gnuplot ? o.gnuplot : "gnuplot", res.out_dir);
	printf("%s\n", res.out_dir);
	if (res.figures_failed) {
		lb_cli_error("report: gnuplot failed on %d figure(s) (see the warnings above); the "
			     "tables are written",
			     res.figures_failed);
		return LB_EXIT_ERROR;
	}
	return LB_EXIT_OK;
}
