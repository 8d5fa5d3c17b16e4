// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* GC pauses from CPython's USDT probes gc__start(int generation) and gc__done(long
 * collected). Attached once per interpreter binary for every process using it (plain
 * uprobes at the probe sites, pid -1, the argument's spec in the cookie, semaphores handled
 * by the kernel: agent/gc/gctrace.c); the pid map says which processes to count.
 * Pauses are measured and aggregated here: per (pid, generation) count, total, maximum and
 * objects collected, and a log-linear histogram. Pauses at or above slow_ns go to user space
 * with the Python stack of the allocation that triggered the collection. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "pyrometer.h"
#include "common.bpf.h"
#include "usdt_arg.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* CPU -> the thread walking into that CPU's scratch (send_slow). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, __u32);
} scratch_claims SEC(".maps");

/* Report every tracked process, not only those flagged PYRO_PROC_GC. */
const volatile bool gc_all = false;
/* Pauses at least this long are sent with their stack; user space may change it any time. */
__u64 slow_ns = 10000000;

struct inflight {
	__u64 start_ns;
	__s32 generation;
	__u32 pad;
};

/* The collection a thread is running, in the thread's own storage: cheaper than a hash
 * lookup, and freed with the thread if it dies mid-collection. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct inflight);
} inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct pyro_gc_key);
	__type(value, struct pyro_gc_stats);
} gc_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct pyro_gc_hist_key);
	__type(value, __u64);
} gc_hist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} gc_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PYRO_GC_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} gc_counters SEC(".maps");

/* Failures of the stack walks at slow pauses (enum pyro_cpu_counter). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PYRO_CPU_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} walk_counters SEC(".maps");

#define pystack_count(which) count_in(&walk_counters, which)
#include "pystack.bpf.h"

/* Is this process's GC reported? With gc_all every process that runs an attached binary is
 * (it is Python by construction), from its first collection, even before discovery has put
 * it in the pid map; otherwise only flagged ones. */
static __always_inline bool reported(__u32 pid)
{
	struct pyro_proc_info *info = bpf_map_lookup_elem(&procs, &pid);

	return gc_all || (info && (info->flags & PYRO_PROC_GC));
}

/* 8 buckets per power of two: the bucket's lower bound is within 12.5 % of d. */
static __always_inline __u32 bucket_of(__u64 d)
{
	__u32 msb = 0;

	if (d < 8)
		return (__u32)d;
	if (d >> 32) {
		msb += 32;
		d >>= 32;
	}
	if (d >> 16) {
		msb += 16;
		d >>= 16;
	}
	if (d >> 8) {
		msb += 8;
		d >>= 8;
	}
	if (d >> 4) {
		msb += 4;
		d >>= 4;
	}
	if (d >> 2) {
		msb += 2;
		d >>= 2;
	}
	if (d >> 1) {
		msb += 1;
		d >>= 1;
	}
	return msb * 8; /* the sub-bucket bits are added by the caller */
}

static __always_inline __u32 histogram_bucket(__u64 d)
{
	__u32 b = bucket_of(d), msb = b / 8;

	if (d < 8)
		return b;
	return (b + (__u32)((d >> (msb - PYRO_GC_SUB_BITS)) & 7)) & (PYRO_GC_BUCKETS - 1);
}

static __noinline int gc_start(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct inflight *f;
	long generation;

	if (!reported(id >> 32))
		return 0;
	count_in(&gc_counters, PYRO_GC_STARTS);
	if (usdt_arg(ctx, bpf_get_attach_cookie(ctx), &generation)) {
		count_in(&gc_counters, PYRO_GC_ARG_FAULT);
		return 0;
	}
	f = bpf_task_storage_get(&inflight, bpf_get_current_task_btf(), NULL,
				 BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!f) {
		count_in(&gc_counters, PYRO_GC_INFLIGHT_FULL);
		return 0;
	}
	f->generation = generation;
	f->start_ns = bpf_ktime_get_ns();
	return 0;
}

static __always_inline void account(struct pyro_gc_key *key, __u64 d, __s64 collected)
{
	static const struct pyro_gc_stats zero_stats;
	static const __u64 zero;
	struct pyro_gc_hist_key hk = { .k = *key };
	struct pyro_gc_stats *st = lookup_or_init(&gc_stats, key, &zero_stats);
	__u64 *n;

	if (!st) {
		count_in(&gc_counters, PYRO_GC_STATS_FULL);
		return;
	}
	__sync_fetch_and_add(&st->count, 1);
	__sync_fetch_and_add(&st->total_ns, d);
	__sync_fetch_and_add(&st->collected, collected);
	if (d > st->max_ns) /* a race with another thread of the process loses little */
		st->max_ns = d;
	hk.bucket = histogram_bucket(d);
	n = lookup_or_init(&gc_hist, &hk, &zero);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		count_in(&gc_counters, PYRO_GC_HIST_FULL);
}

static __always_inline void send_slow(__u32 pid, __u32 tid, const struct inflight *f, __u64 d,
				      __s64 collected)
{
	struct pyro_proc_info *info = bpf_map_lookup_elem(&procs, &pid);
	struct pyro_gc_event *e = bpf_ringbuf_reserve(&gc_events, sizeof(*e), 0);

	if (!e) {
		count_in(&gc_counters, PYRO_GC_EVENTS_LOST);
		return;
	}
	e->pid = pid;
	e->tid = tid;
	e->generation = f->generation;
	e->pad = 0;
	e->start_ns = f->start_ns;
	e->duration_ns = d;
	e->collected = collected;
	e->stack.depth = 0;
	e->stack.flags = 0;
	/* The Python stack does not change during a collection (finalizers run and return
	 * inside it), so the stack at gc__done is the one whose allocation triggered it. */
	if (info && info->layout.frames_kind != PYRO_FRAMES_NONE &&
	    pystack_capture_head(&info->layout, &scratch_claims, tid, &e->stack))
		count_in(&gc_counters, PYRO_GC_STACK_BUSY);
	bpf_ringbuf_submit(e, lazy_wakeup(&gc_events));
}

static __noinline int gc_done(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid(), now = bpf_ktime_get_ns(), d;
	__u32 pid = id >> 32, tid = (__u32)id;
	struct inflight *f;
	struct pyro_gc_key key;
	long collected;

	if (!reported(pid))
		return 0;
	count_in(&gc_counters, PYRO_GC_DONES);
	if (usdt_arg(ctx, bpf_get_attach_cookie(ctx), &collected)) {
		count_in(&gc_counters, PYRO_GC_ARG_FAULT);
		collected = 0; /* the pause is still measured; only its count is unknown */
	}
	f = bpf_task_storage_get(&inflight, bpf_get_current_task_btf(), NULL, 0);
	if (!f || !f->start_ns) {
		count_in(&gc_counters, PYRO_GC_NO_START);
		return 0;
	}
	d = now - f->start_ns;
	key.pid = pid;
	key.generation = f->generation;
	key.image = BPF_CORE_READ((struct task_struct *)bpf_get_current_task(), mm, start_stack);
	account(&key, d, collected);
	if (d >= slow_ns)
		send_slow(pid, tid, f, d, collected);
	f->start_ns = 0; /* done: a gc__done without a new start is not measured */
	return 0;
}

UPROBE_PROGRAM("uprobe", on_gc_start, gc_start)

UPROBE_PROGRAM("uprobe", on_gc_done, gc_done)
