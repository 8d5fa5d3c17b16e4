// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "calls/calltrace.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "base/bpfload.h"
#include "base/kernel.h"
#include "base/bpfstats.h"
#include "calls.skel.h"
#include "procs/discover.h"
#include "base/log.h"
#include "base/procfs.h"
#include "python/py_binary.h"
#include "base/rootfs.h"

struct link_node {
	struct link_node *next;
	struct bpf_link *link;
};

/* The variants of the call programs loaded (bpfload_pick: preemption-guarded or not). */
struct calls_progs {
	struct bpf_program *on_entry, *on_return, *on_return_count, *on_entry_regs, *on_return_regs,
		*on_return_count_regs, *timer_entry_usdt, *timer_return_usdt, *timer_entry_regs,
		*timer_return_regs;
};

struct calltrace {
	struct calls_progs p;
	struct calls_bpf *skel;
	enum calltrace_floor floor;
	struct link_node *links;
	struct bpf_link *exit_link; /* flushes an exiting thread's totals (on_thread_exit) */
};

static void pick_programs(struct calltrace *c)
{
#define PICK(name) (c->p.name = bpfload_pick(c->skel->progs.name, c->skel->progs.name##_nopreempt))
	PICK(on_entry);
	PICK(on_return);
	PICK(on_return_count);
	PICK(on_entry_regs);
	PICK(on_return_regs);
	PICK(on_return_count_regs);
	PICK(timer_entry_usdt);
	PICK(timer_return_usdt);
	PICK(timer_entry_regs);
	PICK(timer_return_regs);
#undef PICK
}

int calltrace_new(const struct calltrace_opts *o, struct calltrace **out)
{
	struct calltrace *c;
	int err = kernel_require(KERNEL_CAP_CALLS, "function calls");

	if (err)
		return err;
	if (!(c = calloc(1, sizeof(*c))))
		return -ENOMEM;
	c->floor = o->floor;
	c->skel = calls_bpf__open();
	if (!c->skel) {
		free(c);
		return -errno;
	}
	pick_programs(c);
	err = bpf_map__reuse_fd(c->skel->maps.procs, o->procs_fd);
	if (!err)
		err = bpfload_done(c->skel->obj, "calls", calls_bpf__load(c->skel));
	if (!err) {
		c->exit_link = bpf_program__attach(c->skel->progs.on_thread_exit);
		err = c->exit_link ? 0 : -errno;
	}
	if (err) {
		log_error("cannot load the call-tracing BPF program: %s", strerror(-err));
		kernel_refused(KERNEL_CAP_CALLS, err);
		calltrace_free(c);
		return err;
	}
	*out = c;
	return 0;
}

/* Runs flush_threads over every task: live threads' totals move to the shared maps. */
static int flush_live_threads(struct calltrace *c)
{
	struct bpf_link *l = bpf_program__attach_iter(c->skel->progs.flush_threads, NULL);
	char buf[64];
	ssize_t n;
	int fd;

	if (!l)
		return -errno;
	fd = bpf_iter_create(bpf_link__fd(l));
	if (fd < 0) {
		int err = -errno;

		bpf_link__destroy(l);
		return err;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		;
	close(fd);
	bpf_link__destroy(l);
	return n < 0 ? -errno : 0;
}

void calltrace_detach_all(struct calltrace *c)
{
	int err;

	if (!c->links && !c->exit_link)
		return;
	while (c->links) {
		struct link_node *n = c->links;

		c->links = n->next;
		bpf_link__destroy(n->link);
		free(n);
	}
	/* The probes are gone, so no thread changes its totals any more; threads exiting
	 * meanwhile flush themselves until the exit link goes too. Not covered: an exit flush
	 * still running (microseconds) when the caller reads the maps right after. */
	if ((err = flush_live_threads(c)))
		log_error("function tracing: the totals of running threads could not be "
			  "collected (%s); their counts are missing",
			  strerror(-err));
	bpf_link__destroy(c->exit_link);
	c->exit_link = NULL;
}

void calltrace_free(struct calltrace *c)
{
	if (!c)
		return;
	calltrace_detach_all(c);
	calls_bpf__destroy(c->skel);
	free(c);
}

static int keep_link(struct calltrace *c, struct bpf_link *l)
{
	struct link_node *n = malloc(sizeof(*n));

	if (!n) {
		bpf_link__destroy(l);
		return -ENOMEM;
	}
	n->link = l;
	n->next = c->links;
	c->links = n;
	return 0;
}

static int add_link(struct calltrace *c, struct bpf_program *prog, pid_t pid, const char *path,
		    const char *probe)
{
	/* pid, not -1: only this process's probe is armed */
	struct bpf_link *l = bpf_program__attach_usdt(prog, pid, path, "python", probe, NULL);

	return l ? keep_link(c, l) : -errno;
}

/* x86-64 register names in the order bpf/calls.bpf.c's reg() numbers them. */
static int reg_number(const char *name)
{
	static const char *const regs[] = {
		"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
		"r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"
	};

	for (int i = 0; i < 16; i++)
		if (!strcmp(name, regs[i]))
			return i;
	return -1;
}

/* The cookie for a probe whose file and function name (arguments 0 and 1) are 8-byte
 * registers, or -1 when they are not (then libbpf's USDT path reads them). */
static int64_t regs_cookie(const struct usdt_probe *u)
{
	int file, name;

	if (u->nargs < 2 || u->args[0].kind != USDT_ARG_REG || u->args[1].kind != USDT_ARG_REG ||
	    (u->args[0].size != 8 && u->args[0].size != -8) ||
	    (u->args[1].size != 8 && u->args[1].size != -8) || !u->pc_offset ||
	    (u->semaphore && !u->semaphore_offset))
		return -1;
	file = reg_number(u->args[0].reg);
	name = reg_number(u->args[1].reg);
	return file < 0 || name < 0 ? -1 : file | name << 4;
}

/* Attaches prog_regs to every site of the probe as a plain uprobe for pid, or, if any site
 * does not allow it, prog_usdt through libbpf's USDT support. */
static int attach_probe(struct calltrace *c, const struct py_process *p, const char *path,
			const char *probe, struct bpf_program *prog_regs,
			struct bpf_program *prog_usdt)
{
	const struct py_binary *b = p->bin;
	int i, sites = 0, err;

	for (i = 0; i < b->nprobes; i++)
		if (!strcmp(b->probes[i].name, probe) && regs_cookie(&b->probes[i]) < 0)
			return add_link(c, prog_usdt, p->pid, path, probe);
	for (i = 0; i < b->nprobes; i++) {
		const struct usdt_probe *u = &b->probes[i];
		struct bpf_uprobe_opts o = { .sz = sizeof(o),
					     .ref_ctr_offset = u->semaphore_offset,
					     .bpf_cookie = (__u64)regs_cookie(u) };
		struct bpf_link *l;

		if (strcmp(u->name, probe))
			continue;
		l = bpf_program__attach_uprobe_opts(prog_regs, p->pid, path, u->pc_offset, &o);
		if (!l || (err = keep_link(c, l)))
			return l ? err : -errno;
		sites++;
	}
	return sites ? 0 : -ENOENT;
}

/* PYTHON_JIT=1 in the target's environment: the probes do not fire under the JIT. Only this
 * one key is looked at, and nothing is kept. */
static bool jit_enabled(pid_t pid)
{
	char buf[65536];
	bool on = false;
	int n = procfs_read_file(pid, "environ", buf, sizeof(buf));

	for (char *p = buf; p < buf + n; p += strlen(p) + 1)
		if (!strncmp(p, "PYTHON_JIT=", 11))
			on = strcmp(p + 11, "0") != 0 && p[11];
	memset(buf, 0, sizeof(buf));
	return on;
}

int calltrace_attach(struct calltrace *c, const struct py_process *p, const char **why)
{
	enum py_calls_mode mode = p->bin->caps.calls;
	struct bpf_program *entry = c->p.on_entry, *ret = c->p.on_return;
	struct bpf_program *entry_regs = c->p.on_entry_regs;
	struct bpf_program *ret_regs = c->p.on_return_regs;
	char path[64];
	int fd, err;

	*why = p->bin->caps.no_calls;
	if (mode == PY_CALLS_NONE)
		return -ENOTSUP;
	if (mode == PY_CALLS_FULL && jit_enabled(p->pid)) {
		*why = "the JIT is enabled (PYTHON_JIT): function probes do not fire under it";
		return -ENOTSUP;
	}
	if (mode == PY_CALLS_COUNTS) { /* 3.11: entry does not fire for Python calls */
		entry = entry_regs = NULL;
		ret = c->p.on_return_count;
		ret_regs = c->p.on_return_count_regs;
	}
	if (c->floor == FLOOR_TIMER && entry) {
		entry = c->p.timer_entry_usdt;
		entry_regs = c->p.timer_entry_regs;
		ret = c->p.timer_return_usdt;
		ret_regs = c->p.timer_return_regs;
	} else if (c->floor) { /* no entry to time from (3.11): count */
		entry = entry ? c->skel->progs.floor_count : NULL;
		ret = c->skel->progs.floor_count;
		entry_regs = ret_regs = NULL;
	}
	fd = rootfs_open_verified(p->pid, p->interp_path, p->dev_major, p->dev_minor, p->inode);
	if (fd < 0) {
		log_warn("pid %d: opening %s inside its root: %s", p->pid, p->interp_path,
			 strerror(-fd));
		*why = "its interpreter binary could not be opened";
		return fd;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (ret_regs)
		err = attach_probe(c, p, path, "function__return", ret_regs, ret);
	else
		err = add_link(c, ret, p->pid, path, "function__return");
	if (!err && entry && entry_regs)
		err = attach_probe(c, p, path, "function__entry", entry_regs, entry);
	else if (!err && entry)
		err = add_link(c, entry, p->pid, path, "function__entry");
	close(fd);
	if (err)
		*why = "attaching the function probes failed";
	return err;
}

/* Calls cb(key, value, ctx) for each entry of a map (keys up to 64 bytes, values 1 KiB). */
static int map_walk(struct bpf_map *map, void (*cb)(const void *k, const void *v, void *ctx),
		    void *ctx)
{
	size_t ksz = bpf_map__key_size(map), vsz = bpf_map__value_size(map);
	uint8_t key[64], next[64], val[1024];
	int err;

	if (ksz > sizeof(key) || vsz > sizeof(val))
		return -EINVAL;
	for (err = bpf_map__get_next_key(map, NULL, next, ksz); !err;
	     err = bpf_map__get_next_key(map, key, next, ksz)) {
		memcpy(key, next, ksz);
		if (!bpf_map__lookup_elem(map, key, ksz, val, vsz, 0))
			cb(key, val, ctx);
	}
	return err == -ENOENT ? 0 : err;
}

struct walk {
	void (*fn)(const struct pyro_fn_key *, const struct pyro_fn_stats *, void *);
	void (*path)(const struct pyro_path_key *, const struct pyro_path *, void *);
	void *ctx;
};

static void walk_fn(const void *k, const void *v, void *ctx)
{
	struct walk *w = ctx;

	w->fn(k, v, w->ctx);
}

static void walk_path(const void *k, const void *v, void *ctx)
{
	struct walk *w = ctx;

	w->path(k, v, w->ctx);
}

int calltrace_for_each_fn(struct calltrace *c,
			  void (*cb)(const struct pyro_fn_key *k, const struct pyro_fn_stats *s,
				     void *ctx),
			  void *ctx)
{
	struct walk w = { .fn = cb, .ctx = ctx };

	return map_walk(c->skel->maps.fn_stats, walk_fn, &w);
}

int calltrace_for_each_path(struct calltrace *c,
			    void (*cb)(const struct pyro_path_key *k, const struct pyro_path *p,
				       void *ctx),
			    void *ctx)
{
	struct walk w = { .path = cb, .ctx = ctx };

	return map_walk(c->skel->maps.paths, walk_path, &w);
}

int calltrace_fn_names(struct calltrace *c, const struct pyro_fn_key *k, struct pyro_fn_names *out)
{
	return bpf_map__lookup_elem(c->skel->maps.fn_names, k, sizeof(*k), out, sizeof(*out), 0);
}

void calltrace_counters(struct calltrace *c, uint64_t out[PYRO_CALLS_COUNTER_MAX])
{
	bpfstats_percpu_sum(c->skel->maps.calls_counters, PYRO_CALLS_COUNTER_MAX, out);
}

uint64_t calltrace_floor_hits(struct calltrace *c)
{
	uint64_t n = 0;

	bpfstats_percpu_sum(c->skel->maps.floor_hits, 1, &n);
	return n;
}

/* ---- what a probe hit costs, measured ---- */

/* The calibration traps on a nop, as USDT sites are (the kernel emulates a nop; other
 * instructions, a function's first one among them, it single-steps, at about 3x the cost). */
extern const char pyrometer_calibration_site[];

__attribute__((noinline, used)) void pyrometer_calibration_target(void)
{
	__asm__ volatile(".globl pyrometer_calibration_site\n"
			 "pyrometer_calibration_site: nop" ::
				 : "memory");
}

struct file_offset {
	uintptr_t addr;
	uint64_t off;
};

static int offset_of(const struct map_entry *m, void *ctx)
{
	struct file_offset *f = ctx;

	if (f->addr < m->start || f->addr >= m->end)
		return 0;
	f->off = f->addr - m->start + m->offset;
	return 1;
}

/* The offset in our own executable file of an address of ours, from our maps. */
static int own_file_offset(const void *addr, uint64_t *off)
{
	struct file_offset f = { .addr = (uintptr_t)addr };
	int err = procfs_for_each_map(getpid(), offset_of, &f);

	if (err < 0)
		return err;
	if (!err)
		return -ENOENT;
	*off = f.off;
	return 0;
}

#define CALIBRATION_CALLS 4000
#define CALIBRATION_ROUNDS 5

static uint64_t thread_cpu_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static uint64_t run_target(void)
{
	uint64_t t0 = thread_cpu_ns();

	for (int i = 0; i < CALIBRATION_CALLS; i++)
		pyrometer_calibration_target();
	return thread_cpu_ns() - t0;
}

static int by_value(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The median of a few runs: robust to a run the scheduler interrupted. */
static uint64_t median_run(void)
{
	uint64_t ns[CALIBRATION_ROUNDS];

	for (int i = 0; i < CALIBRATION_ROUNDS; i++)
		ns[i] = run_target();
	qsort(ns, CALIBRATION_ROUNDS, sizeof(ns[0]), by_value);
	return ns[CALIBRATION_ROUNDS / 2];
}

int calltrace_calibrate(struct calltrace *c, double *ns_per_hit)
{
	uint64_t untraced = median_run(), traced, off;
	struct bpf_link *l;
	int err;

	if ((err = own_file_offset(pyrometer_calibration_site, &off)))
		return err;
	/* a uprobe on this very process: the trap and the counting program, as each probe
	 * hit of a traced Python process pays them (make bench: the full program costs
	 * 1.03-1.07 times that) */
	l = bpf_program__attach_uprobe_opts(c->skel->progs.floor_count, getpid(), "/proc/self/exe",
					    (size_t)off, NULL);
	if (!l)
		return -errno;
	traced = median_run();
	bpf_link__destroy(l);
	*ns_per_hit = ((double)traced - (double)untraced) / CALIBRATION_CALLS;
	return *ns_per_hit > 0 ? 0 : -ERANGE;
}

void calltrace_prog_stats(struct calltrace *c, uint64_t *run_ns, uint64_t *run_cnt)
{
	struct bpf_program *progs[] = {
		c->p.on_entry,
		c->p.on_return,
		c->p.on_return_count,
		c->skel->progs.floor_count,
		c->p.on_entry_regs,
		c->p.on_return_regs,
		c->p.on_return_count_regs,
		c->p.timer_entry_regs,
		c->p.timer_return_regs,
		c->p.timer_entry_usdt,
		c->p.timer_return_usdt,
	};

	*run_ns = *run_cnt = 0;
	for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
		uint64_t ns = 0, cnt = 0;

		if (!bpfstats_prog_runs(progs[i], &ns, &cnt)) {
			*run_ns += ns;
			*run_cnt += cnt;
		}
	}
}
