# core/quant/: quantizer kernels (fake-quant forward, estimator backward)
liblowbit_a_SOURCES += core/quant/quant.h core/quant/uniform.c \
	core/quant/rq.h core/quant/rq.c \
	core/quant/qmodel.h core/quant/qmodel.c \
	core/quant/waveq.h core/quant/waveq.c \
	core/quant/bsq.h core/quant/bsq.c
check_PROGRAMS += tests/unit/test_quant tests/unit/test_rq tests/unit/test_waveq \
	tests/unit/test_bsq
TESTS += tests/unit/test_quant tests/unit/test_rq tests/unit/test_waveq \
	tests/unit/test_bsq
