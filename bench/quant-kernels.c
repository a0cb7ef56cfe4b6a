/* SPDX-License-Identifier: MIT
 * Times the forward and backward of every quantizer kernel in core/quant/ on
 * one tensor: ns per element, median of --reps repeats (one untimed warm-up
 * call each). Built and run by bench/quant-kernels against a configured
 * build's liblowbit.a.
 * Usage: bench-quant-kernels [--n N] [--reps R] [--bits LIST] [--only SUBSTR] [--wall]
 * Times are the thread's CPU time (CLOCK_THREAD_CPUTIME_ID) unless --wall;
 * --min reports the fastest repeat instead of the median; --isa picks the
 * vector code of the SRQ kernels (lb_rq_set_isa; default auto).
 * Weights are N(0, 0.05) (alpha covers +-3 std of the grid, sigma = alpha for
 * RQ/SRQ unless the row says otherwise); activations are ReLU(N(0, 1)); dy is
 * N(0, 1e-3). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quant/quant.h"
#include "quant/rq.h"
#include "rng.h"
#include "util.h"

#define SEED 20240611ULL
#define MAX_REPS 101

static size_t N = 3136 * 512; /* LeNet-5 fc1 */
static int REPS = 7;
static const char *ONLY;
static float *X, *XA, *Y, *DY, *DX;
static uint8_t *LEVEL;

static int MIN; /* report the minimum instead of the median */
static int WALL; /* 0: thread CPU time (robust on a shared machine), 1: wall clock */

static double now(void)
{
	struct timespec ts;
	if (WALL)
		return lb_now();
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmpd(const void *a, const void *b)
{
	const double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* what the timed closures need */
struct job {
	int bits;
	int which; /* fixed per row */
	float alpha, sigma;
	struct lb_rq_spec sp;
	struct lb_rq_mask mask, *maskp;
	struct lb_rq_key key;
	float zbar[LB_RQ_MAX_BITS + 1], p[LB_RQ_MAX_BITS + 1];
	double dzbar[LB_RQ_MAX_BITS + 1];
	const float *x;
};

typedef void (*fn)(struct job *j);

static double median_ns(fn f, struct job *j)
{
	double t[MAX_REPS];
	f(j); /* warm-up: page faults, caches */
	for (int r = 0; r < REPS; r++) {
		const double t0 = now();
		f(j);
		t[r] = (now() - t0) * 1e9 / (double)N;
	}
	qsort(t, (size_t)REPS, sizeof(double), cmpd);
	return MIN ? t[0] : t[REPS / 2];
}

/* ---- baselines (quant.h) ---- */
static void uni_f(struct job *j)
{
	int lo, hi;
	lb_quant_range_signed(&lo, &hi, j->bits, 0);
	lb_quant_uniform_forward(Y, j->x, &j->alpha, NULL, 1, N, lo, hi);
}
static void uni_b(struct job *j)
{
	int lo, hi;
	lb_quant_range_signed(&lo, &hi, j->bits, 0);
	lb_quant_uniform_backward(DX, DY, j->x, &j->alpha, NULL, 1, N, lo, hi, LB_QUANT_STE_CLIPPED);
}
static void dorefa_f(struct job *j)
{
	lb_quant_dorefa_w_forward(Y, j->x, N, j->bits, lb_quant_dorefa_w_max(j->x, N));
}
static void dorefa_b(struct job *j)
{
	lb_quant_dorefa_w_backward(DX, DY, j->x, N, lb_quant_dorefa_w_max(j->x, N), 0);
}
static void dorefa_a_f(struct job *j)
{
	lb_quant_dorefa_a_forward(Y, j->x, N, j->bits);
}
static void dorefa_a_b(struct job *j)
{
	lb_quant_dorefa_a_backward(DX, DY, j->x, N);
}
static void pact_f(struct job *j)
{
	lb_quant_pact_forward(Y, j->x, N, j->bits, 3.0f);
}
static void pact_b(struct job *j)
{
	float da = 0.0f;
	lb_quant_pact_backward(DX, &da, DY, j->x, N, j->bits, 3.0f, LB_QUANT_PACT_LSQ);
}
static void lsq_f(struct job *j)
{
	int lo, hi;
	lb_quant_range_signed(&lo, &hi, j->bits, 0);
	lb_quant_lsq_forward(Y, j->x, &j->alpha, 1, N, lo, hi);
}
static void lsq_b(struct job *j)
{
	int lo, hi;
	float ds = 0.0f;
	lb_quant_range_signed(&lo, &hi, j->bits, 0);
	lb_quant_lsq_backward(DX, &ds, DY, j->x, &j->alpha, 1, N, lo, hi,
			      lb_quant_lsq_grad_scale(N, hi));
}
static void sr_f(struct job *j)
{
	const struct lb_quant_key k = {SEED, 1, 0};
	lb_quant_sr_forward(Y, j->x, N, j->bits, lb_quant_dfp_frac_len(0.2f, j->bits), &k);
}
static void sr_b(struct job *j)
{
	lb_quant_sr_backward(DX, DY, j->x, N, j->bits, lb_quant_dfp_frac_len(0.2f, j->bits),
			     LB_QUANT_STE_CLIPPED);
}

/* ---- rq.h ---- */
static void rq_f(struct job *j)
{
	lb_rq_forward(Y, j->x, N, &j->sp, j->alpha, j->sigma, &j->key);
}
static void rq_b(struct job *j)
{
	double a = 0.0, s = 0.0;
	lb_rq_backward(DX, &a, &s, DY, j->x, N, &j->sp, j->alpha, j->sigma, &j->key);
}
static void srq_f(struct job *j)
{
	lb_srq_forward(Y, j->x, N, &j->sp, j->alpha, j->sigma, j->maskp);
}
static void srq_b(struct job *j)
{
	double a = 0.0, s = 0.0;
	lb_srq_backward(DX, &a, &s, DY, j->x, N, &j->sp, j->alpha, j->sigma, j->maskp);
}
static void dropbits_sample(struct job *j)
{
	lb_dropbits_sample(LEVEL, N, j->bits, j->p, &j->key, 1);
}

static void row(const char *name, struct job *j, fn f, fn b)
{
	double tf, tb;
	if (ONLY && !strstr(name, ONLY))
		return;
	tf = f ? median_ns(f, j) : NAN;
	tb = b ? median_ns(b, j) : NAN;
	printf("%-34s %4d %10.2f %10.2f %10.2f\n", name, j->bits, tf, tb,
	       (f ? tf : 0.0) + (b ? tb : 0.0));
	fflush(stdout);
}

static void cpu_model(char *buf, size_t len)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[512];
	snprintf(buf, len, "unknown");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "model name", 10)) {
			const char *p = strchr(line, ':');
			if (p) {
				snprintf(buf, len, "%s", p + 2);
				buf[strcspn(buf, "\n")] = 0;
			}
			break;
		}
	fclose(f);
}

static void loadavg(char *buf, size_t len)
{
	FILE *f = fopen("/proc/loadavg", "r");
	snprintf(buf, len, "?");
	if (f) {
		if (fgets(buf, (int)len, f))
			buf[strcspn(buf, "\n")] = 0;
		fclose(f);
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: bench-quant-kernels [--n N] [--reps R (1..%d)] [--bits LIST] "
			"[--only SUBSTR] [--wall] [--min] [--isa auto|generic|avx2|avx512]\n", MAX_REPS);
	exit(2);
}

int main(int argc, char **argv)
{
	char cpu[256], la[128];
	int bits_list[8] = {2, 4}, nbits = 2;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--n") && i + 1 < argc) {
			const long v = strtol(argv[++i], NULL, 10);
			if (v < 1) {
				fprintf(stderr, "bench-quant-kernels: --n: '%s' is not a positive integer\n", argv[i]);
				return 2;
			}
			N = (size_t)v;
		} else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
			REPS = atoi(argv[++i]);
			if (REPS < 1 || REPS > MAX_REPS) {
				fprintf(stderr, "bench-quant-kernels: --reps: '%s' is out of range (allowed: 1..%d)\n", argv[i], MAX_REPS);
				return 2;
			}
		} else if (!strcmp(argv[i], "--bits") && i + 1 < argc) {
			char *s = argv[++i], *end;
			nbits = 0;
			while (*s && nbits < 8) {
				const long b = strtol(s, &end, 10);
				if (end == s || b < 2 || b > LB_RQ_MAX_BITS) {
					fprintf(stderr, "bench-quant-kernels: --bits: '%s' is not a list of 2..%d\n", argv[i], LB_RQ_MAX_BITS);
					return 2;
				}
				bits_list[nbits++] = (int)b;
				s = *end == ',' ? end + 1 : end;
			}
		} else if (!strcmp(argv[i], "--wall"))
			WALL = 1;
		else if (!strcmp(argv[i], "--min"))
			MIN = 1;
#ifndef LB_BENCH_NO_ISA /* -DLB_BENCH_NO_ISA: time an rq.c without lb_rq_set_isa */
		else if (!strcmp(argv[i], "--isa") && i + 1 < argc) {
			const char *a = argv[++i];
			const int want = !strcmp(a, "generic") ? LB_RQ_ISA_GENERIC
					 : !strcmp(a, "avx2")  ? LB_RQ_ISA_AVX2
					 : !strcmp(a, "avx512") ? LB_RQ_ISA_AVX512
					 : !strcmp(a, "auto")  ? LB_RQ_ISA_AUTO
								: -1;
			if (want < 0) {
				fprintf(stderr, "bench-quant-kernels: --isa: '%s' is not one of auto, generic, avx2, avx512\n", a);
				return 2;
			}
			if (lb_rq_set_isa(want) != want && want != LB_RQ_ISA_AUTO) {
				fprintf(stderr, "bench-quant-kernels: --isa: this CPU has no %s\n", a);
				return 2;
			}
		}
#endif
		else if (!strcmp(argv[i], "--only") && i + 1 < argc)
			ONLY = argv[++i];
		else
			usage();
	}
	X = malloc(N * sizeof(float));
	XA = malloc(N * sizeof(float));
	Y = malloc(N * sizeof(float));
	DY = malloc(N * sizeof(float));
	DX = calloc(N, sizeof(float));
	LEVEL = malloc(N);
	if (!X || !XA || !Y || !DY || !DX || !LEVEL) {
		fprintf(stderr, "bench-quant-kernels: out of memory for n = %zu\n", N);
		return 1;
	}
	for (size_t i = 0; i < N; i++) {
		const float a = lb_rng_normal(SEED, LB_RNG_TEST, 2, i);
		X[i] = 0.05f * lb_rng_normal(SEED, LB_RNG_TEST, 1, i);
		XA[i] = a > 0.0f ? a : 0.0f;
		DY[i] = 1e-3f * lb_rng_normal(SEED, LB_RNG_TEST, 3, i);
	}
	cpu_model(cpu, sizeof(cpu));
	loadavg(la, sizeof(la));
#ifndef LB_BENCH_NO_ISA
	printf("# rq vector code: %s\n", (const char *const[]){"auto", "generic", "avx2", "avx512"}[lb_rq_isa()]);
#endif
	printf("# cpu: %s\n# n = %zu elements, %s of %d repeats, ns/element of %s\n"
	       "# loadavg at start: %s\n",
	       cpu, N, MIN ? "minimum" : "median", REPS, WALL ? "wall-clock time" : "thread CPU time", la);
	printf("%-34s %4s %10s %10s %10s\n", "# kernel", "bits", "forward", "backward", "total");
	for (int bi = 0; bi < nbits; bi++) {
		struct job j;
		const int b = bits_list[bi];
		memset(&j, 0, sizeof(j));
		j.bits = b;
		j.alpha = 0.15f / (float)(1 << (b - 1));
		j.sigma = j.alpha;
		j.x = X;
		j.key = (struct lb_rq_key){SEED, 7, 0};
		row("uniform (clipped STE)", &j, uni_f, uni_b);
		row("dorefa weights", &j, dorefa_f, dorefa_b);
		j.x = XA;
		row("dorefa activations", &j, dorefa_a_f, dorefa_a_b);
		row("pact (lsq grad)", &j, pact_f, pact_b);
		j.x = X;
		row("lsq", &j, lsq_f, lsq_b);
		row("sr+dr", &j, sr_f, sr_b);
		lb_rq_spec_default(&j.sp, b, 0);
		row("rq (lambda 2)", &j, rq_f, rq_b);
		j.sp.straight_through = 1;
		row("rq-st", &j, rq_f, rq_b);
		lb_rq_spec_default(&j.sp, b, 0);
		row("srq", &j, srq_f, srq_b);
		j.sigma = j.alpha / 3.0f;
		row("srq sigma=alpha/3", &j, srq_f, srq_b);
		j.sigma = j.alpha;
		j.sp.delta = 3.0f;
		j.sigma = j.alpha / 3.0f;
		row("srq delta=3 sigma=alpha/3", &j, srq_f, srq_b);
		j.sigma = j.alpha;
		j.sp.delta = 0.0f;
		j.sp.tempered = 1;
		j.sp.tau = 0.5f;
		row("srq tempered tau=0.5", &j, srq_f, srq_b);
		j.sp.tempered = 0;
		/* activations: unsigned grid over ReLU(N(0,1)) */
		lb_rq_spec_default(&j.sp, b, 1);
		j.x = XA;
		j.alpha = 3.0f / (float)((1 << b) - 1);
		j.sigma = j.alpha;
		row("srq activations (unsigned)", &j, srq_f, srq_b);
		j.x = X;
		j.alpha = 0.15f / (float)(1 << (b - 1));
		lb_rq_spec_default(&j.sp, b, 0);
		/* DropBits */
		lb_dropbits_probs(j.p, b, 0.3f);
		row("dropbits sample (per element)", &j, dropbits_sample, NULL);
		lb_dropbits_sample(LEVEL, N, b, j.p, &j.key, 1);
		j.mask.level = LEVEL;
		j.maskp = &j.mask;
		row("srq dropbits per-element", &j, srq_f, srq_b);
		j.mask.level = NULL;
		j.mask.keep = b - 1;
		row("srq dropbits per-layer (keep b-1)", &j, srq_f, srq_b);
		j.mask.keep = 0;
		/* gates */
		for (int k = 0; k <= b; k++)
			j.zbar[k] = k < 2 ? 1.0f : 0.9f * j.zbar[k - 1];
		j.mask.zbar = j.zbar;
		j.mask.dzbar = j.dzbar;
		j.mask.gate_forward = LB_RQ_GATE_HARD;
		row("srq gates (hard forward)", &j, srq_f, srq_b);
		lb_srq_gated_scalar(1); /* the per-element code it replaced */
		row("srq gates (hard forward, scalar)", &j, srq_f, srq_b);
		lb_srq_gated_scalar(0);
		j.mask.gate_forward = LB_RQ_GATE_RELAXED;
		row("srq gates (relaxed forward)", &j, srq_f, srq_b);
		j.mask.level = LEVEL;
		j.mask.gate_forward = LB_RQ_GATE_HARD;
		row("srq gates + dropbits per-element", &j, srq_f, srq_b);
		lb_srq_gated_scalar(1);
		row("srq gates + dropbits per-element (scalar)", &j, srq_f, srq_b);
		lb_srq_gated_scalar(0);
		j.maskp = NULL;
	}
	loadavg(la, sizeof(la));
	printf("# loadavg at end: %s\n", la);
	free(X);
	free(XA);
	free(Y);
	free(DY);
	free(DX);
	free(LEVEL);
	return 0;
}
