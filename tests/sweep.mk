# tests/sweep.mk: fragment included by Makefile.am
