/* SPDX-License-Identifier: MIT
 * Tests of analysis/report.c through its API: the Pareto front on
 * constructed cases (dominance, ties, NaN rows), --format parsing, default
 * output folders, and lb_report_write on a constructed folder of run files
 * (values copied, flags right, bad files skipped with a warning, nothing
 * written when nothing can be reported, no temporary file left). Figures are
 * off here (gnuplot is tested in tests/cli/report.sh). */
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
		rc = rc ? rc : lb_runfile_append(rf, "metrics/epoch", &ep, 1);
		rc = rc ? rc : lb_runfile_append(rf, "metrics/test_acc", &a, 1);
		rc = rc ? rc : lb_runfile_append(rf, "metrics/avg_w_bits", &bits, 1);
		rc = rc ? rc : lb_runfile_append(rf, "metrics/avg_a_bits", &bits, 1);
		rc = rc ? rc : lb_runfile_append(rf, "metrics/size_bytes", &size, 1);
		rc = rc ? rc : lb_runfile_append(rf, "metrics/compression", &comp, 1);
		rc = rc ? rc : lb_runfile_append(rf, "metrics/bops", &bops, 1);
		rc = rc ? rc : lb_runfile_append(rf, "metrics/w_bits", wb, 2);
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

int main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/lb-test-report.XXXXXX");
	if (!mkdtemp(tmpdir))
		tap_skip_all("cannot make a temporary folder");
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
	test_pareto();
	test_formats();
	test_write();
	rm_rf(tmpdir);
	return done_testing();
}
