// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "gctrace.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpfstats.h"
#include "discover.h"
#include "gc.skel.h"
#include "log.h"
#include "rootfs.h"

struct gc_binary {
	struct gc_binary *next;
	uint32_t dev_major, dev_minor;
	uint64_t inode;
	int refs;
	struct bpf_link *start, *done;
};

/* The totals of processes that have exited, per (service, generation): their kernel
 * entries are folded in here and deleted, so the maps hold live processes only. */
struct retired {
	char service[64];
	int32_t generation;
	struct pyro_gc_stats st;
	uint64_t hist[PYRO_GC_BUCKETS];
};

struct gctrace {
	struct gc_bpf *skel;
	struct gc_binary *bins;
	struct gctrace_stats stats;
	struct retired *ret;
	size_t nret;
};

int gctrace__new(const struct gctrace_opts *o, struct gctrace **out)
{
	struct gctrace *g = calloc(1, sizeof(*g));
	int err;

	if (!g)
		return -ENOMEM;
	g->skel = gc_bpf__open();
	if (!g->skel) {
		err = -errno;
		goto fail;
	}
	g->skel->rodata->gc_all = o->all;
	g->skel->data->slow_ns = o->slow_ns; /* initialised, so in .data */
	err = bpf_map__reuse_fd(g->skel->maps.procs, o->procs_fd);
	if (!err)
		err = gc_bpf__load(g->skel);
	if (err) {
		log_error("cannot load the GC tracing BPF program: %s", strerror(-err));
		goto fail;
	}
	*out = g;
	return 0;
fail:
	gctrace__free(g);
	return err;
}

static void detach(struct gc_binary *b)
{
	bpf_link__destroy(b->start);
	bpf_link__destroy(b->done);
	b->start = b->done = NULL;
}

void gctrace__free(struct gctrace *g)
{
	if (!g)
		return;
	while (g->bins) {
		struct gc_binary *b = g->bins;

		g->bins = b->next;
		detach(b);
		free(b);
	}
	gc_bpf__destroy(g->skel);
	free(g->ret);
	free(g);
}

static struct gc_binary **find(struct gctrace *g, const struct py_process *p)
{
	struct gc_binary **pp = &g->bins;

	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->inode == p->inode && (*pp)->dev_major == p->dev_major &&
		    (*pp)->dev_minor == p->dev_minor)
			break;
	return pp;
}

/* Attaches both probes to the binary p runs. The file is opened inside p's root and checked
 * against the inode p maps; libbpf and the kernel are given /proc/self/fd/N, so nothing
 * resolves the path again. One uprobe per probe site serves every process of that file. */
static int attach(struct gctrace *g, const struct py_process *p, struct gc_binary *b)
{
	char path[64];
	int fd = rootfs_open_verified(p->pid, p->interp_path, p->dev_major, p->dev_minor, p->inode);
	int err = 0;

	if (fd < 0)
		return fd;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	b->start = bpf_program__attach_usdt(g->skel->progs.on_gc_start, -1, path, "python",
					    "gc__start", NULL);
	if (!b->start)
		err = -errno;
	if (!err) {
		b->done = bpf_program__attach_usdt(g->skel->progs.on_gc_done, -1, path, "python",
						   "gc__done", NULL);
		if (!b->done)
			err = -errno;
	}
	close(fd);
	if (err)
		detach(b);
	return err;
}

int gctrace__track(struct gctrace *g, const struct py_process *p)
{
	struct gc_binary **slot = find(g, p), *b = *slot;
	int err;

	if (!p->bin->caps.gc)
		return -ENOTSUP;
	if (b) {
		b->refs++;
		return 0;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->dev_major = p->dev_major;
	b->dev_minor = p->dev_minor;
	b->inode = p->inode;
	err = attach(g, p, b);
	if (err) {
		g->stats.attach_failed++;
		log_warn("pid %d: cannot attach gc__start/gc__done in %s: %s", p->pid,
			 p->interp_path, strerror(-err));
		free(b);
		return err;
	}
	g->stats.attached++;
	log_debug("attached GC probes to %s (for pid %d)", p->interp_path, p->pid);
	b->refs = 1;
	*slot = b;
	return 0;
}

void gctrace__untrack(struct gctrace *g, const struct py_process *p)
{
	struct gc_binary **slot = find(g, p), *b = *slot;

	if (!b || --b->refs > 0)
		return;
	*slot = b->next;
	detach(b);
	free(b);
}

void gctrace__set_slow_ns(struct gctrace *g, uint64_t slow_ns)
{
	/* .data is mapped into our memory: the program sees the store at once */
	g->skel->data->slow_ns = slow_ns;
}

int gctrace__events_fd(const struct gctrace *g)
{
	return bpf_map__fd(g->skel->maps.gc_events);
}

int gctrace__for_each(struct gctrace *g,
		      void (*cb)(const struct pyro_gc_key *k, const struct pyro_gc_stats *st,
				 void *ctx),
		      void *ctx)
{
	struct pyro_gc_key key, next;
	struct pyro_gc_stats st;
	int err;

	for (err = bpf_map__get_next_key(g->skel->maps.gc_stats, NULL, &next, sizeof(next)); !err;
	     err = bpf_map__get_next_key(g->skel->maps.gc_stats, &key, &next, sizeof(next))) {
		key = next;
		if (!bpf_map__lookup_elem(g->skel->maps.gc_stats, &key, sizeof(key), &st,
					  sizeof(st), 0))
			cb(&key, &st, ctx);
	}
	return err == -ENOENT ? 0 : err;
}

int gctrace__for_each_bucket(struct gctrace *g,
			     void (*cb)(const struct pyro_gc_hist_key *k, uint64_t n, void *ctx),
			     void *ctx)
{
	struct pyro_gc_hist_key key, next;
	uint64_t n;
	int err;

	for (err = bpf_map__get_next_key(g->skel->maps.gc_hist, NULL, &next, sizeof(next)); !err;
	     err = bpf_map__get_next_key(g->skel->maps.gc_hist, &key, &next, sizeof(next))) {
		key = next;
		if (key.bucket < PYRO_GC_BUCKETS &&
		    !bpf_map__lookup_elem(g->skel->maps.gc_hist, &key, sizeof(key), &n, sizeof(n),
					  0))
			cb(&key, n, ctx);
	}
	return err == -ENOENT ? 0 : err;
}

int gctrace__histogram(struct gctrace *g, const struct pyro_gc_key *k, uint64_t *counts)
{
	struct pyro_gc_hist_key key, next;
	uint64_t n;
	int err;

	memset(counts, 0, PYRO_GC_BUCKETS * sizeof(*counts));
	for (err = bpf_map__get_next_key(g->skel->maps.gc_hist, NULL, &next, sizeof(next)); !err;
	     err = bpf_map__get_next_key(g->skel->maps.gc_hist, &key, &next, sizeof(next))) {
		key = next;
		if (key.pid != k->pid || key.generation != k->generation ||
		    key.bucket >= PYRO_GC_BUCKETS)
			continue;
		if (!bpf_map__lookup_elem(g->skel->maps.gc_hist, &key, sizeof(key), &n, sizeof(n),
					  0))
			counts[key.bucket] = n;
	}
	return err == -ENOENT ? 0 : err;
}

void gctrace__stats(struct gctrace *g, struct gctrace_stats *st)
{
	struct gc_binary *b;

	*st = g->stats;
	st->binaries = 0;
	for (b = g->bins; b; b = b->next)
		st->binaries++;
	bpfstats_percpu_sum(g->skel->maps.gc_counters, PYRO_GC_COUNTER_MAX, st->kernel);
}

void gctrace__prog_stats(struct gctrace *g, uint64_t *run_ns, uint64_t *run_cnt)
{
	*run_ns = *run_cnt = 0;
	bpfstats_prog_runs(g->skel->progs.on_gc_start, run_ns, run_cnt);
	bpfstats_prog_runs(g->skel->progs.on_gc_done, run_ns, run_cnt);
}

/* Buckets 0-7 hold 0-7 ns; then bucket 8 * msb + s covers [(8 + s) << (msb - 3),
 * (9 + s) << (msb - 3)) (bpf/gc.bpf.c). A duration of 8 ns or more has msb >= 3, so buckets
 * 8-23 are never used: they are empty ranges at 8 ns. */
#define FIRST_LOG_BUCKET (8 * PYRO_GC_SUB_BITS)

uint64_t gc_bucket_lower(uint32_t b)
{
	if (b < 8)
		return b;
	if (b < FIRST_LOG_BUCKET)
		return 8;
	return (uint64_t)(8 + b % 8) << (b / 8 - PYRO_GC_SUB_BITS);
}

uint64_t gc_bucket_upper(uint32_t b)
{
	if (b < 8)
		return b + 1;
	if (b < FIRST_LOG_BUCKET)
		return 8;
	return (uint64_t)(9 + b % 8) << (b / 8 - PYRO_GC_SUB_BITS);
}

uint64_t gc_quantile(const uint64_t *counts, double q, uint64_t max_ns)
{
	uint64_t total = 0, seen = 0, up;
	uint32_t b;

	for (b = 0; b < PYRO_GC_BUCKETS; b++)
		total += counts[b];
	if (!total)
		return 0;
	for (b = 0; b < PYRO_GC_BUCKETS; b++) {
		seen += counts[b];
		if ((double)seen >= q * (double)total) {
			up = gc_bucket_upper(b);
			return up < max_ns ? up : max_ns;
		}
	}
	return max_ns;
}

/* ---- exited processes ---- */

static struct retired *retired_of(struct gctrace *g, const char *service, int32_t generation)
{
	struct retired *r;
	size_t i;

	for (i = 0; i < g->nret; i++)
		if (g->ret[i].generation == generation && !strcmp(g->ret[i].service, service))
			return &g->ret[i];
	r = realloc(g->ret, (g->nret + 1) * sizeof(*r));
	if (!r)
		return NULL;
	g->ret = r;
	r = &g->ret[g->nret++];
	memset(r, 0, sizeof(*r));
	snprintf(r->service, sizeof(r->service), "%s", service);
	r->generation = generation;
	return r;
}

static const struct gc_retiree *retiree(const struct gc_retiree *list, size_t n, uint32_t pid)
{
	size_t lo = 0, hi = n;

	while (lo < hi) { /* list is sorted by pid */
		size_t mid = (lo + hi) / 2;

		if (list[mid].pid == pid)
			return &list[mid];
		if (list[mid].pid < pid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int by_pid(const void *a, const void *b)
{
	const struct gc_retiree *x = a, *y = b;

	return x->pid < y->pid ? -1 : x->pid > y->pid;
}

/* Collects the keys of one map whose pid is retiring (the pid is the key's first field),
 * then folds and deletes them: deleting while walking would restart the walk. */
static int retire_map(struct gctrace *g, struct bpf_map *map, size_t key_size,
		      const struct gc_retiree *list, size_t n, bool hist)
{
	uint8_t key[sizeof(struct pyro_gc_hist_key)], next[sizeof(key)], *keys = NULL;
	size_t nkeys = 0, cap = 0, i;
	int err;

	for (err = bpf_map__get_next_key(map, NULL, next, key_size); !err;
	     err = bpf_map__get_next_key(map, key, next, key_size)) {
		uint32_t pid;

		memcpy(key, next, key_size);
		memcpy(&pid, key, sizeof(pid));
		if (!retiree(list, n, pid))
			continue;
		if (nkeys == cap) {
			uint8_t *k = realloc(keys, (cap = cap ? cap * 2 : 64) * key_size);

			if (!k)
				break;
			keys = k;
		}
		memcpy(keys + nkeys++ * key_size, key, key_size);
	}
	for (i = 0; i < nkeys; i++) {
		const uint8_t *k = keys + i * key_size;
		uint32_t pid;
		int32_t gen;
		struct retired *r;

		memcpy(&pid, k, sizeof(pid));
		memcpy(&gen, k + sizeof(pid), sizeof(gen));
		r = retired_of(g, retiree(list, n, pid)->service, gen);
		if (hist) {
			const struct pyro_gc_hist_key *hk = (const void *)k;
			uint64_t v;

			if (r && hk->bucket < PYRO_GC_BUCKETS &&
			    !bpf_map__lookup_elem(map, k, key_size, &v, sizeof(v), 0))
				r->hist[hk->bucket] += v;
		} else {
			struct pyro_gc_stats st;

			if (r && !bpf_map__lookup_elem(map, k, key_size, &st, sizeof(st), 0)) {
				r->st.count += st.count;
				r->st.total_ns += st.total_ns;
				r->st.collected += st.collected;
				if (st.max_ns > r->st.max_ns)
					r->st.max_ns = st.max_ns;
			}
		}
		bpf_map__delete_elem(map, k, key_size, 0);
	}
	free(keys);
	return 0;
}

int gctrace__retire(struct gctrace *g, struct gc_retiree *list, size_t n)
{
	if (!n)
		return 0;
	qsort(list, n, sizeof(*list), by_pid);
	retire_map(g, g->skel->maps.gc_stats, sizeof(struct pyro_gc_key), list, n, false);
	retire_map(g, g->skel->maps.gc_hist, sizeof(struct pyro_gc_hist_key), list, n, true);
	return 0;
}

void gctrace__for_each_retired(struct gctrace *g,
			       void (*cb)(const char *service, int generation,
					  const struct pyro_gc_stats *st, const uint64_t *hist,
					  void *ctx),
			       void *ctx)
{
	for (size_t i = 0; i < g->nret; i++)
		cb(g->ret[i].service, g->ret[i].generation, &g->ret[i].st, g->ret[i].hist, ctx);
}
