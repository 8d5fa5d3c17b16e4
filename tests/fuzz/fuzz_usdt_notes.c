// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* libFuzzer target for the .note.stapsdt parser. Input: 8 bytes of .stapsdt.base address,
 * then the section contents. The same bytes, NUL-terminated, also go to the argument-spec
 * parser on their own. Run by `make fuzz` under ASan and UBSan. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "python/usdt_notes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct usdt_arg args[USDT_ARGS_MAX];
	struct usdt_probe *probes;
	uint64_t base = 0;
	char *spec;
	int n, i;

	if (size >= 8) {
		memcpy(&base, data, 8);
		n = usdt_notes_parse(data + 8, size - 8, base, &probes);
		for (i = 0; i < n; i++) /* touch every field the agent later reads */
			if (strlen(probes[i].provider) + strlen(probes[i].name) == 0 ||
			    probes[i].nargs > USDT_ARGS_MAX)
				abort();
		if (n > 0)
			free(probes);
	}
	spec = malloc(size + 1);
	if (!spec)
		return 0;
	memcpy(spec, data, size);
	spec[size] = '\0';
	usdt_notes_parse_args(spec, args, USDT_ARGS_MAX);
	free(spec);
	return 0;
}
