// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "cpu/sampler.h"

#include <errno.h>
#include <stddef.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/bpfload.h"
#include "base/kernel.h"
#include "base/bpfstats.h"
#include "cpu.skel.h"
#include "base/log.h"

#define STACK_BUCKETS 4096
/* A stack no sample used for this many drains is deleted from the kernel map; one drain
 * later, if still unused, from the user-space cache too. A sample counted between the two
 * (the kernel found its stack just before the delete) is still resolved from the cache. */
#define STACK_KEEP_DRAINS 3

struct cached_stack {
	struct cached_stack *next;
	uint64_t id;
	uint64_t last_drain;
	bool in_kernel;		    /* the kernel map may hold it too */
	struct sampler_stack stack; /* last: its frames follow, as many as it has */
};

struct sampler {
	struct cpu_bpf *skel;
	int ncpus;
	int *fds;
	struct bpf_link **links;
	struct bpf_link *switch_link; /* wall mode */
	struct cached_stack *stacks[STACK_BUCKETS];
	struct sampler_stats stats;
};

static int open_cpu_clock(int cpu, int freq)
{
	struct perf_event_attr attr = {
		.type = PERF_TYPE_SOFTWARE,
		.size = sizeof(attr),
		.config = PERF_COUNT_SW_CPU_CLOCK, /* no hardware PMU is needed */
		.sample_freq = (__u64)freq,
		.freq = 1,
	};

	return (int)syscall(SYS_perf_event_open, &attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
}

/* The kernel's ceiling on sampling rates (it lowers it when sample interrupts run long), or
 * 0 when unknown. */
static long max_sample_rate(void)
{
	FILE *f = fopen("/proc/sys/kernel/perf_event_max_sample_rate", "re");
	long v = 0;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v;
}

static int attach_all_cpus(struct sampler *s, int freq)
{
	int cpu, attached = 0;

	s->ncpus = libbpf_num_possible_cpus();
	if (s->ncpus <= 0)
		return -EINVAL;
	s->fds = calloc(s->ncpus, sizeof(*s->fds));
	s->links = calloc(s->ncpus, sizeof(*s->links));
	if (!s->fds || !s->links)
		return -ENOMEM;
	for (cpu = 0; cpu < s->ncpus; cpu++) {
		s->fds[cpu] = open_cpu_clock(cpu, freq);
		if (s->fds[cpu] < 0) {
			int err = errno;
			long max;

			if (err == ENODEV) /* possible but offline */
				continue;
			if (err == EINVAL && (max = max_sample_rate()) > 0 && freq > max)
				log_error("%d Hz is above this kernel's limit of %ld samples per "
					  "second (kernel.perf_event_max_sample_rate)",
					  freq, max);
			else
				log_error("perf_event_open(cpu-clock, cpu %d): %s", cpu,
					  strerror(err));
			return -err;
		}
		s->links[cpu] =
			bpf_program__attach_perf_event(s->skel->progs.on_cpu_sample, s->fds[cpu]);
		if (!s->links[cpu]) {
			log_error("attaching the sampler to cpu %d: %s", cpu, strerror(errno));
			return -errno;
		}
		attached++;
	}
	return attached ? 0 : -ENODEV;
}

int sampler_new(const struct sampler_opts *o, struct sampler **out)
{
	struct sampler *s;
	int err = kernel_require(KERNEL_CAP_CPU, "CPU profiles");

	if (err)
		return err;
	if (!(s = calloc(1, sizeof(*s))))
		return -ENOMEM;
	s->skel = cpu_bpf__open();
	if (!s->skel) {
		err = -errno;
		goto fail;
	}
	s->skel->rodata->sample_all = o->sample_all;
	s->skel->rodata->note_all = o->events_fd >= 0;
	bpf_program__set_autoload(s->skel->progs.on_switch, o->wall);
	err = bpf_map__reuse_fd(s->skel->maps.procs, o->procs_fd);
	if (!err)
		err = o->events_fd >= 0 ? bpf_map__reuse_fd(s->skel->maps.proc_events, o->events_fd)
					/* unused: the smallest ring there is */
					: bpf_map__set_max_entries(s->skel->maps.proc_events,
								   (uint32_t)getpagesize());
	if (!err)
		err = bpfload_done(s->skel->obj, "cpu", cpu_bpf__load(s->skel));
	if (err) {
		log_error("cannot load the CPU sampling BPF program: %s", strerror(-err));
		kernel_refused(KERNEL_CAP_CPU, err);
		goto fail;
	}
	err = attach_all_cpus(s, o->frequency);
	if (err)
		goto fail;
	if (o->wall && !(s->switch_link = bpf_program__attach(s->skel->progs.on_switch))) {
		err = -errno;
		log_error("attaching the off-CPU program to sched_switch: %s", strerror(-err));
		goto fail;
	}
	*out = s;
	return 0;
fail:
	sampler_free(s);
	return err;
}

int sampler_set_frequency(struct sampler *s, int freq)
{
	/* cpu-clock runs on an hrtimer: at creation the kernel turns the frequency into a period
	 * and clears attr.freq, so PERF_EVENT_IOC_PERIOD takes a period in ns here, not a
	 * frequency (kernel/events/core.c, perf_swevent_init_hrtimer). */
	__u64 period_ns = 1000000000ull / (__u64)freq;
	int i;

	for (i = 0; i < s->ncpus; i++) {
		if (s->fds[i] > 0 && ioctl(s->fds[i], PERF_EVENT_IOC_PERIOD, &period_ns)) {
			log_error("changing the sampling frequency on cpu %d: %s", i,
				  strerror(errno));
			return -errno;
		}
	}
	return 0;
}

void sampler_free(struct sampler *s)
{
	int i;

	if (!s)
		return;
	bpf_link__destroy(s->switch_link);
	for (i = 0; s->links && i < s->ncpus; i++)
		bpf_link__destroy(s->links[i]);
	for (i = 0; s->fds && i < s->ncpus; i++)
		if (s->fds[i] > 0)
			close(s->fds[i]);
	for (i = 0; i < STACK_BUCKETS; i++) {
		while (s->stacks[i]) {
			struct cached_stack *c = s->stacks[i];

			s->stacks[i] = c->next;
			free(c);
		}
	}
	free(s->links);
	free(s->fds);
	cpu_bpf__destroy(s->skel);
	free(s);
}

/* Pieces of a stack past its head (the kernel stores frames PYRO_SEG_FRAMES a piece). */
static uint32_t tail_pieces(uint32_t depth)
{
	return depth > PYRO_SEG_FRAMES ? (depth - 1) / PYRO_SEG_FRAMES : 0;
}

/* Copies the stack with this id out of the kernel: its head, then its tails. */
static struct cached_stack *stack_fetch(struct sampler *s, uint64_t id)
{
	struct pyro_stack_tail_key k = { .stack_id = id };
	struct pyro_stack_head head;
	struct cached_stack *c;
	uint32_t i;

	if (bpf_map__lookup_elem(s->skel->maps.stacks, &id, sizeof(id), &head, sizeof(head), 0))
		return NULL;
	if (head.depth > PYRO_MAX_FRAMES)
		head.depth = PYRO_MAX_FRAMES;
	c = malloc(sizeof(*c) + (size_t)head.depth * sizeof(c->stack.frames[0]));
	if (!c)
		return NULL;
	c->stack.depth = head.depth;
	c->stack.flags = head.flags;
	memcpy(c->stack.frames, head.frames,
	       (head.depth < PYRO_SEG_FRAMES ? head.depth : PYRO_SEG_FRAMES) *
		       sizeof(head.frames[0]));
	for (i = 1; i <= tail_pieces(head.depth); i++) {
		struct pyro_stack_tail t;
		uint32_t from = i * PYRO_SEG_FRAMES, n = head.depth - from;

		k.index = i;
		if (bpf_map__lookup_elem(s->skel->maps.stack_tails, &k, sizeof(k), &t, sizeof(t),
					 0)) {
			free(c);
			return NULL;
		}
		memcpy(c->stack.frames + from, t.frames,
		       (n < PYRO_SEG_FRAMES ? n : PYRO_SEG_FRAMES) * sizeof(t.frames[0]));
	}
	return c;
}

/* Removes a stack from the kernel's maps: tails first. The kernel stores a stack's tails
 * only when it stores its head, so a sample between the two deletes finds the head and
 * stores nothing; the other order could delete the tails of a head stored again. */
static void stack_delete(struct sampler *s, const struct cached_stack *c)
{
	struct pyro_stack_tail_key k = { .stack_id = c->id };
	uint32_t i;

	for (i = 1; i <= tail_pieces(c->stack.depth); i++) {
		k.index = i;
		bpf_map__delete_elem(s->skel->maps.stack_tails, &k, sizeof(k), 0);
	}
	bpf_map__delete_elem(s->skel->maps.stacks, &c->id, sizeof(c->id), 0);
}

/* Whether an off-CPU stretch still holds the stack (wall mode): a thread may sleep far
 * longer than a stack stays unused, and its stretch ends with the stack's id. */
static bool stack_held(struct sampler *s, uint64_t id)
{
	__u64 refs = 0;

	if (!s->switch_link)
		return false;
	if (bpf_map__lookup_elem(s->skel->maps.stack_refs, &id, sizeof(id), &refs, sizeof(refs), 0))
		return false;
	if (refs)
		return true;
	bpf_map__delete_elem(s->skel->maps.stack_refs, &id, sizeof(id), 0);
	return false;
}

/* The stack with this id: from the cache, else copied out of the kernel. */
static const struct sampler_stack *stack_get(struct sampler *s, uint64_t id)
{
	struct cached_stack **pp = &s->stacks[id % STACK_BUCKETS], *c;

	for (c = *pp; c; c = c->next) {
		if (c->id == id) {
			c->last_drain = s->stats.drains;
			c->in_kernel = true; /* the kernel may have stored it again */
			return &c->stack;
		}
	}
	c = stack_fetch(s, id);
	if (!c)
		return NULL;
	c->id = id;
	c->last_drain = s->stats.drains;
	c->in_kernel = true;
	c->next = *pp;
	*pp = c;
	return &c->stack;
}

static void stack_evict_old(struct sampler *s)
{
	int i;

	for (i = 0; i < STACK_BUCKETS; i++) {
		struct cached_stack **pp = &s->stacks[i];

		while (*pp) {
			struct cached_stack *c = *pp;

			if (s->stats.drains - c->last_drain < STACK_KEEP_DRAINS ||
			    stack_held(s, c->id)) {
				pp = &c->next;
				continue;
			}
			if (c->in_kernel) {
				stack_delete(s, c);
				c->in_kernel = false;
				pp = &c->next;
				continue;
			}
			*pp = c->next;
			free(c);
		}
	}
}

const struct sampler_stack *sampler_stack(struct sampler *s, uint64_t id)
{
	return stack_get(s, id);
}

int sampler_new_stacks_fd(const struct sampler *s)
{
	return bpf_map__fd(s->skel->maps.new_stacks);
}

/* The keys of a map whose epoch (a __u32 at epoch_off) is at most epoch: complete, since
 * the kernel counts into a newer one. *out is malloc'd. */
static int old_keys(struct bpf_map *m, size_t key_size, size_t epoch_off, __u32 epoch,
		    unsigned char **out, size_t *n)
{
	unsigned char key[64], next[64], *keys = NULL;
	size_t cap = 0;
	__u32 e;
	int err;

	*n = 0;
	for (err = bpf_map__get_next_key(m, NULL, next, key_size); !err;
	     err = bpf_map__get_next_key(m, key, next, key_size)) {
		memcpy(key, next, key_size);
		memcpy(&e, key + epoch_off, sizeof(e));
		if (e > epoch)
			continue;
		if (*n == cap) {
			unsigned char *g;

			cap = cap ? cap * 2 : 1024;
			g = realloc(keys, cap * key_size);
			if (!g) {
				free(keys);
				return -ENOMEM;
			}
			keys = g;
		}
		memcpy(keys + (*n)++ * key_size, key, key_size);
	}
	*out = keys;
	return 0;
}

static int drain_counts(struct sampler *s, __u32 epoch, sampler_cb cb, void *ctx)
{
	struct bpf_map *counts = s->skel->maps.counts;
	struct pyro_sample_key *old;
	struct pyro_sample_value val;
	unsigned char *keys = NULL;
	size_t n, i;
	int err = old_keys(counts, sizeof(*old), offsetof(struct pyro_sample_key, epoch), epoch,
			   &keys, &n);

	if (err)
		return err;
	old = (struct pyro_sample_key *)keys;
	for (i = 0; i < n; i++) {
		const struct sampler_stack *st;

		/* Atomic for hash maps since Linux 5.14: no increment falls between the two. */
		if (bpf_map__lookup_and_delete_elem(counts, &old[i], sizeof(old[i]), &val,
						    sizeof(val), 0))
			continue;
		st = stack_get(s, old[i].stack_id);
		if (!st)
			s->stats.lost_stacks += val.count;
		cb(&old[i], &val, st, ctx);
	}
	free(keys);
	return 0;
}

static int drain_waits(struct sampler *s, __u32 epoch, sampler_wait_cb cb, void *ctx)
{
	struct bpf_map *waits = s->skel->maps.waits;
	struct pyro_wait_key *old;
	struct pyro_wait_value val;
	unsigned char *keys = NULL;
	size_t n, i;
	int err = old_keys(waits, sizeof(*old), offsetof(struct pyro_wait_key, epoch), epoch, &keys,
			   &n);

	if (err)
		return err;
	old = (struct pyro_wait_key *)keys;
	for (i = 0; i < n; i++) {
		const struct sampler_stack *st;

		if (bpf_map__lookup_and_delete_elem(waits, &old[i], sizeof(old[i]), &val,
						    sizeof(val), 0))
			continue;
		st = stack_get(s, old[i].stack_id);
		if (!st)
			s->stats.lost_waits += val.count;
		cb(&old[i], &val, st, ctx);
	}
	free(keys);
	return 0;
}

int sampler_drain(struct sampler *s, sampler_cb cb, sampler_wait_cb wait_cb, void *ctx)
{
	__u32 epoch = s->skel->bss->epoch;
	int err;

	/* From now on the kernel counts into the next epoch: every key of this one and
	 * before is complete (a program that read the old epoch just before the flip may
	 * still add one; it is picked up by the next drain). */
	s->skel->bss->epoch = epoch + 1;
	s->stats.drains++;
	err = drain_counts(s, epoch, cb, ctx);
	if (!err && wait_cb && s->switch_link)
		err = drain_waits(s, epoch, wait_cb, ctx);
	stack_evict_old(s);
	return err;
}

void sampler_stats(struct sampler *s, struct sampler_stats *st)
{
	if (!s) {
		memset(st, 0, sizeof(*st));
		return;
	}
	*st = s->stats;
	bpfstats_percpu_sum(s->skel->maps.cpu_counters, PYRO_CPU_COUNTER_MAX, st->kernel);
}

int sampler_prog_stats(struct sampler *s, uint64_t *run_ns, uint64_t *run_cnt)
{
	*run_ns = *run_cnt = 0;
	return bpfstats_prog_runs(s->skel->progs.on_cpu_sample, run_ns, run_cnt);
}

int sampler_switch_stats(struct sampler *s, uint64_t *run_ns, uint64_t *run_cnt)
{
	*run_ns = *run_cnt = 0;
	if (!s->switch_link)
		return -ENOENT;
	return bpfstats_prog_runs(s->skel->progs.on_switch, run_ns, run_cnt);
}
