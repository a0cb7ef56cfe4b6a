#!/bin/sh
# SPDX-License-Identifier: MIT
# lowbit ptq: the (W, A) grid of a finished run is written into the run file
# and printed; batch-norm folding keeps the FP accuracy; 8/8 stays near FP
# and 2-bit weights fall; bad runs and options fail with one message and
# leave the run file untouched.
. "$top_srcdir/tests/cli/lib.sh"
[ -f "$FMNIST/train-images-idx3-ubyte.gz" ] || skip_all "Fashion-MNIST not installed ($FMNIST)"
command -v h5dump >/dev/null || skip_all "hdf5-tools not installed"
LENET=$top_srcdir/examples/lenet5-fashion.yaml
BN=$top_srcdir/tests/configs/bn-small.yaml
# pct FRACTION -> integer hundredths of a percent
pct() { awk -v v="$1" 'BEGIN { printf "%d", v * 10000 + 0.5 }'; }

"$LOWBIT" train "$LENET" -o "$T/r" --set name=fp --set data.train_limit=2000 --set data.test_limit=500 \
	--set train.epochs=2 -q >/dev/null 2>&1
ok $? "a short FP run"
"$LOWBIT" ptq "$T/r/fp.h5" -q >"$T/table" 2>"$T/err"
ok $? "ptq on the finished run" || diag < "$T/err"
grep -q '^| W \\ A | 8 | 6 | 5 | 4 | 3 | 2 |$' "$T/table"
ok $? "a markdown table with the activation bits as columns"
[ "$(grep -c '^| [0-9]' "$T/table")" -eq 6 ]
ok $? "... and one row per weight bit-width"
[ "$(val "$T/r/fp.h5" /ptq/w_bits)" = "8,6,5,4,3,2" ] && [ "$(val "$T/r/fp.h5" /ptq/a_bits)" = "8,6,5,4,3,2" ]
ok $? "ptq/w_bits and ptq/a_bits recorded"
fp=$(attr "$T/r/fp.h5" /ptq/fp_test_acc); run=$(attr "$T/r/fp.h5" /final_test_acc)
[ "$(pct "$fp")" -eq "$(pct "$run")" ]
ok $? "FP accuracy of the PTQ model equals the run's final accuracy ($fp, $run)"
acc=$(val "$T/r/fp.h5" /ptq/test_acc)
a88=$(echo "$acc" | cut -d, -f1); a22=$(echo "$acc" | cut -d, -f36)
d=$(( $(pct "$fp") - $(pct "$a88") )); [ ${d#-} -le 100 ]
ok $? "W8/A8 within 1 point of FP ($a88 vs $fp)"
[ "$(pct "$a22")" -lt "$(pct "$a88")" ]
ok $? "W2/A2 below W8/A8 ($a22 < $a88)"
[ "$(attr "$T/r/fp.h5" /ptq/calibration)" = '"mean"' ]
ok $? "the calibration rule is recorded"
"$LOWBIT" ptq "$T/r/fp.h5" -q -w 4 -a 4 --per-channel --calibration percentile --weight-percentile >/dev/null 2>"$T/err"
ok $? "per-channel, percentile calibration, one cell" || diag < "$T/err"
v=$(val "$T/r/fp.h5" /ptq/test_acc); [ -n "$v" ] && [ "${v#*,}" = "$v" ]
ok $? "... replaces the table (1 x 1)"

"$LOWBIT" train "$BN" -o "$T/bn" -q >/dev/null 2>&1
ok $? "a run with batch norm (with and without conv bias)"
"$LOWBIT" ptq "$T/bn/bn-small.h5" -q -w 16 -a 16 --batches 5 >/dev/null 2>"$T/err"
ok $? "ptq with BN folding" || diag < "$T/err"
fp=$(attr "$T/bn/bn-small.h5" /ptq/fp_test_acc); run=$(attr "$T/bn/bn-small.h5" /final_test_acc)
[ "$(pct "$fp")" -eq "$(pct "$run")" ]
ok $? "folding BN keeps the FP accuracy ($fp, $run)"
a=$(val "$T/bn/bn-small.h5" /ptq/test_acc)
d=$(( $(pct "$a") - $(pct "$run") )); [ ${d#-} -le 50 ]
ok $? "W16/A16 after folding within half a point of FP ($a vs $run)"

# bad input: nothing written
cp "$T/r/fp.h5" "$T/keep.h5"
bad() { d=$1; w=$2; shift 2
	fails_with "$d" "$w" "$LOWBIT" ptq "$@"
	cmp -s "$T/r/fp.h5" "$T/keep.h5"
	ok $? "... run file untouched"
}
bad "weight bits 1" "weight bits 1 out of range (allowed: 2 to 16" "$T/r/fp.h5" -w 8,1
bad "activation bits 17" "activation bits 17 out of range (allowed: 1 to 16)" "$T/r/fp.h5" -a 17
bad "a list that is not a list" "--w-bits: '8;4' is not a list of bit-widths" "$T/r/fp.h5" -w '8;4'
bad "unknown calibration" "--calibration: 'median' is not known (allowed: mean, minmax, percentile)" "$T/r/fp.h5" -c median
bad "more calibration samples than the training set" "the run's training set has 2000" "$T/r/fp.h5" --batches 30 --batch-size 100
bad "two run files" "give exactly one run file" "$T/r/fp.h5" "$T/r/fp.h5"
"$LOWBIT" train "$LENET" -o "$T/c" --set name=cr --set data.train_limit=256 --set train.epochs=2 -q --debug-crash-at-step 3 >/dev/null 2>&1
cp "$T/c/cr.h5" "$T/cr-keep.h5"
fails_with "a run that is not done" "the run is not done (status running): no final weights" "$LOWBIT" ptq "$T/c/cr.h5"
cmp -s "$T/c/cr.h5" "$T/cr-keep.h5"
ok $? "... run file untouched"
echo "not hdf5" > "$T/junk.h5"
fails_with "not an HDF5 file" "junk.h5" "$LOWBIT" ptq "$T/junk.h5"
fails_with "a missing file" "nope.h5" "$LOWBIT" ptq "$T/nope.h5"
[ ! -e "$T/nope.h5" ]
ok $? "... nothing created"
done_testing
