/* SPDX-License-Identifier: MIT
 * Datasets: IDX (MNIST / Fashion-MNIST, gzipped or not) and CIFAR-10 binary
 * batches, held as uint8 images in memory; batches are converted to float
 * NHWC on the fly, with normalisation and augmentation.
 *
 * Invariants: images are (n, H, W, C) uint8, labels (n) uint8 < n_classes.
 * All randomness (split, crop, flip) comes from the counter generator keyed
 * by (seed, purpose, epoch, sample id), so a sample's augmentation does not
 * depend on which rank or batch position processes it. */
#ifndef LB_DATASET_H
#define LB_DATASET_H

#include <stddef.h>
#include <stdint.h>

struct lb_dataset {
	int32_t n;         /* samples */
	int32_t H, W, C;   /* image shape */
	int32_t n_classes; /* 10 for the supported sets */
	uint8_t *images;   /* (n, H, W, C), owned */
	uint8_t *labels;   /* (n), owned */
	int32_t *ids;      /* (n) original index of each sample in its source file set, owned */
};

/* Load an IDX image file (magic 0x00000803, uint8, rank 3) and an IDX label
 * file (magic 0x00000801). Either may be gzip-compressed (detected by content).
 * Checks magic, rank, sizes against the file length, label range and that
 * both files hold the same count. On error: LB_ERR_DATA (or LB_ERR_IO) with a
 * message naming the file and what was expected; *ds is left empty. */
int lb_dataset_load_idx(struct lb_dataset *ds, const char *images_path, const char *labels_path);

/* Load CIFAR-10 binary batches (records of 1 label byte + 3072 bytes CHW
 * 32x32x3; stored here as HWC). Checks file sizes are a whole number of
 * records and labels < 10. */
int lb_dataset_load_cifar10(struct lb_dataset *ds, const char *const *paths, int n_paths);

void lb_dataset_release(struct lb_dataset *ds);

/* Keep the first n samples (n <= ds->n); for tests and quick runs. */
void lb_dataset_truncate(struct lb_dataset *ds, int32_t n);

/* Split `all` into train (all->n - n_val samples) and val (n_val samples);
 * the held-out samples are chosen by a Philox permutation of (seed,
 * LB_RNG_SPLIT); both keep the original order otherwise. `all` is not
 * modified; train and val own copies. */
int lb_dataset_split(struct lb_dataset *train, struct lb_dataset *val,
		     const struct lb_dataset *all, int32_t n_val, uint64_t seed);

struct lb_normalize {
	float mean[3], std[3]; /* per channel, in pixel units / 255 (i.e. on [0,1]) */
};
struct lb_augment {
	int crop_pad; /* random crop of H x W from the image zero-padded by crop_pad; 0 = off */
	int flip;     /* random horizontal flip with probability 1/2 */
};

/* x:(B,H,W,C) = (pixel/255 - mean[c]) / std[c] for samples idx[0..B) of ds,
 * y:(B) = their labels. Augmentation (when aug != NULL and enabled) for
 * sample s in epoch e draws from (seed, LB_RNG_AUGMENT, e, ds->ids[s]). */
void lb_data_batch(float *x, int32_t *y, const struct lb_dataset *ds, const int32_t *idx, int B,
		   const struct lb_normalize *norm, const struct lb_augment *aug, uint64_t seed,
		   uint32_t epoch);

/* The augmentation draws of one sample, as lb_data_batch uses them: crop
 * offsets *dy, *dx in [0, 2*crop_pad] into the image zero-padded by crop_pad
 * (both crop_pad, i.e. no shift, when cropping is off) and *flip in {0, 1}.
 * Words of lb_rng_block(seed, LB_RNG_AUGMENT, epoch, id): [0] -> dy,
 * [1] -> dx, [2] top bit -> flip. Padding is 0 in raw pixel space, so a
 * padded pixel reads (0 - mean[c]) / std[c] after normalisation (torchvision
 * pads before Normalize). Output pixel (i, j) of the batch is padded pixel
 * (i + dy, j' + dx) with j' = W-1-j when flipped (crop, then flip). */
void lb_data_augment_draw(const struct lb_augment *aug, uint64_t seed, uint32_t epoch,
			  int32_t id, int *dy, int *dx, int *flip);

/* Mean and std of the pixels (per channel, on [0,1]) of a dataset. */
void lb_dataset_stats(const struct lb_dataset *ds, struct lb_normalize *out);

/* Internal to core/data (shared by idx.c and cifar10.c). Read all of `path`,
 * gunzipping when it is gzip (detected by content, plain files pass through).
 * [out] *buf: malloc'd, owned by the caller (free()); NULL when *len is 0.
 * Returns LB_ERR_IO when the file cannot be opened or read ("cannot open
 * 'PATH': <strerror>"), LB_ERR_DATA for a corrupt or truncated gzip stream,
 * LB_ERR_OOM; every message starts with the path. */
int lb_data_read_file_(const char *path, uint8_t **buf, size_t *len);

#endif
