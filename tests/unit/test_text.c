// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Text from collectors, targets and binaries reaches the log as one printable line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "base/text.h"

static void escapes_control_characters(void **state)
{
	char out[128];
	(void)state;

	text_escape(out, sizeof(out), "bad request\npyrometer: info: INJECTED\r\x1b[2J\t\\");
	assert_string_equal(out, "bad request\\npyrometer: info: INJECTED\\x0d\\x1b[2J\\t\\\\");
	assert_null(strchr(out, '\n'));
}

static void keeps_utf8_and_escapes_invalid_bytes(void **state)
{
	char out[64];
	(void)state;

	text_escape(out, sizeof(out), "caf\xc3\xa9 \xff\xc3(");
	assert_string_equal(out, "caf\xc3\xa9 \\xff\\xc3(");
}

static void cuts_at_a_character_boundary(void **state)
{
	char out[8];
	(void)state;

	/* "ab\n" escapes to 4 bytes; the next escape would not fit whole */
	text_escape(out, sizeof(out), "ab\n\x01zz");
	assert_string_equal(out, "ab\\n");
	text_escape(out, sizeof(out), "abcdef\xc3\xa9");
	assert_string_equal(out, "abcdef");
	text_escape(out, 1, "abc");
	assert_string_equal(out, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(escapes_control_characters),
		cmocka_unit_test(keeps_utf8_and_escapes_invalid_bytes),
		cmocka_unit_test(cuts_at_a_character_boundary),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
