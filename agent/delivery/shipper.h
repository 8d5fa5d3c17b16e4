/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Delivery to a remote collector with a thread of its own: a bounded in-memory queue in
 * front of the on-disk spool, exponential backoff with jitter, Retry-After honoured, and
 * permanent refusals (4xx other than 408/429) dropped and counted, never retried.
 *
 * A profile moves to the spool when the queue is full, when an attempt to send it fails,
 * when it is submitted while the collector is failing, and at shutdown; the spool's oldest
 * profiles go out before the queue's. */
#ifndef PYRO_SHIPPER_H
#define PYRO_SHIPPER_H

#include <stdint.h>

#include "delivery/export.h"

struct pyroscope;
struct spool;

struct shipper_opts {
	struct pyroscope *sink;
	struct spool *spool;
	unsigned queue_max;	/* profiles held in memory (default 8) */
	double backoff_min_sec; /* first wait after a failure (default 1) */
	double backoff_max_sec; /* longest wait (default 300); Retry-After may ask more */
};

struct shipper_stats {
	uint64_t submitted;
	uint64_t delivered;
	uint64_t failed_attempts; /* attempts that will be retried */
	uint64_t rejected;	  /* refused for good by the collector */
	uint64_t queued;	  /* in memory now */
	uint64_t last_success_unix;
};

struct shipper;

int shipper_start(const struct shipper_opts *o, struct shipper **out);
/* Takes e (and e->data) over. */
void shipper_submit(struct shipper *s, struct export_profile *e);
/* Stops the thread: an upload in flight is cut short, and it and the queue go to the spool.
 * Then frees s; final gets the last counters. */
void shipper_stop(struct shipper *s, struct shipper_stats *final);
void shipper_stats(struct shipper *s, struct shipper_stats *st);

#endif
