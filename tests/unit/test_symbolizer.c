// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* The symbolizer against whatever a target hands back: code objects forged in our own memory
 * (this process is the target) with random headers, strings and line tables that are valid,
 * truncated, garbage, absurdly long or unmapped, code objects whose page is unmapped between
 * reads, addresses reused by other objects, and a process that is gone. Properties, for
 * every frame: a name and a file, never NULL; a failure is one of the pseudo-frames and is
 * counted under its reason, once. A fixed seed makes every run the same. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "python/py_binary.h"
#include "python/symbolizer.h"

#define PAGE 4096
#define ARENA_PAGES 64
#define ROUNDS 20000

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Offsets like 3.11's (locations) and 3.9's (lnotab, no qualname): the properties do not
 * depend on the real ones, only on reading through them. */
static void layout(struct py_binary *b, bool v39)
{
	struct py_sym_layout *L = &b->layout.sym;

	memset(L, 0, sizeof(*L));
	L->ob_type = 8;
	L->code_filename = 0x70;
	L->code_name = 0x78;
	L->code_qualname = v39 ? 0 : 0x80;
	L->code_firstlineno = 0x48;
	L->code_linetable = 0x88;
	L->bytes_size = 16;
	L->bytes_sval = 32;
	L->unicode_state = 32;
	L->unicode_length = 16;
	L->unicode_ascii_size = 40;
	L->unicode_compact_size = 56;
	L->lines = v39 ? PY_LINES_LNOTAB : PY_LINES_LOCATIONS;
	L->code_type_addr = 0x1000;
	L->unicode_type_addr = 0x2000;
	L->bytes_type_addr = 0x3000;
}

/* Sets the object's type to type_addr (as the process sees it) most of the time. */
static void set_type(uint8_t *o, const struct py_target *t, uint64_t type_addr)
{
	uint64_t v = type_addr + (uint64_t)t->bias;

	if (next() % 8)
		memcpy(o + t->bin->layout.sym.ob_type, &v, sizeof(v));
}

struct arena {
	uint8_t *base; /* ARENA_PAGES pages, some of them unmapped at times */
	size_t used;
	uint64_t unmapped; /* an address nothing is mapped at */
};

static uint8_t *alloc(struct arena *a, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	if (a->used + n > (ARENA_PAGES - 2) * PAGE)
		a->used = 0;
	a->used += n;
	return a->base + a->used - n;
}

static void random_bytes(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)next();
}

/* A str object as the layout has it: valid (ASCII, 1, 2 or 4 bytes a character), with an
 * absurd or negative length, not compact, of another type, or garbage; or no object. */
static uint64_t forge_str(struct arena *a, const struct py_target *t)
{
	const struct py_sym_layout *L = &t->bin->layout.sym;
	uint32_t state, kinds[] = { 1, 2, 4, 3 };
	int64_t len = (int64_t)(next() % 40);
	uint8_t *o;

	switch (next() % 8) {
	case 0:
		return 0;
	case 1:
		return a->unmapped + next() % PAGE;
	case 2:
		o = alloc(a, 256);
		random_bytes(o, 256);
		return (uint64_t)(uintptr_t)o;
	default:
		break;
	}
	o = alloc(a, (size_t)L->unicode_compact_size + 4 * 40 + 8);
	random_bytes(o, (size_t)L->unicode_compact_size + 4 * 40 + 8);
	state = (kinds[next() % 4] << 2) | (next() % 8 ? 1u << 5 : 0) | (next() % 2 ? 1u << 6 : 0);
	if (next() % 10 == 0)
		len = next() % 2 ? -(int64_t)(next() % 1000) - 1 : (int64_t)(next() >> 1);
	memcpy(o + L->unicode_state, &state, sizeof(state));
	memcpy(o + L->unicode_length, &len, sizeof(len));
	set_type(o, t, L->unicode_type_addr);
	return (uint64_t)(uintptr_t)o;
}

static uint64_t forge_bytes(struct arena *a, const struct py_target *t)
{
	const struct py_sym_layout *L = &t->bin->layout.sym;
	int64_t size = (int64_t)(next() % 64);
	uint8_t *o;

	if (next() % 6 == 0)
		return next() % 2 ? 0 : a->unmapped;
	o = alloc(a, (size_t)L->bytes_sval + 64);
	random_bytes(o, (size_t)L->bytes_sval + 64);
	if (next() % 10 == 0)
		size = next() % 2 ? -1 : (int64_t)(next() >> 1);
	memcpy(o + L->bytes_size, &size, sizeof(size));
	set_type(o, t, L->bytes_type_addr);
	return (uint64_t)(uintptr_t)o;
}

/* A code object (or something else) at a fresh address: its type right most of the time. */
static uint64_t forge_code(struct arena *a, const struct py_target *t)
{
	const struct py_sym_layout *L = &t->bin->layout.sym;
	uint8_t *o = alloc(a, 512);
	uint64_t v;

	random_bytes(o, 512);
	set_type(o, t, L->code_type_addr);
	v = forge_str(a, t);
	memcpy(o + L->code_name, &v, sizeof(v));
	v = forge_str(a, t);
	memcpy(o + L->code_filename, &v, sizeof(v));
	if (L->code_qualname) {
		v = forge_str(a, t);
		memcpy(o + L->code_qualname, &v, sizeof(v));
	}
	v = forge_bytes(a, t);
	memcpy(o + L->code_linetable, &v, sizeof(v));
	return (uint64_t)(uintptr_t)o;
}

static bool is_pseudo(const char *name)
{
	for (int i = 0; i < SYM_FAIL_MAX; i++)
		if (!strcmp(name, symbolizer_failure_frame(i)))
			return true;
	return false;
}

static uint64_t failures(const struct symbolizer *s)
{
	struct symbolizer_stats st;
	uint64_t n = 0;

	symbolizer_stats(s, &st);
	for (int i = 0; i < SYM_FAIL_MAX; i++)
		n += st.failed[i];
	return n;
}

static void check(struct symbolizer *s, const struct py_target *t, uint64_t code, uint64_t *fails)
{
	struct py_frame_sym f;
	int err = symbolizer_frame(s, t, code, (uint32_t)(next() % 300), &f);

	assert_non_null(f.name);
	assert_non_null(f.file);
	assert_true(strlen(f.name) <= 4 * 1024 && strlen(f.file) <= 4 * 1024);
	/* nothing that would break a line of a consumer's output */
	for (const char *c = f.name; *c; c++)
		assert_true((unsigned char)*c >= 0x20 && *c != 0x7F);
	for (const char *c = f.file; *c; c++)
		assert_true((unsigned char)*c >= 0x20 && *c != 0x7F);
	assert_true(f.line >= 0);
	if (err) {
		assert_true(is_pseudo(f.name));
		assert_string_equal(f.file, "");
		(*fails)++;
	} else {
		assert_false(is_pseudo(f.name));
	}
	assert_int_equal(failures(s), *fails);
}

static void forged_code_objects_never_give_null_names(void **state)
{
	struct py_binary b = {};
	struct py_target t = { .pid = getpid(), .bin = &b, .bias = 0x7f0000000000 };
	struct arena a = {};
	struct symbolizer *s;
	uint64_t fails = 0, recent[64] = {};
	(void)state;

	a.base = mmap(NULL, ARENA_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		      -1, 0);
	assert_true(a.base != MAP_FAILED);
	/* the arena's last page, unmapped for good */
	a.unmapped = (uint64_t)(uintptr_t)(a.base + (ARENA_PAGES - 1) * PAGE);
	assert_int_equal(munmap(a.base + (ARENA_PAGES - 1) * PAGE, PAGE), 0);
	assert_int_equal(symbolizer_new(&s), 0);
	for (int i = 0; i < ROUNDS; i++) {
		uint64_t code;

		if (i % 2000 == 0)
			layout(&b, (i / 2000) % 2);
		switch (next() % 10) {
		case 0: /* an address seen before, its contents since overwritten or not */
			code = recent[next() % 64] ?: forge_code(&a, &t);
			if (next() % 2 && code < a.unmapped)
				random_bytes((uint8_t *)(uintptr_t)code, 64);
			break;
		case 1: /* nothing mapped there */
			code = a.unmapped + next() % PAGE;
			break;
		default:
			code = forge_code(&a, &t);
			break;
		}
		recent[i % 64] = code;
		check(s, &t, code, &fails);
		if (next() % 50 == 0)
			symbolizer_next_generation(s);
	}
	/* every kind of failure was met */
	{
		struct symbolizer_stats st;

		symbolizer_stats(s, &st);
		assert_true(st.failed[SYM_FAIL_UNREADABLE] > 0);
		assert_true(st.failed[SYM_FAIL_NOT_CODE] > 0);
		assert_true(st.failed[SYM_FAIL_NAME] > 0);
		assert_true(st.resolved > 0 && st.reused > 0);
	}
	symbolizer_free(s);
	munmap(a.base, (ARENA_PAGES - 1) * PAGE);
}

/* A process that is gone: every frame of it fails as unreadable, named, counted. */
static void a_gone_process_gives_pseudo_frames(void **state)
{
	struct py_binary b = {};
	struct py_target t = { .bin = &b };
	struct symbolizer *s;
	struct py_frame_sym f;
	uint64_t fails = 0;
	pid_t child = fork();
	(void)state;

	if (child == 0)
		_exit(0);
	assert_int_equal(waitpid(child, NULL, 0), child);
	layout(&b, false);
	t.pid = child;
	assert_int_equal(symbolizer_new(&s), 0);
	for (int i = 0; i < 100; i++)
		check(s, &t, 0x10000 + (uint64_t)i * 512, &fails);
	assert_true(symbolizer_frame(s, &t, 0x10000, 0, &f) < 0);
	assert_string_equal(f.name, symbolizer_failure_frame(SYM_FAIL_UNREADABLE));
	symbolizer_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(forged_code_objects_never_give_null_names),
		cmocka_unit_test(a_gone_process_gives_pseudo_frames),
	};

	return cmocka_run_group_tests_name("symbolizer", tests, NULL, NULL);
}
