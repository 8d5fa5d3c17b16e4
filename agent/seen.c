// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "seen.h"

#include <errno.h>
#include <stdlib.h>

void seen_init(struct seen *s)
{
	intern_init(&s->pids);
	s->procs = NULL;
	s->cap = 0;
}

void seen_free(struct seen *s)
{
	intern_free(&s->pids);
	free(s->procs);
	s->procs = NULL;
	s->cap = 0;
}

int seen_add(struct seen *s, const struct py_process *p)
{
	int64_t id = intern_put(&s->pids, &p->pid, sizeof(p->pid));

	if (id < 0)
		return (int)id;
	if ((size_t)id >= s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct py_process *g = realloc(s->procs, cap * sizeof(*g));

		if (!g)
			return -ENOMEM;
		s->procs = g;
		s->cap = cap;
	}
	s->procs[id] = *p;
	return 0;
}

const struct py_process *seen_get(const struct seen *s, pid_t pid)
{
	int64_t id = intern_find(&s->pids, &pid, sizeof(pid));

	return id < 0 ? NULL : &s->procs[id];
}
