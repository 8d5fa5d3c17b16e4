// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "cli/options.h"
#include "cli/targets.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/log.h"

int targets_add(struct targets *t, const char *cmd, const char *arg)
{
	double v;

	if (t->n == MAX_TARGETS) {
		log_error("%s: at most %d -p options", cmd, MAX_TARGETS);
		return -EINVAL;
	}
	if (options_number(cmd, "a pid", arg, 1, 4194304, &v) || v != floor(v))
		return -EINVAL;
	t->pid[t->n++] = (pid_t)v;
	return 0;
}

bool targets_has(const struct targets *t, pid_t pid)
{
	int i;

	for (i = 0; i < t->n; i++)
		if (t->pid[i] == pid)
			return true;
	return false;
}

void targets_exited(struct targets *t, pid_t pid)
{
	int i;

	for (i = 0; i < t->n; i++)
		if (t->pid[i] == pid)
			t->gone[i] = true;
}

bool targets_all_gone(const struct targets *t)
{
	int i;

	for (i = 0; i < t->n; i++)
		if (!t->gone[i])
			return false;
	return t->n > 0;
}

int targets_check(const struct targets *t, struct discover *d, const char *cmd, const char *feature,
		  bool (*capable)(const struct py_binary *b, const char **why))
{
	int i;

	for (i = 0; i < t->n; i++) {
		const struct py_process *p = discover_get(d, t->pid[i]);
		const char *why = NULL;
		char path[32];

		snprintf(path, sizeof(path), "/proc/%d", t->pid[i]);
		if (!p && access(path, F_OK)) {
			log_error("%s: no process with pid %d", cmd, t->pid[i]);
			return -ESRCH;
		}
		if (!p) {
			log_error("%s: pid %d is not a Python process", cmd, t->pid[i]);
			return -EINVAL;
		}
		if (!capable(p->bin, &why)) {
			log_error("%s: pid %d (CPython %s): %s unavailable: %s", cmd, t->pid[i],
				  p->bin->version[0] ? p->bin->version : "?", feature, why);
			return -ENOTSUP;
		}
	}
	return 0;
}
