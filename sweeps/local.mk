# sweeps/: sweep specs (libcyaml), expansion into trials, trial identity
liblowbit_a_SOURCES += sweeps/spec.h sweeps/spec.c sweeps/expand.c
lowbit_SOURCES += mpi/cmd_plan.c
check_PROGRAMS += tests/unit/test_sweep
TESTS += tests/unit/test_sweep
