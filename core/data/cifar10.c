/* SPDX-License-Identifier: MIT
 * CIFAR-10 binary batches (data_batch_N.bin, test_batch.bin): records of one
 * label byte and 3072 pixel bytes, the 1024 R, then G, then B values of a
 * row-major 32x32 image (https://www.cs.toronto.edu/~kriz/cifar.html,
 * "Binary version"). Stored here as HWC uint8; gzipped batches also load. */
#include "dataset.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

#define LB_CIFAR_SIDE 32
#define LB_CIFAR_PLANE (LB_CIFAR_SIDE * LB_CIFAR_SIDE)
#define LB_CIFAR_PIXELS (3 * LB_CIFAR_PLANE)
#define LB_CIFAR_RECORD (1 + LB_CIFAR_PIXELS)
#define LB_CIFAR_CLASSES 10

/* Append the records of one file (already checked) to the growing arrays. */
static void lb_cifar_convert(uint8_t *images, uint8_t *labels, const uint8_t *data, size_t n_rec)
{
	for (size_t r = 0; r < n_rec; r++) {
		const uint8_t *rec = data + r * LB_CIFAR_RECORD;
		const uint8_t *chw = rec + 1; /* (3, 32, 32) */
		uint8_t *hwc = images + r * LB_CIFAR_PIXELS; /* (32, 32, 3) */
		labels[r] = rec[0];
		for (int p = 0; p < LB_CIFAR_PLANE; p++) {
			hwc[3 * p + 0] = chw[p];
			hwc[3 * p + 1] = chw[LB_CIFAR_PLANE + p];
			hwc[3 * p + 2] = chw[2 * LB_CIFAR_PLANE + p];
		}
	}
}

int lb_dataset_load_cifar10(struct lb_dataset *ds, const char *const *paths, int n_paths)
{
	uint8_t *images = NULL, *labels = NULL, *data = NULL;
	int32_t *ids = NULL;
	size_t n = 0, len = 0;
	int err = LB_OK;

	memset(ds, 0, sizeof *ds);
	if (n_paths <= 0 || !paths)
		return lb_error(LB_ERR_CONFIG, "CIFAR-10: no batch files given (n_paths = %d)",
				n_paths);
	for (int f = 0; f < n_paths; f++) {
		const char *path = paths[f];
		size_t n_rec;
		uint8_t *p;
		err = lb_data_read_file_(path, &data, &len);
		if (err)
			goto fail;
		if (len == 0) {
			err = lb_error(LB_ERR_DATA, "%s: empty file (expected CIFAR-10 records of %d "
				       "bytes: 1 label + %d pixels)", path, LB_CIFAR_RECORD,
				       LB_CIFAR_PIXELS);
			goto fail;
		}
		if (len % LB_CIFAR_RECORD != 0) {
			err = lb_error(LB_ERR_DATA, "%s: size %zu bytes is not a whole number of %d-byte "
				       "CIFAR-10 records (%zu records and %zu bytes left over)", path, len,
				       LB_CIFAR_RECORD, len / LB_CIFAR_RECORD, len % LB_CIFAR_RECORD);
			goto fail;
		}
		n_rec = len / LB_CIFAR_RECORD;
		for (size_t r = 0; r < n_rec; r++) {
			uint8_t y = data[r * LB_CIFAR_RECORD];
			if (y >= LB_CIFAR_CLASSES) {
				err = lb_error(LB_ERR_DATA, "%s: record %zu has label %u, out of range "
					       "(expected 0..%d)", path, r, y, LB_CIFAR_CLASSES - 1);
				goto fail;
			}
		}
		if (n + n_rec > INT32_MAX) {
			err = lb_error(LB_ERR_DATA, "%s: more than %d samples in all", path, INT32_MAX);
			goto fail;
		}
		p = realloc(images, (n + n_rec) * LB_CIFAR_PIXELS);
		if (!p) {
			err = lb_error(LB_ERR_OOM, "%s: cannot allocate %zu images", path, n + n_rec);
			goto fail;
		}
		images = p;
		p = realloc(labels, n + n_rec);
		if (!p) {
			err = lb_error(LB_ERR_OOM, "%s: cannot allocate %zu labels", path, n + n_rec);
			goto fail;
		}
		labels = p;
		lb_cifar_convert(images + n * LB_CIFAR_PIXELS, labels + n, data, n_rec);
		n += n_rec;
		free(data);
		data = NULL;
	}
	ids = malloc(sizeof *ids * n);
	if (!ids) {
		err = lb_error(LB_ERR_OOM, "%s: cannot allocate ids for %zu samples", paths[0], n);
		goto fail;
	}
	for (size_t i = 0; i < n; i++)
		ids[i] = (int32_t)i;
	ds->n = (int32_t)n;
	ds->H = LB_CIFAR_SIDE;
	ds->W = LB_CIFAR_SIDE;
	ds->C = 3;
	ds->n_classes = LB_CIFAR_CLASSES;
	ds->images = images;
	ds->labels = labels;
	ds->ids = ids;
	return LB_OK;
fail:
	free(data);
	free(images);
	free(labels);
	free(ids);
	memset(ds, 0, sizeof *ds);
	return err;
}
