/* SPDX-License-Identifier: MIT
 * Gradient-L1 regularizer gradient as a Hessian-vector product (see gradl1.h
 * and shared/docs/methods.md §3.2): Pearlmutter's R-operator over the model's
 * node list, or central differences of the gradient.
 *
 * R-op notation: for node i, Ry[i] = R{y_i}, Rdy[i] = R{dL/dy_i}; both mirror
 * the model's buffer sharing (a flatten and an in-place ReLU use their
 * input's R buffers), so the R-backward masks in place exactly where the
 * backward does. rz[i] = 1 says R{y_i} is identically zero and Ry[i] was not
 * written (the network input, and everything before the first place V or S
 * enters): those terms are skipped, not computed as zeros. */
#include "models/gradl1.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "gemm.h"
#include "util.h"

/* Conv im2col matrices of x and R{x} are rebuilt per chunk of whole samples
 * of about this many floats (two chunk buffers), in the R-forward and again
 * in the R-backward: im2col is a copy, cheap next to the GEMMs that read it,
 * and the chunks stay cache-resident where whole-batch matrices would not. */
#ifndef GRADL1_CHUNK_FLOATS
#define GRADL1_CHUNK_FLOATS ((size_t)1 << 18)
#endif

struct lb_gradl1 {
	struct lb_model *m;
	int use_fd;
	float eps_rel;
	int n_act;
	int *act;          /* (n_act) node indices of the activation tensors */
	uint8_t *is_act;   /* (n_nodes) */
	float **tap;       /* (n_nodes): dL/dy (B_train x size) of activation tensors, else NULL */
	/* R-op */
	float **Ry, **Rdy; /* (n_nodes) */
	uint8_t *own;      /* (n_nodes): Ry[i]/Rdy[i] allocated here */
	uint8_t *rz;       /* (n_nodes) */
	float *colx, *colr;
	size_t col_floats;
	double *acc;       /* (max conv C_out): bias sums */
	float *part;
	/* FD */
	const float **add; /* (n_nodes): the injection directions handed to the model */
	float *w0, *g0, *bn_scratch;
};

/* The node whose buffers node t uses (flatten aliases its input). */
static int base_node(const struct lb_model *m, int t)
{
	while (t > 0 && m->nodes[t].alias)
		t = m->nodes[t].in;
	return t;
}

static const char *op_words(enum lb_op op)
{
	switch (op) {
	case LB_OP_BN:
		return "batch norm";
	case LB_OP_QUANT:
		return "activation quantizer";
	default:
		return lb_op_name(op);
	}
}

static int check_model(const struct lb_model *m, int use_fd)
{
	for (int i = 1; i < m->n_nodes; i++) {
		const struct lb_node *nd = &m->nodes[i];
		if (nd->wq)
			return lb_error(LB_ERR_CONFIG,
					"gradl1: layer '%s' has a weight quantizer; the gradient-L1 "
					"regularizer trains full-precision weights (no quant.weights)",
					nd->name);
		if (use_fd)
			continue;
		switch (nd->op) {
		case LB_OP_LINEAR:
		case LB_OP_CONV:
		case LB_OP_MAXPOOL:
		case LB_OP_AVGPOOL:
		case LB_OP_GAP:
		case LB_OP_RELU:
		case LB_OP_RELU6:
		case LB_OP_FLATTEN:
		case LB_OP_ADD:
		case LB_OP_DROPOUT:
			break;
		default:
			return lb_error(LB_ERR_CONFIG,
					"gradl1: layer '%s' (%s) has no R-operator; use gradl1.hvp: fd "
					"or a model without %s",
					nd->name, op_words(nd->op), op_words(nd->op));
		}
	}
	return LB_OK;
}

void lb_gradl1_free(struct lb_gradl1 *h)
{
	if (!h)
		return;
	struct lb_model *m = h->m;
	for (int i = 0; i < m->n_nodes; i++) {
		if (h->tap)
			lb_free(h->tap[i]);
		if (h->own && h->own[i]) {
			lb_free(h->Ry[i]);
			lb_free(h->Rdy[i]);
		}
	}
	free(h->act);
	free(h->is_act);
	free(h->tap);
	free(h->Ry);
	free(h->Rdy);
	free(h->own);
	free(h->rz);
	lb_free(h->colx);
	lb_free(h->colr);
	free(h->acc);
	free(h->part);
	free(h->add);
	lb_free(h->w0);
	lb_free(h->g0);
	lb_free(h->bn_scratch);
	free(h);
}

static int alloc_rop(struct lb_gradl1 *h)
{
	struct lb_model *m = h->m;
	const int N = m->n_nodes;
	const size_t Bt = (size_t)m->B_train;
	size_t n_acc = 1;
	h->Ry = calloc((size_t)N, sizeof *h->Ry);
	h->Rdy = calloc((size_t)N, sizeof *h->Rdy);
	h->own = calloc((size_t)N, 1);
	h->rz = calloc((size_t)N, 1);
	if (!h->Ry || !h->Rdy || !h->own || !h->rz)
		return -1;
	/* node 0 has no R buffers (R{x} = 0, no dx) */
	for (int i = 1; i < N; i++) {
		const struct lb_node *nd = &m->nodes[i];
		if (nd->alias || nd->inplace) {
			h->Ry[i] = h->Ry[nd->in];
			h->Rdy[i] = h->Rdy[nd->in];
			continue;
		}
		h->own[i] = 1;
		h->Ry[i] = lb_alloc(Bt * nd->size * sizeof(float));
		h->Rdy[i] = lb_alloc(Bt * nd->size * sizeof(float));
		if (!h->Ry[i] || !h->Rdy[i])
			return -1;
		if (nd->op == LB_OP_CONV) {
			const struct lb_node *in = &m->nodes[nd->in];
			if ((size_t)nd->C > n_acc)
				n_acc = (size_t)nd->C;
			struct lb_conv_shape s;
			lb_conv_shape_init(&s, 1, in->H, in->W, in->C, nd->C, nd->K, nd->stride,
					   nd->pad);
			size_t per = lb_conv_col_size(&s);
			size_t nb = GRADL1_CHUNK_FLOATS / per;
			nb = nb < 1 ? 1 : nb > Bt ? Bt : nb;
			if (nb * per > h->col_floats)
				h->col_floats = nb * per;
		}
	}
	h->acc = calloc(n_acc, sizeof *h->acc);
	h->part = calloc(n_acc, sizeof *h->part);
	if (!h->acc || !h->part)
		return -1;
	if (h->col_floats) {
		h->colx = lb_alloc(h->col_floats * sizeof(float));
		h->colr = lb_alloc(h->col_floats * sizeof(float));
		if (!h->colx || !h->colr)
			return -1;
	}
	return 0;
}

int lb_gradl1_new(struct lb_model *m, int use_fd, float fd_eps_rel, struct lb_gradl1 **out)
{
	*out = NULL;
	int rc = check_model(m, use_fd);
	if (rc)
		return rc;
	struct lb_gradl1 *h = calloc(1, sizeof *h);
	if (!h)
		return lb_error(LB_ERR_OOM, "gradl1: out of memory");
	h->m = m;
	h->use_fd = use_fd;
	h->eps_rel = fd_eps_rel > 0 ? fd_eps_rel : LB_GRADL1_FD_EPS_REL;
	const int N = m->n_nodes;
	h->is_act = calloc((size_t)N, 1);
	h->act = calloc((size_t)N, sizeof *h->act);
	h->tap = calloc((size_t)N, sizeof *h->tap);
	if (!h->is_act || !h->act || !h->tap)
		goto oom;
	for (int i = 1; i < N; i++) {
		const struct lb_node *nd = &m->nodes[i];
		if (nd->op != LB_OP_CONV && nd->op != LB_OP_LINEAR)
			continue;
		int t = base_node(m, nd->in);
		if (t > 0)
			h->is_act[t] = 1;
	}
	for (int i = 1; i < N; i++) {
		if (!h->is_act[i])
			continue;
		h->act[h->n_act++] = i;
		h->tap[i] = lb_alloc((size_t)m->B_train * m->nodes[i].size * sizeof(float));
		if (!h->tap[i])
			goto oom;
	}
	if (use_fd) {
		h->add = calloc((size_t)N, sizeof *h->add);
		h->w0 = lb_alloc((m->n_weights + 1) * sizeof(float));
		h->g0 = lb_alloc((m->n_grad + 1) * sizeof(float));
		h->bn_scratch = lb_alloc((m->bn_stats_floats + 1) * sizeof(float));
		if (!h->add || !h->w0 || !h->g0 || !h->bn_scratch)
			goto oom;
		for (int i = 1; i < N; i++)
			h->add[i] = h->tap[i];
	} else if (alloc_rop(h)) {
		goto oom;
	}
	*out = h;
	return LB_OK;
oom:
	lb_gradl1_free(h);
	return lb_error(LB_ERR_OOM, "gradl1: out of memory allocating the R-pass buffers");
}

void lb_gradl1_taps(struct lb_gradl1 *h, struct lb_model *m, int on)
{
	m->dy_tap = on ? h->tap : NULL;
}

int lb_gradl1_tensors(const struct lb_gradl1 *h, const int **nodes)
{
	*nodes = h->act;
	return h->n_act;
}

const float *lb_gradl1_tap(const struct lb_gradl1 *h, int node)
{
	return node > 0 && node < h->m->n_nodes ? h->tap[node] : NULL;
}

static inline float signf(float x)
{
	return (float)((x > 0.0f) - (x < 0.0f));
}

double lb_gradl1_direction(float *V, const float *g, size_t n, float lambda_w)
{
	double s = 0.0;
	/* float partial sums over 64 elements (vectorizes), accumulated in double */
	for (size_t i0 = 0; i0 < n; i0 += 64) {
		const size_t i1 = n - i0 < 64 ? n : i0 + 64;
		float part = 0.0f;
		for (size_t i = i0; i < i1; i++) {
			part += fabsf(g[i]);
			V[i] = lambda_w * signf(g[i]);
		}
		s += part;
	}
	return (double)lambda_w * s;
}

/* ---- R-op ---- */

static const float *pw(const struct lb_model *m, const float *block, int idx)
{
	return idx >= 0 && block ? block + m->params[idx].offset : NULL;
}

/* y:(rows, C) += b broadcast over the rows */
static void add_rows(float *y, const float *b, size_t rows, int C)
{
	for (size_t r = 0; r < rows; r++)
		for (int c = 0; c < C; c++)
			y[r * C + c] += b[c];
}

/* db:(C) += column sums of dy:(rows, C): float partial sums over 16 rows
 * (vectorizes), accumulated in double. acc:(C) double, part:(C) float. */
static void sum_rows(float *db, const float *dy, size_t rows, int C, double *acc, float *part)
{
	for (int c = 0; c < C; c++)
		acc[c] = 0.0;
	for (size_t r0 = 0; r0 < rows; r0 += 16) {
		const size_t r1 = rows - r0 < 16 ? rows : r0 + 16;
		for (int c = 0; c < C; c++)
			part[c] = 0.0f;
		for (size_t r = r0; r < r1; r++)
			for (int c = 0; c < C; c++)
				part[c] += dy[r * C + c];
		for (int c = 0; c < C; c++)
			acc[c] += part[c];
	}
	for (int c = 0; c < C; c++)
		db[c] += (float)acc[c];
}

/* Samples per conv chunk for node nd (matches alloc_rop). */
static int conv_chunk(const struct lb_gradl1 *h, const struct lb_conv_shape *s1)
{
	size_t per = lb_conv_col_size(s1);
	size_t nb = h->col_floats / per;
	return nb < 1 ? 1 : nb > (size_t)h->m->B_train ? h->m->B_train : (int)nb;
}

/* The model's cached im2col of x, when it still holds it (a first conv,
 * whose backward computes no dx, leaves it intact), else NULL. */
static const float *model_col(const struct lb_node *nd)
{
	return nd->col && nd->col_fresh ? nd->col : NULL;
}

/* R{y} = col(R{x}) W^T + col(x) V_W^T + V_b for B samples, in chunks. */
static void conv_rforward(struct lb_gradl1 *h, int i, int B, const float *V)
{
	struct lb_model *m = h->m;
	const struct lb_node *nd = &m->nodes[i], *in = &m->nodes[nd->in];
	const float *W = m->w + m->params[nd->w].offset;
	const float *VW = pw(m, V, nd->w), *Vb = pw(m, V, nd->b);
	const int rx = !h->rz[nd->in];
	struct lb_conv_shape s;
	lb_conv_shape_init(&s, 1, in->H, in->W, in->C, nd->C, nd->K, nd->stride, nd->pad);
	const int nb = conv_chunk(h, &s), KKC = s.K * s.K * s.C_in, N = nd->C;
	const size_t per_rows = (size_t)s.OH * s.OW;
	const float *mcol = model_col(nd);
	if (!rx && !VW && !Vb) {
		h->rz[i] = 1;
		return;
	}
	for (int b0 = 0; b0 < B; b0 += nb) {
		const int Bc = B - b0 < nb ? B - b0 : nb;
		const int M = (int)(Bc * per_rows);
		float *Ryc = h->Ry[i] + (size_t)b0 * nd->size;
		float beta = 0.0f;
		lb_conv_shape_init(&s, Bc, in->H, in->W, in->C, nd->C, nd->K, nd->stride, nd->pad);
		if (rx) {
			lb_im2col(h->colr, h->Ry[nd->in] + (size_t)b0 * in->size, &s);
			lb_gemm(0, 1, M, N, KKC, 1.0f, h->colr, W, 0.0f, Ryc);
			beta = 1.0f;
		}
		if (VW) {
			const float *cx = mcol ? mcol + (size_t)b0 * per_rows * KKC : h->colx;
			if (!mcol)
				lb_im2col(h->colx, in->y + (size_t)b0 * in->size, &s);
			lb_gemm(0, 1, M, N, KKC, 1.0f, cx, VW, beta, Ryc);
			beta = 1.0f;
		}
		if (beta == 0.0f)
			memset(Ryc, 0, (size_t)M * N * sizeof(float));
		if (Vb)
			add_rows(Ryc, Vb, (size_t)M, N);
	}
	h->rz[i] = 0;
}

/* R{gW} += R{δ}^T col(x) + δ^T col(R{x}); R{gb} += Σ R{δ};
 * R{dx} += col2im(R{δ} W + δ V_W). */
static void conv_rbackward(struct lb_gradl1 *h, int i, int B, const float *V, float *Rg)
{
	struct lb_model *m = h->m;
	const struct lb_node *nd = &m->nodes[i], *in = &m->nodes[nd->in];
	const float *W = m->w + m->params[nd->w].offset;
	const float *VW = pw(m, V, nd->w);
	float *RgW = Rg + m->params[nd->w].offset, *Rgb = nd->b >= 0 ? (float *)pw(m, Rg, nd->b) : NULL;
	float *Rdx = h->Rdy[nd->in]; /* NULL for the network input */
	const int rx = !h->rz[nd->in];
	struct lb_conv_shape s;
	lb_conv_shape_init(&s, 1, in->H, in->W, in->C, nd->C, nd->K, nd->stride, nd->pad);
	const int nb = conv_chunk(h, &s), KKC = s.K * s.K * s.C_in, N = nd->C;
	const size_t per_rows = (size_t)s.OH * s.OW;
	const float *mcol = model_col(nd);
	for (int b0 = 0; b0 < B; b0 += nb) {
		const int Bc = B - b0 < nb ? B - b0 : nb;
		const int M = (int)(Bc * per_rows);
		const float *Rd = h->Rdy[i] + (size_t)b0 * nd->size;
		const float *d = nd->dy + (size_t)b0 * nd->size;
		lb_conv_shape_init(&s, Bc, in->H, in->W, in->C, nd->C, nd->K, nd->stride, nd->pad);
		const float *cx = mcol ? mcol + (size_t)b0 * per_rows * KKC : h->colx;
		if (!mcol)
			lb_im2col(h->colx, in->y + (size_t)b0 * in->size, &s);
		lb_gemm(1, 0, N, KKC, M, 1.0f, Rd, cx, 1.0f, RgW);
		if (rx) {
			lb_im2col(h->colr, h->Ry[nd->in] + (size_t)b0 * in->size, &s);
			lb_gemm(1, 0, N, KKC, M, 1.0f, d, h->colr, 1.0f, RgW);
		}
		if (Rgb)
			sum_rows(Rgb, Rd, (size_t)M, N, h->acc, h->part);
		if (Rdx) { /* dcol into colr, free again */
			lb_gemm(0, 0, M, KKC, N, 1.0f, Rd, W, 0.0f, h->colr);
			if (VW)
				lb_gemm(0, 0, M, KKC, N, 1.0f, d, VW, 1.0f, h->colr);
			lb_col2im_add(Rdx + (size_t)b0 * in->size, h->colr, &s);
		}
	}
}

static void linear_rforward(struct lb_gradl1 *h, int i, int B, const float *V)
{
	struct lb_model *m = h->m;
	const struct lb_node *nd = &m->nodes[i], *in = &m->nodes[nd->in];
	const float *W = m->w + m->params[nd->w].offset;
	const float *VW = pw(m, V, nd->w), *Vb = pw(m, V, nd->b);
	const int rx = !h->rz[nd->in], Cin = (int)in->size, N = nd->C;
	float beta = 0.0f;
	if (!rx && !VW && !Vb) {
		h->rz[i] = 1;
		return;
	}
	if (rx) {
		lb_gemm(0, 1, B, N, Cin, 1.0f, h->Ry[nd->in], W, 0.0f, h->Ry[i]);
		beta = 1.0f;
	}
	if (VW) {
		lb_gemm(0, 1, B, N, Cin, 1.0f, in->y, VW, beta, h->Ry[i]);
		beta = 1.0f;
	}
	if (beta == 0.0f)
		memset(h->Ry[i], 0, (size_t)B * N * sizeof(float));
	if (Vb)
		add_rows(h->Ry[i], Vb, (size_t)B, N);
	h->rz[i] = 0;
}

static void linear_rbackward(struct lb_gradl1 *h, int i, int B, const float *V, float *Rg)
{
	struct lb_model *m = h->m;
	const struct lb_node *nd = &m->nodes[i], *in = &m->nodes[nd->in];
	const float *W = m->w + m->params[nd->w].offset;
	const float *VW = pw(m, V, nd->w);
	float *RgW = Rg + m->params[nd->w].offset, *Rgb = nd->b >= 0 ? (float *)pw(m, Rg, nd->b) : NULL;
	float *Rdx = h->Rdy[nd->in];
	const int Cin = (int)in->size, N = nd->C;
	/* R{δ} terms: Rdx += R{δ} W, RgW += R{δ}^T x, Rgb += Σ R{δ} */
	lb_linear_backward(Rdx, RgW, Rgb, h->Rdy[i], in->y, W, B, Cin, N);
	/* δ terms, the same kernel with (x, W) -> (R{x}, V_W): Rdx += δ V_W, RgW += δ^T R{x} */
	lb_linear_backward(VW ? Rdx : NULL, h->rz[nd->in] ? NULL : RgW, NULL, nd->dy,
			   h->Ry[nd->in], VW, B, Cin, N);
}

/* R{y} of a ReLU/ReLU6 = R{x} where its derivative is 1, read from its
 * output y: the backward kernels' masking (in place when Ry is Rx). */
static void relu_rforward(float *Ry, const float *Rx, const float *y, size_t n, int six)
{
	if (Ry != Rx)
		memcpy(Ry, Rx, n * sizeof(float));
	if (six)
		lb_relu6_backward_inplace(Ry, y, n);
	else
		lb_relu_backward_inplace(Ry, y, n);
}

static void rforward(struct lb_gradl1 *h, int B, const float *V, float lambda_a)
{
	struct lb_model *m = h->m;
	h->rz[0] = 1;
	for (int i = 1; i < m->n_nodes; i++) {
		const struct lb_node *nd = &m->nodes[i];
		const int a = nd->in;
		const size_t n = (size_t)B * nd->size;
		float *Ry = h->Ry[i];
		switch (nd->op) {
		case LB_OP_CONV:
			conv_rforward(h, i, B, V);
			break;
		case LB_OP_LINEAR:
			linear_rforward(h, i, B, V);
			break;
		case LB_OP_MAXPOOL:
			h->rz[i] = h->rz[a];
			if (!h->rz[i]) {
				const float *Rx = h->Ry[a];
				for (size_t k = 0; k < n; k++)
					Ry[k] = Rx[nd->argmax[k]];
			}
			break;
		case LB_OP_AVGPOOL: {
			const struct lb_node *in = &m->nodes[a];
			h->rz[i] = h->rz[a];
			if (!h->rz[i])
				lb_avgpool_forward(Ry, h->Ry[a], B, in->H, in->W, in->C, nd->K,
						   nd->stride, nd->pad);
			break;
		}
		case LB_OP_GAP: {
			const struct lb_node *in = &m->nodes[a];
			h->rz[i] = h->rz[a];
			if (!h->rz[i])
				lb_gap_forward(Ry, h->Ry[a], B, in->H * in->W, in->C);
			break;
		}
		case LB_OP_RELU:
		case LB_OP_RELU6:
			h->rz[i] = h->rz[a];
			if (!h->rz[i]) /* in place when Ry == Ry[a]: reads k before writing k */
				relu_rforward(Ry, h->Ry[a], nd->y, n, nd->op == LB_OP_RELU6);
			break;
		case LB_OP_ADD: {
			const int b = nd->in2;
			h->rz[i] = h->rz[a] && h->rz[b];
			if (h->rz[i])
				break;
			if (h->rz[a])
				memcpy(Ry, h->Ry[b], n * sizeof(float));
			else if (h->rz[b])
				memcpy(Ry, h->Ry[a], n * sizeof(float));
			else
				lb_add_forward(Ry, h->Ry[a], h->Ry[b], n);
			break;
		}
		case LB_OP_DROPOUT:
			h->rz[i] = h->rz[a];
			if (h->rz[i])
				break;
			if (nd->p > 0) {
				/* the kernel's backward is the same masked scaling */
				memset(Ry, 0, n * sizeof(float));
				lb_dropout_backward(Ry, h->Ry[a], nd->mask, n, nd->p);
			} else {
				memcpy(Ry, h->Ry[a], n * sizeof(float));
			}
			break;
		case LB_OP_FLATTEN:
		default:
			h->rz[i] = h->rz[a];
			break;
		}
		if (h->is_act[i] && lambda_a != 0.0f) { /* + S_l */
			const float *t = h->tap[i];
			if (h->rz[i])
				for (size_t k = 0; k < n; k++)
					Ry[k] = lambda_a * signf(t[k]);
			else
				for (size_t k = 0; k < n; k++)
					Ry[k] += lambda_a * signf(t[k]);
			h->rz[i] = 0;
		}
	}
}

static void rbackward(struct lb_gradl1 *h, int B, const int32_t *labels, float scale,
		      const float *V, float *Rg)
{
	struct lb_model *m = h->m;
	const int L = m->n_nodes - 1, C = m->n_classes;
	(void)labels; /* R{p - onehot} = R{p} */
	for (int i = 1; i < m->n_nodes; i++)
		if (h->own[i])
			memset(h->Rdy[i], 0, (size_t)B * m->nodes[i].size * sizeof(float));
	/* softmax-CE: R{dlogits} = scale R{p}, R{p} = p ⊙ (R{z} - <p, R{z}>) per sample */
	if (!h->rz[L]) {
		for (int b = 0; b < B; b++) {
			const float *p = m->probs + (size_t)b * C, *Rz = h->Ry[L] + (size_t)b * C;
			float *Rd = h->Rdy[L] + (size_t)b * C;
			double dot = 0.0;
			for (int c = 0; c < C; c++)
				dot += (double)p[c] * Rz[c];
			for (int c = 0; c < C; c++)
				Rd[c] = (float)(scale * (double)p[c] * ((double)Rz[c] - dot));
		}
	}
	for (int i = L; i >= 1; i--) {
		const struct lb_node *nd = &m->nodes[i];
		const struct lb_node *in = &m->nodes[nd->in];
		float *Rdx = h->Rdy[nd->in]; /* NULL for the network input */
		const float *Rd = h->Rdy[i];
		const size_t n = (size_t)B * nd->size;
		switch (nd->op) {
		case LB_OP_CONV:
			conv_rbackward(h, i, B, V, Rg);
			break;
		case LB_OP_LINEAR:
			linear_rbackward(h, i, B, V, Rg);
			break;
		case LB_OP_MAXPOOL:
			if (Rdx)
				lb_maxpool_backward(Rdx, Rd, nd->argmax, n);
			break;
		case LB_OP_AVGPOOL:
			if (Rdx)
				lb_avgpool_backward(Rdx, Rd, B, in->H, in->W, in->C, nd->K, nd->stride,
						    nd->pad);
			break;
		case LB_OP_GAP:
			if (Rdx)
				lb_gap_backward(Rdx, Rd, B, in->H * in->W, in->C);
			break;
		case LB_OP_RELU:
			if (nd->inplace)
				lb_relu_backward_inplace(h->Rdy[i], nd->y, n);
			else if (Rdx)
				lb_relu_backward(Rdx, Rd, nd->y, n);
			break;
		case LB_OP_RELU6:
			if (nd->inplace)
				lb_relu6_backward_inplace(h->Rdy[i], nd->y, n);
			else if (Rdx)
				lb_relu6_backward(Rdx, Rd, nd->y, n);
			break;
		case LB_OP_ADD:
			lb_add_backward(Rdx, h->Rdy[nd->in2], Rd, n);
			break;
		case LB_OP_DROPOUT:
			if (Rdx) {
				if (nd->p > 0)
					lb_dropout_backward(Rdx, Rd, nd->mask, n, nd->p);
				else
					lb_add_backward(Rdx, NULL, Rd, n);
			}
			break;
		case LB_OP_FLATTEN:
		default:
			break;
		}
	}
}

/* ---- FD ---- */

static void fd_hvp(struct lb_gradl1 *h, int B, const int32_t *labels, float scale,
		   uint32_t step, uint64_t first_sample, const float *V, float lambda_a, float *Rg)
{
	struct lb_model *m = h->m;
	const size_t nw = m->n_weights;
	float *restrict w = m->w;
	const float *restrict w0 = h->w0;
	float lambda_w = 0.0f;
	double wsum = 0.0;
	size_t wn = 0;
	if (V)
		for (size_t j = 0; j < nw; j++) {
			const float v = fabsf(V[j]);
			lambda_w = v > lambda_w ? v : lambda_w;
		}
	double lambda = fmax(lambda_w, fabs((double)lambda_a));
	if (lambda == 0.0)
		return;
	for (int pi = 0; pi < m->n_params; pi++) {
		const struct lb_param *p = &m->params[pi];
		if (!(p->flags & LB_PARAM_WEIGHT))
			continue;
		for (size_t j0 = 0; j0 < p->count; j0 += 64) {
			const size_t j1 = p->count - j0 < 64 ? p->count : j0 + 64;
			float part = 0.0f;
			for (size_t j = j0; j < j1; j++)
				part += fabsf(w[p->offset + j]);
			wsum += part;
		}
		wn += p->count;
	}
	double meanw = wn && wsum > 0 ? wsum / (double)wn : 1.0;
	const float eps = (float)(h->eps_rel * meanw / lambda);
	/* S_l / lambda_a = sign(dL/dy_l), in place in the taps */
	for (int k = 0; k < h->n_act; k++) {
		float *t = h->tap[h->act[k]];
		const size_t n = (size_t)B * m->nodes[h->act[k]].size;
		for (size_t j = 0; j < n; j++)
			t[j] = signf(t[j]);
	}
	float **taps = m->dy_tap;
	float *bn_stats = m->bn_stats;
	memcpy(h->w0, w, nw * sizeof(float));
	memcpy(h->g0, m->g, m->n_grad * sizeof(float));
	m->dy_tap = NULL;
	m->bn_stats = h->bn_scratch; /* batch statistics, running ones untouched */
	m->y_add = lambda_a != 0.0f ? h->add : NULL;
	memset(m->g, 0, m->n_grad * sizeof(float));
	for (int side = 1; side >= -1; side -= 2) {
		const float e = (float)side * eps;
		if (V)
			for (size_t j = 0; j < nw; j++)
				w[j] = w0[j] + e * V[j];
		m->y_add_scale = e * lambda_a;
		lb_model_forward(m, B, labels, 1, step, first_sample, NULL);
		/* g = g(+) - g(-): the second backward accumulates with -scale */
		lb_model_backward(m, B, labels, (float)side * scale);
	}
	const float inv = (float)(1.0 / (2.0 * (double)eps));
	const float *restrict g = m->g;
	for (size_t j = 0; j < nw; j++)
		Rg[j] += g[j] * inv;
	memcpy(w, w0, nw * sizeof(float));
	memcpy(m->g, h->g0, m->n_grad * sizeof(float));
	m->y_add = NULL;
	m->y_add_scale = 0.0f;
	m->bn_stats = bn_stats;
	m->dy_tap = taps;
}

double lb_gradl1_hvp(struct lb_gradl1 *h, struct lb_model *m, int B, const int32_t *labels,
		     float scale, uint32_t step, uint64_t first_sample, const float *V,
		     float lambda_a, float *Rg)
{
	double act = 0.0;
	for (int k = 0; k < h->n_act; k++) {
		const float *t = h->tap[h->act[k]];
		const size_t n = (size_t)B * m->nodes[h->act[k]].size;
		for (size_t j = 0; j < n; j++)
			act += fabs((double)t[j]);
	}
	act *= lambda_a;
	if (h->use_fd) {
		fd_hvp(h, B, labels, scale, step, first_sample, V, lambda_a, Rg);
		return act;
	}
	(void)step;
	(void)first_sample;
	if (!V && lambda_a == 0.0f)
		return act;
	rforward(h, B, V, lambda_a);
	rbackward(h, B, labels, scale, V, Rg);
	return act;
}
