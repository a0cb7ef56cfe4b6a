#!/bin/sh
# SPDX-License-Identifier: MIT
# Data-parallel training under mpirun with 1, 2 and 4 ranks: deterministic
# mode gives bit-identical run files (weights, BN statistics, optimizer
# state, metrics) for every rank count; fast mode is equal to itself at a
# fixed rank count; unsupported rank counts, mismatched configs and a dataset
# missing on one rank fail cleanly on every rank (under a timeout: no hang).
. "$top_srcdir/tests/cli/lib.sh"
[ -f "$FMNIST/train-images-idx3-ubyte.gz" ] || skip_all "Fashion-MNIST not installed ($FMNIST)"
[ -n "${MPIRUN:-}" ] && command -v "$MPIRUN" >/dev/null || skip_all "no MPI launcher"
command -v h5diff >/dev/null || skip_all "h5diff (hdf5-tools) not installed"
run() { # run K args...: lowbit train under mpirun with K ranks, bounded in time
	k=$1; shift
	timeout 300 "$MPIRUN" --oversubscribe -n "$k" "$LOWBIT" train "$@"
}
LENET=$top_srcdir/examples/lenet5-fashion.yaml
BN=$top_srcdir/tests/configs/bn-small.yaml
SMALL="--set data.train_limit=512 --set data.test_limit=200 --set train.epochs=2 --set train.shards=4 --set train.log_every=0 -q"
OBJS="/final/weights /checkpoint/opt_m /metrics/train_loss /metrics/train_acc /metrics/test_loss /metrics/test_acc"
OBJS_BN="$OBJS /final/buffers"

for k in 1 2 4; do
	run $k "$LENET" -o "$T/fp$k" $SMALL >/dev/null 2>"$T/err"
	ok $? "FP LeNet-5, deterministic, $k rank(s)"
	run $k "$BN" -o "$T/bn$k" -q >/dev/null 2>"$T/err"
	ok $? "CNN with BN, residual add and dropout, deterministic, $k rank(s)"
	diag < "$T/err"
done
for k in 2 4; do
	same "$T/fp1/lenet5-fashion.h5" "$T/fp$k/lenet5-fashion.h5" $OBJS
	ok $? "FP: $k ranks bit-identical to 1 rank (weights, optimizer state, metrics)"
	same "$T/bn1/bn-small.h5" "$T/bn$k/bn-small.h5" $OBJS_BN
	ok $? "BN: $k ranks bit-identical to 1 rank (incl. running statistics)"
done

FAST="$SMALL --set train.parallel=fast"
run 2 "$LENET" -o "$T/fastA" $FAST >/dev/null 2>&1
ok $? "fast mode, 2 ranks, first run"
run 2 "$LENET" -o "$T/fastB" $FAST >/dev/null 2>&1
ok $? "fast mode, 2 ranks, second run"
same "$T/fastA/lenet5-fashion.h5" "$T/fastB/lenet5-fashion.h5" $OBJS
ok $? "fast mode is equal to itself at the same rank count"

# resume under MPI: crash at step 12 (epoch 2 of 8 steps), resume on another rank count
run 2 "$LENET" -o "$T/res" $SMALL --debug-crash-at-step 12 >/dev/null 2>&1
[ $? -ne 0 ]
ok $? "simulated crash under mpirun stops the run"
run 4 "$LENET" -o "$T/res" $SMALL --resume >/dev/null 2>"$T/err"
ok $? "resume on 4 ranks after a crash on 2"
same "$T/fp1/lenet5-fashion.h5" "$T/res/lenet5-fashion.h5" $OBJS
ok $? "resumed run bit-identical to the uninterrupted 1-rank run"

fails_with "3 ranks with 4 shards is refused" "rank counts allowed with 4 shards: 1, 2, 4" \
	run 3 "$LENET" -o "$T/bad3" $SMALL
[ ! -e "$T/bad3" ]
ok $? "... nothing written"
fails_with "ranks with different configs are refused" "different configurations" \
	timeout 300 "$MPIRUN" --oversubscribe -n 1 "$LOWBIT" train "$LENET" -o "$T/mm" $SMALL : \
	-n 1 "$LOWBIT" train "$LENET" -o "$T/mm" $SMALL --set optimizer.lr=0.5
[ ! -e "$T/mm" ]
ok $? "... nothing written"
# a dataset missing on one rank: data.dir is relative and rank 1 runs elsewhere
mkdir -p "$T/wd0/data" "$T/wd1"
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
	ln -s "$FMNIST/$f" "$T/wd0/data/$f"
done
fails_with "a dataset missing on rank 1 stops every rank" "rank 1: cannot open 'data/train-images-idx3-ubyte.gz'" \
	timeout 300 "$MPIRUN" --oversubscribe -n 1 -wdir "$T/wd0" "$LOWBIT" train "$LENET" -o "$T/miss" $SMALL --set data.dir=data : \
	-n 1 -wdir "$T/wd1" "$LOWBIT" train "$LENET" -o "$T/miss" $SMALL --set data.dir=data
[ ! -e "$T/miss" ] && [ ! -e "$T/wd0/$T/miss" ]
ok $? "... nothing written"
done_testing
