/* SPDX-License-Identifier: MIT
 * The dummy trial backend (see backend_dummy.h). */
#include "backend_dummy.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "analysis/runfile.h"
#include "err.h"
#include "util.h"

enum lb_trial_state lb_dummy_trial(int index, MPI_Comm group, void *ctx, char *msg,
				   size_t msg_len)
{
	const struct lb_dummy_cfg *c = ctx;
	struct timespec ts = {(time_t)c->sleep_s, (long)((c->sleep_s - (time_t)c->sleep_s) * 1e9)};
	int one = 1, n = 0, grank;
	nanosleep(&ts, NULL);
	MPI_Allreduce(&one, &n, 1, MPI_INT, MPI_SUM, group);
	MPI_Comm_rank(group, &grank);
	if (grank == 0 && c->runs)
		c->runs[index]++;
	if (index == c->fail_index) {
		snprintf(msg, msg_len, "injected failure in trial %d", index);
		return LB_TRIAL_FAILED;
	}
	if (index == c->diverge_index) {
		snprintf(msg, msg_len, "loss is not finite (injected) in trial %d", index);
		return LB_TRIAL_DIVERGED;
	}
	snprintf(msg, msg_len, "ok: %d ranks, synthetic accuracy %.3f", n, 0.5 + 0.001 * index);
	return LB_TRIAL_DONE;
}

int lb_dummy_write_run(const char *path, int index, enum lb_trial_state state, const char *msg)
{
	struct lb_runfile *old = NULL, *rf = NULL;
	struct stat st;
	int64_t attempts = 0;
	double acc = 0.5 + 0.001 * index, loss = 1.0 - 0.001 * index, epoch = 1, t = 0.01;
	char dir[4096];
	int rc;
	if (stat(path, &st) == 0 && lb_runfile_read(path, &old) == LB_OK)
		lb_runfile_get_attr_i64(old, "", "dummy_attempts", &attempts);
	lb_runfile_free(old);
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash) {
		*slash = '\0';
		if (lb_mkdir_p(dir) != 0)
			return lb_error(LB_ERR_IO, "cannot create folder '%s': %s", dir, strerror(errno));
	}
	const char *status = state == LB_TRIAL_DONE ? "done"
			     : state == LB_TRIAL_DIVERGED ? "diverged" : "running";
	if ((rc = lb_runfile_new(&rf)))
		return rc;
	rc = lb_runfile_set_attr_str(rf, "", "status", status);
	rc = rc ? rc : lb_runfile_set_attr_str(rf, "", "backend", "dummy");
	rc = rc ? rc : lb_runfile_set_attr_i64(rf, "", "dummy_attempts", attempts + 1);
	if (!rc && state == LB_TRIAL_DIVERGED)
		rc = lb_runfile_set_attr_str(rf, "", "error", msg ? msg : "");
	rc = rc ? rc : lb_runfile_set_axis(rf, "metrics", "epoch");
	rc = rc ? rc : lb_runfile_append(rf, "metrics/epoch", &epoch, 1);
	rc = rc ? rc : lb_runfile_append(rf, "metrics/test_acc", &acc, 1);
	rc = rc ? rc : lb_runfile_append(rf, "metrics/test_loss", &loss, 1);
	rc = rc ? rc : lb_runfile_append(rf, "metrics/epoch_time_s", &t, 1);
	if (!rc && state == LB_TRIAL_DONE) {
		rc = lb_runfile_set_attr_f64(rf, "", "final_test_acc", acc);
		rc = rc ? rc : lb_runfile_set_attr_f64(rf, "", "final_test_loss", loss);
	}
	rc = rc ? rc : lb_runfile_write(rf, path);
	lb_runfile_free(rf);
	return rc;
}
