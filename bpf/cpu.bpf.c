// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* CPU sampling: on every cpu-clock tick of a sampled Python process, find the thread's
 * PyThreadState, walk its Python frames and count the stack in kernel maps. User space
 * (agent/sampler.c) drains the maps and symbolizes; nothing here knows a CPython version,
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

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define EEXIST 17 /* vmlinux.h carries no errno values */

/* Set before load: profile every tracked process, not only those flagged PYRO_PROC_SAMPLE. */
const volatile bool sample_all = false;
/* Flipped by user space between drains (see struct pyro_sample_key). */
__u32 epoch = 0;

/* tgid -> pyro_proc_info: discovery's map, shared by fd (reused before load). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PYRO_MAX_PROCS);
	__type(key, __u32);
	__type(value, struct pyro_proc_info);
} procs SEC(".maps");

/* stack id -> frames. User space copies them, and deletes those no sample used lately. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct pyro_stack);
} stacks SEC(".maps");

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

/* tid -> address of its PyThreadState, so most samples skip the thread-list walk. Checked
 * on every use (thread_id must still match), so a stale entry costs a walk, not a lie. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} tstate_cache SEC(".maps");

struct scratch {
	struct pyro_stack stack;
	/* Frames read from the target: one frame, or a window of its data stack. The slack
	 * past PYRO_WINDOW keeps every bounded field access inside. */
	__u8 win[PYRO_WINDOW + 2 * PYRO_FRAME_READ];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PYRO_CPU_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} cpu_counters SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&cpu_counters, &which);

	if (v)
		*v += 1;
}

/* Loads from the scratch buffer at an offset that came from user space: bounded here so
 * the verifier (and a wrong offset) can never read outside it. */
static __always_inline __u64 buf_u64(const __u8 *buf, __u32 off, __u32 size)
{
	if (off > size - 8)
		return 0;
	return *(const __u64 *)(buf + off);
}

static __always_inline __u32 buf_u32(const __u8 *buf, __u32 off, __u32 size)
{
	if (off > size - 4)
		return 0;
	return *(const __u32 *)(buf + off);
}

static __always_inline __u8 buf_u8(const __u8 *buf, __u32 off, __u32 size)
{
	if (off > size - 1)
		return 0;
	return buf[off];
}

static __always_inline int read_ptr(__u64 *dst, __u64 addr)
{
	return bpf_probe_read_user(dst, sizeof(*dst), (const void *)addr);
}

/* Finds the PyThreadState whose thread_id (pthread_self(), which is the thread's FS base
 * on x86-64 glibc and musl) is this thread's. Using the FS base rather than the tid keeps
 * it right inside pid namespaces. Returns 0 if there is none. */
static __always_inline __u64 find_tstate(const struct pyro_py_layout *L, __u32 tid, __u64 fsbase)
{
	__u64 *cached = bpf_map_lookup_elem(&tstate_cache, &tid);
	__u64 ts, interp, id;
	int i;

	if (cached && !read_ptr(&id, *cached + L->tstate_thread_id) && id == fsbase)
		return *cached;
	if (read_ptr(&interp, L->runtime_addr + L->runtime_interp_head) || !interp) {
		count(PYRO_CPU_READ_RUNTIME);
		return 0;
	}
	if (read_ptr(&ts, interp + L->interp_threads_head)) {
		count(PYRO_CPU_READ_RUNTIME);
		return 0;
	}
	/* The main interpreter only: subinterpreters are rare and each would cost a walk. */
	for (i = 0; i < PYRO_MAX_THREAD_WALK && ts; i++) {
		if (read_ptr(&id, ts + L->tstate_thread_id)) {
			count(PYRO_CPU_READ_TSTATE);
			return 0;
		}
		if (id == fsbase) {
			bpf_map_update_elem(&tstate_cache, &tid, &ts, BPF_ANY);
			return ts;
		}
		if (read_ptr(&ts, ts + L->tstate_next)) {
			count(PYRO_CPU_READ_TSTATE);
			return 0;
		}
	}
	return 0;
}

/* The innermost frame of a thread state, per layout family. */
static __always_inline int first_frame(const struct pyro_py_layout *L, __u64 tstate, __u64 *frame)
{
	__u64 cframe;

	if (L->frames_kind == PYRO_FRAMES_CFRAME) {
		if (read_ptr(&cframe, tstate + L->tstate_frame))
			return -1;
		if (!cframe) {
			*frame = 0;
			return 0;
		}
		return read_ptr(frame, cframe + L->cframe_current_frame);
	}
	return read_ptr(frame, tstate + L->tstate_frame);
}

/* Instruction index (code units) of a frame from the bytes read into buf. */
static __always_inline __u64 frame_instr(const struct pyro_py_layout *L, const __u8 *buf,
					 __u64 code)
{
	__u64 at, base;

	if (L->frames_kind == PYRO_FRAMES_OBJECT) {
		__s32 lasti = (__s32)buf_u32(buf, L->frame_instr, PYRO_FRAME_READ);

		return lasti < 0 ? 0 : (__u64)lasti / 2; /* f_lasti counts bytes before 3.10 */
	}
	at = buf_u64(buf, L->frame_instr, PYRO_FRAME_READ);
	base = code + L->code_adaptive;
	if (at < base || (at - base) / 2 >= PYRO_INSTR_UNKNOWN)
		return PYRO_INSTR_UNKNOWN;
	return (at - base) / 2;
}

/* Where the window holds, in s->win, the bytes [lo, hi) of the target, and where the
 * thread's current data-stack chunk lies ([floor, ceil), 0 when unknown). */
struct window {
	__u64 lo, hi;
	__u64 floor, ceil;
};

/* The current chunk of the thread's data stack (3.11+): frames inside it are read in
 * windows that never reach below its start, so no read faults. */
static __always_inline void find_chunk(const struct pyro_py_layout *L, __u64 tstate,
				       struct window *w)
{
	__u64 chunk, size;

	if (!L->frames_contiguous || !L->tstate_datastack ||
	    read_ptr(&chunk, tstate + L->tstate_datastack) || !chunk ||
	    read_ptr(&size, chunk + PYRO_CHUNK_SIZE) || size > (1ull << 30))
		return;
	w->floor = chunk;
	w->ceil = chunk + size;
}

/* The bytes of the frame at `frame`, read into s->win if the window does not hold them.
 * Inside the current chunk one read takes up to PYRO_WINDOW bytes ending with this frame:
 * its callers lie just below. Elsewhere (an older chunk, a generator's frame, a 3.9 heap
 * frame) the read goes from the frame's page start, which is mapped since the frame is. */
static __always_inline const __u8 *frame_bytes(const struct pyro_py_layout *L, struct scratch *s,
					       struct window *w, __u64 frame)
{
	__u64 span = L->frame_span, lo, len;

	if (span == 0 || span > PYRO_FRAME_READ)
		span = PYRO_FRAME_READ;
	if (frame >= w->lo && frame + span <= w->hi)
		goto hit;
	if (frame >= w->floor && frame + span <= w->ceil) {
		lo = frame + span > w->floor + PYRO_WINDOW ? frame + span - PYRO_WINDOW : w->floor;
		count(PYRO_CPU_WINDOW_READS);
	} else if (L->frames_contiguous) {
		lo = frame & ~4095ull;
		count(PYRO_CPU_WINDOW_SHORT);
	} else {
		lo = frame;
		count(PYRO_CPU_FRAME_READS);
	}
	len = frame + span - lo;
	if (len > PYRO_WINDOW + PYRO_FRAME_READ ||
	    bpf_probe_read_user(s->win, len, (const void *)lo))
		return NULL;
	w->lo = lo;
	w->hi = lo + len;
hit:
	/* frame - lo < PYRO_WINDOW: the mask only tells the verifier so. */
	return s->win + ((frame - w->lo) & (PYRO_WINDOW - 1));
}

struct walk_ctx {
	const struct pyro_py_layout *L;
	struct scratch *s;
	struct window w;
	__u64 frame;
};

/* Records one frame and moves to its caller. Returns 1 when the walk is over. */
static __always_inline int walk_one(struct walk_ctx *c)
{
	const struct pyro_py_layout *L = c->L;
	struct pyro_stack *st = &c->s->stack;
	const __u8 *f;
	__u64 code, instr;

	if (!c->frame)
		return 1;
	f = frame_bytes(L, c->s, &c->w, c->frame);
	if (!f) {
		count(PYRO_CPU_READ_FRAME);
		st->flags |= PYRO_STACK_READ_ERROR;
		return 1;
	}
	/* Low bits of a _PyStackRef (3.14+) are tags; objects are 16-byte aligned. */
	code = buf_u64(f, L->frame_code, PYRO_FRAME_READ) & ~7ull;
	c->frame = buf_u64(f, L->frame_previous, PYRO_FRAME_READ);
	if (L->owner_skip && buf_u8(f, L->frame_owner, PYRO_FRAME_READ) >= L->owner_skip)
		return 0; /* an interpreter entry or C-stack shim, not a Python function */
	if (st->depth >= PYRO_MAX_FRAMES) {
		st->flags |= PYRO_STACK_TRUNCATED;
		count(PYRO_CPU_TRUNCATED);
		return 1;
	}
	instr = frame_instr(L, f, code);
	st->frames[st->depth & (PYRO_MAX_FRAMES - 1)] =
		(code & PYRO_FRAME_CODE_MASK) | (instr << PYRO_FRAME_INSTR_SHIFT);
	st->depth++;
	return 0;
}

#define FRAMES_PER_STEP 8

/* A bpf_loop callback: the verifier checks it once, and each call handles several frames
 * so the per-call cost is shared. */
static long walk_step(__u64 index, void *arg)
{
	int i;

	for (i = 0; i < FRAMES_PER_STEP; i++)
		if (walk_one(arg))
			return 1;
	return 0;
}

/* Up to twice PYRO_MAX_FRAMES frames: shims are skipped without being counted. */
static __always_inline void walk(const struct pyro_py_layout *L, __u64 tstate, __u64 frame,
				 struct scratch *s)
{
	struct walk_ctx c = { .L = L, .s = s, .frame = frame };

	find_chunk(L, tstate, &c.w);
	bpf_loop(PYRO_MAX_FRAMES * 2 / FRAMES_PER_STEP + 1, walk_step, &c, 0);
}

static __always_inline __u64 stack_hash(const struct pyro_stack *st)
{
	__u64 h = 0xcbf29ce484222325ull ^ ((__u64)st->flags << 32 | st->depth);
	__u32 i;

	for (i = 0; i < PYRO_MAX_FRAMES; i++) {
		if (i >= st->depth)
			break;
		h = (h ^ st->frames[i]) * 0x100000001b3ull;
		h ^= h >> 29;
	}
	return h;
}

static __always_inline void record(__u32 pid, __u32 tid, struct pyro_stack *st)
{
	struct pyro_sample_key key = { .pid = pid, .tid = tid, .epoch = epoch };
	struct pyro_sample_value fresh = { .count = 1 }, *v;
	long err;

	key.stack_id = stack_hash(st);
	v = bpf_map_lookup_elem(&counts, &key);
	if (v) {
		__sync_fetch_and_add(&v->count, 1);
		return;
	}
	err = bpf_map_update_elem(&stacks, &key.stack_id, st, BPF_NOEXIST);
	if (err && err != -EEXIST) {
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
	err = bpf_map_update_elem(&counts, &key, &fresh, BPF_NOEXIST);
	if (err == -EEXIST) { /* another CPU inserted it first */
		v = bpf_map_lookup_elem(&counts, &key);
		if (v)
			__sync_fetch_and_add(&v->count, 1);
	} else if (err) {
		count(PYRO_CPU_COUNTS_FULL);
	}
}

SEC("perf_event")
int on_cpu_sample(struct bpf_perf_event_data *ctx)
{
	__u64 id = bpf_get_current_pid_tgid(), tstate, frame = 0;
	__u32 pid = id >> 32, tid = (__u32)id, zero = 0;
	struct task_struct *task;
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
	s->stack.depth = 0;
	s->stack.flags = 0;
	task = bpf_get_current_task_btf();
	tstate = find_tstate(&info->layout, tid, BPF_CORE_READ(task, thread.fsbase));
	if (!tstate) {
		count(PYRO_CPU_NO_TSTATE);
		s->stack.flags |= PYRO_STACK_NO_TSTATE;
	} else if (first_frame(&info->layout, tstate, &frame)) {
		count(PYRO_CPU_READ_TSTATE);
		s->stack.flags |= PYRO_STACK_READ_ERROR;
	} else {
		walk(&info->layout, tstate, frame, s);
	}
	record(pid, tid, &s->stack);
	return 0;
}
