/* SPDX-License-Identifier: MIT
 * The training loop (see train.h): load data, build the model, train epoch
 * by epoch, evaluate, and keep the run file current with an atomic rewrite
 * at every checkpoint. Randomness is counter-based (rng.h), so a run resumed
 * from the checkpoint of epoch e redraws exactly what the uninterrupted run
 * drew after e: resumed weights are bit-identical. A stop signal (signals.h)
 * adds a checkpoint inside an epoch, at the step boundary the ranks agree
 * on; resuming it skips the steps of that epoch already done. */
#include "lbconfig.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cyaml/cyaml.h>
#include <hdf5.h>

#include "../analysis/runfile.h"
#include "../mpi/comm.h"
#include "data/dataset.h"
#include "err.h"
#include "gemm.h"
#include "log.h"
#include "models/model.h"
#include "optim/optim.h"
#include "quant/qmodel.h"
#include "models/gradl1.h"
#include "rng.h"
#include "signals.h"
#include "train.h"
#include "util.h"

#include "config.h"

struct run {
	const struct lb_config *cfg;
	struct lb_dataset train, val, test;
	struct lb_normalize norm;
	struct lb_augment aug;
	struct lb_model *model;
	struct lb_optimizer *opt;
	struct lb_runfile *rf;
	char path[4096];
	float *x;        /* batch input staging = model input */
	int32_t *labels; /* (B_max) */
	int32_t *perm;   /* (n_train) */
	int epoch0;      /* completed epochs at start (resume) */
	long step;       /* global step */
	int B_shard, steps_per_epoch;
	/* data parallelism: this rank computes shards [first, first + count) */
	MPI_Comm comm;   /* MPI_COMM_NULL: one process */
	int rank, world, first, count;
	int deterministic;
	float **stack;   /* pairwise-sum partial gradients (deterministic, count > 1) */
	int *stack_level;
	float *tmp;      /* receive buffer of the rank tree */
	double *shard_stats; /* (S, 2): loss and hits of every shard of the step */
	float *bn_stats; /* (S, bn_stats_floats) */
	double comm_seconds; /* time in gradient exchange this epoch */
	double penalty_sum;  /* bit-cost regulariser summed over this epoch's steps */
	/* A mid-epoch checkpoint (preemption): the steps done inside epoch
	 * epoch0 and that epoch's sums so far, so that the resumed epoch ends
	 * with the same metrics. All 0 at an epoch boundary. */
	int epoch_step;
	int stop_sig;        /* the stop signal the ranks agreed on (0: none) */
	int snap_rc;         /* rank 0: a train.snapshot_steps snapshot failed (agreed per epoch) */
	double epoch_loss_sum, epoch_hits, epoch_penalty_sum, epoch_seconds;
	/* Gradient-L1 (cfg->gradl1): the R-pass state, the direction V, the
	 * reduced cross-entropy gradient and this rank's R{g}; the two terms of
	 * the regulariser summed over this epoch's steps (and their values at a
	 * mid-epoch checkpoint) */
	struct lb_gradl1 *gl1;
	float *gl1_V, *gl1_g, *gl1_R;
	double *gl1_shard;   /* (S): activation term of every shard of the step */
	float gl1_lw, gl1_la;
	int gl1_active;      /* on in this epoch */
	double reg_sum[2], epoch_reg_sum[2];
};

/* ---- data ---- */

static int path_join(char *out, size_t n, const char *dir, const char *file)
{
	int w = snprintf(out, n, "%s/%s", dir, file);
	return (w < 0 || (size_t)w >= n) ? -1 : 0;
}

static int load_data(struct run *r)
{
	const struct lb_data_cfg *d = &r->cfg->data;
	struct lb_dataset all = {0};
	char a[4096], b[4096];
	int rc;
	if (d->dataset == LB_DATA_CIFAR10) {
		char paths[5][4096], test[4096];
		const char *pp[5];
		for (int i = 0; i < 5; i++) {
			char f[32];
			snprintf(f, sizeof f, "data_batch_%d.bin", i + 1);
			if (path_join(paths[i], sizeof paths[i], d->dir, f))
				return lb_error(LB_ERR_CONFIG, "data.dir: path too long");
			pp[i] = paths[i];
		}
		if (path_join(test, sizeof test, d->dir, "test_batch.bin"))
			return lb_error(LB_ERR_CONFIG, "data.dir: path too long");
		rc = lb_dataset_load_cifar10(&all, pp, 5);
		if (rc)
			return rc;
		const char *tp[1] = {test};
		rc = lb_dataset_load_cifar10(&r->test, tp, 1);
		if (rc) {
			lb_dataset_release(&all);
			return rc;
		}
	} else {
		if (path_join(a, sizeof a, d->dir, d->train_images) ||
		    path_join(b, sizeof b, d->dir, d->train_labels))
			return lb_error(LB_ERR_CONFIG, "data.dir: path too long");
		rc = lb_dataset_load_idx(&all, a, b);
		if (rc)
			return rc;
		if (path_join(a, sizeof a, d->dir, d->test_images) ||
		    path_join(b, sizeof b, d->dir, d->test_labels)) {
			lb_dataset_release(&all);
			return lb_error(LB_ERR_CONFIG, "data.dir: path too long");
		}
		rc = lb_dataset_load_idx(&r->test, a, b);
		if (rc) {
			lb_dataset_release(&all);
			return rc;
		}
	}
	if (r->test.H != all.H || r->test.W != all.W || r->test.C != all.C) {
		lb_dataset_release(&all);
		return lb_error(LB_ERR_DATA,
				"%s: test images are %dx%dx%d but training images are %dx%dx%d",
				d->dir, r->test.H, r->test.W, r->test.C, all.H, all.W, all.C);
	}
	if (d->train_limit && (int32_t)d->train_limit < all.n)
		lb_dataset_truncate(&all, (int32_t)d->train_limit);
	if (d->test_limit && (int32_t)d->test_limit < r->test.n)
		lb_dataset_truncate(&r->test, (int32_t)d->test_limit);
	if (d->validation) {
		if ((int32_t)d->validation >= all.n) {
			int32_t n = all.n;
			lb_dataset_release(&all);
			return lb_error(LB_ERR_CONFIG,
					"data.validation: %u samples requested but the training set "
					"has %d (allowed: 0 .. %d)",
					d->validation, n, n - 1);
		}
		rc = lb_dataset_split(&r->train, &r->val, &all, (int32_t)d->validation,
				      r->cfg->seed);
		lb_dataset_release(&all);
		if (rc)
			return rc;
	} else {
		r->train = all;
	}
	if (r->train.n < (int32_t)r->cfg->train.batch)
		return lb_error(LB_ERR_CONFIG,
				"train.batch: %u is larger than the training set (%d samples)",
				r->cfg->train.batch, r->train.n);
	for (int c = 0; c < 3; c++) {
		r->norm.mean[c] = 0.0f;
		r->norm.std[c] = 1.0f;
	}
	if (d->normalize)
		lb_dataset_stats(&r->train, &r->norm);
	r->aug.crop_pad = d->augment ? (int)d->crop_pad : 0;
	r->aug.flip = d->augment;
	return LB_OK;
}

/* ---- run file ---- */

static void iso_now(char *buf, size_t n)
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int flat_attr(const char *key, const char *value, void *ctx)
{
	return lb_runfile_set_attr_str(ctx, "config_flat", key, value);
}

static int record_provenance(struct run *r, int world)
{
	struct lb_runfile *rf = r->rf;
	char *yaml = NULL, buf[256];
	int rc = lb_config_dump(r->cfg, &yaml);
	if (rc)
		return rc;
	rc = lb_runfile_set_attr_str(rf, "", "config", yaml);
	free(yaml);
	snprintf(buf, sizeof buf, "%016llx", (unsigned long long)lb_config_hash(r->cfg));
	rc = rc ? rc : lb_runfile_set_attr_str(rf, "", "config_hash", buf);
	rc = rc ? rc : lb_config_flatten(r->cfg, flat_attr, rf);
	rc = rc ? rc : lb_runfile_set_attr_str(rf, "", "name", r->cfg->name);
	rc = rc ? rc : lb_runfile_set_attr_i64(rf, "", "seed", (int64_t)r->cfg->seed);
	rc = rc ? rc : lb_runfile_set_attr_str(rf, "", "lowbit_version", PACKAGE_VERSION);
	rc = rc ? rc : lb_runfile_set_attr_str(rf, "", "git_revision", LB_GIT_REV);
	rc = rc ? rc : lb_runfile_set_attr_str(rf, "", "configure_args", LB_CONFIGURE_ARGS);
	rc = rc ? rc : lb_runfile_set_attr_str(rf, "", "blas_corename", lb_blas_corename());
	rc = rc ? rc : lb_runfile_set_attr_str(rf, "", "blas_config", lb_blas_config());
	rc = rc ? rc : lb_runfile_set_attr_i64(rf, "", "blas_threads", lb_blas_get_threads());
	const char *ct = getenv("OPENBLAS_CORETYPE");
	rc = rc ? rc : lb_runfile_set_attr_str(rf, "", "openblas_coretype_env", ct ? ct : "unset");
	unsigned maj, min, rel;
	H5get_libversion(&maj, &min, &rel);
	snprintf(buf, sizeof buf, "%u.%u.%u", maj, min, rel);
	rc = rc ? rc : lb_runfile_set_attr_str(rf, "", "hdf5_version", buf);
	char mpiv[MPI_MAX_LIBRARY_VERSION_STRING];
	int len = 0;
	MPI_Get_library_version(mpiv, &len);
	char *nl = strchr(mpiv, ',');
	if (nl)
		*nl = '\0';
	rc = rc ? rc : lb_runfile_set_attr_str(rf, "", "mpi_version", mpiv);
	rc = rc ? rc : lb_runfile_set_attr_str(rf, "", "cyaml_version", cyaml_version_str);
	gethostname(buf, sizeof buf - 1);
	buf[sizeof buf - 1] = '\0';
	rc = rc ? rc : lb_runfile_set_attr_str(rf, "", "host", buf);
	rc = rc ? rc : lb_runfile_set_attr_i64(rf, "", "ranks", world);
	rc = rc ? rc : lb_runfile_set_attr_i64(rf, "", "shards", r->cfg->train.shards);
	snprintf(buf, sizeof buf, "%.6g %.6g %.6g / %.6g %.6g %.6g", r->norm.mean[0],
		 r->norm.mean[1], r->norm.mean[2], r->norm.std[0], r->norm.std[1], r->norm.std[2]);
	rc = rc ? rc : lb_runfile_set_attr_str(rf, "", "normalization_mean_std", buf);
	rc = rc ? rc : lb_runfile_set_attr_i64(rf, "", "train_samples", r->train.n);
	rc = rc ? rc : lb_runfile_set_attr_i64(rf, "", "val_samples", r->val.n);
	rc = rc ? rc : lb_runfile_set_attr_i64(rf, "", "test_samples", r->test.n);
	return rc;
}

static int record_model(struct run *r)
{
	const struct lb_model *m = r->model;
	int n = 0, rc;
	const char **names = calloc((size_t)m->n_nodes, sizeof *names);
	int64_t *params = calloc((size_t)m->n_nodes, sizeof *params);
	int64_t *macs = calloc((size_t)m->n_nodes, sizeof *macs);
	const char **ops = calloc((size_t)m->n_nodes, sizeof *ops);
	if (!names || !params || !macs || !ops) {
		rc = lb_error(LB_ERR_OOM, "out of memory");
		goto out;
	}
	for (int i = 1; i < m->n_nodes; i++) {
		names[n] = m->nodes[i].name;
		ops[n] = lb_op_name(m->nodes[i].op);
		for (int j = 0; j < m->n_params; j++)
			if (m->params[j].node == i)
				params[n] += (int64_t)m->params[j].count;
		macs[n] = m->nodes[i].macs;
		n++;
	}
	uint64_t dims[1] = {(uint64_t)n};
	rc = lb_runfile_put_strings(r->rf, "model/layer_names", names, n);
	rc = rc ? rc : lb_runfile_put_strings(r->rf, "model/layer_ops", ops, n);
	rc = rc ? rc : lb_runfile_put_array(r->rf, "model/layer_params", LB_DT_I64, 1, dims, params);
	rc = rc ? rc : lb_runfile_put_array(r->rf, "model/layer_macs", LB_DT_I64, 1, dims, macs);
	rc = rc ? rc : lb_runfile_set_attr_i64(r->rf, "model", "params_total", lb_model_param_total(m));
	rc = rc ? rc : lb_runfile_set_attr_i64(r->rf, "model", "macs_per_sample", lb_model_macs_total(m));
	rc = rc ? rc : lb_runfile_set_attr_str(r->rf, "model", "arch", lb_arch_name(r->cfg->model.arch));
	rc = rc ? rc : lb_runfile_set_attr_str(r->rf, "model", "layout", "NHWC activations; conv weight (C_out, K, K, C_in); linear weight (C_out, C_in)");
out:
	free(names);
	free(params);
	free(macs);
	free(ops);
	return rc;
}

static int put_tensors(struct run *r, const char *prefix, const float *block,
		       const struct lb_param *ps, int n);

/* train.snapshot_steps: after step K (rank 0), the parameters and buffers go
 * to snapshots/step_K/ for a later rewind to step K (late rewinding of the
 * lottery ticket). A resume that re-runs step K takes the same snapshot. */
static int snapshot_if_asked(struct run *r)
{
	const struct lb_train_cfg *t = &r->cfg->train;
	char prefix[64];
	int rc;
	for (unsigned i = 0; i < t->n_snapshot_steps; i++) {
		if ((long)t->snapshot_steps[i] != r->step)
			continue;
		snprintf(prefix, sizeof prefix, "snapshots/step_%ld/weights", r->step);
		rc = put_tensors(r, prefix, r->model->w, r->model->params, r->model->n_params);
		snprintf(prefix, sizeof prefix, "snapshots/step_%ld/buffers", r->step);
		rc = rc ? rc : put_tensors(r, prefix, r->model->buf, r->model->buffers,
					   r->model->n_buffers);
		return rc;
	}
	return LB_OK;
}

static int put_tensors(struct run *r, const char *prefix, const float *block,
		       const struct lb_param *ps, int n)
{
	char path[256];
	for (int i = 0; i < n; i++) {
		uint64_t dims[4];
		for (int k = 0; k < ps[i].rank; k++)
			dims[k] = (uint64_t)ps[i].dims[k];
		snprintf(path, sizeof path, "%s/%s", prefix, ps[i].name);
		int rc = lb_runfile_put_array(r->rf, path, LB_DT_F32, ps[i].rank, dims,
					      block + ps[i].offset);
		if (rc)
			return rc;
	}
	return LB_OK;
}

/* quant/layer_names: the conv/linear layers in network order (the columns
 * of metrics/w_bits and metrics/a_bits). */
static int record_quant_layers(struct run *r)
{
	const struct lb_model *m = r->model;
	int L = lb_model_quant_layers(m, NULL, NULL, NULL, NULL, NULL);
	const char **names = calloc((size_t)L + 1, sizeof *names);
	if (!names)
		return lb_error(LB_ERR_OOM, "out of memory");
	lb_model_quant_layers(m, names, NULL, NULL, NULL, NULL);
	int rc = lb_runfile_put_strings(r->rf, "quant/layer_names", names, L);
	free(names);
	return rc;
}

/* Per-epoch quantization metrics (methods.md 6.8) and the bits in force,
 * kept current in quant/learned_w_bits for stages that retrain at them. */
static int record_quant_epoch(struct run *r, double penalty)
{
	const struct lb_model *m = r->model;
	int L = lb_model_quant_layers(m, NULL, NULL, NULL, NULL, NULL);
	int *wb = calloc((size_t)L + 1, sizeof *wb), *ab = calloc((size_t)L + 1, sizeof *ab);
	double *row = calloc((size_t)L + 1, sizeof *row);
	int64_t *wb64 = calloc((size_t)L + 1, sizeof *wb64);
	struct lb_quant_summary qs;
	int rc = LB_OK;
	if (!wb || !ab || !row || !wb64) {
		rc = lb_error(LB_ERR_OOM, "out of memory");
		goto out;
	}
	lb_model_quant_layers(m, NULL, NULL, NULL, wb, ab);
	lb_model_quant_summary(m, &qs);
	for (int l = 0; l < L; l++)
		row[l] = wb[l], wb64[l] = wb[l];
	rc = lb_runfile_append(r->rf, "metrics/w_bits", row, L);
	for (int l = 0; l < L; l++)
		row[l] = ab[l];
	rc = rc ? rc : lb_runfile_append(r->rf, "metrics/a_bits", row, L);
	rc = rc ? rc : lb_runfile_append(r->rf, "metrics/avg_w_bits", &qs.avg_w_bits, 1);
	rc = rc ? rc : lb_runfile_append(r->rf, "metrics/avg_a_bits", &qs.avg_a_bits, 1);
	rc = rc ? rc : lb_runfile_append(r->rf, "metrics/size_bytes", &qs.size_bytes, 1);
	rc = rc ? rc : lb_runfile_append(r->rf, "metrics/compression", &qs.compression, 1);
	rc = rc ? rc : lb_runfile_append(r->rf, "metrics/bops", &qs.bops, 1);
	rc = rc ? rc : lb_runfile_append(r->rf, "metrics/bits_penalty", &penalty, 1);
	uint64_t dims[1] = {(uint64_t)L};
	rc = rc ? rc : lb_runfile_put_array(r->rf, "quant/learned_w_bits", LB_DT_I64, 1, dims, wb64);
	if (!rc && m->q) {
		/* RQ/SRQ grids: alpha and sigma of every weight quantizer that has them */
		for (int l = 0, i = 1; i < m->n_nodes; i++) {
			const struct lb_node *nd = &m->nodes[i];
			if (nd->op != LB_OP_CONV && nd->op != LB_OP_LINEAR)
				continue;
			const struct lb_qstate *q = nd->wq;
			int grid = q && q->p_b >= 0;
			row[l] = grid ? exp(m->w[m->params[q->p_a].offset]) : NAN;
			wb[l] = grid;
			l++;
		}
		int any = 0;
		for (int l = 0; l < L; l++)
			any |= wb[l];
		if (any)
			rc = lb_runfile_append(r->rf, "metrics/w_alpha", row, L);
		/* WaveQ: the learned beta of every layer that has one */
		any = 0;
		for (int l = 0, i = 1; i < m->n_nodes; i++) {
			const struct lb_node *nd = &m->nodes[i];
			if (nd->op != LB_OP_CONV && nd->op != LB_OP_LINEAR)
				continue;
			const struct lb_qstate *q = nd->wq;
			int has = q && q->p_beta >= 0;
			row[l++] = has ? m->w[m->params[q->p_beta].offset] : NAN;
			any |= has;
		}
		if (!rc && any)
			rc = lb_runfile_append(r->rf, "metrics/waveq_beta", row, L);
		/* BSQ: the nonzero fraction of every bit plane, (L x max_bits) per epoch */
		int mb = (int)m->q->cfg.bsq.max_bits;
		double *nz = calloc((size_t)L * (size_t)mb + 1, sizeof *nz);
		any = 0;
		for (int l = 0; nz && l < L; l++) {
			if (lb_model_quant_bsq_density(m, l, nz + (size_t)l * mb))
				any = 1;
			else
				for (int b = 0; b < mb; b++)
					nz[(size_t)l * mb + b] = NAN;
		}
		if (!nz)
			rc = rc ? rc : lb_error(LB_ERR_OOM, "out of memory");
		else if (!rc && any)
			rc = lb_runfile_append(r->rf, "metrics/bsq_density", nz, L * mb);
		free(nz);
	}
	if (!rc)
		lb_log(LB_LOG_INFO, "quant: avg weight bits %.3f, avg activation bits %.2f, %.0f bytes "
		       "(%.1fx), %.4g BOPs/sample, bit penalty %.4g", qs.avg_w_bits, qs.avg_a_bits,
		       qs.size_bytes, qs.compression, qs.bops, penalty);
out:
	free(wb);
	free(ab);
	free(row);
	free(wb64);
	return rc;
}

/* Gradient-L1: the epoch means of the two terms (0 before start_epoch). */
static int record_gradl1_epoch(struct run *r, int epoch)
{
	if (!r->gl1)
		return LB_OK;
	double k = r->steps_per_epoch ? r->steps_per_epoch : 1;
	double w = r->reg_sum[0] / k, a = r->reg_sum[1] / k;
	int rc = lb_runfile_append(r->rf, "metrics/gradl1_w", &w, 1);
	rc = rc ? rc : lb_runfile_append(r->rf, "metrics/gradl1_a", &a, 1);
	if (!rc)
		lb_log(LB_LOG_INFO, "gradl1: %s, weight term %.5g, activation term %.5g",
		       r->gl1_active ? "on" : "off", w, a);
	(void)epoch;
	return rc;
}

static int put_block(struct lb_runfile *rf, const char *path, const float *v, size_t n)
{
	uint64_t dims[1] = {(uint64_t)n};
	return lb_runfile_put_array(rf, path, LB_DT_F32, 1, dims, v);
}

static int checkpoint(struct run *r, int epochs_done)
{
	const struct lb_model *m = r->model;
	int rc = put_block(r->rf, "checkpoint/params", m->w, m->n_weights);
	rc = rc ? rc : put_block(r->rf, "checkpoint/buffers", m->buf, m->n_buffer_floats);
	rc = rc ? rc : put_block(r->rf, "checkpoint/opt_m", r->opt->m, r->opt->n);
	if (!rc && r->opt->v)
		rc = put_block(r->rf, "checkpoint/opt_v", r->opt->v, r->opt->n);
	rc = rc ? rc : lb_runfile_set_attr_i64(r->rf, "checkpoint", "epoch", epochs_done);
	rc = rc ? rc : lb_runfile_set_attr_i64(r->rf, "checkpoint", "step", r->step);
	rc = rc ? rc : lb_runfile_set_attr_i64(r->rf, "checkpoint", "opt_t", r->opt->t);
	rc = rc ? rc : lb_runfile_set_attr_i64(r->rf, "checkpoint", "epoch_step", r->epoch_step);
	rc = rc ? rc : lb_runfile_set_attr_f64(r->rf, "checkpoint", "epoch_loss_sum", r->epoch_loss_sum);
	rc = rc ? rc : lb_runfile_set_attr_f64(r->rf, "checkpoint", "epoch_hits", r->epoch_hits);
	rc = rc ? rc : lb_runfile_set_attr_f64(r->rf, "checkpoint", "epoch_penalty_sum",
					       r->epoch_penalty_sum);
	rc = rc ? rc : lb_runfile_set_attr_f64(r->rf, "checkpoint", "epoch_seconds", r->epoch_seconds);
	rc = rc ? rc : lb_runfile_set_attr_f64(r->rf, "checkpoint", "epoch_reg_w_sum",
					       r->epoch_reg_sum[0]);
	rc = rc ? rc : lb_runfile_set_attr_f64(r->rf, "checkpoint", "epoch_reg_a_sum",
					       r->epoch_reg_sum[1]);
	rc = rc ? rc : lb_runfile_set_attr_f64(r->rf, "", "peak_rss_mib", lb_peak_rss_mib());
	rc = rc ? rc : lb_runfile_write(r->rf, r->path);
	return rc;
}

static int get_block(const struct lb_runfile *rf, const char *path, float *dst, size_t n)
{
	enum lb_dtype dt;
	int rank;
	uint64_t dims[4];
	const void *v = lb_runfile_get_array(rf, path, &dt, &rank, dims);
	if (!v || dt != LB_DT_F32 || rank != 1 || dims[0] != n)
		return lb_error(LB_ERR_STATE, "checkpoint array '%s' is missing or has the wrong size",
				path);
	memcpy(dst, v, n * sizeof(float));
	return LB_OK;
}

static int restore(struct run *r)
{
	struct lb_model *m = r->model;
	int64_t epoch = 0, step = 0, t = 0;
	int rc;
	if (lb_runfile_get_attr_i64(r->rf, "checkpoint", "epoch", &epoch) ||
	    lb_runfile_get_attr_i64(r->rf, "checkpoint", "step", &step) ||
	    lb_runfile_get_attr_i64(r->rf, "checkpoint", "opt_t", &t))
		return lb_error(LB_ERR_STATE, "%s: no checkpoint to resume from", r->path);
	rc = get_block(r->rf, "checkpoint/params", m->w, m->n_weights);
	rc = rc ? rc : get_block(r->rf, "checkpoint/buffers", m->buf, m->n_buffer_floats);
	rc = rc ? rc : get_block(r->rf, "checkpoint/opt_m", r->opt->m, r->opt->n);
	if (!rc && r->opt->v)
		rc = get_block(r->rf, "checkpoint/opt_v", r->opt->v, r->opt->n);
	if (rc)
		return lb_error_prefix(rc, "%s", r->path);
	if (epoch < 0 || epoch > (int64_t)r->cfg->train.epochs || step < 0 || t < 0 ||
	    step > (int64_t)(epoch + 1) * r->steps_per_epoch)
		return lb_error(LB_ERR_STATE,
				"%s: checkpoint epoch %lld, step %lld, opt_t %lld are out of range "
				"(allowed: epoch 0..%u, step 0..(epoch + 1) x %d, opt_t >= 0); the file "
				"is damaged",
				r->path, (long long)epoch, (long long)step, (long long)t,
				r->cfg->train.epochs, r->steps_per_epoch);
	/* a mid-epoch checkpoint (older files have none: an epoch boundary) */
	int64_t es = 0;
	if (!lb_runfile_get_attr_i64(r->rf, "checkpoint", "epoch_step", &es) &&
	    (es < 0 || es >= r->steps_per_epoch ||
	     (es > 0 && step != (int64_t)epoch * r->steps_per_epoch + es)))
		return lb_error(LB_ERR_STATE,
				"%s: checkpoint/epoch_step %lld does not fit %d steps per epoch at "
				"step %lld (the file was not written by this configuration)",
				r->path, (long long)es, r->steps_per_epoch, (long long)step);
	r->epoch_step = (int)es;
	r->epoch_loss_sum = r->epoch_hits = r->epoch_penalty_sum = r->epoch_seconds = 0;
	if (es > 0 &&
	    (lb_runfile_get_attr_f64(r->rf, "checkpoint", "epoch_loss_sum", &r->epoch_loss_sum) ||
	     lb_runfile_get_attr_f64(r->rf, "checkpoint", "epoch_hits", &r->epoch_hits) ||
	     lb_runfile_get_attr_f64(r->rf, "checkpoint", "epoch_penalty_sum", &r->epoch_penalty_sum) ||
	     lb_runfile_get_attr_f64(r->rf, "checkpoint", "epoch_seconds", &r->epoch_seconds)))
		return lb_error(LB_ERR_STATE, "%s: mid-epoch checkpoint without its epoch sums",
				r->path);
	r->epoch_reg_sum[0] = r->epoch_reg_sum[1] = 0;
	if (es > 0) { /* absent in files written before Gradient-L1: 0 */
		lb_runfile_get_attr_f64(r->rf, "checkpoint", "epoch_reg_w_sum", &r->epoch_reg_sum[0]);
		lb_runfile_get_attr_f64(r->rf, "checkpoint", "epoch_reg_a_sum", &r->epoch_reg_sum[1]);
	}
	r->epoch0 = (int)epoch;
	r->step = step;
	r->opt->t = t;
	lb_runfile_truncate(r->rf, "metrics", (int)epoch);
	return LB_OK;
}

/* Open the run file: fresh, resumed, or refused. Returns 1 when --resume found
 * a finished run. */
static int open_runfile(struct run *r, const struct lb_train_opts *opts, int world)
{
	struct stat st;
	int rc;
	if (opts->run_path) {
		if (snprintf(r->path, sizeof r->path, "%s", opts->run_path) >= (int)sizeof r->path)
			return lb_error(LB_ERR_CONFIG, "run file path too long");
	} else {
		const char *dir = opts->out_dir ? opts->out_dir : "runs";
		if (snprintf(r->path, sizeof r->path, "%s/%s.h5", dir, r->cfg->name) >=
		    (int)sizeof r->path)
			return lb_error(LB_ERR_CONFIG, "output path too long");
	}
	int exists = stat(r->path, &st) == 0;
	if (exists && !opts->resume)
		return lb_error(LB_ERR_STATE,
				"'%s' already exists; pass --resume to continue it, or choose "
				"another output folder (-o) or name (--set name=...)",
				r->path);
	if (exists) {
		rc = lb_runfile_read(r->path, &r->rf);
		if (rc)
			return lb_error_prefix(rc, "cannot resume");
		const char *h = lb_runfile_get_attr_str(r->rf, "", "config_hash");
		char mine[32];
		snprintf(mine, sizeof mine, "%016llx", (unsigned long long)lb_config_hash(r->cfg));
		if (!h || strcmp(h, mine) != 0)
			return lb_error(LB_ERR_STATE,
					"cannot resume '%s': it was written by another configuration "
					"(config hash %s, this one %s); use another output folder or name",
					r->path, h ? h : "missing", mine);
		const char *status = lb_runfile_get_attr_str(r->rf, "", "status");
		if (status && strcmp(status, "done") == 0)
			return 1;
		rc = restore(r);
		if (rc)
			return rc;
		if (r->epoch_step)
			lb_log(LB_LOG_INFO, "resuming '%s' inside epoch %d after its step %d (step %ld)",
			       r->path, r->epoch0 + 1, r->epoch_step, r->step);
		else
			lb_log(LB_LOG_INFO, "resuming '%s' after epoch %d (step %ld)", r->path,
			       r->epoch0, r->step);
		return lb_runfile_set_attr_str(r->rf, "", "status", "running");
	}
	/* Fresh run: make sure the folder exists and is writable before training. */
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", r->path);
	char *slash = strrchr(dir, '/');
	if (slash) {
		*slash = '\0';
		if (dir[0] && lb_mkdir_p(dir) != 0)
			return lb_error(LB_ERR_IO, "cannot create output folder '%s': %s", dir,
					strerror(errno));
	}
	rc = lb_runfile_new(&r->rf);
	if (rc)
		return rc;
	char now[64];
	iso_now(now, sizeof now);
	rc = record_provenance(r, world);
	rc = rc ? rc : record_model(r);
	rc = rc ? rc : lb_runfile_set_attr_str(r->rf, "", "status", "running");
	rc = rc ? rc : lb_runfile_set_attr_str(r->rf, "", "started_at", now);
	/* θ0: the initial parameters, kept for rewinding (lottery-ticket stages). */
	rc = rc ? rc : put_block(r->rf, "init/params", r->model->w, r->model->n_weights);
	rc = rc ? rc : put_tensors(r, "init/weights", r->model->w, r->model->params,
				   r->model->n_params);
	rc = rc ? rc : put_tensors(r, "init/buffers", r->model->buf, r->model->buffers,
				   r->model->n_buffers);
	rc = rc ? rc : record_quant_layers(r);
	rc = rc ? rc : lb_runfile_set_axis(r->rf, "metrics", "epoch");
	rc = rc ? rc : checkpoint(r, 0);
	return rc;
}

/* ---- epochs ---- */

/* Loss and accuracy over ds. Chunks of B_max samples are spread over the
 * ranks (chunk c on rank c mod K); per-chunk sums are combined in chunk order,
 * so the result does not depend on the rank count. */
static int evaluate(struct run *r, const struct lb_dataset *ds, double *loss, double *acc)
{
	struct lb_model *m = r->model;
	int n_chunks = (ds->n + m->B_max - 1) / m->B_max;
	double *st = calloc((size_t)2 * (n_chunks ? n_chunks : 1), sizeof *st);
	int32_t *idx = r->perm; /* reuse: the next epoch redraws its permutation first */
	if (!st)
		return lb_error(LB_ERR_OOM, "out of memory");
	lb_model_quant_begin(m, 0, 0);
	for (int c = r->rank; c < n_chunks; c += r->world) {
		int start = c * m->B_max;
		int B = ds->n - start < m->B_max ? ds->n - start : m->B_max;
		int correct = 0;
		for (int i = 0; i < B; i++)
			idx[i] = start + i;
		lb_data_batch(r->x, r->labels, ds, idx, B, &r->norm, NULL, 0, 0);
		st[2 * c] = lb_model_forward(m, B, r->labels, 0, 0, 0, &correct);
		st[2 * c + 1] = correct;
	}
	if (r->comm != MPI_COMM_NULL && r->world > 1)
		MPI_Allreduce(MPI_IN_PLACE, st, 2 * n_chunks, MPI_DOUBLE, MPI_SUM, r->comm);
	double sum = 0, hits = 0;
	for (int c = 0; c < n_chunks; c++) {
		sum += st[2 * c];
		hits += st[2 * c + 1];
	}
	free(st);
	*loss = ds->n ? sum / ds->n : NAN;
	*acc = ds->n ? hits / ds->n : NAN;
	return LB_OK;
}

static void fmt_eta(char *buf, size_t n, double s)
{
	if (!(s >= 0) || s > 1e7)
		snprintf(buf, n, "?");
	else if (s >= 3600)
		snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
	else
		snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
}

/* Fold the gradient in m->g of local shard j into the pairwise stack; after
 * the last local shard m->g holds the sum over this rank's shards in the
 * fixed binary-tree order ((g0 + g1) + (g2 + g3)) + ... */
static void pairwise_push(struct run *r, int j, int *top)
{
	struct lb_model *m = r->model;
	size_t n = m->n_grad;
	int level = 0;
	while (*top > 0 && r->stack_level[*top - 1] == level) {
		const float *left = r->stack[*top - 1];
		float *g = m->g;
		for (size_t i = 0; i < n; i++)
			g[i] = left[i] + g[i];
		(*top)--;
		level++;
	}
	if (j + 1 < r->count || *top > 0) {
		memcpy(r->stack[*top], m->g, n * sizeof(float));
		r->stack_level[(*top)++] = level;
	}
}

/* Sum m->g over the ranks (deterministic: the fixed tree). */
static int reduce_grad(struct run *r)
{
	struct lb_model *m = r->model;
	if (r->world == 1)
		return LB_OK;
	return r->deterministic ? lb_comm_tree_sum(r->comm, m->g, r->tmp, m->n_grad)
				: lb_comm_allreduce_sum(r->comm, m->g, m->n_grad);
}

/* Forward and backward of shard sh of step s of this epoch: its gradient
 * added to m->g, its batch-norm statistics into its slot of r->bn_stats.
 * Returns the summed loss; *correct (may be NULL) the argmax hits. */
static double shard_pass(struct run *r, int epoch, int s, int sh, int *correct)
{
	const struct lb_config *cfg = r->cfg;
	struct lb_model *m = r->model;
	int B = (int)cfg->train.batch, Bs = r->B_shard;
	const int32_t *idx = r->perm + (size_t)s * B + (size_t)sh * Bs;
	m->bn_stats = r->bn_stats + (size_t)sh * m->bn_stats_floats;
	lb_data_batch(r->x, r->labels, &r->train, idx, Bs, &r->norm, &r->aug, cfg->seed,
		      (uint32_t)epoch);
	double l = lb_model_forward(m, Bs, r->labels, 1, (uint32_t)r->step,
				    (uint64_t)s * B + (uint64_t)sh * Bs, correct);
	lb_model_backward(m, Bs, r->labels, 1.0f / (float)B);
	m->bn_stats = NULL;
	return l;
}

/* Gradient-L1 (methods.md 3.2): m->g holds the reduced cross-entropy
 * gradient g of the step. V = lambda_w sign(g); every shard's R{g} along V
 * (and along S = lambda_a sign(dL/dy), injected into the inputs of the
 * conv/linear layers) is summed like the gradient itself; the optimizer then
 * applies g + R{g}. A rank that holds one shard still has its activations
 * from the first pass; with several shards each one is run again (its
 * forward and backward are the same as in the first pass). */
static int gradl1_step(struct run *r, int epoch, int s)
{
	const struct lb_config *cfg = r->cfg;
	struct lb_model *m = r->model;
	int B = (int)cfg->train.batch, S = (int)cfg->train.shards, Bs = r->B_shard, top = 0, rc;
	size_t n = m->n_weights;
	double reg_w = lb_gradl1_direction(r->gl1_V, m->g, n, r->gl1_lw);
	memcpy(r->gl1_g, m->g, n * sizeof(float));
	memset(r->gl1_R, 0, n * sizeof(float));
	for (int j = 0; j < r->count; j++) {
		int sh = r->first + j;
		uint64_t first = (uint64_t)s * B + (uint64_t)sh * Bs;
		if (r->count > 1)
			shard_pass(r, epoch, s, sh, NULL);
		if (r->deterministic && r->count > 1)
			memset(r->gl1_R, 0, n * sizeof(float));
		r->gl1_shard[sh] = lb_gradl1_hvp(r->gl1, m, Bs, r->labels, 1.0f / (float)B,
						 (uint32_t)r->step, first, r->gl1_V, r->gl1_la,
						 r->gl1_R);
		if (r->deterministic && r->count > 1) {
			memcpy(m->g, r->gl1_R, n * sizeof(float));
			pairwise_push(r, j, &top);
		}
	}
	if (!(r->deterministic && r->count > 1))
		memcpy(m->g, r->gl1_R, n * sizeof(float));
	if (r->world > 1) {
		double t0 = lb_now();
		if ((rc = reduce_grad(r)))
			return rc;
		MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, r->gl1_shard, r->count, MPI_DOUBLE,
			      r->comm);
		r->comm_seconds += lb_now() - t0;
	}
	double reg_a = 0;
	for (int sh = 0; sh < S; sh++)
		reg_a += r->gl1_shard[sh];
	for (size_t i = 0; i < n; i++)
		m->g[i] = r->gl1_g[i] + m->g[i];
	r->reg_sum[0] += reg_w;
	r->reg_sum[1] += reg_a;
	r->penalty_sum += reg_w + reg_a;
	return LB_OK;
}

/* One optimizer step: this rank's shards, then the exchange. */
static int train_step(struct run *r, int epoch, int s, double *loss, double *hits)
{
	const struct lb_config *cfg = r->cfg;
	struct lb_model *m = r->model;
	int S = (int)cfg->train.shards, top = 0, rc;
	lb_model_zero_grad(m);
	lb_model_quant_begin(m, 1, (uint32_t)r->step);
	for (int j = 0; j < r->count; j++) {
		int sh = r->first + j, correct = 0;
		if (r->deterministic && j > 0)
			lb_model_zero_grad(m);
		r->shard_stats[2 * sh] = shard_pass(r, epoch, s, sh, &correct);
		r->shard_stats[2 * sh + 1] = correct;
		if (r->deterministic && r->count > 1)
			pairwise_push(r, j, &top);
	}
	if (r->world > 1) {
		double t0 = lb_now();
		if ((rc = reduce_grad(r)))
			return rc;
		/* every rank gets every shard's loss and BN statistics, in shard order */
		MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, r->shard_stats, 2 * r->count,
			      MPI_DOUBLE, r->comm);
		if (m->bn_stats_floats)
			MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, r->bn_stats,
				      (int)(r->count * m->bn_stats_floats), MPI_FLOAT, r->comm);
		r->comm_seconds += lb_now() - t0;
	}
	if (r->gl1_active && (rc = gradl1_step(r, epoch, s)))
		return rc;
	if (m->bn_stats_floats)
		lb_model_apply_bn_stats(m, r->bn_stats, S);
	r->penalty_sum += lb_model_quant_weights_backward(m);
	for (int sh = 0; sh < S; sh++) {
		*loss += r->shard_stats[2 * sh];
		*hits += r->shard_stats[2 * sh + 1];
	}
	return LB_OK;
}

/* The stop signal all ranks agree on at this step boundary (0: none). One
 * MPI_Allreduce of one int per step over the run's communicator. */
static int stop_signal(struct run *r)
{
	int sig = lb_signal_pending();
	if (r->comm != MPI_COMM_NULL && r->world > 1)
		MPI_Allreduce(MPI_IN_PLACE, &sig, 1, MPI_INT, MPI_MAX, r->comm);
	return sig;
}

/* Sum of squares of the gradient the optimizer is about to apply, in
 * double: finite exactly when every entry is (a float squared is below
 * 1.2e77, so the sum of up to 2^63 of them cannot overflow a double). */
/* One epoch from step r->epoch_step (0, or where a mid-epoch checkpoint
 * stopped, with that epoch's sums restored). Returns LB_ERR_SIGNAL with
 * r->epoch_step and the sums set to the stopping point when a stop signal
 * is agreed at a step boundary, before that step has changed anything. */
static int train_epoch(struct run *r, int epoch, const struct lb_train_opts *opts, double *loss,
		       double *acc, double *seconds, float *lr_out)
{
	const struct lb_config *cfg = r->cfg;
	struct lb_model *m = r->model;
	int B = (int)cfg->train.batch, rc, s0 = r->epoch_step, sig;
	double sum = r->epoch_loss_sum, hits = r->epoch_hits, t0 = lb_now();
	double before = r->epoch_seconds; /* time spent in this epoch before a resume */
	long seen = (long)s0 * B;
	float lr = 0;
	r->comm_seconds = 0;
	r->penalty_sum = r->epoch_penalty_sum;
	r->reg_sum[0] = r->epoch_reg_sum[0];
	r->reg_sum[1] = r->epoch_reg_sum[1];
	r->epoch_step = 0;
	r->epoch_loss_sum = r->epoch_hits = r->epoch_penalty_sum = r->epoch_seconds = 0;
	r->epoch_reg_sum[0] = r->epoch_reg_sum[1] = 0;
	r->gl1_active = r->gl1 && epoch >= (int)cfg->gradl1.start_epoch;
	if (r->gl1)
		lb_gradl1_taps(r->gl1, m, r->gl1_active);
	lb_model_quant_epoch(m, epoch);
	/* BSQ re-quantization at the epoch's start (not again when a mid-epoch
	 * checkpoint resumes inside it); the optimizer starts afresh after it */
	if (s0 == 0 && lb_model_quant_requantize(m, epoch, 0))
		lb_optim_reset(r->opt);
	lb_rng_permutation(r->perm, r->train.n, cfg->seed, LB_RNG_ORDER, (uint32_t)epoch);
	for (int s = s0; s < r->steps_per_epoch; s++) {
		if (opts->crash_at_step && r->step + 1 == opts->crash_at_step) {
			lb_log(LB_LOG_WARN, "simulated crash at step %ld (--debug-crash-at-step)",
			       r->step + 1);
			fflush(NULL);
			_exit(9);
		}
		if (opts->signal_at_step && r->step + 1 == opts->signal_at_step &&
		    r->rank == r->world - 1) {
			lb_log(LB_LOG_WARN, "simulated SIGTERM before step %ld (--debug-signal-at-step)",
			       r->step + 1);
			raise(SIGTERM);
		}
		if ((sig = stop_signal(r))) {
			r->stop_sig = sig;
			r->epoch_step = s;
			r->epoch_loss_sum = sum;
			r->epoch_hits = hits;
			r->epoch_penalty_sum = r->penalty_sum;
			r->epoch_reg_sum[0] = r->reg_sum[0];
			r->epoch_reg_sum[1] = r->reg_sum[1];
			r->epoch_seconds = before + (lb_now() - t0);
			return lb_error(LB_ERR_SIGNAL, "signal %d", sig);
		}
		rc = train_step(r, epoch, s, &sum, &hits);
		if (rc)
			return rc;
		seen += B;
		if (!isfinite(sum))
			return lb_error(LB_ERR_NUMERIC,
					"loss is not finite at epoch %d step %d (diverged; try a lower "
					"optimizer.lr)",
					epoch + 1, s + 1);
		lr = lb_schedule_lr(&cfg->schedule, cfg->optimizer.lr, cfg->train.epochs,
				    (unsigned)epoch, (unsigned)s, (unsigned)r->steps_per_epoch);
		/* the optimizer tests the gradient as it reads it; on inf/NaN the
		 * step's update is applied but nothing of it is kept (the run file
		 * holds copies from the last checkpoint, and the run stops) */
		if (!lb_optim_step(r->opt, m->w, m->g, lr))
			return lb_error(LB_ERR_NUMERIC,
					"gradient norm is not finite at epoch %d step %d (diverged; try "
					"a lower optimizer.lr)",
					epoch + 1, s + 1);
		lb_model_quant_after_step(m);
		r->step++;
		if (r->rank == 0 && !r->snap_rc)
			r->snap_rc = snapshot_if_asked(r);
		if (!opts->quiet && cfg->train.log_every && (s + 1) % cfg->train.log_every == 0) {
			double rate = (double)(seen - (long)s0 * B) / (lb_now() - t0);
			char eta[32];
			double left = (double)(r->steps_per_epoch - s - 1) * B / rate +
				      (double)(cfg->train.epochs - epoch - 1) * r->steps_per_epoch * B / rate;
			fmt_eta(eta, sizeof eta, left);
			lb_log(LB_LOG_INFO,
			       "epoch %d/%u  step %d/%d  loss %.4f  acc %.2f%%  %.0f samples/s  ETA %s",
			       epoch + 1, cfg->train.epochs, s + 1, r->steps_per_epoch, sum / seen,
			       100.0 * hits / seen, rate, eta);
		}
		if (cfg->train.max_steps && r->step >= (long)cfg->train.max_steps)
			break;
	}
	*seconds = before + (lb_now() - t0);
	*loss = seen ? sum / seen : NAN;
	*acc = seen ? hits / seen : NAN;
	*lr_out = lr;
	return LB_OK;
}

static void release_run(struct run *r)
{
	lb_dataset_release(&r->train);
	lb_dataset_release(&r->val);
	lb_dataset_release(&r->test);
	lb_gradl1_free(r->gl1); /* reads the model */
	lb_model_free(r->model);
	lb_optim_free(r->opt);
	lb_runfile_free(r->rf);
	free(r->labels);
	free(r->perm);
	if (r->stack)
		for (int i = 0; r->stack[i]; i++)
			lb_free(r->stack[i]);
	free(r->stack);
	free(r->stack_level);
	lb_free(r->tmp);
	free(r->shard_stats);
	lb_free(r->bn_stats);
	lb_free(r->gl1_V);
	lb_free(r->gl1_g);
	lb_free(r->gl1_R);
	free(r->gl1_shard);
}

static int is_pow2(unsigned v)
{
	return v && !(v & (v - 1));
}

/* Which rank counts can share train.shards shards: in deterministic mode K
 * must be a power of two dividing S with S/K a power of two (so every rank's
 * shards form one subtree of the fixed binary summation tree); in fast mode
 * any K dividing S. */
int lb_train_check_ranks(const struct lb_config *cfg, int K)
{
	unsigned S = cfg->train.shards;
	int det = cfg->train.parallel == LB_PARALLEL_DETERMINISTIC;
	int good = det ? (K == 1 || (is_pow2((unsigned)K) && S % (unsigned)K == 0 &&
				      is_pow2(S / (unsigned)K)))
		       : S % (unsigned)K == 0;
	if (good)
		return LB_OK;
	char list[256];
	size_t len = 0;
	list[0] = '\0';
	for (unsigned k = 1; k <= S && len + 16 < sizeof list; k++) {
		int ok = det ? (k == 1 || (is_pow2(k) && S % k == 0 && is_pow2(S / k))) : S % k == 0;
		if (ok)
			len += (size_t)snprintf(list + len, sizeof list - len, "%s%u", len ? ", " : "", k);
	}
	return lb_error(LB_ERR_CONFIG,
			"train.shards: %u shards cannot be spread over %d ranks in %s mode (rank "
			"counts allowed with %u shards: %s; raise train.shards, e.g. "
			"--set train.shards=%d, keeping train.batch divisible by it)",
			S, K, det ? "deterministic" : "fast", S, list, K);
}

/* Rank 0 opens (or creates) the run file; everyone learns the outcome and,
 * on resume, the checkpoint. Returns 1 when the run is already complete. */
static int open_shared(struct run *r, const struct lb_train_opts *opts)
{
	int64_t st[5] = {0, 0, 0, 0, 0};
	double sums[6] = {0, 0, 0, 0, 0, 0};
	int rc = LB_OK;
	if (r->rank == 0) {
		rc = open_runfile(r, opts, r->world);
		st[0] = rc == 1;
		st[1] = r->epoch0;
		st[2] = r->step;
		st[3] = r->opt->t;
		st[4] = r->epoch_step;
		sums[0] = r->epoch_loss_sum;
		sums[1] = r->epoch_hits;
		sums[2] = r->epoch_penalty_sum;
		sums[3] = r->epoch_seconds;
		sums[4] = r->epoch_reg_sum[0];
		sums[5] = r->epoch_reg_sum[1];
		if (rc == 1)
			rc = LB_OK;
	}
	rc = lb_comm_agree(r->comm, rc);
	if (rc || r->comm == MPI_COMM_NULL || r->world == 1)
		return rc ? rc : (int)st[0];
	MPI_Bcast(st, 5, MPI_INT64_T, 0, r->comm);
	MPI_Bcast(sums, 6, MPI_DOUBLE, 0, r->comm);
	MPI_Bcast(r->path, (int)sizeof r->path, MPI_CHAR, 0, r->comm);
	if (st[0])
		return 1;
	r->epoch0 = (int)st[1];
	r->step = st[2];
	r->opt->t = st[3];
	r->epoch_step = (int)st[4];
	r->epoch_loss_sum = sums[0];
	r->epoch_hits = sums[1];
	r->epoch_penalty_sum = sums[2];
	r->epoch_seconds = sums[3];
	r->epoch_reg_sum[0] = sums[4];
	r->epoch_reg_sum[1] = sums[5];
	if (r->step > 0) {
		struct lb_model *m = r->model;
		rc = lb_comm_bcast_floats(r->comm, m->w, m->n_weights, 0);
		rc = rc ? rc : lb_comm_bcast_floats(r->comm, m->buf, m->n_buffer_floats, 0);
		rc = rc ? rc : lb_comm_bcast_floats(r->comm, r->opt->m, r->opt->n, 0);
		if (!rc && r->opt->v)
			rc = lb_comm_bcast_floats(r->comm, r->opt->v, r->opt->n, 0);
	}
	return rc;
}

static int setup_parallel(struct run *r)
{
	const struct lb_config *cfg = r->cfg;
	struct lb_model *m = r->model;
	int S = (int)cfg->train.shards;
	r->deterministic = cfg->train.parallel == LB_PARALLEL_DETERMINISTIC;
	r->count = S / r->world;
	r->first = r->rank * r->count;
	r->shard_stats = calloc((size_t)2 * S, sizeof *r->shard_stats);
	r->bn_stats = lb_alloc(((size_t)S * m->bn_stats_floats + 1) * sizeof(float));
	if (!r->shard_stats || !r->bn_stats)
		return lb_error(LB_ERR_OOM, "out of memory");
	if (r->deterministic && r->count > 1) {
		int depth = 1;
		while ((1 << (depth - 1)) < r->count)
			depth++;
		r->stack = calloc((size_t)depth + 1, sizeof *r->stack);
		r->stack_level = calloc((size_t)depth + 1, sizeof *r->stack_level);
		if (!r->stack || !r->stack_level)
			return lb_error(LB_ERR_OOM, "out of memory");
		for (int i = 0; i < depth; i++)
			if (!(r->stack[i] = lb_alloc(m->n_grad * sizeof(float))))
				return lb_error(LB_ERR_OOM, "out of memory for the gradient tree");
	}
	if (r->world > 1 && r->deterministic &&
	    !(r->tmp = lb_alloc(m->n_grad * sizeof(float))))
		return lb_error(LB_ERR_OOM, "out of memory");
	if (lb_gradl1_on(&cfg->gradl1)) {
		int rc = lb_gradl1_new(m, cfg->gradl1.hvp == LB_HVP_FD, cfg->gradl1.fd_eps, &r->gl1);
		if (rc)
			return lb_error_prefix(rc, "%s", "gradl1");
		lb_gradl1_lambdas(&cfg->gradl1, &r->gl1_lw, &r->gl1_la);
		size_t nb = m->n_weights * sizeof(float);
		r->gl1_V = lb_alloc(nb);
		r->gl1_g = lb_alloc(nb);
		r->gl1_R = lb_alloc(nb);
		r->gl1_shard = calloc((size_t)S, sizeof *r->gl1_shard);
		if (!r->gl1_V || !r->gl1_g || !r->gl1_R || !r->gl1_shard)
			return lb_error(LB_ERR_OOM, "out of memory for Gradient-L1");
	}
	return LB_OK;
}

static void warn_oversubscription(struct run *r)
{
	MPI_Comm node;
	int local = 1;
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned threads = r->cfg->train.threads ? r->cfg->train.threads : 1;
	if (r->comm == MPI_COMM_NULL)
		return;
	MPI_Comm_split_type(r->comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
	MPI_Comm_size(node, &local);
	MPI_Comm_free(&node);
	if (cores > 0 && (long)local * threads > cores)
		lb_log(LB_LOG_WARN,
		       "%d ranks x %u BLAS threads on a node with %ld cores: oversubscribed "
		       "(lower train.threads)",
		       local, threads, cores);
}

/* Copy the tensors called prefix/<name> of rf into the block; *missing
 * counts the quantizer entries the file does not have. */
static int load_named(const struct lb_runfile *rf, const char *file, const char *prefix,
		      float *block, const struct lb_param *ps, int n, int *missing)
{
	char path[256];
	for (int i = 0; i < n; i++) {
		enum lb_dtype dt;
		int rank;
		uint64_t dims[4];
		snprintf(path, sizeof path, "%s/%s", prefix, ps[i].name);
		const void *v = lb_runfile_get_array(rf, path, &dt, &rank, dims);
		int quant = (ps[i].flags & LB_PARAM_QUANT) || strstr(ps[i].name, "q.state") ||
			    strstr(ps[i].name, "q.ftstate");
		if (!v) {
			if (quant) {
				(*missing)++;
				continue;
			}
			return lb_error(LB_ERR_CONFIG,
					"%s: no tensor '%s' to start from (the model of that run "
					"differs from this one)",
					file, path);
		}
		size_t count = 1;
		for (int k = 0; k < rank; k++)
			count *= dims[k];
		if (dt != LB_DT_F32 || count != ps[i].count)
			return lb_error(LB_ERR_CONFIG,
					"%s: tensor '%s' has %zu values, this model's has %zu (the "
					"models differ)",
					file, path, (size_t)count, ps[i].count);
		memcpy(block + ps[i].offset, v, count * sizeof(float));
	}
	return LB_OK;
}

static int count_array(const char *path, enum lb_dtype dt, int rank, const uint64_t *dims,
		       const void *data, void *ctx)
{
	(void)path, (void)dt, (void)rank, (void)dims, (void)data;
	++*(int *)ctx;
	return 0;
}

/* Stage inputs (train.h): starting parameters from another run file, and
 * weight bits fixed from a learned-bits run. Every rank reads the files. */
static int stage_inputs(struct run *r, const struct lb_train_opts *opts)
{
	struct lb_model *m = r->model;
	struct lb_runfile *rf = NULL;
	int rc = LB_OK;
	if (opts->init_from) {
		int final = opts->init_snapshot == LB_SNAPSHOT_FINAL, missing = 0;
		char wpath[96], bpath[96], what[64];
		if (opts->init_snapshot == LB_SNAPSHOT_STEP) {
			snprintf(wpath, sizeof wpath, "snapshots/step_%ld/weights", opts->init_step);
			snprintf(bpath, sizeof bpath, "snapshots/step_%ld/buffers", opts->init_step);
			snprintf(what, sizeof what, "step-%ld", opts->init_step);
		} else {
			snprintf(wpath, sizeof wpath, "%s/weights", final ? "final" : "init");
			snprintf(bpath, sizeof bpath, "%s/buffers", final ? "final" : "init");
			snprintf(what, sizeof what, "%s", final ? "final" : "initial");
		}
		rc = lb_runfile_read(opts->init_from, &rf);
		if (rc)
			return lb_error_prefix(rc, "cannot start from '%s'", opts->init_from);
		const char *status = lb_runfile_get_attr_str(rf, "", "status");
		if (final && (!status || strcmp(status, "done") != 0)) {
			rc = lb_error(LB_ERR_STATE,
				      "%s: the run is not done (status %s); its final parameters do "
				      "not exist yet",
				      opts->init_from, status ? status : "missing");
			goto out;
		}
		int arrays = 0;
		if (opts->init_snapshot == LB_SNAPSHOT_STEP)
			lb_runfile_visit_arrays(rf, wpath, count_array, &arrays);
		if (opts->init_snapshot == LB_SNAPSHOT_STEP && !arrays) {
			rc = lb_error(LB_ERR_STATE,
				      "%s: no snapshot at step %ld (the run keeps the steps in its "
				      "train.snapshot_steps%s)",
				      opts->init_from, opts->init_step,
				      status && strcmp(status, "done") ? ", once it reaches them" : "");
			goto out;
		}
		rc = load_named(rf, opts->init_from, wpath, m->w, m->params, m->n_params, &missing);
		rc = rc ? rc : load_named(rf, opts->init_from, bpath, m->buf, m->buffers, m->n_buffers,
					  &missing);
		if (rc)
			goto out;
		/* an FP (or other-quantizer) run, or one whose grids were sized for
		 * other bits: initialise the quantizers anew from the loaded weights */
		const char *wb = lb_runfile_get_attr_str(rf, "config_flat", "quant.weights.bits");
		const char *ab = lb_runfile_get_attr_str(rf, "config_flat", "quant.activations.bits");
		int other_bits = (wb && (unsigned)atoi(wb) != r->cfg->quant.weights.bits) ||
				 (ab && (unsigned)atoi(ab) != r->cfg->quant.activations.bits);
		if (missing || other_bits) {
			if (other_bits)
				lb_log(LB_LOG_INFO, "%s was quantized at W%s/A%s: quantizer grids and "
				       "ranges are initialised anew for W%u/A%u", opts->init_from,
				       wb ? wb : "?", ab ? ab : "?", r->cfg->quant.weights.bits,
				       r->cfg->quant.activations.bits);
			lb_model_quant_init_params(m);
			/* only what the run lacks is new: load the rest again (e.g. a BSQ
			 * fine-tune keeps the step its BSQ run ended with) */
			if (!other_bits) {
				rc = load_named(rf, opts->init_from, wpath, m->w, m->params,
						m->n_params, &missing);
				rc = rc ? rc : load_named(rf, opts->init_from, bpath, m->buf,
							  m->buffers, m->n_buffers, &missing);
				if (rc)
					goto out;
			}
		}
		lb_runfile_free(rf);
		rf = NULL;
		lb_log(LB_LOG_INFO, "starting from the %s parameters of %s", what, opts->init_from);
	}
	if (opts->bits_from) {
		enum lb_dtype dt;
		int rank;
		uint64_t dims[4];
		rc = lb_runfile_read(opts->bits_from, &rf);
		if (rc)
			return lb_error_prefix(rc, "cannot read learned bits from '%s'", opts->bits_from);
		const int64_t *v = lb_runfile_get_array(rf, "quant/learned_w_bits", &dt, &rank, dims);
		if (!v || dt != LB_DT_I64 || rank != 1) {
			rc = lb_error(LB_ERR_CONFIG, "%s: no quant/learned_w_bits (not a quantized run)",
				      opts->bits_from);
			goto out;
		}
		int n = (int)dims[0], b[256];
		if (n > 256)
			n = 256;
		for (int i = 0; i < n; i++)
			b[i] = (int)v[i];
		if (!m->q) {
			rc = lb_error(LB_ERR_CONFIG, "bits_from needs a quantized model (set quant.weights)");
			goto out;
		}
		rc = lb_model_quant_fix_bits(m, b, (int)dims[0]);
		if (rc) {
			lb_error_prefix(rc, "%s", opts->bits_from);
			goto out;
		}
	}
out:
	lb_runfile_free(rf);
	return rc;
}

/* Initialise the activation quantizers from the first B_max training
 * samples (index order, no augmentation): the same batch on every rank. */
static void calibrate(struct run *r)
{
	struct lb_model *m = r->model;
	if (!m->q || !m->q->n_a)
		return;
	int B = r->train.n < m->B_max ? r->train.n : m->B_max;
	for (int i = 0; i < B; i++)
		r->perm[i] = i;
	lb_data_batch(r->x, r->labels, &r->train, r->perm, B, &r->norm, NULL, 0, 0);
	lb_model_quant_calibrate(m, B);
}

/* ---- stopping early ---- */

static const char *signal_name(int sig)
{
	switch (sig) {
	case SIGTERM:
		return "SIGTERM";
	case SIGUSR1:
		return "SIGUSR1";
	case SIGUSR2:
		return "SIGUSR2";
	default:
		return "a signal";
	}
}

/* Tests (--debug-signal-in-checkpoint): SIGTERM to this process every
 * 100 us from a POSIX timer, until timer_delete. */
static int arm_signal_storm(timer_t *t)
{
	struct sigevent ev;
	struct itimerspec its = {{0, 100000}, {0, 100000}};
	memset(&ev, 0, sizeof ev);
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = SIGTERM;
	if (timer_create(CLOCK_MONOTONIC, &ev, t) < 0)
		return -1;
	if (timer_settime(*t, 0, &its, NULL) < 0) {
		timer_delete(*t);
		return -1;
	}
	return 0;
}

/* A stop signal was agreed before step r->epoch_step of epoch `epoch`:
 * rank 0 saves the state at exactly that step with status "preempted" (an
 * atomic rewrite: a failure leaves the previous checkpoint in place).
 * Collective over r->comm. Returns LB_ERR_SIGNAL when saved. */
static int preempt(struct run *r, int epoch, int sig, const struct lb_train_opts *opts)
{
	int rc = LB_OK;
	if (r->rank == 0) {
		char now[64];
		timer_t storm;
		int storming = 0;
		unsigned long seen = lb_signal_count();
		iso_now(now, sizeof now);
		rc = lb_runfile_set_attr_str(r->rf, "", "status", "preempted");
		rc = rc ? rc : lb_runfile_set_attr_str(r->rf, "", "preempted_at", now);
		rc = rc ? rc : lb_runfile_set_attr_str(r->rf, "", "preempted_by", signal_name(sig));
		if (!rc && opts->signal_in_checkpoint)
			storming = arm_signal_storm(&storm) == 0;
		rc = rc ? rc : checkpoint(r, epoch);
		if (storming) {
			timer_delete(storm);
			lb_log(LB_LOG_WARN,
			       "%lu more signals arrived while the checkpoint was written "
			       "(--debug-signal-in-checkpoint)",
			       lb_signal_count() - seen);
		}
	}
	rc = lb_comm_agree(r->comm, rc);
	if (rc)
		return lb_error_prefix(rc, "stopped by %s but the checkpoint was not saved (the "
				       "previous one stands)", signal_name(sig));
	return lb_error(LB_ERR_SIGNAL,
			"stopped by %s at epoch %d, step %d of %d (global step %ld); state saved "
			"in '%s'",
			signal_name(sig), epoch + 1, r->epoch_step, r->steps_per_epoch, r->step,
			r->path);
}

/* A non-finite loss or gradient at epoch `epoch`: the run file keeps the
 * metrics of the completed epochs (the last good ones) and the last
 * checkpoint, and says where it diverged. Rank 0. */
static void mark_diverged(struct run *r, int epoch)
{
	char msg[1024];
	snprintf(msg, sizeof msg, "%s", lb_error_message());
	int rc = lb_runfile_set_attr_str(r->rf, "", "status", "diverged");
	rc = rc ? rc : lb_runfile_set_attr_str(r->rf, "", "error", msg);
	rc = rc ? rc : lb_runfile_set_attr_i64(r->rf, "", "diverged_epoch", epoch + 1);
	rc = rc ? rc : lb_runfile_set_attr_i64(r->rf, "", "diverged_step", r->step + 1);
	rc = rc ? rc : lb_runfile_set_attr_i64(r->rf, "", "last_good_epoch", epoch);
	rc = rc ? rc : lb_runfile_write(r->rf, r->path);
	if (rc)
		lb_log(LB_LOG_WARN, "%s: could not record the divergence: %s", r->path,
		       lb_error_message());
	lb_error(LB_ERR_NUMERIC, "%s", msg);
}

static int train_run(const struct lb_config *cfg, const struct lb_train_opts *opts, MPI_Comm comm,
		     struct lb_train_result *res)
{
	struct run r;
	int rc;
	memset(&r, 0, sizeof r);
	memset(res, 0, sizeof *res);
	r.cfg = cfg;
	r.comm = comm;
	r.world = 1;
	if (comm != MPI_COMM_NULL) {
		MPI_Comm_size(comm, &r.world);
		MPI_Comm_rank(comm, &r.rank);
	}
	rc = lb_comm_same_u64(comm, lb_config_hash(cfg), "configurations (config hash)");
	if (rc)
		return rc;
	rc = lb_train_check_ranks(cfg, r.world);
	if (rc)
		return rc;
	lb_blas_set_threads(cfg->train.threads ? (int)cfg->train.threads : 1);
	if (r.world > 1)
		warn_oversubscription(&r);
	rc = lb_comm_agree(comm, load_data(&r));
	if (rc)
		goto out;
	r.B_shard = (int)(cfg->train.batch / cfg->train.shards);
	r.steps_per_epoch = r.train.n / (int)cfg->train.batch;
	if (!rc && cfg->train.n_snapshot_steps) {
		long total = (long)cfg->train.epochs * r.steps_per_epoch;
		unsigned last = cfg->train.snapshot_steps[cfg->train.n_snapshot_steps - 1];
		if (cfg->train.max_steps && (long)cfg->train.max_steps < total)
			total = (long)cfg->train.max_steps;
		if ((long)last > total)
			rc = lb_error(LB_ERR_CONFIG,
				      "train.snapshot_steps: step %u is after the last step (%ld: %u "
				      "epochs of %d steps)",
				      last, total, cfg->train.epochs, r.steps_per_epoch);
		rc = lb_comm_agree(comm, rc);
		if (rc)
			goto out;
	}
	rc = lb_model_build(cfg, r.train.H, r.train.W, r.train.C, 10, r.B_shard,
			    (int)cfg->train.eval_batch, &r.model);
	if (!rc) {
		lb_model_init_params(r.model, cfg->model.init, lb_rng_derive(cfg->seed, 1));
		r.model->seed = lb_rng_derive(cfg->seed, 2);
		if (r.model->q)
			r.model->q->seed = lb_rng_derive(cfg->seed, 3);
		rc = stage_inputs(&r, opts);
		if (!rc)
			lb_model_quant_setup(r.model);
	}
	if (!rc && r.model->q) {
		r.model->q->epochs = (int)cfg->train.epochs;
		r.model->q->steps_per_epoch = r.steps_per_epoch;
	}
	if (!rc)
		rc = lb_optim_new(&cfg->optimizer, r.model, &r.opt);
	if (!rc) {
		int nperm = r.train.n > r.model->B_max ? r.train.n : r.model->B_max;
		r.perm = malloc((size_t)nperm * sizeof *r.perm);
		r.labels = malloc((size_t)r.model->B_max * sizeof *r.labels);
		if (!r.perm || !r.labels)
			rc = lb_error(LB_ERR_OOM, "out of memory");
	}
	if (!rc)
		rc = setup_parallel(&r);
	rc = lb_comm_agree(comm, rc);
	if (rc)
		goto out;
	r.x = lb_model_input(r.model);
	calibrate(&r);
	rc = open_shared(&r, opts);
	if (rc == 1) {
		snprintf(res->path, sizeof res->path, "%s", r.path);
		res->already_done = 1;
		double v;
		if (r.rf && !lb_runfile_get_attr_f64(r.rf, "", "final_test_acc", &v))
			res->test_acc = v;
		rc = LB_OK;
		goto out;
	}
	if (rc)
		goto out;
	snprintf(res->path, sizeof res->path, "%s", r.path);
	if (!opts->quiet)
		lb_model_log_summary(r.model);
	lb_log(LB_LOG_INFO,
	       "training %s on %d samples (%d test%s), %d steps/epoch, %d rank%s (%s), run file %s",
	       lb_arch_name(cfg->model.arch), r.train.n, r.test.n,
	       r.val.n ? ", validation split" : "", r.steps_per_epoch, r.world,
	       r.world > 1 ? "s" : "", r.deterministic ? "deterministic" : "fast", r.path);
	double test_loss = NAN, test_acc = NAN;
	for (int e = r.epoch0; e < (int)cfg->train.epochs; e++) {
		double tl, ta, sec, vl = NAN, va = NAN;
		float lr = 0;
		rc = train_epoch(&r, e, opts, &tl, &ta, &sec, &lr);
		if (rc == LB_ERR_NUMERIC && r.rank == 0)
			mark_diverged(&r, e);
		if (rc == LB_ERR_SIGNAL)
			rc = preempt(&r, e, r.stop_sig, opts);
		if (rc)
			goto out;
		int last = e + 1 == (int)cfg->train.epochs ||
			   (cfg->train.max_steps && r.step >= (long)cfg->train.max_steps);
		if (last) /* BSQ's final re-quantization: the weights evaluated and kept */
			lb_model_quant_requantize(r.model, e + 1, 1);
		double te0 = lb_now();
		rc = evaluate(&r, &r.test, &test_loss, &test_acc);
		if (!rc && r.val.n)
			rc = evaluate(&r, &r.val, &vl, &va);
		if (rc)
			goto out;
		double eval_s = lb_now() - te0;
		/* samples of this epoch's steps (fewer than an epoch when train.max_steps ends it) */
		double row = e + 1,
		       steps_done = (double)(r.step - (long)e * r.steps_per_epoch) * cfg->train.batch;
		double lrd = lr, rate = steps_done / sec, comm_s = r.comm_seconds;
		lb_log(LB_LOG_INFO,
		       "epoch %d/%u: train loss %.4f acc %.2f%% | test loss %.4f acc %.2f%% | %.0f "
		       "samples/s, %.1f s",
		       e + 1, cfg->train.epochs, tl, 100 * ta, test_loss, 100 * test_acc, rate, sec);
		if (r.val.n)
			lb_log(LB_LOG_INFO, "epoch %d/%u: validation loss %.4f acc %.2f%%", e + 1,
			       cfg->train.epochs, vl, 100 * va);
		if (r.rank == 0) {
			rc = r.snap_rc ? r.snap_rc : lb_runfile_append(r.rf, "metrics/epoch", &row, 1);
			rc = rc ? rc : lb_runfile_append(r.rf, "metrics/train_loss", &tl, 1);
			rc = rc ? rc : lb_runfile_append(r.rf, "metrics/train_acc", &ta, 1);
			rc = rc ? rc : lb_runfile_append(r.rf, "metrics/test_loss", &test_loss, 1);
			rc = rc ? rc : lb_runfile_append(r.rf, "metrics/test_acc", &test_acc, 1);
			if (r.val.n) {
				rc = rc ? rc : lb_runfile_append(r.rf, "metrics/val_loss", &vl, 1);
				rc = rc ? rc : lb_runfile_append(r.rf, "metrics/val_acc", &va, 1);
			}
			rc = rc ? rc : lb_runfile_append(r.rf, "metrics/lr", &lrd, 1);
			rc = rc ? rc : lb_runfile_append(r.rf, "metrics/epoch_time_s", &sec, 1);
			rc = rc ? rc : lb_runfile_append(r.rf, "metrics/eval_time_s", &eval_s, 1);
			rc = rc ? rc : lb_runfile_append(r.rf, "metrics/train_samples_per_s", &rate, 1);
			rc = rc ? rc : lb_runfile_append(r.rf, "metrics/comm_time_s", &comm_s, 1);
			rc = rc ? rc : lb_runfile_append(r.rf, "metrics/step", &(double){(double)r.step}, 1);
			rc = rc ? rc : record_quant_epoch(&r, r.penalty_sum / (r.steps_per_epoch ? r.steps_per_epoch : 1));
			rc = rc ? rc : record_gradl1_epoch(&r, e);
			if (!rc && last) {
				char now[64];
				iso_now(now, sizeof now);
				rc = put_tensors(&r, "final/weights", r.model->w, r.model->params,
						 r.model->n_params);
				rc = rc ? rc : put_tensors(&r, "final/buffers", r.model->buf,
							   r.model->buffers, r.model->n_buffers);
				rc = rc ? rc : lb_runfile_set_attr_f64(r.rf, "", "final_test_acc", test_acc);
				rc = rc ? rc : lb_runfile_set_attr_f64(r.rf, "", "final_test_loss", test_loss);
				rc = rc ? rc : lb_runfile_set_attr_str(r.rf, "", "status", "done");
				rc = rc ? rc : lb_runfile_set_attr_str(r.rf, "", "finished_at", now);
			}
			if (!rc && (last || (e + 1) % (int)cfg->train.checkpoint_every == 0))
				rc = checkpoint(&r, e + 1);
		}
		rc = lb_comm_agree(comm, rc);
		if (rc)
			goto out;
		res->epochs_done = e + 1;
		if (last)
			break;
	}
	res->test_acc = test_acc;
	res->test_loss = test_loss;
out:
	release_run(&r);
	return rc;
}

int lb_train_run(const struct lb_config *cfg, const struct lb_train_opts *opts, MPI_Comm comm,
		 struct lb_train_result *res)
{
	lb_signal_install();
	int rc = train_run(cfg, opts, comm, res);
	lb_signal_restore();
	return rc;
}

int lb_train_load_data(const struct lb_config *cfg, struct lb_dataset *train,
		       struct lb_dataset *val, struct lb_dataset *test, struct lb_normalize *norm)
{
	struct run r;
	memset(&r, 0, sizeof r);
	r.cfg = cfg;
	int rc = load_data(&r);
	if (rc) {
		lb_dataset_release(&r.train);
		lb_dataset_release(&r.val);
		lb_dataset_release(&r.test);
		return rc;
	}
	*train = r.train;
	*val = r.val;
	*test = r.test;
	*norm = r.norm;
	return LB_OK;
}
