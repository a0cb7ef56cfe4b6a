/* SPDX-License-Identifier: MIT
 * Tests of core/rng.c, core/gemm.c, core/util.c, core/err.c. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "err.h"
#include "gemm.h"
#include "rng.h"
#include "util.h"

static void test_rng(void)
{
	uint32_t a[4], b[4], c[4];
	lb_rng_block(42, LB_RNG_TEST, 3, 7, a);
	lb_rng_block(42, LB_RNG_TEST, 3, 7, b);
	lb_rng_block(42, LB_RNG_TEST, 3, 8, c);
	ok(memcmp(a, b, sizeof a) == 0, "rng: same coordinates, same words");
	ok(memcmp(a, c, sizeof a) != 0, "rng: next index, other words");
	/* Known-answer test from Random123's kat_vectors: philox4x32 10 rounds,
	 * ctr = key = 0 -> 6627e8d5 e169c58d bc57ac4c 9b00dbd8 */
	lb_rng_block(0, 0, 0, 0, a);
	ok(a[0] == 0x6627e8d5u && a[1] == 0xe169c58du && a[2] == 0xbc57ac4cu &&
		   a[3] == 0x9b00dbd8u,
	   "rng: Philox4x32-10 known answer");
	double s = 0, s2 = 0;
	int n = 100000, in_range = 1;
	for (int i = 0; i < n; i++) {
		float u = lb_rng_uniform(1, LB_RNG_TEST, 0, (uint64_t)i);
		if (!(u > 0.0f && u < 1.0f))
			in_range = 0;
		s += u;
		float z = lb_rng_normal(1, LB_RNG_TEST, 1, (uint64_t)i);
		s2 += (double)z * z;
	}
	ok(in_range, "rng: uniform in (0,1)");
	/* the extreme words: the top bucket's centre is not a float below 1 */
	ok(lb_u32_to_unit_float(0xffffffffu) < 1.0f && lb_u32_to_unit_float(0xffffff00u) < 1.0f &&
		   lb_u32_to_unit_float(0) > 0.0f && -logf(-logf(lb_u32_to_unit_float(0xffffffffu))) < 20.0f,
	   "rng: unit float of the extreme words is inside (0,1) (finite Gumbel noise)");
	is_near(s / n, 0.5, 0.01, "rng: uniform mean");
	is_near(s2 / n, 1.0, 0.02, "rng: normal variance");

	int32_t perm[1000], seen[1000] = {0}, valid = 1;
	lb_rng_permutation(perm, 1000, 5, LB_RNG_ORDER, 2);
	for (int i = 0; i < 1000; i++) {
		if (perm[i] < 0 || perm[i] >= 1000 || seen[perm[i]]++)
			valid = 0;
	}
	ok(valid, "rng: permutation is a permutation");
	int32_t perm2[1000];
	lb_rng_permutation(perm2, 1000, 5, LB_RNG_ORDER, 3);
	ok(memcmp(perm, perm2, sizeof perm) != 0, "rng: other epoch, other order");
}

static void test_gemm(void)
{
	enum { M = 7, N = 5, K = 9 };
	float A[M * K], At[K * M], B[K * N], Bt[N * K], C1[M * N], C2[M * N];
	for (int i = 0; i < M * K; i++)
		A[i] = lb_rng_normal(3, LB_RNG_TEST, 0, (uint64_t)i);
	for (int i = 0; i < K * N; i++)
		B[i] = lb_rng_normal(3, LB_RNG_TEST, 1, (uint64_t)i);
	for (int i = 0; i < M; i++)
		for (int k = 0; k < K; k++)
			At[k * M + i] = A[i * K + k];
	for (int k = 0; k < K; k++)
		for (int j = 0; j < N; j++)
			Bt[j * K + k] = B[k * N + j];
	for (int ta = 0; ta < 2; ta++)
		for (int tb = 0; tb < 2; tb++) {
			double worst = 0;
			for (int i = 0; i < M * N; i++)
				C1[i] = C2[i] = 0.25f * (float)i;
			lb_gemm(ta, tb, M, N, K, 1.5f, ta ? At : A, tb ? Bt : B, 0.5f, C1);
			lb_gemm_ref(ta, tb, M, N, K, 1.5f, ta ? At : A, tb ? Bt : B, 0.5f, C2);
			for (int i = 0; i < M * N; i++)
				if (fabs(C1[i] - C2[i]) > worst)
					worst = fabs(C1[i] - C2[i]);
			ok(worst < 1e-4, "gemm: trans_a=%d trans_b=%d equals reference (max diff %.2g)",
			   ta, tb, worst);
		}
	ok(lb_blas_corename() && lb_blas_corename()[0], "blas: corename '%s'", lb_blas_corename());
}

static void test_util(void)
{
	ok(lb_glob_match("conv*", "conv1") && !lb_glob_match("conv*", "fc1"), "glob");
	ok(lb_hash64(LB_HASH_INIT, "abc", 3) != lb_hash64(LB_HASH_INIT, "abd", 3), "hash differs");
	int rc = lb_error(LB_ERR_CONFIG, "key '%s'", "lr");
	lb_error_prefix(rc, "file.yaml");
	ok(rc == LB_ERR_CONFIG && strcmp(lb_error_message(), "file.yaml: key 'lr'") == 0,
	   "error message with prefix: '%s'", lb_error_message());
	float *p = lb_alloc(100);
	ok(p && ((uintptr_t)p % 64) == 0 && p[0] == 0.0f, "aligned zeroed alloc");
	lb_free(p);
}

int main(void)
{
	test_rng();
	test_gemm();
	test_util();
	return done_testing();
}
