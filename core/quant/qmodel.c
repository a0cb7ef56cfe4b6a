/* SPDX-License-Identifier: MIT
 * Quantizers attached to a model (see qmodel.h): which quantizer serves
 * which layer, their parameters and state, the per-step weight pass, the
 * activation quant nodes, learned bit-widths and the size/BOPs report. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "quant/bsq.h"
#include "quant/qmodel.h"
#include "quant/quant.h"
#include "quant/rq.h"
#include "quant/waveq.h"
#include "util.h"

/* ---- which quantizer a layer gets ---- */

static const struct lb_quant_layer_cfg *layer_entry(const struct lb_quant_cfg *q, const char *name)
{
	for (unsigned i = 0; i < q->n_layers; i++)
		if (lb_glob_match(q->layers[i].match, name))
			return &q->layers[i];
	return NULL;
}

static void resolve(const struct lb_quant_cfg *q, const char *layer, int is_act,
		    enum lb_qmethod *method, int *bits)
{
	const struct lb_quantizer_cfg *d = is_act ? &q->activations : &q->weights;
	const struct lb_quant_layer_cfg *e = layer_entry(q, layer);
	*method = d->method;
	*bits = (int)d->bits;
	if (!e)
		return;
	enum lb_qmethod m = is_act ? e->activations_method : e->weights_method;
	unsigned b = is_act ? e->activations_bits : e->weights_bits;
	if (m != LB_QM_INHERIT)
		*method = m;
	if (b)
		*bits = (int)b;
}

static int is_quantizable(enum lb_op op)
{
	return op == LB_OP_CONV || op == LB_OP_LINEAR;
}

/* Index of the spec called name among specs[0..before), or -1. */
static int spec_named(const struct lb_layer_spec *s, int before, const char *name)
{
	char buf[64];
	int counts[LB_OP__COUNT] = {0};
	for (int i = 0; i < before; i++) {
		counts[s[i].op]++;
		const char *nm = s[i].name;
		if (!nm || !nm[0]) {
			snprintf(buf, sizeof buf, "%s%d", lb_op_name(s[i].op), counts[s[i].op]);
			nm = buf;
		}
		if (strcmp(nm, name) == 0)
			return i;
	}
	return -1;
}

static void spec_name(const struct lb_layer_spec *s, int i, char *buf, size_t n)
{
	int count = 0;
	for (int j = 0; j <= i; j++)
		count += s[j].op == s[i].op;
	if (s[i].name && s[i].name[0])
		snprintf(buf, n, "%s", s[i].name);
	else
		snprintf(buf, n, "%s%d", lb_op_name(s[i].op), count);
}

int lb_qmodel_expand_specs(const struct lb_quant_cfg *q, struct lb_layer_spec **specs, int *n)
{
	struct lb_layer_spec *s = *specs;
	int N = *n;
	/* raw[i]: the output of spec i is the network input (a flatten of it) */
	char *raw = calloc((size_t)N + 1, 1);
	char *hits = calloc((size_t)q->n_layers + 1, 1);
	char names[1024], nm[64];
	size_t len = 0;
	int rc = LB_OK, extra = 0;
	if (!raw || !hits) {
		rc = lb_error(LB_ERR_OOM, "out of memory");
		goto out;
	}
	names[0] = '\0';
	for (int i = 0; i < N; i++) {
		int in = i - 1;
		if (s[i].input && s[i].input[0])
			in = strcmp(s[i].input, "input") == 0 ? -1 : spec_named(s, i, s[i].input);
		int reads_raw = in < 0 || raw[in];
		raw[i] = s[i].op == LB_OP_FLATTEN && reads_raw;
		if (!is_quantizable(s[i].op))
			continue;
		spec_name(s, i, nm, sizeof nm);
		if (len + strlen(nm) + 3 < sizeof names)
			len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", len ? ", " : "", nm);
		for (unsigned k = 0; k < q->n_layers; k++)
			if (lb_glob_match(q->layers[k].match, nm))
				hits[k] = 1;
		const struct lb_quant_layer_cfg *e = layer_entry(q, nm);
		if (reads_raw && e &&
		    ((e->activations_method != LB_QM_INHERIT && e->activations_method != LB_QM_NONE) ||
		     e->activations_bits)) {
			rc = lb_error(LB_ERR_CONFIG,
				      "quant.layers[%u] ('%s'): layer '%s' reads the network input, "
				      "which is not quantized (allowed: weights settings only for this "
				      "layer)",
				      (unsigned)(e - q->layers), e->match, nm);
			goto out;
		}
		enum lb_qmethod am;
		int ab;
		resolve(q, nm, 1, &am, &ab);
		if (!reads_raw && am != LB_QM_NONE)
			extra++;
	}
	for (unsigned k = 0; k < q->n_layers; k++)
		if (!hits[k]) {
			rc = lb_error(LB_ERR_CONFIG,
				      "quant.layers[%u].match: '%s' matches no conv/linear layer "
				      "(conv/linear layers: %s)",
				      k, q->layers[k].match, names);
			goto out;
		}
	if (!extra)
		goto out;
	struct lb_layer_spec *o = calloc((size_t)(N + extra), sizeof *o);
	if (!o) {
		rc = lb_error(LB_ERR_OOM, "out of memory");
		goto out;
	}
	int j = 0;
	for (int i = 0; i < N; i++) {
		int in = i - 1;
		if (s[i].input && s[i].input[0])
			in = strcmp(s[i].input, "input") == 0 ? -1 : spec_named(s, i, s[i].input);
		int reads_raw = in < 0 || raw[in];
		enum lb_qmethod am = LB_QM_NONE;
		int ab;
		if (is_quantizable(s[i].op)) {
			spec_name(s, i, nm, sizeof nm);
			resolve(q, nm, 1, &am, &ab);
		}
		if (is_quantizable(s[i].op) && !reads_raw && am != LB_QM_NONE) {
			struct lb_layer_spec *qs = &o[j++];
			char qn[72];
			snprintf(qn, sizeof qn, "%s.aq", nm);
			qs->op = LB_OP_QUANT;
			qs->name = strdup(qn);
			qs->input = s[i].input; /* moves: the layer now reads its quant node */
			s[i].input = NULL;
			/* the layer keeps its own name even if it was a default one */
			if (!s[i].name || !s[i].name[0]) {
				free(s[i].name);
				s[i].name = strdup(nm);
			}
			if (!qs->name || !s[i].name) {
				o[j++] = s[i];
				for (int k = i + 1; k < N; k++)
					o[j++] = s[k];
				*specs = o;
				*n = j;
				free(s);
				rc = lb_error(LB_ERR_OOM, "out of memory");
				goto out;
			}
		}
		o[j++] = s[i];
	}
	/* default names count ops: inserting quant nodes does not change them
	 * because every renamed layer got its explicit name above, but later
	 * unnamed layers of other ops keep their numbering (quant is its own op) */
	free(s);
	*specs = o;
	*n = j;
out:
	free(raw);
	free(hits);
	return rc;
}

/* ---- build ---- */

static struct lb_qmodel *qm_get(struct lb_model *m, const struct lb_quant_cfg *q)
{
	if (m->q)
		return m->q;
	struct lb_qmodel *qm = calloc(1, sizeof *qm);
	if (!qm)
		return NULL;
	qm->w = calloc((size_t)m->n_nodes, sizeof *qm->w);
	qm->a = calloc((size_t)m->n_nodes, sizeof *qm->a);
	if (!qm->w || !qm->a) {
		free(qm->w);
		free(qm->a);
		free(qm);
		return NULL;
	}
	qm->cfg = *q;
	m->q = qm;
	return qm;
}

static int uses_grid(enum lb_qmethod q)
{
	return q == LB_QM_RQ || q == LB_QM_RQ_ST || q == LB_QM_SRQ;
}

int lb_qmodel_add_node(struct lb_model *m, const struct lb_quant_cfg *q, int i)
{
	struct lb_node *nd = &m->nodes[i];
	enum lb_qmethod method;
	int bits, is_act = nd->op == LB_OP_QUANT;
	char layer[64];
	if (is_act) {
		size_t l = strlen(nd->name);
		snprintf(layer, sizeof layer, "%.*s", (int)(l > 3 ? l - 3 : l), nd->name);
	} else {
		snprintf(layer, sizeof layer, "%s", nd->name);
	}
	resolve(q, layer, is_act, &method, &bits);
	/* WaveQ: learned beta on full-precision weights (a pass-through quantizer
	 * holds beta), or fixed beta on the weights of its base quantizer */
	enum lb_qmethod wbase = q->waveq.align == LB_WAVEQ_ALIGN_WRPN ? LB_QM_WRPN : LB_QM_DOREFA;
	int waveq = !is_act && q->waveq.enabled &&
		    (q->waveq.learn_beta ? method == LB_QM_NONE : method == wbase);
	if (method == LB_QM_NONE && !waveq)
		return LB_OK;
	struct lb_qmodel *qm = qm_get(m, q);
	if (!qm)
		return lb_error(LB_ERR_OOM, "out of memory");
	struct lb_qstate *s = is_act ? &qm->a[qm->n_a++] : &qm->w[qm->n_w++];
	memset(s, 0, sizeof *s);
	s->method = method;
	s->is_act = is_act;
	s->bits = s->level = s->keep = bits;
	s->node = i;
	s->layer = i; /* an activation quantizer's layer is the next node; fixed in alloc */
	s->p_a = s->p_b = s->p_gate = s->p_beta = -1;
	s->p_bp = s->p_bn = s->p_what = s->p_step = -1;
	s->waveq = waveq;
	if (method == LB_QM_NONE) /* WaveQ on FP weights: bits are reported from beta */
		s->bits = s->level = s->keep = 16;
	s->clipped = (is_act ? q->activations.clipped_ste : q->weights.clipped_ste) ? 1 : 0;
	const char *pre = is_act ? "" : "wq.";
	char nm[32];
	int one[1] = {1};
	if (!is_act) {
		const struct lb_param *w = &m->params[nd->w];
		s->count = w->count;
		s->per_channel = q->weights.per_channel &&
				 (method == LB_QM_UNIFORM || method == LB_QM_LSQ);
		s->rows = s->per_channel ? w->dims[0] : 1;
		s->cols = s->count / (size_t)s->rows;
	} else {
		s->rows = 1;
		s->cols = nd->size;
	}
	int rows[1] = {s->rows};
	switch (method) {
	case LB_QM_LSQ:
		snprintf(nm, sizeof nm, "%sstep", pre);
		s->p_a = lb_model_add_param(m, i, nm, LB_PARAM_QUANT, 1, rows, 0);
		break;
	case LB_QM_PACT:
		snprintf(nm, sizeof nm, "%salpha", pre);
		s->p_a = lb_model_add_param(m, i, nm, LB_PARAM_QUANT | LB_PARAM_QDECAY, 1, one, 0);
		break;
	case LB_QM_RQ:
	case LB_QM_RQ_ST:
	case LB_QM_SRQ:
		snprintf(nm, sizeof nm, "%slog_alpha", pre);
		s->p_a = lb_model_add_param(m, i, nm, LB_PARAM_QUANT, 1, one, 0);
		snprintf(nm, sizeof nm, "%slog_sigma", pre);
		s->p_b = lb_model_add_param(m, i, nm, LB_PARAM_QUANT, 1, one, 0);
		if (s->p_a < 0 || s->p_b < 0)
			return lb_error(LB_ERR_OOM, "out of memory");
		break;
	case LB_QM_BSQ: {
		/* bit planes for max_bits (the block never changes shape; "fewer
		 * bits" is fewer planes in use), or w-hat when fine-tuning; weight
		 * decay as the reference's SGD applies it to every parameter */
		unsigned fl = LB_PARAM_QUANT | LB_PARAM_QDECAY;
		if (q->bsq.finetune) {
			int d[1] = {(int)s->count};
			s->p_what = lb_model_add_param(m, i, "wq.what", fl, 1, d, 0);
		} else {
			int d[2] = {(int)q->bsq.max_bits, (int)s->count};
			s->p_bp = lb_model_add_param(m, i, "wq.planes_p", fl, 2, d, 0);
			s->p_bn = lb_model_add_param(m, i, "wq.planes_n", fl, 2, d, 0);
			/* the optimizer clamps the planes to [0, 2] as it updates
			 * them (lb_bsq_clamp's bounds, in the same pass); their
			 * gradient is written whole by the backward, not zeroed */
			for (int k = 0; k < 2 && s->p_bp >= 0 && s->p_bn >= 0; k++) {
				struct lb_param *pp = &m->params[k ? s->p_bn : s->p_bp];
				pp->flags |= LB_PARAM_CLAMP | LB_PARAM_GRAD_SET;
				pp->lo = 0.0f;
				pp->hi = 2.0f;
			}
		}
		s->p_step = lb_model_add_param(m, i, "wq.step", fl, 1, one, 0);
		if (s->p_step < 0 || (q->bsq.finetune ? s->p_what < 0 : s->p_bp < 0 || s->p_bn < 0))
			return lb_error(LB_ERR_OOM, "out of memory");
		break;
	}
	default:
		break;
	}
	if (!is_act && method == LB_QM_SRQ && q->learn_bits.enabled) {
		int g[1] = {bits + 1};
		s->p_gate = lb_model_add_param(m, i, "wq.gate_log_a", LB_PARAM_QUANT, 1, g, 0);
		if (s->p_gate < 0)
			return lb_error(LB_ERR_OOM, "out of memory");
	}
	if (waveq && q->waveq.learn_beta &&
	    (s->p_beta = lb_model_add_param(m, i, "wq.beta", LB_PARAM_QUANT, 1, one, 0)) < 0)
		return lb_error(LB_ERR_OOM, "out of memory");
	int two[1] = {2};
	/* BSQ fine-tuning keeps its state apart from the BSQ run's (which a
	 * --stage-init copies) so that it sets itself up from the weights */
	snprintf(nm, sizeof nm, "%s%s", pre,
		 method == LB_QM_BSQ && q->bsq.finetune ? "ftstate" : "state");
	s->b_state = lb_model_add_param(m, i, nm, 0, 1, two, 1);
	if (s->b_state < 0 || ((method == LB_QM_LSQ || method == LB_QM_PACT) && s->p_a < 0))
		return lb_error(LB_ERR_OOM, "out of memory");
	if (is_act)
		nd->aq = s;
	else
		nd->wq = s;
	return LB_OK;
}

/* quant.rq.grid: midrise. The signed weight grid alpha (m + 1/2), m in
 * [-2^(b-1), 2^(b-1)-1]: RQ's grid alpha G + beta with the offset beta = alpha/2
 * (methods.md 2.1; RQ used beta = 0). The RQ/SRQ kernels run on the shifted
 * weights, y = Q(w - alpha/2) + alpha/2, so their nested DropBits levels of m
 * become symmetric ones: level 1 = {-alpha/2, alpha/2}, level k = the
 * 2^k points of magnitude below 2^(k-1) alpha. Activations (unsigned grids)
 * keep their grid. */
static int midrise(const struct lb_qmodel *qm, const struct lb_qstate *s)
{
	return !s->is_act && uses_grid(s->method) && qm->cfg.rq.grid == LB_RQ_GRID_MIDRISE;
}

int lb_qmodel_alloc(struct lb_model *m)
{
	struct lb_qmodel *qm = m->q;
	m->n_grad = m->n_weights;
	if (!qm)
		return LB_OK;
	for (int k = 0; k < qm->n_w; k++) {
		struct lb_qstate *s = &qm->w[k];
		m->nodes[s->node].wq = s; /* the array no longer moves */
		s->gq = m->n_grad;
		m->n_grad += (s->count + 15) & ~(size_t)15;
		s->wq = lb_alloc(s->count * sizeof(float));
		s->scale = lb_alloc((size_t)s->rows * sizeof(float));
		if (!s->wq || !s->scale)
			return lb_error(LB_ERR_OOM, "out of memory");
		if (midrise(qm, s) && !(s->xs = lb_alloc(2 * s->count * sizeof(float))))
			return lb_error(LB_ERR_OOM, "out of memory");
		if (s->method == LB_QM_SRQ && qm->cfg.dropbits.enabled &&
		    qm->cfg.dropbits.granularity == LB_DROPBITS_ELEMENT &&
		    !(s->lvl = lb_alloc(s->count)))
			return lb_error(LB_ERR_OOM, "out of memory");
	}
	for (int k = 0; k < qm->n_a; k++) {
		struct lb_qstate *s = &qm->a[k];
		m->nodes[s->node].aq = s;
		s->layer = s->node + 1;
	}
	return LB_OK;
}

void lb_qmodel_free(struct lb_model *m)
{
	struct lb_qmodel *qm = m->q;
	if (!qm)
		return;
	for (int k = 0; k < qm->n_w; k++) {
		lb_free(qm->w[k].wq);
		lb_free(qm->w[k].scale);
		lb_free(qm->w[k].lvl);
		lb_free(qm->w[k].xs);
	}
	free(qm->w);
	free(qm->a);
	free(qm);
	m->q = NULL;
}

/* ---- parameters ---- */

static float *P(struct lb_model *m, int p)
{
	return m->w + m->params[p].offset;
}

static float *G(struct lb_model *m, int p)
{
	return m->g + m->params[p].offset;
}

static float *S(struct lb_model *m, int b)
{
	return m->buf + m->buffers[b].offset;
}

static const float *weights_of(struct lb_model *m, const struct lb_qstate *s)
{
	return P(m, m->nodes[s->node].w);
}

static void init_grid(struct lb_model *m, struct lb_qstate *s, float alpha)
{
	if (!(alpha > 0.0f) || !isfinite(alpha))
		alpha = 1e-3f;
	P(m, s->p_a)[0] = logf(alpha);
	P(m, s->p_b)[0] = logf(alpha * m->q->cfg.rq.sigma_init);
}

/* ---- BSQ ---- */

static int bsq_N(struct lb_model *m, const struct lb_qstate *s)
{
	return (int)S(m, s->b_state)[1];
}

void lb_model_quant_setup(struct lb_model *m)
{
	struct lb_qmodel *qm = m->q;
	if (!qm)
		return;
	const struct lb_bsq_cfg *c = &qm->cfg.bsq;
	for (int k = 0; k < qm->n_w; k++) {
		struct lb_qstate *s = &qm->w[k];
		float *st = S(m, s->b_state);
		if (s->method != LB_QM_BSQ || st[0] != 0.0f)
			continue;
		const float *w = weights_of(m, s);
		float *d = P(m, s->p_step);
		int N = s->bits;
		size_t n = s->count;
		if (s->p_what >= 0) {
			/* fine-tune: w-hat = r / M with r = round(w / d) clipped to M, d
			 * the step the BSQ run ended with (w = d r exactly) or, from a
			 * run without one, max|w| / M */
			int M = lb_bsq_levels(N);
			float *what = P(m, s->p_what);
			if (!(d[0] > 0.0f)) {
				float mx = lb_quant_max_abs(w, n);
				d[0] = M > 0 && mx > 0.0f ? mx / (float)M : 1.0f;
			}
			for (size_t e = 0; e < n; e++) {
				float r = M > 0 ? lb_quant_round(w[e] / d[0]) : 0.0f;
				r = r > (float)M ? (float)M : r < -(float)M ? -(float)M : r;
				what[e] = M > 0 ? r / (float)M : 0.0f;
			}
		} else if (N >= 1) {
			float *bp = P(m, s->p_bp), *bn = P(m, s->p_bn);
			lb_bsq_convert(bp, bn, d, w, n, N, (int)c->max_bits);
			lb_bsq_adjust(bp, bn, d, &N, n, (int)c->max_bits, c->threshold, NULL);
		}
		st[0] = 1.0f;
		st[1] = (float)N;
		s->level = N;
	}
}

int lb_model_quant_requantize(struct lb_model *m, int epoch, int final)
{
	struct lb_qmodel *qm = m->q;
	int ran = 0;
	if (!qm || qm->cfg.bsq.finetune)
		return 0;
	const struct lb_bsq_cfg *c = &qm->cfg.bsq;
	if (!final && (epoch <= 0 || epoch % (int)c->requant_every))
		return 0;
	for (int k = 0; k < qm->n_w; k++) {
		struct lb_qstate *s = &qm->w[k];
		if (s->p_bp < 0)
			continue;
		struct lb_bsq_change ch;
		int N = bsq_N(m, s);
		lb_bsq_requant_adjust(P(m, s->p_bp), P(m, s->p_bn), P(m, s->p_step), &N, s->count,
				      (int)c->max_bits, c->threshold, &ch);
		S(m, s->b_state)[1] = (float)N;
		s->level = N;
		if (ch.N_before != ch.N_after)
			lb_log(LB_LOG_INFO, "bsq: %s %d -> %d bits", m->nodes[s->node].name,
			       ch.N_before, ch.N_after);
		ran = 1;
	}
	return ran;
}

int lb_model_quant_bsq_density(const struct lb_model *m, int l, double *nz)
{
	for (int j = 0, i = 1; i < m->n_nodes; i++) {
		const struct lb_node *nd = &m->nodes[i];
		if (!is_quantizable(nd->op))
			continue;
		if (j++ != l)
			continue;
		const struct lb_qstate *s = nd->wq;
		if (!s || s->p_bp < 0)
			return 0;
		int mb = (int)m->q->cfg.bsq.max_bits;
		int N = (int)m->buf[m->buffers[s->b_state].offset + 1];
		for (int b = 0; b < mb; b++)
			nz[b] = NAN;
		lb_bsq_density(nz, m->w + m->params[s->p_bp].offset, m->w + m->params[s->p_bn].offset,
			       s->count, N);
		return mb;
	}
	return 0;
}

/* ---- WaveQ ---- */

static int waveq_bits(const struct lb_qmodel *qm, float beta)
{
	return lb_waveq_bits(beta, qm->cfg.waveq.bits_rule == LB_WAVEQ_CFG_ROUND
					   ? LB_WAVEQ_BITS_ROUND
					   : LB_WAVEQ_BITS_CEIL);
}

static enum lb_waveq_sched waveq_sched(const struct lb_qmodel *qm)
{
	switch (qm->cfg.waveq.schedule) {
	case LB_WAVEQ_CFG_PAPER:
		return LB_WAVEQ_SCHED_PAPER;
	case LB_WAVEQ_CFG_CONSTANT:
		return LB_WAVEQ_SCHED_CONST;
	default:
		return LB_WAVEQ_SCHED_STEP;
	}
}

/* The schedule factors at training step `step` (t in fractional epochs). */
static void waveq_schedule(struct lb_qmodel *qm, uint32_t step)
{
	const struct lb_waveq_cfg *c = &qm->cfg.waveq;
	double E = qm->epochs > 0 ? qm->epochs : 1;
	double t = qm->steps_per_epoch > 0 ? (double)step / qm->steps_per_epoch : 0.0;
	enum lb_waveq_sched k = waveq_sched(qm);
	qm->waveq_fq = lb_waveq_lambda_q(k, t, E, c->step_center * E, c->step_width * E);
	qm->waveq_fb = lb_waveq_lambda_beta(k, t, E, c->step_center * E, c->step_width * E);
}

/* The sinusoid of one layer after the reduction: weight and beta gradients,
 * returns lambda_q f_q R_l + lambda_beta f_b beta_l. */
static double waveq_backward(struct lb_model *m, struct lb_qstate *s)
{
	struct lb_qmodel *qm = m->q;
	const struct lb_waveq_cfg *c = &qm->cfg.waveq;
	const float *w = weights_of(m, s);
	float *dw = G(m, m->nodes[s->node].w);
	enum lb_waveq_align al = c->align == LB_WAVEQ_ALIGN_WRPN ? LB_WAVEQ_WRPN : LB_WAVEQ_DOREFA;
	float beta = s->p_beta >= 0 ? P(m, s->p_beta)[0] : (float)(s->level - 1);
	float M = 1.0f;
	if (al == LB_WAVEQ_DOREFA)
		M = s->method == LB_QM_DOREFA ? s->dorefa_M : lb_quant_dorefa_w_max(w, s->count);
	float cq = c->lambda_q * qm->waveq_fq;
	double db = 0;
	double R = lb_waveq_backward(dw, s->p_beta >= 0 ? &db : NULL, w, s->count, beta, al,
				     c->amplitude ? 1 : 0, M, cq);
	double pen = (double)cq * R;
	if (s->p_beta >= 0) {
		float cb = c->lambda_beta * qm->waveq_fb;
		G(m, s->p_beta)[0] += (float)db + cb;
		pen += (double)cb * beta;
	}
	return pen;
}

void lb_model_quant_init_params(struct lb_model *m)
{
	struct lb_qmodel *qm = m->q;
	if (!qm)
		return;
	for (int k = 0; k < qm->n_w; k++) {
		struct lb_qstate *s = &qm->w[k];
		const float *w = weights_of(m, s);
		int lo, hi;
		switch (s->method) {
		case LB_QM_LSQ:
			lb_quant_range_signed(&lo, &hi, s->bits, 0);
			for (int r = 0; r < s->rows; r++)
				P(m, s->p_a)[r] = lb_quant_lsq_init(w + (size_t)r * s->cols, s->cols, hi);
			break;
		case LB_QM_RQ:
		case LB_QM_RQ_ST:
		case LB_QM_SRQ:
			init_grid(m, s, lb_quant_max_abs(w, s->count) / (float)(1 << (s->bits - 1)));
			break;
		default:
			break;
		}
		if (s->p_beta >= 0) {
			P(m, s->p_beta)[0] = qm->cfg.waveq.beta_init;
			s->level = waveq_bits(qm, P(m, s->p_beta)[0]);
		}
		if (s->method == LB_QM_BSQ) {
			S(m, s->b_state)[0] = 0.0f; /* set up from the weights: lb_model_quant_setup */
			S(m, s->b_state)[1] = (float)s->bits;
			continue; /* planes, w-hat and step are 0 */
		}
		if (s->p_gate >= 0) {
			float p0 = qm->cfg.learn_bits.init_drop;
			float *la = P(m, s->p_gate);
			for (int b = 0; b <= s->bits; b++)
				la[b] = b >= 2 ? logf((1.0f - p0) / p0) : 0.0f;
		}
		S(m, s->b_state)[0] = 1.0f;
	}
	for (int k = 0; k < qm->n_a; k++) {
		struct lb_qstate *s = &qm->a[k];
		if (s->method == LB_QM_PACT)
			P(m, s->p_a)[0] = qm->cfg.pact_alpha;
		S(m, s->b_state)[0] = 0.0f; /* calibrated on data */
	}
}

static void calibrate_act(struct lb_model *m, struct lb_qstate *s, const float *x, size_t n)
{
	float *st = S(m, s->b_state);
	int hi = (1 << s->bits) - 1;
	switch (s->method) {
	case LB_QM_UNIFORM: {
		float mn, mx;
		lb_quant_minmax(&mn, &mx, x, n);
		st[1] = mx > 0.0f ? mx / (float)hi : 1.0f;
		break;
	}
	case LB_QM_LSQ: {
		float v = lb_quant_lsq_init(x, n, hi);
		P(m, s->p_a)[0] = v > 0.0f ? v : 1e-3f;
		break;
	}
	case LB_QM_RQ:
	case LB_QM_RQ_ST:
	case LB_QM_SRQ:
		init_grid(m, s, lb_quant_percentile_abs(x, n, m->q->cfg.rq.act_percentile) / (float)hi);
		break;
	default:
		break;
	}
	st[0] = 1.0f;
}

void lb_model_quant_calibrate(struct lb_model *m, int B)
{
	if (!m->q || !m->q->n_a)
		return;
	int32_t *labels = calloc((size_t)B, sizeof *labels);
	if (!labels)
		return;
	lb_model_quant_begin(m, 0, 0);
	m->q->calibrating = 1;
	lb_model_forward(m, B, labels, 0, 0, 0, NULL);
	m->q->calibrating = 0;
	free(labels);
}

/* ---- learned bits ---- */

static int learned_level(struct lb_model *m, const struct lb_qstate *s)
{
	if (s->p_gate < 0)
		return s->bits;
	return lb_bits_learned(P(m, s->p_gate), s->bits, m->q->cfg.learn_bits.threshold);
}

void lb_model_quant_epoch(struct lb_model *m, int epoch)
{
	struct lb_qmodel *qm = m->q;
	if (!qm)
		return;
	const struct lb_learn_bits_cfg *lb = &qm->cfg.learn_bits;
	int frozen_any = 0;
	for (int k = 0; k < qm->n_w; k++)
		frozen_any |= qm->w[k].frozen;
	qm->gates_on = 0;
	qm->lambda_now = 0;
	if (!lb->enabled || frozen_any)
		return;
	if (lb->freeze_epoch && epoch >= (int)lb->freeze_epoch) {
		for (int k = 0; k < qm->n_w; k++) {
			struct lb_qstate *s = &qm->w[k];
			if (s->p_gate < 0)
				continue;
			s->level = s->keep = learned_level(m, s);
			s->frozen = 1;
			/* state[1] (unused otherwise by RQ/SRQ weights) records the
			 * freeze, so that a resumed run does not rescale twice */
			float *st = S(m, s->b_state);
			if (lb->freeze_rescale && uses_grid(s->method) && st[1] == 0.0f &&
			    s->level < s->bits) {
				float up = (float)(s->bits - s->level) * logf(2.0f);
				P(m, s->p_a)[0] += up;
				P(m, s->p_b)[0] += up;
			}
			st[1] = (float)s->level;
		}
		return;
	}
	if (epoch < (int)lb->warmup_epochs)
		return;
	qm->gates_on = 1;
	double r = lb->ramp_epochs ? (double)(epoch - (int)lb->warmup_epochs + 1) / lb->ramp_epochs : 1.0;
	qm->lambda_now = lb->lambda * (r < 1.0 ? r : 1.0);
}

int lb_model_quant_fix_bits(struct lb_model *m, const int *bits, int n)
{
	int L = lb_model_quant_layers(m, NULL, NULL, NULL, NULL, NULL);
	if (n != L)
		return lb_error(LB_ERR_CONFIG,
				"learned bits: %d layers given, the model has %d conv/linear layers", n, L);
	for (int l = 0, i = 1; i < m->n_nodes; i++) {
		struct lb_node *nd = &m->nodes[i];
		if (!is_quantizable(nd->op))
			continue;
		int b = bits[l++];
		if (!nd->wq) {
			if (b != 32)
				return lb_error(LB_ERR_CONFIG,
						"learned bits: layer '%s' has %d bits there but its "
						"weights are not quantized here (allowed: the same quant "
						"config as the learned-bits run)",
						nd->name, b);
			continue;
		}
		/* RQ/SRQ grids are sized for this run's bits; the other methods take any
		 * width their kernels support */
		int grid = uses_grid(nd->wq->method), lo = 1, hi = grid ? nd->wq->bits : 16;
		if (nd->wq->p_bp >= 0) /* planes exist for max_bits */
			hi = (int)m->q->cfg.bsq.max_bits;
		if (!grid && nd->wq->method != LB_QM_DOREFA && nd->wq->method != LB_QM_BSQ)
			lo = 2;
		if (nd->wq->method == LB_QM_BSQ)
			lo = 0; /* a layer BSQ emptied */
		if (b < lo || b > hi)
			return lb_error(LB_ERR_CONFIG,
					"learned bits: layer '%s' has %d bits (allowed: %d to %d with "
					"%s weights)",
					nd->name, b, lo, hi, lb_qmethod_name(nd->wq->method));
		if (nd->wq->method == LB_QM_NONE || nd->wq->p_beta >= 0)
			return lb_error(LB_ERR_CONFIG,
					"learned bits: layer '%s' learns its bits here (allowed: "
					"quantized weights with fixed bits, e.g. WaveQ with "
					"learn_beta: false)", nd->name);
		if (!grid)
			nd->wq->bits = b;
		/* an RQ/SRQ grid sized for b_max bits: scale alpha (and sigma, keeping
		 * their ratio) by 2^(b_max - b), so the b-bit grid kept spans the range
		 * the b_max-bit grid spanned (as a b-bit initialisation would) */
		if (uses_grid(nd->wq->method) && b < nd->wq->bits) {
			float k = (float)(nd->wq->bits - b) * logf(2.0f);
			P(m, nd->wq->p_a)[0] += k;
			P(m, nd->wq->p_b)[0] += k;
		}
		nd->wq->level = nd->wq->keep = b;
		nd->wq->frozen = 1;
	}
	return LB_OK;
}

/* ---- the weight pass ---- */

static void rq_spec(const struct lb_qmodel *qm, const struct lb_qstate *s, struct lb_rq_spec *sp)
{
	lb_rq_spec_default(sp, s->bits, s->is_act);
	sp->delta = qm->cfg.rq.local_delta;
	sp->lambda = qm->cfg.rq.temperature;
	sp->straight_through = s->method == LB_QM_RQ_ST;
	sp->tempered = qm->cfg.rq.tempered;
	sp->tau = qm->cfg.rq.ste_tau;
}

static void srq_mask(const struct lb_qmodel *qm, struct lb_qstate *s, struct lb_rq_mask *mk)
{
	memset(mk, 0, sizeof *mk);
	mk->keep = s->keep;
	if (qm->train && s->lvl && qm->cfg.dropbits.enabled)
		mk->level = s->lvl;
	if (qm->train && s->use_gates) {
		mk->zbar = s->zbar;
		mk->gate_forward = qm->cfg.learn_bits.gate_forward == LB_GATE_FWD_RELAXED
					   ? LB_RQ_GATE_RELAXED
					   : LB_RQ_GATE_HARD;
		mk->dzbar = s->dzbar;
	}
}

/* The kernels' input for a weight grid: w, or w - alpha/2 (midrise, in xs). */
static const float *midrise_in(struct lb_qstate *s, const float *w, float alpha)
{
	if (!s->xs)
		return w;
	const float h = 0.5f * alpha;
	for (size_t i = 0; i < s->count; i++)
		s->xs[i] = w[i] - h;
	return s->xs;
}

static void midrise_out(const struct lb_qstate *s, float *y, float alpha)
{
	if (!s->xs)
		return;
	const float h = 0.5f * alpha;
	for (size_t i = 0; i < s->count; i++)
		y[i] += h;
}

static void weight_forward(struct lb_model *m, struct lb_qstate *s)
{
	struct lb_qmodel *qm = m->q;
	const float *w = weights_of(m, s);
	float *y = s->wq;
	size_t n = s->count;
	int lo, hi;
	switch (s->method) {
	case LB_QM_UNIFORM:
		lb_quant_range_signed(&lo, &hi, s->bits, 0);
		lb_quant_max_abs_rows(s->scale, w, s->rows, s->cols);
		lb_quant_scale_sym(s->scale, s->scale, s->rows, hi);
		lb_quant_uniform_forward(y, w, s->scale, NULL, s->rows, s->cols, lo, hi);
		break;
	case LB_QM_DOREFA:
		if (s->bits >= 2) {
			s->dorefa_M = lb_quant_dorefa_w_max(w, n);
			lb_quant_dorefa_w_forward(y, w, n, s->bits, s->dorefa_M);
			if (qm->cfg.dorefa_scale) { /* levels times max|W| (a constant) */
				float c = lb_quant_max_abs(w, n);
				s->scale[0] = c > 0.0f ? c : 1.0f;
				for (size_t i = 0; i < n; i++)
					y[i] *= s->scale[0];
			}
		} else {
			lb_quant_mean_abs_rows(s->scale, w, 1, n);
			lb_quant_binary_forward(y, w, s->scale, 1, n);
		}
		break;
	case LB_QM_WRPN:
		lb_quant_wrpn_w_forward(y, w, n, s->bits);
		break;
	case LB_QM_BSQ: {
		int N = bsq_N(m, s);
		float d = P(m, s->p_step)[0];
		s->level = N;
		if (s->p_what >= 0)
			lb_bsq_ft_forward(y, P(m, s->p_what), d, n, N);
		else /* and the planes' squared norms, for this step's group Lasso */
			lb_bsq_forward_norms(y, s->sumsq, P(m, s->p_bp), P(m, s->p_bn), d, n, N);
		/* the layer's weight tensor holds the effective weights (checkpoints,
		 * final/weights, lowbit ptq, --stage-init of a fine-tune) */
		if (!qm->train)
			memcpy(P(m, m->nodes[s->node].w), y, n * sizeof(float));
		break;
	}
	case LB_QM_LSQ:
		lb_quant_range_signed(&lo, &hi, s->bits, 0);
		lb_quant_lsq_forward(y, w, P(m, s->p_a), s->rows, s->cols, lo, hi);
		break;
	case LB_QM_SR: {
		s->frac_len = lb_quant_dfp_frac_len(lb_quant_max_abs(w, n), s->bits);
		if (qm->train) {
			struct lb_quant_key key = {qm->seed, qm->step, (uint64_t)s->node << 40};
			lb_quant_sr_forward(y, w, n, s->bits, s->frac_len, &key);
		} else {
			float st = ldexpf(1.0f, -s->frac_len);
			lb_quant_range_signed(&lo, &hi, s->bits, 0);
			lb_quant_uniform_forward(y, w, &st, NULL, 1, n, lo, hi);
		}
		break;
	}
	case LB_QM_RQ:
	case LB_QM_RQ_ST:
	case LB_QM_SRQ: {
		struct lb_rq_spec sp;
		struct lb_rq_mask mk;
		float alpha = expf(P(m, s->p_a)[0]), sigma = expf(P(m, s->p_b)[0]);
		const float *x = midrise_in(s, w, alpha);
		rq_spec(qm, s, &sp);
		if (s->method != LB_QM_SRQ && qm->train) {
			struct lb_rq_key key = {qm->seed, qm->step, (uint64_t)s->node << 40};
			lb_rq_forward(y, x, n, &sp, alpha, sigma, &key);
			midrise_out(s, y, alpha);
			break;
		}
		s->use_gates = qm->train && qm->gates_on && s->p_gate >= 0 && !s->frozen;
		s->keep = qm->train ? (s->frozen ? s->level : s->bits) : s->level;
		if (qm->train && s->lvl) {
			float p[LB_QM_MAX_LEVELS];
			int b = s->keep;
			struct lb_rq_key key = {qm->seed, qm->step, (uint64_t)s->node << 40};
			lb_dropbits_probs(p, b, qm->cfg.dropbits.p_top);
			lb_dropbits_sample(s->lvl, n, b, p, &key, 1);
		} else if (qm->train && qm->cfg.dropbits.enabled && s->method == LB_QM_SRQ) {
			float p[LB_QM_MAX_LEVELS];
			struct lb_rq_key key = {qm->seed, qm->step, (uint64_t)s->node};
			lb_dropbits_probs(p, s->keep, qm->cfg.dropbits.p_top);
			s->keep = lb_dropbits_sample_layer(s->keep, p, &key, 1);
		}
		if (s->use_gates) {
			struct lb_rq_key key = {qm->seed, qm->step, (uint64_t)s->node};
			lb_bits_gates_sample(s->z, s->dz, P(m, s->p_gate), s->bits, &key, 1);
			lb_bits_zbar(s->zbar, s->z, s->bits);
			memset(s->dzbar, 0, sizeof s->dzbar);
		}
		srq_mask(qm, s, &mk);
		lb_srq_forward(y, x, n, &sp, alpha, sigma, &mk);
		midrise_out(s, y, alpha);
		break;
	}
	default:
		memcpy(y, w, n * sizeof(float));
		break;
	}
}

void lb_model_quant_begin(struct lb_model *m, int train, uint32_t step)
{
	struct lb_qmodel *qm = m->q;
	if (!qm)
		return;
	qm->train = train;
	qm->step = step;
	if (train && qm->cfg.waveq.enabled)
		waveq_schedule(qm, step);
	for (int k = 0; k < qm->n_w; k++) {
		struct lb_qstate *s = &qm->w[k];
		if (s->p_beta >= 0)
			s->level = waveq_bits(qm, P(m, s->p_beta)[0]);
		if (!train && s->p_gate >= 0 && !s->frozen)
			s->level = (qm->gates_on || qm->cfg.learn_bits.warmup_epochs == 0)
					   ? learned_level(m, s)
					   : s->bits;
		weight_forward(m, s);
	}
}

static void weight_backward(struct lb_model *m, struct lb_qstate *s)
{
	struct lb_qmodel *qm = m->q;
	const float *w = weights_of(m, s);
	const float *gq = m->g + s->gq;
	float *dw = G(m, m->nodes[s->node].w);
	size_t n = s->count;
	int lo, hi, ste = s->clipped ? LB_QUANT_STE_CLIPPED : LB_QUANT_STE_PLAIN;
	switch (s->method) {
	case LB_QM_UNIFORM:
		lb_quant_range_signed(&lo, &hi, s->bits, 0);
		lb_quant_uniform_backward(dw, gq, w, s->scale, NULL, s->rows, s->cols, lo, hi, ste);
		break;
	case LB_QM_DOREFA:
		if (s->bits >= 2 && qm->cfg.dorefa_scale) {
			float *g = m->g + s->gq; /* this step's dL/dwq, used once */
			for (size_t i = 0; i < n; i++)
				g[i] *= s->scale[0];
		}
		if (s->bits >= 2)
			lb_quant_dorefa_w_backward(dw, gq, w, n, s->dorefa_M,
						   qm->cfg.dorefa_through_max);
		else
			lb_quant_binary_backward(dw, gq, n);
		break;
	case LB_QM_WRPN:
		lb_quant_wrpn_w_backward(dw, gq, w, n);
		break;
	case LB_QM_LSQ: {
		lb_quant_range_signed(&lo, &hi, s->bits, 0);
		float gs = qm->cfg.lsq_grad_scale ? lb_quant_lsq_grad_scale(s->cols, hi) : 1.0f;
		lb_quant_lsq_backward(dw, G(m, s->p_a), gq, w, P(m, s->p_a), s->rows, s->cols, lo,
				      hi, gs);
		break;
	}
	case LB_QM_SR:
		lb_quant_sr_backward(dw, gq, w, n, s->bits, s->frac_len, ste);
		break;
	case LB_QM_NONE: /* WaveQ on full-precision weights */
		for (size_t i = 0; i < n; i++)
			dw[i] += gq[i];
		break;
	case LB_QM_BSQ: {
		int N = bsq_N(m, s);
		float d = P(m, s->p_step)[0], gs = lb_bsq_step_grad_scale(N);
		if (s->p_what >= 0) {
			lb_bsq_ft_backward(G(m, s->p_what), G(m, s->p_step), gq, P(m, s->p_what), d, n,
					   N, gs);
			break;
		}
		/* STE and the memory-weighted bit-level group Lasso (methods.md 5.3)
		 * in one pass, with the plane norms of this step's forward */
		double c = (double)qm->cfg.bsq.alpha / qm->bsq_tp * (double)n *
			   (qm->cfg.bsq.memory_weights ? N : 1);
		/* the planes' gradient is LB_PARAM_GRAD_SET: written, not added,
		 * when it still counts as zero (the trainer's one call a step) */
		if (m->grad_set_pending)
			s->penalty = lb_bsq_backward_gl_set(
				G(m, s->p_bp), G(m, s->p_bn), G(m, s->p_step), gq, P(m, s->p_bp),
				P(m, s->p_bn), d, n, N, (int)qm->cfg.bsq.max_bits, gs, c, s->sumsq);
		else
			s->penalty = lb_bsq_backward_gl(G(m, s->p_bp), G(m, s->p_bn),
							G(m, s->p_step), gq, P(m, s->p_bp),
							P(m, s->p_bn), d, n, N, gs, c, s->sumsq);
		break;
	}
	case LB_QM_RQ:
	case LB_QM_RQ_ST:
	case LB_QM_SRQ: {
		struct lb_rq_spec sp;
		double da = 0, ds = 0;
		float alpha = expf(P(m, s->p_a)[0]), sigma = expf(P(m, s->p_b)[0]);
		/* midrise: x = w - alpha/2 (still in xs from this step's forward) and
		 * y = Q(x) + alpha/2, so dL/dw = dL/dx and dL/dalpha gains
		 * sum(dL/dy - dL/dx) / 2; dL/dx goes to xs + n first for that sum */
		const float *x = s->xs ? s->xs : w;
		float *dx = s->xs ? s->xs + n : dw;
		if (s->xs)
			memset(dx, 0, n * sizeof(float));
		rq_spec(qm, s, &sp);
		if (s->method == LB_QM_SRQ) {
			struct lb_rq_mask mk;
			srq_mask(qm, s, &mk);
			lb_srq_backward(dx, &da, &ds, gq, x, n, &sp, alpha, sigma, &mk);
		} else {
			struct lb_rq_key key = {qm->seed, qm->step, (uint64_t)s->node << 40};
			lb_rq_backward(dx, &da, &ds, gq, x, n, &sp, alpha, sigma, &key);
		}
		if (s->xs) {
			double sg = 0, sx = 0;
			for (size_t i = 0; i < n; i++) {
				dw[i] += dx[i];
				sg += gq[i];
				sx += dx[i];
			}
			da += 0.5 * (sg - sx);
		}
		G(m, s->p_a)[0] += (float)(alpha * da);
		G(m, s->p_b)[0] += (float)(sigma * ds);
		break;
	}
	default:
		break;
	}
}

double lb_model_quant_weights_backward(struct lb_model *m)
{
	struct lb_qmodel *qm = m->q;
	double total = 0;
	if (!qm)
		return 0;
	size_t all = 0, tp = 0;
	for (int k = 0; k < qm->n_w; k++) {
		all += qm->w[k].count;
		tp += qm->w[k].p_bp >= 0 ? qm->w[k].count : 0;
	}
	qm->bsq_tp = tp ? (double)tp : 1.0;
	for (int k = 0; k < qm->n_w; k++) {
		struct lb_qstate *s = &qm->w[k];
		s->penalty = 0;
		weight_backward(m, s); /* BSQ: sets its group Lasso's value */
		total += s->penalty;
		if (s->waveq) {
			s->penalty = waveq_backward(m, s);
			total += s->penalty;
		}
		if (!s->use_gates)
			continue;
		double dla[LB_QM_MAX_LEVELS] = {0};
		double c = qm->cfg.learn_bits.memory_weights ? (double)s->count / (double)all : 1.0;
		lb_bits_gates_backward(dla, s->dzbar, s->z, s->dz, s->bits);
		s->penalty = lb_bits_penalty(dla, P(m, s->p_gate), &c, 1, s->bits, qm->lambda_now);
		total += s->penalty;
		float *gg = G(m, s->p_gate);
		for (int b = 2; b <= s->bits; b++)
			gg[b] += (float)dla[b];
	}
	m->grad_set_pending = 0;
	return total;
}

void lb_model_quant_after_step(struct lb_model *m)
{
	struct lb_qmodel *qm = m->q;
	if (!qm)
		return;
	float lmin = logf(qm->cfg.rq.sigma_min);
	for (int pass = 0; pass < 2; pass++) {
		int n = pass ? qm->n_a : qm->n_w;
		struct lb_qstate *arr = pass ? qm->a : qm->w;
		for (int k = 0; k < n; k++) {
			struct lb_qstate *s = &arr[k];
			if (uses_grid(s->method)) {
				float *la = P(m, s->p_a), *ls = P(m, s->p_b);
				if (ls[0] < la[0] + lmin)
					ls[0] = la[0] + lmin;
			}
			if (s->method == LB_QM_LSQ || s->method == LB_QM_PACT) {
				float *v = P(m, s->p_a);
				for (int r = 0; r < s->rows; r++)
					if (!(v[r] > 1e-8f))
						v[r] = 1e-8f;
			}
			if (s->p_gate >= 0)
				lb_bits_clamp_log_a(P(m, s->p_gate) + 2, (size_t)s->bits - 1);
			if (s->p_bp >= 0) /* [0, 2]: the optimizer (LB_PARAM_CLAMP) */
				lb_bsq_clear_unused(P(m, s->p_bp), P(m, s->p_bn), s->count,
						    bsq_N(m, s), (int)qm->cfg.bsq.max_bits);
			if (s->p_what >= 0)
				lb_bsq_ft_clamp(P(m, s->p_what), s->count);
			if (s->p_beta >= 0) {
				float *b = P(m, s->p_beta);
				float lo = qm->cfg.waveq.beta_min, hi = qm->cfg.waveq.beta_max;
				b[0] = b[0] < lo ? lo : b[0] > hi ? hi : b[0];
			}
		}
	}
}

/* ---- activation quant nodes ---- */

void lb_qnode_forward(struct lb_model *m, int node, int B, uint64_t first_sample)
{
	struct lb_qmodel *qm = m->q;
	struct lb_node *nd = &m->nodes[node];
	struct lb_qstate *s = nd->aq;
	const float *x = m->nodes[nd->in].y;
	float *y = nd->y;
	size_t n = (size_t)B * nd->size;
	float *st = S(m, s->b_state);
	int hi = (1 << s->bits) - 1;
	qm->first_sample = first_sample;
	if (qm->bypass) {
		memcpy(y, x, n * sizeof(float));
		return;
	}
	if (st[0] == 0.0f) /* not calibrated (lb_model_quant_calibrate not run): this batch */
		calibrate_act(m, s, x, n);
	switch (s->method) {
	case LB_QM_UNIFORM:
		lb_quant_uniform_forward(y, x, &st[1], NULL, 1, n, 0, hi);
		break;
	case LB_QM_DOREFA:
	case LB_QM_WRPN:
		lb_quant_dorefa_a_forward(y, x, n, s->bits);
		break;
	case LB_QM_PACT:
		lb_quant_pact_forward(y, x, n, s->bits, P(m, s->p_a)[0]);
		break;
	case LB_QM_LSQ:
		lb_quant_lsq_forward(y, x, P(m, s->p_a), 1, n, 0, hi);
		break;
	case LB_QM_RQ:
	case LB_QM_RQ_ST:
	case LB_QM_SRQ: {
		struct lb_rq_spec sp;
		float alpha = expf(P(m, s->p_a)[0]), sigma = expf(P(m, s->p_b)[0]);
		rq_spec(qm, s, &sp);
		if (s->method != LB_QM_SRQ && qm->train && !qm->calibrating) {
			struct lb_rq_key key = {qm->seed, qm->step,
						((uint64_t)node << 40) + first_sample * nd->size};
			lb_rq_forward(y, x, n, &sp, alpha, sigma, &key);
		} else {
			lb_srq_forward(y, x, n, &sp, alpha, sigma, NULL);
		}
		break;
	}
	default:
		memcpy(y, x, n * sizeof(float));
		break;
	}
}

void lb_qnode_backward(struct lb_model *m, int node, int B)
{
	struct lb_qmodel *qm = m->q;
	uint64_t first_sample = qm->first_sample;
	struct lb_node *nd = &m->nodes[node];
	struct lb_qstate *s = nd->aq;
	const float *x = m->nodes[nd->in].y;
	float *dx = m->nodes[nd->in].dy;
	const float *dy = nd->dy;
	size_t n = (size_t)B * nd->size;
	const float *st = S(m, s->b_state);
	int hi = (1 << s->bits) - 1, ste = s->clipped ? LB_QUANT_STE_CLIPPED : LB_QUANT_STE_PLAIN;
	if (!dx)
		return;
	switch (s->method) {
	case LB_QM_UNIFORM:
		lb_quant_uniform_backward(dx, dy, x, &st[1], NULL, 1, n, 0, hi, ste);
		break;
	case LB_QM_DOREFA:
	case LB_QM_WRPN:
		lb_quant_dorefa_a_backward(dx, dy, x, n);
		break;
	case LB_QM_PACT:
		lb_quant_pact_backward(dx, G(m, s->p_a), dy, x, n, s->bits, P(m, s->p_a)[0],
				       qm->cfg.pact_grad == LB_PACT_GRAD_LSQ ? LB_QUANT_PACT_LSQ
									     : LB_QUANT_PACT_PAPER);
		break;
	case LB_QM_LSQ: {
		float gs = qm->cfg.lsq_grad_scale ? lb_quant_lsq_grad_scale(nd->size, hi) : 1.0f;
		lb_quant_lsq_backward(dx, G(m, s->p_a), dy, x, P(m, s->p_a), 1, n, 0, hi, gs);
		break;
	}
	case LB_QM_RQ:
	case LB_QM_RQ_ST:
	case LB_QM_SRQ: {
		struct lb_rq_spec sp;
		double da = 0, ds = 0;
		float alpha = expf(P(m, s->p_a)[0]), sigma = expf(P(m, s->p_b)[0]);
		rq_spec(qm, s, &sp);
		if (s->method == LB_QM_SRQ) {
			lb_srq_backward(dx, &da, &ds, dy, x, n, &sp, alpha, sigma, NULL);
		} else {
			struct lb_rq_key key = {qm->seed, qm->step,
						((uint64_t)node << 40) + first_sample * nd->size};
			lb_rq_backward(dx, &da, &ds, dy, x, n, &sp, alpha, sigma, &key);
		}
		G(m, s->p_a)[0] += (float)(alpha * da);
		G(m, s->p_b)[0] += (float)(sigma * ds);
		break;
	}
	default:
		for (size_t i = 0; i < n; i++)
			dx[i] += dy[i];
		break;
	}
}

/* ---- report ---- */

int lb_model_quant_layers(const struct lb_model *m, const char **names, double *params,
			  double *macs, int *w_bits, int *a_bits)
{
	int L = 0;
	for (int i = 1; i < m->n_nodes; i++) {
		const struct lb_node *nd = &m->nodes[i];
		if (!is_quantizable(nd->op))
			continue;
		const struct lb_node *in = &m->nodes[nd->in];
		if (names)
			names[L] = nd->name;
		if (params)
			params[L] = (double)m->params[nd->w].count;
		if (macs)
			macs[L] = (double)nd->macs;
		if (w_bits)
			w_bits[L] = nd->wq ? nd->wq->level : 32;
		if (a_bits)
			a_bits[L] = in->op == LB_OP_QUANT && in->aq ? in->aq->bits : 32;
		L++;
	}
	return L;
}

void lb_model_quant_summary(const struct lb_model *m, struct lb_quant_summary *s)
{
	int L = lb_model_quant_layers(m, NULL, NULL, NULL, NULL, NULL);
	struct lb_quant_layer *ql = calloc((size_t)L + 1, sizeof *ql);
	double *params = calloc((size_t)L + 1, sizeof *params), *macs = calloc((size_t)L + 1, sizeof *macs);
	int *wb = calloc((size_t)L + 1, sizeof *wb), *ab = calloc((size_t)L + 1, sizeof *ab);
	memset(s, 0, sizeof *s);
	if (ql && params && macs && wb && ab) {
		lb_model_quant_layers(m, NULL, params, macs, wb, ab);
		double am = 0, mt = 0;
		for (int l = 0; l < L; l++) {
			ql[l].params = params[l];
			ql[l].macs = macs[l];
			ql[l].w_bits = wb[l];
			ql[l].a_bits = ab[l];
			am += macs[l] * ab[l];
			mt += macs[l];
		}
		s->avg_w_bits = lb_quant_avg_bits(ql, L);
		s->avg_a_bits = mt > 0 ? am / mt : 0;
		s->size_bytes = lb_quant_size_bytes(ql, L);
		s->compression = lb_quant_compression(ql, L);
		s->bops = lb_quant_bops(ql, L);
	}
	free(ql);
	free(params);
	free(macs);
	free(wb);
	free(ab);
}
