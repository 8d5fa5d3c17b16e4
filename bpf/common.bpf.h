/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* What every pyrometer BPF program shares: the pid map (one definition, since the programs
 * share one map by fd and must agree on it) and counting into a per-CPU array.
 * Include after vmlinux.h, the libbpf headers and pyrometer.h. */
#ifndef COMMON_BPF_H
#define COMMON_BPF_H

/* tgid -> pyro_proc_info for every Python process user space tracks. Created by the
 * discovery program; the sampler and the GC tracer reuse it by fd as their pid filter. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PYRO_MAX_PROCS);
	__type(key, __u32);
	__type(value, struct pyro_proc_info);
} procs SEC(".maps");

/* Adds n to entry `which` of a per-CPU array of counters. */
static __always_inline void add_in(void *counters, __u32 which, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(counters, &which);

	if (v)
		*v += n;
}

static __always_inline void count_in(void *counters, __u32 which)
{
	add_in(counters, which, 1);
}

/* The value at key in a hash map, inserted as init when absent; NULL when the map is full.
 * Another CPU may insert the key between the lookup and the insert: the insert then fails
 * with -EEXIST and the second lookup finds that CPU's entry, so callers only ever add to
 * the value (atomically) and never overwrite it. */
static __always_inline void *lookup_or_init(void *map, const void *key, const void *init)
{
	void *v = bpf_map_lookup_elem(map, key);

	if (v)
		return v;
	bpf_map_update_elem(map, key, init, BPF_NOEXIST);
	return bpf_map_lookup_elem(map, key);
}

/* The wake-up flag for a record of a ring buffer whose reader polls at least every 200 ms
 * anyway: waking it costs more than the rest of the program, so only when records pile up
 * (over 1 MiB unread). */
static __always_inline __u64 lazy_wakeup(void *ringbuf)
{
	return bpf_ringbuf_query(ringbuf, BPF_RB_AVAIL_DATA) > (1 << 20) ? BPF_RB_FORCE_WAKEUP
									 : BPF_RB_NO_WAKEUP;
}

/* Preemption off and on again (Linux 6.10+). Weak: an object that names them still loads
 * on older kernels, as long as the programs calling them are not loaded (UPROBE_PROGRAM). */
extern void bpf_preempt_disable(void) __weak __ksym;
extern void bpf_preempt_enable(void) __weak __ksym;

/* A uprobe program, twice: NAME runs body(ctx) as it is, NAME_nopreempt with preemption
 * off around it. Uprobe programs run preemptible (only migration is off), and from Linux
 * 7.x the JIT runs a program whose stack is 64 bytes or more on a per-CPU private stack
 * (addressed by r9): a task preempted inside such a program and a second task entering it
 * on that CPU share one stack, the second overwrites the first's spilled pointers, and
 * the first then writes through them (sid's 7.2.13 oopsed in on_import_done within
 * seconds of 100 short-lived Pythons a second). With preemption off no second task runs
 * there. User space loads one of the two (agent/base/bpfload.c, bpfload_pick): the
 * guarded one wherever the kernel has the kfuncs, which it has wherever it has private
 * stacks. body is a subprogram, so nothing of it runs before preemption is off. */
#define UPROBE_PROGRAM(sec, name, body)                                                            \
	SEC(sec)                                                                                   \
	int name(struct pt_regs *ctx)                                                              \
	{                                                                                          \
		return body(ctx);                                                                  \
	}                                                                                          \
	SEC(sec)                                                                                   \
	int name##_nopreempt(struct pt_regs *ctx)                                                  \
	{                                                                                          \
		int ret;                                                                           \
                                                                                                   \
		bpf_preempt_disable();                                                             \
		ret = body(ctx);                                                                   \
		bpf_preempt_enable();                                                              \
		return ret;                                                                        \
	}

#endif /* COMMON_BPF_H */
