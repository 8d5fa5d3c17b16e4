// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* See evloop.h. */
#include "base/evloop.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

struct evloop {
	struct ring_buffer *rb; /* made with the first ring: libbpf needs one to start */
};

int evloop_new(struct evloop **out)
{
	struct evloop *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	*out = l;
	return 0;
}

void evloop_free(struct evloop *l)
{
	if (!l)
		return;
	ring_buffer__free(l->rb);
	free(l);
}

int evloop_add_ring(struct evloop *l, int map_fd, ring_buffer_sample_fn fn, void *ctx)
{
	if (l->rb)
		return ring_buffer__add(l->rb, map_fd, fn, ctx);
	l->rb = ring_buffer__new(map_fd, fn, ctx, NULL);
	return l->rb ? 0 : -errno;
}

int evloop_poll(struct evloop *l, int timeout_ms)
{
	int n, more;

	if (!l->rb)
		return -EINVAL; /* no ring to wait on */
	n = ring_buffer__poll(l->rb, timeout_ms);
	if (n < 0)
		return n;
	/* Rings whose producers skip wake-ups for cheapness (GC pauses) hold data epoll did
	 * not report: take it too. */
	more = ring_buffer__consume(l->rb);
	return more < 0 ? more : n + more;
}

int evloop_consume(struct evloop *l)
{
	return l->rb ? ring_buffer__consume(l->rb) : 0;
}

int evloop_drain(struct evloop *l)
{
	struct timespec ms = { .tv_nsec = 1000000 };
	int idle = 0, n, total = 0;

	if (!l->rb)
		return 0;
	/* A record another CPU is still writing stops a consume at that record, and records
	 * after it (ours, committed) wait for the next: so consume until a few rounds a
	 * millisecond apart find nothing (a BPF program finishes its record in microseconds). */
	for (int round = 0; round < 1000 && idle < 3; round++) {
		n = ring_buffer__consume(l->rb);
		if (n < 0)
			return n;
		total += n;
		idle = n ? 0 : idle + 1;
		if (!n)
			nanosleep(&ms, NULL);
	}
	return total;
}
