/* SPDX-License-Identifier: MIT
 * Gradient-L1 regularization (Alizadeh et al., ICLR 2020; shared/docs/methods.md §3):
 *
 *   R(θ) = λ_w Σ|g| + λ_a Σ_l Σ|dL/dy_l|,   g = dL/dθ,
 *
 * L = scale * Σ_b CE_b (scale = 1/global batch), y_l = every tensor that is
 * the input of a conv or linear node, except the network input (a flatten is
 * the tensor it aliases, counted once). Its gradient is a Hessian-vector
 * product, R{g} = d/dr g(θ + rV; y_l + r S_l) at r = 0, along the fixed
 * direction V = λ_w sign(g) (parameters) and S_l = λ_a sign(dL/dy_l)
 * (injected additively into y_l), sign(0) = 0.
 *
 * Two ways to compute it (methods.md §3.2):
 * - R-op (exact): Pearlmutter's R-operator, an R-forward and an R-backward
 *   pass over the model graph reusing the stored activations, ReLU masks,
 *   max-pool argmax and dropout masks of the last training forward. Nodes
 *   without an R-operator (batch norm, activation quantizers) are refused.
 * - FD: central differences of the gradient,
 *   [g(θ + εV; y + εS) - g(θ - εV; y - εS)] / 2ε, two more ordinary
 *   forward/backward passes (any node the model supports except weight
 *   quantizers). ε = eps_rel * mean|conv/linear weight| / max(λ_w, λ_a):
 *   the largest parameter move is eps_rel of a typical weight. Exact for a
 *   ReLU net unless a ReLU/max-pool decision flips inside ±ε.
 *
 * A regularized step, per shard:
 *   lb_gradl1_taps(h, m, 1);                  (once, while the regularizer is on)
 *   lb_model_forward(m, B, labels, 1, step, first_sample, ...);
 *   lb_model_backward(m, B, labels, scale);  -> g, and the taps dL/dy_l
 *   (reduce g over shards/ranks; V from the GLOBAL g:)
 *   reg_w = lb_gradl1_direction(V, g, n_weights, λ_w);
 *   reg_a = lb_gradl1_hvp(h, m, B, labels, scale, step, first_sample, V, λ_a, Rg);
 * and the update direction is g + Rg (Rg reduced like g). hvp reads the
 * shard's own forward/backward state, so it must run before another forward
 * overwrites it: with several shards on one rank, the shard's forward and
 * backward have to be repeated once V is known (the caller decides,
 * core/train.c). */
#ifndef LB_GRADL1_H
#define LB_GRADL1_H

#include <stddef.h>
#include <stdint.h>

#include "models/model.h"

struct lb_gradl1;

/* Default eps_rel of the FD variant. */
#define LB_GRADL1_FD_EPS_REL 1e-3f

/* Allocate the R-pass (or FD) buffers and the dy taps for model m (sized for
 * m->B_train samples). use_fd: 0 = exact R-op, 1 = central differences with
 * fd_eps_rel (<= 0: LB_GRADL1_FD_EPS_REL). LB_ERR_CONFIG with a message
 * naming the layer when the model has a weight quantizer (either mode) or,
 * for the R-op, a node without an R-operator (batch norm, activation quant);
 * LB_ERR_OOM. m is borrowed and must outlive *out. */
int lb_gradl1_new(struct lb_model *m, int use_fd, float fd_eps_rel, struct lb_gradl1 **out);
void lb_gradl1_free(struct lb_gradl1 *h);

/* Switch the dy taps on the model on or off (m->dy_tap). While on, every
 * lb_model_backward copies dL/dy_l of each activation tensor into h; the
 * gradients are unaffected. */
void lb_gradl1_taps(struct lb_gradl1 *h, struct lb_model *m, int on);

/* Number of activation tensors y_l and their node indices (borrowed, n entries). */
int lb_gradl1_tensors(const struct lb_gradl1 *h, const int **nodes);

/* The tap of node (an entry of lb_gradl1_tensors): dL/dy (B x size) of the
 * last backward with taps on (FD mode replaces it by its sign in hvp). */
const float *lb_gradl1_tap(const struct lb_gradl1 *h, int node);

/* V[i] = lambda_w sign(g[i]) (sign(0) = 0); returns lambda_w Σ|g| (double). */
double lb_gradl1_direction(float *V, const float *g, size_t n, float lambda_w);

/* Rg += R{g} of this shard along V (n_weights floats; NULL = 0) and
 * S_l = lambda_a sign(dL/dy_l) (from the taps); returns this shard's
 * activation term lambda_a Σ_l Σ|dL/dy_l|.
 *
 * Needs: the shard's lb_model_forward(train = 1, step, first_sample) and
 * lb_model_backward(scale) with the taps on, the model unchanged since
 * (same B <= m->B_train, labels, scale; the input still in lb_model_input).
 * R-op: reads the stored activations, masks and node gradients; writes only
 * Rg and h's buffers; the model is left as it was. step and first_sample
 * are unused (the dropout masks are stored).
 * FD: runs two more training forwards/backwards of the same batch with the
 * same dropout masks (step, first_sample) and batch-norm statistics written
 * to a scratch area (running statistics and m->bn_stats untouched); m->w and
 * m->g are restored bit for bit, but activations, caches and probabilities
 * are those of the last FD pass, and the taps hold sign(dL/dy_l).
 * No allocation. */
double lb_gradl1_hvp(struct lb_gradl1 *h, struct lb_model *m, int B, const int32_t *labels,
		     float scale, uint32_t step, uint64_t first_sample, const float *V,
		     float lambda_a, float *Rg);

#endif
