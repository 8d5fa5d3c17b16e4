// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* pyrometer gc's summary: a row per process and generation (count, total, max, p50, p99),
 * and the accounting of pause events received and lost. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/log.h"
#include "base/text.h"
#include "cli/gc_cmd.h"

#define MAX_SUMMARIES 4096

struct summaries {
	struct summary s[MAX_SUMMARIES];
	int n;
	struct gc_cmd *c;
};

static void fill_row(struct summary *r, struct gc_cmd *c, const struct pyro_gc_key *k,
		     const struct pyro_gc_stats *st, const uint64_t *hist)
{
	const struct py_process *p = seen_get(&c->seen, (pid_t)k->pid);

	r->key = *k;
	r->block = c->block;
	r->st = *st;
	r->starttime = p ? p->starttime : 0;
	snprintf(r->comm, sizeof(r->comm), "%s", p ? p->comm : "?");
	r->p50 = gchist_quantile(hist, 0.50, st->max_ns);
	r->p99 = gchist_quantile(hist, 0.99, st->max_ns);
	r->p999 = gchist_quantile(hist, 0.999, st->max_ns);
}

/* A live pid's figures for one generation, summed over the images it has exec'd through
 * (one process here), built from one walk of each map. */
struct live {
	struct pyro_gc_key key; /* image 0 */
	struct pyro_gc_stats st;
};

struct lives {
	struct live *v;
	uint64_t (*hist)[PYRO_GC_BUCKETS]; /* v[i]'s */
	size_t n, cap;
	bool oom;
};

static int by_pid_gen(const void *a, const void *b)
{
	const struct pyro_gc_key *x = a, *y = b;

	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	return (x->generation > y->generation) - (x->generation < y->generation);
}

static void add_live(const struct pyro_gc_key *k, const struct pyro_gc_stats *st, void *ctx)
{
	struct lives *l = ctx;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct live *v = realloc(l->v, cap * sizeof(*v));

		if (!v) {
			l->oom = true;
			return;
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n].key = (struct pyro_gc_key){ .pid = k->pid, .generation = k->generation };
	l->v[l->n++].st = *st;
}

static void add_live_bucket(const struct pyro_gc_hist_key *k, uint64_t n, void *ctx)
{
	struct lives *l = ctx;
	struct pyro_gc_key key = { .pid = k->k.pid, .generation = k->k.generation };
	struct live *v = bsearch(&key, l->v, l->n, sizeof(*l->v), by_pid_gen);

	if (v && k->bucket < PYRO_GC_BUCKETS)
		l->hist[v - l->v][k->bucket] += n;
}

/* Folds rows of the same (pid, generation), l->v sorted by it. */
static void merge_images(struct lives *l)
{
	size_t out = 0;

	for (size_t i = 0; i < l->n; i++) {
		struct live *o = out ? &l->v[out - 1] : NULL;
		const struct pyro_gc_stats *st = &l->v[i].st;

		if (!o || by_pid_gen(&o->key, &l->v[i].key)) {
			l->v[out++] = l->v[i];
			continue;
		}
		gctrace_stats_add(&o->st, st);
	}
	l->n = out;
}

/* The rows of the processes still running. */
static void collect_live(struct summaries *all)
{
	struct lives l = { 0 };

	gctrace_for_each(all->c->gc, add_live, &l);
	qsort(l.v, l.n, sizeof(*l.v), by_pid_gen);
	merge_images(&l);
	if (l.n > (size_t)(MAX_SUMMARIES - all->n))
		l.n = (size_t)(MAX_SUMMARIES - all->n);
	if (l.n && !(l.hist = calloc(l.n, sizeof(*l.hist)))) {
		l.oom = true;
		l.n = 0;
	}
	gctrace_for_each_bucket(all->c->gc, add_live_bucket, &l);
	if (l.oom)
		log_warn("out of memory: the summary lacks some processes");
	all->c->block++;
	for (size_t i = 0; i < l.n; i++)
		fill_row(&all->s[all->n++], all->c, &l.v[i].key, &l.v[i].st, l.hist[i]);
	free(l.hist);
	free(l.v);
}

/* At a process's exit: its rows are kept here, and its kernel entries folded into its
 * service's totals (the metrics' counters never go back) and deleted, so that a new
 * process given the same pid starts from zero. */
static void keep_row(const struct pyro_gc_key *k, const struct pyro_gc_stats *st,
		     const uint64_t *hist, void *ctx)
{
	struct gc_cmd *c = ctx;

	if (c->nfinished == c->finished_cap) {
		size_t cap = c->finished_cap ? c->finished_cap * 2 : 64;
		struct summary *n = realloc(c->finished, cap * sizeof(*n));

		if (!n)
			return;
		c->finished = n;
		c->finished_cap = cap;
	}
	fill_row(&c->finished[c->nfinished++], c, k, st, hist);
}

void gc_cmd_finish_process(struct gc_cmd *c, const struct py_process *p, uint64_t image)
{
	struct gc_retiree r = { .pid = (uint32_t)p->pid, .image = image };

	snprintf(r.service, sizeof(r.service), "%s", p->service);
	c->block++;
	gctrace_process(c->gc, (uint32_t)p->pid, image, keep_row, c);
	gctrace_retire(c->gc, &r, 1);
}

static int by_pid_start_gen(const void *a, const void *b)
{
	const struct summary *x = a, *y = b;

	if (x->key.pid != y->key.pid)
		return x->key.pid < y->key.pid ? -1 : 1;
	if (x->starttime != y->starttime)
		return x->starttime < y->starttime ? -1 : 1;
	if (x->block != y->block) /* the images a pid exec'd through, in order */
		return x->block < y->block ? -1 : 1;
	return (x->key.generation > y->key.generation) - (x->key.generation < y->key.generation);
}

void gc_cmd_print_summary(struct gc_cmd *c)
{
	static struct summaries all;
	struct json j;
	int i;

	all.n = 0;
	all.c = c;
	for (size_t k = 0; k < c->nfinished && all.n < MAX_SUMMARIES; k++)
		all.s[all.n++] = c->finished[k];
	collect_live(&all);
	qsort(all.s, all.n, sizeof(all.s[0]), by_pid_start_gen);
	if (!c->json)
		printf("%7s %-15s %3s %8s %12s %10s %10s %10s %12s\n", "PID", "COMM", "GEN",
		       "COUNT", "TOTAL ms", "MAX ms", "P50 ms", "P99 ms", "COLLECTED");
	for (i = 0; i < all.n; i++) {
		const struct summary *s = &all.s[i];
		uint64_t p50 = s->p50, p99 = s->p99, p999 = s->p999;

		if (!c->json) {
			char comm[4 * sizeof(s->comm)];

			text_escape(comm, sizeof(comm), s->comm);
			printf("%7u %-15s %3d %8llu %12.3f %10.3f %10.3f %10.3f %12lld\n",
			       s->key.pid, comm, s->key.generation, (unsigned long long)s->st.count,
			       (double)s->st.total_ns / 1e6, (double)s->st.max_ns / 1e6,
			       (double)p50 / 1e6, (double)p99 / 1e6, (long long)s->st.collected);
			continue;
		}
		json_begin(&j, stdout);
		json_obj_open(&j, NULL);
		json_str(&j, "event", "summary");
		json_i64(&j, "pid", s->key.pid);
		json_u64(&j, "start_time", s->starttime);
		json_str(&j, "comm", s->comm);
		json_i64(&j, "generation", s->key.generation);
		json_u64(&j, "count", s->st.count);
		json_u64(&j, "total_ns", s->st.total_ns);
		json_u64(&j, "max_ns", s->st.max_ns);
		json_u64(&j, "p50_ns", p50);
		json_u64(&j, "p99_ns", p99);
		json_u64(&j, "p999_ns", p999);
		json_i64(&j, "collected", s->st.collected);
		json_obj_close(&j);
		fputc('\n', stdout);
	}
}

void gc_cmd_print_losses(struct gc_cmd *c)
{
	struct gctrace_stats st;
	uint64_t run_ns, run_cnt;

	gctrace_stats(c->gc, &st);
	gctrace_prog_stats(c->gc, &run_ns, &run_cnt);
	if (run_cnt)
		log_info("bpf: %llu runs, %llu ns in all (kernel.bpf_stats_enabled)",
			 (unsigned long long)run_cnt, (unsigned long long)run_ns);
	log_info("events: %llu pause events received", (unsigned long long)c->events);
	if (st.kernel[PYRO_GC_EVENTS_LOST] || st.kernel[PYRO_GC_STATS_FULL] ||
	    st.kernel[PYRO_GC_INFLIGHT_FULL] || c->events_lost_user)
		log_warn("lost: %" PRIu64 " pause events (ring buffer full), %" PRIu64
			 " pauses (maps full)",
			 st.kernel[PYRO_GC_EVENTS_LOST] + c->events_lost_user,
			 st.kernel[PYRO_GC_STATS_FULL] + st.kernel[PYRO_GC_INFLIGHT_FULL]);
	log_info("GC probes attached to %" PRIu64 " binaries (%" PRIu64 " failed); %" PRIu64
		 " starts, %" PRIu64 " dones, %" PRIu64 " dones without a start",
		 st.attached, st.attach_failed, st.kernel[PYRO_GC_STARTS], st.kernel[PYRO_GC_DONES],
		 st.kernel[PYRO_GC_NO_START]);
	if (c->json) { /* the same accounting for programs: events + events_lost = pauses */
		struct json j;

		json_begin(&j, stdout);
		json_obj_open(&j, NULL);
		json_str(&j, "event", "accounting");
		json_u64(&j, "events", c->events);
		json_u64(&j, "events_lost", st.kernel[PYRO_GC_EVENTS_LOST] + c->events_lost_user);
		json_u64(&j, "pauses_lost",
			 st.kernel[PYRO_GC_STATS_FULL] + st.kernel[PYRO_GC_INFLIGHT_FULL]);
		json_u64(&j, "dones_without_start", st.kernel[PYRO_GC_NO_START]);
		json_obj_close(&j);
		fputc('\n', stdout);
	}
}

/* Renders the metrics and hands them to the server thread. */
