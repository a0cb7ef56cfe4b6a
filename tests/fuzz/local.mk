# tests/fuzz/local.mk: fragment included by Makefile.am
