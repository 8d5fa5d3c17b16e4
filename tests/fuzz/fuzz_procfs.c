// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* libFuzzer target for what is parsed out of /proc/PID: the kernel writes those files, but
 * the process chooses their strings (its paths, comm, command line, cgroup names inside its
 * container). The input, NUL-terminated, goes to each parser:
 *   - as /proc/PID/maps, line by line (agent/base/procfs.c);
 *   - as /proc/PID/stat;
 *   - as /proc/PID/cgroup (agent/procs/cgroup_ids.c): ids found are well-formed or empty;
 *   - as /proc/PID/cmdline, NUL-separated (agent/procs/service.c): the service name is a
 *     NUL-terminated, printable UTF-8 label value within its buffer. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/procfs.h"
#include "base/text.h"
#include "procs/cgroup_ids.h"
#include "procs/service.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ARGS 64

static void maps_text(char *text)
{
	struct map_entry m;
	char *line, *save = NULL;

	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (procfs_parse_maps_line(line, &m))
			continue;
		if (m.end <= m.start || strlen(m.perms) > 4 ||
		    !memchr(m.path, '\0', sizeof(m.path)))
			abort();
	}
}

static void proc_stat_text(const char *text)
{
	struct proc_stat st;

	procfs_parse_stat(text, &st);
}

static bool all(const char *s, const char *set)
{
	return s[strspn(s, set)] == '\0';
}

static void cgroup_text(const char *text)
{
	char container[CONTAINER_ID_LEN + 1], pod[POD_UID_LEN + 1];

	cgroup_ids_parse(text, container, pod);
	if (container[0] &&
	    (strlen(container) != CONTAINER_ID_LEN || !all(container, "0123456789abcdef")))
		abort();
	if (pod[0] && (strlen(pod) != POD_UID_LEN || !all(pod, "0123456789abcdef-")))
		abort();
}

static void cmdline_text(const char *buf, size_t n)
{
	char *argv[MAX_ARGS], out[SERVICE_NAME_MAX];
	const char *p, *s;
	int argc = 0, len;

	/* as service.c splits /proc/PID/cmdline */
	for (p = buf; p < buf + n && argc < MAX_ARGS; p += strlen(p) + 1)
		argv[argc++] = (char *)p;
	memset(out, 'x', sizeof(out));
	service_from_argv(argv, argc, "fallback", out, sizeof(out));
	if (!memchr(out, '\0', sizeof(out)))
		abort();
	for (s = out; *s; s += len)
		if ((unsigned char)*s < 0x20 || *s == 0x7f ||
		    (len = text_utf8_len((const unsigned char *)s)) <= 0)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	cmdline_text(text, size);
	proc_stat_text(text);
	cgroup_text(text);
	maps_text(text); /* last: strtok_r writes into text */
	free(text);
	return 0;
}
