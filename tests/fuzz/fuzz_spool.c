// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* libFuzzer target for the spool's file format (agent/delivery/spool.c): a spool file is read
 * back after a crash or from an earlier version, and may be torn or corrupt.
 *
 * The input is decoded twice: as it is (almost always refused by the CRC), and with its magic
 * and CRC made right, so that the fuzzer reaches the header and label checks behind them.
 * Whatever decodes must hold what export.h promises of a profile (label names
 * [a-zA-Z_][a-zA-Z0-9_]*, values valid UTF-8, NUL-terminated within their arrays), and must
 * encode back to the very bytes it came from. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "base/text.h"
#include "delivery/spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_utf8(const char *s)
{
	while (*s) {
		int n = text_utf8_len((const unsigned char *)s);

		if (n <= 0)
			abort();
		s += n;
	}
}

static void check_name(const char *s)
{
	if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
		abort();
	for (s++; *s; s++)
		if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9')))
			abort();
}

static void check_decoded(const uint8_t *buf, size_t len)
{
	struct export_profile e;
	uint8_t *again;
	size_t again_len;
	unsigned i;

	if (spool_decode(buf, len, &e))
		return;
	if (e.n_labels > EXPORT_MAX_LABELS || memchr(e.id, '\0', sizeof(e.id)) == NULL)
		abort();
	for (i = 0; i < e.n_labels; i++) {
		if (!memchr(e.labels[i].name, '\0', EXPORT_LABEL_NAME) ||
		    !memchr(e.labels[i].value, '\0', EXPORT_LABEL_VALUE))
			abort();
		check_name(e.labels[i].name);
		check_utf8(e.labels[i].value);
	}
	if (spool_encode(&e, &again, &again_len))
		abort();
	if (again_len != len || memcmp(again, buf, len))
		abort();
	free(again);
	free(e.data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf;
	uint32_t crc;

	/* exact-size copies, so ASan sees any read past the end */
	buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	check_decoded(buf, size);
	if (size >= 12) {
		memcpy(buf, "PYROSPL1", 8); /* spool.c's MAGIC */
		crc = (uint32_t)crc32(0, buf + 12, (uInt)(size - 12));
		memcpy(buf + 8, &crc, 4);
		check_decoded(buf, size);
	}
	free(buf);
	return 0;
}
