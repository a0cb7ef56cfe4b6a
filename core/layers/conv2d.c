/* SPDX-License-Identifier: MIT
 * 2-D convolution on NHWC activations: im2col over the whole batch + one sgemm
 * (Chellapilla et al., "High performance convolutional neural networks for
 * document processing", 2006), with a direct 7-loop reference twin.
 * Semantics: PyTorch torch.nn.Conv2d (cross-correlation, zero padding, no
 * dilation or groups). Derivation: docs/layers/conv2d.md. */
#include "layers.h"

#include <assert.h>
#include <string.h>

#include "gemm.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* floats of dcol per gemm + col2im block in the backward (256 KiB: L2-resident) */
#ifndef DCOL_BLOCK_FLOATS
#define DCOL_BLOCK_FLOATS (64 * 1024)
#endif

void lb_conv_shape_init(struct lb_conv_shape *s, int B, int H, int W, int C_in, int C_out, int K,
			int stride, int pad)
{
	s->B = B;
	s->H = H;
	s->W = W;
	s->C_in = C_in;
	s->C_out = C_out;
	s->K = K;
	s->stride = stride;
	s->pad = pad;
	s->OH = (H + 2 * pad - K) / stride + 1;
	s->OW = (W + 2 * pad - K) / stride + 1;
}

size_t lb_conv_col_size(const struct lb_conv_shape *s)
{
	return (size_t)s->B * s->OH * s->OW * s->K * s->K * s->C_in;
}

/* ---- im2col / col2im ----
 * In NHWC the K*C_in values of one kernel row (kw, c_in) are contiguous in x for
 * any stride: they are K neighbouring pixels of one input row. So every row of
 * col is K runs of K*C_in floats, copied (or added back) as whole runs; only
 * runs that touch the padding are split into zeros + a shorter copy. */

/* Short runs (C_in = 1) lose to the call overhead of memcpy. */
static inline void copy_run(float *restrict dst, const float *restrict src, int n)
{
	if (n >= 32) {
		memcpy(dst, src, (size_t)n * sizeof(float));
		return;
	}
	for (int i = 0; i < n; i++)
		dst[i] = src[i];
}

static inline void add_run(float *restrict dst, const float *restrict src, int n)
{
	int i = 0;
#if defined(__SSE2__)
	for (; i + 8 <= n; i += 8) {
		_mm_storeu_ps(dst + i, _mm_add_ps(_mm_loadu_ps(dst + i), _mm_loadu_ps(src + i)));
		_mm_storeu_ps(dst + i + 4,
			      _mm_add_ps(_mm_loadu_ps(dst + i + 4), _mm_loadu_ps(src + i + 4)));
	}
	for (; i + 4 <= n; i += 4)
		_mm_storeu_ps(dst + i, _mm_add_ps(_mm_loadu_ps(dst + i), _mm_loadu_ps(src + i)));
#endif
	for (; i < n; i++)
		dst[i] += src[i];
}

/* col:(B*OH*OW, K*K*C_in)  x:(B,H,W,C_in) */
void lb_im2col(float *col, const float *x, const struct lb_conv_shape *s)
{
	const int K = s->K, C = s->C_in, S = s->stride, P = s->pad;
	const int run = K * C; /* one (kw, c_in) kernel row */

	if (P == 0) {
		/* No padding: every run is a plain copy. */
		for (int b = 0; b < s->B; b++)
			for (int oh = 0; oh < s->OH; oh++)
				for (int ow = 0; ow < s->OW; ow++) {
					const float *src = x + (((size_t)b * s->H + (size_t)oh * S) * s->W +
								(size_t)ow * S) * C;
					for (int kh = 0; kh < K; kh++) {
						copy_run(col, src, run);
						col += run;
						src += (size_t)s->W * C;
					}
				}
		return;
	}
	for (int b = 0; b < s->B; b++)
		for (int oh = 0; oh < s->OH; oh++)
			for (int ow = 0; ow < s->OW; ow++) {
				const int iw0 = ow * S - P;
				/* kw range that lands inside the image */
				const int kw_lo = iw0 < 0 ? -iw0 : 0;
				const int kw_hi = iw0 + K > s->W ? s->W - iw0 : K;
				for (int kh = 0; kh < K; kh++, col += run) {
					const int ih = oh * S - P + kh;
					if (ih < 0 || ih >= s->H || kw_hi <= kw_lo) {
						memset(col, 0, (size_t)run * sizeof(float));
						continue;
					}
					const float *src = x + (((size_t)b * s->H + ih) * s->W +
								(iw0 + kw_lo)) * C;
					if (kw_lo > 0)
						memset(col, 0, (size_t)kw_lo * C * sizeof(float));
					copy_run(col + (size_t)kw_lo * C, src, (kw_hi - kw_lo) * C);
					if (kw_hi < K)
						memset(col + (size_t)kw_hi * C, 0,
						       (size_t)(K - kw_hi) * C * sizeof(float));
				}
			}
}

/* dx += col2im of the col rows [m0, m1) (col points at row m0). */
static void col2im_rows(float *dx, const float *col, const struct lb_conv_shape *s, int m0,
			int m1)
{
	const int K = s->K, C = s->C_in, S = s->stride, P = s->pad;
	const int run = K * C;
	int ow = m0 % s->OW, oh = m0 / s->OW % s->OH, b = m0 / (s->OW * s->OH);

	for (int m = m0; m < m1; m++) {
		const int iw0 = ow * S - P;
		const int kw_lo = iw0 < 0 ? -iw0 : 0;
		const int kw_hi = iw0 + K > s->W ? s->W - iw0 : K;
		for (int kh = 0; kh < K; kh++, col += run) {
			const int ih = oh * S - P + kh;
			if (ih < 0 || ih >= s->H || kw_hi <= kw_lo)
				continue;
			float *dst = dx + (((size_t)b * s->H + ih) * s->W + (iw0 + kw_lo)) * C;
			add_run(dst, col + (size_t)kw_lo * C, (kw_hi - kw_lo) * C);
		}
		if (++ow == s->OW) {
			ow = 0;
			if (++oh == s->OH)
				oh = 0, b++;
		}
	}
}

/* dx:(B,H,W,C_in) += col2im(col); the adjoint of lb_im2col. */
void lb_col2im_add(float *dx, const float *col, const struct lb_conv_shape *s)
{
	col2im_rows(dx, col, s, 0, s->B * s->OH * s->OW);
}

/* db:(C) += sum over the M rows of dy:(M,C), in double, a block of channels at a time. */
static void sum_rows_add(float *db, const float *dy, size_t M, int C)
{
	enum { BLOCK = 64 };
	double acc[BLOCK];

	for (int c0 = 0; c0 < C; c0 += BLOCK) {
		const int n = C - c0 < BLOCK ? C - c0 : BLOCK;
		for (int j = 0; j < n; j++)
			acc[j] = 0.0;
		for (size_t m = 0; m < M; m++) {
			const float *row = dy + m * C + c0;
			int j = 0;
#if defined(__SSE2__)
			for (; j + 4 <= n; j += 4) {
				const __m128 v = _mm_loadu_ps(row + j);
				_mm_storeu_pd(acc + j, _mm_add_pd(_mm_loadu_pd(acc + j), _mm_cvtps_pd(v)));
				_mm_storeu_pd(acc + j + 2, _mm_add_pd(_mm_loadu_pd(acc + j + 2),
								      _mm_cvtps_pd(_mm_movehl_ps(v, v))));
			}
#endif
			for (; j < n; j++)
				acc[j] += row[j];
		}
		for (int j = 0; j < n; j++)
			db[c0 + j] += (float)acc[j];
	}
}

/* ---- fast path ----
 * y = col W^T + b    col:(M, KKC)  W:(C_out, KKC)  y:(M, C_out), M = B*OH*OW */
void lb_conv2d_forward(float *y, float *col, const float *x, const float *w, const float *b,
		       const struct lb_conv_shape *s)
{
	const int M = s->B * s->OH * s->OW, KKC = s->K * s->K * s->C_in, N = s->C_out;

	assert(s->OH > 0 && s->OW > 0 && s->stride > 0 && s->pad >= 0);
	lb_im2col(col, x, s);
	if (b) {
		for (int m = 0; m < M; m++)
			memcpy(y + (size_t)m * N, b, (size_t)N * sizeof(float));
	}
	/* y (M,N) = col (M,KKC) * W^T (KKC,N) [+ y holding the bias] */
	lb_gemm(0, 1, M, N, KKC, 1.0f, col, w, b ? 1.0f : 0.0f, y);
}

/* dW += dy^T col; db += sum dy; dcol = dy W; dx += col2im(dcol). */
void lb_conv2d_backward(float *dx, float *dw, float *db, float *col, int col_valid,
			const float *dy, const float *x, const float *w,
			const struct lb_conv_shape *s)
{
	const int M = s->B * s->OH * s->OW, KKC = s->K * s->K * s->C_in, N = s->C_out;

	assert(s->OH > 0 && s->OW > 0 && s->stride > 0 && s->pad >= 0);
	if (dw) {
		if (!col_valid)
			lb_im2col(col, x, s);
		/* dW (N,KKC) += dy^T (N,M) * col (M,KKC) */
		lb_gemm(1, 0, N, KKC, M, 1.0f, dy, col, 1.0f, dw);
	}
	if (db)
		sum_rows_add(db, dy, (size_t)M, N);
	if (dx) {
		/* dcol (M,KKC) = dy (M,N) * W (N,KKC), then dx += col2im(dcol): by blocks of
		 * rows that stay in L2 between the gemm that writes them and the scatter
		 * that reads them. */
		const int rows = KKC >= DCOL_BLOCK_FLOATS ? 8 : (DCOL_BLOCK_FLOATS / KKC + 7) / 8 * 8;
		for (int m0 = 0; m0 < M; m0 += rows) {
			const int mb = M - m0 < rows ? M - m0 : rows;
			float *cb = col + (size_t)m0 * KKC;
			lb_gemm(0, 0, mb, KKC, N, 1.0f, dy + (size_t)m0 * N, w, 0.0f, cb);
			col2im_rows(dx, cb, s, m0, m0 + mb);
		}
	}
}

/* ---- reference twin: direct loops, double accumulators ---- */

void lb_conv2d_forward_ref(float *y, const float *x, const float *w, const float *b,
			   const struct lb_conv_shape *s)
{
	const int K = s->K, C = s->C_in;

	for (int n = 0; n < s->B; n++)
		for (int oh = 0; oh < s->OH; oh++)
			for (int ow = 0; ow < s->OW; ow++)
				for (int co = 0; co < s->C_out; co++) {
					double acc = b ? b[co] : 0.0;
					for (int kh = 0; kh < K; kh++)
						for (int kw = 0; kw < K; kw++) {
							const int ih = oh * s->stride - s->pad + kh;
							const int iw = ow * s->stride - s->pad + kw;
							if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W)
								continue;
							for (int ci = 0; ci < C; ci++)
								acc += (double)x[(((size_t)n * s->H + ih) * s->W + iw) * C + ci] *
								       w[(((size_t)co * K + kh) * K + kw) * C + ci];
						}
					y[(((size_t)n * s->OH + oh) * s->OW + ow) * s->C_out + co] = (float)acc;
				}
}

void lb_conv2d_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
			    const float *w, const struct lb_conv_shape *s)
{
	const int K = s->K, C = s->C_in;

	for (int n = 0; n < s->B; n++)
		for (int oh = 0; oh < s->OH; oh++)
			for (int ow = 0; ow < s->OW; ow++)
				for (int co = 0; co < s->C_out; co++) {
					const float g = dy[(((size_t)n * s->OH + oh) * s->OW + ow) * s->C_out + co];
					if (db)
						db[co] += g;
					for (int kh = 0; kh < K; kh++)
						for (int kw = 0; kw < K; kw++) {
							const int ih = oh * s->stride - s->pad + kh;
							const int iw = ow * s->stride - s->pad + kw;
							if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W)
								continue;
							const size_t xi = (((size_t)n * s->H + ih) * s->W + iw) * C;
							const size_t wi = (((size_t)co * K + kh) * K + kw) * C;
							for (int ci = 0; ci < C; ci++) {
								if (dw)
									dw[wi + ci] += g * x[xi + ci];
								if (dx)
									dx[xi + ci] += g * w[wi + ci];
							}
						}
				}
}
