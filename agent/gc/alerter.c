// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "gc/alerter.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "gc/gctrace.h"
#include "base/json.h"
#include "base/log.h"

/* One snapshot a second over the window (at most 600 s): (window + 2) x 4 KiB per series. */
#define MAX_SNAPSHOTS 602

enum rule {
	RULE_PAUSE,
	RULE_P99
};

static const char *const rule_names[] = { "PythonGCPause", "PythonGCPauseP99" };

struct snapshot {
	uint64_t at_ns;
	uint64_t counts[PYRO_GC_BUCKETS];
};

struct alert {
	struct alert *next;
	enum rule rule;
	char service[64];
	int generation;
	bool firing;
	uint64_t starts_ns, last_held_ns, last_sent_ns;
	time_t starts_wall;
	uint64_t value_ns; /* longest pause, or the p99, while firing */
	char stack[2048];  /* the longest pause's stack */
	/* p99 rule: the series' histogram over time */
	struct snapshot *snaps;
	int nsnaps, cap;
};

struct alerter {
	struct alert_opts o;
	CURL *curl;
	char url[1024];
	char host[256];
	struct alert *alerts;
	bool failing; /* the last send failed: log only once per streak */
};

int alerter_new(const struct alert_opts *o, struct alerter **out)
{
	struct alerter *a;

	if (strncmp(o->url, "http://", 7) && strncmp(o->url, "https://", 8)) {
		log_error("the Alertmanager URL must start with http:// or https://, not '%s'",
			  o->url);
		return -EINVAL;
	}
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->o = *o;
	snprintf(a->url, sizeof(a->url), "%s%sapi/v2/alerts", o->url,
		 o->url[strlen(o->url) - 1] == '/' ? "" : "/");
	if (gethostname(a->host, sizeof(a->host)))
		snprintf(a->host, sizeof(a->host), "unknown");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	a->curl = curl_easy_init();
	if (!a->curl) {
		free(a);
		return -ENOMEM;
	}
	*out = a;
	return 0;
}

void alerter_free(struct alerter *a)
{
	if (!a)
		return;
	while (a->alerts) {
		struct alert *x = a->alerts;

		a->alerts = x->next;
		free(x->snaps);
		free(x);
	}
	curl_easy_cleanup(a->curl);
	curl_global_cleanup();
	free(a);
}

static struct alert *find(struct alerter *a, enum rule rule, const char *service, int generation)
{
	struct alert *x;

	for (x = a->alerts; x; x = x->next)
		if (x->rule == rule && x->generation == generation && !strcmp(x->service, service))
			return x;
	x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	x->rule = rule;
	snprintf(x->service, sizeof(x->service), "%s", service);
	x->generation = generation;
	x->next = a->alerts;
	a->alerts = x;
	return x;
}

/* The rule holds now: fire (or keep firing) with this value. */
static void hold(struct alert *x, uint64_t value_ns, const char *stack)
{
	uint64_t now = monotonic_ns();

	if (!x->firing) {
		x->firing = true;
		x->starts_ns = now;
		x->starts_wall = time(NULL);
		x->value_ns = 0;
		x->last_sent_ns = 0; /* send at once */
		x->stack[0] = '\0';
	}
	x->last_held_ns = now;
	if (value_ns >= x->value_ns || x->rule == RULE_P99) {
		x->value_ns = value_ns;
		if (stack)
			snprintf(x->stack, sizeof(x->stack), "%s", stack);
	}
}

void alerter_pause(struct alerter *a, const char *service, int generation, uint64_t duration_ns,
		   const char *stack)
{
	struct alert *x;

	if (a->o.pause_s <= 0 || (double)duration_ns < a->o.pause_s * 1e9)
		return;
	x = find(a, RULE_PAUSE, service, generation);
	if (x)
		hold(x, duration_ns, stack);
}

void alerter_histogram(struct alerter *a, const char *service, int generation,
		       const uint64_t *counts)
{
	struct alert *x;
	struct snapshot *s;
	uint64_t now = monotonic_ns(), delta[PYRO_GC_BUCKETS], n = 0, p99;
	int i, oldest = 0;

	if (a->o.p99_s <= 0 || !(x = find(a, RULE_P99, service, generation)))
		return;
	if (!x->snaps) {
		x->cap = (int)a->o.window_s + 2;
		if (x->cap > MAX_SNAPSHOTS)
			x->cap = MAX_SNAPSHOTS;
		if (!(x->snaps = calloc((size_t)x->cap, sizeof(*x->snaps))))
			return;
	}
	if (x->nsnaps == x->cap) { /* ticks came faster than once a second: drop the oldest */
		memmove(x->snaps, x->snaps + 1, (size_t)(x->cap - 1) * sizeof(*x->snaps));
		x->nsnaps--;
	}
	s = &x->snaps[x->nsnaps++];
	s->at_ns = now;
	memcpy(s->counts, counts, sizeof(s->counts));
	/* the oldest snapshot still inside the window */
	while (oldest < x->nsnaps - 1 &&
	       (double)(now - x->snaps[oldest].at_ns) > a->o.window_s * 1e9)
		oldest++;
	if (oldest) {
		memmove(x->snaps, x->snaps + oldest, (x->nsnaps - oldest) * sizeof(*x->snaps));
		x->nsnaps -= oldest;
	}
	for (i = 0; i < PYRO_GC_BUCKETS; i++) {
		delta[i] = counts[i] - x->snaps[0].counts[i];
		n += delta[i];
	}
	if (!n)
		return;
	p99 = gchist_quantile(delta, 0.99, UINT64_MAX);
	if ((double)p99 >= a->o.p99_s * 1e9)
		hold(x, p99, NULL);
}

static void rfc3339(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* One alert as Alertmanager API v2 wants it; resolved ones carry endsAt = now. */
static void alert_json(const struct alerter *a, const struct alert *x, bool resolved,
		       struct json *j)
{
	char buf[640], gen[16];

	snprintf(gen, sizeof(gen), "%d", x->generation);
	json_obj_open(j, NULL);
	json_obj_open(j, "labels");
	json_str(j, "alertname", rule_names[x->rule]);
	json_str(j, "service_name", x->service);
	json_str(j, "generation", gen);
	json_str(j, "host", a->host);
	json_str(j, "severity", "warning");
	json_obj_close(j);
	json_obj_open(j, "annotations");
	if (x->rule == RULE_PAUSE)
		snprintf(buf, sizeof(buf), "%s on %s: GC pause of %.1f ms (generation %d)",
			 x->service, a->host, (double)x->value_ns / 1e6, x->generation);
	else
		snprintf(buf, sizeof(buf),
			 "%s on %s: p99 GC pause %.1f ms over %.0f s (generation %d)", x->service,
			 a->host, (double)x->value_ns / 1e6, a->o.window_s, x->generation);
	json_str(j, "summary", buf);
	snprintf(buf, sizeof(buf), "%.3f", (double)x->value_ns / 1e6);
	json_str(j, "pause_ms", buf);
	if (x->stack[0])
		json_str(j, "stack", x->stack);
	json_obj_close(j);
	rfc3339(x->starts_wall, buf, sizeof(buf));
	json_str(j, "startsAt", buf);
	if (resolved) {
		rfc3339(time(NULL), buf, sizeof(buf));
		json_str(j, "endsAt", buf);
	}
	json_obj_close(j);
}

static int post(struct alerter *a, const char *body)
{
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	char curl_err[CURL_ERROR_SIZE] = "", why[CURL_ERROR_SIZE + 32];
	long status = 0;
	CURLcode rc;

	curl_easy_reset(a->curl);
	curl_easy_setopt(a->curl, CURLOPT_URL, a->url);
	curl_easy_setopt(a->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(a->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(a->curl, CURLOPT_FOLLOWLOCATION, 0L); /* redirects off */
	curl_easy_setopt(a->curl, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
	curl_easy_setopt(a->curl, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(a->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(a->curl, CURLOPT_ERRORBUFFER, curl_err);
	rc = curl_easy_perform(a->curl);
	curl_easy_setopt(a->curl, CURLOPT_ERRORBUFFER, NULL); /* curl_err ends with this call */
	if (rc == CURLE_OK)
		curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	if (rc == CURLE_OK && status / 100 == 2) {
		if (a->failing)
			log_info("Alertmanager reachable again");
		a->failing = false;
		return 0;
	}
	if (rc != CURLE_OK)
		snprintf(why, sizeof(why), "%s", curl_err[0] ? curl_err : curl_easy_strerror(rc));
	else
		snprintf(why, sizeof(why), "HTTP %ld", status);
	if (!a->failing)
		log_warn("cannot send alerts to Alertmanager: %s (will retry)", why);
	a->failing = true;
	return -EIO;
}

void alerter_tick(struct alerter *a)
{
	uint64_t now = monotonic_ns(), window = (uint64_t)(a->o.window_s * 1e9);
	uint64_t resend = (uint64_t)(a->o.resend_s * 1e9);
	char *body = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&body, &len);
	struct json j;
	struct alert *x;
	bool any = false;

	if (!f)
		return;
	json_begin(&j, f);
	json_arr_open(&j, NULL);
	for (x = a->alerts; x; x = x->next) {
		bool resolve = x->firing && now - x->last_held_ns >= window;

		if (!x->firing || (!resolve && x->last_sent_ns && now - x->last_sent_ns < resend))
			continue;
		alert_json(a, x, resolve, &j);
		any = true;
		x->last_sent_ns = now;
		if (resolve)
			x->firing = false;
	}
	json_arr_close(&j);
	fclose(f);
	if (any && post(a, body)) {
		/* not delivered: send everything that fires again on the next tick */
		for (x = a->alerts; x; x = x->next)
			x->last_sent_ns = 0;
	}
	free(body);
}
