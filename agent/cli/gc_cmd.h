/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* pyrometer gc's state, shared by gc.c (options, tracing) and gc_summary.c. */
#ifndef PYRO_GC_CMD_H
#define PYRO_GC_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/evloop.h"
#include "cli/targets.h"
#include "gc/alerter.h"
#include "gc/gctrace.h"
#include "procs/discover.h"
#include "procs/seen.h"
#include "python/symbolizer.h"

/* One summary row: a process's figures for one generation. */
struct summary {
	struct pyro_gc_key key;
	uint64_t starttime; /* the process's, so that a reused pid gets rows of its own */
	uint64_t block;	    /* rows read together (one image of a process) share one */
	char comm[16];
	struct pyro_gc_stats st;
	uint64_t p50, p99, p999; /* from its histogram */
};

struct gc_cmd {
	struct targets targets;
	bool all, json;
	double duration;
	double threshold_ms;
	double linger_s;
	const char *metrics_addr;
	bool metrics_pid;
	struct metrics_server *metrics;
	struct alert_opts alert;
	struct alerter *alerter;

	struct evloop *loop;
	struct discover *disc;
	struct gctrace *gc;
	struct symbolizer *sym;
	struct seen seen;
	struct seen traced; /* processes whose pauses are reported */
	uint64_t events, events_lost_user;
	/* summary rows of processes that have exited: a pid used again later is another
	 * process, with rows of its own (kept apart by start time) */
	struct summary *finished;
	size_t nfinished, finished_cap;
	uint64_t block; /* the last struct summary.block given */
};

/* A process has exited (image 0), or exec'd away from image: its rows are kept for the
 * summary and its kernel entries retired. */
void gc_cmd_finish_process(struct gc_cmd *c, const struct py_process *p, uint64_t image);
void gc_cmd_print_summary(struct gc_cmd *c);
/* Events received and lost, in the log (and as an "accounting" event with --json). */
void gc_cmd_print_losses(struct gc_cmd *c);

#endif
