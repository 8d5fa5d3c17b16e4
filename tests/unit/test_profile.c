// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Aggregation (profile.c, intern.c) and the folded writer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <cmocka.h>

#include "profile/folded.h"
#include "profile/intern.h"
#include "profile/profile.h"

static void interning_is_dense_and_stable(void **state)
{
	struct intern t;
	int i;
	(void)state;

	intern_init(&t);
	assert_int_equal(intern_put(&t, "a", 1), 0);
	assert_int_equal(intern_put(&t, "b", 1), 1);
	assert_int_equal(intern_put(&t, "a", 1), 0);
	assert_int_equal(intern_find(&t, "b", 1), 1);
	assert_int_equal(intern_find(&t, "c", 1), -ENOENT);
	for (i = 0; i < 5000; i++) /* through several table growths */
		assert_int_equal(intern_put(&t, &i, sizeof(i)), i + 2);
	for (i = 0; i < 5000; i++)
		assert_int_equal(intern_find(&t, &i, sizeof(i)), i + 2);
	intern_free(&t);
}

static uint32_t loc(struct profile *p, const char *fn, const char *file, int line)
{
	int64_t f = profile_function(p, fn, file, 1);

	return (uint32_t)profile_location(p, (uint32_t)f, line);
}

static void samples_aggregate_and_fold(void **state)
{
	struct profile p;
	uint32_t stack1[2], stack2[2];
	char *out = NULL;
	size_t len = 0;
	FILE *f;
	(void)state;

	assert_int_equal(profile_init(&p, 10101010), 0);
	assert_string_equal(profile_str(&p, 0), ""); /* pprof's string_table[0] */
	stack1[0] = loc(&p, "leaf", "/a.py", 3);     /* leaf first */
	stack1[1] = loc(&p, "main", "/a.py", 9);
	stack2[0] = loc(&p, "other;x", "/b.py", 4); /* ';' must not split the frame */
	stack2[1] = stack1[1];
	assert_int_equal(profile_add(&p, 7, 7, "py", "t1", stack1, 2, 3), 0);
	assert_int_equal(profile_add(&p, 7, 7, "py", "t1", stack1, 2, 2), 0);
	assert_int_equal(profile_add(&p, 7, 8, "py", "t2", stack1, 2, 1), 0); /* other thread */
	assert_int_equal(profile_add(&p, 7, 7, "py", "t1", stack2, 2, 4), 0);
	assert_int_equal(p.samples.n, 3);
	assert_int_equal(p.total, 10);
	assert_int_equal(p.counts[0], 5);

	f = open_memstream(&out, &len);
	assert_int_equal(folded_write(&p, f), 0);
	fclose(f);
	/* threads merge in folded output; lines sorted; root first */
	assert_string_equal(out, "py:7;main (/a.py:9);leaf (/a.py:3) 6\n"
				 "py:7;main (/a.py:9);other:x (/b.py:4) 4\n");
	free(out);
	profile_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(interning_is_dense_and_stable),
		cmocka_unit_test(samples_aggregate_and_fold),
	};

	return cmocka_run_group_tests_name("profile", tests, NULL, NULL);
}
