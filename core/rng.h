/* SPDX-License-Identifier: MIT
 * Counter-based random numbers: every value is a pure function of
 * (seed, purpose, epoch, index), computed with Random123's Philox4x32-10.
 *
 * There is no per-process stream. Data order, initialisation, dropout and
 * augmentation all ask for the value they need by its coordinates, so any
 * rank (or a resumed run) that asks the same question gets the same answer
 * without communication. Salmon et al., "Parallel random numbers: as easy as
 * 1, 2, 3" (SC'11).
 *
 * Invariant: purposes never overlap; a new use of randomness gets a new
 * purpose value here, never a reused one. */
#ifndef LB_RNG_H
#define LB_RNG_H

#include <stdint.h>

enum lb_rng_purpose {
	LB_RNG_INIT = 1,      /* parameter initialisation: epoch = parameter tensor index */
	LB_RNG_ORDER = 2,     /* data order: epoch = epoch, index = position */
	LB_RNG_SPLIT = 3,     /* train/validation split */
	LB_RNG_DROPOUT = 4,   /* epoch = global step, index = (layer << 40) | element */
	LB_RNG_AUGMENT = 5,   /* epoch = epoch, index = sample id */
	LB_RNG_QNOISE = 6,    /* quantizer noise (RQ logistic/gumbel, stochastic rounding) */
	LB_RNG_DROPBITS = 7,  /* DropBits masks */
	LB_RNG_GATES = 8,     /* hard-concrete gate noise */
	LB_RNG_TEST = 15,     /* reserved for tests */
	LB_RNG_SWEEP = 16     /* sweep random draws */
};

/* Four independent 32-bit words at (seed, purpose, epoch, index). */
void lb_rng_block(uint64_t seed, uint32_t purpose, uint32_t epoch, uint64_t index,
		  uint32_t out[4]);

/* Uniform in the open interval (0, 1), float and double precision. */
float lb_rng_uniform(uint64_t seed, uint32_t purpose, uint32_t epoch, uint64_t index);
double lb_rng_uniform_double(uint64_t seed, uint32_t purpose, uint32_t epoch, uint64_t index);

/* A standard normal value (Box-Muller on one block). */
float lb_rng_normal(uint64_t seed, uint32_t purpose, uint32_t epoch, uint64_t index);

/* Uniform integer in [0, n) (n > 0), without modulo bias worth noticing (64-bit multiply). */
uint32_t lb_rng_below(uint64_t seed, uint32_t purpose, uint32_t epoch, uint64_t index,
		      uint32_t n);

/* perm[0..n) = a permutation of 0..n-1 determined by (seed, purpose, epoch):
 * Fisher-Yates where step i draws from (seed, purpose, epoch, i). */
void lb_rng_permutation(int32_t *perm, int32_t n, uint64_t seed, uint32_t purpose,
			uint32_t epoch);

/* 64-bit mix of a value into a seed (splitmix64 finaliser): derived seeds. */
uint64_t lb_rng_derive(uint64_t seed, uint64_t value);

/* Helpers that convert raw words. */
static inline float lb_u32_to_unit_float(uint32_t x)
{
	/* 24 random bits, centred in their bucket; never 0 or 1: the top
	 * bucket's centre 1 - 2^-25 is not a float and would round to 1, so it
	 * maps to the float below 1. */
	float u = ((float)(x >> 8) + 0.5f) * (1.0f / 16777216.0f);
	return u < 1.0f ? u : 0x1.fffffep-1f;
}

#endif
