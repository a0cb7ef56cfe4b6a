/* SPDX-License-Identifier: MIT
 * Fuzz harness: the sweep-spec loader (lb_sweep_load_string, sweeps/spec.h)
 * and, for specs of at most FUZZ_MAX_TRIALS trials, their expansion
 * (lb_sweep_expand, which loads every trial's config). base_file is resolved
 * in a scratch folder that holds one valid config, base.yaml. Invariants
 * held: a refusal carries a message; an expanded plan has as many trials as
 * lb_sweep_count says, each with a config. */
#include "fuzz.h"

#include "config.h"
#include "err.h"
#include "sweeps/spec.h"

#define FUZZ_MAX_TRIALS 32

static const char base_yaml[] =
	"model:\n  arch: lenet5-caffe\n"
	"data:\n  dataset: fashion-mnist\n  train_limit: 256\n  test_limit: 100\n"
	"train:\n  epochs: 1\n  batch: 32\n"
	"optimizer:\n  kind: sgd\n  lr: 0.02\n  momentum: 0.9\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *dir;
	char *text = fuzz_text(data, size);
	struct lb_sweep *sw = NULL;
	struct lb_sweep_plan *plan = NULL;
	unsigned long long count;
	int rc;

	if (!dir) {
		fuzz_write(fuzz_path(0, "base.yaml"), (const uint8_t *)base_yaml,
			   sizeof base_yaml - 1);
		dir = fuzz_dir();
	}
	rc = lb_sweep_load_string(text, "fuzz.yaml", dir, &sw);
	if (rc != LB_OK) {
		FUZZ_ASSERT(sw == NULL, "a refused spec is returned");
		FUZZ_ASSERT(lb_error_message()[0], "refusal %d without a message", rc);
		goto out;
	}
	FUZZ_ASSERT(sw != NULL && sw->spec != NULL, "LB_OK without a spec");
	count = lb_sweep_count(sw);
	if (count == 0 || count > FUZZ_MAX_TRIALS)
		goto out;
	rc = lb_sweep_expand(sw, &plan);
	if (rc != LB_OK) {
		FUZZ_ASSERT(plan == NULL, "a refused plan is returned");
		FUZZ_ASSERT(lb_error_message()[0], "expansion refused (%d) without a message", rc);
		goto out;
	}
	FUZZ_ASSERT(plan->n_trials == count, "plan has %u trials, lb_sweep_count says %llu",
		    plan->n_trials, count);
	for (unsigned i = 0; i < plan->n_trials; i++)
		FUZZ_ASSERT(plan->trials[i].config != NULL, "trial %u has no config", i);
out:
	lb_sweep_plan_free(plan);
	lb_sweep_free(sw);
	free(text);
	lb_error_clear();
	return 0;
}
