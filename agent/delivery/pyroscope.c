// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* See pyroscope.h. Connect's unary calls over HTTP/1.1 are a plain POST of the protobuf
 * message with Content-Type application/proto; errors come back as an HTTP status with a
 * JSON body, whose text we keep for the log. */
#include "delivery/pyroscope.h"

#include <ctype.h>
#include <stdbool.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/version.h"
#include "base/clock.h"
#include "base/files.h"
#include "base/log.h"
#include "push.pb-c.h"

struct pyroscope {
	CURL *curl; /* kept: its connection is reused between intervals */
	enum pyroscope_api api;
	char url[2048];
	char *basic_user, *password, *token, *tenant;
	long connect_timeout, timeout;
};

/* Reads a secret from a file that only its owner may read: a token readable by others has
 * leaked already, and we will not be the ones to use it. */
static int read_secret(const char *path, char **out)
{
	unsigned char *buf = NULL;
	size_t len = 0, n;
	int err = files_read_private(path, SECRET_FILE_MAX, &buf, &len);

	if (err) {
		log_error("pyroscope: cannot read %s: %s", path, files_why(err));
		return err;
	}
	n = len;
	while (n > 0 && isspace(buf[n - 1]))
		n--;
	buf[n] = '\0';
	if (!n || memchr(buf, '\n', n) || memchr(buf, '\r', n) || memchr(buf, '\0', n)) {
		log_error("pyroscope: %s must hold one non-empty line", path);
		err = -EINVAL;
	} else {
		*out = strdup((char *)buf);
		err = *out ? 0 : -ENOMEM;
	}
	explicit_bzero(buf, len);
	free(buf);
	return err;
}

void pyroscope_free(struct pyroscope *p)
{
	if (!p)
		return;
	if (p->curl)
		curl_easy_cleanup(p->curl);
	if (p->password)
		explicit_bzero(p->password, strlen(p->password));
	if (p->token)
		explicit_bzero(p->token, strlen(p->token));
	free(p->basic_user);
	free(p->password);
	free(p->token);
	free(p->tenant);
	free(p);
}

int pyroscope_new(const struct pyroscope_opts *o, struct pyroscope **out)
{
	struct pyroscope *p;
	size_t n = strlen(o->url);
	int err = 0;

	if (strncmp(o->url, "http://", 7) && strncmp(o->url, "https://", 8)) {
		log_error("pyroscope: the URL must start with http:// or https://, not '%s'",
			  o->url);
		return -EINVAL;
	}
	if ((o->basic_user != NULL) != (o->password_file != NULL) ||
	    (o->basic_user && o->token_file)) {
		log_error("pyroscope: basic auth needs a user and a password file, and excludes a "
			  "bearer token");
		return -EINVAL;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	while (n > 0 && o->url[n - 1] == '/')
		n--;
	snprintf(p->url, sizeof(p->url), "%.*s", (int)n, o->url);
	p->api = o->api;
	p->connect_timeout = o->connect_timeout_sec > 0 ? o->connect_timeout_sec : 10;
	p->timeout = o->timeout_sec > 0 ? o->timeout_sec : 60;
	if (o->basic_user && !(p->basic_user = strdup(o->basic_user)))
		err = -ENOMEM;
	if (!err && o->password_file)
		err = read_secret(o->password_file, &p->password);
	if (!err && o->token_file)
		err = read_secret(o->token_file, &p->token);
	if (!err && o->tenant && !(p->tenant = strdup(o->tenant)))
		err = -ENOMEM;
	if (!err && (curl_global_init(CURL_GLOBAL_DEFAULT) || !(p->curl = curl_easy_init())))
		err = -ENOMEM;
	if (err) {
		pyroscope_free(p);
		return err;
	}
	*out = p;
	return 0;
}

/* ---- request bodies ---- */

int pyroscope_push_body(const struct export_profile *e, const char *id, uint8_t **out, size_t *len)
{
	Push__V1__LabelPair pairs[EXPORT_MAX_LABELS + 1], *pair_ptrs[EXPORT_MAX_LABELS + 1];
	Push__V1__RawSample sample = PUSH__V1__RAW_SAMPLE__INIT, *sample_ptr = &sample;
	Push__V1__RawProfileSeries series = PUSH__V1__RAW_PROFILE_SERIES__INIT;
	Push__V1__RawProfileSeries *series_ptr = &series;
	Push__V1__PushRequest req = PUSH__V1__PUSH_REQUEST__INIT;
	unsigned i, n;

	push__v1__label_pair__init(&pairs[0]);
	pairs[0].name = EXPORT_KIND_LABEL;
	pairs[0].value = (char *)export_kind(e);
	pair_ptrs[0] = &pairs[0];
	for (i = 0, n = 1; i < e->n_labels; i++) {
		if (!strcmp(e->labels[i].name, EXPORT_KIND_LABEL))
			continue; /* already first */
		push__v1__label_pair__init(&pairs[n]);
		pairs[n].name = (char *)e->labels[i].name;
		pairs[n].value = (char *)e->labels[i].value;
		pair_ptrs[n] = &pairs[n];
		n++;
	}
	sample.raw_profile.data = e->data;
	sample.raw_profile.len = e->len;
	sample.id = (char *)id;
	series.n_labels = n;
	series.labels = pair_ptrs;
	series.n_samples = 1;
	series.samples = &sample_ptr;
	req.n_series = 1;
	req.series = &series_ptr;
	*len = push__v1__push_request__get_packed_size(&req);
	*out = malloc(*len + 1);
	if (!*out)
		return -ENOMEM;
	push__v1__push_request__pack(&req, *out);
	return 0;
}

/* The ingest API's name has no escaping: a '{', '}', '=' or ',' of a service name or label
 * value would end the name or add labels of its own (svc{host=spoofed}). They are written
 * as '_' there; the push API carries names and values as they are. */
static void ingest_safe(char *s)
{
	for (; *s; s++)
		if (strchr("{}=,", *s))
			*s = '_';
}

int pyroscope_ingest_name(const struct export_profile *e, char *name, size_t size)
{
	char part[EXPORT_LABEL_VALUE];
	size_t at;
	unsigned i;

	snprintf(part, sizeof(part), "%s", export_service(e));
	ingest_safe(part);
	at = (size_t)snprintf(name, size, "%s{", part);
	/* the kind is not a label here: ingest reads the sample types from the pprof */
	for (i = 1; i < e->n_labels && at < size; i++) {
		if (!strcmp(e->labels[i].name, EXPORT_KIND_LABEL))
			continue;
		snprintf(part, sizeof(part), "%s", e->labels[i].value);
		ingest_safe(part);
		at += (size_t)snprintf(name + at, size - at, "%s%s=%s",
				       name[at - 1] == '{' ? "" : ",", e->labels[i].name, part);
	}
	if (at + 2 > size)
		return -ENAMETOOLONG;
	snprintf(name + at, size - at, "}");
	return 0;
}

/* /ingest?name=SERVICE{label=value,...}&from=..&until=..&format=pprof */
static int ingest_url(struct pyroscope *p, const struct export_profile *e, char *out, size_t size)
{
	char name[1024];
	char *esc;
	int err = pyroscope_ingest_name(e, name, sizeof(name));

	if (err)
		return err;
	esc = curl_easy_escape(p->curl, name, 0);
	if (!esc)
		return -ENOMEM;
	snprintf(out, size,
		 "%s/ingest?name=%s&from=%" PRIu64 "&until=%" PRIu64
		 "&format=pprof&spyName=pyrometer",
		 p->url, esc, e->from_ns / 1000000000, (e->until_ns + 999999999) / 1000000000);
	curl_free(esc);
	return 0;
}

/* ---- the transfer ---- */

struct xfer {
	volatile int *abort;
	double abort_seen; /* monotonic seconds when *abort was first seen set, or 0 */
	curl_off_t moved;  /* bytes sent and received so far */
	double moved_at;   /* monotonic seconds when that last grew */
	bool stalled;
	struct pyroscope_reply *r;
	size_t msg_len;
};

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
	struct xfer *x = ctx;
	size_t len = size * n, room = sizeof(x->r->message) - 1 - x->msg_len, i;

	for (i = 0; i < len && i < room; i++) /* the collector's words, printable only */
		x->r->message[x->msg_len++] = isprint((unsigned char)data[i]) ? data[i] : ' ';
	x->r->message[x->msg_len] = '\0';
	return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *ctx)
{
	struct xfer *x = ctx;
	size_t len = size * n;
	char value[128];

	if (len > 12 && len < 12 + sizeof(value) && !strncasecmp(data, "Retry-After:", 12)) {
		char *end;
		long secs;
		time_t when;

		snprintf(value, sizeof(value), "%.*s", (int)(len - 12), data + 12);
		secs = strtol(value, &end, 10);
		if (end != value && secs >= 0 && (*end == '\r' || *end == '\n' || !*end))
			x->r->retry_after = (unsigned)(secs > 86400 ? 86400 : secs);
		else if ((when = curl_getdate(value, NULL)) > 0)
			x->r->retry_after = when > time(NULL) ? (unsigned)(when - time(NULL)) : 0;
	}
	return len;
}

/* libcurl calls this at least once a second, also while nothing moves. It ends a transfer
 * that moved no byte for PYROSCOPE_STALL_SEC (curl's own low-speed check averages over a few
 * seconds: it gave up 37 s after the last byte, not 30), and one that *abort asked to stop,
 * after a grace period. */
static int on_progress(void *ctx, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct xfer *x = ctx;
	double now = (double)monotonic_ns() / 1e9;

	(void)dt, (void)ut;
	if (!x->moved_at || dn + un != x->moved) {
		x->moved = dn + un;
		x->moved_at = now;
	} else if (now - x->moved_at >= PYROSCOPE_STALL_SEC) {
		x->stalled = true;
		return 1;
	}
	if (!x->abort || !*x->abort)
		return 0;
	if (!x->abort_seen)
		x->abort_seen = now;
	return now - x->abort_seen >= PYROSCOPE_ABORT_GRACE_SEC;
}

static enum ship_result classify(long status)
{
	if (status >= 200 && status < 300)
		return SHIP_OK;
	if (status == 408 || status == 429 || status >= 500)
		return SHIP_RETRY;
	return SHIP_REJECTED; /* other 4xx, and 3xx: redirects are not followed */
}

enum ship_result pyroscope_send(struct pyroscope *p, const struct export_profile *e,
				volatile int *abort, struct pyroscope_reply *r)
{
	struct xfer x = { .abort = abort, .r = r };
	struct curl_slist *hdrs = NULL;
	char url[4096], auth[SECRET_FILE_MAX + 32], tenant[256];
	char curl_err[CURL_ERROR_SIZE] = "";
	uint8_t *body = NULL;
	size_t len = 0;
	enum ship_result res;
	CURLcode rc;
	CURL *c = p->curl;

	memset(r, 0, sizeof(*r));
	if (p->api == PYROSCOPE_PUSH) {
		snprintf(url, sizeof(url), "%s/push.v1.PusherService/Push", p->url);
		if (pyroscope_push_body(e, e->id, &body, &len))
			return SHIP_RETRY;
		hdrs = curl_slist_append(hdrs, "Content-Type: application/proto");
		hdrs = curl_slist_append(hdrs, "Connect-Protocol-Version: 1");
	} else {
		if (ingest_url(p, e, url, sizeof(url)))
			return SHIP_REJECTED;
		hdrs = curl_slist_append(hdrs, "Content-Type: application/octet-stream");
	}
	hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip */
	if (p->token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", p->token);
		hdrs = curl_slist_append(hdrs, auth);
		explicit_bzero(auth, sizeof(auth));
	}
	if (p->tenant) {
		snprintf(tenant, sizeof(tenant), "X-Scope-OrgID: %s", p->tenant);
		hdrs = curl_slist_append(hdrs, tenant);
	}
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, p->connect_timeout);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, p->timeout);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "pyrometer/" PYROMETER_VERSION);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS,
			 p->api == PYROSCOPE_PUSH ? (char *)body : (char *)e->data);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
			 (curl_off_t)(p->api == PYROSCOPE_PUSH ? len : e->len));
	if (p->basic_user) {
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
		curl_easy_setopt(c, CURLOPT_USERNAME, p->basic_user);
		curl_easy_setopt(c, CURLOPT_PASSWORD, p->password);
	}
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, &x);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	/* libcurl's own account ("Connection timed out after 10001 milliseconds") says more
	 * than its code's name ("Timeout was reached") */
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
	rc = curl_easy_perform(c);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL); /* curl_err ends with this call */
	curl_slist_free_all(hdrs);
	free(body);
	if (rc != CURLE_OK) {
		if (x.stalled)
			snprintf(r->message, sizeof(r->message),
				 "no byte sent or received for %d s", PYROSCOPE_STALL_SEC);
		else
			snprintf(r->message, sizeof(r->message), "%s",
				 curl_err[0] ? curl_err : curl_easy_strerror(rc));
		return SHIP_RETRY;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	res = classify(r->status);
	if (res == SHIP_OK)
		r->message[0] = '\0';
	return res;
}
