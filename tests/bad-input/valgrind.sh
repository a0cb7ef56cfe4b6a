#!/bin/sh
# SPDX-License-Identifier: MIT
# make check-valgrind: valgrind memcheck over every unit test program
# (tests/unit/test_*, no MPI), the fuzz replays (tests/fuzz/replay-*: every
# corpus input) and one short `lowbit train` (MPI singleton, with
# tests/valgrind.supp for the Open MPI library only). Fails on any memory
# error and on definite, indirect or possible leaks; prints one line per
# program. A no-op with a message when valgrind is missing.
set -u
if ! command -v valgrind > /dev/null 2>&1; then
	echo "check-valgrind: skipped: valgrind is not installed (apt-get install valgrind)"
	exit 0
fi
B=$top_builddir
T=$(mktemp -d "${TMPDIR:-/tmp}/lowbit-valgrind.XXXXXX")
trap 'rm -rf "$T"' EXIT
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_ess_singleton_isolated=1 OMPI_MCA_pml=ob1 OMPI_MCA_btl=self
# keep MPI plugins loaded, so that their frames have names the suppressions can match
export OMPI_MCA_mca_base_component_disable_dlclose=1
VG="valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect,possible
    --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 --num-callers=30
    --suppressions=$top_srcdir/tests/valgrind.supp"
[ -f /usr/share/openmpi/openmpi-valgrind.supp ] &&
	VG="$VG --suppressions=/usr/share/openmpi/openmpi-valgrind.supp"
failed=0
run() { # run NAME COMMAND...: memcheck one program
	name=$1; shift
	$VG --log-file="$T/$name.vg" "$@" > "$T/$name.out" 2>&1 < /dev/null
	rc=$?
	summary=$(grep -h 'ERROR SUMMARY' "$T/$name.vg" | sed 's/^==[0-9]*== //' | head -n 1)
	if [ $rc -eq 0 ]; then
		echo "check-valgrind: $name: clean ($summary)"
	else
		failed=$((failed + 1))
		echo "check-valgrind: $name: FAILED (exit $rc; $summary); log:"
		grep -E 'Invalid|uninitialised|definitely|indirectly|possibly|at 0x|by 0x' "$T/$name.vg" |
			head -n 30 | sed 's/^/    /'
	fi
}
for p in "$B"/tests/unit/test_* "$B"/tests/fuzz/replay-*; do
	[ -x "$p" ] && [ -f "$p" ] || continue
	case $p in *.o | *.log | *.trs) continue ;; esac
	run "$(basename "$p")" "$p"
done
# One short training run on an 8x8 IDX set (as tests/bad-input/run.sh makes it).
mkdir -p "$T/w/data"
pattern() { yes 'abcdefghijklmnopqrstuvwxyz' | tr -d '\n' | head -c "$1"; }
{ printf '\0\0\10\3\0\0\0\20\0\0\0\10\0\0\0\10'; pattern 1024; } > "$T/w/data/train-images"
printf '\0\0\10\1\0\0\0\20\0\1\2\3\4\5\6\7\10\11\0\1\2\3\4\5' > "$T/w/data/train-labels"
{ printf '\0\0\10\3\0\0\0\10\0\0\0\10\0\0\0\10'; pattern 512; } > "$T/w/data/test-images"
printf '\0\0\10\1\0\0\0\10\0\1\2\3\4\5\6\7' > "$T/w/data/test-labels"
(cd "$T/w" && run lowbit-train "$B/lowbit" train "$top_srcdir/tests/bad-input/tiny.yaml" -o runs -q)
[ -s "$T/w/runs/tiny.h5" ] || { echo "check-valgrind: lowbit-train: no run file written"; failed=$((failed + 1)); }
if [ $failed -ne 0 ]; then
	echo "check-valgrind: $failed program(s) failed"
	exit 1
fi
echo "check-valgrind: all clean"
