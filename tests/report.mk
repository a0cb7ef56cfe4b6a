# tests/report.mk: fragment included by Makefile.am (lowbit report)
check_PROGRAMS += tests/unit/test_report
TESTS += tests/unit/test_report
TESTS += tests/cli/report.sh
EXTRA_DIST += tests/cli/report.sh
