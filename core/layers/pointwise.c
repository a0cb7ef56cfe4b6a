/* SPDX-License-Identifier: MIT
 * Pointwise kernels: ReLU, ReLU6 and the residual add (PyTorch torch.nn.ReLU,
 * torch.nn.ReLU6, tensor +). The backward of relu/relu6 reads the output y, so
 * the layer may run in place (y == x). */
#include "layers.h"

/* y = max(x, 0); dx += dy [y > 0] */
void lb_relu_forward(float *y, const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void lb_relu_backward(float *dx, const float *dy, const float *y, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dx[i] += y[i] > 0.0f ? dy[i] : 0.0f;
}

/* y = min(max(x, 0), 6); dx += dy [0 < y < 6] */
void lb_relu6_forward(float *y, const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const float v = x[i] > 0.0f ? x[i] : 0.0f;
		y[i] = v < 6.0f ? v : 6.0f;
	}
}

void lb_relu6_backward(float *dx, const float *dy, const float *y, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dx[i] += (y[i] > 0.0f && y[i] < 6.0f) ? dy[i] : 0.0f;
}

/* y = a + b; da += dy, db += dy */
void lb_add_forward(float *y, const float *a, const float *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] = a[i] + b[i];
}

void lb_add_backward(float *da, float *db, const float *dy, size_t n)
{
	if (da)
		for (size_t i = 0; i < n; i++)
			da[i] += dy[i];
	if (db)
		for (size_t i = 0; i < n; i++)
			db[i] += dy[i];
}
