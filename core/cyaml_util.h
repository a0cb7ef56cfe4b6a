/* SPDX-License-Identifier: MIT
 * libcyaml set-up shared by the config loader (core/config.c) and the sweep
 * spec loader (sweeps/spec.c): a cyaml_config_t whose log lines are captured
 * into a buffer, so the caller can turn libcyaml's messages ("Invalid FLOAT
 * value", "Backtrace: in mapping field ...") into one clear message. */
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

#endif
