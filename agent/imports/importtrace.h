/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Import tracing: bpf/imports.bpf.c attached to import__find__load__start/done once per
 * interpreter binary, as the GC probes are (agent/usdt/binattach.h): a process of an
 * attached binary is seen from its first import, which per-process attaching, after
 * discovery, would miss. The probes fire only for imports that load a module, a few
 * hundred to a few thousand per process, mostly at start-up; each finished import comes to
 * user space as an event (struct pyro_import_event), built into a tree by importtree.h. */
#ifndef PYRO_IMPORTTRACE_H
#define PYRO_IMPORTTRACE_H

#include <linux/types.h>
#include <stdbool.h>
#include <stdint.h>

#include "pyrometer.h"
#include "usdt/binattach.h"

struct importtrace;
struct importtree_sym;
struct py_binary;
struct py_process;
struct symbolizer;

/* Most import uprobes held at once (a real CPython binary needs 2 to 4; see GC_MAX_UPROBES). */
#define IMPORT_MAX_UPROBES 48

struct importtrace_opts {
	int procs_fd;	    /* discovery's pid map */
	bool all;	    /* every process of an attached binary, not only flagged ones */
	uint64_t linger_ns; /* a binary no process runs stays attached this long */
	bool floor;	    /* make bench: programs that only count probe hits */
};

struct importtrace_stats {
	uint64_t kernel[PYRO_IMP_COUNTER_MAX];
	struct binattach_stats bins;
};

int importtrace_new(const struct importtrace_opts *o, struct importtrace **out);
void importtrace_free(struct importtrace *t);
/* Makes sure p's interpreter binary is attached. -ENOTSUP if it has no import probes. */
int importtrace_track(struct importtrace *t, const struct py_process *p);
void importtrace_untrack(struct importtrace *t, const struct py_process *p);
void importtrace_expire(struct importtrace *t);
/* Attaches the interpreters installed on the host until the end: their processes are seen
 * from their first import. */
void importtrace_pin_installed(struct importtrace *t);
/* When p's binary was attached (CLOCK_MONOTONIC ns), 0 if it is not: imports p made
 * before then were not seen. */
uint64_t importtrace_since(struct importtrace *t, const struct py_process *p);
int importtrace_hand_over(struct importtrace *t);
/* Ring buffer of struct pyro_import_event and struct pyro_import_root. */
int importtrace_events_fd(const struct importtrace *t);
void importtrace_stats(struct importtrace *t, struct importtrace_stats *st);
/* Names the frames of an outermost import's importer (leaf first) from p's memory: at
 * once, while the process is alive. Returns how many went to out (PYRO_SEG_FRAMES room). */
uint32_t importtrace_importer(struct symbolizer *sym, const struct py_process *p,
			      const struct pyro_import_root *e, struct importtree_sym *out);
/* Run time and runs of both probe programs (kernel.bpf_stats_enabled). */
void importtrace_prog_stats(struct importtrace *t, uint64_t *run_ns, uint64_t *run_cnt);

#endif
