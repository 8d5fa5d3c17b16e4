// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* See inspect.h. */
#include "procs/inspect.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/procfs.h"
#include "base/rootfs.h"
#include "procs/cgroup_ids.h"
#include "procs/service.h"

#define MAX_CANDIDATES 8

/* A file that may hold the interpreter: the executable or a libpython*.so. */
struct candidate {
	struct map_entry m; /* its mapping at file offset 0 (or its first mapping) */
	uint64_t lowest;
	bool is_exe;
};

struct scan_ctx {
	dev_t exe_dev;
	ino_t exe_ino;
	int n;
	struct candidate c[MAX_CANDIDATES];
};

static bool is_libpython(const char *path)
{
	const char *base = strrchr(path, '/');

	return strncmp(base ? base + 1 : path, "libpython", 9) == 0;
}

static int collect_candidate(const struct map_entry *m, void *arg)
{
	struct scan_ctx *s = arg;
	/* the device is checked once the candidate's visible identity is known (inspect) */
	bool is_exe = m->inode == s->exe_ino;
	int i;

	if (!is_exe && !is_libpython(m->path))
		return 0;
	for (i = 0; i < s->n; i++) {
		struct candidate *c = &s->c[i];

		if (c->m.inode == m->inode && c->m.dev_major == m->dev_major &&
		    c->m.dev_minor == m->dev_minor) {
			if (m->start < c->lowest)
				c->lowest = m->start;
			if (m->offset == 0 && c->m.offset != 0)
				c->m = *m;
			return 0;
		}
	}
	if (s->n == MAX_CANDIDATES)
		return 0;
	s->c[s->n].m = *m;
	s->c[s->n].lowest = m->start;
	s->c[s->n].is_exe = is_exe;
	s->n++;
	return 0;
}

static bool mid_exec(pid_t pid)
{
	char arg0[2];

	return procfs_read_file(pid, "cmdline", arg0, sizeof(arg0)) == 0;
}

static void fill_process(struct py_process *p, const struct candidate *c,
			 const struct py_binary *bin, int64_t load_delta)
{
	p->in_shared_lib = !c->is_exe;
	p->load_addr = c->lowest;
	p->bias = (int64_t)(c->m.start - c->m.offset) - load_delta;
	p->dev_major = c->m.dev_major;
	p->dev_minor = c->m.dev_minor;
	p->inode = c->m.inode;
	p->bin = bin;
}

int inspect_process(struct bincache *bins, pid_t pid, struct py_process **out, uint64_t *failed)
{
	char exe[64];
	struct stat st;
	struct scan_ctx *s;
	struct py_process *p;
	struct proc_stat pst = {};
	bool wants_libpython = false;
	int i, err;

	snprintf(exe, sizeof(exe), "/proc/%d/exe", pid);
	if (stat(exe, &st))
		return -ENOENT; /* gone, or a kernel thread */
	s = calloc(1, sizeof(*s));
	p = calloc(1, sizeof(*p));
	if (!s || !p) {
		err = -ENOMEM;
		goto out;
	}
	s->exe_dev = st.st_dev;
	s->exe_ino = st.st_ino;
	p->pid = pid;
	p->seen_ns = monotonic_ns();
	if (procfs_read_root(pid, p->root, sizeof(p->root)) ||
	    procfs_for_each_map(pid, collect_candidate, s)) {
		err = -ENOENT;
		goto out;
	}
	err = -ENOENT;
	for (i = 0; i < s->n; i++) {
		const struct py_binary *bin = NULL;
		int64_t load_delta = 0;
		char path[PATH_MAX];
		int fd, ierr;

		rootfs_visible_identity(pid, &s->c[i].m);
		if (s->c[i].is_exe)
			s->c[i].is_exe =
				makedev(s->c[i].m.dev_major, s->c[i].m.dev_minor) == s->exe_dev;
		if (!s->c[i].is_exe && !is_libpython(s->c[i].m.path))
			continue; /* the executable's inode number, on another device */
		rootfs_path_in_root(p->root, &s->c[i].m, path, sizeof(path));
		fd = rootfs_open_mapped(pid, path, &s->c[i].m);
		if (fd < 0) {
			log_debug("pid %d: cannot open %s: %s", pid, path, strerror(-fd));
			continue;
		}
		ierr = bincache_get(bins, fd, &s->c[i].m, &bin, &load_delta);
		close(fd);
		if (ierr) {
			(*failed)++;
			log_warn("pid %d: cannot inspect %s: %s", pid, path, strerror(-ierr));
			continue;
		}
		if (bin->is_python) {
			snprintf(p->interp_path, sizeof(p->interp_path), "%s", path);
			fill_process(p, &s->c[i], bin, load_delta);
			err = 0;
			break;
		}
		wants_libpython |= s->c[i].is_exe && bin->needs_libpython;
	}
	if (err == -ENOENT && wants_libpython)
		err = -EAGAIN;
	if (!err &&
	    (procfs_read_comm(pid, p->comm, sizeof(p->comm)) || procfs_read_stat(pid, &pst)))
		err = -ENOENT;
	/* Caught in the middle of its exec: the new image is mapped, but its arguments (and
	 * stack top) are not set yet, so its service cannot be told. Its exec event follows. */
	if (!err && mid_exec(pid))
		err = -EAGAIN;
	p->ppid = pst.ppid;
	p->starttime = pst.starttime;
	p->startstack = pst.startstack;
	if (!err) {
		service_of(pid, p->comm, p->service, sizeof(p->service));
		cgroup_ids_of(pid, p->container_id, p->pod_uid);
	}
out:
	free(s);
	if (err)
		free(p);
	else
		*out = p;
	return err;
}
