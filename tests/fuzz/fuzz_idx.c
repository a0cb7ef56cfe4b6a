/* SPDX-License-Identifier: MIT
 * Fuzz harness: the IDX reader (lb_dataset_load_idx, core/data/dataset.h),
 * gzip included, and on success the dataset helpers that read what it loaded
 * (stats, split, batches with augmentation). Input: a 4-byte big-endian
 * length L, then L bytes of the image file, then the label file (L is
 * clamped to what is there). Invariants held: a refusal carries a message
 * and leaves the dataset empty; a loaded set has the shape its fields say. */
#include "fuzz.h"

#include "core/data/dataset.h"
#include "err.h"

/* Touch every loaded byte through the public helpers (ASan sees overreads). */
static void exercise(const struct lb_dataset *ds)
{
	struct lb_normalize stats, norm = {{0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f}};
	struct lb_augment aug = {.crop_pad = 2, .flip = 1};
	struct lb_dataset train, val;
	int32_t idx[4], y[4];
	int B = ds->n < 4 ? ds->n : 4;
	size_t px = (size_t)ds->H * ds->W * ds->C;
	float *x;

	FUZZ_ASSERT(ds->n > 0 && ds->H > 0 && ds->W > 0 && (ds->C == 1 || ds->C == 3),
		    "loaded set of shape %d x %d x %d x %d", ds->n, ds->H, ds->W, ds->C);
	for (int32_t i = 0; i < ds->n; i++)
		FUZZ_ASSERT(ds->labels[i] < ds->n_classes && ds->ids[i] == i,
			    "sample %d: label %u, id %d", i, ds->labels[i], ds->ids[i]);
	lb_dataset_stats(ds, &stats);
	x = malloc(sizeof *x * px * (size_t)B);
	FUZZ_ASSERT(x != NULL, "no memory for a batch of %d", B);
	for (int b = 0; b < B; b++)
		idx[b] = ds->n - 1 - b;
	lb_data_batch(x, y, ds, idx, B, &norm, &aug, 7, 1);
	for (int b = 0; b < B; b++)
		FUZZ_ASSERT(y[b] == ds->labels[idx[b]], "batch label %d", b);
	free(x);
	if (ds->n >= 2 &&
	    lb_dataset_split(&train, &val, ds, ds->n / 2, 11) == LB_OK) {
		FUZZ_ASSERT(train.n + val.n == ds->n, "split %d + %d of %d", train.n, val.n, ds->n);
		lb_dataset_release(&train);
		lb_dataset_release(&val);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lb_dataset ds;
	size_t len;
	const char *images = fuzz_path(0, "images"), *labels = fuzz_path(1, "labels");
	int rc;

	if (size < 4)
		return 0;
	len = (size_t)data[0] << 24 | (size_t)data[1] << 16 | (size_t)data[2] << 8 | data[3];
	data += 4;
	size -= 4;
	if (len > size)
		len = size;
	fuzz_write(images, data, len);
	fuzz_write(labels, data + len, size - len);
	rc = lb_dataset_load_idx(&ds, images, labels);
	if (rc != LB_OK) {
		FUZZ_ASSERT(lb_error_message()[0], "refusal %d without a message", rc);
		FUZZ_ASSERT(!ds.images && !ds.labels && !ds.ids && ds.n == 0,
			    "a refused set is not left empty");
	} else {
		FUZZ_ASSERT(ds.C == 1 && ds.n_classes == 10, "IDX set with C %d", ds.C);
		exercise(&ds);
		lb_dataset_release(&ds);
	}
	lb_error_clear();
	return 0;
}
