/* SPDX-License-Identifier: MIT
 * Stop signals (SIGTERM, SIGUSR1, SIGUSR2: a scheduler's "save and leave").
 *
 * Invariants: the handler only records the first stop signal in a
 * volatile sig_atomic_t and calls the handler it replaced (when that was a
 * function); it never allocates, locks, prints or exits, so a signal that
 * lands in the middle of a checkpoint write cannot damage it. The handlers
 * are installed with SA_RESTART so an interrupted read/write/open in HDF5
 * is restarted instead of failing with EINTR. The flag is sticky for the
 * life of the process: once set, every training (lb_train_run) stops at its
 * next step boundary, saves its state and returns LB_ERR_SIGNAL. */
#ifndef LB_SIGNALS_H
#define LB_SIGNALS_H

/* Install the stop handlers (nested calls count; only the outermost one
 * installs). A handler that was in place (e.g. a command's own stop handler)
 * keeps being called from ours, so both learn of the signal. Pair every call
 * with lb_signal_restore(). Not async-signal-safe. */
void lb_signal_install(void);

/* Undo one lb_signal_install(); the outermost puts the old actions back.
 * The recorded signal stays pending. */
void lb_signal_restore(void);

/* The first stop signal received (SIGTERM, SIGUSR1 or SIGUSR2), or 0. */
int lb_signal_pending(void);

/* Record sig as received, as the handler does. Async-signal-safe: another
 * signal handler (mpi/cmd_sweep.c's) may call it to forward its signal. */
void lb_signal_note(int sig);

/* How many stop signals the handler has seen (tests: a signal storm). */
unsigned long lb_signal_count(void);

/* Forget a pending signal (tests). */
void lb_signal_clear(void);

#endif
