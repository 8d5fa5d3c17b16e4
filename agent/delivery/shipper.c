// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* See shipper.h. One mutex guards the queue, the spool and the counters; it is never held
 * while sending. */
#include "delivery/shipper.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "base/log.h"
#include "delivery/pyroscope.h"
#include "delivery/spool.h"

struct shipper {
	struct shipper_opts o;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	volatile int stop;	      /* also read by libcurl's progress callback */
	struct export_profile *queue; /* ring of queue_max */
	unsigned head, len;
	struct shipper_stats st;
	unsigned failures;     /* consecutive */
	long logged_status[8]; /* refusal statuses already logged: once each */
};

static void profile_free(struct export_profile *e)
{
	free(e->data);
	e->data = NULL;
}

/* Moves the queue's oldest profile to the spool. Caller holds the lock. */
static void spill_one(struct shipper *s)
{
	struct export_profile *e = &s->queue[s->head];

	spool_put(s->o.spool, e); /* a profile it cannot take is counted there */
	profile_free(e);
	s->head = (s->head + 1) % s->o.queue_max;
	s->len--;
}

void shipper_submit(struct shipper *s, struct export_profile *e)
{
	pthread_mutex_lock(&s->lock);
	if (s->len == s->o.queue_max)
		spill_one(s);
	/* While the collector fails, nothing waits in memory: a crash must not lose it. */
	while (s->failures && s->len)
		spill_one(s);
	s->queue[(s->head + s->len) % s->o.queue_max] = *e;
	s->len++;
	s->st.submitted++;
	if (s->failures)
		spill_one(s);
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
	e->data = NULL;
}

/* Takes the next profile to send: the spool's oldest, else the queue's. from_spool tells
 * where it came from. Caller holds the lock. Returns false when there is none. */
static bool next(struct shipper *s, struct export_profile *e, bool *from_spool, uint64_t *id)
{
	if (spool_oldest(s->o.spool, e, id) == 0) {
		*from_spool = true;
		return true;
	}
	if (!s->len)
		return false;
	*e = s->queue[s->head];
	s->head = (s->head + 1) % s->o.queue_max;
	s->len--;
	*from_spool = false;
	return true;
}

static double jitter(void)
{
	uint32_t r = 0;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		r = (uint32_t)rand();
	return 0.5 + 0.5 * (double)r / 4294967296.0; /* 50-100 % of the delay */
}

/* How long to wait after a failed attempt. */
static double backoff(struct shipper *s, unsigned retry_after)
{
	double d = s->o.backoff_min_sec;
	unsigned i;

	for (i = 1; i < s->failures && d < s->o.backoff_max_sec; i++)
		d *= 2;
	if (d > s->o.backoff_max_sec)
		d = s->o.backoff_max_sec;
	d *= jitter();
	return retry_after > d ? retry_after : d;
}

/* Sleeps up to secs, or until stopped. Caller holds the lock. */
static void wait_for(struct shipper *s, double secs)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += (time_t)secs;
	until.tv_nsec += (long)((secs - (double)(time_t)secs) * 1e9);
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	while (!s->stop && pthread_cond_timedwait(&s->wake, &s->lock, &until) != ETIMEDOUT)
		;
}

/* Logs a refusal once per status: the collector's message says what to fix. */
static void log_rejected(struct shipper *s, const struct pyroscope_reply *r)
{
	size_t i;

	for (i = 0; i < sizeof(s->logged_status) / sizeof(s->logged_status[0]); i++) {
		if (s->logged_status[i] == r->status)
			return;
		if (!s->logged_status[i]) {
			s->logged_status[i] = r->status;
			break;
		}
	}
	log_error("pyroscope: the collector refused a profile with HTTP %ld (not retried; "
		  "further refusals with this status are counted, not logged): %s",
		  r->status, r->message);
}

static void after_attempt(struct shipper *s, enum ship_result res, struct export_profile *e,
			  bool from_spool, uint64_t id, const struct pyroscope_reply *r)
{
	switch (res) {
	case SHIP_OK:
		s->st.delivered++;
		s->st.last_success_unix = (uint64_t)time(NULL);
		if (s->failures)
			log_info("pyroscope: delivering again after %u failed attempts",
				 s->failures);
		s->failures = 0;
		break;
	case SHIP_REJECTED:
		s->st.rejected++;
		log_rejected(s, r);
		break;
	case SHIP_RETRY:
		s->st.failed_attempts++;
		if (!s->failures++ && !s->stop)
			log_warn("pyroscope: cannot deliver (HTTP %ld: %s); keeping profiles in "
				 "the spool and retrying",
				 r->status, r->message);
		if (from_spool) {
			spool_release(s->o.spool);
			return;
		}
		spool_put(s->o.spool, e); /* not delivered: make it survive a restart */
		return;
	}
	if (from_spool)
		spool_remove(s->o.spool, id);
}

static void *run(void *arg)
{
	struct shipper *s = arg;
	struct export_profile e;
	struct pyroscope_reply r;
	bool from_spool;
	uint64_t id = 0;

	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		enum ship_result res;

		if (!next(s, &e, &from_spool, &id)) {
			pthread_cond_wait(&s->wake, &s->lock);
			continue;
		}
		pthread_mutex_unlock(&s->lock);
		res = pyroscope_send(s->o.sink, &e, &s->stop, &r);
		pthread_mutex_lock(&s->lock);
		after_attempt(s, res, &e, from_spool, id, &r);
		profile_free(&e);
		if (res == SHIP_RETRY && !s->stop)
			wait_for(s, backoff(s, r.retry_after));
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int shipper_start(const struct shipper_opts *o, struct shipper **out)
{
	struct shipper *s = calloc(1, sizeof(*s));
	pthread_condattr_t ca;
	int err;

	if (!s)
		return -ENOMEM;
	s->o = *o;
	if (!s->o.queue_max)
		s->o.queue_max = 8;
	if (s->o.backoff_min_sec <= 0)
		s->o.backoff_min_sec = 1;
	if (s->o.backoff_max_sec < s->o.backoff_min_sec)
		s->o.backoff_max_sec = s->o.backoff_min_sec > 300 ? s->o.backoff_min_sec : 300;
	s->queue = calloc(s->o.queue_max, sizeof(*s->queue));
	if (!s->queue) {
		free(s);
		return -ENOMEM;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->wake, &ca);
	pthread_condattr_destroy(&ca);
	if ((err = pthread_create(&s->thread, NULL, run, s))) {
		free(s->queue);
		free(s);
		return -err;
	}
	*out = s;
	return 0;
}

void shipper_stop(struct shipper *s, struct shipper_stats *final)
{
	pthread_mutex_lock(&s->lock);
	s->stop = 1;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	pthread_mutex_lock(&s->lock);
	while (s->len)
		spill_one(s);
	*final = s->st;
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->wake);
	free(s->queue);
	free(s);
}

void shipper_stats(struct shipper *s, struct shipper_stats *st)
{
	pthread_mutex_lock(&s->lock);
	*st = s->st;
	st->queued = s->len;
	pthread_mutex_unlock(&s->lock);
}
