// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Line-table decoders against hand-built tables, and against truncated or corrupt bytes
 * (they come from another process's memory). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "python/linetable.h"

static void lnotab_pairs(void **state)
{
	/* line 10 from offset 0, +2 lines at offset 6, -1 line at offset 10 */
	static const uint8_t tab[] = { 6, 2, 4, (uint8_t)-1 };
	(void)state;

	assert_int_equal(linetable_lnotab_line(tab, sizeof(tab), 10, 0), 10);
	assert_int_equal(linetable_lnotab_line(tab, sizeof(tab), 10, 5), 10);
	assert_int_equal(linetable_lnotab_line(tab, sizeof(tab), 10, 6), 12);
	assert_int_equal(linetable_lnotab_line(tab, sizeof(tab), 10, 9), 12);
	assert_int_equal(linetable_lnotab_line(tab, sizeof(tab), 10, 10), 11);
	assert_int_equal(linetable_lnotab_line(tab, sizeof(tab), 10, 500), 11);
	/* an odd trailing byte is ignored */
	assert_int_equal(linetable_lnotab_line(tab, 3, 10, 500), 12);
	assert_int_equal(linetable_lnotab_line(tab, 0, 10, 500), 10);
}

static void linetable_310_pairs(void **state)
{
	/* The worked example of 3.10's Objects/lnotab_notes.txt ("Final form"): 0-6 line 1,
	 * 6-50 line 2, 50-350 line 7, 350-360 none, 360-376 line 8, 376-380 line 208 (135 in
	 * between covers no bytecode). */
	static const uint8_t tab[] = { 6,  1, 44, 1,   254, 5, 46, 0, 10, (uint8_t)-128,
				       16, 1, 0,  127, 4,   73 };
	static const uint8_t neg[] = { 2, (uint8_t)-5 };
	static const struct {
		uint32_t addr;
		int line;
	} want[] = { { 0, 1 },	 { 5, 1 },     { 6, 2 },     { 49, 2 },
		     { 50, 7 },	 { 349, 7 },   { 350, -1 },  { 359, -1 },
		     { 360, 8 }, { 376, 208 }, { 379, 208 }, { 380, -1 } /* past the end */ };
	(void)state;

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_int_equal(linetable_310_line(tab, sizeof(tab), 0, want[i].addr),
				 want[i].line);
	/* truncated: an odd trailing byte is ignored, and nothing is read past len */
	assert_int_equal(linetable_310_line(tab, 3, 0, 6), -1);
	assert_int_equal(linetable_310_line(tab, 0, 0, 0), -1);
	/* a line that would go negative is no line */
	assert_int_equal(linetable_310_line(neg, sizeof(neg), 3, 0), -1);
}

/* Entry header byte: 1, code (4 bits), units - 1 (3 bits). */
#define ENTRY(code, units) (uint8_t)(0x80 | (code) << 3 | ((units)-1))

static void location_entries(void **state)
{
	static const uint8_t tab[] = {
		ENTRY(13, 2), 0x02,		      /* 2 units, line +1 (svarint 2 = +1) */
		ENTRY(5, 3),  0x07,		      /* 3 units, same line, short form (1 byte) */
		ENTRY(11, 1), 0x01, 0x05,	      /* 1 unit, line +1, one-line form (2 bytes) */
		ENTRY(15, 2),			      /* 2 units with no location */
		ENTRY(14, 4), 0x05, 0x00, 0x01, 0x01, /* long form: line -2 (svarint 5) */
	};
	(void)state;

	assert_int_equal(linetable_locations_line(tab, sizeof(tab), 20, 0), 21);
	assert_int_equal(linetable_locations_line(tab, sizeof(tab), 20, 1), 21);
	assert_int_equal(linetable_locations_line(tab, sizeof(tab), 20, 2), 21);
	assert_int_equal(linetable_locations_line(tab, sizeof(tab), 20, 4), 21);
	assert_int_equal(linetable_locations_line(tab, sizeof(tab), 20, 5), 22);
	assert_int_equal(linetable_locations_line(tab, sizeof(tab), 20, 6), -1);
	assert_int_equal(linetable_locations_line(tab, sizeof(tab), 20, 7), -1);
	assert_int_equal(linetable_locations_line(tab, sizeof(tab), 20, 8), 20);
	assert_int_equal(linetable_locations_line(tab, sizeof(tab), 20, 11), 20);
	assert_int_equal(linetable_locations_line(tab, sizeof(tab), 20, 12), -1); /* past the end */
}

static void location_table_corruption(void **state)
{
	static const uint8_t not_an_entry[] = { 0x05, 0x01 };
	static const uint8_t truncated_varint[] = { ENTRY(13, 1),
						    0x42 }; /* continuation, no more */
	static const uint8_t endless[] = { ENTRY(14, 1), 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f };
	(void)state;

	assert_int_equal(linetable_locations_line(not_an_entry, sizeof(not_an_entry), 1, 0), -1);
	assert_int_equal(linetable_locations_line(truncated_varint, sizeof(truncated_varint), 1, 0),
			 -1);
	assert_int_equal(linetable_locations_line(endless, sizeof(endless), 1, 0), -1);
	assert_int_equal(linetable_locations_line(NULL, 0, 1, 0), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(lnotab_pairs),
		cmocka_unit_test(linetable_310_pairs),
		cmocka_unit_test(location_entries),
		cmocka_unit_test(location_table_corruption),
	};

	return cmocka_run_group_tests_name("linetable", tests, NULL, NULL);
}
