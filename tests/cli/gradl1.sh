#!/bin/sh
# SPDX-License-Identifier: MIT
# Gradient-L1 end to end: a regularised run logs both terms per epoch (0
# before start_epoch), is bit-identical on 1, 2 and 4 ranks (4 shards: one
# rank re-runs its shards for the R-pass, four ranks keep their activations)
# and after a crash and resume; batch norm needs hvp: fd; bad settings fail
# with one message and write nothing.
. "$top_srcdir/tests/cli/lib.sh"
[ -f "$FMNIST/train-images-idx3-ubyte.gz" ] || skip_all "Fashion-MNIST not installed ($FMNIST)"
command -v h5dump >/dev/null && command -v h5diff >/dev/null || skip_all "hdf5-tools not installed"
LENET=$top_srcdir/examples/lenet5-fashion.yaml
BN=$top_srcdir/tests/configs/bn-small.yaml
TINY="--set model.arch=lenet5 --set data.train_limit=256 --set data.test_limit=128 --set train.epochs=3 --set train.log_every=0 -q"

GL="$TINY --set name=gl --set train.shards=4 --set gradl1.lambda=0.001 --set gradl1.start_epoch=1"
OBJS="/final/weights /checkpoint/opt_m /metrics/train_loss /metrics/test_acc /metrics/gradl1_w /metrics/gradl1_a"
"$LOWBIT" train "$LENET" -o "$T/plain" $TINY --set name=gl --set train.shards=4 >/dev/null 2>"$T/err"
ok $? "the same run without the regulariser" || diag < "$T/err"
if [ -n "${MPIRUN:-}" ] && command -v "$MPIRUN" >/dev/null; then
	for k in 1 2 4; do
		timeout 300 "$MPIRUN" --oversubscribe -n $k "$LOWBIT" train "$LENET" -o "$T/dp$k" $GL >/dev/null 2>"$T/err"
		ok $? "Gradient-L1 (R-op), $k rank(s)" || diag < "$T/err"
	done
	for k in 2 4; do
		same "$T/dp1/gl.h5" "$T/dp$k/gl.h5" $OBJS
		ok $? "... $k ranks bit-identical to 1 rank"
	done
	timeout 300 "$MPIRUN" --oversubscribe -n 2 "$LOWBIT" train "$LENET" -o "$T/res" $GL --debug-crash-at-step 7 >/dev/null 2>&1
	[ $? -ne 0 ]
	ok $? "crash at step 7 (inside the regularised epochs)"
	timeout 300 "$MPIRUN" --oversubscribe -n 4 "$LOWBIT" train "$LENET" -o "$T/res" $GL --resume >/dev/null 2>"$T/err"
	ok $? "resume on 4 ranks" || diag < "$T/err"
	same "$T/dp1/gl.h5" "$T/res/gl.h5" $OBJS
	ok $? "... resumed run bit-identical to the uninterrupted one"
else
	"$LOWBIT" train "$LENET" -o "$T/dp1" $GL >/dev/null 2>"$T/err"
	ok $? "Gradient-L1 (no MPI launcher: 1 process)" || diag < "$T/err"
fi
w=$(val "$T/dp1/gl.h5" /metrics/gradl1_w)
a=$(val "$T/dp1/gl.h5" /metrics/gradl1_a)
echo "# gradl1_w $w; gradl1_a $a"
case "$w" in 0,[0-9]*,[0-9]*) case "$w" in 0,0,*|*,0) ok 1 "weight term: 0 in epoch 1, positive after ($w)" ;;
	*) ok 0 "weight term: 0 in epoch 1, positive after ($w)" ;; esac ;;
	*) ok 1 "weight term: 0 in epoch 1, positive after ($w)" ;; esac
case "$a" in 0,0,*|*,0) ok 1 "activation term positive after start_epoch ($a)" ;; 0,*) ok 0 "activation term positive after start_epoch ($a)" ;; *) ok 1 "activation term ($a)" ;; esac
same "$T/plain/gl.h5" "$T/dp1/gl.h5" /metrics/train_loss >/dev/null 2>&1
[ $? -ne 0 ]
ok $? "the regulariser changes training"
l1=$(val "$T/plain/gl.h5" /metrics/train_loss | cut -d, -f1)
l2=$(val "$T/dp1/gl.h5" /metrics/train_loss | cut -d, -f1)
[ "$l1" = "$l2" ]
ok $? "... but not the epoch before start_epoch ($l1 = $l2)"

# the two lambdas separately; finite differences
"$LOWBIT" train "$LENET" -o "$T/sep" $TINY --set name=sep --set gradl1.lambda_a=0.001 >/dev/null 2>"$T/err"
ok $? "activation term only (lambda_a)" || diag < "$T/err"
w=$(val "$T/sep/sep.h5" /metrics/gradl1_w)
[ "$w" = "0,0,0" ]
ok $? "... weight term 0 ($w)"
"$LOWBIT" train "$LENET" -o "$T/fd" $TINY --set name=fd --set gradl1.lambda=0.001 --set gradl1.hvp=fd >/dev/null 2>"$T/err"
ok $? "hvp: fd" || diag < "$T/err"

# batch norm: no R-operator; fd works
fails_with "R-op on a model with batch norm" "layer 'bn1'" \
	"$LOWBIT" train "$BN" -o "$T/bad" -q --set gradl1.lambda=0.001
[ ! -e "$T/bad" ]
ok $? "... nothing written"
"$LOWBIT" train "$BN" -o "$T/bnfd" -q --set gradl1.lambda=0.001 --set gradl1.hvp=fd >/dev/null 2>"$T/err"
ok $? "batch norm with hvp: fd trains" || diag < "$T/err"

bad() { # bad "description" "fragment" --set...
	d=$1; w=$2; shift 2
	fails_with "$d" "$w" "$LOWBIT" train "$LENET" -o "$T/bad" $TINY "$@"
	[ ! -e "$T/bad" ]
	ok $? "... nothing written"
}
bad "negative lambda" "gradl1.lambda (from --set): -0.1 is out of range (allowed: >= 0)" --set gradl1.lambda=-0.1
bad "negative lambda_a" "gradl1.lambda_a (from --set): -1 is out of range (allowed: >= 0)" --set gradl1.lambda_a=-1
bad "lambda with lambda_w" "set together with gradl1.lambda" --set gradl1.lambda=0.1 --set gradl1.lambda_w=0.1
bad "start_epoch past the end" "gradl1.start_epoch (from --set): 3 leaves no epoch with the regulariser" \
	--set gradl1.lambda=0.1 --set gradl1.start_epoch=3
bad "settings while off" "gradl1 (from --set): settings given but the regulariser is off" --set gradl1.hvp=fd
bad "with a quantizer" "Gradient-L1 trains a full-precision model" --set gradl1.lambda=0.1 --set quant.weights.method=uniform
bad "fd_eps 0" "gradl1.fd_eps (from --set): 0 is out of range" --set gradl1.lambda=0.1 --set gradl1.fd_eps=0
done_testing
