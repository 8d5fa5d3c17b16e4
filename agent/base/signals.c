// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Stop requests (SIGINT, SIGTERM) for the long-running commands, and reload requests
 * (SIGHUP) for the daemon. */
#include <signal.h>
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
