// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "calls/callprof.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calls/calltrace.h"
#include "base/procmem.h"
#include "profile/profile.h"
#include "python/py_binary.h"
#include "procs/seen.h"
#include "base/text.h"

/* ---- names ---- */

/* A NUL-terminated string of the target, read in page-bounded chunks. */
static void read_cstr(pid_t pid, uint64_t addr, char *out, size_t size)
{
	size_t at = 0;

	out[0] = '\0';
	while (addr && at + 1 < size) {
		size_t chunk = 4096 - (addr + at) % 4096;

		if (chunk > size - 1 - at)
			chunk = size - 1 - at;
		if (chunk > 64)
			chunk = 64;
		if (procmem_read(pid, addr + at, out + at, chunk))
			break;
		out[at + chunk] = '\0';
		if (memchr(out + at, '\0', chunk))
			break;
		at += chunk;
	}
	if (!out[0])
		snprintf(out, size, "<unknown>");
	text_sanitize(out);
}

/* One name: the kernel's copy, or the process's own when that copy is missing or may have
 * been cut short and the process is still there. */
static void fill_name(pid_t pid, uint64_t addr, const char *copy, size_t copy_size, char *out,
		      size_t size)
{
	size_t n = strnlen(copy, copy_size);

	if (n == 0 || n == copy_size - 1) {
		read_cstr(pid, addr, out, size);
		if (strcmp(out, "<unknown>") || n == 0)
			return;
	}
	snprintf(out, size, "%.*s", (int)n, copy);
	text_sanitize(out);
}

static void fill_names(struct calltrace *ct, const struct pyro_fn_key *k, char out[2][256])
{
	struct pyro_fn_names copy = { 0 };

	calltrace_fn_names(ct, k, &copy); /* none: both empty */
	fill_name((pid_t)k->pid, k->fn.name, copy.name, sizeof(copy.name), out[0], sizeof(out[0]));
	fill_name((pid_t)k->pid, k->fn.file, copy.file, sizeof(copy.file), out[1], sizeof(out[1]));
}

void callprof_names_init(struct callprof_names *nm, struct calltrace *ct)
{
	memset(nm, 0, sizeof(*nm));
	nm->ct = ct;
	intern_init(&nm->keys);
}

void callprof_names_free(struct callprof_names *nm)
{
	intern_free(&nm->keys);
	free(nm->text);
	nm->text = NULL;
	nm->cap = 0;
}

const char *callprof_names_get(struct callprof_names *nm, const struct pyro_fn_key *k, int which)
{
	int64_t id = intern_find(&nm->keys, k, sizeof(*k));

	if (id < 0) {
		id = intern_put(&nm->keys, k, sizeof(*k));
		if (id < 0 ||
		    !intern_grow((void **)&nm->text, &nm->cap, (size_t)id, sizeof(*nm->text)))
			return "<unknown>";
		fill_names(nm->ct, k, nm->text[id]);
	}
	return nm->text[id][which];
}

/* ---- profiles ---- */

int callprof_init(struct profile *prof)
{
	int err = profile_init(prof, 1);

	if (err)
		return err;
	prof->types[0] = "calls", prof->types[1] = "count";
	prof->types[2] = "wall", prof->types[3] = "nanoseconds";
	prof->weighted = true;
	return 0;
}

struct adding {
	struct callprof_names *nm;
	const struct seen *seen;
	callprof_sink sink;
	void *ctx;
	struct intern keys; /* struct pyro_path_key */
	struct pyro_path *nodes;
	size_t cap;
};

static void add_path(const struct pyro_path_key *k, const struct pyro_path *p, void *ctx)
{
	struct adding *a = ctx;
	int64_t id = intern_put(&a->keys, k, sizeof(*k));

	if (id < 0 || !intern_grow((void **)&a->nodes, &a->cap, (size_t)id, sizeof(*a->nodes)))
		return;
	a->nodes[id] = *p;
}

static uint32_t location(struct profile *prof, struct callprof_names *nm, uint32_t pid,
			 const struct pyro_fn *fn)
{
	struct pyro_fn_key k = { .pid = pid, .fn = *fn };
	int64_t f = profile_function(prof, callprof_names_get(nm, &k, 0),
				     callprof_names_get(nm, &k, 1), 0);

	return f < 0 ? 0 : (uint32_t)profile_location(prof, (uint32_t)f, 0);
}

/* One sample per call path: its calls and the time spent in its own function. */
static void add_paths(struct adding *a)
{
	uint32_t locs[2 * PYRO_CALL_DEPTH];

	for (size_t i = 0; i < a->keys.n; i++) {
		const struct pyro_path_key *k = intern_key(&a->keys, (uint32_t)i, NULL);
		const struct py_process *p = seen_get(a->seen, (pid_t)k->pid);
		const char *comm = p ? p->comm : "?";
		struct profile *prof = a->sink(p, a->ctx);
		struct pyro_path_key at = *k;
		uint32_t n = 0;
		int64_t id = (int64_t)i;

		if (!prof || (!a->nodes[i].calls && !a->nodes[i].excl_ns))
			continue;
		while (id >= 0 && n < sizeof(locs) / sizeof(locs[0])) {
			const struct pyro_path *node = &a->nodes[id];

			locs[n++] = location(prof, a->nm, k->pid, &node->fn);
			if (!node->parent)
				break;
			at.id = node->parent;
			id = intern_find(&a->keys, &at, sizeof(at));
		}
		profile_add_weighted(prof, (int)k->pid, (int)k->pid, comm, comm, locs, n,
				     a->nodes[i].calls, a->nodes[i].excl_ns);
	}
}

/* Functions of processes traced for counts only (no paths): one frame each. */
static void add_count_only_fn(const struct pyro_fn_key *k, const struct pyro_fn_stats *s, void *ctx)
{
	struct adding *a = ctx;
	const struct py_process *p = seen_get(a->seen, (pid_t)k->pid);
	struct profile *prof;
	uint32_t loc;

	if (!p || p->bin->caps.calls != PY_CALLS_COUNTS || !(prof = a->sink(p, a->ctx)))
		return;
	loc = location(prof, a->nm, k->pid, &k->fn);
	profile_add_weighted(prof, (int)k->pid, (int)k->pid, p->comm, p->comm, &loc, 1, s->calls,
			     0);
}

void callprof_add(struct calltrace *ct, struct callprof_names *nm, const struct seen *seen,
		  callprof_sink sink, void *ctx)
{
	struct adding a = { .nm = nm, .seen = seen, .sink = sink, .ctx = ctx };

	intern_init(&a.keys);
	calltrace_for_each_path(ct, add_path, &a);
	add_paths(&a);
	calltrace_for_each_fn(ct, add_count_only_fn, &a);
	intern_free(&a.keys);
	free(a.nodes);
}
