// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* See bincache.h. */
#include "procs/bincache.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "python/elf_file.h"

/* One inspected binary, Python or not, keyed by the file it is. A file replaced in place
 * (same inode, new contents) is noticed by its size and mtime. */
struct bin_entry {
	struct bin_entry *next;
	uint32_t dev_major, dev_minor;
	uint64_t inode, size;
	struct timespec mtime;
	int64_t load_delta; /* p_vaddr - p_offset of the segment mapped at file offset 0 */
	struct py_binary bin;
};

#define BIN_BUCKETS 1024
/* Non-Python binaries are cached too (bash is exec'd often); past this many the cache is
 * emptied of them. Python entries stay: processes point at them. */
#define BIN_CACHE_MAX 8192

struct bincache {
	struct bin_entry *bins[BIN_BUCKETS];
	size_t nbins;
};

int bincache_new(struct bincache **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

static void free_bins(struct bincache *c, bool python_too)
{
	size_t i;

	for (i = 0; i < BIN_BUCKETS; i++) {
		struct bin_entry **pp = &c->bins[i];

		while (*pp) {
			struct bin_entry *e = *pp;

			if (e->bin.is_python && !python_too) {
				pp = &e->next;
				continue;
			}
			*pp = e->next;
			py_binary_clear(&e->bin);
			free(e);
			c->nbins--;
		}
	}
}

void bincache_free(struct bincache *c)
{
	if (!c)
		return;
	free_bins(c, true);
	free(c);
}

static struct bin_entry *bin_lookup(struct bincache *c, const struct map_entry *m,
				    const struct stat *st)
{
	struct bin_entry *e = c->bins[m->inode % BIN_BUCKETS];

	for (; e; e = e->next)
		if (e->inode == m->inode && e->dev_major == m->dev_major &&
		    e->dev_minor == m->dev_minor && e->size == (uint64_t)st->st_size &&
		    e->mtime.tv_sec == st->st_mtim.tv_sec &&
		    e->mtime.tv_nsec == st->st_mtim.tv_nsec)
			return e;
	return NULL;
}

int bincache_get(struct bincache *c, int fd, const struct map_entry *m,
		 const struct py_binary **bin, int64_t *load_delta)
{
	struct elf_file *ef = NULL;
	struct bin_entry *e;
	struct stat st;
	int err;

	if (fstat(fd, &st))
		return -errno;
	e = bin_lookup(c, m, &st);
	if (e)
		goto found;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	err = elf_file_open_fd(fd, &ef);
	if (!err)
		err = py_binary_inspect(ef, &e->bin);
	if (!err && e->bin.is_python && elf_file_vaddr_delta(ef, 0, &e->load_delta))
		err = -ENOEXEC;
	elf_file_free(ef);
	if (err == -ENOEXEC && !e->bin.is_python)
		err = 0; /* not an ELF we understand: cache it as "not Python" */
	if (err) {
		py_binary_clear(&e->bin);
		free(e);
		return err;
	}
	if (c->nbins >= BIN_CACHE_MAX)
		free_bins(c, false);
	e->dev_major = m->dev_major;
	e->dev_minor = m->dev_minor;
	e->inode = m->inode;
	e->size = (uint64_t)st.st_size;
	e->mtime = st.st_mtim;
	e->next = c->bins[m->inode % BIN_BUCKETS];
	c->bins[m->inode % BIN_BUCKETS] = e;
	c->nbins++;
found:
	*bin = &e->bin;
	*load_delta = e->load_delta;
	return 0;
}
