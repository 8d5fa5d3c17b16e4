// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "imports/importtree.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/text.h"
#include "profile/profile.h"

void importtree_init(struct importtree *t)
{
	memset(t, 0, sizeof(*t));
	intern_init(&t->strings);
}

void importtree_free(struct importtree *t)
{
	intern_free(&t->strings);
	free(t->nodes);
	free(t->frames);
	free(t->pending);
	memset(t, 0, sizeof(*t));
}

/* A string id; text from another process is made valid UTF-8 first. */
static int64_t string_id(struct importtree *t, const char *s)
{
	char buf[512];

	snprintf(buf, sizeof(buf), "%s", s);
	text_sanitize(buf);
	return intern_put(&t->strings, buf, strlen(buf) + 1);
}

static const char *str(const struct importtree *t, uint32_t id)
{
	return intern_key(&t->strings, id, NULL);
}

static int add_frames(struct importtree *t, struct importtree_node *n,
		      const struct importtree_sym *frames, uint32_t nframes)
{
	n->frames = (uint32_t)t->nframes;
	for (uint32_t i = 0; i < nframes; i++) {
		struct importtree_frame *f;
		int64_t name = string_id(t, frames[i].name), file = string_id(t, frames[i].file);

		if (name < 0 || file < 0 ||
		    !(f = intern_grow((void **)&t->frames, &t->frames_cap, t->nframes, sizeof(*f))))
			return -ENOMEM;
		*f = (struct importtree_frame){ (uint32_t)name, (uint32_t)file, frames[i].line,
						frames[i].firstlineno };
		t->nframes++;
		n->nframes++;
	}
	return 0;
}

static void append_child(struct importtree *t, uint32_t parent, uint32_t child)
{
	struct importtree_node *p = &t->nodes[parent - 1];

	if (p->last)
		t->nodes[p->last - 1].next = child;
	else
		p->child = child;
	p->last = child;
}

static void append_root(struct importtree *t, uint32_t node)
{
	if (t->last_root)
		t->nodes[t->last_root - 1].next = node;
	else
		t->first_root = node;
	t->last_root = node;
}

/* The finished imports of this thread nested deeper than n become its children: they
 * finished inside it (deeper than one level only when a level's event was lost). */
static void adopt(struct importtree *t, uint32_t node, uint32_t tid, uint16_t depth)
{
	size_t i, kept = 0;

	for (i = 0; i < t->npending; i++) {
		struct importtree_pending pd = t->pending[i];

		if (pd.tid == tid && pd.depth > depth)
			append_child(t, node, pd.node);
		else
			t->pending[kept++] = pd;
	}
	t->npending = kept;
}

int importtree_add(struct importtree *t, const struct pyro_import_event *e,
		   const struct importtree_sym *frames, uint32_t nframes)
{
	char name[PYRO_IMPORT_NAME + 16];
	struct importtree_node *n;
	struct importtree_pending *pd;
	uint32_t id;
	int64_t s;

	if (t->n >= IMPORTTREE_MAX_NODES) {
		t->dropped++;
		return -ENOSPC;
	}
	if (e->flags & PYRO_IMPORT_NO_NAME)
		snprintf(name, sizeof(name), "[unreadable name]");
	else
		snprintf(name, sizeof(name), "%.*s%s", PYRO_IMPORT_NAME - 1, e->name,
			 e->flags & PYRO_IMPORT_NAME_CUT ? "..." : "");
	if ((s = string_id(t, name)) < 0 ||
	    !(n = intern_grow((void **)&t->nodes, &t->cap, t->n, sizeof(*n))))
		return -ENOMEM;
	*n = (struct importtree_node){ .name = (uint32_t)s,
				       .tid = e->tid,
				       .depth = e->depth,
				       .failed = !e->found,
				       .start_ns = e->start_ns,
				       .incl_ns = e->duration_ns };
	id = (uint32_t)++t->n;
	if (add_frames(t, n, frames, nframes))
		return -ENOMEM;
	adopt(t, id, e->tid, e->depth);
	if (e->depth == 0) {
		append_root(t, id);
		return 0;
	}
	if (!(pd = intern_grow((void **)&t->pending, &t->pending_cap, t->npending, sizeof(*pd))))
		return -ENOMEM;
	*pd = (struct importtree_pending){ .tid = e->tid, .node = id, .depth = e->depth };
	t->npending++;
	return 0;
}

uint64_t importtree_self_ns(const struct importtree *t, const struct importtree_node *n)
{
	uint64_t nested = 0;

	for (uint32_t c = n->child; c; c = t->nodes[c - 1].next)
		nested += t->nodes[c - 1].incl_ns;
	return nested < n->incl_ns ? n->incl_ns - nested : 0;
}

struct walker {
	void (*cb)(const struct importtree *t, const uint32_t *path, int depth, void *ctx);
	void *ctx;
	uint32_t path[PYRO_IMPORT_DEPTH + 1];
};

/* Depth-first; nesting is bounded by the kernel (PYRO_IMPORT_DEPTH levels) and again here. */
static void walk_from(const struct importtree *t, struct walker *w, uint32_t node, int depth)
{
	for (; node; node = t->nodes[node - 1].next) {
		w->path[depth] = node - 1;
		w->cb(t, w->path, depth, w->ctx);
		if (depth < PYRO_IMPORT_DEPTH)
			walk_from(t, w, t->nodes[node - 1].child, depth + 1);
	}
}

void importtree_walk(const struct importtree *t,
		     void (*cb)(const struct importtree *t, const uint32_t *path, int depth,
				void *ctx),
		     void *ctx)
{
	struct walker w = { .cb = cb, .ctx = ctx };

	walk_from(t, &w, t->first_root, 0);
	for (size_t i = 0; i < t->npending; i++) { /* parents unfinished or lost */
		uint32_t node = t->pending[i].node;

		w.path[0] = node - 1;
		cb(t, w.path, 0, ctx);
		walk_from(t, &w, t->nodes[node - 1].child, 1);
	}
}

/* ---- as a profile ---- */

struct to_profile {
	struct profile *p;
	int pid;
	const char *comm;
	int err;
};

static uint32_t module_location(struct profile *p, const struct importtree *t,
				const struct importtree_node *n)
{
	char name[PYRO_IMPORT_NAME + 32];
	int64_t f, l;

	snprintf(name, sizeof(name), "%s%s", str(t, n->name), n->failed ? " [failed]" : "");
	f = profile_function(p, name, "", 0);
	l = f < 0 ? -1 : profile_location(p, (uint32_t)f, 0);
	return l < 0 ? 0 : (uint32_t)l;
}

static uint32_t frame_location(struct profile *p, const struct importtree *t,
			       const struct importtree_frame *fr)
{
	int64_t f = profile_function(p, str(t, fr->name), str(t, fr->file), fr->firstlineno);
	int64_t l = f < 0 ? -1 : profile_location(p, (uint32_t)f, fr->line);

	return l < 0 ? 0 : (uint32_t)l;
}

static void add_sample(const struct importtree *t, const uint32_t *path, int depth, void *ctx)
{
	struct to_profile *tp = ctx;
	const struct importtree_node *leaf = &t->nodes[path[depth]], *root = &t->nodes[path[0]];
	uint32_t locs[PYRO_IMPORT_DEPTH + 1 + PYRO_SEG_FRAMES], n = 0;
	int err;

	for (int d = depth; d >= 0; d--)
		locs[n++] = module_location(tp->p, t, &t->nodes[path[d]]);
	for (uint32_t i = 0; i < root->nframes && i < PYRO_SEG_FRAMES; i++)
		locs[n++] = frame_location(tp->p, t, &t->frames[root->frames + i]);
	err = profile_add_weighted(tp->p, tp->pid, (int)leaf->tid, tp->comm, tp->comm, locs, n, 1,
				   importtree_self_ns(t, leaf));
	if (err && !tp->err)
		tp->err = err;
}

int importtree_profile(const struct importtree *t, struct profile *p, int pid, const char *comm)
{
	struct to_profile tp = { .p = p, .pid = pid, .comm = comm };

	importtree_walk(t, add_sample, &tp);
	return tp.err;
}

/* ---- as text ---- */

static void print_row(const struct importtree *t, const uint32_t *path, int depth, void *ctx)
{
	const struct importtree_node *n = &t->nodes[path[depth]];
	FILE *f = ctx;

	fprintf(f, "%10.3f %10.3f  %*s%s%s", (double)n->incl_ns / 1e6,
		(double)importtree_self_ns(t, n) / 1e6, 2 * depth, "", str(t, n->name),
		n->failed ? " [failed]" : "");
	if (depth == 0 && n->nframes) {
		const struct importtree_frame *fr = &t->frames[n->frames];

		fprintf(f, "  <- %s (%s:%d)", str(t, fr->name), str(t, fr->file), fr->line);
	}
	fputc('\n', f);
}

void importtree_print(const struct importtree *t, FILE *f)
{
	fprintf(f, "%10s %10s  %s\n", "incl ms", "self ms", "module  <- imported from");
	importtree_walk(t, print_row, f);
	if (t->dropped)
		fprintf(f, "(%llu more imports not kept: over %d)\n",
			(unsigned long long)t->dropped, IMPORTTREE_MAX_NODES);
}
