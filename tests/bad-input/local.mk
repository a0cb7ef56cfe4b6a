# tests/bad-input/local.mk: fragment included by Makefile.am
