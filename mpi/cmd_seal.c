/* SPDX-License-Identifier: MIT
 * `lowbit seal FILE...`: stamp the integrity seal (analysis/runfile.h) of run
 * files that were changed on purpose after lowbit wrote them (annotated with
 * h5py), and upgrade unsealed files of run-file format 1 to format 2. Each
 * file must still read as a lowbit file. It is read without the seal check,
 * so first in a child process: libhdf5 can crash on a damaged file, and then
 * only the child dies and the file is refused. */
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "analysis/runfile.h"
#include "cli.h"
#include "err.h"

static const char usage[] =
	"usage: lowbit seal FILE.h5...\n"
	"\n"
	"Run files carry an integrity seal that lowbit checks before it opens them, so\n"
	"a damaged file is refused instead of reaching libhdf5. A file you changed on\n"
	"purpose (e.g. attributes added with h5py) fails that check; `lowbit seal`\n"
	"stamps its seal again, in place. A file from a lowbit before run-file format\n"
	"2 has no seal; it is rewritten in the current format. Files whose seal is\n"
	"intact are left alone. Seal only files you trust: they are read without the\n"
	"check.\n"
	"\n"
	"  -h, --help   this text\n";

#define SEAL_READ_SECONDS 60

/* Read path without the seal check in a child process: LB_OK when it reads
 * as a lowbit file, else the error (the child's message, or that libhdf5
 * crashed on it). */
static int try_read(const char *path)
{
	int fd[2], status = 0;
	char msg[1024];
	ssize_t n = 0;
	pid_t pid;

	fflush(NULL);
	if (pipe(fd) < 0 || (pid = fork()) < 0)
		return lb_error(LB_ERR_IO, "cannot read '%s' in a child process", path);
	if (pid == 0) {
		struct lb_runfile *rf = NULL;
		static const int fatal[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};
		close(fd[0]);
		/* die quietly (not through Open MPI's backtrace printer; libc's
		 * own complaints go nowhere), and not forever: libhdf5 can loop on
		 * a damaged file */
		for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++)
			signal(fatal[i], SIG_DFL);
		if (!freopen("/dev/null", "w", stderr))
			_exit(1);
		alarm(SEAL_READ_SECONDS);
		setenv("LOWBIT_UNCHECKED_RUNFILES", "1", 1);
		int rc = lb_runfile_read_kind(path, NULL, &rf);
		if (rc) {
			const char *m = lb_error_message();
			if (write(fd[1], m, strlen(m)) < 0)
				rc = 1;
		}
		_exit(rc ? 1 : 0);
	}
	close(fd[1]);
	for (ssize_t r; (r = read(fd[0], msg + n, sizeof msg - 1 - (size_t)n)) > 0;)
		n += r;
	msg[n > 0 ? n : 0] = '\0';
	close(fd[0]);
	while (waitpid(pid, &status, 0) < 0)
		;
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
		return lb_error(LB_ERR_HDF5,
				"'%s': libhdf5 did not finish reading it in %d s: the file is "
				"damaged; not sealed",
				path, SEAL_READ_SECONDS);
	if (WIFSIGNALED(status))
		return lb_error(LB_ERR_HDF5,
				"'%s': libhdf5 crashed reading it (signal %d): the file is damaged; "
				"not sealed",
				path, WTERMSIG(status));
	/* no message: the child died inside libhdf5 without a signal of its
	 * own, e.g. under AddressSanitizer, which reports and exits 1 */
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return n > 0 ? lb_error(LB_ERR_HDF5, "%s", msg)
			     : lb_error(LB_ERR_HDF5,
					"'%s': libhdf5 crashed reading it (the reading process died, "
					"exit %d): the file is damaged; not sealed",
					path, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return LB_OK;
}

static int seal_one(const char *path)
{
	struct lb_runfile *rf = NULL;
	int err = lb_runfile_check_seal(path);

	if (err == LB_OK) {
		printf("%s: seal intact, unchanged\n", path);
		return LB_OK;
	}
	if (err != LB_ERR_HDF5) /* missing, unreadable */
		return err;
	if ((err = try_read(path)))
		return err;
	setenv("LOWBIT_UNCHECKED_RUNFILES", "1", 1);
	err = lb_runfile_read_kind(path, NULL, &rf);
	unsetenv("LOWBIT_UNCHECKED_RUNFILES");
	if (err)
		return err;
	if (lb_runfile_has_userblock(path)) {
		err = lb_runfile_seal(path);
		if (!err)
			printf("%s: sealed\n", path);
	} else {
		err = lb_runfile_write(rf, path);
		if (!err)
			printf("%s: rewritten in run-file format %d, sealed\n", path, LB_RUNFILE_FORMAT);
	}
	lb_runfile_free(rf);
	return err;
}

int lb_cmd_seal(int argc, char **argv)
{
	int rank = 0, status = LB_EXIT_OK, given = 0;

	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			if (rank == 0)
				fputs(usage, stdout);
			return LB_EXIT_OK;
		}
		if (argv[i][0] == '-' && argv[i][1]) {
			lb_cli_error("seal: unknown option '%s' (see lowbit seal --help)", argv[i]);
			return LB_EXIT_USAGE;
		}
		given++;
	}
	if (!given) {
		lb_cli_error("seal: name at least one run file (see lowbit seal --help)");
		return LB_EXIT_USAGE;
	}
	if (rank != 0)
		return LB_EXIT_OK;
	for (int i = 1; i < argc; i++)
		if (seal_one(argv[i])) {
			lb_cli_error("seal: %s", lb_error_message());
			status = LB_EXIT_ERROR;
		}
	return status;
}
