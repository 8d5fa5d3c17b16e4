/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The processes a command was given with -p. */
#ifndef PYRO_TARGETS_H
#define PYRO_TARGETS_H

#include <stdbool.h>
#include <sys/types.h>

#include "procs/discover.h"

#define MAX_TARGETS 64

struct targets {
	pid_t pid[MAX_TARGETS];
	bool gone[MAX_TARGETS];
	int n;
};

/* Adds the pid in arg (a -p option). */
int targets_add(struct targets *t, const char *cmd, const char *arg);
bool targets_has(const struct targets *t, pid_t pid);
void targets_exited(struct targets *t, pid_t pid);
/* Every target has exited (false when there are none). */
bool targets_all_gone(const struct targets *t);
/* Each target exists, is Python, and has the capability (`feature` names it for people);
 * otherwise says which and why, and returns a negative errno. */
int targets_check(const struct targets *t, struct discover *d, const char *cmd, const char *feature,
		  bool (*capable)(const struct py_binary *b, const char **why));

#endif
