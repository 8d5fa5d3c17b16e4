// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "procs/discover.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/types.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "base/bpfload.h"
#include "base/bpfstats.h"
#include "procs/bincache.h"
#include "procs/cgroup_ids.h"
#include "procs/inspect.h"
#include "base/clock.h"
#include "base/evloop.h"
#include "discover.skel.h"
#include "python/elf_file.h"
#include "base/log.h"
#include "pyrometer.h"
#include "base/rootfs.h"
#include "procs/service.h"

#define PROC_BUCKETS 4096
/* An executable linked against libpython maps it only when ld.so runs, after exec: look
 * again at these delays (ms after the exec event). */
static const int retry_delays_ms[] = { 2, 10, 30, 80, 180 };
#define RETRIES_MAX 1024
/* A pid is looked at on a hint (discover_look) at most once per LOOK_INTERVAL_MS. */
#define LOOK_INTERVAL_MS 1000
#define LOOK_SLOTS 256

struct proc_node {
	struct proc_node *next;
	struct py_process p;
	uint32_t flags; /* what its pid map entry carries (discover_set_flags) */
};

struct retry {
	pid_t pid;
	int attempt;
	uint64_t due_ms;
	uint64_t exec_ktime;
};

struct discover {
	struct discover_ops ops;
	struct bincache *bins;
	struct proc_node *procs[PROC_BUCKETS];
	struct retry retries[RETRIES_MAX];
	int nretries;
	struct discover_bpf *skel;
	struct evloop *loop; /* borrowed: serves our ring among others */
	bool live;
	struct discover_stats stats;
	uint64_t lost_seen; /* ring-buffer-full counts already recovered from */
	int handled;	    /* events handled in the current poll */
	uint64_t next_sweep_ms;
	struct {
		pid_t pid;
		uint64_t ms;
	} looked[LOOK_SLOTS]; /* when a hint last made us look at a pid, by pid % slots */
};

static uint64_t now_ms(void)
{
	return monotonic_ns() / 1000000;
}

int discover_new(const struct discover_ops *ops, struct evloop *loop, struct discover **out)
{
	struct discover *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->ops = *ops;
	d->loop = loop;
	if (bincache_new(&d->bins)) {
		free(d);
		return -ENOMEM;
	}
	*out = d;
	return 0;
}

void discover_free(struct discover *d)
{
	size_t i;

	if (!d)
		return;
	discover_bpf__destroy(d->skel);
	for (i = 0; i < PROC_BUCKETS; i++) {
		while (d->procs[i]) {
			struct proc_node *n = d->procs[i];

			d->procs[i] = n->next;
			free(n);
		}
	}
	bincache_free(d->bins);
	free(d);
}

int discover_inspect(struct discover *d, pid_t pid, struct py_process **out)
{
	d->stats.inspected++;
	return inspect_process(d->bins, pid, out, &d->stats.inspect_failed);
}

/* ---- the process table ---- */

static struct proc_node **proc_slot(struct discover *d, pid_t pid)
{
	struct proc_node **pp = &d->procs[(uint32_t)pid % PROC_BUCKETS];

	while (*pp && (*pp)->p.pid != pid)
		pp = &(*pp)->next;
	return pp;
}

static void proc_remove(struct discover *d, pid_t pid, enum discover_exit_why why, int code,
			uint64_t ktime)
{
	struct proc_node **pp = proc_slot(d, pid), *n = *pp;

	if (!n)
		return;
	*pp = n->next;
	d->stats.tracked--;
	if (d->skel)
		bpf_map__delete_elem(d->skel->maps.procs, &pid, sizeof(pid), 0);
	if (d->ops.on_exit)
		d->ops.on_exit(&n->p, why, code, ktime, d->ops.ctx);
	free(n);
}

/* Is pid still the process that started at starttime, and not a zombie? */
static bool still_alive(pid_t pid, uint64_t starttime)
{
	struct proc_stat st;

	return procfs_read_stat(pid, &st) == 0 && st.starttime == starttime && st.state != 'Z' &&
	       st.state != 'X';
}

/* The pid map entry: how the BPF programs read this process. */
static void proc_info_of(const struct py_process *p, struct pyro_proc_info *info)
{
	memset(info, 0, sizeof(*info));
	if (!p->bin->layout.ok)
		return; /* frames_kind NONE: tracked, not sampled */
	info->layout = p->bin->layout.bpf;
	info->layout.runtime_addr += (uint64_t)p->bias;
}

/* Puts n's pid map entry: its layout, with the flags it carries. */
static void put_entry(struct discover *d, const struct proc_node *n)
{
	struct pyro_proc_info info;

	if (!d->skel)
		return;
	proc_info_of(&n->p, &info);
	info.flags = n->flags;
	if (bpf_map__update_elem(d->skel->maps.procs, &n->p.pid, sizeof(n->p.pid), &info,
				 sizeof(info), BPF_ANY))
		log_warn("pid %d: pid map full (%d processes): it is not filtered in", n->p.pid,
			 PYRO_MAX_PROCS);
}

/* Tracks p. forked: p is a child whose pid map entry the kernel copied from its parent at
 * fork. */
static void proc_add(struct discover *d, struct py_process *p, uint64_t ktime, bool forked)
{
	struct proc_node *n = calloc(1, sizeof(*n));
	struct pyro_proc_info old;
	bool in_map, gone;

	if (!n) {
		log_error("out of memory tracking pid %d", p->pid);
		return;
	}
	n->p = *p;
	in_map = d->skel && !bpf_map__lookup_elem(d->skel->maps.procs, &p->pid, sizeof(p->pid),
						  &old, sizeof(old), 0);
	if (in_map) /* a forked child's entry, copied in the kernel: keep its flags */
		n->flags = old.flags;
	n->next = d->procs[(uint32_t)p->pid % PROC_BUCKETS];
	d->procs[(uint32_t)p->pid % PROC_BUCKETS] = n;
	d->stats.tracked++;
	/* A forked child whose entry is gone already exited or exec'd: its exit or exec event
	 * is behind this one in the ring and says how (exit status included), so it is neither
	 * given its entry back nor called vanished here (under load a child that exited at once
	 * was reported "vanished"). If the map was full at its fork, that is counted and the
	 * resync it starts drops the child. */
	gone = forked && !in_map;
	if (!gone)
		put_entry(d, n);
	if (d->ops.on_start)
		d->ops.on_start(&n->p, ktime, d->ops.ctx);
	/* If it exited before it was in the pid map, the kernel sent no exit event: look. */
	if (d->skel && !gone && !still_alive(p->pid, p->starttime))
		proc_remove(d, p->pid, DISCOVER_VANISHED, 0, 0);
}

static int by_pid(const void *a, const void *b)
{
	pid_t x = (*(struct py_process *const *)a)->pid, y = (*(struct py_process *const *)b)->pid;

	return (x > y) - (x < y);
}

int discover_for_each(struct discover *d, int (*cb)(const struct py_process *p, void *ctx),
		      void *ctx)
{
	struct py_process **all = NULL;
	size_t n = 0, cap = 0, i;
	int ret = 0;

	for (i = 0; i < PROC_BUCKETS; i++) {
		struct proc_node *node;

		for (node = d->procs[i]; node; node = node->next) {
			if (n == cap) {
				struct py_process **g;

				cap = cap ? cap * 2 : 64;
				g = realloc(all, cap * sizeof(*all));
				if (!g) {
					free(all);
					return -ENOMEM;
				}
				all = g;
			}
			all[n++] = &node->p;
		}
	}
	qsort(all, n, sizeof(*all), by_pid);
	for (i = 0; i < n && !ret; i++)
		ret = cb(all[i], ctx);
	free(all);
	return ret;
}

/* ---- /proc scan ---- */

int discover_scan(struct discover *d)
{
	struct dirent *de;
	DIR *dir = opendir("/proc");

	if (!dir)
		return -errno;
	while ((de = readdir(dir))) {
		struct py_process *p;
		pid_t pid;

		if (!procfs_is_pid(de->d_name, &pid) || *proc_slot(d, pid))
			continue;
		if (discover_inspect(d, pid, &p) == 0) {
			proc_add(d, p, 0, false);
			free(p);
		}
	}
	closedir(dir);
	return 0;
}

/* ---- live events ---- */

#define RETRY_ATTEMPTS ((int)(sizeof(retry_delays_ms) / sizeof(retry_delays_ms[0])))

static void retry_add(struct discover *d, pid_t pid, int attempt, uint64_t ktime, uint64_t due)
{
	struct retry *r;

	if (d->nretries == RETRIES_MAX) {
		d->stats.retries_dropped++;
		return;
	}
	r = &d->retries[d->nretries++];
	r->pid = pid;
	r->attempt = attempt;
	r->exec_ktime = ktime;
	r->due_ms = due;
}

static void retry_schedule(struct discover *d, pid_t pid, int attempt, uint64_t ktime)
{
	if (attempt < RETRY_ATTEMPTS)
		retry_add(d, pid, attempt, ktime, now_ms() + (uint64_t)retry_delays_ms[attempt]);
}

static bool retry_pending(const struct discover *d, pid_t pid)
{
	for (int i = 0; i < d->nretries; i++)
		if (d->retries[i].pid == pid)
			return true;
	return false;
}

static void examine_exec(struct discover *d, pid_t pid, uint64_t ktime, int attempt)
{
	struct py_process *p;
	int err = discover_inspect(d, pid, &p);

	if (err == 0) {
		proc_add(d, p, ktime, false);
		free(p);
	} else if (err == -EAGAIN) {
		retry_schedule(d, pid, attempt, ktime);
	}
}

static void on_fork(struct discover *d, const struct pyro_proc_event *e)
{
	struct proc_node *parent = *proc_slot(d, (pid_t)e->ppid);
	struct py_process child;
	struct proc_stat pst;

	if (!parent || *proc_slot(d, (pid_t)e->pid))
		return;
	/* Same image as the parent: no need to read its maps. */
	child = parent->p;
	child.pid = (pid_t)e->pid;
	child.ppid = (pid_t)e->ppid;
	/* What we know of the child holds as of its fork, not now: read late (under load),
	 * after the child has exec'd, a later time here would make its exec events look
	 * already seen, and the child would keep its parent's layout. */
	child.seen_ns = e->ktime_ns;
	memcpy(child.comm, e->comm, sizeof(child.comm));
	child.comm[sizeof(child.comm) - 1] = '\0';
	child.starttime = procfs_read_stat(child.pid, &pst) ? 0 : pst.starttime;
	proc_add(d, &child, e->ktime_ns, true);
}

void discover_look(struct discover *d, pid_t pid, uint64_t ktime)
{
	uint64_t tracked_before = d->stats.tracked, now = now_ms();
	typeof(d->looked[0]) *slot = &d->looked[(uint32_t)pid % LOOK_SLOTS];
	struct proc_node *parent;
	struct proc_stat st;

	if (*proc_slot(d, pid) || retry_pending(d, pid))
		return; /* Python already, or a look is due */
	if (slot->pid == pid && now < slot->ms + LOOK_INTERVAL_MS)
		return; /* the hints of a busy pid (each of its imports) cost one read a second */
	slot->pid = pid;
	slot->ms = now;
	/* A tracked process's child still running its parent's image (same stack top: it has
	 * not exec'd) is reported by its fork event, which may be behind this hint (another
	 * ring): taken from its parent there, it keeps its GC figures whole (a uWSGI worker
	 * looked at on an import before its fork event lost collections). */
	if (!procfs_read_stat(pid, &st) && (parent = *proc_slot(d, st.ppid)) && st.startstack &&
	    st.startstack == parent->p.startstack)
		return;
	d->stats.notes++;
	examine_exec(d, pid, ktime, RETRY_ATTEMPTS);
	if (d->stats.tracked > tracked_before)
		d->stats.notes_found++;
}

static int handle_event(void *ctx, void *data, size_t len)
{
	struct discover *d = ctx;
	const struct pyro_proc_event *e = data;
	struct proc_node *known;

	if (len < sizeof(*e))
		return 0;
	d->handled++;
	switch (e->kind) {
	case PYRO_PROC_EXEC:
		/* Queued before a look that already saw the new image: nothing changed. A look
		 * can see it before the exec's event is stamped (the exec switches the image,
		 * then finishes): the image's stack top tells it too. */
		known = *proc_slot(d, (pid_t)e->pid);
		if (known && (known->p.seen_ns > e->ktime_ns ||
			      (e->start_stack && known->p.startstack == e->start_stack))) {
			put_entry(d, known); /* the exec tracepoint deleted it */
			break;
		}
		proc_remove(d, (pid_t)e->pid, DISCOVER_EXECED, 0, e->ktime_ns);
		examine_exec(d, (pid_t)e->pid, e->ktime_ns, 0);
		break;
	case PYRO_PROC_FORK:
		on_fork(d, e);
		break;
	case PYRO_PROC_EXIT:
		proc_remove(d, (pid_t)e->pid, DISCOVER_EXITED, e->exit_code, e->ktime_ns);
		break;
	case PYRO_PROC_NOTE: /* bpf/cpu.bpf.c, note_untracked: new mappings, maybe libpython */
		discover_look(d, (pid_t)e->pid, e->ktime_ns);
		break;
	}
	return 0;
}

int discover_start_live(struct discover *d)
{
	int err;

	d->skel = discover_bpf__open();
	err = d->skel ? bpfload_done(d->skel->obj, "discover", discover_bpf__load(d->skel))
		      : -errno;
	if (err) {
		log_error("cannot load the discovery BPF programs: %s (needs Linux 5.8+ with BTF)",
			  strerror(-err));
		return err;
	}
	err = discover_bpf__attach(d->skel);
	if (err) {
		log_error("cannot attach to sched_process_exec/fork/exit: %s", strerror(-err));
		return err;
	}
	err = evloop_add_ring(d->loop, bpf_map__fd(d->skel->maps.proc_events), handle_event, d);
	if (err) {
		log_error("cannot open the process event ring buffer: %s", strerror(-err));
		return err;
	}
	d->live = true;
	return 0;
}

static void run_due_retries(struct discover *d)
{
	uint64_t now = now_ms();
	int i = 0;

	while (i < d->nretries) {
		struct retry r = d->retries[i];

		if (r.due_ms > now) {
			i++;
			continue;
		}
		d->retries[i] = d->retries[--d->nretries];
		if (!*proc_slot(d, r.pid))
			examine_exec(d, r.pid, r.exec_ktime, r.attempt + 1);
	}
}

static int next_retry_ms(const struct discover *d)
{
	uint64_t now = now_ms(), first = UINT64_MAX;
	int i;

	for (i = 0; i < d->nretries; i++)
		if (d->retries[i].due_ms < first)
			first = d->retries[i].due_ms;
	if (first == UINT64_MAX)
		return -1;
	return first <= now ? 0 : (int)(first - now);
}

static uint64_t kernel_lost(struct discover *d)
{
	struct discover_stats st;

	discover_stats(d, &st);
	return st.kernel[PYRO_DISC_RINGBUF_FULL_EXEC] + st.kernel[PYRO_DISC_RINGBUF_FULL_FORK] +
	       st.kernel[PYRO_DISC_RINGBUF_FULL_EXIT] + st.kernel[PYRO_DISC_PIDMAP_FULL];
}

static int drop_if_gone(const struct py_process *p, void *ctx)
{
	struct discover *d = ctx;

	if (!still_alive(p->pid, p->starttime))
		proc_remove(d, p->pid, DISCOVER_VANISHED, 0, 0);
	return 0;
}

/* Events were lost (ring buffer full): rebuild the picture from /proc so that no process is
 * missed or kept after it died. */
static void resync(struct discover *d)
{
	uint64_t lost = kernel_lost(d);

	if (lost == d->lost_seen)
		return;
	log_warn("%" PRIu64 " process events lost (ring buffer or pid map full): rescanning /proc",
		 lost - d->lost_seen);
	d->lost_seen = lost;
	d->stats.resyncs++;
	discover_for_each(d, drop_if_gone, d);
	discover_scan(d);
}

#define SWEEP_MS 2000

/* Takes out of the pid map the processes that are gone. A process whose exit the kernel saw
 * while user space was adding its entry (after the exit tracepoint, before it became a
 * zombie, it still looks alive) would otherwise keep an entry for good. */
static void sweep(struct discover *d)
{
	struct bpf_map *map = d->skel->maps.procs;
	pid_t key, next, gone[256];
	int n = 0, err;

	if (now_ms() < d->next_sweep_ms)
		return;
	d->next_sweep_ms = now_ms() + SWEEP_MS;
	for (err = bpf_map__get_next_key(map, NULL, &next, sizeof(next)); !err && n < 256;
	     err = bpf_map__get_next_key(map, &key, &next, sizeof(next))) {
		struct proc_stat st;

		key = next;
		if (procfs_read_stat(key, &st) || st.state == 'Z' || st.state == 'X')
			gone[n++] = key;
	}
	/* A process is a zombie only after its exit tracepoint has sent the exit event: read
	 * the ring first, so that an exit that just happened is reported as an exit with its
	 * status, not as vanished (the CI failure of test_watch_follows_forks). */
	if (n && evloop_consume(d->loop) < 0)
		log_debug("ring buffer consume failed");
	for (int i = 0; i < n; i++) {
		struct proc_node *node = *proc_slot(d, gone[i]);

		if (node)
			proc_remove(d, gone[i], DISCOVER_VANISHED, 0, 0);
		else
			bpf_map__delete_elem(map, &gone[i], sizeof(gone[i]), 0);
		d->stats.swept++;
	}
}

int discover_poll(struct discover *d, int timeout_ms)
{
	int wait, err;

	if (!d->live)
		return -EINVAL;
	d->handled = 0;
	wait = next_retry_ms(d);
	if (wait < 0 || (timeout_ms >= 0 && timeout_ms < wait))
		wait = timeout_ms;
	err = evloop_poll(d->loop, wait);
	if (err < 0 && err != -EINTR)
		return err;
	run_due_retries(d);
	resync(d);
	sweep(d);
	return err == -EINTR ? -EINTR : d->handled;
}

const struct py_process *discover_get(struct discover *d, pid_t pid)
{
	struct proc_node *n = *proc_slot(d, pid);

	return n ? &n->p : NULL;
}

int discover_set_flags(struct discover *d, pid_t pid, uint32_t flags)
{
	struct pyro_proc_info info;
	struct proc_node *n;

	if (!d->skel)
		return -EINVAL;
	if (bpf_map__lookup_elem(d->skel->maps.procs, &pid, sizeof(pid), &info, sizeof(info), 0))
		return -ENOENT;
	info.flags = flags;
	if ((n = *proc_slot(d, pid)))
		n->flags = flags;
	return bpf_map__update_elem(d->skel->maps.procs, &pid, sizeof(pid), &info, sizeof(info),
				    BPF_EXIST);
}

int discover_events_fd(const struct discover *d)
{
	return d->skel ? bpf_map__fd(d->skel->maps.proc_events) : -1;
}

int discover_procs_map_fd(const struct discover *d)
{
	return d->skel ? bpf_map__fd(d->skel->maps.procs) : -1;
}

void discover_stats(const struct discover *d, struct discover_stats *st)
{
	*st = d->stats;
	if (!d->skel)
		return;
	bpfstats_percpu_sum(d->skel->maps.discover_counters, PYRO_DISC_COUNTER_MAX, st->kernel);
}
