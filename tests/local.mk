# tests/: TAP programs and scripts
noinst_HEADERS += tests/tap.h
check_PROGRAMS += tests/unit/test_core
TESTS += tests/unit/test_core
