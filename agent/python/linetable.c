// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "python/linetable.h"

#include <stdbool.h>
#include <stdint.h>

int linetable_lnotab_line(const uint8_t *tab, size_t len, int firstlineno, uint32_t addr)
{
	uint32_t at = 0;
	int64_t line = firstlineno; /* 1 << 20 pairs of +-128 cannot overflow 64 bits */
	size_t i;

	/* As PyCode_Addr2Line in 3.9: advance while the next range still starts at or
	 * before addr. */
	for (i = 0; i + 1 < len; i += 2) {
		at += tab[i];
		if (at > addr)
			break;
		line += (int8_t)tab[i + 1];
	}
	return line < 0 || line > INT32_MAX ? -1 : (int)line;
}

int linetable_310_line(const uint8_t *tab, size_t len, int firstlineno, uint32_t addr)
{
	uint32_t start, end = 0;
	int64_t line = firstlineno; /* 1 << 20 pairs of +-127 cannot overflow 64 bits */
	size_t i;

	/* As 3.10's PyLineTable_NextAddressRange: each pair is the range [end, end + delta),
	 * at the line moved by the second byte, or at none when that is -128. */
	for (i = 0; i + 1 < len; i += 2) {
		int8_t ldelta = (int8_t)tab[i + 1];

		start = end;
		end += tab[i];
		if (ldelta != -128)
			line += ldelta;
		if (addr >= start && addr < end)
			return ldelta == -128 || line < 0 || line > INT32_MAX ? -1 : (int)line;
	}
	return -1;
}

/* Variable-length unsigned: 6 bits per byte, 0x40 set on all but the last. */
static bool read_varint(const uint8_t *tab, size_t len, size_t *pos, uint32_t *out)
{
	uint32_t v = 0;
	int shift = 0;

	while (*pos < len && shift < 32) {
		uint8_t b = tab[(*pos)++];

		v |= (uint32_t)(b & 0x3F) << shift;
		shift += 6;
		if (!(b & 0x40)) {
			*out = v;
			return true;
		}
	}
	return false;
}

static bool read_svarint(const uint8_t *tab, size_t len, size_t *pos, int64_t *out)
{
	uint32_t v;

	if (!read_varint(tab, len, pos, &v))
		return false;
	*out = (v & 1) ? -(int64_t)(v >> 1) : (int64_t)(v >> 1);
	return true;
}

/* Each entry starts with a byte whose top bit is set: bits 3-6 are the code, bits 0-2 the
 * number of code units covered minus one. Codes: 15 no location; 14 long form (line delta,
 * end line delta, column, end column as varints); 13 line delta only; 10-12 line delta
 * code-10 plus two column bytes; 0-9 same line, one column byte. */
int linetable_locations_line(const uint8_t *tab, size_t len, int firstlineno, uint32_t index)
{
	size_t pos = 0;
	uint32_t at = 0, skip;
	int64_t line = firstlineno, delta; /* corrupt tables must not overflow it */

	while (pos < len) {
		uint8_t first = tab[pos++];
		int code = (first >> 3) & 15;
		uint32_t units = (uint32_t)(first & 7) + 1;
		bool no_line = code == 15;

		if (!(first & 0x80))
			return -1; /* not at an entry start: corrupt or misread */
		delta = 0;
		if (code == 14) {
			if (!read_svarint(tab, len, &pos, &delta) ||
			    !read_varint(tab, len, &pos, &skip) ||
			    !read_varint(tab, len, &pos, &skip) ||
			    !read_varint(tab, len, &pos, &skip))
				return -1;
		} else if (code == 13) {
			if (!read_svarint(tab, len, &pos, &delta))
				return -1;
		} else if (code >= 10 && code <= 12) {
			delta = code - 10;
			pos += 2;
		} else if (code < 10) {
			pos += 1;
		}
		line += delta;
		if (line < INT32_MIN || line > INT32_MAX)
			return -1;
		if (index >= at && index - at < units)
			return no_line || line < 0 ? -1 : (int)line;
		at += units;
	}
	return -1;
}
