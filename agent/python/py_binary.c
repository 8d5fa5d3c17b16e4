// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "python/py_binary.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "python/elf_file.h"

#define PY_MAJOR(h) (((h) >> 24) & 0xFF)
#define PY_MINOR(h) (((h) >> 16) & 0xFF)
#define PY_MICRO(h) (((h) >> 8) & 0xFF)
#define PY_LEVEL(h) (((h) >> 4) & 0xF)
#define PY_SERIAL(h) ((h)&0xF)
#define PY_MINOR_OF(maj, min) (((uint32_t)(maj) << 24) | ((uint32_t)(min) << 16))

void py_binary_version_format(uint32_t hex, char *buf, size_t len)
{
	static const char *const level[16] = { [0xA] = "a", [0xB] = "b", [0xC] = "rc" };

	if (PY_LEVEL(hex) == 0xF || !level[PY_LEVEL(hex)])
		snprintf(buf, len, "%u.%u.%u", PY_MAJOR(hex), PY_MINOR(hex), PY_MICRO(hex));
	else
		snprintf(buf, len, "%u.%u.%u%s%u", PY_MAJOR(hex), PY_MINOR(hex), PY_MICRO(hex),
			 level[PY_LEVEL(hex)], PY_SERIAL(hex));
}

static int parse_num(const char **p, const char *end, unsigned *v)
{
	unsigned x = 0;
	const char *s = *p;

	if (s >= end || *s < '0' || *s > '9')
		return -EINVAL;
	while (s < end && *s >= '0' && *s <= '9' && x < 1000)
		x = x * 10 + (unsigned)(*s++ - '0');
	*v = x;
	*p = s;
	return 0;
}

int py_binary_version_parse(const char *s, size_t n, uint32_t *hex)
{
	const char *p = s, *end = s + n;
	unsigned maj, min, mic, serial = 0, level = 0xF;

	if (parse_num(&p, end, &maj) || p >= end || *p++ != '.' || parse_num(&p, end, &min) ||
	    p >= end || *p++ != '.' || parse_num(&p, end, &mic))
		return -EINVAL;
	if (p < end && *p != '+') {
		if (end - p >= 2 && p[0] == 'r' && p[1] == 'c')
			level = 0xC, p += 2;
		else if (*p == 'a' || *p == 'b')
			level = *p == 'a' ? 0xA : 0xB, p++;
		else
			return -EINVAL;
		if (parse_num(&p, end, &serial) || serial > 15)
			return -EINVAL;
	}
	if (p < end && *p == '+')
		p++;
	if (p != end || maj != 3 || min > 255 || mic > 255)
		return -EINVAL;
	*hex = (maj << 24) | (min << 16) | (mic << 8) | (level << 4) | serial;
	return 0;
}

#define VERSION_CANDIDATES 8

struct rodata_scan {
	int n;
	uint32_t hex[VERSION_CANDIDATES];
	uint64_t addr[VERSION_CANDIDATES];
};

/* Collects the "3.x.y" strings standing alone in .rodata. There can be more than the one we
 * want (3.9's holds "3.9.2" and also "3.2.0"). */
static int rodata_cb(const char *s, size_t n, uint64_t addr, void *ctx)
{
	struct rodata_scan *scan = ctx;
	uint32_t hex;

	if (n < 5 || n > 12 || s[0] != '3' || py_binary_version_parse(s, n, &hex) ||
	    scan->n == VERSION_CANDIDATES)
		return 0;
	scan->hex[scan->n] = hex;
	scan->addr[scan->n++] = addr;
	return 0;
}

/* Does the code at [code, code+len) (loaded at code_addr) refer to target, either as an
 * absolute 32-bit immediate (non-PIE: mov $imm32) or RIP-relative (lea disp32(%rip)), with
 * the displacement as the instruction's last 4 bytes? */
static bool code_refers_to(const unsigned char *code, size_t len, uint64_t code_addr,
			   uint64_t target)
{
	size_t i;

	for (i = 0; i + 4 <= len; i++) {
		int32_t v;

		memcpy(&v, code + i, 4);
		if ((uint64_t)(uint32_t)v == target ||
		    code_addr + i + 4 + (uint64_t)(int64_t)v == target)
			return true;
	}
	return false;
}

/* Before 3.11 the version exists in the binary only as the PY_VERSION literal that
 * Py_GetVersion() formats (Python/getversion.c): pick the candidate its code refers to. */
static uint32_t version_from_rodata(struct elf_file *ef)
{
	struct rodata_scan scan = {};
	unsigned char code[512];
	uint64_t fn, size;
	int i;

	if (elf_file_for_each_string(ef, ".rodata", rodata_cb, &scan) || scan.n == 0)
		return 0;
	if (elf_file_symbol(ef, "Py_GetVersion", &fn, &size) || size == 0)
		return 0;
	if (size > sizeof(code))
		size = sizeof(code);
	if (elf_file_read(ef, fn, code, size))
		return 0;
	for (i = 0; i < scan.n; i++)
		if (code_refers_to(code, size, fn, scan.addr[i]))
			return scan.hex[i];
	return 0;
}

static void read_version(struct elf_file *ef, struct py_binary *b)
{
	char cookie[8];
	uint64_t v64 = 0, addr, size;

	/* 3.13+: struct _Py_DebugOffsets { char cookie[8]; uint64_t version; ... } opens
	 * _PyRuntime (Include/internal/pycore_debug_offsets.h), statically initialised. */
	if (elf_file_read(ef, b->runtime_addr, cookie, 8) == 0 &&
	    memcmp(cookie, "xdebugpy", 8) == 0 &&
	    elf_file_read(ef, b->runtime_addr + 8, &v64, 8) == 0) {
		b->hexversion = (uint32_t)v64;
		b->version_source = PY_VERSION_DEBUG_OFFSETS;
	} else if (elf_file_symbol(ef, "Py_Version", &addr, &size) == 0 &&
		   (size == 4 || size == 8) && elf_file_read(ef, addr, &v64, size) == 0) {
		/* 3.11+: const unsigned long Py_Version = PY_VERSION_HEX (Python/getversion.c). */
		b->hexversion = (uint32_t)v64;
		b->version_source = PY_VERSION_SYMBOL;
	} else if ((b->hexversion = version_from_rodata(ef))) {
		b->version_source = PY_VERSION_RODATA;
	}
	if (b->hexversion && PY_MAJOR(b->hexversion) != 3) {
		b->hexversion = 0; /* not a version we can reason about */
		b->version_source = PY_VERSION_NONE;
	}
	if (b->hexversion)
		py_binary_version_format(b->hexversion, b->version, sizeof(b->version));
}

/* Keeps the "python" provider's probes; other providers (libstdcxx, rtld) are not ours. */
static int read_probes(struct elf_file *ef, struct py_binary *b)
{
	int err = usdt_sites_read(ef, "python", &b->probes, &b->nprobes, &b->sites);

	if (err == -ENOENT)
		return 0; /* built without --with-dtrace, or stripped */
	b->has_usdt_notes = true;
	if (err == -EFBIG) {
		b->notes_refused = true; /* the rest of the binary is still profiled */
		return 0;
	}
	return err;
}

int py_binary_inspect(struct elf_file *ef, struct py_binary *b)
{
	int err;

	memset(b, 0, sizeof(*b));
	if (elf_file_symbol(ef, "_PyRuntime", &b->runtime_addr, NULL)) {
		b->needs_libpython = elf_file_needs(ef, "libpython");
		return 0;
	}
	b->is_python = true;
	read_version(ef, b);
	py_layout_derive(ef, b->hexversion, b->runtime_addr, &b->layout);
	if (b->layout.free_threaded && b->version[0]) /* as CPython names it: python3.14t */
		strncat(b->version, "t", sizeof(b->version) - strlen(b->version) - 1);
	err = read_probes(ef, b);
	if (err)
		return err;
	py_binary_caps_decide(b);
	return 0;
}

void py_binary_clear(struct py_binary *b)
{
	free(b->probes);
	memset(b, 0, sizeof(*b));
}

int py_binary_probe_sites(const struct py_binary *b, const char *name)
{
	return usdt_sites_count(b->probes, b->nprobes, name);
}

static bool too_many_sites(const struct py_binary *b, const char *a, const char *z)
{
	return py_binary_probe_sites(b, a) > USDT_MAX_SITES ||
	       py_binary_probe_sites(b, z) > USDT_MAX_SITES;
}

static void decide_cpu(struct py_binary *b)
{
	/* Stack sampling needs a verified layout: per-version tables for 3.9 and 3.11,
	 * _Py_DebugOffsets for 3.13 and later (agent/python/py_layout.c). */
	b->caps.cpu = b->layout.ok;
	if (!b->layout.ok)
		b->caps.no_cpu = b->layout.why_not ? b->layout.why_not : "no frame layout";
}

static void decide_gc(struct py_binary *b)
{
	if (!b->has_usdt_notes) {
		b->caps.no_gc = "built without USDT probes (no .note.stapsdt)";
		b->caps.no_gc_label = "no_usdt";
	} else if (b->notes_refused) {
		b->caps.no_gc = "its USDT note section is larger than 1 MiB (not a real CPython "
				"build): refused";
		b->caps.no_gc_label = "too_many_sites";
	} else if (!py_binary_probe_sites(b, "gc__start") ||
		   !py_binary_probe_sites(b, "gc__done")) {
		b->caps.no_gc = "gc__start/gc__done probes absent or not attachable";
		b->caps.no_gc_label = "no_gc_probes";
	} else if (too_many_sites(b, "gc__start", "gc__done")) {
		b->caps.no_gc = "more than 8 sites of gc__start or gc__done (not a real CPython "
				"build): refused";
		b->caps.no_gc_label = "too_many_sites";
	} else {
		b->caps.gc = true;
	}
}

static void decide_imports(struct py_binary *b)
{
	if (!b->has_usdt_notes)
		b->caps.no_imports = "built without USDT probes (no .note.stapsdt)";
	else if (b->notes_refused)
		b->caps.no_imports = "its USDT note section is larger than 1 MiB: refused";
	else if (!py_binary_probe_sites(b, "import__find__load__start") ||
		 !py_binary_probe_sites(b, "import__find__load__done"))
		b->caps.no_imports =
			"import__find__load__start/done probes absent or not attachable";
	else if (too_many_sites(b, "import__find__load__start", "import__find__load__done"))
		b->caps.no_imports =
			"more than 8 sites of import__find__load__start or __done (not "
			"a real CPython build): refused";
	else
		b->caps.imports = true;
}

static void decide_calls(struct py_binary *b)
{
	uint32_t mm = b->hexversion & 0xFFFF0000;
	bool entry = py_binary_probe_sites(b, "function__entry") > 0;
	bool ret = py_binary_probe_sites(b, "function__return") > 0;

	if (!b->has_usdt_notes)
		b->caps.no_calls = "built without USDT probes (no .note.stapsdt)";
	else if (b->notes_refused)
		b->caps.no_calls = "its USDT note section is larger than 1 MiB: refused";
	else if (!entry && !ret)
		b->caps.no_calls = "function__entry/function__return probes absent in this build";
	else if (too_many_sites(b, "function__entry", "function__return"))
		b->caps.no_calls = "more than 8 sites of function__entry or function__return (not "
				   "a real CPython build): refused";
	else if (mm == PY_MINOR_OF(3, 11) && ret)
		/* 3.11's function__entry does not fire for Python-to-Python calls (DESIGN.md);
		 * function__return does, so counts are exact and latency is unknown. */
		b->caps.calls = PY_CALLS_COUNTS;
	else if (entry && ret &&
		 ((mm >= PY_MINOR_OF(3, 8) && mm <= PY_MINOR_OF(3, 10)) ||
		  mm >= PY_MINOR_OF(3, 15)))
		b->caps.calls = PY_CALLS_FULL;
	else
		b->caps.no_calls = "function probes not verified to fire on this CPython version";
}

void py_binary_caps_decide(struct py_binary *b)
{
	memset(&b->caps, 0, sizeof(b->caps));
	decide_cpu(b);
	decide_gc(b);
	decide_imports(b);
	decide_calls(b);
}

const char *py_binary_calls_mode_name(enum py_calls_mode m)
{
	switch (m) {
	case PY_CALLS_FULL:
		return "calls";
	case PY_CALLS_COUNTS:
		return "call-counts";
	default:
		return NULL;
	}
}
