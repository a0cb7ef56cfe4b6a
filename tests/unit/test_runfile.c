/* SPDX-License-Identifier: MIT
 * Tests of analysis/runfile.c: exact round trips of every object kind
 * through HDF5, the on-disk layout (dimension scales, chunking, string
 * types), atomic replacement, and the reader's refusals. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <hdf5_hl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "../tap.h"
#include "analysis/runfile.h"
#include "err.h"

static char tmpdir[64];

/* tmpdir/name in buf. */
static const char *tpath(char *buf, size_t n, const char *name)
{
	snprintf(buf, n, "%s/%s", tmpdir, name);
	return buf;
}

static int file_exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0;
}

static void rm_rf(const char *p)
{
	struct stat st;
	DIR *d;
	struct dirent *e;
	char sub[1024];
	if (lstat(p, &st) < 0)
		return;
	if (!S_ISDIR(st.st_mode)) {
		unlink(p);
		return;
	}
	d = opendir(p);
	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(sub, sizeof sub, "%s/%s", p, e->d_name);
		rm_rf(sub);
	}
	if (d)
		closedir(d);
	rmdir(p);
}

static int write_bytes(const char *p, const void *data, size_t n)
{
	FILE *f = fopen(p, "wb");
	int rc = -1;
	if (!f)
		return -1;
	if (fwrite(data, 1, n, f) == n)
		rc = 0;
	if (fclose(f))
		rc = -1;
	return rc;
}

/* Whole file into a malloc'd buffer; NULL on failure. */
static unsigned char *slurp(const char *p, size_t *n)
{
	FILE *f = fopen(p, "rb");
	unsigned char *buf = NULL;
	long len;
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)len + 1);
		if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
			free(buf);
			buf = NULL;
		}
		*n = (size_t)len;
	}
	fclose(f);
	return buf;
}

static int has(const char *msg, const char *part)
{
	if (strstr(msg, part))
		return 1;
	diag("  message '%s' lacks '%s'", msg, part);
	return 0;
}

/* ---- a full image ---- */

static const char *const unicode = "Gr\xc3\xbc\xc3\x9f" "e \xce\xb1\xce\xb2\xce\xb3 \xe2\x80\x94 "
				   "\xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x9a\x80";

/* Deterministic bytes for an array of dt (floats include specials). */
static void fill(void *data, enum lb_dtype dt, size_t n, unsigned salt)
{
	for (size_t i = 0; i < n; i++) {
		double v = sin((double)(i * 7 + salt)) * 1e3 + (double)i / 3.0;
		switch (dt) {
		case LB_DT_F32: ((float *)data)[i] = (float)v; break;
		case LB_DT_F64: ((double *)data)[i] = v; break;
		case LB_DT_I32: ((int32_t *)data)[i] = (int32_t)(v * 1e5); break;
		case LB_DT_I64: ((int64_t *)data)[i] = (int64_t)(v * 1e12); break;
		case LB_DT_U8: ((uint8_t *)data)[i] = (uint8_t)(i * 31 + salt); break;
		}
	}
	if (n >= 3 && dt == LB_DT_F32) {
		((float *)data)[0] = NAN;
		((float *)data)[1] = -0.0f;
		((float *)data)[2] = 1e-42f; /* subnormal */
	}
	if (n >= 3 && dt == LB_DT_F64) {
		((double *)data)[0] = -INFINITY;
		((double *)data)[1] = -0.0;
		((double *)data)[2] = 4.9e-324;
	}
	if (n >= 2 && dt == LB_DT_I64) {
		((int64_t *)data)[0] = INT64_MIN;
		((int64_t *)data)[1] = INT64_MAX;
	}
}

static char *long_string(size_t n)
{
	char *s = malloc(n + 1);
	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i++)
		s[i] = (char)('a' + (char)(i % 26));
	s[n] = '\0';
	return s;
}

/* Every kind of object; LB_OK or the first error. */
static int build_image(struct lb_runfile *rf)
{
	static const enum lb_dtype dts[] = { LB_DT_F32, LB_DT_F64, LB_DT_I32, LB_DT_I64, LB_DT_U8 };
	static const char *const names[] = { "f32", "f64", "i32", "i64", "u8" };
	const char *layers[] = { "conv1", "", unicode, "fc.weight" };
	char *big = long_string(100000);
	void *buf = malloc(200 * 100 * 8);
	int err = LB_OK;
	if (!big || !buf) {
		err = LB_ERR_OOM;
		goto out;
	}
	err = err ? err : lb_runfile_set_attr_str(rf, "", "name", "mlp-smoke");
	err = err ? err : lb_runfile_set_attr_str(rf, "/", "config", big);
	err = err ? err : lb_runfile_set_attr_str(rf, "", "unicode", unicode);
	err = err ? err : lb_runfile_set_attr_str(rf, "", "empty", "");
	err = err ? err : lb_runfile_set_attr_i64(rf, "", "seed", INT64_MIN);
	err = err ? err : lb_runfile_set_attr_i64(rf, "", "ranks", 4);
	err = err ? err : lb_runfile_set_attr_f64(rf, "", "peak_rss_mib", 123.456);
	err = err ? err : lb_runfile_set_attr_f64(rf, "", "nan", NAN);
	err = err ? err : lb_runfile_set_attr_f64(rf, "", "negzero", -0.0);
	err = err ? err : lb_runfile_set_attr_str(rf, "config_flat", "optimizer.lr", "0.1");
	err = err ? err : lb_runfile_set_attr_str(rf, "config_flat/", "model.layers", "[8, 4]");
	err = err ? err : lb_runfile_set_attr_i64(rf, "checkpoint", "epoch", 3);
	/* arrays: every dtype at every rank */
	for (int k = 0; k < 5 && !err; k++) {
		for (int rank = 1; rank <= 4 && !err; rank++) {
			uint64_t dims[4] = { 3, 2, 4, 5 };
			size_t n = 1;
			char path[64];
			dims[0] = (uint64_t)(rank + 2);
			for (int d = 0; d < rank; d++)
				n *= dims[d];
			fill(buf, dts[k], n, (unsigned)(k * 10 + rank));
			snprintf(path, sizeof path, "arrays/%s/rank%d", names[k], rank);
			err = lb_runfile_put_array(rf, path, dts[k], rank, dims, buf);
		}
	}
	if (!err) { /* large: chunked + compressed */
		uint64_t dims[2] = { 200, 100 };
		fill(buf, LB_DT_F64, 200 * 100, 99);
		err = lb_runfile_put_array(rf, "final/weights/fc1.weight", LB_DT_F64, 2, dims, buf);
	}
	if (!err) {
		uint64_t dims[4] = { 16, 3, 3, 200 };
		fill(buf, LB_DT_F32, 16 * 3 * 3 * 200, 7);
		err = lb_runfile_put_array(rf, "final/weights/conv1.weight", LB_DT_F32, 4, dims, buf);
	}
	if (!err) {
		uint64_t dims[1] = { 0 };
		err = lb_runfile_put_array(rf, "arrays/empty", LB_DT_I64, 1, dims, NULL);
	}
	err = err ? err : lb_runfile_put_strings(rf, "model/layer_names", layers, 4);
	err = err ? err : lb_runfile_put_strings(rf, "model/none", NULL, 0);
	/* series: epoch axis, 1-D and 2-D */
	err = err ? err : lb_runfile_set_axis(rf, "metrics", "epoch");
	for (int e = 0; e < 7 && !err; e++) {
		double epoch = e + 1, loss = 2.0 / (e + 1), acc = 0.1 * e, row[3] = { e, -e, NAN };
		err = lb_runfile_append(rf, "metrics/epoch", &epoch, 1);
		err = err ? err : lb_runfile_append(rf, "metrics/train_loss", &loss, 1);
		err = err ? err : lb_runfile_append(rf, "metrics/test_acc", &acc, 1);
		err = err ? err : lb_runfile_append(rf, "metrics/layer_bits", row, 3);
	}
	err = err ? err : lb_runfile_set_attr_str(rf, "metrics/train_loss", "units", "nats");
out:
	free(big);
	free(buf);
	return err;
}

/* Layout checks through the plain HDF5 API. */
static void check_layout(const char *p)
{
	hid_t f, epoch = -1, loss = -1, bits = -1, big = -1, small = -1, attr = -1, type = -1;
	hid_t dcpl = -1, space = -1;
	hsize_t dims[2], maxdims[2];
	int64_t fmt = 0;

	f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
	if (!ok(f >= 0, "layout: plain H5Fopen opens the file")) {
		for (int i = 0; i < 11; i++)
			skip("file did not open");
		return;
	}
	attr = H5Aopen(f, "lowbit_format", H5P_DEFAULT);
	ok(attr >= 0 && H5Aread(attr, H5T_NATIVE_INT64, &fmt) >= 0 && fmt == LB_RUNFILE_FORMAT,
	   "layout: root lowbit_format = %d", LB_RUNFILE_FORMAT);
	H5Aclose(attr);
	attr = H5Aopen(f, "lowbit_kind", H5P_DEFAULT);
	type = attr >= 0 ? H5Aget_type(attr) : -1;
	ok(type >= 0 && H5Tis_variable_str(type) > 0 && H5Tget_cset(type) == H5T_CSET_UTF8,
	   "layout: string attributes are variable-length UTF-8");
	H5Tclose(type);
	H5Aclose(attr);

	epoch = H5Dopen2(f, "metrics/epoch", H5P_DEFAULT);
	loss = H5Dopen2(f, "metrics/train_loss", H5P_DEFAULT);
	bits = H5Dopen2(f, "metrics/layer_bits", H5P_DEFAULT);
	ok(epoch >= 0 && H5DSis_scale(epoch) > 0, "layout: metrics/epoch is a dimension scale");
	ok(loss >= 0 && H5DSis_attached(loss, epoch, 0) > 0, "layout: epoch attached to train_loss");
	ok(bits >= 0 && H5DSis_attached(bits, epoch, 0) > 0, "layout: epoch attached to layer_bits");

	space = H5Dget_space(loss);
	ok(H5Sget_simple_extent_ndims(space) == 1 && H5Sget_simple_extent_dims(space, dims, maxdims) == 1 &&
		   maxdims[0] == H5S_UNLIMITED,
	   "layout: 1-D series is extendible");
	H5Sclose(space);
	space = H5Dget_space(bits);
	ok(H5Sget_simple_extent_dims(space, dims, maxdims) == 2 && maxdims[0] == H5S_UNLIMITED &&
		   dims[1] == 3 && maxdims[1] == 3,
	   "layout: 2-D series is (rows, 3), unlimited rows");
	H5Sclose(space);
	dcpl = H5Dget_create_plist(loss);
	ok(H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_nfilters(dcpl) == 2,
	   "layout: series chunked with shuffle+deflate");
	H5Pclose(dcpl);

	big = H5Dopen2(f, "final/weights/fc1.weight", H5P_DEFAULT);
	dcpl = big >= 0 ? H5Dget_create_plist(big) : -1;
	ok(dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_nfilters(dcpl) == 2,
	   "layout: large array chunked and compressed");
	if (dcpl >= 0)
		H5Pclose(dcpl);
	small = H5Dopen2(f, "arrays/f32/rank2", H5P_DEFAULT);
	dcpl = small >= 0 ? H5Dget_create_plist(small) : -1;
	ok(dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CONTIGUOUS, "layout: small array contiguous");
	if (dcpl >= 0)
		H5Pclose(dcpl);
	type = small >= 0 ? H5Dget_type(small) : -1;
	ok(type >= 0 && H5Tequal(type, H5T_IEEE_F32LE) > 0, "layout: float32 stored as IEEE F32LE");
	if (type >= 0)
		H5Tclose(type);
	H5Dclose(small);
	H5Dclose(big);
	H5Dclose(bits);
	H5Dclose(loss);
	H5Dclose(epoch);
	ok(H5Fclose(f) >= 0, "layout: file closes cleanly");
}

static void test_roundtrip(void)
{
	struct lb_runfile *a = NULL, *b = NULL, *c = NULL;
	char p1[256], p2[256], p3[256];
	unsigned char *bytes1 = NULL, *bytes2 = NULL;
	size_t n1 = 0, n2 = 0;
	const double *s;
	const char *const *strs;
	const void *arr;
	enum lb_dtype dt;
	uint64_t dims[4];
	int rows = 0, width = 0, n = 0, rank = 0, err;
	int64_t i64 = 0;
	double f64 = 0;

	tpath(p1, sizeof p1, "rt1.h5");
	tpath(p2, sizeof p2, "rt2.h5");
	tpath(p3, sizeof p3, "rt3.h5");
	err = lb_runfile_new(&a);
	err = err ? err : build_image(a);
	if (!is_int(err, LB_OK, "roundtrip: build image (%s)", lb_error_message()))
		goto out;
	err = lb_runfile_write(a, p1);
	is_int(err, LB_OK, "roundtrip: write (%s)", err ? lb_error_message() : "");
	err = lb_runfile_read(p1, &b);
	if (!is_int(err, LB_OK, "roundtrip: read back (%s)", err ? lb_error_message() : ""))
		goto out;
	err = lb_runfile_diff(a, b);
	is_int(err, LB_OK, "roundtrip: read image equals written image (%s)",
	       err ? lb_error_message() : "identical");

	/* spot checks through the getters */
	ok(lb_runfile_get_attr_str(b, "", "unicode") &&
		   !strcmp(lb_runfile_get_attr_str(b, "", "unicode"), unicode),
	   "roundtrip: unicode string attribute");
	ok(lb_runfile_get_attr_str(b, "", "config") &&
		   strlen(lb_runfile_get_attr_str(b, "", "config")) == 100000,
	   "roundtrip: 100 kB string attribute");
	ok(lb_runfile_get_attr_i64(b, "", "seed", &i64) == 0 && i64 == INT64_MIN,
	   "roundtrip: int64 attribute INT64_MIN");
	ok(lb_runfile_get_attr_f64(b, "", "nan", &f64) == 0 && isnan(f64), "roundtrip: NaN attribute");
	ok(lb_runfile_get_attr_f64(b, "", "negzero", &f64) == 0 && f64 == 0 && signbit(f64),
	   "roundtrip: -0.0 attribute keeps its sign");
	ok(lb_runfile_get_attr_i64(b, "", "lowbit_format", &i64) == 0 && i64 == LB_RUNFILE_FORMAT &&
		   lb_runfile_get_attr_str(b, "", "lowbit_kind") &&
		   !strcmp(lb_runfile_get_attr_str(b, "", "lowbit_kind"), "run"),
	   "roundtrip: lowbit_format and lowbit_kind present");
	ok(lb_runfile_get_attr_str(b, "config_flat", "optimizer.lr") &&
		   !strcmp(lb_runfile_get_attr_str(b, "config_flat", "optimizer.lr"), "0.1"),
	   "roundtrip: group attribute with a dotted name");
	ok(lb_runfile_get_attr_str(b, "metrics/train_loss", "units") &&
		   !strcmp(lb_runfile_get_attr_str(b, "metrics/train_loss", "units"), "nats"),
	   "roundtrip: attribute on a series");
	ok(!lb_runfile_get_attr_str(b, "metrics/epoch", "CLASS") &&
		   !lb_runfile_get_attr_str(b, "metrics/epoch", "NAME"),
	   "roundtrip: dimension-scale bookkeeping is not a user attribute");
	arr = lb_runfile_get_array(b, "arrays/i64/rank4", &dt, &rank, dims);
	ok(arr && dt == LB_DT_I64 && rank == 4 && dims[0] == 6 && dims[1] == 2 && dims[2] == 4 &&
		   dims[3] == 5 && ((const int64_t *)arr)[1] == INT64_MAX,
	   "roundtrip: int64 rank-4 array shape and values");
	arr = lb_runfile_get_array(b, "final/weights/conv1.weight", &dt, &rank, dims);
	ok(arr && dt == LB_DT_F32 && rank == 4 && dims[3] == 200 && isnan(((const float *)arr)[0]),
	   "roundtrip: large float32 array");
	arr = lb_runfile_get_array(b, "arrays/empty", &dt, &rank, dims);
	ok(arr && rank == 1 && dims[0] == 0, "roundtrip: empty array");
	strs = lb_runfile_get_strings(b, "model/layer_names", &n);
	ok(strs && n == 4 && !strcmp(strs[0], "conv1") && !strcmp(strs[1], "") &&
		   !strcmp(strs[2], unicode),
	   "roundtrip: string array with empty and unicode entries");
	strs = lb_runfile_get_strings(b, "model/none", &n);
	ok(strs && n == 0, "roundtrip: empty string array");
	s = lb_runfile_get_series(b, "metrics/layer_bits", &rows, &width);
	ok(s && rows == 7 && width == 3 && s[3 * 6] == 6 && s[3 * 6 + 1] == -6 && isnan(s[3 * 6 + 2]),
	   "roundtrip: 2-D series");
	s = lb_runfile_get_series(b, "metrics/train_loss", &rows, &width);
	ok(s && rows == 7 && width == 1 && s[3] == 2.0 / 4, "roundtrip: 1-D series");

	/* second generation: write the read image, read again, compare */
	err = lb_runfile_write(b, p2);
	err = err ? err : lb_runfile_read(p2, &c);
	is_int(err, LB_OK, "roundtrip: write -> read -> write -> read (%s)",
	       err ? lb_error_message() : "");
	if (c) {
		err = lb_runfile_diff(a, c);
		is_int(err, LB_OK, "roundtrip: second generation equals the first (%s)",
		       err ? lb_error_message() : "identical");
	} else {
		skip("no second generation");
	}
	bytes1 = slurp(p1, &n1);
	bytes2 = slurp(p2, &n2);
	ok(bytes1 && bytes2 && n1 == n2 && !memcmp(bytes1, bytes2, n1),
	   "roundtrip: rewriting gives a byte-identical file (%zu bytes)", n1);
	check_layout(p1);

	/* appends after a read continue the series */
	if (c) {
		double e = 8, l = 0.25, acc = 0.7, row[3] = { 7, -7, 1 };
		err = lb_runfile_append(c, "metrics/epoch", &e, 1);
		err = err ? err : lb_runfile_append(c, "metrics/train_loss", &l, 1);
		err = err ? err : lb_runfile_append(c, "metrics/test_acc", &acc, 1);
		err = err ? err : lb_runfile_append(c, "metrics/layer_bits", row, 3);
		err = err ? err : lb_runfile_write(c, p3);
		lb_runfile_free(b);
		b = NULL;
		err = err ? err : lb_runfile_read(p3, &b);
		is_int(err, LB_OK, "roundtrip: append after read, write, read");
		s = b ? lb_runfile_get_series(b, "metrics/layer_bits", &rows, &width) : NULL;
		ok(s && rows == 8 && width == 3 && s[21] == 7 && s[23] == 1 && isnan(s[20]),
		   "roundtrip: appended 2-D row follows the old rows");
		s = b ? lb_runfile_get_series(b, "metrics/epoch", &rows, &width) : NULL;
		ok(s && rows == 8 && s[7] == 8 && s[0] == 1, "roundtrip: appended axis row");
		ok(b && lb_runfile_diff(b, c) == LB_OK, "roundtrip: appended image round-trips (%s)",
		   lb_error_message());
	} else {
		for (int i = 0; i < 4; i++)
			skip("no second generation");
	}
out:
	free(bytes1);
	free(bytes2);
	lb_runfile_free(a);
	lb_runfile_free(b);
	lb_runfile_free(c);
}

/* ---- atomic writes ---- */

static int read_attr_i64(const char *p, const char *name, int64_t *v)
{
	struct lb_runfile *rf = NULL;
	int rc = -1;
	if (lb_runfile_read(p, &rf) == LB_OK)
		rc = lb_runfile_get_attr_i64(rf, "", name, v);
	lb_runfile_free(rf);
	return rc;
}

static void test_atomic(void)
{
	struct lb_runfile *rf = NULL;
	char p[256], tmp[300], bad[300], dirfile[256];
	int64_t v = 0;
	int err;

	tpath(p, sizeof p, "atomic.h5");
	snprintf(tmp, sizeof tmp, "%s.tmp", p);
	if (!is_int(lb_runfile_new(&rf), LB_OK, "atomic: new"))
		return;
	lb_runfile_set_attr_i64(rf, "", "generation", 1);
	is_int(lb_runfile_write(rf, p), LB_OK, "atomic: first write");
	lb_runfile_set_attr_i64(rf, "", "generation", 2);
	is_int(lb_runfile_write(rf, p), LB_OK, "atomic: second write replaces the file");
	ok(!file_exists(tmp), "atomic: no .tmp left behind");
	ok(read_attr_i64(p, "generation", &v) == 0 && v == 2, "atomic: the new content is read");

	/* a folder that is a regular file: ENOTDIR */
	tpath(dirfile, sizeof dirfile, "plainfile");
	write_bytes(dirfile, "x", 1);
	snprintf(bad, sizeof bad, "%s/x.h5", dirfile);
	err = lb_runfile_write(rf, bad);
	is_int(err, LB_ERR_IO, "atomic: write into a non-folder fails with LB_ERR_IO");
	ok(has(lb_error_message(), "cannot create '") && has(lb_error_message(), "plainfile/x.h5.tmp'") &&
		   has(lb_error_message(), "Not a directory"),
	   "atomic: message names the path and the reason");
	snprintf(bad, sizeof bad, "%s/no/such/dir/x.h5", tmpdir);
	err = lb_runfile_write(rf, bad);
	ok(err == LB_ERR_IO && has(lb_error_message(), "No such file or directory"),
	   "atomic: write into a missing folder fails with ENOENT");

	/* the tmp cannot be created (it is a folder): old file untouched */
	mkdir(tmp, 0755);
	lb_runfile_set_attr_i64(rf, "", "generation", 3);
	err = lb_runfile_write(rf, p);
	ok(err == LB_ERR_IO && has(lb_error_message(), "atomic.h5.tmp"),
	   "atomic: failed write reports the tmp path");
	ok(read_attr_i64(p, "generation", &v) == 0 && v == 2, "atomic: old file intact after failure");
	rmdir(tmp);

	/* HDF5 fails half-way (an attribute too large for an object header) */
	{
		char *huge = long_string(70000);
		if (huge) {
			lb_runfile_set_attr_i64(rf, "g", huge, 1);
			free(huge);
		}
		err = lb_runfile_write(rf, p);
		ok(err == LB_ERR_HDF5 && has(lb_error_message(), p),
		   "atomic: HDF5 failure mid-write is LB_ERR_HDF5 naming the file (%s)",
		   lb_error_message());
		ok(!file_exists(tmp), "atomic: the partial .tmp is removed");
		ok(read_attr_i64(p, "generation", &v) == 0 && v == 2,
		   "atomic: old file intact after an HDF5 failure");
	}
	lb_runfile_free(rf);
}

/* ---- refusals ---- */

static void test_read_errors(void)
{
	struct lb_runfile *rf = NULL, *got = NULL;
	char p[256], good[256], msg[600];
	unsigned char junk[4096];
	size_t n = 0;
	unsigned char *bytes;
	int err;
	hid_t f, space, attr;

	tpath(p, sizeof p, "missing.h5");
	err = lb_runfile_read(p, &got);
	snprintf(msg, sizeof msg, "cannot open '%s': No such file or directory", p);
	ok(err == LB_ERR_IO && has(lb_error_message(), msg) && !got, "read: missing file");

	err = lb_runfile_read(tmpdir, &got);
	ok(err == LB_ERR_IO && has(lb_error_message(), "Is a directory"), "read: a folder");

	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (unsigned char)(i * 131 + 7);
	tpath(p, sizeof p, "garbage.h5");
	write_bytes(p, junk, sizeof junk);
	err = lb_runfile_read(p, &got);
	snprintf(msg, sizeof msg, "'%s' is not a readable HDF5 file (truncated or foreign)", p);
	ok(err == LB_ERR_HDF5 && has(lb_error_message(), msg) && !got, "read: garbage file");

	tpath(p, sizeof p, "empty.h5");
	write_bytes(p, "", 0);
	err = lb_runfile_read(p, &got);
	ok(err == LB_ERR_HDF5 && has(lb_error_message(), "not a readable HDF5 file"),
	   "read: empty file");

	/* a real run file cut in half */
	tpath(good, sizeof good, "good.h5");
	err = lb_runfile_new(&rf);
	err = err ? err : build_image(rf);
	err = err ? err : lb_runfile_write(rf, good);
	lb_runfile_free(rf);
	rf = NULL;
	bytes = err ? NULL : slurp(good, &n);
	tpath(p, sizeof p, "half.h5");
	if (bytes && n > 1000 && write_bytes(p, bytes, n / 2) == 0) {
		err = lb_runfile_read(p, &got);
		snprintf(msg, sizeof msg, "'%s' is not a readable HDF5 file (truncated or foreign)", p);
		ok(err == LB_ERR_HDF5 && has(lb_error_message(), msg) && !got,
		   "read: truncated file (%zu of %zu bytes)", n / 2, n);
		diag("%s", lb_error_message());
	} else {
		ok(0, "read: could not make a truncated file");
	}
	free(bytes);

	/* a foreign HDF5 file */
	tpath(p, sizeof p, "foreign.h5");
	f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
	if (f >= 0) {
		hsize_t dims[1] = { 4 };
		int data[4] = { 1, 2, 3, 4 };
		hid_t ds;
		space = H5Screate_simple(1, dims, NULL);
		ds = H5Dcreate2(f, "x", H5T_NATIVE_INT, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
		H5Dwrite(ds, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
		H5Dclose(ds);
		H5Sclose(space);
		H5Fclose(f);
	}
	err = lb_runfile_read(p, &got);
	snprintf(msg, sizeof msg, "'%s' is not a lowbit run file", p);
	ok(err == LB_ERR_HDF5 && has(lb_error_message(), msg) && !got, "read: foreign HDF5 file");

	/* a newer format version */
	tpath(p, sizeof p, "newer.h5");
	err = lb_runfile_new(&rf);
	err = err ? err : lb_runfile_write(rf, p);
	lb_runfile_free(rf);
	rf = NULL;
	f = err ? -1 : H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
	if (f >= 0) {
		int64_t v = LB_RUNFILE_FORMAT + 1;
		attr = H5Aopen(f, "lowbit_format", H5P_DEFAULT);
		H5Awrite(attr, H5T_NATIVE_INT64, &v);
		H5Aclose(attr);
		H5Fclose(f);
	}
	err = lb_runfile_read(p, &got);
	ok(err == LB_ERR_HDF5 && has(lb_error_message(), "changed after lowbit wrote it") && !got,
	   "read: a file edited by the HDF5 library after lowbit wrote it fails the seal");
	ok(lb_runfile_seal(p) == LB_OK, "seal: stamp the edited file again");
	err = lb_runfile_read(p, &got);
	snprintf(msg, sizeof msg, "'%s' has format version %d; this lowbit reads up to %d", p,
		 LB_RUNFILE_FORMAT + 1, LB_RUNFILE_FORMAT);
	ok(err == LB_ERR_HDF5 && has(lb_error_message(), msg) && !got,
	   "read: newer format version (lowbit_format)");

	/* lowbit_format present but another kind */
	tpath(p, sizeof p, "kind.h5");
	err = lb_runfile_new(&rf);
	err = err ? err : lb_runfile_write(rf, p);
	lb_runfile_free(rf);
	rf = NULL;
	f = err ? -1 : H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
	if (f >= 0) {
		H5Adelete(f, "lowbit_kind");
		H5Fclose(f);
		lb_runfile_seal(p);
	}
	err = lb_runfile_read(p, &got);
	ok(err == LB_ERR_HDF5 && has(lb_error_message(), "is not a lowbit run file"),
	   "read: lowbit_kind missing");
	lb_runfile_free(got);
}

/* ---- the integrity seal ---- */

/* The seal as runfile.h documents it, checked with zlib directly. */
static int seal_matches_doc(const unsigned char *b, size_t n)
{
	char want[LB_RUNFILE_USERBLOCK];
	unsigned long crc;
	if (n < LB_RUNFILE_USERBLOCK + 8 || memcmp(b + LB_RUNFILE_USERBLOCK, "\211HDF\r\n\032\n", 8))
		return 0;
	crc = crc32(crc32(0L, Z_NULL, 0), b + LB_RUNFILE_USERBLOCK,
		    (uInt)(n - LB_RUNFILE_USERBLOCK));
	memset(want, 0, sizeof want);
	snprintf(want, sizeof want, "lowbit run file\nformat %d\nbytes %zu\ncrc32 %08lx\n",
		 LB_RUNFILE_FORMAT, n - LB_RUNFILE_USERBLOCK, crc);
	return !memcmp(b, want, sizeof want);
}

static void test_seal(void)
{
	struct lb_runfile *rf = NULL, *got = NULL;
	char good[256], p[256], msg[512];
	unsigned char *b = NULL;
	size_t n = 0;
	int err;

	tpath(good, sizeof good, "sealed.h5");
	err = lb_runfile_new(&rf);
	err = err ? err : build_image(rf);
	err = err ? err : lb_runfile_write(rf, good);
	b = err ? NULL : slurp(good, &n);
	ok(b && seal_matches_doc(b, n),
	   "seal: 512-byte header = magic, format, byte count and zlib CRC-32 of the rest");
	if (!b || n < 4096) {
		ok(0, "seal: no file to damage");
		lb_runfile_free(rf);
		free(b);
		return;
	}

	/* one bit flipped in the middle */
	tpath(p, sizeof p, "flipped.h5");
	b[n / 2] ^= 0x10;
	write_bytes(p, b, n);
	b[n / 2] ^= 0x10;
	err = lb_runfile_read(p, &got);
	snprintf(msg, sizeof msg, "'%s' is not a readable HDF5 file (damaged, or changed after", p);
	ok(err == LB_ERR_HDF5 && has(lb_error_message(), msg) && !got,
	   "read: one flipped bit is caught by the CRC");
	diag("%s", lb_error_message());
	setenv("LOWBIT_UNCHECKED_RUNFILES", "1", 1);
	ok(lb_runfile_check_seal(p) == LB_OK, "LOWBIT_UNCHECKED_RUNFILES=1 skips the check");
	unsetenv("LOWBIT_UNCHECKED_RUNFILES");

	/* bytes appended */
	tpath(p, sizeof p, "extended.h5");
	{
		unsigned char *x = malloc(n + 100);
		if (x) {
			memcpy(x, b, n);
			memset(x + n, 0, 100);
			write_bytes(p, x, n + 100);
		}
		free(x);
	}
	err = lb_runfile_read(p, &got);
	snprintf(msg, sizeof msg, "(damaged, or changed after lowbit wrote it: %zu bytes and CRC-32",
		 n + 100 - LB_RUNFILE_USERBLOCK);
	ok(err == LB_ERR_HDF5 && has(lb_error_message(), msg) && !got,
	   "read: a file with bytes appended is refused");

	/* the header itself damaged: a digit of the byte count, then the magic */
	tpath(p, sizeof p, "badseal.h5");
	{
		char *bytes_at = strstr((char *)b, "bytes ");
		if (bytes_at) {
			bytes_at[6] = bytes_at[6] == '9' ? '1' : (char)(bytes_at[6] + 1);
			write_bytes(p, b, n);
			err = lb_runfile_read(p, &got);
			ok(err == LB_ERR_HDF5 && has(lb_error_message(), "truncated or foreign") && !got,
			   "read: a wrong byte count in the seal");
		} else {
			ok(0, "seal: no byte count in the header");
		}
	}
	free(b);
	b = slurp(good, &n);
	if (b) {
		b[17] = 'X'; /* "format" -> "fXrmat" */
		write_bytes(p, b, n);
		err = lb_runfile_read(p, &got);
		ok(err == LB_ERR_HDF5 && has(lb_error_message(), "seal, the first 512 bytes, is not well formed") && !got,
		   "read: a malformed seal");
		b[17] = 'o';
		b[300] = 'z'; /* garbage in the zero padding */
		write_bytes(p, b, n);
		err = lb_runfile_read(p, &got);
		ok(err == LB_ERR_HDF5 && has(lb_error_message(), "is not well formed") && !got,
		   "read: garbage in the seal's padding");
		b[300] = 0;
		b[0] = 'L';
		write_bytes(p, b, n);
		err = lb_runfile_read(p, &got);
		ok(err == LB_ERR_HDF5 && has(lb_error_message(), "(truncated or foreign)") && !got,
		   "read: a damaged magic");
		b[0] = 'l';
	}

	/* a seal from a newer lowbit: refused by its format before the CRC */
	if (b) {
		char *f = strstr((char *)b, "format ");
		tpath(p, sizeof p, "newseal.h5");
		if (f) {
			f[7] = (char)('0' + LB_RUNFILE_FORMAT + 1);
			write_bytes(p, b, n);
			err = lb_runfile_read(p, &got);
			snprintf(msg, sizeof msg, "'%s' has format version %d; this lowbit reads up to %d",
				 p, LB_RUNFILE_FORMAT + 1, LB_RUNFILE_FORMAT);
			ok(err == LB_ERR_HDF5 && has(lb_error_message(), msg) && !got,
			   "read: newer format version (seal)");
		}
	}
	free(b);

	/* sealing a file without the user block would overwrite its superblock */
	tpath(p, sizeof p, "foreign.h5");
	b = slurp(p, &n);
	err = lb_runfile_seal(p);
	{
		size_t n2 = 0;
		unsigned char *b2 = slurp(p, &n2);
		ok(err == LB_ERR_HDF5 && has(lb_error_message(), "has no 512-byte HDF5 user block") &&
			   b && b2 && n2 == n && !memcmp(b, b2, n),
		   "seal: refuses a file without the user block and leaves it as it was");
		free(b2);
	}
	free(b);
	lb_runfile_free(rf);
	lb_runfile_free(got);
}

/* ---- truncate, remove, visit ---- */

static void test_truncate(void)
{
	struct lb_runfile *rf = NULL, *back = NULL;
	char p[256];
	const double *s;
	int rows = 0, width = 0, err = LB_OK;

	if (!is_int(lb_runfile_new(&rf), LB_OK, "truncate: new"))
		return;
	for (int i = 0; i < 10 && !err; i++) {
		double v = i, row[2] = { i, 10 * i };
		err = lb_runfile_append(rf, "metrics/epoch", &v, 1);
		err = err ? err : lb_runfile_append(rf, "metrics/pair", row, 2);
		err = err ? err : lb_runfile_append(rf, "other/s", &v, 1);
	}
	is_int(err, LB_OK, "truncate: appends");
	lb_runfile_truncate(rf, "metrics", 4);
	s = lb_runfile_get_series(rf, "metrics/pair", &rows, &width);
	ok(s && rows == 4 && width == 2, "truncate: 2-D series cut to 4 rows");
	s = lb_runfile_get_series(rf, "metrics/epoch", &rows, &width);
	ok(s && rows == 4, "truncate: 1-D series cut to 4 rows");
	s = lb_runfile_get_series(rf, "other/s", &rows, &width);
	ok(s && rows == 10, "truncate: series outside the group untouched");
	lb_runfile_truncate(rf, "metrics", 8);
	lb_runfile_get_series(rf, "metrics/epoch", &rows, &width);
	is_int(rows, 4, "truncate: a larger n does not grow a series");
	{
		double v = 99;
		lb_runfile_append(rf, "metrics/epoch", &v, 1);
		s = lb_runfile_get_series(rf, "metrics/epoch", &rows, &width);
		ok(s && rows == 5 && s[3] == 3 && s[4] == 99, "truncate: appends continue at row n");
	}
	lb_runfile_truncate(rf, "", 0);
	tpath(p, sizeof p, "trunc.h5");
	err = lb_runfile_write(rf, p);
	err = err ? err : lb_runfile_read(p, &back);
	is_int(err, LB_OK, "truncate: empty series write and read (%s)", err ? lb_error_message() : "");
	s = back ? lb_runfile_get_series(back, "metrics/pair", &rows, &width) : NULL;
	ok(s && rows == 0 && width == 2, "truncate: empty 2-D series keeps its width");
	ok(back && lb_runfile_diff(rf, back) == LB_OK, "truncate: empty series round-trip (%s)",
	   lb_error_message());
	lb_runfile_free(back);
	lb_runfile_free(rf);
}

static void test_remove(void)
{
	struct lb_runfile *rf = NULL, *back = NULL;
	char p[256];
	uint64_t dims[1] = { 2 };
	float w[2] = { 1, 2 };
	double v = 1;
	int err;

	if (!is_int(lb_runfile_new(&rf), LB_OK, "remove: new"))
		return;
	err = lb_runfile_put_array(rf, "final/weights/a", LB_DT_F32, 1, dims, w);
	err = err ? err : lb_runfile_put_array(rf, "final/weights/b", LB_DT_F32, 1, dims, w);
	err = err ? err : lb_runfile_put_array(rf, "final/buffers/c", LB_DT_F32, 1, dims, w);
	err = err ? err : lb_runfile_put_array(rf, "finals", LB_DT_F32, 1, dims, w);
	err = err ? err : lb_runfile_append(rf, "metrics/x", &v, 1);
	is_int(err, LB_OK, "remove: setup");
	lb_runfile_remove(rf, "final/weights/a");
	ok(!lb_runfile_get_array(rf, "final/weights/a", NULL, NULL, NULL) &&
		   lb_runfile_get_array(rf, "final/weights/b", NULL, NULL, NULL),
	   "remove: one array");
	lb_runfile_remove(rf, "/final/");
	ok(!lb_runfile_get_array(rf, "final/weights/b", NULL, NULL, NULL) &&
		   !lb_runfile_get_array(rf, "final/buffers/c", NULL, NULL, NULL) &&
		   lb_runfile_get_array(rf, "finals", NULL, NULL, NULL),
	   "remove: a whole group, not its name-prefixed sibling");
	lb_runfile_remove(rf, "no/such/thing");
	lb_runfile_remove(rf, "metrics/x");
	ok(!lb_runfile_get_series(rf, "metrics/x", NULL, NULL), "remove: a series");
	tpath(p, sizeof p, "remove.h5");
	err = lb_runfile_write(rf, p);
	err = err ? err : lb_runfile_read(p, &back);
	ok(!err && !lb_runfile_get_array(back, "final/weights/b", NULL, NULL, NULL) &&
		   lb_runfile_get_array(back, "finals", NULL, NULL, NULL) && lb_runfile_diff(rf, back) == 0,
	   "remove: removed objects stay absent after write and read");
	/* remove then re-create with another kind */
	err = lb_runfile_put_array(rf, "metrics/x", LB_DT_F32, 1, dims, w);
	ok(!err && lb_runfile_get_array(rf, "metrics/x", NULL, NULL, NULL), "remove: path reusable");
	lb_runfile_free(back);
	lb_runfile_free(rf);
}

struct visit_log {
	char buf[512];
	int stop_after, calls;
};

static int visit_cb(const char *path, enum lb_dtype dt, int rank, const uint64_t *dims,
		    const void *data, void *ctx)
{
	struct visit_log *log = ctx;
	size_t len = strlen(log->buf);
	(void)dt;
	(void)rank;
	(void)dims;
	(void)data;
	snprintf(log->buf + len, sizeof log->buf - len, "%s;", path);
	log->calls++;
	return log->stop_after && log->calls >= log->stop_after ? 42 : 0;
}

static void test_visit(void)
{
	static const char *const order[] = { "checkpoint/z", "checkpoint/opt_m", "checkpoint2/b",
					     "checkpoint/a", "checkpoint/m/x", "final/w" };
	struct lb_runfile *rf = NULL;
	struct visit_log log = { "", 0, 0 };
	uint64_t dims[1] = { 1 };
	uint8_t one = 1;
	double v = 0;
	int err = LB_OK, rc;

	if (!is_int(lb_runfile_new(&rf), LB_OK, "visit: new"))
		return;
	for (int i = 0; i < 6 && !err; i++)
		err = lb_runfile_put_array(rf, order[i], LB_DT_U8, 1, dims, &one);
	err = err ? err : lb_runfile_append(rf, "checkpoint/series", &v, 1);
	is_int(err, LB_OK, "visit: setup");
	rc = lb_runfile_visit_arrays(rf, "checkpoint", visit_cb, &log);
	ok(rc == 0 && !strcmp(log.buf, "checkpoint/a;checkpoint/m/x;checkpoint/opt_m;checkpoint/z;"),
	   "visit: sorted, under the group only, arrays only (%s)", log.buf);
	memset(&log, 0, sizeof log);
	rc = lb_runfile_visit_arrays(rf, "", visit_cb, &log);
	ok(rc == 0 && log.calls == 6, "visit: empty prefix visits every array");
	memset(&log, 0, sizeof log);
	log.stop_after = 2;
	rc = lb_runfile_visit_arrays(rf, "/checkpoint/", visit_cb, &log);
	ok(rc == 42 && log.calls == 2, "visit: nonzero from the callback stops and is returned");
	lb_runfile_free(rf);
}

/* ---- API misuse ---- */

static void test_misuse(void)
{
	struct lb_runfile *rf = NULL;
	uint64_t dims[5] = { 1, 1, 1, 1, 1 };
	float w = 1;
	double row[2] = { 1, 2 }, f = 0;
	int64_t i = 0;

	if (!is_int(lb_runfile_new(&rf), LB_OK, "misuse: new"))
		return;
	is_int(lb_runfile_append(rf, "m/s", row, 2), LB_OK, "misuse: first append fixes width 2");
	is_int(lb_runfile_append(rf, "m/s", row, 1), LB_ERR_SHAPE, "misuse: width change refused");
	is_int(lb_runfile_put_array(rf, "m", LB_DT_F32, 1, dims, &w), LB_ERR_STATE,
	       "misuse: array over a group refused");
	is_int(lb_runfile_put_array(rf, "m/s/x", LB_DT_F32, 1, dims, &w), LB_ERR_STATE,
	       "misuse: array under a series refused");
	is_int(lb_runfile_put_array(rf, "a", LB_DT_F32, 5, dims, &w), LB_ERR_SHAPE,
	       "misuse: rank 5 refused");
	is_int(lb_runfile_put_array(rf, "a/../b", LB_DT_F32, 1, dims, &w), LB_ERR_CONFIG,
	       "misuse: '..' refused");
	ok(!lb_runfile_get_array(rf, "m/s", NULL, NULL, NULL) && !lb_runfile_get_strings(rf, "m/s", NULL),
	   "misuse: getters of another kind return NULL");
	lb_runfile_set_attr_str(rf, "", "x", "text");
	ok(lb_runfile_get_attr_f64(rf, "", "x", &f) != 0 && lb_runfile_get_attr_i64(rf, "", "x", &i) != 0 &&
		   lb_runfile_get_attr_str(rf, "", "y") == NULL,
	   "misuse: attribute getters of another type or absent fail");
	lb_runfile_set_attr_f64(rf, "", "x", 2.5);
	ok(lb_runfile_get_attr_f64(rf, "", "x", &f) == 0 && f == 2.5 && !lb_runfile_get_attr_str(rf, "", "x"),
	   "misuse: setting an attribute replaces its type");
	is_int(lb_runfile_append(rf, "m/s", row, 2), LB_OK, "misuse: series still usable");
	lb_runfile_free(rf);
}

int main(void)
{
	strcpy(tmpdir, "/tmp/lb-runfile-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	test_roundtrip();
	test_atomic();
	test_read_errors();
	test_seal();
	test_truncate();
	test_remove();
	test_visit();
	test_misuse();
	if (!getenv("LB_KEEP_TMP")) /* set it to inspect the files */
		rm_rf(tmpdir);
	return done_testing();
}
