// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "text.h"

#include <stdint.h>

int text_utf8_len(const unsigned char *s)
{
	int n, i;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xE0) == 0xC0)
		n = 2, cp = s[0] & 0x1F;
	else if ((s[0] & 0xF0) == 0xE0)
		n = 3, cp = s[0] & 0x0F;
	else if ((s[0] & 0xF8) == 0xF0)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

void text_sanitize(char *str)
{
	unsigned char *s = (unsigned char *)str;

	while (*s) {
		int n = text_utf8_len(s);

		if (n == 0 || *s < 0x20 || *s == 0x7F) {
			*s++ = '?';
			continue;
		}
		s += n;
	}
}
