#!/bin/sh
# SPDX-License-Identifier: MIT
# `lowbit validate` and `lowbit plan` on good and bad sweep specs: good specs
# print 'SPEC: ok (N trials)' and the trial list (table, --json, --tsv);
# each bad spec exits 1 with FILE:LINE:COLUMN, the key and what is allowed.
# No dataset is needed: nothing is trained.
. "$top_srcdir/tests/cli/lib.sh"
EX=$top_srcdir/sweeps/examples

spec() { # spec NAME: write a spec from stdin to $T/NAME.yaml
	cat > "$T/$1.yaml"
}

# validate (good)
"$LOWBIT" validate "$EX/quick.yaml" > "$T/out" 2> "$T/err"
ok $? "validate quick.yaml exits 0"
grep -qxF "$EX/quick.yaml: ok (4 trials)" "$T/out"
ok $? "validate quick.yaml prints 'SPEC: ok (4 trials)'"
"$LOWBIT" validate "$EX/grid.yaml" > "$T/out" 2> "$T/err"
ok $? "validate grid.yaml exits 0"
grep -qF "ok (54 trials)" "$T/out"
ok $? "grid.yaml has 54 trials"
# every stock spec (examples and the papers' reproductions) stays valid
for f in "$EX"/*.yaml "$top_srcdir"/sweeps/papers/*.yaml; do
	"$LOWBIT" validate "$f" > "$T/out" 2> "$T/err" && grep -q ': ok (' "$T/out"
	ok $? "validate $(basename "$(dirname "$f")")/$(basename "$f"): $(cat "$T/out" "$T/err" | head -1)"
done

# plan: table, json, tsv
"$LOWBIT" plan "$EX/quick.yaml" > "$T/plan" 2> "$T/err"
ok $? "plan quick.yaml exits 0"
[ "$(grep -c '^[0-9]' "$T/plan")" -eq 4 ]
ok $? "the table has 4 trial rows"
grep -q 'optimizer.lr' "$T/plan" && grep -q 'ranks' "$T/plan" && grep -q 'seed' "$T/plan"
ok $? "the table heads the axis, seed and ranks columns"
awk '/^[0-9]/ { print $3 }' "$T/plan" | tr '\n' ' ' > "$T/lrs"
[ "$(cat "$T/lrs")" = "0.01 0.01 0.05 0.05 " ]
ok $? "grid order: lr outer, seeds inner"
"$LOWBIT" plan --tsv "$EX/quick.yaml" > "$T/tsv"
ok $? "plan --tsv exits 0"
head -n 1 "$T/tsv" | grep -q "$(printf '^index\tid\toptimizer.lr\tseed\tstages\tranks_per_trial')"
ok $? "tsv header"
[ "$(wc -l < "$T/tsv")" -eq 5 ]
ok $? "tsv: header + 4 rows"
cut -f 2 "$T/tsv" | tail -n +2 | sort -u | wc -l | grep -qx 4
ok $? "4 distinct ids"
awk '/^[0-9]/ { print $2 }' "$T/plan" > "$T/ids-table"
cut -f 2 "$T/tsv" | tail -n +2 > "$T/ids-tsv"
cmp -s "$T/ids-table" "$T/ids-tsv"
ok $? "table and tsv give the same ids"
"$LOWBIT" plan "$EX/quick.yaml" | awk '/^[0-9]/ { print $2 }' > "$T/ids-again"
cmp -s "$T/ids-table" "$T/ids-again"
ok $? "ids are stable across runs"
"$LOWBIT" plan --json "$EX/quick.yaml" > "$T/json"
ok $? "plan --json exits 0"
if command -v python3 > /dev/null; then
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["trials"]) == 4; assert d["trials"][1]["seed"] == 2; assert d["trials"][2]["axes"]["optimizer.lr"] == 0.05' "$T/json"
	ok $? "--json parses, with 4 trials, seeds and numeric axis values"
else
	grep -q '"n_trials": 4' "$T/json"
	ok $? "--json says 4 trials"
fi
"$LOWBIT" plan "$EX/grid.yaml" > "$T/grid"
grep -q 'pretrain>tune' "$T/grid"
ok $? "plan shows the stage pipeline"

# usage
fails_with "no spec file" "no spec file" "$LOWBIT" validate
fails_with "unknown option" "--frobnicate" "$LOWBIT" plan --frobnicate "$EX/quick.yaml"
fails_with "--json and --tsv" "not both" "$LOWBIT" plan --json --tsv "$EX/quick.yaml"
"$LOWBIT" validate "$T/none.yaml" 2> "$T/err"
[ $? -eq 1 ] && grep -qF "$T/none.yaml" "$T/err"
ok $? "missing spec file: exit 1 naming it"
"$LOWBIT" plan --help | grep -q 'usage: lowbit plan'
ok $? "plan --help"

# bad specs: each error with file:line:column
bad() { # bad "description" NAME "fragment"
	fails_with "$1" "$T/$2.yaml:$3" "$LOWBIT" validate "$T/$2.yaml"
	"$LOWBIT" plan "$T/$2.yaml" > "$T/out" 2> /dev/null
	[ $? -eq 1 ] && [ ! -s "$T/out" ]
	ok $? "... plan fails too and prints no trials ($1)"
}
printf 'name: x\naxes: {a: [1, 2\n' | spec syntax
bad "YAML syntax error" syntax "3:1: YAML syntax error"
printf 'name: x\nsampels: 2\n' | spec unknown
bad "unknown key" unknown "2:1: sampels: unknown key 'sampels' at the top level (allowed: name, seed"
printf 'repeats: two\n' | spec type
bad "wrong type" type "1:10: repeats: 'two' is not an unsigned integer"
printf 'axes:\n  optimizer.lr: {value: 0.1, values: [0.2]}\n' | spec forms
bad "axis with two forms" forms "2:17: axes.optimizer.lr: give exactly one of value, values, distribution"
printf 'axes:\n  optimizer.lr: {values: []}\n' | spec empty
bad "empty values" empty "2:26: axes.optimizer.lr.values: empty list"
printf 'method: random\nsamples: 4\naxes:\n  optimizer.lr: {distribution: log_uniform, min: -1, max: 0.1}\n' | spec logu
bad "log_uniform min <= 0" logu "4:50: axes.optimizer.lr: log_uniform needs min > 0"
printf 'method: random\nsamples: 4\naxes:\n  optimizer.lr: {distribution: uniform, min: 2, max: 1}\n' | spec minmax
bad "min > max" minmax "4:46: axes.optimizer.lr: min 2 > max 1 (allowed: min <= max)"
printf 'axes:\n  optimizer.lr: {values: [0.1, 0.2]}\n  train.epochs: {values: [1]}\nzip:\n  - [optimizer.lr, train.epochs]\n' | spec zip
bad "zip of unequal lengths" zip "5:20: zip[0][1]: axis 'train.epochs' has 1 values but 'optimizer.lr' has 2"
printf 'stages:\n  - {name: a, kind: train}\n  - {name: b, kind: retrain, input: z, bits_from: a}\n' | spec stage
bad "stage with a missing input" stage "3:37: stages[1].input: 'z' is not an earlier stage (allowed: a)"
printf 'stages:\n  - {name: a, kind: pretrain}\n' | spec kind
bad "unknown stage kind" kind "2:21: stages[0].kind: 'pretrain' is not a known value (allowed: train, learn_bits"
printf 'resources: {ranks_per_trial: 0}\n' | spec ranks
bad "ranks_per_trial 0" ranks "1:30: resources.ranks_per_trial: 0 is out of range (allowed: >= 1)"
printf 'axes:\n  optimizer.lrr: {values: [0.1]}\n' | spec notkey
bad "axis that is not a config key" notkey "2:3: axes.optimizer.lrr: not a config key: unknown key 'lrr' in 'optimizer' (allowed: kind, lr"
printf 'axes:\n  model.arch: {values: [mlp, lenet7]}\n' | spec badvalue
bad "axis value the config rejects" badvalue "2:30: axes.model.arch: values[1] = lenet7: 'lenet7' is not a known value (allowed: mlp"
printf 'axes:\n  train.batch: {values: [64, 10]}\n  train.shards: {values: [1, 4]}\n' | spec trial
bad "trial the config rejects" trial "3:30: axes.train.shards: trial 3 {train.batch: 10, train.shards: 4}"
printf 'axes:\n  optimizer.lr: {values: [0.1, 0.1]}\n' | spec dup
bad "duplicate trials" dup "2:32: axes.optimizer.lr: trial 0 {optimizer.lr: 0.1} and trial 1 {optimizer.lr: 0.1} are the same trial"
printf 'seed: x\nmethod: y\n' | spec two
"$LOWBIT" validate "$T/two.yaml" 2> "$T/err"
[ "$(grep -c '^lowbit: error: ' "$T/err")" -eq 2 ]
ok $? "every error is printed, one per line"
done_testing
