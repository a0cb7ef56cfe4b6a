/* SPDX-License-Identifier: MIT
 * `lowbit validate SPEC.yaml` and `lowbit plan SPEC.yaml [--json|--tsv]`:
 * load a sweep spec, expand it (sweeps/spec.h) and report every problem
 * with file:line:column, or list the trials. Nothing is trained or written;
 * both run on one process (rank 0 prints). */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "sweeps/spec.h"

static const char validate_usage[] =
	"usage: lowbit validate SPEC.yaml\n"
	"\n"
	"Check a sweep spec without running it: the schema, the rules, and every\n"
	"trial's config. Each problem is printed as FILE:LINE:COLUMN: KEY: WHAT\n"
	"(allowed: ...). Prints 'SPEC.yaml: ok (N trials)' when there is none.\n"
	"\n"
	"  -h, --help   this text\n"
	"\n"
	"Keys: docs/sweep-spec.md.\n";

static const char plan_usage[] =
	"usage: lowbit plan SPEC.yaml [--json | --tsv]\n"
	"\n"
	"Expand a sweep spec and list its trials in order: index, id, the value of\n"
	"every axis, seed, stages and ranks per trial. Nothing runs.\n"
	"\n"
	"      --json   one JSON document (with each trial's overrides)\n"
	"      --tsv    tab-separated values with a header line\n"
	"  -h, --help   this text\n"
	"\n"
	"Keys: docs/sweep-spec.md.\n";

/* Print a multi-line library message, one error line each. */
static void print_errors(const char *msg)
{
	const char *p = msg;
	while (*p) {
		size_t n = strcspn(p, "\n");
		lb_cli_error("%.*s", (int)n, p);
		p += n;
		if (*p)
			p++;
	}
}

/* Parse the common arguments: one spec path and the given flags.
 * Returns -1 to go on, or an exit status. */
static int parse_args(int argc, char **argv, const char *cmd, const char *usage, int *json,
		      int *tsv, const char **path)
{
	enum { OPT_JSON = 256, OPT_TSV };
	static const struct option plan_opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"json", no_argument, NULL, OPT_JSON},
		{"tsv", no_argument, NULL, OPT_TSV},
		{NULL, 0, NULL, 0},
	};
	static const struct option validate_opts[] = {
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", json ? plan_opts : validate_opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(usage, stdout);
			return LB_EXIT_OK;
		case OPT_JSON:
			*json = 1;
			break;
		case OPT_TSV:
			*tsv = 1;
			break;
		default:
			lb_cli_error("%s: unknown option '%s' (see lowbit %s --help)", cmd,
				     argv[optind - 1], cmd);
			return LB_EXIT_USAGE;
		}
	}
	if (json && *json && *tsv) {
		lb_cli_error("%s: give --json or --tsv, not both", cmd);
		return LB_EXIT_USAGE;
	}
	if (optind >= argc) {
		lb_cli_error("%s: no spec file given\n\n%s", cmd, usage);
		return LB_EXIT_USAGE;
	}
	if (optind + 1 < argc) {
		lb_cli_error("%s: unexpected argument '%s' (one spec file only)", cmd, argv[optind + 1]);
		return LB_EXIT_USAGE;
	}
	*path = argv[optind];
	return -1;
}

/* Load and expand; prints the errors. */
static int load_plan(const char *path, struct lb_sweep **sw, struct lb_sweep_plan **plan)
{
	*sw = NULL;
	*plan = NULL;
	if (lb_sweep_load(path, sw) || lb_sweep_expand(*sw, plan)) {
		print_errors(lb_error_message());
		lb_sweep_free(*sw);
		*sw = NULL;
		return LB_EXIT_ERROR;
	}
	return LB_EXIT_OK;
}

int lb_cmd_validate(int argc, char **argv)
{
	const char *path = NULL;
	struct lb_sweep *sw;
	struct lb_sweep_plan *plan;
	int status = parse_args(argc, argv, "validate", validate_usage, NULL, NULL, &path);
	if (status >= 0)
		return status;
	if ((status = load_plan(path, &sw, &plan)))
		return status;
	printf("%s: ok (%u trial%s)\n", path, plan->n_trials, plan->n_trials == 1 ? "" : "s");
	lb_sweep_plan_free(plan);
	lb_sweep_free(sw);
	return LB_EXIT_OK;
}

/* ---- output forms ---- */

static void stages_text(const struct lb_sweep_spec *sp, char *buf, size_t size)
{
	size_t len = 0;
	buf[0] = '\0';
	for (unsigned i = 0; i < sp->n_stages && len < size; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? ">" : "", sp->stages[i].name);
	if (!buf[0])
		snprintf(buf, size, "-");
}

static void json_string(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

/* s is a number as JSON writes it: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int json_number(const char *s)
{
	if (*s == '-')
		s++;
	if (*s == '0')
		s++;
	else if (*s >= '1' && *s <= '9')
		while (*s >= '0' && *s <= '9')
			s++;
	else
		return 0;
	if (*s == '.') {
		if (!(*++s >= '0' && *s <= '9'))
			return 0;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		if (!(*s >= '0' && *s <= '9'))
			return 0;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	return *s == '\0';
}

/* A YAML scalar as JSON: numbers, booleans and null as themselves, the rest
 * (lists, quoted text) as a string of its YAML text. */
static void json_value(const char *s)
{
	if (json_number(s) || !strcmp(s, "true") || !strcmp(s, "false"))
		fputs(s, stdout);
	else if (!strcmp(s, "~") || !strcmp(s, "null"))
		fputs("null", stdout);
	else
		json_string(s);
}

static void print_json(const struct lb_sweep_plan *plan)
{
	const struct lb_sweep_spec *sp = plan->sweep->spec;
	printf("{\"name\": ");
	json_string(sp->name);
	printf(", \"method\": \"%s\", \"seed\": %" PRIu64 ", \"n_trials\": %u, \"axes\": [",
	       lb_sweep_method_name(sp->method), sp->seed, plan->n_trials);
	for (unsigned a = 0; a < sp->n_axes; a++) {
		fputs(a ? ", " : "", stdout);
		json_string(sp->axes[a].key);
	}
	printf("],\n \"trials\": [\n");
	for (unsigned i = 0; i < plan->n_trials; i++) {
		const struct lb_sweep_trial *t = &plan->trials[i];
		printf("  {\"index\": %u, \"id\": \"%s\", \"point\": %u, \"replicate\": %u, "
		       "\"seed\": %" PRIu64 ", \"axes\": {",
		       t->index, t->id, t->point, t->replicate, t->seed);
		for (unsigned a = 0; a < sp->n_axes; a++) {
			fputs(a ? ", " : "", stdout);
			json_string(sp->axes[a].key);
			fputs(": ", stdout);
			json_value(t->axis_values[a]);
		}
		printf("}, \"stages\": [");
		for (unsigned s = 0; s < t->n_stages; s++) {
			const struct lb_sweep_stage *st = t->stages[s].stage;
			printf("%s{\"name\": ", s ? ", " : "");
			json_string(st->name);
			printf(", \"kind\": \"%s\", \"input\": ", lb_stage_kind_name(st->kind));
			if (st->input)
				json_string(st->input);
			else
				fputs("null", stdout);
			printf("}");
		}
		printf("], \"ranks_per_trial\": %u, \"threads_per_rank\": %u, \"overrides\": [",
		       t->ranks_per_trial, t->threads_per_rank);
		for (unsigned k = 0; k < t->n_overrides; k++) {
			fputs(k ? ", " : "", stdout);
			json_string(t->overrides[k]);
		}
		printf("]}%s\n", i + 1 < plan->n_trials ? "," : "");
	}
	printf(" ]}\n");
}

static void tsv_field(const char *s)
{
	for (; *s; s++)
		putchar(*s == '\t' || *s == '\n' || *s == '\r' ? ' ' : *s);
}

static void print_tsv(const struct lb_sweep_plan *plan)
{
	const struct lb_sweep_spec *sp = plan->sweep->spec;
	char stages[1024];
	stages_text(sp, stages, sizeof stages);
	printf("index\tid");
	for (unsigned a = 0; a < sp->n_axes; a++) {
		putchar('\t');
		tsv_field(sp->axes[a].key);
	}
	printf("\tseed\tstages\tranks_per_trial\tthreads_per_rank\n");
	for (unsigned i = 0; i < plan->n_trials; i++) {
		const struct lb_sweep_trial *t = &plan->trials[i];
		printf("%u\t%s", t->index, t->id);
		for (unsigned a = 0; a < sp->n_axes; a++) {
			putchar('\t');
			tsv_field(t->axis_values[a]);
		}
		printf("\t%" PRIu64 "\t", t->seed);
		tsv_field(stages);
		printf("\t%u\t%u\n", t->ranks_per_trial, t->threads_per_rank);
	}
}

static void print_table(const struct lb_sweep_plan *plan)
{
	const struct lb_sweep_spec *sp = plan->sweep->spec;
	unsigned n_cols = sp->n_axes + 5;
	size_t *w = calloc(n_cols, sizeof *w);
	char stages[1024], buf[64];
	if (!w)
		return;
	stages_text(sp, stages, sizeof stages);
	/* widths: #, id, axes..., seed, stages, ranks */
	w[0] = 1;
	w[1] = 12;
	for (unsigned a = 0; a < sp->n_axes; a++)
		w[2 + a] = strlen(sp->axes[a].key);
	w[n_cols - 3] = 4;
	w[n_cols - 2] = strlen(stages) > 6 ? strlen(stages) : 6;
	w[n_cols - 1] = 5;
	for (unsigned i = 0; i < plan->n_trials; i++) {
		const struct lb_sweep_trial *t = &plan->trials[i];
		size_t k = (size_t)snprintf(buf, sizeof buf, "%u", t->index);
		if (k > w[0])
			w[0] = k;
		for (unsigned a = 0; a < sp->n_axes; a++)
			if (strlen(t->axis_values[a]) > w[2 + a])
				w[2 + a] = strlen(t->axis_values[a]);
		k = (size_t)snprintf(buf, sizeof buf, "%" PRIu64, t->seed);
		if (k > w[n_cols - 3])
			w[n_cols - 3] = k;
	}
	printf("# sweep %s: %u trial%s, method %s, %u rank%s and %u thread%s per rank per trial\n",
	       sp->name, plan->n_trials, plan->n_trials == 1 ? "" : "s",
	       lb_sweep_method_name(sp->method), sp->resources.ranks_per_trial,
	       sp->resources.ranks_per_trial == 1 ? "" : "s", sp->resources.threads_per_rank,
	       sp->resources.threads_per_rank == 1 ? "" : "s");
	printf("%-*s  %-*s", (int)w[0], "#", (int)w[1], "id");
	for (unsigned a = 0; a < sp->n_axes; a++)
		printf("  %-*s", (int)w[2 + a], sp->axes[a].key);
	printf("  %-*s  %-*s  %s\n", (int)w[n_cols - 3], "seed", (int)w[n_cols - 2], "stages",
	       "ranks");
	for (unsigned i = 0; i < plan->n_trials; i++) {
		const struct lb_sweep_trial *t = &plan->trials[i];
		printf("%-*u  %-*s", (int)w[0], t->index, (int)w[1], t->id);
		for (unsigned a = 0; a < sp->n_axes; a++)
			printf("  %-*s", (int)w[2 + a], t->axis_values[a]);
		printf("  %-*" PRIu64 "  %-*s  %u\n", (int)w[n_cols - 3], t->seed, (int)w[n_cols - 2],
		       stages, t->ranks_per_trial);
	}
	free(w);
}

int lb_cmd_plan(int argc, char **argv)
{
	const char *path = NULL;
	int json = 0, tsv = 0;
	struct lb_sweep *sw;
	struct lb_sweep_plan *plan;
	int status = parse_args(argc, argv, "plan", plan_usage, &json, &tsv, &path);
	if (status >= 0)
		return status;
	if ((status = load_plan(path, &sw, &plan)))
		return status;
	if (json)
		print_json(plan);
	else if (tsv)
		print_tsv(plan);
	else
		print_table(plan);
	lb_sweep_plan_free(plan);
	lb_sweep_free(sw);
	return LB_EXIT_OK;
}
