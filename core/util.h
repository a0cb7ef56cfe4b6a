/* SPDX-License-Identifier: MIT
 * Small helpers shared by every module: hashing, clocks, aligned memory,
 * directories and resource usage. */
#ifndef LB_UTIL_H
#define LB_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* FNV-1a, 64-bit; chain by passing the previous value as h (start: LB_HASH_INIT). */
#define LB_HASH_INIT 0xcbf29ce484222325ULL
uint64_t lb_hash64(uint64_t h, const void *data, size_t n);

/* Monotonic wall clock and process CPU time, in seconds. */
double lb_now(void);
double lb_cpu_time(void);

/* Zeroed memory aligned to 64 bytes; free with lb_free. NULL on failure. */
void *lb_alloc(size_t bytes);
void lb_free(void *p);

/* mkdir -p; returns 0 or -1 with errno set. */
int lb_mkdir_p(const char *path);

/* Peak resident set size of this process in MiB. */
double lb_peak_rss_mib(void);

/* Shell-style glob on names ("conv*", "fc?"); 1 on match. */
int lb_glob_match(const char *pattern, const char *name);

/* strdup that returns NULL for NULL. */
char *lb_strdup(const char *s);

#endif
