/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Plain types shared by the BPF programs and the agent: fixed-width fields, no pointers,
 * no includes. The includer provides __u32/__u64 (vmlinux.h in BPF, <linux/types.h> in the
 * agent). Every struct's size is pinned so both sides agree on the layout. */
#ifndef PYROMETER_H
#define PYROMETER_H

#define PYRO_COMM_LEN 16
/* Upper bound on Python processes tracked at once (sizes the pid filter map). */
#define PYRO_MAX_PROCS 16384
/* Process events (discovery's ring buffer, which the sampler's notes share). */
#define PYRO_PROC_EVENTS_SIZE (1 << 20)
/* An untracked process is noted for discovery at most this often (bpf/cpu.bpf.c). */
#define PYRO_NOTE_INTERVAL_NS 1000000000ull

/* Process lifecycle events from the sched tracepoints, sent through a ring buffer. */
enum pyro_proc_event_kind {
	PYRO_PROC_EXEC = 1, /* any process called execve(); user space decides if it is Python */
	PYRO_PROC_FORK = 2, /* a tracked (Python) process forked a new process */
	PYRO_PROC_EXIT = 3, /* the last thread of a tracked process exited */
	PYRO_PROC_NOTE = 4, /* the sampler saw an untracked process on a CPU with mappings
			       * it did not have before: it may have dlopen'd libpython */
};

struct pyro_proc_event {
	__u32 kind;	 /* enum pyro_proc_event_kind */
	__u32 pid;	 /* thread group id, in the initial pid namespace */
	__u32 ppid;	 /* parent's tgid for FORK and EXEC, 0 otherwise */
	__s32 exit_code; /* task->exit_code for EXIT (wait(2) encoding), 0 otherwise */
	__u64 ktime_ns;	 /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) when it happened */
	char comm[PYRO_COMM_LEN];
	/* EXEC: mm->start_stack of the new image (as /proc/PID/stat shows it), 0 otherwise */
	__u64 start_stack;
};
_Static_assert(sizeof(struct pyro_proc_event) == 48, "proc_event layout");

/* ---- CPython layouts: where the frame walker finds things, per process ----
 * Filled by user space (agent/python/py_layout.c) from per-version tables (3.9, 3.11) or from the
 * interpreter's own _Py_DebugOffsets (3.13+). Offsets are bytes into the named struct. */

#define PYRO_MAX_FRAMES 1024	/* frames a walk keeps; deeper stacks keep the leaf end */
#define PYRO_SEG_FRAMES 128	/* frames per stored piece of a stack (struct pyro_stack_head) */
#define PYRO_FRAME_READ 128	/* most bytes of one frame the walker reads: frame_span's bound */
#define PYRO_CHUNK_SIZE 8	/* _PyStackChunk.size (after .previous), 3.11 to 3.15 (DWARF) */
#define PYRO_WINDOW 16384	/* most bytes of a data stack read at once (about 120 frames) */
#define PYRO_MAX_THREAD_WALK 64 /* thread states looked at to find the sampled thread's */
#define PYRO_TSTATE_READ 256	/* bytes of a PyThreadState read at once: its fields' bound */

enum pyro_frames_kind {
	PYRO_FRAMES_NONE = 0,	/* no layout: the process is not sampled */
	PYRO_FRAMES_OBJECT = 1, /* 3.9-3.10: tstate->frame, PyFrameObject chain, int f_lasti */
	PYRO_FRAMES_CFRAME = 2, /* 3.11-3.12: tstate->cframe->current_frame, prev_instr */
	PYRO_FRAMES_DIRECT = 3, /* 3.13+: tstate->current_frame, instr_ptr */
};

struct pyro_py_layout {
	__u64 runtime_addr; /* _PyRuntime in the process (link-time address + load bias) */
	__u8 frames_kind;   /* enum pyro_frames_kind */
	__u8 owner_skip;    /* frames whose owner byte is >= this are shims; 0: no owner check */
	__u16 runtime_interp_head;  /* _PyRuntimeState.interpreters.head */
	__u16 interp_next;	    /* PyInterpreterState.next */
	__u16 interp_threads_head;  /* PyInterpreterState.tstate_head / threads.head */
	__u16 tstate_next;	    /* PyThreadState.next */
	__u16 tstate_thread_id;	    /* PyThreadState.thread_id: pthread_self() of the thread */
	__u16 tstate_frame;	    /* .frame (3.9), .cframe (3.11), .current_frame (3.13+) */
	__u16 cframe_current_frame; /* _PyCFrame.current_frame (3.11) */
	__u16 frame_previous;	    /* f_back / previous */
	__u16 frame_code;	    /* f_code / f_executable (a tagged _PyStackRef from 3.14) */
	__u16 frame_instr;	    /* f_lasti (int) / prev_instr / instr_ptr (pointers) */
	__u16 frame_owner;	    /* owner (char), when owner_skip != 0 */
	__u16 code_adaptive;	    /* co_code_adaptive: bytecode start inside the code object */
	__u16 frame_span;	    /* bytes from a frame's start holding every field above */
	__u8 frames_contiguous;	    /* frames sit side by side on the thread's data stack (3.11+) */
	__u8 lasti_in_units;	    /* f_lasti counts 2-byte code units (3.10), not bytes (3.9) */
	__u16 tstate_datastack;	    /* PyThreadState.datastack_chunk (3.11+): frames' memory */
	__u16 interp_gc_collecting; /* PyInterpreterState.gc.collecting (an int); 0: unknown */
	/* The GIL (struct _gil_runtime_state, PYRO_GIL_SIZE bytes): at this offset from
	 * _PyRuntime (3.9-3.11: .ceval.gil) or from the interpreter state (3.12+: ._gil),
	 * as gil_in_interp says; 0: unknown */
	__u16 gil_offset;
	__u8 gil_in_interp;
	__u8 pad3;
	/* _PyInterpreterFrame.tlbc_index (int32) of free-threaded 3.14+ builds: a frame whose
	 * index is not 0 runs a thread's own copy of the bytecode, so instr_ptr says nothing
	 * about co_code_adaptive; 0: not free-threaded */
	__u16 frame_tlbc_index;
};
_Static_assert(sizeof(struct pyro_py_layout) == 48, "pyro_py_layout layout");

enum pyro_proc_flags {
	PYRO_PROC_SAMPLE = 1,  /* the CPU sampler profiles this process */
	PYRO_PROC_GC = 2,      /* the GC tracer reports this process */
	PYRO_PROC_IMPORTS = 4, /* the import tracer reports this process */
};

/* Value of the pid map: a tracked Python process and how to read it. */
struct pyro_proc_info {
	__u32 flags; /* enum pyro_proc_flags */
	__u32 pad;
	struct pyro_py_layout layout;
};
_Static_assert(sizeof(struct pyro_proc_info) == 56, "pyro_proc_info layout");

/* struct _gil_runtime_state, 3.9 to 3.15 (DWARF of each -dbg build): two pthread
 * condition variables and two mutexes, the futexes a thread waiting for the GIL sleeps on. */
#define PYRO_GIL_SIZE 208

/* ---- CPU samples ---- */

/* A frame: code object address in the low 48 bits, instruction index (16-bit code units
 * from the start of the bytecode, clamped) in the high 16. */
#define PYRO_FRAME_CODE_MASK 0xFFFFFFFFFFFFull
#define PYRO_FRAME_INSTR_SHIFT 48
#define PYRO_INSTR_UNKNOWN 0xFFFF

enum pyro_stack_flags {
	PYRO_STACK_TRUNCATED = 1,  /* deeper than PYRO_MAX_FRAMES: root-side frames dropped */
	PYRO_STACK_NO_TSTATE = 2,  /* the thread has no PyThreadState (a native thread) */
	PYRO_STACK_READ_ERROR = 4, /* memory could not be read: the stack is partial */
	PYRO_STACK_GC = 8,	   /* the interpreter was collecting garbage: a [gc] leaf */
};

/* A walked stack, as the walker builds it. */
struct pyro_stack {
	__u32 depth; /* frames used, leaf first */
	__u32 flags; /* enum pyro_stack_flags */
	__u64 frames[PYRO_MAX_FRAMES];
};
_Static_assert(sizeof(struct pyro_stack) == 8 + 8 * PYRO_MAX_FRAMES, "pyro_stack layout");

/* How a stack is stored: most are shallow, so the stacks map holds the first
 * PYRO_SEG_FRAMES frames with the whole stack's depth and flags (the start of a struct
 * pyro_stack), and the stack_tails map the rest, PYRO_SEG_FRAMES frames a piece. */
struct pyro_stack_head {
	__u32 depth; /* of the whole stack */
	__u32 flags;
	__u64 frames[PYRO_SEG_FRAMES];
};
_Static_assert(sizeof(struct pyro_stack_head) == 8 + 8 * PYRO_SEG_FRAMES, "pyro_stack_head layout");

/* Piece `index` (1, 2, ...) of a stack: its frames from index * PYRO_SEG_FRAMES on. */
struct pyro_stack_tail_key {
	__u64 stack_id;
	__u32 index;
	__u32 pad;
};
_Static_assert(sizeof(struct pyro_stack_tail_key) == 16, "pyro_stack_tail_key layout");

struct pyro_stack_tail {
	__u64 frames[PYRO_SEG_FRAMES];
};

struct pyro_sample_key {
	__u32 pid; /* tgid */
	__u32 tid;
	__u64 stack_id; /* hash of the stack: key of the stacks map */
	__u32 epoch;	/* user space flips it to drain the previous one race-free */
	__u32 pad;
};
_Static_assert(sizeof(struct pyro_sample_key) == 24, "pyro_sample_key layout");

struct pyro_sample_value {
	__u64 count;
	char comm[PYRO_COMM_LEN]; /* thread name when first seen */
};
_Static_assert(sizeof(struct pyro_sample_value) == 24, "pyro_sample_value layout");

/* Sent when a stack is first stored, so user space symbolizes it while the process lives. */
struct pyro_new_stack {
	__u32 pid;
	__u32 pad;
	__u64 stack_id;
};
_Static_assert(sizeof(struct pyro_new_stack) == 16, "pyro_new_stack layout");

/* ---- off-CPU time (record --mode wall) ---- */

enum pyro_wait_reason {
	PYRO_WAIT_GIL = 1,   /* asleep in futex() on the process's GIL */
	PYRO_WAIT_OTHER = 2, /* anything else: sleep, I/O, locks, preempted */
};

/* (pid, tid, stack the thread left the CPU with, reason, epoch) -> time off the CPU. */
struct pyro_wait_key {
	__u32 pid, tid;
	__u64 stack_id;
	__u32 epoch;
	__u32 reason; /* enum pyro_wait_reason */
};
_Static_assert(sizeof(struct pyro_wait_key) == 24, "pyro_wait_key layout");

struct pyro_wait_value {
	__u64 ns;    /* off the CPU, summed over the stretches that ended */
	__u64 count; /* stretches */
	char comm[PYRO_COMM_LEN];
};
_Static_assert(sizeof(struct pyro_wait_value) == 32, "pyro_wait_value layout");

enum pyro_cpu_counter {
	PYRO_CPU_SAMPLES,	    /* samples of sampled Python processes */
	PYRO_CPU_OTHER,		    /* samples of other tasks, ignored */
	PYRO_CPU_NO_LAYOUT,	    /* a tracked process without a usable layout */
	PYRO_CPU_READ_RUNTIME,	    /* _PyRuntime / interpreter state unreadable */
	PYRO_CPU_NO_TSTATE,	    /* no PyThreadState matches the sampled thread */
	PYRO_CPU_READ_TSTATE,	    /* a PyThreadState unreadable */
	PYRO_CPU_READ_FRAME,	    /* a frame unreadable mid-walk */
	PYRO_CPU_TRUNCATED,	    /* stacks deeper than PYRO_MAX_FRAMES */
	PYRO_CPU_STACKS_FULL,	    /* the stacks map was full: sample lost */
	PYRO_CPU_COUNTS_FULL,	    /* the counts map was full: sample lost */
	PYRO_CPU_NEW_STACK_DROPPED, /* a new-stack notice did not fit the ring buffer */
	PYRO_CPU_WINDOW_READS,	    /* data-stack windows read (up to PYRO_WINDOW bytes) */
	PYRO_CPU_PAGE_READS,	    /* heap frames (3.9) read from their page start */
	PYRO_CPU_FRAME_READS,	    /* frames read alone (outside the current data-stack chunk) */
	PYRO_CPU_GC,		    /* samples taken while the interpreter was collecting */
	PYRO_CPU_READ_GC,	    /* the interpreter's GC state unreadable: no [gc] check */
	PYRO_CPU_READ_CHUNK,	    /* a data-stack chunk's header unreadable: frames read alone */
	PYRO_CPU_CHUNKS_ENTERED,  /* walks into the data-stack chunk before the one they were in */
	PYRO_CPU_SWITCHES,	  /* switch-outs of sampled Python threads (walked) */
	PYRO_CPU_WAITS_FULL,	  /* the waits map was full: an off-CPU stretch lost */
	PYRO_CPU_WAIT_NO_STORAGE, /* no task storage for a thread's stretch: lost */
	PYRO_CPU_WAIT_NO_STACK,	  /* the stack of a switch-out could not be stored: lost */
	PYRO_CPU_NOTES,		  /* untracked processes noted for discovery (note_untracked) */
	PYRO_CPU_NOTES_LOST,	  /* a note did not fit the ring buffer: sent again later */
	PYRO_CPU_COUNTER_MAX,
};

/* Failure counters of the discovery programs (a per-CPU array indexed by these). */
enum pyro_discover_counter {
	PYRO_DISC_RINGBUF_FULL_EXEC, /* an exec event could not be reserved: user space may miss it */
	PYRO_DISC_RINGBUF_FULL_FORK,
	PYRO_DISC_RINGBUF_FULL_EXIT,
	PYRO_DISC_PIDMAP_FULL, /* a forked Python child could not be added to the pid map */
	PYRO_DISC_COUNTER_MAX,
};

/* ---- GC pauses (bpf/gc.bpf.c) ---- */

/* Pause histogram: 8 buckets per power of two (relative error <= 12.5 %). Durations below
 * 8 ns land in buckets 0-7 as they are; above, bucket = 8 * msb + next three bits. */
#define PYRO_GC_SUB_BITS 3
#define PYRO_GC_BUCKETS (8 * 64)

/* image: mm->start_stack of the process image that collected (as /proc/PID/stat and exec
 * events give it; 0 if unread). A pid that execs one Python from another (a launcher, a
 * supervisor's fork child) collects under two images: their figures stay apart, so that
 * each is counted for its own service however late discovery names the new one. */
struct pyro_gc_key {
	__u32 pid;
	__s32 generation; /* gc__start's argument (3.14.0-3.14.4: young/increment/full) */
	__u64 image;
};
_Static_assert(sizeof(struct pyro_gc_key) == 16, "pyro_gc_key layout");

struct pyro_gc_stats {
	__u64 count;
	__u64 total_ns;
	__u64 max_ns;
	__s64 collected; /* gc__done's argument: collected + uncollectable */
};
_Static_assert(sizeof(struct pyro_gc_stats) == 32, "pyro_gc_stats layout");

struct pyro_gc_hist_key {
	struct pyro_gc_key k; /* first: code folding either map reads it at offset 0 */
	__u32 bucket;
	__u32 pad;
};
_Static_assert(sizeof(struct pyro_gc_hist_key) == 24, "pyro_gc_hist_key layout");

/* A pause at or above the threshold, with the Python stack that triggered it. */
struct pyro_gc_event {
	__u32 pid, tid;
	__s32 generation;
	__u32 pad;
	__u64 start_ns; /* bpf_ktime_get_ns() at gc__start */
	__u64 duration_ns;
	__s64 collected;
	struct pyro_stack_head stack; /* the leaf-most frames; deeper ones cut (truncated) */
};
_Static_assert(sizeof(struct pyro_gc_event) == 40 + sizeof(struct pyro_stack_head),
	       "pyro_gc_event layout");

enum pyro_gc_counter {
	PYRO_GC_STARTS,
	PYRO_GC_DONES,
	PYRO_GC_NO_START,      /* gc__done without a gc__start seen (attached mid-collection) */
	PYRO_GC_INFLIGHT_FULL, /* no room to remember a start: that pause is not measured */
	PYRO_GC_STATS_FULL,    /* no room for a (pid, generation): pause not counted */
	PYRO_GC_HIST_FULL,     /* no room for a histogram bucket */
	PYRO_GC_EVENTS_LOST,   /* a slow pause did not fit the ring buffer */
	PYRO_GC_ARG_FAULT,     /* an argument unread: at gc__start the pause is lost, at gc__done
				* its collected count is taken as 0 */
	PYRO_GC_STACK_BUSY,    /* a slow pause sent without its stack: the CPU's scratch was
				* mid-walk for a preempted program */
	PYRO_GC_COUNTER_MAX,
};

/* ---- imports (bpf/imports.bpf.c) ---- */

#define PYRO_IMPORT_DEPTH 32 /* imports in progress a thread keeps (nested in one another) */
#define PYRO_IMPORT_NAME 128 /* bytes of a module name kept, NUL included */

/* One finished import (import__find__load__done), in the order the thread finished them:
 * nested imports before the one they are nested in, which is how user space builds the
 * tree. An outermost import (depth 0) is sent as struct pyro_import_root, with the Python
 * stack of the frame that imported it. */
struct pyro_import_event {
	__u32 pid, tid;
	__u64 start_ns;	   /* bpf_ktime_get_ns() at import__find__load__start */
	__u64 duration_ns; /* wall time, nested imports included */
	__u16 depth;	   /* imports of this thread in progress around it */
	__u8 found;	   /* import__find__load__done's flag: 0 when the import raised */
	__u8 flags;	   /* enum pyro_import_flags */
	__u32 pad;
	char name[PYRO_IMPORT_NAME]; /* the absolute module name, cut at PYRO_IMPORT_NAME - 1 */
};
_Static_assert(sizeof(struct pyro_import_event) == 32 + PYRO_IMPORT_NAME,
	       "pyro_import_event layout");

enum pyro_import_flags {
	PYRO_IMPORT_ROOT = 1,	  /* sent as struct pyro_import_root */
	PYRO_IMPORT_NAME_CUT = 2, /* the name was longer than PYRO_IMPORT_NAME - 1 bytes */
	PYRO_IMPORT_NO_NAME = 4,  /* the name could not be read */
};

struct pyro_import_root {
	struct pyro_import_event e;
	struct pyro_stack_head stack; /* the importing frame first; empty without a layout */
};

enum pyro_import_counter {
	PYRO_IMP_STARTS,
	PYRO_IMP_DONES,
	PYRO_IMP_NO_START,    /* a done without its start (attached mid-import): not measured */
	PYRO_IMP_NO_STORAGE,  /* no task storage for the thread: its imports not measured */
	PYRO_IMP_TOO_DEEP,    /* nested deeper than PYRO_IMPORT_DEPTH: not measured */
	PYRO_IMP_ARG_FAULT,   /* an argument unread (the name: sent nameless; found: taken as 1) */
	PYRO_IMP_EVENTS_LOST, /* an import did not fit the ring buffer */
	PYRO_IMP_STACK_BUSY,  /* an outermost import sent without its stack (scratch busy) */
	PYRO_IMP_COUNTER_MAX,
};

/* ---- USDT arguments at plain uprobes (bpf/usdt_arg.bpf.h, agent/usdt/uprobes.c) ----
 * One argument's spec travels in the BPF cookie of its site: bits 0-1 the kind, 2-5 the
 * register, 8-11 the size in bytes (1, 2, 4, 8), bit 12 signed, bits 32-63 the constant or
 * the displacement (signed). Registers are numbered rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp,
 * r8 ... r15, whatever width the spec names. */
enum pyro_arg_kind {
	PYRO_ARG_CONST = 1, /* $imm */
	PYRO_ARG_REG = 2,   /* %reg */
	PYRO_ARG_DEREF = 3, /* off(%reg) */
};
#define PYRO_ARG_REG_SHIFT 2
#define PYRO_ARG_SIZE_SHIFT 8
#define PYRO_ARG_SIGNED (1ULL << 12)
#define PYRO_ARG_VAL_SHIFT 32

/* ---- function calls (bpf/calls.bpf.c) ---- */

/* A function as the probes name it: the addresses of its code object's UTF-8 function and
 * file names (stable while the code object lives), read as strings by user space. */
struct pyro_fn {
	__u64 name, file;
};

#define PYRO_CALL_DEPTH 64   /* shadow stack frames per thread */
#define PYRO_CALL_BUCKETS 64 /* latency histogram: bucket = bit length of the ns */

struct pyro_fn_key {
	__u32 pid;
	__u32 pad;
	struct pyro_fn fn;
};
_Static_assert(sizeof(struct pyro_fn_key) == 24, "pyro_fn_key layout");

struct pyro_fn_stats {
	__u64 calls;   /* entries (3.9, 3.15) or returns (3.11, counts only) */
	__u64 incl_ns; /* wall time, outermost activations only (recursion is not counted twice) */
	__u64 excl_ns; /* wall time minus callees' */
	__u64 returns; /* returns matched to an entry */
	/* latency of matched activations: bucket b counts [2^(b-1), 2^b) ns; one map value
	 * with the counts above, so that a return costs one lookup */
	__u64 hist[PYRO_CALL_BUCKETS];
};
_Static_assert(sizeof(struct pyro_fn_stats) == 32 + 8 * PYRO_CALL_BUCKETS, "pyro_fn_stats layout");

/* A function's names as the kernel read them when it was first seen, while the process was
 * alive: the process may be gone by the time user space prints them. NUL-terminated; a
 * name that fills its array may be cut short. */
#define PYRO_FN_NAME_LEN 128
#define PYRO_FN_FILE_LEN 256
struct pyro_fn_names {
	char name[PYRO_FN_NAME_LEN];
	char file[PYRO_FN_FILE_LEN];
};

/* A call path is a node of a trie: its function and its parent path's id (0 at the root).
 * Ids are hashes of the whole path. */
struct pyro_path_key {
	__u32 pid;
	__u32 pad;
	__u64 id;
};
_Static_assert(sizeof(struct pyro_path_key) == 16, "pyro_path_key layout");

struct pyro_path {
	__u64 parent;
	struct pyro_fn fn;
	__u64 calls;   /* activations of this path that returned */
	__u64 excl_ns; /* time spent in this path's function itself */
};
_Static_assert(sizeof(struct pyro_path) == 40, "pyro_path layout");

enum pyro_calls_counter {
	PYRO_CALLS_ENTRIES,
	PYRO_CALLS_RETURNS,
	PYRO_CALLS_TOO_DEEP,   /* entries past PYRO_CALL_DEPTH: counted, not timed */
	PYRO_CALLS_UNMATCHED,  /* returns with no entry seen (attached mid-call) */
	PYRO_CALLS_MISMATCHED, /* returns that matched a deeper frame: frames above dropped */
	PYRO_CALLS_NO_STORAGE, /* no shadow stack could be had for the thread */
	PYRO_CALLS_STATS_FULL, /* fn_stats or paths full: counts lost */
	PYRO_CALLS_COUNTER_MAX,
};

#endif /* PYROMETER_H */
