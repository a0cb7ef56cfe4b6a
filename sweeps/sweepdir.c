/* SPDX-License-Identifier: MIT
 * The sweep results folder (see sweepdir.h): plan.tsv, trial states from the
 * trial files, failure records and the sweep.h5 index. The index is written
 * with analysis/runfile.h (kind "sweep"), the same module that writes the
 * trial files, so one module owns every HDF5 layout. */
#include "sweepdir.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "analysis/runfile.h"
#include "err.h"
#include "util.h"

#define PLAN_MAGIC "# lowbit sweep plan 1"

static const char *const state_names[LB_TRIAL__COUNT] = {
	"pending", "running", "done", "failed", "diverged", "preempted",
};

const char *lb_trial_state_name(enum lb_trial_state s)
{
	return (unsigned)s < LB_TRIAL__COUNT ? state_names[s] : "unknown";
}

static int state_from_name(const char *s)
{
	for (int i = 0; i < LB_TRIAL__COUNT; i++)
		if (!strcmp(s, state_names[i]))
			return i;
	return -1;
}

/* ---- growing text ---- */

struct buf {
	char *s;
	size_t len, cap;
	int oom;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		size_t room = b->cap - b->len;
		va_start(ap, fmt);
		int n = b->s ? vsnprintf(b->s + b->len, room, fmt, ap) : -1;
		va_end(ap);
		if (n >= 0 && (size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap ? 2 * b->cap : 4096;
		while (n >= 0 && cap - b->len <= (size_t)n)
			cap *= 2;
		char *p = b->oom ? NULL : realloc(b->s, cap);
		if (!p) {
			b->oom = 1;
			return;
		}
		b->s = p;
		b->cap = cap;
	}
}

/* A TSV field: tabs and line ends become spaces. */
static void put_field(struct buf *b, const char *s)
{
	for (; *s; s++)
		put(b, "%c", *s == '\t' || *s == '\n' || *s == '\r' ? ' ' : *s);
}

/* ---- the recorded plan ---- */

void lb_plan_rec_free(struct lb_plan_rec *p)
{
	if (!p)
		return;
	for (unsigned i = 0; p->trials && i < p->n_trials; i++) {
		for (unsigned a = 0; p->trials[i].values && a < p->n_axes; a++)
			free(p->trials[i].values[a]);
		free(p->trials[i].values);
	}
	free(p->trials);
	for (unsigned a = 0; p->axes && a < p->n_axes; a++)
		free(p->axes[a]);
	free(p->axes);
	for (unsigned s = 0; s < p->n_stages; s++) {
		free(p->stage_names ? p->stage_names[s] : NULL);
		free(p->stage_kinds ? p->stage_kinds[s] : NULL);
	}
	free(p->stage_names);
	free(p->stage_kinds);
	free(p->name);
	free(p);
}

static void rec_hash(struct lb_plan_rec *p)
{
	uint64_t h = lb_hash64(LB_HASH_INIT, p->name, strlen(p->name) + 1);
	for (unsigned i = 0; i < p->n_trials; i++)
		h = lb_hash64(h, p->trials[i].id, strlen(p->trials[i].id) + 1);
	snprintf(p->hash, sizeof p->hash, "%016" PRIx64, h);
}

/* Allocate the arrays of a record of the given shape (strings NULL). */
static struct lb_plan_rec *rec_alloc(unsigned n_axes, unsigned n_stages, unsigned n_trials)
{
	struct lb_plan_rec *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->n_axes = n_axes;
	p->n_stages = n_stages;
	p->n_trials = n_trials;
	p->axes = calloc(n_axes + 1, sizeof *p->axes);
	p->stage_names = calloc(n_stages + 1, sizeof *p->stage_names);
	p->stage_kinds = calloc(n_stages + 1, sizeof *p->stage_kinds);
	p->trials = calloc(n_trials + 1, sizeof *p->trials);
	if (!p->axes || !p->stage_names || !p->stage_kinds || !p->trials) {
		lb_plan_rec_free(p);
		return NULL;
	}
	for (unsigned i = 0; i < n_trials; i++)
		if (!(p->trials[i].values = calloc(n_axes + 1, sizeof(char *)))) {
			lb_plan_rec_free(p);
			return NULL;
		}
	return p;
}

int lb_plan_rec_from_plan(const struct lb_sweep_plan *plan, struct lb_plan_rec **out)
{
	const struct lb_sweep_spec *sp = plan->sweep->spec;
	struct lb_plan_rec *p = rec_alloc(sp->n_axes, sp->n_stages, plan->n_trials);
	int oom = !p;
	*out = NULL;
	if (p) {
		p->ranks_per_trial = sp->resources.ranks_per_trial;
		p->threads_per_rank = sp->resources.threads_per_rank;
		oom |= !(p->name = strdup(sp->name));
		for (unsigned a = 0; a < sp->n_axes; a++)
			oom |= !(p->axes[a] = strdup(sp->axes[a].key));
		for (unsigned s = 0; s < sp->n_stages; s++) {
			oom |= !(p->stage_names[s] = strdup(sp->stages[s].name));
			oom |= !(p->stage_kinds[s] = strdup(lb_stage_kind_name(sp->stages[s].kind)));
		}
		for (unsigned i = 0; i < plan->n_trials && !oom; i++) {
			const struct lb_sweep_trial *t = &plan->trials[i];
			struct lb_plan_rec_trial *r = &p->trials[i];
			memcpy(r->id, t->id, sizeof r->id);
			r->point = t->point;
			r->replicate = t->replicate;
			r->seed = t->seed;
			for (unsigned a = 0; a < sp->n_axes; a++)
				oom |= !(r->values[a] = strdup(t->axis_values[a]));
		}
	}
	if (oom) {
		lb_plan_rec_free(p);
		return lb_error(LB_ERR_OOM, "out of memory");
	}
	rec_hash(p);
	*out = p;
	return LB_OK;
}

int lb_sweepdir_write_text(const char *path, const char *text)
{
	char tmp[4200];
	size_t n = strlen(text);
	int fd, e = 0;
	if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
		return lb_error(LB_ERR_IO, "path too long: '%s'", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0)
		return lb_error(LB_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
	for (size_t off = 0; off < n && !e;) {
		ssize_t w = write(fd, text + off, n - off);
		if (w < 0 && errno != EINTR)
			e = errno;
		else if (w > 0)
			off += (size_t)w;
	}
	if (!e && fsync(fd) < 0)
		e = errno;
	if (close(fd) < 0 && !e)
		e = errno;
	if (!e && rename(tmp, path) < 0)
		e = errno;
	if (e) {
		unlink(tmp);
		return lb_error(LB_ERR_IO, "cannot write '%s': %s", path, strerror(e));
	}
	return LB_OK;
}

int lb_plan_rec_write(const struct lb_plan_rec *p, const char *dir)
{
	struct buf b = {0};
	char path[4096];
	int rc;
	put(&b, "%s\n# name\t", PLAN_MAGIC);
	put_field(&b, p->name);
	put(&b, "\n# hash\t%s\n# trials\t%u\n# ranks_per_trial\t%u\n# threads_per_rank\t%u\n", p->hash,
	    p->n_trials, p->ranks_per_trial, p->threads_per_rank);
	for (unsigned s = 0; s < p->n_stages; s++)
		put(&b, "# stage\t%s\t%s\n", p->stage_names[s], p->stage_kinds[s]);
	put(&b, "index\tid\tpoint\treplicate\tseed");
	for (unsigned a = 0; a < p->n_axes; a++) {
		put(&b, "\t");
		put_field(&b, p->axes[a]);
	}
	put(&b, "\n");
	for (unsigned i = 0; i < p->n_trials; i++) {
		const struct lb_plan_rec_trial *t = &p->trials[i];
		put(&b, "%u\t%s\t%u\t%u\t%" PRIu64, i, t->id, t->point, t->replicate, t->seed);
		for (unsigned a = 0; a < p->n_axes; a++) {
			put(&b, "\t");
			put_field(&b, t->values[a]);
		}
		put(&b, "\n");
	}
	if (b.oom) {
		free(b.s);
		return lb_error(LB_ERR_OOM, "out of memory");
	}
	if (snprintf(path, sizeof path, "%s/plan.tsv", dir) >= (int)sizeof path) {
		free(b.s);
		return lb_error(LB_ERR_IO, "output folder path too long: '%s'", dir);
	}
	rc = lb_sweepdir_write_text(path, b.s);
	free(b.s);
	return rc;
}

/* Split line (modified in place) at tabs into at most max fields. */
static unsigned split_tabs(char *line, char **f, unsigned max)
{
	unsigned n = 0;
	while (n < max) {
		f[n++] = line;
		char *t = strchr(line, '\t');
		if (!t)
			break;
		*t = '\0';
		line = t + 1;
	}
	return n;
}

static char *slurp(const char *path, int *err)
{
	FILE *f = fopen(path, "rb");
	char *s = NULL;
	long n;
	*err = 0;
	if (!f) {
		*err = errno;
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (s = malloc((size_t)n + 1))) {
		if (fread(s, 1, (size_t)n, f) != (size_t)n) {
			*err = EIO;
			free(s);
			s = NULL;
		} else {
			s[n] = '\0';
		}
	} else {
		*err = errno ? errno : ENOMEM;
	}
	fclose(f);
	return s;
}

int lb_plan_rec_read(const char *dir, struct lb_plan_rec **out)
{
	char path[4096];
	int e;
	*out = NULL;
	if (snprintf(path, sizeof path, "%s/plan.tsv", dir) >= (int)sizeof path)
		return lb_error(LB_ERR_IO, "output folder path too long: '%s'", dir);
	char *text = slurp(path, &e);
	if (!text) {
		errno = e;
		return lb_error(LB_ERR_IO, "cannot read '%s': %s", path, strerror(e));
	}
	char *name = NULL, hash[17] = "", *save = NULL;
	unsigned n_trials = 0, ranks = 1, threads = 1, n_stages = 0, line_no = 0, n_axes = 0;
	char *stage_lines[256];
	char **header = NULL;
	struct lb_plan_rec *p = NULL;
	int rc = LB_OK, have_trials = 0;
	unsigned row = 0;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		line_no++;
		if (line_no == 1) {
			if (strcmp(line, PLAN_MAGIC)) {
				rc = lb_error(LB_ERR_STATE, "'%s' is not a lowbit sweep plan (first line is "
							    "not '%s')", path, PLAN_MAGIC);
				goto out;
			}
			continue;
		}
		if (line[0] == '#') {
			char *f[4];
			unsigned n = split_tabs(line + 2, f, 4);
			if (n >= 2 && !strcmp(f[0], "name"))
				name = f[1];
			else if (n >= 2 && !strcmp(f[0], "hash"))
				snprintf(hash, sizeof hash, "%s", f[1]);
			else if (n >= 2 && !strcmp(f[0], "trials"))
				n_trials = (unsigned)strtoul(f[1], NULL, 10), have_trials = 1;
			else if (n >= 2 && !strcmp(f[0], "ranks_per_trial"))
				ranks = (unsigned)strtoul(f[1], NULL, 10);
			else if (n >= 2 && !strcmp(f[0], "threads_per_rank"))
				threads = (unsigned)strtoul(f[1], NULL, 10);
			else if (n >= 3 && !strcmp(f[0], "stage") && n_stages < 256) {
				f[2][-1] = '\t'; /* keep "name\tkind" for later */
				stage_lines[n_stages++] = f[1];
			}
			continue;
		}
		if (!header) {
			/* index id point replicate seed axes... */
			unsigned tabs = 0;
			for (char *c = line; *c; c++)
				tabs += *c == '\t';
			if (tabs < 4 || !name || !hash[0] || !have_trials ||
			    n_trials > LB_SWEEP_MAX_TRIALS) {
				rc = lb_error(LB_ERR_STATE, "'%s': damaged header (line %u)", path, line_no);
				goto out;
			}
			n_axes = tabs - 4;
			if (n_axes > 1024) {
				rc = lb_error(LB_ERR_STATE, "'%s': %u axes (at most 1024)", path, n_axes);
				goto out;
			}
			if (!(header = calloc(tabs + 1, sizeof *header)) ||
			    !(p = rec_alloc(n_axes, n_stages, n_trials))) {
				rc = lb_error(LB_ERR_OOM, "out of memory");
				goto out;
			}
			split_tabs(line, header, tabs + 1);
			int oom = !(p->name = strdup(name));
			snprintf(p->hash, sizeof p->hash, "%s", hash);
			p->ranks_per_trial = ranks;
			p->threads_per_rank = threads;
			for (unsigned a = 0; a < n_axes; a++)
				oom |= !(p->axes[a] = strdup(header[5 + a]));
			for (unsigned s = 0; s < n_stages; s++) {
				char *f[2] = {NULL, NULL};
				if (split_tabs(stage_lines[s], f, 2) != 2)
					f[1] = f[0];
				oom |= !(p->stage_names[s] = strdup(f[0]));
				oom |= !(p->stage_kinds[s] = strdup(f[1]));
			}
			if (oom) {
				rc = lb_error(LB_ERR_OOM, "out of memory");
				goto out;
			}
			continue;
		}
		char *f[5 + 1024];
		unsigned n = split_tabs(line, f, 5 + n_axes);
		if (n != 5 + n_axes || row >= n_trials || strtoul(f[0], NULL, 10) != row ||
		    strlen(f[1]) != 12) {
			rc = lb_error(LB_ERR_STATE, "'%s': damaged trial line %u", path, line_no);
			goto out;
		}
		struct lb_plan_rec_trial *t = &p->trials[row++];
		memcpy(t->id, f[1], 13);
		t->point = (unsigned)strtoul(f[2], NULL, 10);
		t->replicate = (unsigned)strtoul(f[3], NULL, 10);
		t->seed = strtoull(f[4], NULL, 10);
		for (unsigned a = 0; a < n_axes; a++)
			if (!(t->values[a] = strdup(f[5 + a]))) {
				rc = lb_error(LB_ERR_OOM, "out of memory");
				goto out;
			}
	}
	if (!p || row != n_trials)
		rc = lb_error(LB_ERR_STATE, "'%s': %u of %u trial lines (damaged or cut short)", path,
			      row, n_trials);
out:
	free(header);
	free(text);
	if (rc) {
		lb_plan_rec_free(p);
		return rc;
	}
	*out = p;
	return LB_OK;
}

/* ---- paths ---- */

int lb_sweepdir_run_path(char *buf, size_t n, const struct lb_plan_rec *p, unsigned trial,
			 int stage)
{
	int w = stage < 0 ? snprintf(buf, n, "trials/%s.h5", p->trials[trial].id)
			  : snprintf(buf, n, "trials/%s/%s.h5", p->trials[trial].id,
				     p->stage_names[stage]);
	return w < 0 || (size_t)w >= n ? -1 : 0;
}

int lb_sweepdir_error_path(char *buf, size_t n, const struct lb_plan_rec *p, unsigned trial)
{
	int w = snprintf(buf, n, "trials/%s.error", p->trials[trial].id);
	return w < 0 || (size_t)w >= n ? -1 : 0;
}

int lb_sweepdir_result_stage(const struct lb_plan_rec *p)
{
	for (unsigned s = p->n_stages; s-- > 0;)
		if (strcmp(p->stage_kinds[s], "rewind"))
			return (int)s;
	return -1;
}

static int join(char *buf, size_t n, const char *dir, const char *rel)
{
	int w = snprintf(buf, n, "%s/%s", dir, rel);
	return w < 0 || (size_t)w >= n ? -1 : 0;
}

/* ---- one trial's state ---- */

void lb_trial_result_release(struct lb_trial_result *r)
{
	free(r->stage_acc);
	r->stage_acc = NULL;
}

/* Metrics of a finished (or running) run file into r. */
static void read_metrics(const struct lb_runfile *rf, struct lb_trial_result *r)
{
	int rows = 0, width = 0;
	double v;
	const double *acc = lb_runfile_get_series(rf, "metrics/test_acc", &rows, &width);
	r->epochs = acc ? rows : 0;
	for (int i = 0; acc && i < rows; i++)
		if (isnan(r->best_test_acc) || acc[i] > r->best_test_acc)
			r->best_test_acc = acc[i];
	const double *t = lb_runfile_get_series(rf, "metrics/epoch_time_s", &rows, &width);
	if (t) {
		r->train_time_s = 0;
		for (int i = 0; i < rows; i++)
			r->train_time_s += t[i];
	}
	if (!lb_runfile_get_attr_f64(rf, "", "final_test_acc", &v))
		r->final_test_acc = v;
	if (!lb_runfile_get_attr_f64(rf, "", "final_test_loss", &v))
		r->final_test_loss = v;
	const char *fin = lb_runfile_get_attr_str(rf, "", "finished_at");
	snprintf(r->finished_at, sizeof r->finished_at, "%s", fin ? fin : "");
}

/* State of one run file: PENDING (absent), DONE, DIVERGED, FAILED
 * (unreadable) or RUNNING; *rf receives the image when readable. */
static enum lb_trial_state run_state(const char *path, struct lb_trial_result *r,
				     struct lb_runfile **rf)
{
	struct stat st;
	*rf = NULL;
	if (stat(path, &st) < 0)
		return LB_TRIAL_PENDING;
	if (lb_runfile_read(path, rf)) {
		snprintf(r->msg, sizeof r->msg, "%s", lb_error_message());
		return LB_TRIAL_FAILED;
	}
	const char *s = lb_runfile_get_attr_str(*rf, "", "status");
	if (s && !strcmp(s, "done"))
		return LB_TRIAL_DONE;
	if (s && !strcmp(s, "diverged")) {
		const char *e = lb_runfile_get_attr_str(*rf, "", "error");
		snprintf(r->msg, sizeof r->msg, "%s", e ? e : "loss is not finite");
		return LB_TRIAL_DIVERGED;
	}
	return LB_TRIAL_RUNNING;
}

int lb_sweepdir_trial_result(const char *dir, const struct lb_plan_rec *p, unsigned trial,
			     struct lb_trial_result *r)
{
	char rel[4096], path[8192];
	int e;
	memset(r, 0, sizeof *r);
	r->final_test_acc = r->final_test_loss = r->best_test_acc = r->train_time_s = NAN;
	if (p->n_stages && !(r->stage_acc = malloc(p->n_stages * sizeof *r->stage_acc)))
		return lb_error(LB_ERR_OOM, "out of memory");
	for (unsigned s = 0; s < p->n_stages; s++)
		r->stage_acc[s] = NAN;
	/* 1. a failure record */
	if (lb_sweepdir_error_path(rel, sizeof rel, p, trial) || join(path, sizeof path, dir, rel))
		return lb_error(LB_ERR_IO, "output folder path too long: '%s'", dir);
	char *text = slurp(path, &e);
	int have_record = text != NULL;
	if (text) {
		char *nl = strchr(text, '\n');
		if (nl)
			*nl = '\0';
		int s = state_from_name(text);
		r->state = s < 0 ? LB_TRIAL_FAILED : (enum lb_trial_state)s;
		if (nl) {
			char *end = strchr(nl + 1, '\n');
			if (end)
				*end = '\0';
			snprintf(r->msg, sizeof r->msg, "%s", nl + 1);
		}
		free(text);
	}
	/* 2. the run files, in stage order; the result stage decides */
	int result = lb_sweepdir_result_stage(p);
	int any = 0;
	enum lb_trial_state st = LB_TRIAL_PENDING;
	for (int s = p->n_stages ? 0 : -1; s < (int)p->n_stages; s++) {
		struct lb_runfile *rf = NULL;
		if (s >= 0 && !strcmp(p->stage_kinds[s], "rewind"))
			continue;
		if (lb_sweepdir_run_path(rel, sizeof rel, p, trial, s) ||
		    join(path, sizeof path, dir, rel))
			return lb_error(LB_ERR_IO, "output folder path too long: '%s'", dir);
		char keep[sizeof r->msg];
		snprintf(keep, sizeof keep, "%s", r->msg);
		enum lb_trial_state fs = run_state(path, r, &rf);
		if (have_record)
			snprintf(r->msg, sizeof r->msg, "%s", keep);
		any |= fs != LB_TRIAL_PENDING;
		if (rf && s >= 0) {
			double v;
			if (!lb_runfile_get_attr_f64(rf, "", "final_test_acc", &v))
				r->stage_acc[s] = v;
		}
		if (s == result || (fs != LB_TRIAL_DONE && fs != LB_TRIAL_PENDING)) {
			if (rf)
				read_metrics(rf, r);
			st = fs;
		}
		lb_runfile_free(rf);
		if (fs != LB_TRIAL_DONE && fs != LB_TRIAL_PENDING)
			break;
	}
	if (!have_record)
		r->state = st == LB_TRIAL_PENDING && any ? LB_TRIAL_RUNNING : st;
	return LB_OK;
}

/* ---- failure records ---- */

int lb_sweepdir_set_outcome(const char *dir, const struct lb_plan_rec *p, unsigned trial,
			    enum lb_trial_state state, const char *msg)
{
	char rel[4096], path[8192];
	if (lb_sweepdir_error_path(rel, sizeof rel, p, trial) || join(path, sizeof path, dir, rel))
		return lb_error(LB_ERR_IO, "output folder path too long: '%s'", dir);
	if (state == LB_TRIAL_DONE || state == LB_TRIAL_PENDING || state == LB_TRIAL_RUNNING) {
		if (unlink(path) < 0 && errno != ENOENT)
			return lb_error(LB_ERR_IO, "cannot remove '%s': %s", path, strerror(errno));
		return LB_OK;
	}
	struct buf b = {0};
	put(&b, "%s\n", lb_trial_state_name(state));
	put_field(&b, msg ? msg : "");
	put(&b, "\n");
	if (b.oom) {
		free(b.s);
		return lb_error(LB_ERR_OOM, "out of memory");
	}
	int rc = lb_sweepdir_write_text(path, b.s);
	free(b.s);
	return rc;
}

static int remove_file(const char *path)
{
	if (unlink(path) < 0 && errno != ENOENT)
		return lb_error(LB_ERR_IO, "cannot remove '%s': %s", path, strerror(errno));
	return LB_OK;
}

int lb_sweepdir_forget(const char *dir, const struct lb_plan_rec *p, unsigned trial)
{
	char rel[4096], path[8192];
	int rc = lb_sweepdir_set_outcome(dir, p, trial, LB_TRIAL_PENDING, NULL);
	for (int s = p->n_stages ? 0 : -1; !rc && s < (int)p->n_stages; s++) {
		if (lb_sweepdir_run_path(rel, sizeof rel, p, trial, s) ||
		    join(path, sizeof path, dir, rel))
			return lb_error(LB_ERR_IO, "output folder path too long: '%s'", dir);
		rc = remove_file(path);
	}
	return rc;
}

/* ---- ranges ---- */

char *lb_sweepdir_ranges(const unsigned *v, unsigned n)
{
	struct buf b = {0};
	put(&b, "%s", "");
	for (unsigned i = 0; i < n;) {
		unsigned j = i;
		while (j + 1 < n && v[j + 1] == v[j] + 1)
			j++;
		if (j == i)
			put(&b, "%s%u", i ? "," : "", v[i]);
		else
			put(&b, "%s%u-%u", i ? "," : "", v[i], v[j]);
		i = j + 1;
	}
	if (b.oom) {
		free(b.s);
		return NULL;
	}
	return b.s;
}

/* ---- the index ---- */

/* Does every value of axis a read as a number? (then the column is float64) */
static int numeric_axis(const struct lb_plan_rec *p, unsigned a)
{
	for (unsigned i = 0; i < p->n_trials; i++) {
		const char *s = p->trials[i].values[a];
		char *end;
		if (!*s)
			return 0;
		strtod(s, &end);
		if (*end)
			return 0;
	}
	return p->n_trials > 0;
}

static int put_f64(struct lb_runfile *rf, const char *path, const double *v, unsigned n)
{
	uint64_t dims[1] = {n};
	return lb_runfile_put_array(rf, path, LB_DT_F64, 1, dims, v);
}

static int put_i64(struct lb_runfile *rf, const char *path, const int64_t *v, unsigned n)
{
	uint64_t dims[1] = {n};
	return lb_runfile_put_array(rf, path, LB_DT_I64, 1, dims, v);
}

static int put_text_file(struct lb_runfile *rf, const char *dir, const char *file,
			 const char *attr)
{
	char path[4096];
	int e;
	if (join(path, sizeof path, dir, file))
		return LB_OK;
	char *text = slurp(path, &e);
	if (!text)
		return LB_OK; /* optional */
	int rc = lb_runfile_set_attr_str(rf, "", attr, text);
	free(text);
	return rc;
}

int lb_sweepdir_write_index(const char *dir, const struct lb_plan_rec *p,
			    const struct lb_trial_result *given)
{
	unsigned n = p->n_trials, ns = p->n_stages;
	struct lb_trial_result *own = NULL;
	const struct lb_trial_result *res = given;
	struct lb_runfile *rf = NULL;
	double *f = malloc((n + 1) * sizeof *f);
	int64_t *iv = malloc((n + 1) * sizeof *iv);
	const char **sv = calloc(n + 1, sizeof *sv);
	char **own_s = calloc(n + 1, sizeof *own_s);
	char rel[4096], path[8192], col[1024];
	int rc = LB_OK;
	if (!f || !iv || !sv || !own_s) {
		rc = lb_error(LB_ERR_OOM, "out of memory");
		goto out;
	}
	if (!res) {
		if (!(own = calloc(n + 1, sizeof *own))) {
			rc = lb_error(LB_ERR_OOM, "out of memory");
			goto out;
		}
		for (unsigned i = 0; i < n && !rc; i++)
			rc = lb_sweepdir_trial_result(dir, p, i, &own[i]);
		if (rc)
			goto out;
		res = own;
	}
	if ((rc = lb_runfile_new_kind(&rf, "sweep")))
		goto out;
	/* root: identity and provenance */
	time_t now = time(NULL);
	struct tm tm;
	char stamp[64];
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
	rc = lb_runfile_set_attr_str(rf, "", "name", p->name);
	rc = rc ? rc : lb_runfile_set_attr_str(rf, "", "plan_hash", p->hash);
	rc = rc ? rc : lb_runfile_set_attr_i64(rf, "", "n_trials", n);
	rc = rc ? rc : lb_runfile_set_attr_i64(rf, "", "ranks_per_trial", p->ranks_per_trial);
	rc = rc ? rc : lb_runfile_set_attr_i64(rf, "", "threads_per_rank", p->threads_per_rank);
	rc = rc ? rc : lb_runfile_set_attr_str(rf, "", "updated_at", stamp);
	rc = rc ? rc : put_text_file(rf, dir, "spec.yaml", "spec");
	rc = rc ? rc : put_text_file(rf, dir, "base.yaml", "base");
	for (int s = 0; s < LB_TRIAL__COUNT && !rc; s++) {
		int64_t c = 0;
		for (unsigned i = 0; i < n; i++)
			c += res[i].state == (enum lb_trial_state)s;
		snprintf(col, sizeof col, "n_%s", state_names[s]);
		rc = lb_runfile_set_attr_i64(rf, "", col, c);
	}
	if (rc)
		goto out;

	/* plan/: what was planned */
	for (unsigned i = 0; i < n; i++)
		iv[i] = i;
	rc = put_i64(rf, "plan/index", iv, n);
	for (unsigned i = 0; i < n; i++)
		sv[i] = p->trials[i].id;
	rc = rc ? rc : lb_runfile_put_strings(rf, "plan/id", sv, (int)n);
	for (unsigned i = 0; i < n; i++)
		iv[i] = p->trials[i].point;
	rc = rc ? rc : put_i64(rf, "plan/point", iv, n);
	for (unsigned i = 0; i < n; i++)
		iv[i] = p->trials[i].replicate;
	rc = rc ? rc : put_i64(rf, "plan/replicate", iv, n);
	for (unsigned i = 0; i < n && !rc; i++) {
		char s[32];
		snprintf(s, sizeof s, "%" PRIu64, p->trials[i].seed);
		if (!(own_s[i] = strdup(s)))
			rc = lb_error(LB_ERR_OOM, "out of memory");
		sv[i] = own_s[i];
	}
	rc = rc ? rc : lb_runfile_put_strings(rf, "plan/seed", sv, (int)n);
	rc = rc ? rc : lb_runfile_put_strings(rf, "plan/axes", (const char *const *)p->axes,
					      (int)p->n_axes);
	for (unsigned a = 0; a < p->n_axes && !rc; a++) {
		for (unsigned i = 0; i < n; i++)
			sv[i] = p->trials[i].values[a];
		snprintf(col, sizeof col, "plan/values/%s", p->axes[a]);
		rc = lb_runfile_put_strings(rf, col, sv, (int)n);
	}
	rc = rc ? rc : lb_runfile_put_strings(rf, "plan/stage_names",
					      (const char *const *)p->stage_names, (int)ns);
	rc = rc ? rc : lb_runfile_put_strings(rf, "plan/stage_kinds",
					      (const char *const *)p->stage_kinds, (int)ns);
	if (rc)
		goto out;

	/* status/ and summary/: one row per trial */
	for (unsigned i = 0; i < n; i++)
		sv[i] = p->trials[i].id;
	rc = lb_runfile_put_strings(rf, "status/id", sv, (int)n);
	rc = rc ? rc : lb_runfile_put_strings(rf, "summary/id", sv, (int)n);
	for (unsigned i = 0; i < n; i++)
		iv[i] = i;
	rc = rc ? rc : put_i64(rf, "status/index", iv, n);
	rc = rc ? rc : put_i64(rf, "summary/index", iv, n);
	for (unsigned i = 0; i < n; i++)
		sv[i] = lb_trial_state_name(res[i].state);
	rc = rc ? rc : lb_runfile_put_strings(rf, "status/state", sv, (int)n);
	rc = rc ? rc : lb_runfile_put_strings(rf, "summary/state", sv, (int)n);
	for (unsigned i = 0; i < n; i++)
		sv[i] = res[i].msg;
	rc = rc ? rc : lb_runfile_put_strings(rf, "status/message", sv, (int)n);
	int result = lb_sweepdir_result_stage(p);
	for (unsigned i = 0; i < n && !rc; i++) {
		free(own_s[i]);
		own_s[i] = NULL;
		if (lb_sweepdir_run_path(rel, sizeof rel, p, i, result))
			rc = lb_error(LB_ERR_IO, "trial path too long");
		else if (!(own_s[i] = strdup(rel)))
			rc = lb_error(LB_ERR_OOM, "out of memory");
		sv[i] = own_s[i];
	}
	rc = rc ? rc : lb_runfile_put_strings(rf, "status/path", sv, (int)n);
	for (unsigned i = 0; i < n && !rc; i++) {
		char s[32];
		snprintf(s, sizeof s, "%" PRIu64, p->trials[i].seed);
		free(own_s[i]);
		if (!(own_s[i] = strdup(s)))
			rc = lb_error(LB_ERR_OOM, "out of memory");
		sv[i] = own_s[i];
	}
	rc = rc ? rc : lb_runfile_put_strings(rf, "summary/seed", sv, (int)n);
	for (unsigned a = 0; a < p->n_axes && !rc; a++) {
		snprintf(col, sizeof col, "summary/%s", p->axes[a]);
		if (numeric_axis(p, a)) {
			for (unsigned i = 0; i < n; i++)
				f[i] = strtod(p->trials[i].values[a], NULL);
			rc = put_f64(rf, col, f, n);
		} else {
			for (unsigned i = 0; i < n; i++)
				sv[i] = p->trials[i].values[a];
			rc = lb_runfile_put_strings(rf, col, sv, (int)n);
		}
	}
#define COLUMN(name, expr)                                 \
	do {                                               \
		for (unsigned i = 0; i < n; i++)           \
			f[i] = (expr);                     \
		rc = rc ? rc : put_f64(rf, "summary/" name, f, n); \
	} while (0)
	COLUMN("final_test_acc", res[i].final_test_acc);
	COLUMN("final_test_loss", res[i].final_test_loss);
	COLUMN("best_test_acc", res[i].best_test_acc);
	COLUMN("train_time_s", res[i].train_time_s);
#undef COLUMN
	for (unsigned i = 0; i < n; i++)
		iv[i] = res[i].epochs;
	rc = rc ? rc : put_i64(rf, "summary/epochs", iv, n);
	for (unsigned i = 0; i < n; i++)
		sv[i] = res[i].finished_at;
	rc = rc ? rc : lb_runfile_put_strings(rf, "summary/finished_at", sv, (int)n);
	for (unsigned s = 0; s < ns && !rc; s++) {
		if (!strcmp(p->stage_kinds[s], "rewind"))
			continue;
		for (unsigned i = 0; i < n; i++)
			f[i] = res[i].stage_acc ? res[i].stage_acc[s] : NAN;
		snprintf(col, sizeof col, "summary/%s.final_test_acc", p->stage_names[s]);
		rc = put_f64(rf, col, f, n);
	}
	if (rc)
		goto out;

	/* trials/: external links to the run files that exist */
	for (unsigned i = 0; i < n && !rc; i++)
		for (int s = ns ? 0 : -1; s < (int)ns && !rc; s++) {
			struct stat st;
			if (s >= 0 && !strcmp(p->stage_kinds[s], "rewind"))
				continue;
			if (lb_sweepdir_run_path(rel, sizeof rel, p, i, s) ||
			    join(path, sizeof path, dir, rel)) {
				rc = lb_error(LB_ERR_IO, "trial path too long");
				break;
			}
			if (stat(path, &st) < 0)
				continue;
			if (s < 0)
				snprintf(col, sizeof col, "trials/%s", p->trials[i].id);
			else
				snprintf(col, sizeof col, "trials/%s/%s", p->trials[i].id,
					 p->stage_names[s]);
			rc = lb_runfile_put_link(rf, col, rel, "/");
		}
	if (rc)
		goto out;
	if (join(path, sizeof path, dir, "sweep.h5")) {
		rc = lb_error(LB_ERR_IO, "output folder path too long: '%s'", dir);
		goto out;
	}
	rc = lb_runfile_write(rf, path);
out:
	if (own) {
		for (unsigned i = 0; i < n; i++)
			lb_trial_result_release(&own[i]);
		free(own);
	}
	if (own_s)
		for (unsigned i = 0; i < n; i++)
			free(own_s[i]);
	free(own_s);
	free(sv);
	free(iv);
	free(f);
	lb_runfile_free(rf);
	return rc;
}
