// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Stop requests (SIGINT, SIGTERM) for the long-running commands, and reload requests
 * (SIGHUP) for the daemon. */
#include <signal.h>
#include <stddef.h>

#include "commands.h"

volatile int cmd_stop_requested;
volatile int cmd_reload_requested;

static void on_stop_signal(int sig)
{
	(void)sig;
	cmd_stop_requested = 1;
}

void cmd_handle_stop_signals(void)
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
	cmd_reload_requested = 1;
}

void cmd_handle_reload_signal(void)
{
	struct sigaction sa = { .sa_handler = on_reload_signal };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGHUP, &sa, NULL);
}
