/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The USDT probe sites of an ELF file as uprobes take them: file offsets inside executable
 * segments, each (probe, address) once. A binary comes from whoever built the container
 * image, so its notes are untrusted: a site outside code, or the same site written a
 * thousand times, must not become a thousand uprobes (each costs an RCU grace period to
 * remove, under the kernel's event mutex). */
#ifndef PYRO_USDT_SITES_H
#define PYRO_USDT_SITES_H

#include <stdint.h>

#include "python/usdt_notes.h"

struct elf_file;

/* Most sites of one probe that are attached. Real CPython builds have 1 to 3 (the compiler
 * duplicates a probe when it inlines or clones its function); a binary with more is refused
 * for that probe, with a reason. */
#define USDT_MAX_SITES 8

/* Most sites kept from one file, all probes together (CPython 3.15 has about 25): bounds
 * the work and memory a hostile note section can cost. */
#define USDT_MAX_KEPT 256
/* Largest .note.stapsdt read (CPython's is about 1 KiB): a larger one is refused unread. */
#define USDT_NOTES_MAX (1 << 20)

struct usdt_site_stats {
	uint32_t over_limit;   /* beyond USDT_MAX_KEPT: dropped */
	uint32_t duplicate;    /* (name, address) seen before: dropped */
	uint32_t outside_exec; /* address not in the file's executable bytes: dropped */
};

/* Parses .note.stapsdt (-EFBIG, unread, if larger than USDT_NOTES_MAX) and keeps the given provider's probes whose address lies in an
 * executable segment, once each, with pc_offset and semaphore_offset filled. Sets *out
 * (malloc'd, may be NULL when *n is 0) and *n. -ENOENT when there is no note section. */
int usdt_sites_read(struct elf_file *ef, const char *provider, struct usdt_probe **out, int *n,
		    struct usdt_site_stats *st);

/* Number of attachable sites of probe `name`. */
int usdt_sites_count(const struct usdt_probe *probes, int n, const char *name);

#endif
