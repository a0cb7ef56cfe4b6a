/* SPDX-License-Identifier: MIT
 * Model build (shape inference, one parameter block), initialisation,
 * forward and backward over the node list (see model.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "models/model.h"
#include "quant/qmodel.h"
#include "rng.h"
#include "util.h"

/* Conv im2col matrices are cached per layer (no recomputation in backward)
 * while they fit in this many bytes in total; beyond it they are recomputed
 * into the shared workspace. */
#define LB_COL_CACHE_BUDGET (256u << 20)

/* y += a x (the gradl1 activation-injection hook) */
static void axpy(float *y, float a, const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] += a * x[i];
}

static int find_node(const struct lb_model *m, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcmp(m->nodes[i].name, name) == 0)
			return i;
	return -1;
}

static int add_param(struct lb_model *m, int node, const char *suffix, unsigned flags, int rank,
		     const int *dims, int fan_in, int fan_out, int is_buffer)
{
	struct lb_param **arr = is_buffer ? &m->buffers : &m->params;
	int *n = is_buffer ? &m->n_buffers : &m->n_params;
	size_t *total = is_buffer ? &m->n_buffer_floats : &m->n_weights;
	struct lb_param *v = realloc(*arr, (size_t)(*n + 1) * sizeof *v);
	if (!v)
		return -1;
	*arr = v;
	struct lb_param *p = &v[*n];
	memset(p, 0, sizeof *p);
	snprintf(p->name, sizeof p->name, "%s.%s", m->nodes[node].name, suffix);
	p->count = 1;
	p->rank = rank;
	for (int i = 0; i < rank; i++) {
		p->dims[i] = dims[i];
		p->count *= (size_t)dims[i];
	}
	/* keep every tensor 16-float aligned inside the block */
	p->offset = *total;
	*total += (p->count + 15) & ~(size_t)15;
	p->node = node;
	p->flags = flags;
	p->fan_in = fan_in;
	p->fan_out = fan_out;
	return (*n)++;
}

int lb_model_add_param(struct lb_model *m, int node, const char *suffix, unsigned flags, int rank,
		       const int *dims, int is_buffer)
{
	return add_param(m, node, suffix, flags, rank, dims, 0, 0, is_buffer);
}

static int infer_node(struct lb_model *m, int i, const struct lb_layer_spec *ls)
{
	struct lb_node *nd = &m->nodes[i];
	const struct lb_node *in = &m->nodes[nd->in];
	int K = (int)ls->kernel, S = (int)ls->stride, P = (int)ls->pad;
	nd->H = in->H;
	nd->W = in->W;
	nd->C = in->C;
	nd->K = K;
	nd->pad = P;
	nd->out = (int)ls->out;
	nd->has_bias = ls->bias;
	nd->p = ls->p;
	switch (ls->op) {
	case LB_OP_CONV:
	case LB_OP_MAXPOOL:
	case LB_OP_AVGPOOL:
		if (S <= 0)
			S = ls->op == LB_OP_CONV ? 1 : K;
		nd->stride = S;
		if (K <= 0)
			return lb_error(LB_ERR_CONFIG, "model: layer '%s': kernel must be >= 1",
					nd->name);
		if (in->H + 2 * P < K || in->W + 2 * P < K)
			return lb_error(LB_ERR_CONFIG,
					"model: layer '%s': kernel %d is larger than its padded input "
					"%dx%d (pad %d)",
					nd->name, K, in->H, in->W, P);
		if (ls->op != LB_OP_CONV && P >= K)
			return lb_error(LB_ERR_CONFIG,
					"model: layer '%s': pad %d must be smaller than the kernel %d",
					nd->name, P, K);
		nd->H = (in->H + 2 * P - K) / S + 1;
		nd->W = (in->W + 2 * P - K) / S + 1;
		if (ls->op == LB_OP_CONV) {
			if (ls->out < 1)
				return lb_error(LB_ERR_CONFIG, "model: layer '%s': out must be >= 1",
						nd->name);
			nd->C = (int)ls->out;
			int dims[4] = {nd->C, K, K, in->C};
			int fan_in = K * K * in->C, fan_out = K * K * nd->C;
			nd->w = add_param(m, i, "weight", LB_PARAM_WEIGHT, 4, dims, fan_in, fan_out, 0);
			if (nd->has_bias)
				nd->b = add_param(m, i, "bias", LB_PARAM_BIAS, 1, dims, fan_in, fan_out, 0);
			nd->macs = (int64_t)nd->H * nd->W * nd->C * K * K * in->C;
		}
		break;
	case LB_OP_LINEAR: {
		if (ls->out < 1)
			return lb_error(LB_ERR_CONFIG, "model: layer '%s': out must be >= 1", nd->name);
		int cin = (int)in->size;
		nd->H = nd->W = 1;
		nd->C = (int)ls->out;
		int dims[2] = {nd->C, cin};
		nd->w = add_param(m, i, "weight", LB_PARAM_WEIGHT, 2, dims, cin, nd->C, 0);
		if (nd->has_bias)
			nd->b = add_param(m, i, "bias", LB_PARAM_BIAS, 1, dims, cin, nd->C, 0);
		nd->macs = (int64_t)cin * nd->C;
		break;
	}
	case LB_OP_GAP:
		nd->H = nd->W = 1;
		break;
	case LB_OP_FLATTEN:
		nd->H = nd->W = 1;
		nd->C = (int)in->size;
		nd->alias = 1;
		break;
	case LB_OP_BN: {
		int dims[1] = {in->C};
		nd->w = add_param(m, i, "gamma", LB_PARAM_BN, 1, dims, 0, 0, 0);
		nd->b = add_param(m, i, "beta", LB_PARAM_BN, 1, dims, 0, 0, 0);
		nd->rmean = add_param(m, i, "running_mean", 0, 1, dims, 0, 0, 1);
		nd->rvar = add_param(m, i, "running_var", 0, 1, dims, 0, 0, 1);
		nd->bn_off = m->bn_stats_floats;
		m->bn_stats_floats += 2 * (size_t)in->C;
		break;
	}
	case LB_OP_ADD: {
		const struct lb_node *b = &m->nodes[nd->in2];
		if (b->H != in->H || b->W != in->W || b->C != in->C)
			return lb_error(LB_ERR_CONFIG,
					"model: layer '%s': cannot add '%s' (%dx%dx%d) and '%s' "
					"(%dx%dx%d): shapes differ",
					nd->name, in->name, in->H, in->W, in->C, b->name, b->H, b->W,
					b->C);
		break;
	}
	case LB_OP_DROPOUT:
		if (!(ls->p >= 0 && ls->p < 1))
			return lb_error(LB_ERR_CONFIG, "model: layer '%s': p must be in [0, 1)",
					nd->name);
		break;
	case LB_OP_RELU:
	case LB_OP_RELU6:
	case LB_OP_QUANT:
		break;
	default:
		return lb_error(LB_ERR_CONFIG, "model: layer '%s': operation '%s' cannot be used here",
				nd->name, lb_op_name(ls->op));
	}
	nd->size = (size_t)nd->H * nd->W * nd->C;
	return LB_OK;
}

/* ReLU/ReLU6 may overwrite its input when it is that input's only reader:
 * no backward needs the pre-activation (conv, linear and BN backward read
 * their own inputs; the ReLU's mask [y > 0] is the same on either side). */
static void mark_inplace(struct lb_model *m)
{
	for (int i = 1; i < m->n_nodes; i++) {
		struct lb_node *nd = &m->nodes[i];
		if (nd->op != LB_OP_RELU && nd->op != LB_OP_RELU6)
			continue;
		const struct lb_node *in = &m->nodes[nd->in];
		if (nd->in == 0 || in->alias || in->inplace)
			continue;
		int readers = 0;
		for (int j = 1; j < m->n_nodes; j++)
			readers += (m->nodes[j].in == nd->in) + (m->nodes[j].in2 == nd->in);
		if (readers == 1)
			nd->inplace = 1;
	}
}

static int alloc_buffers(struct lb_model *m)
{
	size_t col_total = 0;
	if (lb_qmodel_alloc(m))
		return -1;
	m->w = lb_alloc(m->n_weights * sizeof(float));
	m->g = lb_alloc(m->n_grad * sizeof(float));
	m->buf = lb_alloc(m->n_buffer_floats * sizeof(float));
	m->probs = lb_alloc((size_t)m->B_max * m->n_classes * sizeof(float));
	if (!m->w || !m->g || !m->buf || !m->probs)
		return -1;
	for (int i = 1; i < m->n_nodes; i++) {
		const struct lb_node *nd = &m->nodes[i];
		if (nd->op == LB_OP_CONV) {
			struct lb_conv_shape s;
			const struct lb_node *in = &m->nodes[nd->in];
			lb_conv_shape_init(&s, 1, in->H, in->W, in->C, nd->C, nd->K, nd->stride,
					   nd->pad);
			col_total += lb_conv_col_size(&s) * (size_t)m->B_train * sizeof(float);
		}
	}
	int cache_cols = col_total <= LB_COL_CACHE_BUDGET;
	for (int i = 0; i < m->n_nodes; i++) {
		struct lb_node *nd = &m->nodes[i];
		if (nd->alias) {
			nd->y = m->nodes[nd->in].y;
			nd->dy = m->nodes[nd->in].dy;
			continue;
		}
		nd->y = nd->inplace ? m->nodes[nd->in].y
				    : lb_alloc((size_t)m->B_max * nd->size * sizeof(float));
		if (!nd->y)
			return -1;
		if (i > 0 && nd->inplace) {
			nd->dy = m->nodes[nd->in].dy;
		} else if (i > 0) {
			nd->dy = lb_alloc((size_t)m->B_train * nd->size * sizeof(float));
			if (!nd->dy)
				return -1;
		}
		const struct lb_node *in = i > 0 ? &m->nodes[nd->in] : NULL;
		switch (nd->op) {
		case LB_OP_CONV: {
			struct lb_conv_shape s;
			lb_conv_shape_init(&s, 1, in->H, in->W, in->C, nd->C, nd->K, nd->stride,
					   nd->pad);
			size_t per = lb_conv_col_size(&s);
			/* forward passes larger than B_train run in B_train-sample chunks */
			size_t need = per * (size_t)m->B_train;
			if (!cache_cols && need > m->work_floats)
				m->work_floats = need;
			if (cache_cols) {
				nd->col = lb_alloc(per * (size_t)m->B_train * sizeof(float));
				if (!nd->col)
					return -1;
			}
			break;
		}
		case LB_OP_MAXPOOL:
			nd->argmax = lb_alloc((size_t)m->B_max * nd->size * sizeof(int32_t));
			if (!nd->argmax)
				return -1;
			break;
		case LB_OP_BN:
			nd->mean = lb_alloc((size_t)nd->C * sizeof(float));
			nd->rstd = lb_alloc((size_t)nd->C * sizeof(float));
			if (!nd->mean || !nd->rstd)
				return -1;
			break;
		case LB_OP_DROPOUT:
			nd->mask = lb_alloc((size_t)m->B_train * nd->size);
			if (!nd->mask)
				return -1;
			break;
		default:
			break;
		}
	}
	/* Flatten may alias an alias: resolve in order (inputs precede). */
	for (int i = 0; i < m->n_nodes; i++) {
		struct lb_node *nd = &m->nodes[i];
		if (nd->alias) {
			nd->y = m->nodes[nd->in].y;
			nd->dy = m->nodes[nd->in].dy;
		}
	}
	if (m->work_floats) {
		m->work = lb_alloc(m->work_floats * sizeof(float));
		if (!m->work)
			return -1;
	}
	return 0;
}

int lb_model_build(const struct lb_config *cfg, int H, int W, int C, int n_classes, int B_train,
		   int B_eval, struct lb_model **out)
{
	struct lb_layer_spec *specs = NULL;
	int n_specs = 0, rc;
	struct lb_model *m = calloc(1, sizeof *m);
	*out = NULL;
	if (!m)
		return lb_error(LB_ERR_OOM, "out of memory");
	rc = lb_arch_specs(&cfg->model, n_classes, &specs, &n_specs);
	if (rc)
		goto fail;
	rc = lb_qmodel_expand_specs(&cfg->quant, &specs, &n_specs);
	if (rc)
		goto fail;
	if (n_specs < 1) {
		rc = lb_error(LB_ERR_CONFIG, "model: no layers");
		goto fail;
	}
	m->in_H = H;
	m->in_W = W;
	m->in_C = C;
	m->n_classes = n_classes;
	m->B_train = B_train;
	m->B_max = B_eval > B_train ? B_eval : B_train;
	m->bn_momentum = cfg->model.bn_momentum;
	m->bn_eps = cfg->model.bn_eps;
	m->n_nodes = n_specs + 1;
	m->nodes = calloc((size_t)m->n_nodes, sizeof *m->nodes);
	if (!m->nodes) {
		rc = lb_error(LB_ERR_OOM, "out of memory");
		goto fail;
	}
	struct lb_node *n0 = &m->nodes[0];
	n0->op = LB_OP_INPUT;
	snprintf(n0->name, sizeof n0->name, "input");
	n0->in = n0->in2 = -1;
	n0->w = n0->b = -1;
	n0->H = H;
	n0->W = W;
	n0->C = C;
	n0->size = (size_t)H * W * C;
	int op_count[LB_OP__COUNT] = {0};
	for (int i = 1; i < m->n_nodes; i++) {
		const struct lb_layer_spec *ls = &specs[i - 1];
		struct lb_node *nd = &m->nodes[i];
		nd->op = ls->op;
		nd->index = i;
		nd->w = nd->b = nd->rmean = nd->rvar = -1;
		nd->in2 = -1;
		op_count[ls->op]++;
		if (ls->name && ls->name[0])
			snprintf(nd->name, sizeof nd->name, "%s", ls->name);
		else
			snprintf(nd->name, sizeof nd->name, "%s%d", lb_op_name(ls->op),
				 op_count[ls->op]);
		if (find_node(m, i, nd->name) >= 0) {
			rc = lb_error(LB_ERR_CONFIG, "model: two layers are called '%s'", nd->name);
			goto fail;
		}
		nd->in = i - 1;
		if (ls->input && ls->input[0]) {
			nd->in = find_node(m, i, ls->input);
			if (nd->in < 0) {
				rc = lb_error(LB_ERR_CONFIG,
					      "model: layer '%s': input '%s' is not an earlier layer",
					      nd->name, ls->input);
				goto fail;
			}
		}
		if (ls->op == LB_OP_ADD) {
			if (!ls->from || !ls->from[0]) {
				rc = lb_error(LB_ERR_CONFIG,
					      "model: layer '%s': add needs 'from' (the other operand)",
					      nd->name);
				goto fail;
			}
			nd->in2 = find_node(m, i, ls->from);
			if (nd->in2 < 0) {
				rc = lb_error(LB_ERR_CONFIG,
					      "model: layer '%s': from '%s' is not an earlier layer",
					      nd->name, ls->from);
				goto fail;
			}
		}
		rc = infer_node(m, i, ls);
		if (!rc && (ls->op == LB_OP_CONV || ls->op == LB_OP_LINEAR || ls->op == LB_OP_QUANT))
			rc = lb_qmodel_add_node(m, &cfg->quant, i);
		if (rc)
			goto fail;
	}
	const struct lb_node *last = &m->nodes[m->n_nodes - 1];
	if ((int)last->size != n_classes) {
		rc = lb_error(LB_ERR_CONFIG,
			      "model: the last layer '%s' has %zu outputs; the dataset has %d classes",
			      last->name, last->size, n_classes);
		goto fail;
	}
	mark_inplace(m);
	if (alloc_buffers(m)) {
		rc = lb_error(LB_ERR_OOM, "out of memory allocating the model");
		goto fail;
	}
	lb_arch_specs_free(specs, n_specs);
	*out = m;
	return LB_OK;
fail:
	lb_arch_specs_free(specs, n_specs);
	lb_model_free(m);
	return rc;
}

void lb_model_free(struct lb_model *m)
{
	if (!m)
		return;
	for (int i = 0; m->nodes && i < m->n_nodes; i++) {
		struct lb_node *nd = &m->nodes[i];
		if (!nd->alias && !nd->inplace) {
			lb_free(nd->y);
			lb_free(nd->dy);
		}
		lb_free(nd->col);
		lb_free(nd->argmax);
		lb_free(nd->mean);
		lb_free(nd->rstd);
		lb_free(nd->mask);
	}
	lb_qmodel_free(m);
	free(m->nodes);
	free(m->params);
	free(m->buffers);
	lb_free(m->w);
	lb_free(m->g);
	lb_free(m->buf);
	lb_free(m->probs);
	lb_free(m->work);
	free(m);
}

void lb_model_init_params(struct lb_model *m, enum lb_init init, uint64_t seed)
{
	m->seed = seed;
	for (int pi = 0; pi < m->n_params; pi++) {
		const struct lb_param *p = &m->params[pi];
		float *v = m->w + p->offset;
		if (p->flags & LB_PARAM_QUANT) {
			memset(v, 0, p->count * sizeof *v); /* lb_model_quant_init_params */
			continue;
		}
		if (p->flags & LB_PARAM_BN) {
			float val = strstr(p->name, ".gamma") ? 1.0f : 0.0f;
			for (size_t j = 0; j < p->count; j++)
				v[j] = val;
			continue;
		}
		for (size_t j = 0; j < p->count; j++) {
			float u = lb_rng_uniform(seed, LB_RNG_INIT, (uint32_t)pi, j);
			float x;
			switch (init) {
			case LB_INIT_KAIMING_NORMAL:
				/* N(0, 2/fan_out) weights (He et al., fan_out mode), zero bias */
				x = (p->flags & LB_PARAM_BIAS)
					    ? 0.0f
					    : lb_rng_normal(seed, LB_RNG_INIT, (uint32_t)pi, j) *
						      sqrtf(2.0f / (float)p->fan_out);
				break;
			case LB_INIT_XAVIER_UNIFORM: {
				float a = sqrtf(6.0f / (float)(p->fan_in + p->fan_out));
				x = (p->flags & LB_PARAM_BIAS) ? 0.0f : (2.0f * u - 1.0f) * a;
				break;
			}
			case LB_INIT_TORCH:
			default: {
				/* PyTorch's default for Linear/Conv: kaiming_uniform(a=sqrt(5))
				 * = U(-1/sqrt(fan_in), 1/sqrt(fan_in)); bias the same bound. */
				float a = 1.0f / sqrtf((float)p->fan_in);
				x = (2.0f * u - 1.0f) * a;
				break;
			}
			}
			v[j] = x;
		}
	}
	for (int bi = 0; bi < m->n_buffers; bi++) {
		const struct lb_param *p = &m->buffers[bi];
		float val = strstr(p->name, "running_var") ? 1.0f : 0.0f;
		for (size_t j = 0; j < p->count; j++)
			m->buf[p->offset + j] = val;
	}
	lb_model_quant_init_params(m);
}

void lb_model_zero_grad(struct lb_model *m)
{
	size_t from = 0;
	for (int pi = 0; pi < m->n_params; pi++) {
		const struct lb_param *p = &m->params[pi];
		if (!(p->flags & LB_PARAM_GRAD_SET))
			continue;
		memset(m->g + from, 0, (p->offset - from) * sizeof(float));
		from = p->offset + p->count;
	}
	memset(m->g + from, 0, (m->n_grad - from) * sizeof(float));
	m->grad_set_pending = 1;
}

float *lb_model_input(struct lb_model *m)
{
	return m->nodes[0].y;
}

static const float *pw(const struct lb_model *m, int idx)
{
	return idx >= 0 ? m->w + m->params[idx].offset : NULL;
}

static float *pg(const struct lb_model *m, int idx)
{
	return idx >= 0 ? m->g + m->params[idx].offset : NULL;
}

/* The weights a conv/linear layer computes with (quantized when it has a
 * weight quantizer) and where their gradient goes. */
static const float *node_w(const struct lb_model *m, const struct lb_node *nd)
{
	return nd->wq ? nd->wq->wq : pw(m, nd->w);
}

static float *node_gw(const struct lb_model *m, const struct lb_node *nd)
{
	return nd->wq ? m->g + nd->wq->gq : pg(m, nd->w);
}

double lb_model_forward(struct lb_model *m, int B, const int32_t *labels, int train,
			uint32_t step, uint64_t first_sample, int *correct)
{
	for (int i = 1; i < m->n_nodes; i++) {
		struct lb_node *nd = &m->nodes[i];
		const struct lb_node *in = &m->nodes[nd->in];
		size_t n = (size_t)B * nd->size;
		switch (nd->op) {
		case LB_OP_CONV: {
			struct lb_conv_shape s;
			float *col = nd->col ? nd->col : m->work;
			for (int b0 = 0; b0 < B; b0 += m->B_train) {
				int Bc = B - b0 < m->B_train ? B - b0 : m->B_train;
				lb_conv_shape_init(&s, Bc, in->H, in->W, in->C, nd->C, nd->K,
						   nd->stride, nd->pad);
				lb_conv2d_forward(nd->y + (size_t)b0 * nd->size, col,
						  in->y + (size_t)b0 * in->size, node_w(m, nd),
						  pw(m, nd->b), &s);
			}
			/* backward may reuse col only after a single-chunk forward */
			nd->col_fresh = col == nd->col && B <= m->B_train;
			break;
		}
		case LB_OP_LINEAR:
			lb_linear_forward(nd->y, in->y, node_w(m, nd), pw(m, nd->b), B, (int)in->size,
					  nd->C);
			break;
		case LB_OP_MAXPOOL:
			lb_maxpool_forward(nd->y, nd->argmax, in->y, B, in->H, in->W, in->C, nd->K,
					   nd->stride, nd->pad);
			break;
		case LB_OP_AVGPOOL:
			lb_avgpool_forward(nd->y, in->y, B, in->H, in->W, in->C, nd->K, nd->stride,
					   nd->pad);
			break;
		case LB_OP_GAP:
			lb_gap_forward(nd->y, in->y, B, in->H * in->W, in->C);
			break;
		case LB_OP_RELU:
			lb_relu_forward(nd->y, in->y, n);
			break;
		case LB_OP_RELU6:
			lb_relu6_forward(nd->y, in->y, n);
			break;
		case LB_OP_BN: {
			size_t N = (size_t)B * in->H * in->W;
			float *gamma = m->w + m->params[nd->w].offset;
			float *beta = m->w + m->params[nd->b].offset;
			float *rm = m->buf + m->buffers[nd->rmean].offset;
			float *rv = m->buf + m->buffers[nd->rvar].offset;
			if (train && m->bn_stats) {
				/* ghost batch norm: this shard's statistics, applied later */
				float *st = m->bn_stats + nd->bn_off;
				lb_batchnorm_forward_train(nd->y, nd->mean, nd->rstd, in->y, gamma, beta,
							   NULL, NULL, m->bn_momentum, m->bn_eps, N,
							   in->C);
				double corr = N > 1 ? (double)N / (double)(N - 1) : 1.0;
				for (int c = 0; c < in->C; c++) {
					double r = nd->rstd[c];
					st[c] = nd->mean[c];
					st[in->C + c] = (float)((1.0 / (r * r) - m->bn_eps) * corr);
				}
			} else if (train)
				lb_batchnorm_forward_train(nd->y, nd->mean, nd->rstd, in->y, gamma, beta,
							   rm, rv, m->bn_momentum, m->bn_eps, N,
							   in->C);
			else
				lb_batchnorm_forward_eval(nd->y, in->y, gamma, beta, rm, rv, m->bn_eps,
							  N, in->C);
			break;
		}
		case LB_OP_ADD:
			lb_add_forward(nd->y, in->y, m->nodes[nd->in2].y, n);
			break;
		case LB_OP_DROPOUT:
			if (train && nd->p > 0)
				lb_dropout_forward(nd->y, nd->mask, in->y, n, nd->p, m->seed, step,
						   (uint32_t)nd->index, first_sample * nd->size);
			else
				memcpy(nd->y, in->y, n * sizeof(float));
			break;
		case LB_OP_QUANT:
			lb_qnode_forward(m, i, B, first_sample);
			break;
		case LB_OP_FLATTEN:
		case LB_OP_INPUT:
		default:
			break;
		}
		if (m->y_add && m->y_add[i]) /* gradl1: activation perturbation */
			axpy(nd->y, m->y_add_scale, m->y_add[i], n);
	}
	const struct lb_node *last = &m->nodes[m->n_nodes - 1];
	return lb_softmax_xent_forward(m->probs, correct, last->y, labels, B, m->n_classes);
}

void lb_model_backward(struct lb_model *m, int B, const int32_t *labels, float scale)
{
	for (int i = 1; i < m->n_nodes; i++) {
		struct lb_node *nd = &m->nodes[i];
		if (!nd->alias && !nd->inplace)
			memset(nd->dy, 0, (size_t)B * nd->size * sizeof(float));
	}
	struct lb_node *last = &m->nodes[m->n_nodes - 1];
	lb_softmax_xent_backward(last->dy, m->probs, labels, B, m->n_classes, scale);
	for (int i = m->n_nodes - 1; i >= 1; i--) {
		struct lb_node *nd = &m->nodes[i];
		const struct lb_node *in = &m->nodes[nd->in];
		float *dx = in->dy; /* NULL for the network input */
		size_t n = (size_t)B * nd->size;
		if (m->dy_tap && m->dy_tap[i]) /* gradl1: complete (unmasked) dL/dy */
			memcpy(m->dy_tap[i], nd->dy, n * sizeof(float));
		if (m->y_add && m->y_add[i]) /* take the injection back out (see model.h) */
			axpy(nd->y, -m->y_add_scale, m->y_add[i], n);
		switch (nd->op) {
		case LB_OP_CONV: {
			struct lb_conv_shape s;
			lb_conv_shape_init(&s, B, in->H, in->W, in->C, nd->C, nd->K, nd->stride,
					   nd->pad);
			float *col = nd->col ? nd->col : m->work;
			lb_conv2d_backward(dx, node_gw(m, nd), pg(m, nd->b), col, nd->col_fresh,
					   nd->dy, in->y, node_w(m, nd), &s);
			if (dx) /* the workspace now holds dcol */
				nd->col_fresh = 0;
			break;
		}
		case LB_OP_LINEAR:
			lb_linear_backward(dx, node_gw(m, nd), pg(m, nd->b), nd->dy, in->y,
					   node_w(m, nd), B, (int)in->size, nd->C);
			break;
		case LB_OP_MAXPOOL:
			if (dx)
				lb_maxpool_backward(dx, nd->dy, nd->argmax, n);
			break;
		case LB_OP_AVGPOOL:
			if (dx)
				lb_avgpool_backward(dx, nd->dy, B, in->H, in->W, in->C, nd->K,
						    nd->stride, nd->pad);
			break;
		case LB_OP_GAP:
			if (dx)
				lb_gap_backward(dx, nd->dy, B, in->H * in->W, in->C);
			break;
		case LB_OP_RELU:
			if (nd->inplace)
				lb_relu_backward_inplace(nd->dy, nd->y, n);
			else if (dx)
				lb_relu_backward(dx, nd->dy, nd->y, n);
			break;
		case LB_OP_RELU6:
			if (nd->inplace)
				lb_relu6_backward_inplace(nd->dy, nd->y, n);
			else if (dx)
				lb_relu6_backward(dx, nd->dy, nd->y, n);
			break;
		case LB_OP_BN: {
			size_t N = (size_t)B * in->H * in->W;
			lb_batchnorm_backward(dx, pg(m, nd->w), pg(m, nd->b), nd->dy, in->y, nd->mean,
					      nd->rstd, pw(m, nd->w), N, in->C);
			break;
		}
		case LB_OP_ADD:
			lb_add_backward(dx, m->nodes[nd->in2].dy, nd->dy, n);
			break;
		case LB_OP_QUANT:
			lb_qnode_backward(m, i, B);
			break;
		case LB_OP_DROPOUT:
			if (dx) {
				if (nd->p > 0)
					lb_dropout_backward(dx, nd->dy, nd->mask, n, nd->p);
				else
					lb_add_backward(dx, NULL, nd->dy, n);
			}
			break;
		default:
			break;
		}
	}
}

void lb_model_apply_bn_stats(struct lb_model *m, const float *stats, int n_shards)
{
	const float mom = m->bn_momentum;
	for (int s = 0; s < n_shards; s++) {
		const float *st = stats + (size_t)s * m->bn_stats_floats;
		for (int i = 1; i < m->n_nodes; i++) {
			const struct lb_node *nd = &m->nodes[i];
			if (nd->op != LB_OP_BN)
				continue;
			int C = nd->C;
			float *rm = m->buf + m->buffers[nd->rmean].offset;
			float *rv = m->buf + m->buffers[nd->rvar].offset;
			for (int c = 0; c < C; c++) {
				rm[c] = (1.0f - mom) * rm[c] + mom * st[nd->bn_off + c];
				rv[c] = (1.0f - mom) * rv[c] + mom * st[nd->bn_off + C + c];
			}
		}
	}
}

int lb_model_find_param(const struct lb_model *m, const char *name)
{
	for (int i = 0; i < m->n_params; i++)
		if (strcmp(m->params[i].name, name) == 0)
			return i;
	return -1;
}

int64_t lb_model_param_total(const struct lb_model *m)
{
	int64_t t = 0;
	for (int i = 0; i < m->n_params; i++)
		t += (int64_t)m->params[i].count;
	return t;
}

int64_t lb_model_macs_total(const struct lb_model *m)
{
	int64_t t = 0;
	for (int i = 0; i < m->n_nodes; i++)
		t += m->nodes[i].macs;
	return t;
}

void lb_model_log_summary(const struct lb_model *m)
{
	lb_log(LB_LOG_INFO, "%-22s %-8s %-14s %10s %12s", "layer", "op", "output", "params",
	       "MACs");
	for (int i = 1; i < m->n_nodes; i++) {
		const struct lb_node *nd = &m->nodes[i];
		int64_t np = 0;
		char shape[32];
		for (int j = 0; j < m->n_params; j++)
			if (m->params[j].node == i)
				np += (int64_t)m->params[j].count;
		snprintf(shape, sizeof shape, "%dx%dx%d", nd->H, nd->W, nd->C);
		if (np || nd->macs || lb_log_get_level() <= LB_LOG_DEBUG)
			lb_log(LB_LOG_INFO, "%-22s %-8s %-14s %10lld %12lld", nd->name,
			       lb_op_name(nd->op), shape, (long long)np, (long long)nd->macs);
	}
	lb_log(LB_LOG_INFO, "total: %lld parameters, %lld MACs per sample",
	       (long long)lb_model_param_total(m), (long long)lb_model_macs_total(m));
}
