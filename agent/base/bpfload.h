/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Loading a BPF object, with what it cost the verifier recorded per program: instructions
 * the verifier processed (bpf_prog_info.verified_insns, Linux 5.16+) and time to load.
 * What a program costs differs between kernel builds by orders of magnitude (one 6.18
 * refused a walker that 6.12 verified in 1.6 s), so the agent shows these figures on
 * /metrics and in `pyrometer inspect --bpf`, and the kernel matrix holds them to a budget. */
#ifndef PYRO_BPFLOAD_H
#define PYRO_BPFLOAD_H

#include <bpf/libbpf.h>
#include <stdint.h>

#define BPFLOAD_MAX_PROGS 64

struct bpfload_prog {
	char object[16];	 /* "cpu", "gc", ... */
	char program[64];	 /* the program's name in its object */
	uint64_t verified_insns; /* 0 where the kernel does not say (before 5.16) */
	uint64_t load_ns;	 /* from the start of its load to the start of the next one's */
};

/* Of a uprobe program's two variants (UPROBE_PROGRAM in bpf/common.bpf.h), the one to load:
 * `guarded` (preemption off around its body) where the kernel has bpf_preempt_disable,
 * else `plain`. Sets the other one not to load; call before the object's load. */
struct bpf_program *bpfload_pick(struct bpf_program *plain, struct bpf_program *guarded);
/* bpfload_pick for every such pair of obj's programs (NAME and NAME_nopreempt). */
void bpfload_pick_all(struct bpf_object *obj);
/* After an object's load (err: what the load returned): records each loaded program of obj under the object's name (replacing an
 * earlier record of the same object), logs the object's cost, and returns err. */
int bpfload_done(struct bpf_object *obj, const char *object, int err);
/* The programs recorded so far; *n gets their count. Not thread-safe: the daemon loads
 * and reads from one thread. */
const struct bpfload_prog *bpfload_programs(int *n);

#endif
