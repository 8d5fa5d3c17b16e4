/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Is a pid a CPython process, and which? Its executable and libpython*.so mappings are
 * looked up in the binary cache; the first that holds the interpreter names it. Its root,
 * service name and container ids are read too. */
#ifndef PYRO_INSPECT_H
#define PYRO_INSPECT_H

#include <stdint.h>
#include <sys/types.h>

#include "procs/bincache.h"
#include "procs/discover.h"

/* 0 and *out filled if pid is Python (caller frees *out with free()), -ENOENT if not Python
 * or gone, -EAGAIN if it links libpython that is not mapped yet. *failed counts binaries
 * that could not be opened or parsed. */
int inspect_process(struct bincache *bins, pid_t pid, struct py_process **out, uint64_t *failed);

#endif
