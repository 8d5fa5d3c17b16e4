/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The processes a command was given with -p, and the number options commands share. */
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

/* Parses a number option; says what is wrong ("CMD: WHAT must be ...") and returns -EINVAL. */
int cli_number(const char *cmd, const char *what, const char *s, double min, double max,
	       double *out);
/* The options every command shares, for the default: case of its getopt loop: -v (more
 * verbose), -h (usage to stdout, returns 1) and anything unknown (usage to stderr, -EINVAL).
 * Returns 0 when the option was handled and parsing goes on. */
int cli_common_option(int opt, const char *usage);
/* -p PID, -a and -d SECONDS, which record, gc and record --mode calls share. Returns 1 when
 * opt was one of them, 0 when it was not, -EINVAL for a bad value (said). */
int cli_target_option(int opt, const char *cmd, struct targets *t, bool *all, double *duration,
		      double max_duration);
/* After the getopt loop: commands take options only. */
int cli_no_operands(int argc, char **argv, const char *cmd);
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
