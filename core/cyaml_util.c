/* SPDX-License-Identifier: MIT
 * libcyaml configuration with a captured log (see cyaml_util.h). */
#include "cyaml_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void cy_log(cyaml_log_t level, void *ctx, const char *fmt, va_list args)
{
	struct lb_cylog *l = ctx;
	(void)level;
	if (l && l->n < sizeof l->text - 1) {
		int k = vsnprintf(l->text + l->n, sizeof l->text - l->n, fmt, args);
		if (k > 0)
			l->n += (size_t)k;
		if (l->n >= sizeof l->text)
			l->n = sizeof l->text - 1;
	}
}

static void *cy_mem(void *ctx, void *ptr, size_t size)
{
	(void)ctx;
	if (!size) {
		free(ptr);
		return NULL;
	}
	return realloc(ptr, size);
}

void lb_cyaml_config(cyaml_config_t *c, struct lb_cylog *log, cyaml_cfg_flags_t flags)
{
	memset(c, 0, sizeof *c);
	c->log_fn = log ? cy_log : NULL;
	c->log_ctx = log;
	c->mem_fn = cy_mem;
	c->log_level = CYAML_LOG_ERROR;
	c->flags = flags;
}

const char *lb_cyaml_strval_name(const cyaml_strval_t *s, uint32_t n, int64_t v)
{
	for (uint32_t i = 0; i < n; i++)
		if (s[i].val == v)
			return s[i].str;
	return "?";
}

const cyaml_schema_field_t *lb_cyaml_field_find(const cyaml_schema_field_t *f, const char *key)
{
	for (; f->key; f++)
		if (strcmp(f->key, key) == 0)
			return f;
	return NULL;
}

void lb_cyaml_allowed_keys(const cyaml_schema_field_t *f, const char *skip, char *buf,
			   size_t size)
{
	size_t len = 0;
	buf[0] = '\0';
	for (; f->key && len < size; f++)
		if (!skip || strcmp(f->key, skip))
			len += (size_t)snprintf(buf + len, size - len, "%s%s", len ? ", " : "", f->key);
}

void lb_cyaml_allowed_enum(const cyaml_schema_value_t *v, char *buf, size_t size)
{
	size_t len = 0;
	buf[0] = '\0';
	for (uint32_t i = 0; i < v->enumeration.count && len < size; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s%s", len ? ", " : "",
					v->enumeration.strings[i].str);
}
