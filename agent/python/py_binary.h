/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* What a binary (python executable or libpython*.so) says about the CPython inside it:
 * whether it is one, its version, its USDT probes, and what pyrometer can do with it. */
#ifndef PYRO_PYINTERP_H
#define PYRO_PYINTERP_H

#include <stdbool.h>
#include <stdint.h>

#include "python/py_layout.h"
#include "python/usdt_notes.h"
#include "python/usdt_sites.h"

struct elf_file;

/* Where the version came from, most to least direct. */
enum py_version_source {
	PY_VERSION_NONE,
	PY_VERSION_DEBUG_OFFSETS, /* _PyRuntime's _Py_DebugOffsets.version (3.13+) */
	PY_VERSION_SYMBOL,	  /* the exported Py_Version constant (3.11+) */
	PY_VERSION_RODATA,	  /* the PY_VERSION string literal in .rodata (before 3.11) */
};

enum py_calls_mode {
	PY_CALLS_NONE,	 /* no function tracing */
	PY_CALLS_COUNTS, /* function__return only: exact counts, no latency (3.11) */
	PY_CALLS_FULL,	 /* entry and return: counts and latency */
};

struct py_caps {
	bool cpu;
	bool gc;
	bool imports;
	enum py_calls_mode calls;
	/* why not, for people; NULL when available */
	const char *no_cpu, *no_gc, *no_calls, *no_imports;
	const char *no_gc_label; /* why not, as a metric label value */
};

struct py_binary {
	bool is_python;	      /* defines _PyRuntime */
	bool needs_libpython; /* not Python itself but linked against libpython*.so */
	uint32_t hexversion;  /* PY_VERSION_HEX, 0 if unknown */
	enum py_version_source version_source;
	char version[24];      /* "3.11.2", "3.15.0a1", "" if unknown */
	uint64_t runtime_addr; /* link-time address of _PyRuntime */
	bool has_usdt_notes;   /* carries a .note.stapsdt section */
	bool notes_refused;    /* ... larger than USDT_NOTES_MAX: not read */
	int nprobes;
	struct usdt_probe *probes;    /* python provider only, each site once, in code */
	struct usdt_site_stats sites; /* sites dropped from the notes, and why */
	struct py_layout layout;      /* for stack sampling and symbolization */
	struct py_caps caps;
};

/* Inspects an opened ELF. Fills *b (free its contents with py_binary_clear). Returns 0 when
 * the file is a readable ELF (Python or not) or a negative errno. */
int py_binary_inspect(struct elf_file *ef, struct py_binary *b);
void py_binary_clear(struct py_binary *b);

/* Formats PY_VERSION_HEX as "3.11.2" or "3.15.0a1". */
void py_binary_version_format(uint32_t hex, char *buf, size_t len);
/* Parses a PY_VERSION string ("3.9.2", "3.13.0rc1", "3.12.1+") into PY_VERSION_HEX. */
int py_binary_version_parse(const char *s, size_t n, uint32_t *hex);

/* Is there a probe of this name? Probes can have several sites; this counts them. */
int py_binary_probe_sites(const struct py_binary *b, const char *name);
/* Decides capabilities from the version and the probes (see DESIGN.md's table). */
void py_binary_caps_decide(struct py_binary *b);
const char *py_binary_calls_mode_name(enum py_calls_mode m);

#endif
