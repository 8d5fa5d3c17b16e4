/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Processes by pid as last seen (copies), alive or gone: samples and events of a process that
 * has exited are still labelled from here. Long-running users remove what they no longer
 * need (seen_remove). */
#ifndef PYRO_SEEN_H
#define PYRO_SEEN_H

#include <stddef.h>

#include "procs/discover.h"

#define SEEN_BUCKETS 4096

struct seen_entry;

struct seen {
	struct seen_entry *buckets[SEEN_BUCKETS];
	size_t n;
};

void seen_init(struct seen *s);
void seen_free(struct seen *s);
/* Adds p, or replaces the entry of its pid. Returns 0 if the pid was new, 1 if replaced. */
int seen_add(struct seen *s, const struct py_process *p);
const struct py_process *seen_get(const struct seen *s, pid_t pid);
/* Removes the entry of pid if it is still the process that started at starttime. */
void seen_remove(struct seen *s, pid_t pid, uint64_t starttime);
void seen_for_each(const struct seen *s, void (*cb)(const struct py_process *p, void *ctx),
		   void *ctx);

#endif
