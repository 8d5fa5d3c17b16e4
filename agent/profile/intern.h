/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Interning of byte strings: each distinct key gets a dense id from 0, in order of first
 * appearance. Used for strings, functions, locations and sample keys of a profile. */
#ifndef PYRO_INTERN_H
#define PYRO_INTERN_H

#include <stddef.h>
#include <stdint.h>

struct intern {
	uint32_t *slots; /* open addressing: id + 1, 0 = empty */
	size_t nslots;
	struct intern_key {
		void *data;
		size_t len;
		uint64_t hash;
	} * keys;
	size_t n, cap;
};

void intern_init(struct intern *t);
void intern_free(struct intern *t);
/* Returns the id of key (adding it if new) or -ENOMEM. */
int64_t intern_put(struct intern *t, const void *key, size_t len);
/* The id of key, or -ENOENT. */
int64_t intern_find(const struct intern *t, const void *key, size_t len);
static inline const void *intern_key(const struct intern *t, uint32_t id, size_t *len)
{
	if (len)
		*len = t->keys[id].len;
	return t->keys[id].data;
}

/* Makes (*arr)[id] exist in an array of elem-byte entries that grows with an intern table's
 * ids (new entries zeroed); returns it, or NULL when out of memory. */
void *intern_grow(void **arr, size_t *cap, size_t id, size_t elem);

#endif
