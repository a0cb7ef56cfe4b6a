# SPDX-License-Identifier: MIT
# TAP helpers for the shell tests (sourced). Provides: ok, fails_with,
# skip_all, done_testing, a scratch folder $T removed on exit, and $FMNIST.
set -u
n=0
failed=0
T=$(mktemp -d "${TMPDIR:-/tmp}/lowbit-test.XXXXXX")
trap 'rm -rf "$T"' EXIT
LOWBIT=${LOWBIT:-$top_builddir/lowbit}
FMNIST=${LOWBIT_FMNIST:-/usr/share/datasets/fashion-mnist}
export OMPI_MCA_btl_vader_single_copy_mechanism=none
# The lowbit program initialises MPI; Open MPI's plugins leave allocations
# that LeakSanitizer reports from unloaded modules (no symbols to suppress).
# Leak checking of lowbit's own code happens in the unit tests, which run the
# trainer without MPI (tests/unit/test_train.c).
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0

ok() { # ok CONDITION_EXIT_STATUS "description"
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi
}

diag() { sed 's/^/# /'; }

skip_all() { echo "1..0 # SKIP $1"; exit 0; }

# fails_with "description" "expected message fragment" command...
# The command must exit nonzero and print the fragment on stderr.
fails_with() {
	desc=$1; want=$2; shift 2
	"$@" >"$T/out" 2>"$T/err"
	rc=$?
	if [ $rc -ne 0 ] && grep -qF -- "$want" "$T/err"; then
		ok 0 "$desc (exit $rc)"
	else
		ok 1 "$desc"
		echo "exit status $rc, wanted nonzero and '$want' in:" | diag
		diag < "$T/err"
	fi
}

done_testing() { echo "1..$n"; [ "$failed" -eq 0 ]; }
