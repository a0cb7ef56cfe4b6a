# tests/fuzz/: libFuzzer harnesses of the input readers (config, sweep spec,
# IDX, CIFAR-10, run file), their seed corpora and crash regressions.
#
# make fuzz-smoke   build the harnesses with clang -fsanitize=fuzzer,address,
#                   undefined (tests/fuzz/fuzz.mk compiles the sources they
#                   need directly, apart from liblowbit.a) and run each for
#                   FUZZ_SECONDS; a no-op with a message when clang/libFuzzer
#                   is missing. FUZZ_CC and FUZZ_HARNESSES may be overridden.
# make check        replays every corpus file through the same harnesses,
#                   built as plain programs with the configured compiler
#                   (replay.c), so crash regressions run without clang.
FUZZ_CC = clang
FUZZ_SECONDS = 20
FUZZ_HARNESSES = config spec idx cifar runfile
FUZZ_LIBS = $(HDF5_HL_LIBS) $(HDF5_LIBS) $(CYAML_LIBS) $(YAML_LIBS) $(ZLIB_LIBS) -lm

fuzz-smoke: lbconfig.h
	@top_srcdir='$(abs_top_srcdir)' top_builddir='$(abs_top_builddir)' \
	FUZZ_CC='$(FUZZ_CC)' FUZZ_SECONDS='$(FUZZ_SECONDS)' FUZZ_HARNESSES='$(FUZZ_HARNESSES)' \
	FUZZ_CPPFLAGS='$(DEFS) $(AM_CPPFLAGS) -I$(abs_top_srcdir) -I$(abs_top_srcdir)/core -I$(abs_top_builddir)' \
	FUZZ_LIBS='$(FUZZ_LIBS)' MAKE='$(MAKE)' \
	$(SHELL) $(srcdir)/tests/fuzz/smoke.sh
.PHONY: fuzz-smoke

clean-local: clean-fuzz
clean-fuzz:
	-rm -rf tests/fuzz/obj tests/fuzz/found tests/fuzz/artifacts tests/fuzz/fuzz-*
.PHONY: clean-fuzz

FUZZ_REPLAYS = tests/fuzz/replay-config tests/fuzz/replay-spec tests/fuzz/replay-idx \
	tests/fuzz/replay-cifar tests/fuzz/replay-runfile
check_PROGRAMS += $(FUZZ_REPLAYS)
TESTS += $(FUZZ_REPLAYS)
noinst_HEADERS += tests/fuzz/fuzz.h
tests_fuzz_replay_config_SOURCES = tests/fuzz/replay.c tests/fuzz/fuzz_config.c
tests_fuzz_replay_config_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_CORPUS='"config"'
tests_fuzz_replay_spec_SOURCES = tests/fuzz/replay.c tests/fuzz/fuzz_spec.c
tests_fuzz_replay_spec_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_CORPUS='"spec"'
tests_fuzz_replay_idx_SOURCES = tests/fuzz/replay.c tests/fuzz/fuzz_idx.c
tests_fuzz_replay_idx_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_CORPUS='"idx"'
tests_fuzz_replay_cifar_SOURCES = tests/fuzz/replay.c tests/fuzz/fuzz_cifar.c
tests_fuzz_replay_cifar_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_CORPUS='"cifar"'
tests_fuzz_replay_runfile_SOURCES = tests/fuzz/replay.c tests/fuzz/fuzz_runfile.c
tests_fuzz_replay_runfile_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_CORPUS='"runfile"'
EXTRA_DIST += tests/fuzz/README.md tests/fuzz/fuzz.mk tests/fuzz/smoke.sh \
	tests/fuzz/make-seeds.py tests/fuzz/corpus
