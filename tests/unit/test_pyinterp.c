// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Version strings and the capability rules of DESIGN.md's probe table. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "python/elf_file.h"
#include "python/py_binary.h"

static void version_round_trips(void **state)
{
	static const struct {
		const char *s;
		uint32_t hex;
	} cases[] = {
		{ "3.9.2", 0x030902F0 },    { "3.11.2", 0x030B02F0 },	{ "3.13.18", 0x030D12F0 },
		{ "3.15.0a1", 0x030F00A1 }, { "3.14.0b3", 0x030E00B3 }, { "3.12.0rc2", 0x030C00C2 },
	};
	char buf[24];
	size_t i;
	uint32_t hex;
	(void)state;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(py_binary_version_parse(cases[i].s, strlen(cases[i].s), &hex), 0);
		assert_int_equal(hex, cases[i].hex);
		py_binary_version_format(hex, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].s);
	}
	/* a development build's "+" is accepted and dropped */
	assert_int_equal(py_binary_version_parse("3.12.1+", 7, &hex), 0);
	assert_int_equal(hex, 0x030C01F0);
}

static void version_rejects_non_versions(void **state)
{
	static const char *const bad[] = { "2.7.18",   "3.9",	 "3.x.1",  "3.9.2rc", "3.9.2c1",
					   "3.9.2a16", "1.2.11", "3.9.2 ", "" };
	uint32_t hex;
	size_t i;
	(void)state;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (py_binary_version_parse(bad[i], strlen(bad[i]), &hex) != -EINVAL)
			fail_msg("accepted '%s'", bad[i]);
}

static struct usdt_probe probe(const char *name)
{
	struct usdt_probe p = {};

	strcpy(p.provider, "python");
	strcpy(p.name, name);
	return p;
}

/* A binary of the given version with the named probes. */
static void make_binary(struct py_binary *b, uint32_t hex, bool debug_offsets,
			const char *const *names, int n, struct usdt_probe *store)
{
	int i;

	memset(b, 0, sizeof(*b));
	b->is_python = true;
	b->hexversion = hex;
	/* what agent/python/py_layout.c concludes for such a binary */
	b->layout.ok = hex && (((hex >> 16) & 0xFF) == 9 || ((hex >> 16) & 0xFF) == 11 ||
			       (((hex >> 16) & 0xFF) >= 13 && debug_offsets));
	b->layout.why_not = b->layout.ok ? NULL : "no layout";
	b->has_usdt_notes = n > 0;
	for (i = 0; i < n; i++)
		store[i] = probe(names[i]);
	b->probes = store;
	b->nprobes = n;
	py_binary_caps_decide(b);
}

static const char *const all_probes[] = { "gc__start", "gc__done", "function__entry",
					  "function__return", "line" };
static const char *const gc_only[] = { "gc__start", "gc__done", "import__find__load__start" };

static void capabilities_follow_the_probe_table(void **state)
{
	struct usdt_probe store[8];
	struct py_binary b;
	(void)state;

	make_binary(&b, 0x030902F0, false, all_probes, 5, store); /* 3.9: both fire */
	assert_true(b.caps.cpu && b.caps.gc);
	assert_int_equal(b.caps.calls, PY_CALLS_FULL);

	make_binary(&b, 0x030B02F0, false, all_probes, 5, store); /* 3.11: return only */
	assert_true(b.caps.cpu && b.caps.gc);
	assert_int_equal(b.caps.calls, PY_CALLS_COUNTS);

	make_binary(&b, 0x030D12F0, true, gc_only, 3, store); /* 3.13: no function probes */
	assert_true(b.caps.cpu && b.caps.gc);
	assert_int_equal(b.caps.calls, PY_CALLS_NONE);
	assert_non_null(b.caps.no_calls);

	make_binary(&b, 0x030F02F0, true, all_probes, 5, store); /* 3.15: restored */
	assert_int_equal(b.caps.calls, PY_CALLS_FULL);

	make_binary(&b, 0x030B02F0, false, NULL, 0, store); /* no USDT at all */
	assert_true(b.caps.cpu);
	assert_false(b.caps.gc);
	assert_non_null(strstr(b.caps.no_gc, "USDT"));
	assert_int_equal(b.caps.calls, PY_CALLS_NONE);

	make_binary(&b, 0x030C01F0, false, gc_only, 3, store); /* 3.12: no layout table */
	assert_false(b.caps.cpu);
	assert_non_null(b.caps.no_cpu);

	make_binary(&b, 0x030E00F0, false, gc_only, 3, store); /* 3.14 without debug offsets */
	assert_false(b.caps.cpu);

	make_binary(&b, 0, false, gc_only, 3, store); /* version unreadable */
	assert_false(b.caps.cpu);
	assert_true(b.caps.gc);
}

static void non_elf_input_is_refused(void **state)
{
	struct elf_file *ef = NULL;
	(void)state;

	assert_int_equal(elf_file_from_memory("#!/bin/sh\necho hi\n", 18, &ef), -ENOEXEC);
	assert_null(ef);
	assert_int_equal(elf_file_from_memory("", 0, &ef), -ENOEXEC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(version_round_trips),
		cmocka_unit_test(version_rejects_non_versions),
		cmocka_unit_test(capabilities_follow_the_probe_table),
		cmocka_unit_test(non_elf_input_is_refused),
	};

	return cmocka_run_group_tests_name("pyinterp", tests, NULL, NULL);
}
