# analysis/: the HDF5 results layout (writer and reader) — see runfile.h
liblowbit_a_SOURCES += analysis/runfile.h analysis/runfile.c
check_PROGRAMS += tests/unit/test_runfile
TESTS += tests/unit/test_runfile
# lowbit report: tables and figures of results (report.h, docs/report.md)
liblowbit_a_SOURCES += analysis/report.h analysis/report.c
