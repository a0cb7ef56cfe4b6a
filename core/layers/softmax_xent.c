/* SPDX-License-Identifier: MIT
 * Softmax + cross-entropy over class logits (PyTorch
 * torch.nn.CrossEntropyLoss with reduction='sum'). Numerically stable: the row
 * maximum is subtracted and log-sum-exp is accumulated in double. */
#include "layers.h"

#include <math.h>

/* probs = softmax(logits); loss = sum_b (log sum_c e^{z_bc - max_b} - (z_b,label - max_b));
 * correct = #{b : first argmax_c z_bc == label_b} */
double lb_softmax_xent_forward(float *probs, int *correct, const float *logits,
			       const int32_t *labels, int B, int C)
{
	double loss = 0.0;
	int hits = 0;

	for (int b = 0; b < B; b++) {
		const float *z = logits + (size_t)b * C; /* (C) */
		float *p = probs + (size_t)b * C;        /* (C) */
		int arg = 0;
		for (int c = 1; c < C; c++)
			if (z[c] > z[arg])
				arg = c;
		const float zmax = z[arg];
		double sum = 0.0;
		for (int c = 0; c < C; c++) {
			const double e = exp((double)z[c] - zmax);
			p[c] = (float)e;
			sum += e;
		}
		const double inv = 1.0 / sum;
		for (int c = 0; c < C; c++)
			p[c] = (float)(p[c] * inv);
		loss += log(sum) - ((double)z[labels[b]] - zmax);
		hits += arg == labels[b];
	}
	if (correct)
		*correct = hits;
	return loss;
}

/* dlogits += scale (probs - onehot(label)) */
void lb_softmax_xent_backward(float *dlogits, const float *probs, const int32_t *labels, int B,
			      int C, float scale)
{
	for (int b = 0; b < B; b++) {
		const float *p = probs + (size_t)b * C;
		float *d = dlogits + (size_t)b * C;
		for (int c = 0; c < C; c++)
			d[c] += scale * p[c];
		d[labels[b]] -= scale;
	}
}
