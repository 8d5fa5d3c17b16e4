// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "base/procfs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DELETED_SUFFIX " (deleted)"

int procfs_parse_maps_line(const char *line, struct map_entry *m)
{
	int path_at = -1;
	size_t n;

	memset(m, 0, sizeof(*m));
	if (sscanf(line,
		   "%" SCNx64 "-%" SCNx64 " %4s %" SCNx64 " %" SCNx32 ":%" SCNx32 " %" SCNu64 " %n",
		   &m->start, &m->end, m->perms, &m->offset, &m->dev_major, &m->dev_minor,
		   &m->inode, &path_at) != 7 ||
	    path_at < 0 || m->end <= m->start)
		return -EINVAL;
	n = strlen(line + path_at);
	if (n >= sizeof(m->path))
		return -EINVAL;
	memcpy(m->path, line + path_at, n + 1);
	if (n >= strlen(DELETED_SUFFIX) &&
	    strcmp(m->path + n - strlen(DELETED_SUFFIX), DELETED_SUFFIX) == 0) {
		m->deleted = true;
		m->path[n - strlen(DELETED_SUFFIX)] = '\0';
	}
	return 0;
}

int procfs_for_each_map(pid_t pid, maps_cb cb, void *ctx)
{
	char fname[64], *line = NULL;
	size_t cap = 0;
	ssize_t len;
	struct map_entry *m;
	FILE *f;
	int ret = 0;

	snprintf(fname, sizeof(fname), "/proc/%d/maps", pid);
	f = fopen(fname, "re");
	if (!f)
		return -errno;
	m = malloc(sizeof(*m));
	if (!m) {
		fclose(f);
		return -ENOMEM;
	}
	while ((len = getline(&line, &cap, f)) > 0) {
		if (line[len - 1] == '\n')
			line[len - 1] = '\0';
		if (procfs_parse_maps_line(line, m) || m->inode == 0 || m->path[0] != '/')
			continue;
		ret = cb(m, ctx);
		if (ret)
			break;
	}
	free(line);
	free(m);
	fclose(f);
	return ret;
}

int procfs_read_file(pid_t pid, const char *what, char *buf, size_t len)
{
	char fname[64];
	size_t got = 0;
	ssize_t n = 0;
	int fd, err = 0;

	snprintf(fname, sizeof(fname), "/proc/%d/%s", pid, what);
	fd = open(fname, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* environ and cmdline come in page-sized reads */
	while (got < len - 1 && (n = read(fd, buf + got, len - 1 - got)) > 0)
		got += (size_t)n;
	if (n < 0)
		err = -errno;
	close(fd);
	buf[got] = '\0';
	return err ? err : (int)got;
}

int procfs_read_comm(pid_t pid, char *buf, size_t len)
{
	int n = procfs_read_file(pid, "comm", buf, len);

	if (n < 0)
		return n;
	if (n > 0 && buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	return 0;
}

int procfs_read_root(pid_t pid, char *buf, size_t len)
{
	char fname[64];
	ssize_t n;

	snprintf(fname, sizeof(fname), "/proc/%d/root", pid);
	n = readlink(fname, buf, len - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

int procfs_parse_stat(const char *buf, struct proc_stat *st)
{
	const char *p = strrchr(buf, ')');
	int field;

	/* comm (field 2) may hold spaces and parentheses: count fields after the last ')'. */
	if (!p || p[1] != ' ' || !p[2])
		return -EINVAL;
	st->state = p[2];
	p += 3;
	if (*p != ' ')
		return -EINVAL;
	st->ppid = (pid_t)strtol(p + 1, NULL, 10);
	for (field = 4; field < 22 && p; field++) /* p is at the space before field 4 */
		p = strchr(p + 1, ' ');
	if (!p)
		return -EINVAL;
	st->starttime = strtoull(p + 1, NULL, 10);
	for (; field < 28 && p; field++)
		p = strchr(p + 1, ' ');
	st->startstack = p ? strtoull(p + 1, NULL, 10) : 0;
	return 0;
}

int procfs_read_stat(pid_t pid, struct proc_stat *st)
{
	char buf[1024];
	int n = procfs_read_file(pid, "stat", buf, sizeof(buf));

	if (n < 0)
		return n;
	return procfs_parse_stat(buf, st);
}

bool procfs_is_pid(const char *name, pid_t *pid)
{
	char *end;
	long v;

	if (name[0] < '1' || name[0] > '9')
		return false;
	errno = 0;
	v = strtol(name, &end, 10);
	if (*end || errno || v <= 0 || v > INT32_MAX)
		return false;
	*pid = (pid_t)v;
	return true;
}
