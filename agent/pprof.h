/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* pprof (perftools.profiles.Profile) encoding of a profile, gzip-compressed. */
#ifndef PYRO_PPROF_H
#define PYRO_PPROF_H

#include <stddef.h>
#include <stdint.h>

struct profile;

/* Encodes p; *out is malloc'd gzip data. comment may be NULL. */
int pprof_encode(const struct profile *p, const char *comment, uint8_t **out, size_t *len);

#endif
