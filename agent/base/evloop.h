/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The event loop every BPF ring buffer is served from: discovery's process events, the CPU
 * sampler's new stacks, GC pauses. One epoll set (libbpf's ring_buffer), one thread: each
 * callback runs inside evloop_poll or evloop_drain. */
#ifndef PYRO_EVLOOP_H
#define PYRO_EVLOOP_H

#include <bpf/libbpf.h>

struct evloop;

int evloop_new(struct evloop **out);
void evloop_free(struct evloop *l);
/* Serves the ring buffer map map_fd: fn runs for each record. */
int evloop_add_ring(struct evloop *l, int map_fd, ring_buffer_sample_fn fn, void *ctx);
/* Waits up to timeout_ms (-1: until a record comes) and handles what arrived, including
 * records whose producers skipped the wake-up. Returns the records handled or a negative
 * errno (-EINTR when a signal interrupted the wait). */
int evloop_poll(struct evloop *l, int timeout_ms);
/* Handles what the rings hold now, without waiting. */
int evloop_consume(struct evloop *l);
/* At the end: reads what every ring still holds, including records that another CPU was
 * writing at the first try. Returns the records read or a negative errno. */
int evloop_drain(struct evloop *l);

#endif
