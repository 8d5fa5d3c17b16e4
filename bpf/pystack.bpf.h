/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Walking a CPython thread's stack from BPF, shared by the CPU sampler and the GC tracer.
 * Nothing here knows a CPython version: the offsets come from user space in the pid map
 * (struct pyro_py_layout). Every read of the target may fail; each failure is counted
 * through pystack_count(), which the including program defines, with enum pyro_cpu_counter
 * values, and marked in the stack's flags.
 *
 * The including program provides pystack_count() and includes vmlinux.h, the libbpf
 * headers and pyrometer.h first. */
#ifndef PYSTACK_BPF_H
#define PYSTACK_BPF_H

/* What a sample needs from its thread: where the PyThreadState is, and the data-stack chunk
 * seen last with its size, so most samples read neither the thread list nor the chunk. */
struct tstate_entry {
	__u64 tstate;
	__u64 chunk, chunk_size;
};

/* tid -> its tstate_entry. Checked on every use (thread_id must still match), so a stale
 * entry costs a walk, not a lie. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct tstate_entry);
} tstate_cache SEC(".maps");

struct scratch {
	struct pyro_stack stack;
	/* Frames read from the target: one frame, or a window of its data stack. The slack
	 * past PYRO_WINDOW keeps every bounded field access inside. */
	__u8 win[PYRO_WINDOW + 2 * PYRO_FRAME_READ];
};

/* One per CPU: the stack being built and the bytes read from the target. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_map SEC(".maps");

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

/* The PyThreadState fields a sample uses. */
struct tstate_view {
	__u64 thread_id;
	__u64 frame;	 /* .frame (3.9), .cframe (3.11), .current_frame (3.13+) */
	__u64 datastack; /* .datastack_chunk (3.11+), else 0 */
};

/* First of the fields above in the PyThreadState: one read of PYRO_TSTATE_READ bytes from
 * there holds them all (user space refuses layouts where it would not). */
static __always_inline __u32 tstate_lo(const struct pyro_py_layout *L)
{
	__u32 lo = L->tstate_thread_id < L->tstate_frame ? L->tstate_thread_id : L->tstate_frame;

	if (L->tstate_datastack && L->tstate_datastack < lo)
		lo = L->tstate_datastack;
	return lo;
}

/* Reads the fields of the thread state at ts with one read (each read of another process
 * costs about 0.15 us here, so this saves two per sample). The bytes land in s->win, which
 * is free until the walk starts. */
static __always_inline int read_tstate(const struct pyro_py_layout *L, __u64 ts, __u8 *buf,
				       struct tstate_view *v)
{
	__u32 lo = tstate_lo(L);

	if (bpf_probe_read_user(buf, PYRO_TSTATE_READ, (const void *)(ts + lo)))
		return -1;
	v->thread_id = buf_u64(buf, L->tstate_thread_id - lo, PYRO_TSTATE_READ);
	v->frame = buf_u64(buf, L->tstate_frame - lo, PYRO_TSTATE_READ);
	v->datastack =
		L->tstate_datastack ? buf_u64(buf, L->tstate_datastack - lo, PYRO_TSTATE_READ) : 0;
	return 0;
}

/* Finds the PyThreadState whose thread_id (pthread_self(), which is the thread's FS base
 * on x86-64 glibc and musl) is this thread's: e gets its cache entry, v its fields. Using
 * the FS base rather than the tid keeps it right inside pid namespaces. Returns 0 if found. */
static __always_inline int find_tstate(const struct pyro_py_layout *L, __u32 tid, __u64 fsbase,
				       __u8 *buf, struct tstate_entry *e, struct tstate_view *v)
{
	struct tstate_entry *cached = bpf_map_lookup_elem(&tstate_cache, &tid);
	__u64 ts, interp, id = 0;
	int i;

	if (cached) {
		*e = *cached;
		if (!read_tstate(L, e->tstate, buf, v) && v->thread_id == fsbase)
			return 0;
	}
	if (read_ptr(&interp, L->runtime_addr + L->runtime_interp_head) || !interp) {
		pystack_count(PYRO_CPU_READ_RUNTIME);
		return -1;
	}
	if (read_ptr(&ts, interp + L->interp_threads_head)) {
		pystack_count(PYRO_CPU_READ_RUNTIME);
		return -1;
	}
	/* The main interpreter only: subinterpreters are rare and each would cost a walk. */
	for (i = 0; i < PYRO_MAX_THREAD_WALK && ts; i++) {
		if (read_ptr(&id, ts + L->tstate_thread_id)) {
			pystack_count(PYRO_CPU_READ_TSTATE);
			return -1;
		}
		if (id == fsbase)
			break;
		if (read_ptr(&ts, ts + L->tstate_next)) {
			pystack_count(PYRO_CPU_READ_TSTATE);
			return -1;
		}
	}
	if (!ts || id != fsbase)
		return -1;
	if (read_tstate(L, ts, buf, v)) {
		pystack_count(PYRO_CPU_READ_TSTATE);
		return -1;
	}
	e->tstate = ts;
	e->chunk = e->chunk_size = 0;
	bpf_map_update_elem(&tstate_cache, &tid, e, BPF_ANY);
	return 0;
}

/* The innermost frame of a thread state, per layout family. */
static __always_inline int first_frame(const struct pyro_py_layout *L, const struct tstate_view *v,
				       __u64 *frame)
{
	if (L->frames_kind == PYRO_FRAMES_CFRAME) {
		if (!v->frame) {
			*frame = 0;
			return 0;
		}
		return read_ptr(frame, v->frame + L->cframe_current_frame);
	}
	*frame = v->frame;
	return 0;
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
 * windows that never reach below its start, so no read faults. Its size is read only when
 * the chunk differs from the one cached for the thread. A chunk freed and another allocated
 * at its address with a different size leaves a wrong bound for a while: that costs failed
 * window reads (counted), never wrong frames, since frames are read where they are. */
static __always_inline void find_chunk(const struct pyro_py_layout *L, __u32 tid,
				       struct tstate_entry *e, const struct tstate_view *v,
				       struct window *w)
{
	__u64 size;

	if (!L->frames_contiguous || !v->datastack)
		return;
	if (v->datastack != e->chunk) {
		if (read_ptr(&size, v->datastack + PYRO_CHUNK_SIZE) || size > (1ull << 30))
			return;
		e->chunk = v->datastack;
		e->chunk_size = size;
		bpf_map_update_elem(&tstate_cache, &tid, e, BPF_ANY);
	}
	w->floor = e->chunk;
	w->ceil = e->chunk + e->chunk_size;
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
		pystack_count(PYRO_CPU_WINDOW_READS);
	} else if (L->frames_contiguous) {
		lo = frame & ~4095ull;
		pystack_count(PYRO_CPU_WINDOW_SHORT);
	} else {
		lo = frame;
		pystack_count(PYRO_CPU_FRAME_READS);
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
		pystack_count(PYRO_CPU_READ_FRAME);
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
		pystack_count(PYRO_CPU_TRUNCATED);
		return 1;
	}
	instr = frame_instr(L, f, code);
	st->frames[st->depth & (PYRO_MAX_FRAMES - 1)] =
		(code & PYRO_FRAME_CODE_MASK) | (instr << PYRO_FRAME_INSTR_SHIFT);
	st->depth++;
	return 0;
}

#define FRAMES_PER_STEP 32

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
static __always_inline void walk(const struct pyro_py_layout *L, __u32 tid, struct tstate_entry *e,
				 const struct tstate_view *v, __u64 frame, struct scratch *s)
{
	struct walk_ctx c = { .L = L, .s = s, .frame = frame };

	find_chunk(L, tid, e, v, &c.w);
	bpf_loop(PYRO_MAX_FRAMES * 2 / FRAMES_PER_STEP + 1, walk_step, &c, 0);
}

/* Fills s->stack with the calling thread's Python stack (leaf first). */
static __always_inline void pystack_capture(const struct pyro_py_layout *L, struct scratch *s)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct task_struct *task = bpf_get_current_task_btf();
	struct tstate_entry e = {};
	struct tstate_view v = {};
	__u64 frame = 0;

	s->stack.depth = 0;
	s->stack.flags = 0;
	if (find_tstate(L, tid, BPF_CORE_READ(task, thread.fsbase), s->win, &e, &v)) {
		pystack_count(PYRO_CPU_NO_TSTATE);
		s->stack.flags |= PYRO_STACK_NO_TSTATE;
	} else if (first_frame(L, &v, &frame)) {
		pystack_count(PYRO_CPU_READ_TSTATE);
		s->stack.flags |= PYRO_STACK_READ_ERROR;
	} else {
		walk(L, tid, &e, &v, frame, s);
	}
}

#endif /* PYSTACK_BPF_H */
