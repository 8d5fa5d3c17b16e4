/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* pprof (perftools.profiles.Profile) encoding of a profile, gzip-compressed. */
#ifndef PYRO_PPROF_H
#define PYRO_PPROF_H

#include <stddef.h>
#include <stdint.h>

struct profile;

#define PPROF_MAX_COMMENTS 16

/* Encodes p with the given comments (pprof's only place for profile-wide notes, such as
 * labels); *out is malloc'd gzip data. Strings must be valid UTF-8 (text_sanitize). */
int pprof_encode(const struct profile *p, const char *const *comments, size_t ncomments,
		 uint8_t **out, size_t *len);

#endif
