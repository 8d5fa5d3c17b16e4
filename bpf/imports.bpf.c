// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Imports from CPython's USDT probes import__find__load__start(const char *modulename) and
 * import__find__load__done(const char *modulename, int found), which fire around every
 * import that has to load a module (not one already in sys.modules), nested imports inside
 * the outer one's. Attached once per interpreter binary for every process using it, as the
 * GC probes are (agent/usdt/binattach.c; the argument's spec in the cookie); the pid map
 * says which processes to report.
 *
 * Each thread keeps the imports it has in progress in its own storage; each finished import
 * goes to user space (agent/imports/importtree.c builds the tree from the order they finish
 * in), an outermost one with the Python stack of the frame that imported it. Imports are
 * rare (hundreds to a few thousand per process, each taking milliseconds), so one event
 * each costs little. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "pyrometer.h"
#include "common.bpf.h"
#include "usdt_arg.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Report every process that runs an attached binary, not only those flagged
 * PYRO_PROC_IMPORTS: the daemon wants a process's imports from its first one, before
 * discovery has put it in the pid map. */
const volatile bool imports_all = false;
/* make bench's floor: the probes attached the same way, running a program that only counts. */
const volatile bool floor_only = false;

/* CPU -> the thread walking into that CPU's scratch (pystack_capture_head). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, __u32);
} scratch_claims SEC(".maps");

/* A thread's imports in progress, outermost first. */
struct import_thread {
	__u64 mm;    /* the process image they belong to: an exec mid-import starts afresh */
	__u32 depth; /* imports in progress, also those beyond PYRO_IMPORT_DEPTH */
	__u32 pad;
	__u64 start_ns[PYRO_IMPORT_DEPTH];
	__u8 flags[PYRO_IMPORT_DEPTH];
	char name[PYRO_IMPORT_DEPTH][PYRO_IMPORT_NAME];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct import_thread);
} importing SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} import_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PYRO_IMP_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} import_counters SEC(".maps");

/* Failures of the stack walks of outermost imports (enum pyro_cpu_counter). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PYRO_CPU_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} walk_counters SEC(".maps");

#define pystack_count(which) count_in(&walk_counters, which)
#include "pystack.bpf.h"

static __always_inline bool reported(__u32 pid)
{
	struct pyro_proc_info *info = bpf_map_lookup_elem(&procs, &pid);

	return imports_all || (info && (info->flags & PYRO_PROC_IMPORTS));
}

static __always_inline __u64 current_mm(void)
{
	return (__u64)BPF_CORE_READ(bpf_get_current_task_btf(), mm);
}

static __noinline int import_start(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid(), mm = current_mm();
	struct import_thread *t;
	long name = 0;
	__u32 d;
	int n;

	if (floor_only) {
		count_in(&import_counters, PYRO_IMP_STARTS);
		return 0;
	}
	if (!reported(id >> 32))
		return 0;
	count_in(&import_counters, PYRO_IMP_STARTS);
	t = bpf_task_storage_get(&importing, bpf_get_current_task_btf(), NULL,
				 BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!t) {
		count_in(&import_counters, PYRO_IMP_NO_STORAGE);
		return 0;
	}
	if (t->mm != mm) { /* first import of this thread, or of a new image after exec */
		t->mm = mm;
		t->depth = 0;
	}
	d = t->depth++;
	if (d >= PYRO_IMPORT_DEPTH) {
		count_in(&import_counters, PYRO_IMP_TOO_DEEP);
		return 0;
	}
	t->start_ns[d] = bpf_ktime_get_ns();
	t->flags[d] = 0;
	if (usdt_arg(ctx, bpf_get_attach_cookie(ctx), &name) ||
	    (n = bpf_probe_read_user_str(t->name[d], PYRO_IMPORT_NAME, (void *)name)) < 0) {
		count_in(&import_counters, PYRO_IMP_ARG_FAULT);
		t->name[d][0] = '\0';
		t->flags[d] = PYRO_IMPORT_NO_NAME;
	} else if (n == PYRO_IMPORT_NAME) {
		t->flags[d] = PYRO_IMPORT_NAME_CUT; /* it may just fit: user space cannot tell */
	}
	return 0;
}

static __always_inline void fill(struct pyro_import_event *e, __u64 id, struct import_thread *t,
				 __u32 depth, __u64 now, long found)
{
	__u32 d = depth;

	/* the callers checked depth, but the compiler may drop a mask it thinks redundant:
	 * hide the value from it so that the verifier sees the bound */
	asm volatile("" : "+r"(d));
	d &= PYRO_IMPORT_DEPTH - 1;
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->start_ns = t->start_ns[d];
	e->duration_ns = now - t->start_ns[d];
	e->depth = (__u16)depth;
	e->found = found != 0;
	e->flags = t->flags[d];
	e->pad = 0;
	bpf_probe_read_kernel(e->name, PYRO_IMPORT_NAME, t->name[d]);
}

/* When an outermost import last woke the reader (racy across CPUs: at worst one wake-up
 * more). */
__u64 last_wakeup_ns = 0;

/* Waking the reader costs about 10 us here, more than the rest of the program; nested
 * imports leave it to its 200 ms polls (lazy_wakeup). An outermost import wakes it, at most
 * once per ROOT_WAKEUP_NS: the importer's frames are named from the process's memory, which
 * a short script that exits right after its imports takes away within milliseconds. A
 * burst of imports pays one wake-up. */
#define ROOT_WAKEUP_NS 2000000

static __always_inline __u64 root_wakeup(__u64 now)
{
	if (now - last_wakeup_ns < ROOT_WAKEUP_NS)
		return lazy_wakeup(&import_events);
	last_wakeup_ns = now;
	return BPF_RB_FORCE_WAKEUP;
}

/* An outermost import, with the stack of the frame that imported it: at import__find__load__done
 * the module's own frames have returned, so the thread's current frame is the importer's. */
static __always_inline void send_root(__u64 id, struct import_thread *t, __u64 now, long found)
{
	__u32 pid = id >> 32;
	struct pyro_proc_info *info = bpf_map_lookup_elem(&procs, &pid);
	struct pyro_import_root *r = bpf_ringbuf_reserve(&import_events, sizeof(*r), 0);

	if (!r) {
		count_in(&import_counters, PYRO_IMP_EVENTS_LOST);
		return;
	}
	fill(&r->e, id, t, 0, now, found);
	r->e.flags |= PYRO_IMPORT_ROOT;
	r->stack.depth = 0;
	r->stack.flags = 0;
	/* a process discovery has not named yet has no layout: sent without the importer */
	if (info && info->layout.frames_kind != PYRO_FRAMES_NONE &&
	    pystack_capture_head(&info->layout, &scratch_claims, (__u32)id, &r->stack))
		count_in(&import_counters, PYRO_IMP_STACK_BUSY);
	bpf_ringbuf_submit(r, root_wakeup(now));
}

static __always_inline void send_nested(__u64 id, struct import_thread *t, __u32 d, __u64 now,
					long found)
{
	struct pyro_import_event *e = bpf_ringbuf_reserve(&import_events, sizeof(*e), 0);

	if (!e) {
		count_in(&import_counters, PYRO_IMP_EVENTS_LOST);
		return;
	}
	fill(e, id, t, d, now, found);
	bpf_ringbuf_submit(e, lazy_wakeup(&import_events));
}

static __noinline int import_done(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid(), now = bpf_ktime_get_ns();
	struct import_thread *t;
	long found = 1;
	__u32 d;

	if (floor_only) {
		count_in(&import_counters, PYRO_IMP_DONES);
		return 0;
	}
	if (!reported(id >> 32))
		return 0;
	count_in(&import_counters, PYRO_IMP_DONES);
	t = bpf_task_storage_get(&importing, bpf_get_current_task_btf(), NULL, 0);
	if (!t || !t->depth || t->mm != current_mm()) {
		count_in(&import_counters, PYRO_IMP_NO_START);
		return 0;
	}
	d = --t->depth;
	if (d >= PYRO_IMPORT_DEPTH)
		return 0; /* counted at its start */
	if (usdt_arg(ctx, bpf_get_attach_cookie(ctx), &found)) {
		count_in(&import_counters, PYRO_IMP_ARG_FAULT);
		found = 1;
	}
	if (d == 0)
		send_root(id, t, now, found);
	else
		send_nested(id, t, d, now, found);
	return 0;
}

UPROBE_PROGRAM("uprobe", on_import_start, import_start)

UPROBE_PROGRAM("uprobe", on_import_done, import_done)
