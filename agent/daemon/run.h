/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* pyrometer run: the daemon (agent/daemon/run.c). */
#ifndef PYRO_RUN_H
#define PYRO_RUN_H

int cmd_run(int argc, char **argv);

#endif
