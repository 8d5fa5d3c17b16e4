// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "usdt/binattach.h"

#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/rootfs.h"
#include "procs/discover.h"
#include "python/elf_file.h"
#include "python/py_binary.h"
#include "python/usdt_sites.h"
#include "usdt/uprobes.h"

/* An interpreter binary and the uprobes at its probe sites. */
struct bin {
	struct bin *next;
	uint32_t dev_major, dev_minor;
	uint64_t inode;
	int refs;	     /* tracked processes running it */
	bool pinned;	     /* installed on the host: attached from start to stop */
	uint64_t idle_since; /* CLOCK_MONOTONIC ns when refs fell to 0 */
	int err;	     /* 0: attached; else why not (retried after BINATTACH_RETRY_NS) */
	uint64_t failed_at;
	uint64_t attached_at; /* CLOCK_MONOTONIC ns */
	char why[160];
	int nlinks;
	struct bpf_link *links[BINATTACH_MAX_PROBES * USDT_MAX_SITES];
};

struct binattach {
	struct binattach_opts o;
	struct bin *bins;
	struct binattach_stats stats;
};

int binattach_new(const struct binattach_opts *o, struct binattach **out)
{
	struct binattach *a;

	if (o->nprobes < 1 || o->nprobes > BINATTACH_MAX_PROBES)
		return -EINVAL;
	if (!(a = calloc(1, sizeof(*a))))
		return -ENOMEM;
	a->o = *o;
	*out = a;
	return 0;
}

static void detach(struct binattach *a, struct bin *b)
{
	for (int i = 0; i < b->nlinks; i++)
		bpf_link__destroy(b->links[i]);
	a->stats.uprobes -= (uint64_t)b->nlinks;
	b->nlinks = 0;
}

void binattach_free(struct binattach *a)
{
	if (!a)
		return;
	while (a->bins) {
		struct bin *b = a->bins;

		a->bins = b->next;
		detach(a, b);
		free(b);
	}
	free(a);
}

int binattach_hand_over(struct binattach *a)
{
	int *fds, n = 0, err;
	struct bin *b;

	if (!(fds = calloc((size_t)a->stats.uprobes + 1, sizeof(*fds))))
		return -ENOMEM;
	for (b = a->bins; b; b = b->next)
		for (int i = 0; i < b->nlinks && n < (int)a->stats.uprobes; i++)
			fds[n++] = bpf_link__fd(b->links[i]);
	err = uprobes_hand_over(fds, n);
	free(fds);
	if (err)
		return err;
	/* the broker holds them now: ours are closed by our exit, which removes nothing */
	for (b = a->bins; b; b = b->next)
		for (int i = 0; i < b->nlinks; i++)
			bpf_link__disconnect(b->links[i]);
	return 0;
}

static struct bin **find(struct binattach *a, uint32_t major, uint32_t minor, uint64_t inode)
{
	struct bin **pp = &a->bins;

	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->inode == inode && (*pp)->dev_major == major && (*pp)->dev_minor == minor)
			break;
	return pp;
}

/* Makes room under max_uprobes by detaching the binary idle the longest. */
static bool make_room(struct binattach *a, int needed)
{
	while (a->stats.uprobes + (uint64_t)needed > (uint64_t)a->o.max_uprobes) {
		struct bin *b, *oldest = NULL;

		for (b = a->bins; b; b = b->next)
			if (!b->refs && !b->pinned && b->nlinks &&
			    (!oldest || b->idle_since < oldest->idle_since))
				oldest = b;
		if (!oldest)
			return false;
		detach(a, oldest);
		oldest->err = -ENOSPC;
		oldest->failed_at = 0; /* may come back at once if used again */
		snprintf(oldest->why, sizeof(oldest->why), "detached to make room");
	}
	return true;
}

static int attach_probe(struct binattach *a, struct bin *b, int fd, const struct py_binary *bin,
			const struct binattach_probe *pr)
{
	int i, err;

	for (i = 0; i < bin->nprobes; i++) {
		const struct usdt_probe *site = &bin->probes[i];
		uint64_t cookie;

		if (strcmp(site->name, pr->probe))
			continue;
		if (b->nlinks == (int)(sizeof(b->links) / sizeof(b->links[0])))
			return -E2BIG;
		if ((err = uprobes_arg_cookie(site, pr->arg, &cookie)))
			return err;
		if ((err = uprobes_attach(pr->prog, fd, site, cookie, &b->links[b->nlinks])))
			return err;
		b->nlinks++;
		a->stats.uprobes++;
	}
	return 0;
}

/* Attaches every probe at every site of the binary open as fd: one uprobe per site serves
 * every process of that file. */
static int attach(struct binattach *a, struct bin *b, int fd, const struct py_binary *bin)
{
	int needed = 0, err = 0, i;

	for (i = 0; i < a->o.nprobes; i++)
		needed += py_binary_probe_sites(bin, a->o.probes[i].probe);
	a->stats.sites_dropped +=
		bin->sites.duplicate + bin->sites.outside_exec + bin->sites.over_limit;
	if (!make_room(a, needed)) {
		a->stats.refused++;
		snprintf(b->why, sizeof(b->why), "the limit of %d %s uprobes is reached",
			 a->o.max_uprobes, a->o.what);
		return -ENOSPC;
	}
	for (i = 0; i < a->o.nprobes && !err; i++)
		err = attach_probe(a, b, fd, bin, &a->o.probes[i]);
	if (err) {
		detach(a, b);
		snprintf(b->why, sizeof(b->why), "attaching the %s probes failed: %s", a->o.what,
			 strerror(-err));
	}
	return err;
}

static struct bin *bin_of(struct binattach *a, uint32_t major, uint32_t minor, uint64_t inode)
{
	struct bin **slot = find(a, major, minor, inode), *b = *slot;

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
static bool due(const struct bin *b)
{
	return b->err && (b->err == -EAGAIN || !b->failed_at ||
			  monotonic_ns() - b->failed_at >= BINATTACH_RETRY_NS);
}

/* Attaches b using the binary open as fd (or fd's negative errno). */
static int ensure_attached(struct binattach *a, struct bin *b, const struct py_binary *bin, int fd)
{
	uint64_t now = monotonic_ns();

	b->err = fd < 0 ? fd : attach(a, b, fd, bin);
	if (fd < 0)
		snprintf(b->why, sizeof(b->why), "its binary could not be opened: %s",
			 strerror(-fd));
	if (b->err) {
		b->failed_at = now ? now : 1;
		a->stats.attach_failed++;
	} else {
		a->stats.attached++;
		b->attached_at = now;
		b->why[0] = '\0';
	}
	return b->err;
}

int binattach_track(struct binattach *a, const struct py_process *p)
{
	struct bin *b = bin_of(a, p->dev_major, p->dev_minor, p->inode);
	int fd, err;

	if (!b)
		return -ENOMEM;
	b->refs++;
	if (!b->err)
		return 0;
	if (!due(b))
		return b->err; /* said when it failed; not again for every process */
	/* opened inside p's root and checked against the inode p maps; the kernel is given
	 * /proc/self/fd/N, so nothing resolves the path again */
	fd = rootfs_open_verified(p->pid, p->interp_path, p->dev_major, p->dev_minor, p->inode);
	err = ensure_attached(a, b, p->bin, fd);
	if (fd >= 0)
		close(fd);
	if (err) {
		log_warn("pid %d: %s tracing unavailable for %s: %s", p->pid, a->o.what,
			 p->interp_path, b->why);
		return err;
	}
	log_debug("attached %s probes to %s (for pid %d)", a->o.what, p->interp_path, p->pid);
	return 0;
}

void binattach_untrack(struct binattach *a, const struct py_process *p)
{
	struct bin *b = *find(a, p->dev_major, p->dev_minor, p->inode);

	if (b && b->refs > 0 && --b->refs == 0)
		b->idle_since = monotonic_ns();
}

void binattach_expire(struct binattach *a)
{
	uint64_t now = monotonic_ns();
	struct bin **pp = &a->bins, *b;

	while ((b = *pp)) {
		if (b->refs || b->pinned || (!b->err && now - b->idle_since < a->o.linger_ns)) {
			pp = &b->next;
			continue;
		}
		*pp = b->next;
		detach(a, b);
		free(b);
	}
}

int binattach_status(struct binattach *a, const struct py_process *p, const char **reason,
		     const char **why)
{
	struct bin *b = *find(a, p->dev_major, p->dev_minor, p->inode);

	if (b && !b->err)
		return 1;
	*reason = b && b->err == -ENOSPC ? "uprobe_limit" : "attach_failed";
	*why = b && b->why[0] ? b->why : "not attached";
	return 0;
}

int binattach_pin_file(struct binattach *a, const char *path,
		       bool (*has)(const struct py_binary *b))
{
	struct py_binary bin = { 0 };
	struct elf_file *ef = NULL;
	struct bin *b;
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
	b = *find(a, major(st.st_dev), minor(st.st_dev), st.st_ino);
	if (b && (!b->err || !due(b))) {
		b->pinned = true;
		close(fd);
		return b->err;
	}
	err = elf_file_open_fd(fd, &ef);
	if (!err)
		err = py_binary_inspect(ef, &bin);
	if (!err && !has(&bin))
		err = -ENOTSUP;
	if (!err && !(b = bin_of(a, major(st.st_dev), minor(st.st_dev), st.st_ino)))
		err = -ENOMEM;
	if (!err) {
		b->pinned = true;
		err = ensure_attached(a, b, &bin, fd);
		if (err)
			log_warn("cannot attach the %s probes of %s: %s", a->o.what, path, b->why);
		else
			log_debug("attached %s probes to %s (installed)", a->o.what, path);
	}
	py_binary_clear(&bin);
	elf_file_free(ef);
	close(fd);
	return err;
}

void binattach_pin_installed(struct binattach *a, bool (*has)(const struct py_binary *b))
{
	static const char *const patterns[] = {
		"/usr/bin/python3*",
		"/usr/local/bin/python3*",
		"/usr/lib/*/libpython3*.so*",
		"/usr/lib/libpython3*.so*",
		"/usr/local/lib/libpython3*.so*",
	};
	glob_t gl;
	size_t i, k;

	for (i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
		if (glob(patterns[i], GLOB_NOSORT, NULL, &gl))
			continue;
		for (k = 0; k < gl.gl_pathc; k++)
			binattach_pin_file(a, gl.gl_pathv[k], has);
		globfree(&gl);
	}
}

uint64_t binattach_since(struct binattach *a, const struct py_process *p)
{
	struct bin *b = *find(a, p->dev_major, p->dev_minor, p->inode);

	return b && !b->err ? b->attached_at : 0;
}

void binattach_set_linger_ns(struct binattach *a, uint64_t linger_ns)
{
	a->o.linger_ns = linger_ns;
}

void binattach_stats(struct binattach *a, struct binattach_stats *st)
{
	struct bin *b;

	*st = a->stats;
	st->binaries = 0;
	for (b = a->bins; b; b = b->next)
		st->binaries += !b->err;
}
