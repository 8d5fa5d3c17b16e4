// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* libFuzzer target for the daemon's INI loader (agent/daemon/config.c over libinih). The file
 * is the operator's, but it is parsed by a root daemon, and a loader that crashes or keeps a
 * value it should have refused is a bug either way.
 *
 * Whatever loads must print (as --check-config prints it) to a file that loads again and
 * prints the same: the printed configuration is one an operator can save and use. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* c printed into a malloc'd string. */
static char *printed(const struct config *c)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	if (!f)
		abort();
	config_print(c, f);
	fclose(f);
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c, again;
	char *text, *first, *second;

	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	config_defaults(&c);
	if (config_load_text(&c, "fuzz.ini", text) == 0) {
		first = printed(&c);
		config_defaults(&again);
		if (config_load_text(&again, "printed.ini", first))
			abort();
		second = printed(&again);
		if (strcmp(first, second))
			abort();
		free(first);
		free(second);
	}
	free(text);
	return 0;
}
