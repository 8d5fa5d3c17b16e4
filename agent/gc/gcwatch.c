// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "gc/gcwatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gc/alerter.h"
#include "gc/gc_metrics.h"
#include "gc/gctrace.h"
#include "profile/intern.h"
#include "procs/seen.h"
#include "python/symbolizer.h"

void gcwatch_stack_text(struct symbolizer *sym, const struct py_process *p,
			const struct pyro_gc_event *e, char *out, size_t len)
{
	struct py_target target = p ? discover_target(p) : (struct py_target){ 0 };
	struct py_frame_sym fs;
	size_t at = 0;
	uint32_t i;

	out[0] = '\0';
	for (i = 0; p && i < e->stack.depth && i < PYRO_SEG_FRAMES && at + 1 < len; i++) {
		symbolizer_frame(sym, &target, e->stack.frames[i] & PYRO_FRAME_CODE_MASK,
				 (uint32_t)(e->stack.frames[i] >> PYRO_FRAME_INSTR_SHIFT), &fs);
		at += (size_t)snprintf(out + at, len - at, "%s%s (%s:%d)", i ? "\n" : "", fs.name,
				       fs.file, fs.line);
	}
}

void gcwatch_alert_pause(struct alerter *a, struct symbolizer *sym, const struct py_process *p,
			 const struct pyro_gc_event *e)
{
	char stack[2048];

	gcwatch_stack_text(sym, p, e, stack, sizeof(stack));
	alerter_pause(a, p ? p->service : "unknown", e->generation, e->duration_ns, stack);
}

struct alert_hists {
	const struct seen *seen;
	struct intern keys; /* "service\0generation" */
	uint64_t (*counts)[PYRO_GC_BUCKETS];
	size_t cap;
};

static uint64_t *counts_of(struct alert_hists *h, const char *service, int generation)
{
	char key[96];
	int len = snprintf(key, sizeof(key), "%s%c%d", service, '\0', generation);
	int64_t id = intern_put(&h->keys, key, (size_t)len);

	if (id < 0 || !intern_grow((void **)&h->counts, &h->cap, (size_t)id, sizeof(*h->counts)))
		return NULL;
	return h->counts[id];
}

static void alert_bucket(const struct pyro_gc_hist_key *k, uint64_t n, void *ctx)
{
	struct alert_hists *h = ctx;
	bool later;
	const struct py_process *p = gc_metrics_key_owner(h->seen, &k->k, &later);
	uint64_t *c = later ? NULL : counts_of(h, p ? p->service : "unknown", k->k.generation);

	if (c)
		c[k->bucket] += n;
}

/* Exited processes' pauses stay in the window's totals, so a window never sees them go. */
static void alert_retired(const char *service, int generation, const struct pyro_gc_stats *st,
			  const uint64_t *hist, void *ctx)
{
	uint64_t *c = counts_of(ctx, service, generation);

	(void)st;
	for (uint32_t b = 0; c && b < PYRO_GC_BUCKETS; b++)
		c[b] += hist[b];
}

void gcwatch_alert_tick(struct alerter *a, struct gctrace *g, const struct seen *seen, bool p99)
{
	struct alert_hists h = { .seen = seen };
	size_t i;

	intern_init(&h.keys);
	if (p99 && gctrace_for_each_bucket(g, alert_bucket, &h) == 0) {
		gctrace_for_each_retired(g, alert_retired, &h);
		for (i = 0; i < h.keys.n; i++) {
			const char *key = intern_key(&h.keys, (uint32_t)i, NULL);

			alerter_histogram(a, key, atoi(key + strlen(key) + 1), h.counts[i]);
		}
	}
	intern_free(&h.keys);
	free(h.counts);
	alerter_tick(a);
}
