/* SPDX-License-Identifier: MIT
 * Logging (see log.h). */
#include "log.h"

#include <stdio.h>

static enum lb_log_level lb_level = LB_LOG_INFO;
static int lb_rank = -1, lb_world = 1;
static lb_log_fn lb_sink;
static void *lb_sink_ctx;

void lb_log_set_level(enum lb_log_level level) { lb_level = level; }
enum lb_log_level lb_log_get_level(void) { return lb_level; }
void lb_log_set_rank(int rank, int world) { lb_rank = rank; lb_world = world; }
void lb_log_set_sink(lb_log_fn fn, void *ctx) { lb_sink = fn; lb_sink_ctx = ctx; }

void lb_logv(enum lb_log_level level, const char *fmt, va_list ap)
{
	char line[4096];
	int n = 0;
	if (level < lb_level)
		return;
	if (lb_rank > 0 && level < LB_LOG_WARN)
		return;
	if (lb_rank >= 0 && lb_world > 1)
		n = snprintf(line, sizeof line, "[rank %d] ", lb_rank);
	if (level == LB_LOG_WARN)
		n += snprintf(line + n, sizeof line - n, "warning: ");
	else if (level == LB_LOG_ERROR)
		n += snprintf(line + n, sizeof line - n, "error: ");
	vsnprintf(line + n, sizeof line - n, fmt, ap);
	if (lb_sink) {
		lb_sink(level, line, lb_sink_ctx);
		return;
	}
	fprintf(stderr, "lowbit: %s\n", line);
}

void lb_log(enum lb_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	lb_logv(level, fmt, ap);
	va_end(ap);
}
