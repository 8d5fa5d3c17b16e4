/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The subcommands. Each takes its own argv (argv[0] is the command name) and returns the
 * process exit status. */
#ifndef PYRO_COMMANDS_H
#define PYRO_COMMANDS_H

int cmd_ps(int argc, char **argv);
int cmd_record(int argc, char **argv);
/* record --mode calls (agent/cli/record_calls.c) */
int cmd_calls(int argc, char **argv);
/* record --mode imports (agent/cli/record_imports.c) */
int cmd_imports(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
/* inspect --bpf (agent/cli/inspect_bpf.c) */
int inspect_bpf_programs(void);
int cmd_gc(int argc, char **argv);

#endif
