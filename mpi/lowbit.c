/* SPDX-License-Identifier: MIT
 * lowbit: one binary, git-style subcommands (like IOR's ior-main.c, main is
 * a few lines: set up MPI, dispatch, tear down). */
#include "lbconfig.h"

#include <hdf5.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "log.h"

static int world_rank;

void lb_cli_error(const char *fmt, ...)
{
	va_list ap;
	if (world_rank != 0)
		return;
	va_start(ap, fmt);
	fputs("lowbit: error: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static const char usage[] =
	"usage: lowbit <command> [options]\n"
	"\n"
	"commands:\n"
	"  train CONFIG.yaml   train one model (data-parallel under mpirun)\n"
	"  validate SPEC.yaml  check a sweep spec: every error with file:line:column\n"
	"  plan SPEC.yaml      expand a sweep spec and list its trials\n"
	"  sweep SPEC.yaml -o DIR   run a sweep (under mpirun: trials on groups of ranks)\n"
	"  trial SPEC.yaml -o DIR --index N   one trial of a sweep (job arrays)\n"
	"  status DIR          trials of a sweep folder by state\n"
	"  index DIR           rebuild DIR/sweep.h5 from the trial files\n"
	"  ptq RUN.h5          post-training quantization grid of a finished run\n"
	"  report DIR|RUN.h5   tables and figures of a sweep folder or a run file\n"
	"  seal RUN.h5...      stamp the integrity seal of run files changed on purpose\n"
	"  version             print versions\n"
	"  help                this text\n"
	"\n"
	"`lowbit <command> --help` describes a command.\n";

static int cmd_version(void)
{
	printf("lowbit %s (%s)\n", PACKAGE_VERSION, LB_GIT_REV);
	return LB_EXIT_OK;
}

int main(int argc, char **argv)
{
	int status, world = 1;
	if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "-h")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? LB_EXIT_USAGE : LB_EXIT_OK;
	}
	if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version"))
		return cmd_version();
	/* No libhdf5 clean-up at exit: after a write that failed inside libhdf5
	 * (a full disk: H5Fclose fails) that clean-up crashes, turning a clean
	 * error into a segfault. Every file is closed explicitly before exit. */
	H5dont_atexit();
	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
	MPI_Comm_size(MPI_COMM_WORLD, &world);
	lb_log_set_rank(world > 1 ? world_rank : -1, world);
	if (!strcmp(argv[1], "train")) {
		status = lb_cmd_train(argc - 1, argv + 1);
	} else if (!strcmp(argv[1], "validate")) {
		status = lb_cmd_validate(argc - 1, argv + 1);
	} else if (!strcmp(argv[1], "plan")) {
		status = lb_cmd_plan(argc - 1, argv + 1);
	} else if (!strcmp(argv[1], "sweep")) {
		status = lb_cmd_sweep(argc - 1, argv + 1);
	} else if (!strcmp(argv[1], "trial")) {
		status = lb_cmd_trial(argc - 1, argv + 1);
	} else if (!strcmp(argv[1], "status")) {
		status = lb_cmd_status(argc - 1, argv + 1);
	} else if (!strcmp(argv[1], "index")) {
		status = lb_cmd_index(argc - 1, argv + 1);
	} else if (!strcmp(argv[1], "ptq")) {
		status = lb_cmd_ptq(argc - 1, argv + 1);
	} else if (!strcmp(argv[1], "report")) {
		status = lb_cmd_report(argc - 1, argv + 1);
	} else if (!strcmp(argv[1], "seal")) {
		status = lb_cmd_seal(argc - 1, argv + 1);
	} else {
		lb_cli_error("'%s' is not a lowbit command (commands: train, validate, plan, "
			     "sweep, trial, status, index, ptq, report, seal, version, help)",
			     argv[1]);
		status = LB_EXIT_USAGE;
	}
	MPI_Finalize();
	return status;
}
