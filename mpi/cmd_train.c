/* SPDX-License-Identifier: MIT
 * `lowbit train CONFIG.yaml [-o DIR] [--set key=value ...] [--resume]`:
 * one run, in-process (core/train.c does the work). */
#include <errno.h>
#include <getopt.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "train.h"

static const char usage[] =
	"usage: lowbit train CONFIG.yaml [options]\n"
	"\n"
	"Train one model as CONFIG.yaml says and record the run in DIR/<name>.h5.\n"
	"\n"
	"  -o, --output DIR        folder of the run file (default: runs)\n"
	"  -s, --set KEY=VALUE     override a config key, e.g. --set optimizer.lr=0.05\n"
	"                          (repeatable; VALUE in YAML syntax: 0.1, adam, [60, 80])\n"
	"  -r, --resume            continue DIR/<name>.h5 from its last checkpoint\n"
	"      --stage-init RUN.h5:init|final|step:K\n"
	"                          start from the initial (theta0), final, or step-K\n"
	"                          parameters of another run (step K: one of its\n"
	"                          train.snapshot_steps; tensors matched by name;\n"
	"                          quantizer parameters it lacks are initialised anew)\n"
	"      --stage-bits RUN.h5 train at the weight bits learned by another run\n"
	"                          (its quant/learned_w_bits); learning bits is off\n"
	"      --print-config      print the resolved configuration (YAML) and exit\n"
	"  -q, --quiet             only warnings, errors and the final line\n"
	"  -h, --help              this text\n"
	"\n"
	"The run file's path is printed on stdout when training ends.\n"
	"Keys, types and defaults: docs/config.md.\n";

int lb_cmd_train(int argc, char **argv)
{
	const char *out_dir = "runs", *config_path = NULL;
	const char **sets = calloc((size_t)argc + 1, sizeof *sets);
	int n_sets = 0, resume = 0, print_config = 0, quiet = 0, status = LB_EXIT_ERROR;
	long crash_at = 0, signal_at = 0;
	int signal_in_checkpoint = 0;
	struct lb_config *cfg = NULL;
	const char *init_from = NULL, *bits_from = NULL;
	char init_path[4096];
	int init_snapshot = LB_SNAPSHOT_INIT;
	long init_step = 0;
	enum { OPT_PRINT = 256, OPT_CRASH, OPT_STAGE_INIT, OPT_STAGE_BITS, OPT_SIGNAL,
	       OPT_SIGNAL_CKPT };
	static const struct option longopts[] = {
		{"output", required_argument, NULL, 'o'},
		{"set", required_argument, NULL, 's'},
		{"resume", no_argument, NULL, 'r'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{"print-config", no_argument, NULL, OPT_PRINT},
		{"debug-crash-at-step", required_argument, NULL, OPT_CRASH},
		/* tests (tests/cli/preempt.sh): SIGTERM on the last rank before global
		 * step N; more SIGTERMs while the preemption checkpoint is written */
		{"debug-signal-at-step", required_argument, NULL, OPT_SIGNAL},
		{"debug-signal-in-checkpoint", no_argument, NULL, OPT_SIGNAL_CKPT},
		{"stage-init", required_argument, NULL, OPT_STAGE_INIT},
		{"stage-bits", required_argument, NULL, OPT_STAGE_BITS},
		{NULL, 0, NULL, 0},
	};
	int c;
	if (!sets) {
		lb_cli_error("out of memory");
		return LB_EXIT_ERROR;
	}
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":o:s:rqh", longopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			if (!optarg[0]) {
				lb_cli_error("train: -o: the output folder is empty (allowed: a folder "
					     "name, e.g. -o runs)");
				status = LB_EXIT_USAGE;
				goto out;
			}
			out_dir = optarg;
			break;
		case 's':
			sets[n_sets++] = optarg;
			break;
		case 'r':
			resume = 1;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			free(sets);
			return LB_EXIT_OK;
		case OPT_PRINT:
			print_config = 1;
			break;
		case OPT_CRASH: {
			char *end;
			crash_at = strtol(optarg, &end, 10);
			if (*end || crash_at < 1) {
				lb_cli_error("--debug-crash-at-step: '%s' is not a step number >= 1",
					     optarg);
				status = LB_EXIT_USAGE;
				goto out;
			}
			break;
		}
		case OPT_SIGNAL: {
			char *end;
			signal_at = strtol(optarg, &end, 10);
			if (*end || signal_at < 1) {
				lb_cli_error("--debug-signal-at-step: '%s' is not a step number >= 1",
					     optarg);
				status = LB_EXIT_USAGE;
				goto out;
			}
			break;
		}
		case OPT_SIGNAL_CKPT:
			signal_in_checkpoint = 1;
			break;
		case OPT_STAGE_INIT: {
			const char *colon = strrchr(optarg, ':');
			const char *snap = colon ? colon + 1 : "";
			char *end = NULL;
			long k = 0;
			/* RUN.h5:step:K */
			if (colon && colon - optarg >= 5 && !strncmp(colon - 5, ":step", 5)) {
				errno = 0;
				k = strtol(snap, &end, 10);
				if (errno || end == snap || *end || k < 1)
					end = NULL;
				snap = "step";
				colon -= 5;
			}
			if (!colon || colon == optarg ||
			    (strcmp(snap, "init") && strcmp(snap, "final") && !(end && k >= 1)) ||
			    (size_t)(colon - optarg) >= sizeof init_path) {
				lb_cli_error("--stage-init: '%s' is not a snapshot (allowed: RUN.h5:init, "
					     "RUN.h5:final, RUN.h5:step:K with K >= 1)",
					     colon ? colon + 1 : optarg);
				status = LB_EXIT_USAGE;
				goto out;
			}
			snprintf(init_path, sizeof init_path, "%.*s", (int)(colon - optarg), optarg);
			init_from = init_path;
			init_snapshot = !strcmp(snap, "final") ? LB_SNAPSHOT_FINAL
					: !strcmp(snap, "step") ? LB_SNAPSHOT_STEP : LB_SNAPSHOT_INIT;
			init_step = k;
			break;
		}
		case OPT_STAGE_BITS:
			bits_from = optarg;
			break;
		case ':':
			lb_cli_error("train: option '%s' needs a value (see lowbit train --help)",
				     argv[optind - 1]);
			status = LB_EXIT_USAGE;
			goto out;
		default:
			lb_cli_error("train: unknown option '%s' (see lowbit train --help)",
				     argv[optind - 1]);
			status = LB_EXIT_USAGE;
			goto out;
		}
	}
	if (optind >= argc) {
		lb_cli_error("train: no config file given\n\n%s", usage);
		status = LB_EXIT_USAGE;
		goto out;
	}
	if (optind + 1 < argc) {
		lb_cli_error("train: unexpected argument '%s' (one config file only)",
			     argv[optind + 1]);
		status = LB_EXIT_USAGE;
		goto out;
	}
	config_path = argv[optind];
	if (lb_config_load(config_path, sets, n_sets, &cfg)) {
		lb_cli_error("%s", lb_error_message());
		goto out;
	}
	if (print_config) {
		char *yaml = NULL;
		if (lb_config_dump(cfg, &yaml)) {
			lb_cli_error("%s", lb_error_message());
			goto out;
		}
		fputs(yaml, stdout);
		free(yaml);
		status = LB_EXIT_OK;
		goto out;
	}
	if (quiet)
		lb_log_set_level(LB_LOG_WARN);
	struct lb_train_opts opts = {
		.out_dir = out_dir, .resume = resume, .crash_at_step = crash_at, .quiet = quiet,
		.signal_at_step = signal_at, .signal_in_checkpoint = signal_in_checkpoint,
		.init_from = init_from, .init_snapshot = init_snapshot, .init_step = init_step,
		.bits_from = bits_from};
	struct lb_train_result res;
	int rc = lb_train_run(cfg, &opts, MPI_COMM_WORLD, &res);
	if (rc == LB_ERR_SIGNAL) {
		/* not an error: the scheduler asked us to leave and the state is saved */
		int rank = 0;
		MPI_Comm_rank(MPI_COMM_WORLD, &rank);
		if (rank == 0)
			fprintf(stderr, "lowbit: %s; run the same command with --resume to continue "
				"(exit %d)\n", lb_error_message(), LB_EXIT_TEMPFAIL);
		status = LB_EXIT_TEMPFAIL;
		goto out;
	}
	if (rc) {
		lb_cli_error("%s", lb_error_message());
		goto out;
	}
	int rank = 0;
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	if (rank == 0) {
		if (res.already_done)
			lb_log(LB_LOG_WARN, "'%s' is already complete; nothing to do", res.path);
		else
			fprintf(stderr, "lowbit: done: test accuracy %.2f%%; run file %s\n",
				100.0 * res.test_acc, res.path);
		printf("%s\n", res.path);
	}
	status = LB_EXIT_OK;
out:
	lb_config_free(cfg);
	free(sets);
	return status;
}
