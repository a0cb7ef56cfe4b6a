# SPDX-License-Identifier: MIT
# Builds the libFuzzer harnesses with clang: the project sources they need are
# compiled here with -fsanitize=fuzzer-no-link,address,undefined (coverage
# for libFuzzer, plus ASan+UBSan), separately from liblowbit.a, which the
# configured compiler builds. GNU make; run by tests/fuzz/smoke.sh (make
# fuzz-smoke), which passes:
#   top_srcdir, top_builddir, FUZZ_CC, FUZZ_CPPFLAGS (the project's -D/-I
#   flags), FUZZ_LIBS (HDF5, libcyaml, libyaml, zlib), and the output folder O.
FUZZ_HARNESSES = config spec idx cifar runfile
# What the harnesses reach: the loaders and everything they call.
FUZZ_SRCS = core/err.c core/log.c core/util.c core/rng.c core/config.c core/cyaml_util.c \
	core/data/idx.c core/data/cifar10.c core/data/dataset.c \
	sweeps/spec.c sweeps/expand.c analysis/runfile.c
FUZZ_CFLAGS = -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=undefined
OBJS = $(FUZZ_SRCS:%.c=$(O)/obj/%.o)

all: $(FUZZ_HARNESSES:%=$(O)/fuzz-%)

# Keep the objects between runs (they are intermediate files of the pattern rules).
.SECONDARY: $(OBJS)

$(O)/obj/%.o: $(top_srcdir)/%.c
	@mkdir -p $(dir $@)
	@echo "  FUZZCC   $*.o"
	@$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(O)/fuzz-%: $(top_srcdir)/tests/fuzz/fuzz_%.c $(top_srcdir)/tests/fuzz/fuzz.h $(OBJS)
	@echo "  FUZZLD   fuzz-$*"
	@$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(OBJS) $(FUZZ_LIBS) -o $@

-include $(OBJS:.o=.d)
