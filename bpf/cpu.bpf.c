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

static __always_inline void record(__u32 pid, __u32 tid, struct pyro_stack *st, __u64 hash)
{
	struct pyro_sample_key key = { .pid = pid, .tid = tid, .epoch = epoch };
	struct pyro_sample_value fresh = {}, *v;
	/* int, not long: up to about 6.3 the map operation behind this helper returns an int
	 * that reaches us zero-extended (-EEXIST arrives as 4294967279 on 6.1) */
	int err;

	key.stack_id = hash;
	v = bpf_map_lookup_elem(&counts, &key);
	if (v) {
		__sync_fetch_and_add(&v->count, 1);
		return;
	}
	err = (int)bpf_map_update_elem(&stacks, &key.stack_id, st, BPF_NOEXIST);
	if ((err && err != -EEXIST) || (!err && store_tails(key.stack_id, st))) {
		count(PYRO_CPU_STACKS_FULL);
		return;
	}
	if (!err) {
		struct pyro_new_stack *n = bpf_ringbuf_reserve(&new_stacks, sizeof(*n), 0);

		if (n) {
			n->pid = pid;
			n->pad = 0;
			n->stack_id = key.stack_id;
			bpf_ringbuf_submit(n, 0);
		} else {
			count(PYRO_CPU_NEW_STACK_DROPPED);
		}
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
	if (!info || (!sample_all && !(info->flags & PYRO_PROC_SAMPLE))) {
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
