// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Call windows (calls-window > 0): every calls-every seconds, the function calls of every
 * Python process with probes are traced for calls-window seconds, within calls-budget of one
 * CPU, and exported as calls profiles. */
#include "daemon/daemon.h"

uint64_t windows_every_ns(const struct run *r)
{
	return (uint64_t)(r->cfg.calls_every * 1e9);
}

static int trace_calls_of(const struct py_process *p, void *ctx)
{
	struct run *r = ctx;
	const char *why = NULL;
	int err;

	if (p->bin->caps.calls == PY_CALLS_NONE)
		return 0;
	if ((err = calltrace_attach(r->calls.ct, p, &why)))
		log_debug("run: calls of pid %d (%s) not traced: %s", p->pid, p->comm,
			  why ? why : strerror(-err));
	else
		r->calls.traced++;
	return 0;
}

/* Attaches the function probes of every Python process that has them, per process. Processes
 * that start during the window are not traced. */
static void start_window(struct run *r, uint64_t now)
{
	struct call_windows *w = &r->calls;
	struct calltrace_opts co = { .procs_fd = discover_procs_map_fd(cpuprof_discover(r->cpu)) };
	int err;

	w->next_mono = now + windows_every_ns(r);
	if (kernel_lacks(KERNEL_CAP_CALLS))
		return; /* said once at start (run.c); /metrics says it too */
	if (calltrace_new(&co, &w->ct)) {
		w->ct = NULL;
		w->st.failed++;
		log_warn("run: call window skipped: the call tracer did not load");
		return;
	}
	if ((err = calltrace_calibrate(w->ct, &w->ns_per_hit))) {
		log_warn("run: cannot measure what a probe hit costs (%s): taking %.1f us",
			 strerror(-err), PROBE_HIT_NS / 1000);
		w->ns_per_hit = PROBE_HIT_NS;
	}
	w->st.ns_per_hit = w->ns_per_hit;
	w->traced = 0;
	discover_for_each(cpuprof_discover(r->cpu), trace_calls_of, r);
	if (!w->traced) {
		log_debug("run: call window: no process with function probes to trace");
		calltrace_free(w->ct);
		w->ct = NULL;
		return;
	}
	w->start_mono = monotonic_ns();
	w->start_wall = realtime_ns();
	w->end_mono = w->start_mono + (uint64_t)(r->cfg.calls_window * 1e9);
	log_info("run: call window: tracing the calls of %d processes for %g s", w->traced,
		 r->cfg.calls_window);
}

/* Detaches, exports one calls profile per series, and schedules the next window so that,
 * on average, windows cost no more than calls-budget of one CPU: a window that cost k times
 * its share puts the next k-1 windows off. */
void windows_end(struct run *r)
{
	struct call_windows *w = &r->calls;
	uint64_t k[PYRO_CALLS_COUNTER_MAX] = { 0 }, until, hits;
	double cost_ns, share_ns = r->cfg.calls_budget / 100 * (double)windows_every_ns(r);
	struct callprof_names nm;
	uint64_t periods;

	calltrace_detach_all(w->ct); /* the traced processes stop trapping now */
	until = realtime_ns();
	calltrace_counters(w->ct, k);
	hits = k[PYRO_CALLS_ENTRIES] + k[PYRO_CALLS_RETURNS];
	cost_ns = (double)hits * w->ns_per_hit;
	callprof_names_init(&nm, w->ct);
	callprof_add(w->ct, &nm, cpuprof_seen(r->cpu), series_calls_profile_for, r);
	callprof_names_free(&nm);
	series_flush(r, &w->series, w->start_wall, until, EXPORT_KIND_CALLS);
	calltrace_free(w->ct);
	w->ct = NULL;
	w->st.windows++;
	w->st.hits += hits;
	w->st.cost_s += cost_ns / 1e9;
	periods = cost_ns > share_ns ? (uint64_t)ceil(cost_ns / share_ns) : 1;
	log_info("run: call window ended: %d processes, %.1f s, %" PRIu64
		 " probe hits, an estimated %.3f s of their time",
		 w->traced, (double)(monotonic_ns() - w->start_mono) / 1e9, hits, cost_ns / 1e9);
	if (periods > 1) {
		w->next_mono = w->start_mono + periods * windows_every_ns(r);
		w->st.deferred += periods - 1;
		log_warn("run: that call window cost %.0f times its share of calls-budget (%g%% of "
			 "one CPU); the next %" PRIu64 " windows are left out",
			 cost_ns / share_ns, r->cfg.calls_budget, periods - 1);
	}
}

/* Starts or ends a window when it is due. */
void windows_tick(struct run *r, uint64_t now)
{
	if (r->calls.ct && now >= r->calls.end_mono)
		windows_end(r);
	else if (!r->calls.ct && r->cfg.calls_window > 0 && now >= r->calls.next_mono)
		start_window(r, now);
}

/* When the loop must wake next for the call windows (UINT64_MAX: no need). */
uint64_t windows_due(const struct run *r)
{
	if (r->calls.ct)
		return r->calls.end_mono;
	return r->cfg.calls_window > 0 ? r->calls.next_mono : UINT64_MAX;
}
