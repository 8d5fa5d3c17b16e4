// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "procs/cgroup_ids.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/procfs.h"

static size_t hex_run(const char *s)
{
	size_t n = 0;

	while (isxdigit((unsigned char)s[n]) && !isupper((unsigned char)s[n]))
		n++;
	return n;
}

/* The last 64-hex-digit run in the path that stands alone (between non-hex characters). */
static void find_container(const char *path, size_t len, char *out)
{
	for (size_t i = 0; i < len;) {
		size_t n = hex_run(path + i);

		if (n == CONTAINER_ID_LEN && (i == 0 || !isxdigit((unsigned char)path[i - 1]))) {
			memcpy(out, path + i, CONTAINER_ID_LEN);
			out[CONTAINER_ID_LEN] = '\0';
		}
		i += n ? n : 1;
	}
}

/* "pod" followed by a UUID written with '-' or '_'. */
static void find_pod(const char *path, size_t len, char *out)
{
	for (const char *p = path;
	     (p = strstr(p, "pod")) && (size_t)(p - path) + 3 + POD_UID_LEN <= len; p += 3) {
		const char *u = p + 3;
		bool ok = true;

		for (int k = 0; k < POD_UID_LEN && ok; k++) {
			bool dash = k == 8 || k == 13 || k == 18 || k == 23;

			ok = dash ? (u[k] == '-' || u[k] == '_') : isxdigit((unsigned char)u[k]);
		}
		if (!ok || isxdigit((unsigned char)u[POD_UID_LEN]))
			continue;
		for (int k = 0; k < POD_UID_LEN; k++)
			out[k] = u[k] == '_' ? '-' : (char)tolower((unsigned char)u[k]);
		out[POD_UID_LEN] = '\0';
	}
}

void cgroup_ids_parse(const char *text, char container[CONTAINER_ID_LEN + 1],
		      char pod[POD_UID_LEN + 1])
{
	container[0] = pod[0] = '\0';
	/* Lines are "ID:CONTROLLERS:PATH". A cgroup's name may hold ':' and '\n' (a container
	 * names its own cgroups), so every search stays within its line. */
	for (const char *line = text; *line;) {
		size_t n = strcspn(line, "\n");
		const char *end = line + n, *path = memchr(line, ':', n);

		if (path)
			path = memchr(path + 1, ':', (size_t)(end - path - 1));
		if (path) {
			path++;
			find_container(path, (size_t)(end - path), container);
			find_pod(path, (size_t)(end - path), pod);
		}
		line = *end ? end + 1 : end;
	}
}

void cgroup_ids_of(pid_t pid, char container[CONTAINER_ID_LEN + 1], char pod[POD_UID_LEN + 1])
{
	char buf[8192];

	if (procfs_read_file(pid, "cgroup", buf, sizeof(buf)) < 0)
		buf[0] = '\0';
	cgroup_ids_parse(buf, container, pod);
}
