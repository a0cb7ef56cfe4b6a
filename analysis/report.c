/* SPDX-License-Identifier: MIT
 * `lowbit report` (analysis/report.h, docs/report.md): read a sweep folder
 * (plan.tsv + the trial run files), a folder of run files, or one run file;
 * write summary.md / summary.csv (one row per trial and training stage, plus
 * mean ± std over seeds), and figures as gnuplot data + script, rendered to
 * PNG / SVG when gnuplot is there; lottery.md when the stages hold a
 * lottery-ticket study. Values are the run files' own (final epoch row of
 * metrics/, root attribute final_test_acc); our own computations are the
 * Pareto front, means and standard deviations over seeds (also the
 * uniform-bit reference of the trade-off figures) and lottery.md's paired
 * differences. */
#include "report.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "analysis/runfile.h"
#include "err.h"
#include "log.h"
#include "sweeps/spec.h"
#include "sweeps/sweepdir.h"
#include "util.h"

/* ---- growing text buffer ---- */

struct sbuf {
	char *s;
	size_t len, cap;
	int oom;
};

static void put(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;
	if (b->oom)
		return;
	for (;;) {
		size_t room = b->cap - b->len;
		va_start(ap, fmt);
		n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? room : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = 1;
			return;
		}
		if (b->s && (size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + (size_t)n + 1)
			cap *= 2;
		char *s = realloc(b->s, cap);
		if (!s) {
			b->oom = 1;
			return;
		}
		b->s = s;
		b->cap = cap;
	}
}

/* Shortest text that reads back as v ("" for NaN). */
static void put_num(struct sbuf *b, double v)
{
	char t[40];
	if (isnan(v))
		return;
	snprintf(t, sizeof t, "%.15g", v);
	if (strtod(t, NULL) != v)
		snprintf(t, sizeof t, "%.17g", v);
	put(b, "%s", t);
}

/* CSV field, quoted when needed (RFC 4180). */
static void put_csv(struct sbuf *b, const char *s)
{
	if (!strpbrk(s, ",\"\n\r")) {
		put(b, "%s", s);
		return;
	}
	put(b, "\"");
	for (; *s; s++)
		put(b, *s == '"' ? "\"\"" : "%c", *s);
	put(b, "\"");
}

/* Markdown table cell text ('|' escaped, newlines flattened). */
static void put_md(struct sbuf *b, const char *s)
{
	for (; *s; s++)
		put(b, *s == '|' ? "\\|" : "%c", *s == '\n' ? ' ' : *s);
}

/* gnuplot single-quoted string body ('' for '). */
static void put_gq(struct sbuf *b, const char *s)
{
	for (; *s; s++)
		put(b, *s == '\'' ? "''" : "%c", *s == '\n' ? ' ' : *s);
}

/* ---- Pareto front ---- */

int lb_report_pareto(int n, const double *acc, const double *cost, int *on_front)
{
	int count = 0;
	for (int i = 0; i < n; i++) {
		on_front[i] = 0;
		if (!isfinite(acc[i]) || !isfinite(cost[i]))
			continue;
		int dominated = 0;
		for (int j = 0; j < n && !dominated; j++)
			if (j != i && isfinite(acc[j]) && isfinite(cost[j]) && acc[j] >= acc[i] &&
			    cost[j] <= cost[i] && (acc[j] > acc[i] || cost[j] < cost[i]))
				dominated = 1;
		on_front[i] = !dominated;
		count += !dominated;
	}
	return count;
}

/* ---- formats and paths ---- */

int lb_report_parse_formats(const char *s, unsigned *out)
{
	static const struct {
		const char *name;
		unsigned flag;
	} fmts[] = {{"md", LB_REPORT_MD},
		    {"csv", LB_REPORT_CSV},
		    {"png", LB_REPORT_PNG},
		    {"svg", LB_REPORT_SVG}};
	unsigned f = 0;
	const char *p = s;
	while (*p) {
		size_t len = strcspn(p, ",");
		unsigned k;
		for (k = 0; k < sizeof fmts / sizeof fmts[0]; k++)
			if (strlen(fmts[k].name) == len && !strncmp(p, fmts[k].name, len))
				break;
		if (k == sizeof fmts / sizeof fmts[0])
			return lb_error(
			    LB_ERR_CONFIG,
			    "--format: '%.*s' is not known (allowed: a list of md, csv, png, svg)",
			    (int)len, p);
		f |= fmts[k].flag;
		p += len;
		if (*p == ',')
			p++;
	}
	if (!f)
		return lb_error(LB_ERR_CONFIG,
				"--format: empty (allowed: a list of md, csv, png, svg)");
	*out = f;
	return LB_OK;
}

int lb_report_default_out(char *buf, size_t n, const char *path, int is_dir)
{
	size_t len = strlen(path);
	while (len > 1 && path[len - 1] == '/')
		len--;
	if (is_dir)
		return snprintf(buf, n, "%.*s/report", (int)len, path) < (int)n ? 0 : -1;
	if (len >= 3 && !strncmp(path + len - 3, ".h5", 3))
		len -= 3;
	return snprintf(buf, n, "%.*s-report", (int)len, path) < (int)n ? 0 : -1;
}

/* ---- rows ---- */

struct row {
	int index, point;	  /* plan index and point; -1 outside a sweep */
	char id[128];		  /* trial id, or the run's name */
	const char *stage;	  /* stage name ("" without stages); borrowed */
	int stage_i;		  /* its index in the plan's stages; -1 without stages */
	char *const *axis_values; /* plan values (one per axis) or NULL; borrowed */
	char seed[32];
	char state[16];
	char path[4096];       /* the run file */
	char tag[160];	       /* short name without spaces: figures, file names */
	char label[200];       /* tag + varying axis values: legends */
	struct lb_runfile *rf; /* NULL when missing or unreadable */
	int epochs, learned_bits;
	double final_acc, best_acc, best_epoch;
	double avg_w, avg_a, size, compression, bops;
	int n_layers;		 /* columns of metrics/w_bits */
	int pareto, pareto_size; /* -1: not judged (not done) */
};

struct report {
	const char *src; /* the path given */
	char dir[4096];	 /* the folder of the sweep or of the runs */
	int kind;	 /* 0 run file, 1 sweep folder, 2 folder of runs */
	struct lb_plan_rec *plan;
	int *vary; /* per axis: 1 when its values differ across trials */
	/* per plan stage, from DIR/spec.yaml (plan.tsv names only the stages and
	 * their kinds): the index of its input and of its bits_from stage (-1:
	 * none) and a rewind's step K (0: init); NULL when not read */
	int *st_input, *st_bits, *st_step;
	int lottery; /* the stages hold a lottery-ticket study (lottery.md) */
	struct row *rows;
	int n_rows;
	const struct lb_report_opts *o;
	struct lb_report_outcome *res;
	char out[4096];
};

/* Value of the last row of a width-1 series (NaN when absent or empty). */
static double last_of(const struct lb_runfile *rf, const char *path)
{
	int rows = 0, width = 0;
	const double *v = lb_runfile_get_series(rf, path, &rows, &width);
	return v && rows > 0 && width == 1 ? v[rows - 1] : NAN;
}

/* Fill the metrics of r from its run file. */
static void row_metrics(struct row *r)
{
	int rows = 0, width = 0, erows = 0, ew = 0;
	double v;
	const struct lb_runfile *rf = r->rf;
	const char *st = lb_runfile_get_attr_str(rf, "", "status");
	snprintf(r->state, sizeof r->state, "%s", st ? st : "unknown");
	const double *acc = lb_runfile_get_series(rf, "metrics/test_acc", &rows, &width);
	const double *ep = lb_runfile_get_series(rf, "metrics/epoch", &erows, &ew);
	r->epochs = acc && width == 1 ? rows : 0;
	for (int i = 0; i < r->epochs; i++)
		if (!isnan(acc[i]) && (isnan(r->best_acc) || acc[i] > r->best_acc)) {
			r->best_acc = acc[i];
			r->best_epoch = ep && ew == 1 && i < erows ? ep[i] : i + 1;
		}
	/* a done run's final accuracy is its attribute; a running one's the last row */
	if (lb_runfile_get_attr_f64(rf, "", "final_test_acc", &v) == 0)
		r->final_acc = v;
	else if (r->epochs)
		r->final_acc = acc[r->epochs - 1];
	r->avg_w = last_of(rf, "metrics/avg_w_bits");
	r->avg_a = last_of(rf, "metrics/avg_a_bits");
	r->size = last_of(rf, "metrics/size_bytes");
	r->compression = last_of(rf, "metrics/compression");
	r->bops = last_of(rf, "metrics/bops");
	if (lb_runfile_get_series(rf, "metrics/w_bits", &rows, &width) && rows > 0)
		r->n_layers = width;
	const char *lb = lb_runfile_get_attr_str(rf, "config_flat", "quant.learn_bits.enabled");
	r->learned_bits = lb && !strcmp(lb, "true");
}

static void row_init(struct row *r)
{
	memset(r, 0, sizeof *r);
	r->index = r->point = r->stage_i = -1;
	r->stage = "";
	r->final_acc = r->best_acc = r->best_epoch = NAN;
	r->avg_w = r->avg_a = r->size = r->compression = r->bops = NAN;
	r->pareto = r->pareto_size = -1;
	snprintf(r->state, sizeof r->state, "pending");
}

/* Read r->path into r->rf; on failure mark the row and warn. */
static void row_read(struct report *R, struct row *r)
{
	int rc = lb_runfile_read(r->path, &r->rf);
	if (rc == LB_OK) {
		row_metrics(r);
		R->res->rows_read++;
		return;
	}
	r->rf = NULL;
	snprintf(r->state, sizeof r->state, "unreadable");
	R->res->rows_unreadable++;
	lb_log(LB_LOG_WARN, "report: skipping '%s': %s", r->path, lb_error_message());
}

static int file_exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0;
}

/* Tag and label of every row (after the plan and the files are read). */
static void name_rows(struct report *R)
{
	for (int i = 0; i < R->n_rows; i++) {
		struct row *r = &R->rows[i];
		if (R->kind == 1) {
			int n = snprintf(r->tag, sizeof r->tag, "t%d%s%s", r->index,
					 *r->stage ? "-" : "", r->stage);
			(void)n;
			size_t len = (size_t)snprintf(r->label, sizeof r->label, "t%d%s%s",
						      r->index, *r->stage ? " " : "", r->stage);
			for (unsigned a = 0; a < R->plan->n_axes && len < sizeof r->label; a++)
				if (R->vary[a])
					len += (size_t)snprintf(r->label + len,
								sizeof r->label - len, "%s%s",
								len ? " " : "", r->axis_values[a]);
			if (len >= 44) /* legends: the full values are in summary.md */
				memcpy(r->label + 40, "...", 4);
		} else {
			snprintf(r->label, sizeof r->label, "%s", r->id);
			snprintf(r->tag, sizeof r->tag, "%s", r->id);
		}
		for (char *c = r->tag; *c; c++)
			if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
			      (*c >= '0' && *c <= '9') || *c == '-' || *c == '_' || *c == '.'))
				*c = '_';
	}
}

static int load_sweep(struct report *R)
{
	struct lb_plan_rec *p = R->plan;
	int n_train = 0;
	for (unsigned s = 0; s < p->n_stages; s++)
		n_train += strcmp(p->stage_kinds[s], "rewind") != 0;
	int per = p->n_stages ? n_train : 1;
	R->rows = calloc((size_t)p->n_trials * (size_t)(per ? per : 1), sizeof *R->rows);
	R->vary = calloc(p->n_axes + 1, sizeof *R->vary);
	if (!R->rows || !R->vary)
		return lb_error(LB_ERR_OOM, "out of memory");
	for (unsigned a = 0; a < p->n_axes; a++)
		for (unsigned t = 1; t < p->n_trials; t++)
			if (strcmp(p->trials[t].values[a], p->trials[0].values[a]))
				R->vary[a] = 1;
	for (unsigned t = 0; t < p->n_trials; t++) {
		struct lb_trial_result tr;
		int rc = lb_sweepdir_trial_result(R->dir, p, t, &tr);
		if (rc)
			return rc;
		int marked = 0;
		for (int s = p->n_stages ? 0 : -1; s < (int)p->n_stages; s++) {
			char rel[4096];
			if (s >= 0 && !strcmp(p->stage_kinds[s], "rewind"))
				continue;
			struct row *r = &R->rows[R->n_rows++];
			row_init(r);
			r->index = (int)t;
			r->point = (int)p->trials[t].point;
			snprintf(r->id, sizeof r->id, "%s", p->trials[t].id);
			r->stage = s >= 0 ? p->stage_names[s] : "";
			r->stage_i = s;
			r->axis_values = p->trials[t].values;
			snprintf(r->seed, sizeof r->seed, "%llu",
				 (unsigned long long)p->trials[t].seed);
			lb_sweepdir_run_path(rel, sizeof rel, p, t, s);
			if (snprintf(r->path, sizeof r->path, "%s/%s", R->dir, rel) >=
			    (int)sizeof r->path) {
				lb_trial_result_release(&tr);
				return lb_error(LB_ERR_IO, "path too long: '%s/%s'", R->dir, rel);
			}
			if (file_exists(r->path))
				row_read(R, r);
			/* a failed / diverged / preempted trial: its first unfinished stage
			 * says so; later stages stay pending */
			if (!marked && strcmp(r->state, "done") && strcmp(r->state, "unreadable") &&
			    (tr.state == LB_TRIAL_FAILED || tr.state == LB_TRIAL_DIVERGED ||
			     tr.state == LB_TRIAL_PREEMPTED)) {
				snprintf(r->state, sizeof r->state, "%s",
					 lb_trial_state_name(tr.state));
				marked = 1;
			}
		}
		lb_trial_result_release(&tr);
	}
	return LB_OK;
}

/* The stages' inputs from DIR/spec.yaml, the spec the sweep ran (written
 * beside plan.tsv by lowbit sweep), when its stages are the plan's. Not
 * fatal: without them there is no lottery.md, and the uniform-bits
 * reference leaves out more rows (uniform_bits). */
static int load_stage_graph(struct report *R)
{
	const struct lb_plan_rec *p = R->plan;
	struct lb_sweep *sw = NULL;
	char path[4200];
	int n_learn = 0, n_rewind = 0;
	if (!p->n_stages)
		return LB_OK;
	snprintf(path, sizeof path, "%s/spec.yaml", R->dir);
	int rc = lb_sweep_load(path, &sw);
	if (rc == LB_ERR_OOM)
		return rc;
	int same = rc == LB_OK && sw->spec->n_stages == p->n_stages;
	for (unsigned s = 0; same && s < p->n_stages; s++)
		same = !strcmp(sw->spec->stages[s].name, p->stage_names[s]) &&
		       !strcmp(lb_stage_kind_name(sw->spec->stages[s].kind), p->stage_kinds[s]);
	if (same) {
		const struct lb_sweep_spec *sp = sw->spec;
		R->st_input = malloc(p->n_stages * sizeof *R->st_input);
		R->st_bits = malloc(p->n_stages * sizeof *R->st_bits);
		R->st_step = malloc(p->n_stages * sizeof *R->st_step);
		if (!R->st_input || !R->st_bits || !R->st_step) {
			lb_sweep_free(sw);
			return lb_error(LB_ERR_OOM, "out of memory");
		}
		for (unsigned s = 0; s < p->n_stages; s++) {
			R->st_input[s] = lb_sweep_stage_index(sp, sp->stages[s].input);
			R->st_bits[s] = lb_sweep_stage_index(sp, sp->stages[s].bits_from);
			R->st_step[s] = (int)lb_sweep_rewind_step(&sp->stages[s]);
		}
	} else {
		for (unsigned s = 0; s < p->n_stages; s++) {
			n_learn += !strcmp(p->stage_kinds[s], "learn_bits");
			n_rewind += !strcmp(p->stage_kinds[s], "rewind");
		}
		/* a lottery study may be there: say why lottery.md is not */
		lb_log(n_learn && n_rewind ? LB_LOG_WARN : LB_LOG_INFO,
		       "report: the stages' inputs are unknown (%s): no lottery.md",
		       rc ? lb_error_message() : "spec.yaml holds other stages than plan.tsv");
	}
	lb_sweep_free(sw);
	return LB_OK;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A folder without plan.tsv: every *.h5 of kind "run" in it, by name. */
static int load_folder(struct report *R)
{
	DIR *d = opendir(R->dir);
	char **names = NULL;
	int n = 0, cap = 0, rc = LB_OK;
	struct dirent *e;
	if (!d)
		return lb_error(LB_ERR_IO, "cannot open '%s': %s", R->dir, strerror(errno));
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len < 4 || strcmp(e->d_name + len - 3, ".h5") || e->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			char **nn = realloc(names, (size_t)cap * sizeof *names);
			if (!nn) {
				rc = lb_error(LB_ERR_OOM, "out of memory");
				break;
			}
			names = nn;
		}
		if (!(names[n] = strdup(e->d_name))) {
			rc = lb_error(LB_ERR_OOM, "out of memory");
			break;
		}
		n++;
	}
	closedir(d);
	if (!rc && n)
		qsort(names, (size_t)n, sizeof *names, cmp_str);
	if (!rc && n && !(R->rows = calloc((size_t)n, sizeof *R->rows)))
		rc = lb_error(LB_ERR_OOM, "out of memory");
	for (int i = 0; !rc && i < n; i++) {
		struct row *r = &R->rows[R->n_rows];
		struct lb_runfile *probe = NULL;
		row_init(r);
		if (snprintf(r->path, sizeof r->path, "%s/%s", R->dir, names[i]) >=
		    (int)sizeof r->path) {
			rc = lb_error(LB_ERR_IO, "path too long: '%s/%s'", R->dir, names[i]);
			break;
		}
		/* a sweep.h5 or another kind of lowbit file is not a run: skip quietly */
		if (lb_runfile_read_kind(r->path, NULL, &probe) == LB_OK &&
		    strcmp(lb_runfile_kind(probe), "run")) {
			lb_runfile_free(probe);
			continue;
		}
		lb_runfile_free(probe);
		R->n_rows++;
		size_t len = strlen(names[i]) - 3;
		snprintf(r->id, sizeof r->id, "%.*s", (int)len, names[i]);
		row_read(R, r);
		int64_t seed;
		if (r->rf && !lb_runfile_get_attr_i64(r->rf, "", "seed", &seed))
			snprintf(r->seed, sizeof r->seed, "%lld", (long long)seed);
	}
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

/* ---- tables ---- */

static int is_done(const struct row *r)
{
	return r->rf && !strcmp(r->state, "done");
}

/* "4/4/3/8" from the last row of metrics/w_bits ("" when absent). */
static void put_wbits(struct sbuf *b, const struct row *r)
{
	int rows = 0, width = 0;
	const double *w =
	    r->rf ? lb_runfile_get_series(r->rf, "metrics/w_bits", &rows, &width) : NULL;
	for (int l = 0; w && rows > 0 && l < width; l++)
		put(b, "%s%g", l ? "/" : "", w[(size_t)(rows - 1) * (size_t)width + (size_t)l]);
}

/* The weight bits of each layer at the end of r: the last row of
 * metrics/w_bits, else quant/learned_w_bits. The count (0: neither). */
static int row_layer_bits(const struct row *r, double *out, int max)
{
	int rows = 0, width = 0, rank = 0, n = 0;
	enum lb_dtype dt;
	uint64_t dims[4];
	const double *w =
	    r->rf ? lb_runfile_get_series(r->rf, "metrics/w_bits", &rows, &width) : NULL;
	if (w && rows > 0) {
		for (; n < width && n < max; n++)
			out[n] = w[(size_t)(rows - 1) * (size_t)width + (size_t)n];
		return n;
	}
	const int64_t *v =
	    r->rf ? lb_runfile_get_array(r->rf, "quant/learned_w_bits", &dt, &rank, dims) : NULL;
	if (!v || dt != LB_DT_I64 || rank != 1)
		return 0;
	for (; n < (int)dims[0] && n < max; n++)
		out[n] = (double)v[n];
	return n;
}

/* "4/3/3/2" of row_layer_bits ("" when unknown). */
static void layer_bits_str(const struct row *r, char *buf, size_t n)
{
	double w[256];
	int L = row_layer_bits(r, w, 256);
	size_t len = 0;
	buf[0] = 0;
	for (int l = 0; l < L && len < n; l++)
		len += (size_t)snprintf(buf + len, n - len, "%s%g", l ? "/" : "", w[l]);
}

/* Does stage s take its weight bits from another run? learn_bits learns
 * them, retrain and fine_tune with bits_from fix them, ptq_eval copies its
 * input; a fine_tune continues its input's (a BSQ fine-tune). Without the
 * stages' inputs, any fine_tune after a learn_bits stage counts. */
static int stage_bits_inherited(const struct report *R, int s)
{
	const char *k = R->plan->stage_kinds[s];
	if (!strcmp(k, "learn_bits") || !strcmp(k, "retrain") || !strcmp(k, "ptq_eval"))
		return 1;
	if (!R->st_input) {
		for (int e = 0; !strcmp(k, "fine_tune") && e < s; e++)
			if (!strcmp(R->plan->stage_kinds[e], "learn_bits"))
				return 1;
		return 0;
	}
	if (R->st_bits[s] >= 0)
		return 1;
	int in = R->st_input[s];
	if (!strcmp(k, "fine_tune") && in >= 0 && strcmp(R->plan->stage_kinds[in], "rewind"))
		return stage_bits_inherited(R, in);
	return 0;
}

/* b when r is a uniform-bit row: done, every layer at b < 32 weight bits, b
 * the configured quant.weights.bits (when the file records it), and its bits
 * neither learned (quant.learn_bits.enabled) nor taken from another stage
 * (stage_bits_inherited). 0 otherwise. */
static int uniform_bits(const struct report *R, const struct row *r)
{
	double w[256];
	int L;
	if (!is_done(r) || r->learned_bits ||
	    (r->stage_i >= 0 && stage_bits_inherited(R, r->stage_i)))
		return 0;
	if ((L = row_layer_bits(r, w, 256)) < 1 || !(w[0] >= 1 && w[0] < 32) || w[0] != floor(w[0]))
		return 0;
	for (int l = 1; l < L; l++)
		if (w[l] != w[0])
			return 0;
	const char *cb = lb_runfile_get_attr_str(r->rf, "config_flat", "quant.weights.bits");
	if (cb && atof(cb) != w[0])
		return 0;
	return (int)w[0];
}

static void md_num(struct sbuf *b, const char *fmt, double v)
{
	if (isnan(v))
		put(b, " – |");
	else {
		put(b, " ");
		put(b, fmt, v);
		put(b, " |");
	}
}

struct stat_cols {
	double mean, std;
	int n;
};

/* A markdown cell "mean ± std" of s scaled ("mean" alone for one value, "–"
 * for none). */
static void md_mean_std(struct sbuf *b, const char *fmt, struct stat_cols s, double scale)
{
	if (!s.n) {
		put(b, " – |");
		return;
	}
	put(b, " ");
	put(b, fmt, scale * s.mean);
	if (s.n > 1) {
		put(b, " ± ");
		put(b, fmt, scale * s.std);
	}
	put(b, " |");
}

static struct stat_cols stats(const double *v, int n)
{
	struct stat_cols s = {NAN, NAN, 0};
	double sum = 0, ss = 0;
	for (int i = 0; i < n; i++)
		if (isfinite(v[i])) {
			sum += v[i];
			s.n++;
		}
	if (!s.n)
		return s;
	s.mean = sum / s.n;
	for (int i = 0; i < n; i++)
		if (isfinite(v[i]))
			ss += (v[i] - s.mean) * (v[i] - s.mean);
	if (s.n > 1)
		s.std = sqrt(ss / (s.n - 1));
	return s;
}

/* Groups of rows that differ only by seed: same plan point and stage. */
struct group {
	int first, n, n_done;
	int *members;
};

static int make_groups(const struct report *R, struct group **out, int *n_out)
{
	struct group *g = calloc((size_t)R->n_rows + 1, sizeof *g);
	int ng = 0, any = 0;
	if (!g)
		return lb_error(LB_ERR_OOM, "out of memory");
	for (int i = 0; R->kind == 1 && i < R->n_rows; i++) {
		const struct row *r = &R->rows[i];
		int k;
		for (k = 0; k < ng; k++) {
			const struct row *f = &R->rows[g[k].first];
			if (f->point == r->point && !strcmp(f->stage, r->stage))
				break;
		}
		if (k == ng) {
			g[ng].first = i;
			if (!(g[ng].members = calloc((size_t)R->n_rows, sizeof(int)))) {
				for (int j = 0; j < ng; j++)
					free(g[j].members);
				free(g);
				return lb_error(LB_ERR_OOM, "out of memory");
			}
			ng++;
		}
		g[k].members[g[k].n++] = i;
		g[k].n_done += is_done(r);
		if (g[k].n > 1)
			any = 1;
	}
	if (!any) {
		for (int j = 0; j < ng; j++)
			free(g[j].members);
		ng = 0;
	}
	*out = g;
	*n_out = ng;
	return LB_OK;
}

static void free_groups(struct group *g, int n)
{
	for (int j = 0; j < n; j++)
		free(g[j].members);
	free(g);
}

/* The statistics of one column over a group's done rows. */
static struct stat_cols group_stat(const struct report *R, const struct group *g, size_t offset)
{
	double *v = malloc((size_t)(g->n ? g->n : 1) * sizeof *v);
	struct stat_cols s = {NAN, NAN, 0};
	int k = 0;
	if (!v)
		return s; /* NaN: shown as missing */
	for (int m = 0; m < g->n; m++) {
		const struct row *r = &R->rows[g->members[m]];
		if (is_done(r))
			v[k++] = *(const double *)((const char *)r + offset);
	}
	s = stats(v, k);
	free(v);
	return s;
}

static const struct {
	const char *csv, *md, *mdfmt;
	size_t offset;
	double md_scale;
} group_cols[] = {
    {"final_test_acc", "final acc %", "%.2f", offsetof(struct row, final_acc), 100},
    {"best_test_acc", "best acc %", "%.2f", offsetof(struct row, best_acc), 100},
    {"avg_w_bits", "avg W bits", "%.2f", offsetof(struct row, avg_w), 1},
    {"avg_a_bits", "avg A bits", "%.2f", offsetof(struct row, avg_a), 1},
    {"size_bytes", "size (bytes)", "%.0f", offsetof(struct row, size), 1},
    {"compression", "compression", "%.2f", offsetof(struct row, compression), 1},
    {"bops", "BOPs", "%.4g", offsetof(struct row, bops), 1},
};
#define N_GROUP_COLS (sizeof group_cols / sizeof group_cols[0])

static int write_out(struct report *R, const char *name, struct sbuf *b)
{
	char path[4200];
	if (b->oom)
		return lb_error(LB_ERR_OOM, "out of memory");
	snprintf(path, sizeof path, "%s/%s", R->out, name);
	return lb_sweepdir_write_text(path, b->s ? b->s : "");
}

static const char *axis_name(const struct report *R, unsigned a)
{
	return R->plan->axes[a];
}

static int write_csv(struct report *R, const struct group *g, int ng)
{
	struct sbuf b = {0};
	unsigned na = R->kind == 1 ? R->plan->n_axes : 0;
	int rc;
	put(&b, "index,id,stage");
	for (unsigned a = 0; a < na; a++) {
		put(&b, ",");
		put_csv(&b, axis_name(R, a));
	}
	put(&b, ",seed,status,epochs,final_test_acc,best_test_acc,best_epoch,avg_w_bits,"
		"avg_a_bits,size_bytes,compression,bops,w_bits,pareto,path\n");
	for (int i = 0; i < R->n_rows; i++) {
		const struct row *r = &R->rows[i];
		if (r->index >= 0)
			put(&b, "%d", r->index);
		put(&b, ",");
		put_csv(&b, r->id);
		put(&b, ",");
		put_csv(&b, r->stage);
		for (unsigned a = 0; a < na; a++) {
			put(&b, ",");
			put_csv(&b, r->axis_values[a]);
		}
		put(&b, ",%s,%s,%d", r->seed, r->state, r->epochs);
		const double v[] = {r->final_acc, r->best_acc, r->best_epoch,  r->avg_w,
				    r->avg_a,	  r->size,     r->compression, r->bops};
		for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
			put(&b, ",");
			put_num(&b, v[k]);
		}
		put(&b, ",");
		put_wbits(&b, r);
		put(&b, ",");
		if (r->pareto >= 0)
			put(&b, "%d", r->pareto);
		put(&b, ",");
		put_csv(&b, r->path);
		put(&b, "\n");
	}
	rc = write_out(R, "summary.csv", &b);
	free(b.s);
	if (rc || !ng)
		return rc;
	memset(&b, 0, sizeof b);
	put(&b, "point,stage");
	for (unsigned a = 0; a < na; a++) {
		put(&b, ",");
		put_csv(&b, axis_name(R, a));
	}
	put(&b, ",trials,done");
	for (size_t c = 0; c < N_GROUP_COLS; c++)
		put(&b, ",%s_mean,%s_std", group_cols[c].csv, group_cols[c].csv);
	put(&b, "\n");
	for (int k = 0; k < ng; k++) {
		const struct row *f = &R->rows[g[k].first];
		put(&b, "%d,", f->point);
		put_csv(&b, f->stage);
		for (unsigned a = 0; a < na; a++) {
			put(&b, ",");
			put_csv(&b, f->axis_values[a]);
		}
		put(&b, ",%d,%d", g[k].n, g[k].n_done);
		for (size_t c = 0; c < N_GROUP_COLS; c++) {
			struct stat_cols s = group_stat(R, &g[k], group_cols[c].offset);
			put(&b, ",");
			put_num(&b, s.mean);
			put(&b, ",");
			put_num(&b, s.std);
		}
		put(&b, "\n");
	}
	rc = write_out(R, "summary_seeds.csv", &b);
	free(b.s);
	return rc;
}

/* Figures listed in summary.md (name, caption), filled while rendering. */
struct figlist {
	char name[64][200];
	char caption[64][256];
	int n;
};

static int write_md(struct report *R, const struct group *g, int ng, const struct figlist *figs)
{
	struct sbuf b = {0};
	unsigned na = R->kind == 1 ? R->plan->n_axes : 0;
	int counts[8] = {0};
	static const char *states[] = {"done",	   "running",	"pending",    "failed",
				       "diverged", "preempted", "unreadable", "other"};
	int rc;
	for (int i = 0; i < R->n_rows; i++) {
		int k;
		for (k = 0; k < 7 && strcmp(states[k], R->rows[i].state); k++)
			;
		counts[k]++;
	}
	if (R->kind == 1)
		put(&b,
		    "# Report: sweep %s\n\nFolder `%s`: %u trials, plan %s; %d rows (trial x "
		    "training stage):",
		    R->plan->name, R->dir, R->plan->n_trials, R->plan->hash, R->n_rows);
	else if (R->kind == 2)
		put(&b, "# Report: runs in %s\n\n%d run files:", R->dir, R->n_rows);
	else
		put(&b, "# Report: run %s\n\nRun file `%s`:", R->rows[0].id, R->src);
	for (int k = 0, first = 1; k < 8; k++)
		if (counts[k]) {
			put(&b, "%s %d %s", first ? "" : ",", counts[k], states[k]);
			first = 0;
		}
	put(&b, ".\n\nAccuracies are test accuracies in %%: *final* is the run's `final_test_acc` "
		"(the last epoch row while a run is going), *best* the highest `metrics/test_acc` "
		"and its epoch. Bits, size (bytes), compression and BOPs are the last row of "
		"`metrics/` (docs/methods/quantization.md); *w_bits* lists the weight bits per "
		"layer in network order (`quant/layer_names`). *Pareto*: on the front of "
		"(final accuracy up, average weight bits down) among done rows. Exact values: "
		"summary.csv.\n\n");
	if (R->lottery)
		put(&b, "The stages hold a lottery-ticket study: runs A-D side by side in "
			"[lottery.md](lottery.md).\n\n");
	put(&b, "## Trials\n\n|");
	if (R->kind == 1)
		put(&b, " # | id |%s", R->plan->n_stages ? " stage |" : "");
	else
		put(&b, " run |");
	for (unsigned a = 0; a < na; a++) {
		put(&b, " ");
		put_md(&b, axis_name(R, a));
		put(&b, " |");
	}
	put(&b, " seed | status | epochs | final acc %% | best acc %% (epoch) | avg W bits | "
		"avg A bits | size (bytes) | compression | BOPs | w_bits | Pareto |\n|");
	int ncols = (R->kind == 1 ? 2 + (R->plan->n_stages ? 1 : 0) : 1) + (int)na + 12;
	for (int c = 0; c < ncols; c++)
		put(&b, "---|");
	put(&b, "\n");
	for (int i = 0; i < R->n_rows; i++) {
		const struct row *r = &R->rows[i];
		put(&b, "|");
		if (R->kind == 1) {
			put(&b, " %d | %s |", r->index, r->id);
			if (R->plan->n_stages)
				put(&b, " %s |", r->stage);
		} else {
			put(&b, " ");
			put_md(&b, r->id);
			put(&b, " |");
		}
		for (unsigned a = 0; a < na; a++) {
			put(&b, " ");
			put_md(&b, r->axis_values[a]);
			put(&b, " |");
		}
		put(&b, " %s | %s | %d |", r->seed, r->state, r->epochs);
		md_num(&b, "%.2f", 100 * r->final_acc);
		if (isnan(r->best_acc))
			put(&b, " – |");
		else
			put(&b, " %.2f (%g) |", 100 * r->best_acc, r->best_epoch);
		md_num(&b, "%.2f", r->avg_w);
		md_num(&b, "%.2f", r->avg_a);
		md_num(&b, "%.0f", r->size);
		md_num(&b, "%.2f", r->compression);
		md_num(&b, "%.4g", r->bops);
		put(&b, " ");
		put_wbits(&b, r);
		put(&b, " | %s |\n", r->pareto == 1 ? "yes" : "");
	}
	if (ng) {
		put(&b,
		    "\n## Over seeds\n\nTrials that differ only by seed (same plan point): mean "
		    "± sample standard deviation over the done ones.\n\n| point |%s",
		    R->plan->n_stages ? " stage |" : "");
		for (unsigned a = 0; a < na; a++) {
			put(&b, " ");
			put_md(&b, axis_name(R, a));
			put(&b, " |");
		}
		put(&b, " done / trials |");
		for (size_t c = 0; c < N_GROUP_COLS; c++)
			put(&b, " %s |", group_cols[c].md);
		put(&b, "\n|");
		for (int c = 0; c < 2 + (R->plan->n_stages ? 1 : 0) + (int)na + (int)N_GROUP_COLS;
		     c++)
			put(&b, "---|");
		put(&b, "\n");
		for (int k = 0; k < ng; k++) {
			const struct row *f = &R->rows[g[k].first];
			put(&b, "| %d |", f->point);
			if (R->plan->n_stages)
				put(&b, " %s |", f->stage);
			for (unsigned a = 0; a < na; a++) {
				put(&b, " ");
				put_md(&b, f->axis_values[a]);
				put(&b, " |");
			}
			put(&b, " %d / %d |", g[k].n_done, g[k].n);
			for (size_t c = 0; c < N_GROUP_COLS; c++) {
				md_mean_std(&b, group_cols[c].mdfmt,
					    group_stat(R, &g[k], group_cols[c].offset),
					    group_cols[c].md_scale);
			}
			put(&b, "\n");
		}
	}
	if (figs->n) {
		put(&b,
		    "\n## Figures\n\nEach figure's data (`.dat`) and gnuplot script (`.gp`) lie "
		    "beside it; restyle by editing the script and running `gnuplot NAME.gp` in "
		    "this folder (`gnuplot -e \"fmt='svg'\" NAME.gp` for SVG; "
		    "docs/report.md).\n\n");
		for (int k = 0; k < figs->n; k++)
			put(&b, "- %s: `%s.gp`, `%s.dat`\n", figs->caption[k], figs->name[k],
			    figs->name[k]);
		put(&b, "\n");
		for (int k = 0; k < figs->n && (R->o->formats & (LB_REPORT_PNG | LB_REPORT_SVG));
		     k++) {
			char p[4400];
			snprintf(p, sizeof p, "%s/%s.%s", R->out, figs->name[k],
				 R->o->formats & LB_REPORT_PNG ? "png" : "svg");
			if (file_exists(p))
				put(&b, "![%s](%s.%s)\n\n", figs->caption[k], figs->name[k],
				    R->o->formats & LB_REPORT_PNG ? "png" : "svg");
		}
	}
	rc = write_out(R, "summary.md", &b);
	free(b.s);
	return rc;
}

/* ---- figures ---- */

/* The gnuplot program, or NULL when it cannot be found. */
static const char *find_gnuplot(const char *prog, char *buf, size_t n)
{
	if (strchr(prog, '/'))
		return access(prog, X_OK) == 0 ? prog : NULL;
	const char *path = getenv("PATH");
	if (!path)
		path = "/usr/bin:/bin";
	while (*path) {
		size_t len = strcspn(path, ":");
		snprintf(buf, n, "%.*s/%s", (int)(len ? len : 1), len ? path : ".", prog);
		if (access(buf, X_OK) == 0)
			return buf;
		path += len;
		if (*path == ':')
			path++;
	}
	return NULL;
}

/* Header of every script: the output format and file come from the variables
 * fmt and out (gnuplot -e), so the same script renders PNG and SVG. */
static void gp_header(struct sbuf *b, const char *name, const char *what, int w, int h)
{
	put(b,
	    "# %s\n# Written by lowbit report; data: %s.dat. Restyle freely, then run in this "
	    "folder:\n#   gnuplot %s.gp                    (PNG)\n#   gnuplot -e \"fmt='svg'\" "
	    "%s.gp    (SVG)\n",
	    what, name, name, name);
	put(b, "if (!exists(\"fmt\")) fmt = 'png'\nif (!exists(\"out\")) out = '%s.'.fmt\n", name);
	put(b,
	    "if (fmt eq 'svg') {\n    set terminal svg size %d,%d dynamic font 'DejaVu "
	    "Sans,14' noenhanced background '#ffffff'\n} else {\n    set terminal pngcairo size "
	    "%d,%d font 'DejaVu Sans,12' noenhanced\n}\nset output out\n",
	    w, h, w, h);
	put(b, "set grid lc rgb '#c8c8c8'\nset border lw 1.2\n");
}

/* Run gnuplot on OUT/name.gp for each asked format: to name.FMT.tmp, renamed
 * when gnuplot succeeds. Returns 0, or -1 when a rendering failed. */
static int render(struct report *R, const char *gnuplot, const char *name)
{
	static const struct {
		unsigned flag;
		const char *ext;
	} outs[] = {{LB_REPORT_PNG, "png"}, {LB_REPORT_SVG, "svg"}};
	int failed = 0;
	for (size_t k = 0; k < 2; k++) {
		char final[4400], tmp[4500], logp[4500], expr[4700];
		if (!(R->o->formats & outs[k].flag))
			continue;
		snprintf(final, sizeof final, "%s/%s.%s", R->out, name, outs[k].ext);
		unlink(final); /* never an old picture beside new data */
		if (!gnuplot)
			continue;
		snprintf(tmp, sizeof tmp, "%s.%s.tmp.%ld", name, outs[k].ext, (long)getpid());
		snprintf(logp, sizeof logp, "%s/%s.log.tmp.%ld", R->out, name, (long)getpid());
		snprintf(expr, sizeof expr, "fmt='%s'; out='%s'", outs[k].ext, tmp);
		fflush(NULL);
		pid_t pid = fork();
		if (pid == 0) {
			int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
			int nul = open("/dev/null", O_RDONLY);
			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
			}
			if (nul >= 0)
				dup2(nul, 0);
			if (chdir(R->out) == 0) {
				char gp[300];
				snprintf(gp, sizeof gp, "%s.gp", name);
				execl(gnuplot, gnuplot, "-e", expr, gp, (char *)NULL);
			}
			_exit(127);
		}
		int status = 0, ok = 0;
		char tmpfull[9200];
		snprintf(tmpfull, sizeof tmpfull, "%s/%s", R->out, tmp);
		if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
		    WEXITSTATUS(status) == 0) {
			struct stat st;
			ok = stat(tmpfull, &st) == 0 && st.st_size > 0 &&
			     rename(tmpfull, final) == 0;
		}
		if (!ok) {
			char line[300] = "";
			FILE *f = fopen(logp, "r");
			while (f && fgets(line, sizeof line, f))
				if (strstr(line, "rror") || strstr(line, "line "))
					break;
			if (f)
				fclose(f);
			line[strcspn(line, "\n")] = 0;
			lb_log(LB_LOG_WARN, "report: gnuplot failed on '%s/%s.gp' (%s)%s%s", R->out,
			       name,
			       pid < 0 ? "cannot fork"
			       : WIFEXITED(status)
				   ? (WEXITSTATUS(status) ? "nonzero exit" : "no output")
				   : "killed",
			       *line ? ": " : "", line);
			unlink(tmpfull);
			failed = 1;
		}
		unlink(logp);
	}
	return failed ? -1 : 0;
}

/* Write name.dat and name.gp, render, and list the figure. */
static int figure(struct report *R, const char *gnuplot, struct figlist *figs, const char *name,
		  const char *caption, struct sbuf *dat, struct sbuf *gp)
{
	char fn[300];
	int rc;
	snprintf(fn, sizeof fn, "%s.dat", name);
	if ((rc = write_out(R, fn, dat)))
		return rc;
	snprintf(fn, sizeof fn, "%s.gp", name);
	if ((rc = write_out(R, fn, gp)))
		return rc;
	if (gnuplot) {
		if (render(R, gnuplot, name))
			R->res->figures_failed++;
		else
			R->res->figures++;
	} else {
		render(R, NULL, name); /* removes stale pictures */
	}
	if (figs->n < 64) {
		snprintf(figs->name[figs->n], sizeof figs->name[0], "%s", name);
		snprintf(figs->caption[figs->n], sizeof figs->caption[0], "%s", caption);
		figs->n++;
	}
	return LB_OK;
}

static void sbuf_reset(struct sbuf *a, struct sbuf *b)
{
	free(a->s);
	free(b->s);
	memset(a, 0, sizeof *a);
	memset(b, 0, sizeof *b);
}

/* Accuracy against a cost (avg weight bits, or size in KiB): points, the
 * front of that cost, and the FP mean as a reference line. */
static int fig_tradeoff(struct report *R, const char *gnuplot, struct figlist *figs, int by_size)
{
	struct sbuf dat = {0}, gp = {0};
	const char *name = by_size ? "acc_vs_size" : "acc_vs_bits";
	int n = 0, n_fp = 0, rc;
	double fp_sum = 0;
	put(&dat, "# %s: done rows. tag label %s final_test_acc_%% on_front\n", name,
	    by_size ? "size_KiB" : "avg_w_bits");
	for (int i = 0; i < R->n_rows; i++) {
		const struct row *r = &R->rows[i];
		double x = by_size ? r->size / 1024 : r->avg_w;
		if (!is_done(r) || !isfinite(x) || !isfinite(r->final_acc) || x <= 0)
			continue;
		put(&dat, "\"%s\" \"%s\" ", r->tag, r->label);
		put_num(&dat, x);
		put(&dat, " ");
		put_num(&dat, 100 * r->final_acc);
		put(&dat, " %d\n", by_size ? r->pareto_size == 1 : r->pareto == 1);
		n++;
		if (r->avg_w >= 32) {
			fp_sum += r->final_acc;
			n_fp++;
		}
	}
	if (!n)
		return LB_OK;
	/* block 1: the front, in order of cost */
	put(&dat, "\n\n# the Pareto front, by increasing cost\n");
	int *order = malloc((size_t)R->n_rows * sizeof *order), m = 0;
	if (!order) {
		sbuf_reset(&dat, &gp);
		return lb_error(LB_ERR_OOM, "out of memory");
	}
	for (int i = 0; i < R->n_rows; i++)
		if ((by_size ? R->rows[i].pareto_size : R->rows[i].pareto) == 1)
			order[m++] = i;
	for (int a = 1; a < m; a++) /* insertion sort by cost, then accuracy */
		for (int b = a; b > 0; b--) {
			const struct row *p = &R->rows[order[b - 1]], *q = &R->rows[order[b]];
			double xp = by_size ? p->size : p->avg_w, xq = by_size ? q->size : q->avg_w;
			if (xp < xq || (xp == xq && p->final_acc <= q->final_acc))
				break;
			int t = order[b];
			order[b] = order[b - 1];
			order[b - 1] = t;
		}
	for (int k = 0; k < m; k++) {
		const struct row *r = &R->rows[order[k]];
		put(&dat, "\"%s\" \"%s\" ", r->tag, r->label);
		put_num(&dat, by_size ? r->size / 1024 : r->avg_w);
		put(&dat, " ");
		put_num(&dat, 100 * r->final_acc);
		put(&dat, " 1\n");
	}
	free(order);
	/* block 2: the uniform-bit reference, one point per bit-width b: the
	 * mean (and sample std) of the rows whose every layer is at b bits */
	int n_uni = 0, max_b = 0, *ub = malloc((size_t)R->n_rows * sizeof *ub);
	double *va = malloc((size_t)R->n_rows * sizeof *va),
	       *vx = malloc((size_t)R->n_rows * sizeof *vx);
	if (!ub || !va || !vx) {
		free(ub), free(va), free(vx);
		sbuf_reset(&dat, &gp);
		return lb_error(LB_ERR_OOM, "out of memory");
	}
	for (int i = 0; i < R->n_rows; i++) {
		const struct row *r = &R->rows[i];
		double x = by_size ? r->size / 1024 : r->avg_w;
		ub[i] = isfinite(x) && x > 0 && isfinite(r->final_acc) ? uniform_bits(R, r) : 0;
		if (ub[i] > max_b)
			max_b = ub[i];
	}
	for (int bits = 1; bits <= max_b; bits++) {
		int k = 0;
		for (int i = 0; i < R->n_rows; i++)
			if (ub[i] == bits) {
				va[k] = 100 * R->rows[i].final_acc;
				vx[k++] = by_size ? R->rows[i].size / 1024 : R->rows[i].avg_w;
			}
		if (!k)
			continue;
		if (!n_uni++)
			put(&dat,
			    "\n\n# uniform weight bits: done rows with every layer at b bits, "
			    "not learned (docs/report.md). b mean_%s mean_final_test_acc_%% "
			    "std_%% n\n",
			    by_size ? "size_KiB" : "avg_w_bits");
		struct stat_cols sa = stats(va, k), sx = stats(vx, k);
		put(&dat, "%d ", bits);
		put_num(&dat, sx.mean);
		put(&dat, " ");
		put_num(&dat, sa.mean);
		put(&dat, " ");
		if (sa.n > 1)
			put_num(&dat, sa.std);
		else
			put(&dat, "NaN"); /* one run: no spread (gnuplot skips the bar) */
		put(&dat, " %d\n", sa.n);
	}
	free(ub), free(va), free(vx);
	gp_header(&gp, name,
		  by_size ? "Final test accuracy against model size (weights only)"
			  : "Final test accuracy against average weight bits",
		  960, 640);
	put(&gp, "set title 'Test accuracy vs %s (%d done runs)'\n",
	    by_size ? "model size" : "average weight bits", n);
	if (by_size)
		put(&gp, "set xlabel 'model size: weights (KiB, log scale)'\nset logscale x 2\n");
	else
		put(&gp, "set xlabel 'average weight bits (parameter-weighted, log scale)'\nset "
			 "logscale x 2\nset xtics (1, 2, 3, 4, 6, 8, 16, 32)\n");
	put(&gp, "set ylabel 'final test accuracy (%%)'\nset key bottom right box opaque\n"
		 "set offsets graph 0.06, graph 0.06, graph 0.08, graph 0.08\n");
	if (n_fp)
		put(&gp,
		    "fp_acc = %.6f   # mean final test accuracy (%%) of the %d FP (32-bit) runs\n",
		    100 * fp_sum / n_fp, n_fp);
	put(&gp, "plot ");
	if (n_fp)
		put(&gp, "fp_acc with lines dt 2 lw 2 lc rgb '#555555' title sprintf('FP (32-bit) "
			 "mean: %%.2f %%%%', fp_acc), \\\n     ");
	if (n_uni) /* one legend entry for all bit-widths; each point says its b */
		put(&gp,
		    "'%s.dat' index 2 using 2:3 with linespoints dt 3 lw 2 pt 5 ps 1.2 lc rgb "
		    "'#2ca02c' title 'uniform b-bit weights: mean over runs (bar: std)', \\\n"
		    "     '' index 2 using 2:3:4 with yerrorbars pt 5 ps 0 lc rgb '#2ca02c' "
		    "notitle, \\\n     '' index 2 using 2:3:(sprintf('%%d-bit', int($1))) with "
		    "labels right offset char -1,0 font ',9' tc rgb '#2ca02c' notitle, \\\n     ",
		    name);
	put(&gp,
	    "'%s.dat' index 1 using 3:4 with linespoints lw 2 pt 7 ps 1.6 lc rgb '#d62728' "
	    "title 'Pareto front', \\\n     '' index 0 using 3:4 with points pt 7 ps 1.1 lc "
	    "rgb '#1f77b4' title 'runs'",
	    name);
	/* a tag beside each point, while they stay readable */
	put(&gp, n <= 30 ? ", \\\n     '' index 0 using 3:4:1 with labels offset char 0.6,0.7 "
			   "left font ',9' tc rgb '#333333' notitle\n"
			 : "\n");
	rc = figure(R, gnuplot, figs, name,
		    by_size ? "Final test accuracy vs model size (KiB), with its Pareto front, "
			      "the FP mean and the uniform-bit means"
			    : "Final test accuracy vs average weight bits, with the Pareto front, "
			      "the FP mean and the uniform-bit means",
		    &dat, &gp);
	sbuf_reset(&dat, &gp);
	return rc;
}

static int fig_curves(struct report *R, const char *gnuplot, struct figlist *figs)
{
	struct sbuf dat = {0}, gp = {0};
	int blocks = 0, rc, max_rows = 0, n_curves = 0;
	for (int i = 0; i < R->n_rows; i++)
		if (R->rows[i].epochs > max_rows)
			max_rows = R->rows[i].epochs;
	for (int i = 0; i < R->n_rows; i++)
		n_curves += R->rows[i].rf && R->rows[i].epochs > 0;
	/* the legend goes below the plot, two columns: the plot keeps its width */
	gp_header(&gp, "learning_curves", "Test accuracy per epoch, one line per run", 1000,
		  560 + 22 * ((n_curves <= 24 ? n_curves : 0) + 1) / 2);
	/* past 24 lines a legend is unreadable: the data file names each block */
	if (n_curves > 24)
		put(&gp,
		    "set title 'Learning curves (%d runs; legend off: see the block comments "
		    "in learning_curves.dat)'\nunset key\n",
		    n_curves);
	else
		put(&gp, "set title 'Learning curves'\nset key below left Left reverse maxcols 2 "
			 "font ',10'\n");
	put(&gp, "set xlabel 'epoch'\nset ylabel 'test accuracy (%%)'\n%s",
	    max_rows <= 20 ? "set xtics 1\n" : "");
	for (int i = 0; i < R->n_rows; i++) {
		const struct row *r = &R->rows[i];
		int rows = 0, width = 0, er = 0, ew = 0;
		const double *acc =
		    r->rf ? lb_runfile_get_series(r->rf, "metrics/test_acc", &rows, &width) : NULL;
		const double *ep =
		    r->rf ? lb_runfile_get_series(r->rf, "metrics/epoch", &er, &ew) : NULL;
		if (!acc || width != 1 || rows < 1)
			continue;
		put(&dat, "%s# %s (%s)\n# epoch test_acc_%%\n", blocks ? "\n\n" : "", r->label,
		    r->state);
		for (int e = 0; e < rows; e++) {
			put_num(&dat, ep && ew == 1 && e < er ? ep[e] : e + 1);
			put(&dat, " ");
			put_num(&dat, 100 * acc[e]);
			put(&dat, "\n");
		}
		put(&gp,
		    "%s'learning_curves.dat' index %d using 1:2 with linespoints lw 2 pt 7 ps 0.8 "
		    "title '",
		    blocks ? ", \\\n     " : "plot ", blocks);
		put_gq(&gp, r->label);
		put(&gp, "'");
		blocks++;
	}
	put(&gp, "\n");
	rc = blocks ? figure(R, gnuplot, figs, "learning_curves",
			     "Learning curves: test accuracy per epoch", &dat, &gp)
		    : LB_OK;
	sbuf_reset(&dat, &gp);
	return rc;
}

/* Rows x layers of the final weight bits; rows whose layers differ from the
 * last such row's are left out (another model; rows are visited last first). */
static int fig_heatmap(struct report *R, const char *gnuplot, struct figlist *figs)
{
	struct sbuf dat = {0}, gp = {0};
	const char *const *names0 = NULL;
	int L = 0, n = 0, rc;
	for (int i = R->n_rows - 1; i >= 0; i--) { /* gnuplot draws row 0 at the bottom */
		const struct row *r = &R->rows[i];
		int nl = 0, rows = 0, width = 0;
		if (!r->rf)
			continue;
		const char *const *names = lb_runfile_get_strings(r->rf, "quant/layer_names", &nl);
		const double *w = lb_runfile_get_series(r->rf, "metrics/w_bits", &rows, &width);
		if (!names || !w || rows < 1 || width != nl || nl < 1)
			continue;
		if (!names0) {
			names0 = names;
			L = nl;
			put(&dat, "# weight bits of each conv/linear layer (last epoch row of "
				  "metrics/w_bits); 32 = not quantized\n\"run\"");
			for (int l = 0; l < L; l++)
				put(&dat, " \"%s\"", names[l]);
			put(&dat, "\n");
		} else {
			int same = nl == L;
			for (int l = 0; same && l < L; l++)
				same = !strcmp(names[l], names0[l]);
			if (!same)
				continue;
		}
		put(&dat, "\"%s\"", r->tag);
		for (int l = 0; l < L; l++) {
			put(&dat, " ");
			put_num(&dat, w[(size_t)(rows - 1) * (size_t)width + (size_t)l]);
		}
		put(&dat, "\n");
		n++;
	}
	if (!n) {
		sbuf_reset(&dat, &gp);
		return LB_OK;
	}
	int h = 200 + 34 * n, wd = 420 + 90 * L;
	gp_header(&gp, "w_bits_heatmap", "Per-layer weight bits: rows = runs, columns = layers",
		  wd < 800 ? 800 : wd,
		  h < 420    ? 420
		  : h > 3000 ? 3000
			     : h);
	put(&gp, "set title 'Weight bits per layer (last epoch)'\nset xlabel 'layer (network "
		 "order)'\nset ylabel 'run'\nunset grid\nset tics nomirror out\nset xtics rotate "
		 "by -30 left\nset logscale cb 2\nset cbrange [1:32]\nset cbtics (1, 2, 4, 8, 16, "
		 "32)\nset cblabel 'bits'\nset palette defined (0 '#2c7bb6', 0.35 '#abd9e9', 0.55 "
		 "'#ffffbf', 0.75 '#fdae61', 1 '#d7191c')\n");
	put(&gp,
	    "plot 'w_bits_heatmap.dat' matrix rowheaders columnheaders using 1:2:3 with image "
	    "notitle, \\\n     '' matrix rowheaders columnheaders using 1:2:(sprintf('%%g', $3)) "
	    "with labels font ',11' notitle\n");
	rc = figure(R, gnuplot, figs, "w_bits_heatmap",
		    "Per-layer weight bits (rows: runs, columns: layers in network order)", &dat,
		    &gp);
	sbuf_reset(&dat, &gp);
	return rc;
}

/* Any numeric array as doubles (NULL when absent); owned by the caller. */
static double *array_f64(const struct lb_runfile *rf, const char *path, int *n_out, int *rank_out,
			 uint64_t *dims)
{
	enum lb_dtype dt;
	int rank = 0;
	const void *v = lb_runfile_get_array(rf, path, &dt, &rank, dims);
	if (!v || rank < 1)
		return NULL;
	uint64_t n = 1;
	for (int k = 0; k < rank; k++)
		n *= dims[k];
	double *out = malloc((size_t)(n ? n : 1) * sizeof *out);
	if (!out)
		return NULL;
	for (uint64_t i = 0; i < n; i++)
		switch (dt) {
		case LB_DT_F32:
			out[i] = ((const float *)v)[i];
			break;
		case LB_DT_F64:
			out[i] = ((const double *)v)[i];
			break;
		case LB_DT_I32:
			out[i] = ((const int32_t *)v)[i];
			break;
		case LB_DT_I64:
			out[i] = (double)((const int64_t *)v)[i];
			break;
		case LB_DT_U8:
			out[i] = ((const uint8_t *)v)[i];
			break;
		}
	*n_out = (int)n;
	*rank_out = rank;
	return out;
}

static int fig_ptq(struct report *R, const char *gnuplot, struct figlist *figs)
{
	int rc = LB_OK;
	for (int i = 0; i < R->n_rows && !rc; i++) {
		const struct row *r = &R->rows[i];
		uint64_t d[4], dw[4], da[4];
		int n = 0, rank = 0, nw = 0, na = 0, rw = 0, ra = 0;
		if (!r->rf)
			continue;
		double *acc = array_f64(r->rf, "ptq/test_acc", &n, &rank, d);
		double *wb = array_f64(r->rf, "ptq/w_bits", &nw, &rw, dw);
		double *ab = array_f64(r->rf, "ptq/a_bits", &na, &ra, da);
		if (acc && wb && ab && rank == 2 && d[0] == (uint64_t)nw && d[1] == (uint64_t)na) {
			struct sbuf dat = {0}, gp = {0};
			char name[200], cap[256];
			double fp = NAN;
			lb_runfile_get_attr_f64(r->rf, "ptq", "fp_test_acc", &fp);
			snprintf(name, sizeof name, "ptq-%s", r->tag);
			put(&dat,
			    "# PTQ test accuracy (%%) of %s: rows = weight bits, columns = "
			    "activation bits (ptq/test_acc)\n\"W/A\"",
			    r->label);
			for (int a = 0; a < na; a++)
				put(&dat, " \"%g\"", ab[a]);
			put(&dat, "\n");
			/* gnuplot draws the first row at the bottom: most bits on top */
			for (int w = nw - 1; w >= 0; w--) {
				put(&dat, "\"%g\"", wb[w]);
				for (int a = 0; a < na; a++) {
					/* percent to 0.01 (one image in 10,000), not the
					 * round-trip digits of 100 x a fraction */
					double v = 100 * acc[(size_t)w * (size_t)na + (size_t)a];
					put(&dat, " ");
					if (!isnan(v))
						put(&dat, "%.2f", v);
				}
				put(&dat, "\n");
			}
			gp_header(&gp, name, "Post-training quantization grid", 820, 640);
			put(&gp, "set title 'PTQ test accuracy (%%) of ");
			put_gq(&gp, r->label);
			if (!isnan(fp))
				put(&gp, " (FP %.2f %%)", 100 * fp);
			put(&gp,
			    "'\nset xlabel 'activation bits'\nset ylabel 'weight bits'\nunset "
			    "grid\nset tics nomirror out\nset cblabel 'test accuracy (%%)'\nset "
			    "palette defined (0 '#440154', 0.5 '#21918c', 1 '#fde725')\n");
			put(&gp,
			    "plot '%s.dat' matrix rowheaders columnheaders using 1:2:3 with image "
			    "notitle, \\\n     '' matrix rowheaders columnheaders using "
			    "1:2:(sprintf('%%.1f', $3)) with labels font ',11' tc rgb '#ffffff' "
			    "notitle\n",
			    name);
			snprintf(cap, sizeof cap, "PTQ grid of %s: test accuracy per (W, A) bits",
				 r->label);
			rc = figure(R, gnuplot, figs, name, cap, &dat, &gp);
			sbuf_reset(&dat, &gp);
		}
		free(acc);
		free(wb);
		free(ab);
	}
	return rc;
}

static int fig_bits_traj(struct report *R, const char *gnuplot, struct figlist *figs)
{
	int rc = LB_OK;
	for (int i = 0; i < R->n_rows && !rc; i++) {
		const struct row *r = &R->rows[i];
		int rows = 0, width = 0, er = 0, ew = 0, nl = 0;
		if (!r->rf || !r->learned_bits)
			continue;
		const double *w = lb_runfile_get_series(r->rf, "metrics/w_bits", &rows, &width);
		const double *ep = lb_runfile_get_series(r->rf, "metrics/epoch", &er, &ew);
		const char *const *names = lb_runfile_get_strings(r->rf, "quant/layer_names", &nl);
		if (!w || rows < 1 || !names || nl != width)
			continue;
		struct sbuf dat = {0}, gp = {0};
		char name[200], cap[256];
		snprintf(name, sizeof name, "bits-%s", r->tag);
		put(&dat, "# learned weight bits per epoch of %s (metrics/w_bits)\n\"epoch\"",
		    r->label);
		for (int l = 0; l < nl; l++)
			put(&dat, " \"%s\"", names[l]);
		put(&dat, "\n");
		for (int e = 0; e < rows; e++) {
			put_num(&dat, ep && ew == 1 && e < er ? ep[e] : e + 1);
			for (int l = 0; l < nl; l++) {
				put(&dat, " ");
				put_num(&dat, w[(size_t)e * (size_t)width + (size_t)l]);
			}
			put(&dat, "\n");
		}
		gp_header(&gp, name, "Learned weight bits per layer over the epochs", 960, 600);
		put(&gp, "set title 'Learned weight bits of ");
		put_gq(&gp, r->label);
		put(&gp,
		    "'\nset xlabel 'epoch'\nset ylabel 'weight bits'\nset ytics 1\n%sset "
		    "offsets graph 0.02, graph 0.02, 0.5, 0.5\nset key outside right top\n"
		    "# dash and point types differ per layer: equal bits overlap visibly\n"
		    "plot for [c=2:%d] '%s.dat' using 1:c with linespoints lw 2 dt c-1 pt c+2 "
		    "ps 1.4 title columnheader(c)\n",
		    rows <= 20 ? "set xtics 1\n" : "", nl + 1, name);
		snprintf(cap, sizeof cap, "Learned weight bits per layer over the epochs, %s",
			 r->label);
		rc = figure(R, gnuplot, figs, name, cap, &dat, &gp);
		sbuf_reset(&dat, &gp);
	}
	return rc;
}

/* ---- lottery.md ---- */

/* A lottery-ticket study (docs/methods.md 2.5) among the stages, found by
 * their kinds and inputs, never their names: L learns the bits (learn_bits),
 * Rw rewinds L (rewind, input L), B retrains from Rw at L's bits (retrain,
 * input Rw, bits_from L: the ticket); C train from Rw without bits_from; D
 * retrain without input at L's bits; P is the ptq_eval of B. */
#define LOTT_MAX 32
struct lottery {
	int L, Rw, B, P;
	int C[LOTT_MAX], nc, D[LOTT_MAX], nd;
};

static int kind_is(const struct report *R, int s, const char *k)
{
	return s >= 0 && !strcmp(R->plan->stage_kinds[s], k);
}

static int find_lottery(const struct report *R, struct lottery *lt)
{
	int n = R->kind == 1 && R->st_input ? (int)R->plan->n_stages : 0;
	memset(lt, 0, sizeof *lt);
	lt->B = lt->P = -1;
	for (int s = 0; s < n && lt->B < 0; s++) {
		int in = R->st_input[s], bf = R->st_bits[s];
		if (kind_is(R, s, "retrain") && kind_is(R, in, "rewind") &&
		    kind_is(R, bf, "learn_bits") && R->st_input[in] == bf) {
			lt->B = s;
			lt->Rw = in;
			lt->L = bf;
		}
	}
	if (lt->B < 0)
		return 0;
	for (int s = 0; s < n; s++) {
		int in = R->st_input[s], bf = R->st_bits[s];
		if (s == lt->B)
			continue;
		if (in == lt->Rw && bf < 0 &&
		    (kind_is(R, s, "train") || kind_is(R, s, "retrain") ||
		     kind_is(R, s, "fine_tune"))) {
			if (lt->nc < LOTT_MAX)
				lt->C[lt->nc++] = s;
		} else if (kind_is(R, s, "retrain") && in < 0 && bf == lt->L) {
			if (lt->nd < LOTT_MAX)
				lt->D[lt->nd++] = s;
		} else if (kind_is(R, s, "ptq_eval") && in == lt->B && lt->P < 0) {
			lt->P = s;
		}
	}
	return 1;
}

/* The row of trial t and stage s, or -1. */
static int row_of(const struct report *R, unsigned t, int s)
{
	for (int i = 0; i < R->n_rows; i++)
		if (R->rows[i].index == (int)t && R->rows[i].stage_i == s)
			return i;
	return -1;
}

/* The group (make_groups' kind) of stage s over the trials tr[0..nt): the
 * rows that differ only by seed. members has room for nt. */
static void stage_group(const struct report *R, const unsigned *tr, int nt, int s, struct group *g,
			int *members)
{
	g->members = members;
	g->n = g->n_done = 0;
	g->first = -1;
	for (int k = 0; k < nt; k++) {
		int i = row_of(R, tr[k], s);
		if (i < 0)
			continue;
		if (g->first < 0)
			g->first = i;
		members[g->n++] = i;
		g->n_done += is_done(&R->rows[i]);
	}
}

/* Stage s in backticks with its kind: "`ticket` (retrain". */
static void put_stage(struct sbuf *b, const struct report *R, int s)
{
	put(b, "`%s` (%s", R->plan->stage_names[s], R->plan->stage_kinds[s]);
}

/* "`a` (train), `b` (train)": the stages of one run letter. */
static void put_stage_list(struct sbuf *b, const struct report *R, const int *s, int n)
{
	for (int k = 0; k < n; k++) {
		put(b, "%s", k ? ", " : "");
		put_stage(b, R, s[k]);
		put(b, ")");
	}
}

/* A row of the per-run table: the over-seeds statistics of stage s. */
static void lott_run_row(struct sbuf *b, const struct report *R, const char *run, int s,
			 const struct group *g)
{
	put(b, "| %s | %s | %d / %d |", run, R->plan->stage_names[s], g->n_done, g->n);
	md_mean_std(b, "%.2f", group_stat(R, g, offsetof(struct row, final_acc)), 100);
	md_mean_std(b, "%.2f", group_stat(R, g, offsetof(struct row, best_acc)), 100);
	md_mean_std(b, "%.2f", group_stat(R, g, offsetof(struct row, avg_w)), 1);
	/* the per-layer bits: each distinct value over the seeds, with its count */
	char seen[LOTT_MAX][256];
	int count[LOTT_MAX], ns = 0, any = 0;
	for (int m = 0; m < g->n; m++) {
		char w[256];
		const struct row *r = &R->rows[g->members[m]];
		if (!is_done(r))
			continue;
		layer_bits_str(r, w, sizeof w);
		if (!*w)
			continue;
		int k;
		for (k = 0; k < ns && strcmp(seen[k], w); k++)
			;
		if (k == ns && ns < LOTT_MAX) {
			snprintf(seen[ns], sizeof seen[0], "%s", w);
			count[ns++] = 0;
		}
		if (k < ns)
			count[k]++;
	}
	put(b, " ");
	for (int k = 0; k < ns; k++, any = 1) {
		put(b, "%s%s", k ? ", " : "", seen[k]);
		if (ns > 1)
			put(b, " (×%d)", count[k]);
	}
	put(b, "%s |", any ? "" : "–");
	md_mean_std(b, "%.2f", group_stat(R, g, offsetof(struct row, compression)), 1);
	put(b, "\n");
}

/* "B − X (ticket − reinit): +1.23 points (mean over 3 seeds; per seed: ...)":
 * the final accuracies of stages sb and sx paired by trial (the same seed),
 * over the trials where both are done. */
static void lott_diff(struct sbuf *b, const struct report *R, const unsigned *tr, int nt, int sb,
		      int sx, double *d)
{
	int n = 0;
	for (int k = 0; k < nt; k++) {
		int ib = row_of(R, tr[k], sb), ix = row_of(R, tr[k], sx);
		if (ib >= 0 && ix >= 0 && is_done(&R->rows[ib]) && is_done(&R->rows[ix]) &&
		    isfinite(R->rows[ib].final_acc) && isfinite(R->rows[ix].final_acc))
			d[n++] = 100 * (R->rows[ib].final_acc - R->rows[ix].final_acc);
	}
	struct stat_cols s = stats(d, n);
	if (!n) {
		put(b, "no seed with both runs done\n");
		return;
	}
	put(b, "%+.2f points (mean over %d seed%s", s.mean, n, n > 1 ? "s" : "");
	if (n > 1) {
		put(b, "; per seed:");
		for (int k = 0; k < n; k++)
			put(b, "%s %+.2f", k ? "," : "", d[k]);
	}
	put(b, ")\n");
}

/* The ticket's PTQ grid (stage P): its diagonal W = A = b bits and the FP
 * accuracy, mean ± std over the done trials. */
static void lott_ptq(struct sbuf *b, const struct report *R, const struct lottery *lt,
		     const unsigned *tr, int nt, const char *h)
{
	double diag_b[16], *v = malloc((size_t)(nt ? nt : 1) * 17 * sizeof *v);
	int nd = -1, n = 0;
	if (!v)
		return;
	for (int k = 0; k < nt; k++) {
		int i = row_of(R, tr[k], lt->P), nw = 0, na = 0, nacc = 0, rk = 0;
		uint64_t d[4];
		double fp = NAN, *wb = NULL, *ab = NULL, *acc = NULL;
		if (i < 0 || !is_done(&R->rows[i]))
			continue;
		const struct lb_runfile *rf = R->rows[i].rf;
		wb = array_f64(rf, "ptq/w_bits", &nw, &rk, d);
		ab = array_f64(rf, "ptq/a_bits", &na, &rk, d);
		acc = array_f64(rf, "ptq/test_acc", &nacc, &rk, d);
		if (wb && ab && acc && nacc == nw * na) {
			lb_runfile_get_attr_f64(rf, "ptq", "fp_test_acc", &fp);
			if (nd < 0) { /* the diagonal of the first grid names the columns */
				nd = 0;
				for (int w = 0; w < nw && nd < 16; w++)
					for (int a = 0; a < na; a++)
						if (ab[a] == wb[w] && nd < 16)
							diag_b[nd++] = wb[w];
			}
			double *row = v + (size_t)n * 17;
			row[0] = 100 * fp;
			for (int c = 0; c < nd; c++) {
				row[1 + c] = NAN;
				for (int w = 0; w < nw; w++)
					for (int a = 0; a < na; a++)
						if (wb[w] == diag_b[c] && ab[a] == diag_b[c])
							row[1 + c] =
							    100 *
							    acc[(size_t)w * (size_t)na + (size_t)a];
			}
			n++;
		}
		free(wb), free(ab), free(acc);
	}
	if (nd > 0) {
		put(b,
		    "\n%s PTQ of the ticket\n\nStage `%s` (ptq_eval of `%s`): the post-training "
		    "quantization grid of the ticket's final weights (`ptq/test_acc`), shown on "
		    "its diagonal: every layer's weights and activations at b bits (W = A = b), "
		    "and the unquantized accuracy (`ptq` attribute `fp_test_acc`); test accuracy "
		    "in %%, mean ± std over the trials whose grid is there. The whole grid: the "
		    "figures `ptq-TAG` of summary.md.\n\n| stage | grids | FP |",
		    h, R->plan->stage_names[lt->P], R->plan->stage_names[lt->B]);
		for (int c = 0; c < nd; c++)
			put(b, " W = A = %g |", diag_b[c]);
		put(b, "\n|");
		for (int c = 0; c < nd + 3; c++)
			put(b, "---|");
		put(b, "\n| %s | %d |", R->plan->stage_names[lt->P], n);
		for (int c = 0; c <= nd; c++) {
			double col[4096];
			int m = 0;
			for (int k = 0; k < n && m < 4096; k++)
				col[m++] = v[(size_t)k * 17 + (size_t)c];
			md_mean_std(b, "%.2f", stats(col, m), 1);
		}
		put(b, "\n");
	}
	free(v);
}

/* One plan point's tables: runs A-D over seeds, per seed, the differences. */
static void lott_point(struct sbuf *b, const struct report *R, const struct lottery *lt,
		       const unsigned *tr, int nt, const char *h, int *members, double *d)
{
	const struct lb_plan_rec *p = R->plan;
	int runs[2 + 2 * LOTT_MAX], nr = 0;
	char roles[2 + 2 * LOTT_MAX];
	struct group g;
	runs[nr] = lt->L, roles[nr++] = 'A';
	runs[nr] = lt->B, roles[nr++] = 'B';
	for (int k = 0; k < lt->nc; k++)
		runs[nr] = lt->C[k], roles[nr++] = 'C';
	for (int k = 0; k < lt->nd; k++)
		runs[nr] = lt->D[k], roles[nr++] = 'D';
	put(b,
	    "%s Runs over seeds\n\n| run | stage | done / trials | final acc %% | best acc %% "
	    "| avg W bits | W bits per layer | compression |\n|---|---|---|---|---|---|---|---|"
	    "\n",
	    h);
	for (int k = 0; k < nr; k++) {
		char run[2] = {roles[k], 0};
		stage_group(R, tr, nt, runs[k], &g, members);
		lott_run_row(b, R, run, runs[k], &g);
	}
	put(b,
	    "\n%s Per seed\n\nFinal test accuracy (%%) of each run; A's learned W bits per "
	    "layer.\n\n| seed | trial |",
	    h);
	for (int k = 0; k < nr; k++)
		put(b, " %c `%s` |", roles[k], p->stage_names[runs[k]]);
	put(b, " A's W bits |\n|");
	for (int k = 0; k < nr + 3; k++)
		put(b, "---|");
	put(b, "\n");
	for (int t = 0; t < nt; t++) {
		char w[256] = "";
		put(b, "| %llu | %s |", (unsigned long long)p->trials[tr[t]].seed,
		    p->trials[tr[t]].id);
		for (int k = 0; k < nr; k++) {
			int i = row_of(R, tr[t], runs[k]);
			if (i >= 0 && is_done(&R->rows[i]))
				md_num(b, "%.2f", 100 * R->rows[i].final_acc);
			else
				put(b, " %s |", i >= 0 ? R->rows[i].state : "–");
		}
		int ia = row_of(R, tr[t], lt->L);
		if (ia >= 0 && is_done(&R->rows[ia]))
			layer_bits_str(&R->rows[ia], w, sizeof w);
		put(b, " %s |\n", *w ? w : "–");
	}
	put(b,
	    "\n%s Differences\n\nFinal test accuracy of B minus the other runs, in points, "
	    "paired by trial (the same seed and θ0) over the trials where both are done.\n\n",
	    h);
	const char *nb = p->stage_names[lt->B];
	put(b, "- B − A (`%s` − `%s`): ", nb, p->stage_names[lt->L]);
	lott_diff(b, R, tr, nt, lt->B, lt->L, d);
	for (int k = 0; k < lt->nd; k++) {
		put(b, "- B − D (`%s` − `%s`): ", nb, p->stage_names[lt->D[k]]);
		lott_diff(b, R, tr, nt, lt->B, lt->D[k], d);
	}
	for (int k = 0; k < lt->nc; k++) {
		put(b, "- B − C (`%s` − `%s`): ", nb, p->stage_names[lt->C[k]]);
		lott_diff(b, R, tr, nt, lt->B, lt->C[k], d);
	}
	/* the most accurate C (mean final accuracy) at no more average bits than B */
	stage_group(R, tr, nt, lt->B, &g, members);
	struct stat_cols bb = group_stat(R, &g, offsetof(struct row, avg_w));
	int best = -1;
	double best_acc = NAN, best_bits = NAN;
	for (int k = 0; k < lt->nc && bb.n; k++) {
		stage_group(R, tr, nt, lt->C[k], &g, members);
		struct stat_cols cb = group_stat(R, &g, offsetof(struct row, avg_w)),
				 ca = group_stat(R, &g, offsetof(struct row, final_acc));
		if (cb.n && ca.n && cb.mean <= bb.mean + 1e-9 && (best < 0 || ca.mean > best_acc)) {
			best = lt->C[k];
			best_acc = ca.mean;
			best_bits = cb.mean;
		}
	}
	if (lt->nc && bb.n) {
		put(b, "- B − best C at ≤ the ticket's average W bits (%.2f): ", bb.mean);
		if (best < 0)
			put(b, "no C run at ≤ %.2f bits\n", bb.mean);
		else {
			put(b, "`%s` (%.2f bits, mean %.2f %%): ", p->stage_names[best], best_bits,
			    100 * best_acc);
			lott_diff(b, R, tr, nt, lt->B, best, d);
		}
	}
	if (lt->P >= 0)
		lott_ptq(b, R, lt, tr, nt, h);
}

/* OUT/lottery.md when the stages hold a lottery-ticket study; an older one
 * goes when they do not. *written = 1 when written. */
static int write_lottery(struct report *R, int *written)
{
	struct lottery lt;
	const struct lb_plan_rec *p = R->plan;
	char path[4200];
	*written = 0;
	snprintf(path, sizeof path, "%s/lottery.md", R->out);
	if (!find_lottery(R, &lt)) {
		unlink(path);
		return LB_OK;
	}
	struct sbuf b = {0};
	unsigned *tr = malloc((p->n_trials + 1) * sizeof *tr);
	int *members = malloc((p->n_trials + 1) * sizeof *members);
	double *d = malloc((p->n_trials + 1) * sizeof *d);
	unsigned n_points = 0;
	int rc;
	if (!tr || !members || !d) {
		free(tr), free(members), free(d);
		return lb_error(LB_ERR_OOM, "out of memory");
	}
	put(&b,
	    "# Lottery-ticket study: sweep %s\n\nFolder `%s`, plan %s. The runs of the "
	    "quantized lottery ticket study (docs/methods.md §2.5), found among the stages by "
	    "their kinds and inputs:\n\n- **A** ",
	    p->name, R->dir, p->hash);
	put_stage(&b, R, lt.L);
	put(&b, "): learns the per-layer weight bits.\n- **B** ");
	put_stage(&b, R, lt.B);
	put(&b, ", input `%s`, bits_from `%s`): the ticket: `%s` rewinds `%s` to ",
	    p->stage_names[lt.Rw], p->stage_names[lt.L], p->stage_names[lt.Rw],
	    p->stage_names[lt.L]);
	if (R->st_step[lt.Rw])
		put(&b, "its parameters after step %d", R->st_step[lt.Rw]);
	else
		put(&b, "its initial parameters θ0");
	put(&b, "; B trains from there at A's learned bits.\n");
	if (lt.nc) {
		put(&b, "- **C** ");
		put_stage_list(&b, R, lt.C, lt.nc);
		put(&b, ", input `%s`: the same start at the weight bits of %s own config.\n",
		    p->stage_names[lt.Rw], lt.nc > 1 ? "their" : "its");
	}
	if (lt.nd) {
		put(&b, "- **D** ");
		put_stage_list(&b, R, lt.D, lt.nd);
		put(&b, ", no input, bits_from `%s`: a fresh initialisation at A's learned bits.\n",
		    p->stage_names[lt.L]);
	}
	if (lt.P >= 0) {
		put(&b, "- **PTQ** ");
		put_stage(&b, R, lt.P);
		put(&b, ", input `%s`): the post-training quantization grid of the ticket.\n",
		    p->stage_names[lt.B]);
	}
	put(&b, "\nAccuracies are test accuracies in %%: *final* is `final_test_acc`, *best* the "
		"highest `metrics/test_acc`. Avg W bits and compression are the last row of "
		"`metrics/`; *W bits per layer* the last row of `metrics/w_bits` (else "
		"`quant/learned_w_bits`), in network order, each distinct value with its count "
		"when the seeds differ. Each run's row: mean ± sample standard deviation over the "
		"done trials of the plan point (trials that differ only by seed; n = done / "
		"trials). Every number is computed from the run files; summary.csv has each "
		"run's exact values.\n");
	for (unsigned t0 = 0; t0 < p->n_trials; t0++) {
		int nt = 0, seen = 0;
		for (unsigned t = 0; t < t0 && !seen; t++)
			seen = p->trials[t].point == p->trials[t0].point;
		if (seen)
			continue;
		for (unsigned t = t0; t < p->n_trials; t++)
			if (p->trials[t].point == p->trials[t0].point)
				tr[nt++] = t;
		n_points++;
		put(&b, "\n");
		int many = 0;
		for (unsigned t = t0 + 1; t < p->n_trials && !many; t++)
			many = p->trials[t].point != p->trials[t0].point;
		if (many || n_points > 1) {
			put(&b, "## Point %u:", p->trials[t0].point);
			for (unsigned a = 0; a < p->n_axes; a++)
				if (R->vary[a]) {
					put(&b, " ");
					put_md(&b, axis_name(R, a));
					put(&b, " = ");
					put_md(&b, p->trials[t0].values[a]);
				}
			put(&b, "\n\n");
		}
		lott_point(&b, R, &lt, tr, nt, many || n_points > 1 ? "###" : "##", members, d);
	}
	rc = write_out(R, "lottery.md", &b);
	*written = rc == LB_OK;
	free(b.s);
	free(tr), free(members), free(d);
	return rc;
}

/* ---- the report ---- */

static void free_report(struct report *R)
{
	for (int i = 0; i < R->n_rows; i++)
		lb_runfile_free(R->rows[i].rf);
	free(R->rows);
	free(R->vary);
	free(R->st_input);
	free(R->st_bits);
	free(R->st_step);
	lb_plan_rec_free(R->plan);
}

int lb_report_write(const char *path, const struct lb_report_opts *o, struct lb_report_outcome *res)
{
	struct report R = {0};
	struct stat st;
	struct group *groups = NULL;
	struct figlist *figs = NULL;
	int ng = 0, rc = LB_OK;
	memset(res, 0, sizeof *res);
	R.src = path;
	R.o = o;
	R.res = res;
	if (stat(path, &st) != 0)
		return lb_error(LB_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
	if (S_ISDIR(st.st_mode)) {
		snprintf(R.dir, sizeof R.dir, "%s", path);
		rc = lb_plan_rec_read(R.dir, &R.plan);
		if (rc == LB_OK)
			R.kind = 1;
		else if (rc == LB_ERR_IO && errno == ENOENT)
			R.kind = 2;
		else
			return lb_error_prefix(rc, "report");
		rc = LB_OK;
	} else {
		struct lb_runfile *rf = NULL;
		rc = lb_runfile_read_kind(path, NULL, &rf);
		if (rc)
			return rc;
		if (!strcmp(lb_runfile_kind(rf), "sweep")) {
			/* DIR/sweep.h5: report its folder (the trial files are the truth) */
			const char *slash = strrchr(path, '/');
			lb_runfile_free(rf);
			snprintf(R.dir, sizeof R.dir, "%.*s", slash ? (int)(slash - path) : 1,
				 slash ? path : ".");
			if ((rc = lb_plan_rec_read(R.dir, &R.plan)))
				return lb_error_prefix(rc, "report: '%s' has no plan.tsv beside it",
						       path);
			R.kind = 1;
		} else {
			R.kind = 0;
			if (!(R.rows = calloc(1, sizeof *R.rows))) {
				lb_runfile_free(rf);
				return lb_error(LB_ERR_OOM, "out of memory");
			}
			R.n_rows = 1;
			row_init(&R.rows[0]);
			R.rows[0].rf = rf;
			snprintf(R.rows[0].path, sizeof R.rows[0].path, "%s", path);
			const char *nm = lb_runfile_get_attr_str(rf, "", "name");
			snprintf(R.rows[0].id, sizeof R.rows[0].id, "%s", nm ? nm : "run");
			int64_t seed;
			if (!lb_runfile_get_attr_i64(rf, "", "seed", &seed))
				snprintf(R.rows[0].seed, sizeof R.rows[0].seed, "%lld",
					 (long long)seed);
			row_metrics(&R.rows[0]);
			res->rows_read = 1;
		}
	}
	if (R.kind == 1 && !(rc = load_sweep(&R)))
		rc = load_stage_graph(&R);
	else if (R.kind == 2)
		rc = load_folder(&R);
	if (rc)
		goto out;
	res->rows = R.n_rows;
	if (!res->rows_read) {
		if (R.kind == 1)
			rc = lb_error(LB_ERR_STATE,
				      "report: no results in '%s' yet: none of its %d run files "
				      "(%u trials) is there and readable%s",
				      R.dir, R.n_rows, R.plan->n_trials,
				      res->rows_unreadable ? " (see the warnings above)" : "");
		else
			rc = lb_error(
			    LB_ERR_STATE, "report: no results in '%s': %s", R.dir,
			    res->rows_unreadable
				? "none of its .h5 files is a readable lowbit run file"
				: "no plan.tsv (sweep folder) and no lowbit run files (*.h5)");
		goto out;
	}
	name_rows(&R);
	/* Pareto flags among done rows */
	{
		int n = R.n_rows;
		double *acc = malloc((size_t)n * sizeof *acc),
		       *bits = malloc((size_t)n * sizeof *bits),
		       *size = malloc((size_t)n * sizeof *size);
		int *f1 = malloc((size_t)n * sizeof *f1), *f2 = malloc((size_t)n * sizeof *f2);
		if (!acc || !bits || !size || !f1 || !f2)
			rc = lb_error(LB_ERR_OOM, "out of memory");
		for (int i = 0; !rc && i < n; i++) {
			const struct row *r = &R.rows[i];
			int d = is_done(r);
			acc[i] = d ? r->final_acc : NAN;
			bits[i] = d ? r->avg_w : NAN;
			size[i] = d ? r->size : NAN;
		}
		if (!rc) {
			lb_report_pareto(n, acc, bits, f1);
			lb_report_pareto(n, acc, size, f2);
			for (int i = 0; i < n; i++) {
				struct row *r = &R.rows[i];
				res->rows_done += is_done(r);
				r->pareto = is_done(r) ? f1[i] : -1;
				r->pareto_size = is_done(r) ? f2[i] : -1;
			}
		}
		free(acc);
		free(bits);
		free(size);
		free(f1);
		free(f2);
		if (rc)
			goto out;
	}
	if (o->out_dir)
		snprintf(R.out, sizeof R.out, "%s", o->out_dir);
	else if (lb_report_default_out(R.out, sizeof R.out, R.kind ? R.dir : path, R.kind != 0)) {
		rc = lb_error(LB_ERR_IO, "path too long: '%s'", path);
		goto out;
	}
	snprintf(res->out_dir, sizeof res->out_dir, "%s", R.out);
	if (lb_mkdir_p(R.out) != 0) {
		rc = lb_error(LB_ERR_IO, "cannot create '%s': %s", R.out, strerror(errno));
		goto out;
	}
	if ((rc = make_groups(&R, &groups, &ng)))
		goto out;
	if (!(figs = calloc(1, sizeof *figs))) {
		rc = lb_error(LB_ERR_OOM, "out of memory");
		goto out;
	}
	if (o->formats & (LB_REPORT_PNG | LB_REPORT_SVG)) {
		char buf[4096];
		const char *gnuplot =
		    find_gnuplot(o->gnuplot ? o->gnuplot : "gnuplot", buf, sizeof buf);
		res->gnuplot_missing = !gnuplot;
		if ((rc = fig_tradeoff(&R, gnuplot, figs, 0)) ||
		    (rc = fig_tradeoff(&R, gnuplot, figs, 1)) ||
		    (rc = fig_curves(&R, gnuplot, figs)) || (rc = fig_heatmap(&R, gnuplot, figs)) ||
		    (rc = fig_ptq(&R, gnuplot, figs)) || (rc = fig_bits_traj(&R, gnuplot, figs)))
			goto out;
	}
	if ((o->formats & LB_REPORT_CSV) && (rc = write_csv(&R, groups, ng)))
		goto out;
	{
		struct lottery lt;
		R.lottery = (o->formats & LB_REPORT_MD) && find_lottery(&R, &lt);
	}
	if ((o->formats & LB_REPORT_MD) && (rc = write_md(&R, groups, ng, figs)))
		goto out;
	if ((o->formats & LB_REPORT_MD) && R.kind == 1 && (rc = write_lottery(&R, &res->lottery)))
		goto out;
out:
	if (groups)
		free_groups(groups, ng);
	free(figs);
	free_report(&R);
	return rc;
}
