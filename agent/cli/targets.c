// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "cli/targets.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/log.h"

int cli_number(const char *cmd, const char *what, const char *s, double min, double max,
	       double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < min || v > max) {
		log_error("%s: %s must be a number from %g to %g, not '%s'", cmd, what, min, max,
			  s);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

int targets_add(struct targets *t, const char *cmd, const char *arg)
{
	double v;

	if (t->n == MAX_TARGETS) {
		log_error("%s: at most %d -p options", cmd, MAX_TARGETS);
		return -EINVAL;
	}
	if (cli_number(cmd, "a pid", arg, 1, 4194304, &v) || v != floor(v))
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
		const struct py_process *p = discover__get(d, t->pid[i]);
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

int cli_target_option(int opt, const char *cmd, struct targets *t, bool *all, double *duration,
		      double max_duration)
{
	switch (opt) {
	case 'p':
		return targets_add(t, cmd, optarg) ? -EINVAL : 1;
	case 'a':
		*all = true;
		return 1;
	case 'd':
		return cli_number(cmd, "the duration (-d)", optarg, 0.001, max_duration, duration)
			       ? -EINVAL
			       : 1;
	default:
		return 0;
	}
}

int cli_common_option(int opt, const char *usage)
{
	switch (opt) {
	case 'v':
		if (log_get_level() < LOG_LVL_DEBUG)
			log_set_level(log_get_level() + 1);
		return 0;
	case 'h':
		fputs(usage, stdout);
		return 1;
	default:
		fputs(usage, stderr);
		return -EINVAL;
	}
}

int cli_no_operands(int argc, char **argv, const char *cmd)
{
	if (optind < argc) {
		log_error("%s: unexpected argument '%s'", cmd, argv[optind]);
		return -EINVAL;
	}
	return 0;
}
