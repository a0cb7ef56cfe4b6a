/* SPDX-License-Identifier: MIT
 * lowbit: git-style subcommands. */
#include <stdio.h>
int main(int argc, char **argv)
{
	(void)argc; (void)argv;
	fprintf(stderr, "usage: lowbit <command> ...\n");
	return 1;
}
