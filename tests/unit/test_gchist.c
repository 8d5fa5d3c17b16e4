// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* The GC pause histogram's bucket bounds and quantiles (agent/gc/gctrace.c), against the
 * bucketing rule of bpf/gc.bpf.c restated here: 0-7 ns as they are, then 8 buckets per power
 * of two. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "gc/gctrace.h"

static uint32_t bucket_of(uint64_t d)
{
	uint32_t msb = 63 - (uint32_t)__builtin_clzll(d | 1);

	return d < 8 ? (uint32_t)d : msb * 8 + (uint32_t)((d >> (msb - 3)) & 7);
}

static void buckets_tile_the_line(void **state)
{
	uint32_t b;
	(void)state;

	for (b = 0; b + 1 < 8 * 60; b++) /* contiguous; 8-23 are never used and empty */
		assert_int_equal(gchist_bucket_upper(b), gchist_bucket_lower(b + 1));
	assert_int_equal(gchist_bucket_upper(7), gchist_bucket_lower(24));
	for (b = 24; b < 8 * 60; b++) /* at most 12.5 % wide */
		assert_true(gchist_bucket_upper(b) - gchist_bucket_lower(b) <=
			    gchist_bucket_lower(b) / 8);
}

static void every_duration_falls_in_its_bucket(void **state)
{
	static const uint64_t d[] = { 0,    1,	   7,	    8,	      9,
				      15,   16,	   999,	    1000,     1023,
				      1024, 65535, 1000000, 12345678, 10000000000ull };
	size_t i;
	(void)state;

	for (i = 0; i < sizeof(d) / sizeof(d[0]); i++) {
		uint32_t b = bucket_of(d[i]);

		assert_true(gchist_bucket_lower(b) <= d[i] && d[i] < gchist_bucket_upper(b));
	}
}

static void quantiles(void **state)
{
	uint64_t counts[PYRO_GC_BUCKETS];
	uint32_t b100us = bucket_of(100000), b5ms = bucket_of(5000000);
	(void)state;

	memset(counts, 0, sizeof(counts));
	assert_int_equal(gchist_quantile(counts, 0.5, 0), 0);
	counts[b100us] = 98; /* 98 pauses of ~100 us, 2 of ~5 ms */
	counts[b5ms] = 2;
	assert_int_equal(gchist_quantile(counts, 0.50, 5100000), gchist_bucket_upper(b100us));
	assert_int_equal(gchist_quantile(counts, 0.98, 5100000), gchist_bucket_upper(b100us));
	assert_int_equal(gchist_quantile(counts, 0.99, 5100000), 5100000); /* capped at the max */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(buckets_tile_the_line),
		cmocka_unit_test(every_duration_falls_in_its_bucket),
		cmocka_unit_test(quantiles),
	};

	return cmocka_run_group_tests_name("gchist", tests, NULL, NULL);
}
