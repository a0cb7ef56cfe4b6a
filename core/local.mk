# core/: the trainer library (no MPI except train.c)
liblowbit_a_SOURCES += \
	core/err.c core/err.h \
	core/log.c core/log.h \
	core/rng.c core/rng.h \
	core/gemm.c core/gemm.h \
	core/util.c core/util.h
liblowbit_a_SOURCES += core/config.c core/config.h core/cyaml_util.c core/cyaml_util.h
check_PROGRAMS += tests/unit/test_config
TESTS += tests/unit/test_config
liblowbit_a_SOURCES += core/models/model.h core/models/model.c core/models/archs.c \
	core/optim/optim.h core/optim/optim.c
liblowbit_a_SOURCES += core/models/gradl1.h core/models/gradl1.c
check_PROGRAMS += tests/unit/test_gradl1
TESTS += tests/unit/test_gradl1
liblowbit_a_SOURCES += core/train.h core/train.c core/ptq.h core/ptq.c
liblowbit_a_SOURCES += core/signals.c core/signals.h
