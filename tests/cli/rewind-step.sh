#!/bin/sh
# SPDX-License-Identifier: MIT
# Late rewinding (rewind to step K): train.snapshot_steps keeps the parameters
# after step K, equal to a run stopped after K steps, and again the same when
# a crash makes a resume re-run step K or resume past it; --stage-init
# RUN.h5:step:K starts from them; a sweep's rewind_to: step:K adds K to its
# input stage and the next stage starts from that snapshot. Bad K: refused.
. "$top_srcdir/tests/cli/lib.sh"
[ -f "$FMNIST/train-images-idx3-ubyte.gz" ] || skip_all "Fashion-MNIST not installed ($FMNIST)"
command -v h5diff >/dev/null || skip_all "h5diff (hdf5-tools) not installed"
CFG=$top_srcdir/examples/lenet5-fashion.yaml
# 256 images, batch 64: 4 steps per epoch, 8 steps in all
SETS="--set data.train_limit=256 --set data.test_limit=100 --set train.epochs=2 --set train.log_every=0 --set model.dropout=0.2"
W="conv1.weight conv2.bias fc1.weight fc2.weight"
same_tensors() { # same_tensors FILE_A GROUP_A FILE_B GROUP_B
	for w in $W; do
		h5diff "$1" "$3" "$2/$w" "$4/$w" >/dev/null 2>&1 || return 1
	done
}

"$LOWBIT" train "$CFG" -o "$T/a" --set name=a $SETS --set "train.snapshot_steps=[3, 6]" -q \
	>/dev/null 2>"$T/err"
ok $? "a run with train.snapshot_steps [3, 6]" || diag < "$T/err"
h5ls -r "$T/a/a.h5" >"$T/ls" 2>&1
grep -q "^/snapshots/step_3/weights/conv1.weight " "$T/ls" &&
	grep -q "^/snapshots/step_6/weights/fc2.weight " "$T/ls"
ok $? "snapshots/step_3 and step_6 hold the weights" || diag < "$T/ls"

"$LOWBIT" train "$CFG" -o "$T/k3" --set name=k3 $SETS --set train.max_steps=3 -q >/dev/null 2>"$T/err"
ok $? "the same run stopped after 3 steps"
same_tensors "$T/a/a.h5" /snapshots/step_3/weights "$T/k3/k3.h5" /final/weights
ok $? "the step-3 snapshot equals its final weights"
same_tensors "$T/a/a.h5" /snapshots/step_3/weights "$T/a/a.h5" /init/weights
[ $? -eq 1 ]
ok $? "... and differs from theta0"

# crash before the first checkpoint holds step 3 (resume re-runs step 3), and after it
"$LOWBIT" train "$CFG" -o "$T/c1" --set name=c $SETS --set "train.snapshot_steps=[3, 6]" \
	--debug-crash-at-step 4 -q >/dev/null 2>&1
"$LOWBIT" train "$CFG" -o "$T/c1" --set name=c $SETS --set "train.snapshot_steps=[3, 6]" --resume -q \
	>/dev/null 2>"$T/err"
ok $? "crash at step 4, resume" || diag < "$T/err"
"$LOWBIT" train "$CFG" -o "$T/c2" --set name=c $SETS --set "train.snapshot_steps=[3, 6]" \
	--debug-crash-at-step 6 -q >/dev/null 2>&1
"$LOWBIT" train "$CFG" -o "$T/c2" --set name=c $SETS --set "train.snapshot_steps=[3, 6]" --resume -q \
	>/dev/null 2>"$T/err"
ok $? "crash at step 6, resume" || diag < "$T/err"
same_tensors "$T/a/a.h5" /snapshots/step_3/weights "$T/c1/c.h5" /snapshots/step_3/weights &&
	same_tensors "$T/a/a.h5" /snapshots/step_6/weights "$T/c1/c.h5" /snapshots/step_6/weights &&
	same_tensors "$T/a/a.h5" /snapshots/step_3/weights "$T/c2/c.h5" /snapshots/step_3/weights &&
	same_tensors "$T/a/a.h5" /snapshots/step_6/weights "$T/c2/c.h5" /snapshots/step_6/weights
ok $? "both resumed runs hold the uninterrupted run's snapshots, bit for bit"

"$LOWBIT" train "$CFG" -o "$T/b" --set name=b $SETS --stage-init "$T/a/a.h5:step:3" -q \
	>/dev/null 2>"$T/err"
ok $? "--stage-init RUN.h5:step:3" || diag < "$T/err"
same_tensors "$T/a/a.h5" /snapshots/step_3/weights "$T/b/b.h5" /init/weights
ok $? "... starts from the step-3 snapshot"

fails_with "--stage-init at a step the run did not keep" "a.h5: no snapshot at step 5" \
	"$LOWBIT" train "$CFG" -o "$T/bad" --set name=b $SETS --stage-init "$T/a/a.h5:step:5"
fails_with "--stage-init step:0" "--stage-init: 'step:0' is not a snapshot" \
	"$LOWBIT" train "$CFG" -o "$T/bad" --set name=b $SETS --stage-init "$T/a/a.h5:step:0"
fails_with "a snapshot step after the last step" "train.snapshot_steps: step 9 is after the last step (8: 2 epochs of 4 steps)" \
	"$LOWBIT" train "$CFG" -o "$T/bad" --set name=b $SETS --set "train.snapshot_steps=[9]"
fails_with "snapshot steps out of order" "train.snapshot_steps[1]" \
	"$LOWBIT" train "$CFG" -o "$T/bad" --set name=b $SETS --set "train.snapshot_steps=[5, 5]"
[ ! -e "$T/bad" ]
ok $? "... nothing written"

# a sweep: train -> rewind to step 3 -> fine_tune
cat >"$T/late.yaml" <<YAML
name: late
seed: 3
base:
  model: {arch: lenet5, dropout: 0.2}
  data: {dir: $FMNIST, train_limit: 256, test_limit: 100}
  train: {epochs: 2, batch: 64, log_every: 0}
stages:
  - {name: dense, kind: train}
  - {name: back, kind: rewind, input: dense, rewind_to: "step:3"}
  - {name: again, kind: fine_tune, input: back, set: {train.epochs: 1}}
YAML
timeout 600 "$LOWBIT" sweep "$T/late.yaml" -o "$T/s" -q >/dev/null 2>"$T/err"
ok $? "a sweep with rewind_to: step:3" || diag < "$T/err"
d=$(ls -d "$T/s/trials"/*/ 2>/dev/null | head -n1)
a=$(attr "${d}dense.h5" /config_flat/train.snapshot_steps)
[ "$a" = '"[3]"' ]
ok $? "the input stage's config keeps step 3 (train.snapshot_steps: $a)"
same_tensors "${d}dense.h5" /snapshots/step_3/weights "${d}again.h5" /init/weights
ok $? "the stage after the rewind starts from the input stage's step-3 parameters"
done_testing
