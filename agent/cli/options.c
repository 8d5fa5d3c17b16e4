// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* See options.h. */
#include "cli/options.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"

int options_number(const char *cmd, const char *what, const char *s, double min, double max,
		   double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < min || v > max) {
		log_error("%s: %s must be a number from %.16g to %.16g, not '%s'", cmd, what, min,
			  max, s);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

int options_target(int opt, const char *cmd, struct targets *t, bool *all, double *duration,
		   double max_duration)
{
	switch (opt) {
	case 'p':
		return targets_add(t, cmd, optarg) ? -EINVAL : 1;
	case 'a':
		*all = true;
		return 1;
	case 'd':
		return options_number(cmd, "the duration (-d)", optarg, 0.001, max_duration,
				      duration)
			       ? -EINVAL
			       : 1;
	default:
		return 0;
	}
}

int options_common(int opt, const char *usage)
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

int options_no_operands(int argc, char **argv, const char *cmd)
{
	if (optind < argc) {
		log_error("%s: unexpected argument '%s'", cmd, argv[optind]);
		return -EINVAL;
	}
	return 0;
}

int options_format(const char *s, enum options_format *f)
{
	if (!strcmp(s, "table"))
		*f = OPTIONS_TABLE;
	else if (!strcmp(s, "pprof"))
		*f = OPTIONS_PPROF;
	else if (!strcmp(s, "folded"))
		*f = OPTIONS_FOLDED;
	else {
		log_error("record: --format must be table, pprof or folded, not '%s'", s);
		return -EINVAL;
	}
	return 0;
}

void options_format_from_name(const char *file, enum options_format *f)
{
	size_t n = strlen(file);

	if ((n > 6 && !strcmp(file + n - 6, ".pb.gz")) ||
	    (n > 6 && !strcmp(file + n - 6, ".pprof")))
		*f = OPTIONS_PPROF;
	else if (n > 7 && !strcmp(file + n - 7, ".folded"))
		*f = OPTIONS_FOLDED;
}
