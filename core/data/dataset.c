/* SPDX-License-Identifier: MIT
 * Dataset operations that do not depend on the file format: release,
 * truncate, train/validation split, float batches with normalisation and
 * augmentation, and pixel statistics. Augmentation follows torchvision's
 * RandomCrop(size, padding=p) (zero padding of the raw image, before
 * Normalize) then RandomHorizontalFlip(0.5). */
#include "dataset.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "rng.h"

void lb_dataset_release(struct lb_dataset *ds)
{
	if (!ds)
		return;
	free(ds->images);
	free(ds->labels);
	free(ds->ids);
	memset(ds, 0, sizeof *ds);
}

static size_t lb_dataset_image_bytes(const struct lb_dataset *ds)
{
	return (size_t)ds->H * (size_t)ds->W * (size_t)ds->C;
}

void lb_dataset_truncate(struct lb_dataset *ds, int32_t n)
{
	assert(n >= 0 && n <= ds->n);
	if (n == ds->n)
		return;
	ds->n = n;
	if (n == 0)
		return; /* keep the blocks; release frees them */
	/* Give memory back; a failed shrink keeps the larger block, still valid. */
	{
		void *p = realloc(ds->images, (size_t)n * lb_dataset_image_bytes(ds));
		if (p)
			ds->images = p;
		p = realloc(ds->labels, (size_t)n);
		if (p)
			ds->labels = p;
		p = realloc(ds->ids, (size_t)n * sizeof *ds->ids);
		if (p)
			ds->ids = p;
	}
}

/* Empty dataset of `all`'s shape with room for n samples (NULL arrays for n = 0). */
static int lb_dataset_alloc_like(struct lb_dataset *out, const struct lb_dataset *all, int32_t n)
{
	memset(out, 0, sizeof *out);
	out->H = all->H;
	out->W = all->W;
	out->C = all->C;
	out->n_classes = all->n_classes;
	if (n == 0)
		return LB_OK;
	out->images = malloc((size_t)n * lb_dataset_image_bytes(all));
	out->labels = malloc((size_t)n);
	out->ids = malloc((size_t)n * sizeof *out->ids);
	if (!out->images || !out->labels || !out->ids) {
		lb_dataset_release(out);
		return lb_error(LB_ERR_OOM, "split: cannot allocate %d samples", n);
	}
	return LB_OK;
}

static void lb_dataset_copy_sample(struct lb_dataset *to, const struct lb_dataset *from,
				   int32_t s)
{
	size_t img = lb_dataset_image_bytes(from);
	memcpy(to->images + (size_t)to->n * img, from->images + (size_t)s * img, img);
	to->labels[to->n] = from->labels[s];
	to->ids[to->n] = from->ids[s];
	to->n++;
}

int lb_dataset_split(struct lb_dataset *train, struct lb_dataset *val,
		     const struct lb_dataset *all, int32_t n_val, uint64_t seed)
{
	int32_t *perm = NULL;
	uint8_t *held = NULL;
	int err;

	memset(train, 0, sizeof *train);
	memset(val, 0, sizeof *val);
	if (n_val < 0 || n_val >= all->n)
		return lb_error(LB_ERR_CONFIG, "split: %d validation samples requested from a dataset "
				"of %d samples (need 0 <= n_val < %d)", n_val, all->n, all->n);
	perm = malloc((size_t)all->n * sizeof *perm);
	held = calloc((size_t)all->n, 1);
	if (!perm || !held) {
		err = lb_error(LB_ERR_OOM, "split: cannot allocate a permutation of %d", all->n);
		goto fail;
	}
	err = lb_dataset_alloc_like(train, all, all->n - n_val);
	if (err)
		goto fail;
	err = lb_dataset_alloc_like(val, all, n_val);
	if (err)
		goto fail;
	/* The first n_val positions of the permutation are held out. */
	lb_rng_permutation(perm, all->n, seed, LB_RNG_SPLIT, 0);
	for (int32_t i = 0; i < n_val; i++)
		held[perm[i]] = 1;
	for (int32_t s = 0; s < all->n; s++)
		lb_dataset_copy_sample(held[s] ? val : train, all, s);
	free(perm);
	free(held);
	return LB_OK;
fail:
	free(perm);
	free(held);
	lb_dataset_release(train);
	lb_dataset_release(val);
	return err;
}

void lb_data_augment_draw(const struct lb_augment *aug, uint64_t seed, uint32_t epoch,
			  int32_t id, int *dy, int *dx, int *flip)
{
	uint32_t w[4];
	*dy = *dx = aug ? aug->crop_pad : 0;
	*flip = 0;
	if (!aug || (aug->crop_pad <= 0 && !aug->flip))
		return;
	/* Fixed word roles, so turning one transform off leaves the other's draws alone. */
	lb_rng_block(seed, LB_RNG_AUGMENT, epoch, (uint64_t)(uint32_t)id, w);
	if (aug->crop_pad > 0) {
		uint64_t span = 2 * (uint64_t)aug->crop_pad + 1;
		*dy = (int)(((uint64_t)w[0] * span) >> 32);
		*dx = (int)(((uint64_t)w[1] * span) >> 32);
	}
	if (aug->flip)
		*flip = (int)(w[2] >> 31);
}

void lb_data_batch(float *x, int32_t *y, const struct lb_dataset *ds, const int32_t *idx, int B,
		   const struct lb_normalize *norm, const struct lb_augment *aug, uint64_t seed,
		   uint32_t epoch)
{
	const int H = ds->H, W = ds->W, C = ds->C;
	const size_t img = lb_dataset_image_bytes(ds);
	const int augment = aug && (aug->crop_pad > 0 || aug->flip);
	const int pad = aug && aug->crop_pad > 0 ? aug->crop_pad : 0;
	float lut[3][256]; /* lut[c][v] = (v/255 - mean[c]) / std[c] */

	assert(C >= 1 && C <= 3);
	for (int c = 0; c < C; c++) {
		double mean = norm ? norm->mean[c] : 0.0, inv_std = norm ? 1.0 / norm->std[c] : 1.0;
		for (int v = 0; v < 256; v++)
			lut[c][v] = (float)(((double)v / 255.0 - mean) * inv_std);
	}
	for (int b = 0; b < B; b++) {
		int32_t s = idx[b];
		const uint8_t *src; /* (H, W, C) */
		float *dst = x + (size_t)b * img; /* (H, W, C) */
		int dy, dx, flip;

		assert(s >= 0 && s < ds->n);
		src = ds->images + (size_t)s * img;
		y[b] = ds->labels[s];
		if (!augment) {
			for (size_t p = 0; p < (size_t)H * W; p++)
				for (int c = 0; c < C; c++)
					dst[p * C + c] = lut[c][src[p * C + c]];
			continue;
		}
		/* Output (i, j) = padded(i + dy, j' + dx) with j' = W-1-j when flipped
		 * (crop, then flip the crop); padded(u, v) = image(u - pad, v - pad),
		 * raw 0 outside, so padding normalises to (0 - mean) / std. */
		lb_data_augment_draw(aug, seed, epoch, ds->ids[s], &dy, &dx, &flip);
		for (int i = 0; i < H; i++) {
			int sy = i + dy - pad;
			float *drow = dst + (size_t)i * W * C;
			const uint8_t *srow;
			if (sy < 0 || sy >= H) {
				for (int j = 0; j < W; j++)
					for (int c = 0; c < C; c++)
						drow[j * C + c] = lut[c][0];
				continue;
			}
			srow = src + (size_t)sy * W * C;
			for (int j = 0; j < W; j++) {
				int sx = (flip ? W - 1 - j : j) + dx - pad;
				if (sx < 0 || sx >= W)
					for (int c = 0; c < C; c++)
						drow[j * C + c] = lut[c][0];
				else
					for (int c = 0; c < C; c++)
						drow[j * C + c] = lut[c][srow[sx * C + c]];
			}
		}
	}
}

void lb_dataset_stats(const struct lb_dataset *ds, struct lb_normalize *out)
{
	/* Exact two-pass statistics from a per-channel histogram of the bytes. */
	uint64_t hist[3][256];
	const int C = ds->C;
	const size_t n_pix = (size_t)ds->n * ds->H * ds->W;

	assert(C >= 1 && C <= 3);
	memset(hist, 0, sizeof hist);
	for (int c = 0; c < 3; c++) {
		out->mean[c] = 0.0f;
		out->std[c] = 1.0f;
	}
	for (size_t p = 0; p < n_pix; p++)
		for (int c = 0; c < C; c++)
			hist[c][ds->images[p * C + c]]++;
	if (n_pix == 0)
		return;
	for (int c = 0; c < C; c++) {
		double sum = 0.0, var = 0.0, mean;
		for (int v = 0; v < 256; v++)
			sum += (double)hist[c][v] * (v / 255.0);
		mean = sum / (double)n_pix;
		for (int v = 0; v < 256; v++) {
			double d = v / 255.0 - mean;
			var += (double)hist[c][v] * d * d;
		}
		out->mean[c] = (float)mean;
		out->std[c] = (float)sqrt(var / (double)n_pix); /* population std, as numpy's std() */
	}
}
