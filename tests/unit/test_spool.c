// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* The spool's file format and cap: round trips, corruption detected, oldest dropped first
 * but never the profile being sent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "delivery/spool.h"

static struct export_profile sample(uint64_t from, size_t payload)
{
	static uint8_t data[4096];
	struct export_profile e = { .from_ns = from, .until_ns = from + 1000, .n_labels = 2 };

	memset(data, (int)(from & 0xff), sizeof(data));
	export_new_id(e.id);
	snprintf(e.labels[0].name, sizeof(e.labels[0].name), "service_name");
	snprintf(e.labels[0].value, sizeof(e.labels[0].value), "billing");
	snprintf(e.labels[1].name, sizeof(e.labels[1].name), "host");
	snprintf(e.labels[1].value, sizeof(e.labels[1].value), "web-7");
	e.data = data;
	e.len = payload;
	return e;
}

static void round_trips(void **state)
{
	struct export_profile in = sample(42, 300), out;
	uint8_t *buf;
	size_t len;

	(void)state;
	assert_int_equal(spool_encode(&in, &buf, &len), 0);
	assert_int_equal(spool_decode(buf, len, &out), 0);
	assert_string_equal(out.id, in.id);
	assert_int_equal(out.from_ns, 42);
	assert_int_equal(out.until_ns, 1042);
	assert_int_equal(out.n_labels, 2);
	assert_string_equal(out.labels[1].value, "web-7");
	assert_int_equal(out.len, 300);
	assert_memory_equal(out.data, in.data, 300);
	free(out.data);
	free(buf);
}

static void detects_corruption(void **state)
{
	struct export_profile in = sample(7, 100), out;
	uint8_t *buf;
	size_t len, i;

	(void)state;
	assert_int_equal(spool_encode(&in, &buf, &len), 0);
	for (i = 0; i < len; i += 13) { /* any flipped bit is caught */
		buf[i] ^= 0x10;
		assert_int_not_equal(spool_decode(buf, len, &out), 0);
		buf[i] ^= 0x10;
	}
	for (i = 0; i < len; i += 7) /* and any truncation */
		assert_int_not_equal(spool_decode(buf, i, &out), 0);
	free(buf);
}

static void cap_drops_oldest_but_not_the_one_in_flight(void **state)
{
	char dir[] = "/tmp/pyro-spool-XXXXXX";
	struct export_profile e, got;
	struct spool_stats st;
	struct spool *s;
	uint64_t id;
	int i;

	(void)state;
	assert_non_null(mkdtemp(dir));
	/* Each file is ~1.1 KB: three fit in 3500 bytes. */
	assert_int_equal(spool_open(dir, 3500, &s), 0);
	for (i = 1; i <= 3; i++) {
		e = sample((uint64_t)i, 1000);
		assert_int_equal(spool_put(s, &e), 0);
	}
	assert_int_equal(spool_oldest(s, &got, &id), 0); /* #1 is being sent */
	assert_int_equal(got.from_ns, 1);
	free(got.data);
	e = sample(4, 1000);
	assert_int_equal(spool_put(s, &e), 0); /* drops #2, not #1 */
	spool_stats(s, &st);
	assert_int_equal(st.dropped, 1);
	assert_int_equal(st.files, 3);
	spool_remove(s, id);
	assert_int_equal(spool_oldest(s, &got, &id), 0);
	assert_int_equal(got.from_ns, 3);
	free(got.data);
	spool_release(s);
	spool_close(s);

	/* A restart finds the same profiles in the same order. */
	assert_int_equal(spool_open(dir, 3500, &s), 0);
	spool_stats(s, &st);
	assert_int_equal(st.files, 2);
	assert_int_equal(spool_oldest(s, &got, &id), 0);
	assert_int_equal(got.from_ns, 3);
	free(got.data);
	spool_remove(s, id);
	assert_int_equal(spool_oldest(s, &got, &id), 0);
	assert_int_equal(got.from_ns, 4);
	free(got.data);
	spool_remove(s, id);
	assert_int_equal(spool_oldest(s, &got, &id), -ENOENT);
	spool_close(s);
	assert_int_equal(rmdir(dir), 0); /* nothing left behind */
}

/* Leaves oldest first by the profile's own start, whatever order it was written in (a
 * profile that failed to deliver is spooled after younger ones queued behind it), but never
 * ahead of the one being sent; a restart keeps that order. */
static void leaves_in_age_order_not_write_order(void **state)
{
	char dir[] = "/tmp/pyro-spool-XXXXXX";
	static const uint64_t written[] = { 30, 20, 40, 10 };
	struct export_profile e, got;
	struct spool *s;
	uint64_t id;
	size_t i;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(spool_open(dir, 1 << 20, &s), 0);
	for (i = 0; i < 3; i++) {
		e = sample(written[i], 100);
		assert_int_equal(spool_put(s, &e), 0);
	}
	assert_int_equal(spool_oldest(s, &got, &id), 0); /* 20 is being sent */
	assert_int_equal(got.from_ns, 20);
	free(got.data);
	e = sample(written[3], 100); /* older, but 20 is in flight: 10 comes next */
	assert_int_equal(spool_put(s, &e), 0);
	assert_int_equal(spool_oldest(s, &got, &id), 0);
	assert_int_equal(got.from_ns, 20);
	free(got.data);
	spool_remove(s, id);
	assert_int_equal(spool_oldest(s, &got, &id), 0);
	assert_int_equal(got.from_ns, 10);
	free(got.data);
	spool_release(s);
	spool_close(s);

	/* 20 was delivered: 10, 30 and 40 are left, read back in that order */
	assert_int_equal(spool_open(dir, 1 << 20, &s), 0);
	for (uint64_t want = 10; want <= 40; want += 10) {
		if (want == 20)
			continue;
		assert_int_equal(spool_oldest(s, &got, &id), 0);
		assert_int_equal(got.from_ns, want);
		free(got.data);
		spool_remove(s, id);
	}
	assert_int_equal(spool_oldest(s, &got, &id), -ENOENT);
	spool_close(s);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trips),
		cmocka_unit_test(detects_corruption),
		cmocka_unit_test(cap_drops_oldest_but_not_the_one_in_flight),
		cmocka_unit_test(leaves_in_age_order_not_write_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
