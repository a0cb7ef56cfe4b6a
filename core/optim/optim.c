/* SPDX-License-Identifier: MIT
 * SGD (momentum, Nesterov, weight decay) and Adam with parameter groups,
 * and the learning-rate schedules (see optim.h). Semantics follow
 * torch.optim.SGD (dampening 0) and torch.optim.Adam (L2 weight decay added
 * to the gradient, not AdamW). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "optim/optim.h"
#include "util.h"

/* The run of parameter pi: its settings, from its offset to the next
 * parameter's (the block's alignment padding goes with the parameter before
 * it; it has no gradient and stays 0). */
static struct lb_optim_seg param_seg(const struct lb_optimizer_cfg *cfg, const struct lb_model *m,
				     int pi)
{
	const struct lb_param *p = &m->params[pi];
	struct lb_optim_seg sg = {.off = p->offset, .lr_scale = 1.0f, .wd = cfg->weight_decay,
				  .lo = -INFINITY, .hi = INFINITY};
	sg.n = (pi + 1 < m->n_params ? m->params[pi + 1].offset : m->n_weights) - p->offset;
	if ((p->flags & LB_PARAM_QUANT) && !(p->flags & LB_PARAM_QDECAY))
		sg.wd = 0.0f; /* quantizer steps, grids and gate logits: no decay by default */
	for (unsigned gi = 0; gi < cfg->n_groups; gi++) {
		if (lb_glob_match(cfg->groups[gi].match, p->name)) {
			sg.lr_scale = cfg->groups[gi].lr_scale;
			if (cfg->groups[gi].weight_decay >= 0)
				sg.wd = cfg->groups[gi].weight_decay;
			break;
		}
	}
	if (p->flags & LB_PARAM_CLAMP) {
		sg.clamp = 1;
		sg.lo = p->lo;
		sg.hi = p->hi;
	}
	return sg;
}

int lb_optim_new(const struct lb_optimizer_cfg *cfg, const struct lb_model *m,
		 struct lb_optimizer **out)
{
	struct lb_optimizer *o = calloc(1, sizeof *o);
	*out = NULL;
	if (!o)
		return lb_error(LB_ERR_OOM, "out of memory");
	o->kind = cfg->kind;
	o->momentum = cfg->momentum;
	o->nesterov = cfg->nesterov;
	o->beta1 = cfg->beta1;
	o->beta2 = cfg->beta2;
	o->eps = cfg->eps;
	o->n = m->n_weights;
	o->m = lb_alloc(o->n * sizeof(float));
	o->v = cfg->kind == LB_OPT_ADAM ? lb_alloc(o->n * sizeof(float)) : NULL;
	o->seg = calloc((size_t)m->n_params + 1, sizeof *o->seg);
	if (!o->m || (cfg->kind == LB_OPT_ADAM && !o->v) || !o->seg) {
		lb_optim_free(o);
		return lb_error(LB_ERR_OOM, "out of memory allocating optimizer state");
	}
	for (unsigned gi = 0; gi < cfg->n_groups; gi++) {
		int hits = 0;
		for (int pi = 0; pi < m->n_params; pi++)
			hits += lb_glob_match(cfg->groups[gi].match, m->params[pi].name);
		if (!hits) {
			char names[1024];
			size_t len = 0;
			names[0] = '\0';
			for (int pi = 0; pi < m->n_params && len + 70 < sizeof names; pi++)
				len += (size_t)snprintf(names + len, sizeof names - len, "%s%s",
							pi ? ", " : "", m->params[pi].name);
			lb_optim_free(o);
			return lb_error(LB_ERR_CONFIG,
					"optimizer.groups[%u].match: '%s' matches no parameter "
					"(parameters: %s)",
					gi, cfg->groups[gi].match, names);
		}
	}
	/* the parameters lie in the block in order (model.c add_param); a run
	 * continues while the settings stay the same */
	if (m->n_params && m->params[0].offset)
		o->seg[o->n_seg++] = (struct lb_optim_seg){.n = m->params[0].offset, .lr_scale = 1.0f,
							   .lo = -INFINITY, .hi = INFINITY};
	for (int pi = 0; pi < m->n_params; pi++) {
		struct lb_optim_seg sg = param_seg(cfg, m, pi);
		struct lb_optim_seg *last = o->n_seg ? &o->seg[o->n_seg - 1] : NULL;
		if (last && last->lr_scale == sg.lr_scale && last->wd == sg.wd &&
		    last->clamp == sg.clamp && last->lo == sg.lo && last->hi == sg.hi)
			last->n += sg.n;
		else
			o->seg[o->n_seg++] = sg;
	}
	*out = o;
	return LB_OK;
}

void lb_optim_free(struct lb_optimizer *o)
{
	if (!o)
		return;
	lb_free(o->m);
	lb_free(o->v);
	free(o->seg);
	free(o);
}

/* The update is elementwise and runs segment by segment with the segment's
 * constants: 3 streams read (w, g, buffer) instead of 5, and the same values
 * as the reference (lr * lr_scale is formed first in both, and lr * 1.0f ==
 * lr). A clamped segment is updated CHUNK floats at a time and each chunk
 * clamped while it is in L1, instead of a second pass over the parameters
 * (BSQ's planes are 16 floats per weight). The clamp runs in blocks of VB
 * floats, a constant trip count that GCC's -O2 vectoriser takes. */
enum { CHUNK = 2048, VB = 16 };

static inline float clampf(float x, float lo, float hi)
{
	x = x > lo ? x : lo; /* NaN -> lo */
	return x < hi ? x : hi;
}

static void clamp_chunk(size_t n, float *restrict w, float lo, float hi)
{
	size_t i = 0;
	for (; i + VB <= n; i += VB)
		for (size_t j = i; j < i + VB; j++)
			w[j] = clampf(w[j], lo, hi);
	for (; i < n; i++)
		w[i] = clampf(w[i], lo, hi);
}

/* The kernels also test the gradient for inf/NaN as they read it (g - g is 0
 * exactly when g is finite): the trainer's divergence check costs no pass of
 * its own. They return nonzero when a value was not finite. */
static inline __attribute__((always_inline)) float sgd_elem(float *restrict w,
							  const float *restrict g,
							  float *restrict buf, size_t i, float wd,
							  float lrs, float mom, int nesterov)
{
	const float gi = g[i], wi = w[i];
	float z = gi - gi;
	float d = gi + wd * wi;
	float b = mom * buf[i] + d;
	buf[i] = b;
	float step = nesterov ? d + mom * b : b;
	w[i] = wi - lrs * step;
	return z;
}

/* nesterov is a constant in each instance (no branch in the loop). GCC's -O2
 * cost model ("very cheap") leaves a loop that needs a scalar epilogue
 * unvectorised; this one is worth it (measured: BSQ's planes, 16 floats a
 * weight), so it asks for the dynamic model. */
#define LB_VECTORISE __attribute__((optimize("vect-cost-model=dynamic")))

static inline __attribute__((always_inline)) int sgd_loop(size_t n, float *restrict w,
							  const float *restrict g,
							  float *restrict buf, float wd, float lrs,
							  float mom, int nesterov)
{
	float bad = 0; /* 0, or NaN once a g - g was NaN */
	for (size_t i = 0; i < n; i++)
		bad += sgd_elem(w, g, buf, i, wd, lrs, mom, nesterov);
	return bad != 0.0f;
}

static LB_VECTORISE int sgd_run(size_t n, float *restrict w, const float *restrict g,
				float *restrict buf, float wd, float lrs, float mom, int nesterov)
{
	return nesterov ? sgd_loop(n, w, g, buf, wd, lrs, mom, 1)
			: sgd_loop(n, w, g, buf, wd, lrs, mom, 0);
}

static inline __attribute__((always_inline)) int adam_elem(float *restrict w,
							   const float *restrict g,
							   float *restrict m, float *restrict v,
							   size_t i, float wd, float lrs, float b1,
							   float b2, float eps, float bc1, float bc2)
{
	float z = g[i] - g[i];
	float d = g[i] + wd * w[i];
	m[i] = b1 * m[i] + (1.0f - b1) * d;
	v[i] = b2 * v[i] + (1.0f - b2) * d * d;
	float mh = m[i] / bc1;
	float vh = v[i] / bc2;
	w[i] -= lrs * mh / (sqrtf(vh) + eps);
	return z != 0.0f;
}

/* scalar: sqrtf may set errno, which keeps GCC from vectorising it */
static int adam_run(size_t n, float *restrict w, const float *restrict g, float *restrict m,
		    float *restrict v, float wd, float lrs, float b1, float b2, float eps, float bc1,
		    float bc2)
{
	int bad = 0;
	for (size_t i = 0; i < n; i++)
		bad |= adam_elem(w, g, m, v, i, wd, lrs, b1, b2, eps, bc1, bc2);
	return bad;
}

int lb_optim_step(struct lb_optimizer *o, float *w, const float *g, float lr)
{
	int bad = 0;
	o->t++;
	float bc1 = 1.0f - powf(o->beta1, (float)o->t);
	float bc2 = 1.0f - powf(o->beta2, (float)o->t);
	for (int k = 0; k < o->n_seg; k++) {
		const struct lb_optim_seg *sg = &o->seg[k];
		float lrs = lr * sg->lr_scale;
		size_t step = sg->clamp ? CHUNK : sg->n;
		for (size_t i = sg->off; i < sg->off + sg->n; i += step) {
			size_t c = sg->off + sg->n - i < step ? sg->off + sg->n - i : step;
			if (o->kind == LB_OPT_SGD)
				bad |= sgd_run(c, w + i, g + i, o->m + i, sg->wd, lrs, o->momentum,
					       o->nesterov);
			else
				bad |= adam_run(c, w + i, g + i, o->m + i, o->v + i, sg->wd, lrs,
						o->beta1, o->beta2, o->eps, bc1, bc2);
			if (sg->clamp)
				clamp_chunk(c, w + i, sg->lo, sg->hi);
		}
	}
	return !bad;
}

/* The reference walks the same runs (their settings are what groups and
 * flags resolve to) with the plain scalar update and clamp. */
int lb_optim_step_ref(struct lb_optimizer *o, float *w, const float *g, float lr)
{
	int finite = 1;
	o->t++;
	for (int k = 0; k < o->n_seg; k++) {
		const struct lb_optim_seg *sg = &o->seg[k];
		for (size_t i = sg->off; i < sg->off + sg->n; i++) {
			finite &= isfinite(g[i]) != 0;
			float d = g[i] + sg->wd * w[i];
			if (o->kind == LB_OPT_SGD) {
				o->m[i] = o->momentum * o->m[i] + d;
				float step = o->nesterov ? d + o->momentum * o->m[i] : o->m[i];
				w[i] = w[i] - lr * sg->lr_scale * step;
			} else {
				o->m[i] = o->beta1 * o->m[i] + (1.0f - o->beta1) * d;
				o->v[i] = o->beta2 * o->v[i] + (1.0f - o->beta2) * d * d;
				float mh = o->m[i] / (1.0f - powf(o->beta1, (float)o->t));
				float vh = o->v[i] / (1.0f - powf(o->beta2, (float)o->t));
				w[i] = w[i] - lr * sg->lr_scale * mh / (sqrtf(vh) + o->eps);
			}
			if (sg->clamp) {
				if (!(w[i] > sg->lo))
					w[i] = sg->lo;
				if (!(w[i] < sg->hi))
					w[i] = sg->hi;
			}
		}
	}
	return finite;
}

float lb_schedule_lr(const struct lb_schedule_cfg *s, float base_lr, unsigned epochs,
		     unsigned epoch, unsigned step, unsigned steps_per_epoch)
{
	double lr = base_lr;
	switch (s->kind) {
	case LB_SCHED_STEP:
		if (s->step_size > 0)
			lr *= pow(s->gamma, (double)(epoch / s->step_size));
		break;
	case LB_SCHED_MULTISTEP: {
		unsigned k = 0;
		for (unsigned i = 0; i < s->n_milestones; i++)
			if (epoch >= s->milestones[i])
				k++;
		lr *= pow(s->gamma, (double)k);
		break;
	}
	case LB_SCHED_COSINE:
		lr = s->min_lr + (base_lr - s->min_lr) * 0.5 *
					 (1.0 + cos(3.141592653589793 * (double)epoch / (double)epochs));
		break;
	case LB_SCHED_CONSTANT:
	default:
		break;
	}
	if (s->warmup_epochs > 0) {
		double warm_steps = (double)s->warmup_epochs * steps_per_epoch;
		double t = (double)epoch * steps_per_epoch + step + 1;
		if (t < warm_steps)
			lr *= t / warm_steps;
	}
	return (float)lr;
}

void lb_optim_reset(struct lb_optimizer *o)
{
	memset(o->m, 0, o->n * sizeof(float));
	if (o->v)
		memset(o->v, 0, o->n * sizeof(float));
	o->t = 0;
}
