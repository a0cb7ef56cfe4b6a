# tests/quant.mk: fragment included by Makefile.am
