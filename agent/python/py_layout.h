/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Where things live inside a CPython process: what the BPF frame walker needs
 * (struct pyro_py_layout) and what symbolization needs (struct py_sym_layout). */
#ifndef PYRO_PYLAYOUT_H
#define PYRO_PYLAYOUT_H

#include <linux/types.h>
#include <stdbool.h>
#include <stdint.h>

#include "pyrometer.h"

struct elf_file;

enum py_linetable_kind {
	PY_LINES_LNOTAB = 1,	/* co_lnotab byte pairs (3.9) */
	PY_LINES_LOCATIONS = 2, /* co_linetable location entries (3.11+, PEP 657) */
	PY_LINES_310 = 3,	/* co_linetable address-range pairs (3.10, PEP 626) */
};

/* Offsets for reading code objects and strings from user space. */
struct py_sym_layout {
	uint16_t ob_type;
	uint16_t code_filename, code_name, code_qualname; /* qualname 0: none (3.9) */
	uint16_t code_firstlineno, code_linetable;
	uint16_t bytes_size, bytes_sval;
	uint16_t unicode_state, unicode_length, unicode_ascii_size, unicode_compact_size;
	/* str state bits sit this much higher: free-threaded builds give `interned` a whole
	 * byte instead of 2 bits (gdb ptype /o PyASCIIObject of 3.14t: kind at bit 8) */
	uint8_t unicode_state_shift;
	enum py_linetable_kind lines;
	uint64_t code_type_addr;    /* link-time address of PyCode_Type */
	uint64_t unicode_type_addr; /* ... of PyUnicode_Type */
	uint64_t bytes_type_addr;   /* ... of PyBytes_Type */
};

struct py_layout {
	bool ok;
	const char *why_not;	   /* when !ok: for people */
	struct pyro_py_layout bpf; /* runtime_addr is link-time here; add the bias per process */
	struct py_sym_layout sym;
	bool free_threaded; /* a no-GIL build (_Py_DebugOffsets.free_threaded, 3.13+) */
};

/* Derives the layout of the CPython in ef, whose version is hexversion and whose
 * _PyRuntime is at runtime_addr (link-time). */
void py_layout_derive(struct elf_file *ef, uint32_t hexversion, uint64_t runtime_addr,
		      struct py_layout *out);

#endif
