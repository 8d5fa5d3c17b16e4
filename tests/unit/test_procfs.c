// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* /proc file parsers against lines a process can shape (paths, comm). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/procfs.h"

static void parses_file_mapping(void **state)
{
	struct map_entry m;
	(void)state;

	assert_int_equal(procfs_parse_maps_line("00400000-00423000 r--p 00001000 fe:01 10977289"
						"                   /usr/bin/python3.11",
						&m),
			 0);
	assert_int_equal(m.start, 0x400000);
	assert_int_equal(m.end, 0x423000);
	assert_int_equal(m.offset, 0x1000);
	assert_int_equal(m.dev_major, 0xfe);
	assert_int_equal(m.dev_minor, 1);
	assert_int_equal(m.inode, 10977289);
	assert_string_equal(m.perms, "r--p");
	assert_string_equal(m.path, "/usr/bin/python3.11");
	assert_false(m.deleted);
}

static void keeps_spaces_and_marks_deleted(void **state)
{
	struct map_entry m;
	(void)state;

	assert_int_equal(procfs_parse_maps_line("7f0000000000-7f0000001000 r-xp 00000000 08:02 42 "
						"   /opt/my app/python (deleted)",
						&m),
			 0);
	assert_string_equal(m.path, "/opt/my app/python");
	assert_true(m.deleted);
}

static void anonymous_mapping_has_no_path(void **state)
{
	struct map_entry m;
	(void)state;

	assert_int_equal(procfs_parse_maps_line("7ffd1000-7ffd2000 rw-p 00000000 00:00 0 ", &m), 0);
	assert_int_equal(m.inode, 0);
	assert_string_equal(m.path, "");
}

static void rejects_malformed_lines(void **state)
{
	struct map_entry m;
	(void)state;

	assert_int_equal(procfs_parse_maps_line("", &m), -EINVAL);
	assert_int_equal(procfs_parse_maps_line("garbage", &m), -EINVAL);
	assert_int_equal(procfs_parse_maps_line("2000-1000 r--p 0 fe:01 1 /x", &m), -EINVAL);
	assert_int_equal(procfs_parse_maps_line("1000-2000 r--p 0 fe 1 /x", &m), -EINVAL);
}

static void stat_survives_hostile_comm(void **state)
{
	struct proc_stat st;
	(void)state;

	/* comm "a) Z 1 (b" tries to fake the state and ppid fields */
	assert_int_equal(procfs_parse_stat("123 (a) Z 1 (b) S 77 123 123 0 -1 4194560 100 0 0 0 1 "
					   "2 0 0 20 0 1 0 98765 1000 200",
					   &st),
			 0);
	assert_int_equal(st.state, 'S');
	assert_int_equal(st.ppid, 77);
	assert_int_equal(st.starttime, 98765);
	assert_int_equal(st.startstack, 0); /* not shown */
	assert_int_equal(procfs_parse_stat("9 (p y) R 1 9 9 0 -1 4194304 98 0 0 0 0 0 0 0 20 0 1 0 "
					   "4321 5000 300 18446744073709551615 94 95 "
					   "140737488346112 0 0",
					   &st),
			 0);
	assert_int_equal(st.starttime, 4321);
	assert_int_equal(st.startstack, 140737488346112ull);
	assert_int_equal(procfs_parse_stat("123 (x) S 1 2", &st), -EINVAL);
	assert_int_equal(procfs_parse_stat("no parenthesis", &st), -EINVAL);
}

static void recognises_pid_names(void **state)
{
	pid_t pid;
	(void)state;

	assert_true(procfs_is_pid("4242", &pid));
	assert_int_equal(pid, 4242);
	assert_false(procfs_is_pid("self", &pid));
	assert_false(procfs_is_pid("0", &pid));
	assert_false(procfs_is_pid("12a", &pid));
	assert_false(procfs_is_pid("99999999999", &pid));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parses_file_mapping),
		cmocka_unit_test(keeps_spaces_and_marks_deleted),
		cmocka_unit_test(anonymous_mapping_has_no_path),
		cmocka_unit_test(rejects_malformed_lines),
		cmocka_unit_test(stat_survives_hostile_comm),
		cmocka_unit_test(recognises_pid_names),
	};

	return cmocka_run_group_tests_name("procfs", tests, NULL, NULL);
}
