// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "base/bpfload.h"

#include <bpf/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/kernel.h"
#include "base/log.h"

static struct bpfload_prog progs[BPFLOAD_MAX_PROGS];
static int nprogs;

/* CLOCK_BOOTTIME: the clock of bpf_prog_info.load_time. */
static uint64_t boottime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

struct bpf_program *bpfload_pick(struct bpf_program *plain, struct bpf_program *guarded)
{
	/* Looked up once: every kernel with per-CPU private stacks (7.x) has these kfuncs
	 * (6.10+), so the guarded variant runs wherever the plain one could be re-entered
	 * on a shared stack. */
	static const char *const kfuncs[] = { "bpf_preempt_disable", "bpf_preempt_enable", NULL };
	static int guard = -1;

	if (guard < 0) {
		guard = kernel_has_kfuncs(kfuncs);
		log_debug("uprobe programs run %s",
			  guard ? "with preemption off (bpf_preempt_disable)"
				: "preemptible (no bpf_preempt_disable)");
	}
	bpf_program__set_autoload(plain, !guard);
	bpf_program__set_autoload(guarded, guard);
	return guard ? guarded : plain;
}

void bpfload_pick_all(struct bpf_object *obj)
{
	static const char suffix[] = "_nopreempt";
	struct bpf_program *prog;

	bpf_object__for_each_program(prog, obj)
	{
		const char *name = bpf_program__name(prog);
		size_t n = strlen(name), k = sizeof(suffix) - 1;
		char plain[64];

		if (n <= k || n - k >= sizeof(plain) || strcmp(name + n - k, suffix))
			continue;
		snprintf(plain, sizeof(plain), "%.*s", (int)(n - k), name);
		bpfload_pick(bpf_object__find_program_by_name(obj, plain), prog);
	}
}

struct loaded {
	const char *name;
	struct bpf_prog_info info;
};

static int by_load_time(const void *a, const void *b)
{
	const struct loaded *x = a, *y = b;

	return x->info.load_time < y->info.load_time ? -1 : x->info.load_time > y->info.load_time;
}

static void forget(const char *object)
{
	int i, kept = 0;

	for (i = 0; i < nprogs; i++)
		if (strcmp(progs[i].object, object))
			progs[kept++] = progs[i];
	nprogs = kept;
}

/* libbpf loads an object's programs one after another, and the kernel stamps each with
 * the time its load began (kernel/bpf/syscall.c sets load_time before bpf_check), so a
 * program's load took from its stamp to the next one's, the last one's to end. */
static void record(const char *object, struct loaded *l, int n, uint64_t end)
{
	uint64_t most = 0, total = 0;
	int i;

	qsort(l, (size_t)n, sizeof(*l), by_load_time);
	forget(object);
	for (i = 0; i < n && nprogs < BPFLOAD_MAX_PROGS; i++) {
		struct bpfload_prog *p = &progs[nprogs++];
		uint64_t next = i + 1 < n ? l[i + 1].info.load_time : end;

		snprintf(p->object, sizeof(p->object), "%s", object);
		snprintf(p->program, sizeof(p->program), "%s", l[i].name);
		p->verified_insns = l[i].info.verified_insns;
		p->load_ns = next > l[i].info.load_time ? next - l[i].info.load_time : 0;
		most = p->verified_insns > most ? p->verified_insns : most;
		total += p->load_ns;
	}
	log_info("loaded the %s BPF programs: %d, at most %llu verified instructions, %.3f s",
		 object, n, (unsigned long long)most, (double)total / 1e9);
}

int bpfload_done(struct bpf_object *obj, const char *object, int err)
{
	uint64_t end = boottime_ns();
	struct loaded l[BPFLOAD_MAX_PROGS];
	struct bpf_program *prog;
	int n = 0;

	if (err || !obj)
		return err;
	bpf_object__for_each_program(prog, obj)
	{
		__u32 len = sizeof(struct bpf_prog_info);

		if (n == BPFLOAD_MAX_PROGS || bpf_program__fd(prog) < 0)
			continue;
		memset(&l[n].info, 0, sizeof(l[n].info));
		if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &l[n].info, &len))
			continue;
		l[n].name = bpf_program__name(prog);
		n++;
	}
	record(object, l, n, end);
	return 0;
}

const struct bpfload_prog *bpfload_programs(int *n)
{
	*n = nprogs;
	return progs;
}
