// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "base/kernel.h"

#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

#include "base/log.h"

/* One BPF feature a program of ours uses, how to probe for it, and where it arrived
 * (upstream; the probes decide, the release is only for people). */
struct feature {
	const char *name, *since;
	enum bpf_prog_type prog; /* for a helper: the program type it must work in */
	enum bpf_func_id helper; /* 0: a map type instead */
	enum bpf_map_type map;
};

enum {
	F_RINGBUF,
	F_TASK_STORAGE,
	F_LOOP_PERF,
	F_LOOP_UPROBE,
	F_STORAGE_PERF,
	F_STORAGE_UPROBE,
	F_COOKIE,
	F_MAX,
};

static const struct feature features[F_MAX] = {
	[F_RINGBUF] = { "BPF ring buffers", "5.8", 0, 0, BPF_MAP_TYPE_RINGBUF },
	[F_TASK_STORAGE] = { "task storage", "5.11", 0, 0, BPF_MAP_TYPE_TASK_STORAGE },
	[F_LOOP_PERF] = { "bpf_loop", "5.17", BPF_PROG_TYPE_PERF_EVENT, BPF_FUNC_loop, 0 },
	[F_LOOP_UPROBE] = { "bpf_loop", "5.17", BPF_PROG_TYPE_KPROBE, BPF_FUNC_loop, 0 },
	[F_STORAGE_PERF] = { "task storage", "5.11", BPF_PROG_TYPE_PERF_EVENT,
			     BPF_FUNC_task_storage_get, 0 },
	[F_STORAGE_UPROBE] = { "task storage", "5.11", BPF_PROG_TYPE_KPROBE,
			       BPF_FUNC_task_storage_get, 0 },
	[F_COOKIE] = { "BPF cookies", "5.15", BPF_PROG_TYPE_KPROBE, BPF_FUNC_get_attach_cookie, 0 },
};

/* What each capability's programs use (bpf/cpu.bpf.c, gc.bpf.c, calls.bpf.c, imports.bpf.c). */
static const int needs[KERNEL_CAP_MAX][F_MAX + 1] = {
	[KERNEL_CAP_CPU] = { F_RINGBUF, F_TASK_STORAGE, F_STORAGE_PERF, F_LOOP_PERF, -1 },
	[KERNEL_CAP_GC] = { F_RINGBUF, F_TASK_STORAGE, F_STORAGE_UPROBE, F_COOKIE, F_LOOP_UPROBE,
			    -1 },
	[KERNEL_CAP_CALLS] = { F_RINGBUF, F_TASK_STORAGE, F_STORAGE_UPROBE, F_COOKIE, -1 },
	[KERNEL_CAP_IMPORTS] = { F_RINGBUF, F_TASK_STORAGE, F_STORAGE_UPROBE, F_COOKIE,
				 F_LOOP_UPROBE, -1 },
};

static struct {
	bool probed;
	struct utsname uts;
	char why[KERNEL_CAP_MAX][256];
} k;

static bool present(const struct feature *f)
{
	/* 1: present, 0: absent, < 0: the probe itself failed (privileges): assume present */
	return (f->helper ? libbpf_probe_bpf_helper(f->prog, f->helper, NULL)
			  : libbpf_probe_bpf_map_type(f->map, NULL)) != 0;
}

static void probe(void)
{
	bool have[F_MAX];
	int c, i;

	if (k.probed)
		return;
	k.probed = true;
	if (uname(&k.uts))
		snprintf(k.uts.release, sizeof(k.uts.release), "unknown");
	for (i = 0; i < F_MAX; i++)
		have[i] = present(&features[i]);
	for (c = 0; c < KERNEL_CAP_MAX; c++) {
		char list[160] = "";
		size_t used = 0;

		for (i = 0; needs[c][i] >= 0 && used < sizeof(list); i++) {
			const struct feature *f = &features[needs[c][i]];

			if (have[needs[c][i]] || strstr(list, f->name))
				continue; /* a feature probed in two program types is named once */
			used += (size_t)snprintf(list + used, sizeof(list) - used,
						 "%s%s (Linux %s)", used ? ", " : "", f->name,
						 f->since);
		}
		if (list[0])
			snprintf(k.why[c], sizeof(k.why[c]), "kernel %.64s lacks %s", k.uts.release,
				 list);
	}
}

const char *kernel_cap_name(enum kernel_cap cap)
{
	static const char *const names[KERNEL_CAP_MAX] = { "cpu", "gc", "calls", "imports" };

	return names[cap];
}

const char *kernel_release(void)
{
	probe();
	return k.uts.release;
}

const char *kernel_lacks(enum kernel_cap cap)
{
	probe();
	return k.why[cap][0] ? k.why[cap] : NULL;
}

int kernel_require(enum kernel_cap cap, const char *what)
{
	const char *why = kernel_lacks(cap);

	if (!why)
		return 0;
	log_error("%s are unavailable: %s", what, why);
	return -EOPNOTSUPP;
}

bool kernel_has_kfuncs(const char *const names[])
{
	/* one parse of the kernel's BTF for them all: each costs 40-60 ms here */
	struct btf *vmlinux = btf__load_vmlinux_btf();
	bool found = vmlinux != NULL;

	for (int i = 0; found && names[i]; i++)
		found = btf__find_by_name_kind(vmlinux, names[i], BTF_KIND_FUNC) > 0;
	btf__free(vmlinux);
	return found;
}

void kernel_refused(enum kernel_cap cap, int err)
{
	probe();
	if (!k.why[cap][0])
		snprintf(k.why[cap], sizeof(k.why[cap]),
			 "kernel %.64s refused its BPF programs: %s (-v shows the verifier's log)",
			 k.uts.release, strerror(err < 0 ? -err : err));
}
