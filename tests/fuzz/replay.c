/* SPDX-License-Identifier: MIT
 * Runs a fuzz harness without libFuzzer: each argument is a file, or a folder
 * whose files are run in name order, fed to LLVMFuzzerTestOneInput once;
 * without arguments, tests/fuzz/corpus/FUZZ_CORPUS under $top_srcdir
 * (FUZZ_CORPUS is set per program in tests/fuzz/local.mk). Speaks TAP, one
 * test point per input, so `make check` replays the seed corpora and every
 * crash found so far with the configured compiler and, under
 * --enable-sanitizers, ASan+UBSan. A harness that finds a broken invariant
 * aborts, which the TAP driver reports as a failure. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int n_tests;

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long len;
	if (!f || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
		printf("not ok %d - %s: cannot read\n", ++n_tests, path);
		if (f)
			fclose(f);
		return 1;
	}
	buf = malloc(len ? (size_t)len : 1);
	if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
		printf("not ok %d - %s: cannot read\n", ++n_tests, path);
		free(buf);
		fclose(f);
		return 1;
	}
	fclose(f);
	fflush(stdout);
	LLVMFuzzerTestOneInput(buf, (size_t)len);
	free(buf);
	printf("ok %d - %s\n", ++n_tests, path);
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int bad = 0;
	if (!d) {
		printf("not ok %d - %s: cannot open folder\n", ++n_tests, dir);
		return 1;
	}
	while ((e = readdir(d))) {
		char path[4096];
		struct stat st;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		if (n == cap) {
			char **p = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof *names);
			if (!p)
				abort();
			names = p;
		}
		if (!(names[n++] = strdup(path)))
			abort();
	}
	closedir(d);
	qsort(names, n, sizeof *names, by_name);
	for (size_t i = 0; i < n; i++) {
		bad |= run_file(names[i]);
		free(names[i]);
	}
	free(names);
	return bad;
}

int main(int argc, char **argv)
{
	int bad = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
			bad |= run_dir(argv[i]);
		else
			bad |= run_file(argv[i]);
	}
	if (argc < 2) { /* make check: the harness's corpus in the source tree */
		const char *top = getenv("top_srcdir");
		char dir[4096];
		snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/%s", top && top[0] ? top : ".",
			 FUZZ_CORPUS);
		bad |= run_dir(dir);
	}
	if (n_tests == 0) {
		printf("1..0 # SKIP no input given\n");
		return 0;
	}
	printf("1..%d\n", n_tests);
	return bad;
}
