/* SPDX-License-Identifier: MIT
 * Layer kernels: forward/backward pairs as pure functions on raw pointers.
 *
 * Conventions (every kernel):
 * - Activations are NHWC: sample b, row h, column w, channel c lives at
 *   ((b*H + h)*W + w)*C + c. A sample's activations are contiguous.
 * - Argument order: outputs, inputs/weights, sizes (llm.c).
 * - Backward ACCUMULATES (+=) into every gradient it writes; pass NULL for a
 *   gradient that is not wanted. lb_model_zero_grad is the only place
 *   gradients are cleared.
 * - No allocation: caches and workspaces are passed in, sized at model build.
 * - Sums of many floats (statistics) accumulate in double.
 * Each kernel with a fast path has a *_ref plain-loop twin for the tests. */
#ifndef LB_LAYERS_H
#define LB_LAYERS_H

#include <stddef.h>
#include <stdint.h>

/* ---- linear ----
 * y = x W^T + b      x:(B,C_in)  W:(C_out,C_in)  b:(C_out) or NULL  y:(B,C_out)
 * dx += dy W         dW += dy^T x               db += sum_B dy */
void lb_linear_forward(float *y, const float *x, const float *w, const float *b, int B, int C_in,
		       int C_out);
void lb_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
			const float *w, int B, int C_in, int C_out);
/* Plain-loop twins of the sgemm path (double accumulators), for the tests. */
void lb_linear_forward_ref(float *y, const float *x, const float *w, const float *b, int B,
			   int C_in, int C_out);
void lb_linear_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
			    const float *w, int B, int C_in, int C_out);

/* ---- conv2d (im2col + sgemm) ----
 * x:(B,H,W,C_in)  w:(C_out,K,K,C_in)  b:(C_out) or NULL  y:(B,OH,OW,C_out)
 * OH = (H + 2 pad - K)/stride + 1 (same for OW). Zero padding.
 * col:(B*OH*OW, K*K*C_in) is the im2col matrix: row = output pixel,
 * column = (kh, kw, c_in). Forward: col = im2col(x); y = col W^T + b.
 * Backward: dW += dy^T col; db += sum dy; dcol = dy W; dx += col2im(dcol).
 * Backward uses `col` as left by the forward when col_valid is 1, otherwise it
 * recomputes im2col from x into col first; afterwards col holds dcol (it is a
 * workspace the model may share between layers). */
struct lb_conv_shape {
	int B, H, W, C_in, C_out, K, stride, pad, OH, OW;
};
void lb_conv_shape_init(struct lb_conv_shape *s, int B, int H, int W, int C_in, int C_out, int K,
			int stride, int pad);
size_t lb_conv_col_size(const struct lb_conv_shape *s); /* floats in col */
void lb_im2col(float *col, const float *x, const struct lb_conv_shape *s);
void lb_col2im_add(float *dx, const float *col, const struct lb_conv_shape *s);
void lb_conv2d_forward(float *y, float *col, const float *x, const float *w, const float *b,
		       const struct lb_conv_shape *s);
void lb_conv2d_backward(float *dx, float *dw, float *db, float *col, int col_valid,
			const float *dy, const float *x, const float *w,
			const struct lb_conv_shape *s);
/* Direct 7-loop convolution, the reference twin (forward and backward). */
void lb_conv2d_forward_ref(float *y, const float *x, const float *w, const float *b,
			   const struct lb_conv_shape *s);
void lb_conv2d_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
			    const float *w, const struct lb_conv_shape *s);

/* ---- pooling (NHWC, window K, stride S, zero... no: padding excluded) ----
 * OH = (H + 2 pad - K)/stride + 1. Max pool ignores padded positions; average
 * pool divides by K*K (count_include_pad = true, as PyTorch's default).
 * argmax:(B,OH,OW,C) holds the index into x of each maximum (first one on ties). */
void lb_maxpool_forward(float *y, int32_t *argmax, const float *x, int B, int H, int W, int C,
			int K, int stride, int pad);
/* The general window loop: the twin of the K=2, stride 2, pad 0 fast path. */
void lb_maxpool_forward_ref(float *y, int32_t *argmax, const float *x, int B, int H, int W,
			    int C, int K, int stride, int pad);
void lb_maxpool_backward(float *dx, const float *dy, const int32_t *argmax, size_t n_out);
void lb_avgpool_forward(float *y, const float *x, int B, int H, int W, int C, int K, int stride,
			int pad);
void lb_avgpool_backward(float *dx, const float *dy, int B, int H, int W, int C, int K,
			 int stride, int pad);
/* global average pool: x:(B,HW,C) -> y:(B,C) */
void lb_gap_forward(float *y, const float *x, int B, int HW, int C);
void lb_gap_backward(float *dx, const float *dy, int B, int HW, int C);

/* ---- pointwise ----
 * relu: y = max(x, 0); dx += dy [y > 0]
 * relu6: y = min(max(x, 0), 6); dx += dy [0 < y < 6]   (backward reads y) */
void lb_relu_forward(float *y, const float *x, size_t n);
void lb_relu_backward(float *dx, const float *dy, const float *y, size_t n);
/* In-place backward for a ReLU that shares its gradient buffer with its input
 * (the input has no other reader): g = g [y > 0], i.e. dx = dy [y > 0] when
 * dx and dy are one buffer that held only dy. */
void lb_relu_backward_inplace(float *g, const float *y, size_t n);
void lb_relu6_backward_inplace(float *g, const float *y, size_t n);
void lb_relu6_forward(float *y, const float *x, size_t n);
void lb_relu6_backward(float *dx, const float *dy, const float *y, size_t n);
/* residual add: y = a + b; backward: da += dy, db += dy (either may be NULL) */
void lb_add_forward(float *y, const float *a, const float *b, size_t n);
void lb_add_backward(float *da, float *db, const float *dy, size_t n);

/* ---- dropout (inverted) ----
 * keep with probability 1-p; y = x * mask / (1-p). mask:(n) bytes.
 * The mask of element i is a pure function of (seed, step, layer, i) through
 * the counter generator (purpose LB_RNG_DROPOUT), so ranks agree and a
 * resumed run redraws the same mask. first_index = global index of element 0
 * (lets a shard of a batch draw the masks the whole batch would). */
void lb_dropout_forward(float *y, uint8_t *mask, const float *x, size_t n, float p, uint64_t seed,
			uint32_t step, uint32_t layer, uint64_t first_index);
void lb_dropout_backward(float *dx, const float *dy, const uint8_t *mask, size_t n, float p);

/* ---- batch norm over channels (NHWC: N = B*H*W rows of C) ----
 * train: mean/var over the N rows (biased var for normalisation), y = gamma xhat + beta,
 *        running = (1-momentum) running + momentum batch (unbiased var), PyTorch semantics.
 *        mean, rstd:(C) are caches for backward.
 * eval:  uses running_mean/running_var.
 * backward (train mode): dx += (gamma rstd / N)(N dy - sum dy - xhat sum dy xhat),
 *        dgamma += sum dy xhat, dbeta += sum dy.
 * gamma/beta may be NULL (affine = False: gamma 1, beta 0); so may running_*. */
void lb_batchnorm_forward_train(float *y, float *mean, float *rstd, const float *x,
				const float *gamma, const float *beta, float *running_mean,
				float *running_var, float momentum, float eps, size_t N, int C);
void lb_batchnorm_forward_eval(float *y, const float *x, const float *gamma, const float *beta,
			       const float *running_mean, const float *running_var, float eps,
			       size_t N, int C);
void lb_batchnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy,
			   const float *x, const float *mean, const float *rstd,
			   const float *gamma, size_t N, int C);

/* ---- softmax cross-entropy ----
 * probs:(B,C) = softmax(logits); returns the SUM over the batch of -log p[label]
 * (double). correct (may be NULL) receives the number of argmax hits.
 * backward: dlogits += scale * (probs - onehot(label)). With scale = 1/B_global the
 * gradient of a batch is the sum of the gradients of its shards. */
double lb_softmax_xent_forward(float *probs, int *correct, const float *logits,
			       const int32_t *labels, int B, int C);
void lb_softmax_xent_backward(float *dlogits, const float *probs, const int32_t *labels, int B,
			      int C, float scale);

#endif
