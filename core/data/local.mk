# core/data/: datasets (IDX, CIFAR-10), batches, augmentation — see dataset.h
liblowbit_a_SOURCES += core/data/dataset.h core/data/idx.c core/data/cifar10.c \
	core/data/dataset.c
check_PROGRAMS += tests/unit/test_data
TESTS += tests/unit/test_data
