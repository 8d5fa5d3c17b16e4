// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "calltrace.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpfstats.h"
#include "calls.skel.h"
#include "discover.h"
#include "log.h"
#include "pyinterp.h"
#include "rootfs.h"

struct link_node {
	struct link_node *next;
	struct bpf_link *link;
};

struct calltrace {
	struct calls_bpf *skel;
	bool floor;
	struct link_node *links;
};

int calltrace__new(const struct calltrace_opts *o, struct calltrace **out)
{
	struct calltrace *c = calloc(1, sizeof(*c));
	int err;

	if (!c)
		return -ENOMEM;
	c->floor = o->floor;
	c->skel = calls_bpf__open();
	if (!c->skel) {
		free(c);
		return -errno;
	}
	err = bpf_map__reuse_fd(c->skel->maps.procs, o->procs_fd);
	if (!err)
		err = calls_bpf__load(c->skel);
	if (err) {
		log_error("cannot load the call-tracing BPF program: %s", strerror(-err));
		calltrace__free(c);
		return err;
	}
	*out = c;
	return 0;
}

void calltrace__detach_all(struct calltrace *c)
{
	while (c->links) {
		struct link_node *n = c->links;

		c->links = n->next;
		bpf_link__destroy(n->link);
		free(n);
	}
}

void calltrace__free(struct calltrace *c)
{
	if (!c)
		return;
	calltrace__detach_all(c);
	calls_bpf__destroy(c->skel);
	free(c);
}

static int add_link(struct calltrace *c, struct bpf_program *prog, pid_t pid, const char *path,
		    const char *probe)
{
	struct link_node *n;
	/* pid, not -1: only this process's probe is armed */
	struct bpf_link *l = bpf_program__attach_usdt(prog, pid, path, "python", probe, NULL);

	if (!l)
		return -errno;
	n = malloc(sizeof(*n));
	if (!n) {
		bpf_link__destroy(l);
		return -ENOMEM;
	}
	n->link = l;
	n->next = c->links;
	c->links = n;
	return 0;
}

int calltrace__attach(struct calltrace *c, const struct py_process *p, const char **why)
{
	enum py_calls_mode mode = p->bin->caps.calls;
	struct bpf_program *entry = c->skel->progs.on_entry, *ret = c->skel->progs.on_return;
	char path[64];
	int fd, err;

	*why = p->bin->caps.no_calls;
	if (mode == PY_CALLS_NONE)
		return -ENOTSUP;
	if (mode == PY_CALLS_COUNTS) /* 3.11: entry does not fire for Python calls */
		entry = NULL, ret = c->skel->progs.on_return_count;
	if (c->floor)
		entry = entry ? c->skel->progs.floor_count : NULL, ret = c->skel->progs.floor_count;
	fd = rootfs_open_verified(p->pid, p->interp_path, p->dev_major, p->dev_minor, p->inode);
	if (fd < 0) {
		*why = "its interpreter binary could not be opened";
		return fd;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	err = add_link(c, ret, p->pid, path, "function__return");
	if (!err && entry)
		err = add_link(c, entry, p->pid, path, "function__entry");
	close(fd);
	if (err)
		*why = "attaching the function probes failed";
	return err;
}

/* Calls cb(key, value, ctx) for each entry of a map (keys up to 64 bytes, values 1 KiB). */
static int map_walk(struct bpf_map *map, void (*cb)(const void *k, const void *v, void *ctx),
		    void *ctx)
{
	size_t ksz = bpf_map__key_size(map), vsz = bpf_map__value_size(map);
	uint8_t key[64], next[64], val[1024];
	int err;

	if (ksz > sizeof(key) || vsz > sizeof(val))
		return -EINVAL;
	for (err = bpf_map__get_next_key(map, NULL, next, ksz); !err;
	     err = bpf_map__get_next_key(map, key, next, ksz)) {
		memcpy(key, next, ksz);
		if (!bpf_map__lookup_elem(map, key, ksz, val, vsz, 0))
			cb(key, val, ctx);
	}
	return err == -ENOENT ? 0 : err;
}

struct walk {
	void (*fn)(const struct pyro_fn_key *, const struct pyro_fn_stats *, void *);
	void (*path)(const struct pyro_path_key *, const struct pyro_path *, void *);
	void *ctx;
};

static void walk_fn(const void *k, const void *v, void *ctx)
{
	struct walk *w = ctx;

	w->fn(k, v, w->ctx);
}

static void walk_path(const void *k, const void *v, void *ctx)
{
	struct walk *w = ctx;

	w->path(k, v, w->ctx);
}

int calltrace__for_each_fn(struct calltrace *c,
			   void (*cb)(const struct pyro_fn_key *k, const struct pyro_fn_stats *s,
				      void *ctx),
			   void *ctx)
{
	struct walk w = { .fn = cb, .ctx = ctx };

	return map_walk(c->skel->maps.fn_stats, walk_fn, &w);
}

int calltrace__for_each_path(struct calltrace *c,
			     void (*cb)(const struct pyro_path_key *k, const struct pyro_path *p,
					void *ctx),
			     void *ctx)
{
	struct walk w = { .path = cb, .ctx = ctx };

	return map_walk(c->skel->maps.paths, walk_path, &w);
}

void calltrace__counters(struct calltrace *c, uint64_t out[PYRO_CALLS_COUNTER_MAX])
{
	bpfstats_percpu_sum(c->skel->maps.calls_counters, PYRO_CALLS_COUNTER_MAX, out);
}

uint64_t calltrace__floor_hits(struct calltrace *c)
{
	uint64_t n = 0;

	bpfstats_percpu_sum(c->skel->maps.floor_hits, 1, &n);
	return n;
}

void calltrace__prog_stats(struct calltrace *c, uint64_t *run_ns, uint64_t *run_cnt)
{
	struct bpf_program *progs[] = { c->skel->progs.on_entry, c->skel->progs.on_return,
					c->skel->progs.on_return_count,
					c->skel->progs.floor_count };

	*run_ns = *run_cnt = 0;
	for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
		uint64_t ns = 0, cnt = 0;

		if (!bpfstats_prog_runs(progs[i], &ns, &cnt)) {
			*run_ns += ns;
			*run_cnt += cnt;
		}
	}
}
