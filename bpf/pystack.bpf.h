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
	__u64 interp; /* the main interpreter, whose GC state says [gc] */
	__u64 chunk, chunk_size;
};

/* Each thread's tstate_entry, in its task storage: found without hashing and freed with
 * the thread. Checked on every use (thread_id must still match), so a stale entry costs a
 * walk, not a lie. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct tstate_entry);
} tstate_cache SEC(".maps");

struct scratch {
	struct pyro_stack stack;
	__u64 hash; /* of stack, for the sampler's map key */
	/* Frames read from the target: one frame, or a window of its data stack. The slack
	 * past PYRO_WINDOW keeps every masked field access (FRAME_FIELD) inside. */
	__u8 win[PYRO_WINDOW + 2 * PYRO_FRAME_READ];
};

/* One per CPU: the stack being built and the bytes read from the target. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_map SEC(".maps");

/* Loads a thread-state field from the scratch buffer at an offset that came from user
 * space: bounded here so the verifier (and a wrong offset) can never read outside it.
 * Frame fields go through FRAME_FIELD below. */
static __always_inline __u64 buf_u64(const __u8 *buf, __u32 off, __u32 size)
{
	if (off > size - 8)
		return 0;
	return *(const __u64 *)(buf + off);
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
	__u64 interp;	 /* from the cache entry or the runtime, not from the thread state */
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
 * on x86-64 glibc and musl) is the current thread's: *slot gets its cache entry (NULL if
 * the task storage could not be had), v its fields. Using the FS base rather than the tid
 * keeps it right inside pid namespaces. Returns 0 if found. */
static __always_inline int find_tstate(const struct pyro_py_layout *L, struct task_struct *task,
				       __u8 *buf, struct tstate_entry **slot, struct tstate_view *v)
{
	struct tstate_entry *e = bpf_task_storage_get(&tstate_cache, task, NULL, 0);
	__u64 fsbase = BPF_CORE_READ(task, thread.fsbase);
	__u64 ts, interp, id = 0;
	int i;

	if (e && !read_tstate(L, e->tstate, buf, v) && v->thread_id == fsbase) {
		v->interp = e->interp;
		*slot = e;
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
	if (!e)
		e = bpf_task_storage_get(&tstate_cache, task, NULL, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (e) {
		e->tstate = ts;
		e->interp = interp;
		e->chunk = e->chunk_size = 0;
	}
	v->interp = interp;
	*slot = e;
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

/* A field of the frame whose bytes start at f, which lies in s->win with at least
 * PYRO_FRAME_READ bytes of slack after it. User space keeps every frame field inside
 * frame_span <= PYRO_FRAME_READ (agent/python/py_layout.c), so the mask changes nothing; it tells
 * the verifier, without a branch per field, that the load stays inside the buffer. */
#define FRAME_FIELD(type, f, off) (*(const type *)((f) + ((off) & (PYRO_FRAME_READ - 1))))

/* Instruction index (code units) of a frame. */
static __always_inline __u64 frame_instr(const struct pyro_py_layout *L, const __u8 *f, __u64 code)
{
	__u64 at, base;

	if (L->frames_kind == PYRO_FRAMES_OBJECT) {
		__s32 lasti = FRAME_FIELD(__s32, f, L->frame_instr);

		return lasti < 0 ? 0 : (__u64)lasti / 2; /* f_lasti counts bytes before 3.10 */
	}
	at = FRAME_FIELD(__u64, f, L->frame_instr);
	base = code + L->code_adaptive;
	if (at < base || at - base >= 2 * PYRO_INSTR_UNKNOWN)
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
 * the chunk differs from the one cached for the thread (in e, when there is one). A chunk
 * freed and another allocated at its address with a different size leaves a wrong bound
 * for a while: that costs failed window reads (counted), never wrong frames, since frames
 * are read where they are. */
static __always_inline void find_chunk(const struct pyro_py_layout *L, struct tstate_entry *e,
				       const struct tstate_view *v, struct window *w)
{
	__u64 size;

	if (!L->frames_contiguous || !v->datastack)
		return;
	if (e && v->datastack == e->chunk) {
		size = e->chunk_size;
	} else {
		if (read_ptr(&size, v->datastack + PYRO_CHUNK_SIZE) || size > (1ull << 30))
			return;
		if (e) {
			e->chunk = v->datastack;
			e->chunk_size = size;
		}
	}
	w->floor = v->datastack;
	w->ceil = v->datastack + size;
}

/* The bytes of the frame at `frame`, read into s->win if the window does not hold them.
 * A read costs about 0.1 us plus 0.05 us per KiB here, so a walk should make few reads
 * and no big ones in vain:
 * - inside the current data-stack chunk (3.11+) one read takes up to PYRO_WINDOW bytes
 *   ending with this frame: its callers lie just below, and the chunk's start bounds the
 *   read, so a stack costs about one read of its own size;
 * - a 3.9 heap frame is read from its page start (mapped, since the frame is): pymalloc
 *   hands out blocks of one size class side by side, so callers allocated just before
 *   their callee often share its page;
 * - any other frame (an older chunk, a generator's, an entry frame on the C stack) is
 *   read alone. */
static __always_inline const __u8 *frame_bytes(const struct pyro_py_layout *L, struct scratch *s,
					       struct window *w, __u64 frame, __u64 span)
{
	__u64 lo, len;

	if (frame >= w->lo && frame + span <= w->hi)
		goto hit;
	if (frame >= w->floor && frame + span <= w->ceil) {
		lo = frame + span > w->floor + PYRO_WINDOW ? frame + span - PYRO_WINDOW : w->floor;
		pystack_count(PYRO_CPU_WINDOW_READS);
	} else if (!L->frames_contiguous) {
		lo = frame & ~4095ull;
		pystack_count(PYRO_CPU_PAGE_READS);
	} else {
		lo = frame;
		pystack_count(PYRO_CPU_FRAME_READS);
	}
	len = frame + span - lo;
	if (len > PYRO_WINDOW || bpf_probe_read_user(s->win, len, (const void *)lo))
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
	__u64 span; /* bytes of a frame the walk needs */
	__u64 hash; /* of the frames recorded so far (stack_hash_add) */
};

/* The stack's identity, built frame by frame as the walk records them (FNV-1a style). */
static __always_inline __u64 stack_hash_add(__u64 h, __u64 v)
{
	h = (h ^ v) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

/* Records one frame and moves to its caller. Returns 1 when the walk is over. */
static __always_inline int walk_one(struct walk_ctx *c)
{
	const struct pyro_py_layout *L = c->L;
	struct pyro_stack *st = &c->s->stack;
	const __u8 *f;
	__u64 code, v;

	if (!c->frame)
		return 1;
	f = frame_bytes(L, c->s, &c->w, c->frame, c->span);
	if (!f) {
		pystack_count(PYRO_CPU_READ_FRAME);
		st->flags |= PYRO_STACK_READ_ERROR;
		return 1;
	}
	/* Low bits of a _PyStackRef (3.14+) are tags; objects are 16-byte aligned. */
	code = FRAME_FIELD(__u64, f, L->frame_code) & ~7ull;
	c->frame = FRAME_FIELD(__u64, f, L->frame_previous);
	if (L->owner_skip && FRAME_FIELD(__u8, f, L->frame_owner) >= L->owner_skip)
		return 0; /* an interpreter entry or C-stack shim, not a Python function */
	if (st->depth >= PYRO_MAX_FRAMES) {
		st->flags |= PYRO_STACK_TRUNCATED;
		pystack_count(PYRO_CPU_TRUNCATED);
		return 1;
	}
	v = (code & PYRO_FRAME_CODE_MASK) | (frame_instr(L, f, code) << PYRO_FRAME_INSTR_SHIFT);
	st->frames[st->depth & (PYRO_MAX_FRAMES - 1)] = v;
	st->depth++;
	c->hash = stack_hash_add(c->hash, v);
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
static __always_inline void walk(const struct pyro_py_layout *L, struct tstate_entry *e,
				 const struct tstate_view *v, __u64 frame, struct scratch *s)
{
	struct walk_ctx c = { .L = L, .s = s, .frame = frame, .hash = s->hash };

	c.span =
		L->frame_span && L->frame_span <= PYRO_FRAME_READ ? L->frame_span : PYRO_FRAME_READ;
	find_chunk(L, e, v, &c.w);
	bpf_loop(PYRO_MAX_FRAMES * 2 / FRAMES_PER_STEP + 1, walk_step, &c, 0);
	s->hash = c.hash;
}

/* Marks the stack PYRO_STACK_GC when the interpreter is collecting garbage. The flag is
 * the interpreter's, not the thread's: a thread on a CPU without the GIL while another
 * collects is marked too. Collections hold the GIL (no free-threaded builds here), so that
 * takes a thread in C code that released it. */
static __always_inline void check_gc(const struct pyro_py_layout *L, const struct tstate_view *v,
				     struct pyro_stack *st)
{
	__s32 collecting = 0;

	if (!L->interp_gc_collecting || !v->interp)
		return;
	if (bpf_probe_read_user(&collecting, sizeof(collecting),
				(const void *)(v->interp + L->interp_gc_collecting))) {
		pystack_count(PYRO_CPU_READ_GC);
		return;
	}
	if (collecting) {
		st->flags |= PYRO_STACK_GC;
		pystack_count(PYRO_CPU_GC);
	}
}

/* Fills s->stack with the calling thread's Python stack (leaf first), s->hash with its hash. */
static __always_inline void pystack_capture(const struct pyro_py_layout *L, struct scratch *s)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct tstate_entry *e = NULL;
	struct tstate_view v = {};
	__u64 frame = 0;

	s->stack.depth = 0;
	s->stack.flags = 0;
	s->hash = 0xcbf29ce484222325ull;
	if (find_tstate(L, task, s->win, &e, &v)) {
		pystack_count(PYRO_CPU_NO_TSTATE);
		s->stack.flags |= PYRO_STACK_NO_TSTATE;
	} else if (first_frame(L, &v, &frame)) {
		pystack_count(PYRO_CPU_READ_TSTATE);
		s->stack.flags |= PYRO_STACK_READ_ERROR;
	} else {
		check_gc(L, &v, &s->stack);
		walk(L, e, &v, frame, s);
	}
	s->hash = stack_hash_add(s->hash, (__u64)s->stack.flags << 32 | s->stack.depth);
}

#endif /* PYSTACK_BPF_H */
