/* SPDX-License-Identifier: MIT
 * Fuzz harness: the HDF5 run-file reader (lb_runfile_read_kind,
 * analysis/runfile.h, either kind) on the input written to a scratch file.
 * A file that loads is written back
 * (lb_runfile_write) and read again: the two images must be equal
 * (lb_runfile_diff). Invariant held: a refusal carries a message.
 * libhdf5 1.10.8 crashes on some damaged files (corpus/runfile/hdf5-*); the
 * reader's integrity seal (runfile.h) refuses them before libhdf5 opens them,
 * so random damage stops at the seal check (docs/testing.md, Fuzzing). */
#include "fuzz.h"

#include <hdf5.h>

#include "analysis/runfile.h"
#include "err.h"

/* libhdf5 (Debian 12: 1.10.8) leaks object-header blocks on some error paths
 * while opening a corrupt file (H5Fopen -> H5G_mkroot -> H5O_protect ->
 * H5FL_blk_malloc, 200 bytes a time). LeakSanitizer reads these suppressions
 * (libFuzzer and the ASan replay alike): only leaks allocated inside libhdf5
 * are ignored; lowbit's own allocations have no libhdf5 frame. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libhdf5\n";
}

static int visit(const char *path, enum lb_dtype dt, int rank, const uint64_t *dims,
		 const void *values, void *ctx)
{
	(void)path;
	(void)dt;
	(void)values;
	FUZZ_ASSERT(rank >= 1 && rank <= 4, "array of rank %d", rank);
	for (int i = 0; i < rank; i++)
		(void)dims[i];
	++*(unsigned *)ctx;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = fuzz_path(0, "in.h5"), *back = fuzz_path(1, "back.h5");
	struct lb_runfile *rf = NULL, *rf2 = NULL;
	unsigned arrays = 0;
	int rc;

	fuzz_write(in, data, size);
	rc = lb_runfile_read_kind(in, NULL, &rf);
	if (rc != LB_OK) {
		FUZZ_ASSERT(rf == NULL, "a refused file is returned");
		FUZZ_ASSERT(lb_error_message()[0], "refusal %d without a message", rc);
		goto out;
	}
	lb_runfile_visit_arrays(rf, "", visit, &arrays);
	rc = lb_runfile_write(rf, back);
	if (rc == LB_OK) {
		rc = lb_runfile_read_kind(back, NULL, &rf2);
		FUZZ_ASSERT(rc == LB_OK, "a file written from a loaded image is refused: %s",
			    lb_error_message());
		rc = lb_runfile_diff(rf, rf2);
		FUZZ_ASSERT(rc == LB_OK, "write/read changes the image: %s", lb_error_message());
	}
out:
	lb_runfile_free(rf2);
	lb_runfile_free(rf);
	/* HDF5 keeps freed blocks on its free lists until H5close; hand them
	 * back so that libFuzzer's per-input leak check sees only real leaks. */
	H5garbage_collect();
	lb_error_clear();
	return 0;
}
