/* SPDX-License-Identifier: MIT
 * Logging to stderr with a pluggable sink (libcyaml's log_fn).
 * Each line carries the rank when running under MPI; by default only rank 0
 * prints INFO, every rank prints WARN and ERROR. stdout stays free for TAP
 * and for machine-readable output. */
#ifndef LB_LOG_H
#define LB_LOG_H

#include <stdarg.h>

enum lb_log_level { LB_LOG_DEBUG, LB_LOG_INFO, LB_LOG_WARN, LB_LOG_ERROR, LB_LOG_QUIET };

typedef void (*lb_log_fn)(enum lb_log_level level, const char *line, void *ctx);

void lb_log(enum lb_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lb_logv(enum lb_log_level level, const char *fmt, va_list ap);
void lb_log_set_level(enum lb_log_level level);
enum lb_log_level lb_log_get_level(void);
/* rank < 0: not under MPI (no prefix). Ranks other than 0 drop INFO/DEBUG. */
void lb_log_set_rank(int rank, int world);
void lb_log_set_sink(lb_log_fn fn, void *ctx);

#endif
