# mpi/: MPI helpers (in the library) and the lowbit program (thin main + commands)
liblowbit_a_SOURCES += mpi/comm.h mpi/comm.c mpi/coordinator.h mpi/coordinator.c \
	mpi/backend_dummy.h mpi/backend_dummy.c
bin_PROGRAMS += lowbit
lowbit_SOURCES = mpi/lowbit.c mpi/cli.h mpi/cmd_train.c
