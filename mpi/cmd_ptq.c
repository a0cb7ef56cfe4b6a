/* SPDX-License-Identifier: MIT
 * `lowbit ptq RUN.h5 [options]`: the post-training quantization grid of a
 * finished run (core/ptq.h), printed as a table and recorded in the run file. */
#include <getopt.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "log.h"
#include "ptq.h"

static const char usage[] =
	"usage: lowbit ptq RUN.h5 [options]\n"
	"\n"
	"Fold batch norm, calibrate activation ranges on training batches, and evaluate\n"
	"the test set for every (weight bits, activation bits) pair; the table goes into\n"
	"RUN.h5 (group ptq/) and onto stdout.\n"
	"\n"
	"  -w, --w-bits LIST       weight bits, e.g. 8,6,5,4,3,2 (default; each 2..16)\n"
	"  -a, --a-bits LIST       activation bits (default 8,6,5,4,3,2; each 1..16)\n"
	"  -c, --calibration KIND  mean (mean of per-batch maxima, default), minmax,\n"
	"                          or percentile\n"
	"  -p, --percentile P      percentile for --calibration percentile (99.99)\n"
	"      --weight-percentile weight range = the percentile of |W| (default max |W|)\n"
	"      --per-channel       one weight scale per output channel (default per tensor)\n"
	"      --batches K         calibration batches (10)\n"
	"      --batch-size B      calibration batch size (100)\n"
	"      --no-fold-bn        keep batch norm as it is\n"
	"  -q, --quiet             no per-cell log lines\n"
	"  -h, --help              this text\n";

/* "8,6,4" -> bits; returns the count or -1 */
static int parse_list(const char *s, int *out, int cap)
{
	int n = 0;
	const char *p = s;
	while (*p) {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p || n == cap || v < -1000 || v > 1000)
			return -1;
		out[n++] = (int)v;
		if (*end == ',')
			end++;
		else if (*end)
			return -1;
		p = end;
	}
	return n ? n : -1;
}

int lb_cmd_ptq(int argc, char **argv)
{
	struct lb_ptq_opts o;
	struct lb_ptq_result res;
	enum { OPT_WPCT = 256, OPT_PC, OPT_BATCHES, OPT_BS, OPT_NOFOLD };
	static const struct option longopts[] = {
		{"w-bits", required_argument, NULL, 'w'},
		{"a-bits", required_argument, NULL, 'a'},
		{"calibration", required_argument, NULL, 'c'},
		{"percentile", required_argument, NULL, 'p'},
		{"weight-percentile", no_argument, NULL, OPT_WPCT},
		{"per-channel", no_argument, NULL, OPT_PC},
		{"batches", required_argument, NULL, OPT_BATCHES},
		{"batch-size", required_argument, NULL, OPT_BS},
		{"no-fold-bn", no_argument, NULL, OPT_NOFOLD},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c, rank = 0;
	char *end;
	lb_ptq_opts_default(&o);
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":w:a:c:p:qh", longopts, NULL)) != -1) {
		switch (c) {
		case 'w':
		case 'a': {
			int *dst = c == 'w' ? o.w_bits : o.a_bits;
			int n = parse_list(optarg, dst, LB_PTQ_MAX_GRID);
			if (n < 0) {
				lb_cli_error("ptq: --%s-bits: '%s' is not a list of bit-widths (allowed: "
					     "up to %d numbers such as 8,6,4)",
					     c == 'w' ? "w" : "a", optarg, LB_PTQ_MAX_GRID);
				return LB_EXIT_USAGE;
			}
			*(c == 'w' ? &o.n_w : &o.n_a) = n;
			break;
		}
		case 'c':
			if (!strcmp(optarg, "mean"))
				o.calibration = LB_PTQ_CAL_MEAN;
			else if (!strcmp(optarg, "minmax"))
				o.calibration = LB_PTQ_CAL_MINMAX;
			else if (!strcmp(optarg, "percentile"))
				o.calibration = LB_PTQ_CAL_PERCENTILE;
			else {
				lb_cli_error("ptq: --calibration: '%s' is not known (allowed: mean, "
					     "minmax, percentile)",
					     optarg);
				return LB_EXIT_USAGE;
			}
			break;
		case 'p':
			o.percentile = strtod(optarg, &end);
			if (*end || end == optarg) {
				lb_cli_error("ptq: --percentile: '%s' is not a number", optarg);
				return LB_EXIT_USAGE;
			}
			break;
		case OPT_WPCT:
			o.weight_percentile = 1;
			break;
		case OPT_PC:
			o.per_channel = 1;
			break;
		case OPT_BATCHES:
		case OPT_BS: {
			long v = strtol(optarg, &end, 10);
			if (*end || end == optarg || v < 1 || v > 100000) {
				lb_cli_error("ptq: --%s: '%s' is not a count (allowed: 1 to 100000)",
					     c == OPT_BS ? "batch-size" : "batches", optarg);
				return LB_EXIT_USAGE;
			}
			*(c == OPT_BS ? &o.batch_size : &o.batches) = (int)v;
			break;
		}
		case OPT_NOFOLD:
			o.fold_bn = 0;
			break;
		case 'q':
			o.quiet = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			return LB_EXIT_OK;
		case ':':
			lb_cli_error("ptq: option '%s' needs a value (see lowbit ptq --help)",
				     argv[optind - 1]);
			return LB_EXIT_USAGE;
		default:
			lb_cli_error("ptq: unknown option '%s' (see lowbit ptq --help)", argv[optind - 1]);
			return LB_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc) {
		lb_cli_error("ptq: give exactly one run file\n\n%s", usage);
		return LB_EXIT_USAGE;
	}
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	if (rank != 0) /* one process does the work */
		return LB_EXIT_OK;
	if (o.quiet)
		lb_log_set_level(LB_LOG_WARN);
	if (lb_ptq_run(argv[optind], &o, &res)) {
		lb_cli_error("%s", lb_error_message());
		return LB_EXIT_ERROR;
	}
	printf("# %s: test accuracy %% after post-training quantization (FP %.2f %%)\n",
	       argv[optind], 100 * res.fp_acc);
	printf("| W \\ A |");
	for (int a = 0; a < o.n_a; a++)
		printf(" %d |", o.a_bits[a]);
	printf("\n|---|");
	for (int a = 0; a < o.n_a; a++)
		printf("---|");
	printf("\n");
	for (int w = 0; w < o.n_w; w++) {
		printf("| %d |", o.w_bits[w]);
		for (int a = 0; a < o.n_a; a++)
			printf(" %.2f |", 100 * res.acc[w][a]);
		printf("\n");
	}
	return LB_EXIT_OK;
}
