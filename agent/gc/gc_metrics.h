/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Prometheus text exposition of GC pauses, per service_name and generation. */
#ifndef PYRO_GC_METRICS_H
#define PYRO_GC_METRICS_H

#include <stdbool.h>
#include <stdio.h>

struct gctrace;
struct seen;

/* Writes every GC metric: the kernel's per-process figures summed per (service,
 * generation) — per (service, generation, pid) with pid_label, which multiplies the series
 * by the processes — availability per service (from every process seen), and loss
 * counters. */
int gc_metrics_write(struct gctrace *g, const struct seen *seen, bool pid_label, FILE *f);

#endif
