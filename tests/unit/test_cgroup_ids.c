// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Container ids and pod uids from cgroup paths as Docker, containerd, CRI-O and the kubelet
 * write them (cgroupfs and systemd drivers), and nothing from paths without them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "procs/cgroup_ids.h"

#define CID "3f1e0d2c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"

static void check(const char *text, const char *want_container, const char *want_pod)
{
	char c[CONTAINER_ID_LEN + 1], p[POD_UID_LEN + 1];

	cgroup_ids_parse(text, c, p);
	assert_string_equal(c, want_container);
	assert_string_equal(p, want_pod);
}

static void finds_ids(void **state)
{
	(void)state;
	check("0::/system.slice/docker-" CID ".scope\n", CID, "");
	check("12:memory:/docker/" CID "\n0::/\n", CID, "");
	check("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-"
	      "pod8f9a1b2c_3d4e_5f60_7a8b_9c0d1e2f3a4b.slice/cri-containerd-" CID ".scope\n",
	      CID, "8f9a1b2c-3d4e-5f60-7a8b-9c0d1e2f3a4b");
	check("0::/kubepods/besteffort/pod8f9a1b2c-3d4e-5f60-7a8b-9c0d1e2f3a4b/" CID "\n", CID,
	      "8f9a1b2c-3d4e-5f60-7a8b-9c0d1e2f3a4b");
	check("0::/kubepods.slice/kubepods-pod8f9a1b2c_3d4e_5f60_7a8b_9c0d1e2f3a4b.slice/crio-" CID
	      ".scope",
	      CID, "8f9a1b2c-3d4e-5f60-7a8b-9c0d1e2f3a4b");
}

static void finds_nothing_where_there_is_nothing(void **state)
{
	(void)state;
	check("0::/\n", "", "");
	check("0::/user.slice/user-0.slice/session-3.scope\n", "", "");
	check("4:memory:/process_api/92a6faa3cf15d5e487e96d9babe0d795\n", "", ""); /* 32 digits */
	check("0::/x/" CID "0\n", "", "");					   /* 65 digits */
	check("0::/podcast/pod123\n", "", "");
	check("garbage without colons", "", "");
	check("", "", "");
}

/* A container names its own cgroups, newlines included. A line without the two colons must
 * not borrow them from the next line. (The old code did, and then read past the end of the
 * text; only ASan sees that read, so the input that showed it is in fuzz_procfs's corpus.) */
static void a_line_without_colons_stays_within_itself(void **state)
{
	(void)state;
	check("0::/a\nno colons here\n0::/docker/" CID "\n", CID, "");
	check("0::/a\nno colons\n0:x", "", "");
	check("0:x\n0::/" CID, CID, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(finds_ids),
		cmocka_unit_test(finds_nothing_where_there_is_nothing),
		cmocka_unit_test(a_line_without_colons_stays_within_itself),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
