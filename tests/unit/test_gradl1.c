/* SPDX-License-Identifier: MIT
 * Gradient-L1 regularizer (core/models/gradl1.c): the Hessian-vector product
 * R{g} along V = λ_w sign(g) and S_l = λ_a sign(dL/dy_l).
 *
 * 1. A float64 reference written here (its own forward, backward, R-forward
 *    and R-backward over the node list of three small nets: an MLP, a CNN
 *    with two convs and a max pool, a residual net with ReLU6, add, average
 *    pool, global pool and dropout): its R-op equals central differences of
 *    its own gradient, g(θ+εV; y+εS) - g(θ-εV; y-εS) / 2ε, to 1e-6, for the
 *    weight term, the activation term and both.
 * 2. lowbit's float32 R-op (lb_gradl1_hvp) equals the float64 R-op to 1e-4;
 *    its FD mode to 1e-2 (float32 central differences: the gradient
 *    difference of two nearby points carries ~1e-7 |g| rounding, divided by
 *    2ε; ε is also kept small so no ReLU flips).
 * 3. R-op refuses batch norm naming the layer; FD accepts it.
 * 4. The taps leave the gradients bit for bit unchanged; FD restores m->w,
 *    m->g and the BN running statistics bit for bit.
 * 5. The HVP of a batch is the sum of the HVPs of its two halves.
 * Inputs are redrawn until no ReLU pre-activation lies within 1e-3 of a kink
 * and no max-pool window has a near tie. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "config.h"
#include "err.h"
#include "models/gradl1.h"
#include "models/model.h"
#include "rng.h"

#define KINK_MARGIN 1e-3

/* ---- float64 reference over a model's node list (structure only) ---- */

struct ref {
	const struct lb_model *m;
	int B;
	size_t nw;
	double **y, **dy, **Ry, **Rdy; /* (n_nodes) x (B, size); no aliasing */
	int **argmax;                  /* maxpool: index into the input */
	const uint8_t **mask;          /* dropout masks (borrowed) */
	uint8_t *is_act;
	int32_t labels[16];
	double *w, *g, *Rg;            /* (nw) */
	double scale;
};

static double *dalloc(size_t n)
{
	return calloc(n ? n : 1, sizeof(double));
}

static struct ref *ref_new(const struct lb_model *m, int B)
{
	struct ref *r = calloc(1, sizeof *r);
	int N = m->n_nodes;
	r->m = m;
	r->B = B;
	r->nw = m->n_weights;
	r->y = calloc((size_t)N, sizeof *r->y);
	r->dy = calloc((size_t)N, sizeof *r->dy);
	r->Ry = calloc((size_t)N, sizeof *r->Ry);
	r->Rdy = calloc((size_t)N, sizeof *r->Rdy);
	r->argmax = calloc((size_t)N, sizeof *r->argmax);
	r->mask = calloc((size_t)N, sizeof *r->mask);
	r->is_act = calloc((size_t)N, 1);
	for (int i = 0; i < N; i++) {
		size_t n = (size_t)B * m->nodes[i].size;
		r->y[i] = dalloc(n);
		r->dy[i] = dalloc(n);
		r->Ry[i] = dalloc(n);
		r->Rdy[i] = dalloc(n);
		r->argmax[i] = calloc(n ? n : 1, sizeof(int));
	}
	/* activation tensors: inputs of conv/linear, through flattens, not the input */
	for (int i = 1; i < N; i++) {
		const struct lb_node *nd = &m->nodes[i];
		if (nd->op != LB_OP_CONV && nd->op != LB_OP_LINEAR)
			continue;
		int t = nd->in;
		while (t > 0 && m->nodes[t].op == LB_OP_FLATTEN)
			t = m->nodes[t].in;
		if (t > 0)
			r->is_act[t] = 1;
	}
	r->w = dalloc(r->nw);
	r->g = dalloc(r->nw);
	r->Rg = dalloc(r->nw);
	r->scale = 1.0 / B;
	return r;
}

static void ref_free(struct ref *r)
{
	for (int i = 0; i < r->m->n_nodes; i++) {
		free(r->y[i]);
		free(r->dy[i]);
		free(r->Ry[i]);
		free(r->Rdy[i]);
		free(r->argmax[i]);
	}
	free(r->y);
	free(r->dy);
	free(r->Ry);
	free(r->Rdy);
	free(r->argmax);
	free(r->mask);
	free(r->is_act);
	free(r->w);
	free(r->g);
	free(r->Rg);
	free(r);
}

static const double *wp(const struct ref *r, const double *blk, int idx)
{
	return idx >= 0 && blk ? blk + r->m->params[idx].offset : NULL;
}

/* y += x W^T (linear) over the batch */
static void lin_mm(const struct ref *r, double *y, const double *x, const double *W, int Cin,
		   int Cout)
{
	for (int b = 0; b < r->B; b++)
		for (int o = 0; o < Cout; o++) {
			double s = 0;
			for (int k = 0; k < Cin; k++)
				s += x[(size_t)b * Cin + k] * W[(size_t)o * Cin + k];
			y[(size_t)b * Cout + o] += s;
		}
}

/* dx += dy W (if dx); dW += dy^T x (if dW) */
static void lin_mm_bwd(const struct ref *r, double *dx, double *dW, const double *dy,
		       const double *x, const double *W, int Cin, int Cout)
{
	for (int b = 0; b < r->B; b++)
		for (int o = 0; o < Cout; o++) {
			double d = dy[(size_t)b * Cout + o];
			for (int k = 0; k < Cin; k++) {
				if (dx)
					dx[(size_t)b * Cin + k] += d * W[(size_t)o * Cin + k];
				if (dW)
					dW[(size_t)o * Cin + k] += d * x[(size_t)b * Cin + k];
			}
		}
}

/* direct convolution, y += conv(x, W) / its adjoints */
static void conv_mm(const struct ref *r, int i, double *y, double *dx, double *dW,
		    const double *dy, const double *x, const double *W)
{
	const struct lb_node *nd = &r->m->nodes[i], *in = &r->m->nodes[nd->in];
	int K = nd->K, S = nd->stride, P = nd->pad, Ci = in->C, Co = nd->C;
	for (int b = 0; b < r->B; b++)
		for (int oh = 0; oh < nd->H; oh++)
			for (int ow = 0; ow < nd->W; ow++)
				for (int co = 0; co < Co; co++) {
					size_t oi = (((size_t)b * nd->H + oh) * nd->W + ow) * Co + co;
					double s = 0, d = dy ? dy[oi] : 0;
					for (int kh = 0; kh < K; kh++)
						for (int kw = 0; kw < K; kw++) {
							int ih = oh * S - P + kh, iw = ow * S - P + kw;
							if (ih < 0 || ih >= in->H || iw < 0 || iw >= in->W)
								continue;
							for (int ci = 0; ci < Ci; ci++) {
								size_t xi = (((size_t)b * in->H + ih) * in->W + iw) * Ci + ci;
								size_t wi = (((size_t)co * K + kh) * K + kw) * Ci + ci;
								if (y)
									s += x[xi] * W[wi];
								if (dx)
									dx[xi] += d * W[wi];
								if (dW)
									dW[wi] += d * x[xi];
							}
						}
					if (y)
						y[oi] += s;
				}
}

/* y += x W^T (+ b) for a conv/linear node i; NULL W/b skip */
static void param_fwd(const struct ref *r, int i, double *y, const double *x, const double *W,
		      const double *bias)
{
	const struct lb_node *nd = &r->m->nodes[i];
	if (W) {
		if (nd->op == LB_OP_LINEAR)
			lin_mm(r, y, x, W, (int)r->m->nodes[nd->in].size, nd->C);
		else
			conv_mm(r, i, y, NULL, NULL, NULL, x, W);
	}
	if (bias)
		for (size_t k = 0; k < (size_t)r->B * nd->size; k++)
			y[k] += bias[k % nd->C];
}

static void param_bwd(const struct ref *r, int i, double *dx, double *dW, double *db,
		      const double *dy, const double *x, const double *W)
{
	const struct lb_node *nd = &r->m->nodes[i];
	if (nd->op == LB_OP_LINEAR)
		lin_mm_bwd(r, dx, dW, dy, x, W, (int)r->m->nodes[nd->in].size, nd->C);
	else
		conv_mm(r, i, NULL, dx, dW, dy, x, W);
	if (db)
		for (size_t k = 0; k < (size_t)r->B * nd->size; k++)
			db[k % nd->C] += dy[k];
}

static double relu_d(const struct lb_node *nd, double a)
{
	if (nd->op == LB_OP_RELU6)
		return a > 0 && a < 6 ? 1.0 : 0.0;
	return a > 0 ? 1.0 : 0.0;
}

/* The linear map of a parameter-free node at the stored masks (ReLU
 * derivative from its input y, max-pool argmax, dropout mask): out = J in. */
static void lin_fwd(const struct ref *r, int i, double *out, const double *in1, const double *in2)
{
	const struct lb_node *nd = &r->m->nodes[i], *in = &r->m->nodes[nd->in];
	size_t n = (size_t)r->B * nd->size;
	switch (nd->op) {
	case LB_OP_RELU:
	case LB_OP_RELU6:
		for (size_t k = 0; k < n; k++)
			out[k] = relu_d(nd, r->y[nd->in][k]) * in1[k];
		break;
	case LB_OP_MAXPOOL:
		for (size_t k = 0; k < n; k++)
			out[k] = in1[r->argmax[i][k]];
		break;
	case LB_OP_AVGPOOL:
		memset(out, 0, n * sizeof *out);
		for (int b = 0; b < r->B; b++)
			for (int oh = 0; oh < nd->H; oh++)
				for (int ow = 0; ow < nd->W; ow++)
					for (int kh = 0; kh < nd->K; kh++)
						for (int kw = 0; kw < nd->K; kw++) {
							int ih = oh * nd->stride - nd->pad + kh;
							int iw = ow * nd->stride - nd->pad + kw;
							if (ih < 0 || ih >= in->H || iw < 0 || iw >= in->W)
								continue;
							for (int c = 0; c < nd->C; c++)
								out[(((size_t)b * nd->H + oh) * nd->W + ow) * nd->C + c] +=
									in1[(((size_t)b * in->H + ih) * in->W + iw) * in->C + c] /
									(nd->K * nd->K);
						}
		break;
	case LB_OP_GAP: {
		int HW = in->H * in->W;
		memset(out, 0, n * sizeof *out);
		for (int b = 0; b < r->B; b++)
			for (int p = 0; p < HW; p++)
				for (int c = 0; c < nd->C; c++)
					out[(size_t)b * nd->C + c] += in1[((size_t)b * HW + p) * nd->C + c] / HW;
		break;
	}
	case LB_OP_ADD:
		for (size_t k = 0; k < n; k++)
			out[k] = in1[k] + in2[k];
		break;
	case LB_OP_DROPOUT:
		for (size_t k = 0; k < n; k++)
			out[k] = nd->p > 0 ? (r->mask[i][k] ? in1[k] / (1.0 - nd->p) : 0.0) : in1[k];
		break;
	case LB_OP_FLATTEN:
		memcpy(out, in1, n * sizeof *out);
		break;
	default:
		abort();
	}
}

/* The adjoint: din1 += J^T dout (din2 for add). */
static void lin_bwd(const struct ref *r, int i, double *din1, double *din2, const double *dout)
{
	const struct lb_node *nd = &r->m->nodes[i], *in = &r->m->nodes[nd->in];
	size_t n = (size_t)r->B * nd->size;
	switch (nd->op) {
	case LB_OP_RELU:
	case LB_OP_RELU6:
		for (size_t k = 0; k < n; k++)
			din1[k] += relu_d(nd, r->y[nd->in][k]) * dout[k];
		break;
	case LB_OP_MAXPOOL:
		for (size_t k = 0; k < n; k++)
			din1[r->argmax[i][k]] += dout[k];
		break;
	case LB_OP_AVGPOOL:
		for (int b = 0; b < r->B; b++)
			for (int oh = 0; oh < nd->H; oh++)
				for (int ow = 0; ow < nd->W; ow++)
					for (int kh = 0; kh < nd->K; kh++)
						for (int kw = 0; kw < nd->K; kw++) {
							int ih = oh * nd->stride - nd->pad + kh;
							int iw = ow * nd->stride - nd->pad + kw;
							if (ih < 0 || ih >= in->H || iw < 0 || iw >= in->W)
								continue;
							for (int c = 0; c < nd->C; c++)
								din1[(((size_t)b * in->H + ih) * in->W + iw) * in->C + c] +=
									dout[(((size_t)b * nd->H + oh) * nd->W + ow) * nd->C + c] /
									(nd->K * nd->K);
						}
		break;
	case LB_OP_GAP: {
		int HW = in->H * in->W;
		for (int b = 0; b < r->B; b++)
			for (int p = 0; p < HW; p++)
				for (int c = 0; c < nd->C; c++)
					din1[((size_t)b * HW + p) * nd->C + c] += dout[(size_t)b * nd->C + c] / HW;
		break;
	}
	case LB_OP_ADD:
		for (size_t k = 0; k < n; k++) {
			din1[k] += dout[k];
			din2[k] += dout[k];
		}
		break;
	case LB_OP_DROPOUT:
		for (size_t k = 0; k < n; k++)
			din1[k] += nd->p > 0 ? (r->mask[i][k] ? dout[k] / (1.0 - nd->p) : 0.0) : dout[k];
		break;
	case LB_OP_FLATTEN:
		for (size_t k = 0; k < n; k++)
			din1[k] += dout[k];
		break;
	default:
		abort();
	}
}

/* Forward at parameters w with y_l += c e[l] on the activation tensors
 * (e may be NULL); returns the loss L = scale sum CE. */
static double ref_forward(struct ref *r, const double *w, double c, double *const *e)
{
	const struct lb_model *m = r->m;
	for (int i = 1; i < m->n_nodes; i++) {
		const struct lb_node *nd = &m->nodes[i], *in = &m->nodes[nd->in];
		size_t n = (size_t)r->B * nd->size;
		double *y = r->y[i];
		const double *x = r->y[nd->in];
		switch (nd->op) {
		case LB_OP_LINEAR:
		case LB_OP_CONV:
			memset(y, 0, n * sizeof *y);
			param_fwd(r, i, y, x, wp(r, w, nd->w), wp(r, w, nd->b));
			break;
		case LB_OP_RELU6:
			for (size_t k = 0; k < n; k++)
				y[k] = x[k] < 0 ? 0 : x[k] > 6 ? 6 : x[k];
			break;
		case LB_OP_MAXPOOL:
			for (int b = 0; b < r->B; b++)
				for (int oh = 0; oh < nd->H; oh++)
					for (int ow = 0; ow < nd->W; ow++)
						for (int ch = 0; ch < nd->C; ch++) {
							int best = -1;
							for (int kh = 0; kh < nd->K; kh++)
								for (int kw = 0; kw < nd->K; kw++) {
									int ih = oh * nd->stride - nd->pad + kh;
									int iw = ow * nd->stride - nd->pad + kw;
									if (ih < 0 || ih >= in->H || iw < 0 || iw >= in->W)
										continue;
									int xi = ((b * in->H + ih) * in->W + iw) * in->C + ch;
									if (best < 0 || x[xi] > x[best])
										best = xi;
								}
							r->argmax[i][((b * nd->H + oh) * nd->W + ow) * nd->C + ch] = best;
						}
			lin_fwd(r, i, y, x, NULL);
			break;
		default: /* ReLU = its derivative times its input */
			lin_fwd(r, i, y, x, nd->in2 >= 0 ? r->y[nd->in2] : NULL);
			break;
		}
		if (e && r->is_act[i])
			for (size_t k = 0; k < n; k++)
				y[k] += c * e[i][k];
	}
	const int L = m->n_nodes - 1, C = m->n_classes;
	double loss = 0;
	for (int b = 0; b < r->B; b++) {
		const double *z = r->y[L] + (size_t)b * C;
		double mx = z[0], s = 0;
		for (int k = 1; k < C; k++)
			mx = fmax(mx, z[k]);
		for (int k = 0; k < C; k++)
			s += exp(z[k] - mx);
		loss += log(s) + mx - z[r->labels[b]];
	}
	return r->scale * loss;
}

static void softmax(const double *z, double *p, int C)
{
	double mx = z[0], s = 0;
	for (int k = 1; k < C; k++)
		mx = fmax(mx, z[k]);
	for (int k = 0; k < C; k++)
		s += (p[k] = exp(z[k] - mx));
	for (int k = 0; k < C; k++)
		p[k] /= s;
}

/* g = dL/dw, dy[i] = dL/dy_i (complete: every node's consumers come later) */
static void ref_backward(struct ref *r, const double *w)
{
	const struct lb_model *m = r->m;
	const int L = m->n_nodes - 1, C = m->n_classes;
	for (int i = 0; i < m->n_nodes; i++)
		memset(r->dy[i], 0, (size_t)r->B * m->nodes[i].size * sizeof(double));
	memset(r->g, 0, r->nw * sizeof(double));
	for (int b = 0; b < r->B; b++) {
		double p[16];
		softmax(r->y[L] + (size_t)b * C, p, C);
		p[r->labels[b]] -= 1;
		for (int k = 0; k < C; k++)
			r->dy[L][(size_t)b * C + k] = r->scale * p[k];
	}
	for (int i = L; i >= 1; i--) {
		const struct lb_node *nd = &m->nodes[i];
		if (nd->op == LB_OP_LINEAR || nd->op == LB_OP_CONV)
			param_bwd(r, i, r->dy[nd->in], r->g + m->params[nd->w].offset,
				  nd->b >= 0 ? r->g + m->params[nd->b].offset : NULL, r->dy[i],
				  r->y[nd->in], wp(r, w, nd->w));
		else
			lin_bwd(r, i, r->dy[nd->in], nd->in2 >= 0 ? r->dy[nd->in2] : NULL, r->dy[i]);
	}
}

/* S[i] = sign(dy[i]) on the activation tensors (copies) */
static double **ref_signs(const struct ref *r)
{
	double **S = calloc((size_t)r->m->n_nodes, sizeof *S);
	for (int i = 1; i < r->m->n_nodes; i++) {
		if (!r->is_act[i])
			continue;
		size_t n = (size_t)r->B * r->m->nodes[i].size;
		S[i] = dalloc(n);
		for (size_t k = 0; k < n; k++)
			S[i][k] = (r->dy[i][k] > 0) - (r->dy[i][k] < 0);
	}
	return S;
}

static void signs_free(const struct ref *r, double **S)
{
	for (int i = 0; i < r->m->n_nodes; i++)
		free(S[i]);
	free(S);
}

/* R-op at the state of the last forward/backward: Rg = R{g} along (V, lam_a S). */
static void ref_rop(struct ref *r, const double *w, const double *V, double lam_a, double **S)
{
	const struct lb_model *m = r->m;
	const int L = m->n_nodes - 1, C = m->n_classes;
	memset(r->Rg, 0, r->nw * sizeof(double));
	for (int i = 0; i < m->n_nodes; i++) {
		memset(r->Ry[i], 0, (size_t)r->B * m->nodes[i].size * sizeof(double));
		memset(r->Rdy[i], 0, (size_t)r->B * m->nodes[i].size * sizeof(double));
	}
	for (int i = 1; i < m->n_nodes; i++) {
		const struct lb_node *nd = &m->nodes[i];
		size_t n = (size_t)r->B * nd->size;
		if (nd->op == LB_OP_LINEAR || nd->op == LB_OP_CONV) {
			param_fwd(r, i, r->Ry[i], r->Ry[nd->in], wp(r, w, nd->w), NULL);
			param_fwd(r, i, r->Ry[i], r->y[nd->in], wp(r, V, nd->w), wp(r, V, nd->b));
		} else {
			lin_fwd(r, i, r->Ry[i], r->Ry[nd->in], nd->in2 >= 0 ? r->Ry[nd->in2] : NULL);
		}
		if (r->is_act[i])
			for (size_t k = 0; k < n; k++)
				r->Ry[i][k] += lam_a * S[i][k];
	}
	for (int b = 0; b < r->B; b++) {
		double p[16], dot = 0;
		const double *Rz = r->Ry[L] + (size_t)b * C;
		softmax(r->y[L] + (size_t)b * C, p, C);
		for (int k = 0; k < C; k++)
			dot += p[k] * Rz[k];
		for (int k = 0; k < C; k++)
			r->Rdy[L][(size_t)b * C + k] = r->scale * p[k] * (Rz[k] - dot);
	}
	for (int i = L; i >= 1; i--) {
		const struct lb_node *nd = &m->nodes[i];
		if (nd->op == LB_OP_LINEAR || nd->op == LB_OP_CONV) {
			double *RgW = r->Rg + m->params[nd->w].offset;
			double *Rgb = nd->b >= 0 ? r->Rg + m->params[nd->b].offset : NULL;
			param_bwd(r, i, r->Rdy[nd->in], RgW, Rgb, r->Rdy[i], r->y[nd->in],
				  wp(r, w, nd->w));
			if (V)
				param_bwd(r, i, r->Rdy[nd->in], NULL, NULL, r->dy[i], r->y[nd->in],
					  wp(r, V, nd->w));
			param_bwd(r, i, NULL, RgW, NULL, r->dy[i], r->Ry[nd->in], wp(r, w, nd->w));
		} else {
			lin_bwd(r, i, r->Rdy[nd->in], nd->in2 >= 0 ? r->Rdy[nd->in2] : NULL, r->Rdy[i]);
		}
	}
}

/* Central differences of the gradient; out:(nw). Leaves the forward/backward
 * state of the base point w restored. */
static void ref_fd(struct ref *r, const double *w, const double *V, double lam_a, double **S,
		   double eps, double *out)
{
	double *wt = dalloc(r->nw), *gp = dalloc(r->nw);
	for (int side = 1; side >= -1; side -= 2) {
		for (size_t j = 0; j < r->nw; j++)
			wt[j] = w[j] + side * eps * (V ? V[j] : 0);
		ref_forward(r, wt, side * eps * lam_a, S);
		ref_backward(r, wt);
		if (side == 1)
			memcpy(gp, r->g, r->nw * sizeof(double));
	}
	for (size_t j = 0; j < r->nw; j++)
		out[j] = (gp[j] - r->g[j]) / (2 * eps);
	ref_forward(r, w, 0, NULL);
	ref_backward(r, w);
	free(wt);
	free(gp);
}

/* No ReLU input within margin of a kink, no max-pool near tie. */
static int ref_kinks_clear(const struct ref *r, double margin)
{
	const struct lb_model *m = r->m;
	for (int i = 1; i < m->n_nodes; i++) {
		const struct lb_node *nd = &m->nodes[i], *in = &m->nodes[nd->in];
		size_t n = (size_t)r->B * nd->size;
		const double *x = r->y[nd->in];
		if (nd->op == LB_OP_RELU || nd->op == LB_OP_RELU6)
			for (size_t k = 0; k < n; k++)
				if (fabs(x[k]) < margin || (nd->op == LB_OP_RELU6 && fabs(x[k] - 6) < margin))
					return 0;
		if (nd->op == LB_OP_MAXPOOL)
			for (int b = 0; b < r->B; b++)
				for (int oh = 0; oh < nd->H; oh++)
					for (int ow = 0; ow < nd->W; ow++)
						for (int ch = 0; ch < nd->C; ch++) {
							int oi = ((b * nd->H + oh) * nd->W + ow) * nd->C + ch;
							double best = x[r->argmax[i][oi]];
							for (int kh = 0; kh < nd->K; kh++)
								for (int kw = 0; kw < nd->K; kw++) {
									int ih = oh * nd->stride - nd->pad + kh;
									int iw = ow * nd->stride - nd->pad + kw;
									if (ih < 0 || ih >= in->H || iw < 0 || iw >= in->W)
										continue;
									int xi = ((b * in->H + ih) * in->W + iw) * in->C + ch;
									if (xi != r->argmax[i][oi] && best - x[xi] < margin)
										return 0;
								}
						}
	}
	return 1;
}

static double rel_err(const double *a, const double *b, size_t n)
{
	double num = 0, den = 0;
	for (size_t i = 0; i < n; i++) {
		num += (a[i] - b[i]) * (a[i] - b[i]);
		den += b[i] * b[i];
	}
	return sqrt(num / fmax(den, 1e-300));
}

static double rel_err_f(const float *a, const double *b, size_t n)
{
	double num = 0, den = 0;
	for (size_t i = 0; i < n; i++) {
		num += (a[i] - b[i]) * (a[i] - b[i]);
		den += b[i] * b[i];
	}
	return sqrt(num / fmax(den, 1e-300));
}

/* ---- lowbit models ---- */

struct net {
	const char *name, *yaml;
	int H, W, C, B, n_classes;
	float xscale;
	double margin; /* kink margin; 0: KINK_MARGIN, with the FD checks */
};

static const struct net nets[] = {
	{"mlp",
	 "model:\n  arch: custom\n  layers:\n"
	 "    - {op: linear, out: 5, name: fc1}\n"
	 "    - {op: relu}\n"
	 "    - {op: linear, out: 4, name: fc2}\n"
	 "    - {op: relu}\n"
	 "    - {op: linear, out: 3, name: fc3}\n",
	 1, 1, 6, 4, 3, 1.0f, 0},
	{"cnn",
	 "model:\n  arch: custom\n  layers:\n"
	 "    - {op: conv, out: 3, kernel: 3, pad: 1, name: c1}\n"
	 "    - {op: relu}\n"
	 "    - {op: conv, out: 4, kernel: 3, pad: 1, name: c2}\n"
	 "    - {op: relu}\n"
	 "    - {op: maxpool, kernel: 2}\n"
	 "    - {op: flatten}\n"
	 "    - {op: linear, out: 5, name: fc1}\n"
	 "    - {op: relu}\n"
	 "    - {op: linear, out: 3, name: fc2}\n",
	 6, 6, 2, 3, 3, 1.0f, 0},
	/* ReLU6 in place (c1 feeds only r1; r1 feeds c2 and the add), the add's
	 * ReLU in place, r3 not in place (c3 feeds r3 and the add), dropout on
	 * the classifier input; ReLU6 saturates for the x4 inputs. */
	{"res",
	 "model:\n  arch: custom\n  layers:\n"
	 "    - {op: conv, out: 4, kernel: 3, pad: 1, name: c1}\n"
	 "    - {op: relu6, name: r1}\n"
	 "    - {op: conv, out: 4, kernel: 3, pad: 1, name: c2}\n"
	 "    - {op: add, from: r1, name: s1}\n"
	 "    - {op: relu, name: r2}\n"
	 "    - {op: avgpool, kernel: 2, name: p1}\n"
	 "    - {op: conv, out: 4, kernel: 3, pad: 1, name: c3}\n"
	 "    - {op: relu, name: r3}\n"
	 "    - {op: add, from: c3, name: s2}\n"
	 "    - {op: gap, name: gp}\n"
	 "    - {op: dropout, p: 0.25, name: d}\n"
	 "    - {op: linear, out: 3, name: fc}\n",
	 6, 6, 2, 4, 3, 4.0f, 0},
	/* c2's im2col is 147456 floats a sample: gradl1 works through it one
	 * sample at a time (chunks), with R{x} != 0 and a dx. Too many units to
	 * keep all of them 1e-3 away from a kink: R-op only, margin 1e-6. */
	{"chunked",
	 "model:\n  arch: custom\n  layers:\n"
	 "    - {op: conv, out: 64, kernel: 1, name: c1}\n"
	 "    - {op: relu}\n"
	 "    - {op: conv, out: 3, kernel: 3, pad: 1, name: c2}\n"
	 "    - {op: relu}\n"
	 "    - {op: gap}\n"
	 "    - {op: linear, out: 3, name: fc}\n",
	 16, 16, 1, 3, 3, 1.0f, 1e-6},
};

static struct lb_model *build(const char *yaml, int H, int W, int C, int n_classes, int B)
{
	struct lb_config *cfg = NULL;
	struct lb_model *m = NULL;
	if (lb_config_load_string(yaml, "test", NULL, 0, &cfg)) {
		diag("config: %s", lb_error_message());
		return NULL;
	}
	if (lb_model_build(cfg, H, W, C, n_classes, B, B, &m))
		diag("build: %s", lb_error_message());
	lb_config_free(cfg);
	if (m)
		m->seed = 5;
	return m;
}

/* weights N(0, 2/fan_in) (biases N(0, 0.1^2)), inputs N(0, xscale^2), labels */
static void draw(struct lb_model *m, const struct net *nt, int B, int32_t *labels, uint32_t seed)
{
	for (int pi = 0; pi < m->n_params; pi++) {
		const struct lb_param *p = &m->params[pi];
		double sd = (p->flags & LB_PARAM_WEIGHT) ? sqrt(2.0 / p->fan_in) : 0.1;
		if (p->flags & LB_PARAM_BN)
			sd = 0.1;
		for (size_t j = 0; j < p->count; j++)
			m->w[p->offset + j] =
				(float)(sd * lb_rng_normal(seed, LB_RNG_TEST, (uint32_t)pi, j)) +
				((p->flags & LB_PARAM_BN) && strstr(p->name, "gamma") ? 1.0f : 0.0f);
	}
	float *x = lb_model_input(m);
	size_t n = (size_t)B * nt->H * nt->W * nt->C;
	for (size_t i = 0; i < n; i++)
		x[i] = nt->xscale * lb_rng_normal(seed, LB_RNG_TEST, 1000, i);
	for (int b = 0; b < B; b++)
		labels[b] = (int32_t)lb_rng_below(seed, LB_RNG_TEST, 1001, (uint64_t)b,
						  (uint32_t)nt->n_classes);
}

/* Copy the model's weights, input, labels and dropout masks into the reference
 * and run its forward/backward. */
static void ref_load(struct ref *r, struct lb_model *m, const int32_t *labels)
{
	for (size_t j = 0; j < r->nw; j++)
		r->w[j] = m->w[j];
	size_t n = (size_t)r->B * m->nodes[0].size;
	for (size_t k = 0; k < n; k++)
		r->y[0][k] = lb_model_input(m)[k];
	memcpy(r->labels, labels, (size_t)r->B * sizeof *labels);
	for (int i = 1; i < m->n_nodes; i++)
		r->mask[i] = m->nodes[i].mask;
	ref_forward(r, r->w, 0, NULL);
	ref_backward(r, r->w);
}

static const double LAM_W = 0.7, LAM_A = 0.3;

/* Tests 1 and 2 for one net. */
static void test_net(const struct net *nt)
{
	const int B = nt->B;
	int32_t labels[16];
	struct lb_model *m = build(nt->yaml, nt->H, nt->W, nt->C, nt->n_classes, B);
	if (!m) {
		ok(0, "%s: build", nt->name);
		return;
	}
	struct ref *r = ref_new(m, B);
	uint32_t seed;
	int clear = 0;
	for (seed = 1; seed < 500 && !clear; seed++) {
		draw(m, nt, B, labels, seed);
		lb_model_forward(m, B, labels, 1, 0, 0, NULL); /* dropout masks */
		ref_load(r, m, labels);
		clear = ref_kinks_clear(r, nt->margin > 0 ? nt->margin : KINK_MARGIN);
	}
	ok(clear, "%s: inputs away from ReLU/max-pool kinks (seed %u)", nt->name, seed - 1);

	/* 1. float64 R-op == float64 central differences of the gradient */
	const size_t nw = m->n_weights;
	double *V = dalloc(nw), *fd = dalloc(nw), *rop = dalloc(nw);
	double **S = ref_signs(r);
	for (size_t j = 0; j < nw; j++)
		V[j] = LAM_W * ((r->g[j] > 0) - (r->g[j] < 0));
	static const char *what[3] = {"weight term", "activation term", "both terms"};
	for (int v = 0; v < 3 && !nt->margin; v++) {
		const double *Vv = v == 1 ? NULL : V;
		double la = v == 0 ? 0 : LAM_A;
		ref_rop(r, r->w, Vv, la, S);
		memcpy(rop, r->Rg, nw * sizeof *rop);
		ref_fd(r, r->w, Vv, la, S, 1e-6, fd);
		double e = rel_err(rop, fd, nw), nr = 0;
		for (size_t j = 0; j < nw; j++)
			nr += rop[j] * rop[j];
		diag("%s rop vs fd rel err %.2g (%s, |R{g}| %.3g)", nt->name, e, what[v], sqrt(nr));
		ok(e <= 1e-6 && nr > 0, "%s: float64 R-op == central differences, %s (rel %.2g)",
		   nt->name, what[v], e);
	}

	/* 2. lowbit float32 R-op and FD == float64 R-op */
	struct lb_gradl1 *h = NULL, *hf = NULL;
	int rc = lb_gradl1_new(m, 0, 0, &h);
	int rcf = lb_gradl1_new(m, 1, 1e-4f, &hf);
	ok(rc == LB_OK && rcf == LB_OK, "%s: lb_gradl1_new R-op and FD", nt->name);
	if (rc || rcf)
		goto out;
	const int *act;
	int n_act = lb_gradl1_tensors(h, &act), n_ref = 0;
	for (int i = 0; i < m->n_nodes; i++)
		n_ref += r->is_act[i];
	int same = n_act == n_ref;
	for (int k = 0; k < n_act && same; k++)
		same = r->is_act[act[k]];
	ok(same, "%s: %d activation tensors, the conv/linear inputs", nt->name, n_act);

	float *Vf = malloc(nw * sizeof *Vf), *Rg = calloc(nw, sizeof *Rg);
	lb_gradl1_taps(h, m, 1);
	lb_model_zero_grad(m);
	lb_model_forward(m, B, labels, 1, 0, 0, NULL);
	lb_model_backward(m, B, labels, 1.0f / B);
	double eg = rel_err_f(m->g, r->g, nw), et = 0;
	for (int k = 0; k < n_act; k++) {
		double e = rel_err_f(lb_gradl1_tap(h, act[k]), r->dy[act[k]],
				     (size_t)B * m->nodes[act[k]].size);
		et = fmax(et, e);
	}
	ok(eg < 1e-5 && et < 1e-5, "%s: float gradient and dy taps == float64 (rel %.2g, %.2g)",
	   nt->name, eg, et);
	double regw = lb_gradl1_direction(Vf, m->g, nw, (float)LAM_W);
	double regw_ref = 0, act_ref = 0;
	for (size_t j = 0; j < nw; j++) {
		V[j] = Vf[j];
		regw_ref += LAM_W * fabs(r->g[j]);
	}
	for (int i = 1; i < m->n_nodes; i++)
		if (r->is_act[i])
			for (size_t k = 0; k < (size_t)B * m->nodes[i].size; k++)
				act_ref += LAM_A * fabs(r->dy[i][k]);
	double acta = lb_gradl1_hvp(h, m, B, labels, 1.0f / B, 0, 0, Vf, (float)LAM_A, Rg);
	ref_rop(r, r->w, V, LAM_A, S);
	double e = rel_err_f(Rg, r->Rg, nw);
	diag("%s lowbit R-op (float32) vs float64 R-op rel err %.2g", nt->name, e);
	ok(e <= 1e-4, "%s: lb_gradl1_hvp R-op == float64 R-op (rel %.2g)", nt->name, e);
	ok(fabs(regw - regw_ref) <= 1e-5 * regw_ref && fabs(acta - act_ref) <= 1e-5 * act_ref,
	   "%s: regularizer values λ_w Σ|g| %.6g (ref %.6g), λ_a Σ|dL/dy| %.6g (ref %.6g)",
	   nt->name, regw, regw_ref, acta, act_ref);

	lb_gradl1_taps(h, m, 0);
	if (nt->margin)
		goto done;
	lb_gradl1_taps(hf, m, 1);
	lb_model_zero_grad(m);
	lb_model_forward(m, B, labels, 1, 0, 0, NULL);
	lb_model_backward(m, B, labels, 1.0f / B);
	memset(Rg, 0, nw * sizeof *Rg);
	double actf = lb_gradl1_hvp(hf, m, B, labels, 1.0f / B, 0, 0, Vf, (float)LAM_A, Rg);
	e = rel_err_f(Rg, r->Rg, nw);
	diag("%s lowbit FD (float32, eps_rel 1e-4) vs float64 R-op rel err %.2g", nt->name, e);
	ok(e <= 1e-2 && fabs(actf - act_ref) <= 1e-5 * act_ref,
	   "%s: lb_gradl1_hvp FD == float64 R-op (rel %.2g)", nt->name, e);
	lb_gradl1_taps(hf, m, 0);
done:
	free(Vf);
	free(Rg);
out:
	signs_free(r, S);
	free(V);
	free(fd);
	free(rop);
	lb_gradl1_free(h);
	lb_gradl1_free(hf);
	ref_free(r);
	lb_model_free(m);
}

/* 3 and 4: batch norm refused by the R-op (named), accepted by FD, which
 * restores w, g and the running statistics; taps do not change g. */
static void test_bn_and_restore(void)
{
	static const struct net bn = {
		"bn",
		"model:\n  arch: custom\n  layers:\n"
		"    - {op: conv, out: 3, kernel: 3, pad: 1, name: c1}\n"
		"    - {op: bn, name: bn1}\n"
		"    - {op: relu}\n"
		"    - {op: flatten}\n"
		"    - {op: dropout, p: 0.2}\n"
		"    - {op: linear, out: 3, name: fc}\n",
		4, 4, 2, 4, 3, 1.0f, 0};
	int32_t labels[16];
	struct lb_model *m = build(bn.yaml, bn.H, bn.W, bn.C, bn.n_classes, bn.B);
	if (!m) {
		ok(0, "bn: build");
		return;
	}
	struct lb_gradl1 *h = NULL;
	int rc = lb_gradl1_new(m, 0, 0, &h);
	ok(rc == LB_ERR_CONFIG && h == NULL && strstr(lb_error_message(), "'bn1'") &&
		   strstr(lb_error_message(), "batch norm"),
	   "R-op refuses batch norm: %s", lb_error_message());
	rc = lb_gradl1_new(m, 1, 0, &h);
	ok(rc == LB_OK && h, "FD accepts batch norm");
	if (rc) {
		lb_model_free(m);
		return;
	}
	const size_t nw = m->n_weights;
	draw(m, &bn, bn.B, labels, 3);
	lb_model_init_params(m, LB_INIT_TORCH, 2);
	m->seed = 5;
	float *g1 = malloc(m->n_grad * sizeof *g1), *w1 = malloc(nw * sizeof *w1);
	float *buf1 = malloc(m->n_buffer_floats * sizeof *buf1);
	float *V = malloc(nw * sizeof *V), *Rg = calloc(nw, sizeof *Rg);
	lb_model_zero_grad(m);
	lb_model_forward(m, bn.B, labels, 1, 7, 0, NULL);
	lb_model_backward(m, bn.B, labels, 1.0f / bn.B);
	memcpy(g1, m->g, m->n_grad * sizeof *g1);
	lb_gradl1_taps(h, m, 1);
	lb_model_zero_grad(m);
	lb_model_forward(m, bn.B, labels, 1, 7, 0, NULL);
	lb_model_backward(m, bn.B, labels, 1.0f / bn.B);
	ok(!memcmp(g1, m->g, m->n_grad * sizeof *g1), "taps on: gradients identical bit for bit");
	memcpy(w1, m->w, nw * sizeof *w1);
	memcpy(buf1, m->buf, m->n_buffer_floats * sizeof *buf1);
	lb_gradl1_direction(V, m->g, nw, 0.05f);
	lb_gradl1_hvp(h, m, bn.B, labels, 1.0f / bn.B, 7, 0, V, 0.05f, Rg);
	double nr = 0;
	for (size_t j = 0; j < nw; j++)
		nr += (double)Rg[j] * Rg[j];
	ok(!memcmp(g1, m->g, m->n_grad * sizeof *g1) && !memcmp(w1, m->w, nw * sizeof *w1) &&
		   !memcmp(buf1, m->buf, m->n_buffer_floats * sizeof *buf1) && m->bn_stats == NULL &&
		   m->y_add == NULL && m->dy_tap != NULL && nr > 0 && isfinite(nr),
	   "FD restores m->w, m->g and the running statistics bit for bit (|Rg| %.3g)", sqrt(nr));
	lb_gradl1_free(h);
	free(g1);
	free(w1);
	free(buf1);
	free(V);
	free(Rg);
	lb_model_free(m);
}

/* 5: Rg of a batch == Rg of its halves (shards), R-op; the model is left as it was. */
static void test_shards(void)
{
	const struct net *nt = &nets[2];
	const int B = 4;
	int32_t labels[16];
	struct lb_model *m = build(nt->yaml, nt->H, nt->W, nt->C, nt->n_classes, B);
	struct lb_gradl1 *h = NULL;
	if (!m || lb_gradl1_new(m, 0, 0, &h)) {
		ok(0, "shards: build");
		lb_model_free(m);
		return;
	}
	const size_t nw = m->n_weights, in = m->nodes[0].size;
	draw(m, nt, B, labels, 11);
	float *x = malloc((size_t)B * in * sizeof *x), *V = malloc(nw * sizeof *V);
	float *Rg = calloc(nw, sizeof *Rg), *Rh = calloc(nw, sizeof *Rh);
	float *g1 = malloc(m->n_grad * sizeof *g1);
	memcpy(x, lb_model_input(m), (size_t)B * in * sizeof *x);
	lb_gradl1_taps(h, m, 1);
	lb_model_zero_grad(m);
	lb_model_forward(m, B, labels, 1, 3, 0, NULL);
	lb_model_backward(m, B, labels, 1.0f / B);
	lb_gradl1_direction(V, m->g, nw, 0.1f);
	memcpy(g1, m->g, m->n_grad * sizeof *g1);
	double a = lb_gradl1_hvp(h, m, B, labels, 1.0f / B, 3, 0, V, 0.2f, Rg);
	ok(!memcmp(g1, m->g, m->n_grad * sizeof *g1), "R-op leaves m->g untouched");
	double ah = 0;
	for (int half = 0; half < 2; half++) {
		memcpy(lb_model_input(m), x + (size_t)half * 2 * in, 2 * in * sizeof *x);
		lb_model_forward(m, 2, labels + 2 * half, 1, 3, (uint64_t)(2 * half), NULL);
		lb_model_backward(m, 2, labels + 2 * half, 1.0f / B);
		ah += lb_gradl1_hvp(h, m, 2, labels + 2 * half, 1.0f / B, 3, (uint64_t)(2 * half), V,
				    0.2f, Rh);
	}
	double num = 0, den = 0;
	for (size_t j = 0; j < nw; j++) {
		num += ((double)Rg[j] - Rh[j]) * ((double)Rg[j] - Rh[j]);
		den += (double)Rg[j] * Rg[j];
	}
	double e = sqrt(num / den);
	ok(e < 1e-5 && fabs(a - ah) < 1e-5 * a,
	   "R{g} of a batch == sum over its halves (rel %.2g; activation term %.6g vs %.6g)", e,
	   a, ah);
	lb_gradl1_free(h);
	free(x);
	free(V);
	free(Rg);
	free(Rh);
	free(g1);
	lb_model_free(m);
}

static void test_direction(void)
{
	const float g[5] = {0.5f, -2.0f, 0.0f, -0.0f, 1e-30f};
	float V[5];
	double s = lb_gradl1_direction(V, g, 5, 0.25f);
	ok(V[0] == 0.25f && V[1] == -0.25f && V[2] == 0.0f && V[3] == 0.0f && V[4] == 0.25f &&
		   fabs(s - 0.25 * (2.5 + 1e-30)) < 1e-12,
	   "direction: λ sign(g) with sign(0) = 0, value λ Σ|g| = %.4g", s);
}

int main(void)
{
	test_direction();
	for (size_t k = 0; k < sizeof nets / sizeof nets[0]; k++)
		test_net(&nets[k]);
	test_bn_and_restore();
	test_shards();
	return done_testing();
}
