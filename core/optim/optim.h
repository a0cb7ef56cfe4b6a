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

/* A run of floats that share one lr multiplier, one weight decay and one
 * clamp: lb_optim_step updates each run with constants instead of reading
 * per-float streams, and clamps a clamped run chunk by chunk while it is in
 * cache (the parameters' LB_PARAM_CLAMP bounds; BSQ's bit planes). */
struct lb_optim_seg {
	size_t off, n;
	float lr_scale, wd;
	int clamp;            /* after the update: x = max(x, lo) then min(x, hi) (NaN -> lo) */
	float lo, hi;
};

struct lb_optimizer {
	enum lb_opt_kind kind;
	float momentum, beta1, beta2, eps;
	int nesterov;
	size_t n;             /* floats in the blocks */
	float *m, *v;         /* SGD: m = momentum buffer; Adam: m, v moments */
	int64_t t;            /* steps taken (Adam bias correction) */
	struct lb_optim_seg *seg; /* the runs, in offset order, covering 0..n (groups and
				   * LB_PARAM_CLAMP resolved per parameter) */
	int n_seg;
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

/* One update: w -= lr * direction(g), then each clamped parameter to its
 * bounds (model.h LB_PARAM_CLAMP). Returns 1 when every g was finite, 0
 * when some was inf or NaN: the update has then been applied with it and
 * the caller stops (the trainer's "diverged"; it keeps nothing of that
 * step). */
int lb_optim_step(struct lb_optimizer *o, float *w, const float *g, float lr);
/* Plain scalar reference of the same update (tests hold them equal). */
int lb_optim_step_ref(struct lb_optimizer *o, float *w, const float *g, float lr);

/* Learning rate at (epoch, step within epoch) of a run of `epochs` epochs
 * with steps_per_epoch steps each. Decays (step, multistep, cosine) change at
 * epoch boundaries, as with PyTorch schedulers stepped once per epoch; the
 * warm-up is linear per step: lr * (global_step + 1) / warmup_steps. */
float lb_schedule_lr(const struct lb_schedule_cfg *s, float base_lr, unsigned epochs,
		     unsigned epoch, unsigned step, unsigned steps_per_epoch);

#endif
