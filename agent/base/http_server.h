/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The Prometheus endpoint: GET /metrics serves the latest text exposition published by the
 * main loop (libmicrohttpd, its own thread; the text is swapped under a mutex, so a scrape
 * never sees half an update and never waits on BPF map reads). Until the first text is
 * published, while the daemon starts, it answers 503 "starting". */
#ifndef PYRO_METRICS_H
#define PYRO_METRICS_H

#include <stddef.h>
#include <stdio.h>

struct metrics_server;

/* addr is "HOST:PORT" or "[IPv6]:PORT", numeric. */
int http_server_start(const char *addr, struct metrics_server **out);
void http_server_publish(struct metrics_server *m, const char *text, size_t len);
void http_server_free(struct metrics_server *m);

#endif
