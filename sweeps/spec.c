/* SPDX-License-Identifier: MIT
 * Sweep specs (spec.h, docs/sweep-spec.md): the libcyaml schema, loading and
 * every check that needs no trial. As in core/config.c, libyaml parses the
 * text into a tree with line:column, the tree is checked against the schema
 * (unknown keys, types, enum spellings) and the rules, rewritten into the
 * schema's typed form (free-form parts become YAML text) and loaded by
 * libcyaml. The base config and each axis value go through
 * lb_config_load_string, whose messages are mapped back to spec positions. */
#include "spec.h"

#include <cyaml/cyaml.h>
#include <yaml.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cyaml_util.h"
#include "err.h"
#include "util.h"

/* ---- enum spellings (the only list of them) ---- */

static const cyaml_strval_t method_strings[] = {
	{"grid", LB_SWEEP_GRID},
	{"random", LB_SWEEP_RANDOM},
};

static const cyaml_strval_t dist_strings[] = {
	{"uniform", LB_SWEEP_DIST_UNIFORM},
	{"log_uniform", LB_SWEEP_DIST_LOG_UNIFORM},
	{"int_uniform", LB_SWEEP_DIST_INT_UNIFORM},
	{"choice", LB_SWEEP_DIST_CHOICE},
};

static const cyaml_strval_t stage_strings[] = {
	{"train", LB_STAGE_TRAIN},
	{"learn_bits", LB_STAGE_LEARN_BITS},
	{"rewind", LB_STAGE_REWIND},
	{"retrain", LB_STAGE_RETRAIN},
	{"fine_tune", LB_STAGE_FINE_TUNE},
	{"ptq_eval", LB_STAGE_PTQ_EVAL},
};

#define N_OF(a) ((uint32_t)CYAML_ARRAY_LEN(a))


const char *lb_stage_kind_name(enum lb_stage_kind k)
{
	return lb_cyaml_strval_name(stage_strings, N_OF(stage_strings), k);
}

unsigned lb_sweep_rewind_step(const struct lb_sweep_stage *st)
{
	unsigned long k;
	char *end;
	if (st->kind != LB_STAGE_REWIND || !st->rewind_to || strncmp(st->rewind_to, "step:", 5))
		return 0;
	k = strtoul(st->rewind_to + 5, &end, 10);
	return *end || k > UINT32_MAX ? 0 : (unsigned)k; /* validated when loaded */
}

int lb_sweep_stage_index(const struct lb_sweep_spec *sp, const char *name)
{
	for (unsigned s = 0; name && s < sp->n_stages; s++)
		if (!strcmp(sp->stages[s].name, name))
			return (int)s;
	return -1;
}

int lb_sweep_rewind_source(const struct lb_sweep_spec *sp, int in)
{
	while (in >= 0 && sp->stages[in].kind == LB_STAGE_REWIND)
		in = lb_sweep_stage_index(sp, sp->stages[in].input);
	return in;
}

const char *lb_sweep_dist_name(enum lb_sweep_dist d)
{
	return d == LB_SWEEP_DIST_NONE ? "none" : lb_cyaml_strval_name(dist_strings, N_OF(dist_strings), d);
}

const char *lb_sweep_method_name(enum lb_sweep_method m)
{
	return lb_cyaml_strval_name(method_strings, N_OF(method_strings), m);
}

/* ---- the schema: the only place spec keys are named ----
 * It describes the typed form libcyaml loads. Where the YAML a user writes
 * differs (free-form values, `axes` keyed by config key, `zip` as a list of
 * lists, `set` and layer settings as mappings) the checker below says so. */

#define OPT CYAML_FLAG_OPTIONAL
#define STR(key, flags, st, m) CYAML_FIELD_STRING_PTR(key, flags, st, m, 0, CYAML_UNLIMITED)

static const cyaml_schema_value_t string_entry = {
	CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 0, CYAML_UNLIMITED)
};
static const cyaml_schema_value_t u64_entry = {CYAML_VALUE_UINT(CYAML_FLAG_DEFAULT, uint64_t)};

static const cyaml_schema_field_t setting_fields[] = {
	STR("key", CYAML_FLAG_DEFAULT, struct lb_sweep_setting, key),
	STR("value", CYAML_FLAG_DEFAULT, struct lb_sweep_setting, value),
	CYAML_FIELD_END
};
static const cyaml_schema_value_t setting_entry = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct lb_sweep_setting, setting_fields)
};

static const cyaml_schema_field_t axis_fields[] = {
	STR("key", CYAML_FLAG_DEFAULT, struct lb_sweep_axis, key),
	STR("value", OPT, struct lb_sweep_axis, value),
	CYAML_FIELD_SEQUENCE_COUNT("values", OPT | CYAML_FLAG_POINTER, struct lb_sweep_axis, values,
				   n_values, &string_entry, 1, CYAML_UNLIMITED),
	CYAML_FIELD_ENUM("distribution", OPT | CYAML_FLAG_STRICT, struct lb_sweep_axis,
			 distribution, dist_strings, N_OF(dist_strings)),
	CYAML_FIELD_FLOAT("min", OPT, struct lb_sweep_axis, min),
	CYAML_FIELD_FLOAT("max", OPT, struct lb_sweep_axis, max),
	CYAML_FIELD_END
};
static const cyaml_schema_value_t axis_entry = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct lb_sweep_axis, axis_fields)
};

static const cyaml_schema_field_t zip_fields[] = {
	CYAML_FIELD_SEQUENCE_COUNT("axes", CYAML_FLAG_POINTER, struct lb_sweep_zip, axes, n_axes,
				   &string_entry, 1, CYAML_UNLIMITED),
	CYAML_FIELD_END
};
static const cyaml_schema_value_t zip_entry = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct lb_sweep_zip, zip_fields)
};

static const cyaml_schema_field_t layer_fields[] = {
	STR("match", CYAML_FLAG_DEFAULT, struct lb_sweep_layer, match),
	CYAML_FIELD_SEQUENCE_COUNT("settings", OPT | CYAML_FLAG_POINTER, struct lb_sweep_layer,
				   settings, n_settings, &setting_entry, 0, CYAML_UNLIMITED),
	CYAML_FIELD_END
};
static const cyaml_schema_value_t layer_entry = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct lb_sweep_layer, layer_fields)
};

static const cyaml_schema_field_t stage_fields[] = {
	STR("name", CYAML_FLAG_DEFAULT, struct lb_sweep_stage, name),
	CYAML_FIELD_ENUM("kind", CYAML_FLAG_STRICT, struct lb_sweep_stage, kind, stage_strings,
			 N_OF(stage_strings)),
	STR("input", OPT, struct lb_sweep_stage, input),
	CYAML_FIELD_SEQUENCE_COUNT("set", OPT | CYAML_FLAG_POINTER, struct lb_sweep_stage, set,
				   n_set, &setting_entry, 0, CYAML_UNLIMITED),
	STR("rewind_to", OPT, struct lb_sweep_stage, rewind_to),
	STR("bits_from", OPT, struct lb_sweep_stage, bits_from),
	CYAML_FIELD_END
};
static const cyaml_schema_value_t stage_entry = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct lb_sweep_stage, stage_fields)
};

static const cyaml_schema_field_t resources_fields[] = {
	CYAML_FIELD_UINT("ranks_per_trial", OPT, struct lb_sweep_resources, ranks_per_trial),
	CYAML_FIELD_UINT("threads_per_rank", OPT, struct lb_sweep_resources, threads_per_rank),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t checkpoint_fields[] = {
	CYAML_FIELD_UINT("every_epochs", OPT, struct lb_sweep_checkpoint, every_epochs),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t spec_fields[] = {
	STR("name", OPT, struct lb_sweep_spec, name),
	CYAML_FIELD_UINT("seed", OPT, struct lb_sweep_spec, seed),
	STR("base", OPT, struct lb_sweep_spec, base),
	STR("base_file", OPT, struct lb_sweep_spec, base_file),
	CYAML_FIELD_ENUM("method", OPT | CYAML_FLAG_STRICT, struct lb_sweep_spec, method,
			 method_strings, N_OF(method_strings)),
	CYAML_FIELD_UINT("samples", OPT, struct lb_sweep_spec, samples),
	CYAML_FIELD_SEQUENCE_COUNT("axes", OPT | CYAML_FLAG_POINTER, struct lb_sweep_spec, axes,
				   n_axes, &axis_entry, 0, CYAML_UNLIMITED),
	CYAML_FIELD_SEQUENCE_COUNT("zip", OPT | CYAML_FLAG_POINTER, struct lb_sweep_spec, zip, n_zip,
				   &zip_entry, 0, CYAML_UNLIMITED),
	CYAML_FIELD_UINT("repeats", OPT, struct lb_sweep_spec, repeats),
	CYAML_FIELD_SEQUENCE_COUNT("seeds", OPT | CYAML_FLAG_POINTER, struct lb_sweep_spec, seeds,
				   n_seeds, &u64_entry, 1, CYAML_UNLIMITED),
	CYAML_FIELD_SEQUENCE_COUNT("layers", OPT | CYAML_FLAG_POINTER, struct lb_sweep_spec, layers,
				   n_layers, &layer_entry, 0, CYAML_UNLIMITED),
	CYAML_FIELD_MAPPING("resources", OPT, struct lb_sweep_spec, resources, resources_fields),
	CYAML_FIELD_MAPPING("checkpoint", OPT, struct lb_sweep_spec, checkpoint, checkpoint_fields),
	CYAML_FIELD_SEQUENCE_COUNT("stages", OPT | CYAML_FLAG_POINTER, struct lb_sweep_spec, stages,
				   n_stages, &stage_entry, 0, CYAML_UNLIMITED),
	CYAML_FIELD_END
};

static const cyaml_schema_value_t spec_schema = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, struct lb_sweep_spec, spec_fields)
};

/* ---- growing text ---- */

struct buf {
	char *p;
	size_t n, cap;
	int oom;
};

static void buf_add(struct buf *b, const char *s, size_t len)
{
	if (b->oom)
		return;
	if (b->n + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->n + len + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, len);
	b->n += len;
	b->p[b->n] = '\0';
}

static void buf_puts(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(struct buf *b, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (k < 0)
		return;
	if ((size_t)k < sizeof small) {
		buf_add(b, small, (size_t)k);
		return;
	}
	char *big = malloc((size_t)k + 1);
	if (!big) {
		b->oom = 1;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(big, (size_t)k + 1, fmt, ap);
	va_end(ap);
	buf_add(b, big, (size_t)k);
	free(big);
}

/* ---- collected messages ---- */

void lb_sweep_err_add_(struct lb_sweep_errs_ *e, const char *file, struct lb_sweep_pos_ pos,
		       const char *fmt, ...)
{
	struct buf b = {e->text, e->len, e->cap, e->oom};
	char what[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	if (b.n)
		buf_puts(&b, "\n");
	if (pos.line)
		buf_printf(&b, "%s:%u:%u: %s", file, pos.line, pos.col, what);
	else
		buf_printf(&b, "%s: %s", file, what);
	e->text = b.p;
	e->len = b.n;
	e->cap = b.cap;
	e->oom = b.oom;
	e->n++;
}

int lb_sweep_err_finish_(struct lb_sweep_errs_ *e)
{
	int rc = LB_OK;
	if (e->oom)
		rc = lb_error(LB_ERR_OOM, "out of memory");
	else if (e->n)
		rc = lb_error(LB_ERR_CONFIG, "%s", e->text);
	free(e->text);
	memset(e, 0, sizeof *e);
	return rc;
}

/* ---- a YAML tree with positions ---- */

enum snode_kind { S_SCALAR, S_MAP, S_SEQ };

struct snode {
	enum snode_kind kind;
	struct lb_sweep_pos_ pos;  /* the value */
	struct lb_sweep_pos_ kpos; /* its key, in a mapping (else = pos) */
	char *text;                /* scalars */
	int quoted;                /* not a plain scalar */
	char **keys;               /* mappings */
	struct snode **kids;
	size_t n, cap;
};

static void snode_free(struct snode *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n; i++) {
		if (n->keys)
			free(n->keys[i]);
		snode_free(n->kids[i]);
	}
	free(n->keys);
	free(n->kids);
	free(n->text);
	free(n);
}

static int snode_push(struct snode *n, const char *key, struct snode *kid)
{
	if (n->n == n->cap) {
		size_t cap = n->cap ? 2 * n->cap : 4;
		struct snode **k = realloc(n->kids, cap * sizeof *k);
		if (!k)
			return LB_ERR_OOM;
		n->kids = k;
		if (n->kind == S_MAP) {
			char **ks = realloc(n->keys, cap * sizeof *ks);
			if (!ks)
				return LB_ERR_OOM;
			n->keys = ks;
		}
		n->cap = cap;
	}
	if (n->kind == S_MAP && !(n->keys[n->n] = strdup(key)))
		return LB_ERR_OOM;
	n->kids[n->n++] = kid;
	return LB_OK;
}

static struct snode *map_get(const struct snode *m, const char *key)
{
	if (!m || m->kind != S_MAP)
		return NULL;
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->keys[i], key) == 0)
			return m->kids[i];
	return NULL;
}

static struct lb_sweep_pos_ mark_pos(yaml_mark_t m)
{
	struct lb_sweep_pos_ p = {(unsigned)m.line + 1, (unsigned)m.column + 1};
	return p;
}

static int build(yaml_document_t *doc, yaml_node_t *yn, int depth, const char *file,
		 struct lb_sweep_errs_ *errs, struct snode **out)
{
	struct snode *n;
	*out = NULL;
	if (depth > 64) {
		lb_sweep_err_add_(errs, file, mark_pos(yn->start_mark), "nesting too deep");
		return LB_ERR_CONFIG;
	}
	if (!(n = calloc(1, sizeof *n)))
		return LB_ERR_OOM;
	n->pos = n->kpos = mark_pos(yn->start_mark);
	switch (yn->type) {
	case YAML_SCALAR_NODE:
		n->kind = S_SCALAR;
		n->quoted = yn->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
		if (!(n->text = strndup((const char *)yn->data.scalar.value, yn->data.scalar.length)))
			goto oom;
		break;
	case YAML_SEQUENCE_NODE:
		n->kind = S_SEQ;
		for (yaml_node_item_t *it = yn->data.sequence.items.start;
		     it < yn->data.sequence.items.top; it++) {
			struct snode *c;
			int rc = build(doc, yaml_document_get_node(doc, *it), depth + 1, file, errs, &c);
			if (!rc && snode_push(n, NULL, c)) {
				snode_free(c);
				rc = LB_ERR_OOM;
			}
			if (rc) {
				snode_free(n);
				return rc;
			}
		}
		break;
	case YAML_MAPPING_NODE:
		n->kind = S_MAP;
		for (yaml_node_pair_t *pr = yn->data.mapping.pairs.start;
		     pr < yn->data.mapping.pairs.top; pr++) {
			yaml_node_t *k = yaml_document_get_node(doc, pr->key);
			struct snode *c = NULL;
			int rc = LB_OK;
			if (k->type != YAML_SCALAR_NODE) {
				lb_sweep_err_add_(errs, file, mark_pos(k->start_mark),
						  "mapping keys must be plain words");
				rc = LB_ERR_CONFIG;
			} else if (map_get(n, (const char *)k->data.scalar.value)) {
				lb_sweep_err_add_(errs, file, mark_pos(k->start_mark),
						  "duplicate key '%s'", k->data.scalar.value);
				rc = LB_ERR_CONFIG;
			}
			if (!rc)
				rc = build(doc, yaml_document_get_node(doc, pr->value), depth + 1, file,
					   errs, &c);
			if (!rc) {
				c->kpos = mark_pos(k->start_mark);
				if (snode_push(n, (const char *)k->data.scalar.value, c)) {
					snode_free(c);
					rc = LB_ERR_OOM;
				}
			}
			if (rc) {
				snode_free(n);
				return rc;
			}
		}
		break;
	default:
		lb_sweep_err_add_(errs, file, n->pos, "unsupported YAML node");
		free(n);
		return LB_ERR_CONFIG;
	}
	*out = n;
	return LB_OK;
oom:
	snode_free(n);
	return LB_ERR_OOM;
}

/* Parse text; an empty document gives NULL. Syntax errors are added to errs
 * and return LB_ERR_CONFIG. */
static int parse(const char *text, const char *file, struct lb_sweep_errs_ *errs,
		 struct snode **out)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	struct lb_yaml_refusal why;
	int rc = LB_OK;
	*out = NULL;
	/* build copies every alias out: bound that before anything is built */
	rc = lb_yaml_check_aliases(text, strlen(text), &why);
	if (rc == LB_ERR_CONFIG) {
		struct lb_sweep_pos_ p = {why.line, why.column};
		lb_sweep_err_add_(errs, file, p, "%s", why.what);
	}
	if (rc)
		return rc;
	if (!yaml_parser_initialize(&parser))
		return LB_ERR_OOM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
	if (!yaml_parser_load(&parser, &doc)) {
		struct lb_sweep_pos_ p = mark_pos(parser.problem_mark);
		if (parser.error == YAML_MEMORY_ERROR)
			rc = LB_ERR_OOM;
		else if (parser.context)
			lb_sweep_err_add_(errs, file, p, "YAML syntax error: %s (%s at line %zu)",
					  parser.problem, parser.context, parser.context_mark.line + 1);
		else
			lb_sweep_err_add_(errs, file, p, "YAML syntax error: %s",
					  parser.problem ? parser.problem : "unknown");
		yaml_parser_delete(&parser);
		return rc ? rc : LB_ERR_CONFIG;
	}
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (root)
		rc = build(&doc, root, 0, file, errs, out);
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	return rc;
}

static int is_null(const struct snode *n)
{
	if (!n)
		return 1;
	if (n->kind != S_SCALAR || n->quoted)
		return 0;
	const char *t = n->text;
	return !t[0] || !strcmp(t, "~") || !strcmp(t, "null") || !strcmp(t, "Null") ||
	       !strcmp(t, "NULL");
}

/* ---- the tree as one line of flow YAML ---- */

static int plain_safe(const char *t)
{
	if (!t[0] || strpbrk(t, ",[]{}#\n\r\t\"'") || strstr(t, ": ") || t[strlen(t) - 1] == ':' ||
	    t[0] == ' ' || t[strlen(t) - 1] == ' ')
		return 0;
	if (strchr("!&*|>%@`", t[0]))
		return 0;
	if (strchr("-?:", t[0]) && (t[1] == '\0' || t[1] == ' '))
		return 0;
	return 1;
}

static void put_quoted(struct buf *b, const char *t)
{
	buf_puts(b, "\"");
	for (const unsigned char *p = (const unsigned char *)t; *p; p++) {
		if (*p == '"' || *p == '\\')
			buf_printf(b, "\\%c", *p);
		else if (*p == '\n')
			buf_puts(b, "\\n");
		else if (*p == '\t')
			buf_puts(b, "\\t");
		else if (*p < 0x20 || *p == 0x7f)
			buf_printf(b, "\\x%02x", *p);
		else
			buf_add(b, (const char *)p, 1);
	}
	buf_puts(b, "\"");
}

static void put_flow(struct buf *b, const struct snode *n)
{
	switch (n->kind) {
	case S_SCALAR:
		if (!n->quoted && plain_safe(n->text))
			buf_puts(b, n->text);
		else
			put_quoted(b, n->text);
		return;
	case S_SEQ:
		buf_puts(b, "[");
		for (size_t i = 0; i < n->n; i++) {
			if (i)
				buf_puts(b, ", ");
			put_flow(b, n->kids[i]);
		}
		buf_puts(b, "]");
		return;
	case S_MAP:
		buf_puts(b, "{");
		for (size_t i = 0; i < n->n; i++) {
			if (i)
				buf_puts(b, ", ");
			if (plain_safe(n->keys[i]))
				buf_puts(b, n->keys[i]);
			else
				put_quoted(b, n->keys[i]);
			buf_puts(b, ": ");
			put_flow(b, n->kids[i]);
		}
		buf_puts(b, "}");
		return;
	}
}

/* Quoted flow text of a subtree (a string for libcyaml). */
static void put_text_of(struct buf *b, const struct snode *n)
{
	struct buf t = {0};
	put_flow(&t, n);
	if (t.oom)
		b->oom = 1;
	else
		put_quoted(b, t.p ? t.p : "");
	free(t.p);
}

/* ---- the private part of a loaded spec ---- */

struct lb_sweep_priv_ {
	struct snode *root;        /* the spec */
	struct snode *base_root;   /* the base config: in root, or the base_file tree */
	int base_owned;            /* base_root is the base_file tree */
	const char *base_label;    /* "base." or "" (base_file) */
	struct snode **axis;       /* per spec axis: its body in root.axes */
	size_t n_axis;
};

static struct lb_sweep_pos_ pos_none(void)
{
	struct lb_sweep_pos_ p = {0, 0};
	return p;
}

struct lb_sweep_pos_ lb_sweep_axes_pos_(const struct lb_sweep *sw)
{
	struct snode *a = map_get(sw->priv->root, "axes");
	return a ? a->kpos : pos_none();
}

struct lb_sweep_pos_ lb_sweep_axis_key_pos_(const struct lb_sweep *sw, unsigned axis)
{
	return axis < sw->priv->n_axis ? sw->priv->axis[axis]->kpos : pos_none();
}

struct lb_sweep_pos_ lb_sweep_axis_value_pos_(const struct lb_sweep *sw, unsigned axis,
					      int value_index)
{
	if (axis >= sw->priv->n_axis)
		return pos_none();
	const struct snode *body = sw->priv->axis[axis];
	const struct snode *v = map_get(body, "values");
	if (value_index >= 0 && v && v->kind == S_SEQ && (size_t)value_index < v->n)
		return v->kids[value_index]->pos;
	if ((v = map_get(body, "value")) || (v = map_get(body, "distribution")))
		return v->pos;
	return body->pos;
}

struct lb_sweep_pos_ lb_sweep_seeds_pos_(const struct lb_sweep *sw, int seed_index)
{
	const struct snode *s = map_get(sw->priv->root, "seeds");
	if (s && s->kind == S_SEQ && seed_index >= 0 && (size_t)seed_index < s->n)
		return s->kids[seed_index]->pos;
	if (s || (s = map_get(sw->priv->root, "repeats")))
		return s->pos;
	return lb_sweep_axes_pos_(sw);
}

void lb_sweep_stage_set_pos_(const struct lb_sweep *sw, unsigned stage, unsigned k,
			     struct lb_sweep_pos_ *kpos, struct lb_sweep_pos_ *vpos)
{
	const struct snode *st = map_get(sw->priv->root, "stages");
	const struct snode *set = st && stage < st->n ? map_get(st->kids[stage], "set") : NULL;
	*kpos = *vpos = pos_none();
	if (set && k < set->n) {
		*kpos = set->kids[k]->kpos;
		*vpos = set->kids[k]->pos;
	}
}

/* The node at config key path "a.b[2].c" in the base, or its nearest
 * written ancestor; NULL when even the first component is absent. */
static const struct snode *base_find(const struct snode *root, const char *path)
{
	const struct snode *n = root, *last = NULL;
	const char *p = path;
	while (n && *p) {
		char key[128];
		size_t k = strcspn(p, ".[");
		if (k >= sizeof key)
			break;
		if (k) {
			memcpy(key, p, k);
			key[k] = '\0';
			if (!(n = map_get(n, key)))
				break;
			last = n;
			p += k;
		}
		while (n && *p == '[') {
			char *end;
			unsigned long i = strtoul(p + 1, &end, 10);
			if (*end != ']' || n->kind != S_SEQ || i >= n->n) {
				n = NULL;
				break;
			}
			n = n->kids[i];
			last = n;
			p = end + 1;
		}
		if (*p == '.')
			p++;
	}
	return last;
}

/* ---- messages of lb_config_load_string ---- */

/* Split "<origin>: KEY (line N): WHAT" / "<origin>: KEY (from --set): WHAT" /
 * "<origin>: KEY: WHAT" / "--set K=V: WHAT". Returns 2 for a --set message
 * (key = K=V), 1 with a key, 0 when only what is known. */
static int split_message(const char *msg, const char *origin, char *key, size_t key_size,
			 const char **what)
{
	size_t ol = strlen(origin);
	key[0] = '\0';
	*what = msg;
	if (strncmp(msg, "--set ", 6) == 0) {
		const char *colon = strstr(msg + 6, ": ");
		if (!colon)
			return 0;
		snprintf(key, key_size, "%.*s", (int)(colon - msg - 6), msg + 6);
		*what = colon + 2;
		return 2;
	}
	if (strncmp(msg, origin, ol) != 0 || strncmp(msg + ol, ": ", 2) != 0)
		return 0;
	const char *rest = msg + ol + 2;
	*what = rest;
	if (strncmp(rest, "line ", 5) == 0)
		return 0;
	size_t k = strcspn(rest, " :");
	const char *after = rest + k;
	if (strncmp(after, " (line ", 7) == 0 || strncmp(after, " (from --set)", 13) == 0) {
		const char *close = strchr(after, ')');
		if (!close)
			return 0;
		after = close + 1;
	}
	if (strncmp(after, ": ", 2) != 0)
		return 0;
	snprintf(key, key_size, "%.*s", (int)k, rest);
	*what = after + 2;
	return 1;
}

static int key_covers(const char *set, const char *key)
{
	size_t k = strcspn(set, "=");
	return strncmp(set, key, k) == 0 && (key[k] == '\0' || key[k] == '.' || key[k] == '[');
}

void lb_sweep_blame_(const struct lb_sweep *sw, struct lb_sweep_errs_ *e, const char *msg,
		     const char *const *sets, const struct lb_sweep_pos_ *set_key_pos,
		     const struct lb_sweep_pos_ *set_pos, const char *const *set_label, int n_sets,
		     const char *context)
{
	char copy[4096], key[512];
	const char *what;
	char ctx[1024] = "";
	snprintf(copy, sizeof copy, "%s", msg);
	if (context && context[0])
		snprintf(ctx, sizeof ctx, "%s: ", context);
	int kind = split_message(copy, sw->base_origin, key, sizeof key, &what);
	if (kind == 2) {
		for (int i = 0; i < n_sets; i++)
			if (strcmp(sets[i], key) == 0) {
				lb_sweep_err_add_(e, sw->origin, set_key_pos[i],
						  "%s: not a config key: %s", set_label[i], what);
				return;
			}
	}
	if (kind == 1) {
		for (int i = n_sets; i-- > 0;)
			if (key_covers(sets[i], key)) {
				lb_sweep_err_add_(e, sw->origin, set_pos[i], "%s: %s%s", set_label[i],
						  ctx, what);
				return;
			}
		const struct snode *n = base_find(sw->priv->base_root, key);
		struct lb_sweep_pos_ p = n ? n->kpos
				       : sw->priv->base_root ? sw->priv->base_root->pos : pos_none();
		if (!p.line && !sw->priv->base_owned)
			p = lb_sweep_axes_pos_(sw);
		lb_sweep_err_add_(e, sw->priv->base_owned ? sw->base_origin : sw->origin, p,
				  "%s%s: %s%s", sw->priv->base_label, key, ctx, what);
		return;
	}
	lb_sweep_err_add_(e, sw->origin, n_sets ? set_pos[n_sets - 1] : lb_sweep_axes_pos_(sw),
			  "%s%s", ctx, what);
}

/* ---- checking the tree against the schema ---- */

struct chk {
	const char *file;
	struct lb_sweep_errs_ *errs;
};

#define BAD(c, pos, ...) lb_sweep_err_add_((c)->errs, (c)->file, (pos), __VA_ARGS__)

static const char *kind_name(enum snode_kind k)
{
	return k == S_MAP ? "a mapping" : k == S_SEQ ? "a sequence" : "a single value";
}

static int want_kind(struct chk *c, const struct snode *n, enum snode_kind k, const char *label,
		     const char *allowed)
{
	if (n->kind == k)
		return 1;
	BAD(c, n->pos, "%s: expected %s, found %s (allowed: %s)", label, kind_name(k),
	    kind_name(n->kind), allowed);
	return 0;
}

static int parse_uint(const char *t, uint64_t max, uint64_t *v)
{
	char *end;
	errno = 0;
	unsigned long long x = strtoull(t, &end, 0);
	if (!t[0] || t[0] == '-' || t[0] == '+' || *end || errno || x > max)
		return -1;
	*v = x;
	return 0;
}

static int parse_double(const char *t, double *v)
{
	char *end;
	errno = 0;
	*v = strtod(t, &end);
	return !t[0] || *end || errno == ERANGE || !isfinite(*v) ? -1 : 0;
}

/* A scalar against a scalar schema; returns 1 when valid. */
static int check_scalar(struct chk *c, const cyaml_schema_value_t *sv, const struct snode *n,
			const char *label)
{
	char allowed[512];
	if (n->kind != S_SCALAR) {
		BAD(c, n->pos, "%s: expected a single value, found %s", label, kind_name(n->kind));
		return 0;
	}
	switch (sv->type) {
	case CYAML_UINT: {
		uint64_t max = sv->data_size >= 8 ? UINT64_MAX : UINT32_MAX, v;
		if (parse_uint(n->text, max, &v)) {
			BAD(c, n->pos, "%s: '%s' is not an unsigned integer (allowed: 0 to %" PRIu64 ")",
			    label, n->text, max);
			return 0;
		}
		return 1;
	}
	case CYAML_FLOAT: {
		double v;
		if (parse_double(n->text, &v)) {
			BAD(c, n->pos, "%s: '%s' is not a number (allowed: a finite number such as 0.1 or 1e-5)",
			    label, n->text);
			return 0;
		}
		return 1;
	}
	case CYAML_ENUM:
		for (uint32_t i = 0; i < sv->enumeration.count; i++)
			if (strcmp(sv->enumeration.strings[i].str, n->text) == 0)
				return 1;
		lb_cyaml_allowed_enum(sv, allowed, sizeof allowed);
		BAD(c, n->pos, "%s: '%s' is not a known value (allowed: %s)", label, n->text, allowed);
		return 0;
	default:
		return 1;
	}
}

static void check_axis(struct chk *c, const struct snode *body, const char *key);
static void check_mapping(struct chk *c, const cyaml_schema_field_t *fields,
			  const struct snode *n, const char *path);

/* A value against its schema; label is its key path. */
static void check_value(struct chk *c, const cyaml_schema_value_t *sv, const struct snode *n,
			const char *label)
{
	char p[512];
	if (sv->type == CYAML_MAPPING) {
		if (want_kind(c, n, S_MAP, label, "key: value lines"))
			check_mapping(c, sv->mapping.fields, n, label);
	} else if (sv->type == CYAML_SEQUENCE) {
		if (!want_kind(c, n, S_SEQ, label, "[a, b, ...]"))
			return;
		if (n->n < sv->sequence.min)
			BAD(c, n->pos, "%s: empty list (allowed: at least %u entr%s)", label,
			    sv->sequence.min, sv->sequence.min == 1 ? "y" : "ies");
		for (size_t i = 0; i < n->n; i++) {
			snprintf(p, sizeof p, "%s[%zu]", label, i);
			check_value(c, sv->sequence.entry, n->kids[i], p);
		}
	} else {
		check_scalar(c, sv, n, label);
	}
}

/* A mapping of "dotted.key: any value" (stage set, layer settings). */
static void check_settings(struct chk *c, const struct snode *n, const char *label)
{
	if (!want_kind(c, n, S_MAP, label, "dotted.key: value lines"))
		return;
	for (size_t i = 0; i < n->n; i++)
		if (!n->keys[i][0] || strchr(n->keys[i], '='))
			BAD(c, n->kids[i]->kpos, "%s: '%s' is not a dotted key (allowed: e.g. train.epochs)",
			    label, n->keys[i]);
}

static void check_mapping(struct chk *c, const cyaml_schema_field_t *fields,
			  const struct snode *n, const char *path)
{
	for (size_t i = 0; i < n->n; i++) {
		const char *key = n->keys[i];
		const struct snode *v = n->kids[i];
		const cyaml_schema_field_t *f = lb_cyaml_field_find(fields, key);
		char label[512], allowed[512];
		snprintf(label, sizeof label, "%s%s%s", path, path[0] ? "." : "", key);
		if (!f || (fields == layer_fields && strcmp(key, "settings") == 0)) {
			if (fields == layer_fields)
				continue; /* layer settings: any key */
			lb_cyaml_allowed_keys(fields, NULL, allowed, sizeof allowed);
			if (path[0])
				BAD(c, v->kpos, "%s: unknown key '%s' in '%s' (allowed: %s)", label, key,
				    path, allowed);
			else
				BAD(c, v->kpos, "%s: unknown key '%s' at the top level (allowed: %s)",
				    label, key, allowed);
			continue;
		}
		if (fields == spec_fields && strcmp(key, "base") == 0) {
			if (!is_null(v))
				want_kind(c, v, S_MAP, label,
					  "a training config, as in examples/lenet5-fashion.yaml");
		} else if (fields == spec_fields && strcmp(key, "axes") == 0) {
			if (is_null(v) || !want_kind(c, v, S_MAP, label,
						     "dotted.config.key: {values: [...]} lines"))
				continue;
			for (size_t j = 0; j < v->n; j++)
				check_axis(c, v->kids[j], v->keys[j]);
		} else if (fields == spec_fields && strcmp(key, "zip") == 0) {
			if (!want_kind(c, v, S_SEQ, label, "[[axis, axis], ...]"))
				continue;
			for (size_t j = 0; j < v->n; j++) {
				const struct snode *g = v->kids[j];
				char gl[512];
				snprintf(gl, sizeof gl, "zip[%zu]", j);
				if (!want_kind(c, g, S_SEQ, gl, "a list of axis keys, e.g. [optimizer.lr, train.epochs]"))
					continue;
				for (size_t k = 0; k < g->n; k++)
					if (g->kids[k]->kind != S_SCALAR)
						BAD(c, g->kids[k]->pos, "%s[%zu]: expected an axis key, found %s",
						    gl, k, kind_name(g->kids[k]->kind));
			}
		} else if (fields == spec_fields && strcmp(key, "layers") == 0) {
			if (!want_kind(c, v, S_SEQ, label, "[{match: glob, ...}, ...]"))
				continue;
			for (size_t j = 0; j < v->n; j++) {
				const struct snode *l = v->kids[j], *m;
				char ll[512];
				snprintf(ll, sizeof ll, "layers[%zu]", j);
				if (!want_kind(c, l, S_MAP, ll, "{match: glob, <settings>}"))
					continue;
				check_mapping(c, layer_fields, l, ll);
				m = map_get(l, "match");
				if (!m)
					BAD(c, l->pos, "%s: missing key 'match' (allowed: a glob on layer names, e.g. \"conv*\")",
					    ll);
				else if (m->kind != S_SCALAR || is_null(m) || !m->text[0])
					BAD(c, m->pos, "%s.match: empty (allowed: a non-empty glob on layer names, e.g. \"conv*\")",
					    ll);
			}
		} else if (fields == stage_fields && strcmp(key, "set") == 0) {
			check_settings(c, v, label);
		} else {
			check_value(c, &f->value, v, label);
		}
	}
}

static void check_axis(struct chk *c, const struct snode *body, const char *key)
{
	char label[512], allowed[256];
	const char *form = "{value: X}, {values: [...]} or {distribution: uniform|log_uniform|int_uniform|choice, ...}";
	snprintf(label, sizeof label, "axes.%s", key);
	if (!key[0] || strchr(key, '=') || strchr(key, ' '))
		BAD(c, body->kpos, "%s: '%s' is not a dotted config key (allowed: e.g. optimizer.lr)",
		    label, key);
	if (!want_kind(c, body, S_MAP, label, form))
		return;
	const struct snode *value = NULL, *values = NULL, *dist = NULL, *min = NULL, *max = NULL;
	int types_ok = 1;
	for (size_t i = 0; i < body->n; i++) {
		const char *k = body->keys[i];
		const struct snode *v = body->kids[i];
		char l[600];
		snprintf(l, sizeof l, "%s.%s", label, k);
		if (!strcmp(k, "value")) {
			value = v;
		} else if (!strcmp(k, "values")) {
			values = v;
			if (!want_kind(c, v, S_SEQ, l, "[a, b, ...]"))
				types_ok = 0, values = NULL;
			else if (v->n == 0)
				BAD(c, v->pos, "%s: empty list (allowed: at least one value)", l), types_ok = 0;
		} else if (!strcmp(k, "distribution")) {
			dist = v;
			types_ok &= check_scalar(c, &axis_fields[3].value, v, l);
		} else if (!strcmp(k, "min")) {
			min = v;
			types_ok &= check_scalar(c, &axis_fields[4].value, v, l);
		} else if (!strcmp(k, "max")) {
			max = v;
			types_ok &= check_scalar(c, &axis_fields[5].value, v, l);
		} else {
			lb_cyaml_allowed_keys(axis_fields, "key", allowed, sizeof allowed);
			BAD(c, v->kpos, "%s: unknown key '%s' in '%s' (allowed: %s)", l, k, label, allowed);
			types_ok = 0;
		}
	}
	int forms = !!value + !!dist + !!(values && !dist);
	if (forms == 0 && !types_ok)
		return; /* a misspelt key is reported; "found none" would repeat it */
	if (forms != 1) {
		char found[64] = "";
		snprintf(found, sizeof found, "%s%s%s%s%s", value ? "value" : "",
			 value && (values || dist) ? ", " : "", values ? "values" : "",
			 values && dist ? ", " : "", dist ? "distribution" : "");
		BAD(c, body->pos, "%s: give exactly one of value, values, distribution (found %s; allowed: %s)",
		    label, forms ? found : "none", form);
		return;
	}
	if (!types_ok)
		return;
	if (!dist) {
		if (min || max)
			BAD(c, (min ? min : max)->kpos,
			    "%s: min and max are only read with a distribution (allowed: distribution: uniform, log_uniform or int_uniform)",
			    label);
		return;
	}
	int d = -1;
	for (uint32_t i = 0; i < N_OF(dist_strings); i++)
		if (!strcmp(dist_strings[i].str, dist->text))
			d = (int)dist_strings[i].val;
	if (d == LB_SWEEP_DIST_CHOICE) {
		if (!values)
			BAD(c, dist->pos, "%s: choice needs values (allowed: values: [a, b, ...])", label);
		if (min || max)
			BAD(c, (min ? min : max)->kpos,
			    "%s: choice takes values, not min/max (allowed: values: [a, b, ...])", label);
		return;
	}
	if (values)
		BAD(c, values->kpos, "%s: values are only read for distribution choice (allowed: min and max for %s)",
		    label, dist->text);
	if (!min || !max) {
		BAD(c, dist->pos, "%s: %s needs min and max (allowed: min: <number>, max: <number>)",
		    label, dist->text);
		return;
	}
	double lo, hi;
	parse_double(min->text, &lo);
	parse_double(max->text, &hi);
	if (lo > hi)
		BAD(c, min->pos, "%s: min %s > max %s (allowed: min <= max)", label, min->text, max->text);
	if (d == LB_SWEEP_DIST_LOG_UNIFORM && lo <= 0)
		BAD(c, min->pos, "%s: log_uniform needs min > 0, found %s (allowed: 0 < min <= max)",
		    label, min->text);
	if (d == LB_SWEEP_DIST_INT_UNIFORM) {
		if (lo != floor(lo) || hi != floor(hi))
			BAD(c, lo != floor(lo) ? min->pos : max->pos,
			    "%s: int_uniform needs whole numbers, found min %s, max %s (allowed: integers)",
			    label, min->text, max->text);
		else if (hi - lo >= 4294967295.0 || fabs(lo) > 9e15 || fabs(hi) > 9e15)
			BAD(c, max->pos, "%s: the range %s to %s is too wide (allowed: fewer than 2^32 integers)",
			    label, min->text, max->text);
	}
}

/* ---- rules that need more than one key ---- */

static int stage_name_ok(const char *s)
{
	if (!s[0])
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '_' || *s == '-'))
			return 0;
	return 1;
}

/* Index of stage `name` among the first `before` stages, -1 if absent. */
static int stage_index(const struct snode *stages, size_t before, const char *name)
{
	for (size_t i = 0; i < before && i < stages->n; i++) {
		const struct snode *nm = map_get(stages->kids[i], "name");
		if (nm && nm->kind == S_SCALAR && strcmp(nm->text, name) == 0)
			return (int)i;
	}
	return -1;
}

static void stage_names(const struct snode *stages, size_t before, char *buf, size_t size)
{
	size_t len = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < before && i < stages->n && len < size; i++) {
		const struct snode *nm = map_get(stages->kids[i], "name");
		if (nm && nm->kind == S_SCALAR)
			len += (size_t)snprintf(buf + len, size - len, "%s%s", len ? ", " : "", nm->text);
	}
	if (!buf[0])
		snprintf(buf, size, "none");
}

static const char *stage_kind_of(const struct snode *st)
{
	const struct snode *k = map_get(st, "kind");
	return k && k->kind == S_SCALAR ? k->text : "";
}

static void check_stages(struct chk *c, const struct snode *stages)
{
	char names[512], allowed[256];
	for (size_t i = 0; i < stages->n; i++) {
		const struct snode *st = stages->kids[i];
		const struct snode *name, *kind, *input, *rw, *bf;
		char l[64];
		snprintf(l, sizeof l, "stages[%zu]", i);
		if (st->kind != S_MAP)
			continue; /* reported */
		name = map_get(st, "name");
		kind = map_get(st, "kind");
		input = map_get(st, "input");
		rw = map_get(st, "rewind_to");
		bf = map_get(st, "bits_from");
		if (!name)
			BAD(c, st->pos, "%s: missing key 'name' (allowed: a unique name of letters, digits, '_', '-')", l);
		else if (name->kind == S_SCALAR && !stage_name_ok(name->text))
			BAD(c, name->pos, "%s.name: '%s' is not a stage name (allowed: letters, digits, '_' and '-')",
			    l, name->text);
		else if (name->kind == S_SCALAR && stage_index(stages, i, name->text) >= 0)
			BAD(c, name->pos, "%s.name: duplicate stage name '%s' (allowed: unique names)", l,
			    name->text);
		if (!kind) {
			lb_cyaml_allowed_enum(&stage_fields[1].value, allowed, sizeof allowed);
			BAD(c, st->pos, "%s: missing key 'kind' (allowed: %s)", l, allowed);
		}
		if (input && input->kind == S_SCALAR) {
			if (i == 0) {
				BAD(c, input->pos, "%s.input: the first stage has no earlier stage to take '%s' from (allowed: no input)",
				    l, input->text);
			} else if (stage_index(stages, i, input->text) < 0) {
				stage_names(stages, i, names, sizeof names);
				BAD(c, input->pos, "%s.input: '%s' is not an earlier stage%s (allowed: %s)", l,
				    input->text, stage_index(stages, stages->n, input->text) >= 0 ? " (it comes later)" : "",
				    names);
			}
		} else if (!input && i > 0 && !(kind && kind->kind == S_SCALAR &&
						 (!strcmp(kind->text, "train") ||
						  !strcmp(kind->text, "retrain")))) {
			/* train and retrain without input start from a fresh
			 * initialisation (the lottery ticket's re-init control) */
			stage_names(stages, i, names, sizeof names);
			BAD(c, st->pos, "%s: missing key 'input' (allowed: an earlier stage: %s; only "
			    "train and retrain may start fresh)", l, names);
		}
		if (rw && rw->kind == S_SCALAR) {
			uint64_t k;
			if (strcmp(stage_kind_of(st), "rewind") != 0)
				BAD(c, rw->kpos, "%s.rewind_to: only read for kind rewind (allowed: remove it)", l);
			else if (strcmp(rw->text, "init") != 0 &&
				 (strncmp(rw->text, "step:", 5) != 0 ||
				  parse_uint(rw->text + 5, UINT32_MAX, &k) || k == 0))
				BAD(c, rw->pos, "%s.rewind_to: '%s' is not a rewind point (allowed: init, "
				    "step:K with K >= 1)", l, rw->text);
		}
		if (bf && bf->kind == S_SCALAR) {
			int j;
			if (strcmp(stage_kind_of(st), "retrain") != 0 &&
			    strcmp(stage_kind_of(st), "fine_tune") != 0)
				BAD(c, bf->kpos, "%s.bits_from: only read for kinds retrain and fine_tune "
				    "(allowed: remove it)", l);
			else if ((j = stage_index(stages, i, bf->text)) < 0 ||
				 strcmp(stage_kind_of(stages->kids[j]), "learn_bits") != 0) {
				size_t len = 0;
				names[0] = '\0';
				for (size_t s = 0; s < i && len < sizeof names; s++)
					if (!strcmp(stage_kind_of(stages->kids[s]), "learn_bits")) {
						const struct snode *nm = map_get(stages->kids[s], "name");
						if (nm && nm->kind == S_SCALAR)
							len += (size_t)snprintf(names + len, sizeof names - len, "%s%s",
										len ? ", " : "", nm->text);
					}
				BAD(c, bf->pos, "%s.bits_from: '%s' is not an earlier learn_bits stage (allowed: %s)",
				    l, bf->text, names[0] ? names : "none; add a learn_bits stage first");
			}
		} else if (!bf && !strcmp(stage_kind_of(st), "retrain")) {
			BAD(c, st->pos, "%s: retrain needs bits_from (allowed: an earlier learn_bits stage)", l);
		}
	}
}

/* Index of the axis named key in root.axes, -1 if absent. */
static int axis_index(const struct snode *axes, const char *key)
{
	for (size_t i = 0; axes && axes->kind == S_MAP && i < axes->n; i++)
		if (!strcmp(axes->keys[i], key))
			return (int)i;
	return -1;
}

static void axis_list(const struct snode *axes, char *buf, size_t size)
{
	size_t len = 0;
	buf[0] = '\0';
	for (size_t i = 0; axes && axes->kind == S_MAP && i < axes->n && len < size; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s%s", len ? ", " : "", axes->keys[i]);
	if (!buf[0])
		snprintf(buf, size, "none");
}

static void check_rules(struct chk *c, const struct snode *root)
{
	const struct snode *axes = map_get(root, "axes"), *zip = map_get(root, "zip");
	const struct snode *method = map_get(root, "method"), *samples = map_get(root, "samples");
	const struct snode *repeats = map_get(root, "repeats"), *seeds = map_get(root, "seeds");
	const struct snode *stages = map_get(root, "stages"), *n;
	int random = method && method->kind == S_SCALAR && !strcmp(method->text, "random");
	char names[1024];

	if ((n = map_get(root, "name")) && n->kind == S_SCALAR && (!n->text[0] || strchr(n->text, '/')))
		BAD(c, n->pos, "name: '%s' is not a sweep name (allowed: a non-empty name without '/')",
		    n->text);
	if (map_get(root, "base") && map_get(root, "base_file"))
		BAD(c, map_get(root, "base_file")->kpos,
		    "base_file: give base or base_file, not both (allowed: one of them)");
	if ((n = map_get(root, "base_file")) && n->kind == S_SCALAR && !n->text[0])
		BAD(c, n->pos, "base_file: empty (allowed: a config file path relative to the spec)");
	if (random && !samples)
		BAD(c, method->pos, "method: random needs samples (allowed: samples: N, N >= 1)");
	if (samples && samples->kind == S_SCALAR) {
		if (!random)
			BAD(c, samples->kpos, "samples: only read for method random (allowed: method: random, or no samples)");
		else if (!strcmp(samples->text, "0"))
			BAD(c, samples->pos, "samples: 0 is out of range (allowed: >= 1)");
	}
	if (repeats && seeds)
		BAD(c, seeds->kpos, "seeds: give repeats or seeds, not both (allowed: one of them)");
	if (repeats && repeats->kind == S_SCALAR && !strcmp(repeats->text, "0"))
		BAD(c, repeats->pos, "repeats: 0 is out of range (allowed: >= 1)");
	if (seeds && seeds->kind == S_SEQ)
		for (size_t i = 0; i < seeds->n; i++)
			for (size_t j = 0; j < i; j++)
				if (seeds->kids[i]->kind == S_SCALAR && seeds->kids[j]->kind == S_SCALAR &&
				    !strcmp(seeds->kids[i]->text, seeds->kids[j]->text))
					BAD(c, seeds->kids[i]->pos,
					    "seeds[%zu]: %s is also seeds[%zu] (allowed: distinct seeds)", i,
					    seeds->kids[i]->text, j);
	if ((n = map_get(map_get(root, "resources"), "ranks_per_trial")) && n->kind == S_SCALAR &&
	    !strcmp(n->text, "0"))
		BAD(c, n->pos, "resources.ranks_per_trial: 0 is out of range (allowed: >= 1)");
	if ((n = map_get(map_get(root, "resources"), "threads_per_rank")) && n->kind == S_SCALAR &&
	    !strcmp(n->text, "0"))
		BAD(c, n->pos, "resources.threads_per_rank: 0 is out of range (allowed: >= 1)");
	if ((n = map_get(map_get(root, "checkpoint"), "every_epochs")) && n->kind == S_SCALAR &&
	    !strcmp(n->text, "0"))
		BAD(c, n->pos, "checkpoint.every_epochs: 0 is out of range (allowed: >= 1)");
	if (stages && stages->kind == S_SEQ)
		check_stages(c, stages);

	/* axes: grid takes no distributions; seed axes clash with replicates;
	 * stage axes name a stage */
	for (size_t i = 0; axes && axes->kind == S_MAP && i < axes->n; i++) {
		const char *key = axes->keys[i];
		const struct snode *body = axes->kids[i], *d = map_get(body, "distribution");
		if (d && !random)
			BAD(c, d->kpos, "axes.%s: a distribution needs method: random (allowed in a grid: value, values)",
			    key);
		if (!strcmp(key, "seed") && (repeats || seeds))
			BAD(c, body->kpos, "axes.seed: the seed is set by %s (allowed: an axis on seed, or repeats/seeds)",
			    repeats ? "repeats" : "seeds");
		if (!strncmp(key, "stages.", 7)) {
			const char *s = key + 7, *dot = strchr(s, '.');
			char st[128];
			snprintf(st, sizeof st, "%.*s", dot ? (int)(dot - s) : (int)strlen(s), s);
			if (!dot || !dot[1]) {
				BAD(c, body->kpos, "axes.%s: a stage axis is stages.<stage>.<dotted key> (allowed: e.g. stages.%s.optimizer.lr)",
				    key, st[0] ? st : "retrain");
			} else if (!stages || stages->kind != S_SEQ || stage_index(stages, stages->n, st) < 0) {
				stage_names(stages && stages->kind == S_SEQ ? stages : NULL, stages ? stages->n : 0,
					    names, sizeof names);
				BAD(c, body->kpos, "axes.%s: '%s' is not a stage (allowed: %s)", key, st, names);
			}
		}
	}

	/* zip groups */
	if (!zip || zip->kind != S_SEQ)
		return;
	for (size_t g = 0; g < zip->n; g++) {
		const struct snode *grp = zip->kids[g];
		size_t len0 = 0;
		const char *first = NULL;
		if (grp->kind != S_SEQ)
			continue;
		if (grp->n < 2)
			BAD(c, grp->pos, "zip[%zu]: a group needs at least 2 axes (allowed: [axis, axis, ...])", g);
		for (size_t k = 0; k < grp->n; k++) {
			const struct snode *a = grp->kids[k];
			int ai;
			if (a->kind != S_SCALAR)
				continue;
			ai = axis_index(axes, a->text);
			if (ai < 0) {
				axis_list(axes, names, sizeof names);
				BAD(c, a->pos, "zip[%zu][%zu]: '%s' is not an axis (allowed: %s)", g, k, a->text,
				    names);
				continue;
			}
			for (size_t h = 0; h <= g; h++) {
				const struct snode *o = zip->kids[h];
				size_t end = h == g ? k : o->kind == S_SEQ ? o->n : 0;
				for (size_t m = 0; m < end; m++)
					if (o->kids[m]->kind == S_SCALAR && !strcmp(o->kids[m]->text, a->text)) {
						BAD(c, a->pos, "zip[%zu][%zu]: axis '%s' is already in zip[%zu] (allowed: each axis in one group)",
						    g, k, a->text, h);
						h = g + 1;
						break;
					}
			}
			const struct snode *body = axes->kids[ai], *vals = map_get(body, "values");
			if (!vals || map_get(body, "distribution") || vals->kind != S_SEQ) {
				BAD(c, a->pos, "zip[%zu][%zu]: axis '%s' has no values list (allowed: axes with values: [...])",
				    g, k, a->text);
				continue;
			}
			if (!first) {
				first = a->text;
				len0 = vals->n;
			} else if (vals->n != len0) {
				BAD(c, a->pos, "zip[%zu][%zu]: axis '%s' has %zu values but '%s' has %zu (allowed: equal lengths)",
				    g, k, a->text, vals->n, first, len0);
			}
		}
	}
}

/* ---- the tree in libcyaml's typed form ---- */

static void put_settings(struct buf *b, const struct snode *m)
{
	buf_puts(b, "[");
	for (size_t i = 0; m && i < m->n; i++) {
		buf_puts(b, i ? ", {key: " : "{key: ");
		put_quoted(b, m->keys[i]);
		buf_puts(b, ", value: ");
		put_text_of(b, m->kids[i]);
		buf_puts(b, "}");
	}
	buf_puts(b, "]");
}

static void put_typed(struct buf *b, const struct snode *root, const char *default_name)
{
	const struct snode *n;
	buf_puts(b, "{name: ");
	n = map_get(root, "name");
	put_quoted(b, n ? n->text : default_name);
	buf_printf(b, ", seed: %s", (n = map_get(root, "seed")) ? n->text : "1");
	if ((n = map_get(root, "base")) && !is_null(n)) {
		buf_puts(b, ", base: ");
		put_text_of(b, n);
	}
	if ((n = map_get(root, "base_file"))) {
		buf_puts(b, ", base_file: ");
		put_quoted(b, n->text);
	}
	buf_printf(b, ", method: %s", (n = map_get(root, "method")) ? n->text : "grid");
	if ((n = map_get(root, "samples")))
		buf_printf(b, ", samples: %s", n->text);
	if ((n = map_get(root, "axes")) && n->kind == S_MAP) {
		buf_puts(b, ", axes: [");
		for (size_t i = 0; i < n->n; i++) {
			const struct snode *a = n->kids[i], *v;
			buf_puts(b, i ? ", {key: " : "{key: ");
			put_quoted(b, n->keys[i]);
			if ((v = map_get(a, "value"))) {
				buf_puts(b, ", value: ");
				put_text_of(b, v);
			}
			if ((v = map_get(a, "values"))) {
				buf_puts(b, ", values: [");
				for (size_t j = 0; j < v->n; j++) {
					if (j)
						buf_puts(b, ", ");
					put_text_of(b, v->kids[j]);
				}
				buf_puts(b, "]");
			}
			if ((v = map_get(a, "distribution")))
				buf_printf(b, ", distribution: %s", v->text);
			if ((v = map_get(a, "min")))
				buf_printf(b, ", min: %s", v->text);
			if ((v = map_get(a, "max")))
				buf_printf(b, ", max: %s", v->text);
			buf_puts(b, "}");
		}
		buf_puts(b, "]");
	}
	if ((n = map_get(root, "zip"))) {
		buf_puts(b, ", zip: [");
		for (size_t i = 0; i < n->n; i++) {
			buf_puts(b, i ? ", {axes: [" : "{axes: [");
			for (size_t j = 0; j < n->kids[i]->n; j++) {
				if (j)
					buf_puts(b, ", ");
				put_quoted(b, n->kids[i]->kids[j]->text);
			}
			buf_puts(b, "]}");
		}
		buf_puts(b, "]");
	}
	if ((n = map_get(root, "repeats")))
		buf_printf(b, ", repeats: %s", n->text);
	if ((n = map_get(root, "seeds"))) {
		buf_puts(b, ", seeds: ");
		put_flow(b, n);
	}
	if ((n = map_get(root, "layers"))) {
		buf_puts(b, ", layers: [");
		for (size_t i = 0; i < n->n; i++) {
			const struct snode *l = n->kids[i];
			buf_puts(b, i ? ", {match: " : "{match: ");
			put_quoted(b, map_get(l, "match")->text);
			buf_puts(b, ", settings: [");
			for (size_t j = 0, k = 0; j < l->n; j++) {
				if (!strcmp(l->keys[j], "match"))
					continue;
				buf_puts(b, k++ ? ", {key: " : "{key: ");
				put_quoted(b, l->keys[j]);
				buf_puts(b, ", value: ");
				put_text_of(b, l->kids[j]);
				buf_puts(b, "}");
			}
			buf_puts(b, "]}");
		}
		buf_puts(b, "]");
	}
	const struct snode *res = map_get(root, "resources");
	const struct snode *rk = map_get(res, "ranks_per_trial"), *th = map_get(res, "threads_per_rank");
	buf_printf(b, ", resources: {ranks_per_trial: %s, threads_per_rank: %s}",
		   rk ? rk->text : "1", th ? th->text : "1");
	buf_printf(b, ", checkpoint: {every_epochs: %s}",
		   (n = map_get(map_get(root, "checkpoint"), "every_epochs")) ? n->text : "0");
	if ((n = map_get(root, "stages"))) {
		buf_puts(b, ", stages: [");
		for (size_t i = 0; i < n->n; i++) {
			const struct snode *st = n->kids[i], *v;
			buf_puts(b, i ? ", {name: " : "{name: ");
			put_quoted(b, map_get(st, "name")->text);
			buf_printf(b, ", kind: %s", map_get(st, "kind")->text);
			if ((v = map_get(st, "input"))) {
				buf_puts(b, ", input: ");
				put_quoted(b, v->text);
			}
			if ((v = map_get(st, "rewind_to")) || !strcmp(stage_kind_of(st), "rewind")) {
				buf_puts(b, ", rewind_to: ");
				put_quoted(b, v ? v->text : "init");
			}
			if ((v = map_get(st, "bits_from"))) {
				buf_puts(b, ", bits_from: ");
				put_quoted(b, v->text);
			}
			buf_puts(b, ", set: ");
			put_settings(b, map_get(st, "set"));
			buf_puts(b, "}");
		}
		buf_puts(b, "]");
	}
	buf_puts(b, "}\n");
}

/* ---- libcyaml ---- */


/* ---- checks through the config loader ---- */

/* Load the base with overrides; on failure blame and return nonzero. */
static int try_config(const struct lb_sweep *sw, struct lb_sweep_errs_ *e, const char **sets,
		      const struct lb_sweep_pos_ *kpos, const struct lb_sweep_pos_ *vpos,
		      const char **labels, int n, const char *context)
{
	struct lb_config *cfg = NULL;
	int rc = lb_config_load_string(sw->base_yaml, sw->base_origin, sets, n, &cfg);
	lb_config_free(cfg);
	if (rc == LB_ERR_OOM) {
		e->oom = 1;
		return rc;
	}
	if (rc) {
		lb_sweep_blame_(sw, e, lb_error_message(), sets, kpos, vpos, labels, n, context);
		return rc == LB_ERR_CONFIG && strncmp(lb_error_message(), "--set ", 6) == 0 ? 2 : 1;
	}
	return LB_OK;
}

/* Room for a stage's settings plus one axis override. */
struct sets {
	const char **s, **label;
	char **own;
	struct lb_sweep_pos_ *kpos, *vpos;
	int n, cap;
};

static int sets_push(struct sets *s, char *text, char *label, struct lb_sweep_pos_ kpos,
		     struct lb_sweep_pos_ vpos)
{
	if (!text || !label) {
		free(text);
		free(label);
		return LB_ERR_OOM;
	}
	if (s->n == s->cap) {
		int cap = s->cap ? 2 * s->cap : 8;
		const char **a = realloc(s->s, (size_t)cap * sizeof *a);
		if (a)
			s->s = a;
		const char **l = realloc(s->label, (size_t)cap * sizeof *l);
		if (l)
			s->label = l;
		char **o = realloc(s->own, 2 * (size_t)cap * sizeof *o);
		if (o)
			s->own = o;
		struct lb_sweep_pos_ *k = realloc(s->kpos, (size_t)cap * sizeof *k);
		if (k)
			s->kpos = k;
		struct lb_sweep_pos_ *v = realloc(s->vpos, (size_t)cap * sizeof *v);
		if (v)
			s->vpos = v;
		if (!a || !l || !o || !k || !v) {
			free(text);
			free(label);
			return LB_ERR_OOM;
		}
		s->cap = cap;
	}
	s->s[s->n] = text;
	s->label[s->n] = label;
	s->own[2 * s->n] = text;
	s->own[2 * s->n + 1] = label;
	s->kpos[s->n] = kpos;
	s->vpos[s->n] = vpos;
	s->n++;
	return LB_OK;
}

static void sets_pop_to(struct sets *s, int n)
{
	while (s->n > n) {
		s->n--;
		free(s->own[2 * s->n]);
		free(s->own[2 * s->n + 1]);
	}
}

static void sets_release(struct sets *s)
{
	sets_pop_to(s, 0);
	free(s->s);
	free(s->label);
	free(s->own);
	free(s->kpos);
	free(s->vpos);
}

static char *join3(const char *a, const char *b, const char *c)
{
	size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
	char *s = malloc(n);
	if (s)
		snprintf(s, n, "%s%s%s", a, b, c);
	return s;
}

/* Push the settings of stage st (index i in the spec and the tree). */
static int push_stage_sets(const struct lb_sweep *sw, struct sets *s, unsigned i)
{
	const struct lb_sweep_stage *st = &sw->spec->stages[i];
	const struct snode *set = map_get(map_get(sw->priv->root, "stages")->kids[i], "set");
	char prefix[200];
	snprintf(prefix, sizeof prefix, "stages.%s.set.", st->name);
	for (unsigned k = 0; k < st->n_set; k++) {
		int rc = sets_push(s, join3(st->set[k].key, "=", st->set[k].value),
				   join3(prefix, st->set[k].key, ""), set->kids[k]->kpos,
				   set->kids[k]->pos);
		if (rc)
			return rc;
	}
	return LB_OK;
}

static void format_bound(const struct lb_sweep_axis *a, double v, char *buf, size_t size)
{
	if (a->distribution == LB_SWEEP_DIST_INT_UNIFORM)
		snprintf(buf, size, "%.0f", v);
	else
		snprintf(buf, size, "%g", v);
}

static int check_with_configs(struct lb_sweep *sw, struct lb_sweep_errs_ *e)
{
	const struct lb_sweep_spec *sp = sw->spec;
	struct sets s = {0};
	int rc;

	if (try_config(sw, e, NULL, NULL, NULL, NULL, 0, NULL))
		return e->oom ? LB_ERR_OOM : LB_OK; /* a bad base: axis checks would repeat it */
	unsigned bad_stages = 0;
	for (unsigned i = 0; i < sp->n_stages; i++) {
		char ctx[200];
		if ((rc = push_stage_sets(sw, &s, i)))
			goto out;
		snprintf(ctx, sizeof ctx, "stage %s", sp->stages[i].name);
		bad_stages += try_config(sw, e, s.s, s.kpos, s.vpos, s.label, s.n, ctx) != 0;
		sets_pop_to(&s, 0);
		if (e->oom)
			goto out;
	}
	if (bad_stages) {
		rc = LB_OK; /* stage axes would repeat the stage's error */
		goto out;
	}
	for (unsigned a = 0; a < sp->n_axes; a++) {
		const struct lb_sweep_axis *ax = &sp->axes[a];
		const char *key = ax->key;
		char label[600];
		snprintf(label, sizeof label, "axes.%s", ax->key);
		if (!strncmp(key, "stages.", 7)) {
			const char *st = key + 7, *dot = strchr(st, '.');
			for (unsigned i = 0; i < sp->n_stages; i++)
				if (strlen(sp->stages[i].name) == (size_t)(dot - st) &&
				    !strncmp(sp->stages[i].name, st, (size_t)(dot - st)) &&
				    (rc = push_stage_sets(sw, &s, i)))
					goto out;
			key = dot + 1;
		}
		int base_n = s.n;
		unsigned n_try = ax->value ? 1 : ax->n_values ? ax->n_values : 2;
		/* a zip group's values are only meaningful together: its first
		 * member tries each point with every member set, the others skip */
		const struct lb_sweep_zip *zg = NULL;
		int zip_first = 0;
		for (unsigned z = 0; z < sp->n_zip && !zg; z++)
			for (unsigned k = 0; k < sp->zip[z].n_axes; k++)
				if (!strcmp(sp->zip[z].axes[k], ax->key)) {
					zg = &sp->zip[z];
					zip_first = k == 0;
				}
		if (zg && !zip_first) {
			sets_pop_to(&s, 0);
			continue;
		}
		for (unsigned v = 0; v < n_try; v++) {
			char bound[64], ctx[512];
			const char *text;
			struct lb_sweep_pos_ vpos;
			const struct snode *body = sw->priv->axis[a];
			if (ax->value) {
				text = ax->value;
				vpos = map_get(body, "value")->pos;
				snprintf(ctx, sizeof ctx, "value %s", text);
			} else if (ax->n_values) {
				text = ax->values[v];
				vpos = map_get(body, "values")->kids[v]->pos;
				snprintf(ctx, sizeof ctx, "values[%u] = %s", v, text);
			} else {
				format_bound(ax, v ? ax->max : ax->min, bound, sizeof bound);
				text = bound;
				vpos = map_get(body, v ? "max" : "min")->pos;
				snprintf(ctx, sizeof ctx, "%s %s", v ? "max" : "min", text);
			}
			if ((rc = sets_push(&s, join3(key, "=", text), strdup(label), body->kpos, vpos)))
				goto out;
			/* a zip group's row is named with all its values */
			size_t len = zg && ax->n_values
					     ? (size_t)snprintf(ctx, sizeof ctx, "zip row %u {%s: %s", v,
								ax->key, text)
					     : 0;
			for (unsigned k = 1; zg && k < zg->n_axes; k++) {
				const struct lb_sweep_axis *o = NULL;
				unsigned oi = 0;
				for (unsigned b = 0; b < sp->n_axes; b++)
					if (!strcmp(sp->axes[b].key, zg->axes[k])) {
						o = &sp->axes[b];
						oi = b;
					}
				if (!o || v >= o->n_values || !strncmp(o->key, "stages.", 7))
					continue;
				const struct snode *ob = sw->priv->axis[oi];
				char olabel[600];
				snprintf(olabel, sizeof olabel, "axes.%s", o->key);
				if ((rc = sets_push(&s, join3(o->key, "=", o->values[v]), strdup(olabel),
						    ob->kpos, map_get(ob, "values")->kids[v]->pos)))
					goto out;
				if (len && len < sizeof ctx)
					len += (size_t)snprintf(ctx + len, sizeof ctx - len, ", %s: %s",
								o->key, o->values[v]);
			}
			if (len && len < sizeof ctx)
				snprintf(ctx + len, sizeof ctx - len, "}");
			int bad = try_config(sw, e, s.s, s.kpos, s.vpos, s.label, s.n, ctx);
			sets_pop_to(&s, base_n);
			if (e->oom || bad == 2)
				break; /* a key error: once per axis */
		}
		sets_pop_to(&s, 0);
		if (e->oom)
			break;
	}
	rc = e->oom ? LB_ERR_OOM : LB_OK;
out:
	sets_release(&s);
	return rc;
}

/* ---- load ---- */

void lb_sweep_free(struct lb_sweep *sw)
{
	cyaml_config_t cc;
	if (!sw)
		return;
	if (sw->spec) {
		lb_cyaml_config(&cc, NULL, CYAML_CFG_DEFAULT);
		cyaml_free(&cc, &spec_schema, sw->spec, 0);
	}
	if (sw->priv) {
		if (sw->priv->base_owned)
			snode_free(sw->priv->base_root);
		snode_free(sw->priv->root);
		free(sw->priv->axis);
		free(sw->priv);
	}
	free(sw->origin);
	free(sw->text);
	free(sw->base_yaml);
	free(sw->base_origin);
	free(sw);
}

/* The spec's file name without folder and .yaml/.yml. */
static void default_name(const char *origin, char *buf, size_t size)
{
	const char *slash = strrchr(origin, '/');
	const char *s = slash ? slash + 1 : origin;
	size_t n = strlen(s);
	if (n > 5 && !strcmp(s + n - 5, ".yaml"))
		n -= 5;
	else if (n > 4 && !strcmp(s + n - 4, ".yml"))
		n -= 4;
	snprintf(buf, size, "%.*s", (int)n, s);
	if (!buf[0] || strchr(buf, '/'))
		snprintf(buf, size, "sweep");
}

/* Resolve base / base_file into sw->base_yaml, base_origin and base_root. */
static int load_base(struct lb_sweep *sw, const char *dir, struct lb_sweep_errs_ *e)
{
	struct lb_sweep_priv_ *pv = sw->priv;
	const struct snode *bf = map_get(pv->root, "base_file");
	if (!sw->spec->base_file) {
		struct snode *b = map_get(pv->root, "base");
		struct buf t = {0};
		pv->base_root = is_null(b) ? NULL : b;
		pv->base_label = "base.";
		if (pv->base_root)
			put_flow(&t, pv->base_root);
		else
			buf_puts(&t, "{}");
		if (t.oom) {
			free(t.p);
			return LB_ERR_OOM;
		}
		sw->base_yaml = t.p;
		return (sw->base_origin = strdup(sw->origin)) ? LB_OK : LB_ERR_OOM;
	}
	const char *file = sw->spec->base_file;
	int rc;
	if (file[0] == '/' || !dir || !dir[0])
		sw->base_origin = strdup(file);
	else
		sw->base_origin = join3(dir, "/", file);
	if (!sw->base_origin)
		return LB_ERR_OOM;
	pv->base_label = "";
	pv->base_owned = 1;
	/* the same guard as lb_config_load: no folder, device or endless file */
	size_t len;
	rc = lb_yaml_read_file(sw->base_origin, &sw->base_yaml, &len);
	if (rc == LB_YAML_FILE_OOM)
		return LB_ERR_OOM;
	if (rc) {
		lb_sweep_err_add_(e, sw->origin, bf->pos,
				  "base_file: cannot read '%s': %s (allowed: a config file, relative to the spec's folder)",
				  sw->base_origin, lb_yaml_file_strerror(rc));
		return LB_ERR_CONFIG;
	}
	rc = parse(sw->base_yaml, sw->base_origin, e, &pv->base_root);
	if (rc)
		return rc;
	if (pv->base_root && pv->base_root->kind != S_MAP && !is_null(pv->base_root)) {
		lb_sweep_err_add_(e, sw->base_origin, pv->base_root->pos,
				  "the config must be a mapping of keys (allowed: name, seed, model, data, train, optimizer, schedule)");
		return LB_ERR_CONFIG;
	}
	return LB_OK;
}

int lb_sweep_load_string(const char *yaml, const char *origin, const char *dir,
			 struct lb_sweep **out)
{
	struct lb_sweep_errs_ e = {0};
	struct lb_sweep *sw = NULL;
	struct chk c;
	struct buf typed = {0};
	struct lb_cylog log = {.n = 0};
	cyaml_config_t cc;
	char name[256];
	int rc;

	*out = NULL;
	if (!yaml)
		yaml = "";
	if (!origin)
		origin = "<spec>";
	if (!(sw = calloc(1, sizeof *sw)) || !(sw->priv = calloc(1, sizeof *sw->priv)) ||
	    !(sw->origin = strdup(origin)) || !(sw->text = strdup(yaml))) {
		rc = LB_ERR_OOM;
		goto out;
	}
	c.file = sw->origin;
	c.errs = &e;
	if ((rc = parse(yaml, origin, &e, &sw->priv->root)))
		goto out;
	struct snode *root = sw->priv->root;
	if (!root || is_null(root)) {
		snode_free(root);
		if (!(root = sw->priv->root = calloc(1, sizeof *root))) {
			rc = LB_ERR_OOM;
			goto out;
		}
		root->kind = S_MAP;
		root->pos.line = root->pos.col = 1;
		root->kpos = root->pos;
	}
	if (root->kind != S_MAP) {
		char allowed[512];
		lb_cyaml_allowed_keys(spec_fields, NULL, allowed, sizeof allowed);
		BAD(&c, root->pos, "a sweep spec is a mapping of keys (allowed: %s)", allowed);
		rc = LB_ERR_CONFIG;
		goto out;
	}
	check_mapping(&c, spec_fields, root, "");
	check_rules(&c, root); /* written to cope with values of the wrong type */
	if (e.n || e.oom)
		goto out;
	if (e.n || e.oom)
		goto out;

	/* the typed form, loaded by libcyaml */
	default_name(origin, name, sizeof name);
	put_typed(&typed, root, name);
	if (typed.oom) {
		rc = LB_ERR_OOM;
		goto out;
	}
	lb_cyaml_config(&cc, &log, CYAML_CFG_DEFAULT);
	cyaml_err_t err = cyaml_load_data((const uint8_t *)typed.p, typed.n, &cc, &spec_schema,
					  (cyaml_data_t **)&sw->spec, NULL);
	if (err == CYAML_ERR_OOM) {
		rc = LB_ERR_OOM;
		goto out;
	}
	if (err != CYAML_OK) {
		log.text[log.n] = '\0';
		lb_sweep_err_add_(&e, origin, root->pos, "internal error loading the spec: %s: %s",
				  cyaml_strerror(err), log.text);
		goto out;
	}
	struct snode *axes = map_get(root, "axes");
	if (sw->spec->n_axes) {
		if (!(sw->priv->axis = calloc(sw->spec->n_axes, sizeof *sw->priv->axis))) {
			rc = LB_ERR_OOM;
			goto out;
		}
		for (unsigned i = 0; i < sw->spec->n_axes; i++)
			sw->priv->axis[i] = axes->kids[i];
		sw->priv->n_axis = sw->spec->n_axes;
	}
	if ((rc = load_base(sw, dir, &e))) {
		if (rc == LB_ERR_CONFIG)
			rc = LB_OK;
		goto out;
	}
	if ((rc = check_with_configs(sw, &e)))
		goto out;
	if (lb_sweep_count(sw) == 0)
		lb_sweep_err_add_(&e, origin, axes ? axes->kpos : root->pos,
				  "axes: the sweep has more than %u trials (allowed: up to %u)",
				  LB_SWEEP_MAX_TRIALS, LB_SWEEP_MAX_TRIALS);
out:
	free(typed.p);
	if (rc == LB_ERR_OOM || e.oom) {
		free(e.text);
		lb_sweep_free(sw);
		return lb_error(LB_ERR_OOM, "out of memory");
	}
	if (e.n)
		rc = lb_sweep_err_finish_(&e);
	else
		free(e.text);
	if (rc) {
		lb_sweep_free(sw);
		return rc;
	}
	*out = sw;
	return LB_OK;
}

int lb_sweep_load(const char *path, struct lb_sweep **out)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	int rc;
	char *text;
	size_t len;
	*out = NULL;
	rc = lb_yaml_read_file(path, &text, &len);
	if (rc == LB_YAML_FILE_OOM)
		return lb_error(LB_ERR_OOM, "out of memory");
	if (rc == LB_YAML_FILE_OPEN)
		return lb_error(LB_ERR_IO, "cannot open sweep spec '%s': %s", path, strerror(errno));
	if (rc)
		return lb_error(rc == LB_YAML_FILE_READ ? LB_ERR_IO : LB_ERR_CONFIG,
				"cannot read sweep spec '%s': %s (allowed: a YAML file)", path,
				lb_yaml_file_strerror(rc));
	snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 0, path);
	if (slash && slash == path)
		snprintf(dir, sizeof dir, "/");
	rc = lb_sweep_load_string(text, path, slash ? dir : NULL, out);
	free(text);
	return rc;
}
