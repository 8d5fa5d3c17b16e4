/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The GC tracer's state, shared by its two files: gctrace.c (attaching and tracking) and
 * gcretire.c (folding away what exited). Not for other modules: they use gctrace.h. */
#ifndef PYRO_GCTRACE_IMPL_H
#define PYRO_GCTRACE_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include "gc.skel.h"
#include "gc/gctrace.h"
#include "python/usdt_sites.h"

/* An interpreter binary (device + inode) and the uprobes at its GC probe sites. It stays
 * attached while processes run it and, after the last one exits, for the linger period:
 * short-lived processes of a binary nothing long-lived runs (cron jobs, CLI tools) neither
 * pay an attach and a detach each (a detach costs an RCU grace period under the kernel's
 * event mutex) nor lose the collections they make before discovery would attach again. */
struct gc_binary {
	struct gc_binary *next;
	uint32_t dev_major, dev_minor;
	uint64_t inode;
	int refs;	     /* tracked processes running it */
	bool pinned;	     /* installed on the host: attached from start to stop */
	uint64_t idle_since; /* CLOCK_MONOTONIC ns when refs fell to 0 */
	int err;	     /* 0: attached; else why not (retried after GC_RETRY_NS) */
	uint64_t failed_at;
	char why[160];
	int nlinks;
	struct bpf_link *links[2 * USDT_MAX_SITES];
};

/* A binary that failed to attach is tried again after this long, not for every process. */
#define GC_RETRY_NS (60 * 1000000000ull)

/* The totals of processes that have exited, per (service, generation): their kernel
 * entries are folded in here and deleted, so the maps hold live processes only. */
struct retired {
	char service[64];
	int32_t generation;
	struct pyro_gc_stats st;
	uint64_t hist[PYRO_GC_BUCKETS];
};

struct gctrace {
	struct gc_bpf *skel;
	struct gc_binary *bins;
	struct gctrace_stats stats;
	uint64_t linger_ns;
	struct retired *ret;
	size_t nret;
};

#endif
