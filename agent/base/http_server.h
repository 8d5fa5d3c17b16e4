/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The Prometheus endpoint: GET /metrics serves the latest text exposition published by the
 * main loop (libmicrohttpd, its own thread; the text is swapped under a mutex, so a scrape
 * never sees half an update and never waits on BPF map reads). */
#ifndef PYRO_METRICS_H
#define PYRO_METRICS_H

#include <stddef.h>
#include <stdio.h>

struct metrics_server;

/* addr is "HOST:PORT" or "[IPv6]:PORT", numeric. */
int metrics_server__start(const char *addr, struct metrics_server **out);
void metrics_server__publish(struct metrics_server *m, const char *text, size_t len);
void metrics_server__free(struct metrics_server *m);

/* Writes a label value with the exposition format's escapes (\\, \", \n). */
void metrics_label_value(FILE *f, const char *s);

#endif
