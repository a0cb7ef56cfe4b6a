/* SPDX-License-Identifier: MIT
 * The HDF5 run file: one file per run (trial), written by one process.
 *
 * The trainer keeps an in-memory image of the file (struct lb_runfile) and
 * writes it whole, atomically, at every checkpoint: to "<path>.tmp", fsync,
 * rename over <path>, fsync the folder. A crash at any moment leaves either
 * the previous complete file or the new complete file, never a broken one;
 * readers may open the file at any time (no SWMR needed). The layout is
 * documented in docs/results-format.md; this module owns it (writer AND reader).
 *
 * Objects, addressed by '/'-separated paths relative to the root:
 * - attributes: string, float64 or int64 scalars on any group ("" = root);
 * - arrays: float32/float64/int32/int64/uint8 datasets of rank 1..4, and
 *   1-D string arrays; chunked with deflate+shuffle when large;
 * - series: float64 datasets of shape (rows, width) or (rows) when width==1,
 *   extendible along rows (maxshape unlimited, chunked, deflate+shuffle).
 *   A group whose series share a row axis names it with lb_runfile_set_axis:
 *   that series becomes an HDF5 dimension scale attached to the others.
 * - external links (HDF5 soft links into another file), kept as links: the
 *   reader records them without opening their target.
 * Root attributes lowbit_format (int) and lowbit_kind mark the file; the
 * kind is "run" (a training run, lb_runfile_new) or "sweep" (a sweep index,
 * DIR/sweep.h5: docs/results-format.md). The reader refuses files without
 * them, of another kind than asked, or with a newer lowbit_format.
 *
 * Integrity seal (format 2): the file starts with a 512-byte HDF5 user block
 * that holds a short text header, "lowbit run file\nformat F\nbytes N\n
 * crc32 XXXXXXXX\n", N and the CRC-32 (zlib) covering everything after the
 * user block. The reader checks the seal with plain reads before libhdf5
 * sees a byte: libhdf5 1.10 can crash on damaged files (tests/fuzz), so a
 * truncated, damaged or foreign file is refused with a message instead. A
 * file changed by another program after lowbit wrote it fails the check too;
 * LOWBIT_UNCHECKED_RUNFILES=1 in the environment skips it (at the risk the
 * seal exists to avoid). h5py, pandas and the HDF5 tools read sealed files
 * as they read any file with a user block. */
#ifndef LB_RUNFILE_H
#define LB_RUNFILE_H

#include <stdint.h>

#define LB_RUNFILE_FORMAT 2
/* Bytes of the user block that holds the seal (an HDF5 power of two >= 512). */
#define LB_RUNFILE_USERBLOCK 512

enum lb_dtype { LB_DT_F32, LB_DT_F64, LB_DT_I32, LB_DT_I64, LB_DT_U8 };

struct lb_runfile; /* opaque */

int lb_runfile_new(struct lb_runfile **out); /* kind "run" */
/* kind: "run" or "sweep" (LB_ERR_CONFIG otherwise). */
int lb_runfile_new_kind(struct lb_runfile **out, const char *kind);
/* The image's lowbit_kind ("run" when unset). Borrowed. */
const char *lb_runfile_kind(const struct lb_runfile *rf);
void lb_runfile_free(struct lb_runfile *rf);

/* Attributes. obj is a group path ("" or "/" for the root); groups are created
 * as needed. Setting an existing attribute replaces it. */
int lb_runfile_set_attr_str(struct lb_runfile *rf, const char *obj, const char *name,
			    const char *value);
int lb_runfile_set_attr_f64(struct lb_runfile *rf, const char *obj, const char *name, double v);
int lb_runfile_set_attr_i64(struct lb_runfile *rf, const char *obj, const char *name, int64_t v);
/* NULL / nonzero when absent or of another type. Strings are borrowed. */
const char *lb_runfile_get_attr_str(const struct lb_runfile *rf, const char *obj,
				    const char *name);
int lb_runfile_get_attr_f64(const struct lb_runfile *rf, const char *obj, const char *name,
			    double *v);
int lb_runfile_get_attr_i64(const struct lb_runfile *rf, const char *obj, const char *name,
			    int64_t *v);

/* Arrays: the data is copied; an existing array at path is replaced. */
int lb_runfile_put_array(struct lb_runfile *rf, const char *path, enum lb_dtype dt, int rank,
			 const uint64_t *dims, const void *data);
/* Borrowed pointer or NULL when absent; dims has room for 4. */
const void *lb_runfile_get_array(const struct lb_runfile *rf, const char *path,
				 enum lb_dtype *dt, int *rank, uint64_t *dims);
int lb_runfile_put_strings(struct lb_runfile *rf, const char *path, const char *const *s, int n);
/* Borrowed; NULL when absent. */
const char *const *lb_runfile_get_strings(const struct lb_runfile *rf, const char *path, int *n);

/* External links: path -> object `obj` ("/" for the root) of HDF5 file
 * `file`, as written (HDF5 looks for a relative name from the current folder,
 * then from the folder of the file holding the link). An existing object at
 * path is replaced. */
int lb_runfile_put_link(struct lb_runfile *rf, const char *path, const char *file,
			const char *obj);
/* The link's file (and in *obj its object), borrowed; NULL when absent. */
const char *lb_runfile_get_link(const struct lb_runfile *rf, const char *path, const char **obj);

/* Series: append one row of `width` values (width fixed by the first append). */
int lb_runfile_append(struct lb_runfile *rf, const char *path, const double *row, int width);
/* Borrowed row-major (rows, width) data or NULL when absent. */
const double *lb_runfile_get_series(const struct lb_runfile *rf, const char *path, int *rows,
				    int *width);
/* Drop rows >= n_rows of every series under group (resume after a crash). */
void lb_runfile_truncate(struct lb_runfile *rf, const char *group, int n_rows);
/* Mark the series group/axis_name as the row axis (dimension scale) of group. */
int lb_runfile_set_axis(struct lb_runfile *rf, const char *group, const char *axis_name);

/* Remove an object (array, series, strings or a whole group) if present. */
void lb_runfile_remove(struct lb_runfile *rf, const char *path);

/* Write atomically (tmp + fsync + rename). LB_ERR_IO / LB_ERR_HDF5 with a
 * message naming the path on failure; the previous file is then untouched. */
int lb_runfile_write(const struct lb_runfile *rf, const char *path);

/* Read a whole run file. LB_ERR_IO when missing/unreadable, LB_ERR_HDF5 for
 * a truncated or foreign file or a newer format version (message says which). */
int lb_runfile_read(const char *path, struct lb_runfile **out); /* kind "run" only */
/* The same for a file of kind `kind` ("run", "sweep"; NULL: either). */
int lb_runfile_read_kind(const char *path, const char *kind, struct lb_runfile **out);

/* Stamp the integrity seal of a file that has lowbit's user block (the
 * writer does this itself): for tools and tests that edit a run file in place
 * on purpose. Refuses a file without the user block. */
int lb_runfile_seal(const char *path);
/* Does the file have lowbit's user block (an HDF5 superblock at byte 512)?
 * 0 also when it cannot be read. */
int lb_runfile_has_userblock(const char *path);
/* Check the seal with plain reads: LB_OK, or LB_ERR_IO / LB_ERR_HDF5 with a
 * message saying what is wrong (no seal, truncated, damaged, newer format).
 * LB_OK without looking when LOWBIT_UNCHECKED_RUNFILES=1. */
int lb_runfile_check_seal(const char *path);

/* Iterate the arrays under a group prefix (for checkpoints of many tensors). */
typedef int (*lb_runfile_visit_fn)(const char *path, enum lb_dtype dt, int rank,
				   const uint64_t *dims, const void *data, void *ctx);
int lb_runfile_visit_arrays(const struct lb_runfile *rf, const char *prefix,
			    lb_runfile_visit_fn fn, void *ctx);

/* Compare two images: LB_OK when they hold the same objects, attributes,
 * axes and bitwise-equal values (order of creation does not matter), else
 * LB_ERR_STATE with a message naming the first difference found. */
int lb_runfile_diff(const struct lb_runfile *a, const struct lb_runfile *b);

#endif
