/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Plain types shared by the BPF programs and the agent: fixed-width fields, no pointers,
 * no includes. The includer provides __u32/__u64 (vmlinux.h in BPF, <linux/types.h> in the
 * agent). Every struct's size is pinned so both sides agree on the layout. */
#ifndef PYROMETER_H
#define PYROMETER_H

#define PYRO_COMM_LEN 16
/* Upper bound on Python processes tracked at once (sizes the pid filter map). */
#define PYRO_MAX_PROCS 16384

/* Process lifecycle events from the sched tracepoints, sent through a ring buffer. */
enum pyro_proc_event_kind {
	PYRO_PROC_EXEC = 1, /* any process called execve(); user space decides if it is Python */
	PYRO_PROC_FORK = 2, /* a tracked (Python) process forked a new process */
	PYRO_PROC_EXIT = 3, /* the last thread of a tracked process exited */
};

struct pyro_proc_event {
	__u32 kind;	 /* enum pyro_proc_event_kind */
	__u32 pid;	 /* thread group id, in the initial pid namespace */
	__u32 ppid;	 /* parent's tgid for FORK and EXEC, 0 otherwise */
	__s32 exit_code; /* task->exit_code for EXIT (wait(2) encoding), 0 otherwise */
	__u64 ktime_ns;	 /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) when it happened */
	char comm[PYRO_COMM_LEN];
};
_Static_assert(sizeof(struct pyro_proc_event) == 40, "proc_event layout");

/* Value of the pid filter map: which processes the other programs should look at. */
struct pyro_proc_info {
	__u32 flags; /* reserved for per-process switches; 0 today */
	__u32 pad;
};
_Static_assert(sizeof(struct pyro_proc_info) == 8, "proc_info layout");

/* Failure counters of the discovery programs (a per-CPU array indexed by these). */
enum pyro_discover_counter {
	PYRO_DISC_RINGBUF_FULL_EXEC, /* an exec event could not be reserved: user space may miss it */
	PYRO_DISC_RINGBUF_FULL_FORK,
	PYRO_DISC_RINGBUF_FULL_EXIT,
	PYRO_DISC_PIDMAP_FULL, /* a forked Python child could not be added to the pid map */
	PYRO_DISC_COUNTER_MAX,
};

#endif /* PYROMETER_H */
