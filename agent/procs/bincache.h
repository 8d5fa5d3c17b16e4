/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The binaries processes run, each inspected once: keyed by the file (device, inode), with
 * its size and mtime to notice a file replaced in place. Non-Python binaries are cached too
 * (bash is exec'd often), up to a bound. */
#ifndef PYRO_BINCACHE_H
#define PYRO_BINCACHE_H

#include <stdint.h>

#include "base/procfs.h"
#include "python/py_binary.h"

struct bincache;

int bincache_new(struct bincache **out);
void bincache_free(struct bincache *c);
/* The binary open as fd and mapped as m: *bin (owned by the cache, stable while it holds
 * Python binaries) and the p_vaddr - p_offset of its segment at file offset 0. */
int bincache_get(struct bincache *c, int fd, const struct map_entry *m,
		 const struct py_binary **bin, int64_t *load_delta);

#endif
