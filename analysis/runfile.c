/* SPDX-License-Identifier: MIT
 * The HDF5 run file (see runfile.h): an in-memory image of groups,
 * attributes, arrays, string arrays and extendible series, written whole
 * and atomically (tmp + fsync + rename + fsync folder) and read back whole.
 * Layout reference: docs/results-format.md; patterns from the HDF Group
 * examples h5ex_d_unlimadd.c (extendible chunked data) and the H5DS
 * dimension-scale specification (HDF5 high-level library). */
#include "runfile.h"

#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <hdf5_hl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* Arrays of at least this many bytes are chunked and compressed. */
#define RF_CHUNK_MIN_BYTES (64u << 10)
/* Target chunk size for large arrays. */
#define RF_CHUNK_TARGET_BYTES (512u << 10)
/* Rows per series chunk (fewer when a row is wide). */
#define RF_SERIES_CHUNK_ROWS 256
#define RF_SERIES_CHUNK_MAX_BYTES (1u << 20)
#define RF_DEFLATE_LEVEL 4

enum rf_kind { RF_GROUP, RF_ARRAY, RF_STRINGS, RF_SERIES, RF_LINK };
enum rf_atype { RF_A_STR, RF_A_F64, RF_A_I64 };

struct rf_attr {
	char *name;
	enum rf_atype type;
	char *s;
	double f;
	int64_t i;
};

/* One object of the image. Invariants: path is normalised ("" = root, no
 * leading, trailing or doubled '/'); every proper prefix of a path that ends
 * before a '/' names an RF_GROUP node; only the fields of `kind` are used. */
struct rf_node {
	char *path;
	enum rf_kind kind;
	struct rf_attr *attrs;
	int n_attrs, cap_attrs;
	char *axis; /* RF_GROUP: name of the row-axis series, or NULL */
	/* RF_ARRAY */
	enum lb_dtype dt;
	int rank;
	uint64_t dims[4];
	void *data;
	/* RF_STRINGS */
	char **strs;
	int n_strs;
	/* RF_SERIES: (rows, width) row-major, room for cap_rows rows */
	double *series;
	int rows, width, cap_rows;
	/* RF_LINK: an HDF5 external link to object link_obj of file link_file */
	char *link_file, *link_obj;
};

/* Node 0 is the root group and always present. */
struct lb_runfile {
	struct rf_node **nodes;
	int n, cap;
};

static const char *const rf_dt_names[] = { "float32", "float64", "int32", "int64", "uint8" };

static size_t dt_size(enum lb_dtype dt)
{
	switch (dt) {
	case LB_DT_F32: return 4;
	case LB_DT_F64: return 8;
	case LB_DT_I32: return 4;
	case LB_DT_I64: return 8;
	case LB_DT_U8: return 1;
	}
	return 0;
}

static int dt_valid(int dt)
{
	return dt >= LB_DT_F32 && dt <= LB_DT_U8;
}

/* ---- HDF5 plumbing ---- */

static void h5_silence(void)
{
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static herr_t h5_walk_cb(unsigned n, const H5E_error2_t *e, void *ctx)
{
	char *buf = ctx;
	if (n == 0 && e->desc && e->desc[0])
		snprintf(buf, 256, "%s", e->desc);
	return 0;
}

/* The innermost message of HDF5's error stack (call right after the failure,
 * before any other HDF5 call clears the stack). */
static void h5_reason(char buf[256])
{
	snprintf(buf, 256, "HDF5 call failed");
	H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, h5_walk_cb, buf);
}

/* File access: no file locking (we never modify a file in place; locks fail
 * on NFS/Lustre mounts without flock) and strong close (closing the file
 * closes whatever an error path left open). */
static hid_t h5_fapl(void)
{
	hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
	if (fapl < 0)
		return fapl;
	H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
#if (H5_VERS_MAJOR == 1 && H5_VERS_MINOR == 10 && H5_VERS_RELEASE >= 7) || H5_VERSION_GE(1, 12, 1)
	H5Pset_file_locking(fapl, 0, 1);
#endif
	return fapl;
}

static hid_t h5_str_type(void)
{
	hid_t t = H5Tcopy(H5T_C_S1);
	if (t < 0)
		return t;
	if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
		H5Tclose(t);
		return H5I_INVALID_HID;
	}
	return t;
}

static hid_t h5_mem_type(enum lb_dtype dt)
{
	switch (dt) {
	case LB_DT_F32: return H5T_NATIVE_FLOAT;
	case LB_DT_F64: return H5T_NATIVE_DOUBLE;
	case LB_DT_I32: return H5T_NATIVE_INT32;
	case LB_DT_I64: return H5T_NATIVE_INT64;
	case LB_DT_U8: return H5T_NATIVE_UINT8;
	}
	return H5I_INVALID_HID;
}

/* Little-endian standard types in the file, whatever the host. */
static hid_t h5_file_type(enum lb_dtype dt)
{
	switch (dt) {
	case LB_DT_F32: return H5T_IEEE_F32LE;
	case LB_DT_F64: return H5T_IEEE_F64LE;
	case LB_DT_I32: return H5T_STD_I32LE;
	case LB_DT_I64: return H5T_STD_I64LE;
	case LB_DT_U8: return H5T_STD_U8LE;
	}
	return H5I_INVALID_HID;
}

/* ---- paths and nodes ---- */

/* Normalise: strip leading/trailing/doubled '/'; refuse "." and "..". */
static int path_norm(const char *in, char **out)
{
	size_t n = in ? strlen(in) : 0, j = 0;
	char *p = malloc(n + 1);
	*out = NULL;
	if (!p)
		return lb_error(LB_ERR_OOM, "out of memory");
	for (size_t i = 0; i < n;) {
		size_t k = i;
		while (k < n && in[k] != '/')
			k++;
		if (k > i) {
			size_t len = k - i;
			if ((len == 1 && in[i] == '.') || (len == 2 && in[i] == '.' && in[i + 1] == '.')) {
				free(p);
				return lb_error(LB_ERR_CONFIG, "run file path '%s': '.' and '..' are not allowed",
						in);
			}
			if (j)
				p[j++] = '/';
			memcpy(p + j, in + i, len);
			j += len;
		}
		i = k + 1;
	}
	p[j] = '\0';
	*out = p;
	return LB_OK;
}

static struct rf_node *find_node(const struct lb_runfile *rf, const char *norm)
{
	for (int i = 0; i < rf->n; i++)
		if (strcmp(rf->nodes[i]->path, norm) == 0)
			return rf->nodes[i];
	return NULL;
}

/* Look up an un-normalised path; NULL when absent or invalid. */
static struct rf_node *lookup(const struct lb_runfile *rf, const char *path)
{
	char *norm;
	struct rf_node *node;
	if (!rf || path_norm(path, &norm) != LB_OK)
		return NULL;
	node = find_node(rf, norm);
	free(norm);
	return node;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/* Is `path` equal to group `g` or inside it? */
static int path_under(const char *path, const char *g)
{
	size_t n = strlen(g);
	if (n == 0)
		return 1;
	return strncmp(path, g, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static void attr_release(struct rf_attr *a)
{
	free(a->name);
	free(a->s);
}

static void node_clear_data(struct rf_node *node)
{
	free(node->data);
	node->data = NULL;
	for (int i = 0; i < node->n_strs; i++)
		free(node->strs[i]);
	free(node->strs);
	node->strs = NULL;
	node->n_strs = 0;
	free(node->series);
	node->series = NULL;
	node->rows = node->width = node->cap_rows = 0;
	free(node->link_file);
	free(node->link_obj);
	node->link_file = node->link_obj = NULL;
	node->rank = 0;
	memset(node->dims, 0, sizeof node->dims);
}

static void node_clear_attrs(struct rf_node *node)
{
	for (int i = 0; i < node->n_attrs; i++)
		attr_release(&node->attrs[i]);
	free(node->attrs);
	node->attrs = NULL;
	node->n_attrs = node->cap_attrs = 0;
}

static void node_free(struct rf_node *node)
{
	if (!node)
		return;
	node_clear_data(node);
	node_clear_attrs(node);
	free(node->axis);
	free(node->path);
	free(node);
}

/* Append a new node that takes ownership of `norm`. */
static int add_node(struct lb_runfile *rf, char *norm, enum rf_kind kind, struct rf_node **out)
{
	struct rf_node *node;
	if (rf->n == rf->cap) {
		int cap = rf->cap ? 2 * rf->cap : 16;
		struct rf_node **nodes = realloc(rf->nodes, (size_t)cap * sizeof *nodes);
		if (!nodes)
			return lb_error(LB_ERR_OOM, "out of memory");
		rf->nodes = nodes;
		rf->cap = cap;
	}
	node = calloc(1, sizeof *node);
	if (!node)
		return lb_error(LB_ERR_OOM, "out of memory");
	node->path = norm;
	node->kind = kind;
	rf->nodes[rf->n++] = node;
	*out = node;
	return LB_OK;
}

static const char *kind_name(enum rf_kind kind)
{
	switch (kind) {
	case RF_GROUP: return "a group";
	case RF_ARRAY: return "an array";
	case RF_STRINGS: return "a string array";
	case RF_SERIES: return "a series";
	case RF_LINK: return "an external link";
	}
	return "an object";
}

/* The group at `norm` and all its parents, created as needed. */
static int ensure_group(struct lb_runfile *rf, const char *norm, struct rf_node **out)
{
	size_t n = strlen(norm);
	struct rf_node *node = rf->nodes[0];
	for (size_t i = 0; i <= n; i++) {
		char *prefix;
		int err;
		if (i == 0 || (i < n && norm[i] != '/'))
			continue;
		prefix = malloc(i + 1);
		if (!prefix)
			return lb_error(LB_ERR_OOM, "out of memory");
		memcpy(prefix, norm, i);
		prefix[i] = '\0';
		node = find_node(rf, prefix);
		if (node) {
			if (node->kind != RF_GROUP) {
				err = lb_error(LB_ERR_STATE, "run file: '%s' is %s, not a group", prefix,
					       kind_name(node->kind));
				free(prefix);
				return err;
			}
			free(prefix);
			continue;
		}
		err = add_node(rf, prefix, RF_GROUP, &node);
		if (err) {
			free(prefix);
			return err;
		}
	}
	*out = node;
	return LB_OK;
}

/* A leaf of `kind` at `path`: an existing leaf there is emptied (attributes
 * included) and reused, parents are created. */
static int make_leaf(struct lb_runfile *rf, const char *path, enum rf_kind kind,
		     struct rf_node **out)
{
	char *norm;
	struct rf_node *node, *parent;
	const char *slash;
	int err = path_norm(path, &norm);
	if (err)
		return err;
	if (!norm[0]) {
		free(norm);
		return lb_error(LB_ERR_CONFIG, "run file: %s needs a name (the root is a group)",
				kind_name(kind));
	}
	node = find_node(rf, norm);
	if (node && node->kind == RF_GROUP) {
		err = lb_error(LB_ERR_STATE, "run file: '%s' is a group, not %s", norm, kind_name(kind));
		free(norm);
		return err;
	}
	if (node) {
		free(norm);
		node_clear_data(node);
		node_clear_attrs(node);
		node->kind = kind;
		*out = node;
		return LB_OK;
	}
	slash = strrchr(norm, '/');
	if (slash) {
		char *dir = strndup(norm, (size_t)(slash - norm));
		if (!dir) {
			free(norm);
			return lb_error(LB_ERR_OOM, "out of memory");
		}
		err = ensure_group(rf, dir, &parent);
		free(dir);
		if (err) {
			free(norm);
			return err;
		}
	}
	err = add_node(rf, norm, kind, out);
	if (err)
		free(norm);
	return err;
}

/* ---- lifecycle ---- */

/* Kinds of lowbit HDF5 files this module reads and writes. */
static int kind_known(const char *kind)
{
	return kind && (!strcmp(kind, "run") || !strcmp(kind, "sweep"));
}

int lb_runfile_new(struct lb_runfile **out)
{
	return lb_runfile_new_kind(out, "run");
}

int lb_runfile_new_kind(struct lb_runfile **out, const char *kind)
{
	struct lb_runfile *rf;
	struct rf_node *root;
	char *empty;
	int err;
	*out = NULL;
	if (!kind_known(kind))
		return lb_error(LB_ERR_CONFIG, "run file: unknown lowbit_kind '%s' (allowed: run, sweep)",
				kind ? kind : "");
	h5_silence();
	rf = calloc(1, sizeof *rf);
	empty = strdup("");
	if (!rf || !empty) {
		free(rf);
		free(empty);
		return lb_error(LB_ERR_OOM, "out of memory");
	}
	err = add_node(rf, empty, RF_GROUP, &root);
	if (!err)
		err = lb_runfile_set_attr_i64(rf, "", "lowbit_format", LB_RUNFILE_FORMAT);
	if (!err)
		err = lb_runfile_set_attr_str(rf, "", "lowbit_kind", kind);
	if (err) {
		if (!rf->n)
			free(empty);
		lb_runfile_free(rf);
		return err;
	}
	*out = rf;
	return LB_OK;
}

const char *lb_runfile_kind(const struct lb_runfile *rf)
{
	const char *k = lb_runfile_get_attr_str(rf, "", "lowbit_kind");
	return k ? k : "run";
}

void lb_runfile_free(struct lb_runfile *rf)
{
	if (!rf)
		return;
	for (int i = 0; i < rf->n; i++)
		node_free(rf->nodes[i]);
	free(rf->nodes);
	free(rf);
}

/* ---- attributes ---- */

static int ds_reserved_attr(const char *name)
{
	return !strcmp(name, "CLASS") || !strcmp(name, "NAME") || !strcmp(name, "REFERENCE_LIST") ||
	       !strcmp(name, "DIMENSION_LIST");
}

/* The slot for attribute `name` on `obj` (group created as needed; an
 * existing dataset may carry attributes too), emptied for a new value. */
static int attr_slot(struct lb_runfile *rf, const char *obj, const char *name, struct rf_attr **out)
{
	char *norm;
	struct rf_node *node;
	int err;
	if (!rf || !name || !name[0])
		return lb_error(LB_ERR_CONFIG, "run file: attribute name is empty");
	err = path_norm(obj, &norm);
	if (err)
		return err;
	node = find_node(rf, norm);
	if (!node)
		err = ensure_group(rf, norm, &node);
	else if (node->kind != RF_GROUP && ds_reserved_attr(name))
		err = lb_error(LB_ERR_CONFIG,
			       "run file: attribute name '%s' on '%s' is reserved for dimension scales", name,
			       norm);
	free(norm);
	if (err)
		return err;
	for (int i = 0; i < node->n_attrs; i++) {
		if (strcmp(node->attrs[i].name, name) == 0) {
			free(node->attrs[i].s);
			node->attrs[i].s = NULL;
			*out = &node->attrs[i];
			return LB_OK;
		}
	}
	if (node->n_attrs == node->cap_attrs) {
		int cap = node->cap_attrs ? 2 * node->cap_attrs : 8;
		struct rf_attr *a = realloc(node->attrs, (size_t)cap * sizeof *a);
		if (!a)
			return lb_error(LB_ERR_OOM, "out of memory");
		node->attrs = a;
		node->cap_attrs = cap;
	}
	memset(&node->attrs[node->n_attrs], 0, sizeof node->attrs[0]);
	node->attrs[node->n_attrs].name = strdup(name);
	if (!node->attrs[node->n_attrs].name)
		return lb_error(LB_ERR_OOM, "out of memory");
	*out = &node->attrs[node->n_attrs++];
	return LB_OK;
}

int lb_runfile_set_attr_str(struct lb_runfile *rf, const char *obj, const char *name,
			    const char *value)
{
	struct rf_attr *a;
	char *copy = strdup(value ? value : "");
	int err;
	if (!copy)
		return lb_error(LB_ERR_OOM, "out of memory");
	err = attr_slot(rf, obj, name, &a);
	if (err) {
		free(copy);
		return err;
	}
	a->type = RF_A_STR;
	a->s = copy;
	return LB_OK;
}

int lb_runfile_set_attr_f64(struct lb_runfile *rf, const char *obj, const char *name, double v)
{
	struct rf_attr *a;
	int err = attr_slot(rf, obj, name, &a);
	if (err)
		return err;
	a->type = RF_A_F64;
	a->f = v;
	return LB_OK;
}

int lb_runfile_set_attr_i64(struct lb_runfile *rf, const char *obj, const char *name, int64_t v)
{
	struct rf_attr *a;
	int err = attr_slot(rf, obj, name, &a);
	if (err)
		return err;
	a->type = RF_A_I64;
	a->i = v;
	return LB_OK;
}

static const struct rf_attr *find_attr(const struct lb_runfile *rf, const char *obj,
				       const char *name)
{
	const struct rf_node *node = lookup(rf, obj);
	if (!node || !name)
		return NULL;
	for (int i = 0; i < node->n_attrs; i++)
		if (strcmp(node->attrs[i].name, name) == 0)
			return &node->attrs[i];
	return NULL;
}

const char *lb_runfile_get_attr_str(const struct lb_runfile *rf, const char *obj,
				    const char *name)
{
	const struct rf_attr *a = find_attr(rf, obj, name);
	return a && a->type == RF_A_STR ? a->s : NULL;
}

int lb_runfile_get_attr_f64(const struct lb_runfile *rf, const char *obj, const char *name,
			    double *v)
{
	const struct rf_attr *a = find_attr(rf, obj, name);
	if (!a || a->type != RF_A_F64)
		return -1;
	*v = a->f;
	return 0;
}

int lb_runfile_get_attr_i64(const struct lb_runfile *rf, const char *obj, const char *name,
			    int64_t *v)
{
	const struct rf_attr *a = find_attr(rf, obj, name);
	if (!a || a->type != RF_A_I64)
		return -1;
	*v = a->i;
	return 0;
}

/* ---- arrays and strings ---- */

/* Element count of dims, or -1 on overflow of size_t bytes. */
static int array_elems(int rank, const uint64_t *dims, size_t esize, size_t *out)
{
	size_t n = 1;
	for (int d = 0; d < rank; d++) {
		if (dims[d] > SIZE_MAX || (dims[d] && n > SIZE_MAX / esize / dims[d]))
			return -1;
		n *= (size_t)dims[d];
	}
	*out = n;
	return 0;
}

int lb_runfile_put_array(struct lb_runfile *rf, const char *path, enum lb_dtype dt, int rank,
			 const uint64_t *dims, const void *data)
{
	struct rf_node *node;
	size_t n, bytes;
	void *copy;
	int err;
	if (!dt_valid((int)dt))
		return lb_error(LB_ERR_CONFIG, "run file array '%s': unknown dtype %d", path, (int)dt);
	if (rank < 1 || rank > 4)
		return lb_error(LB_ERR_SHAPE, "run file array '%s': rank %d (allowed: 1..4)", path, rank);
	if (array_elems(rank, dims, dt_size(dt), &n))
		return lb_error(LB_ERR_SHAPE, "run file array '%s': too large", path);
	bytes = n * dt_size(dt);
	if (bytes && !data)
		return lb_error(LB_ERR_CONFIG, "run file array '%s': no data", path);
	copy = malloc(bytes ? bytes : 1);
	if (!copy)
		return lb_error(LB_ERR_OOM, "out of memory for array '%s' (%zu bytes)", path, bytes);
	if (bytes)
		memcpy(copy, data, bytes);
	err = make_leaf(rf, path, RF_ARRAY, &node);
	if (err) {
		free(copy);
		return err;
	}
	node->dt = dt;
	node->rank = rank;
	for (int d = 0; d < rank; d++)
		node->dims[d] = dims[d];
	node->data = copy;
	return LB_OK;
}

const void *lb_runfile_get_array(const struct lb_runfile *rf, const char *path,
				 enum lb_dtype *dt, int *rank, uint64_t *dims)
{
	const struct rf_node *node = lookup(rf, path);
	if (!node || node->kind != RF_ARRAY)
		return NULL;
	if (dt)
		*dt = node->dt;
	if (rank)
		*rank = node->rank;
	if (dims) {
		for (int d = 0; d < 4; d++)
			dims[d] = d < node->rank ? node->dims[d] : 0;
	}
	return node->data;
}

static void free_strs(char **s, int n)
{
	for (int i = 0; i < n; i++)
		free(s[i]);
	free(s);
}

int lb_runfile_put_strings(struct lb_runfile *rf, const char *path, const char *const *s, int n)
{
	struct rf_node *node;
	char **copy;
	int err;
	if (n < 0 || (n > 0 && !s))
		return lb_error(LB_ERR_CONFIG, "run file strings '%s': bad count %d", path, n);
	copy = calloc((size_t)n + 1, sizeof *copy);
	if (!copy)
		return lb_error(LB_ERR_OOM, "out of memory");
	for (int i = 0; i < n; i++) {
		copy[i] = strdup(s[i] ? s[i] : "");
		if (!copy[i]) {
			free_strs(copy, i);
			return lb_error(LB_ERR_OOM, "out of memory");
		}
	}
	err = make_leaf(rf, path, RF_STRINGS, &node);
	if (err) {
		free_strs(copy, n);
		return err;
	}
	node->strs = copy;
	node->n_strs = n;
	return LB_OK;
}

const char *const *lb_runfile_get_strings(const struct lb_runfile *rf, const char *path, int *n)
{
	const struct rf_node *node = lookup(rf, path);
	if (!node || node->kind != RF_STRINGS)
		return NULL;
	if (n)
		*n = node->n_strs;
	return (const char *const *)node->strs;
}

/* ---- external links ---- */

int lb_runfile_put_link(struct lb_runfile *rf, const char *path, const char *file,
			const char *obj)
{
	struct rf_node *node;
	char *f, *o;
	int err;
	if (!file || !file[0] || !obj || !obj[0])
		return lb_error(LB_ERR_CONFIG, "run file link '%s': needs a file and an object", path);
	f = strdup(file);
	o = strdup(obj);
	if (!f || !o) {
		free(f);
		free(o);
		return lb_error(LB_ERR_OOM, "out of memory");
	}
	err = make_leaf(rf, path, RF_LINK, &node);
	if (err) {
		free(f);
		free(o);
		return err;
	}
	node->link_file = f;
	node->link_obj = o;
	return LB_OK;
}

const char *lb_runfile_get_link(const struct lb_runfile *rf, const char *path, const char **obj)
{
	const struct rf_node *node = lookup(rf, path);
	if (!node || node->kind != RF_LINK)
		return NULL;
	if (obj)
		*obj = node->link_obj;
	return node->link_file;
}

/* ---- series ---- */

static int series_reserve(struct rf_node *node, int rows)
{
	double *p;
	int cap;
	if (rows <= node->cap_rows)
		return LB_OK;
	cap = node->cap_rows ? node->cap_rows : 16;
	while (cap < rows)
		cap = cap > INT32_MAX / 2 ? rows : 2 * cap;
	if ((size_t)cap > SIZE_MAX / sizeof(double) / (size_t)node->width)
		return lb_error(LB_ERR_OOM, "series '%s' is too large", node->path);
	p = realloc(node->series, (size_t)cap * (size_t)node->width * sizeof *p);
	if (!p)
		return lb_error(LB_ERR_OOM, "out of memory for series '%s'", node->path);
	node->series = p;
	node->cap_rows = cap;
	return LB_OK;
}

int lb_runfile_append(struct lb_runfile *rf, const char *path, const double *row, int width)
{
	struct rf_node *node = lookup(rf, path);
	int err;
	if (width < 1 || !row)
		return lb_error(LB_ERR_SHAPE, "series '%s': width %d (must be >= 1)", path, width);
	if (node && node->kind != RF_SERIES)
		return lb_error(LB_ERR_STATE, "run file: '%s' is %s, not a series", node->path,
				kind_name(node->kind));
	if (!node) {
		err = make_leaf(rf, path, RF_SERIES, &node);
		if (err)
			return err;
	}
	if (node->rows > 0 && node->width != width)
		return lb_error(LB_ERR_SHAPE, "series '%s': row of width %d, series has width %d",
				node->path, width, node->width);
	if (node->width != width) {
		/* empty series: the width is (re)fixed by this append */
		free(node->series);
		node->series = NULL;
		node->cap_rows = 0;
		node->width = width;
	}
	if (node->rows == INT32_MAX)
		return lb_error(LB_ERR_OOM, "series '%s' is full", node->path);
	err = series_reserve(node, node->rows + 1);
	if (err)
		return err;
	memcpy(node->series + (size_t)node->rows * (size_t)width, row, (size_t)width * sizeof *row);
	node->rows++;
	return LB_OK;
}

const double *lb_runfile_get_series(const struct lb_runfile *rf, const char *path, int *rows,
				    int *width)
{
	static const double empty[1];
	const struct rf_node *node = lookup(rf, path);
	if (!node || node->kind != RF_SERIES)
		return NULL;
	if (rows)
		*rows = node->rows;
	if (width)
		*width = node->width ? node->width : 1;
	return node->series ? node->series : empty;
}

void lb_runfile_truncate(struct lb_runfile *rf, const char *group, int n_rows)
{
	char *norm;
	if (!rf || path_norm(group, &norm) != LB_OK)
		return;
	if (n_rows < 0)
		n_rows = 0;
	for (int i = 0; i < rf->n; i++) {
		struct rf_node *node = rf->nodes[i];
		if (node->kind == RF_SERIES && path_under(node->path, norm) && node->rows > n_rows)
			node->rows = n_rows;
	}
	free(norm);
}

int lb_runfile_set_axis(struct lb_runfile *rf, const char *group, const char *axis_name)
{
	char *norm, *copy;
	struct rf_node *node;
	int err;
	if (!axis_name || !axis_name[0] || strchr(axis_name, '/'))
		return lb_error(LB_ERR_CONFIG, "run file: bad axis name '%s' for group '%s'",
				axis_name ? axis_name : "", group ? group : "");
	err = path_norm(group, &norm);
	if (err)
		return err;
	err = ensure_group(rf, norm, &node);
	free(norm);
	if (err)
		return err;
	copy = strdup(axis_name);
	if (!copy)
		return lb_error(LB_ERR_OOM, "out of memory");
	free(node->axis);
	node->axis = copy;
	return LB_OK;
}

void lb_runfile_remove(struct lb_runfile *rf, const char *path)
{
	char *norm;
	int j = 0;
	if (!rf || path_norm(path, &norm) != LB_OK)
		return;
	if (!norm[0]) { /* the root stays */
		free(norm);
		return;
	}
	for (int i = 0; i < rf->n; i++) {
		if (path_under(rf->nodes[i]->path, norm))
			node_free(rf->nodes[i]);
		else
			rf->nodes[j++] = rf->nodes[i];
	}
	rf->n = j;
	free(norm);
}

/* ---- visiting and comparing ---- */

static int cmp_node_path(const void *a, const void *b)
{
	const struct rf_node *const *x = a, *const *y = b;
	return strcmp((*x)->path, (*y)->path);
}

/* The nodes sorted by path (parents before children); caller frees the array. */
static struct rf_node **sorted_nodes(const struct lb_runfile *rf)
{
	struct rf_node **v = malloc((size_t)rf->n * sizeof *v);
	if (!v)
		return NULL;
	memcpy(v, rf->nodes, (size_t)rf->n * sizeof *v);
	qsort(v, (size_t)rf->n, sizeof *v, cmp_node_path);
	return v;
}

int lb_runfile_visit_arrays(const struct lb_runfile *rf, const char *prefix,
			    lb_runfile_visit_fn fn, void *ctx)
{
	struct rf_node **v;
	char *norm;
	int ret = 0, err;
	err = path_norm(prefix, &norm);
	if (err)
		return err;
	v = sorted_nodes(rf);
	if (!v) {
		free(norm);
		return lb_error(LB_ERR_OOM, "out of memory");
	}
	for (int i = 0; i < rf->n && !ret; i++) {
		const struct rf_node *node = v[i];
		if (node->kind == RF_ARRAY && path_under(node->path, norm))
			ret = fn(node->path, node->dt, node->rank, node->dims, node->data, ctx);
	}
	free(v);
	free(norm);
	return ret;
}

static int attrs_diff(const struct rf_node *x, const struct rf_node *y)
{
	if (x->n_attrs != y->n_attrs)
		return lb_error(LB_ERR_STATE, "'%s': %d attributes vs %d", x->path, x->n_attrs,
				y->n_attrs);
	for (int i = 0; i < x->n_attrs; i++) {
		const struct rf_attr *a = &x->attrs[i], *b = NULL;
		for (int k = 0; k < y->n_attrs && !b; k++)
			if (strcmp(y->attrs[k].name, a->name) == 0)
				b = &y->attrs[k];
		if (!b)
			return lb_error(LB_ERR_STATE, "'%s': attribute '%s' missing", x->path, a->name);
		if (a->type != b->type || (a->type == RF_A_STR && strcmp(a->s, b->s)) ||
		    (a->type == RF_A_F64 && memcmp(&a->f, &b->f, sizeof a->f)) ||
		    (a->type == RF_A_I64 && a->i != b->i))
			return lb_error(LB_ERR_STATE, "'%s': attribute '%s' differs", x->path, a->name);
	}
	return LB_OK;
}

static int node_diff(const struct rf_node *x, const struct rf_node *y)
{
	size_t n = 0;
	if (x->kind != y->kind)
		return lb_error(LB_ERR_STATE, "'%s' is %s vs %s", x->path, kind_name(x->kind),
				kind_name(y->kind));
	switch (x->kind) {
	case RF_GROUP:
		if ((x->axis == NULL) != (y->axis == NULL) || (x->axis && strcmp(x->axis, y->axis)))
			return lb_error(LB_ERR_STATE, "'%s': axis differs", x->path);
		break;
	case RF_ARRAY:
		if (x->dt != y->dt)
			return lb_error(LB_ERR_STATE, "'%s': dtype %s vs %s", x->path,
					rf_dt_names[x->dt], rf_dt_names[y->dt]);
		if (x->rank != y->rank ||
		    memcmp(x->dims, y->dims, (size_t)x->rank * sizeof x->dims[0]))
			return lb_error(LB_ERR_STATE, "'%s': shape differs", x->path);
		array_elems(x->rank, x->dims, dt_size(x->dt), &n);
		if (n && memcmp(x->data, y->data, n * dt_size(x->dt)))
			return lb_error(LB_ERR_STATE, "'%s': values differ", x->path);
		break;
	case RF_STRINGS:
		if (x->n_strs != y->n_strs)
			return lb_error(LB_ERR_STATE, "'%s': %d strings vs %d", x->path, x->n_strs,
					y->n_strs);
		for (int i = 0; i < x->n_strs; i++)
			if (strcmp(x->strs[i], y->strs[i]))
				return lb_error(LB_ERR_STATE, "'%s': string %d differs", x->path, i);
		break;
	case RF_SERIES:
		if (x->rows != y->rows || (x->rows && x->width != y->width))
			return lb_error(LB_ERR_STATE, "'%s': shape (%d, %d) vs (%d, %d)", x->path, x->rows,
					x->width, y->rows, y->width);
		if (x->rows && memcmp(x->series, y->series,
				      (size_t)x->rows * (size_t)x->width * sizeof(double)))
			return lb_error(LB_ERR_STATE, "'%s': values differ", x->path);
		break;
	case RF_LINK:
		if (strcmp(x->link_file, y->link_file) || strcmp(x->link_obj, y->link_obj))
			return lb_error(LB_ERR_STATE, "'%s': link target differs", x->path);
		return LB_OK; /* links carry no attributes */
	}
	return attrs_diff(x, y);
}

int lb_runfile_diff(const struct lb_runfile *a, const struct lb_runfile *b)
{
	if (a->n != b->n)
		return lb_error(LB_ERR_STATE, "%d objects vs %d", a->n, b->n);
	for (int i = 0; i < a->n; i++) {
		const struct rf_node *y = find_node(b, a->nodes[i]->path);
		int err;
		if (!y)
			return lb_error(LB_ERR_STATE, "'%s' missing", a->nodes[i]->path);
		err = node_diff(a->nodes[i], y);
		if (err)
			return err;
	}
	return LB_OK;
}

/* ---- writing ---- */

struct wctx {
	hid_t file, lcpl, acpl, str;
	const char *path; /* final path, for messages */
};

static int h5_fail(const struct wctx *w, const char *obj)
{
	char why[256];
	h5_reason(why);
	return lb_error(LB_ERR_HDF5, "cannot write '%s' in '%s': %s", obj[0] ? obj : "/", w->path,
			why);
}

static int write_attr(const struct wctx *w, hid_t obj, const char *objpath, const struct rf_attr *a)
{
	hid_t space = H5I_INVALID_HID, attr = H5I_INVALID_HID;
	int err = LB_OK;
	herr_t st;
	space = H5Screate(H5S_SCALAR);
	if (space < 0)
		return h5_fail(w, objpath);
	switch (a->type) {
	case RF_A_STR:
		attr = H5Acreate2(obj, a->name, w->str, space, w->acpl, H5P_DEFAULT);
		st = attr < 0 ? -1 : H5Awrite(attr, w->str, &a->s);
		break;
	case RF_A_F64:
		attr = H5Acreate2(obj, a->name, H5T_IEEE_F64LE, space, w->acpl, H5P_DEFAULT);
		st = attr < 0 ? -1 : H5Awrite(attr, H5T_NATIVE_DOUBLE, &a->f);
		break;
	default:
		attr = H5Acreate2(obj, a->name, H5T_STD_I64LE, space, w->acpl, H5P_DEFAULT);
		st = attr < 0 ? -1 : H5Awrite(attr, H5T_NATIVE_INT64, &a->i);
		break;
	}
	if (st < 0) {
		char why[256];
		h5_reason(why);
		err = lb_error(LB_ERR_HDF5, "cannot write attribute '%.80s' of '%s' in '%s': %s", a->name,
			       objpath[0] ? objpath : "/", w->path, why);
	}
	if (attr >= 0)
		H5Aclose(attr);
	H5Sclose(space);
	return err;
}

static int cmp_attr_name(const void *a, const void *b)
{
	const struct rf_attr *const *x = a, *const *y = b;
	return strcmp((*x)->name, (*y)->name);
}

static int write_attrs(const struct wctx *w, hid_t obj, const struct rf_node *node)
{
	const struct rf_attr **order;
	int is_root = node->path[0] == '\0';
	int err = LB_OK;
	if (is_root) {
		struct rf_attr fmt = { .name = "lowbit_format", .type = RF_A_I64, .i = LB_RUNFILE_FORMAT };
		struct rf_attr kind = { .name = "lowbit_kind", .type = RF_A_STR, .s = "run" };
		for (int i = 0; i < node->n_attrs; i++)
			if (!strcmp(node->attrs[i].name, "lowbit_kind") &&
			    node->attrs[i].type == RF_A_STR && kind_known(node->attrs[i].s))
				kind.s = node->attrs[i].s;
		err = write_attr(w, obj, "", &fmt);
		if (!err)
			err = write_attr(w, obj, "", &kind);
	}
	/* Sorted by name, so that the file depends on the content only. */
	order = malloc(((size_t)node->n_attrs + 1) * sizeof *order);
	if (!order)
		return lb_error(LB_ERR_OOM, "out of memory");
	for (int i = 0; i < node->n_attrs; i++)
		order[i] = &node->attrs[i];
	qsort(order, (size_t)node->n_attrs, sizeof *order, cmp_attr_name);
	for (int i = 0; i < node->n_attrs && !err; i++) {
		const char *name = order[i]->name;
		if (is_root && (!strcmp(name, "lowbit_format") || !strcmp(name, "lowbit_kind")))
			continue;
		err = write_attr(w, obj, node->path, order[i]);
	}
	free(order);
	return err;
}

/* Chunk shape for a large array: whole trailing dimensions while they fit
 * the target, then a slice of the next one. */
static void array_chunk(int rank, const uint64_t *dims, size_t esize, hsize_t *chunk)
{
	uint64_t target = RF_CHUNK_TARGET_BYTES / esize, prod = 1;
	int d;
	for (d = rank - 1; d >= 0; d--) {
		if (prod * dims[d] <= target) {
			chunk[d] = dims[d];
			prod *= dims[d];
			continue;
		}
		chunk[d] = target / prod ? target / prod : 1;
		break;
	}
	for (d--; d >= 0; d--)
		chunk[d] = 1;
}

static int set_compression(hid_t dcpl, int rank, const hsize_t *chunk)
{
	if (H5Pset_chunk(dcpl, rank, chunk) < 0 || H5Pset_shuffle(dcpl) < 0 ||
	    H5Pset_deflate(dcpl, RF_DEFLATE_LEVEL) < 0)
		return -1;
	return 0;
}

static int write_dataset(const struct wctx *w, const struct rf_node *node)
{
	hid_t space = H5I_INVALID_HID, dcpl = H5I_INVALID_HID, ds = H5I_INVALID_HID;
	hid_t ftype, mtype;
	hsize_t dims[4], maxdims[4], chunk[4];
	const void *buf = NULL;
	size_t n = 0;
	int rank, err = LB_OK;

	dcpl = H5Pcreate(H5P_DATASET_CREATE);
	if (dcpl < 0 || H5Pset_obj_track_times(dcpl, 0) < 0)
		goto fail;
	switch (node->kind) {
	case RF_ARRAY:
		rank = node->rank;
		for (int d = 0; d < rank; d++)
			dims[d] = node->dims[d];
		array_elems(rank, node->dims, dt_size(node->dt), &n);
		if (n * dt_size(node->dt) >= RF_CHUNK_MIN_BYTES) {
			array_chunk(rank, node->dims, dt_size(node->dt), chunk);
			if (set_compression(dcpl, rank, chunk) < 0)
				goto fail;
		}
		space = H5Screate_simple(rank, dims, NULL);
		ftype = h5_file_type(node->dt);
		mtype = h5_mem_type(node->dt);
		buf = node->data;
		break;
	case RF_STRINGS:
		rank = 1;
		dims[0] = (hsize_t)node->n_strs;
		n = (size_t)node->n_strs;
		space = H5Screate_simple(1, dims, NULL);
		ftype = mtype = w->str;
		buf = node->strs;
		break;
	default: /* RF_SERIES */
		rank = node->width > 1 ? 2 : 1;
		dims[0] = (hsize_t)node->rows;
		dims[1] = (hsize_t)node->width;
		maxdims[0] = H5S_UNLIMITED;
		maxdims[1] = dims[1];
		chunk[0] = RF_SERIES_CHUNK_ROWS;
		while (chunk[0] > 1 && chunk[0] * sizeof(double) * (size_t)node->width >
					       RF_SERIES_CHUNK_MAX_BYTES)
			chunk[0] /= 2;
		chunk[1] = dims[1];
		if (set_compression(dcpl, rank, chunk) < 0)
			goto fail;
		space = H5Screate_simple(rank, dims, maxdims);
		ftype = H5T_IEEE_F64LE;
		mtype = H5T_NATIVE_DOUBLE;
		n = (size_t)node->rows;
		buf = node->series;
		break;
	}
	if (space < 0)
		goto fail;
	ds = H5Dcreate2(w->file, node->path, ftype, space, w->lcpl, dcpl, H5P_DEFAULT);
	if (ds < 0)
		goto fail;
	if (n && H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
		goto fail;
	err = write_attrs(w, ds, node);
	goto out;
fail:
	err = h5_fail(w, node->path);
out:
	if (ds >= 0)
		H5Dclose(ds);
	if (space >= 0)
		H5Sclose(space);
	if (dcpl >= 0)
		H5Pclose(dcpl);
	return err;
}

/* Name of the group attribute that keeps a row axis whose series does not
 * exist yet (a run file checkpointed before its first metrics row): without
 * it the axis would be lost on reading, since only the dimension scale names
 * it. The reader turns it back into the group's axis. */
#define RF_PENDING_AXIS "lowbit_pending_axis"

static int write_group(const struct wctx *w, const struct lb_runfile *rf,
		       const struct rf_node *node)
{
	hid_t gcpl = H5I_INVALID_HID, g = H5I_INVALID_HID;
	int err;
	if (node->axis) {
		char *apath = malloc(strlen(node->path) + strlen(node->axis) + 2);
		if (!apath)
			return lb_error(LB_ERR_OOM, "out of memory");
		sprintf(apath, "%s%s%s", node->path, node->path[0] ? "/" : "", node->axis);
		const struct rf_node *axis = find_node(rf, apath);
		free(apath);
		if (!axis || axis->kind != RF_SERIES) {
			struct rf_attr pending = { .name = RF_PENDING_AXIS, .type = RF_A_STR,
						   .s = node->axis };
			hid_t obj = node->path[0] ? H5I_INVALID_HID : w->file;
			if (node->path[0]) {
				gcpl = H5Pcreate(H5P_GROUP_CREATE);
				if (gcpl < 0 || H5Pset_obj_track_times(gcpl, 0) < 0)
					goto fail;
				g = H5Gcreate2(w->file, node->path, w->lcpl, gcpl, H5P_DEFAULT);
				if (g < 0)
					goto fail;
				obj = g;
			}
			err = write_attr(w, obj, node->path, &pending);
			err = err ? err : write_attrs(w, obj, node);
			goto out;
		}
	}
	if (!node->path[0])
		return write_attrs(w, w->file, node);
	gcpl = H5Pcreate(H5P_GROUP_CREATE);
	if (gcpl < 0 || H5Pset_obj_track_times(gcpl, 0) < 0)
		goto fail;
	g = H5Gcreate2(w->file, node->path, w->lcpl, gcpl, H5P_DEFAULT);
	if (g < 0)
		goto fail;
	err = write_attrs(w, g, node);
	goto out;
fail:
	err = h5_fail(w, node->path);
out:
	if (g >= 0)
		H5Gclose(g);
	if (gcpl >= 0)
		H5Pclose(gcpl);
	return err;
}

/* Make group/axis a dimension scale and attach it (dim 0) to the group's
 * other series, in path order (`sorted`). Nothing to do while the axis series does not exist yet. */
static int write_axis(const struct wctx *w, const struct lb_runfile *rf, struct rf_node **sorted,
		      const struct rf_node *g)
{
	hid_t scale = H5I_INVALID_HID, ds = H5I_INVALID_HID;
	const struct rf_node *axis;
	size_t glen = strlen(g->path);
	char *apath;
	int err = LB_OK;

	apath = malloc(glen + strlen(g->axis) + 2);
	if (!apath)
		return lb_error(LB_ERR_OOM, "out of memory");
	sprintf(apath, "%s%s%s", g->path, glen ? "/" : "", g->axis);
	axis = find_node(rf, apath);
	if (!axis || axis->kind != RF_SERIES)
		goto out;
	scale = H5Dopen2(w->file, apath, H5P_DEFAULT);
	if (scale < 0 || H5DSset_scale(scale, g->axis) < 0) {
		err = h5_fail(w, apath);
		goto out;
	}
	for (int i = 0; i < rf->n && !err; i++) {
		const struct rf_node *s = sorted[i];
		const char *slash = strrchr(s->path, '/');
		size_t plen = slash ? (size_t)(slash - s->path) : 0;
		if (s->kind != RF_SERIES || s == axis || plen != glen || strncmp(s->path, g->path, glen))
			continue;
		ds = H5Dopen2(w->file, s->path, H5P_DEFAULT);
		if (ds < 0 || H5DSattach_scale(ds, scale, 0) < 0)
			err = h5_fail(w, s->path);
		if (ds >= 0)
			H5Dclose(ds);
		ds = H5I_INVALID_HID;
	}
out:
	if (scale >= 0)
		H5Dclose(scale);
	free(apath);
	return err;
}

static int write_image(const struct lb_runfile *rf, struct wctx *w)
{
	struct rf_node **v = sorted_nodes(rf);
	int err = LB_OK;
	if (!v)
		return lb_error(LB_ERR_OOM, "out of memory");
	for (int i = 0; i < rf->n && !err; i++) {
		if (v[i]->kind == RF_LINK) {
			if (H5Lcreate_external(v[i]->link_file, v[i]->link_obj, w->file, v[i]->path,
					       w->lcpl, H5P_DEFAULT) < 0)
				err = h5_fail(w, v[i]->path);
			continue;
		}
		err = v[i]->kind == RF_GROUP ? write_group(w, rf, v[i]) : write_dataset(w, v[i]);
	}
	for (int i = 0; i < rf->n && !err; i++)
		if (v[i]->kind == RF_GROUP && v[i]->axis)
			err = write_axis(w, rf, v, v[i]);
	free(v);
	return err;
}

static int sync_path(const char *p, int flags)
{
	int fd = open(p, flags), e;
	if (fd < 0)
		return -1;
	if (fsync(fd) < 0) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return close(fd);
}

/* ---- the integrity seal (runfile.h) ---- */

static const char rf_seal_magic[] = "lowbit run file\n";
static const unsigned char rf_hdf5_sig[8] = { 0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n' };

/* The canonical header for (format, bytes, crc) in a zeroed user block. */
static void seal_header(char hdr[LB_RUNFILE_USERBLOCK], int format, unsigned long long bytes,
			unsigned long crc)
{
	memset(hdr, 0, LB_RUNFILE_USERBLOCK);
	snprintf(hdr, LB_RUNFILE_USERBLOCK, "%sformat %d\nbytes %llu\ncrc32 %08lx\n", rf_seal_magic,
		 format, bytes, crc);
}

/* Read exactly n bytes at off (fewer only at end of file); -1 on error. */
static ssize_t pread_full(int fd, void *buf, size_t n, off_t off)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = pread(fd, (char *)buf + got, n - got, off + (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* CRC-32 and length of everything after the user block. */
static int seal_crc(int fd, const char *path, unsigned long long *bytes, unsigned long *crc)
{
	size_t cap = 1u << 20;
	unsigned char *buf = malloc(cap);
	uLong c = crc32(0L, Z_NULL, 0);
	off_t off = LB_RUNFILE_USERBLOCK;
	ssize_t n;

	if (!buf)
		return lb_error(LB_ERR_OOM, "out of memory");
	while ((n = pread_full(fd, buf, cap, off)) > 0) {
		c = crc32(c, buf, (uInt)n);
		off += n;
	}
	free(buf);
	if (n < 0)
		return lb_error(LB_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
	*bytes = (unsigned long long)(off - LB_RUNFILE_USERBLOCK);
	*crc = (unsigned long)c;
	return LB_OK;
}

/* The superblock right after lowbit's user block? */
static int fd_has_userblock(int fd)
{
	unsigned char sig[8];
	return pread_full(fd, sig, sizeof sig, LB_RUNFILE_USERBLOCK) == (ssize_t)sizeof sig &&
	       !memcmp(sig, rf_hdf5_sig, sizeof sig);
}

int lb_runfile_has_userblock(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), yes;
	if (fd < 0)
		return 0;
	yes = fd_has_userblock(fd);
	close(fd);
	return yes;
}

int lb_runfile_seal(const char *path)
{
	char hdr[LB_RUNFILE_USERBLOCK];
	unsigned long long bytes;
	unsigned long crc;
	int fd = open(path, O_RDWR | O_CLOEXEC), err;

	if (fd < 0)
		return lb_error(LB_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
	/* The superblock must sit right after the user block: never write over
	 * the start of a file that has no user block. */
	if (!fd_has_userblock(fd)) {
		close(fd);
		return lb_error(LB_ERR_HDF5, "cannot seal '%s': it has no %d-byte HDF5 user block",
				path, LB_RUNFILE_USERBLOCK);
	}
	err = seal_crc(fd, path, &bytes, &crc);
	if (!err) {
		seal_header(hdr, LB_RUNFILE_FORMAT, bytes, crc);
		if (pwrite(fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr)
			err = lb_error(LB_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
	}
	if (close(fd) < 0 && !err)
		err = lb_error(LB_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
	return err;
}

int lb_runfile_check_seal(const char *path)
{
	char hdr[LB_RUNFILE_USERBLOCK], want[LB_RUNFILE_USERBLOCK];
	const char *env = getenv("LOWBIT_UNCHECKED_RUNFILES");
	unsigned long long bytes = 0, have;
	unsigned long crc = 0, c;
	struct stat st;
	int fd, format = 0, err = LB_OK;
	ssize_t n;

	if (env && !strcmp(env, "1"))
		return LB_OK;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return lb_error(LB_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || (n = pread_full(fd, hdr, sizeof hdr, 0)) < 0) {
		err = lb_error(LB_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
		goto out;
	}
	if (n >= (ssize_t)sizeof rf_hdf5_sig && !memcmp(hdr, rf_hdf5_sig, sizeof rf_hdf5_sig)) {
		err = lb_error(LB_ERR_HDF5,
			       "'%s' is not a lowbit run file: an HDF5 file without lowbit's integrity "
			       "seal (written by another program, or by a lowbit before run-file "
			       "format 2, which `lowbit seal` upgrades)",
			       path);
		goto out;
	}
	if (n < (ssize_t)sizeof hdr || memcmp(hdr, rf_seal_magic, sizeof rf_seal_magic - 1)) {
		err = lb_error(LB_ERR_HDF5, "'%s' is not a readable HDF5 file (truncated or foreign)",
			       path);
		goto out;
	}
	if (sscanf(hdr + sizeof rf_seal_magic - 1, "format %d bytes %llu crc32 %lx", &format,
		   &bytes, &crc) != 3 ||
	    format < 2 || (seal_header(want, format, bytes, crc), memcmp(hdr, want, sizeof hdr))) {
		err = lb_error(LB_ERR_HDF5,
			       "'%s' is not a readable HDF5 file (damaged: its integrity seal, the "
			       "first %d bytes, is not well formed)",
			       path, LB_RUNFILE_USERBLOCK);
		goto out;
	}
	if (format > LB_RUNFILE_FORMAT) {
		err = lb_error(LB_ERR_HDF5, "'%s' has format version %d; this lowbit reads up to %d",
			       path, format, LB_RUNFILE_FORMAT);
		goto out;
	}
	have = (unsigned long long)st.st_size - LB_RUNFILE_USERBLOCK;
	if (have < bytes) {
		err = lb_error(LB_ERR_HDF5,
			       "'%s' is not a readable HDF5 file (truncated or foreign): %llu bytes "
			       "after the seal, which says %llu",
			       path, have, bytes);
		goto out;
	}
	err = seal_crc(fd, path, &have, &c);
	if (err || (have == bytes && c == crc))
		goto out;
	err = lb_error(LB_ERR_HDF5,
		       "'%s' is not a readable HDF5 file (damaged, or changed after lowbit wrote it: "
		       "%llu bytes and CRC-32 %08lx after the seal, which says %llu and %08lx; "
		       "`lowbit seal` accepts a file you changed on purpose)",
		       path, have, c, bytes, crc);
out:
	close(fd);
	return err;
}

/* libhdf5 writes the file (sec2 driver), then the seal is stamped in place.
 * A write that fails inside libhdf5 (a full disk) makes H5Fclose fail and
 * leaves libhdf5's state broken; its exit-time clean-up then crashed, so
 * lowbit's main() calls H5dont_atexit() (tests/cli/disk-full.sh). Building
 * the file in memory instead (the core driver) avoids that too but holds the
 * file twice in memory at each checkpoint (+24 MB peak on LeNet-5). */
int lb_runfile_write(const struct lb_runfile *rf, const char *path)
{
	struct wctx w = { H5I_INVALID_HID, H5I_INVALID_HID, H5I_INVALID_HID, H5I_INVALID_HID, path };
	hid_t fapl = H5I_INVALID_HID, fcpl = H5I_INVALID_HID;
	char *tmp = NULL, *dir = NULL, *slash;
	int err = LB_OK, fd;

	h5_silence();
	if (!rf || !path || !path[0])
		return lb_error(LB_ERR_CONFIG, "run file: no path to write to");
	tmp = malloc(strlen(path) + 5);
	dir = malloc(strlen(path) + 2);
	if (!tmp || !dir) {
		err = lb_error(LB_ERR_OOM, "out of memory");
		goto out;
	}
	sprintf(tmp, "%s.tmp", path);
	/* Create it ourselves first so that the message carries errno's reason. */
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0) {
		err = lb_error(LB_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
		goto out;
	}
	close(fd);

	fapl = h5_fapl();
	fcpl = H5Pcreate(H5P_FILE_CREATE);
	w.lcpl = H5Pcreate(H5P_LINK_CREATE);
	w.acpl = H5Pcreate(H5P_ATTRIBUTE_CREATE);
	w.str = h5_str_type();
	if (fapl < 0 || fcpl < 0 || w.lcpl < 0 || w.acpl < 0 || w.str < 0 ||
	    H5Pset_userblock(fcpl, LB_RUNFILE_USERBLOCK) < 0 ||
	    H5Pset_create_intermediate_group(w.lcpl, 1) < 0 ||
	    H5Pset_char_encoding(w.lcpl, H5T_CSET_UTF8) < 0 ||
	    H5Pset_char_encoding(w.acpl, H5T_CSET_UTF8) < 0) {
		err = h5_fail(&w, "");
		goto fail;
	}
	w.file = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, fapl);
	if (w.file < 0) {
		char why[256];
		h5_reason(why);
		err = lb_error(LB_ERR_HDF5, "cannot create '%s': %s", tmp, why);
		goto fail;
	}
	err = write_image(rf, &w);
	if (err)
		goto fail;
	errno = 0;
	if (H5Fclose(w.file) < 0) {
		/* a failed write(2) inside libhdf5 (full disk, size limit): its
		 * errno says it in one line; libhdf5's own text is several */
		int e = errno;
		char why[256];
		h5_reason(why);
		w.file = H5I_INVALID_HID;
		err = e == ENOSPC || e == EFBIG || e == EDQUOT || e == EIO
			      ? lb_error(LB_ERR_IO, "cannot write '%s': %s", tmp, strerror(e))
			      : lb_error(LB_ERR_HDF5, "cannot write '%s': %s", tmp, why);
		goto fail;
	}
	w.file = H5I_INVALID_HID;
	err = lb_runfile_seal(tmp);
	if (err)
		goto fail;
	if (sync_path(tmp, O_RDONLY | O_CLOEXEC) < 0) {
		err = lb_error(LB_ERR_IO, "cannot sync '%s': %s", tmp, strerror(errno));
		goto fail;
	}
	if (rename(tmp, path) < 0) {
		err = lb_error(LB_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
		goto fail;
	}
	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (!slash)
		strcpy(dir, ".");
	else
		slash[slash == dir] = '\0'; /* "/x.h5" -> "/" */
	/* Some file systems cannot sync a folder (EINVAL); the rename stands. */
	if (sync_path(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) < 0 && errno != EINVAL &&
	    errno != ENOTSUP)
		err = lb_error(LB_ERR_IO, "cannot sync the folder of '%s': %s", path, strerror(errno));
	goto out;
fail:
	if (w.file >= 0)
		H5Fclose(w.file);
	unlink(tmp);
out:
	if (w.str >= 0)
		H5Tclose(w.str);
	if (w.acpl >= 0)
		H5Pclose(w.acpl);
	if (w.lcpl >= 0)
		H5Pclose(w.lcpl);
	if (fcpl >= 0)
		H5Pclose(fcpl);
	if (fapl >= 0)
		H5Pclose(fapl);
	free(tmp);
	free(dir);
	return err;
}

/* ---- reading ---- */

struct rctx {
	struct lb_runfile *rf;
	const char *path; /* file, for messages */
	char **names;     /* hard links found by H5Lvisit */
	int n_names, cap_names;
	int oom, link_err;
};

static int r_fail(const struct rctx *r, const char *obj)
{
	char why[256];
	h5_reason(why);
	return lb_error(LB_ERR_HDF5, "cannot read '%s' in '%s': %s", obj[0] ? obj : "/", r->path, why);
}

/* The scalar string of attribute or dataset `obj` (file type `type`) as a malloc'd
 * copy in *out: 0, -1 on an HDF5 failure, -2 when out of memory. */
static int read_string_value(hid_t type, int is_attr, hid_t obj, char **out)
{
	hid_t mem = H5Tcopy(type);
	int ok = -1;
	*out = NULL;
	if (mem < 0)
		return -1;
	if (H5Tis_variable_str(type) > 0) {
		char *p = NULL;
		herr_t st = is_attr ? H5Aread(obj, mem, &p)
				    : H5Dread(obj, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, &p);
		if (st >= 0) {
			*out = strdup(p ? p : "");
			ok = *out ? 0 : -2;
			H5free_memory(p);
		}
	} else {
		size_t size = H5Tget_size(type);
		char *buf = calloc(size + 1, 1);
		if (!buf) {
			H5Tclose(mem);
			return -2;
		}
		if (size && H5Tset_size(mem, size + 1) >= 0 && H5Tset_strpad(mem, H5T_STR_NULLTERM) >= 0 &&
		    (is_attr ? H5Aread(obj, mem, buf)
			     : H5Dread(obj, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf)) >= 0)
			ok = 0;
		else if (!size)
			ok = 0;
		if (ok == 0)
			*out = buf;
		else
			free(buf);
	}
	H5Tclose(mem);
	return ok;
}

struct attr_ctx {
	struct rctx *r;
	const char *objpath;
	int skip_scale; /* the object is a dimension scale */
	int is_dataset;
	int err;
};

static herr_t read_attr_cb(hid_t obj, const char *name, const H5A_info_t *info, void *data)
{
	struct attr_ctx *c = data;
	hid_t attr = H5I_INVALID_HID, type = H5I_INVALID_HID, space = H5I_INVALID_HID;
	H5T_class_t cls;
	(void)info;
	if (!c->is_dataset && !strcmp(name, RF_PENDING_AXIS)) {
		char *s = NULL;
		attr = H5Aopen(obj, name, H5P_DEFAULT);
		if (attr < 0 || (type = H5Aget_type(attr)) < 0 || H5Tget_class(type) != H5T_STRING ||
		    read_string_value(type, 1, attr, &s) != 0)
			c->err = r_fail(c->r, c->objpath);
		else
			c->err = lb_runfile_set_axis(c->r->rf, c->objpath, s);
		free(s);
		goto out;
	}
	if (c->is_dataset && (!strcmp(name, "DIMENSION_LIST") ||
			      (c->skip_scale && (!strcmp(name, "CLASS") || !strcmp(name, "NAME") ||
						 !strcmp(name, "REFERENCE_LIST")))))
		return 0;
	attr = H5Aopen(obj, name, H5P_DEFAULT);
	if (attr < 0 || (type = H5Aget_type(attr)) < 0 || (space = H5Aget_space(attr)) < 0) {
		c->err = r_fail(c->r, c->objpath);
		goto out;
	}
	if (H5Sget_simple_extent_npoints(space) != 1) {
		c->err = lb_error(LB_ERR_HDF5, "'%s' in '%s': attribute '%.80s' is not a scalar",
				  c->objpath[0] ? c->objpath : "/", c->r->path, name);
		goto out;
	}
	cls = H5Tget_class(type);
	if (cls == H5T_STRING) {
		char *s = NULL;
		int st = read_string_value(type, 1, attr, &s);
		if (st == -2)
			c->err = lb_error(LB_ERR_OOM, "out of memory");
		else if (st < 0)
			c->err = r_fail(c->r, c->objpath);
		else {
			c->err = lb_runfile_set_attr_str(c->r->rf, c->objpath, name, s);
			free(s);
		}
	} else if (cls == H5T_FLOAT) {
		double v;
		if (H5Aread(attr, H5T_NATIVE_DOUBLE, &v) < 0)
			c->err = r_fail(c->r, c->objpath);
		else
			c->err = lb_runfile_set_attr_f64(c->r->rf, c->objpath, name, v);
	} else if (cls == H5T_INTEGER) {
		int64_t v;
		if (H5Aread(attr, H5T_NATIVE_INT64, &v) < 0)
			c->err = r_fail(c->r, c->objpath);
		else
			c->err = lb_runfile_set_attr_i64(c->r->rf, c->objpath, name, v);
	} else {
		c->err = lb_error(LB_ERR_HDF5,
				  "'%s' in '%s': attribute '%.80s' has an unsupported type (allowed: "
				  "string, float, integer)",
				  c->objpath[0] ? c->objpath : "/", c->r->path, name);
	}
out:
	if (space >= 0)
		H5Sclose(space);
	if (type >= 0)
		H5Tclose(type);
	if (attr >= 0)
		H5Aclose(attr);
	return c->err ? -1 : 0;
}

static int read_attrs(struct rctx *r, hid_t obj, const char *objpath, int is_dataset,
		      int is_scale)
{
	struct attr_ctx c = { r, objpath, is_scale, is_dataset, LB_OK };
	hsize_t idx = 0;
	if (H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, read_attr_cb, &c) < 0 && !c.err)
		c.err = r_fail(r, objpath);
	return c.err;
}

/* Map a file type to our dtypes; -1 when unsupported. */
static int dtype_of(hid_t type)
{
	size_t size = H5Tget_size(type);
	switch (H5Tget_class(type)) {
	case H5T_FLOAT:
		return size == 4 ? LB_DT_F32 : size == 8 ? LB_DT_F64 : -1;
	case H5T_INTEGER:
		if (H5Tget_sign(type) == H5T_SGN_NONE)
			return size == 1 ? LB_DT_U8 : -1;
		return size == 4 ? LB_DT_I32 : size == 8 ? LB_DT_I64 : -1;
	default:
		return -1;
	}
}

static int read_strings(struct rctx *r, hid_t ds, hid_t type, hid_t space, const char *name,
			hsize_t n)
{
	struct rf_node *node;
	char **s = NULL;
	int err;
	if (n > INT32_MAX)
		return lb_error(LB_ERR_HDF5, "'%s' in '%s': too many strings", name, r->path);
	s = calloc((size_t)n + 1, sizeof *s);
	if (!s)
		return lb_error(LB_ERR_OOM, "out of memory");
	if (n && H5Tis_variable_str(type) > 0) {
		hid_t mem = H5Tcopy(type);
		char **p = calloc((size_t)n, sizeof *p);
		err = LB_OK;
		if (mem < 0 || !p || H5Dread(ds, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, p) < 0) {
			err = p ? r_fail(r, name) : lb_error(LB_ERR_OOM, "out of memory");
			if (mem >= 0)
				H5Tclose(mem);
			free(p);
			free(s);
			return err;
		}
		for (hsize_t i = 0; i < n && !err; i++)
			if (!(s[i] = strdup(p[i] ? p[i] : "")))
				err = lb_error(LB_ERR_OOM, "out of memory");
		H5Dvlen_reclaim(mem, space, H5P_DEFAULT, p);
		H5Tclose(mem);
		free(p);
		if (err) {
			free_strs(s, (int)n);
			return err;
		}
	} else if (n) {
		size_t size = H5Tget_size(type);
		hid_t mem = H5Tcopy(type);
		char *buf = calloc((size_t)n, size + 1);
		err = LB_OK;
		if (mem < 0 || !buf || H5Tset_size(mem, size + 1) < 0 ||
		    H5Tset_strpad(mem, H5T_STR_NULLTERM) < 0 ||
		    H5Dread(ds, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
			err = buf ? r_fail(r, name) : lb_error(LB_ERR_OOM, "out of memory");
		for (hsize_t i = 0; i < n && !err; i++)
			if (!(s[i] = strndup(buf + i * (size + 1), size)))
				err = lb_error(LB_ERR_OOM, "out of memory");
		if (mem >= 0)
			H5Tclose(mem);
		free(buf);
		if (err) {
			free_strs(s, (int)n);
			return err;
		}
	}
	err = make_leaf(r->rf, name, RF_STRINGS, &node);
	if (err) {
		free_strs(s, (int)n);
		return err;
	}
	node->strs = s;
	node->n_strs = (int)n;
	return LB_OK;
}

static int read_dataset(struct rctx *r, hid_t ds, const char *name)
{
	hid_t type = H5I_INVALID_HID, space = H5I_INVALID_HID;
	hsize_t dims[H5S_MAX_RANK], maxdims[H5S_MAX_RANK];
	struct rf_node *node = NULL;
	int rank, err = LB_OK, is_scale = 0;

	type = H5Dget_type(ds);
	space = H5Dget_space(ds);
	if (type < 0 || space < 0 || (rank = H5Sget_simple_extent_ndims(space)) < 0 ||
	    H5Sget_simple_extent_dims(space, dims, maxdims) < 0) {
		err = r_fail(r, name);
		goto out;
	}
	if (rank < 1 || rank > 4) {
		err = lb_error(LB_ERR_HDF5, "'%s' in '%s': rank %d is not supported (allowed: 1..4)",
			       name, r->path, rank);
		goto out;
	}
	if (maxdims[0] == H5S_UNLIMITED) {
		/* a series */
		hsize_t width = rank == 2 ? dims[1] : 1;
		if (rank > 2 || H5Tget_class(type) == H5T_STRING || width < 1 || width > INT32_MAX ||
		    dims[0] > INT32_MAX) {
			err = lb_error(LB_ERR_HDF5, "'%s' in '%s': extendible dataset is not a series",
				       name, r->path);
			goto out;
		}
		err = make_leaf(r->rf, name, RF_SERIES, &node);
		if (err)
			goto out;
		node->width = (int)width;
		if (dims[0]) {
			err = series_reserve(node, (int)dims[0]);
			if (err)
				goto out;
			if (H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, node->series) < 0) {
				err = r_fail(r, name);
				goto out;
			}
		}
		node->rows = (int)dims[0];
	} else if (H5Tget_class(type) == H5T_STRING) {
		if (rank != 1) {
			err = lb_error(LB_ERR_HDF5, "'%s' in '%s': string arrays must be 1-D", name,
				       r->path);
			goto out;
		}
		err = read_strings(r, ds, type, space, name, dims[0]);
		if (err)
			goto out;
	} else {
		int dt = dtype_of(type);
		uint64_t d64[4];
		size_t n;
		void *buf;
		if (dt < 0) {
			err = lb_error(LB_ERR_HDF5,
				       "'%s' in '%s': unsupported element type (allowed: float32, "
				       "float64, int32, int64, uint8, string)",
				       name, r->path);
			goto out;
		}
		for (int d = 0; d < rank; d++)
			d64[d] = dims[d];
		if (array_elems(rank, d64, dt_size((enum lb_dtype)dt), &n)) {
			err = lb_error(LB_ERR_HDF5, "'%s' in '%s': too large", name, r->path);
			goto out;
		}
		buf = malloc(n * dt_size((enum lb_dtype)dt) + 1);
		if (!buf) {
			err = lb_error(LB_ERR_OOM, "out of memory for '%s'", name);
			goto out;
		}
		if (n && H5Dread(ds, h5_mem_type((enum lb_dtype)dt), H5S_ALL, H5S_ALL, H5P_DEFAULT,
				 buf) < 0) {
			err = r_fail(r, name);
			free(buf);
			goto out;
		}
		err = make_leaf(r->rf, name, RF_ARRAY, &node);
		if (err) {
			free(buf);
			goto out;
		}
		node->dt = (enum lb_dtype)dt;
		node->rank = rank;
		memcpy(node->dims, d64, (size_t)rank * sizeof d64[0]);
		node->data = buf;
	}
	is_scale = H5DSis_scale(ds) > 0;
	err = read_attrs(r, ds, name, 1, is_scale);
	if (!err && is_scale) {
		/* the scale names its group's row axis */
		const char *base = base_name(name);
		char *group = strndup(name, (size_t)(base - name));
		if (!group) {
			err = lb_error(LB_ERR_OOM, "out of memory");
			goto out;
		}
		err = lb_runfile_set_axis(r->rf, group, base);
		free(group);
	}
out:
	if (space >= 0)
		H5Sclose(space);
	if (type >= 0)
		H5Tclose(type);
	return err;
}

static herr_t collect_cb(hid_t group, const char *name, const H5L_info_t *info, void *data)
{
	struct rctx *r = data;
	if (info->type == H5L_TYPE_EXTERNAL) {
		/* kept as a link: the target file is not opened */
		const char *file = NULL, *obj = NULL;
		size_t size = info->u.val_size;
		char *buf = malloc(size ? size : 1);
		unsigned flags = 0;
		if (!buf) {
			r->oom = 1;
			return -1;
		}
		if (H5Lget_val(group, name, buf, size, H5P_DEFAULT) < 0 ||
		    H5Lunpack_elink_val(buf, size, &flags, &file, &obj) < 0 ||
		    lb_runfile_put_link(r->rf, name, file, obj)) {
			free(buf);
			r->link_err = 1;
			return -1;
		}
		free(buf);
		return 0;
	}
	if (info->type != H5L_TYPE_HARD)
		return 0;
	if (r->n_names == r->cap_names) {
		int cap = r->cap_names ? 2 * r->cap_names : 32;
		char **v = realloc(r->names, (size_t)cap * sizeof *v);
		if (!v) {
			r->oom = 1;
			return -1;
		}
		r->names = v;
		r->cap_names = cap;
	}
	if (!(r->names[r->n_names] = strdup(name))) {
		r->oom = 1;
		return -1;
	}
	r->n_names++;
	return 0;
}

/* Refuse files that are not lowbit files of a format we can read, or (want
 * not NULL) not of kind `want`. */
static int check_marker(hid_t file, const char *path, const char *want)
{
	hid_t attr = H5I_INVALID_HID, type = H5I_INVALID_HID;
	int64_t fmt = 0;
	char *kind = NULL;
	int err = LB_OK;

	if (H5Aexists(file, "lowbit_format") <= 0)
		return lb_error(LB_ERR_HDF5, "'%s' is not a lowbit run file", path);
	attr = H5Aopen(file, "lowbit_format", H5P_DEFAULT);
	if (attr < 0 || (type = H5Aget_type(attr)) < 0 || H5Tget_class(type) != H5T_INTEGER ||
	    H5Aread(attr, H5T_NATIVE_INT64, &fmt) < 0 || fmt < 1) {
		err = lb_error(LB_ERR_HDF5, "'%s' is not a lowbit run file (bad lowbit_format)", path);
		goto out;
	}
	if (fmt > LB_RUNFILE_FORMAT) {
		err = lb_error(LB_ERR_HDF5, "'%s' has format version %lld; this lowbit reads up to %d",
			       path, (long long)fmt, LB_RUNFILE_FORMAT);
		goto out;
	}
	H5Tclose(type);
	H5Aclose(attr);
	type = attr = H5I_INVALID_HID;
	if (H5Aexists(file, "lowbit_kind") > 0) {
		attr = H5Aopen(file, "lowbit_kind", H5P_DEFAULT);
		if (attr >= 0 && (type = H5Aget_type(attr)) >= 0 && H5Tget_class(type) == H5T_STRING)
			read_string_value(type, 1, attr, &kind);
	}
	if (want ? !kind || strcmp(kind, want) : !kind_known(kind))
		err = lb_error(LB_ERR_HDF5, "'%s' is not a lowbit %s file (lowbit_kind is '%s')", path,
			       want ? want : "run or sweep", kind ? kind : "missing");
out:
	free(kind);
	if (type >= 0)
		H5Tclose(type);
	if (attr >= 0)
		H5Aclose(attr);
	return err;
}

int lb_runfile_read(const char *path, struct lb_runfile **out)
{
	return lb_runfile_read_kind(path, "run", out);
}

int lb_runfile_read_kind(const char *path, const char *kind, struct lb_runfile **out)
{
	struct rctx r = { NULL, path, NULL, 0, 0, 0, 0 };
	hid_t fapl = H5I_INVALID_HID, file = H5I_INVALID_HID;
	struct stat st;
	int err;

	*out = NULL;
	h5_silence();
	if (!path || !path[0])
		return lb_error(LB_ERR_IO, "cannot open '': %s", strerror(ENOENT));
	if (stat(path, &st) < 0)
		return lb_error(LB_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
	if (S_ISDIR(st.st_mode))
		return lb_error(LB_ERR_IO, "cannot open '%s': %s", path, strerror(EISDIR));
	if (access(path, R_OK) < 0)
		return lb_error(LB_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
	/* Before libhdf5 sees a byte of it (runfile.h). */
	err = lb_runfile_check_seal(path);
	if (err)
		return err;
	if (H5Fis_hdf5(path) <= 0)
		return lb_error(LB_ERR_HDF5, "'%s' is not a readable HDF5 file (truncated or foreign)",
				path);
	fapl = h5_fapl();
	if (fapl >= 0)
		file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
	if (file < 0) {
		char why[256];
		h5_reason(why);
		err = lb_error(LB_ERR_HDF5,
			       "'%s' is not a readable HDF5 file (truncated or foreign): %s", path, why);
		goto out;
	}
	err = check_marker(file, path, kind);
	if (err)
		goto out;
	err = lb_runfile_new(&r.rf);
	if (err)
		goto out;
	err = read_attrs(&r, file, "", 0, 0);
	if (err)
		goto out;
	if (H5Lvisit(file, H5_INDEX_NAME, H5_ITER_INC, collect_cb, &r) < 0) {
		err = r.oom ? lb_error(LB_ERR_OOM, "out of memory")
		      : r.link_err ? lb_error(LB_ERR_HDF5, "'%s': unreadable external link", path)
				   : r_fail(&r, "");
		goto out;
	}
	for (int i = 0; i < r.n_names && !err; i++) {
		hid_t obj = H5Oopen(file, r.names[i], H5P_DEFAULT);
		struct rf_node *g;
		if (obj < 0) {
			err = r_fail(&r, r.names[i]);
			break;
		}
		switch (H5Iget_type(obj)) {
		case H5I_GROUP:
			err = ensure_group(r.rf, r.names[i], &g);
			if (!err)
				err = read_attrs(&r, obj, r.names[i], 0, 0);
			break;
		case H5I_DATASET:
			err = read_dataset(&r, obj, r.names[i]);
			break;
		default: /* committed datatypes: not ours, ignored */
			break;
		}
		H5Oclose(obj);
	}
out:
	for (int i = 0; i < r.n_names; i++)
		free(r.names[i]);
	free(r.names);
	if (file >= 0)
		H5Fclose(file);
	if (fapl >= 0)
		H5Pclose(fapl);
	if (err) {
		lb_runfile_free(r.rf);
		return err;
	}
	*out = r.rf;
	return LB_OK;
}
