/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The options the commands share, and number parsing that says what is wrong. */
#ifndef PYRO_OPTIONS_H
#define PYRO_OPTIONS_H

#include <stdbool.h>

#include "cli/options.h"
#include "cli/targets.h"

/* Parses a number option; says what is wrong ("CMD: WHAT must be ...") and returns -EINVAL. */
int options_number(const char *cmd, const char *what, const char *s, double min, double max,
		   double *out);
/* The options every command shares, for the default: case of its getopt loop: -v (more
 * verbose), -h (usage to stdout, returns 1) and anything unknown (usage to stderr, -EINVAL).
 * Returns 0 when the option was handled and parsing goes on. */
int options_common(int opt, const char *usage);
/* -p PID, -a and -d SECONDS, which record, gc and record --mode calls share. Returns 1 when
 * opt was one of them, 0 when it was not, -EINVAL for a bad value (said). */
int options_target(int opt, const char *cmd, struct targets *t, bool *all, double *duration,
		   double max_duration);
/* The outputs of record --mode calls and --mode imports. */
enum options_format {
	OPTIONS_TABLE,
	OPTIONS_PPROF,
	OPTIONS_FOLDED,
};

/* --format table|pprof|folded (said when bad: -EINVAL). */
int options_format(const char *s, enum options_format *f);
/* The format an output file's name implies (.pb.gz, .pprof: pprof; .folded: folded); f is
 * left as it is for any other name. */
void options_format_from_name(const char *file, enum options_format *f);
/* After the getopt loop: commands take options only. */
int options_no_operands(int argc, char **argv, const char *cmd);

#endif
