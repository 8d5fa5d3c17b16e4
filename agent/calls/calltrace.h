/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Function-call tracing (bpf/calls.bpf.c) attached to the function__entry/function__return
 * probes of chosen processes only: per pid, never for a whole binary, since an armed probe
 * makes every call of every process running that binary trap into the kernel. */
#ifndef PYRO_CALLTRACE_H
#define PYRO_CALLTRACE_H

#include <linux/types.h>
#include <stdbool.h>
#include <stdint.h>

#include "pyrometer.h"

struct calltrace;
struct py_process;

/* make bench's floors: the same probes, attached the same way, running less. */
enum calltrace_floor {
	FLOOR_NONE,
	FLOOR_COUNT, /* a program that only counts hits */
	FLOOR_TIMER, /* a shadow stack that only times calls (no counts, paths or histogram) */
};

struct calltrace_opts {
	int procs_fd; /* discovery's pid map */
	enum calltrace_floor floor;
};

int calltrace_new(const struct calltrace_opts *o, struct calltrace **out);
void calltrace_free(struct calltrace *c);
/* Attaches to p's probes (entry and return; return only where the binary's entry does not
 * fire). -ENOTSUP (with *why) when its interpreter cannot be traced. */
int calltrace_attach(struct calltrace *c, const struct py_process *p, const char **why);
/* Detaches everything (the probes stop trapping at once); the maps stay readable. */
void calltrace_detach_all(struct calltrace *c);
int calltrace_for_each_fn(struct calltrace *c,
			  void (*cb)(const struct pyro_fn_key *k, const struct pyro_fn_stats *s,
				     void *ctx),
			  void *ctx);
int calltrace_for_each_path(struct calltrace *c,
			    void (*cb)(const struct pyro_path_key *k, const struct pyro_path *p,
				       void *ctx),
			    void *ctx);
/* The names the kernel read when the function was first seen; -ENOENT if it has none. */
int calltrace_fn_names(struct calltrace *c, const struct pyro_fn_key *k, struct pyro_fn_names *out);
void calltrace_counters(struct calltrace *c, uint64_t out[PYRO_CALLS_COUNTER_MAX]);
uint64_t calltrace_floor_hits(struct calltrace *c);
/* Measures what one probe hit costs the process that hits it, trap and program, by tracing a
 * function of this process (a few hundred ms; needs what attaching needs). */
int calltrace_calibrate(struct calltrace *c, double *ns_per_hit);
/* Run time and runs of the probe programs (kernel.bpf_stats_enabled). */
void calltrace_prog_stats(struct calltrace *c, uint64_t *run_ns, uint64_t *run_cnt);

#endif
