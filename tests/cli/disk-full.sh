#!/bin/sh
# SPDX-License-Identifier: MIT
# A checkpoint that cannot be written (the disk fills up) is reported, leaves
# no temporary file, and keeps the last good checkpoint; --resume once there
# is room ends bit-identical to an uninterrupted run. "Disk full" is a file
# size limit (ulimit -f, SIGXFSZ ignored: writes past it fail with EFBIG, as
# they fail with ENOSPC on a full disk), set so that the checkpoints of the
# first epochs fit and the last one, which adds the final weights, does not.
. "$top_srcdir/tests/cli/lib.sh"
[ -f "$FMNIST/train-images-idx3-ubyte.gz" ] || skip_all "Fashion-MNIST not installed ($FMNIST)"
command -v h5diff >/dev/null || skip_all "h5diff (hdf5-tools) not installed"
CFG=$top_srcdir/examples/lenet5-fashion.yaml
SETS="--set data.train_limit=256 --set data.test_limit=100 --set train.epochs=3 --set train.log_every=0"

"$LOWBIT" train "$CFG" -o "$T/ref" --set name=r $SETS -q >/dev/null 2>"$T/err"
ok $? "an uninterrupted run" || diag < "$T/err"
final=$(wc -c < "$T/ref/r.h5")
# ulimit -f counts blocks of 512 bytes in dash, 1024 in bash: measure it
unit=$( (trap '' XFSZ; ulimit -f 2; dd if=/dev/zero of="$T/probe" bs=256 count=16 2>/dev/null); wc -c < "$T/probe")
unit=$((unit / 2))
# room for the epochs' checkpoints, not for the last one: the finished file
# adds the final weights (1.7 MB here) to them, so 64 KiB less than it fits
# every checkpoint but the last
limit=$(( (final - 65536) / unit ))
diag <<EOF
run file: $final bytes finished; limit $limit blocks of $unit bytes
EOF
(trap '' XFSZ; ulimit -f "$limit"; exec "$LOWBIT" train "$CFG" -o "$T/cut" --set name=r $SETS -q) \
	>/dev/null 2>"$T/err"
rc=$?
[ $rc -eq 1 ] && grep -q "cannot write '.*/r.h5.tmp': File too large" "$T/err"
ok $? "the last checkpoint cannot be written: exit 1 and a message naming the file (exit $rc)" ||
	diag < "$T/err"
diag < "$T/err"
[ ! -e "$T/cut/r.h5.tmp" ]
ok $? "no temporary file left"
st=$(attr "$T/cut/r.h5" /status)
ep=$(attr "$T/cut/r.h5" /checkpoint/epoch)
[ "$st" = '"running"' ] && [ "$ep" = 2 ]
ok $? "the last good checkpoint is kept (status $st, epoch $ep)"
"$LOWBIT" train "$CFG" -o "$T/cut" --set name=r $SETS --resume -q >/dev/null 2>"$T/err"
ok $? "--resume once there is room" || diag < "$T/err"
same "$T/ref/r.h5" "$T/cut/r.h5" /final/weights /checkpoint/params /checkpoint/opt_m \
	/metrics/train_loss /metrics/test_acc
ok $? "... ends bit-identical to the uninterrupted run"
done_testing
