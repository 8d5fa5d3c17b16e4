/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The CPU profiling pipeline shared by `record` and `run`: discovery -> BPF sampling ->
 * drain -> symbolize -> profile. The caller says which profile each process's samples go
 * to, so one profile (record) or one per service (run) come out of the same code. */
#ifndef PYRO_CPUPROF_H
#define PYRO_CPUPROF_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "procs/discover.h"
#include "cpu/sampler.h"

struct profile;
struct cpuprof;

struct cpuprof_ops {
	/* The profile samples of p go to (p is NULL when the process was never seen); NULL
	 * drops them (they are still counted). */
	struct profile *(*profile_for)(const struct py_process *p, void *ctx);
	/* Where p's off-CPU stretches go (weighted profiles: a stretch weighs its length,
	 * under a [gil] or [off-cpu] leaf). Non-NULL turns the off-CPU program on. A weighted
	 * profile_for profile gets CPU samples weighing their period: one profile of wall
	 * time when both return it. */
	struct profile *(*wait_profile_for)(const struct py_process *p, void *ctx);
	/* Discovery's events, after cpuprof has noted them. Either may be NULL. */
	void (*on_start)(const struct py_process *p, uint64_t ktime_ns, void *ctx);
	void (*on_exit)(const struct py_process *p, enum discover_exit_why why, int code,
			uint64_t ktime_ns, void *ctx);
	void *ctx;
};

struct cpuprof_totals {
	uint64_t samples;	     /* samples drained into profiles */
	uint64_t resolved;	     /* of those, walked and symbolized without a failure */
	uint64_t lost;		     /* samples lost in the kernel or without their stack */
	uint64_t gil_ns, off_cpu_ns; /* wall mode: time off the CPU, waiting for the GIL or not */
};

/* Starts discovery (live events, then a /proc scan); sampling starts with cpuprof_sample. */
int cpuprof_new(const struct cpuprof_ops *ops, struct cpuprof **out);
void cpuprof_free(struct cpuprof *c);
struct discover *cpuprof_discover(struct cpuprof *c);
/* The event loop its rings are served from; other rings may join it (GC pauses). */
struct evloop *cpuprof_loop(struct cpuprof *c);
/* Attaches the perf events (and the off-CPU program, with ops.wait_profile_for).
 * sample_all: every Python process, not only flagged ones. */
int cpuprof_sample(struct cpuprof *c, int frequency, bool sample_all);
/* Waits up to timeout_ms for discovery events and new stacks. */
int cpuprof_poll(struct cpuprof *c, int timeout_ms);
/* Moves the samples taken so far into the profiles. */
int cpuprof_drain(struct cpuprof *c);
void cpuprof_totals(struct cpuprof *c, struct cpuprof_totals *t);
struct sampler *cpuprof_sampler(struct cpuprof *c);
struct symbolizer *cpuprof_symbolizer(struct cpuprof *c);
/* Every process seen so far (gone ones included), for labels and metrics. */
const struct seen *cpuprof_seen(struct cpuprof *c);
/* Drops what is kept of an exited process (for long runs; its samples must have been
 * drained). A newer process with the same pid is left alone. */
void cpuprof_forget(struct cpuprof *c, pid_t pid, uint64_t starttime);
/* The process with this pid as last seen, alive or gone (NULL if never seen). */
const struct py_process *cpuprof_process(struct cpuprof *c, pid_t pid);

#endif
