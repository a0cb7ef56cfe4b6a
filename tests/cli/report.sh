#!/bin/sh
# SPDX-License-Identifier: MIT
# lowbit report on a results folder built from short real runs (an FP and a
# quantized point, two seeds each, one PTQ grid): the tables hold the values
# of the HDF5 files (read back here with h5dump), the Pareto flags and the
# over-seeds means agree with them, the figures come with data and script;
# then gnuplot missing or failing, a still-running sweep, and bad input:
# one message, the documented exit status, no partial file.
. "$top_srcdir/tests/cli/lib.sh"
[ -f "$FMNIST/train-images-idx3-ubyte.gz" ] || skip_all "Fashion-MNIST not installed ($FMNIST)"
command -v h5dump >/dev/null || skip_all "hdf5-tools not installed"
# val FILE DATASET -> comma-separated values; attr FILE ATTR -> the value
val() { rm -f "$T/val"; h5dump -m '%.17g' -d "$2" -y -w 0 -o "$T/val" "$1" >/dev/null 2>&1 || return 1; tr -d ' \n' < "$T/val"; }
attr() { h5dump -m '%.17g' -a "$2" "$1" 2>/dev/null | sed -n 's/^ *(0): *//p' | head -n1; }
# last VALUES [WIDTH] -> the last row of a comma list, joined by /
last() { echo "$1" | tr ',' '\n' | tail -n "${2:-1}" | paste -sd/ -; }
# same A B: numerically equal (relative 1e-12)
same() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; m = (a < 0 ? -a : a); exit !(a != "" && b != "" && d <= 1e-12 * (m > 1 ? m : 1)) }'; }
# col FILE NAME: the column number of NAME in a CSV header
col() { head -n1 "$1" | tr ',' '\n' | grep -nx "$2" | cut -d: -f1; }
# field FILE ROW_INDEX NAME: a field of summary.csv (no quoted commas in these rows)
okerr() { s=$1; ok "$@"; [ "$s" -eq 0 ] || diag < "$T/err"; }
field() { awk -F, -v r="$2" -v c="$(col "$1" "$3")" 'NR > 1 && $1 == r { print $c }' "$1"; }

cat > "$T/spec.yaml" <<'EOF'
name: report-test
seed: 3
base:
  model: {arch: mlp, hidden: [16]}
  data: {dataset: fashion-mnist, train_limit: 256, test_limit: 200}
  train: {epochs: 2, batch: 64, log_every: 0}
  optimizer: {kind: sgd, lr: 0.05, momentum: 0.9}
axes:
  quant.weights.method: {values: [none, uniform]}
  quant.activations.method: {values: [none, uniform]}
  quant.weights.bits: {values: [4, 3]}
zip:
  - [quant.weights.method, quant.activations.method, quant.weights.bits]
seeds: [1, 2]
EOF
D=$T/res
"$LOWBIT" sweep "$T/spec.yaml" -o "$D" -q >"$T/out" 2>"$T/err"
okerr $? "a sweep of 4 short trials (FP and 3-bit weights, two seeds each)"
ids=$(awk -F'\t' '$1 ~ /^[0-9]+$/ { print $2 }' "$D/plan.tsv")
first=$(echo "$ids" | head -n1)
"$LOWBIT" ptq "$D/trials/$first.h5" -q -w 8,4 -a 8,4 --batches 2 >/dev/null 2>"$T/err"
okerr $? "a PTQ grid on trial 0"

"$LOWBIT" report "$D" >"$T/out" 2>"$T/err"
rc=$?
okerr $rc "lowbit report DIR"
R=$D/report
[ "$(cat "$T/out")" = "$R" ]
ok $? "prints the output folder, DIR/report by default"
S=$R/summary.csv
[ -s "$R/summary.md" ] && [ -s "$S" ] && [ -s "$R/summary_seeds.csv" ]
ok $? "summary.md, summary.csv and summary_seeds.csv written"
[ "$(($(wc -l < "$S") - 1))" -eq 4 ]
ok $? "one CSV row per trial"

# every value against the trial's run file
bad=""
i=0
for id in $ids; do
	f=$D/trials/$id.h5
	acc=$(val "$f" /metrics/test_acc)
	best=$(echo "$acc" | tr ',' '\n' | sort -g | tail -n1)
	same "$(field "$S" $i final_test_acc)" "$(attr "$f" /final_test_acc)" || bad="$bad $i:final"
	same "$(field "$S" $i best_test_acc)" "$best" || bad="$bad $i:best"
	for m in avg_w_bits avg_a_bits size_bytes compression bops; do
		same "$(field "$S" $i $m)" "$(last "$(val "$f" /metrics/$m)")" || bad="$bad $i:$m"
	done
	[ "$(field "$S" $i w_bits)" = "$(last "$(val "$f" /metrics/w_bits)" 2)" ] || bad="$bad $i:w_bits"
	[ "$(field "$S" $i status)" = "$(attr "$f" /status | tr -d '"')" ] || bad="$bad $i:status"
	[ "$(field "$S" $i epochs)" = 2 ] || bad="$bad $i:epochs"
	[ "$(field "$S" $i id)" = "$id" ] || bad="$bad $i:id"
	i=$((i + 1))
done
[ -z "$bad" ]
ok $? "final/best accuracy, bits, size, compression, BOPs, w_bits, status match the run files"
[ -z "$bad" ] || echo "mismatch:$bad" | diag
[ "$(field "$S" 0 quant.weights.method)" = none ] && [ "$(field "$S" 3 quant.weights.bits)" = 3 ] &&
	[ "$(field "$S" 1 seed)" = "$(awk -F'\t' '$1 == 1 { print $5 }' "$D/plan.tsv")" ]
ok $? "the swept axes and seeds come from the plan"
[ "$(field "$S" 2 w_bits)" = "3/3" ] && [ "$(field "$S" 0 w_bits)" = "32/32" ]
ok $? "per-layer weight bits as one column (3/3, 32/32)"

# Pareto flags: a done row is on the front iff no other has accuracy >= and bits <= with one strict
awk -F, -v a="$(col "$S" final_test_acc)" -v b="$(col "$S" avg_w_bits)" -v p="$(col "$S" pareto)" '
	NR > 1 { n++; A[n] = $a; B[n] = $b; P[n] = $p }
	END { for (i = 1; i <= n; i++) { d = 0
		for (j = 1; j <= n; j++) if (j != i && A[j] >= A[i] && B[j] <= B[i] && (A[j] > A[i] || B[j] < B[i])) d = 1
		if (P[i] != !d) exit 1 }
	      exit 0 }' "$S"
ok $? "Pareto flags agree with the accuracies and bits in the table"
[ "$(awk -F, -v p="$(col "$S" pareto)" 'NR > 1 && $p == 1' "$S" | wc -l)" -ge 1 ]
ok $? "... and at least one row is on the front"

# mean +- std over seeds against the two run files
Q=$R/summary_seeds.csv
a0=$(attr "$D/trials/$(echo "$ids" | sed -n 1p).h5" /final_test_acc)
a1=$(attr "$D/trials/$(echo "$ids" | sed -n 2p).h5" /final_test_acc)
mean=$(awk -v x="$a0" -v y="$a1" 'BEGIN { printf "%.17g", (x + y) / 2 }')
sd=$(awk -v x="$a0" -v y="$a1" 'BEGIN { d = x - y; if (d < 0) d = -d; printf "%.17g", d / sqrt(2) }')
got_m=$(awk -F, -v c="$(col "$Q" final_test_acc_mean)" '$1 == 0 { print $c }' "$Q")
got_s=$(awk -F, -v c="$(col "$Q" final_test_acc_std)" '$1 == 0 { print $c }' "$Q")
awk -v a="$got_m" -v b="$mean" -v c="$got_s" -v d="$sd" 'BEGIN { exit !((a - b)^2 < 1e-20 && (c - d)^2 < 1e-20) }'
ok $? "over seeds: mean and sample std of the FP point's final accuracy ($got_m +- $got_s)"
grep -q '^| 0 | none | none | 4 | 2 / 2 |' "$R/summary.md"
ok $? "summary.md has the over-seeds table"
grep -q "^| 2 | $(echo "$ids" | sed -n 3p) | uniform | uniform | 3 |" "$R/summary.md"
ok $? "summary.md has a row per trial with its axes"

# figures: data and script always, pictures when gnuplot is there
figs="acc_vs_bits acc_vs_size learning_curves w_bits_heatmap ptq-t0"
miss=""
for g in $figs; do
	[ -s "$R/$g.dat" ] && [ -s "$R/$g.gp" ] || miss="$miss $g"
done
[ -z "$miss" ]
ok $? "each figure's .dat and .gp written"
[ -z "$miss" ] || echo "missing:$miss" | diag
fp=$(awk -v x="$a0" -v y="$a1" 'BEGIN { printf "%.6f", 100 * (x + y) / 2 }')
grep -q "^fp_acc = $fp " "$R/acc_vs_bits.gp"
ok $? "the FP reference line is the mean of the FP runs ($fp %)"
grep -q '^"8" ' "$R/ptq-t0.dat" && [ "$(grep -c '^"[48]" ' "$R/ptq-t0.dat")" -eq 2 ]
ok $? "the PTQ grid's data: one row per weight bit-width"
if command -v gnuplot >/dev/null; then
	miss=""
	for g in $figs; do
		head -c 4 "$R/$g.png" | grep -q PNG && grep -q '<svg' "$R/$g.svg" || miss="$miss $g"
	done
	[ -z "$miss" ]
	ok $? "each figure rendered to PNG and SVG"
	[ -z "$miss" ] || echo "missing:$miss" | diag
	(cd "$R" && gnuplot -e "fmt='svg'; out='restyled.svg'" acc_vs_bits.gp) 2>"$T/err" && grep -q '<svg' "$R/restyled.svg"
	okerr $? "a figure's script re-renders it from its folder"
	grep -q '!\[.*\](acc_vs_bits.png)' "$R/summary.md"
	ok $? "summary.md shows the rendered figures"
else
	n=$((n + 3)); echo "ok $((n - 2)) # SKIP gnuplot not installed"; echo "ok $((n - 1)) # SKIP"; echo "ok $n # SKIP"
fi
ls "$R" | grep -q tmp
[ $? -ne 0 ]
ok $? "no temporary file left"

# only some formats; another output folder
"$LOWBIT" report "$D" -o "$T/only" --format csv -q >/dev/null 2>"$T/err"
okerr $? "--format csv -o OUT"
[ "$(ls "$T/only")" = summary.csv$(printf '\n')summary_seeds.csv ] || [ "$(ls "$T/only" | tr '\n' ' ')" = "summary.csv summary_seeds.csv " ]
ok $? "... writes the CSV tables only"
cmp -s "$T/only/summary.csv" "$S"
ok $? "... the same table"

# a single run file: its own folder X-report/
"$LOWBIT" report "$D/trials/$first.h5" -q >"$T/out" 2>"$T/err"
okerr $? "lowbit report RUN.h5"
[ "$(cat "$T/out")" = "$D/trials/$first-report" ] && grep -q ",done,2," "$D/trials/$first-report/summary.csv"
ok $? "... into RUN-report/, one row"
"$LOWBIT" report "$D/sweep.h5" -o "$T/via-index" -q >/dev/null 2>&1 && cmp -s "$T/via-index/summary.csv" "$S"
ok $? "DIR/sweep.h5 reports its folder"

# gnuplot missing: tables written, one line on how to get the figures, exit 0
LOWBIT_GNUPLOT=/nonexistent/gnuplot "$LOWBIT" report "$D" -o "$T/nognu" >/dev/null 2>"$T/err"
okerr $? "gnuplot missing: exit 0"
grep -q "apt-get install gnuplot-nox" "$T/err" && [ "$(grep -c gnuplot "$T/err")" -eq 1 ]
ok $? "... one line says how to get the figures"
[ -s "$T/nognu/summary.md" ] && [ -s "$T/nognu/acc_vs_bits.gp" ] && ! ls "$T/nognu" | grep -q -e '\.png$' -e '\.svg$'
ok $? "... tables, data and scripts written, no pictures"
# gnuplot failing: tables written, no picture, exit 1
cp -r "$R" "$T/failing"
rm -f "$T/failing/restyled.svg"
LOWBIT_GNUPLOT=/bin/false "$LOWBIT" report "$D" -o "$T/failing" >/dev/null 2>"$T/err"
[ $? -eq 1 ] && grep -q "gnuplot failed on .*acc_vs_bits.gp" "$T/err"
okerr $? "gnuplot failing: exit 1 and the failing script named"
[ -s "$T/failing/summary.csv" ] && ! ls "$T/failing" | grep -q -e '\.png$' -e '\.svg$' -e tmp
ok $? "... tables written; no picture, no old picture beside the new data, no temporary file"

# a still-running sweep: 2 done, 1 running (a crashed run), 1 pending
cp "$T/spec.yaml" "$T/spec2.yaml"
sed -i 's/^seed: 3/seed: 4/' "$T/spec2.yaml"
E=$T/part
"$LOWBIT" sweep "$T/spec2.yaml" -o "$E" -q --max-trials 2 >/dev/null 2>&1
[ $? -eq 75 ]
ok $? "a sweep stopped after 2 of 4 trials (exit 75)"
id3=$(awk -F'\t' '$1 == 2 { print $2 }' "$E/plan.tsv")
cat > "$T/crash.yaml" <<'EOF'
name: crash
model: {arch: mlp, hidden: [16]}
data: {dataset: fashion-mnist, train_limit: 256, test_limit: 200}
train: {epochs: 2, batch: 64}
EOF
"$LOWBIT" train "$T/crash.yaml" -o "$T/c" -q --debug-crash-at-step 6 >/dev/null 2>&1
[ "$(attr "$T/c/crash.h5" /status)" = '"running"' ]
ok $? "a run file left running (crash after epoch 1)"
cp "$T/c/crash.h5" "$E/trials/$id3.h5"
"$LOWBIT" report "$E" -q >/dev/null 2>"$T/err"
okerr $? "report of a still-running sweep: exit 0"
P=$E/report/summary.csv
[ "$(field "$P" 0 status)" = done ] && [ "$(field "$P" 2 status)" = running ] &&
	[ "$(field "$P" 3 status)" = pending ] && [ -z "$(field "$P" 3 final_test_acc)" ]
ok $? "... done rows reported, the rest marked running / pending"
same "$(field "$P" 2 final_test_acc)" "$(last "$(val "$E/trials/$id3.h5" /metrics/test_acc)")" &&
	[ -z "$(field "$P" 2 pareto)" ]
ok $? "... a running row shows its last epoch, off the Pareto judgement"
grep -q ": 2 done, 1 running, 1 pending\." "$E/report/summary.md"
ok $? "... and summary.md counts the states"
# a truncated trial file in the sweep: a warning, the row marked
head -c 2000 "$E/trials/$id3.h5" > "$T/trunc.h5"
cp "$T/trunc.h5" "$E/trials/$id3.h5"
"$LOWBIT" report "$E" -q >/dev/null 2>"$T/err"
okerr $? "a truncated trial file: exit 0 (the others are reported)"
grep -q "skipping '.*$id3.h5': .*truncated or foreign" "$T/err" && [ "$(field "$P" 2 status)" = unreadable ]
ok $? "... one warning naming it, its row marked unreadable"

# bad input: one message, exit 1 (2 for usage), nothing written
mkdir "$T/empty"
fails_with "an empty folder" "no results in '$T/empty': no plan.tsv (sweep folder) and no lowbit run files" "$LOWBIT" report "$T/empty"
[ ! -e "$T/empty/report" ]
ok $? "... nothing written"
mkdir "$T/none" && cp "$E/plan.tsv" "$T/none/"
fails_with "a sweep folder with no trial run yet" "no results in '$T/none' yet: none of its 4 run files (4 trials) is there and readable" "$LOWBIT" report "$T/none"
[ ! -e "$T/none/report" ]
ok $? "... nothing written"
fails_with "a truncated run file" "is not a readable HDF5 file (truncated or foreign)" "$LOWBIT" report "$T/trunc.h5"
[ ! -e "$T/trunc-report" ]
ok $? "... nothing written"
echo "not hdf5" > "$T/junk.h5"
fails_with "a foreign file" "junk.h5' is not a readable HDF5 file" "$LOWBIT" report "$T/junk.h5"
fails_with "a missing path" "cannot open '$T/nope': No such file or directory" "$LOWBIT" report "$T/nope"
# a newer lowbit's file: its seal names format 99 (byte count and CRC as written)
cp "$D/trials/$first.h5" "$T/newer.h5"
/usr/bin/python3 -c 'import sys
with open(sys.argv[1], "r+b") as f:
    h = f.read(512); f.seek(0); f.write(h.replace(b"\nformat 2\n", b"\nformat 99\n")[:512])' "$T/newer.h5"
fails_with "a run file of a newer format" "has format version 99; this lowbit reads up to" "$LOWBIT" report "$T/newer.h5"
[ ! -e "$T/newer-report" ]
ok $? "... nothing written"
if /usr/bin/python3 -c 'import h5py' 2>/dev/null; then
	cp "$D/trials/$first.h5" "$T/edited.h5"
	/usr/bin/python3 -c 'import h5py, sys
with h5py.File(sys.argv[1], "r+") as f: f.attrs["note"] = "added by h5py"' "$T/edited.h5"
	fails_with "a run file edited by h5py fails the seal" "edited.h5' is not a readable HDF5 file (damaged, or changed after lowbit wrote it" "$LOWBIT" report "$T/edited.h5"
	LOWBIT_UNCHECKED_RUNFILES=1 "$LOWBIT" report "$T/edited.h5" -o "$T/edited-report" --format md >/dev/null 2>&1
	ok $? "... LOWBIT_UNCHECKED_RUNFILES=1 reads it anyway"
	"$LOWBIT" seal "$T/edited.h5" >"$T/out" 2>&1 && grep -q "edited.h5: sealed" "$T/out" &&
		"$LOWBIT" report "$T/edited.h5" -o "$T/sealed-report" --format md >/dev/null 2>&1 &&
		/usr/bin/python3 -c 'import h5py, sys
assert h5py.File(sys.argv[1], "r").attrs["note"] == "added by h5py"' "$T/edited.h5"
	ok $? "... lowbit seal stamps it again in place: it reads, the annotation kept"
else
	n=$((n + 3)); echo "ok $((n - 2)) # SKIP h5py not available"; echo "ok $((n - 1)) # SKIP"; echo "ok $n # SKIP"
fi
# an unsealed lowbit file (as run-file format 1 wrote them): refused; seal rewrites it
if command -v h5unjam >/dev/null; then
	h5unjam -i "$D/trials/$first.h5" -o "$T/unsealed.h5" >/dev/null 2>&1
	fails_with "an unsealed run file" "unsealed.h5' is not a lowbit run file: an HDF5 file without lowbit's integrity seal" "$LOWBIT" report "$T/unsealed.h5"
	"$LOWBIT" seal "$T/unsealed.h5" >"$T/out" 2>&1 && grep -q "rewritten in run-file format 2, sealed" "$T/out" &&
		"$LOWBIT" report "$T/unsealed.h5" -o "$T/unsealed-report" --format csv >/dev/null 2>&1 &&
		"$LOWBIT" report "$D/trials/$first.h5" -o "$T/first-report" --format csv >/dev/null 2>&1 &&
		[ "$(cut -d, -f3-16 "$T/unsealed-report/summary.csv")" = "$(cut -d, -f3-16 "$T/first-report/summary.csv")" ]
	ok $? "... lowbit seal rewrites it in the current format with the same content"
else
	n=$((n + 2)); echo "ok $((n - 1)) # SKIP h5unjam not available"; echo "ok $n # SKIP"
fi
fails_with "an unknown format" "--format: 'pdf' is not known (allowed: a list of md, csv, png, svg)" "$LOWBIT" report "$D" --format md,pdf
"$LOWBIT" report >/dev/null 2>&1; [ $? -eq 2 ]
ok $? "no path: usage error (exit 2)"
fails_with "an output folder that cannot be made" "cannot create '/proc/lowbit-report'" "$LOWBIT" report "$D" -o /proc/lowbit-report
done_testing
