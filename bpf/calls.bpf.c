// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Exact function calls from CPython's USDT function__entry/function__return(filename,
 * funcname, lineno). Attached per process (libbpf USDT with a pid): only the processes being
 * traced trap on their calls. A shadow stack per thread pairs returns with entries and gives
 * per function: calls, inclusive and exclusive wall time and a latency histogram; and per
 * call path: calls and exclusive time. Each thread adds these up in its own task storage
 * (struct shadow) and moves them to the shared maps that user space reads when a slot
 * changes hands, when the thread exits and when tracing ends (flush_thread).
 *
 * Entries and returns need not pair one to one: generators and coroutines fire entry on
 * every resume and return on every yield (each activation is paired on its own); a return
 * whose function is not on top is matched against the frames below (the frames above are
 * dropped and counted); a return with no entry (attached mid-call) is counted and ignored.
 * On 3.11, where entry does not fire, on_return_count counts calls from returns alone. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>
#include "pyrometer.h"
#include "common.bpf.h"
#include "usdt_arg.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define MATCH_DEPTH 8 /* frames looked at below the top for a return's entry */

/* Keeps the compiler from dropping a mask it can prove redundant: the verifier cannot. */
#define opaque(v) asm volatile("" : "+r"(v))

#define NO_FRAME PYRO_CALL_DEPTH

struct frame {
	struct pyro_fn fn;
	__u64 start_ns;
	__u64 child_ns;
	__u64 path;	     /* id of the call path ending here */
	__u64 parent_path;   /* id of the caller's path (0 at the root) */
	__u64 suppressed_ns; /* time of activations above that counted on this one's */
	__u32 rec_at;	     /* nearest frame below of the same function, or NO_FRAME */
	__u32 bucket;	     /* its function's entry in on_stack */
};

/* A thread's running totals for one function, kept in its task storage: adding to them
 * costs a few stores, where the shared fn_stats map costs a hash lookup and atomics. They
 * move to fn_stats when another function needs the slot, when the thread exits and when
 * tracing ends (flush_fn). */
struct fn_slot {
	struct pyro_fn fn;
	__u64 calls;
	__u64 returns;
	__u64 excl_ns;
	__u64 incl_ns;
	__u16 hist[PYRO_CALL_BUCKETS]; /* flushed before a count can overflow (HIST_FLUSH_AT) */
};

/* The same for one call path (moves to paths). */
struct path_slot {
	__u64 id;
	__u64 parent;
	struct pyro_fn fn;
	__u64 calls;
	__u64 excl_ns;
};

#define FN_SLOTS 128   /* direct-mapped by function */
#define PATH_SLOTS 256 /* direct-mapped by path id */
#define HIST_FLUSH_AT 0xffff
#define ON_STACK 64

struct shadow {
	__u32 depth; /* frames pushed, may exceed PYRO_CALL_DEPTH */
	__u32 pid;   /* the thread's process, for flushes from other contexts */
	__u32 busy;  /* a flush from outside the thread is under way */
	__u32 pad;
	__u64 entries; /* counters, flushed into calls_counters */
	__u64 returns;
	/* frames on the stack per function hash: a function whose count is 0 is not on the
	 * stack, and its entry needs no search for an outer activation */
	__u8 on_stack[ON_STACK];
	struct frame f[PYRO_CALL_DEPTH];
	struct fn_slot fns[FN_SLOTS];
	struct path_slot paths[PATH_SLOTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct shadow);
} shadows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct pyro_fn_key);
	__type(value, struct pyro_fn_stats);
} fn_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* filled once per function */
	__uint(max_entries, 65536);
	__type(key, struct pyro_fn_key);
	__type(value, struct pyro_fn_names);
} fn_names SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct pyro_path_key);
	__type(value, struct pyro_path);
} paths SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PYRO_CALLS_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} calls_counters SEC(".maps");

/* The bench's floor: the same probes doing nothing but counting. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} floor_hits SEC(".maps");

static __always_inline void count(__u32 which)
{
	count_in(&calls_counters, which);
}

/* Too big for the BPF stack: new entries are copied from here (never written). */
struct pyro_fn_stats zero_stats = {};

static __always_inline struct pyro_fn_stats *stats_of(__u32 pid, const struct pyro_fn *fn)
{
	struct pyro_fn_key k = { .pid = pid, .fn = *fn };
	struct pyro_fn_stats *s = lookup_or_init(&fn_stats, &k, &zero_stats);

	if (!s)
		count(PYRO_CALLS_STATS_FULL);
	return s;
}

struct pyro_fn_names zero_names = {};

/* Reads fn's names the first time the process's fn is seen. Only from the probes: the
 * process's memory is still there (at thread exit it may not be). A failed read leaves
 * empty names, and user space reads them from the process instead. */
static __always_inline void note_names(__u32 pid, const struct pyro_fn *fn)
{
	struct pyro_fn_key k = { .pid = pid, .fn = *fn };
	struct pyro_fn_names *n = bpf_map_lookup_elem(&fn_names, &k);

	if (n)
		return;
	if (bpf_map_update_elem(&fn_names, &k, &zero_names, BPF_NOEXIST))
		return; /* full, or another thread is at it */
	n = bpf_map_lookup_elem(&fn_names, &k);
	if (!n)
		return;
	bpf_probe_read_user_str(n->name, sizeof(n->name), (const void *)fn->name);
	bpf_probe_read_user_str(n->file, sizeof(n->file), (const void *)fn->file);
}

/* BPF has no count-leading-zeros instruction (clang 14 crashes on the builtin). */
static __always_inline __u32 bit_length(__u64 v)
{
	__u32 n = 0;

	if (v >> 32) {
		v >>= 32;
		n += 32;
	}
	if (v >> 16) {
		v >>= 16;
		n += 16;
	}
	if (v >> 8) {
		v >>= 8;
		n += 8;
	}
	if (v >> 4) {
		v >>= 4;
		n += 4;
	}
	if (v >> 2) {
		v >>= 2;
		n += 2;
	}
	if (v >> 1) {
		v >>= 1;
		n += 1;
	}
	return n + (__u32)v;
}

static __always_inline __u64 path_id(__u64 parent, const struct pyro_fn *fn)
{
	__u64 h = (parent ^ fn->name) * 0x9e3779b97f4a7c15ull;

	h = (h ^ fn->file ^ (h >> 31)) * 0xbf58476d1ce4e5b9ull;
	return (h ^ (h >> 29)) | 1; /* never 0: 0 is the root */
}

static __always_inline struct pyro_path *path_of(__u32 pid, __u64 id, __u64 parent,
						 const struct pyro_fn *fn)
{
	struct pyro_path_key k = { .pid = pid, .id = id };
	struct pyro_path fresh = { .parent = parent, .fn = *fn };
	struct pyro_path *p = lookup_or_init(&paths, &k, &fresh);

	if (!p)
		count(PYRO_CALLS_STATS_FULL);
	return p;
}

/* Moves a slot's totals into fn_stats and empties it. An empty slot has no counts, whatever
 * its function. */
static __noinline void flush_fn(__u32 pid, struct fn_slot *sl)
{
	struct pyro_fn_stats *s;
	__u32 b;

	if (!(sl->calls | sl->returns | sl->incl_ns))
		return;
	s = stats_of(pid, &sl->fn);
	if (s) {
		__sync_fetch_and_add(&s->calls, sl->calls);
		__sync_fetch_and_add(&s->returns, sl->returns);
		__sync_fetch_and_add(&s->excl_ns, sl->excl_ns);
		__sync_fetch_and_add(&s->incl_ns, sl->incl_ns);
		for (b = 0; b < PYRO_CALL_BUCKETS; b++)
			if (sl->hist[b])
				__sync_fetch_and_add(&s->hist[b], sl->hist[b]);
	}
	sl->calls = sl->returns = sl->excl_ns = sl->incl_ns = 0;
	__builtin_memset(sl->hist, 0, sizeof(sl->hist));
}

static __noinline void flush_path(__u32 pid, struct path_slot *sl)
{
	struct pyro_path *p;

	if (!sl->calls)
		return;
	p = path_of(pid, sl->id, sl->parent, &sl->fn);
	if (p) {
		__sync_fetch_and_add(&p->calls, sl->calls);
		__sync_fetch_and_add(&p->excl_ns, sl->excl_ns);
	}
	sl->calls = sl->excl_ns = 0;
}

/* 7 bits of hash of a function: its slot, and (6 of them) its on_stack entry. */
static __always_inline __u32 fn_hash(const struct pyro_fn *fn)
{
	return ((fn->name ^ (fn->file << 7)) * 0x9e3779b97f4a7c15ull) >> 57;
}

/* The thread's slot for fn (i = fn_hash), taken over from the function it held before if
 * need be. */
static __always_inline struct fn_slot *fn_slot_of(struct shadow *sh, const struct pyro_fn *fn,
						  __u32 i)
{
	struct fn_slot *sl;

	opaque(i);
	sl = &sh->fns[i & (FN_SLOTS - 1)];
	if (sl->fn.name != fn->name || sl->fn.file != fn->file) {
		flush_fn(sh->pid, sl);
		sl->fn = *fn;
		note_names(sh->pid, fn);
	}
	return sl;
}

static __always_inline struct path_slot *path_slot_of(struct shadow *sh, const struct frame *f)
{
	__u32 i = f->path >> 1; /* ids are hashes with bit 0 set */
	struct path_slot *sl;

	opaque(i);
	sl = &sh->paths[i & (PATH_SLOTS - 1)];
	if (sl->id != f->path) {
		flush_path(sh->pid, sl);
		sl->id = f->path;
		sl->parent = f->parent_path;
		sl->fn = f->fn;
	}
	return sl;
}

/* Slot i's totals of either kind move to the shared maps. A global function: the verifier
 * checks it once, on its own, where the static flush_fn/flush_path were verified again in
 * each of flush_thread's 384 loop iterations (270,000 instructions per program on 6.18,
 * 1.8 s each). */
__noinline int flush_slot(struct shadow *sh, __u32 i)
{
	if (!sh)
		return 0;
	opaque(i);
	if (i < FN_SLOTS)
		flush_fn(sh->pid, &sh->fns[i & (FN_SLOTS - 1)]);
	else
		flush_path(sh->pid, &sh->paths[(i - FN_SLOTS) & (PATH_SLOTS - 1)]);
	return 0;
}

/* Everything the thread holds moves to the shared maps: at its exit and when tracing ends.
 * The two can meet (a thread exiting while the end-of-tracing iterator runs); busy keeps the
 * second out, and the first flushes it all. The thread's own probes no longer run then. */
static __always_inline void flush_thread(struct shadow *sh)
{
	__u32 i;

	if (__sync_lock_test_and_set(&sh->busy, 1))
		return;
	for (i = 0; i < FN_SLOTS + PATH_SLOTS; i++)
		flush_slot(sh, i);
	add_in(&calls_counters, PYRO_CALLS_ENTRIES, sh->entries);
	add_in(&calls_counters, PYRO_CALLS_RETURNS, sh->returns);
	sh->entries = sh->returns = 0;
	__sync_lock_test_and_set(&sh->busy, 0);
}

static __always_inline int do_entry(__u64 file, __u64 name)
{
	__u64 id = bpf_get_current_pid_tgid(), now = bpf_ktime_get_ns(), parent = 0;
	__u32 pid = id >> 32, d, i, h;
	struct pyro_fn fn = { .name = name, .file = file };
	struct shadow *sh;
	struct frame *f;

	sh = bpf_task_storage_get(&shadows, bpf_get_current_task_btf(), NULL,
				  BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!sh) { /* the call still counts */
		struct pyro_fn_stats *s = stats_of(pid, &fn);

		note_names(pid, &fn);
		if (s)
			__sync_fetch_and_add(&s->calls, 1);
		count(PYRO_CALLS_ENTRIES);
		count(PYRO_CALLS_NO_STORAGE);
		return 0;
	}
	sh->pid = pid;
	sh->entries++;
	h = fn_hash(&fn);
	fn_slot_of(sh, &fn, h)->calls++;
	d = sh->depth++;
	if (d >= PYRO_CALL_DEPTH) {
		count(PYRO_CALLS_TOO_DEEP);
		return 0;
	}
	if (d > 0)
		parent = sh->f[(d - 1) & (PYRO_CALL_DEPTH - 1)].path;
	f = &sh->f[d & (PYRO_CALL_DEPTH - 1)];
	f->fn = fn;
	f->start_ns = now;
	f->child_ns = 0;
	f->path = path_id(parent, &fn);
	f->parent_path = parent;
	f->suppressed_ns = 0;
	f->rec_at = NO_FRAME;
	f->bucket = h & (ON_STACK - 1);
	if (!sh->on_stack[f->bucket]++)
		return 0;			/* not on the stack: no outer activation */
	for (i = 0; i < PYRO_CALL_DEPTH; i++) { /* the nearest one below */
		__u32 at = d - 1 - i;

		if (i >= d)
			break;
		opaque(at);
		at &= PYRO_CALL_DEPTH - 1;
		if (sh->f[at].fn.name == fn.name && sh->f[at].fn.file == fn.file) {
			f->rec_at = at;
			break;
		}
	}
	return 0;
}

static __always_inline void off_stack(struct shadow *sh, const struct frame *f)
{
	__u8 *n = &sh->on_stack[f->bucket & (ON_STACK - 1)];

	if (*n)
		*n -= 1;
}

/* Frames above a return's match never saw their return: on 3.15 calling a generator
 * function fires function__entry for the frame's creation (up to RETURN_GENERATOR) without
 * a return. Their own time is unknown; the time of later activations that counted on them
 * as an outer recursion is not, and goes to their function's inclusive time now. */
static __always_inline void drop_orphans(__u32 pid, struct shadow *sh, __u32 at)
{
	__u32 k;

	for (k = 1; k <= MATCH_DEPTH; k++) {
		__u32 o = at + k;
		struct pyro_fn_stats *s;

		if (o >= sh->depth)
			break;
		opaque(o);
		o &= PYRO_CALL_DEPTH - 1;
		off_stack(sh, &sh->f[o]);
		if (!sh->f[o].suppressed_ns)
			continue;
		s = stats_of(pid, &sh->f[o].fn);
		if (s)
			__sync_fetch_and_add(&s->incl_ns, sh->f[o].suppressed_ns);
	}
}

/* Finds the frame a return belongs to: the top, or one of the few below it. */
static __always_inline int match(struct shadow *sh, const struct pyro_fn *fn)
{
	__u32 top = sh->depth - 1, k;

	for (k = 0; k < MATCH_DEPTH; k++) {
		__u32 at = top - k;

		if (k > top)
			break;
		/* Keep the mask: clang drops it where it can prove at < PYRO_CALL_DEPTH, which
		 * verifiers before about 6.13 cannot follow (it failed to load on 6.1 and 6.12). */
		opaque(at);
		at &= PYRO_CALL_DEPTH - 1;
		if (sh->f[at].fn.name == fn->name && sh->f[at].fn.file == fn->file)
			return (int)at;
	}
	return -1;
}

static __always_inline int do_return(__u64 file, __u64 name)
{
	__u64 now = bpf_ktime_get_ns(), dur, self;
	struct pyro_fn fn = { .name = name, .file = file };
	struct path_slot *ps;
	struct fn_slot *sl;
	struct shadow *sh;
	struct frame *f;
	__u32 idx, parent;
	int at;

	sh = bpf_task_storage_get(&shadows, bpf_get_current_task_btf(), NULL, 0);
	if (!sh || sh->depth == 0) {
		count(PYRO_CALLS_RETURNS);
		count(PYRO_CALLS_UNMATCHED);
		return 0;
	}
	sh->returns++;
	if (sh->depth > PYRO_CALL_DEPTH) { /* its entry was too deep to be kept */
		sh->depth--;
		return 0;
	}
	at = match(sh, &fn);
	if (at < 0) {
		count(PYRO_CALLS_UNMATCHED);
		return 0;
	}
	if ((__u32)at != sh->depth - 1) {
		count(PYRO_CALLS_MISMATCHED);
		drop_orphans(sh->pid, sh, (__u32)at);
	}
	sh->depth = (__u32)at;
	idx = (__u32)at;
	opaque(idx);
	idx &= PYRO_CALL_DEPTH - 1;
	f = &sh->f[idx];
	off_stack(sh, f);
	dur = now - f->start_ns;
	self = dur > f->child_ns ? dur - f->child_ns : 0;
	if (idx > 0) {
		parent = idx - 1;
		opaque(parent);
		parent &= PYRO_CALL_DEPTH - 1;
		sh->f[parent].child_ns += dur;
	}
	sl = fn_slot_of(sh, &fn, fn_hash(&fn));
	sl->returns++;
	sl->excl_ns += self;
	sl->hist[bit_length(dur) & (PYRO_CALL_BUCKETS - 1)]++;
	if (f->rec_at < NO_FRAME) { /* recursion: the outer activation's time covers this */
		__u32 r = f->rec_at;

		opaque(r);
		sh->f[r & (PYRO_CALL_DEPTH - 1)].suppressed_ns += dur;
	} else {
		sl->incl_ns += dur;
	}
	if (sl->returns >= HIST_FLUSH_AT)
		flush_fn(sh->pid, sl);
	ps = path_slot_of(sh, f);
	ps->calls++;
	ps->excl_ns += self;
	return 0;
}

static __always_inline int do_count(__u64 file, __u64 name)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct pyro_fn fn = { .name = name, .file = file };
	struct pyro_fn_stats *s;

	count(PYRO_CALLS_RETURNS);
	s = stats_of(pid, &fn);
	if (!s)
		return 0;
	if (!s->calls) /* first seen (or nearly: the names are read at most once) */
		note_names(pid, &fn);
	__sync_fetch_and_add(&s->calls, 1);
	return 0;
}

/* A thread's totals leave with it: its task storage is freed after this tracepoint. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_thread_exit, struct task_struct *task)
{
	struct shadow *sh = bpf_task_storage_get(&shadows, task, NULL, 0);

	if (sh)
		flush_thread(sh);
	return 0;
}

/* Run by user space over every task when tracing ends, after the probes are detached. */
SEC("iter/task")
int flush_threads(struct bpf_iter__task *ctx)
{
	/* One load: 6.1's verifier sees a second load of ctx->task as possibly NULL again. */
	struct task_struct *task = ctx->task;
	struct shadow *sh;

	if (!task)
		return 0;
	sh = bpf_task_storage_get(&shadows, task, NULL, 0);
	if (sh)
		flush_thread(sh);
	return 0;
}

/* libbpf's USDT programs, for probes whose arguments are not plain registers. Its argument
 * fetching costs about 70 ns per argument here (a spec lookup and a probe read each). Each
 * is a UPROBE_PROGRAM: a plain and a preemption-guarded variant (common.bpf.h). */
#define USDT_PROGRAM(prog, body)                                                                   \
	static __noinline int prog##_run(struct pt_regs *ctx)                                      \
	{                                                                                          \
		long file = 0, name = 0;                                                           \
                                                                                                   \
		bpf_usdt_arg(ctx, 0, &file);                                                       \
		bpf_usdt_arg(ctx, 1, &name);                                                       \
		return body(file, name);                                                           \
	}                                                                                          \
	UPROBE_PROGRAM("usdt", prog, prog##_run)

USDT_PROGRAM(on_entry, do_entry)

USDT_PROGRAM(on_return, do_return)

USDT_PROGRAM(on_return_count, do_count)

/* Plain uprobes at the probe's address where both arguments sit in registers: user space
 * puts their numbers in the cookie (4 bits each: file, then name), and reading them is a
 * load from the saved registers. */
/* The cookie holds the registers' numbers: the file's in bits 0-3, the name's in 4-7. */
#define REGS_PROGRAM(prog, body)                                                                   \
	static __noinline int prog##_run(struct pt_regs *ctx)                                      \
	{                                                                                          \
		__u64 c = bpf_get_attach_cookie(ctx), v[16];                                       \
		__u32 f = c & 15, n = (c >> 4) & 15;                                               \
                                                                                                   \
		regs_of(ctx, v);                                                                   \
		opaque(f);                                                                         \
		opaque(n);                                                                         \
		return body(v[f & 15], v[n & 15]);                                                 \
	}                                                                                          \
	UPROBE_PROGRAM("uprobe", prog, prog##_run)

REGS_PROGRAM(on_entry_regs, do_entry)
REGS_PROGRAM(on_return_regs, do_return)
REGS_PROGRAM(on_return_count_regs, do_count)

/* The bench's second floor: the least a per-thread latency measurement does. Entry pushes
 * the function and the time on a shadow stack in task storage; return pops it and adds the
 * duration up. No counts, paths, recursion or histogram: what ours costs above this is what
 * those cost. */
struct timer_frame {
	__u64 fn;
	__u64 start_ns;
};

struct timer {
	__u32 depth;
	__u32 pad;
	__u64 total_ns;
	struct timer_frame f[PYRO_CALL_DEPTH];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct timer);
} timers SEC(".maps");

static __always_inline int timer_entry(__u64 file, __u64 name)
{
	__u64 now = bpf_ktime_get_ns();
	struct timer *t = bpf_task_storage_get(&timers, bpf_get_current_task_btf(), NULL,
					       BPF_LOCAL_STORAGE_GET_F_CREATE);
	__u32 d;

	if (!t)
		return 0;
	d = t->depth++;
	if (d < PYRO_CALL_DEPTH) {
		t->f[d].fn = file ^ name;
		t->f[d].start_ns = now;
	}
	return 0;
}

static __always_inline int timer_return(__u64 file, __u64 name)
{
	__u64 now = bpf_ktime_get_ns();
	struct timer *t = bpf_task_storage_get(&timers, bpf_get_current_task_btf(), NULL, 0);
	__u32 d;

	if (!t || !t->depth)
		return 0;
	d = --t->depth;
	if (d < PYRO_CALL_DEPTH && t->f[d].fn == (file ^ name))
		t->total_ns += now - t->f[d].start_ns;
	return 0;
}

REGS_PROGRAM(timer_entry_regs, timer_entry)
REGS_PROGRAM(timer_return_regs, timer_return)

USDT_PROGRAM(timer_entry_usdt, timer_entry)

USDT_PROGRAM(timer_return_usdt, timer_return)

SEC("usdt")
int BPF_USDT(floor_count)
{
	__u32 zero = 0;
	__u64 *v = bpf_map_lookup_elem(&floor_hits, &zero);

	if (v)
		*v += 1;
	return 0;
}
