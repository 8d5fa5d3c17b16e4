/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Text from other processes (comm, thread names, paths) is arbitrary bytes. */
#ifndef PYRO_TEXT_H
#define PYRO_TEXT_H

#include <stddef.h>
#include <stdio.h>

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if there is none. Rejects overlong
 * forms, surrogates and code points above U+10FFFF (RFC 3629). */
int text_utf8_len(const unsigned char *s);
/* Replaces, in place, every byte that does not start valid UTF-8 and every control
 * character with '?'. */
void text_sanitize(char *s);

/* Copies s to out (at most len bytes with the NUL), writing control characters and bytes
 * that are not valid UTF-8 as \n, \t, \\ or \xNN: the result is one printable line.
 * Text that does not fit is cut at a character boundary. */
void text_escape(char *out, size_t len, const char *s);

/* Writes s as a Prometheus label value: backslash, quote and newline escaped. */
void text_label_value(FILE *f, const char *s);

#endif
