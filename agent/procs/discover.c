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

#include "base/bpfstats.h"
#include "procs/cgroup_ids.h"
#include "base/clock.h"
#include "base/evloop.h"
#include "discover.skel.h"
#include "python/elf_file.h"
#include "base/log.h"
#include "pyrometer.h"
#include "base/rootfs.h"
#include "procs/service.h"

/* One inspected binary, Python or not, keyed by the file it is. A file replaced in place
 * (same inode, new contents) is noticed by its size and mtime. */
struct bin_entry {
	struct bin_entry *next;
	uint32_t dev_major, dev_minor;
	uint64_t inode, size;
	struct timespec mtime;
	int64_t load_delta; /* p_vaddr - p_offset of the segment mapped at file offset 0 */
	struct py_binary bin;
};

#define BIN_BUCKETS 1024
#define PROC_BUCKETS 4096
/* Non-Python binaries are cached too (bash is exec'd often); past this many the cache is
 * emptied of them. Python entries stay: processes point at them. */
#define BIN_CACHE_MAX 8192
/* An executable linked against libpython maps it only when ld.so runs, after exec: look
 * again at these delays (ms after the exec event). */
static const int retry_delays_ms[] = { 2, 10, 30, 80, 180 };
#define RETRIES_MAX 1024

struct proc_node {
	struct proc_node *next;
	struct py_process p;
};

struct retry {
	pid_t pid;
	int attempt;
	uint64_t due_ms;
	uint64_t exec_ktime;
};

struct discover {
	struct discover_ops ops;
	struct bin_entry *bins[BIN_BUCKETS];
	size_t nbins;
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
};

static uint64_t now_ms(void)
{
	return monotonic_ns() / 1000000;
}

int discover__new(const struct discover_ops *ops, struct evloop *loop, struct discover **out)
{
	struct discover *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->ops = *ops;
	d->loop = loop;
	*out = d;
	return 0;
}

static void free_bins(struct discover *d, bool python_too)
{
	size_t i;

	for (i = 0; i < BIN_BUCKETS; i++) {
		struct bin_entry **pp = &d->bins[i];

		while (*pp) {
			struct bin_entry *e = *pp;

			if (e->bin.is_python && !python_too) {
				pp = &e->next;
				continue;
			}
			*pp = e->next;
			py_binary_clear(&e->bin);
			free(e);
			d->nbins--;
		}
	}
}

void discover__free(struct discover *d)
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
	free_bins(d, true);
	free(d);
}

/* ---- binary cache ---- */

static struct bin_entry *bin_lookup(struct discover *d, const struct map_entry *m,
				    const struct stat *st)
{
	struct bin_entry *e = d->bins[m->inode % BIN_BUCKETS];

	for (; e; e = e->next)
		if (e->inode == m->inode && e->dev_major == m->dev_major &&
		    e->dev_minor == m->dev_minor && e->size == (uint64_t)st->st_size &&
		    e->mtime.tv_sec == st->st_mtim.tv_sec &&
		    e->mtime.tv_nsec == st->st_mtim.tv_nsec)
			return e;
	return NULL;
}

static int bin_inspect(struct discover *d, int fd, const struct map_entry *m,
		       struct bin_entry **out)
{
	struct elf_file *ef = NULL;
	struct bin_entry *e;
	struct stat st;
	int err;

	if (fstat(fd, &st))
		return -errno;
	e = bin_lookup(d, m, &st);
	if (e) {
		*out = e;
		return 0;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	err = elf_file__open_fd(fd, &ef);
	if (!err)
		err = py_binary_inspect(ef, &e->bin);
	if (!err && e->bin.is_python && elf_file__vaddr_delta(ef, 0, &e->load_delta))
		err = -ENOEXEC;
	elf_file__free(ef);
	if (err == -ENOEXEC && !e->bin.is_python)
		err = 0; /* not an ELF we understand: cache it as "not Python" */
	if (err) {
		py_binary_clear(&e->bin);
		free(e);
		return err;
	}
	if (d->nbins >= BIN_CACHE_MAX)
		free_bins(d, false);
	e->dev_major = m->dev_major;
	e->dev_minor = m->dev_minor;
	e->inode = m->inode;
	e->size = (uint64_t)st.st_size;
	e->mtime = st.st_mtim;
	e->next = d->bins[m->inode % BIN_BUCKETS];
	d->bins[m->inode % BIN_BUCKETS] = e;
	d->nbins++;
	*out = e;
	return 0;
}

/* ---- inspecting a process ---- */

#define MAX_CANDIDATES 8

/* A file that may hold the interpreter: the executable or a libpython*.so. */
struct candidate {
	struct map_entry m; /* its mapping at file offset 0 (or its first mapping) */
	uint64_t lowest;
	bool is_exe;
};

struct scan_ctx {
	dev_t exe_dev;
	ino_t exe_ino;
	int n;
	struct candidate c[MAX_CANDIDATES];
};

static bool is_libpython(const char *path)
{
	const char *base = strrchr(path, '/');

	return strncmp(base ? base + 1 : path, "libpython", 9) == 0;
}

static int collect_candidate(const struct map_entry *m, void *arg)
{
	struct scan_ctx *s = arg;
	bool is_exe = m->inode == s->exe_ino && makedev(m->dev_major, m->dev_minor) == s->exe_dev;
	int i;

	if (!is_exe && !is_libpython(m->path))
		return 0;
	for (i = 0; i < s->n; i++) {
		struct candidate *c = &s->c[i];

		if (c->m.inode == m->inode && c->m.dev_major == m->dev_major &&
		    c->m.dev_minor == m->dev_minor) {
			if (m->start < c->lowest)
				c->lowest = m->start;
			if (m->offset == 0 && c->m.offset != 0)
				c->m = *m;
			return 0;
		}
	}
	if (s->n == MAX_CANDIDATES)
		return 0;
	s->c[s->n].m = *m;
	s->c[s->n].lowest = m->start;
	s->c[s->n].is_exe = is_exe;
	s->n++;
	return 0;
}

static void fill_process(struct py_process *p, const struct candidate *c, const struct bin_entry *e)
{
	p->in_shared_lib = !c->is_exe;
	p->load_addr = c->lowest;
	p->bias = (int64_t)(c->m.start - c->m.offset) - e->load_delta;
	p->dev_major = c->m.dev_major;
	p->dev_minor = c->m.dev_minor;
	p->inode = c->m.inode;
	p->bin = &e->bin;
}

int discover__inspect(struct discover *d, pid_t pid, struct py_process **out)
{
	char exe[64];
	struct stat st;
	struct scan_ctx *s;
	struct py_process *p;
	struct proc_stat pst = {};
	bool wants_libpython = false;
	int i, err;

	d->stats.inspected++;
	snprintf(exe, sizeof(exe), "/proc/%d/exe", pid);
	if (stat(exe, &st))
		return -ENOENT; /* gone, or a kernel thread */
	s = calloc(1, sizeof(*s));
	p = calloc(1, sizeof(*p));
	if (!s || !p) {
		err = -ENOMEM;
		goto out;
	}
	s->exe_dev = st.st_dev;
	s->exe_ino = st.st_ino;
	p->pid = pid;
	p->seen_ns = monotonic_ns();
	if (procfs_read_root(pid, p->root, sizeof(p->root)) ||
	    procfs_for_each_map(pid, collect_candidate, s)) {
		err = -ENOENT;
		goto out;
	}
	err = -ENOENT;
	for (i = 0; i < s->n; i++) {
		struct bin_entry *e = NULL;
		char path[PATH_MAX];
		int fd, ierr;

		rootfs_path_in_root(p->root, &s->c[i].m, path, sizeof(path));
		fd = rootfs_open_mapped(pid, path, &s->c[i].m);
		if (fd < 0) {
			log_debug("pid %d: cannot open %s: %s", pid, path, strerror(-fd));
			continue;
		}
		ierr = bin_inspect(d, fd, &s->c[i].m, &e);
		close(fd);
		if (ierr) {
			d->stats.inspect_failed++;
			log_warn("pid %d: cannot inspect %s: %s", pid, path, strerror(-ierr));
			continue;
		}
		if (e->bin.is_python) {
			snprintf(p->interp_path, sizeof(p->interp_path), "%s", path);
			fill_process(p, &s->c[i], e);
			err = 0;
			break;
		}
		wants_libpython |= s->c[i].is_exe && e->bin.needs_libpython;
	}
	if (err == -ENOENT && wants_libpython)
		err = -EAGAIN;
	if (!err &&
	    (procfs_read_comm(pid, p->comm, sizeof(p->comm)) || procfs_read_stat(pid, &pst)))
		err = -ENOENT;
	p->ppid = pst.ppid;
	p->starttime = pst.starttime;
	if (!err) {
		service_of(pid, p->comm, p->service, sizeof(p->service));
		cgroup_ids_of(pid, p->container_id, p->pod_uid);
	}
out:
	free(s);
	if (err)
		free(p);
	else
		*out = p;
	return err;
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

/* Tracks p. forked: p is a child whose pid map entry the kernel copied from its parent at
 * fork. */
static void proc_add(struct discover *d, struct py_process *p, uint64_t ktime, bool forked)
{
	struct proc_node *n = calloc(1, sizeof(*n));
	struct pyro_proc_info info, old;
	bool in_map, gone;

	if (!n) {
		log_error("out of memory tracking pid %d", p->pid);
		return;
	}
	n->p = *p;
	proc_info_of(p, &info);
	in_map = d->skel && !bpf_map__lookup_elem(d->skel->maps.procs, &p->pid, sizeof(p->pid),
						  &old, sizeof(old), 0);
	if (in_map) /* a forked child's entry, copied in the kernel: keep its flags */
		info.flags = old.flags;
	n->next = d->procs[(uint32_t)p->pid % PROC_BUCKETS];
	d->procs[(uint32_t)p->pid % PROC_BUCKETS] = n;
	d->stats.tracked++;
	/* A forked child whose entry is gone already exited or exec'd: its exit or exec event
	 * is behind this one in the ring and says how (exit status included), so it is neither
	 * given its entry back nor called vanished here (under load a child that exited at once
	 * was reported "vanished"). If the map was full at its fork, that is counted and the
	 * resync it starts drops the child. */
	gone = forked && !in_map;
	if (d->skel && !gone &&
	    bpf_map__update_elem(d->skel->maps.procs, &p->pid, sizeof(p->pid), &info, sizeof(info),
				 BPF_ANY))
		log_warn("pid %d: pid map full (%d processes): it is not filtered in", p->pid,
			 PYRO_MAX_PROCS);
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

int discover__for_each(struct discover *d, int (*cb)(const struct py_process *p, void *ctx),
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

int discover__scan(struct discover *d)
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
		if (discover__inspect(d, pid, &p) == 0) {
			proc_add(d, p, 0, false);
			free(p);
		}
	}
	closedir(dir);
	return 0;
}

/* ---- live events ---- */

static void retry_schedule(struct discover *d, pid_t pid, int attempt, uint64_t ktime)
{
	struct retry *r;

	if (attempt >= (int)(sizeof(retry_delays_ms) / sizeof(retry_delays_ms[0])))
		return;
	if (d->nretries == RETRIES_MAX) {
		d->stats.retries_dropped++;
		return;
	}
	r = &d->retries[d->nretries++];
	r->pid = pid;
	r->attempt = attempt;
	r->exec_ktime = ktime;
	r->due_ms = now_ms() + (uint64_t)retry_delays_ms[attempt];
}

static void examine_exec(struct discover *d, pid_t pid, uint64_t ktime, int attempt)
{
	struct py_process *p;
	int err = discover__inspect(d, pid, &p);

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
		/* Queued before a scan that already saw the new image: nothing changed. */
		known = *proc_slot(d, (pid_t)e->pid);
		if (known && known->p.seen_ns > e->ktime_ns)
			break;
		proc_remove(d, (pid_t)e->pid, DISCOVER_EXECED, 0, e->ktime_ns);
		examine_exec(d, (pid_t)e->pid, e->ktime_ns, 0);
		break;
	case PYRO_PROC_FORK:
		on_fork(d, e);
		break;
	case PYRO_PROC_EXIT:
		proc_remove(d, (pid_t)e->pid, DISCOVER_EXITED, e->exit_code, e->ktime_ns);
		break;
	}
	return 0;
}

int discover__start_live(struct discover *d)
{
	int err;

	d->skel = discover_bpf__open_and_load();
	if (!d->skel) {
		err = -errno;
		log_error("cannot load the discovery BPF programs: %s (needs Linux 5.8+ with BTF)",
			  strerror(-err));
		return err;
	}
	err = discover_bpf__attach(d->skel);
	if (err) {
		log_error("cannot attach to sched_process_exec/fork/exit: %s", strerror(-err));
		return err;
	}
	err = evloop__add_ring(d->loop, bpf_map__fd(d->skel->maps.proc_events), handle_event, d);
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

	discover__stats(d, &st);
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
	discover__for_each(d, drop_if_gone, d);
	discover__scan(d);
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
	if (n && evloop__consume(d->loop) < 0)
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

int discover__poll(struct discover *d, int timeout_ms)
{
	int wait, err;

	if (!d->live)
		return -EINVAL;
	d->handled = 0;
	wait = next_retry_ms(d);
	if (wait < 0 || (timeout_ms >= 0 && timeout_ms < wait))
		wait = timeout_ms;
	err = evloop__poll(d->loop, wait);
	if (err < 0 && err != -EINTR)
		return err;
	run_due_retries(d);
	resync(d);
	sweep(d);
	return err == -EINTR ? -EINTR : d->handled;
}

const struct py_process *discover__get(struct discover *d, pid_t pid)
{
	struct proc_node *n = *proc_slot(d, pid);

	return n ? &n->p : NULL;
}

int discover__set_flags(struct discover *d, pid_t pid, uint32_t flags)
{
	struct pyro_proc_info info;

	if (!d->skel)
		return -EINVAL;
	if (bpf_map__lookup_elem(d->skel->maps.procs, &pid, sizeof(pid), &info, sizeof(info), 0))
		return -ENOENT;
	info.flags = flags;
	return bpf_map__update_elem(d->skel->maps.procs, &pid, sizeof(pid), &info, sizeof(info),
				    BPF_EXIST);
}

int discover__procs_map_fd(const struct discover *d)
{
	return d->skel ? bpf_map__fd(d->skel->maps.procs) : -1;
}

void discover__stats(const struct discover *d, struct discover_stats *st)
{
	*st = d->stats;
	if (!d->skel)
		return;
	bpfstats_percpu_sum(d->skel->maps.discover_counters, PYRO_DISC_COUNTER_MAX, st->kernel);
}
