/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Stop and reload requests, set from signal handlers and read by the long-running loops. */
#ifndef PYRO_SIGNALS_H
#define PYRO_SIGNALS_H

#include <stdbool.h>

/* Installs SIGINT/SIGTERM handlers that set signals_stop_requested (and interrupt blocking
 * waits: no SA_RESTART). */
void signals_handle_stop(void);
extern volatile int signals_stop_requested;
/* Holds SIGINT/SIGTERM back while true, then lets them through. A signal that reaches the
 * verifier mid-load makes it give up with EAGAIN, and libbpf then loads the program again
 * (up to 5 times): a stop during start-up would make start-up longer, not shorter. Held,
 * it stays pending until the load ends. Children forked meanwhile inherit the hold. */
void signals_hold_stop(bool hold);
/* Whether a stop was requested, held back or not. */
bool signals_stop_pending(void);
/* SIGHUP sets signals_reload_requested (the daemon reloads its configuration). */
void signals_handle_reload(void);
extern volatile int signals_reload_requested;

#endif
