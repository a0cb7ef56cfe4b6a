/* SPDX-License-Identifier: MIT
 * Fuzz harness: the CIFAR-10 reader (lb_dataset_load_cifar10,
 * core/data/dataset.h), gzip included. Input: one batch file. It is loaded
 * alone, then twice as two batches (the multi-file path must give twice the
 * samples); on success the dataset helpers read what was loaded. Invariants
 * held: a refusal carries a message and leaves the set empty. */
#include "fuzz.h"

#include "core/data/dataset.h"
#include "err.h"

/* Read what was loaded through the public helpers (ASan sees overreads). */
static void exercise(const struct lb_dataset *ds)
{
	struct lb_normalize stats, norm = {{0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f}};
	struct lb_augment aug = {.crop_pad = 4, .flip = 1};
	int32_t idx[2], y[2];
	int B = ds->n < 2 ? ds->n : 2;
	float *x;

	FUZZ_ASSERT(ds->n > 0 && ds->H == 32 && ds->W == 32 && ds->C == 3 &&
		    ds->n_classes == 10, "loaded set of shape %d x %d x %d x %d", ds->n, ds->H,
		    ds->W, ds->C);
	for (int32_t i = 0; i < ds->n; i++)
		FUZZ_ASSERT(ds->labels[i] < 10 && ds->ids[i] == i, "sample %d: label %u, id %d",
			    i, ds->labels[i], ds->ids[i]);
	lb_dataset_stats(ds, &stats);
	x = malloc(sizeof *x * 32 * 32 * 3 * (size_t)B);
	FUZZ_ASSERT(x != NULL, "no memory for a batch of %d", B);
	for (int b = 0; b < B; b++)
		idx[b] = ds->n - 1 - b;
	lb_data_batch(x, y, ds, idx, B, &norm, &aug, 3, 2);
	for (int b = 0; b < B; b++)
		FUZZ_ASSERT(y[b] == ds->labels[idx[b]], "batch label %d", b);
	free(x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lb_dataset ds;
	const char *path = fuzz_path(0, "batch.bin");
	const char *paths[2] = {path, path};
	int32_t n1 = 0;
	int rc;

	fuzz_write(path, data, size);
	rc = lb_dataset_load_cifar10(&ds, paths, 1);
	if (rc != LB_OK) {
		FUZZ_ASSERT(lb_error_message()[0], "refusal %d without a message", rc);
		FUZZ_ASSERT(!ds.images && !ds.labels && !ds.ids && ds.n == 0,
			    "a refused set is not left empty");
	} else {
		n1 = ds.n;
		exercise(&ds);
		lb_dataset_release(&ds);
	}
	rc = lb_dataset_load_cifar10(&ds, paths, 2);
	FUZZ_ASSERT((rc == LB_OK) == (n1 > 0), "one batch %s but the same batch twice %s",
		    n1 ? "loads" : "is refused", rc ? "is refused" : "loads");
	if (rc == LB_OK) {
		FUZZ_ASSERT(ds.n == 2 * n1, "two batches of %d give %d samples", n1, ds.n);
		FUZZ_ASSERT(!memcmp(ds.images, ds.images + (size_t)n1 * 3072, (size_t)n1 * 3072),
			    "the second batch differs from the first");
		lb_dataset_release(&ds);
	}
	lb_error_clear();
	return 0;
}
