/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Discovery: knows every CPython process on the host. Scans /proc once, then follows
 * exec/fork/exit live from the sched tracepoints (bpf/discover.bpf.c); never polls. */
#ifndef PYRO_DISCOVER_H
#define PYRO_DISCOVER_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "python/py_binary.h"
#include "python/symbolizer.h"

struct py_process {
	pid_t pid;
	pid_t ppid;
	uint64_t starttime;  /* clock ticks since boot; (pid, starttime) names a process */
	uint64_t startstack; /* of the image we inspected (struct proc_stat), 0 if unknown */
	uint64_t seen_ns;    /* CLOCK_MONOTONIC when we inspected it */
	char comm[16];
	char service[64];	    /* service_name label (agent/procs/service.c) */
	char container_id[65];	    /* from its cgroup, "" outside containers (cgroup_ids.c) */
	char pod_uid[37];	    /* Kubernetes pod uid from its cgroup, or "" */
	char root[PATH_MAX];	    /* the process's / as seen from ours */
	char interp_path[PATH_MAX]; /* file holding the interpreter, as the process sees it */
	bool in_shared_lib;	    /* the interpreter is a libpython*.so, not the executable */
	uint64_t load_addr;	    /* lowest address the interpreter file is mapped at */
	int64_t bias;		    /* runtime address = link-time address + bias */
	uint32_t dev_major, dev_minor;
	uint64_t inode;
	const struct py_binary *bin; /* shared by every process running the same file */
};

/* What the symbolizer needs of p. */
static inline struct py_target discover_target(const struct py_process *p)
{
	return (struct py_target){ .pid = p->pid, .bin = p->bin, .bias = p->bias };
}

enum discover_exit_why {
	DISCOVER_EXITED,   /* its last thread exited */
	DISCOVER_EXECED,   /* it exec'd something that is not that Python */
	DISCOVER_VANISHED, /* found gone when we looked (it exited before we tracked it) */
};

struct discover_ops {
	/* A Python process appeared. ktime_ns: CLOCK_MONOTONIC time of its exec/fork, 0 when
	 * found by the /proc scan. */
	void (*on_start)(const struct py_process *p, uint64_t ktime_ns, void *ctx);
	/* A tracked process is gone; p is freed after the call. exit_code is wait(2)-encoded
	 * for DISCOVER_EXITED. */
	void (*on_exit)(const struct py_process *p, enum discover_exit_why why, int exit_code,
			uint64_t ktime_ns, void *ctx);
	void *ctx;
};

struct discover_stats {
	uint64_t inspected;	  /* processes looked at */
	uint64_t inspect_failed;  /* a Python binary we could not open or parse */
	uint64_t retries_dropped; /* exec re-checks dropped because the queue was full */
	uint64_t resyncs;	  /* /proc rescans after the kernel lost events */
	uint64_t swept;		  /* pid map entries of gone processes found by the sweep */
	uint64_t tracked;	  /* Python processes tracked now */
	uint64_t notes;		  /* looks on a hint (discover_look) */
	uint64_t notes_found;	  /* Python processes found so (arrived by dlopen) */
	uint64_t kernel[8];	  /* enum pyro_discover_counter, summed over CPUs */
};

struct discover;

struct evloop;

/* Discovery's process events are served by loop, among other rings (agent/base/evloop.h). */
int discover_new(const struct discover_ops *ops, struct evloop *loop, struct discover **out);
void discover_free(struct discover *d);
/* Loads and attaches the tracepoint programs. Call before discover_scan so that nothing
 * that execs between the scan and the attach is missed. */
int discover_start_live(struct discover *d);
/* Scans /proc and reports every Python process found (on_start with ktime 0). */
int discover_scan(struct discover *d);
/* Waits on the event loop for up to timeout_ms (-1: until a record arrives; less when an exec
 * re-check is due), then does discovery's own work: due re-checks, a resync after lost
 * events, the sweep of gone processes. Returns the number of process events handled or a
 * negative errno (-EINTR when interrupted by a signal). */
int discover_poll(struct discover *d, int timeout_ms);
/* The tracked process with this pid, or NULL. */
const struct py_process *discover_get(struct discover *d, pid_t pid);
/* Sets the pid map flags (enum pyro_proc_flags) of a tracked process. Children it forks
 * later inherit them in the kernel. */
int discover_set_flags(struct discover *d, pid_t pid, uint32_t flags);
/* A hint that pid may be Python now (the sampler saw it with new mappings; the GC or import
 * probes of an installed interpreter fired in it): it is looked at, at most once a second,
 * and reported with ktime_ns if it is. How interpreters that arrive by dlopen are found. */
void discover_look(struct discover *d, pid_t pid, uint64_t ktime_ns);
/* Fd of the process event ring, which the CPU sampler shares for its notes of untracked
 * processes (valid after start_live). */
int discover_events_fd(const struct discover *d);
/* Fd of the BPF pid map the other programs filter on (valid after start_live). */
int discover_procs_map_fd(const struct discover *d);
void discover_stats(const struct discover *d, struct discover_stats *st);
/* Iterates tracked processes in pid order; stop early by returning non-zero. */
int discover_for_each(struct discover *d, int (*cb)(const struct py_process *p, void *ctx),
		      void *ctx);
/* Inspects one pid now: 0 and *out filled if it is Python (caller frees *out with free()),
 * -ENOENT if not Python or gone, -EAGAIN if it links libpython that is not mapped yet. */
int discover_inspect(struct discover *d, pid_t pid, struct py_process **out);

#endif
