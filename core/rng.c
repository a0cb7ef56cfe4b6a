/* SPDX-License-Identifier: MIT
 * Counter-based generator over Random123's Philox4x32-10 (see rng.h). */
#include "rng.h"

#include <math.h>

#include <Random123/philox.h>

void lb_rng_block(uint64_t seed, uint32_t purpose, uint32_t epoch, uint64_t index,
		  uint32_t out[4])
{
	philox4x32_key_t key = {{(uint32_t)seed, (uint32_t)(seed >> 32)}};
	philox4x32_ctr_t ctr = {{purpose, epoch, (uint32_t)index, (uint32_t)(index >> 32)}};
	philox4x32_ctr_t r = philox4x32(ctr, key);
	out[0] = r.v[0];
	out[1] = r.v[1];
	out[2] = r.v[2];
	out[3] = r.v[3];
}

float lb_rng_uniform(uint64_t seed, uint32_t purpose, uint32_t epoch, uint64_t index)
{
	uint32_t w[4];
	lb_rng_block(seed, purpose, epoch, index, w);
	return lb_u32_to_unit_float(w[0]);
}

double lb_rng_uniform_double(uint64_t seed, uint32_t purpose, uint32_t epoch, uint64_t index)
{
	uint32_t w[4];
	uint64_t bits;
	lb_rng_block(seed, purpose, epoch, index, w);
	bits = ((uint64_t)w[0] << 21) ^ (uint64_t)(w[1] >> 11); /* 53 bits */
	bits &= (1ULL << 53) - 1;
	return ((double)bits + 0.5) * (1.0 / 9007199254740992.0);
}

float lb_rng_normal(uint64_t seed, uint32_t purpose, uint32_t epoch, uint64_t index)
{
	uint32_t w[4];
	double u1, u2;
	lb_rng_block(seed, purpose, epoch, index, w);
	u1 = ((double)w[0] + 0.5) * (1.0 / 4294967296.0);
	u2 = ((double)w[1] + 0.5) * (1.0 / 4294967296.0);
	return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint32_t lb_rng_below(uint64_t seed, uint32_t purpose, uint32_t epoch, uint64_t index,
		      uint32_t n)
{
	uint32_t w[4];
	uint64_t x;
	lb_rng_block(seed, purpose, epoch, index, w);
	x = ((uint64_t)w[0] << 32) | w[1];
	/* floor(x * n / 2^64) via 128-bit product */
	return (uint32_t)(((unsigned __int128)x * n) >> 64);
}

void lb_rng_permutation(int32_t *perm, int32_t n, uint64_t seed, uint32_t purpose,
			uint32_t epoch)
{
	for (int32_t i = 0; i < n; i++)
		perm[i] = i;
	for (int32_t i = n - 1; i > 0; i--) {
		int32_t j = (int32_t)lb_rng_below(seed, purpose, epoch, (uint64_t)i, (uint32_t)i + 1);
		int32_t t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
}

uint64_t lb_rng_derive(uint64_t seed, uint64_t value)
{
	uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (value + 1);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}
