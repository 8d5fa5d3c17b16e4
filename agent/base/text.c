// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "base/text.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

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

/* The escaped form of the byte or character at s: its length in out, how many input bytes
 * it stands for in *used. */
static int escape_one(const unsigned char *s, char out[5], int *used)
{
	int n = text_utf8_len(s);

	*used = n ? n : 1;
	if (*s == '\n' || *s == '\t' || *s == '\\')
		return snprintf(out, 5, "\\%c", *s == '\n' ? 'n' : *s == '\t' ? 't' : '\\');
	if (n == 0 || *s < 0x20 || *s == 0x7F)
		return snprintf(out, 5, "\\x%02x", *s);
	memcpy(out, s, (size_t)n);
	return n;
}

void text_escape(char *out, size_t len, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t at = 0;
	char one[5];
	int n, used;

	if (!len)
		return;
	while (*s) {
		n = escape_one(s, one, &used);
		if (at + (size_t)n >= len)
			break;
		memcpy(out + at, one, (size_t)n);
		at += (size_t)n;
		s += used;
	}
	out[at] = '\0';
}

void text_label_value(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(f, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}
