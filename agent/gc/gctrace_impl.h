/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The GC tracer's state, shared by its two files: gctrace.c (attaching and tracking) and
 * gcretire.c (folding away what exited). Not for other modules: they use gctrace.h. */
#ifndef PYRO_GCTRACE_IMPL_H
#define PYRO_GCTRACE_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include "gc.skel.h"
#include "gc/gctrace.h"
#include "usdt/binattach.h"

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
	struct bpf_program *start, *done; /* the variants loaded (bpfload_pick) */
	struct binattach *bins;
	struct gctrace_stats stats;
	struct retired *ret;
	size_t nret;
};

#endif
