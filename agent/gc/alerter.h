/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* GC pause alerts sent to Alertmanager (API v2, POST /api/v2/alerts): fired when a rule
 * holds, re-sent while it holds, resolved with endsAt once it has not held for a window. */
#ifndef PYRO_ALERTS_H
#define PYRO_ALERTS_H

#include <stdint.h>

#include <linux/types.h>

#include "pyrometer.h"

struct alerter;

struct alert_opts {
	const char *url; /* Alertmanager base URL, e.g. http://127.0.0.1:9093 */
	double pause_s;	 /* alert on any single pause at least this long (0: off) */
	double p99_s;	 /* alert when the windowed p99 is at least this (0: off) */
	double window_s; /* p99 window; also how long a rule must stop holding to resolve */
	double resend_s; /* re-send firing alerts this often */
};

int alerter_new(const struct alert_opts *o, struct alerter **out);
void alerter_free(struct alerter *a);
/* A pause (at or above the tracer's threshold) with its stack, leaf first. */
void alerter_pause(struct alerter *a, const char *service, int generation, uint64_t duration_ns,
		   const char *stack);
/* Pause histogram totals of a series now (PYRO_GC_BUCKETS counts), for the p99 rule. */
void alerter_histogram(struct alerter *a, const char *service, int generation,
		       const uint64_t *counts);
/* Evaluates the rules and sends what changed or is due; call about once a second. */
void alerter_tick(struct alerter *a);

#endif
