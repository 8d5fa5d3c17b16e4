// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "procs/seen.h"

#include <errno.h>
#include <stdlib.h>

struct seen_entry {
	struct seen_entry *next;
	struct py_process p;
};

static struct seen_entry **slot(const struct seen *s, pid_t pid)
{
	struct seen_entry **e = (struct seen_entry **)&s->buckets[(uint32_t)pid % SEEN_BUCKETS];

	while (*e && (*e)->p.pid != pid)
		e = &(*e)->next;
	return e;
}

void seen_init(struct seen *s)
{
	for (size_t i = 0; i < SEEN_BUCKETS; i++)
		s->buckets[i] = NULL;
	s->n = 0;
}

void seen_free(struct seen *s)
{
	for (size_t i = 0; i < SEEN_BUCKETS; i++) {
		while (s->buckets[i]) {
			struct seen_entry *e = s->buckets[i];

			s->buckets[i] = e->next;
			free(e);
		}
	}
	s->n = 0;
}

int seen_add(struct seen *s, const struct py_process *p)
{
	struct seen_entry **e = slot(s, p->pid);

	if (*e) {
		(*e)->p = *p;
		return 1;
	}
	*e = malloc(sizeof(**e));
	if (!*e)
		return -ENOMEM;
	(*e)->next = NULL;
	(*e)->p = *p;
	s->n++;
	return 0;
}

const struct py_process *seen_get(const struct seen *s, pid_t pid)
{
	struct seen_entry *e = *slot(s, pid);

	return e ? &e->p : NULL;
}

void seen_remove(struct seen *s, pid_t pid, uint64_t starttime)
{
	struct seen_entry **e = slot(s, pid), *gone = *e;

	if (!gone || gone->p.starttime != starttime)
		return;
	*e = gone->next;
	free(gone);
	s->n--;
}

void seen_for_each(const struct seen *s, void (*cb)(const struct py_process *p, void *ctx),
		   void *ctx)
{
	for (size_t i = 0; i < SEEN_BUCKETS; i++)
		for (struct seen_entry *e = s->buckets[i]; e; e = e->next)
			cb(&e->p, ctx);
}
