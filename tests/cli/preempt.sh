#!/bin/sh
# SPDX-License-Identifier: MIT
# Preemption (issue 8): a stop signal in the middle of an epoch makes
# `lowbit train` checkpoint that exact step, mark the run "preempted" and
# exit 75; --resume then ends bit-identical to an uninterrupted run. The
# same under mpirun with 2 ranks (the signal reaches one rank; the ranks
# agree at the next step), with a storm of further SIGTERMs while the
# checkpoint is written, with SIGUSR1 sent to mpirun (forwarded to the
# ranks), and for a sweep whose every rank gets SIGTERM. Also: a diverged
# run says where it diverged.
. "$top_srcdir/tests/cli/lib.sh"
[ -f "$FMNIST/train-images-idx3-ubyte.gz" ] || skip_all "Fashion-MNIST not installed ($FMNIST)"
command -v h5diff >/dev/null || skip_all "h5diff (hdf5-tools) not installed"
CFG=$top_srcdir/examples/lenet5-fashion.yaml
# 256 samples / batch 64 = 4 steps per epoch; 2 shards so 1 and 2 ranks agree
SETS="--set data.train_limit=256 --set data.test_limit=200 --set train.epochs=3 --set train.log_every=0 --set model.dropout=0.2 --set train.shards=2"
train() { timeout 300 "$LOWBIT" train "$CFG" "$@"; }
mpi() { timeout 300 "$MPIRUN" --oversubscribe -n 2 "$LOWBIT" train "$CFG" "$@"; }
attr() { # attr FILE NAME: the first value of attribute NAME
	h5dump -a "$2" "$1" 2>/dev/null | sed -n 's/^ *(0): //p' | head -n 1
}
same() { # same REF RUN: final weights, optimizer state and metrics bit-identical
	rc=0
	for obj in /final/weights /checkpoint/opt_m /metrics/test_acc /metrics/train_loss; do
		h5diff "$1" "$2" "$obj" >"$T/diff" 2>&1 || { rc=1; diag < "$T/diff"; }
	done
	return $rc
}
MPI_OK=0
[ -n "${MPIRUN:-}" ] && command -v "$MPIRUN" >/dev/null && MPI_OK=1
skip() { echo "ok $((n + 1)) # SKIP $1"; n=$((n + 1)); }

train -o "$T/ref" --set name=r $SETS >/dev/null 2>"$T/err"
ok $? "uninterrupted run"
diag < "$T/err"

# SIGTERM before global step 7 = epoch 2, after its step 2
train -o "$T/a" --set name=r $SETS --debug-signal-at-step 7 >/dev/null 2>"$T/err"
rc=$?
[ $rc -eq 75 ] && grep -q "stopped by SIGTERM at epoch 2, step 2 of 4" "$T/err"
ok $? "SIGTERM in the middle of epoch 2 exits 75 (exit $rc)"
[ $rc -eq 75 ] || diag < "$T/err"
[ "$(attr "$T/a/r.h5" /status)" = '"preempted"' ] && [ "$(attr "$T/a/r.h5" /checkpoint/step)" = 6 ] &&
	[ "$(attr "$T/a/r.h5" /checkpoint/epoch)" = 1 ] && [ "$(attr "$T/a/r.h5" /checkpoint/epoch_step)" = 2 ]
ok $? "status preempted, checkpoint at step 6 (epoch 1 done + 2 steps)"
train -o "$T/a" --set name=r $SETS --resume >/dev/null 2>"$T/err"
ok $? "--resume completes the run"
grep -q "resuming .* inside epoch 2 after its step 2" "$T/err"
ok $? "... continuing inside epoch 2"
same "$T/ref/r.h5" "$T/a/r.h5"
ok $? "... bit-identical to the uninterrupted run"

# at an epoch boundary (step 5 = step 1 of epoch 2), with SIGTERMs every
# 100 us while the checkpoint is written
train -o "$T/b" --set name=r $SETS --debug-signal-at-step 5 --debug-signal-in-checkpoint \
	>/dev/null 2>"$T/err"
rc=$?
storm=$(sed -n 's/.* \([0-9]*\) more signals arrived while the checkpoint was written.*/\1/p' "$T/err")
[ $rc -eq 75 ] && [ "${storm:-0}" -gt 0 ]
ok $? "more SIGTERMs during the checkpoint (${storm:-0} of them): still exit 75"
[ "$(attr "$T/b/r.h5" /status)" = '"preempted"' ] && [ "$(attr "$T/b/r.h5" /checkpoint/step)" = 4 ]
ok $? "... and a readable run file with its checkpoint at step 4"
train -o "$T/b" --set name=r $SETS --resume >/dev/null 2>"$T/err" && same "$T/ref/r.h5" "$T/b/r.h5"
ok $? "... that resumes to the same result"

# 2 ranks: the signal reaches rank 1 only; the ranks agree at the next step
if [ $MPI_OK = 1 ]; then
	mpi -o "$T/m" --set name=r $SETS --debug-signal-at-step 7 --debug-signal-in-checkpoint \
		>/dev/null 2>"$T/err"
	rc=$?
	[ $rc -eq 75 ] && [ "$(attr "$T/m/r.h5" /status)" = '"preempted"' ] &&
		[ "$(attr "$T/m/r.h5" /checkpoint/step)" = 6 ]
	ok $? "mpirun -n 2: SIGTERM on rank 1 stops both at step 6, exit 75 (exit $rc)"
	[ $rc -eq 75 ] || diag < "$T/err"
	mpi -o "$T/m" --set name=r $SETS --resume >/dev/null 2>"$T/err" && same "$T/ref/r.h5" "$T/m/r.h5"
	ok $? "mpirun -n 2 --resume: bit-identical to the uninterrupted run"

	# a real signal: SIGUSR1 to mpirun, which forwards it to every rank
	LONG="--set data.train_limit=1024 --set data.test_limit=200 --set train.epochs=2 --set train.log_every=1 --set train.shards=2"
	train -o "$T/lref" --set name=l $LONG >/dev/null 2>"$T/err"
	ok $? "uninterrupted longer run (16 steps per epoch)"
	timeout 300 "$MPIRUN" --oversubscribe -n 2 "$LOWBIT" train "$CFG" -o "$T/u" --set name=l $LONG \
		>/dev/null 2>"$T/err" &
	job=$!
	for i in $(seq 1 3000); do grep -q "step 2/16" "$T/err" 2>/dev/null && break; sleep 0.02; done
	launcher=$(pgrep -P $job | head -n 1)
	[ -n "$launcher" ] && kill -USR1 "$launcher"
	wait $job
	rc=$?
	[ $rc -eq 75 ] && [ "$(attr "$T/u/l.h5" /status)" = '"preempted"' ]
	ok $? "SIGUSR1 to mpirun: the ranks save and mpirun exits 75 (exit $rc)"
	[ $rc -eq 75 ] || diag < "$T/err"
	mpi -o "$T/u" --set name=l $LONG --resume >/dev/null 2>"$T/err" && same "$T/lref/l.h5" "$T/u/l.h5"
	ok $? "... and --resume ends bit-identical to the uninterrupted run"
else
	for i in 1 2 3 4 5; do skip "no MPI launcher"; done
fi

# a sweep of 2 trials on 3 ranks (2 groups of 1); SIGTERM to every rank
if [ $MPI_OK = 1 ]; then
	SPEC=$T/pre.yaml
	cat >"$SPEC" <<YAML
name: pre
seed: 5
base:
  model: {arch: lenet5-caffe}
  data: {dir: $FMNIST, train_limit: 1024, test_limit: 200}
  train: {epochs: 3, batch: 64, log_every: 0, parallel: deterministic}
  optimizer: {kind: sgd, lr: 0.02, momentum: 0.9}
axes:
  optimizer.lr: {values: [0.01, 0.02]}
seeds: [1]
YAML
	sweep() { timeout 600 "$MPIRUN" --oversubscribe -n 3 "$LOWBIT" sweep "$SPEC" -o "$1" -q; }
	sweep "$T/sref" >/dev/null 2>"$T/err"
	ok $? "uninterrupted sweep"
	sweep "$T/scut" >/dev/null 2>"$T/err" &
	job=$!
	for i in $(seq 1 3000); do
		[ "$(ls "$T/scut/trials/"*.h5 2>/dev/null | wc -l)" = 2 ] && break
		sleep 0.02
	done
	ranks=""
	for p in $(pgrep -f "lowbit sweep $SPEC -o $T/scut"); do
		tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -q '^OMPI_COMM_WORLD_RANK=' &&
			ranks="$ranks $p"
	done
	[ -n "$ranks" ] && kill -TERM $ranks
	wait $job
	rc=$?
	[ $rc -eq 75 ]
	ok $? "SIGTERM to every rank ($ranks) while both trials train: exit 75 (exit $rc)"
	"$LOWBIT" status "$T/scut" >"$T/st"
	grep -q '^  preempted *[1-9]' "$T/st"
	ok $? "status lists the preempted trials"
	diag < "$T/st"
	sweep "$T/scut" >/dev/null 2>"$T/err"
	ok $? "the same command again completes the sweep"
	same=0
	for f in "$T/sref/trials/"*.h5; do
		same "$f" "$T/scut/trials/$(basename "$f")" || same=1
	done
	[ "$(ls "$T/sref/trials/"*.h5 | wc -l)" = 2 ] && [ $same = 0 ]
	ok $? "both trials bit-identical to the uninterrupted sweep's"
else
	for i in 1 2 3 4 5; do skip "no MPI launcher"; done
fi

# divergence: status diverged, where, and how many epochs of good metrics
train -o "$T/d" --set name=d $SETS --set optimizer.lr=1e6 >/dev/null 2>"$T/err"
rc=$?
[ $rc -eq 1 ] && grep -q "is not finite at epoch 1" "$T/err"
ok $? "a diverging run exits 1 (exit $rc)"
[ "$(attr "$T/d/d.h5" /status)" = '"diverged"' ] && [ "$(attr "$T/d/d.h5" /diverged_epoch)" = 1 ] &&
	[ "$(attr "$T/d/d.h5" /last_good_epoch)" = 0 ] && [ -n "$(attr "$T/d/d.h5" /diverged_step)" ]
ok $? "... recorded as diverged, with diverged_epoch, diverged_step and last_good_epoch"
done_testing
