#!/bin/sh
# SPDX-License-Identifier: MIT
# The hostile-input corpus (tests/bad-input/cases.txt): every bad config,
# override, command line, sweep spec, IDX or CIFAR-10 file and HDF5 run file
# gets its exit status and one clear message, and writes nothing: the
# scratch folder (datasets, output folder, run file) is byte-for-byte and
# timestamp-for-timestamp unchanged. One TAP test point per case; known bugs
# are TODO points (listed in docs/testing.md) until fixed.
. "$top_srcdir/tests/cli/lib.sh"
S=$top_srcdir/tests/bad-input
MANGLE=$top_builddir/tests/bad-input/h5mangle
[ -x "$LOWBIT" ] || skip_all "no lowbit program ($LOWBIT)"
[ -x "$MANGLE" ] || skip_all "no h5mangle helper ($MANGLE)"
# One rank without a launcher: a singleton that starts no daemon (0.3 s
# instead of 1 s a run, over 100 runs).
export OMPI_MCA_ess_singleton_isolated=1 OMPI_MCA_pml=ob1 OMPI_MCA_btl=self
case_timeout=${BAD_INPUT_TIMEOUT:-120}
# Memory-limited cases cannot run under ASan, which reserves terabytes of
# address space.
asan=0
ldd "$LOWBIT" 2>/dev/null | grep -q 'libasan' && asan=1

# The template of every case's scratch folder: a valid 8x8 IDX set (16 training,
# 8 test samples) in data/, valid one-record CIFAR-10 batches in cifar/.
tpl=$T/tpl
mkdir -p "$tpl/data" "$tpl/cifar"
pattern() { yes 'abcdefghijklmnopqrstuvwxyz' | tr -d '\n' | head -c "$1"; }
{ printf '\0\0\10\3\0\0\0\20\0\0\0\10\0\0\0\10'; pattern 1024; } > "$tpl/data/train-images"
printf '\0\0\10\1\0\0\0\20\0\1\2\3\4\5\6\7\10\11\0\1\2\3\4\5' > "$tpl/data/train-labels"
{ printf '\0\0\10\3\0\0\0\10\0\0\0\10\0\0\0\10'; pattern 512; } > "$tpl/data/test-images"
printf '\0\0\10\1\0\0\0\10\0\1\2\3\4\5\6\7' > "$tpl/data/test-labels"
for b in data_batch_1 data_batch_2 data_batch_3 data_batch_4 data_batch_5 test_batch; do
	{ printf '\3'; pattern 3072; } > "$tpl/cifar/$b.bin"
done

# Two real run files of tiny.yaml: finished, and stopped after epoch 1 of 2.
(cd "$tpl" && "$LOWBIT" train "$S/tiny.yaml" -o "$T/done" -q && "$LOWBIT" train \
	"$S/tiny.yaml" -o "$T/mid" -q --debug-crash-at-step=3) < /dev/null > "$T/setup.log" 2>&1
if [ ! -s "$T/done/tiny.h5" ] || [ ! -s "$T/mid/tiny.h5" ]; then
	echo "Bail out! cannot make the baseline run files with $LOWBIT:"
	diag < "$T/setup.log"
	exit 1
fi

# Everything under the current folder: type, size, mtime (ns), checksum.
snapshot() {
	find . -printf '%p %y %s %T@\n' | LC_ALL=C sort
	find . -type f -exec cksum {} + | LC_ALL=C sort -k 3
}

trim() { printf '%s' "$1" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//'; }

# setup WORDS...: prepare the scratch folder (see cases.txt); 0 on success.
setup() {
	kind=$1
	[ $# -gt 0 ] && shift
	case $kind in
	- | "") return 0 ;;
	data | cifar)
		if [ "$2" = - ]; then rm -f "$kind/$1"; else cp "$2" "$kind/$1"; fi ;;
	run)
		which=$1; shift
		mkdir -p out && cp "$T/$which/tiny.h5" out/tiny.h5 || return 1
		[ $# -eq 0 ] || "$MANGLE" out/tiny.h5 "$@" ;;
	run-truncate)
		mkdir -p out && head -c "$1" "$T/mid/tiny.h5" > out/tiny.h5 ;;
	run-file)
		mkdir -p out && cp "$1" out/tiny.h5 ;;
	run-text)
		mkdir -p out && echo "$*" > out/tiny.h5 ;;
	run-dir)
		mkdir -p out/tiny.h5 ;;
	*)
		echo "unknown setup '$kind'" >&2; return 1 ;;
	esac
}

# result STATUS DESCRIPTION [TODO-REASON]
result() {
	n=$((n + 1))
	if [ -n "${3:-}" ]; then
		[ "$1" -eq 0 ] && echo "ok $n - $2 # TODO $3" || echo "not ok $n - $2 # TODO $3"
	elif [ "$1" -eq 0 ]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2"
		failed=$((failed + 1))
	fi
}

while IFS='|' read -r name setup_words want frag args flags; do
	case $name in '#'* | '') continue ;; esac
	name=$(trim "$name"); setup_words=$(trim "$setup_words"); want=$(trim "$want")
	frag=$(trim "$frag"); args=$(trim "$args"); flags=$(trim "$flags")
	todo=""; limit=0
	case " $flags" in *" todo="*) todo=${flags#*todo=} ;; esac
	case " $flags " in *" limit "*) limit=1 ;; esac
	case " $flags" in *" skip="*)
		n=$((n + 1)); echo "ok $n - $name # SKIP ${flags#*skip=}"; continue ;;
	esac
	if [ $limit -eq 1 ] && [ $asan -eq 1 ]; then
		n=$((n + 1)); echo "ok $n - $name # SKIP memory limit under ASan"; continue
	fi
	W=$T/w
	rm -rf "$W" && cp -R "$tpl" "$W" && cd "$W" || { result 1 "$name: scratch folder"; continue; }
	# @/ is this folder; quoted so that eval keeps a path with spaces whole.
	setup_words=$(printf '%s' "$setup_words" | sed 's|@/|"$S"/|g')
	args=$(printf '%s' "$args" | sed 's|@/|"$S"/|g')
	frag=$(printf '%s' "$frag" | sed "s|@/|$S/|g")
	if ! eval "setup $setup_words" > "$T/setup.log" 2>&1; then
		result 1 "$name: setup '$setup_words' failed"
		diag < "$T/setup.log"
		cd "$T"; continue
	fi
	snapshot > "$T/before"
	if [ $limit -eq 1 ]; then
		(ulimit -v 500000; eval "exec timeout $case_timeout \"\$LOWBIT\" $args") \
			< /dev/null > "$T/out" 2> "$T/err"
	else
		eval "timeout $case_timeout \"\$LOWBIT\" $args" < /dev/null > "$T/out" 2> "$T/err"
	fi
	rc=$?
	snapshot > "$T/after"
	cd "$T"
	why=""
	[ "$rc" -eq "$want" ] || why="exit status $rc, wanted $want"
	grep -qF -- "$frag" "$T/err" || why="${why:+$why; }no '$frag' on stderr"
	cmp -s "$T/before" "$T/after" || why="${why:+$why; }the scratch folder changed"
	# A crash that still exits 1 with the fragment (ASan, glibc's heap checks) is no pass.
	grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:|free\(\): |malloc\(\): |Segmentation fault|Process received signal' \
		"$T/err" && why="${why:+$why; }a crash report on stderr"
	if [ -z "$why" ]; then
		result 0 "$name (exit $rc)" "$todo"
	else
		result 1 "$name: $why" "$todo"
		{ echo "lowbit $args"; cat "$T/err"; diff "$T/before" "$T/after"; } | head -n 20 | diag
	fi
done < "$S/cases.txt"
[ "$n" -ge 40 ]
ok $? "the corpus holds at least 40 cases ($n)"
done_testing
