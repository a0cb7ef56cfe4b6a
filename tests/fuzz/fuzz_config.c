/* SPDX-License-Identifier: MIT
 * Fuzz harness: the training-config loader (lb_config_load_string,
 * core/config.h). Input: YAML text, optionally followed by a NUL byte and
 * `--set` overrides, one per line. Beyond "no crash, no leak" it holds the
 * loader's documented invariants: a refusal carries a message, and a loaded
 * config dumps to YAML that loads again to the same hash and the same dump. */
#include "fuzz.h"

#include "config.h"
#include "err.h"

#define FUZZ_MAX_SETS 8

static int count_leaf(const char *key, const char *value, void *ctx)
{
	(void)key;
	(void)value;
	++*(unsigned *)ctx;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_text(data, size);
	const char *sets[FUZZ_MAX_SETS];
	int n_sets = 0;
	struct lb_config *cfg = NULL, *again = NULL;
	char *dump = NULL, *dump2 = NULL;
	size_t yaml_len = strlen(text);
	unsigned leaves = 0;
	int rc;

	/* After the first NUL: overrides, one per line. */
	for (char *p = text + yaml_len + 1; yaml_len < size && p <= text + size &&
	     n_sets < FUZZ_MAX_SETS;) {
		char *nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		sets[n_sets++] = p;
		if (!nl)
			break;
		p = nl + 1;
	}
	rc = lb_config_load_string(text, "fuzz.yaml", sets, n_sets, &cfg);
	if (rc != LB_OK) {
		FUZZ_ASSERT(cfg == NULL, "a refused config is returned");
		FUZZ_ASSERT(lb_error_message()[0], "refusal %d without a message", rc);
		goto out;
	}
	FUZZ_ASSERT(cfg != NULL, "LB_OK without a config");
	rc = lb_config_dump(cfg, &dump);
	FUZZ_ASSERT(rc == LB_OK, "cannot dump a loaded config: %s", lb_error_message());
	rc = lb_config_load_string(dump, "dump.yaml", NULL, 0, &again);
	FUZZ_ASSERT(rc == LB_OK, "the dump of a loaded config is refused: %s\n--- dump:\n%s",
		    lb_error_message(), dump);
	FUZZ_ASSERT(lb_config_hash(cfg) == lb_config_hash(again),
		    "dump/load changes the config hash\n--- dump:\n%s", dump);
	rc = lb_config_dump(again, &dump2);
	FUZZ_ASSERT(rc == LB_OK && !strcmp(dump, dump2),
		    "dump is not a fixed point\n--- first:\n%s--- second:\n%s", dump,
		    dump2 ? dump2 : "(none)");
	lb_config_flatten(cfg, count_leaf, &leaves);
	FUZZ_ASSERT(leaves > 0, "a loaded config flattens to no keys");
out:
	free(dump2);
	free(dump);
	lb_config_free(again);
	lb_config_free(cfg);
	free(text);
	lb_error_clear();
	return 0;
}
