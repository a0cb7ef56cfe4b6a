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

# HDF5 helpers (hdf5-tools); a script may define its own variants after this.
same() { # same A B PATH...: the objects are bit-identical in both files
	a=$1; b=$2; shift 2
	for obj in "$@"; do
		h5diff "$a" "$b" "$obj" >"$T/diff" 2>&1 || { diag < "$T/diff"; return 1; }
	done
}
val() { # val FILE DATASET: the values, comma-separated on one line
	rm -f "$T/val"
	h5dump -d "$2" -y -w 0 -o "$T/val" "$1" >/dev/null 2>&1 || return 1
	tr -d ' \n' < "$T/val"
}
attr() { h5dump -a "$2" "$1" 2>/dev/null | sed -n 's/^ *(0): *//p' | head -n1; } # attr FILE /PATH
