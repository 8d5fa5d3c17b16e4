/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The daemon's own metrics (pyrometer_*), in Prometheus text format: what it sampled and
 * lost and why, what failed to attach, what it delivered, and what it costs. */
#ifndef PYRO_SELFMETRICS_H
#define PYRO_SELFMETRICS_H

#include <stdbool.h>
#include <stdio.h>

#include "base/kernel.h"
#include "cpu/cpuprof.h"
#include "procs/discover.h"
#include "gc/gctrace.h"
#include "cpu/sampler.h"
#include "delivery/shipper.h"
#include "delivery/spool.h"
#include "delivery/store.h"

/* The daemon's call windows (agent/daemon/run.c). */
struct call_window_stats {
	uint64_t windows;  /* ended with at least one process traced */
	uint64_t failed;   /* could not start: the tracer did not load */
	uint64_t deferred; /* windows left out to keep within the budget */
	uint64_t hits;	   /* probe hits traced */
	double cost_s;	   /* their estimated cost to the traced processes */
	double ns_per_hit; /* what one hit costs, measured at the latest window's start */
};

struct self_figures {
	int frequency;
	uint64_t processes; /* tracked now */
	struct cpuprof_totals cpu;
	struct sampler_stats sampler;
	struct discover_stats disc;
	struct symbolizer_stats sym;
	bool have_gc, have_shipper, have_store, have_calls;
	struct call_window_stats calls;
	struct gctrace_stats gc;
	struct shipper_stats ship;
	struct spool_stats spool;
	struct store_stats store;
	uint64_t last_store_unix;
	uint64_t profiles;		 /* encoded */
	const char *off[KERNEL_CAP_MAX]; /* why each capability is not running; NULL: it is */
};

void selfmetrics_write(const struct self_figures *s, FILE *f);

#endif
