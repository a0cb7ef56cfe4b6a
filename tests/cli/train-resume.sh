#!/bin/sh
# SPDX-License-Identifier: MIT
# `lowbit train` end to end on a slice of Fashion-MNIST: the run file's
# content, refusal to overwrite, and --resume after a crash ending with
# weights bit-identical to an uninterrupted run.
. "$top_srcdir/tests/cli/lib.sh"
[ -f "$FMNIST/train-images-idx3-ubyte.gz" ] || skip_all "Fashion-MNIST not installed ($FMNIST)"
command -v h5diff >/dev/null || skip_all "h5diff (hdf5-tools) not installed"
CFG=$top_srcdir/examples/lenet5-fashion.yaml
SETS="--set data.train_limit=1024 --set data.test_limit=500 --set train.epochs=3 --set train.log_every=0 --set model.dropout=0.2"

"$LOWBIT" train "$CFG" -o "$T/ref" --set name=r $SETS >"$T/ref.out" 2>"$T/ref.err"
ok $? "uninterrupted run completes"
diag < "$T/ref.err"
[ "$(tail -n 1 "$T/ref.out")" = "$T/ref/r.h5" ]
ok $? "prints the run file path on stdout"
h5dump -a /status "$T/ref/r.h5" 2>/dev/null | grep -q '"done"'
ok $? "run file status is done"
rows=$(h5dump -H -d /metrics/test_acc "$T/ref/r.h5" 2>/dev/null | grep -m1 -o 'DATASPACE  SIMPLE { ( [0-9]*' | grep -o '[0-9]*$')
[ "$rows" = 3 ]
ok $? "metrics/test_acc has one row per epoch ($rows)"
h5dump -H "$T/ref/r.h5" | grep -q 'DATASET "conv1.weight"'
ok $? "final weights recorded"

sum=$(md5sum < "$T/ref/r.h5")
fails_with "a second run refuses to overwrite" "already exists" \
	"$LOWBIT" train "$CFG" -o "$T/ref" --set name=r $SETS
[ "$(md5sum < "$T/ref/r.h5")" = "$sum" ]
ok $? "... and leaves the file untouched"
fails_with "--resume of another configuration is refused" "written by another configuration" \
	"$LOWBIT" train "$CFG" -o "$T/ref" --set name=r $SETS --set optimizer.lr=0.05 --resume
[ "$(md5sum < "$T/ref/r.h5")" = "$sum" ]
ok $? "... and leaves the file untouched"
"$LOWBIT" train "$CFG" -o "$T/ref" --set name=r $SETS --resume >/dev/null 2>"$T/err"
[ $? -eq 0 ] && grep -q "already complete" "$T/err"
ok $? "--resume of a finished run does nothing"

# 1024 samples / batch 64 = 16 steps per epoch: step 24 is inside epoch 2.
"$LOWBIT" train "$CFG" -o "$T/crash" --set name=r $SETS --debug-crash-at-step 24 >/dev/null 2>"$T/err"
[ $? -eq 9 ]
ok $? "simulated crash in epoch 2 exits 9"
h5dump -a /checkpoint/epoch "$T/crash/r.h5" 2>/dev/null | grep -q '(0): 1$'
ok $? "the run file holds the epoch-1 checkpoint"
"$LOWBIT" train "$CFG" -o "$T/crash" --set name=r $SETS --resume >/dev/null 2>"$T/err"
ok $? "--resume completes the run"
h5diff "$T/ref/r.h5" "$T/crash/r.h5" /final/weights >"$T/diff" 2>&1
ok $? "resumed final weights are bit-identical to the uninterrupted run"
diag < "$T/diff"
h5diff "$T/ref/r.h5" "$T/crash/r.h5" /metrics/test_acc >/dev/null 2>&1 &&
	h5diff "$T/ref/r.h5" "$T/crash/r.h5" /metrics/train_loss >/dev/null 2>&1
ok $? "resumed per-epoch metrics equal the uninterrupted run's"
h5diff "$T/ref/r.h5" "$T/crash/r.h5" /checkpoint/opt_m >/dev/null 2>&1
ok $? "resumed optimizer state equals the uninterrupted run's"
done_testing
