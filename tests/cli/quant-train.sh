#!/bin/sh
# SPDX-License-Identifier: MIT
# Quantized training end to end: every method trains and records per-layer
# bits, size and BOPs; SRQ + per-element DropBits + learned bit-widths + RQ
# activations are bit-identical on 1, 2 and 4 ranks and after a crash and
# resume; stages start from another run's parameters and retrain at its
# learned bits; bad quant settings fail with one message and write nothing.
. "$top_srcdir/tests/cli/lib.sh"
[ -f "$FMNIST/train-images-idx3-ubyte.gz" ] || skip_all "Fashion-MNIST not installed ($FMNIST)"
command -v h5dump >/dev/null && command -v h5diff >/dev/null || skip_all "hdf5-tools not installed"
LENET=$top_srcdir/examples/lenet5-fashion.yaml
TINY="--set model.arch=lenet5 --set data.train_limit=256 --set data.test_limit=128 --set train.epochs=2 --set train.log_every=0 -q"

# every method trains and records the quantization metrics
for m in "uniform uniform" "dorefa dorefa" "wrpn wrpn" "lsq lsq" "sr pact" "rq rq" "rq-st rq-st" "srq srq"; do
	set -- $m
	"$LOWBIT" train "$LENET" -o "$T/m" --set name=$1 $TINY --set quant.weights.method=$1 \
		--set quant.activations.method=$2 --set quant.weights.bits=3 --set quant.activations.bits=3 \
		>/dev/null 2>"$T/err"
	ok $? "weights $1 / activations $2 train" || diag < "$T/err"
	wb=$(val "$T/m/$1.h5" /metrics/w_bits)
	[ "$wb" = "3,3,3,3,3,3,3,3" ]
	ok $? "... metrics/w_bits has 3 bits for the 4 layers in each of 2 epochs ($wb)"
done
ab=$(val "$T/m/uniform.h5" /metrics/a_bits)
case "$ab" in 32,3,3,3,*) ok 0 "conv1 reads the FP input (32), the others get 3-bit activations" ;; *) ok 1 "a_bits $ab" ;; esac
avg=$(val "$T/m/uniform.h5" /metrics/avg_w_bits)
case "$avg" in 3,3,*|3,*) ok 0 "average weight bits 3" ;; *) ok 1 "average weight bits $avg" ;; esac
names=$(h5dump -d /quant/layer_names "$T/m/uniform.h5" 2>/dev/null | grep -o '"[a-z0-9]*"' | tr '\n' ' ')
[ "$names" = '"conv1" "conv2" "fc1" "fc2" ' ]
ok $? "quant/layer_names lists the conv/linear layers ($names)"

# per-layer overrides by glob
"$LOWBIT" train "$LENET" -o "$T/g" --set name=g $TINY --set quant.weights.method=uniform \
	--set 'quant.layers=[{match: "conv*", weights_bits: 8}, {match: fc2, weights_method: none}]' \
	>/dev/null 2>"$T/err"
ok $? "per-layer globs train" || diag < "$T/err"
wb=$(val "$T/g/g.h5" /metrics/w_bits)
case "$wb" in 8,8,4,32,*) ok 0 "conv* at 8 bits, fc1 at the default 4, fc2 FP ($wb)" ;; *) ok 1 "w_bits $wb" ;; esac

# SRQ + DropBits + learned bits + SRQ activations: identical for any rank count
SRQ="$TINY --set name=srq --set train.shards=4 --set train.epochs=3 --set quant.weights.method=srq \
--set quant.activations.method=srq --set quant.dropbits.enabled=true --set quant.learn_bits.enabled=true \
--set quant.learn_bits.warmup_epochs=1 --set quant.learn_bits.ramp_epochs=1 --set quant.learn_bits.lambda=1000"
OBJS="/final/weights /checkpoint/opt_m /metrics/train_loss /metrics/test_acc /metrics/w_bits /quant/learned_w_bits"
if [ -n "${MPIRUN:-}" ] && command -v "$MPIRUN" >/dev/null; then
	for k in 1 2 4; do
		timeout 300 "$MPIRUN" --oversubscribe -n $k "$LOWBIT" train "$LENET" -o "$T/dp$k" $SRQ >/dev/null 2>"$T/err"
		ok $? "SRQ+DropBits+learned bits, $k rank(s)" || diag < "$T/err"
	done
	for k in 2 4; do
		same "$T/dp1/srq.h5" "$T/dp$k/srq.h5" $OBJS
		ok $? "... $k ranks bit-identical to 1 rank (weights, quantizer parameters, bits)"
	done
	timeout 300 "$MPIRUN" --oversubscribe -n 2 "$LOWBIT" train "$LENET" -o "$T/res" $SRQ --debug-crash-at-step 6 >/dev/null 2>&1
	[ $? -ne 0 ]
	ok $? "crash at step 6"
	timeout 300 "$MPIRUN" --oversubscribe -n 4 "$LOWBIT" train "$LENET" -o "$T/res" $SRQ --resume >/dev/null 2>"$T/err"
	ok $? "resume on 4 ranks" || diag < "$T/err"
	same "$T/dp1/srq.h5" "$T/res/srq.h5" $OBJS
	ok $? "... resumed run bit-identical to the uninterrupted one"
else
	"$LOWBIT" train "$LENET" -o "$T/dp1" $SRQ >/dev/null 2>"$T/err"
	ok $? "SRQ+DropBits+learned bits (no MPI launcher: 1 process)" || diag < "$T/err"
fi
lb=$(val "$T/dp1/srq.h5" /quant/learned_w_bits)
echo "# learned bits with lambda 1000: $lb"
case "$lb" in 4,4,4,4) ok 1 "a strong bit penalty lowers some layer's bits ($lb)" ;; *) ok 0 "a strong bit penalty lowers some layer's bits ($lb)" ;; esac

# stages: retrain from theta0 of the learned run at its learned bits
"$LOWBIT" train "$LENET" -o "$T/st" --set name=retrain $TINY --set quant.weights.method=srq \
	--set quant.activations.method=srq --stage-init "$T/dp1/srq.h5:init" \
	--stage-bits "$T/dp1/srq.h5" >/dev/null 2>"$T/err"
ok $? "retrain from theta0 at the learned bits" || diag < "$T/err"
wb=$(val "$T/st/retrain.h5" /quant/learned_w_bits)
[ "$wb" = "$lb" ]
ok $? "... trains at the learned bits ($wb)"
same "$T/dp1/srq.h5" "$T/st/retrain.h5" /init/weights/conv1.weight /init/weights/fc1.weight
ok $? "... starts from the same theta0 weights (grids of layers with fewer bits are rescaled)"
"$LOWBIT" train "$LENET" -o "$T/ft" --set name=ft $TINY --set quant.weights.method=uniform \
	--stage-init "$T/m/uniform.h5:final" >/dev/null 2>"$T/err"
ok $? "fine-tune from the final parameters of another run" || diag < "$T/err"
"$LOWBIT" train "$LENET" -o "$T/cr" --set name=cr $TINY --debug-crash-at-step 3 >/dev/null 2>&1
fails_with "a run that is not done has no final parameters" "the run is not done (status running)" \
	"$LOWBIT" train "$LENET" -o "$T/ft2" --set name=ft2 $TINY --stage-init "$T/cr/cr.h5:final"
"$LOWBIT" train "$LENET" -o "$T/fp" --set name=fp $TINY >/dev/null 2>&1
fails_with "retrain bits from an FP run" "needs a quantized model" \
	"$LOWBIT" train "$LENET" -o "$T/x" --set name=x $TINY --stage-bits "$T/fp/fp.h5"

# bad input: one message naming the key, nothing written
bad() { # bad "description" "fragment" --set...
	d=$1; w=$2; shift 2
	fails_with "$d" "$w" "$LOWBIT" train "$LENET" -o "$T/bad" $TINY "$@"
	[ ! -e "$T/bad" ]
	ok $? "... nothing written"
}
bad "weight bits 0" "quant.weights.bits (from --set): 0 is out of range for uniform weights (allowed: 2 to 16)" \
	--set quant.weights.method=uniform --set quant.weights.bits=0
bad "weight bits 17" "17 is out of range for dorefa weights (allowed: 1 to 16)" --set quant.weights.method=dorefa --set quant.weights.bits=17
bad "SRQ at 9 bits" "(allowed: 2 to 8)" --set quant.weights.method=srq --set quant.weights.bits=9
bad "unknown method" "'fancy' is not a known value (allowed: none, uniform, dorefa, wrpn, pact, lsq, sr, rq, rq-st, srq" --set quant.weights.method=fancy
bad "PACT on weights" "'pact' cannot quantize weights" --set quant.weights.method=pact
bad "activation bits on the layer reading the input" "layer 'conv1' reads the network input" \
	--set quant.activations.method=uniform --set 'quant.layers=[{match: conv1, activations_bits: 8}]'
bad "a glob that matches no layer" "quant.layers[0].match: 'conv9*' matches no conv/linear layer (conv/linear layers: conv1, conv2, fc1, fc2)" \
	--set quant.weights.method=uniform --set 'quant.layers=[{match: "conv9*", weights_bits: 8}]'
bad "a glob matching only a pool" "matches no conv/linear layer" \
	--set quant.weights.method=uniform --set 'quant.layers=[{match: pool1, weights_bits: 8}]'
bad "RQ settings without RQ" "set, but no quantizer uses rq, rq-st or srq" \
	--set quant.weights.method=uniform --set quant.rq.temperature=0.5
bad "midrise grid without RQ/SRQ weights" "quant.rq.grid (from --set): midrise shifts signed weight grids, but no weights use rq, rq-st or srq" \
	--set quant.weights.method=uniform --set quant.activations.method=srq --set quant.rq.grid=midrise
bad "unknown grid" "'odd' is not a known value (allowed: twos, midrise)" \
	--set quant.weights.method=srq --set quant.rq.grid=odd
bad "freeze_rescale without a freeze" "quant.learn_bits.freeze_rescale (from --set): true, but no learned bits are frozen" \
	--set quant.weights.method=srq --set quant.learn_bits.enabled=true --set quant.learn_bits.freeze_rescale=true
bad "PACT setting without PACT" "quant.pact_alpha (from --set): set, but no activations use pact" --set quant.pact_alpha=6
bad "DropBits without SRQ" "DropBits needs weights quantized with srq" \
	--set quant.weights.method=dorefa --set quant.dropbits.enabled=true
bad "learned bits without SRQ" "learned bit-widths need weights quantized with srq" --set quant.learn_bits.enabled=true
bad "bits for FP weights of a layer" "set for a layer whose weights are not quantized" \
	--set 'quant.layers=[{match: fc2, weights_bits: 8}]'
bad "dorefa_scale without DoReFa weights" "quant.dorefa_scale (from --set): set, but no weights use dorefa" \
	--set quant.weights.method=uniform --set quant.dorefa_scale=true
bad "per-channel DoReFa" "true only with uniform or lsq" --set quant.weights.method=dorefa --set quant.weights.per_channel=true
bad "freeze before warm-up ends" "1 is not after the warm-up (allowed: 0 = never, or > warmup_epochs 2)" \
	--set quant.weights.method=srq --set quant.learn_bits.enabled=true --set quant.learn_bits.freeze_epoch=1
fails_with "stage input that does not exist" "cannot start from" \
	"$LOWBIT" train "$LENET" -o "$T/bad" $TINY --stage-init "$T/nope.h5:init"
[ ! -e "$T/bad" ]
ok $? "... nothing written"
fails_with "stage input with a bad snapshot name" "--stage-init: 'middle' is not a snapshot (allowed: RUN.h5:init, RUN.h5:final, RUN.h5:step:K" \
	"$LOWBIT" train "$LENET" -o "$T/bad" $TINY --stage-init "$T/m/uniform.h5:middle"
fails_with "start from a run of another model" "(the models differ)" \
	"$LOWBIT" train "$LENET" -o "$T/bad" $TINY --set model.arch=lenet5-caffe --stage-init "$T/m/uniform.h5:init"
[ ! -e "$T/bad" ]
ok $? "... nothing written"
done_testing
