/* SPDX-License-Identifier: MIT
 * Helpers shared by the fuzz harnesses (tests/fuzz/fuzz_*.c): a private
 * scratch folder for the readers that take a path, and a NUL-terminated copy
 * of the input for the YAML loaders. Header-only so that each harness is one
 * translation unit, built either by clang with -fsanitize=fuzzer (make
 * fuzz-smoke) or with replay.c as a plain program (make check). */
#ifndef LB_FUZZ_H
#define LB_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the code under test does not hold: report it and abort, so
 * that libFuzzer records the input as a crash and replay exits nonzero. */
#define FUZZ_ASSERT(cond, ...)                                                         \
	do {                                                                           \
		if (!(cond)) {                                                         \
			fprintf(stderr, "%s:%d: invariant '%s' broken: ", __FILE__,    \
				__LINE__, #cond);                                      \
			fprintf(stderr, __VA_ARGS__);                                  \
			fputc('\n', stderr);                                           \
			abort();                                                       \
		}                                                                      \
	} while (0)

static char fuzz_dir_[256];
static char fuzz_paths_[4][320];

/* Remove what the harness wrote (each slot and its "<path>.tmp"), then the folder. */
static void fuzz_cleanup_(void)
{
	char tmp[330];
	for (int i = 0; i < 4; i++) {
		if (!fuzz_paths_[i][0])
			continue;
		unlink(fuzz_paths_[i]);
		snprintf(tmp, sizeof tmp, "%.319s.tmp", fuzz_paths_[i]);
		unlink(tmp);
	}
	if (rmdir(fuzz_dir_) != 0)
		fprintf(stderr, "fuzz: could not remove %s\n", fuzz_dir_);
}

/* A scratch folder, made once per process (in $TMPDIR, else /dev/shm when it
 * exists, so that fsync costs nothing) and removed at exit. */
static inline const char *fuzz_dir(void)
{
	if (!fuzz_dir_[0]) {
		const char *base = getenv("TMPDIR");
		if (!base || !base[0])
			base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
		snprintf(fuzz_dir_, sizeof fuzz_dir_, "%s/lowbit-fuzz.XXXXXX", base);
		if (!mkdtemp(fuzz_dir_)) {
			perror("fuzz: mkdtemp");
			abort();
		}
		atexit(fuzz_cleanup_);
	}
	return fuzz_dir_;
}

/* fuzz_dir()/name; static storage, one per slot (0..3). */
static inline const char *fuzz_path(int slot, const char *name)
{
	snprintf(fuzz_paths_[slot], sizeof fuzz_paths_[slot], "%s/%s", fuzz_dir(), name);
	return fuzz_paths_[slot];
}

/* Write bytes to path (replacing it); aborts on failure (not a finding). */
static inline void fuzz_write(const char *path, const uint8_t *data, size_t size)
{
	FILE *f = fopen(path, "wb");
	if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
		perror(path);
		abort();
	}
}

/* malloc'd NUL-terminated copy of the input. */
static inline char *fuzz_text(const uint8_t *data, size_t size)
{
	char *t = malloc(size + 1);
	if (!t)
		abort();
	if (size)
		memcpy(t, data, size);
	t[size] = '\0';
	return t;
}

#endif
