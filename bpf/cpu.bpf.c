// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* CPU sampling: on every cpu-clock tick of a sampled Python process, find the thread's
 * PyThreadState, walk its Python frames and count the stack in kernel maps. User space
 * (agent/cpu/sampler.c) drains the maps and symbolizes; nothing here knows a CPython version,
 * only the offsets user space put in the pid map.
 *
 * Every read of the target's memory may fail (unmapped, paged out, torn by a concurrent
 * update): each failure has its own counter and never stops the walk from recording what it
 * has. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "pyrometer.h"
#include "common.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define EEXIST 17 /* vmlinux.h carries no errno values */

/* Set before load: profile every tracked process, not only those flagged PYRO_PROC_SAMPLE. */
const volatile bool sample_all = false;
/* Set before load when user space shares discovery's ring: note untracked processes. */
const volatile bool note_all = false;
/* Flipped by user space between drains (see struct pyro_sample_key). */
__u32 epoch = 0;

/* stack id -> depth, flags and first frames. User space copies them, and deletes those no
 * sample used lately. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct pyro_stack_head);
} stacks SEC(".maps");

/* The frames of stacks deeper than PYRO_SEG_FRAMES past their head, a piece per entry. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct pyro_stack_tail_key);
	__type(value, struct pyro_stack_tail);
} stack_tails SEC(".maps");

/* (pid, tid, stack, epoch) -> sample count and thread name. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct pyro_sample_key);
	__type(value, struct pyro_sample_value);
} counts SEC(".maps");

/* Notices of new stacks (struct pyro_new_stack). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} new_stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PYRO_CPU_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} cpu_counters SEC(".maps");

static __always_inline void count(__u32 which)
{
	count_in(&cpu_counters, which);
}

/* ---- interpreters that arrive by dlopen ----
 * A process that is not Python at exec may become Python later: uWSGI's python3 plugin,
 * mod_wsgi, plpython3u dlopen libpython after start-up, at any time. The sampler sees every
 * task that runs; for an untracked process it tells discovery when the process is new to it
 * or has a different number of mappings (mm->map_count: a dlopen adds several) than when last
 * noted, at most once per PYRO_NOTE_INTERVAL_NS a process. Discovery then looks at its maps.
 * Nothing is attached to the processes themselves. */

struct untracked_note {
	__u64 noted_ns;
	__s32 map_count;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct untracked_note);
} untracked SEC(".maps");

/* Discovery's ring (user space hands us its fd: bpf_map__reuse_fd). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, PYRO_PROC_EVENTS_SIZE);
} proc_events SEC(".maps");

static __always_inline void note_untracked(__u32 pid)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct untracked_note *n, fresh = {};
	struct pyro_proc_event *e;
	__u64 now = bpf_ktime_get_ns();
	int maps = BPF_CORE_READ(task, mm, map_count);

	if (!pid || maps <= 0) /* the idle task, kernel threads */
		return;
	n = bpf_map_lookup_elem(&untracked, &pid);
	if (n && (n->map_count == maps || now - n->noted_ns < PYRO_NOTE_INTERVAL_NS))
		return;
	e = bpf_ringbuf_reserve(&proc_events, sizeof(*e), 0);
	if (!e) {
		count(PYRO_CPU_NOTES_LOST); /* not recorded as noted: the next sample tries again */
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->kind = PYRO_PROC_NOTE;
	e->pid = pid;
	e->ktime_ns = now;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	count(PYRO_CPU_NOTES);
	fresh.noted_ns = now;
	fresh.map_count = maps;
	bpf_map_update_elem(&untracked, &pid, &fresh, BPF_ANY);
}

#define pystack_count(which) count(which)
#include "pystack.bpf.h"

/* Stores the pieces of a deep stack past its head. If one does not fit, the head goes
 * too: a stack is stored whole or not at all. Returns 0 when stored. */
static __always_inline int store_tails(__u64 id, struct pyro_stack *st)
{
	struct pyro_stack_tail_key k = { .stack_id = id };
	int i;

	for (i = 1; i < PYRO_MAX_FRAMES / PYRO_SEG_FRAMES; i++) {
		if (st->depth <= (__u32)i * PYRO_SEG_FRAMES)
			return 0;
		k.index = i;
		if (bpf_map_update_elem(&stack_tails, &k, &st->frames[i * PYRO_SEG_FRAMES], 0)) {
			bpf_map_delete_elem(&stacks, &id);
			return -1;
		}
	}
	return 0;
}

/* Stores a stack under its id (head, tails, and a notice to user space) unless it is
 * there already. Returns 0 when the stack is in the maps. */
static __always_inline int store_stack(__u32 pid, __u64 id, struct pyro_stack *st)
{
	/* int, not long: up to about 6.3 the map operation behind this helper returns an int
	 * that reaches us zero-extended (-EEXIST arrives as 4294967279 on 6.1) */
	int err = (int)bpf_map_update_elem(&stacks, &id, st, BPF_NOEXIST);
	struct pyro_new_stack *n;

	if (err == -EEXIST)
		return 0;
	if (err || store_tails(id, st))
		return -1;
	n = bpf_ringbuf_reserve(&new_stacks, sizeof(*n), 0);
	if (n) {
		n->pid = pid;
		n->pad = 0;
		n->stack_id = id;
		bpf_ringbuf_submit(n, 0);
	} else {
		count(PYRO_CPU_NEW_STACK_DROPPED);
	}
	return 0;
}

static __always_inline void record(__u32 pid, __u32 tid, struct pyro_stack *st, __u64 hash)
{
	struct pyro_sample_key key = { .pid = pid, .tid = tid, .epoch = epoch };
	struct pyro_sample_value fresh = {}, *v;

	key.stack_id = hash;
	v = bpf_map_lookup_elem(&counts, &key);
	if (v) {
		__sync_fetch_and_add(&v->count, 1);
		return;
	}
	if (store_stack(pid, hash, st)) {
		count(PYRO_CPU_STACKS_FULL);
		return;
	}
	bpf_get_current_comm(fresh.comm, sizeof(fresh.comm));
	v = lookup_or_init(&counts, &key, &fresh);
	if (v)
		__sync_fetch_and_add(&v->count, 1);
	else
		count(PYRO_CPU_COUNTS_FULL);
}

SEC("perf_event")
int on_cpu_sample(struct bpf_perf_event_data *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 pid = id >> 32, zero = 0;
	struct pyro_proc_info *info;
	struct scratch *s;

	info = bpf_map_lookup_elem(&procs, &pid);
	if (!info) {
		count(PYRO_CPU_OTHER);
		if (note_all)
			note_untracked(pid);
		return 0;
	}
	if (!sample_all && !(info->flags & PYRO_PROC_SAMPLE)) {
		count(PYRO_CPU_OTHER);
		return 0;
	}
	count(PYRO_CPU_SAMPLES);
	if (info->layout.frames_kind == PYRO_FRAMES_NONE) {
		count(PYRO_CPU_NO_LAYOUT);
		return 0;
	}
	s = bpf_map_lookup_elem(&scratch_map, &zero);
	if (!s)
		return 0;
	pystack_capture(&info->layout, s);
	record(pid, (__u32)id, &s->stack, s->hash);
	return 0;
}

/* ---- off-CPU time (record --mode wall): loaded only when asked for ---- */

/* A thread's current stretch off the CPU, in its task storage. */
struct off_cpu {
	__u64 start_ns; /* 0: on a CPU, or not tracked */
	__u64 stack_id;
	__u32 pid;
	__u32 reason; /* enum pyro_wait_reason */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct off_cpu);
} off_cpu_now SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct pyro_wait_key);
	__type(value, struct pyro_wait_value);
} waits SEC(".maps");

/* stack id -> stretches off the CPU that hold it now. User space does not delete a stack
 * that one still holds: a thread may sleep far longer than a stack stays unused. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} stack_refs SEC(".maps");

#define SYS_FUTEX 202	     /* x86-64 */
#define TASK_DEAD_STATE 0x80 /* TASK_DEAD: the thread is exiting */

/* Whether the thread leaving the CPU sleeps in futex() on a word inside its process's GIL:
 * the condition variable take_gil() waits on, or its mutex. The syscall's arguments are
 * in the thread's user registers, saved at syscall entry. */
static __always_inline bool waits_for_gil(const struct pyro_py_layout *L, struct task_struct *t,
					  __u64 interp)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(t);
	__u64 gil, addr;

	if (!regs || !L->gil_offset || (L->gil_in_interp && !interp) ||
	    BPF_CORE_READ(regs, orig_ax) != SYS_FUTEX)
		return false;
	gil = (L->gil_in_interp ? interp : L->runtime_addr) + L->gil_offset;
	addr = BPF_CORE_READ(regs, di);
	return addr >= gil && addr < gil + PYRO_GIL_SIZE;
}

static __always_inline void stack_ref(__u64 id, __s64 by)
{
	__u64 zero = 0, *n = lookup_or_init(&stack_refs, &id, &zero);

	if (n)
		__sync_fetch_and_add(n, by);
}

/* The thread coming onto the CPU: its stretch off it ends. */
static __always_inline void switched_in(struct task_struct *next, __u64 now)
{
	struct off_cpu *o = bpf_task_storage_get(&off_cpu_now, next, NULL, 0);
	struct pyro_wait_key key = {};
	struct pyro_wait_value fresh = {}, *v;

	if (!o || !o->start_ns)
		return;
	key.pid = o->pid;
	key.tid = next->pid;
	key.stack_id = o->stack_id;
	key.epoch = epoch;
	key.reason = o->reason;
	bpf_probe_read_kernel_str(fresh.comm, sizeof(fresh.comm), next->comm);
	v = lookup_or_init(&waits, &key, &fresh);
	if (v) {
		__sync_fetch_and_add(&v->ns, now - o->start_ns);
		__sync_fetch_and_add(&v->count, 1);
	} else {
		count(PYRO_CPU_WAITS_FULL);
	}
	stack_ref(o->stack_id, -1);
	o->start_ns = 0;
}

/* The thread leaving the CPU (the current one): note its stack, why and when. */
static __always_inline void switched_out(struct task_struct *prev, unsigned int state, __u64 now)
{
	__u32 pid = prev->tgid, zero = 0;
	struct pyro_proc_info *info;
	struct off_cpu *o;
	struct scratch *s;

	if (state & TASK_DEAD_STATE)
		return;
	info = bpf_map_lookup_elem(&procs, &pid);
	if (!info || (!sample_all && !(info->flags & PYRO_PROC_SAMPLE)) ||
	    info->layout.frames_kind == PYRO_FRAMES_NONE)
		return;
	s = bpf_map_lookup_elem(&scratch_map, &zero);
	if (!s)
		return;
	count(PYRO_CPU_SWITCHES);
	pystack_capture(&info->layout, s);
	if (store_stack(pid, s->hash, &s->stack)) {
		count(PYRO_CPU_WAIT_NO_STACK);
		return;
	}
	o = bpf_task_storage_get(&off_cpu_now, prev, NULL, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!o) {
		count(PYRO_CPU_WAIT_NO_STORAGE);
		return;
	}
	o->start_ns = now;
	o->stack_id = s->hash;
	o->pid = pid;
	o->reason = waits_for_gil(&info->layout, prev, s->interp) ? PYRO_WAIT_GIL : PYRO_WAIT_OTHER;
	stack_ref(s->hash, 1);
}

/* Interrupts are off here, so the CPU sampler cannot run on this CPU mid-walk and reuse
 * its scratch. A task that is not a sampled Python thread costs a task-storage lookup
 * and a pid-map lookup. */
SEC("tp_btf/sched_switch")
int BPF_PROG(on_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	__u64 now = bpf_ktime_get_ns();

	switched_in(next, now);
	switched_out(prev, prev_state, now);
	return 0;
}
