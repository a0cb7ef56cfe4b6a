# tests/sweep.mk: fragment included by Makefile.am -- the sweep commands
# (lowbit sweep / trial / status / index) end to end.
TESTS += tests/cli/sweep-run.sh tests/cli/sweep-bad-input.sh tests/cli/sweep-kill.sh
EXTRA_DIST += tests/cli/sweep-run.sh tests/cli/sweep-bad-input.sh tests/cli/sweep-kill.sh
