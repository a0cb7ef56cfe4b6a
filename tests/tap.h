/* SPDX-License-Identifier: MIT
 * A small TAP producer (git's test-lib.h shape): plan, ok, is_int, is_near,
 * diag, skip, done_testing. Macros record file:line and the expression.
 * Header-only: each test program includes it once. */
#ifndef LB_TAP_H
#define LB_TAP_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int tap_n, tap_failed, tap_planned = -1;

static inline void tap_plan(int n) { tap_planned = n; printf("1..%d\n", n); fflush(stdout); }
static inline void tap_skip_all(const char *why) { printf("1..0 # SKIP %s\n", why); fflush(stdout); exit(0); }

static inline void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void diag(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("# ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
}

static inline int tap_ok_(int cond, const char *file, int line, const char *expr, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static inline int tap_ok_(int cond, const char *file, int line, const char *expr, const char *fmt, ...)
{
	va_list ap;
	tap_n++;
	printf("%s %d - ", cond ? "ok" : "not ok", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!cond) {
		tap_failed++;
		printf("#   failed at %s:%d: %s\n", file, line, expr);
	}
	fflush(stdout);
	return cond;
}

#define ok(cond, ...) tap_ok_(!!(cond), __FILE__, __LINE__, #cond, __VA_ARGS__)
#define is_int(got, want, ...) \
	(tap_ok_((long long)(got) == (long long)(want), __FILE__, __LINE__, #got " == " #want, __VA_ARGS__) \
		 ? 1 : (diag("  got %lld, want %lld", (long long)(got), (long long)(want)), 0))
#define is_near(got, want, tol, ...) \
	(tap_ok_(fabs((double)(got) - (double)(want)) <= (tol), __FILE__, __LINE__, \
		 #got " ~= " #want, __VA_ARGS__) \
		 ? 1 : (diag("  got %.9g, want %.9g (tol %.3g)", (double)(got), (double)(want), (double)(tol)), 0))
#define skip(why) do { tap_n++; printf("ok %d # SKIP %s\n", tap_n, why); fflush(stdout); } while (0)

static inline int done_testing(void)
{
	if (tap_planned < 0)
		printf("1..%d\n", tap_n);
	else if (tap_planned != tap_n) {
		printf("# planned %d tests but ran %d\n", tap_planned, tap_n);
		return 1;
	}
	fflush(stdout);
	return tap_failed ? 1 : 0;
}

#endif
