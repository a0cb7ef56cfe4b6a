# tests/quant.mk: fragment included by Makefile.am
TESTS += tests/cli/quant-train.sh
EXTRA_DIST += tests/cli/quant-train.sh
TESTS += tests/cli/quant-ptq.sh
EXTRA_DIST += tests/cli/quant-ptq.sh
check_PROGRAMS += tests/unit/test_qmodel
TESTS += tests/unit/test_qmodel
TESTS += tests/cli/sweep-stages.sh
EXTRA_DIST += tests/cli/sweep-stages.sh
