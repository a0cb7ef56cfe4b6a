/* SPDX-License-Identifier: MIT
 * h5mangle: damage an HDF5 file in one precise way, with the plain HDF5 API
 * (not lowbit's writer), for the hostile-input corpus (run.sh):
 *   h5mangle FILE set-i64 OBJ NAME VALUE   (re)write an int64 scalar attribute
 *   h5mangle FILE set-str OBJ NAME VALUE   (re)write a string attribute
 *   h5mangle FILE del-attr OBJ NAME        delete an attribute
 *   h5mangle FILE del PATH                 unlink an object (dataset, group)
 *   h5mangle FILE resize PATH N            replace a dataset by N float32 zeros
 *   h5mangle FILE foreign                  create a new HDF5 file that has
 *                                          nothing of lowbit (one dataset)
 *   h5mangle FILE flip OFFSET              invert the byte at OFFSET (raw)
 *   h5mangle FILE seal-format N            rewrite the seal as a lowbit of
 *                                          run-file format N would (raw)
 * OBJ is a group or dataset path ("/" for the root). After an HDF5 edit the
 * integrity seal is stamped again (lb_runfile_seal), so the case reaches the
 * check it is about; the raw operations leave the seal as they made it.
 * Exit 0 or 1. */
#include "analysis/runfile.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int set_attr(hid_t file, const char *obj, const char *name, hid_t type, const void *v)
{
	hid_t o = H5Oopen(file, obj, H5P_DEFAULT), space = H5I_INVALID_HID, a = H5I_INVALID_HID;
	int rc = 1;
	if (o < 0)
		return 1;
	if (H5Aexists(o, name) > 0 && H5Adelete(o, name) < 0)
		goto out;
	space = H5Screate(H5S_SCALAR);
	a = H5Acreate2(o, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
	if (a >= 0 && H5Awrite(a, type, v) >= 0)
		rc = 0;
out:
	if (a >= 0)
		H5Aclose(a);
	if (space >= 0)
		H5Sclose(space);
	H5Oclose(o);
	return rc;
}

static int foreign(const char *path)
{
	float v[4] = {1, 2, 3, 4};
	hsize_t n = 4;
	hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
	hid_t s = H5Screate_simple(1, &n, NULL);
	hid_t d = H5Dcreate2(f, "data", H5T_NATIVE_FLOAT, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	int rc = f < 0 || d < 0 || H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0;
	H5Dclose(d);
	H5Sclose(s);
	return H5Fclose(f) < 0 || rc;
}

static int resize(hid_t file, const char *path, long n)
{
	hsize_t dims = (hsize_t)n;
	float *zeros = calloc(n > 0 ? (size_t)n : 1, sizeof *zeros);
	hid_t s, d;
	int rc;
	if (!zeros || H5Ldelete(file, path, H5P_DEFAULT) < 0) {
		free(zeros);
		return 1;
	}
	s = H5Screate_simple(1, &dims, NULL);
	d = H5Dcreate2(file, path, H5T_NATIVE_FLOAT, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	rc = d < 0 || H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros) < 0;
	H5Dclose(d);
	H5Sclose(s);
	free(zeros);
	return rc;
}

/* Raw edits with stdio: the first operation works below HDF5, the second
 * stamps a seal whose format number is n but whose byte count and CRC are
 * right, as a newer lowbit would write it. */
static int flip(const char *path, long off)
{
	FILE *f = fopen(path, "r+b");
	int c, rc = 1;
	if (f && fseek(f, off, SEEK_SET) == 0 && (c = fgetc(f)) != EOF &&
	    fseek(f, off, SEEK_SET) == 0 && fputc(c ^ 0xff, f) != EOF)
		rc = 0;
	if (f && fclose(f) != 0)
		rc = 1;
	return rc;
}

static int seal_format(const char *path, const char *n)
{
	char hdr[LB_RUNFILE_USERBLOCK + 1], *fmt, *nl, out[2 * LB_RUNFILE_USERBLOCK];
	FILE *f;
	int rc = 1;
	if (lb_runfile_seal(path) || !(f = fopen(path, "r+b")))
		return 1;
	hdr[LB_RUNFILE_USERBLOCK] = '\0';
	if (fread(hdr, 1, LB_RUNFILE_USERBLOCK, f) == LB_RUNFILE_USERBLOCK &&
	    (fmt = strstr(hdr, "format ")) && (nl = strchr(fmt, '\n'))) {
		*fmt = '\0';
		memset(out, 0, sizeof out);
		snprintf(out, sizeof out, "%sformat %s%s", hdr, n, nl);
		rc = fseek(f, 0, SEEK_SET) ||
		     fwrite(out, 1, LB_RUNFILE_USERBLOCK, f) != LB_RUNFILE_USERBLOCK;
	}
	if (fclose(f) != 0)
		rc = 1;
	return rc;
}

int main(int argc, char **argv)
{
	hid_t file, str;
	const char *op = argc > 2 ? argv[2] : "";
	int rc = 1;
	if (argc == 3 && !strcmp(op, "foreign"))
		return foreign(argv[1]);
	if (argc == 4 && !strcmp(op, "flip"))
		return flip(argv[1], strtol(argv[3], NULL, 10));
	if (argc == 4 && !strcmp(op, "seal-format"))
		return seal_format(argv[1], argv[3]);
	if (argc < 4) {
		fprintf(stderr, "usage: h5mangle FILE "
				"set-i64|set-str|del-attr|del|resize|foreign|flip|seal-format ...\n");
		return 1;
	}
	file = H5Fopen(argv[1], H5F_ACC_RDWR, H5P_DEFAULT);
	if (file < 0) {
		fprintf(stderr, "h5mangle: cannot open '%s'\n", argv[1]);
		return 1;
	}
	if (!strcmp(op, "set-i64") && argc == 6) {
		long long v = strtoll(argv[5], NULL, 10);
		rc = set_attr(file, argv[3], argv[4], H5T_NATIVE_LLONG, &v);
	} else if (!strcmp(op, "set-str") && argc == 6) {
		const char *v = argv[5]; /* variable-length UTF-8, as lowbit writes */
		str = H5Tcopy(H5T_C_S1);
		H5Tset_size(str, H5T_VARIABLE);
		H5Tset_cset(str, H5T_CSET_UTF8);
		rc = set_attr(file, argv[3], argv[4], str, &v);
		H5Tclose(str);
	} else if (!strcmp(op, "del-attr") && argc == 5) {
		rc = H5Adelete_by_name(file, argv[3], argv[4], H5P_DEFAULT) < 0;
	} else if (!strcmp(op, "del") && argc == 4) {
		rc = H5Ldelete(file, argv[3], H5P_DEFAULT) < 0;
	} else if (!strcmp(op, "resize") && argc == 5) {
		rc = resize(file, argv[3], strtol(argv[4], NULL, 10));
	} else {
		fprintf(stderr, "h5mangle: bad operation '%s' or argument count\n", op);
	}
	if (H5Fclose(file) < 0)
		rc = 1;
	if (!rc && lb_runfile_seal(argv[1]))
		rc = 1;
	if (rc)
		fprintf(stderr, "h5mangle: %s %s failed\n", argv[1], op);
	return rc;
}
