/* SPDX-License-Identifier: MIT
 * Tests for core/layers: a central-difference gradient check of every backward
 * (L = <r, y> with r from the counter RNG, so dL/dy = r), fast paths held equal
 * to their *_ref twins, im2col/col2im adjointness, accumulation (backward twice
 * = twice the gradient), batch = sum of halves, and the semantics of batch
 * norm, dropout, softmax cross-entropy and max-pool ties. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../gradcheck.h"
#include "layers/layers.h"
#include "rng.h"
#include "../tap.h"

#define SEED 20240607ULL
#define GC_TOL 1e-3   /* on the norm-relative error of a whole gradient */
#define EQ_TOL 1e-5   /* fast path vs reference twin, relative to max |ref| */

/* ---- helpers ---- */

static float *fnew(size_t n)
{
	return calloc(n ? n : 1, sizeof(float));
}

/* a[i] = scale * N(0,1) drawn at (SEED, TEST, tag, i) */
static void fill_normal(float *a, size_t n, uint32_t tag, float scale)
{
	for (size_t i = 0; i < n; i++)
		a[i] = scale * lb_rng_normal(SEED, LB_RNG_TEST, tag, i);
}

/* Values away from the kinks of relu (0) and relu6 (0, 6): uniform in [-2, 8)
 * pushed at least 0.05 off each kink. */
static void fill_off_kinks(float *a, size_t n, uint32_t tag)
{
	for (size_t i = 0; i < n; i++) {
		float v = 10.0f * lb_rng_uniform(SEED, LB_RNG_TEST, tag, i) - 2.0f;
		if (fabsf(v) < 0.05f)
			v = v < 0.0f ? -0.05f - v : 0.05f + v;
		if (fabsf(v - 6.0f) < 0.05f)
			v = v < 6.0f ? v - 0.05f : v + 0.05f;
		a[i] = v;
	}
}

/* Distinct values 0.01 apart in random order: no ties, and a step of 1e-3
 * never changes which element is a window's maximum. */
static int fill_distinct(float *a, size_t n, uint32_t tag)
{
	int32_t *perm = malloc((n ? n : 1) * sizeof(*perm));
	if (!perm)
		return -1;
	lb_rng_permutation(perm, (int32_t)n, SEED, LB_RNG_TEST, tag);
	for (size_t i = 0; i < n; i++)
		a[i] = 0.01f * (float)(perm[i] - (int32_t)n / 2);
	free(perm);
	return 0;
}

/* ||a - b||_inf / max(||b||_inf, tiny) */
static double rel_diff(const float *a, const float *b, size_t n)
{
	double d = 0.0, m = 0.0;
	for (size_t i = 0; i < n; i++) {
		d = fmax(d, fabs((double)a[i] - b[i]));
		m = fmax(m, fabs((double)b[i]));
	}
	return d / fmax(m, 1e-30);
}

static int gc_report(struct gc_result r, double tol, const char *what)
{
	int pass = ok(r.norm_rel < tol, "gradcheck %s", what);
	diag("  %s: norm rel err %.2e, max rel err %.2e (elem %zu), max abs err %.2e", what,
	     r.norm_rel, r.max_rel, r.worst, r.max_abs);
	return pass;
}

/* ---- linear ---- */

struct lin_ctx {
	float *y, *x, *w, *b, *r;
	int B, C_in, C_out;
};

static double lin_loss(void *p)
{
	struct lin_ctx *c = p;
	lb_linear_forward(c->y, c->x, c->w, c->b, c->B, c->C_in, c->C_out);
	return gc_dot(c->r, c->y, (size_t)c->B * c->C_out);
}

static void test_linear_gradcheck(int with_bias)
{
	const int B = 3, C_in = 7, C_out = 5;
	struct lin_ctx c = {fnew((size_t)B * C_out), fnew((size_t)B * C_in),
			    fnew((size_t)C_out * C_in), with_bias ? fnew(C_out) : NULL,
			    fnew((size_t)B * C_out), B, C_in, C_out};
	float *dx = fnew((size_t)B * C_in), *dw = fnew((size_t)C_out * C_in), *db = fnew(C_out);
	char name[64];

	if (!c.y || !c.x || !c.w || (with_bias && !c.b) || !c.r || !dx || !dw || !db) {
		ok(0, "linear gradcheck: allocation");
		goto out;
	}
	fill_normal(c.x, (size_t)B * C_in, 1, 1.0f);
	fill_normal(c.w, (size_t)C_out * C_in, 2, 0.5f);
	if (c.b)
		fill_normal(c.b, C_out, 3, 0.5f);
	fill_normal(c.r, (size_t)B * C_out, 4, 1.0f);
	lb_linear_forward(c.y, c.x, c.w, c.b, B, C_in, C_out);
	lb_linear_backward(dx, dw, c.b ? db : NULL, c.r, c.x, c.w, B, C_in, C_out);
	snprintf(name, sizeof(name), "linear%s dx", with_bias ? "" : " (no bias)");
	gc_report(gc_check(lin_loss, &c, c.x, dx, (size_t)B * C_in, 1e-2), GC_TOL, name);
	snprintf(name, sizeof(name), "linear%s dw", with_bias ? "" : " (no bias)");
	gc_report(gc_check(lin_loss, &c, c.w, dw, (size_t)C_out * C_in, 1e-2), GC_TOL, name);
	if (c.b)
		gc_report(gc_check(lin_loss, &c, c.b, db, C_out, 1e-2), GC_TOL, "linear db");
out:
	free(c.y), free(c.x), free(c.w), free(c.b), free(c.r), free(dx), free(dw), free(db);
}

static void test_linear_vs_ref(void)
{
	const int B = 5, C_in = 33, C_out = 17;
	const size_t nx = (size_t)B * C_in, nw = (size_t)C_out * C_in, ny = (size_t)B * C_out;
	float *x = fnew(nx), *w = fnew(nw), *b = fnew(C_out), *y1 = fnew(ny), *y2 = fnew(ny);
	float *dy = fnew(ny), *g1 = fnew(nx + nw + C_out), *g2 = fnew(nx + nw + C_out);

	if (!x || !w || !b || !y1 || !y2 || !dy || !g1 || !g2) {
		ok(0, "linear vs ref: allocation");
		goto out;
	}
	fill_normal(x, nx, 10, 1.0f);
	fill_normal(w, nw, 11, 1.0f);
	fill_normal(b, C_out, 12, 1.0f);
	fill_normal(dy, ny, 13, 1.0f);
	lb_linear_forward(y1, x, w, b, B, C_in, C_out);
	lb_linear_forward_ref(y2, x, w, b, B, C_in, C_out);
	ok(rel_diff(y1, y2, ny) < EQ_TOL, "linear forward == ref");
	/* start both from the same non-zero gradients: checks += too */
	fill_normal(g1, nx + nw + C_out, 14, 1.0f);
	memcpy(g2, g1, (nx + nw + C_out) * sizeof(float));
	lb_linear_backward(g1, g1 + nx, g1 + nx + nw, dy, x, w, B, C_in, C_out);
	lb_linear_backward_ref(g2, g2 + nx, g2 + nx + nw, dy, x, w, B, C_in, C_out);
	ok(rel_diff(g1, g2, nx) < EQ_TOL, "linear backward dx == ref");
	ok(rel_diff(g1 + nx, g2 + nx, nw) < EQ_TOL, "linear backward dw == ref");
	ok(rel_diff(g1 + nx + nw, g2 + nx + nw, C_out) < EQ_TOL, "linear backward db == ref");
out:
	free(x), free(w), free(b), free(y1), free(y2), free(dy), free(g1), free(g2);
}

/* ---- conv2d ---- */

struct conv_ctx {
	struct lb_conv_shape s;
	float *y, *col, *x, *w, *b, *r;
};

static double conv_loss(void *p)
{
	struct conv_ctx *c = p;
	lb_conv2d_forward(c->y, c->col, c->x, c->w, c->b, &c->s);
	return gc_dot(c->r, c->y, (size_t)c->s.B * c->s.OH * c->s.OW * c->s.C_out);
}

static void test_conv_gradcheck(int stride, int pad, int with_bias)
{
	struct conv_ctx c;
	size_t nx, nw, ny;
	float *dx = NULL, *dw = NULL, *db = NULL;
	char name[96];

	lb_conv_shape_init(&c.s, 2, 6, 7, 3, 4, 3, stride, pad);
	nx = (size_t)c.s.B * c.s.H * c.s.W * c.s.C_in;
	nw = (size_t)c.s.C_out * c.s.K * c.s.K * c.s.C_in;
	ny = (size_t)c.s.B * c.s.OH * c.s.OW * c.s.C_out;
	c.y = fnew(ny), c.col = fnew(lb_conv_col_size(&c.s)), c.x = fnew(nx), c.w = fnew(nw);
	c.b = with_bias ? fnew(c.s.C_out) : NULL;
	c.r = fnew(ny);
	dx = fnew(nx), dw = fnew(nw), db = fnew(c.s.C_out);
	if (!c.y || !c.col || !c.x || !c.w || (with_bias && !c.b) || !c.r || !dx || !dw || !db) {
		ok(0, "conv gradcheck: allocation");
		goto out;
	}
	fill_normal(c.x, nx, 20, 1.0f);
	fill_normal(c.w, nw, 21, 0.3f);
	if (c.b)
		fill_normal(c.b, c.s.C_out, 22, 0.5f);
	fill_normal(c.r, ny, 23, 1.0f);
	lb_conv2d_forward(c.y, c.col, c.x, c.w, c.b, &c.s);
	lb_conv2d_backward(dx, dw, c.b ? db : NULL, c.col, 1, c.r, c.x, c.w, &c.s);
	snprintf(name, sizeof(name), "conv2d stride %d pad %d %s: dx", stride, pad,
		 with_bias ? "bias" : "no bias");
	gc_report(gc_check(conv_loss, &c, c.x, dx, nx, 1e-2), GC_TOL, name);
	snprintf(name, sizeof(name), "conv2d stride %d pad %d %s: dw", stride, pad,
		 with_bias ? "bias" : "no bias");
	gc_report(gc_check(conv_loss, &c, c.w, dw, nw, 1e-2), GC_TOL, name);
	if (c.b) {
		snprintf(name, sizeof(name), "conv2d stride %d pad %d bias: db", stride, pad);
		gc_report(gc_check(conv_loss, &c, c.b, db, c.s.C_out, 1e-2), GC_TOL, name);
	}
out:
	free(c.y), free(c.col), free(c.x), free(c.w), free(c.b), free(c.r);
	free(dx), free(dw), free(db);
}

/* im2col by its definition: col[m, (kh, kw, c)] = x[b, oh S - P + kh, ow S - P + kw, c] or 0 */
static void im2col_naive(float *col, const float *x, const struct lb_conv_shape *s)
{
	const int K = s->K, C = s->C_in;
	size_t m = 0;
	for (int b = 0; b < s->B; b++)
		for (int oh = 0; oh < s->OH; oh++)
			for (int ow = 0; ow < s->OW; ow++, m++)
				for (int kh = 0; kh < K; kh++)
					for (int kw = 0; kw < K; kw++)
						for (int c = 0; c < C; c++) {
							const int ih = oh * s->stride - s->pad + kh;
							const int iw = ow * s->stride - s->pad + kw;
							const int in = ih >= 0 && ih < s->H && iw >= 0 && iw < s->W;
							col[m * K * K * C + ((size_t)kh * K + kw) * C + c] =
								in ? x[(((size_t)b * s->H + ih) * s->W + iw) * C + c] : 0.0f;
						}
}

static const int conv_shapes[][8] = {
	/* B, H, W, C_in, C_out, K, stride, pad */
	{2, 7, 6, 3, 4, 3, 1, 1},
	{2, 8, 8, 2, 5, 3, 2, 0},
	{1, 9, 7, 3, 2, 5, 2, 2},
	{3, 12, 12, 1, 6, 5, 1, 0},   /* LeNet conv1, small batch */
	{2, 12, 12, 20, 50, 5, 1, 0}, /* LeNet conv2, small batch */
	{2, 5, 5, 4, 3, 1, 1, 0},     /* 1x1 */
	{1, 6, 6, 2, 3, 3, 3, 1},     /* stride 3 */
	{2, 4, 5, 3, 2, 4, 1, 2},     /* even K, pad wider than the image in places */
	{1, 3, 3, 2, 2, 3, 1, 2},     /* windows entirely in the padding */
};

static void test_conv_vs_ref(const int *sh)
{
	struct lb_conv_shape s;
	size_t nx, nw, ny, ncol;
	float *x = NULL, *w = NULL, *b = NULL, *y1 = NULL, *y2 = NULL, *col = NULL, *col2 = NULL;
	float *dy = NULL, *g1 = NULL, *g2 = NULL, *g3 = NULL;
	char name[128];

	lb_conv_shape_init(&s, sh[0], sh[1], sh[2], sh[3], sh[4], sh[5], sh[6], sh[7]);
	snprintf(name, sizeof(name), "B%d H%d W%d C_in %d C_out %d K%d S%d P%d", s.B, s.H, s.W,
		 s.C_in, s.C_out, s.K, s.stride, s.pad);
	nx = (size_t)s.B * s.H * s.W * s.C_in;
	nw = (size_t)s.C_out * s.K * s.K * s.C_in;
	ny = (size_t)s.B * s.OH * s.OW * s.C_out;
	ncol = lb_conv_col_size(&s);
	x = fnew(nx), w = fnew(nw), b = fnew(s.C_out), y1 = fnew(ny), y2 = fnew(ny);
	col = fnew(ncol), col2 = fnew(ncol), dy = fnew(ny);
	g1 = fnew(nx + nw + s.C_out), g2 = fnew(nx + nw + s.C_out), g3 = fnew(nx + nw + s.C_out);
	if (!x || !w || !b || !y1 || !y2 || !col || !col2 || !dy || !g1 || !g2 || !g3) {
		ok(0, "conv vs ref: allocation");
		goto out;
	}
	fill_normal(x, nx, 30, 1.0f);
	fill_normal(w, nw, 31, 1.0f);
	fill_normal(b, s.C_out, 32, 1.0f);
	fill_normal(dy, ny, 33, 1.0f);

	lb_im2col(col, x, &s);
	im2col_naive(col2, x, &s);
	ok(memcmp(col, col2, ncol * sizeof(float)) == 0, "im2col == definition, %s", name);

	lb_conv2d_forward(y1, col, x, w, b, &s);
	lb_conv2d_forward_ref(y2, x, w, b, &s);
	ok(rel_diff(y1, y2, ny) < EQ_TOL, "conv2d forward == ref, %s", name);
	lb_conv2d_forward(y1, col, x, w, NULL, &s);
	lb_conv2d_forward_ref(y2, x, w, NULL, &s);
	ok(rel_diff(y1, y2, ny) < EQ_TOL, "conv2d forward (no bias) == ref, %s", name);

	/* backward from non-zero gradients (checks +=), col as left by the forward */
	fill_normal(g1, nx + nw + s.C_out, 34, 1.0f);
	memcpy(g2, g1, (nx + nw + s.C_out) * sizeof(float));
	memcpy(g3, g1, (nx + nw + s.C_out) * sizeof(float));
	lb_conv2d_backward(g1, g1 + nx, g1 + nx + nw, col, 1, dy, x, w, &s);
	lb_conv2d_backward_ref(g2, g2 + nx, g2 + nx + nw, dy, x, w, &s);
	ok(rel_diff(g1, g2, nx) < EQ_TOL && rel_diff(g1 + nx, g2 + nx, nw) < EQ_TOL &&
		   rel_diff(g1 + nx + nw, g2 + nx + nw, s.C_out) < EQ_TOL,
	   "conv2d backward dx, dw, db == ref, %s", name);
	diag("  rel diff dx %.2e dw %.2e db %.2e", rel_diff(g1, g2, nx),
	     rel_diff(g1 + nx, g2 + nx, nw), rel_diff(g1 + nx + nw, g2 + nx + nw, s.C_out));

	/* col_valid = 0: col holds garbage (here dcol from the call above) */
	fill_normal(col, ncol, 35, 1.0f);
	lb_conv2d_backward(g3, g3 + nx, g3 + nx + nw, col, 0, dy, x, w, &s);
	ok(rel_diff(g3, g2, nx + nw + s.C_out) < EQ_TOL, "conv2d backward col_valid=0 == ref, %s",
	   name);

	/* dx == NULL: only dw, db */
	memset(g1, 0, (nx + nw + s.C_out) * sizeof(float));
	memset(g2, 0, (nx + nw + s.C_out) * sizeof(float));
	lb_conv2d_backward(NULL, g1 + nx, g1 + nx + nw, col, 0, dy, x, w, &s);
	lb_conv2d_backward_ref(NULL, g2 + nx, g2 + nx + nw, dy, x, w, &s);
	ok(rel_diff(g1 + nx, g2 + nx, nw + s.C_out) < EQ_TOL, "conv2d backward dx=NULL == ref, %s",
	   name);
out:
	free(x), free(w), free(b), free(y1), free(y2), free(col), free(col2), free(dy);
	free(g1), free(g2), free(g3);
}

/* <col2im(a), v> == <a, im2col(v)> */
static void test_im2col_adjoint(const int *sh)
{
	struct lb_conv_shape s;
	size_t nx, ncol;
	float *a = NULL, *v = NULL, *ca = NULL, *cv = NULL;
	double lhs, rhs, scale = 0.0;

	lb_conv_shape_init(&s, sh[0], sh[1], sh[2], sh[3], sh[4], sh[5], sh[6], sh[7]);
	nx = (size_t)s.B * s.H * s.W * s.C_in;
	ncol = lb_conv_col_size(&s);
	a = fnew(ncol), v = fnew(nx), ca = fnew(nx), cv = fnew(ncol);
	if (!a || !v || !ca || !cv) {
		ok(0, "im2col adjoint: allocation");
		goto out;
	}
	fill_normal(a, ncol, 40, 1.0f);
	fill_normal(v, nx, 41, 1.0f);
	lb_col2im_add(ca, a, &s);
	lb_im2col(cv, v, &s);
	lhs = gc_dot(ca, v, nx);
	rhs = gc_dot(a, cv, ncol);
	for (size_t i = 0; i < ncol; i++)
		scale += fabs((double)a[i] * cv[i]);
	ok(fabs(lhs - rhs) <= 1e-6 * scale,
	   "<col2im(a), v> == <a, im2col(v)> (K%d S%d P%d C_in %d): %.9g vs %.9g", s.K, s.stride,
	   s.pad, s.C_in, lhs, rhs);
out:
	free(a), free(v), free(ca), free(cv);
}

/* The gradient of a batch is the sum of the gradients of its two halves. */
static void test_conv_batch_halves(void)
{
	struct lb_conv_shape s, h;
	size_t nx, nw, ny;
	float *x = NULL, *w = NULL, *dy = NULL, *col = NULL, *g1 = NULL, *g2 = NULL;

	lb_conv_shape_init(&s, 4, 8, 8, 3, 5, 3, 1, 1);
	lb_conv_shape_init(&h, 2, 8, 8, 3, 5, 3, 1, 1);
	nx = (size_t)s.B * s.H * s.W * s.C_in;
	nw = (size_t)s.C_out * s.K * s.K * s.C_in;
	ny = (size_t)s.B * s.OH * s.OW * s.C_out;
	x = fnew(nx), w = fnew(nw), dy = fnew(ny), col = fnew(lb_conv_col_size(&s));
	g1 = fnew(nx + nw + s.C_out), g2 = fnew(nx + nw + s.C_out);
	if (!x || !w || !dy || !col || !g1 || !g2) {
		ok(0, "conv halves: allocation");
		goto out;
	}
	fill_normal(x, nx, 50, 1.0f);
	fill_normal(w, nw, 51, 1.0f);
	fill_normal(dy, ny, 52, 1.0f);
	lb_conv2d_backward(g1, g1 + nx, g1 + nx + nw, col, 0, dy, x, w, &s);
	lb_conv2d_backward(g2, g2 + nx, g2 + nx + nw, col, 0, dy, x, w, &h);
	lb_conv2d_backward(g2 + nx / 2, g2 + nx, g2 + nx + nw, col, 0, dy + ny / 2, x + nx / 2, w,
			   &h);
	ok(rel_diff(g2, g1, nx + nw + s.C_out) < EQ_TOL,
	   "conv2d: batch gradient == sum of the two halves");
out:
	free(x), free(w), free(dy), free(col), free(g1), free(g2);
}

/* ---- pooling ---- */

struct pool_ctx {
	float *y, *x, *r;
	int32_t *argmax;
	int B, H, W, C, K, stride, pad, OH, OW, kind; /* kind 0 max, 1 avg, 2 gap */
};

static double pool_loss(void *p)
{
	struct pool_ctx *c = p;
	size_t ny = (size_t)c->B * c->OH * c->OW * c->C;
	if (c->kind == 0)
		lb_maxpool_forward(c->y, c->argmax, c->x, c->B, c->H, c->W, c->C, c->K, c->stride,
				   c->pad);
	else if (c->kind == 1)
		lb_avgpool_forward(c->y, c->x, c->B, c->H, c->W, c->C, c->K, c->stride, c->pad);
	else
		lb_gap_forward(c->y, c->x, c->B, c->H * c->W, c->C);
	return gc_dot(c->r, c->y, ny);
}

static void test_pool_gradcheck(int kind, int H, int W, int K, int stride, int pad)
{
	static const char *kinds[] = {"maxpool", "avgpool", "gap"};
	struct pool_ctx c = {0};
	size_t nx, ny;
	float *dx = NULL;
	char name[96];

	c.B = 2, c.H = H, c.W = W, c.C = 3, c.K = K, c.stride = stride, c.pad = pad, c.kind = kind;
	c.OH = kind == 2 ? 1 : (H + 2 * pad - K) / stride + 1;
	c.OW = kind == 2 ? 1 : (W + 2 * pad - K) / stride + 1;
	nx = (size_t)c.B * H * W * c.C;
	ny = (size_t)c.B * c.OH * c.OW * c.C;
	c.x = fnew(nx), c.y = fnew(ny), c.r = fnew(ny), dx = fnew(nx);
	c.argmax = calloc(ny, sizeof(int32_t));
	if (!c.x || !c.y || !c.r || !dx || !c.argmax || fill_distinct(c.x, nx, 60) != 0) {
		ok(0, "pool gradcheck: allocation");
		goto out;
	}
	fill_normal(c.r, ny, 61, 1.0f);
	pool_loss(&c);
	if (kind == 0)
		lb_maxpool_backward(dx, c.r, c.argmax, ny);
	else if (kind == 1)
		lb_avgpool_backward(dx, c.r, c.B, H, W, c.C, K, stride, pad);
	else
		lb_gap_backward(dx, c.r, c.B, H * W, c.C);
	if (kind == 2)
		snprintf(name, sizeof(name), "gap dx (%dx%d)", H, W);
	else
		snprintf(name, sizeof(name), "%s dx (%dx%d, K%d S%d P%d)", kinds[kind], H, W, K,
			 stride, pad);
	gc_report(gc_check(pool_loss, &c, c.x, dx, nx, 1e-3), GC_TOL, name);
out:
	free(c.x), free(c.y), free(c.r), free(dx), free(c.argmax);
}

/* The 2x2/2 fast path equals the general loop, values and argmax, with many ties. */
static void test_maxpool_vs_ref(int B, int H, int W, int C, int ties)
{
	const int OH = H / 2, OW = W / 2;
	const size_t nx = (size_t)B * H * W * C, ny = (size_t)B * OH * OW * C;
	float *x = fnew(nx), *y1 = fnew(ny), *y2 = fnew(ny);
	int32_t *a1 = calloc(ny, sizeof(int32_t)), *a2 = calloc(ny, sizeof(int32_t));
	size_t bad = 0;

	if (!x || !y1 || !y2 || !a1 || !a2) {
		ok(0, "maxpool vs ref: allocation");
		goto out;
	}
	for (size_t i = 0; i < nx; i++)
		x[i] = ties ? (float)lb_rng_below(SEED, LB_RNG_TEST, 70, i, 3)
			    : lb_rng_normal(SEED, LB_RNG_TEST, 71, i);
	lb_maxpool_forward(y1, a1, x, B, H, W, C, 2, 2, 0);
	lb_maxpool_forward_ref(y2, a2, x, B, H, W, C, 2, 2, 0);
	for (size_t i = 0; i < ny; i++)
		bad += y1[i] != y2[i] || a1[i] != a2[i];
	is_int(bad, 0, "maxpool 2x2 fast path == ref (B%d H%d W%d C%d%s)", B, H, W, C,
	       ties ? ", ties" : "");
out:
	free(x), free(y1), free(y2), free(a1), free(a2);
}

/* On ties the argmax is the first element of the window in (kh, kw) order. */
static void test_maxpool_ties(void)
{
	enum { H = 4, W = 4, C = 2 };
	float x[H * W * C], y[9 * C];
	int32_t am[9 * C];
	int good = 1;

	for (int i = 0; i < H * W * C; i++)
		x[i] = 1.0f;
	lb_maxpool_forward(y, am, x, 1, H, W, C, 2, 2, 0); /* fast path */
	/* output (oh, ow) -> first input (2 oh, 2 ow) */
	for (int oh = 0; oh < 2; oh++)
		for (int ow = 0; ow < 2; ow++)
			for (int c = 0; c < C; c++)
				good &= am[(oh * 2 + ow) * C + c] == ((2 * oh) * W + 2 * ow) * C + c;
	ok(good, "maxpool 2x2/2: argmax first on ties");
	/* general path, K3 S2 P1 (3x3 output... here 2x2): first valid element, padding skipped */
	lb_maxpool_forward(y, am, x, 1, H, W, C, 3, 2, 1);
	good = 1;
	for (int oh = 0; oh < 2; oh++)
		for (int ow = 0; ow < 2; ow++)
			for (int c = 0; c < C; c++) {
				const int ih = oh * 2 - 1 < 0 ? 0 : oh * 2 - 1;
				const int iw = ow * 2 - 1 < 0 ? 0 : ow * 2 - 1;
				good &= am[(oh * 2 + ow) * C + c] == (ih * W + iw) * C + c;
				good &= y[(oh * 2 + ow) * C + c] == 1.0f;
			}
	ok(good, "maxpool K3 S2 P1: argmax first valid element on ties, padding never wins");
	/* negative inputs: zero padding must not be the maximum */
	for (int i = 0; i < H * W * C; i++)
		x[i] = -1.0f - (float)i;
	lb_maxpool_forward(y, am, x, 1, H, W, C, 3, 2, 1);
	ok(y[0] == -1.0f && am[0] == 0, "maxpool: padding is excluded (y %g, argmax %d)",
	   (double)y[0], (int)am[0]);
}

/* ---- pointwise and dropout ---- */

struct pw_ctx {
	float *y, *a, *b, *r;
	uint8_t *mask;
	size_t n;
	int kind; /* 0 relu, 1 relu6, 2 add, 3 dropout */
};

static double pw_loss(void *p)
{
	struct pw_ctx *c = p;
	if (c->kind == 0)
		lb_relu_forward(c->y, c->a, c->n);
	else if (c->kind == 1)
		lb_relu6_forward(c->y, c->a, c->n);
	else if (c->kind == 2)
		lb_add_forward(c->y, c->a, c->b, c->n);
	else
		lb_dropout_forward(c->y, c->mask, c->a, c->n, 0.3f, SEED, 7, 2, 100);
	return gc_dot(c->r, c->y, c->n);
}

static void test_pointwise_gradcheck(int kind)
{
	static const char *kinds[] = {"relu", "relu6", "add", "dropout (fixed mask)"};
	const size_t n = 120;
	struct pw_ctx c = {fnew(n), fnew(n), fnew(n), fnew(n), malloc(n), n, kind};
	float *da = fnew(n), *db = fnew(n);
	char name[64];

	if (!c.y || !c.a || !c.b || !c.r || !c.mask || !da || !db) {
		ok(0, "pointwise gradcheck: allocation");
		goto out;
	}
	fill_off_kinks(c.a, n, 80);
	fill_normal(c.b, n, 81, 1.0f);
	fill_normal(c.r, n, 82, 1.0f);
	pw_loss(&c);
	if (kind == 0)
		lb_relu_backward(da, c.r, c.y, n);
	else if (kind == 1)
		lb_relu6_backward(da, c.r, c.y, n);
	else if (kind == 2)
		lb_add_backward(da, db, c.r, n);
	else
		lb_dropout_backward(da, c.r, c.mask, n, 0.3f);
	snprintf(name, sizeof(name), "%s dx", kinds[kind]);
	gc_report(gc_check(pw_loss, &c, c.a, da, n, 1e-2), GC_TOL, name);
	if (kind == 2)
		gc_report(gc_check(pw_loss, &c, c.b, db, n, 1e-2), GC_TOL, "add db");
out:
	free(c.y), free(c.a), free(c.b), free(c.r), free(c.mask), free(da), free(db);
}

static void test_dropout(void)
{
	const size_t n = 20000;
	const float p = 0.25f;
	float *x = fnew(n), *y1 = fnew(n), *y2 = fnew(n);
	uint8_t *m1 = malloc(n), *m2 = malloc(n);
	size_t kept = 0, bad = 0;

	if (!x || !y1 || !y2 || !m1 || !m2) {
		ok(0, "dropout: allocation");
		goto out;
	}
	fill_normal(x, n, 90, 1.0f);
	lb_dropout_forward(y1, m1, x, n, p, SEED, 3, 1, 0);
	lb_dropout_forward(y2, m2, x, n, p, SEED, 3, 1, 0);
	ok(memcmp(m1, m2, n) == 0 && memcmp(y1, y2, n * sizeof(float)) == 0,
	   "dropout: same (seed, step, layer, index) -> same mask");
	for (size_t i = 0; i < n; i++) {
		const float u = lb_rng_uniform(SEED, LB_RNG_DROPOUT, 3, ((uint64_t)1 << 40) | i);
		bad += m1[i] != (u >= p);
		bad += y1[i] != (m1[i] ? x[i] * (1.0f / (1.0f - p)) : 0.0f);
		kept += m1[i];
	}
	is_int(bad, 0, "dropout: mask is u(seed, DROPOUT, step, layer<<40 | i) >= p, y = x m/(1-p)");
	/* binomial: sd = sqrt(n p (1-p)) ~ 61; allow 5 sd */
	ok(fabs((double)kept - (1.0 - p) * n) < 5.0 * sqrt(n * p * (1.0 - p)),
	   "dropout: keep rate %.4f ~ 1-p = %.2f", (double)kept / n, 1.0 - p);
	/* a shard starting at first_index draws the whole batch's masks */
	lb_dropout_forward(y2, m2, x + 5000, 3000, p, SEED, 3, 1, 5000);
	ok(memcmp(m2, m1 + 5000, 3000) == 0, "dropout: shard at first_index = slice of the mask");
	lb_dropout_forward(y2, m2, x, n, p, SEED, 4, 1, 0);
	ok(memcmp(m1, m2, n) != 0, "dropout: another step draws another mask");
	lb_dropout_forward(y2, m2, x, n, p, SEED, 3, 2, 0);
	ok(memcmp(m1, m2, n) != 0, "dropout: another layer draws another mask");
	lb_dropout_forward(y2, m2, x, n, 0.0f, SEED, 3, 1, 0);
	ok(memcmp(y2, x, n * sizeof(float)) == 0, "dropout: p = 0 is the identity");
out:
	free(x), free(y1), free(y2), free(m1), free(m2);
}

/* ---- batch norm ---- */

struct bn_ctx {
	float *y, *mean, *rstd, *x, *gamma, *beta, *r;
	size_t N;
	int C;
};

static double bn_loss(void *p)
{
	struct bn_ctx *c = p;
	lb_batchnorm_forward_train(c->y, c->mean, c->rstd, c->x, c->gamma, c->beta, NULL, NULL,
				   0.1f, 1e-5f, c->N, c->C);
	return gc_dot(c->r, c->y, c->N * c->C);
}

static void test_batchnorm_gradcheck(void)
{
	const size_t N = 18; /* B 2 x 3 x 3 */
	const int C = 5;
	struct bn_ctx c = {fnew(N * C), fnew(C), fnew(C), fnew(N * C), fnew(C), fnew(C),
			   fnew(N * C), N, C};
	float *dx = fnew(N * C), *dg = fnew(C), *dbt = fnew(C);

	if (!c.y || !c.mean || !c.rstd || !c.x || !c.gamma || !c.beta || !c.r || !dx || !dg ||
	    !dbt) {
		ok(0, "batchnorm gradcheck: allocation");
		goto out;
	}
	fill_normal(c.x, N * C, 100, 2.0f);
	for (size_t i = 0; i < N * C; i++)
		c.x[i] += (float)(i % C); /* per-channel offsets */
	fill_normal(c.gamma, C, 101, 0.5f);
	for (int j = 0; j < C; j++)
		c.gamma[j] += 1.0f;
	fill_normal(c.beta, C, 102, 0.5f);
	fill_normal(c.r, N * C, 103, 1.0f);
	bn_loss(&c);
	lb_batchnorm_backward(dx, dg, dbt, c.r, c.x, c.mean, c.rstd, c.gamma, N, C);
	gc_report(gc_check(bn_loss, &c, c.x, dx, N * C, 1e-2), GC_TOL, "batchnorm (train) dx");
	gc_report(gc_check(bn_loss, &c, c.gamma, dg, C, 1e-2), GC_TOL, "batchnorm dgamma");
	gc_report(gc_check(bn_loss, &c, c.beta, dbt, C, 1e-2), GC_TOL, "batchnorm dbeta");
out:
	free(c.y), free(c.mean), free(c.rstd), free(c.x), free(c.gamma), free(c.beta), free(c.r);
	free(dx), free(dg), free(dbt);
}

static void test_batchnorm_semantics(void)
{
	const size_t N = 40;
	const int C = 70; /* more than one block of channels */
	const float mom = 0.1f, eps = 1e-5f;
	float *x = fnew(N * C), *y = fnew(N * C), *mean = fnew(C), *rstd = fnew(C);
	float *g = fnew(C), *bt = fnew(C), *rm = fnew(C), *rv = fnew(C);
	double err_stat = 0.0, err_run = 0.0, err_y = 0.0, err_eval = 0.0;

	if (!x || !y || !mean || !rstd || !g || !bt || !rm || !rv) {
		ok(0, "batchnorm semantics: allocation");
		goto out;
	}
	fill_normal(x, N * C, 110, 3.0f);
	for (size_t i = 0; i < N * C; i++)
		x[i] += 100.0f; /* a large mean: two-pass variance */
	fill_normal(g, C, 111, 1.0f);
	fill_normal(bt, C, 112, 1.0f);
	for (int j = 0; j < C; j++)
		rm[j] = 0.5f, rv[j] = 2.0f;
	lb_batchnorm_forward_train(y, mean, rstd, x, g, bt, rm, rv, mom, eps, N, C);
	for (int j = 0; j < C; j++) {
		double m = 0.0, v = 0.0;
		for (size_t r = 0; r < N; r++)
			m += x[r * C + j];
		m /= N;
		for (size_t r = 0; r < N; r++)
			v += (x[r * C + j] - m) * (x[r * C + j] - m);
		const double rs = 1.0 / sqrt(v / N + eps);
		err_stat = fmax(err_stat, fabs(mean[j] - m) / fabs(m));
		err_stat = fmax(err_stat, fabs(rstd[j] - rs) / rs);
		err_run = fmax(err_run, fabs(rm[j] - (0.9 * 0.5 + 0.1 * m)) / fabs(m));
		err_run = fmax(err_run, fabs(rv[j] - (0.9 * 2.0 + 0.1 * v / (N - 1))) / 2.0);
		for (size_t r = 0; r < N; r++)
			err_y = fmax(err_y, fabs(y[r * C + j] - (g[j] * (x[r * C + j] - m) * rs + bt[j])));
	}
	ok(err_stat < 1e-5, "batchnorm train: mean and rstd (biased var) (err %.2e)", err_stat);
	ok(err_run < 1e-5, "batchnorm train: running stats, momentum, unbiased var (err %.2e)",
	   err_run);
	ok(err_y < 1e-4, "batchnorm train: y = gamma xhat + beta (err %.2e)", err_y);
	/* eval: uses the running statistics, not the batch ones */
	lb_batchnorm_forward_eval(y, x, g, bt, rm, rv, eps, N, C);
	for (int j = 0; j < C; j++)
		for (size_t r = 0; r < N; r++) {
			const double want = g[j] * (x[r * C + j] - rm[j]) / sqrt(rv[j] + eps) + bt[j];
			err_eval = fmax(err_eval, fabs(y[r * C + j] - want) / fmax(1.0, fabs(want)));
		}
	ok(err_eval < 1e-5, "batchnorm eval: uses running mean/var (err %.2e)", err_eval);
out:
	free(x), free(y), free(mean), free(rstd), free(g), free(bt), free(rm), free(rv);
}

/* ---- softmax cross-entropy ---- */

struct sx_ctx {
	float *probs, *logits;
	int32_t *labels;
	int B, C;
	float scale;
};

static double sx_loss(void *p)
{
	struct sx_ctx *c = p;
	return c->scale * lb_softmax_xent_forward(c->probs, NULL, c->logits, c->labels, c->B, c->C);
}

static void test_softmax_xent(void)
{
	enum { B = 6, C = 7 };
	float probs[B * C], logits[B * C], dl[B * C], dl2[B * C];
	int32_t labels[B];
	struct sx_ctx c = {probs, logits, labels, B, C, 0.25f};
	double want = 0.0;
	int correct, want_correct = 0;

	fill_normal(logits, B * C, 120, 2.0f);
	for (int b = 0; b < B; b++)
		labels[b] = (int32_t)lb_rng_below(SEED, LB_RNG_TEST, 121, b, C);
	/* make two rows predict their label */
	logits[0 * C + labels[0]] += 10.0f;
	logits[3 * C + labels[3]] += 10.0f;
	const double loss = lb_softmax_xent_forward(probs, &correct, logits, labels, B, C);
	for (int b = 0; b < B; b++) {
		double s = 0.0;
		int arg = 0;
		for (int j = 0; j < C; j++) {
			s += exp(logits[b * C + j]);
			if (logits[b * C + j] > logits[b * C + arg])
				arg = j;
		}
		want -= log(exp(logits[b * C + labels[b]]) / s);
		want_correct += arg == labels[b];
	}
	ok(fabs(loss - want) < 1e-5 * fabs(want), "softmax_xent: loss = -sum log p[label] (%.9g vs %.9g)",
	   loss, want);
	is_int(correct, want_correct, "softmax_xent: correct = argmax hits");
	memset(dl, 0, sizeof(dl));
	lb_softmax_xent_backward(dl, probs, labels, B, C, c.scale);
	gc_report(gc_check(sx_loss, &c, logits, dl, B * C, 1e-3), GC_TOL,
		  "softmax_xent dlogits (scale 0.25)");
	/* batch = sum of halves with scale 1/B_global */
	memset(dl, 0, sizeof(dl));
	memset(dl2, 0, sizeof(dl2));
	lb_softmax_xent_forward(probs, NULL, logits, labels, B, C);
	lb_softmax_xent_backward(dl, probs, labels, B, C, 1.0f / B);
	lb_softmax_xent_forward(probs, NULL, logits, labels, B / 2, C);
	lb_softmax_xent_backward(dl2, probs, labels, B / 2, C, 1.0f / B);
	lb_softmax_xent_forward(probs, NULL, logits + B / 2 * C, labels + B / 2, B / 2, C);
	lb_softmax_xent_backward(dl2 + B / 2 * C, probs, labels + B / 2, B / 2, C, 1.0f / B);
	ok(rel_diff(dl2, dl, B * C) < 1e-6, "softmax_xent: batch gradient == halves with 1/B_global");
	/* huge logits: no overflow */
	for (int j = 0; j < C; j++)
		logits[j] = 1000.0f + (float)j;
	labels[0] = 0;
	const double big = lb_softmax_xent_forward(probs, NULL, logits, labels, 1, C);
	double s = 0.0;
	for (int j = 0; j < C; j++)
		s += exp((double)j - (C - 1));
	ok(isfinite(big) && fabs(big - (log(s) + (C - 1))) < 1e-5,
	   "softmax_xent: stable for logits ~1000 (loss %.9g)", big);
}

/* ---- accumulation: backward twice = twice the gradient ---- */

static int twice_ok(const float *g1, const float *g2, size_t n)
{
	double d = 0.0, m = 0.0;
	for (size_t i = 0; i < n; i++) {
		d = fmax(d, fabs(g2[i] - 2.0 * g1[i]));
		m = fmax(m, fabs(2.0 * g1[i]));
	}
	return m > 0.0 && d <= 1e-6 * m;
}

static void test_accumulates(void)
{
	struct lb_conv_shape s;
	const size_t n = 4 * 6 * 6 * 3; /* big enough for every layer below */
	float *x = fnew(n), *w = fnew(n), *dy = fnew(n), *col = NULL, *y = fnew(n);
	float *a = fnew(3 * n), *b = fnew(3 * n), *mean = fnew(8), *rstd = fnew(8), *probs = fnew(n);
	int32_t *am = calloc(n, sizeof(int32_t)), labels[4] = {0, 1, 2, 0};
	uint8_t *mask = malloc(n);

	lb_conv_shape_init(&s, 2, 6, 6, 3, 4, 3, 1, 1);
	col = fnew(lb_conv_col_size(&s));
	if (!x || !w || !dy || !col || !y || !a || !b || !mean || !rstd || !probs || !am || !mask) {
		ok(0, "accumulation: allocation");
		goto out;
	}
	fill_distinct(x, n, 130);
	for (size_t i = 0; i < n; i++)
		x[i] += 0.003f; /* keep relu away from 0 */
	fill_normal(w, n, 131, 1.0f);
	fill_normal(dy, n, 132, 1.0f);

#define TWICE(what, len, call)                                                 \
	do {                                                                   \
		memset(a, 0, 3 * n * sizeof(float));                           \
		memset(b, 0, 3 * n * sizeof(float));                           \
		{ float *g = a; call; }                                        \
		{ float *g = b; call; call; }                                  \
		ok(twice_ok(a, b, (len)), "%s: backward twice = twice the gradient", what); \
	} while (0)

	{
		const size_t nx = (size_t)2 * 6 * 6 * 3, nw = 4 * 9 * 3;
		lb_conv2d_forward(y, col, x, w, NULL, &s);
		TWICE("conv2d", nx + nw + 4,
		      lb_conv2d_backward(g, g + nx, g + nx + nw, col, 0, dy, x, w, &s));
		TWICE("linear", 4 * 10 + 5 * 10 + 5,
		      lb_linear_backward(g, g + 40, g + 90, dy, x, w, 4, 10, 5));
	}
	lb_maxpool_forward(y, am, x, 2, 6, 6, 3, 2, 2, 0);
	TWICE("maxpool", 2 * 6 * 6 * 3, lb_maxpool_backward(g, dy, am, 2 * 3 * 3 * 3));
	TWICE("avgpool", 2 * 6 * 6 * 3, lb_avgpool_backward(g, dy, 2, 6, 6, 3, 3, 2, 1));
	TWICE("gap", 2 * 36 * 3, lb_gap_backward(g, dy, 2, 36, 3));
	lb_relu_forward(y, x, n);
	TWICE("relu", n, lb_relu_backward(g, dy, y, n));
	lb_relu6_forward(y, x, n);
	TWICE("relu6", n, lb_relu6_backward(g, dy, y, n));
	TWICE("add", 2 * n, lb_add_backward(g, g + n, dy, n));
	lb_dropout_forward(y, mask, x, n, 0.5f, SEED, 1, 1, 0);
	TWICE("dropout", n, lb_dropout_backward(g, dy, mask, n, 0.5f));
	lb_batchnorm_forward_train(y, mean, rstd, x, w, w + 8, NULL, NULL, 0.1f, 1e-5f, 27, 8);
	TWICE("batchnorm", 27 * 8 + 16,
	      lb_batchnorm_backward(g, g + 216, g + 224, dy, x, mean, rstd, w, 27, 8));
	lb_softmax_xent_forward(probs, NULL, x, labels, 4, 10);
	TWICE("softmax_xent", 40, lb_softmax_xent_backward(g, probs, labels, 4, 10, 0.5f));
#undef TWICE
out:
	free(x), free(w), free(dy), free(col), free(y), free(a), free(b), free(mean), free(rstd);
	free(probs), free(am), free(mask);
}

int main(void)
{
	const size_t nshapes = sizeof(conv_shapes) / sizeof(conv_shapes[0]);

	test_linear_gradcheck(1);
	test_linear_gradcheck(0);
	test_linear_vs_ref();

	for (int stride = 1; stride <= 2; stride++)
		for (int pad = 0; pad <= 1; pad++)
			for (int bias = 1; bias >= 0; bias--)
				test_conv_gradcheck(stride, pad, bias);
	for (size_t i = 0; i < nshapes; i++)
		test_conv_vs_ref(conv_shapes[i]);
	for (size_t i = 0; i < nshapes; i++)
		test_im2col_adjoint(conv_shapes[i]);
	test_conv_batch_halves();

	test_pool_gradcheck(0, 6, 8, 2, 2, 0); /* fast path */
	test_pool_gradcheck(0, 7, 5, 2, 2, 0); /* fast path, odd sizes */
	test_pool_gradcheck(0, 7, 7, 3, 2, 1); /* general path */
	test_pool_gradcheck(1, 6, 8, 2, 2, 0);
	test_pool_gradcheck(1, 7, 7, 3, 2, 1);
	test_pool_gradcheck(1, 5, 6, 3, 1, 1);
	test_pool_gradcheck(2, 5, 4, 0, 0, 0);
	test_maxpool_vs_ref(2, 8, 6, 5, 0);
	test_maxpool_vs_ref(2, 8, 6, 5, 1);
	test_maxpool_vs_ref(3, 7, 9, 20, 1);
	test_maxpool_vs_ref(2, 6, 10, 50, 1);
	test_maxpool_vs_ref(1, 6, 6, 3, 1);
	test_maxpool_ties();

	for (int kind = 0; kind < 4; kind++)
		test_pointwise_gradcheck(kind);
	test_dropout();

	test_batchnorm_gradcheck();
	test_batchnorm_semantics();

	test_softmax_xent();
	test_accumulates();
	return done_testing();
}
