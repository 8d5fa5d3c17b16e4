/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* One process's imports as a tree: each module under the import it was loaded inside, the
 * outermost ones under the Python frames that imported them. Built from the kernel's events
 * (struct pyro_import_event), which each thread sends in the order its imports finish: a
 * nested import finishes before the one around it, so the finished imports of a thread
 * that wait for a parent are adopted by the next import of that thread to finish at a
 * lower depth. */
#ifndef PYRO_IMPORTTREE_H
#define PYRO_IMPORTTREE_H

#include <linux/types.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "profile/intern.h"
#include "pyrometer.h"

struct profile;

/* Most imports kept per process; later ones are counted in dropped. */
#define IMPORTTREE_MAX_NODES 65536

/* A Python frame of an importer, as the symbolizer named it. */
struct importtree_frame {
	uint32_t name, file; /* string ids */
	int32_t line, firstlineno;
};

struct importtree_node {
	uint32_t name;		    /* string id of the module's absolute name */
	uint32_t child, last, next; /* first and last child, next sibling: index + 1, 0 none */
	uint32_t tid;
	uint32_t frames, nframes; /* outermost imports: the importer's frames, leaf first */
	uint16_t depth;
	bool failed;	   /* the import raised (ImportError or any error in the module's body) */
	uint64_t start_ns; /* CLOCK_MONOTONIC */
	uint64_t incl_ns;  /* wall time, nested imports included */
};

struct importtree_pending {
	uint32_t tid, node;
	uint16_t depth;
};

struct importtree {
	struct intern strings;
	struct importtree_node *nodes;
	size_t n, cap;
	struct importtree_frame *frames;
	size_t nframes, frames_cap;
	uint32_t first_root, last_root; /* index + 1 */
	/* finished imports whose parent has not finished yet */
	struct importtree_pending *pending;
	size_t npending, pending_cap;
	uint64_t dropped;
};

/* An importer's frame as the caller resolved it (leaf first). */
struct importtree_sym {
	const char *name, *file;
	int line, firstlineno;
};

void importtree_init(struct importtree *t);
void importtree_free(struct importtree *t);
/* Adds a finished import; frames are its importer's (outermost imports only, may be 0). */
int importtree_add(struct importtree *t, const struct pyro_import_event *e,
		   const struct importtree_sym *frames, uint32_t nframes);
/* Exclusive time: the import's own, without the imports nested in it. */
uint64_t importtree_self_ns(const struct importtree *t, const struct importtree_node *n);

/* Calls cb for every import, parents before children, with its path of node indexes from
 * the outermost (path[0]) to it (path[depth]). Imports still waiting for their parent
 * (unfinished, or lost) count as outermost. */
void importtree_walk(const struct importtree *t,
		     void (*cb)(const struct importtree *t, const uint32_t *path, int depth,
				void *ctx),
		     void *ctx);

/* Adds every import to p as a sample (leaf first: the module, the modules it was loaded
 * inside, then the importer's frames): value 0 counts imports, value 1 (weighted) is the
 * exclusive time, so that a flame graph's widths are inclusive times. */
int importtree_profile(const struct importtree *t, struct profile *p, int pid, const char *comm);
/* The tree as text: inclusive and exclusive milliseconds, indented module names, and the
 * importing frame of the outermost imports. */
void importtree_print(const struct importtree *t, FILE *f);

#endif
