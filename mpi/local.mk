# mpi/: MPI helpers, the coordinator and trial executor (in the library) and
# the lowbit program (thin main + commands)
liblowbit_a_SOURCES += mpi/comm.h mpi/comm.c mpi/coordinator.h mpi/coordinator.c \
	mpi/backend_dummy.h mpi/backend_dummy.c mpi/trial.h mpi/trial.c
bin_PROGRAMS += lowbit
lowbit_SOURCES = mpi/lowbit.c mpi/cli.h mpi/cmd_train.c mpi/cmd_sweep.c mpi/cmd_ptq.c \
	mpi/cmd_report.c mpi/cmd_seal.c
