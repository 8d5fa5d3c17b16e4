/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Parser for SystemTap SDT notes (.note.stapsdt), the USDT probe descriptors CPython carries
 * when built --with-dtrace. Format: https://sourceware.org/systemtap/wiki/UserSpaceProbeImplementation
 * Input comes from binaries chosen by other users (container images): every length is
 * checked, and malformed notes are rejected, never trusted. */
#ifndef PYRO_USDT_NOTES_H
#define PYRO_USDT_NOTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define USDT_NAME_MAX 64
#define USDT_ARGS_MAX 12 /* the SDT macros support at most 12 arguments */
#define USDT_ARGSTR_MAX 256

enum usdt_arg_kind {
	USDT_ARG_CONST,	    /* $imm */
	USDT_ARG_REG,	    /* %reg */
	USDT_ARG_REG_DEREF, /* off(%reg) */
	USDT_ARG_SIB,	    /* off(%base,%index,scale): libbpf 1.1 cannot attach these */
};

struct usdt_arg {
	enum usdt_arg_kind kind;
	int size; /* bytes: 1, 2, 4 or 8; 0 when the spec gives none */
	bool is_signed;
	int64_t val; /* the constant, or the displacement for REG_DEREF/SIB */
	char reg[8]; /* base register name without '%', e.g. "rdi" */
};

struct usdt_probe {
	char provider[USDT_NAME_MAX];
	char name[USDT_NAME_MAX];
	uint64_t pc;	    /* probe address, adjusted for .stapsdt.base (prelink) */
	uint64_t semaphore; /* address of the is-enabled counter, 0 if none */
	int nargs;
	struct usdt_arg args[USDT_ARGS_MAX];
	char args_spec[USDT_ARGSTR_MAX]; /* the raw argument string, e.g. "-4@%eax" */
	/* File offsets of pc and semaphore (0 when unknown), filled by whoever has the ELF
	 * file's program headers (agent/python/py_binary.c): plain uprobes are attached by offset. */
	uint64_t pc_offset, semaphore_offset;
};

/* Parses the contents of a .note.stapsdt section. base_addr is the address of the
 * .stapsdt.base section, or 0 when the binary has none. On success returns the number of
 * probes and sets *out to a malloc'd array (free()). Notes that are not stapsdt are skipped;
 * a truncated or malformed stapsdt note fails the whole section with -EINVAL. */
int usdt_notes_parse(const void *data, size_t len, uint64_t base_addr, struct usdt_probe **out);

/* The same, one probe at a time and without holding them all: cb sees each stapsdt note's
 * probe (valid during the call only) in section order; a non-zero return stops the walk and
 * is returned. -EINVAL, after the notes before it were seen, for a malformed note. */
int usdt_notes_for_each(const void *data, size_t len, uint64_t base_addr,
			int (*cb)(const struct usdt_probe *p, void *ctx), void *ctx);

/* Parses an argument spec string such as "-4@%edi 8@-8(%rbp)". Returns the argument count
 * or -EINVAL. */
int usdt_notes_parse_args(const char *spec, struct usdt_arg *args, int max);

/* Can libbpf 1.1 attach this probe? (It cannot handle scale-index-base arguments.) */
bool usdt_notes_attachable(const struct usdt_probe *p);

#endif
