/* SPDX-License-Identifier: MIT
 * YAML plumbing shared by the config loader (core/config.c) and the sweep
 * spec loader (sweeps/spec.c): a cyaml_config_t whose log lines are captured
 * into a buffer, so the caller can turn libcyaml's messages ("Invalid FLOAT
 * value", "Backtrace: in mapping field ...") into one clear message; and the
 * two guards against hostile input that both loaders need before they build
 * anything: a bounded file reader and an alias-expansion bound. */
#ifndef LB_CYAML_UTIL_H
#define LB_CYAML_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <cyaml/cyaml.h>

struct lb_cylog {
	char text[4096]; /* captured log lines, NUL-terminated by the reader at text[n] */
	size_t n;
};

/* Fill *c: errors only, logged into *log (NULL: not logged), malloc/free
 * memory, and the given libcyaml flags. */
void lb_cyaml_config(cyaml_config_t *c, struct lb_cylog *log, cyaml_cfg_flags_t flags);

/* The YAML spelling of enum value v in a strval table ("?" when absent). */
const char *lb_cyaml_strval_name(const cyaml_strval_t *s, uint32_t n, int64_t v);

/* The field of a mapping schema called key, or NULL. */
const cyaml_schema_field_t *lb_cyaml_field_find(const cyaml_schema_field_t *f, const char *key);

/* "a, b, c": the keys of a mapping schema (except `skip`, may be NULL) or the
 * spellings of an enum schema, for "(allowed: ...)" in messages. */
void lb_cyaml_allowed_keys(const cyaml_schema_field_t *f, const char *skip, char *buf,
			   size_t size);
void lb_cyaml_allowed_enum(const cyaml_schema_value_t *v, char *buf, size_t size);

/* ---- reading a YAML file ---- */

/* Larger files are refused before they are read (configs and specs are a few
 * KiB; 16 MiB leaves room for generated ones). */
#define LB_YAML_MAX_BYTES (16 << 20)

/* What lb_yaml_read_file found wrong. */
enum lb_yaml_file {
	LB_YAML_FILE_OK = 0,
	LB_YAML_FILE_OPEN,        /* cannot be opened; errno kept */
	LB_YAML_FILE_NOT_REGULAR, /* a folder, device (/dev/zero), pipe, or over the size limit */
	LB_YAML_FILE_READ,        /* read error; errno kept */
	LB_YAML_FILE_NUL,         /* holds a NUL byte: not YAML text */
	LB_YAML_FILE_OOM,
};

/* The whole of the regular file path (at most LB_YAML_MAX_BYTES), NUL-
 * terminated, into *text (malloc'ed) and its length into *len. Returns an
 * enum lb_yaml_file; on failure *text is NULL. Records no message: each
 * loader words its own (see lb_yaml_file_strerror). */
int lb_yaml_read_file(const char *path, char **text, size_t *len);

/* The problem of lb_yaml_read_file's result why, for a message: "not a
 * regular file of at most 16 MiB", "contains a NUL byte", or strerror(errno)
 * (so call it before anything that can change errno). */
const char *lb_yaml_file_strerror(int why);

/* ---- alias expansion ("billion laughs") ---- */

/* The most nodes (scalars, mappings, sequences) a document may hold once its
 * aliases are expanded. The loaders copy every alias out into a tree of their
 * own, so nine levels of ten aliases make 10^9 nodes (minutes of CPU,
 * gigabytes) from 10 lines. Real configs and specs have a few hundred nodes;
 * a config of 10^6 takes about a second and 130 MB to refuse, less than a
 * plain file under the 16 MiB limit can already cost (~8 * 10^6 nodes). */
#define LB_YAML_MAX_NODES 1000000

/* Where lb_yaml_check_aliases refused a document, and why. */
struct lb_yaml_refusal {
	unsigned line, column; /* 1-based, of the alias */
	char what[160];        /* the problem, no file or position: "YAML aliases expand ..." */
};

/* Scan YAML text with libyaml's event parser, counting the nodes the
 * document will have once every alias is expanded, without expanding any.
 * LB_OK when within LB_YAML_MAX_NODES (and on a syntax error, which is left
 * to the loader, that words it better); LB_ERR_CONFIG when an alias takes
 * the document past the limit or refers to a node that contains it (a
 * cycle), with *r filled; LB_ERR_OOM. Records no message. */
int lb_yaml_check_aliases(const char *text, size_t len, struct lb_yaml_refusal *r);

#endif
