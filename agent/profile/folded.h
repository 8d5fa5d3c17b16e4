/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Folded stacks ("comm:pid;root;...;leaf COUNT"), the input of flamegraph.pl, speedscope
 * and friends. Each frame is "qualname (file:line)". */
#ifndef PYRO_FOLDED_H
#define PYRO_FOLDED_H

#include <stdio.h>

struct profile;
struct intern;

/* Builds the distinct folded lines of p (without counts) into lines, with their counts in
 * *counts (malloc'd, indexed by line id). Used by the flame graph writer too. */
int folded_lines(const struct profile *p, struct intern *lines, unsigned long long **counts);
/* Writes the lines, sorted, to f. */
int folded_write(const struct profile *p, FILE *f);

#endif
