/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Every process a command has seen, kept after it exits: its last samples and pauses arrive
 * after the exit and still need its layout and load address to be understood. */
#ifndef PYRO_SEEN_H
#define PYRO_SEEN_H

#include <stddef.h>

#include "discover.h"
#include "intern.h"

struct seen {
	struct intern pids;
	struct py_process *procs;
	size_t cap;
};

void seen_init(struct seen *s);
void seen_free(struct seen *s);
/* Remembers p; a reused pid replaces the process it named before. */
int seen_add(struct seen *s, const struct py_process *p);
const struct py_process *seen_get(const struct seen *s, pid_t pid);

#endif
