/* SPDX-License-Identifier: MIT
 * Tests of analysis/report.c through its API: the Pareto front on
 * constructed cases (dominance, ties, NaN rows), --format parsing, default
 * output folders, and lb_report_write on a constructed folder of run files
 * (values copied, flags right, bad files skipped with a warning, nothing
 * written when nothing can be reported, no temporary file left); a
 * constructed sweep folder (spec.yaml + plan.tsv + stage run files) with a
 * lottery-ticket study (lottery.md's rows against means computed here) and
 * one without; the uniform-bit reference data of the trade-off figures.
 * gnuplot is not run here (tested in tests/cli/report.sh). */
#include <dirent.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tap.h"
#include "analysis/report.h"
#include "analysis/runfile.h"
#include "err.h"
#include "log.h"
#include "sweeps/spec.h"
#include "sweeps/sweepdir.h"

static char tmpdir[64];

static int has(const char *s, const char *sub)
{
	return s && strstr(s, sub) != NULL;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *s;
	long n;
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	s = calloc((size_t)n + 1, 1);
	if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
		free(s);
		s = NULL;
	}
	fclose(f);
	return s;
}

static void rm_rf(const char *p)
{
	struct stat st;
	DIR *d;
	struct dirent *e;
	char sub[512];
	if (lstat(p, &st))
		return;
	if (S_ISDIR(st.st_mode) && (d = opendir(p))) {
		while ((e = readdir(d)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
				snprintf(sub, sizeof sub, "%s/%s", p, e->d_name);
				rm_rf(sub);
			}
		closedir(d);
		rmdir(p);
	} else {
		unlink(p);
	}
}

/* Any name in dir containing ".tmp"? */
static int tmp_left(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int found = 0;
	while (d && (e = readdir(d)))
		found |= strstr(e->d_name, ".tmp") != NULL;
	if (d)
		closedir(d);
	return found;
}

/* One epoch row of the metrics a report reads (two layers of w_bits). */
static int append_epoch(struct lb_runfile *rf, double ep, double acc, double avg_bits, double size,
			double comp, double bops, const double *wb)
{
	int rc = lb_runfile_append(rf, "metrics/epoch", &ep, 1);
	rc = rc ? rc : lb_runfile_append(rf, "metrics/test_acc", &acc, 1);
	rc = rc ? rc : lb_runfile_append(rf, "metrics/avg_w_bits", &avg_bits, 1);
	rc = rc ? rc : lb_runfile_append(rf, "metrics/avg_a_bits", &avg_bits, 1);
	rc = rc ? rc : lb_runfile_append(rf, "metrics/size_bytes", &size, 1);
	rc = rc ? rc : lb_runfile_append(rf, "metrics/compression", &comp, 1);
	rc = rc ? rc : lb_runfile_append(rf, "metrics/bops", &bops, 1);
	return rc ? rc : lb_runfile_append(rf, "metrics/w_bits", wb, 2);
}

/* A run file with final accuracy acc, avg weight bits bits (two layers). */
static int make_run(const char *name, const char *status, double acc, double bits, int epochs)
{
	struct lb_runfile *rf;
	char path[256];
	int rc = lb_runfile_new(&rf);
	const char *layers[] = {"conv1", "fc1"};
	snprintf(path, sizeof path, "%s/runs/%s.h5", tmpdir, name);
	rc = rc ? rc : lb_runfile_set_attr_str(rf, "", "name", name);
	rc = rc ? rc : lb_runfile_set_attr_str(rf, "", "status", status);
	rc = rc ? rc : lb_runfile_set_attr_i64(rf, "", "seed", 7);
	if (!strcmp(status, "done"))
		rc = rc ? rc : lb_runfile_set_attr_f64(rf, "", "final_test_acc", acc);
	rc = rc ? rc : lb_runfile_put_strings(rf, "quant/layer_names", layers, 2);
	for (int e = 1; e <= epochs && !rc; e++) {
		/* best accuracy at epoch 1 (acc + 0.01), the last epoch's = acc */
		double ep = e, a = e == 1 ? acc + 0.01 : acc - 0.001 * (epochs - e),
		       wb[2] = {bits, bits};
		double size = bits * 1000 / 8, comp = 32 / bits, bops = bits * 8 * 1e4;
		rc = rc ? rc : append_epoch(rf, ep, a, bits, size, comp, bops, wb);
	}
	rc = rc ? rc : lb_runfile_set_axis(rf, "metrics", "epoch");
	rc = rc ? rc : lb_runfile_write(rf, path);
	lb_runfile_free(rf);
	return rc;
}

static void test_pareto(void)
{
	/* A (0.90, 32) is dominated by H (0.95, 8); B (0.88, 4) is on the front;
	 * C (0.85, 4) is dominated by B; D (0.80, 2) on; E (0.80, 3) dominated by D;
	 * F has no accuracy; G equals H (ties: both on); I (0.70, NaN) has no cost;
	 * J (0.99, 33) is the most accurate (on). */
	double acc[] = {0.90, 0.88, 0.85, 0.80, 0.80, NAN, 0.95, 0.95, 0.70, 0.99};
	double cost[] = {32, 4, 4, 2, 3, 1, 8, 8, NAN, 33};
	int want[] = {0, 1, 0, 1, 0, 0, 1, 1, 0, 1}, got[10], same = 1;
	int n = lb_report_pareto(10, acc, cost, got);
	for (int i = 0; i < 10; i++)
		if (got[i] != want[i]) {
			diag("row %d: on_front %d, want %d", i, got[i], want[i]);
			same = 0;
		}
	ok(same, "pareto: dominance, ties and NaN rows on a constructed case");
	is_int(n, 5, "pareto: the count of rows on the front");
	double one_a[] = {0.5}, one_c[] = {4};
	int f1[1];
	ok(lb_report_pareto(1, one_a, one_c, f1) == 1 && f1[0] == 1,
	   "pareto: a single row is on it");
	/* the same accuracy at fewer bits dominates; more bits never do */
	double a2[] = {0.8, 0.8}, c2[] = {4, 2};
	int f2[2];
	lb_report_pareto(2, a2, c2, f2);
	ok(f2[0] == 0 && f2[1] == 1, "pareto: equal accuracy, fewer bits dominates");
	ok(lb_report_pareto(0, NULL, NULL, NULL) == 0, "pareto: no rows");
}

static void test_formats(void)
{
	unsigned f = 0;
	char buf[256];
	ok(lb_report_parse_formats("md,csv,png,svg", &f) == 0 && f == LB_REPORT_ALL,
	   "formats: all four");
	ok(lb_report_parse_formats("csv", &f) == 0 && f == LB_REPORT_CSV, "formats: one");
	ok(lb_report_parse_formats("md,pdf", &f) == LB_ERR_CONFIG &&
	       has(lb_error_message(),
		   "--format: 'pdf' is not known (allowed: a list of md, csv, png, svg)"),
	   "formats: an unknown one is named");
	ok(lb_report_parse_formats("", &f) == LB_ERR_CONFIG, "formats: empty is refused");
	ok(lb_report_default_out(buf, sizeof buf, "results/", 1) == 0 &&
	       !strcmp(buf, "results/report"),
	   "default out: DIR/report");
	ok(lb_report_default_out(buf, sizeof buf, "runs/x.h5", 0) == 0 &&
	       !strcmp(buf, "runs/x-report"),
	   "default out: X-report for X.h5");
	ok(lb_report_default_out(buf, 5, "runs/x.h5", 0) == -1, "default out: too small a buffer");
}

static void test_write(void)
{
	char runs[128], out[128], p[256];
	struct lb_report_opts o = {NULL, LB_REPORT_MD | LB_REPORT_CSV, NULL};
	struct lb_report_outcome res;
	char *csv, *md;
	snprintf(runs, sizeof runs, "%s/runs", tmpdir);
	snprintf(out, sizeof out, "%s/out", tmpdir);
	mkdir(runs, 0777);
	o.out_dir = out;
	lb_log_set_level(LB_LOG_ERROR); /* the expected warnings of bad files */

	/* an empty folder: nothing to report, nothing written */
	ok(lb_report_write(runs, &o, &res) == LB_ERR_STATE &&
	       has(lb_error_message(), "no plan.tsv (sweep folder) and no lowbit run files"),
	   "write: an empty folder is refused");
	ok(access(out, F_OK) != 0, "... nothing written");

	/* only a foreign file: refused too */
	snprintf(p, sizeof p, "%s/junk.h5", runs);
	FILE *f = fopen(p, "w");
	fputs("not hdf5\n", f);
	fclose(f);
	ok(lb_report_write(runs, &o, &res) == LB_ERR_STATE &&
	       has(lb_error_message(), "none of its .h5 files is a readable lowbit run file"),
	   "write: a folder of foreign files is refused");
	ok(access(out, F_OK) != 0, "... nothing written");

	ok(make_run("a", "done", 0.90, 32, 3) == 0 && make_run("b", "done", 0.88, 4, 3) == 0 &&
	       make_run("c", "done", 0.85, 4, 3) == 0 && make_run("d", "done", 0.80, 2, 3) == 0 &&
	       make_run("e", "running", 0.95, 2, 2) == 0,
	   "write: five constructed run files");
	/* a newer format version */
	snprintf(p, sizeof p, "%s/runs/newer.h5", tmpdir);
	ok(make_run("newer", "done", 0.99, 1, 1) == 0, "write: a run file to make newer");
	hid_t h = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
	if (h >= 0) {
		int64_t v = LB_RUNFILE_FORMAT + 1;
		hid_t attr = H5Aopen(h, "lowbit_format", H5P_DEFAULT);
		H5Awrite(attr, H5T_NATIVE_INT64, &v);
		H5Aclose(attr);
		H5Fclose(h);
		lb_runfile_seal(p); /* edited on purpose: stamp the seal again */
	}
	int rc = lb_report_write(runs, &o, &res);
	ok(rc == LB_OK, "write: a folder of runs with bad files among them: %s",
	   rc ? lb_error_message() : "ok");
	ok(res.rows == 7 && res.rows_read == 5 && res.rows_done == 4 && res.rows_unreadable == 2,
	   "write: 7 rows, 5 read, 4 done, 2 unreadable (%d %d %d %d)", res.rows, res.rows_read,
	   res.rows_done, res.rows_unreadable);
	snprintf(p, sizeof p, "%s/summary.csv", out);
	csv = slurp(p);
	snprintf(p, sizeof p, "%s/summary.md", out);
	md = slurp(p);
	ok(csv && md, "write: summary.csv and summary.md written");
	/* a (0.90, 32) on, b (0.88, 4) on, c (0.85, 4) off, d (0.80, 2) on; e running: no flag */
	ok(has(csv, ",a,,7,done,3,0.9,0.91,1,32,32,4000,1,2560000,32/32,1,"),
	   "csv: row a, on the front");
	ok(has(csv, ",b,,7,done,3,0.88,0.89,1,4,4,500,8,320000,4/4,1,"),
	   "csv: row b, on the front");
	ok(has(csv, ",c,,7,done,3,0.85,0.86,1,4,4,500,8,320000,4/4,0,"),
	   "csv: row c, dominated by b");
	ok(has(csv, ",d,,7,done,3,0.8,0.81,1,2,2,250,16,160000,2/2,1,"),
	   "csv: row d, on the front");
	ok(has(csv, ",e,,7,running,2,0.95,0.96,1,2,2,250,16,160000,2/2,,"),
	   "csv: a running row: the last epoch's accuracy, no Pareto flag");
	ok(has(csv, ",newer,,,unreadable,0,,,,,,,,,,,") && has(csv, ",junk,,,unreadable,0,"),
	   "csv: the newer-format and foreign files are rows marked unreadable");
	ok(has(md, "| a | 7 | done | 3 | 90.00 | 91.00 (1) | 32.00 | 32.00 | 4000 | 1.00 | "
		   "2.56e+06 | 32/32 | yes |"),
	   "md: row a");
	ok(has(md, "| c | 7 | done | 3 | 85.00 | 86.00 (1) | 4.00 | 4.00 | 500 | 8.00 | 3.2e+05 | "
		   "4/4 |  |"),
	   "md: row c, not on the front");
	ok(has(md, "7 run files: 4 done, 1 running, 2 unreadable."), "md: the counts by state");
	ok(!tmp_left(out), "write: no temporary file left");
	free(csv);
	free(md);

	/* one run file given alone */
	snprintf(p, sizeof p, "%s/runs/b.h5", tmpdir);
	o.out_dir = NULL;
	ok(lb_report_write(p, &o, &res) == LB_OK && res.rows == 1 &&
	       has(res.out_dir, "runs/b-report"),
	   "write: one run file, into X-report/ by default");
	snprintf(p, sizeof p, "%s/runs/newer.h5", tmpdir);
	ok(lb_report_write(p, &o, &res) == LB_ERR_HDF5 &&
	       has(lb_error_message(), "has format version"),
	   "write: a newer run file alone is refused");
	snprintf(p, sizeof p, "%s/runs/newer-report", tmpdir);
	ok(access(p, F_OK) != 0, "... nothing written");
	snprintf(p, sizeof p, "%s/runs/junk.h5", tmpdir);
	ok(lb_report_write(p, &o, &res) == LB_ERR_HDF5 &&
	       has(lb_error_message(), "is not a readable HDF5 file (truncated or foreign)"),
	   "write: a foreign file alone is refused");
	snprintf(p, sizeof p, "%s/nope", tmpdir);
	ok(lb_report_write(p, &o, &res) == LB_ERR_IO && has(lb_error_message(), "No such file"),
	   "write: a missing path");
}

/* ---- a constructed sweep folder with a lottery-ticket study ---- */

/* mean and sample std of v[0..n), computed here, apart from the report's */
static void mean_std(const double *v, int n, double *mean, double *std)
{
	double s = 0, ss = 0;
	for (int i = 0; i < n; i++)
		s += v[i];
	*mean = s / n;
	for (int i = 0; i < n; i++)
		ss += (v[i] - *mean) * (v[i] - *mean);
	*std = n > 1 ? sqrt(ss / (n - 1)) : NAN;
}

/* A stage's run file: final accuracy acc (best acc + 0.01 at epoch 1), two
 * layers at wb bits (also quant/learned_w_bits), the configured weight bits
 * cbits, learn_bits on or off; with ptq, a grid W {8, 4, 2} x A {8, 4} of
 * accuracy acc - 0.01 w - 0.001 a (w, a the indices) and FP accuracy acc + 0.02. */
static int make_stage_run(const char *path, double acc, const double *wb, int cbits, int learn,
			  int ptq)
{
	struct lb_runfile *rf;
	const char *layers[] = {"fc1", "fc2"};
	char cb[16];
	int rc = lb_runfile_new(&rf);
	double avg = (wb[0] + wb[1]) / 2, size = avg * 1000 / 8, comp = 32 / avg, bops = avg * 1e4;
	int64_t lw[2] = {(int64_t)wb[0], (int64_t)wb[1]};
	uint64_t d2[2] = {2}, d[2] = {3, 2};
	snprintf(cb, sizeof cb, "%d", cbits);
	rc = rc ? rc : lb_runfile_set_attr_str(rf, "", "name", "x");
	rc = rc ? rc : lb_runfile_set_attr_str(rf, "", "status", "done");
	rc = rc ? rc : lb_runfile_set_attr_f64(rf, "", "final_test_acc", acc);
	rc = rc ? rc : lb_runfile_set_attr_str(rf, "config_flat", "quant.weights.bits", cb);
	rc = rc ? rc
		: lb_runfile_set_attr_str(rf, "config_flat", "quant.learn_bits.enabled",
					  learn ? "true" : "false");
	rc = rc ? rc : lb_runfile_put_strings(rf, "quant/layer_names", layers, 2);
	rc = rc ? rc : lb_runfile_put_array(rf, "quant/learned_w_bits", LB_DT_I64, 1, d2, lw);
	for (int e = 1; e <= 2 && !rc; e++) {
		double ep = e, a = e == 1 ? acc + 0.01 : acc;
		rc = rc ? rc : append_epoch(rf, ep, a, avg, size, comp, bops, wb);
	}
	rc = rc ? rc : lb_runfile_set_axis(rf, "metrics", "epoch");
	if (ptq) {
		int64_t w[3] = {8, 4, 2}, a[2] = {8, 4};
		double g[6];
		uint64_t dw[1] = {3}, da[1] = {2};
		for (int i = 0; i < 3; i++)
			for (int j = 0; j < 2; j++)
				g[i * 2 + j] = acc - 0.01 * i - 0.001 * j;
		rc = rc ? rc : lb_runfile_put_array(rf, "ptq/test_acc", LB_DT_F64, 2, d, g);
		rc = rc ? rc : lb_runfile_put_array(rf, "ptq/w_bits", LB_DT_I64, 1, dw, w);
		rc = rc ? rc : lb_runfile_put_array(rf, "ptq/a_bits", LB_DT_I64, 1, da, a);
		rc = rc ? rc : lb_runfile_set_attr_f64(rf, "ptq", "fp_test_acc", acc + 0.02);
	}
	rc = rc ? rc : lb_runfile_write(rf, path);
	lb_runfile_free(rf);
	return rc;
}

static const char *lott_spec_head = "name: lott-test\nseed: 1\nbase:\n"
				    "  model: {arch: mlp, hidden: [16]}\n"
				    "  data: {dataset: fashion-mnist, train_limit: 256}\n"
				    "  train: {epochs: 2, batch: 64}\n"
				    "  quant:\n"
				    "    weights: {method: srq, bits: 4}\n"
				    "    activations: {method: srq, bits: 4}\n"
				    "    dropbits: {enabled: true}\n"
				    "seeds: [1, 2, 3]\nstages:\n";

/* Write dir/spec.yaml and dir/plan.tsv of spec (as lowbit sweep does) and
 * return the plan record (NULL on failure). */
static struct lb_plan_rec *make_sweep_dir(const char *dir, const char *stages)
{
	char p[512];
	struct lb_sweep *sw = NULL;
	struct lb_sweep_plan *plan = NULL;
	struct lb_plan_rec *rec = NULL;
	mkdir(dir, 0777);
	snprintf(p, sizeof p, "%s/trials", dir);
	mkdir(p, 0777);
	snprintf(p, sizeof p, "%s/spec.yaml", dir);
	FILE *f = fopen(p, "w");
	if (!f)
		return NULL;
	fprintf(f, "%s%s", lott_spec_head, stages);
	fclose(f);
	if (lb_sweep_load(p, &sw) || lb_sweep_expand(sw, &plan) ||
	    lb_plan_rec_from_plan(plan, &rec) || lb_plan_rec_write(rec, dir)) {
		diag("%s", lb_error_message());
		lb_plan_rec_free(rec);
		rec = NULL;
	}
	lb_sweep_plan_free(plan);
	lb_sweep_free(sw);
	return rec;
}

/* The stage index of name in rec, or -1. */
static int stage_ix(const struct lb_plan_rec *rec, const char *name)
{
	for (unsigned s = 0; s < rec->n_stages; s++)
		if (!strcmp(rec->stage_names[s], name))
			return (int)s;
	return -1;
}

/* The uniform-bit block (index 2) of a trade-off .dat: its rows b x acc std n. */
static int uniform_block(const char *dat, double rows[][5], int max)
{
	const char *p = dat ? strstr(dat, "# uniform weight bits") : NULL;
	int n = 0;
	if (!p)
		return 0;
	p = strchr(p, '\n');
	while (p && *++p && *p != '\n' && n < max) {
		char std[32];
		if (sscanf(p, "%lf %lf %lf %31s %lf", &rows[n][0], &rows[n][1], &rows[n][2], std,
			   &rows[n][4]) != 5)
			break;
		rows[n][3] = strtod(std, NULL);
		n++;
		p = strchr(p, '\n');
	}
	return n;
}

static void test_lottery(void)
{
	/* per seed (trial 0, 1, 2): final accuracy of each stage, A's learned bits */
	static const char *names[] = {"learn", "ticket", "homog2", "homog4", "reinit", "ptq"};
	static const double acc[6][3] = {{0.80, 0.82, 0.78}, {0.85, 0.86, 0.83},
					 {0.70, 0.72, 0.71}, {0.84, 0.88, 0.86},
					 {0.75, 0.77, 0.74}, {0.85, 0.86, 0.83}};
	static const double learned[3][2] = {{3, 2}, {3, 2}, {2, 2}};
	char dir[128], out[128], p[512], rel[256], want[512];
	struct lb_report_opts o = {NULL, LB_REPORT_MD | LB_REPORT_CSV | LB_REPORT_PNG,
				   "/nonexistent/gnuplot"};
	struct lb_report_outcome res;
	double m, sd, v[3];
	snprintf(dir, sizeof dir, "%s/lott", tmpdir);
	snprintf(out, sizeof out, "%s/lott-out", tmpdir);
	o.out_dir = out;
	struct lb_plan_rec *rec = make_sweep_dir(
	    dir, "  - {name: learn, kind: learn_bits, set: {quant.learn_bits.enabled: true}}\n"
		 "  - {name: theta0, kind: rewind, input: learn, rewind_to: init}\n"
		 "  - {name: ticket, kind: retrain, input: theta0, bits_from: learn}\n"
		 "  - {name: homog2, kind: train, input: theta0, set: {quant.weights.bits: 2}}\n"
		 "  - {name: homog4, kind: train, input: theta0}\n"
		 "  - {name: reinit, kind: retrain, bits_from: learn, set: {seed: 1001}}\n"
		 "  - {name: ptq, kind: ptq_eval, input: ticket}\n");
	ok(rec && rec->n_trials == 3 && rec->n_stages == 7,
	   "lottery: a sweep folder of 3 seeds, 7 stages");
	if (!rec)
		return;
	int bad = 0;
	for (unsigned t = 0; t < 3; t++)
		for (int k = 0; k < 6; k++) {
			const double two[2] = {2, 2}, four[2] = {4, 4};
			const double *wb = k == 2 ? two : k == 3 ? four : learned[t];
			lb_sweepdir_run_path(rel, sizeof rel, rec, t, stage_ix(rec, names[k]));
			snprintf(p, sizeof p, "%s/%s", dir, rel);
			*strrchr(p, '/') = 0;
			mkdir(p, 0777);
			snprintf(p, sizeof p, "%s/%s", dir, rel);
			bad |= make_stage_run(p, acc[k][t], wb, k == 2 ? 2 : 4, k == 0, k == 5);
		}
	ok(!bad, "lottery: 18 stage run files");
	int rc = lb_report_write(dir, &o, &res);
	ok(rc == LB_OK && res.rows == 18 && res.rows_done == 18 && res.lottery == 1,
	   "lottery: report written, 18 rows done, lottery.md said (%s)",
	   rc ? lb_error_message() : "ok");
	snprintf(p, sizeof p, "%s/lottery.md", out);
	char *md = slurp(p);
	ok(md != NULL, "lottery: lottery.md exists");
	ok(has(md, "- **A** `learn` (learn_bits)") &&
	       has(md, "- **B** `ticket` (retrain, input `theta0`, bits_from `learn`)") &&
	       has(md, "- **C** `homog2` (train), `homog4` (train), input `theta0`") &&
	       has(md, "- **D** `reinit` (retrain), no input, bits_from `learn`") &&
	       has(md, "- **PTQ** `ptq` (ptq_eval, input `ticket`)") &&
	       has(md, "its initial parameters θ0"),
	   "lottery: the header names the stages of A-D");
	/* rows: A, B, C homog2, C homog4, D; (role, stage index into names) */
	static const struct {
		const char *role;
		int k;
	} runs[] = {{"A", 0}, {"B", 1}, {"C", 2}, {"C", 3}, {"D", 4}};
	for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
		int k = runs[r].k;
		double fm, fs, bm, bs, wm, ws, cm, cs, w[3], c[3], best[3];
		for (int t = 0; t < 3; t++) {
			const double *wb = k == 2   ? (const double[]){2, 2}
					   : k == 3 ? (const double[]){4, 4}
						    : learned[t];
			v[t] = 100 * acc[k][t];
			best[t] = 100 * (acc[k][t] + 0.01);
			w[t] = (wb[0] + wb[1]) / 2;
			c[t] = 32 / w[t];
		}
		mean_std(v, 3, &fm, &fs);
		mean_std(best, 3, &bm, &bs);
		mean_std(w, 3, &wm, &ws);
		mean_std(c, 3, &cm, &cs);
		const char *lb = k == 2 ? "2/2" : k == 3 ? "4/4" : "3/2 (×2), 2/2 (×1)";
		char wstd[32];
		if (ws > 0)
			snprintf(wstd, sizeof wstd, " ± %.2f", ws);
		else
			snprintf(wstd, sizeof wstd, " ± 0.00");
		snprintf(
		    want, sizeof want,
		    "| %s | %s | 3 / 3 | %.2f ± %.2f | %.2f ± %.2f | %.2f%s | %s | %.2f ± %.2f |",
		    runs[r].role, names[k], fm, fs, bm, bs, wm, wstd, lb, cm, cs);
		ok(has(md, want), "lottery: row %s %s: %s", runs[r].role, names[k], want);
	}
	/* per seed: A B C C D final accuracies, A's learned bits */
	for (unsigned t = 0; t < 3; t++) {
		snprintf(want, sizeof want,
			 "| %llu | %s | %.2f | %.2f | %.2f | %.2f | %.2f | %g/%g |",
			 (unsigned long long)rec->trials[t].seed, rec->trials[t].id,
			 100 * acc[0][t], 100 * acc[1][t], 100 * acc[2][t], 100 * acc[3][t],
			 100 * acc[4][t], learned[t][0], learned[t][1]);
		ok(has(md, want), "lottery: per-seed row %u: %s", t, want);
	}
	/* B - D, B - C and the best C at <= B's average bits (homog2: 2 <= 2.33) */
	static const struct {
		const char *what;
		int k;
	} diffs[] = {{"- B − D (`ticket` − `reinit`): ", 4},
		     {"- B − C (`ticket` − `homog2`): ", 2},
		     {"- B − C (`ticket` − `homog4`): ", 3},
		     {"- B − A (`ticket` − `learn`): ", 0}};
	for (size_t q = 0; q < sizeof diffs / sizeof diffs[0]; q++) {
		for (int t = 0; t < 3; t++)
			v[t] = 100 * (acc[1][t] - acc[diffs[q].k][t]);
		mean_std(v, 3, &m, &sd);
		snprintf(want, sizeof want,
			 "%s%+.2f points (mean over 3 seeds; per seed: %+.2f, %+.2f, %+.2f)\n",
			 diffs[q].what, m, v[0], v[1], v[2]);
		ok(has(md, want), "lottery: %.*s", (int)strlen(want) - 1, want);
	}
	for (int t = 0; t < 3; t++)
		v[t] = 100 * (acc[1][t] - acc[2][t]);
	mean_std(v, 3, &m, &sd);
	double hm, hs, hv[3] = {70, 72, 71};
	mean_std(hv, 3, &hm, &hs);
	snprintf(want, sizeof want,
		 "- B − best C at ≤ the ticket's average W bits (%.2f): `homog2` (2.00 bits, mean "
		 "%.2f %%): %+.2f points",
		 (2.5 + 2.5 + 2.0) / 3, hm, m);
	ok(has(md, want), "lottery: %s", want);
	/* PTQ: the diagonal W = A = 8 (w 0, a 0) and 4 (w 1, a 1), FP = acc + 0.02 */
	double fpv[3], d8[3], d4[3], fm, fs, m8, s8, m4, s4;
	for (int t = 0; t < 3; t++) {
		fpv[t] = 100 * (acc[5][t] + 0.02);
		d8[t] = 100 * acc[5][t];
		d4[t] = 100 * (acc[5][t] - 0.01 - 0.001);
	}
	mean_std(fpv, 3, &fm, &fs);
	mean_std(d8, 3, &m8, &s8);
	mean_std(d4, 3, &m4, &s4);
	snprintf(
	    want, sizeof want,
	    "| stage | grids | FP | W = A = 8 | W = A = 4 |\n|---|---|---|---|---|\n| ptq | 3 | "
	    "%.2f ± %.2f | %.2f ± %.2f | %.2f ± %.2f |",
	    fm, fs, m8, s8, m4, s4);
	ok(has(md, want), "lottery: the ticket's PTQ diagonal: FP, W = A = 8 and 4");
	snprintf(p, sizeof p, "%s/summary.md", out);
	char *sum = slurp(p);
	ok(has(sum, "[lottery.md](lottery.md)"), "lottery: summary.md points to lottery.md");
	free(sum);

	/* uniform-bit reference: homog2 (2 bits) and homog4 (4 bits) only; the
	 * ticket and the re-init of seed 3 are at 2/2 too, but their bits are
	 * learned; learn_bits rows and the ptq copy neither */
	double rows[8][5];
	snprintf(p, sizeof p, "%s/acc_vs_bits.dat", out);
	char *dat = slurp(p);
	int nu = uniform_block(dat, rows, 8);
	mean_std(hv, 3, &hm, &hs);
	double fv[3] = {84, 88, 86}, f4m, f4s;
	mean_std(fv, 3, &f4m, &f4s);
	ok(nu == 2 && rows[0][0] == 2 && rows[0][1] == 2 && fabs(rows[0][2] - hm) < 1e-9 &&
	       fabs(rows[0][3] - hs) < 1e-9 && rows[0][4] == 3 && rows[1][0] == 4 &&
	       rows[1][1] == 4 && fabs(rows[1][2] - f4m) < 1e-9 && fabs(rows[1][3] - f4s) < 1e-9 &&
	       rows[1][4] == 3,
	   "uniform: acc_vs_bits.dat holds the 2- and 4-bit means (%d rows)", nu);
	snprintf(p, sizeof p, "%s/acc_vs_bits.gp", out);
	char *gp = slurp(p);
	ok(has(gp, "index 2 using 2:3 with linespoints") && has(gp, "title 'uniform b-bit"),
	   "uniform: the script draws them, one legend entry");
	free(gp);
	free(dat);
	snprintf(p, sizeof p, "%s/acc_vs_size.dat", out);
	dat = slurp(p);
	nu = uniform_block(dat, rows, 8);
	ok(nu == 2 && fabs(rows[0][1] - 250.0 / 1024) < 1e-12 &&
	       fabs(rows[1][1] - 500.0 / 1024) < 1e-12 && fabs(rows[1][2] - f4m) < 1e-9,
	   "uniform: acc_vs_size.dat at the mean size in KiB");
	free(dat);
	free(md);
	ok(!tmp_left(out), "lottery: no temporary file left");
	lb_plan_rec_free(rec);

	/* no rewind between learn_bits and retrain: no study; the old lottery.md goes */
	snprintf(dir, sizeof dir, "%s/nolott", tmpdir);
	rec = make_sweep_dir(
	    dir, "  - {name: learn, kind: learn_bits, set: {quant.learn_bits.enabled: true}}\n"
		 "  - {name: ticket, kind: retrain, input: learn, bits_from: learn}\n"
		 "  - {name: homog2, kind: train, set: {quant.weights.bits: 2}}\n");
	ok(rec != NULL, "no study: a sweep folder without a rewind");
	for (unsigned t = 0; rec && t < rec->n_trials; t++)
		for (int k = 0; k < 3; k++) {
			const double two[2] = {2, 2};
			lb_sweepdir_run_path(rel, sizeof rel, rec, t, (int)k);
			snprintf(p, sizeof p, "%s/%s", dir, rel);
			*strrchr(p, '/') = 0;
			mkdir(p, 0777);
			snprintf(p, sizeof p, "%s/%s", dir, rel);
			make_stage_run(p, acc[k][t], k == 2 ? two : learned[t], k == 2 ? 2 : 4,
				       k == 0, 0);
		}
	rc = lb_report_write(dir, &o, &res);
	snprintf(p, sizeof p, "%s/lottery.md", out);
	ok(rc == LB_OK && res.rows == 9 && res.lottery == 0 && access(p, F_OK) != 0,
	   "no study: no lottery.md (and the older one removed)");
	snprintf(p, sizeof p, "%s/acc_vs_bits.dat", out);
	dat = slurp(p);
	nu = uniform_block(dat, rows, 8);
	ok(nu == 1 && rows[0][0] == 2 && fabs(rows[0][2] - hm) < 1e-9,
	   "no study: the uniform reference is homog2 alone");
	free(dat);
	lb_plan_rec_free(rec);
}

int main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/lb-test-report.XXXXXX");
	if (!mkdtemp(tmpdir))
		tap_skip_all("cannot make a temporary folder");
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
	test_pareto();
	test_formats();
	test_write();
	test_lottery();
	if (!getenv("LB_TEST_KEEP"))
		rm_rf(tmpdir);
	return done_testing();
}
