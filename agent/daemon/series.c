// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* One profile per label set (service, container, pod, Python version) per interval, and per
 * call window: keyed, labelled, encoded as pprof and handed to the sinks. */
#include "daemon/daemon.h"

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
	err = set->kind == SERIES_CALLS
		      ? callprof_init(&n->prof)
		      : profile_init(&n->prof, 1000000000ull / (uint64_t)r->cfg.frequency);
	if (err)
		return NULL;
	if (set->kind == SERIES_OFF_CPU) {
		/* each sample a stack's stretches off the CPU: how many, and how long */
		n->prof.types[0] = "samples", n->prof.types[1] = "count";
		n->prof.types[2] = "off_cpu", n->prof.types[3] = "nanoseconds";
		n->prof.weighted = true;
	} else if (set->kind == SERIES_IMPORTS) {
		/* each sample a module: how many imports, and their exclusive time */
		n->prof.types[0] = "modules", n->prof.types[1] = "count";
		n->prof.types[2] = "import", n->prof.types[3] = "nanoseconds";
		n->prof.weighted = true;
	}
	set->n++;
	snprintf(n->service, sizeof(n->service), "%s", service);
	text_sanitize(n->service);
	snprintf(n->container, sizeof(n->container), "%s", container);
	snprintf(n->pod, sizeof(n->pod), "%s", pod);
	snprintf(n->version, sizeof(n->version), "%s", version);
	return &n->prof;
}

struct profile *series_profile_for(const struct py_process *p, void *ctx)
{
	struct run *r = ctx;

	return series_profile(r, &r->cpu_series, p);
}

struct profile *series_calls_profile_for(const struct py_process *p, void *ctx)
{
	struct run *r = ctx;

	return series_profile(r, &r->calls.series, p);
}

struct profile *series_imports_profile_for(const struct py_process *p, void *ctx)
{
	struct run *r = ctx;

	return series_profile(r, &r->imports.series, p);
}

struct profile *series_off_cpu_profile_for(const struct py_process *p, void *ctx)
{
	struct run *r = ctx;

	return series_profile(r, &r->off_cpu_series, p);
}

static struct wait_total *wait_total_for(struct run *r, const char *service)
{
	struct wait_total *w;

	for (size_t i = 0; i < r->nwaits; i++)
		if (!strcmp(r->waits[i].service, service))
			return &r->waits[i];
	w = realloc(r->waits, (r->nwaits + 1) * sizeof(*w));
	if (!w)
		return NULL;
	r->waits = w;
	w = &r->waits[r->nwaits++];
	memset(w, 0, sizeof(*w));
	snprintf(w->service, sizeof(w->service), "%s", service);
	return w;
}

/* Adds an interval's off-CPU profiles to the per-service totals: each sample's leaf says
 * [gil] or [off-cpu] (agent/cpu/cpuprof.c). */
static void account_waits(struct run *r)
{
	for (size_t i = 0; i < r->off_cpu_series.n; i++) {
		struct series *s = &r->off_cpu_series.v[i];
		struct wait_total *w = wait_total_for(r, s->service);
		const struct profile *p = &s->prof;

		for (size_t k = 0; w && k < p->samples.n; k++) {
			const struct profile_sample *smp = profile_sample_at(p, (uint32_t)k);
			const struct profile_location *l;
			const struct profile_function *f;

			if (!smp->nlocs)
				continue;
			l = intern_key(&p->locations, smp->locs[0], NULL);
			f = intern_key(&p->functions, l->function, NULL);
			if (!strcmp(profile_str(p, f->name), "[gil]"))
				w->gil_ns += p->weights[k];
			else
				w->other_ns += p->weights[k];
		}
	}
}

void series_waits_write(const struct run *r, FILE *f)
{
	static const char *const names[] = { "python_gil_wait_seconds_total",
					     "python_off_cpu_seconds_total" };
	static const char *const help[] = {
		"Time Python threads spent off the CPU waiting for the GIL.",
		"Time Python threads spent off the CPU for any other reason (sleep, I/O, locks, "
		"preemption).",
	};

	if (!r->cfg.off_cpu)
		return;
	for (int m = 0; m < 2; m++) {
		fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", names[m], help[m], names[m]);
		for (size_t i = 0; i < r->nwaits; i++) {
			fprintf(f, "%s{service_name=\"", names[m]);
			text_label_value(f, r->waits[i].service);
			fprintf(f, "\"} %.9f\n",
				(double)(m ? r->waits[i].other_ns : r->waits[i].gil_ns) / 1e9);
		}
	}
}

void series_free(struct series_set *set)
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

/* One profile per series that has samples, to every sink; the set is emptied. */
void series_flush(struct run *r, struct series_set *set, uint64_t from, uint64_t until,
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
void series_flush_interval(struct run *r)
{
	uint64_t until = realtime_ns();

	series_flush(r, &r->cpu_series, r->interval_start_ns, until, NULL);
	account_waits(r);
	series_flush(r, &r->off_cpu_series, r->interval_start_ns, until, EXPORT_KIND_OFF_CPU);
	r->interval_start_ns = until;
	r->interval_start_mono = monotonic_ns();
}
