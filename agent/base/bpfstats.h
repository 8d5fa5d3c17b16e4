/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Reading what the BPF programs count about themselves. */
#ifndef PYRO_BPFSTATS_H
#define PYRO_BPFSTATS_H

#include <bpf/libbpf.h>
#include <stdint.h>

/* out[k] = the sum over CPUs of per-CPU array `map` at key k, for k < nkeys (0 if unread). */
void bpfstats_percpu_sum(const struct bpf_map *map, uint32_t nkeys, uint64_t *out);
/* Adds the program's run time and run count (kernel.bpf_stats_enabled) to *ns and *cnt. */
int bpfstats_prog_runs(const struct bpf_program *prog, uint64_t *ns, uint64_t *cnt);

#endif
