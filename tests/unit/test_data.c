/* SPDX-License-Identifier: MIT
 * Tests of core/data/: IDX and CIFAR-10 loaders (fixtures generated into a
 * mkdtemp directory, plain and gzip), every bad-input message, split, batch
 * normalisation and augmentation against a per-pixel reference, stats, and
 * the real Fashion-MNIST files when the Debian package provides them. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "../tap.h"
#include "data/dataset.h"
#include "err.h"
#include "rng.h"
#include "util.h"

static char tmpdir[64];
static char made[64][128]; /* files to unlink at the end */
static int n_made;

/* Path of a fixture in the temp dir (static rotating buffers). */
static const char *fixture(const char *name)
{
	static char buf[8][128];
	static int k;
	char *p = buf[k++ % 8];
	snprintf(p, sizeof buf[0], "%s/%s", tmpdir, name);
	return p;
}

static int write_bytes(const char *path, const void *data, size_t len, int gz)
{
	if (n_made < 64)
		snprintf(made[n_made++], sizeof made[0], "%s", path);
	if (gz) {
		gzFile f = gzopen(path, "wb");
		int ok_ = f && (len == 0 || gzwrite(f, data, (unsigned)len) == (int)len);
		if (f)
			ok_ = gzclose(f) == Z_OK && ok_;
		return ok_ ? 0 : -1;
	}
	FILE *f = fopen(path, "wb");
	int ok_ = f && (len == 0 || fwrite(data, 1, len, f) == len);
	if (f)
		ok_ = fclose(f) == 0 && ok_;
	return ok_ ? 0 : -1;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* IDX images file image: header (magic, n, H, W) and n*H*W pixels, plus
 * `extra` bytes (negative: cut that many off the end). Returns its length. */
static size_t make_idx_images(uint8_t *buf, uint32_t magic, uint32_t n, uint32_t H, uint32_t W,
			      const uint8_t *pixels, int extra)
{
	size_t len = 16 + (size_t)n * H * W;
	put_be32(buf, magic);
	put_be32(buf + 4, n);
	put_be32(buf + 8, H);
	put_be32(buf + 12, W);
	memcpy(buf + 16, pixels, (size_t)n * H * W);
	for (int i = 0; i < extra; i++)
		buf[len + i] = 0xab;
	return len + extra;
}

static size_t make_idx_labels(uint8_t *buf, uint32_t magic, uint32_t n, const uint8_t *labels,
			      int extra)
{
	size_t len = 8 + n;
	put_be32(buf, magic);
	put_be32(buf + 4, n);
	memcpy(buf + 8, labels, n);
	for (int i = 0; i < extra; i++)
		buf[len + i] = 0;
	return len + extra;
}

static int ds_is_empty(const struct lb_dataset *ds)
{
	return ds->n == 0 && ds->H == 0 && ds->W == 0 && ds->C == 0 && !ds->images &&
	       !ds->labels && !ds->ids;
}

/* ---- IDX ---- */

enum { NI = 5, HI = 3, WI = 4 };
static uint8_t g_pix[NI * HI * WI], g_lab[NI];

static void check_idx_round_trip(const char *img, const char *lab, const char *what)
{
	struct lb_dataset ds;
	int rc = lb_dataset_load_idx(&ds, img, lab);
	if (!is_int(rc, LB_OK, "idx %s: loads", what)) {
		diag("%s", lb_error_message());
		return;
	}
	int ids_ok = 1;
	for (int i = 0; i < ds.n; i++)
		ids_ok &= ds.ids[i] == i;
	ok(ds.n == NI && ds.H == HI && ds.W == WI && ds.C == 1 && ds.n_classes == 10,
	   "idx %s: shape %dx%dx%dx%d", what, ds.n, ds.H, ds.W, ds.C);
	ok(memcmp(ds.images, g_pix, sizeof g_pix) == 0 && memcmp(ds.labels, g_lab, sizeof g_lab) == 0,
	   "idx %s: pixels and labels round trip", what);
	ok(ids_ok, "idx %s: ids are 0..n-1", what);
	lb_dataset_release(&ds);
	ok(ds_is_empty(&ds), "idx %s: release empties", what);
}

static void test_idx_round_trip(void)
{
	uint8_t ib[16 + sizeof g_pix], lb[8 + sizeof g_lab];
	size_t il, ll;
	for (size_t i = 0; i < sizeof g_pix; i++)
		g_pix[i] = (uint8_t)(i * 37 + 11);
	for (int i = 0; i < NI; i++)
		g_lab[i] = (uint8_t)((i * 3) % 10);
	il = make_idx_images(ib, 0x803, NI, HI, WI, g_pix, 0);
	ll = make_idx_labels(lb, 0x801, NI, g_lab, 0);
	ok(write_bytes(fixture("img"), ib, il, 0) == 0 && write_bytes(fixture("lab"), lb, ll, 0) == 0 &&
		   write_bytes(fixture("img.gz"), ib, il, 1) == 0 &&
		   write_bytes(fixture("lab.gz"), lb, ll, 1) == 0,
	   "idx: fixtures written");
	check_idx_round_trip(fixture("img"), fixture("lab"), "plain");
	check_idx_round_trip(fixture("img.gz"), fixture("lab.gz"), "gzip");
	check_idx_round_trip(fixture("img.gz"), fixture("lab"), "gzip images + plain labels");
}

/* One bad-input case: expect `code`, a message naming `path`, holding each
 * of the NULL-terminated `needles`, and an empty dataset. */
static void expect_fail(int rc, struct lb_dataset *ds, int code, const char *path,
			const char *what, const char *const *needles)
{
	const char *msg = lb_error_message();
	int has = strstr(msg, path) != NULL;
	for (int i = 0; needles && needles[i]; i++)
		has &= strstr(msg, needles[i]) != NULL;
	is_int(rc, code, "%s: error code", what);
	if (!ok(has, "%s: message names the file and the problem", what))
		diag("message: %s", msg);
	else
		diag("%s", msg);
	ok(ds_is_empty(ds), "%s: dataset left empty", what);
	lb_dataset_release(ds); /* a no-op when the loader kept its word */
}

#define NEEDLES(...) ((const char *const[]){__VA_ARGS__, NULL})

static void bad_idx(const char *what, const uint8_t *ib, size_t il, int img_gz, const uint8_t *lb,
		    size_t ll, int code, int blame_labels, const char *const *needles)
{
	char iname[64], lname[64];
	struct lb_dataset ds;
	snprintf(iname, sizeof iname, "bad%d-img%s", n_made, img_gz ? ".gz" : "");
	snprintf(lname, sizeof lname, "bad%d-lab", n_made);
	const char *ip = fixture(iname), *lp = fixture(lname);
	if (write_bytes(ip, ib, il, img_gz) || write_bytes(lp, lb, ll, 0)) {
		ok(0, "%s: fixture written", what);
		return;
	}
	memset(&ds, 0x5a, sizeof ds); /* garbage in: the loader must zero it */
	int rc = lb_dataset_load_idx(&ds, ip, lp);
	expect_fail(rc, &ds, code, blame_labels ? lp : ip, what, needles);
}

static void test_idx_bad(void)
{
	uint8_t ib[16 + sizeof g_pix + 8], lb[8 + sizeof g_lab + 8], bad_lab[NI];
	size_t il = make_idx_images(ib, 0x803, NI, HI, WI, g_pix, 0);
	size_t ll = make_idx_labels(lb, 0x801, NI, g_lab, 0);
	uint8_t tmp[sizeof ib];
	size_t tl;

	/* wrong magic: labels file given as images, and the other way round */
	tl = make_idx_images(tmp, 0x801, NI, HI, WI, g_pix, 0);
	bad_idx("idx bad image magic", tmp, tl, 0, lb, ll, LB_ERR_DATA, 0,
		NEEDLES("magic", "0x00000801", "0x00000803"));
	{
		uint8_t tl2[sizeof lb];
		size_t n2 = make_idx_labels(tl2, 0x803, NI, g_lab, 0);
		bad_idx("idx bad label magic", ib, il, 0, tl2, n2, LB_ERR_DATA, 1,
			NEEDLES("magic", "0x00000803", "expected 0x00000801"));
	}
	bad_idx("idx truncated images", ib, il - 7, 0, lb, ll, LB_ERR_DATA, 0,
		NEEDLES("truncated: header says 5 images of 3x4 (76 bytes) but the file holds 69 bytes"));
	bad_idx("idx truncated gzip images", ib, il - 7, 1, lb, ll, LB_ERR_DATA, 0,
		NEEDLES("truncated", "5 images of 3x4"));
	bad_idx("idx truncated labels", ib, il, 0, lb, ll - 2, LB_ERR_DATA, 1,
		NEEDLES("truncated", "5 labels", "holds 11 bytes"));
	tl = make_idx_images(tmp, 0x803, NI, HI, WI, g_pix, 3);
	bad_idx("idx trailing image bytes", tmp, tl, 0, lb, ll, LB_ERR_DATA, 0,
		NEEDLES("trailing", "76 bytes", "79 bytes"));
	{
		uint8_t tl2[sizeof lb];
		size_t n2 = make_idx_labels(tl2, 0x801, NI, g_lab, 2);
		bad_idx("idx trailing label bytes", ib, il, 0, tl2, n2, LB_ERR_DATA, 1,
			NEEDLES("trailing", "15 bytes"));
		memcpy(bad_lab, g_lab, sizeof bad_lab);
		bad_lab[3] = 10;
		n2 = make_idx_labels(tl2, 0x801, NI, bad_lab, 0);
		bad_idx("idx label out of range", ib, il, 0, tl2, n2, LB_ERR_DATA, 1,
			NEEDLES("label 10 at index 3", "0..9"));
	}
	bad_idx("idx empty image file", ib, 0, 0, lb, ll, LB_ERR_DATA, 0, NEEDLES("empty"));
	bad_idx("idx empty label file", ib, il, 0, lb, 0, LB_ERR_DATA, 1, NEEDLES("empty"));
	bad_idx("idx short image header", ib, 10, 0, lb, ll, LB_ERR_DATA, 0,
		NEEDLES("truncated", "16 bytes", "10 bytes"));
	tl = make_idx_images(tmp, 0x803, NI, 0, WI, g_pix, 0);
	bad_idx("idx zero height", tmp, tl, 0, lb, ll, LB_ERR_DATA, 0,
		NEEDLES("dimensions", "5 x 0 x 4"));
	tl = make_idx_images(tmp, 0x803, 0, HI, WI, g_pix, 0);
	bad_idx("idx zero images", tmp, tl, 0, lb, ll, LB_ERR_DATA, 0,
		NEEDLES("dimensions", "0 x 3 x 4"));
	put_be32(tmp, 0x803);
	put_be32(tmp + 4, 1);
	put_be32(tmp + 8, 5000);
	put_be32(tmp + 12, 5000);
	bad_idx("idx huge height", tmp, 16, 0, lb, ll, LB_ERR_DATA, 0,
		NEEDLES("dimensions", "5000", "4096"));
	put_be32(tmp, 0x803);
	put_be32(tmp + 4, 0xffffffffu);
	put_be32(tmp + 8, 4096);
	put_be32(tmp + 12, 4096);
	bad_idx("idx absurd image count", tmp, 16, 0, lb, ll, LB_ERR_DATA, 0,
		NEEDLES("dimensions", "4294967295"));

	/* count mismatch names both files: check the exact pair */
	{
		struct lb_dataset ds;
		uint8_t tl2[sizeof lb];
		size_t n2 = make_idx_labels(tl2, 0x801, NI - 1, g_lab, 0);
		write_bytes(fixture("mm-lab"), tl2, n2, 0);
		int rc = lb_dataset_load_idx(&ds, fixture("img"), fixture("mm-lab"));
		expect_fail(rc, &ds, LB_ERR_DATA, fixture("img"), "idx count mismatch names both",
			    NEEDLES(fixture("mm-lab"), "5 images", "4 labels"));
	}
	/* missing files */
	{
		struct lb_dataset ds;
		char want[256];
		const char *missing = fixture("no-such-file");
		snprintf(want, sizeof want, "cannot open '%s': No such file or directory", missing);
		int rc = lb_dataset_load_idx(&ds, missing, fixture("lab"));
		expect_fail(rc, &ds, LB_ERR_IO, missing, "idx missing image file", NEEDLES(want));
		rc = lb_dataset_load_idx(&ds, fixture("img"), missing);
		expect_fail(rc, &ds, LB_ERR_IO, missing, "idx missing label file", NEEDLES(want));
	}
	/* a gzip stream cut short */
	{
		struct lb_dataset ds;
		uint8_t big[16 + 4000], gzbuf[8192];
		uint8_t noise[4000];
		size_t gl = 0;
		for (int i = 0; i < 4000; i++)
			noise[i] = (uint8_t)lb_rng_below(3, LB_RNG_TEST, 0, (uint64_t)i, 256);
		size_t bl = make_idx_images(big, 0x803, 10, 20, 20, noise, 0);
		write_bytes(fixture("whole.gz"), big, bl, 1);
		FILE *f = fopen(fixture("whole.gz"), "rb");
		if (f) {
			gl = fread(gzbuf, 1, sizeof gzbuf, f);
			fclose(f);
		}
		write_bytes(fixture("cut.gz"), gzbuf, gl / 2, 0);
		int rc = lb_dataset_load_idx(&ds, fixture("cut.gz"), fixture("lab"));
		expect_fail(rc, &ds, LB_ERR_DATA, fixture("cut.gz"), "idx gzip stream cut short",
			    NEEDLES("truncated gzip", "unexpected end of file"));
	}
	/* a corrupt gzip stream (valid gzip header, garbage body) */
	{
		struct lb_dataset ds;
		uint8_t junk[64] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
		for (int i = 10; i < 64; i++)
			junk[i] = (uint8_t)(i * 29 + 7);
		write_bytes(fixture("junk.gz"), junk, sizeof junk, 0);
		int rc = lb_dataset_load_idx(&ds, fixture("junk.gz"), fixture("lab"));
		expect_fail(rc, &ds, LB_ERR_DATA, fixture("junk.gz"), "idx corrupt gzip",
			    NEEDLES("gzip"));
	}
}

static void test_fashion_mnist(void)
{
	const char *dir = "/usr/share/datasets/fashion-mnist";
	char ti[256], tl[256], vi[256], vl[256];
	struct lb_dataset train, test;
	snprintf(ti, sizeof ti, "%s/train-images-idx3-ubyte.gz", dir);
	snprintf(tl, sizeof tl, "%s/train-labels-idx1-ubyte.gz", dir);
	snprintf(vi, sizeof vi, "%s/t10k-images-idx3-ubyte.gz", dir);
	snprintf(vl, sizeof vl, "%s/t10k-labels-idx1-ubyte.gz", dir);
	if (access(ti, R_OK) != 0 || access(tl, R_OK) != 0 || access(vi, R_OK) != 0 ||
	    access(vl, R_OK) != 0) {
		skip("Fashion-MNIST not installed (Debian package dataset-fashion-mnist)");
		return;
	}
	double t0 = lb_now();
	int rc = lb_dataset_load_idx(&train, ti, tl);
	double dt = lb_now() - t0;
	if (!is_int(rc, LB_OK, "fashion-mnist: train loads")) {
		diag("%s", lb_error_message());
		return;
	}
	diag("fashion-mnist train: %.3f s", dt);
	ok(dt < 5.0, "fashion-mnist: train loads in %.3f s", dt);
	ok(train.n == 60000 && train.H == 28 && train.W == 28 && train.C == 1,
	   "fashion-mnist: train is 60000 x 28 x 28 x 1");
	{
		int32_t counts[10] = {0};
		int good = 1;
		for (int i = 0; i < train.n; i++)
			counts[train.labels[i]]++;
		for (int c = 0; c < 10; c++)
			good &= counts[c] == 6000;
		ok(good, "fashion-mnist: 6000 train samples per class");
	}
	{
		struct lb_normalize st;
		lb_dataset_stats(&train, &st);
		diag("fashion-mnist train mean %.4f std %.4f", st.mean[0], st.std[0]);
		is_near(st.mean[0], 0.2860, 2e-3, "fashion-mnist: pixel mean (0.2860)");
		is_near(st.std[0], 0.3530, 2e-3, "fashion-mnist: pixel std (0.3530)");
	}
	lb_dataset_release(&train);
	rc = lb_dataset_load_idx(&test, vi, vl);
	if (!is_int(rc, LB_OK, "fashion-mnist: test loads")) {
		diag("%s", lb_error_message());
		return;
	}
	{
		int32_t counts[10] = {0};
		int good = 1;
		for (int i = 0; i < test.n; i++)
			counts[test.labels[i]]++;
		for (int c = 0; c < 10; c++)
			good &= counts[c] == 1000;
		ok(test.n == 10000 && test.H == 28 && test.W == 28 && good,
		   "fashion-mnist: test is 10000 x 28 x 28, 1000 per class");
	}
	lb_dataset_release(&test);
}

/* ---- CIFAR-10 ---- */

enum { REC = 3073 };

/* Pixel value of record r, channel c, row y, column x in the generated files. */
static uint8_t cifar_value(int r, int c, int y, int x)
{
	return (uint8_t)(r * 101 + c * 67 + y * 13 + x * 7);
}

static void make_cifar(uint8_t *buf, int n_rec, int first)
{
	for (int r = 0; r < n_rec; r++) {
		uint8_t *rec = buf + (size_t)r * REC;
		rec[0] = (uint8_t)((first + r) % 10);
		for (int c = 0; c < 3; c++)
			for (int y = 0; y < 32; y++)
				for (int x = 0; x < 32; x++)
					rec[1 + c * 1024 + y * 32 + x] = cifar_value(first + r, c, y, x);
	}
}

static void test_cifar(void)
{
	static uint8_t a[3 * REC], b[2 * REC + 5];
	struct lb_dataset ds;
	const char *paths[2];
	make_cifar(a, 3, 0);
	make_cifar(b, 2, 3);
	paths[0] = fixture("cifar-a.bin");
	paths[1] = fixture("cifar-b.bin.gz");
	write_bytes(paths[0], a, sizeof a, 0);
	write_bytes(paths[1], b, 2 * REC, 1);
	int rc = lb_dataset_load_cifar10(&ds, paths, 2);
	if (is_int(rc, LB_OK, "cifar: two files (plain + gzip) load")) {
		int px = 1, lab = 1, ids = 1;
		for (int s = 0; s < ds.n; s++) {
			lab &= ds.labels[s] == s % 10;
			ids &= ds.ids[s] == s;
			for (int y = 0; y < 32; y++)
				for (int x = 0; x < 32; x++)
					for (int c = 0; c < 3; c++)
						px &= ds.images[(((size_t)s * 32 + y) * 32 + x) * 3 + c] ==
						      cifar_value(s, c, y, x);
		}
		ok(ds.n == 5 && ds.H == 32 && ds.W == 32 && ds.C == 3 && ds.n_classes == 10,
		   "cifar: 5 samples of 32x32x3");
		ok(px, "cifar: CHW records stored as HWC");
		ok(lab, "cifar: labels");
		ok(ids, "cifar: ids run over the concatenated files");
		lb_dataset_release(&ds);
	} else {
		diag("%s", lb_error_message());
	}

	paths[1] = fixture("cifar-bad-size.bin");
	write_bytes(paths[1], b, sizeof b, 0);
	rc = lb_dataset_load_cifar10(&ds, paths, 2);
	expect_fail(rc, &ds, LB_ERR_DATA, paths[1], "cifar bad size",
		    NEEDLES("6151 bytes", "3073-byte", "5 bytes left over"));
	b[REC] = 10; /* record 1 of the file */
	paths[1] = fixture("cifar-bad-label.bin");
	write_bytes(paths[1], b, 2 * REC, 0);
	rc = lb_dataset_load_cifar10(&ds, paths, 2);
	expect_fail(rc, &ds, LB_ERR_DATA, paths[1], "cifar bad label",
		    NEEDLES("record 1", "label 10", "0..9"));
	paths[1] = fixture("cifar-empty.bin");
	write_bytes(paths[1], b, 0, 0);
	rc = lb_dataset_load_cifar10(&ds, paths, 2);
	expect_fail(rc, &ds, LB_ERR_DATA, paths[1], "cifar empty file", NEEDLES("empty"));
	paths[1] = fixture("cifar-missing.bin");
	rc = lb_dataset_load_cifar10(&ds, paths, 2);
	expect_fail(rc, &ds, LB_ERR_IO, paths[1], "cifar missing file",
		    NEEDLES("cannot open", "No such file or directory"));
}

/* ---- in-memory datasets ---- */

/* n samples of HxWxC with pixel values from the test stream; ids 0..n-1. */
static int make_synthetic(struct lb_dataset *ds, int32_t n, int H, int W, int C)
{
	size_t img = (size_t)H * W * C;
	memset(ds, 0, sizeof *ds);
	ds->images = malloc((size_t)n * img);
	ds->labels = malloc((size_t)n);
	ds->ids = malloc((size_t)n * sizeof *ds->ids);
	if (!ds->images || !ds->labels || !ds->ids) {
		lb_dataset_release(ds);
		return -1;
	}
	ds->n = n;
	ds->H = H;
	ds->W = W;
	ds->C = C;
	ds->n_classes = 10;
	for (size_t i = 0; i < (size_t)n * img; i++)
		ds->images[i] = (uint8_t)lb_rng_below(9, LB_RNG_TEST, 0, i, 256);
	for (int32_t i = 0; i < n; i++) {
		ds->labels[i] = (uint8_t)(i % 10);
		ds->ids[i] = i;
	}
	return 0;
}

static void test_split(void)
{
	struct lb_dataset all, tr, va, tr2, va2;
	enum { N = 100, NV = 20 };
	if (make_synthetic(&all, N, 4, 3, 3)) {
		ok(0, "split: allocation");
		return;
	}
	size_t img = 4 * 3 * 3;
	int rc = lb_dataset_split(&tr, &va, &all, NV, 77);
	if (!is_int(rc, LB_OK, "split: ok")) {
		diag("%s", lb_error_message());
		lb_dataset_release(&all);
		return;
	}
	ok(tr.n == N - NV && va.n == NV, "split: sizes %d + %d", tr.n, va.n);
	ok(tr.H == 4 && tr.W == 3 && tr.C == 3 && va.H == 4 && va.n_classes == 10,
	   "split: shapes kept");
	int seen[N] = {0}, order = 1, copy = 1;
	for (int k = 0; k < 2; k++) {
		const struct lb_dataset *d = k ? &va : &tr;
		for (int i = 0; i < d->n; i++) {
			int32_t id = d->ids[i];
			seen[id]++;
			if (i > 0 && d->ids[i - 1] >= id)
				order = 0;
			if (memcmp(d->images + i * img, all.images + id * img, img) != 0 ||
			    d->labels[i] != all.labels[id])
				copy = 0;
		}
	}
	int each_once = 1;
	for (int i = 0; i < N; i++)
		each_once &= seen[i] == 1;
	ok(each_once, "split: train and val are disjoint and cover all samples");
	ok(order, "split: both keep the original order");
	ok(copy, "split: images and labels follow their ids");

	rc = lb_dataset_split(&tr2, &va2, &all, NV, 77);
	ok(rc == LB_OK && memcmp(va.ids, va2.ids, NV * sizeof *va.ids) == 0,
	   "split: same seed, same validation set");
	lb_dataset_release(&tr2);
	lb_dataset_release(&va2);
	rc = lb_dataset_split(&tr2, &va2, &all, NV, 78);
	ok(rc == LB_OK && memcmp(va.ids, va2.ids, NV * sizeof *va.ids) != 0,
	   "split: other seed, other validation set");
	lb_dataset_release(&tr2);
	lb_dataset_release(&va2);
	/* split of a split keeps the original ids */
	rc = lb_dataset_split(&tr2, &va2, &tr, 10, 5);
	{
		int ids_ok = rc == LB_OK;
		for (int i = 0; ids_ok && i < va2.n; i++) {
			int found = 0;
			for (int j = 0; j < tr.n; j++)
				found |= tr.ids[j] == va2.ids[i];
			ids_ok &= found;
		}
		ok(ids_ok, "split: a split of a split keeps the original ids");
	}
	lb_dataset_release(&tr2);
	lb_dataset_release(&va2);

	memset(&tr2, 0x5a, sizeof tr2);
	memset(&va2, 0x5a, sizeof va2);
	rc = lb_dataset_split(&tr2, &va2, &all, N, 1);
	is_int(rc, LB_ERR_CONFIG, "split: n_val = n refused");
	ok(strstr(lb_error_message(), "100 validation samples") &&
		   strstr(lb_error_message(), "of 100 samples"),
	   "split: message names the numbers");
	diag("%s", lb_error_message());
	ok(ds_is_empty(&tr2) && ds_is_empty(&va2), "split: outputs left empty on error");
	rc = lb_dataset_split(&tr2, &va2, &all, -1, 1);
	is_int(rc, LB_ERR_CONFIG, "split: negative n_val refused");
	rc = lb_dataset_split(&tr2, &va2, &all, 0, 1);
	ok(rc == LB_OK && tr2.n == N && va2.n == 0, "split: n_val = 0 keeps everything");
	lb_dataset_release(&tr2);
	lb_dataset_release(&va2);

	{
		int32_t first[7];
		uint8_t first_img[7 * 36];
		memcpy(first, tr.ids, sizeof first);
		memcpy(first_img, tr.images, sizeof first_img);
		lb_dataset_truncate(&tr, 7);
		ok(tr.n == 7 && memcmp(first, tr.ids, sizeof first) == 0 &&
			   memcmp(first_img, tr.images, sizeof first_img) == 0,
		   "truncate: keeps the first 7 samples");
	}
	lb_dataset_release(&tr);
	lb_dataset_release(&va);
	lb_dataset_release(&all);
}

/* Reference for one sample: the padded image read pixel by pixel. */
static float ref_pixel(const struct lb_dataset *ds, int32_t s, int i, int j, int c,
		       const struct lb_normalize *norm, int pad, int dy, int dx, int flip)
{
	int jj = flip ? ds->W - 1 - j : j;
	int u = i + dy - pad, v = jj + dx - pad;
	int raw = 0;
	if (u >= 0 && u < ds->H && v >= 0 && v < ds->W)
		raw = ds->images[(((size_t)s * ds->H + u) * ds->W + v) * ds->C + c];
	float m = norm ? norm->mean[c] : 0.0f, sd = norm ? norm->std[c] : 1.0f;
	return ((float)raw / 255.0f - m) / sd;
}

static double max_diff_to_ref(const float *x, const struct lb_dataset *ds, const int32_t *idx,
			      int B, const struct lb_normalize *norm, const struct lb_augment *aug,
			      uint64_t seed, uint32_t epoch)
{
	double worst = 0;
	for (int b = 0; b < B; b++) {
		int dy, dx, flip;
		lb_data_augment_draw(aug, seed, epoch, ds->ids[idx[b]], &dy, &dx, &flip);
		for (int i = 0; i < ds->H; i++)
			for (int j = 0; j < ds->W; j++)
				for (int c = 0; c < ds->C; c++) {
					float want = ref_pixel(ds, idx[b], i, j, c, norm,
							       aug ? aug->crop_pad : 0, dy, dx, flip);
					float got = x[(((size_t)b * ds->H + i) * ds->W + j) * ds->C + c];
					double d = fabs((double)got - want);
					if (!(d <= worst))
						worst = d;
				}
	}
	return worst;
}

static void test_batch_normalise(void)
{
	struct lb_dataset ds;
	enum { B = 4, H = 5, W = 6, C = 3 };
	float x[B * H * W * C];
	int32_t y[B], idx[B] = {3, 0, 7, 3};
	struct lb_normalize norm = {{0.5f, 0.25f, 0.125f}, {0.5f, 0.2f, 2.0f}};
	if (make_synthetic(&ds, 8, H, W, C)) {
		ok(0, "batch: allocation");
		return;
	}
	/* hand-checked values: pixel 0 of sample 3 */
	ds.images[(size_t)3 * H * W * C + 0] = 255;
	ds.images[(size_t)3 * H * W * C + 1] = 0;
	ds.images[(size_t)3 * H * W * C + 2] = 51;
	lb_data_batch(x, y, &ds, idx, B, &norm, NULL, 1, 0);
	is_near(x[0], 1.0, 1e-6, "batch: (255/255 - 0.5) / 0.5 = 1");
	is_near(x[1], -1.25, 1e-6, "batch: (0 - 0.25) / 0.2 = -1.25");
	is_near(x[2], 0.0375, 1e-6, "batch: (51/255 - 0.125) / 2 = 0.0375");
	ok(y[0] == 3 && y[1] == 0 && y[2] == 7 && y[3] == 3, "batch: labels follow idx");
	is_near(max_diff_to_ref(x, &ds, idx, B, &norm, NULL, 1, 0), 0, 1e-6,
		"batch: every value matches (pixel/255 - mean)/std");
	lb_data_batch(x, y, &ds, idx, B, NULL, NULL, 1, 0);
	is_near(max_diff_to_ref(x, &ds, idx, B, NULL, NULL, 1, 0), 0, 1e-7,
		"batch: norm NULL gives pixel/255");
	{
		struct lb_augment off = {0, 0};
		float x2[B * H * W * C];
		lb_data_batch(x2, y, &ds, idx, B, NULL, &off, 1, 0);
		ok(memcmp(x, x2, sizeof x) == 0, "batch: augmentation with both fields 0 is off");
	}
	lb_dataset_release(&ds);
}

static void test_augment(void)
{
	struct lb_dataset ds;
	enum { N = 16, H = 6, W = 5, C = 3, IMG = H * W * C, PAD = 2 };
	static float x1[N * IMG + 8], x2[N * IMG + 8];
	int32_t y[N], idx[N];
	struct lb_normalize norm = {{0.4f, 0.5f, 0.6f}, {0.2f, 0.25f, 0.3f}};
	struct lb_augment aug = {PAD, 1};
	if (make_synthetic(&ds, N, H, W, C)) {
		ok(0, "augment: allocation");
		return;
	}
	for (int i = 0; i < N; i++) {
		idx[i] = i;
		ds.ids[i] = 1000 + 3 * i; /* as after a split */
	}
	for (int i = 0; i < 8; i++)
		x1[N * IMG + i] = x2[N * IMG + i] = 12345.0f; /* guards past the batch */
	lb_data_batch(x1, y, &ds, idx, N, &norm, &aug, 42, 3);
	lb_data_batch(x2, y, &ds, idx, N, &norm, &aug, 42, 3);
	ok(memcmp(x1, x2, sizeof x1) == 0, "augment: same seed/epoch/id, same output");
	is_near(max_diff_to_ref(x1, &ds, idx, N, &norm, &aug, 42, 3), 0, 1e-6,
		"augment: crop+flip matches the per-pixel reference");
	ok(x1[N * IMG] == 12345.0f && x1[N * IMG + 7] == 12345.0f,
	   "augment: output is exactly B x H x W x C (guards untouched)");
	lb_data_batch(x2, y, &ds, idx, N, &norm, &aug, 42, 4);
	ok(memcmp(x1, x2, sizeof x1) != 0, "augment: another epoch differs somewhere");

	/* a sample's augmentation does not depend on its batch position */
	{
		int32_t rev[N];
		float one[IMG];
		int32_t y1;
		int same = 1;
		for (int i = 0; i < N; i++)
			rev[i] = N - 1 - i;
		lb_data_batch(x2, y, &ds, rev, N, &norm, &aug, 42, 3);
		for (int i = 0; i < N; i++)
			same &= memcmp(x2 + (size_t)i * IMG, x1 + (size_t)(N - 1 - i) * IMG,
				       IMG * sizeof(float)) == 0;
		lb_data_batch(one, &y1, &ds, &idx[5], 1, &norm, &aug, 42, 3);
		same &= memcmp(one, x1 + 5 * IMG, sizeof one) == 0;
		ok(same, "augment: output independent of batch position");
	}

	/* draws cover the whole range and flip about half the time */
	{
		int seen_dy[2 * PAD + 1] = {0}, seen_dx[2 * PAD + 1] = {0}, flips = 0, all_seen = 1;
		enum { T = 4000 };
		for (int t = 0; t < T; t++) {
			int dy, dx, f;
			lb_data_augment_draw(&aug, 7, (uint32_t)t, 11, &dy, &dx, &f);
			if (dy < 0 || dy > 2 * PAD || dx < 0 || dx > 2 * PAD) {
				all_seen = 0;
				break;
			}
			seen_dy[dy]++;
			seen_dx[dx]++;
			flips += f;
		}
		for (int k = 0; k <= 2 * PAD; k++)
			all_seen &= seen_dy[k] > T / 10 && seen_dx[k] > T / 10;
		ok(all_seen, "augment: offsets in [0, 2*pad], each value drawn");
		is_near((double)flips / T, 0.5, 0.05, "augment: flip probability 1/2");
	}

	/* flip only, on a known image: each output is the image or its mirror */
	{
		struct lb_augment fl = {0, 1};
		int flipped = 0, plain = 0, exact = 1;
		for (uint32_t e = 0; e < 8; e++) {
			lb_data_batch(x1, y, &ds, idx, N, NULL, &fl, 42, e);
			for (int b = 0; b < N; b++) {
				int is_plain = 1, is_mirror = 1;
				for (int i = 0; i < H; i++)
					for (int j = 0; j < W; j++)
						for (int c = 0; c < C; c++) {
							float got = x1[(size_t)b * IMG + (i * W + j) * C + c];
							float p = ds.images[(size_t)b * IMG + (i * W + j) * C + c] / 255.0f;
							float m = ds.images[(size_t)b * IMG +
									    (i * W + (W - 1 - j)) * C + c] / 255.0f;
							is_plain &= got == p;
							is_mirror &= got == m;
						}
				exact &= is_plain || is_mirror;
				plain += is_plain;
				flipped += is_mirror;
			}
		}
		ok(exact && flipped > 0 && plain > 0,
		   "augment: flip gives the image or its exact mirror (%d plain, %d mirrored)", plain,
		   flipped);
	}

	/* crop only, pad value: a constant image shows (0 - mean)/std in the pad */
	{
		struct lb_augment cr = {PAD, 0};
		int dy, dx, f, good = 1, some_pad = 0;
		memset(ds.images, 200, (size_t)N * IMG);
		lb_data_batch(x1, y, &ds, idx, N, &norm, &cr, 9, 1);
		for (int b = 0; b < N; b++) {
			lb_data_augment_draw(&cr, 9, 1, ds.ids[b], &dy, &dx, &f);
			good &= f == 0;
			for (int i = 0; i < H; i++)
				for (int j = 0; j < W; j++)
					for (int c = 0; c < C; c++) {
						int inside = i + dy - PAD >= 0 && i + dy - PAD < H &&
							     j + dx - PAD >= 0 && j + dx - PAD < W;
						float want = ((inside ? 200 / 255.0f : 0.0f) - norm.mean[c]) /
							     norm.std[c];
						good &= fabsf(x1[(size_t)b * IMG + (i * W + j) * C + c] - want) <
							1e-5f;
						some_pad |= !inside;
					}
		}
		ok(good && some_pad, "augment: crop pads with raw 0, i.e. (0 - mean)/std");
	}
	lb_dataset_release(&ds);
}

static void test_stats(void)
{
	struct lb_dataset ds;
	struct lb_normalize st;
	if (make_synthetic(&ds, 2, 1, 2, 3)) {
		ok(0, "stats: allocation");
		return;
	}
	/* channel 0: 0, 255, 255, 0 -> mean 0.5, std 0.5
	 * channel 1: 51 everywhere -> mean 0.2, std 0
	 * channel 2: 0, 0, 0, 255 -> mean 0.25, std sqrt(3)/4 */
	static const uint8_t px[12] = {0, 51, 0, 255, 51, 0, 255, 51, 0, 0, 51, 255};
	memcpy(ds.images, px, sizeof px);
	lb_dataset_stats(&ds, &st);
	is_near(st.mean[0], 0.5, 1e-6, "stats: mean c0");
	is_near(st.std[0], 0.5, 1e-6, "stats: std c0");
	is_near(st.mean[1], 0.2, 1e-6, "stats: mean c1");
	is_near(st.std[1], 0.0, 1e-6, "stats: std c1");
	is_near(st.mean[2], 0.25, 1e-6, "stats: mean c2");
	is_near(st.std[2], sqrt(3.0) / 4, 1e-6, "stats: std c2");
	lb_dataset_release(&ds);

	/* against a plain double loop on a random single-channel set */
	if (make_synthetic(&ds, 50, 7, 9, 1) == 0) {
		double s = 0, s2 = 0;
		size_t n = (size_t)50 * 7 * 9;
		for (size_t i = 0; i < n; i++)
			s += ds.images[i] / 255.0;
		for (size_t i = 0; i < n; i++)
			s2 += (ds.images[i] / 255.0 - s / n) * (ds.images[i] / 255.0 - s / n);
		lb_dataset_stats(&ds, &st);
		ok(fabs(st.mean[0] - s / n) < 1e-6 && fabs(st.std[0] - sqrt(s2 / n)) < 1e-6 &&
			   st.mean[1] == 0.0f && st.std[1] == 1.0f,
		   "stats: C=1 matches a plain loop; unused channels are mean 0, std 1");
		lb_dataset_release(&ds);
	}
}

int main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/lb-test-data-XXXXXX");
	if (!mkdtemp(tmpdir))
		tap_skip_all("cannot create a temporary directory");
	test_idx_round_trip();
	test_idx_bad();
	test_fashion_mnist();
	test_cifar();
	test_split();
	test_batch_normalise();
	test_augment();
	test_stats();
	for (int i = 0; i < n_made; i++)
		unlink(made[i]);
	if (rmdir(tmpdir) != 0)
		diag("temporary directory %s not removed", tmpdir);
	return done_testing();
}
