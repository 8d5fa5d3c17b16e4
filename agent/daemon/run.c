// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* pyrometer run: the daemon. It samples every Python process on the host and, at the end of
 * each interval, encodes one pprof per label set (service, container, pod, Python version)
 * for the sinks: the local store and/or Grafana Pyroscope through the shipper. It traces GC
 * pauses, serves /metrics (GC and its own figures), and sends alerts. When calls-window is
 * set it also traces every function call of the host's Python processes for a few seconds
 * on a schedule, within a CPU budget, and exports those windows as calls profiles.
 * SIGTERM/SIGINT flush and stop; SIGHUP reloads the configuration. Settings: agent/daemon/config.c. */
#include "daemon/daemon.h"
#include "daemon/run.h"

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
	if (next.imports != old.imports)
		log_warn("run: turning import profiles on or off takes a restart; not changed");
	next.imports = old.imports;
	if (next.off_cpu != old.off_cpu)
		log_warn("run: turning off-CPU profiles on or off takes a restart; not changed");
	next.off_cpu = old.off_cpu;
	if ((next.calls_window > 0) != (old.calls_window > 0)) {
		log_warn("run: turning call windows on or off takes a restart (their privileges "
			 "are kept or dropped at start); not changed");
		next.calls_window = old.calls_window;
		if (next.calls_window >= next.calls_every)
			next.calls_every = old.calls_every;
	}
	config_apply_log_level(&next);
	if (next.frequency != old.frequency) {
		cpuprof_drain(r->cpu);
		series_flush_interval(r);
		if (cpuprof_sampler(r->cpu) &&
		    sampler_set_frequency(cpuprof_sampler(r->cpu), (int)next.frequency))
			next.frequency = old.frequency;
	}
	if (r->calls.ct)
		windows_end(r); /* its settings may change */
	r->cfg = next;
	r->calls.next_mono = monotonic_ns() + windows_every_ns(r);
	outputs_close(r);
	outputs_reopen(r);
	if (r->metrics) /* a new endpoint serves figures from its first scrape */
		outputs_publish_metrics(r);
	if (r->gc) {
		gctrace_set_slow_ns(r->gc, tracking_slow_ns(&r->cfg));
		gctrace_set_linger_ns(r->gc, (uint64_t)(r->cfg.gc_linger * 1e9));
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

	while (!signals_stop_requested) {
		uint64_t now = monotonic_ns();
		uint64_t end = r->interval_start_mono + (uint64_t)(r->cfg.interval * 1e9);
		uint64_t until = next_drain < end ? next_drain : end;

		if (windows_due(r) < until)
			until = windows_due(r);
		if (signals_reload_requested) {
			signals_reload_requested = 0;
			reload(r);
			continue;
		}
		err = cpuprof_poll(r->cpu, now < until ? (int)((until - now) / 1000000) + 1 : 0);
		if (err < 0 && err != -EINTR)
			return err;
		now = monotonic_ns();
		if (now >= next_drain || now >= end) {
			if ((err = cpuprof_drain(r->cpu)))
				return err;
			next_drain = now + DRAIN_MS * 1000000ull;
		}
		if (now >= end)
			series_flush_interval(r);
		windows_tick(r, now);
		if (now >= next_tick) {
			tracking_retire_exited(r);
			if (r->gc && now >= next_unclaimed) {
				gctrace_retire_untracked(r->gc, tracking_claimed, r);
				next_unclaimed = now + UNCLAIMED_MS * 1000000ull;
			}
			if (r->gc)
				gctrace_expire(r->gc);
			importing_tick(r, now);
			if (r->metrics)
				outputs_publish_metrics(r);
			if (r->alerter)
				gcwatch_alert_tick(r->alerter, r->gc, cpuprof_seen(r->cpu),
						   r->cfg.alert_p99 > 0);
			sd_notify(0, "WATCHDOG=1");
			next_tick = now + TICK_MS * 1000000ull;
		}
	}
	/* Stopping: what was sampled or traced so far is an interval or a window too. */
	if (r->calls.ct)
		windows_end(r);
	evloop_drain(cpuprof_loop(r->cpu)); /* the last pause and import events */
	err = cpuprof_drain(r->cpu);
	series_flush_interval(r);
	importing_flush(r);
	return err;
}

/* True, and logged, when a stop was requested before the start-up step `next`. */
static bool stop_before(const char *next)
{
	if (!signals_stop_pending())
		return false;
	log_info("run: stop requested during start-up, before %s", next);
	return true;
}

/* Loads and attaches each capability's BPF programs. Each one that cannot start (a kernel
 * without a BPF feature, a verifier that refuses a program) is logged and left off; the
 * rest runs (/metrics says which). */
static int start_capabilities(struct run *r, const struct cpuprof_ops *ops)
{
	int err;

	if ((err = cpuprof_new(ops, &r->cpu)) || stop_before("GC pauses"))
		return err;
	if (tracking_start_gc(r))
		log_warn("run: going on without GC pauses");
	if (stop_before("CPU profiles"))
		return 0;
	if (cpuprof_sample(r->cpu, (int)r->cfg.frequency, true))
		log_warn("run: going on without CPU profiles");
	if (stop_before("imports"))
		return 0;
	if (importing_start(r))
		log_warn("run: going on without import profiles");
	if (r->cfg.calls_window > 0 && kernel_lacks(KERNEL_CAP_CALLS))
		log_warn("run: going on without call windows: %s", kernel_lacks(KERNEL_CAP_CALLS));
	return 0;
}

static int run(struct run *r)
{
	char url[sizeof(r->cfg.pyroscope)];
	struct cpuprof_ops ops = { .profile_for = series_profile_for,
				   .wait_profile_for =
					   r->cfg.off_cpu ? series_off_cpu_profile_for : NULL,
				   .on_start = tracking_on_start,
				   .on_exit = tracking_on_exit,
				   .ctx = r };
	int err;

	if (gethostname(r->host, sizeof(r->host) - 1))
		snprintf(r->host, sizeof(r->host), "unknown");
	if ((err = outputs_open(r)))
		return err;
	/* A stop during start-up is answered between the loads of the BPF programs, never in
	 * the middle of one (signals_hold_stop). */
	signals_hold_stop(true);
	err = start_capabilities(r, &ops);
	signals_hold_stop(false);
	if (err || signals_stop_requested)
		return err;
	/* Interpreters first seen later get their uprobes through the broker, the one process
	 * that keeps CAP_SYS_ADMIN (agent/usdt/uprobes.h). */
	if ((r->gc || r->imports.it) && (err = uprobes_start_broker())) {
		log_error("cannot start the uprobe broker: %s", strerror(-err));
		return err;
	}
	/* Everything is loaded and attached: keep only what running needs. */
	if ((err = privs_keep_only(KEPT_CAPS | (r->cfg.calls_window > 0 ? CALL_WINDOW_CAPS : 0))))
		return err;
	r->interval_start_ns = realtime_ns();
	r->interval_start_mono = monotonic_ns();
	r->calls.next_mono = r->interval_start_mono + windows_every_ns(r);
	if (r->metrics) /* until now it answered 503: starting */
		outputs_publish_metrics(r);
	config_redact_url(r->cfg.pyroscope, url, sizeof(url));
	log_info("run: ready: %s %" PRId64 " Hz; a profile per service every %g s to %s%s%s; "
		 "metrics on %s",
		 cpuprof_sampler(r->cpu) ? "sampling at" : "CPU profiles off, would sample at",
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
	struct run r = { .argc = argc,
			 .argv = argv,
			 .calls.series.kind = SERIES_CALLS,
			 .off_cpu_series.kind = SERIES_OFF_CPU };
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
	/* CAP_SYS_ADMIN: creating uprobes, at start and then in the broker (agent/usdt/uprobes.h) */
	if (privs_require(PRIV_BPF | PRIV_PERFMON | PRIV_SYS_PTRACE, "run") ||
	    (r.cfg.calls_window > 0 &&
	     privs_require(CALL_WINDOW_CAPS, "run with calls-window (call windows)")) ||
	    (r.cfg.gc && privs_require(PRIV_SYS_ADMIN, "run with gc (GC probes)")) ||
	    (r.cfg.imports && privs_require(PRIV_SYS_ADMIN, "run with imports (import probes)")))
		return 1;
	signals_handle_stop();
	signals_handle_reload();
	err = run(&r);
	outputs_close(&r);
	if (r.gc && gctrace_hand_over(r.gc))
		log_debug("run: the uprobes are removed by our own exit");
	gctrace_free(r.gc);
	importing_stop(&r);
	uprobes_stop_broker();
	calltrace_free(r.calls.ct);
	cpuprof_free(r.cpu);
	series_free(&r.cpu_series);
	series_free(&r.off_cpu_series);
	free(r.waits);
	series_free(&r.calls.series);
	free(r.exited);
	return err ? 1 : 0;
}
