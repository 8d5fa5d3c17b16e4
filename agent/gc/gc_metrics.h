/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Prometheus text exposition of GC pauses, per service_name and generation. */
#ifndef PYRO_GC_METRICS_H
#define PYRO_GC_METRICS_H

#include <stdbool.h>
#include <stdio.h>

struct gctrace;
struct seen;
struct py_process;
struct pyro_gc_key;

/* Whose figures k's are: the process seen at its pid, or NULL (service "unknown") for a pid
 * discovery has not named. *later is set, and NULL returned, for an image of the pid that
 * discovery has not named yet (one it exec'd into, or a new process given the pid): its
 * figures count once it is, never first under the process seen before it. */
const struct py_process *gc_metrics_key_owner(const struct seen *seen, const struct pyro_gc_key *k,
					      bool *later);

/* Writes every GC metric: the kernel's per-process figures summed per (service,
 * generation) — per (service, generation, pid) with pid_label, which multiplies the series
 * by the processes — availability per service (from every process seen), and loss
 * counters. */
int gc_metrics_write(struct gctrace *g, const struct seen *seen, bool pid_label, FILE *f);

#endif
