# core/layers/: layer kernels (forward/backward pairs) — see layers.h
liblowbit_a_SOURCES += core/layers/layers.h \
	core/layers/linear.c core/layers/conv2d.c core/layers/pool.c \
	core/layers/pointwise.c core/layers/batchnorm.c core/layers/dropout.c \
	core/layers/softmax_xent.c
noinst_HEADERS += tests/gradcheck.h
check_PROGRAMS += tests/unit/test_layers
TESTS += tests/unit/test_layers
