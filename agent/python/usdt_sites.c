// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "python/usdt_sites.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "python/elf_file.h"

struct sites {
	struct elf_file *ef;
	const char *provider;
	struct usdt_probe *kept; /* USDT_MAX_KEPT of them */
	int n;
	struct usdt_site_stats *st;
};

static bool seen_before(const struct sites *s, const struct usdt_probe *p)
{
	for (int i = 0; i < s->n; i++)
		if (s->kept[i].pc == p->pc && !strcmp(s->kept[i].name, p->name))
			return true;
	return false;
}

/* Fills the file offsets; -ENOEXEC when the probe's address is not in executable bytes. */
static int locate(struct elf_file *ef, struct usdt_probe *p)
{
	if (elf_file_vaddr_to_exec_offset(ef, p->pc, &p->pc_offset))
		return -ENOEXEC;
	if (!p->semaphore || elf_file_vaddr_to_offset(ef, p->semaphore, &p->semaphore_offset))
		p->semaphore_offset = 0;
	return 0;
}

/* Keeps one probe if it is the provider's, new and in code. Notes are looked at one by one
 * and only kept ones are stored: 5,000 notes of one site cost their parse, not 6 MiB. */
static int keep(const struct usdt_probe *note, void *ctx)
{
	struct sites *s = ctx;
	struct usdt_probe p;

	if (strcmp(note->provider, s->provider))
		return 0;
	if (s->n == USDT_MAX_KEPT) {
		s->st->over_limit++;
		return 0;
	}
	if (seen_before(s, note)) {
		s->st->duplicate++;
		return 0;
	}
	p = *note;
	if (locate(s->ef, &p)) {
		s->st->outside_exec++;
		return 0;
	}
	s->kept[s->n++] = p;
	return 0;
}

int usdt_sites_read(struct elf_file *ef, const char *provider, struct usdt_probe **out, int *n,
		    struct usdt_site_stats *st)
{
	const void *data, *unused;
	size_t len, unused_len;
	uint64_t base_addr = 0, size;
	struct sites s = { .ef = ef, .provider = provider, .st = st };
	struct usdt_probe *shrunk;
	int err;

	memset(st, 0, sizeof(*st));
	*out = NULL;
	*n = 0;
	if (elf_file_section_size(ef, ".note.stapsdt", &size))
		return -ENOENT;
	if (size > USDT_NOTES_MAX)
		return -EFBIG; /* never read: a 256 MiB section would cost 256 MiB */
	if (elf_file_section(ef, ".note.stapsdt", &data, &len, NULL))
		return -ENOENT;
	elf_file_section(ef, ".stapsdt.base", &unused, &unused_len, &base_addr);
	s.kept = malloc(USDT_MAX_KEPT * sizeof(*s.kept));
	if (!s.kept)
		return -ENOMEM;
	if ((err = usdt_notes_for_each(data, len, base_addr, keep, &s))) {
		free(s.kept);
		return err;
	}
	if (!s.n) {
		free(s.kept);
		return 0;
	}
	shrunk = realloc(s.kept, (size_t)s.n * sizeof(*s.kept));
	if (shrunk)
		s.kept = shrunk;
	*out = s.kept;
	*n = s.n;
	return 0;
}
int usdt_sites_count(const struct usdt_probe *probes, int n, const char *name)
{
	int sites = 0;

	for (int i = 0; i < n; i++)
		if (!strcmp(probes[i].name, name) && usdt_notes_attachable(&probes[i]))
			sites++;
	return sites;
}
