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
	__u64 interp;			      /* the main interpreter, whose GC state says [gc] */
	__u64 chunk, chunk_size, chunk_below; /* address, size and .previous */
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

		if (lasti < 0)
			return 0;
		/* f_lasti counts bytes in 3.9, code units in 3.10 */
		at = L->lasti_in_units ? (__u64)lasti : (__u64)lasti / 2;
		return at < PYRO_INSTR_UNKNOWN ? at : PYRO_INSTR_UNKNOWN;
	}
	if (L->frame_tlbc_index && FRAME_FIELD(__s32, f, L->frame_tlbc_index))
		return PYRO_INSTR_UNKNOWN; /* a thread-local copy: its line is not known here */
	at = FRAME_FIELD(__u64, f, L->frame_instr);
	base = code + L->code_adaptive;
	if (at < base || at - base >= 2 * PYRO_INSTR_UNKNOWN)
		return PYRO_INSTR_UNKNOWN;
	return (at - base) / 2;
}

/* The state of a walk. It lives in the per-CPU scratch map, not on the BPF stack: the
 * verifier tracks what a program keeps on its stack across the walk's bpf_loop steps, and
 * bounds that differ from step to step keep it from ever seeing two steps as equal (a walk
 * that could enter older data-stack chunks did not load on 6.18: over 1M instructions).
 * What a program loads from a map value is just a number to it, so every step verifies
 * alike and once. */
struct walk_state {
	struct pyro_py_layout L; /* the process's layout, copied from the pid map */
	__u64 frame;		 /* the next frame to record */
	__u64 span;		 /* bytes of a frame the walk needs */
	__u64 hash;		 /* of the frames recorded so far (stack_hash_add) */
	__u64 lo, hi;		 /* s->win holds the target's bytes [lo, hi) */
	/* The data-stack chunk the window reads from ([floor, ceil), 0 when unknown), and the
	 * chunk before it (its .previous) with that one's size once read (0: not yet). */
	__u64 floor, ceil;
	__u64 below, below_size, below_previous;
};

struct scratch {
	struct pyro_stack stack;
	__u64 hash;   /* of stack, for the sampler's map key */
	__u64 interp; /* the thread's interpreter state, 0 when its thread state was not found */
	struct walk_state w;
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

/* _PyStackChunk's first fields, 3.11 to 3.15 (DWARF of each -dbg build). */
struct chunk_head {
	__u64 previous;
	__u64 size;
};

#define PYRO_MAX_CHUNK (1ull << 30) /* a bigger chunk size is garbage */

/* The thread's current data-stack chunk (3.11+) and the address of the one before it.
 * Frames inside a chunk are read in windows that never reach below its start, so no read
 * faults. The header is read only when the chunk differs from the one cached for the
 * thread (in e, when there is one). A chunk freed and another allocated at its address
 * with a different size leaves a wrong bound for a while: that costs failed window reads
 * (counted), never wrong frames, since frames are read where they are. */
static __always_inline void find_chunk(struct tstate_entry *e, const struct tstate_view *v,
				       struct walk_state *w)
{
	struct chunk_head h;

	w->floor = w->ceil = w->below = w->below_size = w->below_previous = 0;
	if (!w->L.frames_contiguous || !v->datastack)
		return;
	if (e && v->datastack == e->chunk) {
		h.size = e->chunk_size;
		h.previous = e->chunk_below;
	} else {
		if (bpf_probe_read_user(&h, sizeof(h), (const void *)v->datastack) ||
		    h.size > PYRO_MAX_CHUNK)
			return;
		if (e) {
			e->chunk = v->datastack;
			e->chunk_size = h.size;
			e->chunk_below = h.previous;
		}
	}
	w->floor = v->datastack;
	w->ceil = v->datastack + h.size;
	w->below = h.previous;
}

/* Moves the walk's chunk to the one before it if that one holds the frame: the caller
 * frames of a stack deeper than a chunk lie there, side by side again. One 16-byte read
 * per chunk left behind. Returns 0 if the frame is now inside [floor, ceil). */
static __always_inline int enter_chunk_below(struct walk_state *w, __u64 frame)
{
	struct chunk_head h;

	if (!w->below)
		return -1;
	if (!w->below_size) {
		if (bpf_probe_read_user(&h, sizeof(h), (const void *)w->below) || !h.size ||
		    h.size > PYRO_MAX_CHUNK) {
			pystack_count(PYRO_CPU_READ_CHUNK);
			w->below = 0;
			return -1;
		}
		w->below_size = h.size;
		w->below_previous = h.previous;
	}
	if (frame < w->below || frame + w->span > w->below + w->below_size)
		return -1; /* a frame elsewhere (a generator's, a C-stack entry frame) */
	w->floor = w->below;
	w->ceil = w->below + w->below_size;
	w->below = w->below_previous;
	w->below_size = 0;
	pystack_count(PYRO_CPU_CHUNKS_ENTERED);
	return 0;
}
/* The bytes of the frame at w->frame, read into s->win if the window does not hold them.
 * A read costs about 0.1 us plus 0.05 us per KiB here, so a walk should make few reads
 * and no big ones in vain:
 * - inside a data-stack chunk (3.11+) one read takes up to PYRO_WINDOW bytes ending with
 *   this frame: its callers lie just below, and the chunk's start bounds the read, so a
 *   stack costs about one read of its own size, one more per chunk it spans;
 * - a 3.9 heap frame is read from its page start (mapped, since the frame is): pymalloc
 *   hands out blocks of one size class side by side, so callers allocated just before
 *   their callee often share its page;
 * - any other frame (a generator's, an entry frame on the C stack) is read alone. */
static __always_inline const __u8 *frame_bytes(struct scratch *s)
{
	struct walk_state *w = &s->w;
	__u64 frame = w->frame, span = w->span, lo, len;

	if (frame >= w->lo && frame + span <= w->hi)
		goto hit;
	if ((frame >= w->floor && frame + span <= w->ceil) || !enter_chunk_below(w, frame)) {
		lo = frame + span > w->floor + PYRO_WINDOW ? frame + span - PYRO_WINDOW : w->floor;
		pystack_count(PYRO_CPU_WINDOW_READS);
	} else if (!w->L.frames_contiguous) {
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

/* The stack's identity, built frame by frame as the walk records them (FNV-1a style). */
static __always_inline __u64 stack_hash_add(__u64 h, __u64 v)
{
	h = (h ^ v) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

/* Records one frame and moves to its caller. Returns 1 when the walk is over. */
static __always_inline int walk_one(struct scratch *s)
{
	struct walk_state *w = &s->w;
	const struct pyro_py_layout *L = &w->L;
	struct pyro_stack *st = &s->stack;
	const __u8 *f;
	__u64 code, v;
	__u32 depth;

	if (!w->frame)
		return 1;
	f = frame_bytes(s);
	if (!f) {
		pystack_count(PYRO_CPU_READ_FRAME);
		st->flags |= PYRO_STACK_READ_ERROR;
		return 1;
	}
	/* Low bits of a _PyStackRef (3.14+) are tags; objects are 16-byte aligned. */
	code = FRAME_FIELD(__u64, f, L->frame_code) & ~7ull;
	w->frame = FRAME_FIELD(__u64, f, L->frame_previous);
	if (L->owner_skip && FRAME_FIELD(__u8, f, L->frame_owner) >= L->owner_skip)
		return 0; /* an interpreter entry or C-stack shim, not a Python function */
	depth = st->depth;
	if (depth >= PYRO_MAX_FRAMES) {
		st->flags |= PYRO_STACK_TRUNCATED;
		pystack_count(PYRO_CPU_TRUNCATED);
		return 1;
	}
	v = (code & PYRO_FRAME_CODE_MASK) | (frame_instr(L, f, code) << PYRO_FRAME_INSTR_SHIFT);
	st->frames[depth & (PYRO_MAX_FRAMES - 1)] = v;
	st->depth = depth + 1;
	w->hash = stack_hash_add(w->hash, v);
	return 0;
}

/* Frames one bpf_loop step records. The steps are unrolled: a loop counter inside the
 * callback stays an exact register value, so no two of its iterations ever look alike to
 * the verifier, and together with the branches of a frame read that took 6.18.44 and 6.19
 * past 1M instructions (their strongly-connected-component accounting of bpf_loop
 * callbacks). Unrolled, the callback is straight-line code that verifies in a few
 * thousand instructions on every kernel of the matrix. */
#define FRAMES_PER_STEP 8

/* A bpf_loop callback that takes no context: it finds this CPU's scratch itself, so it
 * reads nothing from its caller's stack and the verifier tracks no pointer across the
 * callback. The program runs with migration off, so the lookup returns the caller's
 * scratch. */
static long walk_step(__u64 index, void *unused)
{
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch_map, &zero);

	if (!s)
		return 1;
#pragma unroll
	for (int i = 0; i < FRAMES_PER_STEP; i++)
		if (walk_one(s))
			return 1;
	return 0;
}

/* bpf_loop's flags: 0, but loaded from a map value, which the verifier cannot read ahead.
 * With flags it knows to be 0 it inlines the loop and keeps the caller's r6-r8 in three
 * stack slots past the stack depth it verified; whether the JIT's frame (or, on 7.x, its
 * per-CPU private stack) covers them is the kernel's business, and not relied on here.
 * Not inlined, the loop is one helper call and the program's stack is exactly what the
 * verifier measured. The cost is within this machine's noise (README, Benchmarks). (The
 * 7.2 oops was not this: it persisted with the loop not inlined; see UPROBE_PROGRAM.) */
__u64 pystack_loop_flags = 0;

/* Up to twice PYRO_MAX_FRAMES frames: shims are skipped without being counted. */
static __always_inline void walk(struct tstate_entry *e, const struct tstate_view *v, __u64 frame,
				 struct scratch *s)
{
	struct walk_state *w = &s->w;

	w->frame = frame;
	w->hash = s->hash;
	w->lo = w->hi = 0;
	w->span = w->L.frame_span && w->L.frame_span <= PYRO_FRAME_READ ? w->L.frame_span
									: PYRO_FRAME_READ;
	find_chunk(e, v, w);
	bpf_loop(PYRO_MAX_FRAMES * 2 / FRAMES_PER_STEP + 1, walk_step, NULL, pystack_loop_flags);
	s->hash = w->hash;
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
		s->w.L = *L;
		walk(e, &v, frame, s);
	}
	s->interp = v.interp; /* 0 unless find_tstate found the thread state */
	s->hash = stack_hash_add(s->hash, (__u64)s->stack.flags << 32 | s->stack.depth);
}

/* For uprobe programs: fills head with the calling thread's leaf-most PYRO_SEG_FRAMES frames
 * (marked truncated when there are more). Uprobe programs run preemptible (migration off):
 * another task's program on this CPU could write the same per-CPU scratch mid-walk. The
 * kfuncs that turn preemption off arrived in Linux 6.10, and an atomic exchange needs BPF v3
 * code, with which this walker no longer verifies on 6.18; an insert into claims (a hash map
 * CPU -> tid) that fails if the key exists is atomic on every kernel. Returns -1, head left
 * empty, when the scratch is claimed (rare: it takes a preemption inside a walk of a few
 * microseconds) or missing; the caller counts it. */
static __always_inline int pystack_capture_head(const struct pyro_py_layout *L, void *claims,
						__u32 tid, struct pyro_stack_head *head)
{
	__u32 cpu = bpf_get_smp_processor_id(), zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch_map, &zero);

	head->depth = 0;
	head->flags = 0;
	if (!s || bpf_map_update_elem(claims, &cpu, &tid, BPF_NOEXIST))
		return -1;
	pystack_capture(L, s);
	bpf_probe_read_kernel(head, sizeof(*head), &s->stack); /* 1 KiB: no inline copy */
	if (head->depth > PYRO_SEG_FRAMES) {
		head->depth = PYRO_SEG_FRAMES;
		head->flags |= PYRO_STACK_TRUNCATED;
	}
	bpf_map_delete_elem(claims, &cpu);
	return 0;
}

#endif /* PYSTACK_BPF_H */
