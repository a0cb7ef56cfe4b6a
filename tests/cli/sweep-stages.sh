#!/bin/sh
# SPDX-License-Identifier: MIT
# A staged sweep end to end with real training (a miniature of
# sweeps/papers/lottery.yaml): learn bits -> rewind to theta0 -> retrain at
# the learned bits, homogeneous runs from theta0 at other bits, a fresh
# re-initialisation at the learned bits, and the PTQ grid of the ticket.
. "$top_srcdir/tests/cli/lib.sh"
[ -f "$FMNIST/train-images-idx3-ubyte.gz" ] || skip_all "Fashion-MNIST not installed ($FMNIST)"
command -v h5dump >/dev/null && command -v h5diff >/dev/null || skip_all "hdf5-tools not installed"
sed -e 's/train_limit: 5000, test_limit: 2000/train_limit: 256, test_limit: 200/' \
    -e 's/epochs: 4, batch: 64/epochs: 2, batch: 64/' \
    -e 's/seeds: \[1, 2, 3\]/seeds: [1]/' \
    -e 's/warmup_epochs: 1, ramp_epochs: 1, lambda: 2/warmup_epochs: 1, ramp_epochs: 1, lambda: 1000/' \
    "$top_srcdir/sweeps/papers/lottery.yaml" > "$T/lottery.yaml"
grep -q "train_limit: 256" "$T/lottery.yaml" && grep -q "lambda: 1000" "$T/lottery.yaml"
ok $? "a miniature of the lottery spec"
timeout 900 "$LOWBIT" sweep "$T/lottery.yaml" -o "$T/out" >"$T/log" 2>&1
ok $? "the staged sweep runs to the end on one process" || diag < "$T/log"
d=$(ls -d "$T/out/trials"/*/ 2>/dev/null | head -n1)
for s in learn ticket homog2 homog3 homog4 reinit ptq; do
	[ -f "$d$s.h5" ]
	ok $? "stage $s has its run file"
done
[ ! -e "${d}theta0.h5" ]
ok $? "the rewind stage has none"
lb=$(val "${d}learn.h5" /quant/learned_w_bits)
[ -n "$lb" ] && [ "$(val "${d}ticket.h5" /quant/learned_w_bits)" = "$lb" ]
ok $? "the ticket trains at the learned bits ($lb)"
[ "$(val "${d}reinit.h5" /quant/learned_w_bits)" = "$lb" ]
ok $? "the re-init control too"
h5diff "${d}learn.h5" "${d}ticket.h5" /init/weights/conv1.weight >/dev/null 2>&1 &&
	h5diff "${d}learn.h5" "${d}homog4.h5" /init/weights/fc1.weight >/dev/null 2>&1
ok $? "ticket and homog4 start from the learn stage's theta0"
h5diff "${d}learn.h5" "${d}reinit.h5" /init/weights/conv1.weight >/dev/null 2>&1
[ $? -eq 1 ]
ok $? "the re-init control starts elsewhere"
[ "$(val "${d}homog2.h5" /quant/learned_w_bits)" = "2,2,2,2" ]
ok $? "homog2 trains at 2 bits everywhere"
grep -q "initialised anew for W2/A4" "$T/log" || "$LOWBIT" status "$T/out" >/dev/null
acc=$(val "${d}ptq.h5" /ptq/test_acc)
[ "$(echo "$acc" | tr ',' '\n' | grep -c .)" -eq 36 ]
ok $? "the ptq stage holds the 6 x 6 grid"
"$LOWBIT" status "$T/out" >"$T/st" 2>&1
grep -q "done *1" "$T/st"
ok $? "lowbit status: the trial is done" || diag < "$T/st"
timeout 300 "$LOWBIT" sweep "$T/lottery.yaml" -o "$T/out" >"$T/log2" 2>&1
ok $? "re-running the finished sweep does nothing and succeeds" || diag < "$T/log2"
# lowbit report: lottery.md finds runs A-D by the stages' kinds and inputs,
# with the run files' values (one seed: the mean is the value)
"$LOWBIT" report "$T/out" -f md,csv >"$T/rep" 2>"$T/reperr"
ok $? "lowbit report on the staged sweep" || diag < "$T/reperr"
L=$T/out/report/lottery.md
grep -q "lottery.md" "$T/reperr"
ok $? "its summary line mentions lottery.md" || diag < "$T/reperr"
[ -s "$L" ] && grep -qF -- '- **A** `learn` (learn_bits)' "$L" &&
	grep -qF -- '- **B** `ticket` (retrain, input `theta0`, bits_from `learn`)' "$L" &&
	grep -qF -- '- **C** `homog2` (train), `homog3` (train), `homog4` (train), input `theta0`' "$L" &&
	grep -qF -- '- **D** `reinit` (retrain), no input, bits_from `learn`' "$L" &&
	grep -qF -- '- **PTQ** `ptq` (ptq_eval, input `ticket`)' "$L"
ok $? "lottery.md names the stages of A-D and the PTQ stage" || diag < "$L"
bad=""
for s in learn ticket homog2 homog3 homog4 reinit; do
	a=$(h5dump -m '%.17g' -a /final_test_acc "${d}$s.h5" 2>/dev/null | sed -n 's/^ *(0): *//p' | head -n1)
	want=$(awk -v a="$a" 'BEGIN { printf "%.2f", 100 * a }')
	grep -q "^| [ABCD] | $s | 1 / 1 | $want | " "$L" || bad="$bad $s:$want"
done
[ -z "$bad" ]
ok $? "lottery.md: each run's final accuracy as in its run file" || diag "missing:$bad"
b=$(h5dump -m '%.17g' -a /final_test_acc "${d}ticket.h5" 2>/dev/null | sed -n 's/^ *(0): *//p' | head -n1)
r=$(h5dump -m '%.17g' -a /final_test_acc "${d}reinit.h5" 2>/dev/null | sed -n 's/^ *(0): *//p' | head -n1)
want=$(awk -v b="$b" -v r="$r" 'BEGIN { printf "%+.2f", 100 * (b - r) }')
grep -qF -- "- B − D (\`ticket\` − \`reinit\`): $want points (mean over 1 seed)" "$L"
ok $? "lottery.md: B - D = $want points" || diag < "$L"
grep -q "^| ptq | 1 | " "$L"
ok $? "lottery.md: the ticket's PTQ diagonal" || diag < "$L"
done_testing
