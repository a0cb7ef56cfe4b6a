#!/bin/sh
# SPDX-License-Identifier: MIT
# The sweep coordinator with the dummy backend on 2 and 4 ranks (and 4 ranks
# as one 3-rank group): every trial runs once, failures and divergences are
# recorded and the sweep goes on; a group size that does not divide the
# workers is refused. Each run is bounded by a timeout (a hang fails).
. "$top_srcdir/tests/cli/lib.sh"
[ -n "${MPIRUN:-}" ] && command -v "$MPIRUN" >/dev/null || skip_all "no MPI launcher"
TC=$top_builddir/tests/mpi/test_coordinator
check() { # check "desc" RANKS args...
	desc=$1; k=$2; shift 2
	timeout 120 "$MPIRUN" --oversubscribe -n "$k" "$TC" "$@" >"$T/out" 2>"$T/err"
	rc=$?
	if [ $rc -eq 0 ] && ! grep -q '^not ok' "$T/out" && grep -q '^ok' "$T/out"; then
		ok 0 "$desc"
	else
		ok 1 "$desc"
	fi
	sed -n 's/^\(ok\|not ok\) [0-9]* - /  /p; s/^# /  /p' "$T/out" | diag
	[ $rc -eq 0 ] || diag < "$T/err"
}
check "2 ranks: 12 trials of 10 ms, one failing, one diverging" 2 12 1 10 3 7
check "4 ranks, 1 rank per trial: 30 trials" 4 30 1 10 0 29
check "4 ranks, 3 ranks per trial: 6 trials on one group" 4 6 3 10 5 -1
check "4 ranks, 2 ranks per trial: refused before any trial" 4 4 2 10
done_testing
