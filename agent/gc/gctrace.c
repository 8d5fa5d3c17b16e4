// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "gc/gctrace.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "base/kernel.h"
#include "base/bpfstats.h"
#include "base/clock.h"
#include "procs/discover.h"
#include "python/elf_file.h"
#include "gc.skel.h"
#include "base/log.h"
#include "base/rootfs.h"
#include "gc/uprobes.h"
#include "gc/gctrace_impl.h"

int gctrace_new(const struct gctrace_opts *o, struct gctrace **out)
{
	struct gctrace *g;
	int err = kernel_require(KERNEL_CAP_GC, "GC pauses");

	if (err)
		return err;
	if (!(g = calloc(1, sizeof(*g))))
		return -ENOMEM;
	g->linger_ns = o->linger_ns;
	g->skel = gc_bpf__open();
	if (!g->skel) {
		err = -errno;
		goto fail;
	}
	g->skel->rodata->gc_all = o->all;
	g->skel->data->slow_ns = o->slow_ns; /* initialised, so in .data */
	err = bpf_map__reuse_fd(g->skel->maps.procs, o->procs_fd);
	if (!err)
		err = gc_bpf__load(g->skel);
	if (err) {
		log_error("cannot load the GC tracing BPF program: %s", strerror(-err));
		kernel_refused(KERNEL_CAP_GC, err);
		goto fail;
	}
	*out = g;
	return 0;
fail:
	gctrace_free(g);
	return err;
}

static void detach(struct gctrace *g, struct gc_binary *b)
{
	for (int i = 0; i < b->nlinks; i++)
		bpf_link__destroy(b->links[i]);
	g->stats.uprobes -= (uint64_t)b->nlinks;
	b->nlinks = 0;
}

int gctrace_hand_over(struct gctrace *g)
{
	int fds[GC_MAX_UPROBES], n = 0, err;
	struct gc_binary *b;

	for (b = g->bins; b; b = b->next)
		for (int i = 0; i < b->nlinks && n < GC_MAX_UPROBES; i++)
			fds[n++] = bpf_link__fd(b->links[i]);
	err = uprobes_hand_over(fds, n);
	if (err)
		return err;
	/* the broker holds them now: ours are closed by our exit, which removes nothing */
	for (b = g->bins; b; b = b->next)
		for (int i = 0; i < b->nlinks; i++)
			bpf_link__disconnect(b->links[i]);
	return 0;
}

void gctrace_free(struct gctrace *g)
{
	if (!g)
		return;
	while (g->bins) {
		struct gc_binary *b = g->bins;

		g->bins = b->next;
		detach(g, b);
		free(b);
	}
	gc_bpf__destroy(g->skel);
	free(g->ret);
	free(g);
}

static struct gc_binary **find(struct gctrace *g, uint32_t major, uint32_t minor, uint64_t inode)
{
	struct gc_binary **pp = &g->bins;

	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->inode == inode && (*pp)->dev_major == major && (*pp)->dev_minor == minor)
			break;
	return pp;
}

/* Makes room under GC_MAX_UPROBES by detaching the binary idle the longest. */
static bool make_room(struct gctrace *g, int needed)
{
	while (g->stats.uprobes + (uint64_t)needed > GC_MAX_UPROBES) {
		struct gc_binary *b, *oldest = NULL;

		for (b = g->bins; b; b = b->next)
			if (!b->refs && !b->pinned && b->nlinks &&
			    (!oldest || b->idle_since < oldest->idle_since))
				oldest = b;
		if (!oldest)
			return false;
		detach(g, oldest);
		oldest->err = -ENOSPC;
		oldest->failed_at = 0; /* may come back at once if used again */
		snprintf(oldest->why, sizeof(oldest->why), "detached to make room");
	}
	return true;
}

static int attach_probe(struct gctrace *g, struct gc_binary *b, int fd, const struct py_binary *bin,
			const char *name, struct bpf_program *prog)
{
	int i, err;

	for (i = 0; i < bin->nprobes; i++) {
		const struct usdt_probe *site = &bin->probes[i];
		uint64_t cookie;

		if (strcmp(site->name, name))
			continue;
		if (b->nlinks == (int)(sizeof(b->links) / sizeof(b->links[0])))
			return -E2BIG;
		if ((err = uprobes_arg_cookie(site, 0, &cookie)))
			return err;
		if ((err = uprobes_attach(prog, fd, site, cookie, &b->links[b->nlinks])))
			return err;
		b->nlinks++;
		g->stats.uprobes++;
	}
	return 0;
}

/* Attaches both probes at every site of the binary open as fd: one uprobe per site serves
 * every process of that file. */
static int attach(struct gctrace *g, struct gc_binary *b, int fd, const struct py_binary *bin)
{
	int needed =
		py_binary_probe_sites(bin, "gc__start") + py_binary_probe_sites(bin, "gc__done");
	int err;

	g->stats.sites_dropped +=
		bin->sites.duplicate + bin->sites.outside_exec + bin->sites.over_limit;
	if (!make_room(g, needed)) {
		g->stats.refused++;
		snprintf(b->why, sizeof(b->why), "the limit of %d GC uprobes is reached",
			 GC_MAX_UPROBES);
		return -ENOSPC;
	}
	err = attach_probe(g, b, fd, bin, "gc__start", g->skel->progs.on_gc_start);
	if (!err)
		err = attach_probe(g, b, fd, bin, "gc__done", g->skel->progs.on_gc_done);
	if (err) {
		detach(g, b);
		snprintf(b->why, sizeof(b->why), "attaching gc__start/gc__done failed: %s",
			 strerror(-err));
	}
	return err;
}

static struct gc_binary *binary_of(struct gctrace *g, uint32_t major, uint32_t minor,
				   uint64_t inode)
{
	struct gc_binary **slot = find(g, major, minor, inode), *b = *slot;

	if (b)
		return b;
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->dev_major = major;
	b->dev_minor = minor;
	b->inode = inode;
	b->err = -EAGAIN; /* not attached yet */
	*slot = b;
	return b;
}

/* Does b need an attach attempt now (never tried, or failed long enough ago)? */
static bool due(const struct gc_binary *b)
{
	return b->err &&
	       (b->err == -EAGAIN || !b->failed_at || monotonic_ns() - b->failed_at >= GC_RETRY_NS);
}

/* Attaches b using the binary open as fd (or fd's negative errno). */
static int ensure_attached(struct gctrace *g, struct gc_binary *b, const struct py_binary *bin,
			   int fd)
{
	uint64_t now = monotonic_ns();

	b->err = fd < 0 ? fd : attach(g, b, fd, bin);
	if (fd < 0)
		snprintf(b->why, sizeof(b->why), "its binary could not be opened: %s",
			 strerror(-fd));
	if (b->err) {
		b->failed_at = now ? now : 1;
		g->stats.attach_failed++;
	} else {
		g->stats.attached++;
		b->why[0] = '\0';
	}
	return b->err;
}

int gctrace_track(struct gctrace *g, const struct py_process *p)
{
	struct gc_binary *b;
	int fd = -1, err;

	if (!p->bin->caps.gc)
		return -ENOTSUP;
	b = binary_of(g, p->dev_major, p->dev_minor, p->inode);
	if (!b)
		return -ENOMEM;
	b->refs++;
	if (!b->err)
		return 0;
	if (!due(b))
		return b->err; /* said when it failed; not again for every process */
	{
		/* opened inside p's root and checked against the inode p maps; the kernel is
		 * given /proc/self/fd/N, so nothing resolves the path again */
		fd = rootfs_open_verified(p->pid, p->interp_path, p->dev_major, p->dev_minor,
					  p->inode);
		err = ensure_attached(g, b, p->bin, fd);
		if (fd >= 0)
			close(fd);
		if (err) {
			log_warn("pid %d: GC tracing unavailable for %s: %s", p->pid,
				 p->interp_path, b->why);
			return err;
		}
		log_debug("attached GC probes to %s (for pid %d)", p->interp_path, p->pid);
	}
	return 0;
}

void gctrace_untrack(struct gctrace *g, const struct py_process *p)
{
	struct gc_binary *b = *find(g, p->dev_major, p->dev_minor, p->inode);

	if (b && b->refs > 0 && --b->refs == 0)
		b->idle_since = monotonic_ns();
}

void gctrace_expire(struct gctrace *g)
{
	uint64_t now = monotonic_ns();
	struct gc_binary **pp = &g->bins, *b;

	while ((b = *pp)) {
		if (b->refs || b->pinned || (!b->err && now - b->idle_since < g->linger_ns)) {
			pp = &b->next;
			continue;
		}
		*pp = b->next;
		detach(g, b);
		free(b);
	}
}

int gctrace_status(struct gctrace *g, const struct py_process *p, const char **reason,
		   const char **why)
{
	struct gc_binary *b;

	if (!p->bin->caps.gc) {
		*reason = p->bin->caps.no_gc_label;
		*why = p->bin->caps.no_gc;
		return 0;
	}
	b = *find(g, p->dev_major, p->dev_minor, p->inode);
	if (b && !b->err)
		return 1;
	*reason = b && b->err == -ENOSPC ? "uprobe_limit" : "attach_failed";
	*why = b && b->why[0] ? b->why : "not attached";
	return 0;
}

int gctrace_pin_file(struct gctrace *g, const char *path)
{
	struct py_binary bin = { 0 };
	struct elf_file *ef = NULL;
	struct gc_binary *b;
	struct stat st;
	int fd, err;

	/* O_NONBLOCK: a FIFO planted at the path must not block us; only regular files */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EBADF;
	}
	b = *find(g, major(st.st_dev), minor(st.st_dev), st.st_ino);
	if (b && (!b->err || !due(b))) {
		b->pinned = true;
		close(fd);
		return b->err;
	}
	err = elf_file_open_fd(fd, &ef);
	if (!err)
		err = py_binary_inspect(ef, &bin);
	if (!err && !bin.caps.gc)
		err = -ENOTSUP;
	if (!err && !(b = binary_of(g, major(st.st_dev), minor(st.st_dev), st.st_ino)))
		err = -ENOMEM;
	if (!err) {
		b->pinned = true;
		err = ensure_attached(g, b, &bin, fd);
		if (err)
			log_warn("cannot attach the GC probes of %s: %s", path, b->why);
		else
			log_debug("attached GC probes to %s (installed)", path);
	}
	py_binary_clear(&bin);
	elf_file_free(ef);
	close(fd);
	return err;
}

void gctrace_set_linger_ns(struct gctrace *g, uint64_t linger_ns)
{
	g->linger_ns = linger_ns;
}

void gctrace_set_slow_ns(struct gctrace *g, uint64_t slow_ns)
{
	/* .data is mapped into our memory: the program sees the store at once */
	g->skel->data->slow_ns = slow_ns;
}

int gctrace_events_fd(const struct gctrace *g)
{
	return bpf_map__fd(g->skel->maps.gc_events);
}

int gctrace_for_each(struct gctrace *g,
		     void (*cb)(const struct pyro_gc_key *k, const struct pyro_gc_stats *st,
				void *ctx),
		     void *ctx)
{
	struct pyro_gc_key key, next;
	struct pyro_gc_stats st;
	int err;

	for (err = bpf_map__get_next_key(g->skel->maps.gc_stats, NULL, &next, sizeof(next)); !err;
	     err = bpf_map__get_next_key(g->skel->maps.gc_stats, &key, &next, sizeof(next))) {
		key = next;
		if (!bpf_map__lookup_elem(g->skel->maps.gc_stats, &key, sizeof(key), &st,
					  sizeof(st), 0))
			cb(&key, &st, ctx);
	}
	return err == -ENOENT ? 0 : err;
}

int gctrace_for_each_bucket(struct gctrace *g,
			    void (*cb)(const struct pyro_gc_hist_key *k, uint64_t n, void *ctx),
			    void *ctx)
{
	struct pyro_gc_hist_key key, next;
	uint64_t n;
	int err;

	for (err = bpf_map__get_next_key(g->skel->maps.gc_hist, NULL, &next, sizeof(next)); !err;
	     err = bpf_map__get_next_key(g->skel->maps.gc_hist, &key, &next, sizeof(next))) {
		key = next;
		if (key.bucket < PYRO_GC_BUCKETS &&
		    !bpf_map__lookup_elem(g->skel->maps.gc_hist, &key, sizeof(key), &n, sizeof(n),
					  0))
			cb(&key, n, ctx);
	}
	return err == -ENOENT ? 0 : err;
}

int gctrace_process(struct gctrace *g, uint32_t pid,
		    void (*cb)(const struct pyro_gc_key *k, const struct pyro_gc_stats *st,
			       const uint64_t *hist, void *ctx),
		    void *ctx)
{
	struct pyro_gc_key key, next, mine[PYRO_GC_MAX_GENERATIONS];
	uint64_t hist[PYRO_GC_BUCKETS];
	struct pyro_gc_stats st;
	int n = 0, err;

	/* the keys first: the histogram walks below would restart this walk */
	for (err = bpf_map__get_next_key(g->skel->maps.gc_stats, NULL, &next, sizeof(next)); !err;
	     err = bpf_map__get_next_key(g->skel->maps.gc_stats, &key, &next, sizeof(next))) {
		key = next;
		if (key.pid == pid && n < PYRO_GC_MAX_GENERATIONS)
			mine[n++] = key;
	}
	for (int i = 0; i < n; i++)
		if (!bpf_map__lookup_elem(g->skel->maps.gc_stats, &mine[i], sizeof(mine[i]), &st,
					  sizeof(st), 0) &&
		    !gctrace_histogram(g, &mine[i], hist))
			cb(&mine[i], &st, hist, ctx);
	return err == -ENOENT ? 0 : err;
}

int gctrace_histogram(struct gctrace *g, const struct pyro_gc_key *k, uint64_t *counts)
{
	struct pyro_gc_hist_key key, next;
	uint64_t n;
	int err;

	memset(counts, 0, PYRO_GC_BUCKETS * sizeof(*counts));
	for (err = bpf_map__get_next_key(g->skel->maps.gc_hist, NULL, &next, sizeof(next)); !err;
	     err = bpf_map__get_next_key(g->skel->maps.gc_hist, &key, &next, sizeof(next))) {
		key = next;
		if (key.pid != k->pid || key.generation != k->generation ||
		    key.bucket >= PYRO_GC_BUCKETS)
			continue;
		if (!bpf_map__lookup_elem(g->skel->maps.gc_hist, &key, sizeof(key), &n, sizeof(n),
					  0))
			counts[key.bucket] = n;
	}
	return err == -ENOENT ? 0 : err;
}

void gctrace_stats(struct gctrace *g, struct gctrace_stats *st)
{
	struct gc_binary *b;

	*st = g->stats;
	st->binaries = 0;
	for (b = g->bins; b; b = b->next)
		st->binaries += !b->err;
	bpfstats_percpu_sum(g->skel->maps.gc_counters, PYRO_GC_COUNTER_MAX, st->kernel);
}

void gctrace_prog_stats(struct gctrace *g, uint64_t *run_ns, uint64_t *run_cnt)
{
	*run_ns = *run_cnt = 0;
	bpfstats_prog_runs(g->skel->progs.on_gc_start, run_ns, run_cnt);
	bpfstats_prog_runs(g->skel->progs.on_gc_done, run_ns, run_cnt);
}
