// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* JSON output stays valid whatever bytes a process puts in its comm or paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "base/json.h"

static char *render(void (*fn)(struct json *j))
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct json j;

	json_begin(&j, f);
	fn(&j);
	fclose(f);
	return buf;
}

static void nested(struct json *j)
{
	json_obj_open(j, NULL);
	json_i64(j, "pid", -1);
	json_arr_open(j, "usdt");
	json_str(j, NULL, "a");
	json_str(j, NULL, "b");
	json_arr_close(j);
	json_obj_open(j, "unavailable");
	json_obj_close(j);
	json_str(j, "v", NULL);
	json_bool(j, "ok", true);
	json_u64(j, "big", UINT64_MAX);
	json_obj_close(j);
}

static void writes_nested_values(void **state)
{
	char *s = render(nested);
	(void)state;

	assert_string_equal(
		s, "{\"pid\":-1,\"usdt\":[\"a\",\"b\"],\"unavailable\":{},\"v\":null,\"ok\":true,"
		   "\"big\":18446744073709551615}");
	free(s);
}

static void escaped(struct json *j)
{
	/* quote, backslash, newline, DEL, valid 2- and 4-byte UTF-8, a lone continuation
	 * byte, an overlong '/', a UTF-16 surrogate encoded in UTF-8 */
	json_str(j, NULL, "q\"b\\n\n\x7f\xc3\xa9\xf0\x9f\x90\x8d\x80\xc0\xaf\xed\xa0\x80");
}

static void escapes_untrusted_bytes(void **state)
{
	char *s = render(escaped);
	(void)state;

	assert_string_equal(s, "\"q\\\"b\\\\n\\u000a\\u007f\xc3\xa9\xf0\x9f\x90\x8d"
			       "\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\"");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(writes_nested_values),
		cmocka_unit_test(escapes_untrusted_bytes),
	};

	return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
