/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The on-disk spool of profiles not yet delivered: one file per profile, written atomically
 * (write, fsync, rename) with a CRC-32, kept under a byte cap by dropping the oldest. It
 * survives restarts; a torn or corrupt file is detected on reading, counted and removed,
 * never sent. Not thread-safe: agent/delivery/shipper.c serializes access. */
#ifndef PYRO_SPOOL_H
#define PYRO_SPOOL_H

#include <stdint.h>

#include "delivery/export.h"

struct spool_stats {
	uint64_t files, bytes;
	uint64_t carried;		/* found at open, left by an earlier run */
	uint64_t written, write_failed; /* a failed write loses that profile (counted) */
	uint64_t dropped;		/* removed unsent to stay under the cap */
	uint64_t corrupt;		/* found torn or corrupt, removed unsent */
};

struct spool;

int spool_open(const char *dir, uint64_t cap_bytes, struct spool **out);
void spool_close(struct spool *s);
/* Stores e, first dropping the oldest profiles until it fits. -EFBIG: e alone is larger
 * than the cap (it is counted as dropped). */
int spool_put(struct spool *s, const struct export_profile *e);
/* The oldest profile, loaded into e (e->data malloc'd) with its id; -ENOENT when empty.
 * It is held (the cap drops others first) until spool_remove or spool_release. */
int spool_oldest(struct spool *s, struct export_profile *e, uint64_t *id);
/* Delivered or rejected: gone. */
void spool_remove(struct spool *s, uint64_t id);
/* Not delivered this time: it stays, and may be dropped for the cap again. */
void spool_release(struct spool *s);
void spool_stats(const struct spool *s, struct spool_stats *st);

/* The file format, for tests: encodes e into a malloc'd buffer. */
int spool_encode(const struct export_profile *e, uint8_t **out, size_t *len);
int spool_decode(const uint8_t *buf, size_t len, struct export_profile *e);

#endif
