// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* The .note.stapsdt parser against hand-built notes, valid and malformed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <cmocka.h>

#include "python/usdt_notes.h"

/* Appends one ELF note (4-byte aligned) to buf at *off. */
static void put_note(unsigned char *buf, size_t *off, uint32_t type, const char *name,
		     const void *desc, uint32_t descsz)
{
	uint32_t namesz = (uint32_t)strlen(name) + 1;

	memcpy(buf + *off, &namesz, 4);
	memcpy(buf + *off + 4, &descsz, 4);
	memcpy(buf + *off + 8, &type, 4);
	*off += 12;
	memcpy(buf + *off, name, namesz);
	*off += (namesz + 3) & ~3u;
	memcpy(buf + *off, desc, descsz);
	*off += (descsz + 3) & ~3u;
}

static uint32_t stapsdt_desc(unsigned char *d, uint64_t pc, uint64_t base, uint64_t sem,
			     const char *prov, const char *name, const char *args)
{
	uint32_t n = 24;

	memcpy(d, &pc, 8);
	memcpy(d + 8, &base, 8);
	memcpy(d + 16, &sem, 8);
	strcpy((char *)d + n, prov);
	n += (uint32_t)strlen(prov) + 1;
	strcpy((char *)d + n, name);
	n += (uint32_t)strlen(name) + 1;
	strcpy((char *)d + n, args);
	n += (uint32_t)strlen(args) + 1;
	return n;
}

static void parses_notes_and_skips_others(void **state)
{
	unsigned char buf[1024] = {}, desc[256];
	struct usdt_probe *p;
	size_t off = 0;
	uint32_t n;
	(void)state;

	put_note(buf, &off, 1, "GNU", "abcd", 4); /* NT_GNU_ABI_TAG-like: not ours */
	n = stapsdt_desc(desc, 0x1000, 0x9000, 0xa000, "python", "gc__start", "-4@112(%rsp)");
	put_note(buf, &off, 3, "stapsdt", desc, n);
	n = stapsdt_desc(desc, 0x2000, 0x9000, 0, "python", "gc__done", "-8@%r12");
	put_note(buf, &off, 3, "stapsdt", desc, n);

	/* .stapsdt.base now at 0x9100: probe addresses move by 0x100 (prelink). */
	assert_int_equal(usdt_notes_parse(buf, off, 0x9100, &p), 2);
	assert_string_equal(p[0].provider, "python");
	assert_string_equal(p[0].name, "gc__start");
	assert_int_equal(p[0].pc, 0x1100);
	assert_int_equal(p[0].semaphore, 0xa000);
	assert_int_equal(p[0].nargs, 1);
	assert_int_equal(p[0].args[0].kind, USDT_ARG_REG_DEREF);
	assert_int_equal(p[0].args[0].size, 4);
	assert_true(p[0].args[0].is_signed);
	assert_int_equal(p[0].args[0].val, 112);
	assert_string_equal(p[0].args[0].reg, "rsp");
	assert_int_equal(p[1].pc, 0x2100);
	assert_int_equal(p[1].args[0].kind, USDT_ARG_REG);
	assert_int_equal(p[1].args[0].size, 8);
	free(p);

	/* Without .stapsdt.base, addresses are taken as they are. */
	assert_int_equal(usdt_notes_parse(buf, off, 0, &p), 2);
	assert_int_equal(p[0].pc, 0x1000);
	free(p);
}

static int count_until_second(const struct usdt_probe *p, void *ctx)
{
	int *seen = ctx;

	(void)p;
	return ++*seen == 2 ? 42 : 0;
}

/* The visitor stops where its callback says, and returns what the callback returned. */
static void note_walk_stops_when_told(void **state)
{
	unsigned char buf[1024] = {}, desc[256];
	size_t off = 0;
	uint32_t n;
	int seen = 0;
	(void)state;

	for (int i = 0; i < 3; i++) {
		n = stapsdt_desc(desc, 0x1000 + (uint64_t)i, 0, 0, "python", "gc__start", "");
		put_note(buf, &off, 3, "stapsdt", desc, n);
	}
	assert_int_equal(usdt_notes_for_each(buf, off, 0, count_until_second, &seen), 42);
	assert_int_equal(seen, 2);
}

static void empty_section_has_no_probes(void **state)
{
	struct usdt_probe *p = (void *)1;
	(void)state;

	assert_int_equal(usdt_notes_parse("", 0, 0, &p), 0);
	assert_null(p);
}

static void rejects_malformed_notes(void **state)
{
	unsigned char buf[512] = {}, desc[256];
	struct usdt_probe *p;
	size_t off = 0;
	uint32_t n, huge = 0xFFFFFFFFu;
	(void)state;

	n = stapsdt_desc(desc, 0x1000, 0, 0, "python", "audit", "8@%rbx");
	put_note(buf, &off, 3, "stapsdt", desc, n);
	/* truncated anywhere: header, name, descriptor */
	assert_int_equal(usdt_notes_parse(buf, 5, 0, &p), -EINVAL);
	assert_int_equal(usdt_notes_parse(buf, 16, 0, &p), -EINVAL);
	assert_int_equal(usdt_notes_parse(buf, off - 8, 0, &p), -EINVAL);
	/* descsz pointing far past the end */
	memcpy(buf + 4, &huge, 4);
	assert_int_equal(usdt_notes_parse(buf, off, 0, &p), -EINVAL);
	/* namesz pointing far past the end */
	memcpy(buf + 4, &n, 4);
	memcpy(buf, &huge, 4);
	assert_int_equal(usdt_notes_parse(buf, off, 0, &p), -EINVAL);
}

static void rejects_unterminated_strings(void **state)
{
	unsigned char buf[512] = {}, desc[256];
	struct usdt_probe *p;
	size_t off = 0;
	(void)state;

	memset(desc, 'x', sizeof(desc));
	memset(desc, 0, 24);
	put_note(buf, &off, 3, "stapsdt", desc, 60); /* provider never NUL-terminated */
	assert_int_equal(usdt_notes_parse(buf, off, 0, &p), -EINVAL);
}

static void rejects_empty_provider_and_bad_args(void **state)
{
	unsigned char buf[512] = {}, desc[256];
	struct usdt_probe *p;
	size_t off = 0;
	uint32_t n;
	(void)state;

	n = stapsdt_desc(desc, 1, 0, 0, "", "x", "");
	put_note(buf, &off, 3, "stapsdt", desc, n);
	assert_int_equal(usdt_notes_parse(buf, off, 0, &p), -EINVAL);
	off = 0;
	n = stapsdt_desc(desc, 1, 0, 0, "python", "x", "8@%nosuchreg");
	put_note(buf, &off, 3, "stapsdt", desc, n);
	assert_int_equal(usdt_notes_parse(buf, off, 0, &p), -EINVAL);
}

static void parses_argument_forms(void **state)
{
	struct usdt_arg a[USDT_ARGS_MAX];
	(void)state;

	assert_int_equal(usdt_notes_parse_args("8@%rbp 8@%r12 -4@%eax", a, USDT_ARGS_MAX), 3);
	assert_int_equal(a[2].kind, USDT_ARG_REG);
	assert_string_equal(a[2].reg, "eax");
	assert_true(a[2].is_signed);

	assert_int_equal(usdt_notes_parse_args("-4@$-5 8@$0x10", a, USDT_ARGS_MAX), 2);
	assert_int_equal(a[0].kind, USDT_ARG_CONST);
	assert_int_equal(a[0].val, -5);
	assert_int_equal(a[1].val, 16);

	assert_int_equal(usdt_notes_parse_args("8@-8(%rbp) 4@(%rax)", a, USDT_ARGS_MAX), 2);
	assert_int_equal(a[0].kind, USDT_ARG_REG_DEREF);
	assert_int_equal(a[0].val, -8);
	assert_int_equal(a[1].val, 0);

	/* Operand without a size (old SDT notes) */
	assert_int_equal(usdt_notes_parse_args("%rdi", a, USDT_ARGS_MAX), 1);
	assert_int_equal(a[0].size, 0);

	assert_int_equal(usdt_notes_parse_args("", a, USDT_ARGS_MAX), 0);
}

static void scale_index_base_is_parsed_but_not_attachable(void **state)
{
	struct usdt_probe p = {};
	(void)state;

	p.nargs = usdt_notes_parse_args("8@16(%rax,%rbx,8)", p.args, USDT_ARGS_MAX);
	assert_int_equal(p.nargs, 1);
	assert_int_equal(p.args[0].kind, USDT_ARG_SIB);
	assert_false(usdt_notes_attachable(&p));
	p.nargs = usdt_notes_parse_args("8@16(%rax)", p.args, USDT_ARGS_MAX);
	assert_true(usdt_notes_attachable(&p));
}

static void rejects_bad_argument_specs(void **state)
{
	static const char *const bad[] = {
		"3@%eax",  "8@",      "@%rax",	     "8@(%rax", "8@1(%rax,%rbx,3)",
		"8@%",	   "8@$",     "8@%rax junk", "x@%rax",	"8@%RAX",
		"16@%rax", "8@(rax)", "8@1(%rax,)",
	};
	struct usdt_arg a[USDT_ARGS_MAX];
	size_t i;
	(void)state;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (usdt_notes_parse_args(bad[i], a, USDT_ARGS_MAX) != -EINVAL)
			fail_msg("accepted bad spec '%s'", bad[i]);
	}
	/* more arguments than the SDT macros allow */
	assert_int_equal(usdt_notes_parse_args("1@$1 1@$1 1@$1", a, 2), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parses_notes_and_skips_others),
		cmocka_unit_test(note_walk_stops_when_told),
		cmocka_unit_test(empty_section_has_no_probes),
		cmocka_unit_test(rejects_malformed_notes),
		cmocka_unit_test(rejects_unterminated_strings),
		cmocka_unit_test(rejects_empty_provider_and_bad_args),
		cmocka_unit_test(parses_argument_forms),
		cmocka_unit_test(scale_index_base_is_parsed_but_not_attachable),
		cmocka_unit_test(rejects_bad_argument_specs),
	};

	return cmocka_run_group_tests_name("usdt_notes", tests, NULL, NULL);
}
