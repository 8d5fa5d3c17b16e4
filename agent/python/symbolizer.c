// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "python/symbolizer.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "python/py_binary.h"
#include "python/linetable.h"
#include "base/procmem.h"

#define BUCKETS 4096
#define CODE_HEADER_READ 512 /* every code object field we use lies in its first 512 bytes */
#define MAX_STR_CHARS 1024   /* longer names and paths are cut */
#define MAX_LINETABLE (1 << 20)

/* What identifies the code object at an address: if any of it changes, it is another one. */
struct code_ident {
	uint64_t ob_type, filename, name, qualname, linetable;
	int32_t firstlineno;
};

struct entry {
	struct entry *next;
	int pid;
	uint64_t code;
	uint64_t generation; /* when last checked against the process */
	struct code_ident ident;
	char *name, *file;
	uint8_t *lines;
	size_t nlines;
	enum py_linetable_kind kind;
	int firstlineno;
};

struct symbolizer {
	struct entry *buckets[BUCKETS];
	uint64_t generation;
	struct symbolizer_stats stats;
};

int symbolizer_new(struct symbolizer **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

static void entry_free(struct entry *e)
{
	free(e->name);
	free(e->file);
	free(e->lines);
	free(e);
}

void symbolizer_forget(struct symbolizer *s, int pid)
{
	size_t i;

	for (i = 0; i < BUCKETS; i++) {
		struct entry **pp = &s->buckets[i];

		while (*pp) {
			struct entry *e = *pp;

			if (e->pid != pid) {
				pp = &e->next;
				continue;
			}
			*pp = e->next;
			entry_free(e);
		}
	}
}

void symbolizer_free(struct symbolizer *s)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < BUCKETS; i++) {
		while (s->buckets[i]) {
			struct entry *e = s->buckets[i];

			s->buckets[i] = e->next;
			entry_free(e);
		}
	}
	free(s);
}

void symbolizer_next_generation(struct symbolizer *s)
{
	s->generation++;
}

void symbolizer_stats(const struct symbolizer *s, struct symbolizer_stats *st)
{
	*st = s->stats;
}

static uint64_t u64_at(const uint8_t *h, uint16_t off)
{
	uint64_t v;

	memcpy(&v, h + off, sizeof(v));
	return v;
}

/* Appends code point cp as UTF-8. */
static size_t put_utf8(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		if (cp >= 0xD800 && cp <= 0xDFFF)
			cp = 0xFFFD; /* lone surrogates (from surrogateescape) */
		out[0] = (char)(0xE0 | cp >> 12);
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	if (cp > 0x10FFFF)
		cp = 0xFFFD;
	if (cp == 0xFFFD)
		return put_utf8(out, cp);
	out[0] = (char)(0xF0 | cp >> 18);
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* Reads a str object as UTF-8 (malloc'd). Only exact, compact strings (all that code
 * objects hold) are read: a code object caught while it is built or freed may point
 * anywhere. State bits: kind 2-4, compact 5, ascii 6 (Include/cpython/unicodeobject.h, the
 * same from 3.9 to 3.15). Control characters become U+FFFD: names and paths are printed
 * one per line by pprof's consumers. */
static char *read_str(const struct py_target *p, uint64_t obj)
{
	const struct py_sym_layout *L = &p->bin->layout.sym;
	uint8_t hdr[128], *data;
	uint32_t state;
	int64_t length;
	unsigned kind;
	size_t n, i, o = 0;
	char *out;

	if (!obj || L->unicode_compact_size > sizeof(hdr) ||
	    procmem_read(p->pid, obj, hdr, L->unicode_compact_size) ||
	    u64_at(hdr, L->ob_type) != L->unicode_type_addr + (uint64_t)p->bias)
		return NULL;
	memcpy(&state, hdr + L->unicode_state, sizeof(state));
	state >>= L->unicode_state_shift;
	memcpy(&length, hdr + L->unicode_length, sizeof(length));
	kind = (state >> 2) & 7;
	if (!((state >> 5) & 1) || length < 0 || (kind != 1 && kind != 2 && kind != 4))
		return NULL;
	n = (size_t)(length > MAX_STR_CHARS ? MAX_STR_CHARS : length);
	data = malloc(n * kind + 1);
	out = malloc(n * 4 + 1);
	if (!data || !out ||
	    procmem_read(p->pid,
			 obj + ((state >> 6) & 1 ? L->unicode_ascii_size : L->unicode_compact_size),
			 data, n * kind)) {
		free(data);
		free(out);
		return NULL;
	}
	for (i = 0; i < n; i++) {
		uint32_t cp = kind == 1	  ? data[i]
			      : kind == 2 ? ((uint16_t *)data)[i]
					  : ((uint32_t *)data)[i];

		o += put_utf8(out + o, cp < 0x20 || cp == 0x7F ? 0xFFFD : cp);
	}
	out[o] = '\0';
	free(data);
	return out;
}

/* Reads an exact bytes object (a line table). */
static uint8_t *read_bytes(const struct py_target *p, uint64_t obj, size_t *len)
{
	const struct py_sym_layout *L = &p->bin->layout.sym;
	uint8_t hdr[64];
	int64_t size;
	uint8_t *buf;

	if (!obj || L->bytes_sval > sizeof(hdr) || procmem_read(p->pid, obj, hdr, L->bytes_sval) ||
	    u64_at(hdr, L->ob_type) != L->bytes_type_addr + (uint64_t)p->bias)
		return NULL;
	memcpy(&size, hdr + L->bytes_size, sizeof(size));
	if (size < 0 || size > MAX_LINETABLE)
		return NULL;
	buf = malloc(size ? (size_t)size : 1);
	if (!buf || procmem_read(p->pid, obj + L->bytes_sval, buf, (size_t)size)) {
		free(buf);
		return NULL;
	}
	*len = (size_t)size;
	return buf;
}

static int read_ident(const struct py_target *p, uint64_t code, struct code_ident *id)
{
	const struct py_sym_layout *L = &p->bin->layout.sym;
	uint8_t h[CODE_HEADER_READ];
	int err = procmem_read(p->pid, code, h, sizeof(h));

	if (err)
		return err;
	memset(id, 0, sizeof(*id));
	id->ob_type = u64_at(h, L->ob_type);
	id->filename = u64_at(h, L->code_filename);
	id->name = u64_at(h, L->code_name);
	id->qualname = L->code_qualname ? u64_at(h, L->code_qualname) : 0;
	id->linetable = u64_at(h, L->code_linetable);
	memcpy(&id->firstlineno, h + L->code_firstlineno, sizeof(id->firstlineno));
	/* Only a code object is a code object: anything else at this address is not ours. */
	if (id->ob_type != L->code_type_addr + (uint64_t)p->bias)
		return -EINVAL;
	return 0;
}

static int fill_entry(const struct py_target *p, struct entry *e)
{
	const struct py_sym_layout *L = &p->bin->layout.sym;

	free(e->name);
	free(e->file);
	free(e->lines);
	e->name = read_str(p, e->ident.qualname ? e->ident.qualname : e->ident.name);
	e->file = read_str(p, e->ident.filename);
	e->lines = read_bytes(p, e->ident.linetable, &e->nlines);
	e->kind = L->lines;
	/* read from the target: a line number is never negative in a profile */
	e->firstlineno = e->ident.firstlineno > 0 ? e->ident.firstlineno : 0;
	if (!e->name || !e->file)
		return -EFAULT;
	return 0;
}

static struct entry *lookup(struct symbolizer *s, int pid, uint64_t code, struct entry ***slot)
{
	struct entry **pp = &s->buckets[(code >> 4 ^ (uint64_t)pid) % BUCKETS];

	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->pid == pid && (*pp)->code == code)
			break;
	*slot = pp;
	return *pp;
}

static int line_of(const struct entry *e, uint32_t instr)
{
	int line = -1;

	if (instr != PYRO_INSTR_UNKNOWN && e->lines) {
		if (e->kind == PY_LINES_LNOTAB)
			line = linetable_lnotab_line(e->lines, e->nlines, e->firstlineno,
						     instr * 2);
		else if (e->kind == PY_LINES_310)
			line = linetable_310_line(e->lines, e->nlines, e->firstlineno, instr * 2);
		else
			line = linetable_locations_line(e->lines, e->nlines, e->firstlineno, instr);
	}
	return line > 0 ? line : e->firstlineno;
}

static const char *const failure_frames[SYM_FAIL_MAX] = {
	[SYM_FAIL_UNREADABLE] = "[unreadable code object]",
	[SYM_FAIL_NOT_CODE] = "[not a code object]",
	[SYM_FAIL_NAME] = "[unreadable name]",
	[SYM_FAIL_NO_MEMORY] = "[out of memory]",
};

static const char *const failure_labels[SYM_FAIL_MAX] = {
	[SYM_FAIL_UNREADABLE] = "unreadable_code_object",
	[SYM_FAIL_NOT_CODE] = "not_a_code_object",
	[SYM_FAIL_NAME] = "unreadable_name",
	[SYM_FAIL_NO_MEMORY] = "no_memory",
};

const char *symbolizer_failure_frame(enum symbolizer_failure why)
{
	return why < SYM_FAIL_MAX ? failure_frames[why] : "[unknown]";
}

const char *symbolizer_failure_label(enum symbolizer_failure why)
{
	return why < SYM_FAIL_MAX ? failure_labels[why] : "unknown";
}

/* A frame that could not be named: its pseudo-frame, counted by reason. */
static int failed(struct symbolizer *s, enum symbolizer_failure why, int err,
		  struct py_frame_sym *out)
{
	s->stats.failed[why]++;
	out->name = failure_frames[why];
	out->file = "";
	out->line = out->firstlineno = 0;
	return err;
}

int symbolizer_frame(struct symbolizer *s, const struct py_target *p, uint64_t code, uint32_t instr,
		     struct py_frame_sym *out)
{
	struct entry **slot, *e = lookup(s, p->pid, code, &slot);
	struct code_ident now;
	int err;

	out->name = "[unreadable code object]";
	out->file = "";
	out->line = out->firstlineno = 0;
	/* An entry whose read failed in this generation has no name yet: read it again (a
	 * cache hit on it handed out NULL names, and the profile writer crashed on them). */
	if (e && e->generation == s->generation && e->name && e->file) {
		s->stats.cache_hits++;
		goto found;
	}
	err = read_ident(p, code, &now);
	if (err && e && e->name && e->file) {
		/* The process is gone, or the address no longer holds a code object (freed, as
		 * at interpreter shutdown): the frame was captured earlier, when it did. Stacks
		 * are symbolized after capture (GC events up to 200 ms later, more under
		 * load). An address that now holds another code object is told apart below. */
		s->stats.cache_hits++;
		goto found;
	}
	if (err)
		return failed(s, err == -EINVAL ? SYM_FAIL_NOT_CODE : SYM_FAIL_UNREADABLE, err,
			      out);
	if (e && e->name && e->file && memcmp(&now, &e->ident, sizeof(now)) == 0) {
		e->generation = s->generation;
		s->stats.cache_hits++;
		goto found;
	}
	if (e) {
		if (e->name && e->file)
			s->stats.reused++; /* the address now holds another code object */
	} else {
		e = calloc(1, sizeof(*e));
		if (!e)
			return failed(s, SYM_FAIL_NO_MEMORY, -ENOMEM, out);
		e->pid = p->pid;
		e->code = code;
		*slot = e;
	}
	e->ident = now;
	e->generation = s->generation;
	if (fill_entry(p, e)) /* name or file NULL: read again on the next use */
		return failed(s, SYM_FAIL_NAME, -EFAULT, out);
	s->stats.resolved++;
found:
	out->name = e->name;
	out->file = e->file;
	out->line = line_of(e, instr);
	out->firstlineno = e->firstlineno;
	return 0;
}
