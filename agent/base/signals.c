// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Stop requests (SIGINT, SIGTERM) for the long-running commands, and reload requests
 * (SIGHUP) for the daemon. */
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/signals.h"

volatile int signals_stop_requested;
volatile int signals_reload_requested;

static void on_stop_signal(int sig)
{
	(void)sig;
	signals_stop_requested = 1;
}

void signals_handle_stop(void)
{
	/* No SA_RESTART: a blocking wait (epoll in ring_buffer__poll) returns EINTR at once. */
	struct sigaction sa = { .sa_handler = on_stop_signal };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static void stop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
}

void signals_hold_stop(bool hold)
{
	sigset_t set;

	stop_signals(&set);
	sigprocmask(hold ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
}

bool signals_stop_pending(void)
{
	sigset_t pending;

	if (signals_stop_requested)
		return true;
	if (sigpending(&pending))
		return false;
	return sigismember(&pending, SIGINT) == 1 || sigismember(&pending, SIGTERM) == 1;
}

static void on_reload_signal(int sig)
{
	(void)sig;
	signals_reload_requested = 1;
}

void signals_handle_reload(void)
{
	struct sigaction sa = { .sa_handler = on_reload_signal };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGHUP, &sa, NULL);
}
