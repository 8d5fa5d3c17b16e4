// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* See ldso_hook.h. */
#include "usdt/ldso_hook.h"

#include <bpf/libbpf.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/rootfs.h"
#include "procs/discover.h"
#include "python/elf_file.h"
#include "python/usdt_notes.h"
#include "usdt/uprobes.h"

struct watched {
	uint32_t dev_major, dev_minor;
	uint64_t inode;
	struct bpf_link *link; /* NULL: we tried and failed */
};

struct ldso_hook {
	struct discover *disc;
	struct bpf_program *prog;
	struct watched files[LDSO_HOOK_MAX];
	int n;
	struct ldso_hook_stats stats;
};

void ldso_hook_free(struct ldso_hook *h)
{
	int fds[LDSO_HOOK_MAX], n = 0, i;

	if (!h)
		return;
	discover_watch_ldso(h->disc, NULL, NULL);
	for (i = 0; i < h->n; i++)
		if (h->files[i].link)
			fds[n++] = bpf_link__fd(h->files[i].link);
	/* the broker holds them now: closing ours removes nothing, and costs no grace period */
	if (n && uprobes_hand_over(fds, n) == 0)
		for (i = 0; i < h->n; i++)
			if (h->files[i].link)
				bpf_link__disconnect(h->files[i].link);
	for (i = 0; i < h->n; i++)
		bpf_link__destroy(h->files[i].link);
	free(h);
}

/* The uprobe at _dl_debug_state's entry in the ld.so open as fd. */
static int attach(struct ldso_hook *h, int fd, struct bpf_link **link)
{
	struct usdt_probe site = {};
	struct elf_file *ef;
	uint64_t addr, size;
	int err;

	if ((err = elf_file_open_fd(fd, &ef)))
		return err;
	err = elf_file_symbol(ef, UPROBES_DL_DEBUG_STATE, &addr, &size);
	if (!err)
		err = elf_file_vaddr_to_exec_offset(ef, addr, &site.pc_offset);
	elf_file_free(ef);
	return err ?: uprobes_attach(h->prog, fd, &site, 0, link);
}

/* Watches the ld.so that process pid maps as m, unless its file is watched (or failed). */
static void track(pid_t pid, const struct map_entry *m, void *ctx)
{
	struct ldso_hook *h = ctx;
	char root[PATH_MAX], path[PATH_MAX];
	struct map_entry vis = *m;
	struct watched *w;
	int fd, err;

	for (int i = 0; i < h->n; i++)
		if (h->files[i].inode == m->inode && h->files[i].dev_major == m->dev_major &&
		    h->files[i].dev_minor == m->dev_minor)
			return;
	if (h->n == LDSO_HOOK_MAX) {
		h->stats.refused++;
		return;
	}
	w = &h->files[h->n++];
	w->dev_major = m->dev_major;
	w->dev_minor = m->dev_minor;
	w->inode = m->inode;
	if (procfs_read_root(pid, root, sizeof(root))) {
		h->n--; /* gone: another process will show us this file */
		return;
	}
	rootfs_visible_identity(pid, &vis);
	rootfs_path_in_root(root, &vis, path, sizeof(path));
	fd = rootfs_open_mapped(pid, path, &vis);
	if (fd < 0) {
		h->n--;
		return;
	}
	err = attach(h, fd, &w->link);
	close(fd);
	if (err) {
		w->link = NULL;
		h->stats.failed++;
		log_warn("cannot watch %s for interpreters loaded by dlopen: %s", m->path,
			 strerror(-err));
		return;
	}
	h->stats.attached++;
	log_debug("watching %s (pid %d's ld.so) for dlopen", m->path, pid);
}

static int track_if_ldso(const struct map_entry *m, void *ctx)
{
	if (!procfs_is_ldso(m->path))
		return 0;
	track(getpid(), m, ctx);
	return 1;
}

int ldso_hook_new(struct discover *d, struct ldso_hook **out)
{
	struct ldso_hook *h;
	int err;

	if (!discover_dl_hook(d))
		return -EINVAL;
	if (!(h = calloc(1, sizeof(*h))))
		return -ENOMEM;
	h->disc = d;
	h->prog = discover_dl_hook(d);
	err = procfs_for_each_map(getpid(), track_if_ldso, h);
	if (err != 1)
		log_warn("cannot find this host's ld.so in our own maps: %s",
			 strerror(err < 0 ? -err : ENOENT));
	discover_watch_ldso(d, track, h);
	*out = h;
	return 0;
}

void ldso_hook_stats(const struct ldso_hook *h, struct ldso_hook_stats *st)
{
	*st = h->stats;
}
