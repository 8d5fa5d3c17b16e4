/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* What the call tracer (agent/calls/calltrace.c) counted, as profiles: one sample per call path with
 * sample types calls/count and wall/nanoseconds. Shared by `record --mode calls` and the
 * daemon's call windows. */
#ifndef PYRO_CALLPROF_H
#define PYRO_CALLPROF_H

#include <linux/types.h>
#include <stddef.h>

#include "profile/intern.h"
#include "pyrometer.h"

struct calltrace;
struct profile;
struct py_process;
struct seen;

/* Function names by (pid, name address, file address), read once. */
struct callprof_names {
	struct calltrace *ct;
	struct intern keys; /* struct pyro_fn_key */
	char (*text)[2][256];
	size_t cap;
};

void callprof_names_init(struct callprof_names *nm, struct calltrace *ct);
void callprof_names_free(struct callprof_names *nm);
/* which: 0 for the qualified name, 1 for the file. Never NULL. */
const char *callprof_names_get(struct callprof_names *nm, const struct pyro_fn_key *k, int which);

/* Sets up an empty call profile. */
int callprof_init(struct profile *prof);

/* The profile the calls of a process go to (p as last seen; NULL when never seen). NULL
 * drops them. */
typedef struct profile *(*callprof_sink)(const struct py_process *p, void *ctx);

/* Adds what ct has counted: each call path with its calls and its own function's exclusive
 * wall time; for processes traced for counts only (3.11, no paths) each function as one
 * frame with its calls. */
void callprof_add(struct calltrace *ct, struct callprof_names *nm, const struct seen *seen,
		  callprof_sink sink, void *ctx);

#endif
