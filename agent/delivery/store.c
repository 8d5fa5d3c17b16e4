// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* See store.h. The files are listed once, at open, into an index ordered by age; each write
 * adds its file to the index and prunes from the index's old end. (Listing the store after
 * each write, as before, cost a scan of every file per write: beside five short-lived
 * Pythons a second, each with its start-up import profile, thousands of files and a 64 MB
 * list every second within 20 minutes, and more with each file.) */
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
#include "profile/intern.h"

/* A stored profile: DIR/SERVICE/FROM-UNTIL[.KIND].pb.gz, its path rebuilt from these. */
struct stored {
	uint64_t from_ms, until_ms; /* from: the order of removal */
	uint64_t size;
	uint32_t svc;  /* index into services */
	uint32_t kind; /* index into kinds; "" for CPU profiles */
};

struct store {
	struct store_opts o;
	char dir[PATH_MAX];
	struct store_stats st;
	struct intern services, kinds; /* directory names; kinds ("" for CPU) */
	struct stored *e;	       /* e[head..n) in order of from_ms */
	size_t head, n, cap;
	uint64_t total; /* bytes of e[head..n) */
};

/* The id of name in t, added if new; UINT32_MAX without memory. */
static uint32_t name_id(struct intern *t, const char *name)
{
	int64_t id = intern_put(t, name, strlen(name));

	return id < 0 ? UINT32_MAX : (uint32_t)id;
}

/* DIR/SERVICE/FROM-UNTIL[.KIND].pb.gz: the one place a stored profile's name is made. */
static void profile_path(const struct store *s, const char *svc, uint64_t from_ms,
			 uint64_t until_ms, const char *kind, char *out, size_t size)
{
	snprintf(out, size, "%s/%s/%llu-%llu%s%s.pb.gz", s->dir, svc, (unsigned long long)from_ms,
		 (unsigned long long)until_ms, kind[0] ? "." : "", kind);
}

static void stored_path(const struct store *s, const struct stored *it, char *out, size_t size)
{
	profile_path(s, intern_key(&s->services, it->svc, NULL), it->from_ms, it->until_ms,
		     intern_key(&s->kinds, it->kind, NULL), out, size);
}

/* Room for one more entry at the end of the index. */
static int index_room(struct store *s)
{
	if (s->head && s->head >= s->n / 2) { /* reuse the room the pruned ones left */
		memmove(s->e, s->e + s->head, (s->n - s->head) * sizeof(*s->e));
		s->n -= s->head;
		s->head = 0;
	}
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 256;
		struct stored *ne = realloc(s->e, nc * sizeof(*ne));

		if (!ne)
			return -ENOMEM;
		s->e = ne;
		s->cap = nc;
	}
	return 0;
}

/* Adds it to the index at its place by age: writes come in order of time, give or take a
 * start-up import profile, which begins when its process did, so the place is near the end. */
static int index_add(struct store *s, const struct stored *it)
{
	size_t at;

	if (index_room(s))
		return -ENOMEM;
	for (at = s->n; at > s->head && s->e[at - 1].from_ms > it->from_ms; at--)
		;
	memmove(s->e + at + 1, s->e + at, (s->n - at) * sizeof(*s->e));
	s->e[at] = *it;
	s->n++;
	s->total += it->size;
	return 0;
}

static int by_age(const void *a, const void *b)
{
	const struct stored *x = a, *y = b;

	return x->from_ms < y->from_ms ? -1 : x->from_ms > y->from_ms;
}

/* FROM-UNTIL.pb.gz (CPU) or FROM-UNTIL.KIND.pb.gz, KIND in [a-z_]: a stored profile. */
static bool stored_name(const char *name, unsigned long long *from, unsigned long long *until,
			char kind[32])
{
	int at = 0;
	size_t k = 0;

	if (sscanf(name, "%llu-%llu%n", from, until, &at) != 2 || !at)
		return false;
	name += at;
	if (name[0] == '.' && strcmp(name, ".pb.gz"))
		for (name++; ((*name >= 'a' && *name <= 'z') || *name == '_') && k < 31; name++)
			kind[k++] = *name;
	kind[k] = '\0';
	return !strcmp(name, ".pb.gz");
}

/* Adds the profiles of one service directory to the index. */
static void scan_service(struct store *s, const char *svc)
{
	char dir[PATH_MAX + 256], path[sizeof(dir) + 256], kind[32];
	unsigned long long from, until;
	struct dirent *de;
	struct stored it;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/%s", s->dir, svc);
	if (!(d = opendir(dir)))
		return;
	while ((de = readdir(d))) {
		struct stat st;

		if (!stored_name(de->d_name, &from, &until, kind))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (stat(path, &st) || !S_ISREG(st.st_mode))
			continue;
		it = (struct stored){ .from_ms = from,
				      .until_ms = until,
				      .size = (uint64_t)st.st_size,
				      .svc = name_id(&s->services, svc),
				      .kind = name_id(&s->kinds, kind) };
		if (it.svc == UINT32_MAX || it.kind == UINT32_MAX || index_room(s))
			break;	   /* out of memory: what is not indexed is not pruned */
		s->e[s->n++] = it; /* in directory order: scan() sorts them all once */
		s->total += it.size;
	}
	closedir(d);
}

/* What the store holds from earlier runs. */
static void scan(struct store *s)
{
	struct dirent *de;
	DIR *d = opendir(s->dir);

	if (!d)
		return;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			scan_service(s, de->d_name);
	closedir(d);
	qsort(s->e, s->n, sizeof(*s->e), by_age);
}

int store_open(const struct store_opts *o, struct store **out)
{
	struct store *s = calloc(1, sizeof(*s));
	int err;

	if (!s)
		return -ENOMEM;
	s->o = *o;
	intern_init(&s->services);
	intern_init(&s->kinds);
	snprintf(s->dir, sizeof(s->dir), "%s", o->dir);
	s->o.dir = s->dir;
	if ((err = files_mkdirs(s->dir, 0750)) || (access(s->dir, W_OK) && (err = -errno))) {
		log_error("store: cannot use %s: %s", s->dir, strerror(-err));
		free(s);
		return err;
	}
	scan(s);
	s->st.files = s->n - s->head;
	s->st.bytes = s->total;
	*out = s;
	return 0;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	intern_free(&s->services);
	intern_free(&s->kinds);
	free(s->e);
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

/* Applies the age limit, then removes the oldest profiles until the store fits its cap. */
static void store_prune(struct store *s)
{
	uint64_t now_ms = (uint64_t)time(NULL) * 1000;
	char path[2 * PATH_MAX];

	while (s->head < s->n) {
		const struct stored *it = &s->e[s->head];
		bool too_old = s->o.max_age_sec && it->from_ms + s->o.max_age_sec * 1000 < now_ms;

		if (!too_old && (!s->o.cap_bytes || s->total <= s->o.cap_bytes))
			break;
		stored_path(s, it, path, sizeof(path));
		if (unlink(path) == 0) {
			s->st.removed++;
			log_debug("store: removed %s (%s)", path, too_old ? "age" : "cap");
		}
		s->total -= it->size;
		s->head++;
	}
	s->st.files = s->n - s->head;
	s->st.bytes = s->total;
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
	struct stored it;
	int err;

	dir_name(export_service(e), name, sizeof(name));
	snprintf(dir, sizeof(dir), "%s/%s", s->dir, name);
	profile_path(s, name, e->from_ns / 1000000, e->until_ns / 1000000, cpu ? "" : kind, path,
		     sizeof(path));
	if ((err = files_mkdirs(dir, 0750)) ||
	    (err = files_write_atomic(path, &iov, 1, 0640, false))) {
		s->st.write_failed++;
		log_warn("store: cannot write %s: %s", path, strerror(-err));
		return err;
	}
	s->st.written++;
	log_debug("store: wrote %s (%zu bytes)", path, e->len);
	it = (struct stored){ .from_ms = e->from_ns / 1000000,
			      .until_ms = e->until_ns / 1000000,
			      .size = e->len,
			      .svc = name_id(&s->services, name),
			      .kind = name_id(&s->kinds, cpu ? "" : kind) };
	if (it.svc == UINT32_MAX || it.kind == UINT32_MAX || index_add(s, &it))
		log_warn("store: no memory to index %s: it is kept past the cap and age", path);
	store_prune(s);
	return 0;
}
