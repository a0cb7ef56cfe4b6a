#!/bin/sh
# SPDX-License-Identifier: MIT
# Kill test (design §7): a deterministic-mode sweep of real training (tiny:
# 512 images, 2 epochs, a checkpoint every epoch) under mpirun with 3 ranks;
# kill -9 of one worker rank while trials are training ends the job; running
# the same command again completes the sweep, and every trial's final
# parameters, optimizer state and metrics are bit-identical to those of an
# uninterrupted sweep.
. "$top_srcdir/tests/cli/lib.sh"
[ -f "$FMNIST/train-images-idx3-ubyte.gz" ] || skip_all "Fashion-MNIST not installed ($FMNIST)"
[ -n "${MPIRUN:-}" ] && command -v "$MPIRUN" >/dev/null || skip_all "no MPI launcher"
command -v h5diff >/dev/null || skip_all "h5diff (hdf5-tools) not installed"
SPEC=$T/kill.yaml
cat >"$SPEC" <<YAML
name: kill
seed: 11
base:
  model: {arch: lenet5-caffe}
  data: {dir: $FMNIST, train_limit: 512, test_limit: 200}
  train: {epochs: 2, batch: 64, log_every: 0, parallel: deterministic}
  optimizer: {kind: sgd, lr: 0.02, momentum: 0.9}
axes:
  optimizer.lr: {values: [0.01, 0.02]}
seeds: [1, 2]
checkpoint: {every_epochs: 1}
YAML
sweep() { # sweep DIR: the sweep under mpirun, 2 groups of 1 rank, bounded in time
	timeout 600 "$MPIRUN" --oversubscribe -n 3 "$LOWBIT" sweep "$SPEC" -o "$1" -q
}
sweep "$T/ref" >/dev/null 2>"$T/err"
ok $? "uninterrupted sweep"
diag < "$T/err"

# start again in a new folder and kill -9 worker rank 1 once a trial trains
sweep "$T/cut" >/dev/null 2>"$T/err.cut" &
job=$!
victim=""
for i in $(seq 1 1200); do
	if [ -f "$T/cut/plan.tsv" ] && "$LOWBIT" status "$T/cut" 2>/dev/null | grep -q '^  running *[1-9]'; then
		for p in $(pgrep -f "lowbit sweep $SPEC -o $T/cut"); do
			if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1'; then
				victim=$p
			fi
		done
		[ -n "$victim" ] && break
	fi
	sleep 0.1
done
[ -n "$victim" ] && kill -9 "$victim"
ok $? "kill -9 of worker rank 1 (pid ${victim:-none}) while a trial is running"
wait $job
rc=$?
[ $rc -ne 0 ]
ok $? "the job ends (exit $rc)"
"$LOWBIT" status "$T/cut" >"$T/st"
done_before=$(sed -n 's/^  done *\([0-9]*\)$/\1/p' "$T/st")
diag < "$T/st"
[ "${done_before:-4}" -lt 4 ]
ok $? "the kill left trials unfinished ($done_before of 4 done)"

sweep "$T/cut" >/dev/null 2>"$T/err"
ok $? "the same command again completes the sweep"
diag < "$T/err"
"$LOWBIT" status "$T/cut" | grep -q '^  done *4$'
ok $? "status: 4 done"
same=0
for f in "$T/ref/trials/"*.h5; do
	g=$T/cut/trials/$(basename "$f")
	for obj in /checkpoint/params /checkpoint/opt_m /final/weights /metrics/train_loss /metrics/test_acc; do
		h5diff "$f" "$g" "$obj" >"$T/diff" 2>&1 || { same=1; diag < "$T/diff"; }
	done
done
ok $same "every trial's final parameters, optimizer state and metrics equal the uninterrupted sweep's"
[ "$(ls "$T/ref/trials/"*.h5 | wc -l)" = 4 ]
ok $? "4 trial files compared"
done_testing
