/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* What the running kernel lets pyrometer do. Each capability needs BPF features that
 * arrived in different releases; a kernel without one turns that capability off, with the
 * reason, instead of stopping pyrometer. The features are probed by loading tiny programs
 * (libbpf's probes), not read from the version number: distributions backport. */
#ifndef PYRO_KERNEL_H
#define PYRO_KERNEL_H

#include <stdbool.h>

enum kernel_cap {
	KERNEL_CAP_CPU,	    /* stack sampling (bpf/cpu.bpf.c) */
	KERNEL_CAP_GC,	    /* GC pauses (bpf/gc.bpf.c) */
	KERNEL_CAP_CALLS,   /* function calls (bpf/calls.bpf.c) */
	KERNEL_CAP_IMPORTS, /* imports (bpf/imports.bpf.c) */
	KERNEL_CAP_MAX,
};

/* "cpu", "gc", "calls", "imports". */
const char *kernel_cap_name(enum kernel_cap cap);
/* uname's release, e.g. "6.1.0-57-cloud-amd64". */
const char *kernel_release(void);
/* NULL when this kernel can run the capability, else why not, e.g. "kernel
 * 5.10.0-46-cloud-amd64 lacks task storage (Linux 5.11), bpf_loop (Linux 5.17)". The probes
 * run once, at the first call; a probe that cannot run (no privilege) counts as present,
 * and loading the program then says what is wrong. */
const char *kernel_lacks(enum kernel_cap cap);
/* 0 when this kernel can run the capability; else logs "WHAT are unavailable: REASON"
 * and returns -EOPNOTSUPP. What each loader calls before anything else. */
int kernel_require(enum kernel_cap cap, const char *what);
/* Whether the kernel's BTF has every kfunc of `names` (NULL-terminated; false when BTF
 * cannot be read). */
bool kernel_has_kfuncs(const char *const names[]);
/* The kernel refused the capability's programs although the probes passed (a verifier
 * older than ours expects): from now on kernel_lacks() says so, with the error. */
void kernel_refused(enum kernel_cap cap, int err);

#endif
