// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* The pause histogram's buckets (bpf/gc.bpf.c) and quantiles read from them. */
#include "gc/gchist.h"

#include <linux/types.h>

#include "pyrometer.h"

/* Buckets 0-7 hold 0-7 ns; then bucket 8 * msb + s covers [(8 + s) << (msb - 3),
 * (9 + s) << (msb - 3)) (bpf/gc.bpf.c). A duration of 8 ns or more has msb >= 3, so buckets
 * 8-23 are never used: they are empty ranges at 8 ns. */
#define FIRST_LOG_BUCKET (8 * PYRO_GC_SUB_BITS)

uint64_t gchist_bucket_lower(uint32_t b)
{
	if (b < 8)
		return b;
	if (b < FIRST_LOG_BUCKET)
		return 8;
	return (uint64_t)(8 + b % 8) << (b / 8 - PYRO_GC_SUB_BITS);
}

uint64_t gchist_bucket_upper(uint32_t b)
{
	if (b < 8)
		return b + 1;
	if (b < FIRST_LOG_BUCKET)
		return 8;
	return (uint64_t)(9 + b % 8) << (b / 8 - PYRO_GC_SUB_BITS);
}

uint64_t gchist_quantile(const uint64_t *counts, double q, uint64_t max_ns)
{
	uint64_t total = 0, seen = 0, up;
	uint32_t b;

	for (b = 0; b < PYRO_GC_BUCKETS; b++)
		total += counts[b];
	if (!total)
		return 0;
	for (b = 0; b < PYRO_GC_BUCKETS; b++) {
		seen += counts[b];
		if ((double)seen >= q * (double)total) {
			up = gchist_bucket_upper(b);
			return up < max_ns ? up : max_ns;
		}
	}
	return max_ns;
}
