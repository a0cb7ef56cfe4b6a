#!/bin/sh
# SPDX-License-Identifier: MIT
# WaveQ and BSQ end to end: WaveQ learns a beta per layer (logged, bits =
# ceil(beta) + 1) or regularises DoReFa at fixed bits, and a fine-tune
# stage takes the learned bits; BSQ starts from an FP run, re-quantizes and
# drops bit planes, logs plane densities, is bit-identical on 1, 2 and 4
# ranks and across a crash, and its fine-tune stage starts from exactly its
# weights; bad settings fail with one message and write nothing.
. "$top_srcdir/tests/cli/lib.sh"
[ -f "$FMNIST/train-images-idx3-ubyte.gz" ] || skip_all "Fashion-MNIST not installed ($FMNIST)"
command -v h5dump >/dev/null && command -v h5diff >/dev/null || skip_all "hdf5-tools not installed"
LENET=$top_srcdir/examples/lenet5-fashion.yaml
TINY="--set model.arch=lenet5 --set data.train_limit=256 --set data.test_limit=128 --set train.epochs=3 --set train.log_every=0 -q"

# ---- WaveQ ----
"$LOWBIT" train "$LENET" -o "$T/wq" $TINY --set name=learn --set quant.waveq.enabled=true \
	--set quant.waveq.lambda_beta=1 --set quant.waveq.schedule=constant >/dev/null 2>"$T/err"
ok $? "WaveQ learns beta on FP weights" || diag < "$T/err"
beta=$(val "$T/wq/learn.h5" /metrics/waveq_beta)
wb=$(val "$T/wq/learn.h5" /metrics/w_bits)
lb=$(val "$T/wq/learn.h5" /quant/learned_w_bits)
echo "# beta per epoch $beta; w_bits $wb; learned $lb"
b0=$(echo "$beta" | cut -d, -f1); bl=$(echo "$beta" | cut -d, -f9)
awk -v a="$b0" -v b="$bl" 'BEGIN { exit !(b < a && a < 8 && b > 1) }'
ok $? "... beta falls under the bit pressure (conv1: epoch 1 $b0 -> epoch 3 $bl)"
want=$(echo "$beta" | awk -F, '{ for (i = NF - 3; i <= NF; i++) { c = int($i); if (c < $i) c++; printf "%s%d", (i > NF - 3 ? "," : ""), c + 1 } }')
[ "$lb" = "$want" ]
ok $? "... learned bits = ceil(beta) + 1 per layer ($lb, want $want)"
"$LOWBIT" train "$LENET" -o "$T/wq" $TINY --set name=ft --set quant.weights.method=dorefa \
	--set quant.weights.bits=8 --set quant.waveq.enabled=true --set quant.waveq.learn_beta=false \
	--stage-init "$T/wq/learn.h5:final" --stage-bits "$T/wq/learn.h5" >/dev/null 2>"$T/err"
ok $? "fine-tune at the learned bits (DoReFa, beta = bits - 1 fixed)" || diag < "$T/err"
ft=$(val "$T/wq/ft.h5" /quant/learned_w_bits)
[ "$ft" = "$lb" ]
ok $? "... at the learned bits ($ft)"
pen=$(val "$T/wq/ft.h5" /metrics/bits_penalty | cut -d, -f3)
awk -v p="$pen" 'BEGIN { exit !(p > 0) }'
ok $? "... the sinusoid is on (penalty $pen)"
"$LOWBIT" train "$LENET" -o "$T/wq" $TINY --set name=plain --set quant.weights.method=dorefa \
	--set quant.weights.bits=3 --set quant.dorefa_scale=true --set optimizer.kind=adam \
	--set optimizer.lr=0.001 >/dev/null 2>&1
"$LOWBIT" train "$LENET" -o "$T/wq" $TINY --set name=fixed --set quant.weights.method=dorefa \
	--set quant.weights.bits=3 --set quant.dorefa_scale=true --set optimizer.kind=adam \
	--set optimizer.lr=0.001 --set quant.waveq.enabled=true --set quant.waveq.learn_beta=false \
	--set quant.waveq.align=dorefa --set quant.waveq.lambda_q=1000 >/dev/null 2>"$T/err"
ok $? "WaveQ on DoReFa at 3 bits" || diag < "$T/err"
same "$T/wq/plain.h5" "$T/wq/fixed.h5" /metrics/train_loss >/dev/null 2>&1
[ $? -ne 0 ]
ok $? "... the regulariser changes training"

# ---- BSQ ----
"$LOWBIT" train "$LENET" -o "$T/b" $TINY --set name=fp >/dev/null 2>"$T/err"
ok $? "FP run to start from" || diag < "$T/err"
BSQ="$TINY --set name=bsq --set train.shards=4 --set quant.weights.method=bsq --set quant.weights.bits=6 \
--set quant.bsq.alpha=1000 --set quant.bsq.requant_every=1 --set optimizer.kind=sgd --set optimizer.lr=0.02 \
--stage-init $T/b/fp.h5:final"
STEP='optimizer.groups=[{match: "*.wq.step", lr_scale: 0.01}]'
OBJS="/final/weights /checkpoint/opt_m /metrics/train_loss /metrics/test_acc /metrics/w_bits /metrics/bsq_density /quant/learned_w_bits"
if [ -n "${MPIRUN:-}" ] && command -v "$MPIRUN" >/dev/null; then
	for k in 1 2 4; do
		timeout 300 "$MPIRUN" --oversubscribe -n $k "$LOWBIT" train "$LENET" -o "$T/dp$k" $BSQ --set "$STEP" >/dev/null 2>"$T/err"
		ok $? "BSQ, $k rank(s)" || diag < "$T/err"
	done
	for k in 2 4; do
		same "$T/dp1/bsq.h5" "$T/dp$k/bsq.h5" $OBJS
		ok $? "... $k ranks bit-identical to 1 rank"
	done
	timeout 300 "$MPIRUN" --oversubscribe -n 2 "$LOWBIT" train "$LENET" -o "$T/res" $BSQ --set "$STEP" --debug-crash-at-step 6 >/dev/null 2>&1
	[ $? -ne 0 ]
	ok $? "crash at step 6 (after a re-quantization)"
	timeout 300 "$MPIRUN" --oversubscribe -n 4 "$LOWBIT" train "$LENET" -o "$T/res" $BSQ --set "$STEP" --resume >/dev/null 2>"$T/err"
	ok $? "resume on 4 ranks" || diag < "$T/err"
	same "$T/dp1/bsq.h5" "$T/res/bsq.h5" $OBJS
	ok $? "... resumed run bit-identical to the uninterrupted one"
else
	"$LOWBIT" train "$LENET" -o "$T/dp1" $BSQ --set "$STEP" >/dev/null 2>"$T/err"
	ok $? "BSQ (no MPI launcher: 1 process)" || diag < "$T/err"
fi
wb=$(val "$T/dp1/bsq.h5" /metrics/w_bits)
lb=$(val "$T/dp1/bsq.h5" /quant/learned_w_bits)
echo "# BSQ w_bits per epoch $wb; final $lb"
case "$wb" in 6,6,6,6,*) ok 0 "epoch 1 at the starting 6 bits" ;; *) ok 1 "epoch 1 at 6 bits ($wb)" ;; esac
case "$lb" in 6,6,6,6) ok 1 "a strong alpha drops bit planes ($lb)" ;; *) ok 0 "a strong alpha drops bit planes ($lb)" ;; esac
nz=$(h5dump -H -d /metrics/bsq_density "$T/dp1/bsq.h5" 2>/dev/null | grep -o 'SIMPLE { ( [0-9]*, [0-9]* )')
[ "$nz" = "SIMPLE { ( 3, 32 )" ]
ok $? "metrics/bsq_density: epochs x (4 layers x 8 planes) ($nz)"
acc=$(attr "$T/dp1/bsq.h5" /final_test_acc)
"$LOWBIT" train "$LENET" -o "$T/b" $TINY --set name=ft --set train.epochs=1 --set quant.weights.method=bsq \
	--set quant.weights.bits=6 --set quant.bsq.finetune=true --set optimizer.kind=sgd \
	--set 'optimizer.groups=[{match: "*", lr_scale: 0}]' \
	--stage-init "$T/dp1/bsq.h5:final" --stage-bits "$T/dp1/bsq.h5" >/dev/null 2>"$T/err"
ok $? "BSQ fine-tune stage from the BSQ run" || diag < "$T/err"
acc2=$(attr "$T/b/ft.h5" /final_test_acc)
[ -n "$acc" ] && [ "$acc" = "$acc2" ]
ok $? "... with learning rate 0 it evaluates exactly the BSQ run's weights ($acc = $acc2)"
same "$T/dp1/bsq.h5" "$T/b/ft.h5" /final/weights/conv1.weight /final/weights/fc1.weight
ok $? "... effective weights bit-identical"

bad() { # bad "description" "fragment" --set...
	d=$1; w=$2; shift 2
	fails_with "$d" "$w" "$LOWBIT" train "$LENET" -o "$T/bad" $TINY "$@"
	[ ! -e "$T/bad" ]
	ok $? "... nothing written"
}
bad "WaveQ lambda_q < 0" "quant.waveq.lambda_q (from --set): -1 is out of range (allowed: >= 0)" \
	--set quant.waveq.enabled=true --set quant.waveq.lambda_q=-1
bad "WaveQ lambda_beta < 0" "quant.waveq.lambda_beta (from --set): -0.5 is out of range" \
	--set quant.waveq.enabled=true --set quant.waveq.lambda_beta=-0.5
bad "WaveQ beta bounds inverted" "quant.waveq.beta_max (from --set): 2 is out of range (allowed: beta_min 4 < beta_max <= 15)" \
	--set quant.waveq.enabled=true --set quant.waveq.beta_min=4 --set quant.waveq.beta_max=2
bad "WaveQ on uniform weights" "'uniform' while WaveQ" --set quant.waveq.enabled=true --set quant.weights.method=uniform
bad "WaveQ settings while off" "settings given but WaveQ is off" --set quant.waveq.lambda_q=2
bad "BSQ start bits 0" "quant.weights.bits (from --set): 0 is out of range for bsq weights (allowed: 1 to 16)" \
	--set quant.weights.method=bsq --set quant.weights.bits=0
bad "BSQ start bits 17" "17 is out of range for bsq weights (allowed: 1 to 16)" \
	--set quant.weights.method=bsq --set quant.weights.bits=17
bad "BSQ re-quantization interval 0" "quant.bsq.requant_every (from --set): 0 is out of range" \
	--set quant.weights.method=bsq --set quant.bsq.requant_every=0
bad "BSQ alpha < 0" "quant.bsq.alpha (from --set): -1 is out of range" \
	--set quant.weights.method=bsq --set quant.bsq.alpha=-1
bad "BSQ max_bits below the start" "quant.bsq.max_bits (from --set): 4 is out of range (allowed: the starting bits 8 to 16)" \
	--set quant.weights.method=bsq --set quant.weights.bits=8 --set quant.bsq.max_bits=4
bad "BSQ on activations" "'bsq' cannot quantize activations" --set quant.activations.method=bsq
bad "BSQ settings without BSQ" "quant.bsq (from --set): set, but no weights use bsq" --set quant.bsq.alpha=1
done_testing
