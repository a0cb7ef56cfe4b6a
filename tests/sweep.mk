# tests/sweep.mk: fragment included by Makefile.am -- the sweep commands
# (lowbit sweep / trial / status / index) end to end.
TESTS += tests/cli/sweep-run.sh tests/cli/sweep-bad-input.sh tests/cli/sweep-kill.sh \
	tests/cli/rewind-step.sh
EXTRA_DIST += tests/cli/sweep-run.sh tests/cli/sweep-bad-input.sh tests/cli/sweep-kill.sh \
	tests/cli/rewind-step.sh
# preemption: stop signals, mid-epoch checkpoints, exit 75, resume (issue 8)
TESTS += tests/cli/preempt.sh tests/cli/hpc-scripts.sh
EXTRA_DIST += tests/cli/preempt.sh tests/cli/hpc-scripts.sh \
	scripts/hpc/slurm-sweep.sbatch scripts/hpc/slurm-array.sbatch \
	scripts/hpc/pbs-sweep.pbs scripts/hpc/pbs-array.pbs scripts/hpc/resubmit-failed
