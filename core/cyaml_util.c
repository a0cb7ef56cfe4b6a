/* SPDX-License-Identifier: MIT
 * libcyaml configuration with a captured log, the bounded YAML file reader and
 * the alias-expansion bound (see cyaml_util.h). */
#include "cyaml_util.h"

#include <yaml.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"

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

/* ---- reading a YAML file ---- */

int lb_yaml_read_file(const char *path, char **text, size_t *len)
{
	FILE *f;
	struct stat st;
	char *t = NULL;
	size_t n = 0, cap = 0;
	int why = LB_YAML_FILE_OK, saved;
	*text = NULL;
	*len = 0;
	if (!(f = fopen(path, "rb")))
		return LB_YAML_FILE_OPEN;
	/* Checked on the open file, before reading: /dev/zero or a fifo would be
	 * read until memory runs out, and a folder reads as an odd error. The
	 * read loop below still stops at the limit, in case the file grows. */
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > LB_YAML_MAX_BYTES) {
		fclose(f);
		return LB_YAML_FILE_NOT_REGULAR;
	}
	for (;;) {
		if (cap - n < 4096) {
			char *p = realloc(t, cap + 65536 + 1);
			if (!p) {
				why = LB_YAML_FILE_OOM;
				break;
			}
			t = p;
			cap += 65536;
		}
		size_t k = fread(t + n, 1, cap - n, f);
		n += k;
		if (k == 0)
			break;
		if (n > LB_YAML_MAX_BYTES) {
			why = LB_YAML_FILE_NOT_REGULAR;
			break;
		}
	}
	if (!why && ferror(f))
		why = LB_YAML_FILE_READ;
	saved = errno;
	fclose(f);
	if (!why) {
		t[n] = '\0';
		if (strlen(t) != n)
			why = LB_YAML_FILE_NUL;
	}
	if (why) {
		free(t);
		errno = saved;
		return why;
	}
	*text = t;
	*len = n;
	return LB_YAML_FILE_OK;
}

const char *lb_yaml_file_strerror(int why)
{
	static const char *const what[] = {
		[LB_YAML_FILE_NOT_REGULAR] = "not a regular file of at most 16 MiB",
		[LB_YAML_FILE_NUL] = "contains a NUL byte",
		[LB_YAML_FILE_OOM] = "out of memory",
	};
	_Static_assert(LB_YAML_MAX_BYTES == 16 << 20, "update the message above");
	if (why == LB_YAML_FILE_OPEN || why == LB_YAML_FILE_READ)
		return strerror(errno);
	if (why > 0 && (size_t)why < sizeof what / sizeof *what && what[why])
		return what[why];
	return "no error";
}

/* ---- alias expansion ---- */

struct anchor {
	char *name;
	uint64_t nodes; /* in its subtree, aliases expanded; valid once closed */
	int open;       /* its collection has not ended yet */
};

struct scan {
	struct anchor *a;
	size_t n_a, cap_a;
	struct frame {
		uint64_t start; /* the node count before this collection */
		size_t anchor;  /* index into a, or SIZE_MAX */
	} *f;
	size_t n_f, cap_f;
};

static void *grow(void *p, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return p;
	size_t c = *cap ? 2 * *cap : 16;
	void *q = realloc(p, c * size);
	if (q)
		*cap = c;
	return q;
}

/* Add anchor name (taken from the event, which is then not to free it). */
static int anchor_add(struct scan *s, yaml_char_t **name, uint64_t nodes, int open)
{
	struct anchor *a = grow(s->a, &s->cap_a, s->n_a, sizeof *a);
	if (!a)
		return LB_ERR_OOM;
	s->a = a;
	a[s->n_a].name = (char *)*name;
	a[s->n_a].nodes = nodes;
	a[s->n_a].open = open;
	*name = NULL;
	s->n_a++;
	return LB_OK;
}

static void anchors_clear(struct scan *s)
{
	for (size_t i = 0; i < s->n_a; i++)
		free(s->a[i].name);
	s->n_a = 0;
}

/* The anchor an alias refers to: the latest of that name, as in libyaml's
 * loader (which refuses duplicates anyway). NULL: undefined, for the loader
 * to report. */
static struct anchor *anchor_find(struct scan *s, const char *name)
{
	for (size_t i = s->n_a; i-- > 0;)
		if (strcmp(s->a[i].name, name) == 0)
			return &s->a[i];
	return NULL;
}

int lb_yaml_check_aliases(const char *text, size_t len, struct lb_yaml_refusal *r)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	struct scan s = {0};
	uint64_t nodes = 0; /* so far, aliases expanded */
	int rc = LB_OK, done = 0;

	memset(r, 0, sizeof *r);
	if (!yaml_parser_initialize(&parser))
		return LB_ERR_OOM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	while (!done && !rc) {
		if (!yaml_parser_parse(&parser, &ev)) {
			/* a syntax error: the loader meets it too and words it better */
			if (parser.error == YAML_MEMORY_ERROR)
				rc = LB_ERR_OOM;
			break;
		}
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		case YAML_DOCUMENT_START_EVENT:
			anchors_clear(&s); /* anchors are per document */
			break;
		case YAML_SCALAR_EVENT:
			nodes++;
			if (ev.data.scalar.anchor)
				rc = anchor_add(&s, &ev.data.scalar.anchor, 1, 0);
			break;
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT: {
			yaml_char_t **name = ev.type == YAML_SEQUENCE_START_EVENT
						     ? &ev.data.sequence_start.anchor
						     : &ev.data.mapping_start.anchor;
			struct frame *f = grow(s.f, &s.cap_f, s.n_f, sizeof *f);
			if (!f) {
				rc = LB_ERR_OOM;
				break;
			}
			s.f = f;
			f[s.n_f].start = nodes;
			f[s.n_f].anchor = *name ? s.n_a : SIZE_MAX;
			nodes++;
			if (*name && (rc = anchor_add(&s, name, 0, 1)))
				break;
			s.n_f++;
			break;
		}
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			if (s.n_f) {
				struct frame *f = &s.f[--s.n_f];
				if (f->anchor != SIZE_MAX) {
					s.a[f->anchor].nodes = nodes - f->start;
					s.a[f->anchor].open = 0;
				}
			}
			break;
		case YAML_ALIAS_EVENT: {
			const char *name = (const char *)ev.data.alias.anchor;
			struct anchor *a = anchor_find(&s, name);
			r->line = (unsigned)ev.start_mark.line + 1;
			r->column = (unsigned)ev.start_mark.column + 1;
			if (a && a->open) {
				snprintf(r->what, sizeof r->what,
					 "YAML alias '*%.40s' is inside the node it names (a cycle); "
					 "write the values out", name);
				rc = LB_ERR_CONFIG;
				break;
			}
			/* An alias adds at most the count so far, and the scan stops at
			 * the first one past the limit: no overflow. */
			nodes += a ? a->nodes : 1;
			if (nodes > LB_YAML_MAX_NODES) {
				snprintf(r->what, sizeof r->what,
					 "YAML aliases expand the document beyond %d nodes (alias "
					 "bomb?); write the values out or use fewer nested aliases",
					 LB_YAML_MAX_NODES);
				rc = LB_ERR_CONFIG;
			}
			break;
		}
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	anchors_clear(&s);
	free(s.a);
	free(s.f);
	yaml_parser_delete(&parser);
	return rc;
}
