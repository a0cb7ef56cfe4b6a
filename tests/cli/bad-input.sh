#!/bin/sh
# SPDX-License-Identifier: MIT
# Bad input to `lowbit train`: each case gets one clear message naming the
# file, key or line, a nonzero exit, and nothing written or overwritten.
. "$top_srcdir/tests/cli/lib.sh"
[ -f "$FMNIST/train-images-idx3-ubyte.gz" ] || skip_all "Fashion-MNIST not installed ($FMNIST)"
CFG=$top_srcdir/examples/lenet5-fashion.yaml
OUT=$T/runs
SMALL="--set data.train_limit=256 --set data.test_limit=100 --set train.epochs=1"

nothing_written() { # the output folder must not exist or be empty
	[ ! -e "$OUT" ] || [ -z "$(ls -A "$OUT")" ]
}

check() { # check "description" "message fragment" args...
	desc=$1; want=$2; shift 2
	fails_with "$desc" "$want" "$LOWBIT" train "$@"
	nothing_written
	ok $? "... nothing written ($desc)"
}

cfg() { # cfg NAME: write a config from stdin to $T/NAME.yaml
	cat > "$T/$1.yaml"
}

check "missing config file" "$T/nope.yaml" "$T/nope.yaml" -o "$OUT"
printf 'model:\n  arch: lenet5-caffe\n  dropoutt: 0.1\n' | cfg unknown-key
check "unknown nested key" "dropoutt" "$T/unknown-key.yaml" -o "$OUT"
printf 'optimizer:\n  lr: fast\n' | cfg wrong-type
check "wrong type" "lr" "$T/wrong-type.yaml" -o "$OUT"
printf 'train:\n  batch: 0\n' | cfg batch0
check "batch 0" "batch" "$T/batch0.yaml" -o "$OUT"
printf 'optimizer:\n  lr: -0.1\n' | cfg neglr
check "negative lr" "lr" "$T/neglr.yaml" -o "$OUT"
printf 'model:\n  arch: lenet7\n' | cfg badarch
check "unknown model" "lenet7" "$T/badarch.yaml" -o "$OUT"
printf 'model: [1, 2\n' | cfg syntax
check "YAML syntax error" "syntax.yaml" "$T/syntax.yaml" -o "$OUT"
check "unknown override key" "lrr" "$CFG" -o "$OUT" --set optimizer.lrr=0.1
check "malformed override" "optimizer.lr" "$CFG" -o "$OUT" --set optimizer.lr
check "out-of-range override" "batch" "$CFG" -o "$OUT" --set train.batch=0
check "unknown option" "--frobnicate" "$CFG" -o "$OUT" --frobnicate
check "no config file" "no config file" -o "$OUT"

# datasets
D=$T/data
mkdir -p "$D"
IDX="--set data.dataset=idx --set data.dir=$D"
check "missing dataset folder" "$T/none/train-images-idx3-ubyte.gz" "$CFG" -o "$OUT" --set data.dir="$T/none"
cp "$FMNIST/t10k-images-idx3-ubyte.gz" "$D/ti.gz"
cp "$FMNIST/t10k-labels-idx1-ubyte.gz" "$D/tl.gz"
gzip -dc "$FMNIST/train-images-idx3-ubyte.gz" | head -c 100000 > "$D/trunc-images"
cp "$FMNIST/train-labels-idx1-ubyte.gz" "$D/labels.gz"
check "truncated image file" "trunc-images" "$CFG" -o "$OUT" $IDX --set data.train_images=trunc-images \
	--set data.train_labels=labels.gz --set data.test_images=ti.gz --set data.test_labels=tl.gz
check "labels given as images (wrong magic)" "labels.gz" "$CFG" -o "$OUT" $IDX --set data.train_images=labels.gz \
	--set data.train_labels=labels.gz --set data.test_images=ti.gz --set data.test_labels=tl.gz
check "count mismatch" "labels.gz" "$CFG" -o "$OUT" $IDX --set data.train_images=ti.gz \
	--set data.train_labels=labels.gz --set data.test_images=ti.gz --set data.test_labels=tl.gz
: > "$D/empty"
check "empty label file" "empty" "$CFG" -o "$OUT" $IDX --set data.train_images=ti.gz \
	--set data.train_labels=empty --set data.test_images=ti.gz --set data.test_labels=tl.gz

# output folder that cannot be created (a regular file is in the way; works as root too)
: > "$T/file"
fails_with "unwritable output folder" "$T/file" "$LOWBIT" train "$CFG" -o "$T/file/runs" $SMALL
[ ! -s "$T/file" ]
ok $? "... nothing written (unwritable output folder)"
done_testing
