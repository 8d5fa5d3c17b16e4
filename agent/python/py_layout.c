// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "python/py_layout.h"

#include <stddef.h>
#include <string.h>

#include "python/elf_file.h"

#define MINOR(hex) (((hex) >> 16) & 0xFF)

/* ---- 3.9 to 3.12: per-version tables ----
 * Every value was read with gdb `ptype /o` / offsetof from the DWARF of Debian's -dbg
 * packages: python3.9-dbg 3.9.2-1 (bullseye) and python3.11-dbg 3.11.2-6+deb12u9
 * (bookworm). tests/integration/test_layout.py reads them again from the same files. */

static const struct py_layout layout_39 = {
	.ok = true,
	.bpf = {
		.frames_kind = PYRO_FRAMES_OBJECT,
		.runtime_interp_head = 32,  /* _PyRuntimeState.interpreters.head */
		.interp_next = 0,           /* PyInterpreterState.next */
		.interp_threads_head = 8,   /* PyInterpreterState.tstate_head */
		.tstate_next = 8,           /* PyThreadState.next */
		.tstate_thread_id = 176,    /* PyThreadState.thread_id */
		.tstate_frame = 24,         /* PyThreadState.frame */
		.frame_previous = 24,       /* PyFrameObject.f_back */
		.frame_code = 32,           /* PyFrameObject.f_code */
		.frame_instr = 104,         /* PyFrameObject.f_lasti (int, bytes) */
		.interp_gc_collecting = 816, /* PyInterpreterState.gc.collecting */
		.gil_offset = 352,           /* _PyRuntimeState.ceval.gil */
	},
	.sym = {
		.ob_type = 8,
		.code_filename = 104, .code_name = 112, .code_qualname = 0,
		.code_firstlineno = 40, .code_linetable = 120, /* co_lnotab */
		.bytes_size = 16, .bytes_sval = 32,
		.unicode_state = 32, .unicode_length = 16,
		.unicode_ascii_size = 48, .unicode_compact_size = 72,
		.lines = PY_LINES_LNOTAB,
	},
};

/* 3.10: read with gdb from the DWARF of CPython 3.10.15 built from upstream source by
 * tests/zoo/build.sh (no Debian release carries 3.10). As 3.9, but f_lasti counts code
 * units and co_linetable holds address ranges (PEP 626). */
static const struct py_layout layout_310 = {
	.ok = true,
	.bpf = {
		.frames_kind = PYRO_FRAMES_OBJECT,
		.lasti_in_units = 1,
		.runtime_interp_head = 32,  /* _PyRuntimeState.interpreters.head */
		.interp_next = 0,           /* PyInterpreterState.next */
		.interp_threads_head = 8,   /* PyInterpreterState.tstate_head */
		.tstate_next = 8,           /* PyThreadState.next */
		.tstate_thread_id = 176,    /* PyThreadState.thread_id */
		.tstate_frame = 24,         /* PyThreadState.frame */
		.frame_previous = 24,       /* PyFrameObject.f_back */
		.frame_code = 32,           /* PyFrameObject.f_code */
		.frame_instr = 96,          /* PyFrameObject.f_lasti (int, code units) */
		.interp_gc_collecting = 816, /* PyInterpreterState.gc.collecting */
		.gil_offset = 352,           /* _PyRuntimeState.ceval.gil */
	},
	.sym = {
		.ob_type = 8,
		.code_filename = 104, .code_name = 112, .code_qualname = 0,
		.code_firstlineno = 40, .code_linetable = 120, /* co_linetable */
		.bytes_size = 16, .bytes_sval = 32,
		.unicode_state = 32, .unicode_length = 16,
		.unicode_ascii_size = 48, .unicode_compact_size = 72,
		.lines = PY_LINES_310,
	},
};

static const struct py_layout layout_311 = {
	.ok = true,
	.bpf = {
		.frames_kind = PYRO_FRAMES_CFRAME,
		.runtime_interp_head = 40,  /* _PyRuntimeState.interpreters.head */
		.interp_next = 0,           /* PyInterpreterState.next */
		.interp_threads_head = 16,  /* PyInterpreterState.threads.head */
		.tstate_next = 8,           /* PyThreadState.next */
		.tstate_thread_id = 152,    /* PyThreadState.thread_id */
		.tstate_frame = 56,         /* PyThreadState.cframe */
		.cframe_current_frame = 8,  /* _PyCFrame.current_frame */
		.frame_previous = 48,       /* _PyInterpreterFrame.previous */
		.frame_code = 32,           /* _PyInterpreterFrame.f_code */
		.frame_instr = 56,          /* _PyInterpreterFrame.prev_instr */
		.code_adaptive = 184,       /* PyCodeObject.co_code_adaptive */
		.tstate_datastack = 296,    /* PyThreadState.datastack_chunk */
		.interp_gc_collecting = 848, /* PyInterpreterState.gc.collecting */
		.gil_offset = 360,           /* _PyRuntimeState.ceval.gil */
	},
	.sym = {
		.ob_type = 8,
		.code_filename = 112, .code_name = 120, .code_qualname = 128,
		.code_firstlineno = 72, .code_linetable = 136,
		.bytes_size = 16, .bytes_sval = 32,
		.unicode_state = 32, .unicode_length = 16,
		.unicode_ascii_size = 48, .unicode_compact_size = 72,
		.lines = PY_LINES_LOCATIONS,
	},
};

/* 3.12: read with gdb from the DWARF of CPython 3.12.6 built from upstream source by
 * tests/zoo/build.sh. As 3.11, but a frame says who owns it (shim frames of the C stack,
 * FRAME_OWNED_BY_CSTACK = 3, are no Python function), str headers lost wstr, and the GIL
 * lives in the interpreter state. */
static const struct py_layout layout_312 = {
	.ok = true,
	.bpf = {
		.frames_kind = PYRO_FRAMES_CFRAME,
		.owner_skip = 3,
		.runtime_interp_head = 40,  /* _PyRuntimeState.interpreters.head */
		.interp_next = 0,           /* PyInterpreterState.next */
		.interp_threads_head = 72,  /* PyInterpreterState.threads.head */
		.tstate_next = 8,           /* PyThreadState.next */
		.tstate_thread_id = 136,    /* PyThreadState.thread_id */
		.tstate_frame = 56,         /* PyThreadState.cframe */
		.cframe_current_frame = 0,  /* _PyCFrame.current_frame */
		.frame_previous = 8,        /* _PyInterpreterFrame.previous */
		.frame_code = 0,            /* _PyInterpreterFrame.f_code */
		.frame_instr = 56,          /* _PyInterpreterFrame.prev_instr */
		.frame_owner = 70,          /* _PyInterpreterFrame.owner */
		.code_adaptive = 192,       /* PyCodeObject.co_code_adaptive */
		.tstate_datastack = 232,    /* PyThreadState.datastack_chunk */
		.interp_gc_collecting = 312, /* PyInterpreterState.gc.collecting */
		.gil_offset = 1040,          /* PyInterpreterState._gil */
		.gil_in_interp = 1,
	},
	.sym = {
		.ob_type = 8,
		.code_filename = 112, .code_name = 120, .code_qualname = 128,
		.code_firstlineno = 68, .code_linetable = 136,
		.bytes_size = 16, .bytes_sval = 32,
		.unicode_state = 32, .unicode_length = 16,
		.unicode_ascii_size = 40, .unicode_compact_size = 56,
		.lines = PY_LINES_LOCATIONS,
	},
};

/* ---- 3.13 and later: the interpreter's own _Py_DebugOffsets ----
 * The values come from the process's binary; only where each field sits inside
 * _Py_DebugOffsets differs between minor versions (fields are inserted mid-struct).
 * Positions read with gdb `ptype /o struct _Py_DebugOffsets` from Debian sid's
 * python3.13-dbg 3.13.18-1, python3.14-dbg 3.14.10-1 and python3.15-dbg 3.15.2-1. */

struct debug_offsets_map {
	uint16_t runtime_size, interpreters_head;
	uint16_t interp_size, interp_next, threads_head;
	uint16_t tstate_size, tstate_next, current_frame, thread_id, datastack;
	uint16_t frame_size, previous, executable, instr_ptr, owner;
	uint16_t tlbc_index; /* interpreter_frame.tlbc_index (3.14+; 0: none) */
	uint16_t code_size, filename, name, qualname, linetable, firstlineno, code_adaptive;
	uint16_t ob_type;
	uint16_t bytes_size_section, bytes_ob_size, bytes_sval;
	uint16_t unicode_section, unicode_state, unicode_length, unicode_ascii_size;
	uint16_t interp_gc, gc_section, gc_collecting;
	uint16_t interp_gil; /* interpreter_state.gil_runtime_state: PyInterpreterState._gil */
};

/* clang-format off */
static const struct debug_offsets_map dbg_313 = {
	.runtime_size = 24,
	.interpreters_head = 40,
	.interp_size = 48,
	.interp_next = 64,
	.threads_head = 72,
	.tstate_size = 152,
	.tstate_next = 168,
	.current_frame = 184,
	.thread_id = 192,
	.datastack = 208,
	.frame_size = 224,
	.previous = 232,
	.executable = 240,
	.instr_ptr = 248,
	.owner = 264,
	.code_size = 272,
	.filename = 280,
	.name = 288,
	.qualname = 296,
	.linetable = 304,
	.firstlineno = 312,
	.code_adaptive = 344,
	.ob_type = 360,
	.bytes_size_section = 512,
	.bytes_ob_size = 520,
	.bytes_sval = 528,
	.unicode_section = 536,
	.unicode_state = 544,
	.unicode_length = 552,
	.unicode_ascii_size = 560,
	.interp_gc = 80,
	.gc_section = 568,
	.gc_collecting = 576,
	.interp_gil = 120,
};
static const struct debug_offsets_map dbg_314 = {
	.runtime_size = 24,
	.interpreters_head = 40,
	.interp_size = 48,
	.interp_next = 64,
	.threads_head = 72,
	.tstate_size = 176,
	.tstate_next = 192,
	.current_frame = 208,
	.thread_id = 216,
	.datastack = 232,
	.frame_size = 248,
	.previous = 256,
	.executable = 264,
	.instr_ptr = 272,
	.owner = 288,
	.tlbc_index = 304,
	.code_size = 312,
	.filename = 320,
	.name = 328,
	.qualname = 336,
	.linetable = 344,
	.firstlineno = 352,
	.code_adaptive = 384,
	.ob_type = 408,
	.bytes_size_section = 592,
	.bytes_ob_size = 600,
	.bytes_sval = 608,
	.unicode_section = 616,
	.unicode_state = 624,
	.unicode_length = 632,
	.unicode_ascii_size = 640,
	.interp_gc = 88,
	.gc_section = 648,
	.gc_collecting = 656,
	.interp_gil = 128,
};
static const struct debug_offsets_map dbg_315 = {
	.runtime_size = 24,
	.interpreters_head = 40,
	.interp_size = 48,
	.interp_next = 64,
	.threads_head = 72,
	.tstate_size = 176,
	.tstate_next = 192,
	.current_frame = 208,
	.thread_id = 240,
	.datastack = 256,
	.frame_size = 312,
	.previous = 320,
	.executable = 328,
	.instr_ptr = 336,
	.owner = 352,
	.tlbc_index = 368,
	.code_size = 376,
	.filename = 384,
	.name = 392,
	.qualname = 400,
	.linetable = 408,
	.firstlineno = 416,
	.code_adaptive = 448,
	.ob_type = 472,
	.bytes_size_section = 688,
	.bytes_ob_size = 696,
	.bytes_sval = 704,
	.unicode_section = 712,
	.unicode_state = 720,
	.unicode_length = 728,
	.unicode_ascii_size = 736,
	.interp_gc = 88,
	.gc_section = 752,
	.gc_collecting = 760,
	.interp_gil = 128,
};
/* clang-format on */

#define DEBUG_OFFSETS_READ 768

static uint64_t at(const unsigned char *d, uint16_t pos)
{
	uint64_t v;

	memcpy(&v, d + pos, sizeof(v));
	return v;
}

/* An offset is usable if it fits in 16 bits and lies inside its struct (whose size the
 * section's first field gives). */
static bool fits(uint64_t off, uint64_t struct_size, uint64_t width)
{
	return off <= 0xFFFF && off + width <= struct_size;
}

static const struct debug_offsets_map *map_for(uint32_t hex)
{
	switch (MINOR(hex)) {
	case 13:
		return &dbg_313;
	case 14:
		return &dbg_314;
	case 15:
		return &dbg_315;
	default:
		return NULL;
	}
}

static void from_debug_offsets(struct elf_file *ef, uint32_t hex, uint64_t runtime_addr,
			       struct py_layout *L)
{
	const struct debug_offsets_map *m = map_for(hex);
	unsigned char d[DEBUG_OFFSETS_READ];
	uint64_t runtime_size, tsz, fsz, csz, bsz, usz, gc_collecting, tlbc;

	if (!m) {
		L->why_not = "_Py_DebugOffsets layout of this CPython version is not known";
		return;
	}
	if (elf_file_read(ef, runtime_addr, d, sizeof(d)) ||
	    elf_file_symbol(ef, "_PyRuntime", &runtime_addr, &runtime_size) ||
	    memcmp(d, "xdebugpy", 8) != 0 || at(d, m->runtime_size) != runtime_size) {
		L->why_not = "_Py_DebugOffsets does not match the layout of its version";
		return;
	}
	/* free_threaded follows version in all three layouts. Their objects' headers are
	 * larger (the offsets say so), and from 3.14 a thread may run its own copy of a code
	 * object's bytecode (frame.tlbc_index). */
	L->free_threaded = at(d, 16) != 0;
	tlbc = L->free_threaded && m->tlbc_index ? at(d, m->tlbc_index) : 0;
	tsz = at(d, m->tstate_size);
	fsz = at(d, m->frame_size);
	csz = at(d, m->code_size);
	bsz = at(d, m->bytes_size_section);
	usz = at(d, m->unicode_section);
	gc_collecting = at(d, m->interp_gc) + at(d, m->gc_collecting);
	if (!fits(at(d, m->interpreters_head), runtime_size, 8) ||
	    !fits(at(d, m->threads_head), at(d, m->interp_size), 8) ||
	    !fits(at(d, m->interp_next), at(d, m->interp_size), 8) ||
	    !fits(at(d, m->tstate_next), tsz, 8) || !fits(at(d, m->current_frame), tsz, 8) ||
	    !fits(at(d, m->thread_id), tsz, 8) || !fits(at(d, m->datastack), tsz, 8) ||
	    !fits(at(d, m->previous), fsz, 8) || !fits(at(d, m->executable), fsz, 8) ||
	    !fits(at(d, m->instr_ptr), fsz, 8) || !fits(at(d, m->owner), fsz, 1) ||
	    fsz > PYRO_FRAME_READ || !fits(at(d, m->filename), csz, 8) ||
	    !fits(at(d, m->name), csz, 8) || !fits(at(d, m->qualname), csz, 8) ||
	    !fits(at(d, m->linetable), csz, 8) || !fits(at(d, m->firstlineno), csz, 4) ||
	    !fits(at(d, m->code_adaptive), csz, 0) || !fits(at(d, m->bytes_ob_size), bsz, 8) ||
	    !fits(at(d, m->bytes_sval), bsz, 0) || !fits(at(d, m->unicode_state), usz, 4) ||
	    !fits(at(d, m->unicode_length), usz, 8) || at(d, m->unicode_ascii_size) > usz ||
	    !fits(at(d, m->gc_collecting), at(d, m->gc_section), 4) ||
	    !fits(gc_collecting, at(d, m->interp_size), 4) ||
	    !fits(at(d, m->interp_gil), at(d, m->interp_size), PYRO_GIL_SIZE) ||
	    (tlbc && !fits(tlbc, fsz, 4))) {
		L->why_not = "_Py_DebugOffsets holds implausible offsets";
		return;
	}
	L->bpf = (struct pyro_py_layout){
		.frames_kind = PYRO_FRAMES_DIRECT,
		/* enum _frameowner: 3.13 FRAME_OWNED_BY_CSTACK = 3; 3.14 FRAME_OWNED_BY_INTERPRETER
		 * = 3 and _CSTACK = 4; 3.15 _INTERPRETER = 3. Below 3 are real Python frames. */
		.owner_skip = 3,
		.runtime_interp_head = (uint16_t)at(d, m->interpreters_head),
		.interp_next = (uint16_t)at(d, m->interp_next),
		.interp_threads_head = (uint16_t)at(d, m->threads_head),
		.tstate_next = (uint16_t)at(d, m->tstate_next),
		.tstate_thread_id = (uint16_t)at(d, m->thread_id),
		.tstate_frame = (uint16_t)at(d, m->current_frame),
		.tstate_datastack = (uint16_t)at(d, m->datastack),
		.frame_previous = (uint16_t)at(d, m->previous),
		.frame_code = (uint16_t)at(d, m->executable),
		.frame_instr = (uint16_t)at(d, m->instr_ptr),
		.frame_owner = (uint16_t)at(d, m->owner),
		.code_adaptive = (uint16_t)at(d, m->code_adaptive),
		.interp_gc_collecting = (uint16_t)gc_collecting,
		/* the main interpreter's own GIL (3.12+ keeps one per interpreter) */
		.gil_offset = (uint16_t)at(d, m->interp_gil),
		.gil_in_interp = 1,
		.frame_tlbc_index = (uint16_t)tlbc,
	};
	L->sym = (struct py_sym_layout){
		.ob_type = (uint16_t)at(d, m->ob_type),
		.code_filename = (uint16_t)at(d, m->filename),
		.code_name = (uint16_t)at(d, m->name),
		.code_qualname = (uint16_t)at(d, m->qualname),
		.code_firstlineno = (uint16_t)at(d, m->firstlineno),
		.code_linetable = (uint16_t)at(d, m->linetable),
		.bytes_size = (uint16_t)at(d, m->bytes_ob_size),
		.bytes_sval = (uint16_t)at(d, m->bytes_sval),
		.unicode_state = (uint16_t)at(d, m->unicode_state),
		.unicode_length = (uint16_t)at(d, m->unicode_length),
		.unicode_ascii_size = (uint16_t)at(d, m->unicode_ascii_size),
		/* PyCompactUnicodeObject adds utf8_length and utf8 (16 bytes) from 3.12 on;
		 * sizeof is 56 in all three -dbg builds. */
		.unicode_compact_size = (uint16_t)(at(d, m->unicode_ascii_size) + 16),
		.unicode_state_shift = L->free_threaded ? 6 : 0,
		.lines = PY_LINES_LOCATIONS,
	};
	L->ok = true;
}

static uint16_t max16(uint16_t a, uint16_t b)
{
	return a > b ? a : b;
}

/* How many bytes of a frame hold every field the walker reads. */
static void set_frame_span(struct pyro_py_layout *b)
{
	uint16_t span = max16(b->frame_previous + 8, b->frame_code + 8);

	span = max16(span, b->frame_instr + (b->frames_kind == PYRO_FRAMES_OBJECT ? 4 : 8));
	if (b->owner_skip)
		span = max16(span, b->frame_owner + 1);
	if (b->frame_tlbc_index)
		span = max16(span, b->frame_tlbc_index + 4);
	b->frame_span = span;
	/* 3.11+ push _PyInterpreterFrames on a per-thread data stack, callers just below
	 * callees; 3.9's PyFrameObjects are separate heap objects. */
	b->frames_contiguous = b->frames_kind != PYRO_FRAMES_OBJECT;
}

/* Bytes from the first to the end of the last PyThreadState field a sample reads: the
 * walker reads them at once (bpf/pystack.bpf.h read_tstate). */
static unsigned tstate_span(const struct pyro_py_layout *b)
{
	unsigned lo = b->tstate_frame < b->tstate_thread_id ? b->tstate_frame : b->tstate_thread_id;
	unsigned hi = b->tstate_frame > b->tstate_thread_id ? b->tstate_frame : b->tstate_thread_id;

	if (b->tstate_datastack) { /* 3.11+ */
		lo = b->tstate_datastack < lo ? b->tstate_datastack : lo;
		hi = b->tstate_datastack > hi ? b->tstate_datastack : hi;
	}
	return hi + 8 - lo;
}

void py_layout_derive(struct elf_file *ef, uint32_t hexversion, uint64_t runtime_addr,
		      struct py_layout *out)
{
	uint64_t size;

	memset(out, 0, sizeof(*out));
	switch (MINOR(hexversion)) {
	case 9:
		*out = layout_39;
		break;
	case 10:
		*out = layout_310;
		break;
	case 11:
		*out = layout_311;
		break;
	case 12:
		*out = layout_312;
		break;
	default:
		if (MINOR(hexversion) >= 13)
			from_debug_offsets(ef, hexversion, runtime_addr, out);
		else
			out->why_not = "no verified frame layout for this CPython version";
		break;
	}
	if (!hexversion) {
		memset(out, 0, sizeof(*out));
		out->why_not = "CPython version could not be read from the binary";
	}
	if (out->ok && (elf_file_symbol(ef, "PyCode_Type", &out->sym.code_type_addr, &size) ||
			elf_file_symbol(ef, "PyUnicode_Type", &out->sym.unicode_type_addr, &size) ||
			elf_file_symbol(ef, "PyBytes_Type", &out->sym.bytes_type_addr, &size))) {
		out->ok = false;
		out->why_not = "PyCode_Type, PyUnicode_Type or PyBytes_Type symbol not found";
	}
	if (out->ok) {
		out->bpf.runtime_addr = runtime_addr;
		set_frame_span(&out->bpf);
		if (out->bpf.frame_span > PYRO_FRAME_READ) {
			out->ok = false;
			out->why_not = "frame fields lie beyond what the walker reads";
		} else if (tstate_span(&out->bpf) > PYRO_TSTATE_READ) {
			out->ok = false;
			out->why_not =
				"thread state fields lie further apart than the walker reads";
		}
	}
}
