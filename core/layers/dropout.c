/* SPDX-License-Identifier: MIT
 * Inverted dropout (Srivastava et al., JMLR 2014; PyTorch torch.nn.Dropout):
 * keep with probability 1-p and scale kept values by 1/(1-p). Each mask bit is
 * a pure function of (seed, step, layer, element) through the counter RNG, so
 * shards and resumed runs draw the masks the whole batch would. */
#include "layers.h"

#include "rng.h"

/* 1/(1-p), and 0 when everything is dropped (p >= 1). */
static float keep_scale(float p)
{
	return p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
}

/* mask[i] = u(seed, DROPOUT, step, layer<<40 | first_index+i) >= p;
 * y = x mask / (1-p) */
void lb_dropout_forward(float *y, uint8_t *mask, const float *x, size_t n, float p, uint64_t seed,
			uint32_t step, uint32_t layer, uint64_t first_index)
{
	const float scale = keep_scale(p);
	const uint64_t hi = (uint64_t)layer << 40;

	for (size_t i = 0; i < n; i++) {
		const float u = lb_rng_uniform(seed, LB_RNG_DROPOUT, step, hi | (first_index + i));
		mask[i] = u >= p;
		y[i] = mask[i] ? x[i] * scale : 0.0f;
	}
}

/* dx += dy mask / (1-p) */
void lb_dropout_backward(float *dx, const float *dy, const uint8_t *mask, size_t n, float p)
{
	const float scale = keep_scale(p);

	for (size_t i = 0; i < n; i++)
		dx[i] += mask[i] ? dy[i] * scale : 0.0f;
}
