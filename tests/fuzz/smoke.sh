#!/bin/sh
# SPDX-License-Identifier: MIT
# make fuzz-smoke: build the libFuzzer harnesses (tests/fuzz/fuzz.mk) and run
# each for FUZZ_SECONDS (default 20) from its seed corpus
# (tests/fuzz/corpus/<harness>/, crash regressions included). Succeeds when
# none crashes, leaks, times out or breaks an invariant; prints libFuzzer's
# final stats per harness. A crash whose first frame outside the sanitizer
# and libc is in a library listed in FUZZ_KNOWN_LIBS (default: none; before
# run files were sealed it was libhdf5, whose parser crashes on some damaged
# files: docs/testing.md, Fuzzing) is reported as KNOWN and does not fail the
# target; its input is kept all the same.
# Without a clang that links -fsanitize=fuzzer it says so and succeeds
# without doing anything.
# Environment (set by the make rule): top_srcdir top_builddir FUZZ_CC
# FUZZ_CPPFLAGS FUZZ_LIBS MAKE; optional FUZZ_SECONDS, FUZZ_HARNESSES.
set -u
O=$top_builddir/tests/fuzz
seconds=${FUZZ_SECONDS:-20}
harnesses=${FUZZ_HARNESSES:-config spec idx cifar runfile}
known_libs=${FUZZ_KNOWN_LIBS-}
mkdir -p "$O"

probe=$O/probe
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' > "$probe.c"
if ! command -v "$FUZZ_CC" > /dev/null 2>&1 ||
   ! "$FUZZ_CC" -fsanitize=fuzzer,address,undefined "$probe.c" -o "$probe" > "$probe.log" 2>&1; then
	echo "fuzz-smoke: skipped: '$FUZZ_CC' cannot build a libFuzzer program" \
	     "(-fsanitize=fuzzer,address,undefined); install clang and libclang-rt-14-dev" \
	     "(scripts/install-deps --with-fuzz) or set FUZZ_CC"
	rm -f "$probe" "$probe.c" "$probe.log"
	exit 0
fi
rm -f "$probe" "$probe.c" "$probe.log"

targets=""
for h in $harnesses; do targets="$targets $O/fuzz-$h"; done
${MAKE:-make} --no-print-directory -f "$top_srcdir/tests/fuzz/fuzz.mk" O="$O" \
	top_srcdir="$top_srcdir" FUZZ_CC="$FUZZ_CC" FUZZ_CPPFLAGS="$FUZZ_CPPFLAGS" \
	FUZZ_LIBS="$FUZZ_LIBS" $targets || { echo "fuzz-smoke: FAILED to build the harnesses"; exit 1; }

failed=0
for h in $harnesses; do
	work=$O/found/$h     # new inputs found go here (fresh each run), not into the source tree
	art=$O/artifacts/$h  # crash-*, leak-*, timeout-*, oom-* inputs
	log=$O/fuzz-$h.log
	rm -rf "$work"
	mkdir -p "$work" "$art"
	# The harness's scratch files go to TMPDIR (else /dev/shm, /tmp) and are removed at exit.
	"$O/fuzz-$h" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$art/" \
		"$work" "$top_srcdir/tests/fuzz/corpus/$h" > "$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	last=$(grep -E '^#[0-9]+[[:space:]]+(DONE|INITED|NEW|REDUCE|pulse)' "$log" | tail -n 1)
	cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	# The first stack frame that is not the sanitizer, libFuzzer or libc.
	frame=$(grep -E '^ +#[0-9]+ 0x' "$log" | grep -vE \
		'__asan|__sanitizer|__interceptor|fuzzer::|libc\.so|in (malloc|calloc|realloc|free|memcpy|memmove|memset) ' |
		head -n 1)
	lib=""
	for l in $known_libs; do
		case $frame in *"$l"*) lib=$l ;; esac
	done
	if [ $rc -eq 0 ]; then
		echo "fuzz-smoke: $h: ok: ${execs:-?} execs in ${seconds}s, cov ${cov:-?}, ft ${ft:-?}"
	elif [ -n "$lib" ]; then
		echo "fuzz-smoke: $h: KNOWN: a crash inside $lib after ${execs:-?} execs (cov ${cov:-?}," \
		     "ft ${ft:-?}); input saved in $art/"
		echo "$frame" | sed 's/(BuildId.*//; s/^ */    /'
	else
		failed=$((failed + 1))
		echo "fuzz-smoke: $h: FAILED (exit $rc); input saved in $art/, log $log:"
		grep -E 'ERROR|SUMMARY|invariant|Test unit written' "$log" | head -n 8 | sed 's/^/    /'
	fi
done
if [ $failed -ne 0 ]; then
	echo "fuzz-smoke: $failed harness(es) failed; add each saved input to" \
	     "tests/fuzz/corpus/<harness>/ once fixed"
	exit 1
fi
echo "fuzz-smoke: all passed ($harnesses)"
