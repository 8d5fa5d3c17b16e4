// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Imports (imports = true): each process that starts while we run has its imports of the
 * first import-startup seconds built into a tree (agent/imports/importtree.h) and exported
 * once as an import profile; every outermost import, then and later, is observed in
 * python_import_seconds{service_name, phase}. The probes are armed per interpreter binary
 * (agent/imports/importtrace.h), so a process is seen from its first import, before
 * discovery has named it: its events wait in its tree until discovery does. */
#include "daemon/daemon.h"

/* A pid discovery never names (gone before it looked) is forgotten after this long. */
#define UNKNOWN_PID_NS (10 * 1000000000ull)
/* An exited process's start-up profile waits this long for its last imports: they come
 * through another ring buffer than its exit, read by the loop at least every 200 ms. */
#define EXIT_SETTLE_NS (500 * 1000000ull)

static const double bucket_le[IMPORT_BUCKETS] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
						  0.005,  0.01,	   0.025,  0.05,  0.1,
						  0.25,	  0.5,	   1,	   2.5,	  10 };

static struct import_proc *proc_of(struct run *r, pid_t pid, bool add)
{
	struct imports_state *s = &r->imports;
	struct import_proc *ip;

	for (size_t i = 0; i < s->nprocs; i++)
		if (s->procs[i].pid == pid)
			return &s->procs[i];
	if (!add || !(ip = intern_grow((void **)&s->procs, &s->procs_cap, s->nprocs, sizeof(*ip))))
		return NULL;
	s->nprocs++;
	memset(ip, 0, sizeof(*ip));
	ip->pid = pid;
	ip->first_seen = monotonic_ns();
	importtree_init(&ip->tree);
	return ip;
}

static void tree_clear(struct run *r, struct import_proc *ip)
{
	r->imports.held -= ip->tree.n;
	importtree_free(&ip->tree);
	importtree_init(&ip->tree);
}

static void proc_remove(struct run *r, struct import_proc *ip)
{
	struct imports_state *s = &r->imports;

	tree_clear(r, ip);
	*ip = s->procs[--s->nprocs];
}

/* ---- python_import_seconds ---- */

static void observe(struct run *r, const char *service, bool runtime, uint64_t ns)
{
	struct imports_state *s = &r->imports;
	struct import_hist *h = NULL;
	size_t i, b;

	for (i = 0; i < s->nhists && !h; i++)
		if (s->hists[i].runtime == runtime && !strcmp(s->hists[i].service, service))
			h = &s->hists[i];
	if (!h) {
		if (!(h = intern_grow((void **)&s->hists, &s->hists_cap, s->nhists, sizeof(*h))))
			return;
		s->nhists++;
		memset(h, 0, sizeof(*h));
		snprintf(h->service, sizeof(h->service), "%s", service);
		text_sanitize(h->service);
		h->runtime = runtime;
	}
	for (b = 0; b < IMPORT_BUCKETS && (double)ns / 1e9 > bucket_le[b]; b++)
		;
	h->counts[b]++;
	h->count++;
	h->sum_ns += ns;
}

static const char *service_name_of(struct run *r, pid_t pid)
{
	const struct py_process *p = cpuprof_process(r->cpu, pid);

	return p && p->service[0] ? p->service : "unknown";
}

/* What the import tracer lost, and where (the kernel's counters and ours). */
static void losses_write(const struct run *r, FILE *f)
{
	const struct imports_state *s = &r->imports;
	struct importtrace_stats st;
	uint64_t *k = st.kernel;

	importtrace_stats(s->it, &st);
	fprintf(f,
		"# HELP pyrometer_import_profiles_total Start-up import profiles exported, and "
		"those of processes whose binary was armed after they started (imports missing).\n"
		"# TYPE pyrometer_import_profiles_total counter\n"
		"pyrometer_import_profiles_total{complete=\"true\"} %" PRIu64 "\n"
		"pyrometer_import_profiles_total{complete=\"false\"} %" PRIu64 "\n",
		s->profiles - s->partial, s->partial);
	fprintf(f,
		"# HELP pyrometer_imports_lost_total Imports not measured or not kept, by reason.\n"
		"# TYPE pyrometer_imports_lost_total counter\n"
		"pyrometer_imports_lost_total{reason=\"ring_full\"} %" PRIu64 "\n"
		"pyrometer_imports_lost_total{reason=\"too_deep\"} %" PRIu64 "\n"
		"pyrometer_imports_lost_total{reason=\"no_storage\"} %" PRIu64 "\n"
		"pyrometer_imports_lost_total{reason=\"start_unseen\"} %" PRIu64 "\n"
		"pyrometer_imports_lost_total{reason=\"memory_cap\"} %" PRIu64 "\n"
		"pyrometer_imports_lost_total{reason=\"unattributed\"} %" PRIu64 "\n",
		k[PYRO_IMP_EVENTS_LOST], k[PYRO_IMP_TOO_DEEP], k[PYRO_IMP_NO_STORAGE],
		k[PYRO_IMP_NO_START], s->dropped, s->unattributed);
}

void importing_metrics_write(const struct run *r, FILE *f)
{
	const struct imports_state *s = &r->imports;

	if (!s->it)
		return;
	losses_write(r, f);
	fprintf(f, "# HELP python_import_seconds Wall time of outermost imports that loaded a "
		   "module (the imports nested in one count within it), by phase: startup (the "
		   "first import-startup seconds of a process) or runtime.\n"
		   "# TYPE python_import_seconds histogram\n");
	for (size_t i = 0; i < s->nhists; i++) {
		const struct import_hist *h = &s->hists[i];
		uint64_t cum = 0;

		for (size_t b = 0; b <= IMPORT_BUCKETS; b++) {
			cum += h->counts[b];
			fprintf(f, "python_import_seconds_bucket{service_name=\"");
			text_label_value(f, h->service);
			if (b < IMPORT_BUCKETS)
				fprintf(f, "\",phase=\"%s\",le=\"%g\"} %" PRIu64 "\n",
					h->runtime ? "runtime" : "startup", bucket_le[b], cum);
			else
				fprintf(f, "\",phase=\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
					h->runtime ? "runtime" : "startup", cum);
		}
		fprintf(f, "python_import_seconds_sum{service_name=\"");
		text_label_value(f, h->service);
		fprintf(f, "\",phase=\"%s\"} %.9f\n", h->runtime ? "runtime" : "startup",
			(double)h->sum_ns / 1e9);
		fprintf(f, "python_import_seconds_count{service_name=\"");
		text_label_value(f, h->service);
		fprintf(f, "\",phase=\"%s\"} %" PRIu64 "\n", h->runtime ? "runtime" : "startup",
			h->count);
	}
}

/* ---- start-up profiles ---- */

/* The outermost imports of ip's tree into the histogram. */
static void observe_roots(struct run *r, const struct import_proc *ip, bool runtime)
{
	const char *service = service_name_of(r, ip->pid);

	for (uint32_t n = ip->tree.first_root; n; n = ip->tree.nodes[n - 1].next)
		observe(r, service, runtime, ip->tree.nodes[n - 1].incl_ns);
}

/* The start-up window of ip is over (or it exited): one profile of its imports, to every
 * sink, and its outermost imports into the histogram. */
static void finish_startup(struct run *r, struct import_proc *ip)
{
	const struct py_process *p = cpuprof_process(r->cpu, ip->pid);
	uint64_t since = p ? importtrace_since(r->imports.it, p) : 0;
	uint64_t mono = monotonic_ns(), wall = realtime_ns();
	struct profile *prof;

	ip->startup_over = true;
	if (!ip->tree.n)
		goto out;
	observe_roots(r, ip, false);
	prof = series_imports_profile_for(p, r);
	if (!prof || importtree_profile(&ip->tree, prof, ip->pid, p ? p->comm : "python")) {
		log_warn("run: the start-up import profile of pid %d is incomplete (no memory)",
			 ip->pid);
	}
	if (since > ip->start_ns) { /* its binary was armed after it started */
		r->imports.partial++;
		log_debug("run: pid %d: imports seen from %.1f ms after its start only", ip->pid,
			  (double)(since - ip->start_ns) / 1e6);
	}
	series_flush(r, &r->imports.series, wall - (mono - ip->start_ns), wall, EXPORT_KIND_IMPORT);
	r->imports.profiles++;
out:
	tree_clear(r, ip);
}

/* An exited process: its start-up profile, if it still owes one, and it is forgotten. */
static void settle(struct run *r, struct import_proc *ip)
{
	if (ip->known && !ip->startup_over)
		finish_startup(r, ip);
	proc_remove(r, ip);
}

static uint64_t window_ns(const struct run *r)
{
	return (uint64_t)(r->cfg.import_startup * 1e9);
}

void importing_on_start(struct run *r, const struct py_process *p, uint64_t ktime)
{
	struct import_proc *ip;

	if (!r->imports.it)
		return;
	if (p->bin->caps.imports)
		importtrace_track(r->imports.it, p);
	if ((ip = proc_of(r, p->pid, false)) && ip->exited_at) {
		settle(r, ip); /* a pid reused before its last process was done with */
		ip = NULL;
	}
	if (!ip && !(ip = proc_of(r, p->pid, true)))
		return;
	ip->known = true;
	ip->start_ns = ktime;
	if (ktime)
		return;
	/* running before we started (found by the first scan): not a start-up of ours to
	 * profile; what it imported meanwhile counts as run time */
	observe_roots(r, ip, true);
	ip->startup_over = true;
	tree_clear(r, ip);
}

void importing_on_exit(struct run *r, const struct py_process *p, uint64_t ktime)
{
	struct import_proc *ip;

	if (!r->imports.it)
		return;
	if (p->bin->caps.imports)
		importtrace_untrack(r->imports.it, p);
	/* finished by importing_tick once its last imports are read (a short-lived process:
	 * all of it was start-up) */
	if ((ip = proc_of(r, p->pid, false)) && !ip->exited_at) {
		ip->exited_at = monotonic_ns();
		ip->ended_ns = ktime;
	}
}

void importing_tick(struct run *r, uint64_t now)
{
	struct imports_state *s = &r->imports;

	if (!s->it)
		return;
	for (size_t i = 0; i < s->nprocs;) {
		struct import_proc *ip = &s->procs[i];

		if (ip->exited_at && now - ip->exited_at >= EXIT_SETTLE_NS) {
			settle(r, ip);
			continue;
		}
		if (ip->known && !ip->startup_over && now >= ip->start_ns + window_ns(r))
			finish_startup(r, ip);
		if (!ip->known && now - ip->first_seen >= UNKNOWN_PID_NS) {
			s->unattributed += ip->tree.n;
			proc_remove(r, ip);
			continue;
		}
		i++;
	}
	importtrace_expire(s->it);
}

/* ---- events ---- */

static int on_import(void *ctx, void *data, size_t len)
{
	struct run *r = ctx;
	const struct pyro_import_event *e = data;
	struct importtree_sym frames[PYRO_SEG_FRAMES];
	struct import_proc *ip;
	uint32_t n = 0;

	if (len < sizeof(*e) ||
	    ((e->flags & PYRO_IMPORT_ROOT) && len < sizeof(struct pyro_import_root)))
		return 0;
	if (!(ip = proc_of(r, (pid_t)e->pid, true)))
		return 0;
	if (ip->ended_ns && e->start_ns > ip->ended_ns) {
		/* the image it exec'd: the old one is done, this is a new process to us */
		settle(r, ip);
		if (!(ip = proc_of(r, (pid_t)e->pid, true)))
			return 0;
	}
	if (!ip->known) /* importing, so Python: one that arrived by dlopen, not yet found */
		discover_look(cpuprof_discover(r->cpu), (pid_t)e->pid, e->start_ns);
	if (ip->known && !ip->startup_over && e->start_ns >= ip->start_ns + window_ns(r))
		finish_startup(r, ip); /* the first import after the window ends it */
	if (ip->startup_over) {
		if (e->depth == 0)
			observe(r, service_name_of(r, ip->pid), true, e->duration_ns);
		return 0;
	}
	if (r->imports.held >= IMPORT_MAX_HELD) {
		r->imports.dropped++;
		return 0;
	}
	if (e->flags & PYRO_IMPORT_ROOT)
		n = importtrace_importer(cpuprof_symbolizer(r->cpu),
					 cpuprof_process(r->cpu, (pid_t)e->pid), data, frames);
	if (importtree_add(&ip->tree, e, frames, n))
		r->imports.dropped++;
	else
		r->imports.held++;
	return 0;
}

static int track_existing(const struct py_process *p, void *ctx)
{
	importing_on_start(ctx, p, 0);
	return 0;
}

int importing_start(struct run *r)
{
	struct importtrace_opts o = {
		.all = true,
		.procs_fd = discover_procs_map_fd(cpuprof_discover(r->cpu)),
		.linger_ns = (uint64_t)(r->cfg.gc_linger * 1e9),
	};
	int err;

	r->imports.series.kind = SERIES_IMPORTS;
	if (!r->cfg.imports)
		return 0;
	if ((err = importtrace_new(&o, &r->imports.it)))
		return err;
	if ((err = evloop_add_ring(cpuprof_loop(r->cpu), importtrace_events_fd(r->imports.it),
				   on_import, r))) {
		importtrace_free(r->imports.it);
		r->imports.it = NULL;
		return err;
	}
	discover_for_each(cpuprof_discover(r->cpu), track_existing, r); /* found before us */
	importtrace_pin_installed(r->imports.it); /* seen from their first import */
	return 0;
}

void importing_flush(struct run *r)
{
	for (size_t i = 0; r->imports.it && i < r->imports.nprocs; i++) {
		struct import_proc *ip = &r->imports.procs[i];

		if (ip->known && !ip->startup_over)
			finish_startup(r, ip);
	}
}

void importing_stop(struct run *r)
{
	struct imports_state *s = &r->imports;

	if (s->it && importtrace_hand_over(s->it))
		log_debug("run: the import uprobes are removed by our own exit");
	importtrace_free(s->it);
	s->it = NULL;
	while (s->nprocs)
		proc_remove(r, &s->procs[0]);
	free(s->procs);
	free(s->hists);
	series_free(&s->series);
}
