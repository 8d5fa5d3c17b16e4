// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "gc/gc_metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "gc/gctrace.h"
#include "profile/intern.h"
#include "base/http_server.h"
#include "base/text.h"
#include "procs/seen.h"

/* Histogram bounds in seconds, from 100 us (a young collection) to 10 s. A fine bucket
 * (12.5 % wide) straddling a bound is counted in the next one. */
static const double le_s[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
			       0.05,   0.1,	0.25,	0.5,   1,      2.5,   5,    10 };
#define NLE (sizeof(le_s) / sizeof(le_s[0]))

struct series {
	uint64_t le[NLE], count, sum_ns;
	int64_t collected;
};

struct agg {
	struct intern keys; /* "service\0generation" */
	struct series *s;
	size_t cap;
	struct gctrace *g;
	const struct seen *seen;
	bool pid_label;
	int err;
};

/* Series key: "service\0generation\0pid" (pid empty without pid_label). */
static struct series *series_of(struct agg *a, const char *service, int generation, uint32_t pid)
{
	char key[112], p[16] = "";
	int n;

	if (a->pid_label)
		snprintf(p, sizeof(p), "%u", pid);
	n = snprintf(key, sizeof(key), "%s%c%d%c%s", service, '\0', generation, '\0', p);
	int64_t id = intern_put(&a->keys, key, (size_t)n);

	if (id < 0)
		return NULL;
	if ((size_t)id >= a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 16;
		struct series *g = realloc(a->s, cap * sizeof(*g));

		if (!g)
			return NULL;
		memset(g + a->cap, 0, (cap - a->cap) * sizeof(*g));
		a->s = g;
		a->cap = cap;
	}
	return &a->s[id];
}

const struct py_process *gc_metrics_key_owner(const struct seen *seen, const struct pyro_gc_key *k,
					      bool *later)
{
	const struct py_process *p = seen_get(seen, (pid_t)k->pid);

	/* an image unknown on either side (unread) is taken for the one seen */
	*later = p && p->startstack && k->image && k->image != p->startstack;
	return *later ? NULL : p;
}

/* The series k's figures go to, or NULL (a->err set if out of memory) */
static struct series *series_of_key(struct agg *a, const struct pyro_gc_key *k)
{
	bool later;
	const struct py_process *p = gc_metrics_key_owner(a->seen, k, &later);
	struct series *s;

	if (later)
		return NULL;
	s = series_of(a, p ? p->service : "unknown", k->generation, k->pid);
	if (!s)
		a->err = -ENOMEM;
	return s;
}

static void add_stats(const struct pyro_gc_key *k, const struct pyro_gc_stats *st, void *ctx)
{
	struct series *s = series_of_key(ctx, k);

	if (!s)
		return;
	s->sum_ns += st->total_ns;
	s->collected += st->collected;
}

/* Counts come from the histogram, so that +Inf, _count and the buckets always agree. */
static void add_count(struct series *s, uint32_t bucket, uint64_t n)
{
	size_t i;

	s->count += n;
	for (i = 0; i < NLE; i++)
		if ((double)gchist_bucket_upper(bucket) <= le_s[i] * 1e9)
			s->le[i] += n;
}

static void add_bucket(const struct pyro_gc_hist_key *k, uint64_t n, void *ctx)
{
	struct series *s = series_of_key(ctx, &k->k);

	if (s)
		add_count(s, k->bucket, n);
}

/* Processes that have exited still count: counters never go back. */
static void add_retired(const char *service, int generation, const struct pyro_gc_stats *st,
			const uint64_t *hist, void *ctx)
{
	struct agg *a = ctx;
	struct series *s = series_of(a, service, generation, 0);
	uint32_t b;

	if (!s) {
		a->err = -ENOMEM;
		return;
	}
	s->sum_ns += st->total_ns;
	s->collected += st->collected;
	for (b = 0; b < PYRO_GC_BUCKETS; b++)
		if (hist[b])
			add_count(s, b, hist[b]);
}

static void labels(FILE *f, const char *key, size_t len)
{
	const char *gen = key + strlen(key) + 1, *pid = gen + strlen(gen) + 1;

	fputs("service_name=\"", f);
	text_label_value(f, key);
	fprintf(f, "\",generation=\"%s\"", gen);
	if (*pid)
		fprintf(f, ",pid=\"%s\"", pid);
	(void)len;
}

static void write_series(FILE *f, const struct agg *a)
{
	size_t id, i, len;

	fputs("# HELP python_gc_pause_seconds CPython garbage-collection pauses (gc__start to "
	      "gc__done).\n# TYPE python_gc_pause_seconds histogram\n",
	      f);
	for (id = 0; id < a->keys.n; id++) {
		const char *key = intern_key(&a->keys, (uint32_t)id, &len);
		const struct series *s = &a->s[id];

		for (i = 0; i < NLE; i++) {
			fputs("python_gc_pause_seconds_bucket{", f);
			labels(f, key, len);
			fprintf(f, ",le=\"%g\"} %" PRIu64 "\n", le_s[i], s->le[i]);
		}
		fputs("python_gc_pause_seconds_bucket{", f);
		labels(f, key, len);
		fprintf(f, ",le=\"+Inf\"} %" PRIu64 "\npython_gc_pause_seconds_sum{", s->count);
		labels(f, key, len);
		fprintf(f, "} %.9f\npython_gc_pause_seconds_count{", (double)s->sum_ns / 1e9);
		labels(f, key, len);
		fprintf(f, "} %" PRIu64 "\n", s->count);
	}
	fputs("# HELP python_gc_collections_total CPython garbage collections.\n"
	      "# TYPE python_gc_collections_total counter\n",
	      f);
	for (id = 0; id < a->keys.n; id++) {
		const char *key = intern_key(&a->keys, (uint32_t)id, &len);

		fputs("python_gc_collections_total{", f);
		labels(f, key, len);
		fprintf(f, "} %" PRIu64 "\n", a->s[id].count);
	}
	fputs("# HELP python_gc_objects_collected_total Objects collected or found uncollectable "
	      "(gc__done's argument).\n# TYPE python_gc_objects_collected_total counter\n",
	      f);
	for (id = 0; id < a->keys.n; id++) {
		const char *key = intern_key(&a->keys, (uint32_t)id, &len);

		fputs("python_gc_objects_collected_total{", f);
		labels(f, key, len);
		fprintf(f, "} %" PRId64 "\n", a->s[id].collected);
	}
}

struct avail {
	struct intern services;
	const char **reason; /* per service: NULL while every process is traced */
	bool *seen;
	size_t cap;
	struct gctrace *g;
};

static bool grow(struct avail *a, size_t id)
{
	size_t cap = a->cap ? a->cap * 2 : 64;
	const char **r;
	bool *s;

	if (id < a->cap)
		return true;
	while (cap <= id)
		cap *= 2;
	r = realloc(a->reason, cap * sizeof(*r));
	if (r)
		a->reason = r;
	s = r ? realloc(a->seen, cap * sizeof(*s)) : NULL;
	if (!s)
		return false;
	a->seen = s;
	memset(a->reason + a->cap, 0, (cap - a->cap) * sizeof(*r));
	memset(a->seen + a->cap, 0, (cap - a->cap) * sizeof(*s));
	a->cap = cap;
	return true;
}

static void note_avail(const struct py_process *p, void *ctx)
{
	struct avail *a = ctx;
	int64_t id = intern_put(&a->services, p->service, strlen(p->service));
	const char *reason = NULL, *why;

	if (id < 0 || !grow(a, (size_t)id))
		return;
	a->seen[id] = true;
	if (!gctrace_status(a->g, p, &reason, &why) && !a->reason[id])
		a->reason[id] = reason ? reason : "unknown";
}

/* 1 when every process of the service seen is traced, else 0 with the first reason found
 * (no_usdt, no_gc_probes, too_many_sites, attach_failed, uprobe_limit): a service whose
 * interpreter cannot be traced shows 0 here, never zero pauses. */
static void write_availability(FILE *f, const struct seen *seen, struct gctrace *g)
{
	struct avail a = { .g = g };
	size_t i;

	intern_init(&a.services);
	seen_for_each(seen, note_avail, &a);
	fputs("# HELP python_gc_tracing_available Whether GC pauses of the service are traced "
	      "(1), or why not (0, with a reason label).\n"
	      "# TYPE python_gc_tracing_available gauge\n",
	      f);
	for (i = 0; i < a.services.n && i < a.cap; i++) {
		if (!a.seen[i])
			continue;
		fputs("python_gc_tracing_available{service_name=\"", f);
		text_label_value(f, intern_key(&a.services, (uint32_t)i, NULL));
		if (a.reason[i]) {
			fputs("\",reason=\"", f);
			text_label_value(f, a.reason[i]);
		}
		fprintf(f, "\"} %d\n", !a.reason[i]);
	}
	free(a.reason);
	free(a.seen);
	intern_free(&a.services);
}

static void write_self(FILE *f, struct gctrace *g)
{
	struct gctrace_stats st;

	gctrace_stats(g, &st);
	fprintf(f,
		"# HELP pyrometer_gc_lost_total GC pauses or pause events pyrometer could not "
		"record, "
		"by reason.\n# TYPE pyrometer_gc_lost_total counter\n"
		"pyrometer_gc_lost_total{reason=\"events_ring_full\"} %" PRIu64 "\n"
		"pyrometer_gc_lost_total{reason=\"stats_map_full\"} %" PRIu64 "\n"
		"pyrometer_gc_lost_total{reason=\"inflight_unavailable\"} %" PRIu64 "\n"
		"pyrometer_gc_lost_total{reason=\"done_without_start\"} %" PRIu64 "\n"
		"# HELP pyrometer_gc_binaries_attached Interpreter binaries with GC probes "
		"attached.\n"
		"# TYPE pyrometer_gc_binaries_attached gauge\n"
		"pyrometer_gc_binaries_attached %" PRIu64 "\n"
		"# HELP pyrometer_gc_attach_failures_total GC probe attachments that failed.\n"
		"# TYPE pyrometer_gc_attach_failures_total counter\n"
		"pyrometer_gc_attach_failures_total %" PRIu64 "\n"
		"# HELP pyrometer_gc_uprobes GC uprobes held now (at most %d).\n"
		"# TYPE pyrometer_gc_uprobes gauge\n"
		"pyrometer_gc_uprobes %" PRIu64 "\n"
		"# HELP pyrometer_usdt_sites_refused_total USDT probe sites in interpreters' notes "
		"that were not attached (duplicates, outside code, too many), and binaries refused "
		"for the uprobe limit.\n"
		"# TYPE pyrometer_usdt_sites_refused_total counter\n"
		"pyrometer_usdt_sites_refused_total{reason=\"sites\"} %" PRIu64 "\n"
		"pyrometer_usdt_sites_refused_total{reason=\"uprobe_limit\"} %" PRIu64 "\n"
		"# HELP pyrometer_gc_arg_faults_total GC probe arguments the kernel could not "
		"read.\n"
		"# TYPE pyrometer_gc_arg_faults_total counter\n"
		"pyrometer_gc_arg_faults_total %" PRIu64 "\n"
		"# HELP pyrometer_gc_slow_stacks_missed_total Slow pauses reported without their "
		"Python stack: the walk's buffer was in use by a preempted probe on the same CPU.\n"
		"# TYPE pyrometer_gc_slow_stacks_missed_total counter\n"
		"pyrometer_gc_slow_stacks_missed_total %" PRIu64 "\n"
		"# HELP pyrometer_gc_unattributed_processes_total Processes whose collections were "
		"counted under service_name=\"unknown\": they exited before discovery read them.\n"
		"# TYPE pyrometer_gc_unattributed_processes_total counter\n"
		"pyrometer_gc_unattributed_processes_total %" PRIu64 "\n",
		st.kernel[PYRO_GC_EVENTS_LOST],
		st.kernel[PYRO_GC_STATS_FULL] + st.kernel[PYRO_GC_HIST_FULL],
		st.kernel[PYRO_GC_INFLIGHT_FULL], st.kernel[PYRO_GC_NO_START], st.binaries,
		st.attach_failed, GC_MAX_UPROBES, st.uprobes, st.sites_dropped, st.refused,
		st.kernel[PYRO_GC_ARG_FAULT], st.kernel[PYRO_GC_STACK_BUSY], st.unattributed);
}

int gc_metrics_write(struct gctrace *g, const struct seen *seen, bool pid_label, FILE *f)
{
	struct agg a = { .g = g, .seen = seen, .pid_label = pid_label };
	int err;

	intern_init(&a.keys);
	err = gctrace_for_each(g, add_stats, &a);
	if (!err)
		err = gctrace_for_each_bucket(g, add_bucket, &a);
	if (!err)
		gctrace_for_each_retired(g, add_retired, &a);
	if (!err && !a.err) {
		write_series(f, &a);
		write_availability(f, seen, g);
		write_self(f, g);
	}
	intern_free(&a.keys);
	free(a.s);
	return err ? err : a.err;
}
