/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The local profile store: one DIR/SERVICE/FROM-UNTIL.pb.gz per service per interval (times
 * in Unix milliseconds), kept under a byte cap and an age limit, oldest removed first. */
#ifndef PYRO_STORE_H
#define PYRO_STORE_H

#include <stdint.h>

#include "delivery/export.h"

struct store_opts {
	const char *dir;
	uint64_t cap_bytes;   /* 0: no cap */
	uint64_t max_age_sec; /* 0: no age limit */
};

struct store_stats {
	uint64_t written, write_failed, removed;
	uint64_t bytes, files; /* after the last prune */
};

struct store;

int store_open(const struct store_opts *o, struct store **out);
void store_close(struct store *s);
int store_put(struct store *s, const struct export_profile *e);
void store_stats(const struct store *s, struct store_stats *st);

#endif
