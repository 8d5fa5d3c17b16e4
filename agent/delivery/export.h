/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* One interval's profile of one service, as the sinks (agent/delivery/store.c, agent/delivery/pyroscope.c)
 * and the spool (agent/delivery/spool.c) take it: labels, a time range and the gzip'd pprof bytes. */
#ifndef PYRO_EXPORT_H
#define PYRO_EXPORT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define EXPORT_MAX_LABELS 8
#define EXPORT_LABEL_NAME 32
#define EXPORT_LABEL_VALUE 128

struct export_label {
	char name[EXPORT_LABEL_NAME];	/* [a-zA-Z_][a-zA-Z0-9_]* */
	char value[EXPORT_LABEL_VALUE]; /* valid UTF-8 */
};

#define EXPORT_ID_LEN 36 /* a UUID's text */

struct export_profile {
	char id[EXPORT_ID_LEN + 1]; /* the same on every attempt to deliver it */
	uint64_t from_ns, until_ns; /* CLOCK_REALTIME, Unix ns */
	unsigned n_labels;
	struct export_label labels[EXPORT_MAX_LABELS]; /* labels[0] is service_name */
	uint8_t *data;				       /* gzip'd pprof, malloc'd */
	size_t len;
};

static inline const char *export_service(const struct export_profile *e)
{
	return e->n_labels ? e->labels[0].value : "unknown";
}

/* A profile's kind travels as a label of this name (as Pyroscope's push API names it), last
 * among the labels; CPU profiles leave it out. */
#define EXPORT_KIND_LABEL "__name__"
#define EXPORT_KIND_CPU "process_cpu"
#define EXPORT_KIND_CALLS "calls"
#define EXPORT_KIND_OFF_CPU "off_cpu"
#define EXPORT_KIND_IMPORT "import"

static inline const char *export_kind(const struct export_profile *e)
{
	for (unsigned i = 1; i < e->n_labels; i++)
		if (!strcmp(e->labels[i].name, EXPORT_KIND_LABEL))
			return e->labels[i].value;
	return EXPORT_KIND_CPU;
}

/* A random (version 4) UUID for a new profile. */
void export_new_id(char out[EXPORT_ID_LEN + 1]);

/* Result of one delivery attempt. */
enum ship_result {
	SHIP_OK,       /* accepted */
	SHIP_RETRY,    /* not now: network error, timeout, 408, 429, 5xx, or aborted */
	SHIP_REJECTED, /* the collector refused it for good (other 4xx): do not send again */
};

#endif
