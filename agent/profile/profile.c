// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "profile/profile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int profile_init(struct profile *p, uint64_t period_ns)
{
	memset(p, 0, sizeof(*p));
	intern_init(&p->strings);
	intern_init(&p->functions);
	intern_init(&p->locations);
	intern_init(&p->samples);
	p->period_ns = period_ns;
	return profile_string(p, "") == 0 ? 0 : -ENOMEM; /* pprof wants string_table[0] == "" */
}

void profile_free(struct profile *p)
{
	intern_free(&p->strings);
	intern_free(&p->functions);
	intern_free(&p->locations);
	intern_free(&p->samples);
	free(p->counts);
	free(p->weights);
	memset(p, 0, sizeof(*p));
}

int64_t profile_string(struct profile *p, const char *s)
{
	return intern_put(&p->strings, s, strlen(s));
}

int64_t profile_function(struct profile *p, const char *name, const char *file, int start_line)
{
	struct profile_function f = { .start_line = start_line };
	int64_t n = profile_string(p, name), fl = profile_string(p, file);

	if (n < 0 || fl < 0)
		return -ENOMEM;
	f.name = (uint32_t)n;
	f.file = (uint32_t)fl;
	return intern_put(&p->functions, &f, sizeof(f));
}

int64_t profile_location(struct profile *p, uint32_t function, int line)
{
	struct profile_location l = { .function = function, .line = line };

	return intern_put(&p->locations, &l, sizeof(l));
}

static int add(struct profile *p, int pid, int tid, const char *process, const char *thread,
	       const uint32_t *locs, uint32_t nlocs, uint64_t count, uint64_t weight)
{
	size_t size = sizeof(struct profile_sample) + nlocs * sizeof(uint32_t);
	struct profile_sample *key = calloc(1, size);
	int64_t proc = profile_string(p, process), thr = profile_string(p, thread), id;

	if (!key || proc < 0 || thr < 0) {
		free(key);
		return -ENOMEM;
	}
	key->pid = pid;
	key->tid = tid;
	key->process = (uint32_t)proc;
	key->thread = (uint32_t)thr;
	key->nlocs = nlocs;
	memcpy(key->locs, locs, nlocs * sizeof(uint32_t));
	id = intern_put(&p->samples, key, size);
	free(key);
	if (id < 0)
		return (int)id;
	if ((size_t)id >= p->counts_cap) {
		size_t cap = p->counts_cap ? p->counts_cap * 2 : 1024;
		uint64_t *c = realloc(p->counts, cap * sizeof(*c));
		uint64_t *w = c ? realloc(p->weights, cap * sizeof(*w)) : NULL;

		if (c)
			p->counts = c;
		if (!c || !w)
			return -ENOMEM;
		memset(c + p->counts_cap, 0, (cap - p->counts_cap) * sizeof(*c));
		memset(w + p->counts_cap, 0, (cap - p->counts_cap) * sizeof(*w));
		p->weights = w;
		p->counts_cap = cap;
	}
	p->counts[id] += count;
	p->weights[id] += weight;
	p->total += count;
	return 0;
}

int profile_add(struct profile *p, int pid, int tid, const char *process, const char *thread,
		const uint32_t *locs, uint32_t nlocs, uint64_t count)
{
	return add(p, pid, tid, process, thread, locs, nlocs, count, 0);
}

int profile_add_weighted(struct profile *p, int pid, int tid, const char *process,
			 const char *thread, const uint32_t *locs, uint32_t nlocs, uint64_t count,
			 uint64_t weight)
{
	p->weighted = true;
	return add(p, pid, tid, process, thread, locs, nlocs, count, weight);
}
