// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Exited processes: their kernel GC entries are folded into per-service totals and deleted,
 * so the maps hold live processes only; entries of processes discovery never named are
 * folded into service "unknown". */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "gc/gctrace_impl.h"

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

_Static_assert(offsetof(struct pyro_gc_hist_key, k) == 0, "a gc key leads each key");

/* The first of list's entries for pid (list is sorted by pid), or n. */
static size_t first_of(const struct gc_retiree *list, size_t n, uint32_t pid)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (list[mid].pid < pid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int by_pid(const void *a, const void *b)
{
	const struct gc_retiree *x = a, *y = b;

	return x->pid < y->pid ? -1 : x->pid > y->pid;
}

/* The retiree a key belongs to, if any: its pid's for the key's image, else its pid's for
 * every image (an image the pid exec'd away from, then the process's exit). */
static const struct gc_retiree *retiree_of(const struct gc_retiree *list, size_t n,
					   const struct pyro_gc_key *k)
{
	const struct gc_retiree *any = NULL;

	for (size_t i = first_of(list, n, k->pid); i < n && list[i].pid == k->pid; i++) {
		if (list[i].image == k->image)
			return &list[i];
		if (!list[i].image && !any)
			any = &list[i];
	}
	return any;
}

/* Collects the keys of one map that are retiring (a struct pyro_gc_key leads every key),
 * then folds and deletes them: deleting while walking would restart the walk. */
static int retire_map(struct gctrace *g, struct bpf_map *map, size_t key_size,
		      const struct gc_retiree *list, size_t n, bool hist)
{
	uint8_t key[sizeof(struct pyro_gc_hist_key)], next[sizeof(key)], *keys = NULL;
	size_t nkeys = 0, cap = 0, i;
	int err;

	for (err = bpf_map__get_next_key(map, NULL, next, key_size); !err;
	     err = bpf_map__get_next_key(map, key, next, key_size)) {
		struct pyro_gc_key k;

		memcpy(key, next, key_size);
		memcpy(&k, key, sizeof(k));
		if (!retiree_of(list, n, &k))
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
		struct pyro_gc_key gk;
		struct retired *r;

		memcpy(&gk, k, sizeof(gk));
		r = retired_of(g, retiree_of(list, n, &gk)->service, gk.generation);
		if (hist) {
			const struct pyro_gc_hist_key *hk = (const void *)k;
			uint64_t v;

			if (r && hk->bucket < PYRO_GC_BUCKETS &&
			    !bpf_map__lookup_elem(map, k, key_size, &v, sizeof(v), 0))
				r->hist[hk->bucket] += v;
		} else {
			struct pyro_gc_stats st;

			if (r && !bpf_map__lookup_elem(map, k, key_size, &st, sizeof(st), 0))
				gctrace_stats_add(&r->st, &st);
		}
		bpf_map__delete_elem(map, k, key_size, 0);
	}
	free(keys);
	return 0;
}

int gctrace_retire(struct gctrace *g, struct gc_retiree *list, size_t n)
{
	if (!n)
		return 0;
	qsort(list, n, sizeof(*list), by_pid);
	retire_map(g, g->skel->maps.gc_stats, sizeof(struct pyro_gc_key), list, n, false);
	retire_map(g, g->skel->maps.gc_hist, sizeof(struct pyro_gc_hist_key), list, n, true);
	return 0;
}

#define UNCLAIMED_MAX 4096 /* pids folded per call: bounds the quadratic search below */

/* Adds the pids of map's keys (the pid is the first field) that keep() does not claim. */
static int unclaimed(struct bpf_map *map, size_t key_size, bool (*keep)(uint32_t, void *),
		     void *ctx, struct gc_retiree **list, size_t *n, size_t *cap)
{
	uint8_t key[sizeof(struct pyro_gc_hist_key)], next[sizeof(key)];
	int err;

	for (err = bpf_map__get_next_key(map, NULL, next, key_size); !err;
	     err = bpf_map__get_next_key(map, key, next, key_size)) {
		uint32_t pid;
		size_t i;

		memcpy(key, next, key_size);
		memcpy(&pid, key, sizeof(pid));
		for (i = 0; i < *n && (*list)[i].pid != pid; i++)
			;
		if (i < *n || keep(pid, ctx))
			continue;
		if (*n == UNCLAIMED_MAX)
			break; /* the rest at the next call */
		if (*n == *cap) {
			size_t c = *cap ? *cap * 2 : 16;
			struct gc_retiree *l = realloc(*list, c * sizeof(*l));

			if (!l)
				return -ENOMEM;
			*list = l;
			*cap = c;
		}
		(*list)[*n].pid = pid;
		(*list)[*n].image = 0;
		snprintf((*list)[*n].service, sizeof((*list)[*n].service), "unknown");
		(*n)++;
	}
	return err == -ENOENT ? 0 : err;
}

int gctrace_retire_untracked(struct gctrace *g, bool (*keep)(uint32_t pid, void *ctx), void *ctx)
{
	struct gc_retiree *list = NULL;
	size_t n = 0, cap = 0;
	int err = unclaimed(g->skel->maps.gc_stats, sizeof(struct pyro_gc_key), keep, ctx, &list,
			    &n, &cap);

	if (!err)
		err = unclaimed(g->skel->maps.gc_hist, sizeof(struct pyro_gc_hist_key), keep, ctx,
				&list, &n, &cap);
	if (!err && n) {
		g->stats.unattributed += n;
		err = gctrace_retire(g, list, n);
	}
	free(list);
	return err;
}

void gctrace_for_each_retired(struct gctrace *g,
			      void (*cb)(const char *service, int generation,
					 const struct pyro_gc_stats *st, const uint64_t *hist,
					 void *ctx),
			      void *ctx)
{
	for (size_t i = 0; i < g->nret; i++)
		cb(g->ret[i].service, g->ret[i].generation, &g->ret[i].st, g->ret[i].hist, ctx);
}
