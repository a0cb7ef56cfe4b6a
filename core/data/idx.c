/* SPDX-License-Identifier: MIT
 * IDX loader (MNIST, Fashion-MNIST) and the whole-file reader shared by the
 * data loaders. Files may be gzip-compressed or plain: zlib's gzread passes
 * plain files through. Format: http://yann.lecun.com/exdb/mnist/ ("FILE
 * FORMATS FOR THE MNIST DATABASE"): big-endian header, magic 0x00000803 for
 * rank-3 ubyte images, 0x00000801 for rank-1 ubyte labels. */
#include "dataset.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "err.h"

#define LB_IDX_IMAGES_MAGIC 0x00000803u
#define LB_IDX_LABELS_MAGIC 0x00000801u
#define LB_IDX_MAX_SIDE 4096u
#define LB_IDX_CLASSES 10

/* gzerror() prefixes "<fd:N>: " for a gzdopen'd file; the path says it better. */
static const char *lb_gz_message(gzFile gz, int *errnum)
{
	const char *msg = gzerror(gz, errnum);
	if (strncmp(msg, "<fd:", 4) == 0 && strstr(msg, ">: "))
		msg = strstr(msg, ">: ") + 3;
	return msg;
}

/* Whole file, decompressing gzip; see dataset.h. The buffer starts at the
 * file size (exact for plain files) and doubles, so its size is bounded by
 * what the file really holds, not by what a header claims. */
int lb_data_read_file_(const char *path, uint8_t **buf, size_t *len)
{
	int fd = -1, err = LB_OK, errnum = Z_OK;
	gzFile gz = NULL;
	struct stat st;
	uint8_t *data = NULL;
	size_t cap, used = 0;

	*buf = NULL;
	*len = 0;
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return lb_error(LB_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		err = lb_error(LB_ERR_IO, "cannot stat '%s': %s", path, strerror(errno));
		close(fd);
		return err;
	}
	gz = gzdopen(fd, "rb");
	if (!gz) {
		close(fd);
		return lb_error(LB_ERR_OOM, "%s: cannot set up the gzip reader", path);
	}
	gzbuffer(gz, 1u << 18);
	cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 4096;
	if (cap < 65536)
		cap = 65536;
	data = malloc(cap);
	if (!data) {
		err = lb_error(LB_ERR_OOM, "%s: cannot allocate %zu bytes", path, cap);
		goto out;
	}
	for (;;) {
		size_t room;
		int got;
		if (used == cap) {
			size_t ncap = cap * 2;
			uint8_t *p = ncap > cap ? realloc(data, ncap) : NULL;
			if (!p) {
				err = lb_error(LB_ERR_OOM, "%s: cannot grow the read buffer past %zu bytes",
					       path, cap);
				goto out;
			}
			data = p;
			cap = ncap;
		}
		room = cap - used;
		if (room > (1u << 30))
			room = 1u << 30;
		got = gzread(gz, data + used, (unsigned)room);
		if (got < 0) {
			const char *msg = lb_gz_message(gz, &errnum);
			if (errnum == Z_ERRNO)
				err = lb_error(LB_ERR_IO, "%s: read failed: %s", path, strerror(errno));
			else
				err = lb_error(LB_ERR_DATA, "%s: corrupt gzip data: %s", path, msg);
			goto out;
		}
		if (got == 0)
			break;
		used += (size_t)got;
	}
	/* A gzip stream cut short reads as end of file with Z_BUF_ERROR set. */
	{
		const char *msg = lb_gz_message(gz, &errnum);
		if (errnum != Z_OK) {
			err = lb_error(LB_ERR_DATA, "%s: corrupt or truncated gzip data: %s "
				       "(%zu bytes decompressed)", path, msg, used);
			goto out;
		}
	}
out:
	if (gz)
		gzclose_r(gz); /* also closes fd */
	if (err != LB_OK) {
		free(data);
		return err;
	}
	if (used == 0) {
		free(data);
		data = NULL;
	}
	*buf = data;
	*len = used;
	return LB_OK;
}

static uint32_t lb_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static const char *lb_idx_magic_name(uint32_t magic)
{
	switch (magic) {
	case LB_IDX_IMAGES_MAGIC:
		return " (IDX images)";
	case LB_IDX_LABELS_MAGIC:
		return " (IDX labels)";
	default:
		return "";
	}
}

/* Check the magic of a file of `len` bytes (len may be < 4). */
static int lb_idx_check_magic(const char *path, const uint8_t *data, size_t len,
			      uint32_t want, const char *what)
{
	uint32_t magic;
	if (len == 0)
		return lb_error(LB_ERR_DATA, "%s: empty file (expected IDX %s, magic 0x%08x)",
				path, what, want);
	if (len < 4)
		return lb_error(LB_ERR_DATA, "%s: truncated: %zu bytes, too short for an IDX magic "
				"(expected IDX %s, magic 0x%08x)", path, len, what, want);
	magic = lb_be32(data);
	if (magic != want)
		return lb_error(LB_ERR_DATA, "%s: bad magic 0x%08x%s, expected 0x%08x (IDX %s)", path,
				magic, lb_idx_magic_name(magic), want, what);
	return LB_OK;
}

/* Images: magic, n, H, W, then n*H*W bytes. On success *pixels is the
 * malloc'd pixel block. */
static int lb_idx_read_images(const char *path, uint8_t **pixels, uint32_t dims[3])
{
	uint8_t *data = NULL;
	size_t len = 0;
	uint64_t want;
	int err = lb_data_read_file_(path, &data, &len);
	if (err)
		return err;
	err = lb_idx_check_magic(path, data, len, LB_IDX_IMAGES_MAGIC, "uint8 images of rank 3");
	if (err)
		goto fail;
	if (len < 16) {
		err = lb_error(LB_ERR_DATA, "%s: truncated: the IDX image header needs 16 bytes but the "
			       "file holds %zu bytes", path, len);
		goto fail;
	}
	for (int d = 0; d < 3; d++)
		dims[d] = lb_be32(data + 4 + 4 * d);
	if (dims[0] == 0 || dims[1] == 0 || dims[2] == 0 || dims[0] > INT32_MAX ||
	    dims[1] > LB_IDX_MAX_SIDE || dims[2] > LB_IDX_MAX_SIDE) {
		err = lb_error(LB_ERR_DATA, "%s: bad image dimensions %u x %u x %u (expected n in "
			       "1..%d, H and W in 1..%u)", path, dims[0], dims[1], dims[2],
			       INT32_MAX, LB_IDX_MAX_SIDE);
		goto fail;
	}
	want = 16 + (uint64_t)dims[0] * dims[1] * dims[2];
	if ((uint64_t)len != want) {
		err = lb_error(LB_ERR_DATA, "%s: %s: header says %u images of %ux%u (%llu bytes) but "
			       "the file holds %zu bytes", path,
			       (uint64_t)len < want ? "truncated" : "trailing data", dims[0], dims[1],
			       dims[2], (unsigned long long)want, len);
		goto fail;
	}
	memmove(data, data + 16, len - 16);
	{
		uint8_t *p = realloc(data, len - 16); /* only shrinks; keep data if it fails */
		if (p)
			data = p;
	}
	*pixels = data;
	return LB_OK;
fail:
	free(data);
	return err;
}

/* Labels: magic, n, then n bytes each < 10. */
static int lb_idx_read_labels(const char *path, uint8_t **labels, uint32_t *n)
{
	uint8_t *data = NULL;
	size_t len = 0;
	uint64_t want;
	int err = lb_data_read_file_(path, &data, &len);
	if (err)
		return err;
	err = lb_idx_check_magic(path, data, len, LB_IDX_LABELS_MAGIC, "uint8 labels of rank 1");
	if (err)
		goto fail;
	if (len < 8) {
		err = lb_error(LB_ERR_DATA, "%s: truncated: the IDX label header needs 8 bytes but the "
			       "file holds %zu bytes", path, len);
		goto fail;
	}
	*n = lb_be32(data + 4);
	if (*n == 0 || *n > INT32_MAX) {
		err = lb_error(LB_ERR_DATA, "%s: bad label count %u (expected 1..%d)", path, *n,
			       INT32_MAX);
		goto fail;
	}
	want = 8 + (uint64_t)*n;
	if ((uint64_t)len != want) {
		err = lb_error(LB_ERR_DATA, "%s: %s: header says %u labels (%llu bytes) but the file "
			       "holds %zu bytes", path,
			       (uint64_t)len < want ? "truncated" : "trailing data", *n,
			       (unsigned long long)want, len);
		goto fail;
	}
	for (uint32_t i = 0; i < *n; i++) {
		if (data[8 + i] >= LB_IDX_CLASSES) {
			err = lb_error(LB_ERR_DATA, "%s: label %u at index %u is out of range "
				       "(expected 0..%d)", path, data[8 + i], i, LB_IDX_CLASSES - 1);
			goto fail;
		}
	}
	memmove(data, data + 8, *n);
	{
		uint8_t *p = realloc(data, *n);
		if (p)
			data = p;
	}
	*labels = data;
	return LB_OK;
fail:
	free(data);
	return err;
}

int lb_dataset_load_idx(struct lb_dataset *ds, const char *images_path, const char *labels_path)
{
	uint8_t *pixels = NULL, *labels = NULL;
	int32_t *ids = NULL;
	uint32_t dims[3] = {0, 0, 0}, n_labels = 0;
	int err;

	memset(ds, 0, sizeof *ds);
	err = lb_idx_read_images(images_path, &pixels, dims);
	if (err)
		goto fail;
	err = lb_idx_read_labels(labels_path, &labels, &n_labels);
	if (err)
		goto fail;
	if (n_labels != dims[0]) {
		err = lb_error(LB_ERR_DATA, "%s: holds %u images but '%s' holds %u labels (the counts "
			       "must be equal)", images_path, dims[0], labels_path, n_labels);
		goto fail;
	}
	ids = malloc(sizeof *ids * dims[0]);
	if (!ids) {
		err = lb_error(LB_ERR_OOM, "%s: cannot allocate ids for %u samples", images_path,
			       dims[0]);
		goto fail;
	}
	for (uint32_t i = 0; i < dims[0]; i++)
		ids[i] = (int32_t)i;
	ds->n = (int32_t)dims[0];
	ds->H = (int32_t)dims[1];
	ds->W = (int32_t)dims[2];
	ds->C = 1;
	ds->n_classes = LB_IDX_CLASSES;
	ds->images = pixels;
	ds->labels = labels;
	ds->ids = ids;
	return LB_OK;
fail:
	free(pixels);
	free(labels);
	free(ids);
	memset(ds, 0, sizeof *ds);
	return err;
}
