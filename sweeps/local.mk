# sweeps/: sweep specs (libcyaml), expansion into trials, trial identity,
# and the results folder of a sweep (plan, trial states, sweep.h5 index)
liblowbit_a_SOURCES += sweeps/spec.h sweeps/spec.c sweeps/expand.c \
	sweeps/sweepdir.h sweeps/sweepdir.c
lowbit_SOURCES += mpi/cmd_plan.c
check_PROGRAMS += tests/unit/test_sweep
TESTS += tests/unit/test_sweep
