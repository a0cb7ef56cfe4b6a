/* SPDX-License-Identifier: MIT
 * lb_train_run without MPI (comm = MPI_COMM_NULL) on a tiny synthetic IDX
 * dataset: a fresh run writes a complete run file; a second run refuses to
 * overwrite it; --resume of a finished run does nothing; a diverging run is
 * recorded as diverged. Runs under LeakSanitizer in the sanitizer build. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tap.h"
#include "../../analysis/runfile.h"
#include "config.h"
#include "err.h"
#include "rng.h"
#include "train.h"

static void put_be32(FILE *f, uint32_t v)
{
	unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
			      (unsigned char)(v >> 8), (unsigned char)v};
	fwrite(b, 1, 4, f);
}

/* n images of 8x8 whose class is visible: a bright row at y = label % 8. */
static void write_idx(const char *dir, const char *stem, int n, uint32_t salt)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s-images", dir, stem);
	FILE *f = fopen(path, "wb");
	put_be32(f, 0x803);
	put_be32(f, (uint32_t)n);
	put_be32(f, 8);
	put_be32(f, 8);
	for (int i = 0; i < n; i++) {
		int label = (int)lb_rng_below(9, LB_RNG_TEST, salt, (uint64_t)i, 10);
		for (int p = 0; p < 64; p++) {
			int v = (int)lb_rng_below(9, LB_RNG_TEST, salt + 1, (uint64_t)i * 64 + p, 60);
			if (p / 8 == label % 8)
				v += 150 + (label >= 8 ? 40 : 0);
			fputc(v, f);
		}
	}
	fclose(f);
	snprintf(path, sizeof path, "%s/%s-labels", dir, stem);
	f = fopen(path, "wb");
	put_be32(f, 0x801);
	put_be32(f, (uint32_t)n);
	for (int i = 0; i < n; i++)
		fputc((int)lb_rng_below(9, LB_RNG_TEST, salt, (uint64_t)i, 10), f);
	fclose(f);
}

int main(void)
{
	char dir[] = "/tmp/lowbit-train-XXXXXX", yaml[2048], path[600];
	struct lb_config *cfg = NULL;
	struct lb_train_result res;
	struct lb_runfile *rf = NULL;
	if (!mkdtemp(dir))
		tap_skip_all("no temporary folder");
	write_idx(dir, "train", 512, 1);
	write_idx(dir, "test", 128, 3);
	snprintf(yaml, sizeof yaml,
		 "name: tiny\n"
		 "model: {arch: mlp, hidden: [32]}\n"
		 "data: {dataset: idx, dir: '%s', train_images: train-images, train_labels: train-labels,\n"
		 "       test_images: test-images, test_labels: test-labels, validation: 64}\n"
		 "train: {epochs: 3, batch: 32, shards: 2, log_every: 0}\n"
		 "optimizer: {lr: 0.1}\n",
		 dir);
	int rc = lb_config_load_string(yaml, "test.yaml", NULL, 0, &cfg);
	ok(rc == LB_OK, "config loads (%s)", rc ? lb_error_message() : "ok");
	if (rc)
		return done_testing();
	struct lb_train_opts opts = {.out_dir = dir, .quiet = 1};
	rc = lb_train_run(cfg, &opts, MPI_COMM_NULL, &res);
	ok(rc == LB_OK, "trains without MPI (%s)", rc ? lb_error_message() : "ok");
	ok(res.epochs_done == 3 && res.test_acc > 0.5, "3 epochs, test accuracy %.3f > 0.5",
	   res.test_acc);
	snprintf(path, sizeof path, "%s/tiny.h5", dir);
	rc = lb_runfile_read(path, &rf);
	ok(rc == LB_OK, "run file reads back");
	if (rf) {
		int rows = 0, width = 0;
		const char *st = lb_runfile_get_attr_str(rf, "", "status");
		ok(st && !strcmp(st, "done"), "status done");
		const double *va = lb_runfile_get_series(rf, "metrics/val_acc", &rows, &width);
		ok(va && rows == 3, "validation accuracy per epoch (%d rows)", rows);
		ok(lb_runfile_get_attr_str(rf, "config_flat", "optimizer.lr") != NULL,
		   "flat config attributes");
		enum lb_dtype dt;
		int rank;
		uint64_t dims[4];
		ok(lb_runfile_get_array(rf, "final/weights/fc1.weight", &dt, &rank, dims) &&
			   rank == 2 && dims[0] == 32 && dims[1] == 64,
		   "final fc1.weight is (32, 64)");
		ok(lb_runfile_get_array(rf, "init/params", &dt, &rank, dims) != NULL,
		   "initial parameters kept");
		lb_runfile_free(rf);
	}
	rc = lb_train_run(cfg, &opts, MPI_COMM_NULL, &res);
	ok(rc == LB_ERR_STATE && strstr(lb_error_message(), "already exists"),
	   "second run refuses: %s", lb_error_message());
	opts.resume = 1;
	rc = lb_train_run(cfg, &opts, MPI_COMM_NULL, &res);
	ok(rc == LB_OK && res.already_done, "resume of a finished run does nothing");
	lb_config_free(cfg);
	cfg = NULL;

	/* divergence: an absurd learning rate */
	const char *sets[2] = {"optimizer.lr=1e30", "name=boom"};
	rc = lb_config_load_string(yaml, "test.yaml", sets, 2, &cfg);
	opts.resume = 0;
	rc = rc ? rc : lb_train_run(cfg, &opts, MPI_COMM_NULL, &res);
	ok(rc == LB_ERR_NUMERIC, "huge lr diverges: %s", lb_error_message());
	snprintf(path, sizeof path, "%s/boom.h5", dir);
	if (lb_runfile_read(path, &rf) == LB_OK) {
		const char *st = lb_runfile_get_attr_str(rf, "", "status");
		ok(st && !strcmp(st, "diverged"), "status diverged recorded");
		lb_runfile_free(rf);
	} else {
		ok(0, "diverged run file readable");
	}
	lb_config_free(cfg);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		diag("could not remove %s", dir);
	return done_testing();
}
