/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* CPU sampling: a cpu-clock perf event on every CPU running bpf/cpu.bpf.c, and the drain of
 * what it counted. */
#ifndef PYRO_SAMPLER_H
#define PYRO_SAMPLER_H

#include <linux/types.h>
#include <stdbool.h>
#include <stdint.h>

#include "pyrometer.h"

struct sampler;

struct sampler_opts {
	int frequency;	 /* samples per second per CPU */
	bool sample_all; /* every tracked process, not only those flagged PYRO_PROC_SAMPLE */
	int procs_fd;	 /* discovery's pid map */
	int events_fd;	 /* discovery's event ring, for notes of untracked processes; -1: none */
	bool wall;	 /* time off the CPU too (sched_switch), drained as waits */
};

/* A stored stack put back together from its pieces (struct pyro_stack_head and its
 * tails): depth frames, leaf first. */
struct sampler_stack {
	uint32_t depth;
	uint32_t flags; /* enum pyro_stack_flags */
	uint64_t frames[];
};

/* stack is NULL when it could not be found (counted in lost_stacks). */
typedef void (*sampler_cb)(const struct pyro_sample_key *key, const struct pyro_sample_value *val,
			   const struct sampler_stack *stack, void *ctx);

/* An off-CPU stretch total (wall mode); stack as for sampler_cb. */
typedef void (*sampler_wait_cb)(const struct pyro_wait_key *key, const struct pyro_wait_value *val,
				const struct sampler_stack *stack, void *ctx);

struct sampler_stats {
	uint64_t kernel[PYRO_CPU_COUNTER_MAX];
	uint64_t lost_stacks; /* counts whose stack was gone */
	uint64_t lost_waits;  /* off-CPU stretches whose stack was gone */
	uint64_t drains;
};

int sampler_new(const struct sampler_opts *opts, struct sampler **out);
void sampler_free(struct sampler *s);
/* Changes the frequency of every CPU's event in place (maps and pending samples are kept). */
int sampler_set_frequency(struct sampler *s, int freq);
/* Hands every sample counted since the last drain to cb, and every off-CPU total to
 * wait_cb (wall mode; may be NULL otherwise), and removes them from the kernel. */
int sampler_drain(struct sampler *s, sampler_cb cb, sampler_wait_cb wait_cb, void *ctx);
void sampler_stats(struct sampler *s, struct sampler_stats *st);
/* The frames of a stack id, or NULL. */
const struct sampler_stack *sampler_stack(struct sampler *s, uint64_t id);
/* Ring buffer of struct pyro_new_stack: a stack was stored for the first time. */
int sampler_new_stacks_fd(const struct sampler *s);
/* Total BPF run time and run count of the sampling program (kernel.bpf_stats_enabled). */
int sampler_prog_stats(struct sampler *s, uint64_t *run_ns, uint64_t *run_cnt);
/* The same for the off-CPU program (wall mode), which runs at every context switch. */
int sampler_switch_stats(struct sampler *s, uint64_t *run_ns, uint64_t *run_cnt);

#endif
