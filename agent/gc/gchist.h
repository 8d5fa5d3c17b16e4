/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The GC pause histogram (bpf/gc.bpf.c): PYRO_GC_BUCKETS log-linear buckets of ns. */
#ifndef PYRO_GCHIST_H
#define PYRO_GCHIST_H

#include <stdint.h>

/* Bounds of histogram bucket b, in ns: [lower, upper). */
uint64_t gchist_bucket_lower(uint32_t b);
uint64_t gchist_bucket_upper(uint32_t b);
/* The q-quantile (0..1) of a histogram, as the upper bound of its bucket capped at max_ns. */
uint64_t gchist_quantile(const uint64_t *counts, double q, uint64_t max_ns);

#endif
