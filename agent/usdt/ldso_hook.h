/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* ld.so's debugger hook, watched in each ld.so the host's processes use. ld.so calls
 * _dl_debug_state() before and after every change to its link map: at start-up and on each
 * dlopen and dlclose. A uprobe there (bpf/discover.bpf.c, on_dl_debug_state) tells discovery
 * when an untracked process may just have mapped libpython, so an interpreter that arrives
 * by dlopen (uWSGI's python3 plugin, mod_wsgi, plpython3u, gdb, Blender) is seen when it
 * arrives, however late, and no process is polled. One uprobe per ld.so file (device and
 * inode): the host's own and each container image's. Bounded: LDSO_HOOK_MAX files. */
#ifndef PYRO_LDSO_HOOK_H
#define PYRO_LDSO_HOOK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/procfs.h"

struct discover;
struct ldso_hook;

#define LDSO_HOOK_MAX 64

struct ldso_hook_stats {
	uint64_t attached; /* ld.so files watched now */
	uint64_t failed;   /* ld.so files we could not watch (no hook symbol, attach refused) */
	uint64_t refused;  /* ld.so files beyond LDSO_HOOK_MAX */
};

/* Starts watching for discovery d (live): the host's ld.so (our own) now, each container
 * image's when d first inspects a process that uses it. Without it, d sees an interpreter
 * that arrives by dlopen only if it arrives within the exec re-checks. */
int ldso_hook_new(struct discover *d, struct ldso_hook **out);
/* Hands the uprobes to the broker (usdt/uprobes.h) so that removing them does not hold up our
 * exit, then frees. Call before discover_free. */
void ldso_hook_free(struct ldso_hook *h);
void ldso_hook_stats(const struct ldso_hook *h, struct ldso_hook_stats *st);

#endif
