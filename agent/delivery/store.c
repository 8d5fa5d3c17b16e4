// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* See store.h. The store is scanned after each write to apply the cap and the age limit:
 * a day of 15 s intervals is about 6,000 files per service, a few milliseconds to list. */
#include "delivery/store.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "base/files.h"
#include "base/log.h"

struct store {
	struct store_opts o;
	char dir[PATH_MAX];
	struct store_stats st;
};

struct stored {
	char path[2 * PATH_MAX];
	uint64_t from_ms; /* from the name: the order of removal */
	uint64_t size;
};

int store_open(const struct store_opts *o, struct store **out)
{
	struct store *s = calloc(1, sizeof(*s));
	int err;

	if (!s)
		return -ENOMEM;
	s->o = *o;
	snprintf(s->dir, sizeof(s->dir), "%s", o->dir);
	s->o.dir = s->dir;
	if ((err = files_mkdirs(s->dir, 0750)) || (access(s->dir, W_OK) && (err = -errno))) {
		log_error("store: cannot use %s: %s", s->dir, strerror(-err));
		free(s);
		return err;
	}
	*out = s;
	return 0;
}

void store_close(struct store *s)
{
	free(s);
}

/* A service name as a directory name: '/', '%', a leading '.' and control bytes are
 * written %XX, so that two services never share a directory ("a/b", "a.b" and "a_b" stay
 * apart; the old '_' for all of them made one service overwrite another's files). A name
 * that does not fit whole is cut at an escape's boundary. */
static void dir_name(const char *service, char *out, size_t size)
{
	const unsigned char *p = (const unsigned char *)(service[0] ? service : "unknown");
	size_t at = 0;

	for (; *p; p++) {
		bool esc =
			*p == '/' || *p == '%' || *p < 0x20 || *p == 0x7f || (at == 0 && *p == '.');
		size_t need = esc ? 3 : 1;

		if (at + need >= size)
			break;
		if (esc)
			at += (size_t)snprintf(out + at, size - at, "%%%02X", *p);
		else
			out[at++] = (char)*p;
	}
	out[at] = '\0';
}

/* FROM-UNTIL.pb.gz (CPU) or FROM-UNTIL.KIND.pb.gz, KIND in [a-z_]: a stored profile. */
static bool stored_name(const char *name, unsigned long long *from)
{
	unsigned long long until;
	int at = 0;

	if (sscanf(name, "%llu-%llu%n", from, &until, &at) != 2 || !at)
		return false;
	name += at;
	if (name[0] == '.' && strcmp(name, ".pb.gz"))
		for (name++; (*name >= 'a' && *name <= 'z') || *name == '_'; name++)
			;
	return !strcmp(name, ".pb.gz");
}

/* Adds the profiles of one service directory to *list. */
static int list_service(const char *dir, struct stored **list, size_t *n, size_t *cap)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	unsigned long long from;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		struct stat st;
		struct stored *it;

		if (!stored_name(de->d_name, &from))
			continue;
		if (*n == *cap) {
			size_t nc = *cap ? *cap * 2 : 256;
			struct stored *nl = realloc(*list, nc * sizeof(**list));

			if (!nl)
				break;
			*list = nl;
			*cap = nc;
		}
		it = &(*list)[*n];
		snprintf(it->path, sizeof(it->path), "%s/%s", dir, de->d_name);
		if (stat(it->path, &st) || !S_ISREG(st.st_mode))
			continue;
		it->from_ms = from;
		it->size = (uint64_t)st.st_size;
		(*n)++;
	}
	closedir(d);
	return 0;
}

static int by_age(const void *a, const void *b)
{
	const struct stored *x = a, *y = b;

	return x->from_ms < y->from_ms ? -1 : x->from_ms > y->from_ms;
}

/* Applies the age limit, then removes the oldest profiles until the store fits its cap. */
static void store_prune(struct store *s)
{
	struct stored *list = NULL;
	size_t n = 0, cap = 0, i;
	uint64_t total = 0, now_ms = (uint64_t)time(NULL) * 1000;
	struct dirent *de;
	DIR *d = opendir(s->dir);

	if (!d)
		return;
	while ((de = readdir(d))) {
		char sub[PATH_MAX + 256];

		if (de->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", s->dir, de->d_name);
		list_service(sub, &list, &n, &cap);
	}
	closedir(d);
	qsort(list, n, sizeof(*list), by_age);
	for (i = 0; i < n; i++)
		total += list[i].size;
	for (i = 0; i < n; i++) {
		bool too_old =
			s->o.max_age_sec && list[i].from_ms + s->o.max_age_sec * 1000 < now_ms;

		if (!too_old && (!s->o.cap_bytes || total <= s->o.cap_bytes))
			break;
		if (unlink(list[i].path) == 0) {
			s->st.removed++;
			log_debug("store: removed %s (%s)", list[i].path, too_old ? "age" : "cap");
		}
		total -= list[i].size;
	}
	s->st.files = n - i;
	s->st.bytes = total;
	free(list);
}

void store_stats(const struct store *s, struct store_stats *st)
{
	*st = s->st;
}

int store_put(struct store *s, const struct export_profile *e)
{
	char dir[PATH_MAX + 3 * EXPORT_LABEL_VALUE], name[3 * EXPORT_LABEL_VALUE],
		path[2 * PATH_MAX];
	struct iovec iov = { .iov_base = e->data, .iov_len = e->len };
	const char *kind = export_kind(e);
	bool cpu = !strcmp(kind, EXPORT_KIND_CPU);
	int err;

	dir_name(export_service(e), name, sizeof(name));
	snprintf(dir, sizeof(dir), "%s/%s", s->dir, name);
	snprintf(path, sizeof(path), "%s/%llu-%llu%s%s.pb.gz", dir,
		 (unsigned long long)(e->from_ns / 1000000),
		 (unsigned long long)(e->until_ns / 1000000), cpu ? "" : ".", cpu ? "" : kind);
	if ((err = files_mkdirs(dir, 0750)) ||
	    (err = files_write_atomic(path, &iov, 1, 0640, false))) {
		s->st.write_failed++;
		log_warn("store: cannot write %s: %s", path, strerror(-err));
		return err;
	}
	s->st.written++;
	log_debug("store: wrote %s (%zu bytes)", path, e->len);
	store_prune(s);
	return 0;
}
