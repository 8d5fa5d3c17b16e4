/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* An aggregated, symbolized CPU profile: what the writers (pprof, folded, flame graph) read.
 * Functions, locations and samples are deduplicated; strings are interned with "" as id 0. */
#ifndef PYRO_PROFILE_H
#define PYRO_PROFILE_H

#include <stdbool.h>
#include <stdint.h>

#include "profile/intern.h"

struct profile_function {
	uint32_t name, file; /* string ids */
	int32_t start_line;
};

struct profile_location {
	uint32_t function; /* function id */
	int32_t line;
};

/* A sample key as stored: fixed header, then nlocs location ids, leaf first. */
struct profile_sample {
	int32_t pid, tid;
	uint32_t process; /* string id of the process's comm */
	uint32_t thread;  /* string id of the thread's name */
	uint32_t nlocs;
	uint32_t locs[];
};

struct profile {
	struct intern strings, functions, locations, samples;
	uint64_t *counts; /* per sample id */
	size_t counts_cap;
	uint64_t period_ns; /* one sample stands for this much CPU time */
	uint64_t start_ns;  /* CLOCK_REALTIME */
	uint64_t duration_ns;
	uint64_t total; /* samples added */
	/* Call profiles: each sample carries its own second value (wall time) instead of
	 * count x period, and the sample types are named here (NULL: samples/count and
	 * cpu/nanoseconds). */
	uint64_t *weights; /* per sample id, when weighted */
	bool weighted;
	const char *types[4]; /* type and unit of value 0, then of value 1 */
	/* Folded and flame graph output: nonzero prints each stack's weight divided by this
	 * (wall profiles: microseconds) instead of its count. */
	uint64_t folded_weight_div;
};

int profile_init(struct profile *p, uint64_t period_ns);
void profile_free(struct profile *p);
int64_t profile_string(struct profile *p, const char *s);
int64_t profile_function(struct profile *p, const char *name, const char *file, int start_line);
int64_t profile_location(struct profile *p, uint32_t function, int line);
int profile_add(struct profile *p, int pid, int tid, const char *process, const char *thread,
		const uint32_t *locs, uint32_t nlocs, uint64_t count);
/* Adds count and weight (the second value) to a sample; sets p->weighted. */
int profile_add_weighted(struct profile *p, int pid, int tid, const char *process,
			 const char *thread, const uint32_t *locs, uint32_t nlocs, uint64_t count,
			 uint64_t weight);

static inline const char *profile_str(const struct profile *p, uint32_t id)
{
	return intern_key(&p->strings, id, NULL);
}

static inline const struct profile_sample *profile_sample_at(const struct profile *p, uint32_t id)
{
	return intern_key(&p->samples, id, NULL);
}

#endif
