/* stub: being written */
#include "cli.h"
int lb_cmd_validate(int argc, char **argv);
int lb_cmd_plan(int argc, char **argv);
int lb_cmd_validate(int argc, char **argv) { (void)argc; (void)argv; return LB_EXIT_ERROR; }
int lb_cmd_plan(int argc, char **argv) { (void)argc; (void)argv; return LB_EXIT_ERROR; }
