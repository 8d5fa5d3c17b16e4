/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Line numbers from CPython line tables, read out of another process (untrusted bytes:
 * every read is bounded by len). */
#ifndef PYRO_LINETABLE_H
#define PYRO_LINETABLE_H

#include <stddef.h>
#include <stdint.h>

/* 3.9 co_lnotab: (bytecode offset increment, signed line increment) byte pairs.
 * addr is the byte offset of the instruction. */
int linetable_lnotab_line(const uint8_t *tab, size_t len, int firstlineno, uint32_t addr);

/* 3.10 co_linetable: (bytecode byte count, signed line increment or -128 for none) byte
 * pairs (Objects/lnotab_notes.txt in 3.10). addr is the byte offset of the instruction.
 * Returns -1 for instructions with no line. */
int linetable_310_line(const uint8_t *tab, size_t len, int firstlineno, uint32_t addr);

/* 3.11+ co_linetable location entries (Objects/locations.md in CPython). index is the
 * instruction's position in 16-bit code units. Returns -1 for instructions with no line. */
int linetable_locations_line(const uint8_t *tab, size_t len, int firstlineno, uint32_t index);

#endif
