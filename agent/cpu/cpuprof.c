// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* See cpuprof.h. Symbolization happens twice per stack at most: when the kernel announces a
 * new stack (while its process surely lives) and, from the cache, at each drain. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpuprof.h"
#include "base/evloop.h"
#include "profile/profile.h"
#include "procs/seen.h"
#include "python/symbolizer.h"
#include "base/text.h"

struct cpuprof {
	struct cpuprof_ops ops;
	struct evloop *loop;
	struct discover *disc;
	struct sampler *sampler;
	struct symbolizer *sym;
	struct seen seen;
	struct cpuprof_totals totals;
};

static void on_start(const struct py_process *p, uint64_t ktime, void *ctx)
{
	struct cpuprof *c = ctx;

	if (seen_add(&c->seen, p) >= 0)
		symbolizer_forget(c->sym, p->pid); /* a reused pid names another process */
	if (c->ops.on_start)
		c->ops.on_start(p, ktime, c->ops.ctx);
}

static void on_exit_(const struct py_process *p, enum discover_exit_why why, int code,
		     uint64_t ktime, void *ctx)
{
	struct cpuprof *c = ctx;

	if (c->ops.on_exit)
		c->ops.on_exit(p, why, code, ktime, c->ops.ctx);
}

int cpuprof_new(const struct cpuprof_ops *ops, struct cpuprof **out)
{
	struct discover_ops dops = { .on_start = on_start, .on_exit = on_exit_ };
	struct cpuprof *c = calloc(1, sizeof(*c));
	int err;

	if (!c)
		return -ENOMEM;
	c->ops = *ops;
	dops.ctx = c;
	seen_init(&c->seen);
	if ((err = symbolizer_new(&c->sym)) || (err = evloop_new(&c->loop)) ||
	    (err = discover_new(&dops, c->loop, &c->disc)) ||
	    (err = discover_start_live(c->disc)) || (err = discover_scan(c->disc))) {
		cpuprof_free(c);
		return err;
	}
	*out = c;
	return 0;
}

void cpuprof_free(struct cpuprof *c)
{
	if (!c)
		return;
	sampler_free(c->sampler);
	discover_free(c->disc);
	evloop_free(c->loop);
	symbolizer_free(c->sym);
	seen_free(&c->seen);
	free(c);
}

struct evloop *cpuprof_loop(struct cpuprof *c)
{
	return c->loop;
}

struct discover *cpuprof_discover(struct cpuprof *c)
{
	return c->disc;
}

struct sampler *cpuprof_sampler(struct cpuprof *c)
{
	return c->sampler;
}

struct symbolizer *cpuprof_symbolizer(struct cpuprof *c)
{
	return c->sym;
}

const struct seen *cpuprof_seen(struct cpuprof *c)
{
	return &c->seen;
}

void cpuprof_forget(struct cpuprof *c, pid_t pid, uint64_t starttime)
{
	const struct py_process *p = seen_get(&c->seen, pid);

	if (!p || p->starttime != starttime)
		return; /* the pid names a newer process now */
	seen_remove(&c->seen, pid, starttime);
	symbolizer_forget(c->sym, pid);
}

const struct py_process *cpuprof_process(struct cpuprof *c, pid_t pid)
{
	return seen_get(&c->seen, pid);
}

/* A stack was stored for the first time: symbolize it now, while its process surely lives,
 * so the drain finds it cached even if the process has exited by then. */
static int on_new_stack(void *ctx, void *data, size_t len)
{
	const struct pyro_new_stack *n = data;
	struct cpuprof *c = ctx;
	const struct py_process *p;
	const struct sampler_stack *st;
	struct py_target target;
	struct py_frame_sym fs;
	uint32_t i;

	if (len < sizeof(*n) || !(p = seen_get(&c->seen, (pid_t)n->pid)) ||
	    !(st = sampler_stack(c->sampler, n->stack_id)))
		return 0;
	target = discover_target(p);
	for (i = 0; i < st->depth; i++)
		symbolizer_frame(c->sym, &target, st->frames[i] & PYRO_FRAME_CODE_MASK,
				 (uint32_t)(st->frames[i] >> PYRO_FRAME_INSTR_SHIFT), &fs);
	return 0;
}

int cpuprof_sample(struct cpuprof *c, int frequency, bool sample_all)
{
	struct sampler_opts so = { .frequency = frequency,
				   .sample_all = sample_all,
				   .wall = c->ops.wait_profile_for != NULL };

	so.procs_fd = discover_procs_map_fd(c->disc);
	so.events_fd = discover_events_fd(c->disc);
	return sampler_new(&so, &c->sampler)
		       ?: evloop_add_ring(c->loop, sampler_new_stacks_fd(c->sampler), on_new_stack,
					  c);
}

int cpuprof_poll(struct cpuprof *c, int timeout_ms)
{
	return discover_poll(c->disc, timeout_ms);
}

/* ---- samples -> profile ---- */

static uint32_t pseudo_frame(struct profile *prof, const char *name)
{
	int64_t f = profile_function(prof, name, "", 0);

	return f < 0 ? 0 : (uint32_t)profile_location(prof, (uint32_t)f, 0);
}

static bool symbolize_stack(struct cpuprof *c, struct profile *prof, const struct py_process *p,
			    const struct sampler_stack *st, uint32_t *locs, uint32_t *n)
{
	struct py_target target = discover_target(p);
	bool all_ok = true;
	uint32_t i;

	for (i = 0; i < st->depth; i++) {
		uint64_t code = st->frames[i] & PYRO_FRAME_CODE_MASK;
		uint32_t instr = (uint32_t)(st->frames[i] >> PYRO_FRAME_INSTR_SHIFT);
		struct py_frame_sym fs;
		int64_t f, l;

		if (symbolizer_frame(c->sym, &target, code, instr, &fs))
			all_ok = false;
		f = profile_function(prof, fs.name, fs.file, fs.firstlineno);
		l = f < 0 ? -1 : profile_location(prof, (uint32_t)f, fs.line);
		if (l >= 0)
			locs[(*n)++] = (uint32_t)l;
	}
	return all_ok;
}

/* What a stack without (all) its Python frames stands for. */
static const char *stack_note(const struct sampler_stack *st)
{
	if (st->depth == 0)
		return st->flags & PYRO_STACK_NO_TSTATE	   ? "[native thread]"
		       : st->flags & PYRO_STACK_READ_ERROR ? "[unreadable stack]"
							   : "[no Python frames]";
	return st->flags & PYRO_STACK_READ_ERROR ? "[partial stack]" : NULL;
}

/* What one drained entry adds to a profile: a thread's stack, with a leaf note for an
 * off-CPU stretch (NULL for a CPU sample), `count` samples or stretches and, in wall
 * profiles, `weight` nanoseconds. */
struct entry {
	__u32 pid, tid;
	const char *comm; /* the thread's, PYRO_COMM_LEN bytes */
	const struct sampler_stack *st;
	const char *leaf;
	uint64_t count, weight;
};

static void add_entry(struct cpuprof *c, const struct entry *e)
{
	const struct py_process *p = seen_get(&c->seen, (pid_t)e->pid);
	struct profile *prof = e->leaf ? c->ops.wait_profile_for(p, c->ops.ctx)
				       : c->ops.profile_for(p, c->ops.ctx);
	const struct sampler_stack *st = e->st;
	uint32_t locs[PYRO_MAX_FRAMES + 4], n = 0;
	char thread[PYRO_COMM_LEN + 1] = {}, process[PYRO_COMM_LEN + 1] = {};
	bool ok = false;

	if (!prof)
		return;
	memcpy(thread, e->comm, PYRO_COMM_LEN);
	text_sanitize(thread);
	snprintf(process, sizeof(process), "%s", p ? p->comm : thread);
	text_sanitize(process);
	if (e->leaf)
		locs[n++] = pseudo_frame(prof, e->leaf);
	if (st && st->flags & PYRO_STACK_GC)
		locs[n++] = pseudo_frame(prof, "[gc]");
	if (!st)
		locs[n++] = pseudo_frame(prof, "[stack lost]");
	else if (!p)
		locs[n++] = pseudo_frame(prof, "[unknown process]");
	else
		/* Resolved: walked and symbolized without a failure. A thread with no Python
		 * frames (start-up, a native thread) is resolved: that is what it was doing. */
		ok = symbolize_stack(c, prof, p, st, locs, &n) &&
		     !(st->flags & PYRO_STACK_READ_ERROR);
	if (st && st->flags & PYRO_STACK_TRUNCATED)
		locs[n++] = pseudo_frame(prof, "[truncated]");
	if (st && stack_note(st))
		locs[n++] = pseudo_frame(prof, stack_note(st));
	if (prof->weighted) /* a CPU sample weighs its period there */
		profile_add_weighted(prof, (int)e->pid, (int)e->tid, process, thread, locs, n,
				     e->count, e->weight ? e->weight : e->count * prof->period_ns);
	else
		profile_add(prof, (int)e->pid, (int)e->tid, process, thread, locs, n, e->count);
	if (ok && !e->leaf)
		c->totals.resolved += e->count;
}

static void on_sample(const struct pyro_sample_key *k, const struct pyro_sample_value *v,
		      const struct sampler_stack *st, void *ctx)
{
	struct entry e = {
		.pid = k->pid, .tid = k->tid, .comm = v->comm, .st = st, .count = v->count
	};
	struct cpuprof *c = ctx;

	c->totals.samples += v->count;
	add_entry(c, &e);
}

static void on_wait(const struct pyro_wait_key *k, const struct pyro_wait_value *v,
		    const struct sampler_stack *st, void *ctx)
{
	struct entry e = { .pid = k->pid,
			   .tid = k->tid,
			   .comm = v->comm,
			   .st = st,
			   .leaf = k->reason == PYRO_WAIT_GIL ? "[gil]" : "[off-cpu]",
			   .count = v->count,
			   .weight = v->ns };
	struct cpuprof *c = ctx;

	if (k->reason == PYRO_WAIT_GIL)
		c->totals.gil_ns += v->ns;
	else
		c->totals.off_cpu_ns += v->ns;
	add_entry(c, &e);
}

int cpuprof_drain(struct cpuprof *c)
{
	if (!c->sampler)
		return 0; /* CPU profiles are off (the daemon goes on without them) */
	symbolizer_next_generation(c->sym);
	return sampler_drain(c->sampler, on_sample, c->ops.wait_profile_for ? on_wait : NULL, c);
}

void cpuprof_totals(struct cpuprof *c, struct cpuprof_totals *t)
{
	struct sampler_stats st;

	*t = c->totals;
	if (!c->sampler)
		return;
	sampler_stats(c->sampler, &st);
	t->lost =
		st.kernel[PYRO_CPU_STACKS_FULL] + st.kernel[PYRO_CPU_COUNTS_FULL] + st.lost_stacks;
}
