#!/bin/sh
# SPDX-License-Identifier: MIT
# lowbit sweep / trial / status / index with the dummy backend (no training):
# on 1 process and under mpirun with 2 and 4 ranks every trial finishes, an
# injected failure and divergence are recorded with their messages and the
# sweep goes on; a sweep stopped early (--max-trials) resumes without running
# a done trial again; --retry-failed reruns the failed ones; status --failed
# prints array ranges; lowbit trial takes its index from --index or the job
# array's variable; lowbit index rebuilds sweep.h5. Each run under a timeout.
. "$top_srcdir/tests/cli/lib.sh"
command -v h5dump >/dev/null || skip_all "h5dump (hdf5-tools) not installed"
SPEC=$T/dummy.yaml
cat >"$SPEC" <<'YAML'
name: dummy
seed: 5
base:
  model: {arch: lenet5-caffe}
  data: {train_limit: 256, test_limit: 100}
  train: {epochs: 1, batch: 64}
axes:
  optimizer.lr: {values: [0.01, 0.02, 0.03, 0.04, 0.05, 0.06]}
seeds: [1, 2]
YAML
N=12
attempts() { # attempts DIR: the dummy_attempts of every trial file, one per line
	for f in "$1"/trials/*.h5; do
		h5dump -a /dummy_attempts "$f" 2>/dev/null | sed -n 's/^ *(0): \([0-9]*\)$/\1/p'
	done
}
count() { # count DIR STATE: the number lowbit status prints for STATE
	"$LOWBIT" status "$1" | sed -n "s/^  $2 *\([0-9]*\)$/\1/p"
}
launch() { # launch RANKS args...: lowbit under mpirun (or plainly for 1), bounded in time
	k=$1; shift
	if [ "$k" = 1 ]; then timeout 120 "$LOWBIT" "$@"
	else timeout 120 "$MPIRUN" --oversubscribe -n "$k" "$LOWBIT" "$@"; fi
}

for k in 1 2 4; do
	if [ "$k" != 1 ] && ! { [ -n "${MPIRUN:-}" ] && command -v "$MPIRUN" >/dev/null; }; then
		echo "ok $((n + 1)) # SKIP no MPI launcher"; n=$((n + 1)); continue
	fi
	D=$T/run$k
	launch $k sweep "$SPEC" -o "$D" --dummy-sleep-ms 10 --dummy-fail 3 --dummy-diverge 7 -q \
		>"$T/out" 2>"$T/err"
	rc=$?
	[ $rc -eq 1 ] && [ "$(count "$D" done)" = 10 ] && [ "$(count "$D" failed)" = 1 ] &&
		[ "$(count "$D" diverged)" = 1 ]
	ok $? "$k rank(s): 10 done, 1 failed, 1 diverged; exit 1 (got $rc)"
	[ $rc -eq 1 ] || diag < "$T/err"
	"$LOWBIT" status "$D" >"$T/st"
	grep -q 'trial 3 .* failed: injected failure in trial 3' "$T/st" &&
		grep -q 'trial 7 .* diverged: loss is not finite (injected) in trial 7' "$T/st"
	ok $? "$k rank(s): status shows each failure with its message"
	[ "$(attempts "$D" | sort -u)" = 1 ] && [ "$(attempts "$D" | wc -l)" = $N ]
	ok $? "$k rank(s): every trial ran exactly once"
	[ "$("$LOWBIT" status "$D" --failed)" = "3,7" ]
	ok $? "$k rank(s): status --failed prints 3,7"
done

# stop early, then resume: no done trial runs twice
D=$T/resume
launch 2 sweep "$SPEC" -o "$D" --dummy-sleep-ms 5 --max-trials 5 -q >"$T/out" 2>"$T/err"
rc=$?
[ $rc -eq 75 ] && [ "$(count "$D" done)" = 5 ] && [ "$(count "$D" pending)" = 7 ]
ok $? "--max-trials 5: 5 done, 7 pending, exit 75 (got $rc)"
[ "$("$LOWBIT" status "$D" --unfinished)" = "5-11" ]
ok $? "status --unfinished prints 5-11"
launch 2 sweep "$SPEC" -o "$D" --dummy-sleep-ms 5 -q >"$T/out" 2>"$T/err"
rc=$?
[ $rc -eq 0 ] && [ "$(count "$D" done)" = $N ] && [ "$(attempts "$D" | sort -u)" = 1 ]
ok $? "the same command again finishes the sweep without repeating a trial (exit $rc)"
launch 2 sweep "$SPEC" -o "$D" --dummy-sleep-ms 5 >"$T/out" 2>"$T/err"
grep -q "12 done, 0 failed kept, 0 to run" "$T/err" && [ "$(attempts "$D" | sort -u)" = 1 ]
ok $? "a finished sweep runs nothing"

# failed trials: kept, then rerun with --retry-failed
D=$T/retry
launch 1 sweep "$SPEC" -o "$D" --dummy-sleep-ms 1 --dummy-fail 11 -q >/dev/null 2>&1
launch 1 sweep "$SPEC" -o "$D" --dummy-sleep-ms 1 -q >/dev/null 2>"$T/err"
[ $? -eq 1 ] && [ "$(count "$D" failed)" = 1 ]
ok $? "a failed trial is kept when the sweep runs again"
launch 1 sweep "$SPEC" -o "$D" --dummy-sleep-ms 1 --retry-failed -q >/dev/null 2>"$T/err"
[ $? -eq 0 ] && [ "$(count "$D" done)" = $N ]
ok $? "--retry-failed runs it again"

# --fail-fast: the first failure stops the hand-out; the rest stays pending
D=$T/ffast
launch 1 sweep "$SPEC" -o "$D" --dummy-sleep-ms 1 --dummy-fail 4 --fail-fast -q >/dev/null 2>"$T/err"
rc=$?
[ $rc -eq 1 ] && [ "$(count "$D" done)" = 4 ] && [ "$(count "$D" failed)" = 1 ] &&
	[ "$(count "$D" pending)" = 7 ] && grep -q -- "--fail-fast: trial 4 (.*) did not succeed" "$T/err"
ok $? "--fail-fast on 1 process: 4 done, 1 failed, 7 pending, exit 1 (got $rc)"
if [ -n "${MPIRUN:-}" ] && command -v "$MPIRUN" >/dev/null; then
	D=$T/ffast2
	launch 2 sweep "$SPEC" -o "$D" --dummy-sleep-ms 1 --dummy-diverge 2 --fail-fast -q >/dev/null 2>"$T/err"
	rc=$?
	[ $rc -eq 1 ] && [ "$(count "$D" diverged)" = 1 ] && [ "$(count "$D" done)" = 2 ] &&
		[ "$(count "$D" pending)" = 9 ]
	ok $? "--fail-fast on 2 ranks: a divergence stops the sweep (exit $rc)"
	launch 2 sweep "$SPEC" -o "$D" --dummy-sleep-ms 1 -q >/dev/null 2>"$T/err"
	rc=$?
	[ $rc -eq 1 ] && [ "$(count "$D" done)" = 11 ] && [ "$(attempts "$D" | sort -u)" = 1 ]
	ok $? "... the same command without it runs the rest once each (exit $rc)"
else
	echo "ok $((n + 1)) # SKIP no MPI launcher"; n=$((n + 1))
	echo "ok $((n + 1)) # SKIP no MPI launcher"; n=$((n + 1))
fi
launch 1 trial "$SPEC" -o "$T/ffast3" --index 0 --fail-fast --dummy-sleep-ms 1 >/dev/null 2>"$T/err"
[ $? -eq 2 ] && grep -q "trial: unknown option '--fail-fast'" "$T/err"
ok $? "trial refuses --fail-fast (one trial: nothing to stop)"

# 4 ranks as one group of 3
if [ -n "${MPIRUN:-}" ] && command -v "$MPIRUN" >/dev/null; then
	sed 's/^seeds:.*/seeds: [1]\nresources: {ranks_per_trial: 3}/' "$SPEC" >"$T/k3.yaml"
	launch 4 sweep "$T/k3.yaml" -o "$T/k3" --dummy-sleep-ms 5 >"$T/out" 2>"$T/err"
	[ $? -eq 0 ] && [ "$(count "$T/k3" done)" = 6 ] && grep -q "on 1 group of 3 ranks" "$T/err"
	ok $? "4 ranks, 3 per trial: 6 trials on one group of 3"
	grep -q "ok: 3 ranks" "$T/err"
	ok $? "each trial ran on the whole group"
else
	echo "ok $((n + 1)) # SKIP no MPI launcher"; n=$((n + 1))
	echo "ok $((n + 1)) # SKIP no MPI launcher"; n=$((n + 1))
fi

# lowbit trial: --index, SLURM_ARRAY_TASK_ID, PBS_ARRAY_INDEX
D=$T/array
"$LOWBIT" trial "$SPEC" -o "$D" --index 4 --dummy-sleep-ms 1 -q 2>"$T/err"
ok $? "trial --index 4"
SLURM_ARRAY_TASK_ID=5 "$LOWBIT" trial "$SPEC" -o "$D" --dummy-sleep-ms 1 -q 2>"$T/err"
ok $? "trial with SLURM_ARRAY_TASK_ID=5"
PBS_ARRAY_INDEX=6 "$LOWBIT" trial "$SPEC" -o "$D" --dummy-sleep-ms 1 --dummy-fail 6 -q 2>"$T/err"
[ $? -eq 1 ] && grep -q "trial 6 .* failed: injected failure" "$T/err"
ok $? "trial with PBS_ARRAY_INDEX=6: failure reported, exit 1"
"$LOWBIT" trial "$SPEC" -o "$D" --index 4 --dummy-sleep-ms 1 2>"$T/err"
[ $? -eq 0 ] && grep -q "already done" "$T/err" && [ "$(attempts "$D" | sort -u)" = 1 ]
ok $? "a done trial is not run again"
[ "$(count "$D" done)" = 2 ] && [ "$(count "$D" failed)" = 1 ] && [ "$(count "$D" pending)" = 9 ] &&
	[ "$("$LOWBIT" status "$D" --failed)" = 6 ]
ok $? "status of the array folder: 2 done, 1 failed, 9 pending"
"$LOWBIT" index "$D" >"$T/out" 2>"$T/err" && [ "$(cat "$T/out")" = "$D/sweep.h5" ]
ok $? "lowbit index writes sweep.h5"
h5dump -d /status/state "$D/sweep.h5" >"$T/state" 2>&1 &&
	[ "$(grep -o '"done"' "$T/state" | wc -l)" = 2 ] && [ "$(grep -o '"failed"' "$T/state" | wc -l)" = 1 ]
ok $? "sweep.h5 status table matches the trial files"
[ "$(h5ls "$D/sweep.h5/trials" 2>/dev/null | grep -c 'External Link')" = 3 ] &&
	[ "$(ls "$D"/trials/*.h5 | wc -l)" = 3 ]
ok $? "sweep.h5 links the 3 trial files that exist"

# the index is rebuilt from the trial files: same tables as the sweep wrote
cp "$T/run1/sweep.h5" "$T/written.h5"
rm "$T/run1/sweep.h5"
"$LOWBIT" index "$T/run1" >/dev/null 2>"$T/err"
ok=0
for obj in /plan/id /status/state /status/message /summary/final_test_acc /summary/optimizer.lr; do
	h5diff "$T/written.h5" "$T/run1/sweep.h5" "$obj" >/dev/null 2>&1 || ok=1
done
ok $ok "lowbit index rebuilds the tables the sweep wrote"
done_testing
