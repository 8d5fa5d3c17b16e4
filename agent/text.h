/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Text from other processes (comm, thread names, paths) is arbitrary bytes. */
#ifndef PYRO_TEXT_H
#define PYRO_TEXT_H

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if there is none. Rejects overlong
 * forms, surrogates and code points above U+10FFFF (RFC 3629). */
int text_utf8_len(const unsigned char *s);
/* Replaces, in place, every byte that does not start valid UTF-8 and every control
 * character with '?'. */
void text_sanitize(char *s);

#endif
