// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "profile/folded.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "profile/intern.h"
#include "profile/profile.h"

/* Appends s to buf, replacing the characters that the folded format uses (';' between
 * frames, ' ' before the count is fine inside frames, newlines end lines). */
static void put(char **buf, size_t *len, size_t *cap, const char *s, bool raw)
{
	size_t n = strlen(s), i;

	if (*len + n + 1 > *cap) {
		size_t c = (*len + n + 1) * 2;
		char *b = realloc(*buf, c);

		if (!b)
			return;
		*buf = b;
		*cap = c;
	}
	for (i = 0; i < n; i++)
		(*buf)[(*len)++] = raw				    ? s[i]
				   : s[i] == ';'		    ? ':'
				   : (s[i] == '\n' || s[i] == '\r') ? ' '
								    : s[i];
	(*buf)[*len] = '\0';
}

static void frame_text(const struct profile *p, uint32_t loc, char *out, size_t cap)
{
	const struct profile_location *l = intern_key(&p->locations, loc, NULL);
	const struct profile_function *f = intern_key(&p->functions, l->function, NULL);

	if (profile_str(p, f->file)[0])
		snprintf(out, cap, "%s (%s:%d)", profile_str(p, f->name), profile_str(p, f->file),
			 l->line);
	else
		snprintf(out, cap, "%s", profile_str(p, f->name));
}

int folded_lines(const struct profile *p, struct intern *lines, unsigned long long **counts)
{
	size_t i, cap = 0, len, ccap = 0;
	char *buf = NULL, frame[2048];
	unsigned long long *c = NULL;

	intern_init(lines);
	for (i = 0; i < p->samples.n; i++) {
		const struct profile_sample *s = profile_sample_at(p, (uint32_t)i);
		int64_t id;
		uint32_t k;

		len = 0;
		snprintf(frame, sizeof(frame), "%s:%d", profile_str(p, s->process), s->pid);
		put(&buf, &len, &cap, frame, false);
		for (k = s->nlocs; k-- > 0;) { /* root first */
			put(&buf, &len, &cap, ";", true);
			frame_text(p, s->locs[k], frame, sizeof(frame));
			put(&buf, &len, &cap, frame, false);
		}
		id = buf ? intern_put(lines, buf, len) : -ENOMEM;
		if (id < 0)
			goto nomem;
		if ((size_t)id >= ccap) {
			size_t nc = ccap ? ccap * 2 : 256;
			unsigned long long *g = realloc(c, nc * sizeof(*g));

			if (!g)
				goto nomem;
			memset(g + ccap, 0, (nc - ccap) * sizeof(*g));
			c = g;
			ccap = nc;
		}
		c[id] += p->folded_weight_div ? p->weights[i] / p->folded_weight_div : p->counts[i];
	}
	free(buf);
	*counts = c;
	return 0;
nomem:
	free(buf);
	free(c);
	intern_free(lines);
	return -ENOMEM;
}

static const struct intern *sort_table;

static int by_text(const void *a, const void *b)
{
	return strcmp(intern_key(sort_table, *(const uint32_t *)a, NULL),
		      intern_key(sort_table, *(const uint32_t *)b, NULL));
}

int folded_write(const struct profile *p, FILE *f)
{
	struct intern lines;
	unsigned long long *counts;
	uint32_t *order;
	size_t i;
	int err = folded_lines(p, &lines, &counts);

	if (err)
		return err;
	order = malloc((lines.n + 1) * sizeof(*order));
	if (!order) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < lines.n; i++)
		order[i] = (uint32_t)i;
	sort_table = &lines;
	qsort(order, lines.n, sizeof(*order), by_text);
	for (i = 0; i < lines.n; i++)
		fprintf(f, "%s %llu\n", (const char *)intern_key(&lines, order[i], NULL),
			counts[order[i]]);
	err = ferror(f) ? -EIO : 0;
out:
	free(order);
	free(counts);
	intern_free(&lines);
	return err;
}
