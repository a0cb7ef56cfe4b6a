/* SPDX-License-Identifier: MIT
 * Max, average and global average pooling on NHWC activations.
 * Semantics: PyTorch MaxPool2d (padding never wins, first maximum on ties),
 * AvgPool2d with count_include_pad=True, AdaptiveAvgPool2d(1). Max pool has a
 * fast path for the common K=2, stride 2, no padding case; lb_maxpool_forward_ref
 * is its plain twin. No dilation, no ceil_mode. */
#include "layers.h"

#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* ---- max pool ----
 * y = max over the window; argmax = index into x of the first maximum;
 * dx[argmax] += dy. */

/* General window: scan (kh, kw) in order, keep a running maximum per channel in
 * y itself; a strict > keeps the first maximum on ties. */
void lb_maxpool_forward_ref(float *y, int32_t *argmax, const float *x, int B, int H, int W,
			    int C, int K, int stride, int pad)
{
	const int OH = (H + 2 * pad - K) / stride + 1, OW = (W + 2 * pad - K) / stride + 1;

	for (int b = 0; b < B; b++)
		for (int oh = 0; oh < OH; oh++)
			for (int ow = 0; ow < OW; ow++) {
				float *yo = y + (((size_t)b * OH + oh) * OW + ow) * C;   /* (C) */
				int32_t *ao = argmax + (((size_t)b * OH + oh) * OW + ow) * C;
				int first = 1;
				for (int kh = 0; kh < K; kh++) {
					const int ih = oh * stride - pad + kh;
					if (ih < 0 || ih >= H)
						continue;
					for (int kw = 0; kw < K; kw++) {
						const int iw = ow * stride - pad + kw;
						if (iw < 0 || iw >= W)
							continue;
						const size_t base = (((size_t)b * H + ih) * W + iw) * C;
						const float *xi = x + base;
						if (first) {
							for (int c = 0; c < C; c++) {
								yo[c] = xi[c];
								ao[c] = (int32_t)(base + c);
							}
							first = 0;
							continue;
						}
						for (int c = 0; c < C; c++)
							if (xi[c] > yo[c]) {
								yo[c] = xi[c];
								ao[c] = (int32_t)(base + c);
							}
					}
				}
			}
}

/* K = 2, stride 2, pad 0: four input pixels per output pixel, selects over the
 * channel run without branches (random data mispredicts every other compare),
 * four channels at a time with SSE2. Same tie rule as the twin: order (0,0)
 * (0,1) (1,0) (1,1), strict >, so the first maximum wins. */
static void maxpool_2x2(float *restrict y, int32_t *restrict argmax, const float *restrict x,
			int B, int H, int W, int C)
{
	const int OH = H / 2, OW = W / 2;
	const size_t rowstride = (size_t)W * C;
	const int32_t o1 = C, o2 = (int32_t)rowstride, o3 = o2 + C; /* offsets of the 4 inputs */
#if defined(__SSE2__)
	const __m128i vo1 = _mm_set1_epi32(o1), vo2 = _mm_set1_epi32(o2), vo3 = _mm_set1_epi32(o3);
	const __m128i lane = _mm_setr_epi32(0, 1, 2, 3);
#endif

	for (int b = 0; b < B; b++)
		for (int oh = 0; oh < OH; oh++) {
			const size_t rbase = ((size_t)b * H + 2 * oh) * W * C;
			for (int ow = 0; ow < OW; ow++) {
				const size_t i00 = rbase + (size_t)2 * ow * C;
				const float *p0 = x + i00, *p1 = p0 + o1, *p2 = p0 + o2, *p3 = p0 + o3;
				int c = 0;
#if defined(__SSE2__)
				for (; c + 4 <= C; c += 4) {
					/* max_ps(v, m) = v > m ? v : m, the scalar rule */
					__m128 m = _mm_loadu_ps(p0 + c), v, gt;
					__m128i o = _mm_setzero_si128(), g;
					v = _mm_loadu_ps(p1 + c);
					g = _mm_castps_si128(gt = _mm_cmpgt_ps(v, m));
					o = _mm_or_si128(_mm_and_si128(g, vo1), _mm_andnot_si128(g, o));
					m = _mm_max_ps(v, m);
					v = _mm_loadu_ps(p2 + c);
					g = _mm_castps_si128(gt = _mm_cmpgt_ps(v, m));
					o = _mm_or_si128(_mm_and_si128(g, vo2), _mm_andnot_si128(g, o));
					m = _mm_max_ps(v, m);
					v = _mm_loadu_ps(p3 + c);
					g = _mm_castps_si128(gt = _mm_cmpgt_ps(v, m));
					o = _mm_or_si128(_mm_and_si128(g, vo3), _mm_andnot_si128(g, o));
					m = _mm_max_ps(v, m);
					(void)gt;
					_mm_storeu_ps(y + c, m);
					o = _mm_add_epi32(o, _mm_add_epi32(_mm_set1_epi32((int32_t)i00 + c), lane));
					_mm_storeu_si128((__m128i *)(argmax + c), o);
				}
#endif
				for (; c < C; c++) {
					float m = p0[c];
					int32_t o = 0, g;
					g = -(int32_t)(p1[c] > m);
					o ^= (o ^ o1) & g;
					m = p1[c] > m ? p1[c] : m;
					g = -(int32_t)(p2[c] > m);
					o ^= (o ^ o2) & g;
					m = p2[c] > m ? p2[c] : m;
					g = -(int32_t)(p3[c] > m);
					o ^= (o ^ o3) & g;
					m = p3[c] > m ? p3[c] : m;
					y[c] = m;
					argmax[c] = (int32_t)i00 + c + o;
				}
				y += C;
				argmax += C;
			}
		}
}

void lb_maxpool_forward(float *y, int32_t *argmax, const float *x, int B, int H, int W, int C,
			int K, int stride, int pad)
{
	if (K == 2 && stride == 2 && pad == 0)
		maxpool_2x2(y, argmax, x, B, H, W, C);
	else
		lb_maxpool_forward_ref(y, argmax, x, B, H, W, C, K, stride, pad);
}

void lb_maxpool_backward(float *dx, const float *dy, const int32_t *argmax, size_t n_out)
{
	for (size_t i = 0; i < n_out; i++)
		dx[argmax[i]] += dy[i];
}

/* ---- average pool (count_include_pad) ----
 * y = (1/K^2) sum over the window of x (padding counts as zeros);
 * dx[window] += dy / K^2. */
void lb_avgpool_forward(float *y, const float *x, int B, int H, int W, int C, int K, int stride,
			int pad)
{
	const int OH = (H + 2 * pad - K) / stride + 1, OW = (W + 2 * pad - K) / stride + 1;
	const float inv = 1.0f / (float)(K * K);

	for (int b = 0; b < B; b++)
		for (int oh = 0; oh < OH; oh++)
			for (int ow = 0; ow < OW; ow++) {
				float *yo = y + (((size_t)b * OH + oh) * OW + ow) * C; /* (C) */
				memset(yo, 0, (size_t)C * sizeof(float));
				for (int kh = 0; kh < K; kh++) {
					const int ih = oh * stride - pad + kh;
					if (ih < 0 || ih >= H)
						continue;
					for (int kw = 0; kw < K; kw++) {
						const int iw = ow * stride - pad + kw;
						if (iw < 0 || iw >= W)
							continue;
						const float *xi = x + (((size_t)b * H + ih) * W + iw) * C;
						for (int c = 0; c < C; c++)
							yo[c] += xi[c];
					}
				}
				for (int c = 0; c < C; c++)
					yo[c] *= inv;
			}
}

void lb_avgpool_backward(float *dx, const float *dy, int B, int H, int W, int C, int K,
			 int stride, int pad)
{
	const int OH = (H + 2 * pad - K) / stride + 1, OW = (W + 2 * pad - K) / stride + 1;
	const float inv = 1.0f / (float)(K * K);

	for (int b = 0; b < B; b++)
		for (int oh = 0; oh < OH; oh++)
			for (int ow = 0; ow < OW; ow++) {
				const float *g = dy + (((size_t)b * OH + oh) * OW + ow) * C; /* (C) */
				for (int kh = 0; kh < K; kh++) {
					const int ih = oh * stride - pad + kh;
					if (ih < 0 || ih >= H)
						continue;
					for (int kw = 0; kw < K; kw++) {
						const int iw = ow * stride - pad + kw;
						if (iw < 0 || iw >= W)
							continue;
						float *dxi = dx + (((size_t)b * H + ih) * W + iw) * C;
						for (int c = 0; c < C; c++)
							dxi[c] += g[c] * inv;
					}
				}
			}
}

/* ---- global average pool ----
 * y[b,c] = (1/HW) sum_p x[b,p,c] (double sums, a block of channels at a time);
 * dx[b,p,c] += dy[b,c] / HW. */
void lb_gap_forward(float *y, const float *x, int B, int HW, int C)
{
	enum { BLOCK = 64 };
	double acc[BLOCK];

	for (int b = 0; b < B; b++) {
		const float *xb = x + (size_t)b * HW * C; /* (HW, C) */
		for (int c0 = 0; c0 < C; c0 += BLOCK) {
			const int n = C - c0 < BLOCK ? C - c0 : BLOCK;
			for (int j = 0; j < n; j++)
				acc[j] = 0.0;
			for (int p = 0; p < HW; p++)
				for (int j = 0; j < n; j++)
					acc[j] += xb[(size_t)p * C + c0 + j];
			for (int j = 0; j < n; j++)
				y[(size_t)b * C + c0 + j] = (float)(acc[j] / HW);
		}
	}
}

void lb_gap_backward(float *dx, const float *dy, int B, int HW, int C)
{
	const float inv = 1.0f / (float)HW;

	for (int b = 0; b < B; b++)
		for (int p = 0; p < HW; p++) {
			float *d = dx + ((size_t)b * HW + p) * C;
			const float *g = dy + (size_t)b * C;
			for (int c = 0; c < C; c++)
				d[c] += g[c] * inv;
		}
}
