/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The subcommands. Each takes its own argv (argv[0] is the command name) and returns the
 * process exit status. */
#ifndef PYRO_COMMANDS_H
#define PYRO_COMMANDS_H

#define PYROMETER_VERSION "0.1.0"

int cmd_run(int argc, char **argv);
int cmd_ps(int argc, char **argv);
int cmd_record(int argc, char **argv);
/* record --mode calls (agent/cmd_calls.c) */
int cmd_calls(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_gc(int argc, char **argv);

/* Shared by the commands: installs SIGINT/SIGTERM handlers that set the flag below (and
 * interrupt blocking waits, no SA_RESTART). */
void cmd_handle_stop_signals(void);
extern volatile int cmd_stop_requested;
/* SIGHUP sets this flag (the daemon reloads its configuration). */
void cmd_handle_reload_signal(void);
extern volatile int cmd_reload_requested;

#endif
