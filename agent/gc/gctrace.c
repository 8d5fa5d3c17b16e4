// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "gc/gctrace.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/bpfload.h"
#include "base/kernel.h"
#include "base/bpfstats.h"
#include "procs/discover.h"
#include "gc.skel.h"
#include "base/log.h"
#include "gc/gctrace_impl.h"

/* gc__start's and gc__done's only argument (generation, collected) goes in the cookie. */
static int new_bins(struct gctrace *g, uint64_t linger_ns)
{
	struct binattach_opts ao = {
		.what = "GC",
		.probes = { { "gc__start", 0, g->start }, { "gc__done", 0, g->done } },
		.nprobes = 2,
		.max_uprobes = GC_MAX_UPROBES,
		.linger_ns = linger_ns,
	};

	return binattach_new(&ao, &g->bins);
}

int gctrace_new(const struct gctrace_opts *o, struct gctrace **out)
{
	struct gctrace *g;
	int err = kernel_require(KERNEL_CAP_GC, "GC pauses");

	if (err)
		return err;
	if (!(g = calloc(1, sizeof(*g))))
		return -ENOMEM;
	g->skel = gc_bpf__open();
	if (!g->skel) {
		err = -errno;
		goto fail;
	}
	g->skel->rodata->gc_all = o->all;
	g->start = bpfload_pick(g->skel->progs.on_gc_start, g->skel->progs.on_gc_start_nopreempt);
	g->done = bpfload_pick(g->skel->progs.on_gc_done, g->skel->progs.on_gc_done_nopreempt);
	g->skel->data->slow_ns = o->slow_ns; /* initialised, so in .data */
	err = bpf_map__reuse_fd(g->skel->maps.procs, o->procs_fd);
	if (!err)
		err = bpfload_done(g->skel->obj, "gc", gc_bpf__load(g->skel));
	if (err) {
		log_error("cannot load the GC tracing BPF program: %s", strerror(-err));
		kernel_refused(KERNEL_CAP_GC, err);
		goto fail;
	}
	if ((err = new_bins(g, o->linger_ns)))
		goto fail;
	*out = g;
	return 0;
fail:
	gctrace_free(g);
	return err;
}

int gctrace_hand_over(struct gctrace *g)
{
	return binattach_hand_over(g->bins);
}

void gctrace_free(struct gctrace *g)
{
	if (!g)
		return;
	binattach_free(g->bins);
	gc_bpf__destroy(g->skel);
	free(g->ret);
	free(g);
}

int gctrace_track(struct gctrace *g, const struct py_process *p)
{
	if (!p->bin->caps.gc)
		return -ENOTSUP;
	return binattach_track(g->bins, p);
}

void gctrace_untrack(struct gctrace *g, const struct py_process *p)
{
	binattach_untrack(g->bins, p);
}

void gctrace_expire(struct gctrace *g)
{
	binattach_expire(g->bins);
}

int gctrace_status(struct gctrace *g, const struct py_process *p, const char **reason,
		   const char **why)
{
	if (!p->bin->caps.gc) {
		*reason = p->bin->caps.no_gc_label;
		*why = p->bin->caps.no_gc;
		return 0;
	}
	return binattach_status(g->bins, p, reason, why);
}

static bool has_gc(const struct py_binary *b)
{
	return b->caps.gc;
}

void gctrace_pin_installed(struct gctrace *g)
{
	binattach_pin_installed(g->bins, has_gc);
}

void gctrace_set_linger_ns(struct gctrace *g, uint64_t linger_ns)
{
	binattach_set_linger_ns(g->bins, linger_ns);
}

void gctrace_set_slow_ns(struct gctrace *g, uint64_t slow_ns)
{
	/* .data is mapped into our memory: the program sees the store at once */
	g->skel->data->slow_ns = slow_ns;
}

int gctrace_events_fd(const struct gctrace *g)
{
	return bpf_map__fd(g->skel->maps.gc_events);
}

int gctrace_for_each(struct gctrace *g,
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

int gctrace_for_each_bucket(struct gctrace *g,
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

void gctrace_stats_add(struct pyro_gc_stats *sum, const struct pyro_gc_stats *st)
{
	sum->count += st->count;
	sum->total_ns += st->total_ns;
	sum->collected += st->collected;
	if (st->max_ns > sum->max_ns)
		sum->max_ns = st->max_ns;
}

int gctrace_process(struct gctrace *g, uint32_t pid, uint64_t image,
		    void (*cb)(const struct pyro_gc_key *k, const struct pyro_gc_stats *st,
			       const uint64_t *hist, void *ctx),
		    void *ctx)
{
	struct pyro_gc_key key, next, mine[PYRO_GC_MAX_GENERATIONS];
	struct pyro_gc_stats st, sum[PYRO_GC_MAX_GENERATIONS] = { 0 };
	uint64_t hist[PYRO_GC_BUCKETS];
	int n = 0, i, err;

	/* the figures first, summed over the images asked for: the histogram walks below
	 * would restart this walk */
	for (err = bpf_map__get_next_key(g->skel->maps.gc_stats, NULL, &next, sizeof(next)); !err;
	     err = bpf_map__get_next_key(g->skel->maps.gc_stats, &key, &next, sizeof(next))) {
		key = next;
		if (key.pid != pid || (image && key.image != image) ||
		    bpf_map__lookup_elem(g->skel->maps.gc_stats, &key, sizeof(key), &st, sizeof(st),
					 0))
			continue;
		for (i = 0; i < n && mine[i].generation != key.generation; i++)
			;
		if (i == n && n == PYRO_GC_MAX_GENERATIONS)
			continue;
		if (i == n)
			mine[n++] = (struct pyro_gc_key){ .pid = pid,
							  .generation = key.generation,
							  .image = image };
		gctrace_stats_add(&sum[i], &st);
	}
	for (i = 0; i < n; i++)
		if (!gctrace_histogram(g, &mine[i], hist))
			cb(&mine[i], &sum[i], hist, ctx);
	return err == -ENOENT ? 0 : err;
}

int gctrace_histogram(struct gctrace *g, const struct pyro_gc_key *k, uint64_t *counts)
{
	struct pyro_gc_hist_key key, next;
	uint64_t n;
	int err;

	memset(counts, 0, PYRO_GC_BUCKETS * sizeof(*counts));
	for (err = bpf_map__get_next_key(g->skel->maps.gc_hist, NULL, &next, sizeof(next)); !err;
	     err = bpf_map__get_next_key(g->skel->maps.gc_hist, &key, &next, sizeof(next))) {
		key = next;
		if (key.k.pid != k->pid || key.k.generation != k->generation ||
		    (k->image && key.k.image != k->image) || key.bucket >= PYRO_GC_BUCKETS)
			continue;
		if (!bpf_map__lookup_elem(g->skel->maps.gc_hist, &key, sizeof(key), &n, sizeof(n),
					  0))
			counts[key.bucket] += n;
	}
	return err == -ENOENT ? 0 : err;
}

void gctrace_stats(struct gctrace *g, struct gctrace_stats *st)
{
	struct binattach_stats a;

	binattach_stats(g->bins, &a);
	*st = g->stats;
	st->attached = a.attached;
	st->attach_failed = a.attach_failed;
	st->binaries = a.binaries;
	st->uprobes = a.uprobes;
	st->refused = a.refused;
	st->sites_dropped = a.sites_dropped;
	bpfstats_percpu_sum(g->skel->maps.gc_counters, PYRO_GC_COUNTER_MAX, st->kernel);
}

void gctrace_prog_stats(struct gctrace *g, uint64_t *run_ns, uint64_t *run_cnt)
{
	*run_ns = *run_cnt = 0;
	bpfstats_prog_runs(g->start, run_ns, run_cnt);
	bpfstats_prog_runs(g->done, run_ns, run_cnt);
}
