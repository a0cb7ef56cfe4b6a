/* SPDX-License-Identifier: MIT
 * Optimizers over the flat parameter block (SGD with momentum/Nesterov and
 * Adam, PyTorch semantics) with parameter groups, and learning-rate
 * schedules (constant, step, multistep, cosine; linear warm-up).
 *
 * Invariant: optimizer state (momentum / Adam moments) lives in blocks with
 * the parameter block's offsets, so a checkpoint is one array per moment. */
#ifndef LB_OPTIM_H
#define LB_OPTIM_H

#include <stdint.h>

#include "config.h"
#include "models/model.h"

struct lb_optimizer {
	enum lb_opt_kind kind;
	float momentum, beta1, beta2, eps;
	int nesterov;
	size_t n;             /* floats in the blocks */
	float *m, *v;         /* SGD: m = momentum buffer; Adam: m, v moments */
	float *lr_scale;      /* per float: group lr multiplier (NULL = all 1) */
	float *wd;            /* per float: weight decay */
	int64_t t;            /* steps taken (Adam bias correction) */
	int uniform;          /* every float has lr_scale 1 and the same weight decay */
	float wd_all;         /* that weight decay */
};

/* Build for model m; groups are resolved by glob on parameter names (first
 * matching group wins). LB_ERR_CONFIG when a group's match selects no
 * parameter (message names the pattern and lists the parameters). */
int lb_optim_new(const struct lb_optimizer_cfg *cfg, const struct lb_model *m,
		 struct lb_optimizer **out);
void lb_optim_free(struct lb_optimizer *o);

/* Forget the moments and the step count, as a newly created optimizer
 * (BSQ re-creates its optimizer after every re-quantization). */
void lb_optim_reset(struct lb_optimizer *o);

/* One update: w -= lr * direction(g). */
void lb_optim_step(struct lb_optimizer *o, float *w, const float *g, float lr);
/* Plain scalar reference of the same update (tests hold them equal). */
void lb_optim_step_ref(struct lb_optimizer *o, float *w, const float *g, float lr);

/* Learning rate at (epoch, step within epoch) of a run of `epochs` epochs
 * with steps_per_epoch steps each. Decays (step, multistep, cosine) change at
 * epoch boundaries, as with PyTorch schedulers stepped once per epoch; the
 * warm-up is linear per step: lr * (global_step + 1) / warmup_steps. */
float lb_schedule_lr(const struct lb_schedule_cfg *s, float base_lr, unsigned epochs,
		     unsigned epoch, unsigned step, unsigned steps_per_epoch);

#endif
