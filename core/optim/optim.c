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
	o->lr_scale = lb_alloc(o->n * sizeof(float));
	o->wd = lb_alloc(o->n * sizeof(float));
	if (!o->m || (cfg->kind == LB_OPT_ADAM && !o->v) || !o->lr_scale || !o->wd) {
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
	for (int pi = 0; pi < m->n_params; pi++) {
		const struct lb_param *p = &m->params[pi];
		float scale = 1.0f, wd = cfg->weight_decay;
		if ((p->flags & LB_PARAM_QUANT) && !(p->flags & LB_PARAM_QDECAY))
			wd = 0.0f; /* quantizer steps, grids and gate logits: no decay by default */
		for (unsigned gi = 0; gi < cfg->n_groups; gi++) {
			if (lb_glob_match(cfg->groups[gi].match, p->name)) {
				scale = cfg->groups[gi].lr_scale;
				if (cfg->groups[gi].weight_decay >= 0)
					wd = cfg->groups[gi].weight_decay;
				break;
			}
		}
		for (size_t j = 0; j < p->count; j++) {
			o->lr_scale[p->offset + j] = scale;
			o->wd[p->offset + j] = wd;
		}
	}
	o->uniform = 1;
	o->wd_all = o->n ? o->wd[0] : 0.0f;
	for (size_t i = 0; i < o->n; i++)
		if (o->lr_scale[i] != 1.0f || o->wd[i] != o->wd_all)
			o->uniform = 0;
	*out = o;
	return LB_OK;
}

void lb_optim_free(struct lb_optimizer *o)
{
	if (!o)
		return;
	lb_free(o->m);
	lb_free(o->v);
	lb_free(o->lr_scale);
	lb_free(o->wd);
	free(o);
}

/* The update is elementwise, so the "fast" path is the same loop written for
 * the compiler to vectorise (restrict, no branches on the hot path). */
static void sgd_update(size_t n, float *restrict w, const float *restrict g, float *restrict buf,
		       const float *restrict lr_scale, const float *restrict wdv, float lr,
		       float mom, int nesterov)
{
	for (size_t i = 0; i < n; i++) {
		float d = g[i] + wdv[i] * w[i];
		float b = mom * buf[i] + d;
		buf[i] = b;
		float step = nesterov ? d + mom * b : b;
		w[i] -= lr * lr_scale[i] * step;
	}
}

static void adam_update(size_t n, float *restrict w, const float *restrict g, float *restrict m,
			float *restrict v, const float *restrict lr_scale,
			const float *restrict wdv, float lr, float b1, float b2, float eps,
			float bc1, float bc2)
{
	for (size_t i = 0; i < n; i++) {
		float d = g[i] + wdv[i] * w[i];
		m[i] = b1 * m[i] + (1.0f - b1) * d;
		v[i] = b2 * v[i] + (1.0f - b2) * d * d;
		float mh = m[i] / bc1;
		float vh = v[i] / bc2;
		w[i] -= lr * lr_scale[i] * mh / (sqrtf(vh) + eps);
	}
}

/* Without parameter groups the per-float lr_scale/wd streams are constant:
 * this loop reads 3 streams instead of 5 (the update is memory bound) and
 * computes the same values (lr * 1.0f == lr exactly, so the reference's
 * lr * lr_scale * step rounds alike). */
static void sgd_update_uniform(size_t n, float *restrict w, const float *restrict g,
			       float *restrict buf, float wd, float lr, float mom, int nesterov)
{
	for (size_t i = 0; i < n; i++) {
		float d = g[i] + wd * w[i];
		float b = mom * buf[i] + d;
		buf[i] = b;
		float step = nesterov ? d + mom * b : b;
		w[i] -= lr * step;
	}
}

void lb_optim_step(struct lb_optimizer *o, float *w, const float *g, float lr)
{
	o->t++;
	if (o->kind == LB_OPT_SGD && o->uniform) {
		sgd_update_uniform(o->n, w, g, o->m, o->wd_all, lr, o->momentum, o->nesterov);
	} else if (o->kind == LB_OPT_SGD) {
		sgd_update(o->n, w, g, o->m, o->lr_scale, o->wd, lr, o->momentum, o->nesterov);
	} else {
		float bc1 = 1.0f - powf(o->beta1, (float)o->t);
		float bc2 = 1.0f - powf(o->beta2, (float)o->t);
		adam_update(o->n, w, g, o->m, o->v, o->lr_scale, o->wd, lr, o->beta1, o->beta2,
			    o->eps, bc1, bc2);
	}
}

void lb_optim_step_ref(struct lb_optimizer *o, float *w, const float *g, float lr)
{
	o->t++;
	for (size_t i = 0; i < o->n; i++) {
		float d = g[i] + o->wd[i] * w[i];
		if (o->kind == LB_OPT_SGD) {
			o->m[i] = o->momentum * o->m[i] + d;
			float step = o->nesterov ? d + o->momentum * o->m[i] : o->m[i];
			w[i] = w[i] - lr * o->lr_scale[i] * step;
		} else {
			o->m[i] = o->beta1 * o->m[i] + (1.0f - o->beta1) * d;
			o->v[i] = o->beta2 * o->v[i] + (1.0f - o->beta2) * d * d;
			float mh = o->m[i] / (1.0f - powf(o->beta1, (float)o->t));
			float vh = o->v[i] / (1.0f - powf(o->beta2, (float)o->t));
			w[i] = w[i] - lr * o->lr_scale[i] * mh / (sqrtf(vh) + o->eps);
		}
	}
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
