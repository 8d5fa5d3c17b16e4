/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The daemon's own metrics (pyrometer_*), in Prometheus text format: what it sampled and
 * lost and why, what failed to attach, what it delivered, and what it costs. */
#ifndef PYRO_SELFMETRICS_H
#define PYRO_SELFMETRICS_H

#include <stdbool.h>
#include <stdio.h>

#include "cpuprof.h"
#include "discover.h"
#include "gctrace.h"
#include "sampler.h"
#include "shipper.h"
#include "spool.h"
#include "store.h"

struct self_figures {
	int frequency;
	uint64_t processes; /* tracked now */
	struct cpuprof_totals cpu;
	struct sampler_stats sampler;
	struct discover_stats disc;
	bool have_gc, have_shipper, have_store;
	struct gctrace_stats gc;
	struct shipper_stats ship;
	struct spool_stats spool;
	struct store_stats store;
	uint64_t last_store_unix;
	uint64_t profiles; /* encoded */
};

void selfmetrics_write(const struct self_figures *s, FILE *f);

#endif
