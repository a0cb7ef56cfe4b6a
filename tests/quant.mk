# tests/quant.mk: fragment included by Makefile.am
TESTS += tests/cli/quant-train.sh
EXTRA_DIST += tests/cli/quant-train.sh
