// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Processes in and out: GC tracing of each process discovery names, its pauses (logged and
 * alerted), and the retirement of what exited: its GC figures folded into its service, its
 * symbols forgotten. */
#include "daemon/daemon.h"

/* A pid that exec'd a Python again is that Python from now on: the retirement of the image
 * it left must not forget its symbols. */
static void keep_execed(struct run *r, pid_t pid)
{
	for (size_t i = 0; i < r->nexited; i++)
		if (r->exited[i].gc.pid == (uint32_t)pid && r->exited[i].execed)
			r->exited[i].keep = true;
}

void tracking_on_start(const struct py_process *p, uint64_t ktime, void *ctx)
{
	struct run *r = ctx;

	keep_execed(r, p->pid);
	importing_on_start(r, p, ktime);
	if (r->gc && p->bin->caps.gc && !gctrace_track(r->gc, p) && ktime)
		log_debug("pid %d: GC traced from %.1f ms after its exec", p->pid,
			  (double)(monotonic_ns() - ktime) / 1e6);
}

void tracking_on_exit(const struct py_process *p, enum discover_exit_why why, int code,
		      uint64_t ktime, void *ctx)
{
	struct run *r = ctx;

	(void)code;
	if (r->gc && p->bin->caps.gc)
		gctrace_untrack(r->gc, p);
	importing_on_exit(r, p, why == DISCOVER_VANISHED ? 0 : ktime);
	if (r->nexited == r->exited_cap) {
		size_t cap = r->exited_cap ? r->exited_cap * 2 : 256;
		struct exited *n = realloc(r->exited, cap * sizeof(*n));

		if (!n)
			return; /* kept, not forgotten: memory, not correctness */
		r->exited = n;
		r->exited_cap = cap;
	}
	r->exited[r->nexited] =
		(struct exited){ .due_ns = monotonic_ns() + RETIRE_AFTER_NS,
				 .starttime = p->starttime,
				 .execed = why == DISCOVER_EXECED,
				 .gc = { .pid = (uint32_t)p->pid,
					 .image = why == DISCOVER_EXECED ? p->startstack : 0 } };
	snprintf(r->exited[r->nexited].gc.service, sizeof(r->exited[r->nexited].gc.service), "%s",
		 p->service);
	r->nexited++;
}

/* Folds GC figures into per-service totals, in one walk of the maps per tick: those of
 * processes that exited a while ago, and at once those of the images pids exec'd away from
 * (they collect no more, and the new image's figures, under the same pid, must never be
 * read as theirs: the metrics published after this see them folded). Then forgets what
 * exited a while ago, so that a host with process churn keeps a flat footprint. */
void tracking_retire_exited(struct run *r)
{
	uint64_t now = monotonic_ns();
	size_t due = 0, n = 0, i;
	struct gc_retiree *list;

	while (due < r->nexited && r->exited[due].due_ns <= now)
		due++;
	list = malloc((r->nexited ? r->nexited : 1) * sizeof(*list));
	for (i = 0; list && i < r->nexited; i++) {
		struct exited *e = &r->exited[i];

		if (e->gc_retired || (i >= due && !(e->execed && e->gc.image)) ||
		    (e->keep && !e->gc.image)) /* image unread: the pid's figures go on as its */
			continue;
		list[n++] = e->gc;
		e->gc_retired = true;
	}
	if (list && n && r->gc)
		gctrace_retire(r->gc, list, n);
	free(list);
	for (i = 0; i < due; i++)
		if (!r->exited[i].keep)
			cpuprof_forget(r->cpu, (pid_t)r->exited[i].gc.pid, r->exited[i].starttime);
	memmove(r->exited, r->exited + due, (r->nexited - due) * sizeof(*r->exited));
	r->nexited -= due;
}

/* Is pid's GC figures someone's: a process discovery named (alive, or exited and not yet
 * retired), or one still alive that it may yet name? */
bool tracking_claimed(uint32_t pid, void *ctx)
{
	struct run *r = ctx;

	if (discover_get(cpuprof_discover(r->cpu), (pid_t)pid))
		return true;
	if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) {
		/* collecting, so Python: one that arrived by dlopen or exec'd since, not found */
		discover_look(cpuprof_discover(r->cpu), (pid_t)pid, monotonic_ns());
		return true;
	}
	return seen_get(cpuprof_seen(r->cpu), (pid_t)pid) != NULL; /* exited, not yet retired */
}

static int track_existing(const struct py_process *p, void *ctx)
{
	tracking_on_start(p, 0, ctx);
	return 0;
}

/* A pause at or above the threshold: logged with its stack, and handed to the alerter. */
static int on_pause(void *ctx, void *data, size_t len)
{
	const struct pyro_gc_event *e = data;
	struct run *r = ctx;
	const struct py_process *p;
	char stack[2048];

	if (len < sizeof(*e))
		return 0;
	p = cpuprof_process(r->cpu, (pid_t)e->pid);
	if ((double)e->duration_ns >= r->cfg.gc_threshold_ms * 1e6) {
		gcwatch_stack_text(cpuprof_symbolizer(r->cpu), p, e, stack, sizeof(stack));
		for (char *nl = stack; (nl = strchr(nl, '\n'));)
			*nl = '<'; /* one log line */
		log_warn("GC pause of %.1f ms in pid %u (%s), generation %d: %s",
			 (double)e->duration_ns / 1e6, e->pid, p ? p->service : "unknown",
			 e->generation, stack);
	}
	if (r->alerter)
		gcwatch_alert_pause(r->alerter, cpuprof_symbolizer(r->cpu), p, e);
	return 0;
}
uint64_t tracking_slow_ns(const struct config *c)
{
	double ms = c->gc_threshold_ms;

	if (c->alertmanager[0] && c->alert_pause > 0 && c->alert_pause * 1e3 < ms)
		ms = c->alert_pause * 1e3; /* the kernel sends what the pause rule needs too */
	return (uint64_t)(ms * 1e6);
}

int tracking_start_gc(struct run *r)
{
	struct gctrace_opts go = { .all = true,
				   .slow_ns = tracking_slow_ns(&r->cfg),
				   .linger_ns = (uint64_t)(r->cfg.gc_linger * 1e9) };
	struct discover *d = cpuprof_discover(r->cpu);
	int err;

	if (!r->cfg.gc)
		return 0;
	go.procs_fd = discover_procs_map_fd(d);
	if ((err = gctrace_new(&go, &r->gc)))
		return err;
	if ((err = evloop_add_ring(cpuprof_loop(r->cpu), gctrace_events_fd(r->gc), on_pause, r))) {
		gctrace_free(r->gc);
		r->gc = NULL;
		return err;
	}
	discover_for_each(d, track_existing, r); /* found by the scan before the tracer */
	gctrace_pin_installed(r->gc);		 /* counted from their first collection */
	return 0;
}
