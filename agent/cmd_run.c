// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* pyrometer run: the daemon. It samples every Python process on the host and, at the end of
 * each interval, encodes one pprof per label set (service, container, pod, Python version)
 * for the sinks: the local store and/or Grafana Pyroscope through the shipper. It traces GC
 * pauses, serves /metrics (GC and its own figures), and sends alerts. When calls-window is
 * set it also traces every function call of the host's Python processes for a few seconds
 * on a schedule, within a CPU budget, and exports those windows as calls profiles.
 * SIGTERM/SIGINT flush and stop; SIGHUP reloads the configuration. Settings: agent/config.c. */
#include <errno.h>
#include <glob.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "alerts.h"
#include "callprof.h"
#include "calltrace.h"
#include "clock.h"
#include "commands.h"
#include "config.h"
#include "cpuprof.h"
#include "export.h"
#include "gc_metrics.h"
#include "gctrace.h"
#include "uprobes.h"
#include "gcwatch.h"
#include "log.h"
#include "metrics.h"
#include "pprof.h"
#include "privs.h"
#include "pyinterp.h"
#include "profile.h"
#include "pyroscope.h"
#include "seen.h"
#include "selfmetrics.h"
#include "service.h"
#include "shipper.h"
#include "spool.h"
#include "store.h"
#include "symbolize.h"
#include "text.h"

#define DRAIN_MS 200
#define TICK_MS 1000	/* metrics, alerts, watchdog */
#define MAX_SERIES 1024 /* label sets per interval; beyond, service_name "other" */
/* An exited process is forgotten this long after its exit: by then its last samples are
 * drained and its last GC events read. */
#define RETIRE_AFTER_NS (3 * 1000000000ull)
/* How often GC figures of processes discovery never named (gone before it looked) are
 * folded into service "unknown" and taken out of the kernel maps. */
#define UNCLAIMED_MS 5000
/* What one traced probe hit costs the traced process when it cannot be measured at a window's
 * start (calltrace__calibrate): the trap into the kernel and the program. make bench measured
 * 11.2-11.9 us per traced call (two hits) on Linux 6.18 on this project's 2-CPU machine. */
#define PROBE_HIT_NS 6000.0

/* What the daemon needs after start-up (documented in README, checked by a test). */
#define KEPT_CAPS                                                                                  \
	(PRIV_BPF | PRIV_PERFMON | PRIV_SYS_PTRACE | PRIV_DAC_READ_SEARCH | PRIV_CHECKPOINT_RESTORE)
/* And with call windows on: after the others are dropped, perf_event_open of a uprobe for one
 * pid fails with EACCES without CAP_SYS_ADMIN (measured on kernel 6.18). */
#define CALL_WINDOW_CAPS PRIV_SYS_ADMIN

struct series {
	char service[EXPORT_LABEL_VALUE];
	char container[65], pod[37], version[24];
	struct profile prof;
};

/* One profile per label set: the CPU profiles of an interval, or the calls of a window. */
struct series_set {
	struct series *v;
	size_t n;
	bool calls;
};

/* Call windows (calls-window > 0). The tracer exists only while a window runs. */
struct call_windows {
	struct calltrace *ct;
	struct series_set series;
	uint64_t next_mono, start_mono, end_mono; /* CLOCK_MONOTONIC */
	uint64_t start_wall;			  /* CLOCK_REALTIME */
	int traced;
	double ns_per_hit; /* measured at the window's start */
	struct call_window_stats st;
};

struct exited {
	uint64_t due_ns; /* CLOCK_MONOTONIC */
	uint64_t starttime;
	bool execed; /* the pid lives on in a new image */
	struct gc_retiree gc;
};

struct run {
	struct config cfg;
	const char *config_path;
	int argc;
	char **argv;
	char host[EXPORT_LABEL_VALUE];

	struct cpuprof *cpu;
	struct gctrace *gc;
	struct alerter *alerter;
	struct metrics_server *metrics;
	struct store *store;
	struct spool *spool;
	struct pyroscope *sink;
	struct shipper *shipper;

	struct series_set cpu_series;
	struct call_windows calls;
	uint64_t interval_start_ns; /* CLOCK_REALTIME */
	uint64_t interval_start_mono;
	uint64_t profiles, last_store_unix;
	struct exited *exited; /* oldest first */
	size_t nexited, exited_cap;
};

/* ---- configuration ---- */

/* defaults < file < flags. */
static int read_config(struct run *r, struct config *c, bool *check_only)
{
	const char *path = NULL;
	int err;

	config_defaults(c);
	/* the flags are read twice: first for -c, then over the file */
	if ((err = config_flags(c, r->argc, r->argv, &path, check_only)))
		return err;
	config_defaults(c);
	if (path && (err = config_load(c, path)))
		return err;
	if ((err = config_flags(c, r->argc, r->argv, &path, check_only)) || (err = config_check(c)))
		return err;
	if (service_set_env_keys(c->service_env)) {
		log_error("config: service-env must be comma-separated environment keys");
		return -EINVAL;
	}
	r->config_path = path;
	return 0;
}

static const char *opt_str(const char *s)
{
	return s[0] ? s : NULL;
}

/* ---- per label set profiles ---- */

static struct profile *series_profile(struct run *r, struct series_set *set,
				      const struct py_process *p)
{
	const char *service = p && p->service[0] ? p->service : "unknown";
	const char *container = p ? p->container_id : "", *pod = p ? p->pod_uid : "";
	const char *version = p && p->bin ? p->bin->version : "";
	struct series *n;
	size_t i;
	int err;

	if (set->n >= MAX_SERIES - 1)
		service = "other", container = pod = version = "";
	for (i = 0; i < set->n; i++) {
		struct series *s = &set->v[i];

		if (!strcmp(s->service, service) && !strcmp(s->container, container) &&
		    !strcmp(s->pod, pod) && !strcmp(s->version, version))
			return &s->prof;
	}
	n = realloc(set->v, (set->n + 1) * sizeof(*n));
	if (!n)
		return NULL;
	set->v = n;
	n = &set->v[set->n];
	memset(n, 0, sizeof(*n));
	err = set->calls ? callprof_init(&n->prof)
			 : profile_init(&n->prof, 1000000000ull / (uint64_t)r->cfg.frequency);
	if (err)
		return NULL;
	set->n++;
	snprintf(n->service, sizeof(n->service), "%s", service);
	text_sanitize(n->service);
	snprintf(n->container, sizeof(n->container), "%s", container);
	snprintf(n->pod, sizeof(n->pod), "%s", pod);
	snprintf(n->version, sizeof(n->version), "%s", version);
	return &n->prof;
}

static struct profile *profile_for(const struct py_process *p, void *ctx)
{
	struct run *r = ctx;

	return series_profile(r, &r->cpu_series, p);
}

static struct profile *calls_profile_for(const struct py_process *p, void *ctx)
{
	struct run *r = ctx;

	return series_profile(r, &r->calls.series, p);
}

static void series_free(struct series_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		profile_free(&set->v[i].prof);
	free(set->v);
	set->v = NULL;
	set->n = 0;
}

static void add_label(struct export_profile *e, const char *name, const char *value)
{
	struct export_label *l;

	if (!value[0] || e->n_labels == EXPORT_MAX_LABELS)
		return;
	l = &e->labels[e->n_labels++];
	snprintf(l->name, sizeof(l->name), "%s", name);
	snprintf(l->value, sizeof(l->value), "%s", value);
	text_sanitize(l->value);
}

/* Encodes one series' interval or window; kind NULL for CPU profiles. pprof has no place
 * for profile-wide labels but comments, so they go there too. */
static int encode(struct run *r, struct series *s, uint64_t from_ns, uint64_t until_ns,
		  const char *kind, struct export_profile *e)
{
	char comments[EXPORT_MAX_LABELS + 1][EXPORT_LABEL_NAME + EXPORT_LABEL_VALUE + 2];
	const char *cptr[EXPORT_MAX_LABELS + 1];
	unsigned i;

	memset(e, 0, sizeof(*e));
	export_new_id(e->id);
	e->from_ns = from_ns;
	e->until_ns = until_ns;
	add_label(e, "service_name", s->service);
	add_label(e, "host", r->host);
	add_label(e, "container_id", s->container);
	add_label(e, "pod_uid", s->pod);
	add_label(e, "python_version", s->version);
	if (kind)
		add_label(e, EXPORT_KIND_LABEL, kind);
	for (i = 0; i < e->n_labels; i++) {
		snprintf(comments[i], sizeof(comments[i]), "%s=%s", e->labels[i].name,
			 e->labels[i].value);
		cptr[i] = comments[i];
	}
	snprintf(comments[i], sizeof(comments[i]), "pyrometer %s", PYROMETER_VERSION);
	cptr[i] = comments[i];
	s->prof.start_ns = e->from_ns;
	s->prof.duration_ns = until_ns - e->from_ns;
	return pprof_encode(&s->prof, cptr, i + 1, &e->data, &e->len);
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* One profile per series that has samples, to every sink; the set is emptied. */
static void flush_series(struct run *r, struct series_set *set, uint64_t from, uint64_t until,
			 const char *kind)
{
	for (size_t i = 0; i < set->n; i++) {
		struct series *s = &set->v[i];
		struct export_profile e;

		if (!s->prof.samples.n)
			continue;
		if (encode(r, s, from, until, kind, &e)) {
			log_error("run: cannot encode the profile of %s", s->service);
			continue;
		}
		r->profiles++;
		if (r->store && store_put(r->store, &e) == 0)
			r->last_store_unix = (uint64_t)time(NULL);
		if (r->shipper)
			shipper_submit(r->shipper, &e);
		free(e.data);
	}
	series_free(set);
}

/* Ends the interval: one CPU profile per series. */
static void flush_interval(struct run *r)
{
	uint64_t until = realtime_ns();

	flush_series(r, &r->cpu_series, r->interval_start_ns, until, NULL);
	r->interval_start_ns = until;
	r->interval_start_mono = monotonic_ns();
}

/* ---- sinks ---- */

static int open_store(struct run *r)
{
	const struct config *c = &r->cfg;
	struct store_opts so = { .dir = c->store,
				 .cap_bytes = (uint64_t)c->store_cap,
				 .max_age_sec = (uint64_t)c->store_max_age };

	return config_store_on(c) ? store_open(&so, &r->store) : 0;
}

static int open_delivery(struct run *r)
{
	const struct config *c = &r->cfg;
	struct pyroscope_opts po = {
		.url = c->pyroscope,
		.api = strcmp(c->pyroscope_api, "ingest") ? PYROSCOPE_PUSH : PYROSCOPE_INGEST,
		.basic_user = opt_str(c->basic_auth_user),
		.password_file = opt_str(c->password_file),
		.token_file = opt_str(c->token_file),
		.tenant = opt_str(c->tenant),
	};
	struct shipper_opts sh = { .backoff_max_sec = c->backoff_max };
	int err;

	if (!c->pyroscope[0])
		return 0;
	if ((err = pyroscope_new(&po, &r->sink)) ||
	    (err = spool_open(c->spool, (uint64_t)c->spool_cap, &r->spool)))
		return err;
	sh.sink = r->sink;
	sh.spool = r->spool;
	return shipper_start(&sh, &r->shipper);
}

/* Stops delivery (the queue and an upload in flight go to the spool) and says what became
 * of every profile: submitted = delivered + rejected + dropped + left in the spool. */
static void close_sinks(struct run *r)
{
	struct shipper_stats sh;
	struct spool_stats sp;

	if (r->shipper) {
		shipper_stop(r->shipper, &sh);
		spool_stats(r->spool, &sp);
		/* submitted + carried over = delivered + rejected + dropped + corrupt + lost
		 * + left: every profile in exactly one bucket */
		log_info("run: delivery: %" PRIu64 " profiles submitted, %" PRIu64
			 " carried over from the spool, %" PRIu64 " delivered, %" PRIu64
			 " rejected, %" PRIu64 " dropped (spool cap), %" PRIu64
			 " corrupt in spool, %" PRIu64 " lost (spool write failed), %" PRIu64
			 " failed attempts; %" PRIu64 " left in the spool (%" PRIu64 " bytes)",
			 sh.submitted, sp.carried, sh.delivered, sh.rejected, sp.dropped,
			 sp.corrupt, sp.write_failed, sh.failed_attempts, sp.files, sp.bytes);
	}
	r->shipper = NULL;
	spool_close(r->spool);
	r->spool = NULL;
	pyroscope_free(r->sink);
	r->sink = NULL;
	store_close(r->store);
	r->store = NULL;
}

/* ---- GC, metrics, alerts ---- */

/* A pid that exec'd a Python again keeps its kernel GC entries: they are the new image's
 * from now on (keyed by pid), so the old image's pending retirement must not fold them into
 * the old service and delete them. */
static void keep_execed(struct run *r, pid_t pid)
{
	for (size_t i = 0; i < r->nexited; i++) {
		if (r->exited[i].gc.pid != (uint32_t)pid || !r->exited[i].execed)
			continue;
		memmove(&r->exited[i], &r->exited[i + 1],
			(r->nexited - i - 1) * sizeof(*r->exited));
		r->nexited--;
		return;
	}
}

static void on_start(const struct py_process *p, uint64_t ktime, void *ctx)
{
	struct run *r = ctx;

	keep_execed(r, p->pid);
	if (r->gc && p->bin->caps.gc && !gctrace__track(r->gc, p) && ktime)
		log_debug("pid %d: GC traced from %.1f ms after its exec", p->pid,
			  (double)(monotonic_ns() - ktime) / 1e6);
}

static void on_exit_(const struct py_process *p, enum discover_exit_why why, int code,
		     uint64_t ktime, void *ctx)
{
	struct run *r = ctx;

	(void)code, (void)ktime;
	if (r->gc && p->bin->caps.gc)
		gctrace__untrack(r->gc, p);
	if (r->nexited == r->exited_cap) {
		size_t cap = r->exited_cap ? r->exited_cap * 2 : 256;
		struct exited *n = realloc(r->exited, cap * sizeof(*n));

		if (!n)
			return; /* kept, not forgotten: memory, not correctness */
		r->exited = n;
		r->exited_cap = cap;
	}
	r->exited[r->nexited] = (struct exited){ .due_ns = monotonic_ns() + RETIRE_AFTER_NS,
						 .starttime = p->starttime,
						 .execed = why == DISCOVER_EXECED,
						 .gc = { .pid = (uint32_t)p->pid } };
	snprintf(r->exited[r->nexited].gc.service, sizeof(r->exited[r->nexited].gc.service), "%s",
		 p->service);
	r->nexited++;
}

/* Folds the GC figures of processes that exited a while ago into per-service totals and
 * forgets them, so that a host with process churn keeps a flat footprint. */
static void retire_exited(struct run *r)
{
	uint64_t now = monotonic_ns();
	size_t n = 0, i;
	struct gc_retiree *list;

	while (n < r->nexited && r->exited[n].due_ns <= now)
		n++;
	if (!n)
		return;
	list = malloc(n * sizeof(*list));
	if (list) {
		for (i = 0; i < n; i++)
			list[i] = r->exited[i].gc;
		if (r->gc)
			gctrace__retire(r->gc, list, n);
		free(list);
	}
	for (i = 0; i < n; i++)
		cpuprof__forget(r->cpu, (pid_t)r->exited[i].gc.pid, r->exited[i].starttime);
	memmove(r->exited, r->exited + n, (r->nexited - n) * sizeof(*r->exited));
	r->nexited -= n;
}

/* Is pid's GC figures someone's: a process discovery named (alive, or exited and not yet
 * retired), or one still alive that it may yet name? */
static bool claimed(uint32_t pid, void *ctx)
{
	struct run *r = ctx;

	return seen_get(cpuprof__seen(r->cpu), (pid_t)pid) || kill((pid_t)pid, 0) == 0 ||
	       errno != ESRCH;
}

static int track_existing(const struct py_process *p, void *ctx)
{
	on_start(p, 0, ctx);
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
	p = cpuprof__process(r->cpu, (pid_t)e->pid);
	if ((double)e->duration_ns >= r->cfg.gc_threshold_ms * 1e6) {
		gcwatch_stack_text(cpuprof__symbolizer(r->cpu), p, e, stack, sizeof(stack));
		for (char *nl = stack; (nl = strchr(nl, '\n'));)
			*nl = '<'; /* one log line */
		log_warn("GC pause of %.1f ms in pid %u (%s), generation %d: %s",
			 (double)e->duration_ns / 1e6, e->pid, p ? p->service : "unknown",
			 e->generation, stack);
	}
	if (r->alerter)
		gcwatch_alert_pause(r->alerter, cpuprof__symbolizer(r->cpu), p, e);
	return 0;
}

static uint64_t slow_ns(const struct config *c)
{
	double ms = c->gc_threshold_ms;

	if (c->alertmanager[0] && c->alert_pause > 0 && c->alert_pause * 1e3 < ms)
		ms = c->alert_pause * 1e3; /* the kernel sends what the pause rule needs too */
	return (uint64_t)(ms * 1e6);
}

static void self_figures(struct run *r, struct self_figures *s)
{
	memset(s, 0, sizeof(*s));
	s->frequency = (int)r->cfg.frequency;
	cpuprof__totals(r->cpu, &s->cpu);
	sampler__stats(cpuprof__sampler(r->cpu), &s->sampler);
	discover__stats(cpuprof__discover(r->cpu), &s->disc);
	s->processes = s->disc.tracked;
	if ((s->have_gc = r->gc != NULL))
		gctrace__stats(r->gc, &s->gc);
	if ((s->have_shipper = r->shipper != NULL)) {
		shipper_stats(r->shipper, &s->ship);
		spool_stats(r->spool, &s->spool);
	}
	if ((s->have_store = r->store != NULL))
		store_stats(r->store, &s->store);
	s->last_store_unix = r->last_store_unix;
	s->profiles = r->profiles;
	s->have_calls = r->cfg.calls_window > 0 || r->calls.st.windows;
	s->calls = r->calls.st;
}

static void publish_metrics(struct run *r)
{
	struct self_figures s;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return;
	self_figures(r, &s);
	selfmetrics_write(&s, f);
	if (r->gc)
		gc_metrics_write(r->gc, cpuprof__seen(r->cpu), false, f);
	if (fflush(f) == 0)
		metrics_server__publish(r->metrics, text, len);
	fclose(f);
	free(text);
}

static int open_metrics(struct run *r)
{
	const struct config *c = &r->cfg;

	if (!c->metrics_addr[0] || !strcmp(c->metrics_addr, "off"))
		return 0;
	return metrics_server__start(c->metrics_addr, &r->metrics);
}

static int open_alerts(struct run *r)
{
	const struct config *c = &r->cfg;
	struct alert_opts ao = { .url = c->alertmanager,
				 .pause_s = c->alert_pause,
				 .p99_s = c->alert_p99,
				 .window_s = c->alert_window,
				 .resend_s = c->alert_resend };

	return c->alertmanager[0] ? alerter__new(&ao, &r->alerter) : 0;
}

/* Where profiles, metrics and alerts go. Each opens on its own: on reload, one that fails
 * (a store on a read-only disk, a metrics port in use) is off until the next reload, and
 * the others still take effect. */
static const struct output {
	const char *what;
	int (*open)(struct run *r);
} outputs[] = {
	{ "the local store", open_store },
	{ "delivery to Pyroscope", open_delivery },
	{ "the metrics endpoint", open_metrics },
	{ "alerts", open_alerts },
};

/* At start every output must open. Returns the first failure. */
static int open_outputs(struct run *r)
{
	int err;

	for (size_t i = 0; i < sizeof(outputs) / sizeof(outputs[0]); i++)
		if ((err = outputs[i].open(r)))
			return err;
	return 0;
}

/* After a reload: each output that fails is logged by name and left off. */
static void reopen_outputs(struct run *r)
{
	int err;

	for (size_t i = 0; i < sizeof(outputs) / sizeof(outputs[0]); i++)
		if ((err = outputs[i].open(r)))
			log_error("run: reload: %s is off until the next reload: %s",
				  outputs[i].what, strerror(-err));
}

static void close_reporting(struct run *r)
{
	if (r->alerter)
		alerter__tick(r->alerter); /* what fired last is sent once more */
	alerter__free(r->alerter);
	r->alerter = NULL;
	metrics_server__free(r->metrics);
	r->metrics = NULL;
}

/* ---- call windows ---- */

static uint64_t calls_every_ns(const struct run *r)
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
	if ((err = calltrace__attach(r->calls.ct, p, &why)))
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
	struct calltrace_opts co = { .procs_fd =
					     discover__procs_map_fd(cpuprof__discover(r->cpu)) };
	int err;

	w->next_mono = now + calls_every_ns(r);
	if (calltrace__new(&co, &w->ct)) {
		w->ct = NULL;
		w->st.failed++;
		log_warn("run: call window skipped: the call tracer did not load");
		return;
	}
	if ((err = calltrace__calibrate(w->ct, &w->ns_per_hit))) {
		log_warn("run: cannot measure what a probe hit costs (%s): taking %.1f us",
			 strerror(-err), PROBE_HIT_NS / 1000);
		w->ns_per_hit = PROBE_HIT_NS;
	}
	w->st.ns_per_hit = w->ns_per_hit;
	w->traced = 0;
	discover__for_each(cpuprof__discover(r->cpu), trace_calls_of, r);
	if (!w->traced) {
		log_debug("run: call window: no process with function probes to trace");
		calltrace__free(w->ct);
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
static void end_window(struct run *r)
{
	struct call_windows *w = &r->calls;
	uint64_t k[PYRO_CALLS_COUNTER_MAX] = { 0 }, until, hits;
	double cost_ns, share_ns = r->cfg.calls_budget / 100 * (double)calls_every_ns(r);
	struct callnames nm;
	uint64_t periods;

	calltrace__detach_all(w->ct); /* the traced processes stop trapping now */
	until = realtime_ns();
	calltrace__counters(w->ct, k);
	hits = k[PYRO_CALLS_ENTRIES] + k[PYRO_CALLS_RETURNS];
	cost_ns = (double)hits * w->ns_per_hit;
	callnames_init(&nm, w->ct);
	callprof_add(w->ct, &nm, cpuprof__seen(r->cpu), calls_profile_for, r);
	callnames_free(&nm);
	flush_series(r, &w->series, w->start_wall, until, EXPORT_KIND_CALLS);
	calltrace__free(w->ct);
	w->ct = NULL;
	w->st.windows++;
	w->st.hits += hits;
	w->st.cost_s += cost_ns / 1e9;
	periods = cost_ns > share_ns ? (uint64_t)ceil(cost_ns / share_ns) : 1;
	log_info("run: call window ended: %d processes, %.1f s, %" PRIu64
		 " probe hits, an estimated %.3f s of their time",
		 w->traced, (double)(monotonic_ns() - w->start_mono) / 1e9, hits, cost_ns / 1e9);
	if (periods > 1) {
		w->next_mono = w->start_mono + periods * calls_every_ns(r);
		w->st.deferred += periods - 1;
		log_warn("run: that call window cost %.0f times its share of calls-budget (%g%% of "
			 "one CPU); the next %" PRIu64 " windows are left out",
			 cost_ns / share_ns, r->cfg.calls_budget, periods - 1);
	}
}

/* Starts or ends a window when it is due. */
static void call_windows_tick(struct run *r, uint64_t now)
{
	if (r->calls.ct && now >= r->calls.end_mono)
		end_window(r);
	else if (!r->calls.ct && r->cfg.calls_window > 0 && now >= r->calls.next_mono)
		start_window(r, now);
}

/* When the loop must wake next for the call windows (UINT64_MAX: no need). */
static uint64_t call_windows_due(const struct run *r)
{
	if (r->calls.ct)
		return r->calls.end_mono;
	return r->cfg.calls_window > 0 ? r->calls.next_mono : UINT64_MAX;
}

/* ---- reload ---- */

/* SIGHUP: a new configuration takes effect without losing the interval; a bad one is
 * refused and the old one kept. A frequency change ends the interval early, so that each
 * profile has one sampling period. */
static void reload(struct run *r)
{
	struct config next, old = r->cfg;
	bool check_only = false;

	sd_notify(0, "RELOADING=1");
	if (read_config(r, &next, &check_only)) {
		log_error("run: reload refused; keeping the configuration in effect");
		sd_notify(0, "READY=1");
		return;
	}
	if (next.gc != old.gc)
		log_warn("run: turning GC tracing on or off takes a restart; not changed");
	next.gc = old.gc;
	if ((next.calls_window > 0) != (old.calls_window > 0)) {
		log_warn("run: turning call windows on or off takes a restart (their privileges "
			 "are kept or dropped at start); not changed");
		next.calls_window = old.calls_window;
		if (next.calls_window >= next.calls_every)
			next.calls_every = old.calls_every;
	}
	config_apply_log_level(&next);
	if (next.frequency != old.frequency) {
		cpuprof__drain(r->cpu);
		flush_interval(r);
		if (sampler__set_frequency(cpuprof__sampler(r->cpu), (int)next.frequency))
			next.frequency = old.frequency;
	}
	if (r->calls.ct)
		end_window(r); /* its settings may change */
	r->cfg = next;
	r->calls.next_mono = monotonic_ns() + calls_every_ns(r);
	close_sinks(r);
	close_reporting(r);
	reopen_outputs(r);
	if (r->gc) {
		gctrace__set_slow_ns(r->gc, slow_ns(&r->cfg));
		gctrace__set_linger_ns(r->gc, (uint64_t)(r->cfg.gc_linger * 1e9));
	}
	log_info("run: configuration reloaded: %" PRId64 " Hz, interval %g s", r->cfg.frequency,
		 r->cfg.interval);
	sd_notify(0, "READY=1");
}

/* ---- main loop ---- */

static int loop(struct run *r)
{
	uint64_t next_drain = monotonic_ns() + DRAIN_MS * 1000000ull, next_tick = 0;
	uint64_t next_unclaimed = 0;
	int err;

	while (!cmd_stop_requested) {
		uint64_t now = monotonic_ns();
		uint64_t end = r->interval_start_mono + (uint64_t)(r->cfg.interval * 1e9);
		uint64_t until = next_drain < end ? next_drain : end;

		if (call_windows_due(r) < until)
			until = call_windows_due(r);
		if (cmd_reload_requested) {
			cmd_reload_requested = 0;
			reload(r);
			continue;
		}
		err = cpuprof__poll(r->cpu, now < until ? (int)((until - now) / 1000000) + 1 : 0);
		if (err < 0 && err != -EINTR)
			return err;
		now = monotonic_ns();
		if (now >= next_drain || now >= end) {
			if ((err = cpuprof__drain(r->cpu)))
				return err;
			next_drain = now + DRAIN_MS * 1000000ull;
		}
		if (now >= end)
			flush_interval(r);
		call_windows_tick(r, now);
		if (now >= next_tick) {
			retire_exited(r);
			if (r->gc && now >= next_unclaimed) {
				gctrace__retire_untracked(r->gc, claimed, r);
				next_unclaimed = now + UNCLAIMED_MS * 1000000ull;
			}
			if (r->gc)
				gctrace__expire(r->gc);
			if (r->metrics)
				publish_metrics(r);
			if (r->alerter)
				gcwatch_alert_tick(r->alerter, r->gc, cpuprof__seen(r->cpu),
						   r->cfg.alert_p99 > 0);
			sd_notify(0, "WATCHDOG=1");
			next_tick = now + TICK_MS * 1000000ull;
		}
	}
	/* Stopping: what was sampled or traced so far is an interval or a window too. */
	if (r->calls.ct)
		end_window(r);
	discover__drain(cpuprof__discover(r->cpu)); /* the last pause events */
	err = cpuprof__drain(r->cpu);
	flush_interval(r);
	return err;
}

/* Interpreters installed on the host are attached from the start, so that their processes
 * are counted from their first collection (one started after us would otherwise run
 * untraced until discovery has inspected it, a few milliseconds). */
static void pin_installed(struct gctrace *g)
{
	static const char *const patterns[] = {
		"/usr/bin/python3*",
		"/usr/local/bin/python3*",
		"/usr/lib/*/libpython3*.so*",
		"/usr/lib/libpython3*.so*",
		"/usr/local/lib/libpython3*.so*",
	};
	glob_t gl;
	size_t i, k;

	for (i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
		if (glob(patterns[i], GLOB_NOSORT, NULL, &gl))
			continue;
		for (k = 0; k < gl.gl_pathc; k++)
			gctrace__pin_file(g, gl.gl_pathv[k]);
		globfree(&gl);
	}
}

static int start_gc(struct run *r)
{
	struct gctrace_opts go = { .all = true,
				   .slow_ns = slow_ns(&r->cfg),
				   .linger_ns = (uint64_t)(r->cfg.gc_linger * 1e9) };
	struct discover *d = cpuprof__discover(r->cpu);
	int err;

	if (!r->cfg.gc)
		return 0;
	go.procs_fd = discover__procs_map_fd(d);
	if ((err = gctrace__new(&go, &r->gc)) ||
	    (err = discover__add_ring(d, gctrace__events_fd(r->gc), on_pause, r)))
		return err;
	discover__for_each(d, track_existing, r); /* found by the scan before the tracer */
	pin_installed(r->gc);
	return 0;
}

static int run(struct run *r)
{
	char url[sizeof(r->cfg.pyroscope)];
	struct cpuprof_ops ops = {
		.profile_for = profile_for, .on_start = on_start, .on_exit = on_exit_, .ctx = r
	};
	int err;

	if (gethostname(r->host, sizeof(r->host) - 1))
		snprintf(r->host, sizeof(r->host), "unknown");
	if ((err = open_outputs(r)) || (err = cpuprof__new(&ops, &r->cpu)) || (err = start_gc(r)) ||
	    (err = cpuprof__sample(r->cpu, (int)r->cfg.frequency, true)))
		return err;
	/* Interpreters first seen later get their uprobes through the broker, the one process
	 * that keeps CAP_SYS_ADMIN (agent/uprobes.h). */
	if (r->gc && (err = uprobes_start_broker())) {
		log_error("cannot start the uprobe broker: %s", strerror(-err));
		return err;
	}
	/* Everything is loaded and attached: keep only what running needs. */
	if ((err = privs_keep_only(KEPT_CAPS | (r->cfg.calls_window > 0 ? CALL_WINDOW_CAPS : 0))))
		return err;
	r->interval_start_ns = realtime_ns();
	r->interval_start_mono = monotonic_ns();
	r->calls.next_mono = r->interval_start_mono + calls_every_ns(r);
	config_redact_url(r->cfg.pyroscope, url, sizeof(url));
	log_info("run: sampling at %" PRId64 " Hz; a profile per service every %g s to %s%s%s; "
		 "metrics on %s",
		 r->cfg.frequency, r->cfg.interval, r->store ? r->cfg.store : "",
		 r->store && r->sink ? " and " : "", r->sink ? url : "",
		 r->metrics ? r->cfg.metrics_addr : "(off)");
	sd_notify(0, "READY=1");
	err = loop(r);
	sd_notify(0, "STOPPING=1");
	log_info("run: stopping after %" PRIu64 " profiles", r->profiles);
	return err;
}

int cmd_run(int argc, char **argv)
{
	struct run r = { .argc = argc, .argv = argv, .calls.series.calls = true };
	bool check_only = false;
	int err;

	log_set_level(LOG_LVL_INFO);
	err = read_config(&r, &r.cfg, &check_only);
	if (err)
		return err > 0 ? 0 : 2;
	config_apply_log_level(&r.cfg);
	if (check_only) {
		config_print(&r.cfg, stdout);
		return 0;
	}
	/* CAP_SYS_ADMIN: creating uprobes, at start and then in the broker (agent/uprobes.h) */
	if (privs_require(PRIV_BPF | PRIV_PERFMON | PRIV_SYS_PTRACE, "run") ||
	    (r.cfg.calls_window > 0 &&
	     privs_require(CALL_WINDOW_CAPS, "run with calls-window (call windows)")) ||
	    (r.cfg.gc && privs_require(PRIV_SYS_ADMIN, "run with gc (GC probes)")))
		return 1;
	cmd_handle_stop_signals();
	cmd_handle_reload_signal();
	err = run(&r);
	close_sinks(&r);
	close_reporting(&r);
	if (r.gc && gctrace__hand_over(r.gc))
		log_debug("run: the uprobes are removed by our own exit");
	gctrace__free(r.gc);
	uprobes_stop_broker();
	calltrace__free(r.calls.ct);
	cpuprof__free(r.cpu);
	series_free(&r.cpu_series);
	series_free(&r.calls.series);
	free(r.exited);
	return err ? 1 : 0;
}
