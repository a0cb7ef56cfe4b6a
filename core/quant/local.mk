# core/quant/: quantizer kernels (fake-quant forward, estimator backward)
liblowbit_a_SOURCES += core/quant/quant.h core/quant/uniform.c \
	core/quant/rq.h core/quant/rq.c \
	core/quant/qmodel.h core/quant/qmodel.c
check_PROGRAMS += tests/unit/test_quant tests/unit/test_rq
TESTS += tests/unit/test_quant tests/unit/test_rq
