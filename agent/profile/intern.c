// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "profile/intern.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void intern_init(struct intern *t)
{
	memset(t, 0, sizeof(*t));
}

void intern_free(struct intern *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		free(t->keys[i].data);
	free(t->keys);
	free(t->slots);
	memset(t, 0, sizeof(*t));
}

static uint64_t hash_bytes(const void *p, size_t len)
{
	const unsigned char *b = p;
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h ^ (h >> 32);
}

static int grow(struct intern *t)
{
	size_t nslots = t->nslots ? t->nslots * 2 : 256, i;
	uint32_t *slots = calloc(nslots, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (i = 0; i < t->n; i++) {
		size_t at = t->keys[i].hash & (nslots - 1);

		while (slots[at])
			at = (at + 1) & (nslots - 1);
		slots[at] = (uint32_t)i + 1;
	}
	free(t->slots);
	t->slots = slots;
	t->nslots = nslots;
	return 0;
}

/* The slot holding key, or the empty slot where it would go. */
static size_t probe(const struct intern *t, const void *key, size_t len, uint64_t h)
{
	size_t at;

	for (at = h & (t->nslots - 1); t->slots[at]; at = (at + 1) & (t->nslots - 1)) {
		const struct intern_key *k = &t->keys[t->slots[at] - 1];

		if (k->hash == h && k->len == len && memcmp(k->data, key, len) == 0)
			break;
	}
	return at;
}

int64_t intern_find(const struct intern *t, const void *key, size_t len)
{
	size_t at;

	if (!t->nslots)
		return -ENOENT;
	at = probe(t, key, len, hash_bytes(key, len));
	return t->slots[at] ? (int64_t)t->slots[at] - 1 : -ENOENT;
}

int64_t intern_put(struct intern *t, const void *key, size_t len)
{
	uint64_t h = hash_bytes(key, len);
	size_t at;
	void *copy;

	if ((t->n + 1) * 2 > t->nslots && grow(t))
		return -ENOMEM;
	at = probe(t, key, len, h);
	if (t->slots[at])
		return t->slots[at] - 1;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 256;
		struct intern_key *keys = realloc(t->keys, cap * sizeof(*keys));

		if (!keys)
			return -ENOMEM;
		t->keys = keys;
		t->cap = cap;
	}
	copy = malloc(len + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, key, len);
	((char *)copy)[len] = '\0'; /* string keys can be used as C strings */
	t->keys[t->n].data = copy;
	t->keys[t->n].len = len;
	t->keys[t->n].hash = h;
	t->slots[at] = (uint32_t)t->n + 1;
	return (int64_t)t->n++;
}

void *intern_grow(void **arr, size_t *cap, size_t id, size_t elem)
{
	if (id >= *cap) {
		size_t n = *cap ? *cap * 2 : 64;
		char *a;

		while (n <= id)
			n *= 2;
		a = realloc(*arr, n * elem);
		if (!a)
			return NULL;
		memset(a + *cap * elem, 0, (n - *cap) * elem);
		*arr = a;
		*cap = n;
	}
	return (char *)*arr + id * elem;
}
