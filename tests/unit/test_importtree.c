// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* The import tree (agent/imports/importtree.c) from events in the order bpf/imports.bpf.c
 * sends them: each thread's imports as they finish, nested ones first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "imports/importtree.h"

static void finish(struct importtree *t, uint32_t tid, uint16_t depth, const char *name,
		   uint64_t ns, int found)
{
	struct pyro_import_event e = {
		.pid = 1, .tid = tid, .duration_ns = ns, .depth = depth, .found = (uint8_t)found
	};

	snprintf(e.name, sizeof(e.name), "%s", name);
	assert_int_equal(importtree_add(t, &e, NULL, 0), 0);
}

struct seen {
	char lines[32][128];
	int n;
};

/* "depth name incl self" per import, in walk order. */
static void collect(const struct importtree *t, const uint32_t *path, int depth, void *ctx)
{
	struct seen *s = ctx;
	const struct importtree_node *n = &t->nodes[path[depth]];

	snprintf(s->lines[s->n++], sizeof(s->lines[0]), "%d %s %llu %llu", depth,
		 (const char *)intern_key(&t->strings, n->name, NULL),
		 (unsigned long long)n->incl_ns, (unsigned long long)importtree_self_ns(t, n));
}

static void walk(struct importtree *t, struct seen *s)
{
	memset(s, 0, sizeof(*s));
	importtree_walk(t, collect, s);
}

static void nested_imports_go_under_the_one_they_finished_in(void **state)
{
	struct importtree t;
	struct seen s;
	(void)state;

	importtree_init(&t);
	/* imp_root { imp_a { imp_c } imp_b }: finished c, a, b, root */
	finish(&t, 7, 2, "imp_c", 200, 1);
	finish(&t, 7, 1, "imp_a", 500, 1);
	finish(&t, 7, 1, "imp_b", 100, 1);
	finish(&t, 7, 0, "imp_root", 603, 1);
	walk(&t, &s);
	assert_int_equal(s.n, 4);
	assert_string_equal(s.lines[0], "0 imp_root 603 3");
	assert_string_equal(s.lines[1], "1 imp_a 500 300");
	assert_string_equal(s.lines[2], "2 imp_c 200 200");
	assert_string_equal(s.lines[3], "1 imp_b 100 100");
	importtree_free(&t);
}

static void threads_build_their_trees_apart(void **state)
{
	struct importtree t;
	struct seen s;
	(void)state;

	importtree_init(&t);
	/* two threads interleaved: 1 imports t1 { t1_sub }, 2 imports t2 { t2_sub } */
	finish(&t, 1, 1, "t1_sub", 150, 1);
	finish(&t, 2, 1, "t2_sub", 50, 1);
	finish(&t, 2, 0, "t2", 200, 1);
	finish(&t, 1, 0, "t1", 250, 1);
	walk(&t, &s);
	assert_int_equal(s.n, 4);
	assert_string_equal(s.lines[0], "0 t2 200 150");
	assert_string_equal(s.lines[1], "1 t2_sub 50 50");
	assert_string_equal(s.lines[2], "0 t1 250 100");
	assert_string_equal(s.lines[3], "1 t1_sub 150 150");
	importtree_free(&t);
}

static void a_lost_level_or_an_unfinished_parent_loses_no_import(void **state)
{
	struct importtree t;
	struct seen s;
	(void)state;

	importtree_init(&t);
	/* a { [b lost] { c } }: c comes straight under a */
	finish(&t, 3, 2, "c", 10, 1);
	finish(&t, 3, 0, "a", 30, 1);
	/* d finished, its parent still importing: an outermost import of its own for now */
	finish(&t, 3, 1, "d", 5, 0);
	walk(&t, &s);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.lines[0], "0 a 30 20");
	assert_string_equal(s.lines[1], "1 c 10 10");
	assert_string_equal(s.lines[2], "0 d 5 5");
	assert_true(t.nodes[2].failed);
	importtree_free(&t);
}

static void self_time_never_goes_below_zero(void **state)
{
	struct importtree t;
	struct seen s;
	(void)state;

	importtree_init(&t);
	finish(&t, 1, 1, "inner", 90, 1);
	finish(&t, 1, 1, "inner2", 90, 1);
	finish(&t, 1, 0, "outer", 100, 1); /* clocks of untrusted origin: no underflow */
	walk(&t, &s);
	assert_string_equal(s.lines[0], "0 outer 100 0");
	importtree_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(nested_imports_go_under_the_one_they_finished_in),
		cmocka_unit_test(threads_build_their_trees_apart),
		cmocka_unit_test(a_lost_level_or_an_unfinished_parent_loses_no_import),
		cmocka_unit_test(self_time_never_goes_below_zero),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
