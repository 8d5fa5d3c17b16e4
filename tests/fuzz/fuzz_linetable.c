// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* libFuzzer target for the line-table decoders: the table bytes come from another process.
 * Input: 4 bytes of instruction index, then the table. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "python/linetable.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t index;
	uint8_t *tab;

	if (size < 4)
		return 0;
	memcpy(&index, data, 4);
	/* an exact-size copy, so ASan sees any read past the table */
	tab = malloc(size - 4 ? size - 4 : 1);
	if (!tab)
		return 0;
	memcpy(tab, data + 4, size - 4);
	linetable_locations_line(tab, size - 4, 1, index);
	linetable_lnotab_line(tab, size - 4, 1, index);
	linetable_310_line(tab, size - 4, 1, index);
	free(tab);
	return 0;
}
