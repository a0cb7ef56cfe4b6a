/* SPDX-License-Identifier: MIT
 * The lowbit subcommands. Each returns the process exit status:
 * 0 done, 1 error, 2 usage error, 75 (EX_TEMPFAIL) stopped by a signal with
 * state saved. MPI is initialised by main() before a command runs. */
#ifndef LB_CLI_H
#define LB_CLI_H

#define LB_EXIT_OK 0
#define LB_EXIT_ERROR 1
#define LB_EXIT_USAGE 2
#define LB_EXIT_TEMPFAIL 75

int lb_cmd_train(int argc, char **argv);
int lb_cmd_validate(int argc, char **argv);
int lb_cmd_plan(int argc, char **argv);
int lb_cmd_sweep(int argc, char **argv);  /* mpi/cmd_sweep.c */
int lb_cmd_trial(int argc, char **argv);
int lb_cmd_status(int argc, char **argv);
int lb_cmd_index(int argc, char **argv);
int lb_cmd_ptq(int argc, char **argv);    /* mpi/cmd_ptq.c */
int lb_cmd_report(int argc, char **argv); /* mpi/cmd_report.c */
int lb_cmd_seal(int argc, char **argv);   /* mpi/cmd_seal.c */

/* Print "lowbit: error: <msg>" (rank 0 only unless every_rank). */
void lb_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
