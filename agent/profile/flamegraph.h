/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* A self-contained SVG flame graph: root at the bottom, width proportional to samples,
 * names on the boxes that fit them, and sample counts and percentages on hover. */
#ifndef PYRO_FLAMEGRAPH_H
#define PYRO_FLAMEGRAPH_H

#include <stdio.h>

struct profile;

int flamegraph_write(const struct profile *p, const char *title, FILE *f);

#endif
