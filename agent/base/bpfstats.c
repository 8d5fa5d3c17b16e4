// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "base/bpfstats.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <string.h>

void bpfstats_percpu_sum(const struct bpf_map *map, uint32_t nkeys, uint64_t *out)
{
	int ncpu = libbpf_num_possible_cpus();
	uint32_t k;

	memset(out, 0, nkeys * sizeof(*out));
	for (k = 0; k < nkeys && ncpu > 0; k++) {
		__u64 vals[ncpu];
		int c;

		if (bpf_map__lookup_elem(map, &k, sizeof(k), vals, sizeof(vals), 0))
			continue;
		for (c = 0; c < ncpu; c++)
			out[k] += vals[c];
	}
}

int bpfstats_prog_runs(const struct bpf_program *prog, uint64_t *ns, uint64_t *cnt)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len))
		return -errno;
	*ns += info.run_time_ns;
	*cnt += info.run_cnt;
	return 0;
}
