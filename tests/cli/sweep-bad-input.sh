#!/bin/sh
# SPDX-License-Identifier: MIT
# Bad input to lowbit sweep / trial / status / index: each refused before
# any trial starts, with one clear message and a nonzero exit, and the output
# folder left exactly as it was (nothing written when it did not exist).
. "$top_srcdir/tests/cli/lib.sh"
SPEC=$T/a.yaml
cat >"$SPEC" <<'YAML'
name: a
base:
  model: {arch: lenet5-caffe}
  data: {train_limit: 256, test_limit: 100}
  train: {epochs: 1, batch: 64}
axes:
  optimizer.lr: {values: [0.01, 0.02]}
YAML
snap() { # snap DIR: a listing of every file with its checksum
	[ -d "$1" ] || { echo absent; return; }
	find "$1" -type f | sort | xargs -r md5sum
}
# untouched "desc" DIR "fragment" command...: fails with the fragment, DIR unchanged
untouched() {
	desc=$1; dir=$2; want=$3; shift 3
	before=$(snap "$dir")
	fails_with "$desc" "$want" "$@"
	[ "$before" = "$(snap "$dir")" ]
	ok $? "$desc: the folder is untouched"
}
sweep() { "$LOWBIT" sweep "$@" --dummy-sleep-ms 1 -q; }

sweep "$SPEC" -o "$T/mine" 2>"$T/err"
ok $? "a sweep to build on"

# another sweep's folder, a changed spec, a folder that is not a sweep's
sed 's/^name: a/name: b/' "$SPEC" >"$T/b.yaml"
untouched "folder holding another sweep" "$T/mine" "holds sweep 'a', not 'b'" sweep "$T/b.yaml" -o "$T/mine"
sed 's/0.02\]/0.03]/' "$SPEC" >"$T/changed.yaml"
untouched "changed spec (plan mismatch)" "$T/mine" "the spec changed. Pass --force-new-plan" \
	sweep "$T/changed.yaml" -o "$T/mine"
untouched "changed spec, lowbit trial" "$T/mine" "the spec changed" \
	"$LOWBIT" trial "$T/changed.yaml" -o "$T/mine" --index 0 --dummy-sleep-ms 1
sweep "$T/changed.yaml" -o "$T/mine" --force-new-plan 2>"$T/err"
[ $? -eq 0 ] && grep -q '0.03' "$T/mine/plan.tsv"
ok $? "--force-new-plan adopts the new plan"
mkdir -p "$T/other" && echo data >"$T/other/notes.txt"
untouched "non-empty folder without a sweep" "$T/other" "is not empty and holds no lowbit sweep" \
	sweep "$SPEC" -o "$T/other"
echo x >"$T/afile"
untouched "output is a file" "$T/afile" "exists and is not a folder" sweep "$SPEC" -o "$T/afile"

# bad --index and array variables (nothing written)
untouched "--index out of range" "$T/new1" "--index 2 is not a trial of sweep 'a' (allowed: 0 .. 1" \
	"$LOWBIT" trial "$SPEC" -o "$T/new1" --index 2 --dummy-sleep-ms 1
untouched "--index not a number" "$T/new1" "'x1' is not a trial index" \
	"$LOWBIT" trial "$SPEC" -o "$T/new1" --index x1
untouched "--index negative" "$T/new1" "'-1' is not a trial index" \
	"$LOWBIT" trial "$SPEC" -o "$T/new1" --index -1
untouched "no index at all" "$T/new1" "no trial index: give --index N" \
	env -u SLURM_ARRAY_TASK_ID -u PBS_ARRAY_INDEX -u PBS_ARRAYID "$LOWBIT" trial "$SPEC" -o "$T/new1"
untouched "SLURM_ARRAY_TASK_ID not a number" "$T/new1" "SLURM_ARRAY_TASK_ID is 'abc', not a trial index" \
	env SLURM_ARRAY_TASK_ID=abc "$LOWBIT" trial "$SPEC" -o "$T/new1"
untouched "PBS_ARRAY_INDEX out of range" "$T/new1" "PBS_ARRAY_INDEX 7 is not a trial" \
	env -u SLURM_ARRAY_TASK_ID PBS_ARRAY_INDEX=7 "$LOWBIT" trial "$SPEC" -o "$T/new1" --dummy-sleep-ms 1

# specs the sweep cannot run
cat "$SPEC" >"$T/ptq.yaml"
printf 'stages:\n  - {name: p, kind: ptq_eval}\n' >>"$T/ptq.yaml"
untouched "a ptq_eval stage without input" "$T/new2" "stages.p: ptq_eval needs an input" sweep "$T/ptq.yaml" -o "$T/new2"
cat "$SPEC" >"$T/rew.yaml"
printf 'stages:\n  - {name: t, kind: train}\n  - {name: r, kind: rewind, input: t, rewind_to: "step:0"}\n  - {name: u, kind: fine_tune, input: r}\n' >>"$T/rew.yaml"
untouched "rewind to step 0" "$T/new2" "rew.yaml:10:50: stages[1].rewind_to: 'step:0' is not a rewind point (allowed: init, step:K with K >= 1)" sweep "$T/rew.yaml" -o "$T/new2"
untouched "a missing spec" "$T/new2" "cannot open sweep spec" sweep "$T/nonexistent.yaml" -o "$T/new2"

# ranks per trial: not dividing the workers, or not allowed by the shards
if [ -n "${MPIRUN:-}" ] && command -v "$MPIRUN" >/dev/null; then
	printf 'resources: {ranks_per_trial: 2}\n' | cat "$SPEC" - >"$T/k2.yaml"
	untouched "ranks per trial not dividing world - 1" "$T/new3" \
		"resources.ranks_per_trial: 2 does not divide the 3 worker ranks" \
		timeout 120 "$MPIRUN" --oversubscribe -n 4 "$LOWBIT" sweep "$T/k2.yaml" -o "$T/new3" --dummy-sleep-ms 1
	untouched "ranks per trial the shards do not allow" "$T/new3" \
		"cannot train on 2 ranks: train.shards is 1 in deterministic mode (rank counts allowed: 1" \
		timeout 120 "$MPIRUN" --oversubscribe -n 3 "$LOWBIT" sweep "$T/k2.yaml" -o "$T/new3"
else
	for i in 1 2 3 4; do echo "ok $((n + 1)) # SKIP no MPI launcher"; n=$((n + 1)); done
fi

# status and index of something that is not a sweep folder
fails_with "status of a folder without a sweep" "holds no lowbit sweep (no plan.tsv" "$LOWBIT" status "$T/other"
fails_with "index of a missing folder" "holds no lowbit sweep" "$LOWBIT" index "$T/nothing"
echo "# lowbit sweep plan 1" >"$T/other/plan.tsv"
fails_with "status of a damaged plan" "damaged" "$LOWBIT" status "$T/other"
fails_with "status with two modes" "give --failed or --unfinished, not both" "$LOWBIT" status "$T/mine" --failed --unfinished
fails_with "sweep without -o" "no output folder given (-o DIR)" "$LOWBIT" sweep "$SPEC"
fails_with "dummy failure without the dummy" "--dummy-fail and --dummy-diverge need --dummy-sleep-ms" \
	"$LOWBIT" sweep "$SPEC" -o "$T/x" --dummy-fail 1
done_testing
