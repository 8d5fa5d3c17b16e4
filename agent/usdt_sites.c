// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "usdt_sites.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "elf_file.h"

static bool seen_before(const struct usdt_probe *kept, int n, const struct usdt_probe *p)
{
	for (int i = 0; i < n; i++)
		if (kept[i].pc == p->pc && !strcmp(kept[i].name, p->name))
			return true;
	return false;
}

/* Fills the file offsets; -ENOEXEC when the probe's address is not in executable bytes. */
static int locate(struct elf_file *ef, struct usdt_probe *p)
{
	if (elf_file__vaddr_to_exec_offset(ef, p->pc, &p->pc_offset))
		return -ENOEXEC;
	if (!p->semaphore || elf_file__vaddr_to_offset(ef, p->semaphore, &p->semaphore_offset))
		p->semaphore_offset = 0;
	return 0;
}

int usdt_sites_read(struct elf_file *ef, const char *provider, struct usdt_probe **out, int *n,
		    struct usdt_site_stats *st)
{
	const void *data, *unused;
	size_t len, unused_len;
	uint64_t base_addr = 0, size;
	struct usdt_probe *all = NULL;
	int total, i, kept = 0;

	memset(st, 0, sizeof(*st));
	*out = NULL;
	*n = 0;
	if (elf_file__section_size(ef, ".note.stapsdt", &size))
		return -ENOENT;
	if (size > USDT_NOTES_MAX)
		return -EFBIG; /* never read: a 256 MiB section would cost 256 MiB */
	if (elf_file__section(ef, ".note.stapsdt", &data, &len, NULL))
		return -ENOENT;
	elf_file__section(ef, ".stapsdt.base", &unused, &unused_len, &base_addr);
	total = usdt_parse_notes(data, len, base_addr, &all);
	if (total < 0)
		return total;
	for (i = 0; i < total; i++) {
		struct usdt_probe p = all[i];

		if (strcmp(p.provider, provider))
			continue;
		if (kept == USDT_MAX_KEPT) {
			st->over_limit++;
			continue;
		}
		if (seen_before(all, kept, &p)) {
			st->duplicate++;
			continue;
		}
		if (locate(ef, &p)) {
			st->outside_exec++;
			continue;
		}
		all[kept++] = p;
	}
	*out = all;
	*n = kept;
	return 0;
}

int usdt_sites_count(const struct usdt_probe *probes, int n, const char *name)
{
	int sites = 0;

	for (int i = 0; i < n; i++)
		if (!strcmp(probes[i].name, name) && usdt_probe_attachable(&probes[i]))
			sites++;
	return sites;
}
