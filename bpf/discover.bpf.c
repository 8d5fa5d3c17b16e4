// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Process discovery: tells user space when processes exec, when tracked (Python) processes
 * fork, and when they exit, so the agent never polls /proc.
 *
 * BTF-typed tracepoints (tp_btf) are used because they attach without tracefs, which a fresh
 * machine may not have mounted. Exec events are sent for every process: whether a binary is
 * Python is policy and lives in user space. Fork and exit events are sent only for processes
 * in `procs`, which user space fills as it discovers Python processes. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "pyrometer.h"
#include "common.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Lifecycle events for user space; sized for bursts of thousands of execs per second. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, PYRO_PROC_EVENTS_SIZE);
} proc_events SEC(".maps");

/* One counter per failure path (enum pyro_discover_counter). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PYRO_DISC_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} discover_counters SEC(".maps");

static __always_inline void count(__u32 which)
{
	count_in(&discover_counters, which);
}

static __always_inline int emit(__u32 kind, __u32 pid, __u32 ppid, __s32 code,
				struct task_struct *task, __u64 start_stack, __u32 full_counter)
{
	struct pyro_proc_event *e = bpf_ringbuf_reserve(&proc_events, sizeof(*e), 0);

	if (!e) {
		count(full_counter);
		return 0;
	}
	e->kind = kind;
	e->pid = pid;
	e->ppid = ppid;
	e->exit_code = code;
	e->ktime_ns = bpf_ktime_get_ns();
	e->start_stack = start_stack;
	BPF_CORE_READ_STR_INTO(&e->comm, task, comm);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 pid = BPF_CORE_READ(task, tgid);
	__u32 ppid = BPF_CORE_READ(task, real_parent, tgid);

	/* A tracked process that execs something else is no longer the Python we knew: user
	 * space re-inspects it on this event, so the old entry must not filter for it meanwhile. */
	bpf_map_delete_elem(&procs, &pid);
	/* which image: user space may have read this one already, while the exec was under way */
	return emit(PYRO_PROC_EXEC, pid, ppid, 0, task, BPF_CORE_READ(task, mm, start_stack),
		    PYRO_DISC_RINGBUF_FULL_EXEC);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ppid = BPF_CORE_READ(parent, tgid);
	__u32 pid = BPF_CORE_READ(child, tgid);
	struct pyro_proc_info *info;

	/* New threads share the parent's tgid; only new processes matter here. */
	if (pid == ppid)
		return 0;
	info = bpf_map_lookup_elem(&procs, &ppid);
	if (!info)
		return 0;
	/* The child runs the same interpreter at the same addresses (gunicorn/multiprocessing
	 * workers): it is sampled from its first instruction, before user space looks at it. */
	if (bpf_map_update_elem(&procs, &pid, info, BPF_NOEXIST))
		count(PYRO_DISC_PIDMAP_FULL);
	return emit(PYRO_PROC_FORK, pid, ppid, 0, child, 0, PYRO_DISC_RINGBUF_FULL_FORK);
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *task)
{
	__u32 pid = BPF_CORE_READ(task, tgid);
	int live = BPF_CORE_READ(task, signal, live.counter);

	/* Fires once per thread; signal->live is decremented before the tracepoint, so 0 means
	 * this was the last thread of the process. */
	if (live != 0 || !bpf_map_lookup_elem(&procs, &pid))
		return 0;
	bpf_map_delete_elem(&procs, &pid);
	return emit(PYRO_PROC_EXIT, pid, 0, BPF_CORE_READ(task, exit_code), task, 0,
		    PYRO_DISC_RINGBUF_FULL_EXIT);
}
