// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Where profiles, metrics and alerts go: the local store, delivery to Pyroscope (shipper
 * and spool), the metrics endpoint and the Alertmanager client. */
#include "daemon/daemon.h"

static const char *opt_str(const char *s)
{
	return s[0] ? s : NULL;
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
/* Why each capability is not running, for pyrometer_capability_available; NULL if it is. */
static void capabilities_off(const struct run *r, const char **off)
{
	off[KERNEL_CAP_CPU] = NULL;
	if (!cpuprof_sampler(r->cpu))
		off[KERNEL_CAP_CPU] = kernel_lacks(KERNEL_CAP_CPU)
					      ?: "the sampler did not start (the log says why)";
	off[KERNEL_CAP_GC] = NULL;
	if (!r->cfg.gc)
		off[KERNEL_CAP_GC] = "off in the configuration";
	else if (!r->gc)
		off[KERNEL_CAP_GC] = kernel_lacks(KERNEL_CAP_GC)
					     ?: "the GC tracer did not start (the log says why)";
	off[KERNEL_CAP_CALLS] = r->cfg.calls_window > 0 ? kernel_lacks(KERNEL_CAP_CALLS)
							: "off in the configuration";
	off[KERNEL_CAP_IMPORTS] = NULL;
	if (!r->cfg.imports)
		off[KERNEL_CAP_IMPORTS] = "off in the configuration";
	else if (!r->imports.it)
		off[KERNEL_CAP_IMPORTS] =
			kernel_lacks(KERNEL_CAP_IMPORTS)
				?: "the import tracer did not start (the log says why)";
}

static void self_figures(struct run *r, struct self_figures *s)
{
	memset(s, 0, sizeof(*s));
	s->frequency = (int)r->cfg.frequency;
	cpuprof_totals(r->cpu, &s->cpu);
	sampler_stats(cpuprof_sampler(r->cpu), &s->sampler);
	discover_stats(cpuprof_discover(r->cpu), &s->disc);
	symbolizer_stats(cpuprof_symbolizer(r->cpu), &s->sym);
	s->processes = s->disc.tracked;
	if ((s->have_gc = r->gc != NULL))
		gctrace_stats(r->gc, &s->gc);
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
	capabilities_off(r, s->off);
}

void outputs_publish_metrics(struct run *r)
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
		gc_metrics_write(r->gc, cpuprof_seen(r->cpu), false, f);
	series_waits_write(r, f);
	importing_metrics_write(r, f);
	if (fflush(f) == 0)
		http_server_publish(r->metrics, text, len);
	fclose(f);
	free(text);
}

static int open_metrics(struct run *r)
{
	const struct config *c = &r->cfg;

	if (!c->metrics_addr[0] || !strcmp(c->metrics_addr, "off"))
		return 0;
	return http_server_start(c->metrics_addr, &r->metrics);
}

static int open_alerts(struct run *r)
{
	const struct config *c = &r->cfg;
	struct alert_opts ao = { .url = c->alertmanager,
				 .pause_s = c->alert_pause,
				 .p99_s = c->alert_p99,
				 .window_s = c->alert_window,
				 .resend_s = c->alert_resend };

	return c->alertmanager[0] ? alerter_new(&ao, &r->alerter) : 0;
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
int outputs_open(struct run *r)
{
	int err;

	for (size_t i = 0; i < sizeof(outputs) / sizeof(outputs[0]); i++)
		if ((err = outputs[i].open(r)))
			return err;
	return 0;
}

/* After a reload: each output that fails is logged by name and left off. */
void outputs_reopen(struct run *r)
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
		alerter_tick(r->alerter); /* what fired last is sent once more */
	alerter_free(r->alerter);
	r->alerter = NULL;
	http_server_free(r->metrics);
	r->metrics = NULL;
}

void outputs_close(struct run *r)
{
	close_sinks(r);
	close_reporting(r);
}
