/* SPDX-License-Identifier: MIT
 * Stop signals (see signals.h): a flag set by an async-signal-safe handler
 * (POSIX.1-2017 2.4.3: only sig_atomic_t stores and async-signal-safe
 * calls), chained to the handler it replaced. */
#include "lbconfig.h"

#include <signal.h>
#include <stddef.h>
#include <string.h>

#include "signals.h"

static const int stop_signals[3] = {SIGTERM, SIGUSR1, SIGUSR2};

static volatile sig_atomic_t pending;
static volatile sig_atomic_t received; /* wraps; only differences are read */
/* the actions ours replaced; written only while ours are not installed */
static struct sigaction previous[3];
static int depth;

void lb_signal_note(int sig)
{
	if (!pending)
		pending = sig;
}

static void on_signal(int sig, siginfo_t *info, void *uctx)
{
	lb_signal_note(sig);
	received = (sig_atomic_t)(received + 1); /* stop signals are blocked meanwhile */
	for (int i = 0; i < 3; i++) {
		if (stop_signals[i] != sig)
			continue;
		const struct sigaction *p = &previous[i];
		if (p->sa_flags & SA_SIGINFO) {
			if (p->sa_sigaction)
				p->sa_sigaction(sig, info, uctx);
		} else if (p->sa_handler != SIG_DFL && p->sa_handler != SIG_IGN) {
			p->sa_handler(sig);
		}
	}
}

void lb_signal_install(void)
{
	struct sigaction sa;
	if (depth++ > 0)
		return;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_signal;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	/* one handler at a time: the chained handlers need not be reentrant */
	for (int i = 0; i < 3; i++)
		sigaddset(&sa.sa_mask, stop_signals[i]);
	for (int i = 0; i < 3; i++)
		sigaction(stop_signals[i], NULL, &previous[i]);
	for (int i = 0; i < 3; i++)
		sigaction(stop_signals[i], &sa, NULL);
}

void lb_signal_restore(void)
{
	if (depth == 0 || --depth > 0)
		return;
	for (int i = 0; i < 3; i++)
		sigaction(stop_signals[i], &previous[i], NULL);
}

int lb_signal_pending(void)
{
	return (int)pending;
}

unsigned long lb_signal_count(void)
{
	return (unsigned long)received;
}

void lb_signal_clear(void)
{
	pending = 0;
}
