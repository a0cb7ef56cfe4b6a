#!/bin/sh
# SPDX-License-Identifier: MIT
# The scheduler scripts of scripts/hpc/ (docs/hpc.md), without a scheduler:
# their syntax; the job-array script's body run here as array task N
# (LAUNCH=none), including a stop signal sent to the batch shell, which
# must reach lowbit and end the task with 75; and the resubmission of the
# failed indices (sbatch / qsub replaced by echo).
. "$top_srcdir/tests/cli/lib.sh"
H=$top_srcdir/scripts/hpc
for f in slurm-sweep.sbatch slurm-array.sbatch pbs-sweep.pbs pbs-array.pbs resubmit-failed; do
	bash -n "$H/$f" 2>"$T/err"
	ok $? "bash -n $f"
	diag < "$T/err"
done
[ -f "$FMNIST/train-images-idx3-ubyte.gz" ] || { done_testing; exit $?; }
export LOWBIT

SPEC=$T/hpc.yaml
cat >"$SPEC" <<YAML
name: hpc
seed: 3
base:
  model: {arch: lenet5-caffe}
  data: {dir: $FMNIST, train_limit: 1024, test_limit: 200}
  train: {epochs: 2, batch: 64, log_every: 0}
  optimizer: {kind: sgd, lr: 0.02, momentum: 0.9}
axes:
  optimizer.lr: {values: [0.01, 0.02, 0.05]}
seeds: [1]
YAML
task() { # task N [LOWBIT_ARGS]: the array script's body as array task N
	env SPEC="$SPEC" OUT="$D" LAUNCH=none SLURM_ARRAY_TASK_ID=$1 LOWBIT_ARGS="${2:-}" \
		timeout 300 bash "$H/slurm-array.sbatch"
}
D=$T/dummy
task 2 "--dummy-sleep-ms 1" >/dev/null 2>"$T/err"
rc=$?
[ $rc -eq 0 ] && "$LOWBIT" status "$D" | grep -q '^  done *1$'
ok $? "slurm-array.sbatch as task 2: trial 2 done (exit $rc)"
[ $rc -eq 0 ] || diag < "$T/err"

# a real trial (32 steps); SIGUSR1 to the batch shell once its run file
# exists (SLURM's --signal=B:USR1@120 does this) -> forwarded to lowbit ->
# checkpoint -> exit 75
D=$T/real
env SPEC="$SPEC" OUT="$D" LAUNCH=none SLURM_ARRAY_TASK_ID=0 \
	timeout 300 bash "$H/slurm-array.sbatch" >/dev/null 2>"$T/err" &
job=$!
for i in $(seq 1 3000); do ls "$D/trials/"*.h5 >/dev/null 2>&1 && break; sleep 0.02; done
shell=$(pgrep -P $job | head -n 1)   # the batch shell, under timeout
[ -n "$shell" ] && kill -USR1 "$shell"
wait $job
rc=$?
[ $rc -eq 75 ] && grep -q "task 0: lowbit exited 75" "$T/err"
ok $? "SIGUSR1 to the batch shell: the trial is preempted, the script exits 75 (exit $rc)"
[ $rc -eq 75 ] || diag < "$T/err"
"$LOWBIT" status "$D" | grep -q '^  preempted *1$'
ok $? "... and status says preempted"
task 0 >/dev/null 2>"$T/err"
rc=$?
[ $rc -eq 0 ] && "$LOWBIT" status "$D" | grep -q '^  done *1$'
ok $? "the task again: the trial resumes and is done (exit $rc)"

# resubmission of the failed indices
D=$T/fail
"$LOWBIT" sweep "$SPEC" -o "$D" --dummy-sleep-ms 1 --dummy-fail 1 -q >/dev/null 2>&1
[ "$("$LOWBIT" status "$D" --failed)" = 1 ]
ok $? "a dummy sweep with trial 1 failed"
SBATCH=echo "$H/resubmit-failed" "$SPEC" "$D" --time=10 >"$T/out" 2>"$T/err"
rc=$?
[ $rc -eq 0 ] && grep -q -- "^--array=1 --export=ALL,SPEC=$SPEC,OUT=$D,LOWBIT_ARGS=--retry-failed --time=10 .*slurm-array.sbatch$" "$T/out"
ok $? "resubmit-failed: sbatch --array=1 with --retry-failed (exit $rc)"
diag < "$T/out"
QSUB=echo "$H/resubmit-failed" --pbs --unfinished "$SPEC" "$D" >"$T/out" 2>"$T/err"
rc=$?
[ $rc -eq 0 ] && [ "$(wc -l <"$T/out")" = 1 ] &&
	grep -q -- "^-v SPEC=$SPEC,OUT=$D,LOWBIT_INDEX=1,LOWBIT_ARGS= .*pbs-array.pbs$" "$T/out"
ok $? "resubmit-failed --pbs --unfinished: one qsub with LOWBIT_INDEX=1 (exit $rc)"
diag < "$T/out"
"$LOWBIT" sweep "$SPEC" -o "$D" --dummy-sleep-ms 1 --retry-failed -q >/dev/null 2>&1
SBATCH=false "$H/resubmit-failed" "$SPEC" "$D" >"$T/out" 2>"$T/err"
rc=$?
[ $rc -eq 0 ] && grep -q "no trials to resubmit" "$T/err"
ok $? "resubmit-failed with nothing failed submits nothing (exit $rc)"
done_testing
