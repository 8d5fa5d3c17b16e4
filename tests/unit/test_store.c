// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* The local store's cap and age limit: the oldest profiles go first, by their start, whether
 * the store found them at open (in any directory order) or wrote them, CPU or another kind,
 * and a start-up import profile that began before the last CPU interval takes its place by
 * age. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "delivery/store.h"

static char root[64];

static int make_root(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "/tmp/pyrometer-store-test-XXXXXX");
	return mkdtemp(root) ? 0 : -1;
}

static int remove_root(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	return system(cmd);
}

/* A profile of service svc from from_s to from_s + 15 (seconds since the epoch, as the
 * daemon names files in ms), of kind (NULL: CPU), with len bytes. */
static struct export_profile profile(const char *svc, uint64_t from_s, const char *kind, size_t len)
{
	static uint8_t data[1024];
	struct export_profile e = { .from_ns = from_s * 1000000000ull,
				    .until_ns = (from_s + 15) * 1000000000ull,
				    .n_labels = kind ? 2 : 1,
				    .data = data,
				    .len = len };

	snprintf(e.labels[0].name, sizeof(e.labels[0].name), "service_name");
	snprintf(e.labels[0].value, sizeof(e.labels[0].value), "%s", svc);
	if (kind) {
		snprintf(e.labels[1].name, sizeof(e.labels[1].name), EXPORT_KIND_LABEL);
		snprintf(e.labels[1].value, sizeof(e.labels[1].value), "%s", kind);
	}
	return e;
}

static int exists(const char *svc, uint64_t from_s, const char *kind)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s/%llu-%llu%s%s.pb.gz", root, svc,
		 (unsigned long long)from_s * 1000, (unsigned long long)(from_s + 15) * 1000,
		 kind ? "." : "", kind ? kind : "");
	return access(path, F_OK) == 0;
}

static void the_cap_removes_the_oldest_first(void **state)
{
	struct store_opts o = { .dir = root, .cap_bytes = 4 * 100 };
	uint64_t now = (uint64_t)time(NULL);
	struct store_stats st;
	struct store *s;
	struct export_profile e;

	(void)state;
	/* three files left by an earlier run, written newest first */
	assert_int_equal(store_open(&o, &s), 0);
	for (int i = 2; i >= 0; i--) {
		e = profile("shop", now - 100 + 15 * (uint64_t)i, NULL, 100);
		assert_int_equal(store_put(s, &e), 0);
	}
	store_close(s);
	/* found again at open: 300 bytes, under the cap */
	assert_int_equal(store_open(&o, &s), 0);
	store_stats(s, &st);
	assert_int_equal(st.files, 3);
	assert_int_equal(st.bytes, 300);
	/* a newer CPU profile of another service fits; then an import profile that began
	 * before all of them: over the cap, and the oldest (the import profile) goes */
	e = profile("billing", now - 40, NULL, 100);
	assert_int_equal(store_put(s, &e), 0);
	e = profile("billing", now - 200, "import", 100);
	assert_int_equal(store_put(s, &e), 0);
	assert_false(exists("billing", now - 200, "import"));
	assert_true(exists("shop", now - 100, NULL));
	/* one more: the oldest left, shop's first, goes */
	e = profile("shop", now - 20, "off_cpu", 100);
	assert_int_equal(store_put(s, &e), 0);
	assert_false(exists("shop", now - 100, NULL));
	assert_true(exists("shop", now - 85, NULL) && exists("shop", now - 70, NULL));
	assert_true(exists("billing", now - 40, NULL) && exists("shop", now - 20, "off_cpu"));
	store_stats(s, &st);
	assert_int_equal(st.files, 4);
	assert_int_equal(st.bytes, 400);
	assert_int_equal(st.removed, 2);
	store_close(s);
}

static void the_age_limit_removes_what_began_too_long_ago(void **state)
{
	struct store_opts o = { .dir = root, .max_age_sec = 60 };
	uint64_t now = (uint64_t)time(NULL);
	struct store_stats st;
	struct store *s;
	struct export_profile e;

	(void)state;
	assert_int_equal(store_open(&o, &s), 0);
	e = profile("cron", now - 3600, "import", 10); /* an hour old: removed at once */
	assert_int_equal(store_put(s, &e), 0);
	assert_false(exists("cron", now - 3600, "import"));
	e = profile("cron", now - 30, NULL, 10);
	assert_int_equal(store_put(s, &e), 0);
	assert_true(exists("cron", now - 30, NULL));
	store_stats(s, &st);
	assert_int_equal(st.files, 1);
	assert_int_equal(st.removed, 1);
	store_close(s);
}

static void a_file_removed_by_someone_else_is_not_counted_twice(void **state)
{
	struct store_opts o = { .dir = root, .cap_bytes = 200 };
	uint64_t now = (uint64_t)time(NULL);
	char path[256];
	struct store_stats st;
	struct store *s;
	struct export_profile e;

	(void)state;
	assert_int_equal(store_open(&o, &s), 0);
	e = profile("web", now - 50, NULL, 100);
	assert_int_equal(store_put(s, &e), 0);
	snprintf(path, sizeof(path), "%s/web/%llu-%llu.pb.gz", root,
		 (unsigned long long)(now - 50) * 1000, (unsigned long long)(now - 35) * 1000);
	assert_int_equal(unlink(path), 0); /* an operator cleaned up */
	e = profile("web", now - 35, NULL, 100);
	assert_int_equal(store_put(s, &e), 0);
	e = profile("web", now - 20, NULL, 100); /* over the cap: the gone one leaves the index */
	assert_int_equal(store_put(s, &e), 0);
	store_stats(s, &st);
	assert_int_equal(st.files, 2);
	assert_int_equal(st.bytes, 200);
	assert_int_equal(st.removed, 0);
	store_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(the_cap_removes_the_oldest_first, make_root,
						remove_root),
		cmocka_unit_test_setup_teardown(the_age_limit_removes_what_began_too_long_ago,
						make_root, remove_root),
		cmocka_unit_test_setup_teardown(a_file_removed_by_someone_else_is_not_counted_twice,
						make_root, remove_root),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
