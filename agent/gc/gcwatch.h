/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Glue between the GC tracer and the alerter, shared by `pyrometer gc` and `pyrometer run`. */
#ifndef PYRO_GCWATCH_H
#define PYRO_GCWATCH_H

#include <stdbool.h>
#include <stddef.h>

#include <linux/types.h>

#include "pyrometer.h"

struct alerter;
struct gctrace;
struct py_process;
struct seen;
struct symbolizer;

/* The stack of a pause as text, leaf first, one frame a line. p may be NULL. */
void gcwatch_stack_text(struct symbolizer *sym, const struct py_process *p,
			const struct pyro_gc_event *e, char *out, size_t len);
/* Hands a pause event to the single-pause rule. */
void gcwatch_alert_pause(struct alerter *a, struct symbolizer *sym, const struct py_process *p,
			 const struct pyro_gc_event *e);
/* Hands each (service, generation) histogram to the p99 rule (when on), then lets the
 * alerter send; call about once a second. */
void gcwatch_alert_tick(struct alerter *a, struct gctrace *g, const struct seen *seen, bool p99);

#endif
