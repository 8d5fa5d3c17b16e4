/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Grafana Pyroscope client: push.v1.PusherService/Push (Connect over HTTP/1.1) or the older
 * /ingest endpoint, through libcurl with TLS verification on and redirects off. */
#ifndef PYRO_PYROSCOPE_H
#define PYRO_PYROSCOPE_H

#include <stddef.h>

#include "delivery/export.h"

enum pyroscope_api {
	PYROSCOPE_PUSH,
	PYROSCOPE_INGEST,
};

struct pyroscope_opts {
	const char *url; /* base URL: http(s)://host:port[/prefix] */
	enum pyroscope_api api;
	const char *basic_user;	   /* with password_file: basic auth */
	const char *password_file; /* read once; must not be readable by group or others */
	const char *token_file;	   /* bearer token; same rule */
	const char *tenant;	   /* X-Scope-OrgID */
	long connect_timeout_sec;  /* default 10 */
	long timeout_sec;	   /* whole request; default 60 */
};

struct pyroscope;

/* The outcome of one attempt, for logs and counters. */
struct pyroscope_reply {
	long status;	      /* HTTP status, 0 when none came */
	unsigned retry_after; /* seconds asked by Retry-After, 0 when absent */
	char message[256];    /* the collector's or libcurl's words */
};

int pyroscope_new(const struct pyroscope_opts *o, struct pyroscope **out);
void pyroscope_free(struct pyroscope *p);
/* Sends e. Once *abort becomes non-zero the transfer has PYROSCOPE_ABORT_GRACE_SEC more to
 * finish, then is cut short (SHIP_RETRY): an upload the collector is answering completes
 * (and is not sent again after a restart), a hung one does not hold up shutdown. */
#define PYROSCOPE_ABORT_GRACE_SEC 2.0
/* A transfer that moves no byte for this long is given up on (and retried). */
#define PYROSCOPE_STALL_SEC 30
enum ship_result pyroscope_send(struct pyroscope *p, const struct export_profile *e,
				volatile int *abort, struct pyroscope_reply *r);
/* The ingest API's name= for e: SERVICE{label=value,...}, with the characters that would end
 * the name or add a label written as '_'. -ENAMETOOLONG if it does not fit in size. */
int pyroscope_ingest_name(const struct export_profile *e, char *name, size_t size);
/* The request body for the push API (for tests and debugging); *out is malloc'd. */
int pyroscope_push_body(const struct export_profile *e, const char *id, uint8_t **out, size_t *len);

#endif
