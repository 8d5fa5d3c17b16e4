/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* GC pause tracing: bpf/gc.bpf.c attached to gc__start/gc__done once per interpreter binary
 * (device + inode) while a tracked process uses it, and for a linger period after (or from
 * start to stop for interpreters installed on the host). Bounded: at most USDT_MAX_SITES
 * sites per probe (agent/python/usdt_sites.h) and GC_MAX_UPROBES uprobes in all. */
#ifndef PYRO_GCTRACE_H
#define PYRO_GCTRACE_H

#include <linux/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gc/gchist.h"
#include "pyrometer.h"

struct gctrace;
struct py_process;

/* Most GC uprobes held at once. Each costs an RCU grace period to remove at exit (40-80 ms
 * here, one after another under the kernel's event mutex), so this bounds how long a stop
 * can take; a real CPython binary needs 2 to 4. */
#define GC_MAX_UPROBES 48

/* How long a binary no process runs stays attached (cron jobs, CLI tools, test runners). */
#define GC_LINGER_NS (600 * 1000000000ull)

struct gctrace_opts {
	uint64_t linger_ns; /* a binary no process runs stays attached this long */
	int procs_fd;	    /* discovery's pid map */
	bool all;	    /* every tracked process, not only those flagged PYRO_PROC_GC */
	uint64_t slow_ns;   /* pauses at least this long are sent as events */
};

struct gctrace_stats {
	uint64_t kernel[PYRO_GC_COUNTER_MAX];
	uint64_t attached, attach_failed, binaries;
	uint64_t uprobes;	/* held now */
	uint64_t refused;	/* binaries refused for the uprobe limit */
	uint64_t sites_dropped; /* duplicate, outside code or beyond the limit, in notes */
	uint64_t unattributed;	/* processes gone before discovery named them (retire_untracked) */
};

int gctrace_new(const struct gctrace_opts *opts, struct gctrace **out);
void gctrace_free(struct gctrace *g);
/* Makes sure p's interpreter binary is attached. -ENOTSUP if it has no GC probes. */
int gctrace_track(struct gctrace *g, const struct py_process *p);
/* p is gone: its binary lingers, and is detached by gctrace_expire once no tracked
 * process has used it for the linger period. */
void gctrace_untrack(struct gctrace *g, const struct py_process *p);
/* Detaches binaries idle for longer than the linger period, and forgets failed ones. */
void gctrace_expire(struct gctrace *g);
/* Attaches the GC probes of the interpreters installed on the host until the end, so that
 * their processes are counted from their first collection. */
void gctrace_pin_installed(struct gctrace *g);
/* 1 if p's GC is traced; else 0 with a short label (reason) and a sentence (why). */
int gctrace_status(struct gctrace *g, const struct py_process *p, const char **reason,
		   const char **why);
/* At exit: hands the uprobes to the broker (agent/usdt/uprobes.h), so that removing them does
 * not hold up our exit. */
int gctrace_hand_over(struct gctrace *g);
/* Changes the linger period (SIGHUP). */
void gctrace_set_linger_ns(struct gctrace *g, uint64_t linger_ns);
/* Changes the threshold above which pauses are sent as events. */
void gctrace_set_slow_ns(struct gctrace *g, uint64_t slow_ns);
/* Ring buffer of struct pyro_gc_event. */
int gctrace_events_fd(const struct gctrace *g);
/* Calls cb for each (pid, generation, image) counted so far. */
int gctrace_for_each(struct gctrace *g,
		     void (*cb)(const struct pyro_gc_key *k, const struct pyro_gc_stats *st,
				void *ctx),
		     void *ctx);
/* Calls cb for every non-empty histogram bucket of every (pid, generation, image). */
int gctrace_for_each_bucket(struct gctrace *g,
			    void (*cb)(const struct pyro_gc_hist_key *k, uint64_t n, void *ctx),
			    void *ctx);
/* Most generations one process reports (0-2; 3.14.0-3.14.4's young/increment/full). */
#define PYRO_GC_MAX_GENERATIONS 8
/* Calls cb for each generation of one pid in one image (0: summed over its images), with
 * its histogram (PYRO_GC_BUCKETS). */
int gctrace_process(struct gctrace *g, uint32_t pid, uint64_t image,
		    void (*cb)(const struct pyro_gc_key *k, const struct pyro_gc_stats *st,
			       const uint64_t *hist, void *ctx),
		    void *ctx);
/* Adds st's figures into sum: counts, times and objects summed, the longest pause kept. */
void gctrace_stats_add(struct pyro_gc_stats *sum, const struct pyro_gc_stats *st);
/* The pause histogram of (pid, generation) in image k->image, or in all of the pid's images
 * if that is 0: counts[PYRO_GC_BUCKETS]. */
int gctrace_histogram(struct gctrace *g, const struct pyro_gc_key *k, uint64_t *counts);
void gctrace_stats(struct gctrace *g, struct gctrace_stats *st);
/* Run time and runs of both probe programs (kernel.bpf_stats_enabled). */
void gctrace_prog_stats(struct gctrace *g, uint64_t *run_ns, uint64_t *run_cnt);

/* A process that has exited (image 0: every image of the pid) or an image a pid exec'd
 * away from, and the service its figures count for. */
struct gc_retiree {
	uint32_t pid;
	uint64_t image;
	char service[64];
};

/* Folds the kernel's entries of these processes into per-(service, generation) totals kept
 * here and deletes them from the maps (long-running use: the maps then hold live processes
 * only). Sorts list. */
int gctrace_retire(struct gctrace *g, struct gc_retiree *list, size_t n);
/* Folds the figures of processes that keep(pid) does not claim, as service "unknown": the
 * kernel counts every process running an attached binary, also one that exited before
 * discovery could look at it, whose entries would otherwise stay in the maps for good. */
int gctrace_retire_untracked(struct gctrace *g, bool (*keep)(uint32_t pid, void *ctx), void *ctx);
/* Calls cb for each (service, generation) total of exited processes; hist has
 * PYRO_GC_BUCKETS counts. */
void gctrace_for_each_retired(struct gctrace *g,
			      void (*cb)(const char *service, int generation,
					 const struct pyro_gc_stats *st, const uint64_t *hist,
					 void *ctx),
			      void *ctx);

#endif
