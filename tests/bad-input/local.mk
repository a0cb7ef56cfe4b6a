# tests/bad-input/: the hostile-input corpus (cases.txt and its case files),
# run by run.sh; h5mangle damages HDF5 run files in one precise way.
check_PROGRAMS += tests/bad-input/h5mangle
tests_bad_input_h5mangle_SOURCES = tests/bad-input/h5mangle.c
tests_bad_input_h5mangle_LDADD = liblowbit.a $(LB_LIBS)
TESTS += tests/bad-input/run.sh
EXTRA_DIST += tests/bad-input/run.sh tests/bad-input/cases.txt tests/bad-input/README.md \
	tests/bad-input/tiny.yaml tests/bad-input/tiny-cifar.yaml tests/bad-input/make-cases.py \
	tests/bad-input/config tests/bad-input/spec tests/bad-input/idx tests/bad-input/cifar

# make check-valgrind: memcheck over the unit tests, the fuzz replays and one
# short `lowbit train` (tests/valgrind.supp covers the Open MPI library only).
check-valgrind: $(check_PROGRAMS) $(bin_PROGRAMS)
	@top_srcdir='$(abs_top_srcdir)' top_builddir='$(abs_top_builddir)' \
	$(SHELL) $(srcdir)/tests/bad-input/valgrind.sh
.PHONY: check-valgrind
EXTRA_DIST += tests/bad-input/valgrind.sh tests/valgrind.supp
