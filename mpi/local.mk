# mpi/: the lowbit program (thin main + commands)
bin_PROGRAMS += lowbit
lowbit_SOURCES = mpi/lowbit.c mpi/cli.h mpi/cmd_train.c
