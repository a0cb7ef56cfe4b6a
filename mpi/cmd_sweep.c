/* SPDX-License-Identifier: MIT
 * `lowbit sweep`, `lowbit trial`, `lowbit status` and `lowbit index`: run a
 * sweep (rank 0 coordinates, groups of ranks train, mpi/coordinator.h), run
 * one trial of it (scheduler job arrays), and read or rebuild its folder
 * (sweeps/sweepdir.h, docs/sweeps.md). Every input is checked before any
 * trial starts; a refused folder is left as it was. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>

#include "cli.h"
#include "comm.h"
#include "coordinator.h"
#include "err.h"
#include "signals.h"
#include "log.h"
#include "trial.h"
#include "util.h"

/* ---- options shared by sweep and trial ---- */

struct run_args {
	const char *spec, *dir;
	int retry_failed, force_new_plan, quiet, fail_fast;
	long index;          /* trial: -1 = from the environment */
	long max_trials;     /* sweep: 0 = all */
	int dummy;
	double dummy_sleep_ms;
	long dummy_fail, dummy_diverge;
};

static const char sweep_usage[] =
	"usage: [mpirun -n 1+K*N] lowbit sweep SPEC.yaml -o DIR [options]\n"
	"\n"
	"Run every trial of a sweep spec and record it in DIR (docs/sweeps.md).\n"
	"Under mpirun rank 0 hands trials to groups of K ranks\n"
	"(resources.ranks_per_trial) as they become free; on one process the trials\n"
	"run one after another. Running the same command again on the same DIR\n"
	"resumes: done trials are kept, started or preempted ones continue from\n"
	"their checkpoint, failed ones are kept unless --retry-failed.\n"
	"\n"
	"  -o, --output DIR        the sweep folder (required; created if missing)\n"
	"      --retry-failed      run failed and diverged trials again, from scratch\n"
	"      --force-new-plan    DIR holds a different plan of this sweep (the spec\n"
	"                          changed): adopt the new plan; trials with the same id\n"
	"                          are the same config and are kept\n"
	"      --max-trials N      start at most N trials this time (exit 75 if some\n"
	"                          are left)\n"
	"      --fail-fast         the first trial that fails or diverges stops the\n"
	"                          sweep: no new trials start, running ones finish\n"
	"                          (exit 1); run again to go on\n"
	"  -q, --quiet             only warnings, errors and the final lines\n"
	"  -h, --help              this text\n"
	"\n"
	"Exit status: 0 every trial done; 1 an error, or some trial failed or\n"
	"diverged (lowbit status DIR --failed lists them); 75 stopped early (signal,\n"
	"--max-trials, preempted trials): run the same command again to continue.\n";

static const char trial_usage[] =
	"usage: [mpirun -n K] lowbit trial SPEC.yaml -o DIR [--index N] [options]\n"
	"\n"
	"Run trial N of a sweep (0-based, as `lowbit plan` numbers them) into DIR, for\n"
	"scheduler job arrays: without --index, N comes from SLURM_ARRAY_TASK_ID or\n"
	"PBS_ARRAY_INDEX. The trial resumes its checkpoint if it was started; a done\n"
	"trial is not run again. `lowbit index DIR` rebuilds DIR/sweep.h5 afterwards.\n"
	"\n"
	"  -o, --output DIR        the sweep folder (required)\n"
	"  -i, --index N           the trial to run\n"
	"      --retry-failed      run it again, from scratch, if it failed or diverged\n"
	"      --force-new-plan    as for lowbit sweep\n"
	"  -q, --quiet             only warnings, errors and the final line\n"
	"  -h, --help              this text\n"
	"\n"
	"Exit status: 0 done; 1 error, failed or diverged; 75 preempted.\n";

static int parse_long(const char *s, long lo, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo)
		return -1;
	*out = v;
	return 0;
}

/* Returns -1 to go on, or an exit status. */
static int parse_run_args(int argc, char **argv, const char *cmd, const char *usage,
			  struct run_args *a)
{
	enum { OPT_RETRY = 256, OPT_FORCE, OPT_MAX, OPT_DUMMY, OPT_DFAIL, OPT_DDIV, OPT_FFAST };
	static const struct option longopts[] = {
		{"output", required_argument, NULL, 'o'},
		{"index", required_argument, NULL, 'i'},
		{"retry-failed", no_argument, NULL, OPT_RETRY},
		{"force-new-plan", no_argument, NULL, OPT_FORCE},
		{"max-trials", required_argument, NULL, OPT_MAX},
		{"fail-fast", no_argument, NULL, OPT_FFAST},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{"dummy-sleep-ms", required_argument, NULL, OPT_DUMMY},
		{"dummy-fail", required_argument, NULL, OPT_DFAIL},
		{"dummy-diverge", required_argument, NULL, OPT_DDIV},
		{NULL, 0, NULL, 0},
	};
	int c, is_trial = !strcmp(cmd, "trial");
	memset(a, 0, sizeof *a);
	a->index = -1;
	a->dummy_fail = a->dummy_diverge = -1;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, is_trial ? ":o:i:qh" : ":o:qh", longopts, NULL)) != -1) {
		const char *opt = argv[optind - 1];
		switch (c) {
		case 'o':
			a->dir = optarg;
			break;
		case 'i':
			if (!is_trial)
				goto unknown;
			if (parse_long(optarg, 0, &a->index)) {
				lb_cli_error("trial: --index: '%s' is not a trial index (allowed: 0, 1, "
					     "2, ...)", optarg);
				return LB_EXIT_USAGE;
			}
			break;
		case OPT_RETRY:
			a->retry_failed = 1;
			break;
		case OPT_FORCE:
			a->force_new_plan = 1;
			break;
		case OPT_MAX:
			if (is_trial)
				goto unknown;
			if (parse_long(optarg, 1, &a->max_trials)) {
				lb_cli_error("sweep: --max-trials: '%s' is not a number >= 1", optarg);
				return LB_EXIT_USAGE;
			}
			break;
		case OPT_FFAST:
			if (is_trial)
				goto unknown;
			a->fail_fast = 1;
			break;
		case 'q':
			a->quiet = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			return LB_EXIT_OK;
		case OPT_DUMMY: {
			char *end;
			a->dummy = 1;
			a->dummy_sleep_ms = strtod(optarg, &end);
			if (*end || end == optarg || !(a->dummy_sleep_ms >= 0)) {
				lb_cli_error("%s: --dummy-sleep-ms: '%s' is not a duration >= 0", cmd,
					     optarg);
				return LB_EXIT_USAGE;
			}
			break;
		}
		case OPT_DFAIL:
		case OPT_DDIV:
			if (parse_long(optarg, 0, c == OPT_DFAIL ? &a->dummy_fail : &a->dummy_diverge)) {
				lb_cli_error("%s: %s: '%s' is not a trial index", cmd, opt, optarg);
				return LB_EXIT_USAGE;
			}
			break;
		case ':':
			lb_cli_error("%s: option '%s' needs a value (see lowbit %s --help)", cmd, opt,
				     cmd);
			return LB_EXIT_USAGE;
		default:
		unknown:
			lb_cli_error("%s: unknown option '%s' (see lowbit %s --help)", cmd, opt, cmd);
			return LB_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		lb_cli_error("%s: no spec file given\n\n%s", cmd, usage);
		return LB_EXIT_USAGE;
	}
	if (optind + 1 < argc) {
		lb_cli_error("%s: unexpected argument '%s' (one spec file only)", cmd, argv[optind + 1]);
		return LB_EXIT_USAGE;
	}
	a->spec = argv[optind];
	if (!a->dir) {
		lb_cli_error("%s: no output folder given (-o DIR)", cmd);
		return LB_EXIT_USAGE;
	}
	if ((a->dummy_fail >= 0 || a->dummy_diverge >= 0) && !a->dummy) {
		lb_cli_error("%s: --dummy-fail and --dummy-diverge need --dummy-sleep-ms", cmd);
		return LB_EXIT_USAGE;
	}
	return -1;
}

/* Print a multi-line library message, one error line each. */
static void print_errors(const char *msg)
{
	const char *p = msg;
	while (*p) {
		size_t n = strcspn(p, "\n");
		lb_cli_error("%.*s", (int)n, p);
		p += n;
		if (*p)
			p++;
	}
}

/* ---- the folder ---- */

static int folder_empty(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int empty = 1;
	if (!d)
		return 0;
	while (empty && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			empty = 0;
	closedir(d);
	return empty;
}

/* Refuse a folder that holds something else, before touching it. */
static int check_dir(const char *dir, const struct lb_plan_rec *rec, int force)
{
	struct stat st;
	struct lb_plan_rec *old = NULL;
	if (stat(dir, &st) < 0)
		return errno == ENOENT ? LB_OK
				       : lb_error(LB_ERR_IO, "cannot use output folder '%s': %s", dir,
						  strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return lb_error(LB_ERR_IO, "output folder '%s' exists and is not a folder", dir);
	char plan[4200];
	snprintf(plan, sizeof plan, "%s/plan.tsv", dir);
	if (stat(plan, &st) < 0 && errno == ENOENT) {
		if (folder_empty(dir))
			return LB_OK;
		return lb_error(LB_ERR_STATE,
				"output folder '%s' is not empty and holds no lowbit sweep (no "
				"plan.tsv); choose an empty or new folder (-o)",
				dir);
	}
	int rc = lb_plan_rec_read(dir, &old);
	if (rc)
		return lb_error_prefix(rc, "output folder '%s'", dir);
	if (strcmp(old->name, rec->name))
		rc = lb_error(LB_ERR_STATE,
			      "output folder '%s' holds sweep '%s', not '%s'; choose another "
			      "output folder (-o)",
			      dir, old->name, rec->name);
	else if (strcmp(old->hash, rec->hash) && !force)
		rc = lb_error(LB_ERR_STATE,
			      "output folder '%s' holds another plan of sweep '%s' (%u trials, plan "
			      "hash %s; this spec: %u trials, %s): the spec changed. Pass "
			      "--force-new-plan to adopt the new plan (trials with the same id are "
			      "kept), or choose another output folder (-o)",
			      dir, rec->name, old->n_trials, old->hash, rec->n_trials, rec->hash);
	lb_plan_rec_free(old);
	return rc;
}

/* Create the folder and record the plan (before any trial runs). */
static int prepare_dir(const char *dir, const struct lb_plan_rec *rec, const struct lb_sweep *sw)
{
	char path[4096];
	if (snprintf(path, sizeof path, "%s/trials", dir) >= (int)sizeof path)
		return lb_error(LB_ERR_IO, "output folder path too long: '%s'", dir);
	if (lb_mkdir_p(path) != 0)
		return lb_error(LB_ERR_IO, "cannot create output folder '%s': %s", path,
				strerror(errno));
	snprintf(path, sizeof path, "%s/spec.yaml", dir);
	int rc = lb_sweepdir_write_text(path, sw->text);
	if (!rc && sw->spec->base_file) {
		snprintf(path, sizeof path, "%s/base.yaml", dir);
		rc = lb_sweepdir_write_text(path, sw->base_yaml);
	}
	return rc ? rc : lb_plan_rec_write(rec, dir);
}

/* ---- loading, shared by sweep and trial (every rank) ---- */

struct loaded {
	struct lb_sweep *sw;
	struct lb_sweep_plan *plan;
	struct lb_plan_rec *rec;
};

static void loaded_release(struct loaded *l)
{
	lb_plan_rec_free(l->rec);
	lb_sweep_plan_free(l->plan);
	lb_sweep_free(l->sw);
	memset(l, 0, sizeof *l);
}

/* Load, expand and check the spec on every rank; prints the errors. */
static int load_all(const struct run_args *a, int group_ranks, struct loaded *l)
{
	int rc;
	memset(l, 0, sizeof *l);
	rc = lb_sweep_load(a->spec, &l->sw);
	rc = rc ? rc : lb_sweep_expand(l->sw, &l->plan);
	rc = rc ? rc : lb_plan_rec_from_plan(l->plan, &l->rec);
	rc = rc ? rc : lb_sweep_check_runnable(l->plan);
	if (!rc && !a->dummy)
		rc = lb_sweep_check_ranks(l->plan, group_ranks);
	rc = lb_comm_agree(MPI_COMM_WORLD, rc);
	if (rc) {
		print_errors(lb_error_message());
		loaded_release(l);
	}
	return rc;
}

/* ---- lowbit sweep ---- */

static volatile sig_atomic_t stop_signal;
static volatile int stop_flag;

static void on_stop(int sig)
{
	stop_signal = sig;
	stop_flag = 1;
	/* a worker between trials: the next trial's trainer sees it and stops */
	lb_signal_note(sig);
}

struct sweep_ctx {
	const struct loaded *l;
	unsigned started, finished, n_todo;
	int quiet, fail_fast;
	int first_bad; /* --fail-fast: the trial that stopped the sweep, or -1 */
};

static void on_event(int index, enum lb_trial_state state, const char *msg, int group, void *ctx)
{
	struct sweep_ctx *c = ctx;
	const struct lb_plan_rec *p = c->l->rec;
	if (state == LB_TRIAL_RUNNING) {
		c->started++;
		if (!c->quiet)
			lb_log(LB_LOG_INFO, "trial %d (%s) started on group %d [%u/%u]", index,
			       p->trials[index].id, group, c->started, c->n_todo);
		return;
	}
	c->finished++;
	if (state == LB_TRIAL_DONE) {
		if (!c->quiet)
			lb_log(LB_LOG_INFO, "trial %d (%s) done: %s [%u/%u finished]", index,
			       p->trials[index].id, msg, c->finished, c->n_todo);
	} else {
		lb_log(LB_LOG_WARN, "trial %d (%s) %s: %s [%u/%u finished]", index, p->trials[index].id,
		       lb_trial_state_name(state), msg, c->finished, c->n_todo);
		/* The coordinator reads stop_flag before each hand-out. */
		if (c->fail_fast && c->first_bad < 0 &&
		    (state == LB_TRIAL_FAILED || state == LB_TRIAL_DIVERGED)) {
			c->first_bad = index;
			stop_flag = 1;
		}
	}
}

/* Judge every trial from its files and choose what to run (rank 0). */
static int choose_todo(const struct run_args *a, const struct loaded *l, int *todo, int *n_todo,
		       unsigned counts[LB_TRIAL__COUNT])
{
	const struct lb_plan_rec *p = l->rec;
	int n = 0, rc = LB_OK;
	memset(counts, 0, LB_TRIAL__COUNT * sizeof counts[0]);
	for (unsigned i = 0; i < p->n_trials && !rc; i++) {
		struct lb_trial_result r;
		if ((rc = lb_sweepdir_trial_result(a->dir, p, i, &r)))
			break;
		counts[r.state]++;
		switch (r.state) {
		case LB_TRIAL_DONE:
			break;
		case LB_TRIAL_FAILED:
		case LB_TRIAL_DIVERGED:
			if (a->retry_failed) {
				rc = lb_sweepdir_forget(a->dir, p, i);
				todo[n++] = (int)i;
			}
			break;
		default: /* pending, running (resume), preempted (resume) */
			todo[n++] = (int)i;
			break;
		}
		lb_trial_result_release(&r);
	}
	*n_todo = n;
	return rc;
}

static int sweep_outcome(const struct run_args *a, const struct loaded *l, int stopped_early)
{
	const struct lb_plan_rec *p = l->rec;
	unsigned counts[LB_TRIAL__COUNT] = {0};
	struct lb_trial_result *res = calloc(p->n_trials + 1, sizeof *res);
	int rc = res ? LB_OK : lb_error(LB_ERR_OOM, "out of memory");
	for (unsigned i = 0; i < p->n_trials && !rc; i++) {
		rc = lb_sweepdir_trial_result(a->dir, p, i, &res[i]);
		if (!rc)
			counts[res[i].state]++;
	}
	rc = rc ? rc : lb_sweepdir_write_index(a->dir, p, res);
	for (unsigned i = 0; res && i < p->n_trials; i++)
		lb_trial_result_release(&res[i]);
	free(res);
	if (rc) {
		lb_cli_error("%s", lb_error_message());
		return LB_EXIT_ERROR;
	}
	char line[512];
	size_t len = (size_t)snprintf(line, sizeof line, "sweep %s: %u trials:", p->name,
				      p->n_trials);
	for (int s = 0; s < LB_TRIAL__COUNT; s++)
		if (counts[s])
			len += (size_t)snprintf(line + len, sizeof line - len, " %u %s,", counts[s],
						lb_trial_state_name((enum lb_trial_state)s));
	line[len - 1] = '\0';
	fprintf(stderr, "lowbit: %s\n", line);
	fprintf(stderr, "lowbit: results: %s/sweep.h5 (docs/sweeps.md)\n", a->dir);
	if (counts[LB_TRIAL_FAILED] + counts[LB_TRIAL_DIVERGED])
		fprintf(stderr, "lowbit: see lowbit status %s; --retry-failed runs them again\n",
			a->dir);
	if (counts[LB_TRIAL_DONE] == p->n_trials)
		return LB_EXIT_OK;
	if (counts[LB_TRIAL_FAILED] + counts[LB_TRIAL_DIVERGED] &&
	    counts[LB_TRIAL_DONE] + counts[LB_TRIAL_FAILED] + counts[LB_TRIAL_DIVERGED] ==
		    p->n_trials)
		return LB_EXIT_ERROR;
	(void)stopped_early;
	return LB_EXIT_TEMPFAIL;
}

int lb_cmd_sweep(int argc, char **argv)
{
	struct run_args a;
	struct loaded l;
	int rank, world, status = parse_run_args(argc, argv, "sweep", sweep_usage, &a);
	struct sigaction sa, old_term, old_usr1;
	if (status >= 0)
		return status;
	/* From the start: a stop signal while the spec is loaded and the folder
	 * judged must end in 75 like one during the trials, not kill the rank
	 * (the error returns below leave the handler to the exiting process). */
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop;
	sa.sa_flags = SA_RESTART; /* as core/signals.h: interrupted I/O restarts */
	sigaction(SIGTERM, &sa, &old_term);
	sigaction(SIGUSR1, &sa, &old_usr1);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &world);
	if (a.quiet)
		lb_log_set_level(LB_LOG_WARN);
	/* the group size: on one process, trials run there one by one */
	if (load_all(&a, 1, &l))
		return LB_EXIT_ERROR;
	int k = (int)l.rec->ranks_per_trial, rc = LB_OK;
	if (world > 1)
		rc = lb_coordinator_check(world, k);
	if (!rc && world > 1 && !a.dummy)
		rc = lb_sweep_check_ranks(l.plan, k);
	if (rc) {
		print_errors(lb_error_message());
		loaded_release(&l);
		return LB_EXIT_ERROR;
	}
	if (world == 1 && k > 1)
		lb_log(LB_LOG_WARN,
		       "one process: trials run one after another on 1 rank each "
		       "(resources.ranks_per_trial is %d; use mpirun -n 1+%d*N to run them in "
		       "groups)",
		       k, k);

	/* rank 0 checks and prepares the folder and chooses the trials to run */
	int n = (int)l.rec->n_trials, n_todo = 0;
	int *todo = malloc((size_t)(n + 1) * sizeof *todo);
	unsigned counts[LB_TRIAL__COUNT];
	if (!todo)
		rc = lb_error(LB_ERR_OOM, "out of memory");
	if (!rc && rank == 0) {
		rc = check_dir(a.dir, l.rec, a.force_new_plan);
		rc = rc ? rc : prepare_dir(a.dir, l.rec, l.sw);
		rc = rc ? rc : choose_todo(&a, &l, todo, &n_todo, counts);
		rc = rc ? rc : lb_sweepdir_write_index(a.dir, l.rec, NULL);
	}
	rc = lb_comm_agree(MPI_COMM_WORLD, rc);
	if (rc) {
		print_errors(lb_error_message());
		free(todo);
		loaded_release(&l);
		return LB_EXIT_ERROR;
	}
	MPI_Bcast(&n_todo, 1, MPI_INT, 0, MPI_COMM_WORLD);
	MPI_Bcast(todo, n_todo, MPI_INT, 0, MPI_COMM_WORLD);
	int limited = a.max_trials && n_todo > a.max_trials;
	if (limited)
		n_todo = (int)a.max_trials;
	if (rank == 0) {
		unsigned done = counts[LB_TRIAL_DONE], kept = 0;
		if (!a.retry_failed)
			kept = counts[LB_TRIAL_FAILED] + counts[LB_TRIAL_DIVERGED];
		lb_log(LB_LOG_INFO,
		       "sweep %s: %u trials in %s: %u done, %u failed kept, %d to run%s on %d "
		       "group%s of %d rank%s",
		       l.rec->name, l.rec->n_trials, a.dir, done, kept, n_todo,
		       limited ? " (--max-trials)" : "", world > 1 ? (world - 1) / k : 1,
		       world > 1 && (world - 1) / k != 1 ? "s" : "", world > 1 ? k : 1,
		       world > 1 && k != 1 ? "s" : "");
	}

	struct lb_sweep_exec x = {.plan = l.plan, .rec = l.rec, .dir = a.dir, .dummy = a.dummy};
	x.dummy_cfg.sleep_s = a.dummy_sleep_ms / 1000.0;
	x.dummy_cfg.fail_index = (int)a.dummy_fail;
	x.dummy_cfg.diverge_index = (int)a.dummy_diverge;
	struct sweep_ctx c = {.l = &l, .n_todo = (unsigned)n_todo, .quiet = a.quiet,
			      .fail_fast = a.fail_fast, .first_bad = -1};
	if (world == 1) {
		for (int i = 0; i < n_todo && !stop_flag; i++) {
			char msg[512];
			on_event(todo[i], LB_TRIAL_RUNNING, "", 0, &c);
			enum lb_trial_state s = lb_sweep_trial(todo[i], MPI_COMM_WORLD, &x, msg, sizeof msg);
			on_event(todo[i], s, msg, -1, &c);
		}
	} else {
		struct lb_coord_opts o = {.ranks_per_trial = k, .n_todo = n_todo, .todo = todo,
					  .run = lb_sweep_trial, .ctx = &x, .event = on_event,
					  .event_ctx = &c, .stop = &stop_flag};
		rc = lb_coordinator_run(MPI_COMM_WORLD, &o, NULL, NULL);
	}
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGUSR1, &old_usr1, NULL);
	if (rc) {
		print_errors(lb_error_message());
		status = LB_EXIT_ERROR;
	} else if (rank == 0) {
		if (stop_signal)
			lb_log(LB_LOG_WARN, "stopped by signal %d: no new trials were started",
			       (int)stop_signal);
		else if (c.first_bad >= 0)
			lb_log(LB_LOG_WARN,
			       "--fail-fast: trial %d (%s) did not succeed, so no new trials were "
			       "started; the same command goes on (--retry-failed runs it again)",
			       c.first_bad, l.rec->trials[c.first_bad].id);
		status = sweep_outcome(&a, &l, stop_flag || limited);
		if (c.first_bad >= 0 && !stop_signal)
			status = LB_EXIT_ERROR;
	} else {
		status = LB_EXIT_OK;
	}
	MPI_Bcast(&status, 1, MPI_INT, 0, MPI_COMM_WORLD);
	free(todo);
	loaded_release(&l);
	return status;
}

/* ---- lowbit trial ---- */

/* The trial index from the scheduler's environment; -2 when absent. */
static long env_index(const char **from)
{
	static const char *const names[] = {"SLURM_ARRAY_TASK_ID", "PBS_ARRAY_INDEX", "PBS_ARRAYID"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		const char *v = getenv(names[i]);
		long x;
		if (!v || !*v)
			continue;
		*from = names[i];
		return parse_long(v, 0, &x) ? -1 : x;
	}
	return -2;
}

int lb_cmd_trial(int argc, char **argv)
{
	struct run_args a;
	struct loaded l;
	const char *from = "--index";
	int rank, world, status = parse_run_args(argc, argv, "trial", trial_usage, &a);
	if (status >= 0)
		return status;
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &world);
	if (a.quiet)
		lb_log_set_level(LB_LOG_WARN);
	if (a.index < 0) {
		a.index = env_index(&from);
		if (a.index == -2) {
			lb_cli_error("trial: no trial index: give --index N, or run it as a job array "
				     "task (SLURM_ARRAY_TASK_ID or PBS_ARRAY_INDEX)");
			return LB_EXIT_USAGE;
		}
		if (a.index < 0) {
			lb_cli_error("trial: %s is '%s', not a trial index (allowed: 0, 1, 2, ...)",
				     from, getenv(from));
			return LB_EXIT_USAGE;
		}
	}
	if (load_all(&a, world, &l))
		return LB_EXIT_ERROR;
	if ((unsigned long)a.index >= l.rec->n_trials) {
		lb_cli_error("trial: %s %ld is not a trial of sweep '%s' (allowed: 0 .. %u; lowbit "
			     "plan %s lists them)",
			     from, a.index, l.rec->name, l.rec->n_trials - 1, a.spec);
		loaded_release(&l);
		return LB_EXIT_USAGE;
	}
	unsigned i = (unsigned)a.index;
	int rc = LB_OK, state = LB_TRIAL_PENDING;
	if (rank == 0) {
		struct lb_trial_result r;
		rc = check_dir(a.dir, l.rec, a.force_new_plan);
		rc = rc ? rc : prepare_dir(a.dir, l.rec, l.sw);
		rc = rc ? rc : lb_sweepdir_trial_result(a.dir, l.rec, i, &r);
		if (!rc) {
			state = r.state;
			if ((state == LB_TRIAL_FAILED || state == LB_TRIAL_DIVERGED) && !a.retry_failed)
				rc = lb_error(LB_ERR_STATE,
					      "trial %u (%s) %s earlier: %s; pass --retry-failed to run it "
					      "again",
					      i, l.rec->trials[i].id, lb_trial_state_name(r.state), r.msg);
			else if (state == LB_TRIAL_FAILED || state == LB_TRIAL_DIVERGED)
				rc = lb_sweepdir_forget(a.dir, l.rec, i);
			lb_trial_result_release(&r);
		}
	}
	rc = lb_comm_agree(MPI_COMM_WORLD, rc);
	if (rc) {
		print_errors(lb_error_message());
		loaded_release(&l);
		return LB_EXIT_ERROR;
	}
	MPI_Bcast(&state, 1, MPI_INT, 0, MPI_COMM_WORLD);
	if (state == LB_TRIAL_DONE) {
		if (rank == 0)
			fprintf(stderr, "lowbit: trial %u (%s) is already done\n", i, l.rec->trials[i].id);
		loaded_release(&l);
		return LB_EXIT_OK;
	}
	struct lb_sweep_exec x = {.plan = l.plan, .rec = l.rec, .dir = a.dir, .dummy = a.dummy};
	x.dummy_cfg.sleep_s = a.dummy_sleep_ms / 1000.0;
	x.dummy_cfg.fail_index = (int)a.dummy_fail;
	x.dummy_cfg.diverge_index = (int)a.dummy_diverge;
	char msg[512];
	enum lb_trial_state st = lb_sweep_trial((int)i, MPI_COMM_WORLD, &x, msg, sizeof msg);
	if (rank == 0) {
		if (st == LB_TRIAL_DONE)
			fprintf(stderr, "lowbit: trial %u (%s) done: %s\n", i, l.rec->trials[i].id, msg);
		else
			lb_cli_error("trial %u (%s) %s: %s", i, l.rec->trials[i].id,
				     lb_trial_state_name(st), msg);
		fprintf(stderr, "lowbit: lowbit index %s rebuilds %s/sweep.h5\n", a.dir, a.dir);
	}
	loaded_release(&l);
	return st == LB_TRIAL_DONE ? LB_EXIT_OK
	       : st == LB_TRIAL_PREEMPTED ? LB_EXIT_TEMPFAIL : LB_EXIT_ERROR;
}

/* ---- lowbit status, lowbit index ---- */

static const char status_usage[] =
	"usage: lowbit status DIR [--failed | --unfinished]\n"
	"\n"
	"Count the trials of the sweep in DIR by state (pending, running, done,\n"
	"failed, diverged, preempted), judged from the trial files, and list the\n"
	"failed ones with their messages. Reads only.\n"
	"\n"
	"      --failed       print only the indices of the failed and diverged trials\n"
	"                     as array ranges (3,7-9), e.g. for sbatch --array\n"
	"      --unfinished   the same for every trial not done\n"
	"  -h, --help         this text\n";

static const char index_usage[] =
	"usage: lowbit index DIR\n"
	"\n"
	"Rebuild DIR/sweep.h5 (plan, status, summary, links to the trial files) from\n"
	"DIR/plan.tsv and the trial files, e.g. after job-array runs of lowbit trial.\n"
	"\n"
	"  -h, --help   this text\n";

/* Parse DIR [--failed|--unfinished]; -1 to go on or an exit status. */
static int parse_dir_args(int argc, char **argv, const char *cmd, const char *usage,
			  const char **dir, int *failed, int *unfinished)
{
	enum { OPT_FAILED = 256, OPT_UNFINISHED };
	static const struct option status_opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"failed", no_argument, NULL, OPT_FAILED},
		{"unfinished", no_argument, NULL, OPT_UNFINISHED},
		{NULL, 0, NULL, 0},
	};
	static const struct option index_opts[] = {
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", failed ? status_opts : index_opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(usage, stdout);
			return LB_EXIT_OK;
		case OPT_FAILED:
			*failed = 1;
			break;
		case OPT_UNFINISHED:
			*unfinished = 1;
			break;
		default:
			lb_cli_error("%s: unknown option '%s' (see lowbit %s --help)", cmd,
				     argv[optind - 1], cmd);
			return LB_EXIT_USAGE;
		}
	}
	if (failed && *failed && *unfinished) {
		lb_cli_error("%s: give --failed or --unfinished, not both", cmd);
		return LB_EXIT_USAGE;
	}
	if (optind >= argc) {
		lb_cli_error("%s: no sweep folder given\n\n%s", cmd, usage);
		return LB_EXIT_USAGE;
	}
	if (optind + 1 < argc) {
		lb_cli_error("%s: unexpected argument '%s' (one folder only)", cmd, argv[optind + 1]);
		return LB_EXIT_USAGE;
	}
	*dir = argv[optind];
	return -1;
}

static int read_rec(const char *dir, struct lb_plan_rec **rec)
{
	char plan[4200];
	struct stat st;
	int rc;
	snprintf(plan, sizeof plan, "%s/plan.tsv", dir);
	if (stat(plan, &st) < 0 && errno == ENOENT)
		rc = lb_error(LB_ERR_IO, "'%s' holds no lowbit sweep (no plan.tsv; lowbit sweep -o %s "
					 "writes one)",
			      dir, dir);
	else
		rc = lb_plan_rec_read(dir, rec);
	if (rc)
		lb_cli_error("%s", lb_error_message());
	return rc;
}

int lb_cmd_status(int argc, char **argv)
{
	const char *dir = NULL;
	int failed = 0, unfinished = 0;
	struct lb_plan_rec *rec = NULL;
	int status = parse_dir_args(argc, argv, "status", status_usage, &dir, &failed, &unfinished);
	if (status >= 0)
		return status;
	if (read_rec(dir, &rec))
		return LB_EXIT_ERROR;
	unsigned n = rec->n_trials, counts[LB_TRIAL__COUNT] = {0}, n_sel = 0;
	unsigned *sel = malloc((n + 1) * sizeof *sel);
	struct lb_trial_result *res = calloc(n + 1, sizeof *res);
	int rc = sel && res ? LB_OK : lb_error(LB_ERR_OOM, "out of memory");
	for (unsigned i = 0; i < n && !rc; i++) {
		rc = lb_sweepdir_trial_result(dir, rec, i, &res[i]);
		if (rc)
			break;
		counts[res[i].state]++;
		int bad = res[i].state == LB_TRIAL_FAILED || res[i].state == LB_TRIAL_DIVERGED;
		if ((failed && bad) || (unfinished && res[i].state != LB_TRIAL_DONE))
			sel[n_sel++] = i;
	}
	if (rc) {
		lb_cli_error("%s", lb_error_message());
		status = LB_EXIT_ERROR;
	} else if (failed || unfinished) {
		char *r = lb_sweepdir_ranges(sel, n_sel);
		printf("%s\n", r ? r : "");
		free(r);
		status = LB_EXIT_OK;
	} else {
		printf("sweep %s: %u trial%s in %s\n", rec->name, n, n == 1 ? "" : "s", dir);
		for (int s = 0; s < LB_TRIAL__COUNT; s++)
			printf("  %-10s %u\n", lb_trial_state_name((enum lb_trial_state)s), counts[s]);
		for (unsigned i = 0; i < n; i++)
			if (res[i].state == LB_TRIAL_FAILED || res[i].state == LB_TRIAL_DIVERGED ||
			    res[i].state == LB_TRIAL_PREEMPTED)
				printf("trial %u (%s) %s: %s\n", i, rec->trials[i].id,
				       lb_trial_state_name(res[i].state), res[i].msg);
		status = LB_EXIT_OK;
	}
	for (unsigned i = 0; res && i < n; i++)
		lb_trial_result_release(&res[i]);
	free(res);
	free(sel);
	lb_plan_rec_free(rec);
	return status;
}

int lb_cmd_index(int argc, char **argv)
{
	const char *dir = NULL;
	struct lb_plan_rec *rec = NULL;
	int status = parse_dir_args(argc, argv, "index", index_usage, &dir, NULL, NULL);
	if (status >= 0)
		return status;
	if (read_rec(dir, &rec))
		return LB_EXIT_ERROR;
	if (lb_sweepdir_write_index(dir, rec, NULL)) {
		lb_cli_error("%s", lb_error_message());
		lb_plan_rec_free(rec);
		return LB_EXIT_ERROR;
	}
	printf("%s/sweep.h5\n", dir);
	lb_plan_rec_free(rec);
	return LB_EXIT_OK;
}
