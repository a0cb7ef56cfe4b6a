# tests/quant2.mk: Gradient-L1, WaveQ and BSQ end to end (fragment included by Makefile.am)
TESTS += tests/cli/gradl1.sh
EXTRA_DIST += tests/cli/gradl1.sh
TESTS += tests/cli/waveq-bsq.sh
EXTRA_DIST += tests/cli/waveq-bsq.sh
