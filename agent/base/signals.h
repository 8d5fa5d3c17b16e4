/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Stop and reload requests, set from signal handlers and read by the long-running loops. */
#ifndef PYRO_SIGNALS_H
#define PYRO_SIGNALS_H

/* Installs SIGINT/SIGTERM handlers that set signals_stop_requested (and interrupt blocking
 * waits: no SA_RESTART). */
void signals_handle_stop(void);
extern volatile int signals_stop_requested;
/* SIGHUP sets signals_reload_requested (the daemon reloads its configuration). */
void signals_handle_reload(void);
extern volatile int signals_reload_requested;

#endif
