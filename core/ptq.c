/* SPDX-License-Identifier: MIT
 * Post-training quantization grid of a finished run (see ptq.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../analysis/runfile.h"
#include "config.h"
#include "data/dataset.h"
#include "err.h"
#include "log.h"
#include "models/model.h"
#include "ptq.h"
#include "quant/qmodel.h"
#include "quant/quant.h"
#include "train.h"
#include "util.h"

void lb_ptq_opts_default(struct lb_ptq_opts *o)
{
	static const int grid[] = {8, 6, 5, 4, 3, 2};
	memset(o, 0, sizeof *o);
	for (int i = 0; i < 6; i++)
		o->w_bits[i] = o->a_bits[i] = grid[i];
	o->n_w = o->n_a = 6;
	o->calibration = LB_PTQ_CAL_MEAN;
	o->percentile = 99.99;
	o->batches = 10;
	o->batch_size = 100;
	o->fold_bn = 1;
}

static const char *cal_name(enum lb_ptq_calibration c)
{
	return c == LB_PTQ_CAL_MINMAX ? "minmax" : c == LB_PTQ_CAL_PERCENTILE ? "percentile" : "mean";
}

static int check_opts(const struct lb_ptq_opts *o)
{
	if (o->n_w < 1 || o->n_w > LB_PTQ_MAX_GRID || o->n_a < 1 || o->n_a > LB_PTQ_MAX_GRID)
		return lb_error(LB_ERR_CONFIG, "ptq: 1 to %d weight and activation bit-widths "
				"(given %d and %d)", LB_PTQ_MAX_GRID, o->n_w, o->n_a);
	for (int i = 0; i < o->n_w; i++)
		if (o->w_bits[i] < 2 || o->w_bits[i] > 16)
			return lb_error(LB_ERR_CONFIG, "ptq: weight bits %d out of range (allowed: 2 "
					"to 16; narrow range needs 2)", o->w_bits[i]);
	for (int i = 0; i < o->n_a; i++)
		if (o->a_bits[i] < 1 || o->a_bits[i] > 16)
			return lb_error(LB_ERR_CONFIG, "ptq: activation bits %d out of range (allowed: "
					"1 to 16)", o->a_bits[i]);
	if (!(o->percentile > 0 && o->percentile <= 100))
		return lb_error(LB_ERR_CONFIG, "ptq: percentile %g out of range (allowed: 0 < p <= "
				"100)", o->percentile);
	if (o->batches < 1 || o->batch_size < 1)
		return lb_error(LB_ERR_CONFIG, "ptq: calibration needs at least one batch of one "
				"sample (given %d x %d)", o->batches, o->batch_size);
	return LB_OK;
}

/* Fold each BN that reads a conv/linear layer into that layer: the layer's
 * weights and bias absorb gamma/sqrt(var+eps) and the shift, and the BN is
 * left as identity (or, for a layer without bias, as the bias add). */
static void fold_bn(struct lb_model *m)
{
	for (int j = 1; j < m->n_nodes; j++) {
		struct lb_node *bn = &m->nodes[j];
		if (bn->op != LB_OP_BN)
			continue;
		struct lb_node *nd = &m->nodes[bn->in];
		if (nd->op != LB_OP_CONV && nd->op != LB_OP_LINEAR)
			continue;
		int readers = 0;
		for (int k = 1; k < m->n_nodes; k++)
			readers += (m->nodes[k].in == bn->in) + (m->nodes[k].in2 == bn->in);
		if (readers != 1)
			continue;
		float *gamma = m->w + m->params[bn->w].offset, *beta = m->w + m->params[bn->b].offset;
		float *mean = m->buf + m->buffers[bn->rmean].offset;
		float *var = m->buf + m->buffers[bn->rvar].offset;
		float *W = m->w + m->params[nd->w].offset;
		float *b = nd->b >= 0 ? m->w + m->params[nd->b].offset : NULL;
		size_t per = m->params[nd->w].count / (size_t)nd->C;
		for (int c = 0; c < nd->C; c++) {
			double k = gamma[c] / sqrt((double)var[c] + m->bn_eps);
			for (size_t i = 0; i < per; i++)
				W[(size_t)c * per + i] = (float)(W[(size_t)c * per + i] * k);
			double shift = beta[c] - mean[c] * k;
			if (b) {
				b[c] = (float)(b[c] * k + shift);
				beta[c] = 0.0f;
			} else {
				beta[c] = (float)shift;
			}
			gamma[c] = 1.0f;
			mean[c] = 0.0f;
			var[c] = 1.0f - m->bn_eps;
		}
	}
}

static int load_final(struct lb_model *m, const struct lb_runfile *rf, const char *path)
{
	char key[256];
	for (int pass = 0; pass < 2; pass++) {
		int n = pass ? m->n_buffers : m->n_params;
		const struct lb_param *ps = pass ? m->buffers : m->params;
		float *block = pass ? m->buf : m->w;
		for (int i = 0; i < n; i++) {
			enum lb_dtype dt;
			int rank;
			uint64_t dims[4];
			if ((ps[i].flags & LB_PARAM_QUANT) || strstr(ps[i].name, "q.state"))
				continue;
			snprintf(key, sizeof key, "%s/%s", pass ? "final/buffers" : "final/weights",
				 ps[i].name);
			const void *v = lb_runfile_get_array(rf, key, &dt, &rank, dims);
			size_t count = 1;
			for (int k = 0; v && k < rank; k++)
				count *= dims[k];
			if (!v || dt != LB_DT_F32 || count != ps[i].count)
				return lb_error(LB_ERR_STATE, "%s: no usable '%s' (the run has no final "
						"weights for its model)", path, key);
			memcpy(block + ps[i].offset, v, count * sizeof(float));
		}
	}
	return LB_OK;
}

static double evaluate(struct lb_model *m, const struct lb_dataset *ds,
		       const struct lb_normalize *norm, int32_t *idx, int32_t *labels)
{
	long hits = 0;
	for (int start = 0; start < ds->n; start += m->B_max) {
		int B = ds->n - start < m->B_max ? ds->n - start : m->B_max, correct = 0;
		for (int i = 0; i < B; i++)
			idx[i] = start + i;
		lb_data_batch(lb_model_input(m), labels, ds, idx, B, norm, NULL, 0, 0);
		lb_model_forward(m, B, labels, 0, 0, 0, &correct);
		hits += correct;
	}
	return ds->n ? (double)hits / ds->n : NAN;
}

/* Weight fake-quantization of the folded weights at b bits (narrow range). */
static void quantize_weights(struct lb_model *m, const struct lb_ptq_opts *o, int bits)
{
	struct lb_qmodel *qm = m->q;
	int lo = -((1 << (bits - 1)) - 1), hi = (1 << (bits - 1)) - 1;
	for (int k = 0; k < qm->n_w; k++) {
		struct lb_qstate *s = &qm->w[k];
		const float *w = m->w + m->params[m->nodes[s->node].w].offset;
		for (int r = 0; r < s->rows; r++) {
			const float *row = w + (size_t)r * s->cols;
			float range = o->weight_percentile ? lb_quant_percentile_abs(row, s->cols, o->percentile)
							   : lb_quant_max_abs(row, s->cols);
			s->scale[r] = range;
		}
		lb_quant_scale_sym(s->scale, s->scale, s->rows, hi);
		lb_quant_uniform_forward(s->wq, w, s->scale, NULL, s->rows, s->cols, lo, hi);
	}
}

int lb_ptq_run(const char *run_path, const struct lb_ptq_opts *o, struct lb_ptq_result *res)
{
	struct lb_runfile *rf = NULL;
	struct lb_config *cfg = NULL;
	struct lb_model *m = NULL;
	struct lb_dataset train = {0}, val = {0}, test = {0};
	struct lb_normalize norm;
	int32_t *idx = NULL, *labels = NULL;
	double *range = NULL;
	float *pool = NULL;
	size_t *pool_off = NULL;
	struct lb_quant_layer_cfg *layers = NULL;
	unsigned n_layers = 0;
	char origin[4200];
	int rc;

	memset(res, 0, sizeof *res);
	if ((rc = check_opts(o)))
		return rc;
	rc = lb_runfile_read(run_path, &rf);
	if (rc)
		return lb_error_prefix(rc, "ptq");
	const char *status = lb_runfile_get_attr_str(rf, "", "status");
	const char *yaml = lb_runfile_get_attr_str(rf, "", "config");
	if (!yaml) {
		rc = lb_error(LB_ERR_STATE, "%s: no config attribute (not a lowbit run file)", run_path);
		goto out;
	}
	if (!status || strcmp(status, "done") != 0) {
		rc = lb_error(LB_ERR_STATE, "%s: the run is not done (status %s): no final weights to "
			      "quantize", run_path, status ? status : "missing");
		goto out;
	}
	snprintf(origin, sizeof origin, "%s:config", run_path);
	if ((rc = lb_config_load_string(yaml, origin, NULL, 0, &cfg)))
		goto out;
	/* the PTQ model: uniform weight and activation quantizers we drive by hand */
	layers = cfg->quant.layers;
	n_layers = cfg->quant.n_layers;
	cfg->quant.layers = NULL;
	cfg->quant.n_layers = 0;
	cfg->quant.weights.method = LB_QM_UNIFORM;
	cfg->quant.weights.bits = 8;
	cfg->quant.weights.per_channel = o->per_channel != 0;
	cfg->quant.activations.method = LB_QM_UNIFORM;
	cfg->quant.activations.bits = 8;
	cfg->quant.dropbits.enabled = false;
	cfg->quant.learn_bits.enabled = false;
	if ((rc = lb_train_load_data(cfg, &train, &val, &test, &norm)))
		goto out;
	rc = lb_model_build(cfg, train.H, train.W, train.C, 10, o->batch_size,
			    (int)cfg->train.eval_batch, &m);
	if (rc)
		goto out;
	if ((rc = load_final(m, rf, run_path)))
		goto out;
	if (o->fold_bn)
		fold_bn(m);
	struct lb_qmodel *qm = m->q;
	idx = malloc((size_t)(m->B_max > o->batch_size ? m->B_max : o->batch_size) * sizeof *idx);
	labels = malloc((size_t)m->B_max * sizeof *labels);
	range = calloc((size_t)qm->n_a + 1, sizeof *range);
	pool_off = calloc((size_t)qm->n_a + 1, sizeof *pool_off);
	if (!idx || !labels || !range || !pool_off) {
		rc = lb_error(LB_ERR_OOM, "out of memory");
		goto out;
	}
	int K = o->batches, B = o->batch_size;
	if (o->fit_calibration && (long)K * B > train.n) {
		B = B < train.n ? B : train.n;
		K = train.n / B;
	}
	if ((long)K * B > train.n) {
		rc = lb_error(LB_ERR_CONFIG, "ptq: %d calibration batches of %d need %ld training "
			      "samples; the run's training set has %d", K, B, (long)K * B, train.n);
		goto out;
	}
	if (o->calibration == LB_PTQ_CAL_PERCENTILE) {
		size_t total = 0;
		for (int a = 0; a < qm->n_a; a++) {
			pool_off[a] = total;
			total += (size_t)K * B * m->nodes[qm->a[a].node].size;
		}
		if (!(pool = malloc((total + 1) * sizeof *pool))) {
			rc = lb_error(LB_ERR_OOM, "out of memory for percentile calibration");
			goto out;
		}
	}
	/* FP pass: calibration statistics, then the FP accuracy */
	qm->bypass = 1;
	for (int k = 0; k < qm->n_w; k++) {
		struct lb_qstate *s = &qm->w[k];
		memcpy(s->wq, m->w + m->params[m->nodes[s->node].w].offset, s->count * sizeof(float));
	}
	for (int k = 0; k < K; k++) {
		for (int i = 0; i < B; i++)
			idx[i] = k * B + i;
		lb_data_batch(lb_model_input(m), labels, &train, idx, B, &norm, NULL, 0, 0);
		lb_model_forward(m, B, labels, 0, 0, 0, NULL);
		for (int a = 0; a < qm->n_a; a++) {
			const struct lb_node *nd = &m->nodes[qm->a[a].node];
			const float *x = m->nodes[nd->in].y;
			size_t n = (size_t)B * nd->size;
			float mn, mx;
			lb_quant_minmax(&mn, &mx, x, n);
			if (o->calibration == LB_PTQ_CAL_MEAN)
				range[a] += mx / K;
			else if (o->calibration == LB_PTQ_CAL_MINMAX)
				range[a] = k ? fmax(range[a], mx) : mx;
			else
				memcpy(pool + pool_off[a] + (size_t)k * n, x, n * sizeof(float));
		}
	}
	if (o->calibration == LB_PTQ_CAL_PERCENTILE)
		for (int a = 0; a < qm->n_a; a++)
			range[a] = lb_quant_percentile_abs(pool + pool_off[a],
							   (size_t)K * B * m->nodes[qm->a[a].node].size,
							   o->percentile);
	res->fp_acc = evaluate(m, &test, &norm, idx, labels);
	qm->bypass = 0;
	qm->train = 0;
	for (int wi = 0; wi < o->n_w; wi++) {
		quantize_weights(m, o, o->w_bits[wi]);
		for (int ai = 0; ai < o->n_a; ai++) {
			for (int a = 0; a < qm->n_a; a++) {
				struct lb_qstate *s = &qm->a[a];
				float *st = m->buf + m->buffers[s->b_state].offset;
				s->bits = s->level = o->a_bits[ai];
				st[0] = 1.0f;
				st[1] = range[a] > 0 ? (float)(range[a] / ((1 << s->bits) - 1)) : 1.0f;
			}
			res->acc[wi][ai] = evaluate(m, &test, &norm, idx, labels);
			if (!o->quiet)
				lb_log(LB_LOG_INFO, "ptq: W%d/A%d: test accuracy %.2f%%", o->w_bits[wi],
				       o->a_bits[ai], 100 * res->acc[wi][ai]);
		}
	}
	/* record */
	{
		double table[LB_PTQ_MAX_GRID * LB_PTQ_MAX_GRID];
		int64_t wb[LB_PTQ_MAX_GRID], ab[LB_PTQ_MAX_GRID];
		uint64_t d2[2] = {(uint64_t)o->n_w, (uint64_t)o->n_a}, dw[1] = {(uint64_t)o->n_w},
			 da[1] = {(uint64_t)o->n_a};
		char now[64];
		time_t t = time(NULL);
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", &tm);
		for (int wi = 0; wi < o->n_w; wi++) {
			wb[wi] = o->w_bits[wi];
			for (int ai = 0; ai < o->n_a; ai++)
				table[wi * o->n_a + ai] = res->acc[wi][ai];
		}
		for (int ai = 0; ai < o->n_a; ai++)
			ab[ai] = o->a_bits[ai];
		rc = lb_runfile_put_array(rf, "ptq/test_acc", LB_DT_F64, 2, d2, table);
		rc = rc ? rc : lb_runfile_put_array(rf, "ptq/w_bits", LB_DT_I64, 1, dw, wb);
		rc = rc ? rc : lb_runfile_put_array(rf, "ptq/a_bits", LB_DT_I64, 1, da, ab);
		rc = rc ? rc : lb_runfile_set_attr_f64(rf, "ptq", "fp_test_acc", res->fp_acc);
		rc = rc ? rc : lb_runfile_set_attr_str(rf, "ptq", "calibration", cal_name(o->calibration));
		rc = rc ? rc : lb_runfile_set_attr_f64(rf, "ptq", "percentile", o->percentile);
		rc = rc ? rc : lb_runfile_set_attr_i64(rf, "ptq", "weight_percentile", o->weight_percentile);
		rc = rc ? rc : lb_runfile_set_attr_i64(rf, "ptq", "per_channel", o->per_channel);
		rc = rc ? rc : lb_runfile_set_attr_i64(rf, "ptq", "calibration_batches", K);
		rc = rc ? rc : lb_runfile_set_attr_i64(rf, "ptq", "calibration_batch_size", B);
		rc = rc ? rc : lb_runfile_set_attr_i64(rf, "ptq", "fold_bn", o->fold_bn);
		rc = rc ? rc : lb_runfile_set_attr_str(rf, "ptq", "weights",
						       "symmetric narrow range, biases FP");
		rc = rc ? rc : lb_runfile_set_attr_str(rf, "ptq", "activations",
						       "unsigned [0, 2^b-1] up to the calibrated maximum; "
						       "network input FP");
		rc = rc ? rc : lb_runfile_set_attr_str(rf, "ptq", "created_at", now);
		rc = rc ? rc : lb_runfile_write(rf, run_path);
	}
out:
	if (cfg) {
		cfg->quant.layers = layers;
		cfg->quant.n_layers = n_layers;
	}
	lb_model_free(m);
	lb_config_free(cfg);
	lb_runfile_free(rf);
	lb_dataset_release(&train);
	lb_dataset_release(&val);
	lb_dataset_release(&test);
	free(idx);
	free(labels);
	free(range);
	free(pool);
	free(pool_off);
	return rc;
}
