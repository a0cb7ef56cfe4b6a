# core/: the trainer library (no MPI except train.c)
liblowbit_a_SOURCES += \
	core/err.c core/err.h \
	core/log.c core/log.h \
	core/rng.c core/rng.h \
	core/gemm.c core/gemm.h \
	core/util.c core/util.h
